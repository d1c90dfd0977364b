//! The `wsnode` binary: parse options, set up logging, run the node.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
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
