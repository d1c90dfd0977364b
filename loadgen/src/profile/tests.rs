//! The shipped profiles classify their protocols' real frames, and bad
//! profiles are refused naming the file, line and key.

use crate::profile::classify::{Frame, Keys, classify as classify_with};
use crate::profile::matchers::IdRule;
use crate::profile::rules::{Profile, Step};

const GRAPHQL_WS: &str = include_str!("../../../profiles/graphql-ws.toml");
const SOCKETIO: &str = include_str!("../../../profiles/socketio.toml");
const SEED_K6: &str = include_str!("../../../profiles/seed-k6.toml");

fn classify(p: &Profile, data: &[u8]) -> Frame {
    classify_with(p, data, &Keys::default())
}

fn parse(text: &str) -> Result<Profile, String> {
    Profile::parse("p.toml", text)
}

#[test]
fn graphql_ws_frames() {
    let p = Profile::parse("profiles/graphql-ws.toml", GRAPHQL_WS).unwrap();
    assert_eq!(p.name, "graphql-ws");
    assert_eq!(p.subprotocol.as_deref(), Some("graphql-transport-ws"));
    assert!(matches!(p.open[..], [Step::Send(_), Step::Expect(..)]));
    let next = br#"{"id":"7","type":"next","payload":{"data":{"ticks":2}}}"#;
    assert_eq!(
        classify(&p, next),
        Frame::Part {
            id: Some(7),
            index: Some(2),
            text_ok: true
        }
    );
    assert_eq!(
        classify(&p, br#"{"id":"7","type":"complete"}"#),
        Frame::End {
            id: Some(7),
            count: None
        }
    );
    assert_eq!(classify(&p, br#"{"type":"ping"}"#), Frame::Answer(0));
    assert_eq!(classify(&p, br#"{"type":"pong"}"#), Frame::Ignore);
    assert_eq!(
        classify(&p, br#"{"id":"x","type":"complete"}"#),
        Frame::BadId("an id that is not a sequence number")
    );
    assert_eq!(
        classify(&p, br#"{"id":"7","type":"next","payload":{}}"#),
        Frame::BadIndex
    );
    assert_eq!(
        classify(&p, br#"{"id":"7","type":"error"}"#),
        Frame::Unexpected
    );
    assert_eq!(classify(&p, b"not json"), Frame::Unexpected);
}

#[test]
fn socketio_frames() {
    let p = parse(SOCKETIO).unwrap();
    assert_eq!(p.open.len(), 3);
    assert_eq!(classify(&p, b"2"), Frame::Answer(0));
    assert_eq!(
        classify(&p, br#"4312["payload"]"#),
        Frame::Reply {
            id: Some(12),
            marker: None
        }
    );
    assert_eq!(
        classify(&p, br#"42["news",1]"#),
        Frame::BadId("a reply without its id")
    );
    let vars = crate::placeholders::Values {
        seq: 5,
        ts_us: 100,
        payload: "xx",
        ..Default::default()
    };
    assert_eq!(
        p.message.render(&vars),
        r#"425["echo",{"ts":100,"payload":"xx"}]"#
    );
}

#[test]
fn seed_k6_counts_any_frame_in_order() {
    let p = parse(SEED_K6).unwrap();
    assert!(matches!(p.id, IdRule::Order));
    assert_eq!(
        classify(&p, b"anything"),
        Frame::Reply {
            id: None,
            marker: None
        }
    );
    assert_eq!(p.session_param.as_deref(), Some("session_id"));
}

#[test]
fn bad_profiles_name_the_file_line_and_key() {
    let base = "[message]\ntext = \"m {seq}\"\n";
    for (text, want) in [
        (
            format!("{base}surprise = 1\n"),
            "p.toml:3: unknown field `surprise`",
        ),
        (
            "[message]\ntext = \"m {sqe}\"\n".to_string(),
            "p.toml:2: message.text: unknown placeholder {sqe}",
        ),
        (
            format!("{base}[reply]\nid = {{ json = \"id\" }}\n"),
            "p.toml:4: reply.id.json: \"id\" is not a JSON pointer",
        ),
        (
            format!("{base}[reply]\nid = {{ regex = \"(\" }}\n"),
            "p.toml:4: reply.id.regex: invalid regex",
        ),
        (
            format!("{base}[reply]\nid = {{ regex = \"^43\" }}\n"),
            "p.toml:4: reply.id.regex: needs a capture group",
        ),
        (
            format!("{base}[[ignore]]\nwhen = {{ text = \"a\", prefix = \"b\" }}\n"),
            "p.toml:4: ignore[1].when: needs exactly one of",
        ),
        (
            format!("{base}[[answer]]\nwhen = {{ regex = \"[\" }}\nsend = \"x\"\n"),
            "p.toml:4: answer[1].when.regex: invalid regex",
        ),
        (
            format!("{base}[[open]]\nsend = \"{{seq}}\"\n"),
            "p.toml:4: open[1].send: unknown placeholder {seq}",
        ),
        ("[message]\n".to_string(), "[message] has exactly one of"),
        (
            format!(
                "{base}[stream]\npart = {{ json = \"/t\", equals = \"next\" }}\nend = {{ text = \"e\" }}\nindex = \"nope\"\n"
            ),
            "p.toml:6: stream.index: \"nope\" is not a JSON pointer",
        ),
    ] {
        let e = parse(&text).expect_err(&text);
        assert!(e.contains(want), "{text}\n=> {e}\n(wanted {want})");
    }
}

#[test]
fn the_echo_profile_reads_wsnode_replies() {
    let p = parse(include_str!("../../../profiles/echo.toml")).unwrap();
    assert_eq!(
        classify(&p, br#"{"type":"echo","id":41,"ts":9,"payload":"xx"}"#),
        Frame::Reply {
            id: Some(41),
            marker: None
        }
    );
    assert_eq!(
        classify(&p, br#"{"type":"error","code":"rate_limited"}"#),
        Frame::Unexpected
    );
}

#[test]
fn the_broadcast_profile_reads_deliveries() {
    let p = parse(include_str!("../../../profiles/broadcast.toml")).unwrap();
    assert!(p.fanout.is_some());
    assert_eq!(
        classify(
            &p,
            br#"{"pub":"g1","seq":4,"ts":1200,"from":1,"payload":"x"}"#
        ),
        Frame::Delivery {
            from: Some(1),
            seq: 4,
            ts: 1200
        }
    );
    // A frame without the fields is not a delivery.
    assert_eq!(
        classify(&p, br#"{"joined":"g1"}"#),
        Frame::Reply {
            id: None,
            marker: None
        }
    );
    let e = parse("[message]\ntext = \"m\"\n[fanout]\nseq = { json = \"/s\" }\nts = \"order\"\n")
        .unwrap_err();
    assert!(e.contains("p.toml:5: fanout.ts"), "{e}");
}
