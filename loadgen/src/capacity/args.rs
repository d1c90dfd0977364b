//! The options of `loadgen capacity`, as the user typed them: the run
//! options of a normal run (target, mode, profile, connections) plus the
//! target to hold and the step plan.

use crate::opts::LoadOpts;
use clap::Args;

#[derive(Args, Debug, Clone)]
pub struct CapacityOpts {
    /// Target, mode, profile and the other run options, as for a normal
    /// run. `--json` and `--html` write the capacity curve; `--conns` is
    /// held while the rate steps.
    #[command(flatten)]
    pub load: LoadOpts,

    /// Latency objective every step must hold in its graded (steady) phase,
    /// corrected for coordinated omission: PERCENTILE<LIMIT, several
    /// separated by commas. Percentiles p50 p90 p95 p99 p99.9; units us ms s.
    /// Example: --slo 'p99<50ms,p50<10ms'
    #[arg(long, default_value = "p99<50ms", value_name = "PCT<LIMIT")]
    pub slo: String,

    /// Error budget: the most messages of a step's graded phase that may
    /// fail (time out, be lost with their connection, or come back wrong),
    /// in percent of those sent. Example: --max-errors 0.1%
    #[arg(long, default_value = "1%", value_name = "PCT%")]
    pub max_errors: String,

    /// First offered rate, messages per second over all connections (each
    /// connection sends its share; default 100). Example: --start-rate 1000
    #[arg(long, value_name = "MSG_PER_S", conflicts_with = "start_conns")]
    pub start_rate: Option<f64>,

    /// Highest offered rate to try (default: --conns x 1000, the
    /// per-connection ceiling). Example: --max-rate 50000
    #[arg(long, value_name = "MSG_PER_S", conflicts_with = "start_conns")]
    pub max_rate: Option<f64>,

    /// Step connections instead of the rate: the first step's connection
    /// count, each sending --rate. Example: --start-conns 100
    #[arg(long, value_name = "N")]
    pub start_conns: Option<u64>,

    /// With --start-conns: the most connections to try (default: 10000, or
    /// --start-conns if more). Example: --max-conns 20000
    #[arg(long, value_name = "N", requires = "start_conns")]
    pub max_conns: Option<u64>,

    /// How the next step grows while every step holds: xF multiplies by F
    /// (above 1), +N adds N (msg/s, or connections with --start-conns).
    /// Example: --step +500
    #[arg(long, default_value = "x2", value_name = "xF|+N")]
    pub step: String,

    /// How long each step holds its load after the warm-up; its graded
    /// (steady) phase. Example: --step-duration 20s
    #[arg(long, default_value = "10s", value_name = "DURATION")]
    pub step_duration: String,

    /// Warm-up of each step: its connections open spread over this long,
    /// sending as they come (the ramp-up phase, not graded). 0s opens them
    /// all at once. Example: --warmup 5s
    #[arg(long, default_value = "3s", value_name = "DURATION")]
    pub warmup: String,

    /// Steps spent narrowing (bisecting) between the last step that held
    /// and the first that broke. Example: --narrow-steps 6
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub narrow_steps: u32,

    /// Stop narrowing once the gap between held and broke is at most this
    /// share of the held rate. Example: --precision 2%
    #[arg(long, default_value = "3%", value_name = "PCT%")]
    pub precision: String,

    /// Most steps in all (climbing and narrowing). Example: --max-steps 30
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub max_steps: u32,

    /// Longest the whole search may take; a step that would not end within
    /// it is not started. Example: --max-time 30m
    #[arg(long, default_value = "15m", value_name = "DURATION")]
    pub max_time: String,
}
