//! Command-line options and the validated configuration built from them.
//!
//! `Opts` is what clap parses (every option also reads a `WSNODE_*`
//! environment variable, for containers); `Config` is the typed, checked form
//! the rest of the node uses. Nonsense combinations fail here, before a socket
//! is bound, with a message that names the fix.

use crate::fault::TestFault;
use clap::Parser;
use std::net::SocketAddr;
use std::time::Duration;

/// While waiting between chunks, a stream's generator renews its lease this
/// often; `--lease-ttl` is checked against it here.
pub const RENEW_EVERY: Duration = Duration::from_secs(1);

/// wsnode: a lean WebSocket node that streams simulated AI chat answers.
///
/// Durations are written like `500ms`, `15s`, `1m`; sizes like `65536`, `64KiB`, `1MiB`.
#[derive(Debug, Clone, Parser)]
#[command(name = "wsnode", version, about, long_about = None)]
pub struct Opts {
    /// Address to listen on, e.g. `127.0.0.1:8081` (`:0` picks a free port).
    #[arg(long, env = "WSNODE_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,

    /// This node's name in frames, logs and health output [default: <hostname>-<port>].
    #[arg(long, env = "WSNODE_NODE_ID")]
    pub node_id: Option<String>,

    /// How often the node pings each client.
    #[arg(long, env = "WSNODE_PING_INTERVAL", default_value = "15s", value_parser = parse_duration)]
    pub ping_interval: Duration,

    /// Close a connection that sent nothing (not even a pong) for this long.
    #[arg(long, env = "WSNODE_IDLE_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// How often the cleanup job removes stale sessions and expired streams.
    #[arg(long, env = "WSNODE_CLEANUP_INTERVAL", default_value = "60s", value_parser = parse_duration)]
    pub cleanup_interval: Duration,

    /// Keep a session with no connection this long, so its client can reconnect and recover.
    #[arg(long, env = "WSNODE_SESSION_TTL", default_value = "30s", value_parser = parse_duration)]
    pub session_ttl: Duration,

    /// Keep a finished stream's chunks this long for recovery.
    #[arg(long, env = "WSNODE_STREAM_TTL", default_value = "5m", value_parser = parse_duration)]
    pub stream_ttl: Duration,

    /// Largest accepted message (after reassembling fragments); larger ones close with 1009.
    #[arg(long, env = "WSNODE_MAX_MESSAGE_SIZE", default_value = "64KiB", value_parser = parse_size)]
    pub max_message_size: usize,

    /// Open WebSocket connections beyond this get HTTP 503.
    #[arg(long, env = "WSNODE_MAX_CONNECTIONS", default_value_t = 50_000)]
    pub max_connections: usize,

    /// HTTP connections waiting for their request headers (handshakes in progress, idle
    /// keep-alive) held at once; a new one beyond it closes the one waiting longest (slowloris
    /// guard). Twice this many HTTP connections may exist before their upgrade; accepts then wait.
    #[arg(long, env = "WSNODE_MAX_HANDSHAKES", default_value_t = 1024)]
    pub max_handshakes: usize,

    /// Kernel send buffer of each accepted socket (SO_SNDBUF; Linux doubles it), so a client
    /// that stops reading fills its --outbound-queue and is closed with 1013 instead of
    /// parking megabytes in the kernel; 0 leaves the kernel's autotuning (up to tcp_wmem's
    /// maximum, 4 MiB by default). A connection sends at most about twice this per round trip.
    #[arg(long, env = "WSNODE_SEND_BUFFER", default_value = "16KiB", value_parser = parse_size)]
    pub send_buffer: usize,

    /// Sessions (connected or waiting for a reconnect) beyond this get HTTP 503.
    #[arg(long, env = "WSNODE_MAX_SESSIONS", default_value_t = 100_000)]
    pub max_sessions: usize,

    /// Frames queued for one connection; a reader slower than this is closed with 1013.
    #[arg(long, env = "WSNODE_OUTBOUND_QUEUE", default_value_t = 256)]
    pub outbound_queue: usize,

    /// Inbound messages per second per connection (burst of one second); 0 = no limit.
    #[arg(long, env = "WSNODE_MAX_MSG_RATE", default_value_t = 1000)]
    pub max_msg_rate: u32,

    /// Comma-separated Origins allowed to upgrade, or `*`. Requests without Origin (non-browsers) pass.
    #[arg(long, env = "WSNODE_ALLOWED_ORIGINS", default_value = "*")]
    pub allowed_origins: String,

