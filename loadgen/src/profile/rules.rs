//! A checked, compiled protocol profile: templates parsed, regexes
//! compiled, JSON pointers checked, and every error located at its file,
//! line and key.

use crate::config::target::Target;
use crate::placeholders::{CONNECTION_VARS, Template, Var};
use crate::profile::spec::{MatchSpec, ProfileSpec, StepSpec};
use regex::Regex;
use serde_json::Value;
use toml::Spanned;

/// Frames longer than this are never matched by a regex (bounds the work
/// a hostile server can cause per frame).
pub const MAX_MATCH_LEN: usize = 64 * 1024;

/// A compiled profile.
#[derive(Debug, Clone)]
pub struct Profile {
    pub name: String,
    pub subprotocol: Option<String>,
    /// The URL query parameter that carries the session id, if any.
    pub session_param: Option<String>,
    pub open: Vec<Step>,
    pub message: Template,
    /// The paced message goes as a binary frame.
    pub binary: bool,
    pub reply_when: Option<Matcher>,
    pub id: IdRule,
    pub stream: Option<StreamRule>,
    /// Fan-out: where deliveries carry the publisher's seq, ts and conn.
    pub fanout: Option<FanoutRule>,
    pub answers: Vec<(Matcher, Template)>,
    pub ignores: Vec<Matcher>,
    /// Some matcher or pointer reads the frame as JSON.
    pub needs_json: bool,
}

/// One opening step.
#[derive(Debug, Clone)]
pub enum Step {
    Send(Template),
    /// Wait for a frame that matches; the text describes it for errors.
    Expect(Matcher, String),
}

/// How a frame is recognised.
#[derive(Debug, Clone)]
pub enum Matcher {
    Text(String),
    Prefix(String),
    Regex(Regex),
    /// The pointer exists (and, with a value, equals it).
    Json(String, Option<Value>),
}

/// Where a reply names its message.
#[derive(Debug, Clone)]
pub enum IdRule {
    /// The oldest message still waiting.
    Order,
    Json(String),
    Regex(Regex),
}

#[derive(Debug, Clone)]
pub struct FanoutRule {
    pub seq: IdRule,
    pub ts: IdRule,
    pub from: Option<IdRule>,
}

#[derive(Debug, Clone)]
pub struct StreamRule {
    pub part: Matcher,
    pub end: Matcher,
    pub index: Option<String>,
    pub index_from: u64,
}

impl Matcher {
    /// Does the frame match? `json` is the frame parsed, when it is JSON.
    pub fn matches(&self, text: &str, json: Option<&Value>) -> bool {
        match self {
            Matcher::Text(t) => text == t,
            Matcher::Prefix(p) => text.starts_with(p.as_str()),
            Matcher::Regex(r) => text.len() <= MAX_MATCH_LEN && r.is_match(text),
            Matcher::Json(ptr, want) => match json.and_then(|j| j.pointer(ptr)) {
                None => false,
                Some(v) => want.as_ref().is_none_or(|w| w == v),
            },
        }
    }

    fn reads_json(&self) -> bool {
        matches!(self, Matcher::Json(..))
    }
}

impl IdRule {
    /// The sequence number a frame names; `Ok(None)` for [`IdRule::Order`].
    pub fn extract(&self, text: &str, json: Option<&Value>) -> Result<Option<u64>, &'static str> {
        let raw = match self {
            IdRule::Order => return Ok(None),
            IdRule::Json(ptr) => match json.and_then(|j| j.pointer(ptr)) {
                Some(Value::Number(n)) => {
                    return n
                        .as_u64()
                        .map(Some)
                        .ok_or("an id that is not a sequence number");
                }
                Some(Value::String(s)) => s.as_str(),
                _ => return Err("a reply without its id"),
            },
            IdRule::Regex(r) => {
                if text.len() > MAX_MATCH_LEN {
                    return Err("a reply too long to search for its id");
                }
                match r.captures(text).and_then(|c| c.get(1)) {
                    Some(m) => m.as_str(),
                    None => return Err("a reply without its id"),
                }
            }
        };
        raw.parse()
            .map(Some)
            .map_err(|_| "an id that is not a sequence number")
    }
}

/// Errors located in the file: "FILE:LINE: KEY: what".
struct Locate<'a> {
    label: &'a str,
    text: &'a str,
}

impl Locate<'_> {
    fn at<T>(
        &self,
        span: std::ops::Range<usize>,
        key: &str,
        msg: impl std::fmt::Display,
    ) -> Result<T, String> {
        let line = self.text[..span.start.min(self.text.len())]
            .matches('\n')
            .count()
            + 1;
        Err(format!("{}:{line}: {key}: {msg}", self.label))
    }
}

