//! The `loadgen` binary: parse options, call [`loadgen::run`], and turn the
//! result into the documented exit code (0 pass, 1 a metric failed, 2 bad
//! options, 3 target unreachable).

use clap::Parser;
use std::process::ExitCode;

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
