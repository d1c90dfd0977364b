//! Validated, typed run configuration.
//!
//! Raw [`Opts`] become a [`Config`] before any work starts (the ripgrep
//! LowArgs -> HiArgs habit): every conflicting or impossible combination is
//! refused here with a message that names the fix, so the engine never has to
//! second-guess its inputs.

use crate::opts::{FailOn, LoadOpts, Mode};
use crate::plan::{Plan, parse_stages};
use crate::report::grades::Thresholds;
use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

/// Longest run accepted; bounds the per-second series.
const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);
/// Largest payload accepted: bigger frames measure the network, not the node.
const MAX_PAYLOAD: usize = 1 << 20;
/// Highest per-connection rate: beyond it the 1 ms timer granularity dominates.
const MAX_RATE: f64 = 1000.0;
/// File descriptors kept free for the runtime, files and the child node.
const FD_RESERVE: u64 = 64;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn bad<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(msg.into()))
}

/// One `ws://host:port/path?query` target.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub url: String,
    /// `host:port` as given, for the Host header.
    pub authority: String,
    /// Path and query without the session parameters.
    pub path: String,
    pub addr: SocketAddr,
}

#[derive(Debug, Clone)]
pub enum Targets {
    /// Start an embedded wsnode child with these extra options.
    Embedded {
        node_args: Vec<String>,
    },
    Urls(Vec<Target>),
}

/// `{n}` and `{run}` placeholders of `--session-pattern`.
#[derive(Debug, Clone)]
pub struct SessionPattern(String);

impl SessionPattern {
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

#[derive(Debug, Clone)]
pub struct Config {
    pub targets: Targets,
    pub plan: Plan,
    pub mode: Mode,
    pub payload_size: usize,
    pub timeout: Duration,
    pub wait_reply: bool,
    pub reconnect: bool,
    pub session_pattern: SessionPattern,
    pub chat_chunks: Option<u32>,
    pub chat_interval_ms: Option<u64>,
    pub node_pids: Vec<u32>,
    pub redis_pid: Option<u32>,
    pub redis: Option<SocketAddr>,
    pub workers: u32,
    pub threads: usize,
    pub source_ips: Vec<Ipv4Addr>,
    pub quiet: bool,
    pub json: Option<PathBuf>,
    pub out_md: Option<PathBuf>,
    pub hdr_log: Option<PathBuf>,
    pub fail_on: FailOn,
    /// Fraction (0..=1) from --min-success-rate.
    pub min_success_rate: Option<f64>,
    pub thresholds: Thresholds,
    pub exe: Option<PathBuf>,
    /// `(index, count)` when this process is one of `--workers`.
    pub worker_slot: Option<(u32, u32)>,
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
            Targets::Embedded {
                node_args: o.node_args.clone(),
            }
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
        let worker_slot = match &o.worker_slot {
            Some(s) => Some(parse_worker_slot(s)?),
            None => None,
        };
        let thresholds = match &o.thresholds {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| ConfigError(format!("--thresholds {}: {e}", p.display())))?;
                Thresholds::parse(&text)
                    .map_err(|e| ConfigError(format!("--thresholds {}: {e}", p.display())))?
            }
            None => Thresholds::seed(),
        };
        for (flag, path) in [
            ("--json", &o.json),
            ("--out-md", &o.out_md),
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
            targets,
            plan,
            mode: o.mode,
            payload_size: o.payload_size,
            timeout,
            wait_reply: o.wait_reply,
            reconnect: o.reconnect,
            session_pattern: SessionPattern(o.session_pattern.clone()),
            chat_chunks: o.chat_chunks,
            chat_interval_ms: o.chat_interval_ms,
            node_pids: o.node_pids.clone(),
            redis_pid: o.redis_pid,
            redis,
            workers: o.workers,
            threads,
            source_ips,
            quiet: o.quiet,
            json: o.json.clone(),
            out_md: o.out_md.clone(),
            hdr_log: o.hdr_log.clone(),
            fail_on: o.fail_on,
            min_success_rate: o.min_success_rate.map(|p| p / 100.0),
            thresholds,
            exe: o.exe.clone(),
            worker_slot,
        })
    }

    /// Refuse a connection count that cannot fit this process's file
    /// descriptor limit (already raised to the hard limit) or the ephemeral
    /// port range of the source addresses.
    pub fn check_capacity(&self, nofile_soft: u64, nofile_hard: u64) -> Result<(), ConfigError> {
        let per_process = self.plan.max_conns().div_ceil(u64::from(self.workers));
        if per_process + FD_RESERVE > nofile_soft {
            let need_workers = self
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
            let sources = self.source_ips.len().max(1) as u64;
            let targets = match &self.targets {
                Targets::Urls(v) => {
                    let mut a: Vec<_> = v.iter().map(|t| t.addr).collect();
                    a.sort();
                    a.dedup();
                    a.len() as u64
                }
                Targets::Embedded { .. } => 1,
            };
            if self.plan.max_conns() > ports * sources * targets {
                return bad(format!(
                    "{} connections exceed the {} ephemeral ports of {} source address(es) per target (ip_local_port_range {lo}-{hi}). \
                     Fix: --source-ips 127.0.0.2-127.0.0.20 (loopback targets), or widen net.ipv4.ip_local_port_range",
                    self.plan.max_conns(),
                    ports,
                    sources
                ));
            }
        }
        Ok(())
    }
}

