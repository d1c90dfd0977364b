//! Criterion benches of the per-message hot paths live in `benches/`; this
//! library is empty (`cargo bench -p wsbench-benches`).