    /// Chunks in a simulated answer (a chat may ask for 1..=--max-chunks).
    #[arg(long, env = "WSNODE_CHUNKS", default_value_t = 40)]
    pub chunks: u32,

    /// Delay between chunks of a simulated answer (a chat may ask for 0..=--max-chunk-interval).
    #[arg(long, env = "WSNODE_CHUNK_INTERVAL", default_value = "20ms", value_parser = parse_duration)]
    pub chunk_interval: Duration,

    /// Bytes of text per chunk.
    #[arg(long, env = "WSNODE_CHUNK_SIZE", default_value_t = 16)]
    pub chunk_size: usize,

    /// Upper bound on chunks a chat may ask for.
    #[arg(long, env = "WSNODE_MAX_CHUNKS", default_value_t = 1000)]
    pub max_chunks: u32,

    /// Upper bound on the chunk interval a chat may ask for.
    #[arg(long, env = "WSNODE_MAX_CHUNK_INTERVAL", default_value = "10s", value_parser = parse_duration)]
    pub max_chunk_interval: Duration,

    /// Answers being generated at once, node-wide; beyond it a chat gets `overloaded`.
    #[arg(long, env = "WSNODE_MAX_STREAMS", default_value_t = 10_000)]
    pub max_streams: usize,

    /// Answers being generated at once for one connection; beyond it a chat gets `rate_limited`.
    #[arg(long, env = "WSNODE_MAX_STREAMS_PER_CONN", default_value_t = 8)]
    pub max_streams_per_conn: usize,

    /// Streams kept for recovery; the oldest finished one is evicted beyond it.
    #[arg(long, env = "WSNODE_MAX_CACHED_STREAMS", default_value_t = 20_000)]
    pub max_cached_streams: usize,

    /// Bytes of chunk frames kept for recovery (in-memory broker; Redis bounds its own memory).
    /// Finished streams are evicted oldest first to stay within it; when answers still being
    /// generated fill it, new chats get `overloaded` and a stream that cannot grow is interrupted.
    #[arg(long, env = "WSNODE_MAX_CACHED_BYTES", default_value = "256MiB", value_parser = parse_size)]
    pub max_cached_bytes: usize,

    /// Join a cluster through this Redis (e.g. `redis://127.0.0.1:6379`); without it the node
    /// runs alone with an in-memory broker.
    #[arg(long, env = "WSNODE_REDIS", value_name = "URL")]
    pub redis: Option<String>,

    /// Redis mode: the URL this node registers in Redis for tools that find every node (loadgen
    /// monitors each node through it) [default: ws://<listen address>/ws/chat, the hostname for
    /// an unspecified address]. Example: --advertise-url ws://node1:8080/ws/chat
    #[arg(long, env = "WSNODE_ADVERTISE_URL", value_name = "URL")]
    pub advertise_url: Option<String>,

    /// Redis mode: a node whose liveness key is older than this is dead (its sessions are cleaned up).
    #[arg(long, env = "WSNODE_NODE_TTL", default_value = "15s", value_parser = parse_duration)]
    pub node_ttl: Duration,

    /// Redis mode: a stream's lease lives this long without renewal; then another node may take it.
    #[arg(long, env = "WSNODE_LEASE_TTL", default_value = "10s", value_parser = parse_duration)]
    pub lease_ttl: Duration,

    /// Redis mode: a Redis command unanswered this long opens the circuit breaker.
    #[arg(long, env = "WSNODE_REDIS_TIMEOUT", default_value = "2s", value_parser = parse_duration)]
    pub redis_timeout: Duration,

    /// Time a client gets to send its HTTP request headers (slowloris guard).
    #[arg(long, env = "WSNODE_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub handshake_timeout: Duration,

    /// Longest a fragmented message may stay unfinished; the connection is closed with 1008
    /// at its first frame (data, ping or pong) past it.
    #[arg(long, env = "WSNODE_FRAGMENT_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub fragment_timeout: Duration,

    /// On SIGTERM/Ctrl-C, wait this long for clients to take their 1001 close.
    #[arg(long, env = "WSNODE_SHUTDOWN_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,

    /// Tokio worker threads, and with `--io epoll` as many connection loops,
    /// each a thread of its own [default: one per CPU]. One keeps every wake
    /// on one thread (no cross-thread hand-offs), which costs less CPU per
    /// message when a load generator shares the machine.
    #[arg(long, env = "WSNODE_THREADS", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: Option<u16>,

