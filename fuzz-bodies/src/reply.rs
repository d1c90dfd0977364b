//! loadgen's reply parser: a frame read as a borrowed JSON tree
//! (`profile::json::Json`, one pass for a plain object), checked against
//! the serde-only tree, serde_json's own reading of the same bytes and the
//! classifier's reading (`profile::doc::Doc`, members in place), then
//! classified as the engine classifies a data frame
//! (`engine::reply::classify`) under each built-in mode's profile and each
//! example profile in profiles/.

use loadgen::Mode;
use loadgen::engine::reply::{Event, Reply, classify};
use loadgen::placeholders::Values;
use loadgen::profile::builtin::{self, ChatAsk};
use loadgen::profile::classify::Keys;
use loadgen::profile::doc::Doc;
use loadgen::profile::flat::Members;
use loadgen::profile::json::Json;
use loadgen::profile::rules::Profile;
use serde_json::Value;
use std::sync::OnceLock;

/// The run's `{payload}` filler the marker checks compare with.
const FILLER: &str = "xxxx";
/// The example profiles (the built-ins come from loadgen itself).
const EXAMPLES: [(&str, &str); 5] = [
    ("broadcast", include_str!("../../profiles/broadcast.toml")),
    ("echo", include_str!("../../profiles/echo.toml")),
    ("graphql-ws", include_str!("../../profiles/graphql-ws.toml")),
    ("seed-k6", include_str!("../../profiles/seed-k6.toml")),
    ("socketio", include_str!("../../profiles/socketio.toml")),
];
/// Paths checked per frame, so a wide frame stays quick.
const MAX_PATHS: usize = 256;

pub fn run(data: &[u8]) {
    json(data);
    for (p, prefix) in profiles() {
        let keys = Keys {
            id_prefix: prefix,
            filler: FILLER,
        };
        let reply = classify(p, data, &keys);
        assert_eq!(reply, classify(p, data, &keys), "classification is pure");
        check(&reply);
    }
}

/// The profiles, compiled once, with connection 4's id prefix in run r1.
fn profiles() -> &'static [(Profile, String)] {
    static ALL: OnceLock<Vec<(Profile, String)>> = OnceLock::new();
    ALL.get_or_init(|| {
        let vars = Values {
            conn: 4,
            run: "r1",
            ..Values::default()
        };
        let builtins = [Mode::Echo, Mode::Raw, Mode::Chat]
            .map(|m| builtin::profile(m, ChatAsk::default()).expect("built-in profile"));
        let examples = EXAMPLES.map(|(name, text)| Profile::parse(name, text).expect("example"));
        builtins
            .into_iter()
            .chain(examples)
            .map(|p| {
                let prefix = p.id_prefix(&vars);
                (p, prefix)
            })
            .collect()
    })
}

/// What any classification must look like.
fn check(reply: &Reply) {
    match reply {
        Reply::Fault { note, .. } => assert!(!note.is_empty() && note.len() < 512),
        Reply::Message {
            event: Event::Fail { code, name, .. },
            ..
        } => {
            assert!(!name.is_empty());
            assert!(code.as_ref().is_none_or(|c| c.chars().count() <= 40));
        }
        _ => {}
    }
}

/// The borrowed tree reads what serde_json reads, and every path in it
/// leads back to its value.
fn json(data: &[u8]) {
    let tree = Json::parse(data);
    // The one-pass reading of a plain object is serde's tree exactly.
    assert_eq!(tree, Json::parse_serde(data), "one pass and serde agree");
    let value = serde_json::from_slice::<Value>(data).ok();
    assert_eq!(
        tree.is_some(),
        value.is_some(),
        "Json and serde_json agree on validity"
    );
    // The classifier's reading (members in place, else the tree) agrees on
    // validity, and below on every value a path inside the frame names.
    let mut members = Members::default();
    let doc = Doc::parse(data, &mut members);
    assert_eq!(
        doc.is_some(),
        tree.is_some(),
        "Doc and Json agree on validity"
    );
    let (Some(tree), Some(value)) = (tree, value) else {
        return;
    };
    // A repeated key: the tree keeps the first, serde_json the last.
    let unique = !repeats_a_key(&tree);
    if unique {
        assert!(tree.equals(&value), "the tree equals serde_json's value");
    }
    let mut paths = Vec::new();
    collect(&tree, String::new(), &mut paths);
    for (path, node) in paths {
        let found = tree.pointer(&path).expect("a path in the tree resolves");
        assert!(std::ptr::eq(found, node), "{path:?} leads to its own value");
        if let Some(d) = &doc
            && !path.is_empty()
        {
            assert_eq!(
                d.pointer(&path),
                Some(node),
                "{path:?}: Doc finds the tree's value"
            );
        }
        if unique {
            let v = value.pointer(&path).expect("serde_json resolves it too");
            assert!(node.equals(v), "{path:?}: the same value as serde_json's");
        }
    }
}

fn repeats_a_key(j: &Json<'_>) -> bool {
    match j {
        Json::Arr(items) => items.iter().any(repeats_a_key),
        Json::Obj(members) => members.iter().enumerate().any(|(i, (k, v))| {
            members[..i].iter().any(|(earlier, _)| earlier == k) || repeats_a_key(v)
        }),
        _ => false,
    }
}

/// RFC 6901 paths of the values in `j` (the first of a repeated key only).
fn collect<'j, 'a>(j: &'j Json<'a>, path: String, out: &mut Vec<(String, &'j Json<'a>)>) {
    if out.len() >= MAX_PATHS {
        return;
    }
    match j {
        Json::Arr(items) => {
            for (i, item) in items.iter().enumerate() {
                collect(item, format!("{path}/{i}"), out);
            }
        }
        Json::Obj(members) => {
            for (i, (k, v)) in members.iter().enumerate() {
                if members[..i].iter().all(|(earlier, _)| earlier != k) {
                    let token = k.replace('~', "~0").replace('/', "~1");
                    collect(v, format!("{path}/{token}"), out);
                }
            }
        }
        _ => {}
    }
    out.push((path, j));
}
