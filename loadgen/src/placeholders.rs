//! Text with `{name}` placeholders, parsed once and rendered per
//! connection or per message without re-parsing.
//!
//! Used for `--header` values (a per-connection token, say) and, in
//! protocol profiles, for the messages themselves. A placeholder the caller
//! does not offer is refused when the text is parsed, so a typo is a bad
//! option (exit 2), never a literal `{sesion}` sent to a server.

use serde::{Deserialize, Serialize};

/// A value a placeholder can stand for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Var {
    /// The connection's number in the run, from 1.
    Conn,
    /// The connection's session id (`--session-pattern`).
    Session,
    /// The run's random id.
    Run,
    /// The message's sequence number on its connection, from 0.
    Seq,
    /// The message's intended send time, microseconds since the run's start.
    TsUs,
    /// `--payload-size` bytes of filler.
    Payload,
    /// A random 64-bit number, new at each rendering.
    Rand,
    /// The connection's fan-out group (`--group-size`), from 1.
    Group,
    /// The message's actual send time, microseconds since the run's start
    /// (later than `ts_us` when the sender fell behind).
    SentUs,
    /// Resuming an answer: the index of the last part received, -1 when none.
    LastIndex,
}

impl Var {
    pub const ALL: [Var; 10] = [
        Var::Conn,
        Var::Session,
        Var::Run,
        Var::Seq,
        Var::TsUs,
        Var::Payload,
        Var::Rand,
        Var::Group,
        Var::SentUs,
        Var::LastIndex,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Var::Conn => "conn",
            Var::Session => "session",
            Var::Run => "run",
            Var::Seq => "seq",
            Var::TsUs => "ts_us",
            Var::Payload => "payload",
            Var::Rand => "rand",
            Var::Group => "group",
            Var::SentUs => "sent_us",
            Var::LastIndex => "last_index",
        }
    }
}

/// The placeholders a connection's handshake can use.
pub const CONNECTION_VARS: &[Var] = &[Var::Conn, Var::Session, Var::Run, Var::Rand, Var::Group];

/// The placeholders of the paced message: all but `{last_index}` (the
/// last of [`Var::ALL`]).
pub const MESSAGE_VARS: &[Var] = Var::ALL.split_at(Var::ALL.len() - 1).0;

/// The placeholders of a request to resume an answer (`[resume] send`).
pub const RESUME_VARS: &[Var] = &[
    Var::Conn,
    Var::Session,
    Var::Run,
    Var::Rand,
    Var::Group,
    Var::Seq,
    Var::LastIndex,
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Piece {
    Text(String),
    Var(Var),
}

/// Parsed text: literal pieces and placeholders.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Template {
    pieces: Vec<Piece>,
}

/// The values of one rendering; a placeholder whose value is not set
/// renders as nothing (parsing already refused names not allowed).
#[derive(Debug, Default, Clone, Copy)]
pub struct Values<'a> {
    pub conn: u64,
    pub session: &'a str,
    pub run: &'a str,
    pub seq: u64,
    pub ts_us: u64,
    pub payload: &'a str,
    pub group: u64,
    pub sent_us: u64,
    pub last_index: i64,
}

impl Template {
    /// Parse `text`, allowing only the placeholders in `allowed`.
    ///
    /// A placeholder is `{name}` with `name` an identifier; any other brace
    /// is literal, so JSON templates need no escaping. `{{` is a literal
    /// `{` (write `{{seq}` to send the text `{seq}`).
    pub fn parse(text: &str, allowed: &[Var]) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut lit = String::new();
        let mut rest = text;
        while let Some(i) = rest.find('{') {
            lit.push_str(&rest[..i]);
            let tail = &rest[i..];
            if let Some(after) = tail.strip_prefix("{{") {
                lit.push('{');
                rest = after;
                continue;
            }
            let name_len = tail[1..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len() - 1);
            let name = &tail[1..1 + name_len];
            let is_placeholder = !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && tail[1 + name_len..].starts_with('}');
            if !is_placeholder {
                lit.push('{');
                rest = &tail[1..];
                continue;
            }
            let var = Var::ALL
                .into_iter()
                .find(|v| v.name() == name)
                .filter(|v| allowed.contains(v))
                .ok_or_else(|| {
                    let names: Vec<String> =
                        allowed.iter().map(|v| format!("{{{}}}", v.name())).collect();
                    format!(
                        "unknown placeholder {{{name}}} in {text:?}; here you can use {} (write {{{{ for a literal brace)",
                        names.join(", ")
                    )
                })?;
            if !lit.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut lit)));
            }
            pieces.push(Piece::Var(var));
            rest = &tail[name_len + 2..];
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            pieces.push(Piece::Text(lit));
        }
        Ok(Template { pieces })
    }

    /// Render into `out` (cleared first).
    pub fn render_into(&self, out: &mut String, v: &Values<'_>) {
        out.clear();
        // Integers without core::fmt: this runs for every message sent.
        let mut ints = itoa::Buffer::new();
        for p in &self.pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Var(Var::Conn) => out.push_str(ints.format(v.conn)),
                Piece::Var(Var::Session) => out.push_str(v.session),
                Piece::Var(Var::Run) => out.push_str(v.run),
                Piece::Var(Var::Seq) => out.push_str(ints.format(v.seq)),
                Piece::Var(Var::TsUs) => out.push_str(ints.format(v.ts_us)),
                Piece::Var(Var::Payload) => out.push_str(v.payload),
                Piece::Var(Var::Group) => out.push_str(ints.format(v.group)),
                Piece::Var(Var::Rand) => out.push_str(ints.format(random_u64())),
                Piece::Var(Var::SentUs) => out.push_str(ints.format(v.sent_us)),
                Piece::Var(Var::LastIndex) => out.push_str(ints.format(v.last_index)),
            }
        }
    }

    pub fn render(&self, v: &Values<'_>) -> String {
        let mut s = String::new();
        self.render_into(&mut s, v);
        s
    }
}

