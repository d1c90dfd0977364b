//! The run context every connection slot of one process shares: settings,
//! targets, clocks, stats, the notes kept for the report, and the switches
//! the controller flips (how many slots should be open, abort).
//!
//! Slots decide nothing but their own sends; everything they may wait for
//! is bounded by the plan's end plus `--timeout`, so a silent server cannot
//! make a run hang.

use crate::config::target::Target;
use crate::engine::closing::Closing;
use crate::engine::fanout::Group;
use crate::engine::plan;
use crate::engine::settings::{Settings, Share};
use crate::engine::stats::{ErrorKind, Stats};
use crate::net::dial::Dialer;
use crate::placeholders::Values;
use crate::profile::rules::Profile;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Distinct error messages kept for the report.
pub const MAX_NOTES: usize = 8;

/// Everything a connection slot needs, shared by all slots of a run.
pub struct RunCtx {
    pub cfg: Arc<Settings>,
    pub targets: Vec<Target>,
    pub stats: Stats,
    /// Run start; all microsecond timestamps are relative to it.
    pub t0: Instant,
    /// No message is sent at or after this instant.
    pub send_end: Instant,
    /// `send_end + --timeout`: nothing waits past this (plus a close).
    pub hard_end: Instant,
    /// Time between two messages of one connection; `None` at rate 0.
    pub interval: Option<Duration>,
    /// Payload filler, `--payload-size` bytes of 'x'.
    pub filler: String,
    /// Random id of this run (session ids, chat message ids).
    pub run_id: String,
    /// Bound on a connection's outstanding messages.
    pub pending_cap: usize,
    /// Connects in progress at once.
    pub connecting: tokio::sync::Semaphore,
    /// At the end of sending, drained sessions close together (`closing`).
    pub closing: Closing,
    /// This process's share of the run's slots.
    pub share: Share,
    /// Handshake options and TLS, built once.
    pub dialer: Dialer,
    /// The run's profile: `--profile`, or the built-in mode's, compiled
    /// (checked already when the options were).
    pub profile: Arc<Profile>,
    /// Fan-out: each group's shared books (empty without fan-out).
    groups: Box<[Group]>,
    /// Slots this process should have open now (its own numbering).
    target_local: AtomicU64,
    aborted: AtomicBool,
    /// Per local slot: its task is still running (set by the controller,
    /// cleared by the slot), so a ramp-down and ramp-up never run one slot twice.
    alive: Box<[AtomicBool]>,
    /// Per local slot: the session token from the last welcome, to re-attach.
    tokens: Box<[Mutex<Option<Box<str>>>]>,
    notes: Mutex<Vec<(String, u64)>>,
    notes_full: AtomicBool,
}

impl RunCtx {
    pub fn new(
        cfg: Arc<Settings>,
        targets: Vec<Target>,
        run_id: String,
        share: Share,
        dialer: Dialer,
    ) -> Result<RunCtx, String> {
        let profile = cfg.compile_profile()?;
        let now = Instant::now();
        let total = cfg.plan.total();
        let max_local = share.of_count(cfg.plan.max_conns()) as usize;
        let interval = cfg.plan.interval();
        let pending_cap =
            ((cfg.plan.rate * cfg.timeout.as_secs_f64() * 2.0).ceil() as usize).clamp(16, 100_000);
        // Connects in progress at once: enough to open thousands of
        // connections per second, few enough that the target's accept queue
        // (often 128-1024) does not overflow into 1 s SYN retransmits.
        let backlog = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .unwrap_or(128)
            .clamp(16, 128);
        Ok(RunCtx {
            filler: "x".repeat(cfg.payload_size),
            targets,
            stats: Stats::default(),
            t0: now,
            send_end: now + total,
            hard_end: now + total + cfg.timeout,
            interval,
            run_id,
            pending_cap,
            connecting: tokio::sync::Semaphore::new(backlog),
            closing: Closing::default(),
            share,
            dialer,
            groups: match cfg.group_size {
                Some(n) if n > 0 => (0..cfg.plan.max_conns().div_ceil(n))
                    .map(|_| Group::default())
                    .collect(),
                _ => Box::new([]),
            },
            profile: Arc::new(profile),
            target_local: AtomicU64::new(0),
            aborted: AtomicBool::new(false),
            alive: (0..max_local).map(|_| AtomicBool::new(false)).collect(),
            tokens: (0..max_local).map(|_| Mutex::new(None)).collect(),
            notes: Mutex::new(Vec::new()),
            notes_full: AtomicBool::new(false),
            cfg,
        })
    }

    pub fn global_slot(&self, local: u64) -> u64 {
        self.share.global(local)
    }

    /// The placeholder values of slot `global`'s connection (`{conn}`,
    /// `{session}`, `{run}`, `{group}`); per-message ones are left at zero.
    pub fn conn_values<'a>(&'a self, global: u64, session: &'a str) -> Values<'a> {
        Values {
            conn: global + 1,
            session,
            run: &self.run_id,
            group: self.group_number(global),
            ..Values::default()
        }
    }

    /// Fan-out: the group of slot `global`, from 1 (0 without fan-out).
    pub fn group_number(&self, global: u64) -> u64 {
        self.cfg.group_size.map_or(0, |n| global / n + 1)
    }

