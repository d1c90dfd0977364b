//! The node's decoder of client frames (`protocol::decode_client`): any
//! text decodes to a message or a bounded error, never a panic, and a
//! decoded message survives a round trip through its own JSON form.

pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match protocol::decode_client(text) {
        Ok(msg) => {
            if text.trim_start().starts_with('{') {
                let again =
                    protocol::decode_client(&msg.to_json()).expect("re-encoded message decodes");
                assert_eq!(again, msg);
            }
        }
        Err(e) => assert!(e.to_string().len() < 256, "error text is bounded"),
    }
}
