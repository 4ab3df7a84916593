//! `modelops-worker`: the one binary that links libtorch. The operator starts it in pods with a
//! subcommand and a JSON work order (`MODELOPS_WORK_ORDER`, or `--work-order FILE`).
#![deny(unsafe_code)]

mod cuda;
mod info;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use modelops_api::workorder::{
    PERMANENT_FAILURE_EXIT_CODE, TERMINATION_MESSAGE_LIMIT, WORK_ORDER_ENV, WorkOrder,
    WorkerFailure, termination_message,
};
use modelops_worker::artifact::write_termination_message;
use modelops_worker::failure::{Failure, classify};
use modelops_worker::order;
use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc for the worker's own allocations (libtorch's tensors keep their allocator): a
/// served request allocates and frees a few dozen buffers, which cost glibc's malloc about 7 %
/// of a 32-row request's time (docs/decisions.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Prepare a Dataset: fetch, validate, split, normalise, profile; publish under its digest.
    Prepare(OrderArgs),
    /// Train a model (resuming from the last checkpoint), evaluate it, publish it.
    Train(OrderArgs),
    /// Serve a model revision over HTTP (Open Inference Protocol v2) until SIGTERM.
    Serve(OrderArgs),
}

/// Where the work order comes from.
#[derive(Debug, Args)]
struct OrderArgs {
    /// Read the work order from this JSON file instead of the environment variable
    /// MODELOPS_WORK_ORDER.
    #[arg(long, value_name = "FILE")]
    work_order: Option<PathBuf>,
}

impl OrderArgs {
    fn read(&self) -> Result<WorkOrder> {
        let text = match &self.work_order {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("reading the work order {}", path.display()))?,
            None => std::env::var(WORK_ORDER_ENV).with_context(|| {
                format!("no work order: set {WORK_ORDER_ENV} or pass --work-order FILE")
            })?,
        };
        WorkOrder::from_env_value(&text).context("parsing the work order")
    }
}

/// Makes SIGTERM and SIGINT end a batch command at once, with the usual 128 + signal status.
///
/// In a container the worker is PID 1, for which the kernel ignores signals that have no handler:
/// without this, a pod deleted in the middle of training would train on until the kubelet's
/// SIGKILL, or even finish and report success for a pod that is gone. Progress is safe in the
/// last checkpoint, so stopping between two epochs loses at most the epoch under way.
fn exit_on_termination_signal() {
    use signal_hook::consts::{SIGINT, SIGTERM};
    match signal_hook::iterator::Signals::new([SIGTERM, SIGINT]) {
        Ok(mut signals) => {
            std::thread::spawn(move || {
                if let Some(signal) = signals.forever().next() {
                    eprintln!(
                        "modelops-worker: stopping on signal {signal}; the last checkpoint is kept"
                    );
                    std::process::exit(128 + signal);
                }
            });
        }
        Err(e) => eprintln!(
            "modelops-worker: cannot handle SIGTERM ({e}); a deleted pod stops only when killed"
        ),
    }
}

fn main() -> ExitCode {
    // TLS to the artifact store uses ring, as the operator's does; a second install is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    modelops_worker::logging::init();
    // Load CUDA support before libtorch picks a device.
    let cuda = cuda::load_if_gpu_visible();
    let outcome = match cli.command {
        Command::Info => info::print(&cuda).map(|()| None),
        Command::Prepare(args) => {
            exit_on_termination_signal();
            run(&args, "prepare")
        }
        Command::Train(args) => {
            exit_on_termination_signal();
            run(&args, "train")
        }
        Command::Serve(args) => run(&args, "serve"),
    };
    match outcome {
        Ok(Some(message)) => {
            println!("{message}");
            write_termination_message(&message);
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(error) => {
            let (reason, retryable) = classify(&error, "WorkerError");
            let mut failure = WorkerFailure {
                reason: reason.to_owned(),
                message: format!("{error:#}"),
                retryable,
            };
            eprintln!("modelops-worker: {reason}: {error:#}");
            // A message cut by the kubelet's limit would not parse: shorten the text instead.
            while termination_message(&failure).len() >= TERMINATION_MESSAGE_LIMIT {
                let mut end = failure.message.len().saturating_sub(256);
                while !failure.message.is_char_boundary(end) {
                    end -= 1;
                }
                failure.message.truncate(end);
                failure.message.push('…');
            }
            write_termination_message(&termination_message(&failure));
            // The operator's Jobs fail at once on this code instead of retrying a failure that
            // only a change of the spec or the data can fix.
            if retryable {
                ExitCode::FAILURE
            } else {
                ExitCode::from(PERMANENT_FAILURE_EXIT_CODE)
            }
        }
    }
}

/// Runs the order for `command` and returns its result as a termination message.
fn run(args: &OrderArgs, command: &str) -> Result<Option<String>> {
    let work_order = args
        .read()
        .map_err(|e| Failure::error("InvalidWorkOrder", false, format!("{e:#}")))?;
    // `object`, not `name`: a span's JSON has its own `name`.
    let (namespace, object) = match &work_order {
        WorkOrder::Prepare(o) => (o.namespace.clone(), o.name.clone()),
        WorkOrder::Train(o) => (o.namespace.clone(), o.name.clone()),
        WorkOrder::Serve(o) => (o.namespace.clone(), o.name.clone()),
    };
    let _command = tracing::info_span!("worker", command, %namespace, %object).entered();
    match (command, work_order) {
        ("prepare", WorkOrder::Prepare(prepare)) => {
            Ok(Some(order::prepare(&prepare)?.to_termination_message()))
        }
        ("train", WorkOrder::Train(train)) => Ok(Some(
            order::train(&train, info::device())?.to_termination_message(),
        )),
        // A server that stopped on SIGTERM has nothing to report.
        ("serve", WorkOrder::Serve(serve)) => order::serve(&serve, info::device()).map(|()| None),
        (command, other) => {
            let kind = match other {
                WorkOrder::Prepare(_) => "prepare",
                WorkOrder::Train(_) => "train",
                WorkOrder::Serve(_) => "serve",
            };
            Err(Failure::error(
                "InvalidWorkOrder",
                false,
                format!(
                    "the work order is a {kind} order but the command is {command}; run modelops-worker {kind}"
                ),
            ))
        }
    }
}
