//! `serve`: one revision of a model over HTTP and gRPC, Open Inference Protocol v2.
//!
//! The server listens at once (liveness answers while the model loads) and becomes ready once
//! the model is loaded, its digest verified and a warm-up forward pass done. A model that fails
//! to load — a digest mismatch above all — leaves the server up but never ready, so a Deployment
//! sends it no traffic and a corrupted artifact is never served. On SIGTERM (or SIGINT) it stops
//! accepting connections, answers the requests it holds and exits.
//!
//! The parts: [`protocol`] (the JSON of requests and responses), [`batcher`] (dynamic batching
//! on the model thread), [`feedback`] (authenticated feedback ids), [`metrics`] (Prometheus),
//! [`http`] (the routes) and [`grpc`] (the `inference.GRPCInferenceService`).

pub mod batcher;
pub mod feedback;
#[cfg(test)]
mod fuzz;
pub mod grpc;
pub mod http;
pub mod metrics;
mod plain_request;
pub mod protocol;

use crate::data::prepared::DataKind;
use crate::failure::Failure;
use crate::model::Task;
use crate::model::predict::{LoadedModel, Prediction};
use crate::store::Location;
use anyhow::{Context, Result, bail};
use batcher::{BatchConfig, Batcher};
use feedback::FeedbackKey;
use http::{Served, Server, Settings};
use modelops_api::card::ModelCard;
use modelops_api::profile::Profile;
use modelops_api::workorder::layout;
use protocol::{InputKind, ModelInfo, OutputKind, Row, RowOutput};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The largest model file (weights, card, module) a server copies.
pub const MAX_MODEL_FILE_BYTES: u64 = 16 << 30;

/// The largest profile a server reads.
const MAX_PROFILE_BYTES: u64 = 64 << 20;

/// The most Datasets whose folders are searched for the model's profile.
const MAX_DATASETS_SEARCHED: usize = 1000;

/// Requests queued for the model thread at most; more are answered 503.
pub const QUEUE_LENGTH: usize = 4096;

/// Feedback ids a replica remembers against replays.
pub const REPLAY_CAPACITY: usize = 1 << 20;

/// What `serve` is asked to do.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The model name in paths and metrics (the ModelDeployment's name).
    pub name: String,
    /// The revision served.
    pub revision: i32,
    /// The model folder in the store.
    pub model: Location,
    /// The digest the model's card (`model.json`) must have; the card pins the weights'.
    pub model_digest: String,
    /// Batching.
    pub batch: BatchConfig,
    /// Where to listen.
    pub address: SocketAddr,
    /// Where to listen for gRPC (`None`: no gRPC).
    pub grpc_address: Option<SocketAddr>,
    /// The namespace's root in the store, where the Dataset profile is looked for.
    pub store_root: Location,
    /// Where the model is copied before it loads.
    pub scratch_dir: PathBuf,
    /// Request and feedback limits.
    pub settings: Settings,
    /// The feedback key shared by the replicas.
    pub feedback_key: FeedbackKey,
    /// Where the model runs.
    pub device: tch::Device,
    /// libtorch threads (`None`: libtorch's default).
    pub threads: Option<usize>,
}

/// Serves until SIGTERM or SIGINT, then drains and returns.
pub fn run(config: ServeConfig) -> Result<()> {
    if let Some(threads) = config.threads {
        tch::set_num_threads(threads.max(1) as i32);
    }
    // The HTTP side parses JSON and signs ids; the model thread runs libtorch's threads. A few
    // runtime threads are enough, and more would only compete with libtorch for the pod's cores.
    let http_threads = config.threads.unwrap_or(2).clamp(1, 4);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(http_threads)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(config))
}

