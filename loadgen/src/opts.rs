//! Command-line options, exactly as the user typed them.
//!
//! Nothing here is trusted: [`crate::config::Config::from_opts`] turns these
//! raw flags into a validated, typed configuration before any socket is
//! opened, so a nonsense option fails fast with exit code 2 and a message that
//! names the fix. Every option's help carries an example because `--help` is
//! the manual most users read.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

const AFTER_HELP: &str = "\
Examples:
  loadgen --conns 1000 --rate 10                 # embedded node, 1000 conns x 10 msg/s for 60 s
  loadgen --url ws://127.0.0.1:8080/ws/chat --conns 500 --rate 5 --duration 30s
  loadgen --stages 1m:333,3m:1000,1m:0 --rate 10 --session-pattern 'load_test_{N}'
  loadgen --mode chat --conns 50 --rate 1 --wait-reply
  loadgen --mode raw --url ws://127.0.0.1:9001/ --conns 100 --rate 100
  loadgen agent --coordinator redis://10.0.0.5:6379     # on each load machine, then:
  loadgen --coordinator redis://10.0.0.5:6379 --agents 3 --url ws://10.0.0.9:8080/ws/chat --conns 60000 --rate 1
  loadgen merge run1.hlog run2.hlog
  loadgen compare base.json new.json --max-regression p99=10%,per_sec=5%
  loadgen capacity --slo 'p99<50ms' --start-rate 1000 --html capacity.html

Exit codes: 0 every graded metric reaches --fail-on; 1 one does not;
            2 bad options; 3 the target (or enough agents) cannot be reached at all.";

/// Open-model WebSocket load generator: exact per-connection message rates,
/// HdrHistogram latencies corrected for coordinated omission, node CPU and
/// memory per connection, and a graded report.
#[derive(Parser, Debug, Clone)]
#[command(name = "loadgen", version, after_help = AFTER_HELP)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Opts {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub load: LoadOpts,
}

#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Merge HdrHistogram interval logs written by --hdr-log (several runs or
    /// machines) losslessly and print the combined percentiles.
    /// Example: loadgen merge a.hlog b.hlog --out all.hlog
    Merge(MergeOpts),
    /// Run the seed's ten multi-node test scenarios (connectivity, sticky,
    /// broadcast, recovery, failover, redis-failure, load, ordering, cleanup,
    /// isolation) against a local cluster it starts, or a deployment.
    /// Example: loadgen scenario all --json scenarios.json
    Scenario(Box<crate::scenario::args::ScenarioOpts>),
    /// Compare two --json reports: every headline figure and its change;
    /// with --max-regression, exit 1 when a limit is exceeded (a CI gate).
    /// Example: loadgen compare base.json new.json --max-regression p99=10%,per_sec=5%
    Compare(crate::compare::args::CompareOpts),
    /// Find the highest rate the target holds under a latency objective:
    /// step the offered rate (or connections) up until --slo or the error
    /// budget breaks, then narrow; print the latency-vs-throughput curve
    /// and grade the Messages/sec row from it.
    /// Example: loadgen capacity --url ws://127.0.0.1:8080/ws/chat --slo 'p99<50ms' --html capacity.html
    Capacity(Box<crate::capacity::args::CapacityOpts>),
    /// Internal: run the embedded wsnode in this process (used by the default
    /// mode, which starts it as a child process so its CPU and memory are
    /// measured separately).
    #[command(name = "__node", hide = true)]
    Node {
        /// wsnode options, passed through unchanged.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Internal: one of the processes started by `--workers`. It reads its
    /// share of the run from stdin as data (`workers::exchange`), not as flags.
    #[command(name = "__worker", hide = true)]
    Worker,
    /// Wait for work from a controller (`loadgen --coordinator URL --agents N
    /// ...`) through Redis, run this agent's share of its runs, and stream
    /// the figures back (docs/DISTRIBUTED.md).
    /// Example: loadgen agent --coordinator redis://10.0.0.5:6379 --name lg-1
    Agent(crate::agents::args::AgentOpts),
}

