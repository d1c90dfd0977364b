//! A checked, compiled protocol profile: templates parsed, regexes
//! compiled, JSON pointers checked, and every error located at its file,
//! line and key (`profile::locate`).

use crate::config::target::Target;
use crate::placeholders::{CONNECTION_VARS, MESSAGE_VARS, RESUME_VARS, Template, Values};
use crate::profile::checks::Check;
use crate::profile::locate::{
    Locate, describe, id_rule, located_rule, matcher, opt_matcher, opt_pointer, template,
};
use crate::profile::matchers::{IdRule, Matcher};
use crate::profile::spec::{FailSpec, ProfileSpec, ResumeSpec, StepSpec};
use toml::Spanned;

/// A compiled profile.
#[derive(Debug, Clone)]
pub struct Profile {
    pub name: String,
    pub subprotocol: Option<String>,
    /// The URL query parameter that carries the session id, if any.
    pub session_param: Option<String>,
    /// Where the opening frame carries a session token, and the URL query
    /// parameter that presents it again on reconnect.
    pub token: Option<(String, String)>,
    pub open: Vec<Step>,
    pub message: Template,
    /// The paced message goes as a binary frame.
    pub binary: bool,
    pub reply_when: Option<Matcher>,
    pub id: IdRule,
    /// The per-connection text a prefixed JSON id starts with.
    pub id_prefix: Option<Template>,
    /// A built-in check of each reply's contents.
    pub check: Option<Check>,
    /// A frame saying the server accepted a message.
    pub ack: Option<Matcher>,
    pub stream: Option<StreamRule>,
    /// Fan-out: where deliveries carry the publisher's seq, ts and conn.
    pub fanout: Option<FanoutRule>,
    pub answers: Vec<(Matcher, Template)>,
    pub ignores: Vec<Matcher>,
    pub fails: Vec<FailRule>,
    pub resume: Option<ResumeRule>,
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
    /// Pointer to the end frame's count of parts.
    pub count: Option<String>,
    /// Check each part's text against wsnode's generator.
    pub check_text: bool,
}

/// A frame that ends a message's answer as failed.
#[derive(Debug, Clone)]
pub struct FailRule {
    pub when: Matcher,
    pub code: Option<String>,
    pub name: String,
}

/// How to resume answers cut off by a drop.
#[derive(Debug, Clone)]
pub struct ResumeRule {
    pub send: Template,
    pub ack: Matcher,
    pub from: Option<String>,
    pub held: Option<String>,
    pub not_found: Option<Matcher>,
}

impl Profile {
    /// The request path for a connection of session `session`, with the
    /// session token it was given before, if any.
    pub fn request_path(&self, target: &Target, session: &str, token: Option<&str>) -> String {
        let mut path = target.path.clone();
        let mut add = |name: &str, value: &str| {
            path.push(if path.contains('?') { '&' } else { '?' });
            path.push_str(name);
            path.push('=');
            path.push_str(value);
        };
        if let Some(name) = &self.session_param {
            add(name, session);
        }
        if let (Some((_, param)), Some(t)) = (&self.token, token) {
            add(param, t);
        }
        path
    }