async fn serve(config: ServeConfig) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(config.address)
        .await
        .with_context(|| format!("listening on {}", config.address))?;
    let address = listener.local_addr()?;
    let grpc_listener = match config.grpc_address {
        Some(grpc) => Some(
            tokio::net::TcpListener::bind(grpc)
                .await
                .with_context(|| format!("listening for gRPC on {grpc}"))?,
        ),
        None => None,
    };
    let server = Arc::new(Server::new(
        &config.name,
        config.revision,
        config.feedback_key.clone(),
        config.settings.clone(),
    ));
    tracing::info!(
        "serving model {} revision {} on http://{address} (batches of up to {} rows, {:?} timeout)",
        config.name,
        config.revision,
        config.batch.max_rows,
        config.batch.timeout
    );
    if let Some(grpc) = &grpc_listener {
        tracing::info!(
            "gRPC (inference.GRPCInferenceService) on {}",
            grpc.local_addr()?
        );
    }
    // Loading may take a while (a large model on a slow volume): liveness answers meanwhile.
    let loading = Arc::clone(&server);
    let span = tracing::info_span!("load");
    std::thread::Builder::new()
        .name("load".into())
        .spawn(
            move || match span.in_scope(|| load(&config, loading.metrics())) {
                Ok(served) => {
                    let line = format!(
                        "ready: model {} revision {} ({}, digest {})",
                        served.info.name,
                        served.info.revision,
                        served.info.platform,
                        served.info.digest
                    );
                    // Ready first, so that whoever reads the line finds the server ready.
                    loading.set_ready(served);
                    tracing::info!("{line}");
                }
                Err(error) => {
                    let message = format!("{error:#}");
                    tracing::warn!("NOT READY: the model is not served: {message}");
                    loading.set_failed(message);
                }
            },
        )
        .context("starting the loader thread")?;
    // One signal stops both transports.
    let (stop, stopping) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    let stopped = move || {
        let mut stopping = stopping.clone();
        async move {
            let _ = stopping.wait_for(|stop| *stop).await;
        }
    };
    let grpc = grpc_listener
        .map(|listener| tokio::spawn(grpc::serve(listener, Arc::clone(&server), stopped())));
    http::serve(listener, Arc::clone(&server), stopped()).await?;
    if let Some(grpc) = grpc {
        grpc.await?.context("serving gRPC")?;
    }
    // Every request is answered; end the model thread (joining it is blocking work).
    let served = server.stop();
    tokio::task::spawn_blocking(move || drop(served)).await?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let signal_name = match signal(SignalKind::terminate()) {
        Ok(mut terminate) => tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = tokio::signal::ctrl_c() => "SIGINT",
        },
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    };
    tracing::info!(
        "{signal_name}: not ready any more; answering the requests in flight, then stopping"
    );
}

/// Copies the model folder from the store into `dir`: its card, weights and module, nothing
/// else, each of a bounded size.
fn fetch_model(model: &Location, dir: &Path) -> Result<()> {
    let _ = std::fs::remove_dir_all(dir);
    for name in [
        layout::MODEL_JSON,
        layout::MODEL_SAFETENSORS,
        layout::MODULE_PT,
    ] {
        let found = model
            .child(name)?
            .download(&dir.join(name), MAX_MODEL_FILE_BYTES)?;
        if !found && name != layout::MODULE_PT {
            return Err(Failure::error(
                "ArtifactNotFound",
                false,
                format!(
                    "{} has no {name}: the URI must name a model folder (holding model.safetensors and model.json)",
                    model.uri()
                ),
            ));
        }
    }
    Ok(())
}

/// Loads and verifies the model, finds its profile, warms it up and starts its thread.
fn load(config: &ServeConfig, metrics: &metrics::Metrics) -> Result<Served> {
    let model_dir = config.scratch_dir.join("model");
    fetch_model(&config.model, &model_dir)?;
    let model = LoadedModel::load(&model_dir, Some(&config.model_digest), config.device)?;
    let info = model_info(&config.name, config.revision, &model)?;
    let profile = served_profile(config, &model.card, &info);
    let profile_json = profile
        .as_ref()
        .map(|p| serde_json::to_string(p).expect("a profile serialises"));
    let classes = match &info.output {
        OutputKind::Classes(classes) => classes.clone(),
        OutputKind::Value => Vec::new(),
    };
    let mut forward = forward_fn(model, &info);
    // A first pass allocates what libtorch allocates lazily, and proves the model runs.
    let warm_up = match &info.input {
        InputKind::Table { features } => Row::Features(vec![0.0; features.len()]),
        InputKind::Text => Row::Text(String::new()),
    };
    forward(vec![warm_up]).map_err(|e| anyhow::anyhow!("the warm-up forward pass failed: {e}"))?;
    metrics.set_model(&classes, profile.as_ref());
    let batcher = Batcher::spawn(config.batch, forward);
    Ok(Served {
        info,
        batcher,
        profile: profile_json,
    })
}

/// The profile a server serves (and counts its inputs on): the Dataset profile of the card's
/// data set, with the card's prediction histogram (regression) as its `predictions`. `None`
/// without a Dataset profile that profiles the model's inputs; every reason is logged.
fn served_profile(config: &ServeConfig, card: &ModelCard, info: &ModelInfo) -> Option<Profile> {
    let mut profile = match find_profile(&config.store_root, &card.dataset_digest) {
        Ok(Some((uri, bytes))) => match read_profile(&uri, &bytes, info) {
            Ok(profile) => {
                tracing::info!("input histograms on the bins of {uri}");
                profile
            }
            Err(error) => {
                tracing::warn!("no input histograms: {error:#}");
                return None;
            }
        },
        Ok(None) => {
            tracing::info!(
                "no input histograms: no profile of data set {} found in {}",
                card.dataset_digest,
                config.store_root.uri()
            );
            return None;
        }
        Err(error) => {
            tracing::warn!("no input histograms: {error:#}");
            return None;
        }
    };
    profile.predictions = match &card.predictions {
        Some(predictions) => match predictions.check() {
            Ok(()) => {
                tracing::info!(
                    "predicted values on the bins of the model card's training predictions"
                );
                Some(predictions.clone())
            }
            Err(reason) => {
                tracing::info!(
                    "no prediction histogram: the model card's predictions have {reason}"
                );
                None
            }
        },
        None => None,
    };
    Some(profile)
}

