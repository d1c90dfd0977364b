//! `loadgen agent`'s options.

use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug, Clone)]
pub struct AgentOpts {
    /// The Redis that controllers and agents meet in.
    /// Example: --coordinator redis://10.0.0.5:6379
    #[arg(long, value_name = "URL")]
    pub coordinator: String,

    /// How the reports name this agent (default: the host name).
    /// Example: --name lg-eu-1
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Tokio worker threads (default: CPU count). Example: --threads 4
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,

    /// Exit after this many runs; 0 serves runs until Ctrl-C (a Kubernetes
    /// Job's agents use 1). Example: --runs 1
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub runs: u32,

    /// Longest wait for the coordinator to answer and for a run to take
    /// this agent; exit 3 past it. Example: --wait 10m
    #[arg(long, default_value = "1h", value_name = "DURATION")]
    pub wait: String,

    /// Also write this agent's own per-second latency histograms as an
    /// HdrHistogram interval log (each run overwrites it).
    /// Example: --hdr-log agent1.hlog
    #[arg(long, value_name = "FILE")]
    pub hdr_log: Option<PathBuf>,
}
