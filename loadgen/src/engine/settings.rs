//! What the engine needs to know to drive one process's share of a run, and
//! nothing more.
//!
//! These settings are the engine's whole view of the user's options: they
//! travel as data to `--workers` processes (and, later, remote agents), so
//! the engine can never depend on an option only the orchestrator reads.

use crate::engine::plan::Plan;
use crate::net::dial::DialSettings;
use crate::opts::{Io, Mode};
use crate::profile::builtin::{self, ChatAsk};
use crate::profile::rules::Profile;
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use std::time::Duration;

/// The engine's validated settings (built by `config::Config::from_opts`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Connections over time and the per-connection send rate.
    pub plan: Plan,
    /// What each message is and how its reply is matched. Default: echo.
    pub mode: Mode,
    /// Filler bytes per message (`--payload-size`). Default: 16.
    pub payload_size: usize,
    /// A message unanswered this long counts as timed out; also bounds each
    /// connect and the final drain. Default: 5 s.
    pub timeout: Duration,
    /// Closed loop: send only after the previous message was answered.
    /// Default: off (open model).
    pub wait_reply: bool,
    /// Reconnect dropped connections with backoff, and recover cut chat
    /// answers on the next connection. Default: off.
    pub reconnect: bool,
    /// Session id of each connection (`{n}`, `{run}`). Default: `lg_{RUN}_{N}`.
    pub session_pattern: SessionPattern,
    /// Chat: chunks per answer asked of the node (node default when unset).
    pub chat_chunks: Option<u32>,
    /// Chat: milliseconds between chunks asked of the node (node default when unset).
    pub chat_interval_ms: Option<u64>,
    /// Local addresses to connect from, round-robin per connection; empty
    /// means the kernel's choice. Default: empty.
    pub source_ips: Vec<Ipv4Addr>,
    /// Handshake headers, subprotocol, Origin and TLS trust.
    pub dial: DialSettings,
    /// `--profile`: the profile's text (checked), compiled by each process.
    /// Default: none.
    pub profile: Option<ProfileSource>,
    /// Fan-out (`--group-size N`): connections in groups of N, the first
    /// of each publishes, the others count deliveries. Default: none.
    pub group_size: Option<u64>,
    /// How established connections are driven (`--io`). Default: epoll.
    #[serde(default)]
    pub io: Io,
    /// Epoll loop threads per process (`--loops`); `None`: one per slot
    /// thread (`engine::steady::loop_count`). Default: `None`.
    #[serde(default)]
    pub loops: Option<usize>,
    /// Slot threads and loops pinned to CPUs (`--pin`). Default: off.
    #[serde(default)]
    pub pin: bool,
}

impl Settings {
    /// The run's profile: `--profile`'s text, or the built-in mode's
    /// (profiles/builtin/), compiled. Each process compiles its own.
    pub fn compile_profile(&self) -> Result<Profile, String> {
        match &self.profile {
            Some(src) => Profile::parse(&src.label, &src.text),
            None => builtin::profile(
                self.mode,
                ChatAsk {
                    chunks: self.chat_chunks,
                    interval_ms: self.chat_interval_ms,
                },
            )
            .ok_or_else(|| format!("no built-in profile for mode {:?}", self.mode)),
        }
    }
}

/// A protocol profile as read from its file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileSource {
    /// Its path, for messages and its default name.
    pub label: String,
    pub text: String,
}

/// `{n}` and `{run}` placeholders of `--session-pattern`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionPattern(String);

impl SessionPattern {
    /// A pattern as given; `config` checks it before a run uses it.
    pub fn new(pattern: impl Into<String>) -> SessionPattern {
        SessionPattern(pattern.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn render(&self, run: &str, n: u64) -> String {
        let n = n.to_string();
        self.0
            .replace("{run}", run)
            .replace("{RUN}", run)
            .replace("{n}", &n)
            .replace("{N}", &n)
    }
}

/// Which connection slots this process owns: global slot `s` belongs to
/// process `index` when `s % of == index`. A lone process is `0 of 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Share {
    pub index: u64,
    pub of: u64,
}

impl Share {
    pub const ALL: Share = Share { index: 0, of: 1 };

    /// How many of the first `n` global slots belong to this share.
    pub fn of_count(self, n: u64) -> u64 {
        (n + self.of - 1 - self.index) / self.of
    }

    /// The global number of this share's `local`-th slot.
    pub fn global(self, local: u64) -> u64 {
        local * self.of + self.index
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up() {
        for n in 0..50u64 {
            for of in 1..5u64 {
                let sum: u64 = (0..of).map(|index| Share { index, of }.of_count(n)).sum();
                assert_eq!(sum, n, "n={n} of={of}");
            }
        }
    }

    #[test]
    fn patterns_render_both_spellings() {
        let p = SessionPattern::new("t_{run}_{N}_{n}_{RUN}");
        assert_eq!(p.render("ab", 7), "t_ab_7_7_ab");
    }
}
