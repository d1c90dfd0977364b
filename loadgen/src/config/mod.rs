//! Validated, typed run configuration.
//!
//! Raw [`Opts`] become a [`Config`] before any work starts (the ripgrep
//! LowArgs -> HiArgs habit): every conflicting or impossible combination is
//! refused here with a message that names the fix, so the engine never has to
//! second-guess its inputs.

pub mod agents;
pub mod error;
pub mod ips;
pub mod target;

use crate::config::agents::{AgentsConfig, agents_config};
use crate::config::error::{ConfigError, bad};
use crate::config::ips::parse_ip_range;
use crate::config::target::{Target, parse_url};
use crate::engine::plan::{Plan, parse_stages};
use crate::engine::settings::{ProfileSource, SessionPattern, Settings};
use crate::net::dial::{DialSettings, Dialer};
use crate::opts::{FailOn, GradePhase, Io, LoadOpts, Mode};
use crate::profile::rules::Profile;
use crate::report::grades::Thresholds;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

/// Longest run accepted; bounds the per-second series.
const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);
/// Largest payload accepted: bigger frames measure the network, not the node.
const MAX_PAYLOAD: usize = 1 << 20;
/// Highest per-connection rate: beyond it the 1 ms timer granularity dominates.
pub const MAX_RATE: f64 = 1000.0;
/// File descriptors kept free for the runtime, files and the child node.
const FD_RESERVE: u64 = 64;

/// Where the load goes.
#[derive(Debug, Clone)]
pub enum Targets {
    /// No `--url`: start an embedded wsnode child with these extra options
    /// (`--node-arg`, checked against wsnode's own parser).
    Embedded { node_args: Vec<String> },
    /// `--url`, in the order given; connections go round-robin over them.
    Urls(Vec<Target>),
}

/// A validated run: everything `run` needs, typed, with the engine's part
/// (`load`) kept apart so it can travel to worker processes as data.
#[derive(Debug, Clone)]
pub struct Config {
    /// The engine's settings: plan, mode, payload, timeout, sessions.
    pub load: Settings,
    /// The embedded node or the `--url` targets.
    pub targets: Targets,
    /// Extra node processes to monitor (`--node-pid`). Default: none.
    pub node_pids: Vec<u32>,
    /// The redis-server process to monitor (`--redis-pid`). Default: none.
    pub redis_pid: Option<u32>,
    /// Redis to find and monitor through INFO (`--redis`). Default: none.
    pub redis: Option<SocketAddr>,
    /// loadgen processes sharing the connections (`--workers`), 1 to 64.
    /// Default: 1 (this process alone).
    pub workers: u32,
    /// Remote agents that measure instead of this process (`--coordinator`,
    /// `--agents`). Default: none.
    pub agents: Option<AgentsConfig>,
    /// Tokio worker threads in all, split evenly over the workers.
    /// Default: the CPU count.
    pub threads: usize,
    /// No live progress line (`--quiet`). Default: off.
    pub quiet: bool,
    /// Write the report as JSON here (`--json`). Default: none.
    pub json: Option<PathBuf>,
    /// Write the filled results template as Markdown here (`--out-md`). Default: none.
    pub out_md: Option<PathBuf>,
    /// Write the report as a self-contained HTML page here (`--html`). Default: none.
    pub html: Option<PathBuf>,
    /// Write per-second HdrHistogram interval logs here (`--hdr-log`). Default: none.
    pub hdr_log: Option<PathBuf>,
    /// Serve live Prometheus metrics here (`--metrics-listen`). Default: none.
    pub metrics_listen: Option<SocketAddr>,
    /// Keep serving them this long after the run (`--metrics-linger`), at
    /// most 10 minutes. Default: 0.
    pub metrics_linger: Duration,
    /// The lowest grade that still exits 0 (`--fail-on`). Default: acceptable.
    pub fail_on: FailOn,
    /// What the grades and the template read (`--grade-phase`). Default: steady.
    pub grade_phase: GradePhase,
    /// Fraction (0..=1) from `--min-success-rate`: fewer messages answered on
    /// time and correct exits 1. Default: none.
    pub min_success_rate: Option<f64>,
    /// The Target Metrics table to grade against (`--thresholds`). Default: the seed's.
    pub thresholds: Thresholds,
    /// The executable started for the embedded node and the workers
    /// (hidden `--exe`, for tests). Default: this one.
    pub exe: Option<PathBuf>,
}