    /// The id prefix of a connection (empty without one).
    pub fn id_prefix(&self, vars: &Values<'_>) -> String {
        self.id_prefix
            .as_ref()
            .map_or_else(String::new, |t| t.render(vars))
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
            Some(p) => Some(param_name(&at, p, "session_param")?),
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
                    return at.whole(&key, "a step has exactly one of `send` and `expect`");
                }
            });
        }
        let (message, binary) = match (spec.message.text, spec.message.binary) {
            (Some(t), None) => (template(&at, &t, "message.text", MESSAGE_VARS)?, false),
            (None, Some(b)) => (template(&at, &b, "message.binary", MESSAGE_VARS)?, true),
            _ => {
                return Err(format!(
                    "{label}: [message] has exactly one of `text` and `binary`"
                ));
            }
        };
        let reply_when = opt_matcher(&at, spec.reply.when, "reply.when")?;
        let (id, id_prefix) = match &spec.reply.id {
            None => (IdRule::Order, None),
            Some(v) => id_rule(&at, v)?,
        };
        let check = match &spec.reply.check {
            None => None,
            Some(c) => match Check::from_name(c.get_ref()) {
                Some(c) => Some(c),
                None => return at.at(c.span(), "reply.check", format!("is {}", Check::NAMES)),
            },
        };
        let ack = opt_matcher(&at, spec.reply.ack, "reply.ack")?;
        let stream = match spec.stream {
            Some(s) => Some(StreamRule {
                part: matcher(&at, s.part, "stream.part")?,
                end: matcher(&at, s.end, "stream.end")?,
                index: opt_pointer(&at, s.index.as_ref(), "stream.index")?,
                index_from: s.index_from,
                count: opt_pointer(&at, s.count.as_ref(), "stream.count")?,
                check_text: match &s.check {
                    None => false,
                    Some(c) if c.get_ref() == "wsnode-chunk-text" => true,
                    Some(c) => return at.at(c.span(), "stream.check", "is \"wsnode-chunk-text\""),
                },
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
        let mut fails = Vec::new();
        for (i, f) in spec.fail.into_iter().enumerate() {
            fails.push(fail_rule(&at, f, &format!("fail[{}]", i + 1))?);
        }
        let resume = match spec.resume {
            Some(r) => Some(resume_rule(&at, r)?),
            None => None,
        };
        let token = match spec.token {
            None => None,
            Some(_) if !open.iter().any(|s| matches!(s, Step::Expect(..))) => {
                return at.whole(
                    "token",
                    "is read from the frame an [[open]] step waits for; add an `expect` step",
                );
            }
            Some(ptr) => Some((
                crate::profile::locate::pointer(&at, &ptr, "token")?,
                match spec.token_param {
                    Some(p) => param_name(&at, p, "token_param")?,
                    None => "token".into(),
                },
            )),
        };
        let needs_json = id.reads_json()
            || fanout.as_ref().is_some_and(|f| {
                [Some(&f.seq), Some(&f.ts), f.from.as_ref()]
                    .into_iter()
                    .flatten()
                    .any(IdRule::reads_json)
            })
            || reply_when.as_ref().is_some_and(Matcher::reads_json)
            || ack.as_ref().is_some_and(Matcher::reads_json)
            || check == Some(Check::EchoMarker)
            || stream.as_ref().is_some_and(|s| {
                s.part.reads_json()
                    || s.end.reads_json()
                    || s.index.is_some()
                    || s.count.is_some()
                    || s.check_text
            })
            || answers.iter().any(|(m, _)| m.reads_json())
            || ignores.iter().any(Matcher::reads_json)
            || fails
                .iter()
                .any(|f| f.when.reads_json() || f.code.is_some())
            || resume.as_ref().is_some_and(resume_reads_json)
            || token.is_some()
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
            token,
            open,
            message,
            binary,
            reply_when,
            id,
            id_prefix,
            check,
            ack,
            stream,
            fanout,
            answers,
            ignores,
            fails,
            resume,
            needs_json,
        })
    }
}

fn resume_reads_json(r: &ResumeRule) -> bool {
    r.ack.reads_json()
        || r.from.is_some()
        || r.held.is_some()
        || r.not_found.as_ref().is_some_and(Matcher::reads_json)
}

fn param_name(at: &Locate<'_>, p: Spanned<String>, key: &str) -> Result<String, String> {
    let ok = !p.get_ref().is_empty()
        && p.get_ref()
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !ok {
        return at.at(
            p.span(),
            key,
            "is a query parameter name: letters, digits, '_' and '-'",
        );
    }
    Ok(p.into_inner())
}

fn fail_rule(at: &Locate<'_>, f: FailSpec, key: &str) -> Result<FailRule, String> {
    Ok(FailRule {
        when: matcher(at, f.when, &format!("{key}.when"))?,
        code: opt_pointer(at, f.code.as_ref(), &format!("{key}.code"))?,
        name: f.name.unwrap_or_else(|| "failed".into()),
    })
}

fn resume_rule(at: &Locate<'_>, r: ResumeSpec) -> Result<ResumeRule, String> {
    Ok(ResumeRule {
        send: template(at, &r.send, "resume.send", RESUME_VARS)?,
        ack: matcher(at, r.ack, "resume.ack")?,
        from: opt_pointer(at, r.from.as_ref(), "resume.from")?,
        held: opt_pointer(at, r.held.as_ref(), "resume.held")?,
        not_found: opt_matcher(at, r.not_found, "resume.not_found")?,
    })
}
