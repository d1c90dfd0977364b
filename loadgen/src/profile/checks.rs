//! Built-in checks a profile can name for what a TOML rule cannot say:
//! that a reply carries back exactly what loadgen sent (its own echo and
//! raw formats), and that a streamed part holds wsnode's deterministic
//! text for its index. The built-in modes use them (profiles/builtin/);
//! any profile may, when the service speaks these formats.

use crate::profile::doc::Doc;
use crate::profile::json::Json;

/// `[reply] check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// JSON `{"ts":INTENDED_US,"payload":"SENT_US.FILLER"}`, as `--mode echo` sends.
    EchoMarker,
    /// `lg:SEQ:INTENDED_US:SENT_US:FILLER`, as `--mode raw` sends.
    RawMarker,
}

impl Check {
    pub const NAMES: &'static str = "\"echo-marker\" or \"raw-marker\"";

    pub fn from_name(name: &str) -> Option<Check> {
        match name {
            "echo-marker" => Some(Check::EchoMarker),
            "raw-marker" => Some(Check::RawMarker),
            _ => None,
        }
    }
}

/// What a reply says about the message it answers: the send times it
/// carries back and whether the filler came back unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    pub intended_us: u64,
    pub sent_us: u64,
    pub intact: bool,
}

/// Read the marker of a reply under `check`; `None` when the reply does
/// not carry one at all.
pub fn marker(
    check: Check,
    text: &str,
    json: Option<&Doc<'_, '_>>,
    filler: &str,
) -> Option<Marker> {
    match check {
        Check::EchoMarker => {
            let j = json?;
            let intended_us = j.pointer("/ts")?.as_u64()?;
            let (sent, rest) = j.pointer("/payload")?.as_str()?.split_once('.')?;
            Some(Marker {
                intended_us,
                sent_us: sent.parse().ok()?,
                intact: rest == filler,
            })
        }
        Check::RawMarker => {
            let mut it = text.strip_prefix("lg:")?.splitn(4, ':');
            let _seq: u64 = it.next()?.parse().ok()?;
            let intended_us = it.next()?.parse().ok()?;
            let sent_us = it.next()?.parse().ok()?;
            Some(Marker {
                intended_us,
                sent_us,
                intact: it.next()? == filler,
            })
        }
    }
}

/// `[stream] check = "wsnode-chunk-text"`: the part's `/text` is the text
/// wsnode's simulated generator gives `/message_id` at `/index`.
pub fn chunk_text_ok(json: Option<&Doc<'_, '_>>) -> bool {
    let Some(j) = json else {
        return false;
    };
    match (
        j.pointer("/message_id").and_then(Json::as_str),
        j.pointer("/index").and_then(Json::as_u64),
        j.pointer("/text").and_then(Json::as_str),
    ) {
        (Some(id), Some(index), Some(text)) => {
            u32::try_from(index).is_ok_and(|i| protocol::chunk::verify_chunk(id, i, text))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::flat::Members;

    #[test]
    fn markers_read_back_what_was_sent() {
        let mut m = Members::default();
        let j = Doc::parse(
            br#"{"type":"echo","id":7,"ts":100,"payload":"150.xxxx"}"#,
            &mut m,
        )
        .unwrap();
        let want = Marker {
            intended_us: 100,
            sent_us: 150,
            intact: true,
        };
        assert_eq!(marker(Check::EchoMarker, "", Some(&j), "xxxx"), Some(want));
        assert!(
            !marker(Check::EchoMarker, "", Some(&j), "xxyx")
                .unwrap()
                .intact
        );
        assert_eq!(marker(Check::EchoMarker, "", None, "xxxx"), None);
        assert_eq!(
            marker(Check::RawMarker, "lg:2:100:150:xxxx", None, "xxxx"),
            Some(want)
        );
        for bad in ["hello", "lg:1:2", "lg:a:2:3:xxxx", "lg:1:2:x:xxxx"] {
            assert_eq!(marker(Check::RawMarker, bad, None, "xxxx"), None, "{bad}");
        }
    }

    #[test]
    fn chunk_text_is_checked_against_the_generator() {
        let (mut m1, mut m2, mut m3) = (Members::default(), Members::default(), Members::default());
        let text = protocol::chunk::chunk_text("m-1", 4, 12);
        let ok = format!(r#"{{"message_id":"m-1","index":4,"text":"{text}"}}"#);
        let wrong = format!(r#"{{"message_id":"m-1","index":5,"text":"{text}"}}"#);
        let missing = r#"{"message_id":"m-1","index":4}"#;
        let (ok, wrong, missing) = (
            Doc::parse(ok.as_bytes(), &mut m1).unwrap(),
            Doc::parse(wrong.as_bytes(), &mut m2).unwrap(),
            Doc::parse(missing.as_bytes(), &mut m3).unwrap(),
        );
        assert!(chunk_text_ok(Some(&ok)));
        assert!(!chunk_text_ok(Some(&wrong)));
        assert!(!chunk_text_ok(Some(&missing)));
        assert!(!chunk_text_ok(None));
    }
}
