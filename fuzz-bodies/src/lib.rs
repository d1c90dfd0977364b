//! The bodies of wsbench's fuzz targets, one function per target.
//!
//! cargo-fuzz needs nightly and a sanitizer build, too slow for CI; so each
//! target in `fuzz/fuzz_targets/` is one line calling a function here, and
//! `tests/smoke.rs` calls the same functions on stable with the committed
//! seeds (`fuzz/seeds/TARGET/`) and a bounded number of deterministic
//! mutations of them. A body panics on any broken invariant; a panic is a
//! crash to libFuzzer and a failed test to `cargo test`.
//! docs/BENCHMARKS.md ("Fuzzing") has the commands and the figures.

pub mod decode_client;
pub mod frame_reader;
pub mod profile;
pub mod reply;

/// A target's body: panics on a broken invariant.
pub type Body = fn(&[u8]);

/// Every target, by the name its cargo-fuzz binary and seed directory have.
pub const TARGETS: &[(&str, Body)] = &[
    ("decode_client", decode_client::run),
    ("frame_reader", frame_reader::run),
    ("reply", reply::run),
    ("profile", profile::run),
];