/// A cheap, non-cryptographic random number (per-thread xorshift seeded
/// from the clock and the thread), enough to make values differ: `{rand}`,
/// and the epoll loop's masking keys (`engine::steady::conn`).
pub(crate) fn random_u64() -> u64 {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64);
            let id = std::thread::current().id();
            let h = format!("{id:?}").bytes().fold(t, |a, b| a.rotate_left(5) ^ u64::from(b));
            h | 1
        });
    }
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        x
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_numbers_vary_and_two_threads_start_apart() {
        // The upper halves, as the loop's masking keys take them.
        let keys: Vec<u32> = (0..1000).map(|_| (random_u64() >> 32) as u32).collect();
        let mut distinct = keys.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert!(distinct.len() > 990, "{} distinct of 1000", distinct.len());
        let other: Vec<u32> =
            std::thread::spawn(|| (0..4).map(|_| (random_u64() >> 32) as u32).collect())
                .join()
                .unwrap();
        assert_ne!(keys[..4], other[..]);
    }

    #[test]
    fn placeholders_render_and_braces_escape() {
        let t = Template::parse("Bearer {session}-{conn} {{x}", CONNECTION_VARS).unwrap();
        let v = Values {
            conn: 7,
            session: "s7",
            ..Values::default()
        };
        assert_eq!(t.render(&v), "Bearer s7-7 {x}");
        // JSON needs no escaping: only {identifier} is a placeholder.
        let j = Template::parse(r#"{"id":"{conn}","p":{"q":"{ x }"}}"#, CONNECTION_VARS).unwrap();
        assert_eq!(j.render(&v), r#"{"id":"7","p":{"q":"{ x }"}}"#);
        let all = Template::parse("{seq}:{ts_us}:{payload}:{run}", &Var::ALL).unwrap();
        let v = Values {
            seq: 3,
            ts_us: 99,
            payload: "xx",
            run: "r",
            ..Values::default()
        };
        assert_eq!(all.render(&v), "3:99:xx:r");
        let edge = Values {
            seq: u64::MAX,
            ts_us: 0,
            ..v
        };
        assert_eq!(all.render(&edge), "18446744073709551615:0:xx:r");
        let r = Template::parse("{rand}", &Var::ALL).unwrap();
        assert_ne!(r.render(&v), r.render(&v));
    }

    #[test]
    fn each_use_offers_its_placeholders() {
        assert!(MESSAGE_VARS.contains(&Var::SentUs) && !MESSAGE_VARS.contains(&Var::LastIndex));
        assert!(RESUME_VARS.contains(&Var::LastIndex) && !RESUME_VARS.contains(&Var::TsUs));
        let t = Template::parse("{seq}:{last_index}", RESUME_VARS).unwrap();
        let v = Values {
            seq: 3,
            last_index: -1,
            ..Values::default()
        };
        assert_eq!(t.render(&v), "3:-1");
        assert!(Template::parse("{last_index}", MESSAGE_VARS).is_err());
    }

    #[test]
    fn bad_templates_name_the_problem() {
        let e = Template::parse("{sesion}", CONNECTION_VARS).unwrap_err();
        assert!(e.contains("{sesion}") && e.contains("{session}"), "{e}");
        // A real placeholder that this use does not offer.
        let e = Template::parse("{seq}", CONNECTION_VARS).unwrap_err();
        assert!(e.contains("unknown placeholder {seq}"), "{e}");
        // Not placeholders, so literal.
        for lit in ["{conn", "a}b", "{1x}", "{}"] {
            let t = Template::parse(lit, CONNECTION_VARS).unwrap();
            assert_eq!(t.render(&Values::default()), lit);
        }
    }
}