impl Profile {
    /// The request path for a connection of session `session`.
    pub fn request_path(&self, target: &Target, session: &str) -> String {
        match &self.session_param {
            None => target.path.clone(),
            Some(name) => {
                let sep = if target.path.contains('?') { '&' } else { '?' };
                format!("{}{sep}{name}={session}", target.path)
            }
        }
    }

    /// Parse and check the profile in `text`; `label` names it in errors
    /// (its path) and is its default name.
    pub fn parse(label: &str, text: &str) -> Result<Profile, String> {
        let spec: ProfileSpec = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            let msg = e.message().trim().to_string();
            match line {
                Some(l) => format!("{label}:{l}: {msg}"),
                None => format!("{label}: {msg}"),
            }
        })?;
        let at = Locate { label, text };
        let session_param = match spec.session_param {
            Some(p)
                if p.get_ref().is_empty()
                    || !p
                        .get_ref()
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') =>
            {
                return at.at(
                    p.span(),
                    "session_param",
                    "is a query parameter name: letters, digits, '_' and '-'",
                );
            }
            Some(p) => Some(p.into_inner()),
            None => None,
        };
        let mut open = Vec::new();
        for (i, StepSpec { send, expect }) in spec.open.into_iter().enumerate() {
            let key = format!("open[{}]", i + 1);
            open.push(match (send, expect) {
                (Some(s), None) => {
                    Step::Send(template(&at, &s, &format!("{key}.send"), CONNECTION_VARS)?)
                }
                (None, Some(m)) => {
                    let describe = describe(&m);
                    Step::Expect(matcher(&at, m, &format!("{key}.expect"))?, describe)
                }
                _ => {
                    return Err(format!(
                        "{label}: {key}: a step has exactly one of `send` and `expect`"
                    ));
                }
            });
        }
        let (message, binary) = match (spec.message.text, spec.message.binary) {
            (Some(t), None) => (template(&at, &t, "message.text", &Var::ALL)?, false),
            (None, Some(b)) => (template(&at, &b, "message.binary", &Var::ALL)?, true),
            _ => {
                return Err(format!(
                    "{label}: [message] has exactly one of `text` and `binary`"
                ));
            }
        };
        let reply_when = match spec.reply.when {
            Some(m) => Some(matcher(&at, m, "reply.when")?),
            None => None,
        };
        let id = match spec.reply.id {
            None => IdRule::Order,
            Some(v) => id_rule(&at, &v)?,
        };
        let stream = match spec.stream {
            Some(s) => Some(StreamRule {
                part: matcher(&at, s.part, "stream.part")?,
                end: matcher(&at, s.end, "stream.end")?,
                index: match s.index {
                    Some(p) => Some(pointer(&at, &p, "stream.index")?),
                    None => None,
                },
                index_from: s.index_from,
            }),
            None => None,
        };
        let fanout = match spec.fanout {
            Some(f) => Some(FanoutRule {
                seq: located_rule(&at, &f.seq, "fanout.seq")?,
                ts: located_rule(&at, &f.ts, "fanout.ts")?,
                from: match &f.from {
                    Some(v) => Some(located_rule(&at, v, "fanout.from")?),
                    None => None,
                },
            }),
            None => None,
        };
        let mut answers = Vec::new();
        for (i, a) in spec.answer.into_iter().enumerate() {
            let key = format!("answer[{}]", i + 1);
            let m = matcher(&at, a.when, &format!("{key}.when"))?;
            answers.push((
                m,
                template(&at, &a.send, &format!("{key}.send"), CONNECTION_VARS)?,
            ));
        }
        let mut ignores = Vec::new();
        for (i, g) in spec.ignore.into_iter().enumerate() {
            ignores.push(matcher(&at, g.when, &format!("ignore[{}].when", i + 1))?);
        }
        let needs_json = matches!(id, IdRule::Json(_))
            || fanout.as_ref().is_some_and(|f| {
                [Some(&f.seq), Some(&f.ts), f.from.as_ref()]
                    .into_iter()
                    .flatten()
                    .any(|r| matches!(r, IdRule::Json(_)))
            })
            || reply_when.as_ref().is_some_and(Matcher::reads_json)
            || stream
                .as_ref()
                .is_some_and(|s| s.part.reads_json() || s.end.reads_json() || s.index.is_some())
            || answers.iter().any(|(m, _)| m.reads_json())
            || ignores.iter().any(Matcher::reads_json)
            || open
                .iter()
                .any(|s| matches!(s, Step::Expect(m, _) if m.reads_json()));
        let name = spec.name.unwrap_or_else(|| {
            std::path::Path::new(label)
                .file_stem()
                .map_or_else(|| label.to_string(), |s| s.to_string_lossy().into_owned())
        });
        Ok(Profile {
            name,
            subprotocol: spec.subprotocol,
            session_param,
            open,
            message,
            binary,
            reply_when,
            id,
            stream,
            fanout,
            answers,
            ignores,
            needs_json,
        })
    }
}