impl Config {
    pub fn from_opts(o: &LoadOpts) -> Result<Config, ConfigError> {
        let timeout = parse_duration("--timeout", &o.timeout)?;
        if timeout < Duration::from_millis(1) || timeout > Duration::from_secs(3600) {
            return bad("--timeout must be between 1ms and 1h, e.g. --timeout 5s");
        }
        if !o.rate.is_finite() || o.rate < 0.0 || o.rate > MAX_RATE {
            return bad(format!(
                "--rate {} is out of range: use 0 (connect only) to {MAX_RATE} messages per second per connection",
                o.rate
            ));
        }
        if let Some(cr) = o.connect_rate
            && (!cr.is_finite() || cr <= 0.0)
        {
            return bad(
                "--connect-rate must be a positive number of connections per second, e.g. --connect-rate 500",
            );
        }
        let plan = match &o.stages {
            Some(s) => {
                if o.duration != "60s" {
                    return bad("--stages and --duration both set the run length: drop --duration");
                }
                Plan {
                    stages: parse_stages(s).map_err(ConfigError)?,
                    rate: o.rate,
                    connect_rate: o.connect_rate,
                }
            }
            None => {
                let d = parse_duration("--duration", &o.duration)?;
                if d.is_zero() {
                    return bad("--duration must be more than 0, e.g. --duration 30s");
                }
                Plan::constant(o.conns, d, o.rate, o.connect_rate)
            }
        };
        if plan.total() > MAX_DURATION {
            return bad("the run is longer than 24h; shorten --duration or --stages");
        }
        if plan.max_conns() == 0 {
            return bad(
                "no connections to open: use --conns 1 or more (or a stage target above 0)",
            );
        }
        if o.payload_size > MAX_PAYLOAD {
            return bad(format!(
                "--payload-size {} is above the {MAX_PAYLOAD}-byte limit",
                o.payload_size
            ));
        }
        if let Some(p) = o.min_success_rate
            && !(0.0..=100.0).contains(&p)
        {
            return bad("--min-success-rate is a percentage from 0 to 100");
        }
        if o.workers == 0 || o.workers > 64 {
            return bad("--workers must be 1 to 64");
        }
        let threads = match o.threads {
            Some(0) => return bad("--threads must be at least 1"),
            Some(t) if t > 256 => return bad("--threads must be at most 256"),
            Some(t) => t,
            None => std::thread::available_parallelism().map_or(2, |n| n.get()),
        };
        if let Some(n) = o.loops {
            if !(1..=256).contains(&n) {
                return bad("--loops must be 1 to 256");
            }
            if o.io != Io::Epoll {
                return bad("--loops sets the epoll loops: it needs --io epoll (the default)");
            }
        }
        if o.pin && o.io != Io::Epoll {
            return bad("--pin pins the epoll loops: it needs --io epoll (the default)");
        }
        let profile = match &o.profile {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| ConfigError(format!("--profile {}: {e}", p.display())))?;
                let label = p.display().to_string();
                let compiled = Profile::parse(&label, &text).map_err(ConfigError)?;
                Some((ProfileSource { label, text }, compiled))
            }
            None => None,
        };
        let mode = if profile.is_some() {
            Mode::Profile
        } else {
            o.mode
        };
        if o.mode == Mode::Raw && o.urls.is_empty() {
            return bad(
                "--mode raw needs --url of a byte-for-byte echo server (the embedded node speaks JSON; use --mode echo)",
            );
        }
        if o.mode != Mode::Chat && (o.chat_chunks.is_some() || o.chat_interval_ms.is_some()) {
            return bad("--chat-chunks/--chat-interval-ms only apply to --mode chat");
        }
        check_pattern(&o.session_pattern)?;
        let targets = if o.urls.is_empty() {
            check_node_args(&o.node_args)?;
            let mut node_args = o.node_args.clone();
            // Pinned loops on one side only would place nothing: the
            // embedded node is pinned with loadgen.
            if o.pin && !node_args.iter().any(|a| a == "--pin") {
                node_args.push("--pin".into());
            }
            Targets::Embedded { node_args }
        } else {
            if !o.node_args.is_empty() {
                return bad("--node-arg only applies to the embedded node; drop it or drop --url");
            }
            let mut v = Vec::new();
            for u in &o.urls {
                v.push(parse_url(u)?);
            }
            Targets::Urls(v)
        };
        let group_size = match o.group_size {
            None => None,
            Some(n) if !(2..=100_000).contains(&n) => {
                return bad(
                    "--group-size is 2 to 100000 connections (one publisher, the rest receive)",
                );
            }
            Some(_) if profile.as_ref().is_none_or(|(_, p)| p.fanout.is_none()) => {
                return bad(
                    "--group-size needs a --profile with a [fanout] table (where a delivery carries its seq and ts; docs/PROFILES.md)",
                );
            }
            Some(_) if o.workers > 1 => {
                return bad("--group-size keeps each group in one process: drop --workers");
            }
            Some(_) if o.reconnect => {
                return bad("--group-size does not combine with --reconnect yet");
            }
            Some(n) => Some(n),
        };
        let mut dial = dial_settings(o, &targets)?;
        if let Some((_, p)) = &profile
            && let Some(sp) = &p.subprotocol
        {
            match &dial.subprotocol {
                Some(given) if given != sp => {
                    return bad(format!(
                        "--subprotocol {given} differs from the profile's subprotocol {sp}; drop one"
                    ));
                }
                _ => dial.subprotocol = Some(sp.clone()),
            }
        }
        let redis = match &o.redis {
            Some(r) => Some(
                r.to_socket_addrs()
                    .map_err(|e| {
                        ConfigError(format!("--redis {r}: {e}; write it like 127.0.0.1:6379"))
                    })?
                    .next()
                    .ok_or_else(|| ConfigError(format!("--redis {r} resolves to nothing")))?,
            ),
            None => None,
        };
        let source_ips = match &o.source_ips {
            Some(r) => parse_ip_range(r)?,
            None => Vec::new(),
        };
        let agents_wait = parse_duration("--agents-wait", &o.agents_wait)?;
        let agents = agents_config(o, agents_wait, &source_ips)?;
        let thresholds = match &o.thresholds {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| ConfigError(format!("--thresholds {}: {e}", p.display())))?;
                Thresholds::parse(&text)
                    .map_err(|e| ConfigError(format!("--thresholds {}: {e}", p.display())))?
            }
            None => Thresholds::seed(),
        };
        let (metrics_listen, metrics_linger) = metrics_options(o)?;
        for (flag, path) in [
            ("--json", &o.json),
            ("--out-md", &o.out_md),
            ("--html", &o.html),
            ("--hdr-log", &o.hdr_log),
        ] {
            if let Some(p) = path
                && let Some(dir) = p.parent()
                && !dir.as_os_str().is_empty()
                && !dir.is_dir()
            {
                return bad(format!(
                    "{flag} {}: directory {} does not exist",
                    p.display(),
                    dir.display()
                ));
            }
        }
        Ok(Config {
            load: Settings {
                plan,
                mode,
                payload_size: o.payload_size,
                timeout,
                wait_reply: o.wait_reply,
                reconnect: o.reconnect,
                session_pattern: SessionPattern::new(o.session_pattern.clone()),
                chat_chunks: o.chat_chunks,
                chat_interval_ms: o.chat_interval_ms,
                source_ips,
                dial,
                profile: profile.map(|(src, _)| src),
                group_size,
                io: o.io,
                loops: o.loops,
                pin: o.pin,
            },
            targets,
            node_pids: o.node_pids.clone(),
            redis_pid: o.redis_pid,
            redis,
            workers: o.workers,
            agents,
            threads,
            quiet: o.quiet,
            json: o.json.clone(),
            out_md: o.out_md.clone(),
            html: o.html.clone(),
            hdr_log: o.hdr_log.clone(),
            metrics_listen,
            metrics_linger,
            fail_on: o.fail_on,
            grade_phase: o.grade_phase,
            min_success_rate: o.min_success_rate.map(|p| p / 100.0),
            thresholds,
            exe: o.exe.clone(),
        })
    }

    /// Refuse a connection count that cannot fit this process's file
    /// descriptor limit (already raised to the hard limit) or the ephemeral
    /// port range of the source addresses.
    pub fn check_capacity(&self, nofile_soft: u64, nofile_hard: u64) -> Result<(), ConfigError> {
        if self.agents.is_some() {
            // The agents open the connections, each within its own limits.
            return Ok(());
        }
        let per_process = self.load.plan.max_conns().div_ceil(u64::from(self.workers));
        if per_process + FD_RESERVE > nofile_soft {
            let need_workers = self
                .load
                .plan
                .max_conns()
                .div_ceil(nofile_hard.saturating_sub(FD_RESERVE).max(1));
            return bad(format!(
                "{} connections per loadgen process need about {} file descriptors, but RLIMIT_NOFILE is {} (hard limit {}). \
                 Fix: use --workers {} (each worker process has its own limit), or raise the hard limit (ulimit -Hn / /etc/security/limits.conf)",
                per_process,
                per_process + FD_RESERVE,
                nofile_soft,
                nofile_hard,
                need_workers.max(2),
            ));
        }
        if let Some((lo, hi)) = ephemeral_port_range() {
            let ports = u64::from(hi.saturating_sub(lo)) + 1;
            let sources = self.load.source_ips.len().max(1) as u64;
            let targets = match &self.targets {
                Targets::Urls(v) => {
                    let mut a: Vec<_> = v.iter().map(|t| t.addr).collect();
                    a.sort();
                    a.dedup();
                    a.len() as u64
                }
                Targets::Embedded { .. } => 1,
            };
            if self.load.plan.max_conns() > ports * sources * targets {
                return bad(format!(
                    "{} connections exceed the {} ephemeral ports of {} source address(es) per target (ip_local_port_range {lo}-{hi}). \
                     Fix: --source-ips 127.0.0.2-127.0.0.20 (loopback targets), or widen net.ipv4.ip_local_port_range",
                    self.load.plan.max_conns(),
                    ports,
                    sources
                ));
            }
        }
        Ok(())
    }
}

