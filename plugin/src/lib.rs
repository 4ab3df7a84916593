//! `kubectl modelops`: the pipelines of a namespace as trees (`get`, `--watch`), the revisions
//! of a ModelDeployment (`history`) and the logs of a TrainingJob's worker pods (`logs`). It only
//! reads, through the API server, with the caller's own credentials (kubeconfig): what the
//! caller may not list, it cannot show.
//!
//! The binary (`kubectl-modelops` on the PATH makes `kubectl modelops` work) is a thin `main`
//! over [`run`], which the cluster tests call with the arguments a user types.

pub mod render;

use std::future::Future;
use std::io::Write;
use std::time::Duration;

use anyhow::{Context, anyhow};
use clap::{Parser, Subcommand};
use futures::{AsyncBufReadExt, FutureExt, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, LogParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client, ResourceExt};
use modelops_api::{Dataset, ModelDeployment, Monitor, TrainingJob};
use render::{Snapshot, Target};

/// The label every pod of a TrainingJob carries, with the TrainingJob's name.
pub const TRAININGJOB_LABEL: &str = "modelops.dev/trainingjob";
/// The label of a search trial's pods, with the trial's index.
pub const TRIAL_LABEL: &str = "modelops.dev/trial";

/// The command line.
#[derive(Parser, Debug)]
#[command(
    name = "kubectl modelops",
    bin_name = "kubectl modelops",
    version,
    about = "The modelops pipelines of a namespace: Dataset → TrainingJob → ModelDeployment → Monitor",
    max_term_width = 100
)]
pub struct Cli {
    /// The namespace (default: the kubeconfig context's, else `default`).
    #[arg(short, long, global = true)]
    pub namespace: Option<String>,
    /// The kubeconfig context (default: the current one).
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// What to show.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// The pipelines as trees: each object's status, age and what it holds, the conditions'
    /// messages and the revisions' reasons under it.
    Get {
        /// Only the pipeline of this object: NAME or KIND/NAME (dataset, trainingjob,
        /// modeldeployment, monitor, or dset, tjob, mdep, mmon).
        target: Option<String>,
        /// Print the tree again whenever an object of it changes, until interrupted.
        #[arg(short, long)]
        watch: bool,
        /// With --watch: stop after this long (such as 30s or 5m).
        #[arg(long, requires = "watch", value_parser = duration)]
        timeout: Option<Duration>,
    },
    /// The revisions of a ModelDeployment, newest first: model digest, TrainingJob, the
    /// Monitors' verdicts, why each is in its state, and what the Monitors did.
    History {
        /// The ModelDeployment.
        name: String,
    },
    /// The logs of a TrainingJob's worker pods (each trial's, for a search), oldest pod first.
    Logs {
        /// The TrainingJob.
        name: String,
        /// Keep printing what the pods write, until they end or you interrupt.
        #[arg(short, long)]
        follow: bool,
        /// Only the pods of this search trial.
        #[arg(long)]
        trial: Option<i32>,
        /// Only the last N lines of each pod.
        #[arg(long)]
        tail: Option<i64>,
    },
}

fn duration(text: &str) -> Result<Duration, String> {
    modelops_api::common::parse_duration(text)
}

/// A client for the kubeconfig's context (or `context`), and the namespace to read: `namespace`,
/// else the context's, else `default`.
pub async fn connect(
    namespace: Option<&str>,
    context: Option<&str>,
) -> anyhow::Result<(Client, String)> {
    let options = kube::config::KubeConfigOptions {
        context: context.map(str::to_owned),
        ..Default::default()
    };
    let config = match context {
        Some(_) => kube::Config::from_kubeconfig(&options).await?,
        None => kube::Config::infer().await?,
    };
    let namespace = namespace.map_or_else(|| config.default_namespace.clone(), str::to_owned);
    let client = Client::try_from(config)?;
    Ok((client, namespace))
}