/// `reply.id`: "order", { json = "/ptr" } or { regex = '...' }.
fn id_rule(at: &Locate<'_>, v: &Spanned<toml::Value>) -> Result<IdRule, String> {
    match v.get_ref() {
        toml::Value::String(s) if s == "order" => Ok(IdRule::Order),
        _ => located_rule(at, v, "reply.id"),
    }
}

/// `{ json = "/ptr" }` or `{ regex = '...' }` (with a capture group): where
/// a frame carries a number.
fn located_rule(at: &Locate<'_>, v: &Spanned<toml::Value>, key: &str) -> Result<IdRule, String> {
    let bad = || {
        at.at(
            v.span(),
            key,
            "is { json = \"/ptr\" } or { regex = '^43(\\d+)' } (reply.id may also be \"order\")",
        )
    };
    let toml::Value::Table(t) = v.get_ref() else {
        return bad();
    };
    let mut entries = t.iter();
    let (Some((k, val)), None) = (entries.next(), entries.next()) else {
        return bad();
    };
    let Some(text) = val.as_str() else {
        return bad();
    };
    let spanned = Spanned::new(v.span(), text.to_string());
    match k.as_str() {
        "json" => Ok(IdRule::Json(pointer(at, &spanned, &format!("{key}.json"))?)),
        "regex" => {
            let re = regex(at, &spanned, &format!("{key}.regex"))?;
            if re.captures_len() < 2 {
                return at.at(
                    v.span(),
                    &format!("{key}.regex"),
                    "needs a capture group around the number, e.g. '^43(\\d+)'",
                );
            }
            Ok(IdRule::Regex(re))
        }
        _ => bad(),
    }
}

fn template(
    at: &Locate<'_>,
    s: &Spanned<String>,
    key: &str,
    vars: &[Var],
) -> Result<Template, String> {
    Template::parse(s.get_ref(), vars).or_else(|e| at.at(s.span(), key, e))
}

fn regex(at: &Locate<'_>, s: &Spanned<String>, key: &str) -> Result<Regex, String> {
    regex::RegexBuilder::new(s.get_ref())
        .size_limit(1 << 20)
        .build()
        .or_else(|e| at.at(s.span(), key, format!("invalid regex: {e}")))
}

fn pointer(at: &Locate<'_>, s: &Spanned<String>, key: &str) -> Result<String, String> {
    let p = s.get_ref();
    let mut escapes_ok = true;
    let mut chars = p.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            escapes_ok = false;
        }
    }
    if !p.starts_with('/') || !escapes_ok {
        return at.at(
            s.span(),
            key,
            format!("{p:?} is not a JSON pointer (it starts with '/', e.g. \"/payload/id\"; '~' only as ~0 or ~1)"),
        );
    }
    Ok(p.clone())
}

fn matcher(at: &Locate<'_>, m: Spanned<MatchSpec>, key: &str) -> Result<Matcher, String> {
    let span = m.span();
    let m = m.into_inner();
    let set = [
        m.text.is_some(),
        m.prefix.is_some(),
        m.regex.is_some(),
        m.json.is_some(),
    ]
    .iter()
    .filter(|x| **x)
    .count();
    if set != 1 {
        return at.at(
            span,
            key,
            "needs exactly one of `text`, `prefix`, `regex` and `json`",
        );
    }
    if m.equals.is_some() && m.json.is_none() {
        return at.at(span, key, "`equals` goes with `json`");
    }
    Ok(if let Some(t) = m.text {
        Matcher::Text(t.into_inner())
    } else if let Some(p) = m.prefix {
        Matcher::Prefix(p.into_inner())
    } else if let Some(r) = &m.regex {
        Matcher::Regex(regex(at, r, &format!("{key}.regex"))?)
    } else if let Some(p) = &m.json {
        let ptr = pointer(at, p, &format!("{key}.json"))?;
        let want = match m.equals {
            Some(v) => Some(serde_json::to_value(&v).or_else(|e| at.at(span, key, e))?),
            None => None,
        };
        Matcher::Json(ptr, want)
    } else {
        return at.at(span, key, "is empty");
    })
}

fn describe(m: &Spanned<MatchSpec>) -> String {
    let m = m.get_ref();
    if let Some(t) = &m.text {
        format!("text {:?}", t.get_ref())
    } else if let Some(p) = &m.prefix {
        format!("a frame starting with {:?}", p.get_ref())
    } else if let Some(r) = &m.regex {
        format!("a frame matching /{}/", r.get_ref())
    } else if let Some(j) = &m.json {
        match &m.equals {
            Some(v) => format!(
                "JSON with {} = {}",
                j.get_ref(),
                serde_json::to_string(v).unwrap_or_default()
            ),
            None => format!("JSON with {}", j.get_ref()),
        }
    } else {
        "a frame".into()
    }
}