/// `--metrics-listen` resolved to one address, and `--metrics-linger`.
fn metrics_options(o: &LoadOpts) -> Result<(Option<SocketAddr>, Duration), ConfigError> {
    let linger = parse_duration("--metrics-linger", &o.metrics_linger)?;
    if linger > Duration::from_secs(600) {
        return bad("--metrics-linger is at most 10m, e.g. --metrics-linger 15s");
    }
    let Some(a) = &o.metrics_listen else {
        if !linger.is_zero() {
            return bad(
                "--metrics-linger needs --metrics-listen, e.g. --metrics-listen 127.0.0.1:9100",
            );
        }
        return Ok((None, linger));
    };
    let addr = a
        .to_socket_addrs()
        .map_err(|e| {
            ConfigError(format!(
                "--metrics-listen {a:?}: {e}; write it like 127.0.0.1:9100 (port 0: any free port)"
            ))
        })?
        .next()
        .ok_or_else(|| ConfigError(format!("--metrics-listen {a:?} resolves to nothing")))?;
    Ok((Some(addr), linger))
}

/// `--header`, `--subprotocol`, `--origin`, `--ca-cert`, `--insecure`,
/// checked (the CA file is read and parsed now, not at the first connect).
fn dial_settings(o: &LoadOpts, targets: &Targets) -> Result<DialSettings, ConfigError> {
    let mut d = DialSettings::default();
    for h in &o.headers {
        d.add_header(h).map_err(ConfigError)?;
    }
    for (flag, v) in [("--subprotocol", &o.subprotocol), ("--origin", &o.origin)] {
        if let Some(v) = v
            && (v.is_empty() || hyper::header::HeaderValue::from_str(v).is_err())
        {
            return bad(format!("{flag} {v:?} cannot be sent in a header"));
        }
    }
    d.subprotocol = o.subprotocol.clone();
    d.origin = o.origin.clone();
    if let Some(p) = &o.ca_cert {
        let pem = std::fs::read_to_string(p)
            .map_err(|e| ConfigError(format!("--ca-cert {}: {e}", p.display())))?;
        d.ca_pem = Some(pem);
    }
    d.insecure = o.insecure;
    let tls = matches!(targets, Targets::Urls(v) if v.iter().any(|t| t.tls));
    if (o.ca_cert.is_some() || o.insecure) && !tls {
        return bad("--ca-cert and --insecure only apply to wss:// targets");
    }
    Dialer::new(&d, tls).map_err(|e| match &o.ca_cert {
        Some(p) => ConfigError(e.replacen("--ca-cert", &format!("--ca-cert {}", p.display()), 1)),
        None => ConfigError(e),
    })?;
    Ok(d)
}