#[derive(Args, Debug, Clone)]
pub struct MergeOpts {
    /// Interval log files written by `--hdr-log`. Example: a.hlog b.hlog
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Also write the merged histograms as one interval log. Example: --out all.hlog
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// What to send, in which mode.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The node's `echo` message; latency = time until the echo comes back.
    Echo,
    /// A `chat` message per send; measures time to first chunk, the gap
    /// between chunks and time to `done`, and checks every chunk.
    Chat,
    /// Any server that echoes frames byte for byte; a marker in the payload
    /// carries the sequence number and send times.
    Raw,
    /// Set by `--profile FILE`: the profile says what to send and how
    /// replies are matched.
    #[value(skip)]
    Profile,
}

/// How an established connection's messages are sent and read.
#[derive(
    ValueEnum, Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Io {
    /// After its handshake and opening steps, a plain-TCP connection is
    /// handed to its thread's epoll loop, which sends, reads and settles
    /// the messages of all the thread's connections (engine/steady).
    #[default]
    Epoll,
    /// Every connection stays a tokio task for its whole life (the way
    /// `wss://`, fan-out and --wait-reply connections always run).
    Tasks,
}

/// Which part of a run the grades and the template read.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GradePhase {
    /// The steady phase: the plan's hold, once every connection is open (the
    /// whole run when there is none).
    Steady,
    /// The whole run, ramps included.
    All,
}

/// The lowest grade that still counts as a pass for the exit code.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FailOn {
    Target,
    Good,
    Acceptable,
}

#[derive(Args, Debug, Clone)]
pub struct LoadOpts {
    /// Target WebSocket URL (ws:// only); repeat to spread connections
    /// round-robin over several nodes. Without --url an embedded wsnode is
    /// started on 127.0.0.1 as a child process.
    /// Example: --url ws://127.0.0.1:8081/ws/chat --url ws://127.0.0.1:8082/ws/chat
    #[arg(long = "url", value_name = "URL")]
    pub urls: Vec<String>,

    /// Concurrent connections to hold open. Example: --conns 10000
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub conns: u64,

    /// Messages per second sent by EACH connection (open model: sent on a
    /// fixed schedule whether or not replies come back); 0 only connects.
    /// Example: --rate 10
    #[arg(long, default_value_t = 10.0, value_name = "MSG_PER_S")]
    pub rate: f64,

    /// How long to hold the load (connections ramp up first, within it).
    /// Example: --duration 5m
    #[arg(long, default_value = "60s", value_name = "DURATION")]
    pub duration: String,

    /// k6-style stages, "duration:target_conns,..." ramping linearly from the
    /// previous target (starting at 0); replaces --conns and --duration.
    /// Example: --stages 1m:333,3m:1000,1m:0
    #[arg(long, value_name = "STAGES")]
    pub stages: Option<String>,

    /// New connections per second (default: as fast as the OS backlog allows).
    /// Example: --connect-rate 500
    #[arg(long, value_name = "CONN_PER_S")]
    pub connect_rate: Option<f64>,

    /// Bytes of filler in each message's payload. Example: --payload-size 256
    #[arg(long, default_value_t = 16, value_name = "BYTES")]
    pub payload_size: usize,

    /// A message without a reply after this long counts as timed out; also
    /// bounds connecting and the final drain. Example: --timeout 2s
    #[arg(long, default_value = "5s", value_name = "DURATION")]
    pub timeout: String,

    /// Closed-loop variant: a connection sends its next message only after
    /// the reply to the previous one (or its timeout), still measured from
    /// the intended schedule. Example: --wait-reply
    #[arg(long)]
    pub wait_reply: bool,

    /// Reconnect (with backoff, re-attaching the same session with its token)
    /// when a connection drops; measures Failover Time, and in chat mode
    /// recovers answers cut mid-stream (Recovery Time). Example: --reconnect
    #[arg(long)]
    pub reconnect: bool,

    /// What each message is. Example: --mode chat
    #[arg(long, value_enum, default_value_t = Mode::Echo)]
    pub mode: Mode,

    /// Session id per connection: {N} is the connection number (1-based) and
    /// {RUN} a random id of this run (lowercase works too). The seed's k6
    /// script: --session-pattern 'load_test_{N}'. Example: --session-pattern 'load_test_{N}'
    #[arg(long, default_value = "lg_{RUN}_{N}", value_name = "PATTERN")]
    pub session_pattern: String,

    /// Chat mode: ask the node for this many chunks per answer (default: the
    /// node's own setting). Example: --chat-chunks 5
    #[arg(long, value_name = "N")]
    pub chat_chunks: Option<u32>,

