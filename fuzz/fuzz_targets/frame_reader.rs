//! The WebSocket frame reader wsnode and loadgen share (fuzz_bodies::frame_reader).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_bodies::frame_reader::run(data));
