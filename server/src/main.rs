//! The `wsnode` binary: parse options, set up logging, run the node.
//! `wsnode health [URL]` probes a node's `/health` instead (the container
//! image's HEALTHCHECK; see [`server::probe`]).

use clap::Parser;

// jemalloc keeps the untouched parts of allocations out of RSS (it stores no
// headers inside them): 6.2 KiB per idle connection against 8.5 KiB with
// glibc's allocator when this was chosen (docs/BENCHMARKS.md).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args_os();
    if args.nth(1).is_some_and(|a| a == "health") {
        std::process::exit(server::probe::main(args.collect()));
    }
    node()
}

fn node() -> anyhow::Result<()> {
    let config = server::Opts::parse().into_config()?;
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = config.threads {
        rt.worker_threads(n);
    }
    rt.enable_all().build()?.block_on(serve(config))
}

async fn serve(config: server::Config) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_target(false)
        .init();
    server::run(config, server::shutdown_signal()).await?;
    Ok(())
}
