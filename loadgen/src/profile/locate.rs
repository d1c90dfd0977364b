//! Compiling the pieces of a profile (templates, regexes, JSON pointers,
//! matchers, id rules), each error located at its file, line and key so a
//! user can fix the profile without guessing.

use crate::placeholders::{Template, Var};
use crate::profile::matchers::{IdRule, Matcher};
use crate::profile::spec::MatchSpec;
use regex::Regex;
use toml::Spanned;

/// Errors located in the file: "FILE:LINE: KEY: what".
pub struct Locate<'a> {
    pub label: &'a str,
    pub text: &'a str,
}

impl Locate<'_> {
    pub fn at<T>(
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

    /// An error about a whole table, without a line.
    pub fn whole<T>(&self, key: &str, msg: impl std::fmt::Display) -> Result<T, String> {
        Err(format!("{}: {key}: {msg}", self.label))
    }
}

/// `reply.id`: "order", `{ json = "/ptr" }` (optionally with `prefix`) or
/// `{ regex = '...' }`.
pub fn id_rule(
    at: &Locate<'_>,
    v: &Spanned<toml::Value>,
) -> Result<(IdRule, Option<Template>), String> {
    if let toml::Value::String(s) = v.get_ref()
        && s == "order"
    {
        return Ok((IdRule::Order, None));
    }
    if let toml::Value::Table(t) = v.get_ref()
        && t.len() == 2
        && t.contains_key("json")
        && let Some(p) = t.get("prefix")
    {
        let Some(p) = p.as_str() else {
            return at.at(
                v.span(),
                "reply.id.prefix",
                "is text, e.g. \"{run}-{conn}-\"",
            );
        };
        let prefix = Template::parse(p, crate::placeholders::CONNECTION_VARS)
            .or_else(|e| at.at(v.span(), "reply.id.prefix", e))?;
        let mut only = t.clone();
        only.remove("prefix");
        let plain = Spanned::new(v.span(), toml::Value::Table(only));
        return match located_rule(at, &plain, "reply.id")? {
            IdRule::Json { ptr, .. } => Ok((
                IdRule::Json {
                    ptr,
                    prefixed: true,
                },
                Some(prefix),
            )),
            _ => at.at(v.span(), "reply.id", "`prefix` goes with `json`"),
        };
    }
    Ok((located_rule(at, v, "reply.id")?, None))
}

/// `{ json = "/ptr" }` or `{ regex = '...' }` (with a capture group): where
/// a frame carries a number.
pub fn located_rule(
    at: &Locate<'_>,
    v: &Spanned<toml::Value>,
    key: &str,
) -> Result<IdRule, String> {
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
        "json" => Ok(IdRule::Json {
            ptr: pointer(at, &spanned, &format!("{key}.json"))?,
            prefixed: false,
        }),
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

pub fn template(
    at: &Locate<'_>,
    s: &Spanned<String>,
    key: &str,
    vars: &[Var],
) -> Result<Template, String> {
    Template::parse(s.get_ref(), vars).or_else(|e| at.at(s.span(), key, e))
}

pub fn regex(at: &Locate<'_>, s: &Spanned<String>, key: &str) -> Result<Regex, String> {
    regex::RegexBuilder::new(s.get_ref())
        .size_limit(1 << 20)
        .build()
        .or_else(|e| at.at(s.span(), key, format!("invalid regex: {e}")))
}

pub fn pointer(at: &Locate<'_>, s: &Spanned<String>, key: &str) -> Result<String, String> {
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

/// An optional pointer.
pub fn opt_pointer(
    at: &Locate<'_>,
    s: Option<&Spanned<String>>,
    key: &str,
) -> Result<Option<String>, String> {
    s.map(|p| pointer(at, p, key)).transpose()
}

pub fn matcher(at: &Locate<'_>, m: Spanned<MatchSpec>, key: &str) -> Result<Matcher, String> {
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

/// An optional matcher.
pub fn opt_matcher(
    at: &Locate<'_>,
    m: Option<Spanned<MatchSpec>>,
    key: &str,
) -> Result<Option<Matcher>, String> {
    m.map(|m| matcher(at, m, key)).transpose()
}

/// A matcher in words, for error messages.
pub fn describe(m: &Spanned<MatchSpec>) -> String {
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
