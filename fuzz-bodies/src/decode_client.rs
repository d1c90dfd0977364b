//! The node's decoder of client frames (`protocol::decode_client`): any
//! text decodes to a message or a bounded error, never a panic, and a
//! decoded message survives a round trip through its own JSON form. Its
//! fast path agrees with serde alone (`decode_client_serde`): the same
//! message, or the same error text. The node's borrowed echo
//! (`plain_echo`) is the same echo whenever it reads one.

pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let decoded = protocol::decode_client(text);
    assert_eq!(
        decoded,
        protocol::decode_client_serde(text),
        "fast path = serde"
    );
    if let Some(e) = protocol::plain_echo(text) {
        assert_eq!(decoded, Ok(e.into_msg()), "plain echo = decode_client");
    }
    match decoded {
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
