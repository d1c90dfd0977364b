//! loadgen's reply parser: the borrowed JSON tree and the classification of a frame under each built-in and example profile (fuzz_bodies::reply).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_bodies::reply::run(data));
