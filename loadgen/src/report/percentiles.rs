//! Percentile points of the run's merged histograms, so a reader of the
//! JSON (and the `--html` page) can draw an HdrHistogram-style
//! distribution without the histograms themselves.
//!
//! The points are spaced evenly on the log scale of 1 / (1 - q) that
//! HdrHistogram's plots use (five per decade: 0, 36.9, 60.2, ... 90, ...
//! 99, ... 99.999 %), and stop where the histogram has too few values to
//! tell them apart; the last point is always the maximum (100 %).

use hdrhistogram::Histogram;
use serde::Serialize;

/// (percentile 0..=100, value in microseconds).
pub type Point = (f64, u64);

/// Steps per decade of 1 / (1 - q).
const PER_DECADE: u32 = 5;
/// Deepest level: 99.999 % (five decades).
const DECADES: u32 = 5;

/// The distributions the report carries as percentile points.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Percentiles {
    /// Corrected reply latency of the whole run, in microseconds.
    pub latency_us: Vec<Point>,
    /// Uncorrected reply latency of the whole run, in microseconds.
    pub uncorrected_us: Vec<Point>,
    /// Connection time (TCP connect + TLS + upgrade), in microseconds.
    pub connection_us: Vec<Point>,
}

/// The percentile points of `h`: empty when `h` is.
pub fn points(h: &Histogram<u64>) -> Vec<Point> {
    if h.is_empty() {
        return Vec::new();
    }
    let n = h.len() as f64;
    let mut v: Vec<Point> = (0..=PER_DECADE * DECADES)
        .map(|k| 1.0 - 10f64.powf(-f64::from(k) / f64::from(PER_DECADE)))
        // 1 / (1 - q) values or more are needed to say anything about q.
        .take_while(|q| 1.0 / (1.0 - q) <= n)
        .map(|q| (round(q * 100.0), h.value_at_quantile(q)))
        .collect();
    v.push((100.0, h.max()));
    v
}

/// Five decimals: 99.999 stays exact, 36.904265... becomes 36.90427.
fn round(p: f64) -> f64 {
    (p * 1e5).round() / 1e5
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_stop_where_the_counts_do_and_end_at_the_maximum() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        for v in 1..=1000u64 {
            h.record(v).unwrap();
        }
        let p = points(&h);
        assert_eq!(p.first(), Some(&(0.0, 1)));
        assert!(p.contains(&(90.0, 900)), "{p:?}");
        assert!(p.contains(&(99.9, 999)), "{p:?}");
        assert!(!p.iter().any(|(q, _)| *q > 99.9 && *q < 100.0), "{p:?}");
        assert_eq!(p.last(), Some(&(100.0, 1000)));
        assert!(p.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
        assert!(points(&Histogram::<u64>::new(3).unwrap()).is_empty());
    }
}