/// Runs `cli`, writing to `out`. `terminal`: `out` is a terminal, so `--watch` redraws in place.
/// `--watch` and `--follow` end when `stop` does (the binary's Ctrl-C), or at their timeout.
pub async fn run<W: Write>(
    cli: Cli,
    out: &mut W,
    terminal: bool,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let (client, namespace) = connect(cli.namespace.as_deref(), cli.context.as_deref())
        .await
        .context("no cluster to talk to (kubectl modelops reads the same kubeconfig as kubectl)")?;
    match cli.command {
        Command::Get {
            target,
            watch: false,
            ..
        } => {
            let target = target
                .as_deref()
                .map(Target::parse)
                .transpose()
                .map_err(|e| anyhow!(e))?;
            let snapshot = snapshot(&client, &namespace).await?;
            let text = render::tree(&snapshot, target.as_ref()).map_err(|e| anyhow!(e))?;
            out.write_all(text.as_bytes())?;
        }
        Command::Get {
            target,
            watch: true,
            timeout,
        } => {
            let target = target
                .as_deref()
                .map(Target::parse)
                .transpose()
                .map_err(|e| anyhow!(e))?;
            let stop = async {
                match timeout {
                    Some(t) => {
                        let _ = tokio::time::timeout(t, stop).await;
                    }
                    None => stop.await,
                }
            };
            watch(&client, &namespace, target.as_ref(), out, terminal, stop).await?;
        }
        Command::History { name } => {
            let snapshot = snapshot(&client, &namespace).await?;
            let text = render::history(&snapshot, &name).map_err(|e| anyhow!(e))?;
            out.write_all(text.as_bytes())?;
        }
        Command::Logs {
            name,
            follow,
            trial,
            tail,
        } => logs(&client, &namespace, &name, follow, trial, tail, out, stop).await?,
    }
    out.flush()?;
    Ok(())
}

/// What the caller may not do, said with the kind and namespace.
fn denied(kind: &str, namespace: &str, error: kube::Error) -> anyhow::Error {
    match &error {
        kube::Error::Api(status) if status.code == 403 => anyhow!(
            "you may not list {kind} in namespace {namespace} (ask for a Role that allows it): {}",
            status.message
        ),
        kube::Error::Api(status) if status.code == 404 => anyhow!(
            "the API server does not know {kind}: are the modelops CRDs installed? ({})",
            status.message
        ),
        _ => anyhow::Error::new(error).context(format!("listing {kind} in namespace {namespace}")),
    }
}

/// The four kinds of `namespace`, read now.
pub async fn snapshot(client: &Client, namespace: &str) -> anyhow::Result<Snapshot> {
    let (datasets, jobs, deployments, monitors) = futures::try_join!(
        list::<Dataset>(client, namespace, "datasets"),
        list::<TrainingJob>(client, namespace, "trainingjobs"),
        list::<ModelDeployment>(client, namespace, "modeldeployments"),
        list::<Monitor>(client, namespace, "monitors"),
    )?;
    Ok(Snapshot {
        namespace: namespace.to_owned(),
        now: Timestamp::now(),
        datasets,
        jobs,
        deployments,
        monitors,
    })
}

/// Every `K` (`plural`, for the errors) of `namespace`.
async fn list<K: Namespaced>(
    client: &Client,
    namespace: &str,
    plural: &str,
) -> anyhow::Result<Vec<K>> {
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    Ok(api
        .list(&ListParams::default())
        .await
        .map_err(|e| denied(plural, namespace, e))?
        .items)
}

/// What the plugin reads: a namespaced kind it can list and watch.
pub trait Namespaced:
    kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + Clone
    + serde::de::DeserializeOwned
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
}

impl<K> Namespaced for K where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static
{
}

/// The objects of a store, copied out of it.
fn cloned<K: Clone>(objects: Vec<std::sync::Arc<K>>) -> Vec<K> {
    objects.into_iter().map(|o| (*o).clone()).collect()
}

/// Clears a terminal and puts the cursor at its top left.
const CLEAR: &str = "\x1b[H\x1b[2J";

/// A store of the `K`s of `namespace`, and the stream that keeps it filled (one item per
/// change; watch errors are retried with backoff).
fn watched<K: Namespaced>(
    client: &Client,
    namespace: &str,
) -> (
    reflector::Store<K>,
    futures::stream::BoxStream<'static, Result<(), watcher::Error>>,
) {
    let (store, writer) = reflector::store();
    let api = Api::namespaced(client.clone(), namespace);
    let changes = reflector(writer, watcher(api, watcher::Config::default()))
        .default_backoff()
        .map_ok(|_| ())
        .boxed();
    (store, changes)
}