/// The embedded node's options are checked here too, so a bad
/// `--node-arg` is a bad option (exit 2), not a node that fails to start.
fn check_node_args(args: &[String]) -> Result<(), ConfigError> {
    let argv = ["wsnode", "--listen", "127.0.0.1:0"]
        .into_iter()
        .map(String::from)
        .chain(args.iter().cloned());
    let opts = <server::Opts as clap::Parser>::try_parse_from(argv).map_err(|e| {
        let msg = e.to_string();
        let first = msg
            .lines()
            .next()
            .unwrap_or("invalid option")
            .trim_start_matches("error: ");
        ConfigError(format!(
            "--node-arg: {first} (see `wsnode --help` for the node's options)"
        ))
    })?;
    opts.into_config()
        .map(|_| ())
        .map_err(|e| ConfigError(format!("--node-arg: {e}")))
}

fn ephemeral_port_range() -> Option<(u16, u16)> {
    let s = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut it = s.split_whitespace().filter_map(|x| x.parse().ok());
    Some((it.next()?, it.next()?))
}

fn parse_duration(flag: &str, s: &str) -> Result<Duration, ConfigError> {
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
    let sample = SessionPattern(p.to_string()).render("ffffffffffffffff", u64::MAX);
    if !protocol::ids::is_valid_id(&sample) {
        return bad(format!(
            "--session-pattern {p:?} renders ids like {sample:?}, which are not 1-{} characters of [A-Za-z0-9_.:-]",
            protocol::ids::MAX_ID_LEN
        ));
    }
    Ok(())
}

/// Parse `ws://host[:port][/path][?query]`.
pub fn parse_url(u: &str) -> Result<Target, ConfigError> {
    let rest = if let Some(r) = u.strip_prefix("ws://") {
        r
    } else if u.starts_with("wss://") {
        return bad(format!(
            "--url {u}: wss:// (TLS) is not supported; load the node directly with ws:// (TLS terminates at the balancer)"
        ));
    } else {
        return bad(format!(
            "--url {u:?} is not a ws:// URL, e.g. --url ws://127.0.0.1:8080/ws/chat"
        ));
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_string()
    };
    if authority.is_empty() || authority.contains('@') {
        return bad(format!("--url {u}: missing or unsupported host"));
    }
    if path.contains('#') || path.bytes().any(|b| b <= b' ' || b >= 0x7f) {
        return bad(format!(
            "--url {u}: the path must be plain ASCII without spaces or '#'"
        ));
    }
    let with_port = if authority.starts_with('[') {
        if authority.contains("]:") {
            authority.to_string()
        } else {
            format!("{authority}:80")
        }
    } else if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let addr = with_port
        .to_socket_addrs()
        .map_err(|e| ConfigError(format!("--url {u}: cannot resolve {with_port}: {e}")))?
        .next()
        .ok_or_else(|| ConfigError(format!("--url {u}: {with_port} resolves to nothing")))?;
    Ok(Target {
        url: u.to_string(),
        authority: authority.to_string(),
        path,
        addr,
    })
}

/// `127.0.0.2-127.0.0.20` or a single address; at most 65536 addresses.
pub fn parse_ip_range(s: &str) -> Result<Vec<Ipv4Addr>, ConfigError> {
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let parse = |x: &str| {
        x.trim().parse::<Ipv4Addr>().map_err(|_| {
            ConfigError(format!(
                "--source-ips {s:?}: {x:?} is not an IPv4 address; e.g. 127.0.0.2-127.0.0.20"
            ))
        })
    };
    let (lo, hi) = (u32::from(parse(a)?), u32::from(parse(b)?));
    if hi < lo || hi - lo >= 65536 {
        return bad(format!(
            "--source-ips {s:?}: the range must go up and hold at most 65536 addresses"
        ));
    }
    Ok((lo..=hi).map(Ipv4Addr::from).collect())
}

fn parse_worker_slot(s: &str) -> Result<(u32, u32), ConfigError> {
    let (i, w) = s
        .split_once('/')
        .ok_or_else(|| ConfigError(format!("--worker-slot {s:?} is not I/W")))?;
    let i: u32 = i
        .parse()
        .map_err(|_| ConfigError("--worker-slot: bad index".into()))?;
    let w: u32 = w
        .parse()
        .map_err(|_| ConfigError("--worker-slot: bad count".into()))?;
    if w == 0 || i >= w {
        return bad("--worker-slot: index must be below the count");
    }
    Ok((i, w))
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
    fn urls_parse() {
        let t = parse_url("ws://127.0.0.1:9000/ws/chat?x=1").unwrap();
        assert_eq!(t.authority, "127.0.0.1:9000");
        assert_eq!(t.path, "/ws/chat?x=1");
        assert_eq!(t.addr.port(), 9000);
        assert_eq!(parse_url("ws://127.0.0.1").unwrap().path, "/");
        assert!(parse_url("http://x").is_err());
        assert!(parse_url("wss://127.0.0.1/").is_err());
        assert!(parse_url("ws:///x").is_err());
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
