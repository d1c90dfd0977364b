//! Fuzz the node's decoder of client frames: any text must decode to a
//! message or a bounded error, never panic; a decoded message must survive
//! a round trip through its own JSON form.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match protocol::decode_client(text) {
        Ok(msg) => {
            if text.trim_start().starts_with('{') {
                let again = protocol::decode_client(&msg.to_json()).expect("re-encoded message decodes");
                assert_eq!(again, msg);
            }
        }
        Err(e) => assert!(e.to_string().len() < 256, "error text is bounded"),
    }
});