    /// Fan-out: slot `global` only receives (it is not its group's first).
    pub fn is_subscriber(&self, global: u64) -> bool {
        self.cfg.group_size.is_some_and(|n| global % n != 0)
    }

    /// Fan-out: the connection number (`{conn}`) of `global`'s publisher.
    pub fn publisher_conn(&self, global: u64) -> u64 {
        self.cfg.group_size.map_or(global, |n| global / n * n) + 1
    }

    /// Fan-out: the shared books of `global`'s group.
    pub fn group(&self, global: u64) -> Option<&Group> {
        let n = self.cfg.group_size?;
        self.groups.get((global / n) as usize)
    }

    pub fn session_id(&self, global: u64) -> String {
        self.cfg.session_pattern.render(&self.run_id, global + 1)
    }

    /// Request path with the session (and its token, once known).
    pub fn path_for(&self, target: &Target, session: &str, local: u64) -> String {
        let token = self.tokens.get(local as usize).and_then(|m| {
            m.lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_deref()
                .map(str::to_owned)
        });
        self.profile.request_path(target, session, token.as_deref())
    }

    pub fn set_token(&self, local: u64, token: &str) {
        // Only tokens that need no URL escaping are kept (the protocol's id alphabet).
        if protocol::ids::is_valid_id(token)
            && let Some(m) = self.tokens.get(local as usize)
        {
            *m.lock().unwrap_or_else(|e| e.into_inner()) = Some(token.into());
        }
    }

    pub fn phase(&self, global: u64) -> Duration {
        self.interval
            .map_or(Duration::ZERO, |iv| plan::phase(global, iv))
    }

    /// The controller's wish: this many local slots open now.
    pub fn set_wanted(&self, local_slots: u64) {
        self.target_local.store(local_slots, Ordering::Relaxed);
    }

    /// Claim local slot `local` for a new task; false while its previous
    /// task still drains (or past the slots this process can ever own).
    pub fn claim_slot(&self, local: u64) -> bool {
        match self.alive.get(local as usize) {
            Some(a) if !a.load(Ordering::Acquire) => {
                a.store(true, Ordering::Release);
                true
            }
            _ => false,
        }
    }

    pub fn slot_stopped(&self, local: u64) -> bool {
        self.aborted.load(Ordering::Relaxed) || local >= self.target_local.load(Ordering::Relaxed)
    }

    pub fn slot_done(&self, local: u64) {
        if let Some(a) = self.alive.get(local as usize) {
            a.store(false, Ordering::Release);
        }
    }

    pub fn is_aborted(&self) -> bool {
        self.aborted.load(Ordering::Relaxed)
    }

    /// Stop everything now (Ctrl-C, or slots that outlive the run).
    pub fn abort(&self) {
        self.aborted.store(true, Ordering::Relaxed);
    }

    /// Deadline for one connect or welcome: --timeout from now, but never
    /// past the run's hard end, so no slot outlives duration + timeout.
    pub fn wait_limit(&self) -> tokio::time::Instant {
        (Instant::now() + self.cfg.timeout)
            .min(self.hard_end)
            .into()
    }

    /// Run-relative microseconds.
    pub fn us(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.t0).as_micros() as u64
    }

    pub fn at(&self, us: u64) -> Instant {
        self.t0 + Duration::from_micros(us)
    }

    /// `--timeout` in microseconds.
    /// How long a session that stops sending at `now` waits for its
    /// outstanding replies: not at all after Ctrl-C, --timeout after a stop
    /// (a ramp-down), else until the run's hard end, at most --timeout.
    pub fn drain_deadline(&self, now: Instant, stopped: bool) -> Instant {
        if self.is_aborted() {
            now
        } else if stopped {
            now + self.cfg.timeout
        } else {
            self.hard_end.max(now).min(now + self.cfg.timeout)
        }
    }

    pub fn timeout_us(&self) -> u64 {
        self.cfg.timeout.as_micros() as u64
    }

    /// Count an error of `kind` and keep its message for the report.
    pub fn fail(&self, kind: ErrorKind, note: &str) {
        self.note_error(note);
        self.stats.count(|c| c.error(kind));
    }

    /// Keep the first few distinct error messages, with counts, for the report.
    pub fn note_error(&self, msg: &str) {
        if self.notes_full.load(Ordering::Relaxed) {
            return;
        }
        let mut notes = self.notes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = notes.iter_mut().find(|(m, _)| m == msg) {
            n.1 += 1;
        } else if notes.len() < MAX_NOTES {
            notes.push((msg.to_string(), 1));
        } else {
            self.notes_full.store(true, Ordering::Relaxed);
        }
    }

    pub fn notes(&self) -> Vec<(String, u64)> {
        self.notes.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Add `more` notes into `into`, keeping at most [`MAX_NOTES`] distinct ones.
pub fn merge_notes(into: &mut Vec<(String, u64)>, more: &[(String, u64)]) {
    for (m, n) in more {
        if let Some(e) = into.iter_mut().find(|(x, _)| x == m) {
            e.1 += n;
        } else if into.len() < MAX_NOTES {
            into.push((m.clone(), *n));
        }
    }
}