    /// How established connections are served: `epoll` hands a connection
    /// that only echoes, pings and pongs to one of `--threads` epoll loops
    /// (anything else takes it back to its task); `tasks` keeps one tokio task
    /// per connection throughout.
    #[arg(long, env = "WSNODE_IO", value_enum, default_value = "epoll")]
    pub io: Io,

    /// Pin connection loop i to the i-th CPU this process may use, and give
    /// each connection to the loop on the CPU its packets arrive on
    /// (SO_INCOMING_CPU), so a client loop pinned the same way (loadgen
    /// --pin) and this node's loop share a core per connection. Only with
    /// `--io epoll`.
    #[arg(long, env = "WSNODE_PIN")]
    pub pin: bool,

    /// Tests only: break the node on purpose (see `fault.rs`). Hidden from `--help`.
    #[arg(long, value_enum, hide = true)]
    pub test_fault: Option<TestFault>,
}

/// How established WebSocket connections are served (`--io`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Io {
    Epoll,
    Tasks,
}

/// The checked configuration; see [`Opts`] for what each field means.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// `None` until bound: the default node id needs the real port.
    pub node_id: Option<String>,
    pub ping_interval: Duration,
    pub idle_timeout: Duration,
    pub cleanup_interval: Duration,
    pub session_ttl: Duration,
    pub stream_ttl: Duration,
    pub max_message_size: usize,
    pub max_connections: usize,
    pub max_handshakes: usize,
    /// `None`: the kernel's autotuning.
    pub send_buffer: Option<usize>,
    pub max_sessions: usize,
    pub outbound_queue: usize,
    pub max_msg_rate: u32,
    /// `None` means any origin.
    pub allowed_origins: Option<Vec<String>>,
    pub stream: StreamDefaults,
    pub max_streams: usize,
    pub max_streams_per_conn: usize,
    pub max_cached_streams: usize,
    pub max_cached_bytes: usize,
    pub handshake_timeout: Duration,
    pub fragment_timeout: Duration,
    pub shutdown_timeout: Duration,
    /// `Some` in cluster mode.
    pub redis: Option<String>,
    /// `None`: derived from the bound address when the node starts.
    pub advertise_url: Option<String>,
    pub node_ttl: Duration,
    pub lease_ttl: Duration,
    pub redis_timeout: Duration,
    /// Worker threads of the runtime the node builds for itself (`wsnode`,
    /// `loadgen __node`); an embedding that brings its runtime ignores it.
    pub threads: Option<usize>,
    pub io: Io,
    /// Loops pinned to CPUs, connections placed by their incoming CPU.
    pub pin: bool,
    /// `None` except in tests that break the node on purpose.
    pub test_fault: Option<TestFault>,
}

/// How simulated answers look, and what a chat request may override.
#[derive(Debug, Clone, Copy)]
pub struct StreamDefaults {
    pub chunks: u32,
    pub interval: Duration,
    pub chunk_size: usize,
    pub max_chunks: u32,
    pub max_interval: Duration,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid option {option}: {reason}")]
pub struct ConfigError {
    pub option: &'static str,
    pub reason: String,
}

fn bad(option: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        option,
        reason: reason.into(),
    }
}

