//! The profile parser: any text as a `--profile` file, through
//! `Profile::parse`, the function both `Config::from_opts` (reading the
//! file) and `Settings::compile_profile` (each worker process) call. It
//! returns an error naming the file, never panics; a profile it accepts
//! renders its templates and classifies frames without panicking.

use loadgen::engine::reply::classify;
use loadgen::placeholders::Values;
use loadgen::profile::classify::Keys;
use loadgen::profile::rules::{Profile, Step};

const LABEL: &str = "fuzz.toml";
/// Frames of the kinds the built-in and example profiles read.
const FRAMES: [&[u8]; 8] = [
    br#"{"type":"welcome","token":"t"}"#,
    br#"{"type":"echo","id":7,"ts":100,"payload":"150.xxxx"}"#,
    br#"{"type":"chunk","message_id":"r1-4-9","index":0,"text":"a"}"#,
    br#"{"type":"error","message_id":"r1-4-9","code":"not_found"}"#,
    br#"{"seq":1,"ts":2,"from":3,"a":[1,{"b/c":"~"}]}"#,
    b"lg:2:10:11:xxxx",
    b"42[\"message\",{\"id\":1}]",
    b"\xff\xfe",
];

pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let p = match Profile::parse(LABEL, text) {
        Ok(p) => p,
        Err(e) => {
            assert!(e.starts_with(LABEL), "the error names the file: {e}");
            assert!(e.len() > LABEL.len() + 2, "the error says something: {e}");
            return;
        }
    };
    let vars = Values {
        conn: 4,
        session: "s4",
        run: "r1",
        seq: 9,
        ts_us: 100,
        payload: "xxxx",
        group: 1,
        sent_us: 150,
        last_index: 3,
    };
    p.message.render(&vars);
    for step in &p.open {
        if let Step::Send(t) = step {
            t.render(&vars);
        }
    }
    for (_, t) in &p.answers {
        t.render(&vars);
    }
    if let Some(r) = &p.resume {
        r.send.render(&vars);
    }
    let prefix = p.id_prefix(&vars);
    let keys = Keys {
        id_prefix: &prefix,
        filler: "xxxx",
    };
    for frame in FRAMES.iter().copied().chain([data]) {
        classify(&p, frame, &keys);
    }
}
