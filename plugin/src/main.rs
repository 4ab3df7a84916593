//! `kubectl-modelops`: on the PATH, it is `kubectl modelops` (see the library for what it does).

use std::io::IsTerminal;

use clap::Parser;
use kubectl_modelops::{Cli, run};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let stdout = std::io::stdout();
    let terminal = stdout.is_terminal();
    let mut out = stdout.lock();
    let interrupted = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    match run(cli, &mut out, terminal, interrupted).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
