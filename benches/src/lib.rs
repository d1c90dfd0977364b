//! Criterion benches of the per-message hot paths live in `benches/`
//! (`cargo bench -p wsbench-benches`); this library holds only what the
//! bench files share: one sample of every wire message and frame builders
//! ([`samples`]), so every file measures the same bytes, and what
//! tcp_floor puts on the wire ([`floorwire`]), its run ([`floorrun`]) and
//! its tokio sides ([`floortokio`]) and io_uring client ([`flooruring`]).

pub mod floorrun;
pub mod floortokio;
pub mod flooruring;
pub mod floorwire;
pub mod samples;
