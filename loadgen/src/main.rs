//! The `loadgen` binary: parse options, call [`loadgen::run`], and turn the
//! result into the documented exit code (0 pass, 1 a metric failed, 2 bad
//! options, 3 target unreachable).

use clap::Parser;
use std::process::ExitCode;

// The same allocator as wsnode, so the embedded node (`loadgen __node`, this
// binary) measures what a real wsnode would (docs/BENCHMARKS.md).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let opts = loadgen::Opts::parse();
    match loadgen::run(opts) {
        Ok(outcome) => ExitCode::from(outcome.exit_code),
        Err(e) => {
            let e = anyhow::Error::from(e);
            let code = e
                .downcast_ref::<loadgen::Error>()
                .map_or(1, loadgen::Error::exit_code);
            eprintln!("loadgen: error: {e:#}");
            ExitCode::from(code)
        }
    }
}