/// The protocol's view of a loaded model.
pub fn model_info(name: &str, revision: i32, model: &LoadedModel) -> Result<ModelInfo> {
    let card = &model.card;
    let input = match card.input.kind {
        DataKind::Table => InputKind::Table {
            features: card.input.features.clone(),
        },
        DataKind::Text => InputKind::Text,
    };
    let output = match (card.task, &card.classes) {
        (Task::Classification, Some(classes)) => OutputKind::Classes(classes.clone()),
        (Task::Classification, None) => bail!("the model card of a classifier lists no classes"),
        (Task::Regression, _) => OutputKind::Value,
    };
    Ok(ModelInfo {
        name: name.to_owned(),
        revision,
        platform: format!("modelops-{}", card.architecture.name()),
        digest: format!("sha256:{}", model.digest),
        input,
        output,
    })
}

/// The forward function the model thread runs: raw rows in, one output per row out.
fn forward_fn(
    model: LoadedModel,
    info: &ModelInfo,
) -> impl FnMut(Vec<Row>) -> Result<Vec<RowOutput>, String> + Send + 'static {
    let class_index: HashMap<String, usize> = match &info.output {
        OutputKind::Classes(classes) => classes
            .iter()
            .enumerate()
            .map(|(i, c)| (c.clone(), i))
            .collect(),
        OutputKind::Value => HashMap::new(),
    };
    move |rows: Vec<Row>| {
        let prediction = if matches!(rows.first(), Some(Row::Text(_))) {
            let texts: Vec<String> = rows
                .into_iter()
                .map(|r| match r {
                    Row::Text(text) => text,
                    Row::Features(_) => String::new(),
                })
                .collect();
            model.predict_texts(&texts)
        } else {
            let features: Vec<Vec<f64>> = rows
                .into_iter()
                .map(|r| match r {
                    Row::Features(values) => values,
                    Row::Text(_) => Vec::new(),
                })
                .collect();
            model.predict_rows(&features)
        }
        .map_err(|e| format!("{e:#}"))?;
        Ok(match prediction {
            Prediction::Classes {
                labels,
                probabilities,
            } => labels
                .iter()
                .zip(probabilities)
                .map(|(label, probabilities)| RowOutput::Class {
                    index: class_index.get(label).copied().unwrap_or(0),
                    probabilities,
                })
                .collect(),
            Prediction::Values(values) => values.into_iter().map(RowOutput::Value).collect(),
        })
    }
}

/// The profile of the card's data set: `<root>/datasets/<name>/<hex digest>/profile.json`
/// (content-addressed, so any Dataset's match is the right one), with its URI.
fn find_profile(root: &Location, dataset_digest: &str) -> Result<Option<(String, Vec<u8>)>> {
    let hex = layout::digest_hex(dataset_digest);
    if hex.is_empty() {
        return Ok(None);
    }
    let datasets = root.child(layout::DATASETS_DIR)?;
    for name in datasets.folders()?.into_iter().take(MAX_DATASETS_SEARCHED) {
        let candidate = datasets.child(&format!("{name}/{hex}/{}", layout::PROFILE_JSON))?;
        if let Some(bytes) = candidate.get(MAX_PROFILE_BYTES)? {
            return Ok(Some((candidate.uri(), bytes)));
        }
    }
    Ok(None)
}

/// Reads a profile and checks that it profiles the model's inputs.
fn read_profile(uri: &str, bytes: &[u8], info: &ModelInfo) -> Result<Profile> {
    let mut profile: Profile =
        serde_json::from_slice(bytes).with_context(|| format!("parsing {uri}"))?;
    // The predictions are the model's, from its card: whatever a Dataset profile says is not.
    profile.predictions = None;
    let profiled: Vec<&str> = profile.features.iter().map(|f| f.name.as_str()).collect();
    let expected: Vec<&str> = match &info.input {
        InputKind::Table { features } => features.iter().map(String::as_str).collect(),
        InputKind::Text => vec!["textLength"],
    };
    if profiled != expected {
        bail!("{uri} profiles the features {profiled:?}, not the model's {expected:?}");
    }
    if let Err(reason) = profile.check() {
        bail!("{uri}: {reason}");
    }
    Ok(profile)
}
