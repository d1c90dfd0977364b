//! The `wsnode` binary: parse options, set up logging, run the node.

use clap::Parser;

// jemalloc keeps the untouched parts of idle connections' buffers out of RSS
// (it stores no headers inside allocations): 6.2 KiB per idle connection
// against 8.5 KiB with glibc's allocator (docs/BENCHMARKS.md).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> anyhow::Result<()> {
    // `wsnode cluster up|down|status` runs a local cluster (see README).
    let mut args = std::env::args_os();
    if args.nth(1).is_some_and(|a| a == "cluster") {
        std::process::exit(cluster::cli::main(args.collect()));
    }
    node()
}

#[tokio::main]
async fn node() -> anyhow::Result<()> {
    let opts = server::Opts::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_target(false)
        .init();
    let config = opts.into_config()?;
    server::run(config, server::shutdown_signal()).await?;
    Ok(())
}
