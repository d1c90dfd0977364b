//! The histograms' bounds, shared by every figure loadgen records, and the
//! one way a value goes in (clamped into them, never an error).

use hdrhistogram::Histogram;

/// Histogram bounds: 1 us to 1 h at 3 significant figures.
pub const LOWEST_US: u64 = 1;
pub const HIGHEST_US: u64 = 3_600_000_000;
pub const SIGFIG: u8 = 3;

pub fn new_hist() -> Histogram<u64> {
    // Constant, valid bounds: this cannot fail.
    Histogram::new_with_bounds(LOWEST_US, HIGHEST_US, SIGFIG).expect("valid histogram bounds")
}

/// Record one value in microseconds, clamped into the histogram's range.
pub fn record(h: &mut Histogram<u64>, us: u64) {
    h.saturating_record(us.clamp(LOWEST_US, HIGHEST_US));
}
