//! `modelops-worker`: the one binary that links libtorch. The operator starts it in pods with a
//! subcommand and a JSON work order.
#![deny(unsafe_code)]

mod cuda;
mod info;

use clap::{Parser, Subcommand};

/// Command-line interface of the worker.
#[derive(Debug, Parser)]
#[command(name = "modelops-worker", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the libtorch version and the device the worker would use, as JSON.
    Info,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Load CUDA support before libtorch picks a device.
    let cuda = cuda::load_if_gpu_visible();
    match cli.command {
        Command::Info => info::print(&cuda),
    }
}
