//! The --profile parser: any TOML text is an error or a profile, never a panic (fuzz_bodies::profile).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_bodies::profile::run(data));