impl Opts {
    /// Validate into a [`Config`].
    pub fn into_config(self) -> Result<Config, ConfigError> {
        if self.pin && self.io == Io::Tasks {
            return Err(bad("--pin", "pins the epoll loops: not with --io tasks"));
        }
        if self.ping_interval.is_zero() {
            return Err(bad("--ping-interval", "must be greater than 0"));
        }
        if self.idle_timeout <= self.ping_interval {
            return Err(bad(
                "--idle-timeout",
                format!(
                    "must be longer than --ping-interval ({}), or healthy clients get closed between pings",
                    humantime::format_duration(self.ping_interval)
                ),
            ));
        }
        if let Some(url) = &self.redis {
            if !(url.starts_with("redis://")
                || url.starts_with("redis+unix://")
                || url.starts_with("unix://"))
            {
                return Err(bad("--redis", "must be a URL like redis://127.0.0.1:6379"));
            }
        }
        if let Some(url) = &self.advertise_url {
            let host = url
                .strip_prefix("ws://")
                .or_else(|| url.strip_prefix("wss://"))
                .and_then(|rest| rest.split(['/', '?']).next());
            if host.is_none_or(str::is_empty) || url.chars().any(char::is_whitespace) {
                return Err(bad(
                    "--advertise-url",
                    "must be a URL like ws://node1:8080/ws/chat",
                ));
            }
        }
        for (name, d) in [
            ("--node-ttl", self.node_ttl),
            ("--lease-ttl", self.lease_ttl),
            ("--redis-timeout", self.redis_timeout),
        ] {
            if d < Duration::from_millis(100) {
                return Err(bad(name, "must be at least 100ms"));
            }
        }
        if self.lease_ttl <= self.redis_timeout + RENEW_EVERY {
            return Err(bad(
                "--lease-ttl",
                "must be longer than --redis-timeout plus 1s, or leases lapse between renewals",
            ));
        }
        if self.handshake_timeout.is_zero() {
            return Err(bad("--handshake-timeout", "must be greater than 0"));
        }
        if self.fragment_timeout.is_zero() {
            return Err(bad("--fragment-timeout", "must be greater than 0"));
        }
        if self.send_buffer != 0 && !(4 << 10..=64 << 20).contains(&self.send_buffer) {
            return Err(bad(
                "--send-buffer",
                "must be 0 (kernel autotuning) or between 4KiB and 64MiB",
            ));
        }
        if self.cleanup_interval.is_zero() {
            return Err(bad("--cleanup-interval", "must be greater than 0"));
        }
        if !(16..=64 << 20).contains(&self.max_message_size) {
            return Err(bad(
                "--max-message-size",
                "must be between 16 bytes and 64MiB",
            ));
        }
        for (name, v) in [
            ("--max-connections", self.max_connections),
            ("--max-handshakes", self.max_handshakes),
            ("--max-sessions", self.max_sessions),
            ("--max-streams", self.max_streams),
            ("--max-streams-per-conn", self.max_streams_per_conn),
            ("--max-cached-streams", self.max_cached_streams),
        ] {
            if v == 0 {
                return Err(bad(name, "must be at least 1"));
            }
        }
        if self.max_cached_bytes < 64 << 10 {
            return Err(bad("--max-cached-bytes", "must be at least 64KiB"));
        }
        if !(2..=1 << 20).contains(&self.outbound_queue) {
            return Err(bad(
                "--outbound-queue",
                "must be between 2 and 1048576 frames",
            ));
        }
        if self.max_chunks == 0 || self.max_chunks > 100_000 {
            return Err(bad("--max-chunks", "must be between 1 and 100000"));
        }
        if self.chunks == 0 || self.chunks > self.max_chunks {
            return Err(bad(
                "--chunks",
                format!("must be between 1 and --max-chunks ({})", self.max_chunks),
            ));
        }
        if self.chunk_interval > self.max_chunk_interval {
            return Err(bad(
                "--chunk-interval",
                "must not exceed --max-chunk-interval",
            ));
        }
        if self.chunk_size == 0 || self.chunk_size > 16 * 1024 {
            return Err(bad("--chunk-size", "must be between 1 and 16384 bytes"));
        }
        if let Some(id) = &self.node_id {
            if !protocol::ids::is_valid_id(id) {
                return Err(bad(
                    "--node-id",
                    "must be 1-128 characters of [A-Za-z0-9_.:-]",
                ));
            }
        }
        let origins = self.allowed_origins.trim();
        let allowed_origins = if origins == "*" {
            None
        } else {
            let list: Vec<String> = origins
                .split(',')
                .map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase())
                .filter(|o| !o.is_empty())
                .collect();
            if list.is_empty() {
                return Err(bad(
                    "--allowed-origins",
                    "give `*` or a list like https://chat.example.com",
                ));
            }
            Some(list)
        };
        Ok(Config {
            listen: self.listen,
            node_id: self.node_id,
            ping_interval: self.ping_interval,
            idle_timeout: self.idle_timeout,
            cleanup_interval: self.cleanup_interval,
            session_ttl: self.session_ttl,
            stream_ttl: self.stream_ttl,
            max_message_size: self.max_message_size,
            max_connections: self.max_connections,
            max_handshakes: self.max_handshakes,
            send_buffer: (self.send_buffer != 0).then_some(self.send_buffer),
            max_sessions: self.max_sessions,
            outbound_queue: self.outbound_queue,
            max_msg_rate: self.max_msg_rate,
            allowed_origins,
            stream: StreamDefaults {
                chunks: self.chunks,
                interval: self.chunk_interval,
                chunk_size: self.chunk_size,
                max_chunks: self.max_chunks,
                max_interval: self.max_chunk_interval,
            },
            max_streams: self.max_streams,
            max_streams_per_conn: self.max_streams_per_conn,
            max_cached_streams: self.max_cached_streams,
            max_cached_bytes: self.max_cached_bytes,
            handshake_timeout: self.handshake_timeout,
            fragment_timeout: self.fragment_timeout,
            shutdown_timeout: self.shutdown_timeout,
            redis: self.redis,
            advertise_url: self.advertise_url,
            node_ttl: self.node_ttl,
            lease_ttl: self.lease_ttl,
            redis_timeout: self.redis_timeout,
            threads: self.threads.map(usize::from),
            io: self.io,
            pin: self.pin,
            test_fault: self.test_fault,
        })
    }
}

