//! The node's decoder of client frames (fuzz_bodies::decode_client).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_bodies::decode_client::run(data));
