//! Criterion benches of the per-message hot paths live in `benches/`
//! (`cargo bench -p wsbench-benches`); this library holds only what the
//! bench files share: one sample of every wire message and frame builders
//! ([`samples`]), so every file measures the same bytes.

pub mod samples;