    /// Chat mode: ask for this delay between chunks in ms (default: the
    /// node's own setting). Example: --chat-interval-ms 10
    #[arg(long, value_name = "MS")]
    pub chat_interval_ms: Option<u64>,

    /// Talk to the service as this protocol profile describes (TOML; see
    /// docs/PROFILES.md and the shipped profiles/): what to send on open,
    /// the paced message, how replies match, streamed answers, keep-alives.
    /// Example: --profile profiles/graphql-ws.toml
    #[arg(long, value_name = "FILE", conflicts_with = "mode")]
    pub profile: Option<PathBuf>,

    /// Fan-out: connections in groups of N; the first of each group
    /// publishes at --rate, the others only receive, and every receipt is a
    /// delivery timed from the publisher's intended send time (needs a
    /// --profile with a [fanout] table). Example: --group-size 10
    #[arg(long, value_name = "N")]
    pub group_size: Option<u64>,

    /// How established connections are driven: `epoll` runs each slot
    /// thread's plain-TCP connections in one epoll loop after their
    /// handshake; `tasks` keeps one tokio task per connection (as `wss://`,
    /// fan-out and --wait-reply always do). Both measure the same way.
    /// Example: --io tasks
    #[arg(long, value_enum, default_value_t = Io::Epoll)]
    pub io: Io,

    /// Epoll loop threads per loadgen process (`--io epoll`), each running
    /// its share of the established connections (default: one per
    /// --threads). `--loops 1` beside a node on a small machine saves some
    /// CPU, at a cost to the tail. Example: --loops 1
    #[arg(long, value_name = "N")]
    pub loops: Option<usize>,

    /// Pin slot thread i and epoll loop i to the i-th CPU this process may
    /// use (`--io epoll`), and the embedded node's loops likewise. With a
    /// node that places each connection in the loop on the CPU its packets
    /// arrive on (the embedded node, or wsnode --pin on this machine), both
    /// ends of a connection share a core: no message wakes a thread on the
    /// other CPU. Example: --pin
    #[arg(long)]
    pub pin: bool,

    /// Extra handshake header (repeatable). The value may use {conn},
    /// {session}, {run} and {rand}, e.g. a per-connection token.
    /// Example: --header 'Authorization: Bearer {session}'
    #[arg(long = "header", value_name = "'NAME: VALUE'")]
    pub headers: Vec<String>,

    /// WebSocket subprotocol to ask for (Sec-WebSocket-Protocol); a server
    /// that does not accept it fails the handshake. Example: --subprotocol graphql-transport-ws
    #[arg(long, value_name = "NAME")]
    pub subprotocol: Option<String>,

    /// Origin header of the handshake. Example: --origin https://chat.example.com
    #[arg(long, value_name = "URL")]
    pub origin: Option<String>,

    /// wss://: also trust the CA certificate(s) in this PEM file (besides
    /// the webpki roots). Example: --ca-cert ./my-ca.pem
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,

    /// wss://: accept any server certificate (no verification); the report
    /// carries a warning. Example: --insecure
    #[arg(long)]
    pub insecure: bool,

    /// Extra option for the embedded node (repeatable; ignored with --url).
    /// Example: --node-arg=--chunks=5
    #[arg(long = "node-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub node_args: Vec<String>,

    /// Also monitor this node process's CPU and memory (repeatable).
    /// Example: --node-pid 4242
    #[arg(long = "node-pid", value_name = "PID")]
    pub node_pids: Vec<u32>,

    /// Monitor this redis-server process's CPU and memory. Example: --redis-pid 777
    #[arg(long, value_name = "PID")]
    pub redis_pid: Option<u32>,

    /// Redis to monitor, found through INFO: its process when it runs on
    /// this machine, else the CPU time and RSS INFO reports.
    /// Example: --redis 127.0.0.1:6379
    #[arg(long, value_name = "HOST:PORT", conflicts_with = "redis_pid")]
    pub redis: Option<String>,

    /// Split the connections over W loadgen processes (each its own fd limit
    /// and core); their histograms are merged losslessly. Example: --workers 2
    #[arg(long, default_value_t = 1, value_name = "W")]
    pub workers: u32,