/// Prints the tree, then again each time one of the four kinds changes (changes that arrive
/// together print once), until `stop`. On a terminal each tree replaces the last; elsewhere
/// they follow one another, a blank line between.
pub async fn watch<W: Write>(
    client: &Client,
    namespace: &str,
    target: Option<&Target>,
    out: &mut W,
    terminal: bool,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    // The first list says at once what the caller may not see.
    snapshot(client, namespace).await?;
    let (datasets, w1) = watched::<Dataset>(client, namespace);
    let (jobs, w2) = watched::<TrainingJob>(client, namespace);
    let (deployments, w3) = watched::<ModelDeployment>(client, namespace);
    let (monitors, w4) = watched::<Monitor>(client, namespace);
    let changes = futures::stream::select_all([w1, w2, w3, w4]);
    let mut changes = changes.ready_chunks(256);
    tokio::pin!(stop);
    let mut last = String::new();
    loop {
        tokio::select! {
            () = &mut stop => return Ok(()),
            batch = changes.next() => {
                if batch.is_none() {
                    return Ok(());
                }
            }
        }
        // Until each kind's first list is in, a tree would be missing objects: wait for more
        // (the stores fill as the streams are polled, so this must not block).
        let ready = |ready: Option<Result<(), _>>| matches!(ready, Some(Ok(())));
        if !(ready(datasets.wait_until_ready().now_or_never())
            && ready(jobs.wait_until_ready().now_or_never())
            && ready(deployments.wait_until_ready().now_or_never())
            && ready(monitors.wait_until_ready().now_or_never()))
        {
            continue;
        }
        let snapshot = Snapshot {
            namespace: namespace.to_owned(),
            now: Timestamp::now(),
            datasets: cloned(datasets.state()),
            jobs: cloned(jobs.state()),
            deployments: cloned(deployments.state()),
            monitors: cloned(monitors.state()),
        };
        // A target deleted while watched: say so rather than end.
        let text = render::tree(&snapshot, target).unwrap_or_else(|e| format!("{e}\n"));
        if text == last {
            continue;
        }
        if terminal {
            write!(out, "{CLEAR}{text}")?;
        } else {
            if !last.is_empty() {
                writeln!(out)?;
            }
            write!(out, "{text}")?;
        }
        out.flush()?;
        last = text;
    }
}

/// Prints the logs of TrainingJob `name`'s worker pods, oldest first, each under a line that
/// names it when there are several; with `follow`, what the pods write next, each line prefixed
/// by its pod's name when there are several, until they end or `stop`.
#[allow(clippy::too_many_arguments)]
pub async fn logs<W: Write>(
    client: &Client,
    namespace: &str,
    name: &str,
    follow: bool,
    trial: Option<i32>,
    tail: Option<i64>,
    out: &mut W,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let jobs: Api<TrainingJob> = Api::namespaced(client.clone(), namespace);
    let job = jobs
        .get_opt(name)
        .await
        .map_err(|e| denied("trainingjobs", namespace, e))?;
    let Some(job) = job else {
        return Err(anyhow!(
            "no TrainingJob named {name:?} in namespace {namespace}"
        ));
    };
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let mut selector = format!("{TRAININGJOB_LABEL}={name}");
    if let Some(trial) = trial {
        selector.push_str(&format!(",{TRIAL_LABEL}={trial}"));
    }
    let mut found = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| denied("pods", namespace, e))?
        .items;
    if found.is_empty() {
        let phase = job
            .status
            .and_then(|s| s.phase)
            .map_or("Pending", |p| p.as_str());
        let which = trial.map(|t| format!(" of trial {t}")).unwrap_or_default();
        return Err(anyhow!(
            "TrainingJob {name} has no worker pods{which} (it is {phase}: pods come once it runs, and go with its Jobs' ttlSecondsAfterFinished)"
        ));
    }
    found.sort_by_key(|p| (p.metadata.creation_timestamp.clone(), p.name_any()));
    let several = found.len() > 1;
    let params = LogParams {
        container: Some("worker".to_owned()),
        tail_lines: tail,
        ..LogParams::default()
    };
    if !follow {
        for pod in &found {
            if several {
                writeln!(out, "==> pod {} <==", pod.name_any())?;
            }
            match pods.logs(&pod.name_any(), &params).await {
                Ok(text) => out.write_all(text.as_bytes())?,
                // A pod that has not started has no log yet: say so and go on.
                Err(kube::Error::Api(status)) if status.code == 400 => {
                    writeln!(out, "(no log yet: {})", status.message)?
                }
                Err(e) => return Err(denied("pods/log", namespace, e)),
            }
        }
        return Ok(());
    }
    let params = LogParams {
        follow: true,
        ..params
    };
    let mut streams = Vec::new();
    for pod in &found {
        let pod_name = pod.name_any();
        let lines = pods
            .log_stream(&pod_name, &params)
            .await
            .map_err(|e| denied("pods/log", namespace, e))?
            .lines();
        let prefix = if several {
            format!("[{pod_name}] ")
        } else {
            String::new()
        };
        streams.push(
            lines
                .map(move |line| line.map(|l| format!("{prefix}{l}")))
                .boxed(),
        );
    }
    let mut lines = futures::stream::select_all(streams);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return Ok(()),
            line = lines.next() => match line {
                Some(line) => {
                    writeln!(out, "{}", line?)?;
                    out.flush()?;
                }
                None => return Ok(()),
            }
        }
    }
}
