//! The built-in modes are profiles: `--mode echo|raw|chat` compile the
//! files in profiles/builtin/ (embedded here), so one code path measures
//! every mode and every user profile, and a user can read, copy and adapt
//! exactly what a mode does.

use crate::opts::Mode;
use crate::profile::rules::Profile;

pub const ECHO: &str = include_str!("../../../profiles/builtin/echo.toml");
pub const RAW: &str = include_str!("../../../profiles/builtin/raw.toml");
pub const CHAT: &str = include_str!("../../../profiles/builtin/chat.toml");

/// What the chat message asks of the node.
#[derive(Debug, Clone, Copy, Default)]
pub struct ChatAsk {
    pub chunks: Option<u32>,
    pub interval_ms: Option<u64>,
}

/// The profile text of a built-in mode (`None` for [`Mode::Profile`]).
pub fn text(mode: Mode, ask: ChatAsk) -> Option<String> {
    match mode {
        Mode::Echo => Some(ECHO.to_string()),
        Mode::Raw => Some(RAW.to_string()),
        Mode::Chat => {
            let mut extra = String::new();
            if let Some(c) = ask.chunks {
                extra.push_str(&format!(r#","chunks":{c}"#));
            }
            if let Some(i) = ask.interval_ms {
                extra.push_str(&format!(r#","interval_ms":{i}"#));
            }
            Some(CHAT.replacen(
                r#""text":"{payload}"}'"#,
                &format!(r#""text":"{{payload}}"{extra}}}'"#),
                1,
            ))
        }
        Mode::Profile => None,
    }
}

/// The compiled profile of a built-in mode.
pub fn profile(mode: Mode, ask: ChatAsk) -> Option<Profile> {
    let text = text(mode, ask)?;
    let label = format!("profiles/builtin/{}.toml", mode_name(mode));
    // The embedded files are tested to compile (below).
    Profile::parse(&label, &text).ok()
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Echo => "echo",
        Mode::Raw => "raw",
        Mode::Chat => "chat",
        Mode::Profile => "profile",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placeholders::Values;

    #[test]
    fn every_builtin_compiles() {
        for mode in [Mode::Echo, Mode::Raw, Mode::Chat] {
            let text = text(mode, ChatAsk::default()).unwrap();
            Profile::parse("builtin", &text).unwrap();
            assert!(profile(mode, ChatAsk::default()).is_some());
        }
        assert!(profile(Mode::Profile, ChatAsk::default()).is_none());
    }

    #[test]
    fn chat_asks_for_its_chunks() {
        let ask = ChatAsk {
            chunks: Some(4),
            interval_ms: Some(5),
        };
        let p = profile(Mode::Chat, ask).unwrap();
        let v = Values {
            conn: 2,
            run: "r1",
            seq: 9,
            payload: "xx",
            ..Values::default()
        };
        assert_eq!(
            p.message.render(&v),
            r#"{"type":"chat","message_id":"r1-2-9","text":"xx","chunks":4,"interval_ms":5}"#
        );
        let plain = profile(Mode::Chat, ChatAsk::default()).unwrap();
        assert_eq!(
            plain.message.render(&v),
            r#"{"type":"chat","message_id":"r1-2-9","text":"xx"}"#
        );
        // The message is what wsnode's protocol decodes.
        protocol::decode_client(&p.message.render(&v)).unwrap();
    }

    #[test]
    fn wsnode_decodes_the_echo_and_resume_messages() {
        let echo = profile(Mode::Echo, ChatAsk::default()).unwrap();
        let v = Values {
            seq: 42,
            ts_us: 1000,
            sent_us: 1200,
            payload: "xxxx",
            ..Values::default()
        };
        let msg = protocol::decode_client(&echo.message.render(&v)).unwrap();
        assert_eq!(
            msg,
            protocol::ClientMsg::Echo {
                id: 42,
                ts: 1000,
                payload: Some("1200.xxxx".into())
            }
        );
        let chat = profile(Mode::Chat, ChatAsk::default()).unwrap();
        let resume = &chat.resume.as_ref().unwrap().send;
        for (last_index, want) in [(-1, -1), (0, 0), (6, 6)] {
            let v = Values {
                conn: 7,
                run: "ab12",
                seq: 3,
                last_index,
                ..Values::default()
            };
            let msg = protocol::decode_client(&resume.render(&v)).unwrap();
            assert_eq!(
                msg,
                protocol::ClientMsg::Recover {
                    message_id: "ab12-7-3".into(),
                    last_index: Some(want)
                }
            );
        }
    }
}