impl Config {
    /// Defaults with the given listen address, for tests and embedding.
    pub fn with_listen(listen: SocketAddr) -> Self {
        let mut opts = Opts::parse_from(["wsnode"]);
        opts.listen = listen;
        // The defaults are valid by construction; a test would catch a regression.
        opts.into_config().expect("default options are valid")
    }
}

/// Parse `500ms`, `15s`, `1m`, ... (a bare number is seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(s).map_err(|e| format!("{e} (write durations like 500ms, 15s, 1m)"))
}

/// Parse `65536`, `64KiB`, `64kb`, `1MiB`.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: usize = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (write 65536, 64KiB, 1MiB)"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1024,
        "m" | "mb" | "mib" => 1024 * 1024,
        "g" | "gb" | "gib" => 1024 * 1024 * 1024,
        other => return Err(format!("unknown size unit {other:?} (use KiB, MiB or GiB)")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(args: &[&str]) -> Result<Config, ConfigError> {
        let mut v = vec!["wsnode"];
        v.extend_from_slice(args);
        Opts::try_parse_from(v).expect("clap parses").into_config()
    }

    #[test]
    fn defaults_are_valid() {
        let c = opts(&[]).unwrap();
        assert_eq!(c.ping_interval, Duration::from_secs(15));
        assert_eq!(c.max_message_size, 64 * 1024);
        assert!(c.allowed_origins.is_none());
    }

    #[test]
    fn parses_units() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
        assert!(parse_duration("soon").is_err());
        assert_eq!(parse_size("64KiB").unwrap(), 65536);
        assert_eq!(parse_size("1MiB").unwrap(), 1 << 20);
        assert!(parse_size("12parsecs").is_err());
        assert!(parse_size("99999999999999999999").is_err());
    }

    #[test]
    fn rejects_nonsense_with_the_option_named() {
        let e = opts(&["--ping-interval", "30s", "--idle-timeout", "10s"]).unwrap_err();
        assert_eq!(e.option, "--idle-timeout");
        assert_eq!(opts(&["--chunks", "0"]).unwrap_err().option, "--chunks");
        assert_eq!(
            opts(&["--max-message-size", "1"]).unwrap_err().option,
            "--max-message-size"
        );
        assert_eq!(opts(&["--node-id", "a b"]).unwrap_err().option, "--node-id");
        for (args, option) in [
            (["--max-handshakes", "0"], "--max-handshakes"),
            (["--send-buffer", "1KiB"], "--send-buffer"),
            (["--fragment-timeout", "0s"], "--fragment-timeout"),
        ] {
            assert_eq!(opts(&args).unwrap_err().option, option);
        }
        assert_eq!(opts(&["--send-buffer", "0"]).unwrap().send_buffer, None);
        assert_eq!(opts(&[]).unwrap().send_buffer, Some(16 << 10));
        assert_eq!(
            opts(&["--allowed-origins", ","]).unwrap_err().option,
            "--allowed-origins"
        );
        for bad in ["http://x:1/", "ws:///ws/chat", "node1:8080", "ws://a b/"] {
            let e = opts(&["--advertise-url", bad]).unwrap_err();
            assert_eq!(e.option, "--advertise-url", "{bad}");
        }
        let c = opts(&["--advertise-url", "wss://node1.example:443/ws/chat"]).unwrap();
        assert_eq!(
            c.advertise_url.as_deref(),
            Some("wss://node1.example:443/ws/chat")
        );
    }

    #[test]
    fn origins_are_normalised() {
        let c = opts(&["--allowed-origins", "https://A.example/, http://b.example"]).unwrap();
        assert_eq!(
            c.allowed_origins.unwrap(),
            vec![
                "https://a.example".to_string(),
                "http://b.example".to_string()
            ]
        );
    }
}