/// The embedded node's options are checked here too, by wsnode's own
/// parser, so a bad `--node-arg` is a bad option (exit 2), not a node that
/// fails to start.
fn check_node_args(args: &[String]) -> Result<(), ConfigError> {
    let argv = ["--listen", "127.0.0.1:0"]
        .into_iter()
        .map(String::from)
        .chain(args.iter().cloned());
    match server::embed::config_from_args(argv) {
        Ok(_) => Ok(()),
        Err(e @ server::embed::EmbedError::Options(_)) => bad(format!(
            "--node-arg: {e} (see `wsnode --help` for the node's options)"
        )),
        Err(e) => bad(format!("--node-arg: {e}")),
    }
}

fn ephemeral_port_range() -> Option<(u16, u16)> {
    let s = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut it = s.split_whitespace().filter_map(|x| x.parse().ok());
    Some((it.next()?, it.next()?))
}

pub fn parse_duration(flag: &str, s: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(s.trim())
        .map_err(|e| ConfigError(format!("{flag} {s:?}: {e}; write it like 30s, 5m or 1h30m")))
}

fn check_pattern(p: &str) -> Result<(), ConfigError> {
    if !p.contains("{n}") && !p.contains("{N}") {
        return bad(format!(
            "--session-pattern {p:?} has no {{N}}: every connection needs its own session, e.g. 'load_test_{{N}}'"
        ));
    }
    // The longest rendering: a 16-hex-digit run id and a 20-digit number.
    let sample = SessionPattern::new(p).render("ffffffffffffffff", u64::MAX);
    if !protocol::ids::is_valid_id(&sample) {
        return bad(format!(
            "--session-pattern {p:?} renders ids like {sample:?}, which are not 1-{} characters of [A-Za-z0-9_.:-]",
            protocol::ids::MAX_ID_LEN
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::opts::Opts;
    use clap::Parser;

    fn cfg(args: &[&str]) -> Result<Config, ConfigError> {
        let o =
            Opts::try_parse_from(std::iter::once("loadgen").chain(args.iter().copied())).unwrap();
        Config::from_opts(&o.load)
    }

    #[test]
    fn pin_pins_the_embedded_node_once_and_needs_the_epoll_loops() {
        let node_args = |args: &[&str]| match cfg(args).unwrap().targets {
            Targets::Embedded { node_args } => node_args,
            Targets::Urls(_) => panic!("embedded expected"),
        };
        assert_eq!(node_args(&["--pin"]), ["--pin"]);
        assert_eq!(node_args(&["--pin", "--node-arg=--pin"]), ["--pin"]);
        assert!(node_args(&[]).is_empty());
        let e = cfg(&["--pin", "--io", "tasks"]).unwrap_err().to_string();
        assert!(e.contains("--pin pins the epoll loops"), "{e}");
        let url = cfg(&["--pin", "--url", "ws://127.0.0.1:9/ws/chat"]).unwrap();
        assert!(url.load.pin && matches!(url.targets, Targets::Urls(_)));
    }

    #[test]
    fn nonsense_is_refused_with_a_fix() {
        for args in [
            &["--rate=-1"][..],
            &["--rate", "NaN"],
            &["--duration", "soon"],
            &["--duration", "0s"],
            &["--timeout", "0s"],
            &["--conns", "0"],
            &["--stages", "1m"],
            &["--stages", "1m:5", "--duration", "10s"],
            &["--session-pattern", "fixed"],
            &["--session-pattern", "bad id {N}"],
            &["--mode", "raw"],
            &["--workers", "0"],
            &["--source-ips", "10.0.0.9-10.0.0.1"],
            &["--url", "http://127.0.0.1:1/"],
            &["--connect-rate", "0"],
            &["--chat-chunks", "3"],
            &["--node-arg=--chunks=abc"],
            &["--node-arg=--no-such-option"],
            &["--metrics-listen", "127.0.0.1"],
            &["--metrics-listen", "127.0.0.1:99999"],
            &["--metrics-listen", "127.0.0.1:port"],
            &["--metrics-linger", "5s"],
            &["--metrics-listen", "127.0.0.1:0", "--metrics-linger", "1h"],
        ] {
            let e = cfg(args).expect_err(&format!("{args:?} should be refused"));
            assert!(!e.0.is_empty());
        }
    }

    #[test]
    fn capacity_is_checked() {
        let c = cfg(&["--conns", "25000"]).unwrap();
        let e = c.check_capacity(20_000, 20_000).unwrap_err();
        assert!(e.0.contains("--workers"), "{e}");
        let c = cfg(&["--conns", "25000", "--workers", "2"]).unwrap();
        assert!(c.check_capacity(20_000, 20_000).is_ok());
    }

    #[test]
    fn ip_ranges() {
        assert_eq!(parse_ip_range("127.0.0.2-127.0.0.20").unwrap().len(), 19);
        assert_eq!(parse_ip_range("127.0.0.5").unwrap().len(), 1);
    }
}
