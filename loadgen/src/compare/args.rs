//! The options of `loadgen compare`, as the user typed them.

use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug, Clone)]
pub struct CompareOpts {
    /// The baseline report, written by `--json`. Example: base.json
    pub base: PathBuf,
    /// The report judged against it, written by `--json`. Example: new.json
    pub new: PathBuf,
    /// Largest regression allowed per figure, as KEY=PCT% pairs separated by
    /// commas (a regression is a change for the worse: a higher latency, a
    /// lower rate). Keys: p50 p95 p99 per_sec success_rate connect_p50
    /// connect_p99 errors cpu_node cpu_loadgen cpu_redis mem_per_conn.
    /// Exit 1 when one is exceeded, naming it.
    /// Example: --max-regression p99=10%,per_sec=5%
    #[arg(long, value_name = "KEY=PCT%,...")]
    pub max_regression: Option<String>,
}