    /// Measure with remote agents (`loadgen agent`) coordinated through this
    /// Redis instead of in this process; needs --agents and --url.
    /// Example: --coordinator redis://10.0.0.5:6379
    #[arg(long, value_name = "URL", requires = "agents")]
    pub coordinator: Option<String>,

    /// With --coordinator: how many agents share the run (the first N idle
    /// agents to answer; a later one is not used). Example: --agents 3
    #[arg(long, value_name = "N", requires = "coordinator")]
    pub agents: Option<u32>,

    /// With --agents: the longest wait for enough agents (exit 3 past it).
    /// Example: --agents-wait 2m
    #[arg(long, default_value = "60s", value_name = "DURATION")]
    pub agents_wait: String,

    /// With --agents: each agent's own source addresses, one range per
    /// agent, comma-separated, in the order the agents are taken (default:
    /// --source-ips split into N equal parts, or the kernel's choice).
    /// Example: --agent-source-ips 127.0.1.1-127.0.1.50,127.0.2.1-127.0.2.50
    #[arg(long, value_name = "RANGES", requires = "agents")]
    pub agent_source_ips: Option<String>,

    /// Threads per loadgen process that run its connections, each with its
    /// own single-threaded tokio runtime, plus as many epoll loop threads for
    /// the established ones (`--io epoll`) and as many tokio workers for the
    /// rest (default: CPU count). Example: --threads 2
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,

    /// Local source addresses to spread connections over, to go past one
    /// address's ephemeral ports (loopback targets only need 127.x.y.z).
    /// Example: --source-ips 127.0.0.2-127.0.0.20
    #[arg(long, value_name = "RANGE")]
    pub source_ips: Option<String>,

    /// No live progress line on stderr. Example: --quiet
    #[arg(long, short)]
    pub quiet: bool,

    /// Write the full results as JSON (schema in docs/LOADGEN.md).
    /// Example: --json results.json
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Write the filled results template and grade table as Markdown.
    /// Example: --out-md results.md
    #[arg(long, value_name = "FILE")]
    pub out_md: Option<PathBuf>,

    /// Write the report as one self-contained HTML page: charts drawn as
    /// inline SVG (connections, throughput, latency over time with the
    /// phases and events, latency and connection-time distributions, CPU
    /// and RSS), the grade table and the filled template; nothing fetched.
    /// Example: --html report.html
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,

    /// Write per-second latency histograms as an HdrHistogram interval log
    /// (merge several with `loadgen merge`). Example: --hdr-log run1.hlog
    #[arg(long, value_name = "FILE")]
    pub hdr_log: Option<PathBuf>,

    /// Serve the run's live figures in Prometheus text format on
    /// http://ADDR/metrics while it goes (port 0: any free port; the bound
    /// address is printed on stderr). Metrics are listed in docs/LOADGEN.md.
    /// Example: --metrics-listen 127.0.0.1:9100
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics_listen: Option<String>,

    /// Keep --metrics-listen serving the final figures this long after the
    /// run, so Prometheus scrapes them (at least one scrape interval).
    /// Example: --metrics-linger 15s
    #[arg(long, default_value = "0s", value_name = "DURATION")]
    pub metrics_linger: String,

    /// Lowest grade that still passes (exit code 0). Example: --fail-on good
    #[arg(long, value_enum, default_value_t = FailOn::Acceptable)]
    pub fail_on: FailOn,

    /// Which part of the run the grades and the template read: `steady` (the
    /// plan's hold with every connection open; the ramps' figures are shown
    /// beside) or `all` (ramps included). Example: --grade-phase all
    #[arg(long, value_enum, default_value_t = GradePhase::Steady)]
    pub grade_phase: GradePhase,

    /// Also exit 1 when fewer than this percentage of messages were answered
    /// on time and correct (the seed's table has no success-rate row; off by
    /// default). Example: --min-success-rate 99.9
    #[arg(long, value_name = "PCT")]
    pub min_success_rate: Option<f64>,

    /// Grade against your own Target Metrics table: a Markdown table with
    /// the seed's columns (Metric | Target | Good | Acceptable).
    /// Example: --thresholds my-targets.md
    #[arg(long, value_name = "FILE")]
    pub thresholds: Option<PathBuf>,

    /// Internal: the executable to start for the embedded node and workers
    /// (default: this one). Tests point it at the built binary.
    #[arg(long, hide = true, value_name = "PATH")]
    pub exe: Option<PathBuf>,
}
