//! The modelops operator binary.
#![forbid(unsafe_code)]

use clap::Parser;

/// Command-line flags of the operator.
#[derive(Debug, Parser)]
#[command(name = "modelops-operator", version = modelops::VERSION, about)]
struct Flags {
    /// Log filter, in `tracing_subscriber::EnvFilter` syntax.
    #[arg(long, env = "MODELOPS_LOG", default_value = "info")]
    log: String,
}

fn main() -> anyhow::Result<()> {
    let flags = Flags::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&flags.log))
        .init();
    tracing::info!(version = modelops::VERSION, "modelops operator starting");
    Ok(())
}
