//! The operator's work orders (`modelops_api::workorder`), turned into the worker's own
//! configurations, run, and answered with the results the operator reads back.
//!
//! This is the only module that reads specs and work orders: the data, model and training code
//! take plain values, so the API can grow without touching them. (They do share the artifact
//! formats with the operator — the profile, the model card, the file names — which are plain
//! data in `modelops_api` too.)

use crate::data::read::{Format, LabelKind, Schema};
use crate::data::split::SplitConfig;
use crate::data::{self, PrepareConfig};
use crate::failure::{Failure, Reason};
use crate::model::{Architecture, CnnOptions, MlpOptions, TextLstmOptions, TorchscriptOptions};
use crate::serve::batcher::BatchConfig;
use crate::serve::feedback::FeedbackKey;
use crate::serve::http::{ConnectionLimits, Settings};
use crate::serve::{self, QUEUE_LENGTH, REPLAY_CAPACITY, ServeConfig};
use crate::source;
use crate::store::Location;
use crate::train::checkpoint::{Mirror, SharedMirror};
use crate::train::early_stopping::{EarlyStopping, Metric};
use crate::train::loss::Loss;
use crate::train::optim::{OptimizerConfig, OptimizerKind};
use crate::train::schedule::Schedule;
use crate::train::{self, Hyperparameters, TrainConfig};
use anyhow::Result;
use modelops_api::common::parse_duration;
use modelops_api::dataset::{self as dataset_api, DatasetSpec, Source};
use modelops_api::serving::{
    DEFAULT_FEEDBACK_MAX_AGE, DEFAULT_MAX_REQUEST_BYTES, FEEDBACK_KEY_ENV, MIN_FEEDBACK_KEY_BYTES,
};
use modelops_api::trainingjob::{self as job_api, TrainingJobSpec};
use modelops_api::workorder::{
    PROGRESS_PATH, PROGRESS_PORT, PrepareOrder, PrepareResult, SCRATCH_DIR, ServeOrder, TrainOrder,
    TrainResult, layout,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Environment variable overriding libtorch's thread count (default: the pod's CPU limit).
pub const THREADS_ENV: &str = "MODELOPS_THREADS";

/// Environment variable naming the folder for local copies of artifacts (default
/// [`SCRATCH_DIR`], an `emptyDir` in the pod).
pub const SCRATCH_DIR_ENV: &str = "MODELOPS_SCRATCH_DIR";

/// Environment variable overriding the port of a training pod's progress (default
/// [`PROGRESS_PORT`]; `0` lets the kernel pick, for tests that train side by side).
pub const PROGRESS_PORT_ENV: &str = "MODELOPS_PROGRESS_PORT";

/// The largest prepared data file a training pod copies.
const MAX_DATASET_FILE_BYTES: u64 = 64 << 30;

/// The largest checkpoint file a training pod copies.
const MAX_CHECKPOINT_FILE_BYTES: u64 = 16 << 30;

/// The most files of a Dataset version or a checkpoint folder copied.
const MAX_FOLDER_OBJECTS: usize = 256;

/// The folder for local copies of artifacts, emptied for `purpose`.
fn scratch(purpose: &str) -> Result<PathBuf> {
    let root = std::env::var(SCRATCH_DIR_ENV).unwrap_or_else(|_| SCRATCH_DIR.to_owned());
    // The process id keeps two workers that share a scratch folder (tests) apart; in a pod the
    // worker is always the same process id, so a restarted container clears its predecessor's.
    let dir = Path::new(&root).join(format!("{purpose}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)
        .map_err(|e| anyhow::anyhow!("creating the scratch folder {}: {e}", dir.display()))
        .reason("ScratchUnavailable", true)?;
    Ok(dir)
}

/// The preparation a Dataset spec asks for.
pub fn prepare_config(spec: &DatasetSpec) -> PrepareConfig {
    let label_kind = spec.schema.label_kind();
    PrepareConfig {
        format: match spec.format {
            dataset_api::DataFormat::Csv => Format::Csv,
            dataset_api::DataFormat::Jsonl => Format::Jsonl,
        },
        schema: Schema {
            label: spec.schema.label.clone(),
            label_kind: Some(match label_kind {
                dataset_api::LabelKind::Categorical => LabelKind::Categorical,
                dataset_api::LabelKind::Numeric => LabelKind::Numeric,
            }),
            features: spec.schema.features.clone(),
            text: spec.schema.text.clone(),
        },
        drop_invalid_rows: spec.preprocessing.drop_invalid_rows,
        normalize: spec.preprocessing.normalize,
        split: SplitConfig {
            train: spec.split.train,
            validation: spec.split.validation,
            test: spec.split.test,
            seed: spec.split.seed as u64,
            stratify: spec.split.stratify(label_kind),
        },
    }
}

/// Environment variable naming the address a server listens on (default `0.0.0.0`, every
/// interface of the pod; tests use `127.0.0.1`).
pub const LISTEN_ADDRESS_ENV: &str = "MODELOPS_LISTEN_ADDRESS";

/// Runs a prepare order: fetch the source, prepare it, publish it, describe it.
pub fn prepare(order: &PrepareOrder) -> Result<PrepareResult> {
    let local = scratch("prepare")?;
    let downloaded = local.join("source");
    let fetch = tracing::info_span!("fetch");
    let source_path = match order.spec.source.get() {
        Some(Source::Http(http)) => {
            fetch.in_scope(|| source::download(&http.url, http.sha256.as_deref(), &downloaded))?;
            downloaded
        }
        Some(Source::S3(s3)) => {
            fetch
                .in_scope(|| source::download_object(&s3.uri, s3.sha256.as_deref(), &downloaded))?;
            downloaded
        }
        Some(Source::ConfigMap(_) | Source::Volume(_)) => match &order.source_path {
            Some(path) => PathBuf::from(path),
            None => {
                return Err(Failure::error(
                    "InvalidWorkOrder",
                    false,
                    "the work order has a configMap or volume source but no sourcePath; the operator must mount it",
                ));
            }
        },
        None => {
            return Err(Failure::error(
                "InvalidSpec",
                false,
                "spec.source: set exactly one of http, configMap, volume or s3",
            ));
        }
    };
    let source = source::open(&source_path)?;
    let output = Location::open(&order.output_uri)?;
    let config = prepare_config(&order.spec);
    let outcome = tracing::info_span!("validate")
        .in_scope(|| data::prepare(&source, &config, &local.join("out")))
        .reason("InvalidData", false)?;
    if let Some(first) = &outcome.first_rejection {
        tracing::info!(
            "dropped {} invalid rows; the first: {first}",
            outcome.manifest.rows.rejected
        );
    }
    // The folder is content-addressed: one that is complete (its dataset.json is written last)
    // holds these very bytes.
    let folder = output.child(&outcome.digest)?;
    let complete = folder.child(layout::DATASET_JSON)?.exists()?;
    if !complete {
        tracing::info_span!("publish")
            .in_scope(|| folder.upload_folder(&outcome.dir, layout::DATASET_JSON))?;
    }
    tracing::info!(
        "{} data set {}/{} as {}",
        if complete {
            "found already prepared"
        } else {
            "prepared"
        },
        order.namespace,
        order.name,
        folder.uri()
    );
    let artifact_uri = folder.uri();
    let rows = outcome.manifest.rows;
    Ok(PrepareResult {
        digest: layout::sha256_digest(&outcome.digest),
        profile_uri: format!("{artifact_uri}/{}", layout::PROFILE_JSON),
        artifact_uri,
        rows: dataset_api::RowCounts {
            total: rows.total as i64,
            train: rows.train as i64,
            validation: rows.validation as i64,
            test: rows.test as i64,
            rejected: rows.rejected as i64,
        },
        classes: outcome.manifest.classes.unwrap_or_default(),
        first_rejection: outcome.first_rejection.map(|first| {
            modelops_api::workorder::cut(
                &first.to_string(),
                modelops_api::workorder::FIRST_REJECTION_LIMIT,
            )
        }),
    })
}

fn widths(widths: &[i32]) -> Vec<i64> {
    widths.iter().map(|&w| i64::from(w)).collect()
}

/// A count from the API (int32 as Kubernetes APIs write numbers; the schema keeps it >= 0).
fn count(value: i32) -> usize {
    value.max(0) as usize
}

/// The architecture a TrainingJob's `spec.model` asks for; a torchscript module is read from
/// `module` (its local copy).
pub fn architecture(model: &job_api::ModelSpec, module: Option<&Path>) -> Result<Architecture> {
    Ok(match model.architecture {
        job_api::Architecture::Mlp => {
            let options = model.mlp_options();
            Architecture::Mlp(MlpOptions {
                hidden_layers: widths(&options.hidden_layers),
                activation: options.activation,
                dropout: options.dropout,
            })
        }
        job_api::Architecture::Cnn => {
            let Some(options) = &model.cnn else {
                return Err(Failure::error(
                    "InvalidSpec",
                    false,
                    "spec.model.cnn is required for architecture cnn: set spec.model.cnn.inputShape",
                ));
            };
            Architecture::Cnn(CnnOptions {
                input_shape: widths(&options.input_shape),
                conv_channels: widths(&options.conv_channels),
                kernel_size: i64::from(options.kernel_size),
                hidden_layers: widths(&options.hidden_layers),
                activation: options.activation,
                dropout: options.dropout,
            })
        }
        job_api::Architecture::TextLstm => {
            let options = model.text_lstm_options();
            Architecture::TextLstm(TextLstmOptions {
                vocabulary_size: count(options.vocabulary_size),
                max_length: count(options.max_length),
                embedding_dim: i64::from(options.embedding_dim),
                hidden_size: i64::from(options.hidden_size),
                layers: i64::from(options.layers),
                bidirectional: options.bidirectional,
                dropout: options.dropout,
            })
        }
        job_api::Architecture::Torchscript => {
            let (Some(_), Some(module)) = (&model.torchscript, module) else {
                return Err(Failure::error(
                    "InvalidSpec",
                    false,
                    "spec.model.torchscript is required for architecture torchscript: set spec.model.torchscript.path",
                ));
            };
            Architecture::Torchscript(TorchscriptOptions {
                module: module.to_owned(),
            })
        }
    })
}

/// The hyperparameters of a TrainingJob spec.
pub fn hyperparameters(spec: &TrainingJobSpec) -> Result<Hyperparameters> {
    let hyper = &spec.hyperparameters;
    let schedule = &hyper.learning_rate_schedule;
    let learning_rate_schedule = match schedule.type_ {
        job_api::ScheduleType::Constant => Schedule::Constant,
        job_api::ScheduleType::Exponential => match schedule.gamma {
            Some(gamma) => Schedule::Exponential { gamma },
            None => {
                return Err(Failure::error(
                    "InvalidSpec",
                    false,
                    "spec.hyperparameters.learningRateSchedule.gamma is required for type exponential",
                ));
            }
        },
        job_api::ScheduleType::Step => match schedule.step_size {
            Some(step_size) => Schedule::Step {
                step_size: count(step_size),
                gamma: schedule.gamma.unwrap_or(0.1),
            },
            None => {
                return Err(Failure::error(
                    "InvalidSpec",
                    false,
                    "spec.hyperparameters.learningRateSchedule.stepSize is required for type step",
                ));
            }
        },
        job_api::ScheduleType::Cosine => Schedule::Cosine {
            min_learning_rate: schedule.min_learning_rate.unwrap_or(0.0),
        },
    };
    Ok(Hyperparameters {
        epochs: count(hyper.epochs),
        batch_size: count(hyper.batch_size),
        optimizer: OptimizerConfig {
            kind: match hyper.optimizer.type_ {
                job_api::OptimizerType::Adam => OptimizerKind::Adam,
                job_api::OptimizerType::Sgd => OptimizerKind::Sgd,
                job_api::OptimizerType::Adamw => OptimizerKind::Adamw,
            },
            learning_rate: hyper.optimizer.learning_rate,
            weight_decay: hyper.optimizer.weight_decay,
            momentum: hyper.optimizer.momentum.unwrap_or(0.0),
        },
        learning_rate_schedule,
        loss: Some(match spec.loss() {
            job_api::Loss::CrossEntropy => Loss::CrossEntropy,
            job_api::Loss::Mse => Loss::Mse,
            job_api::Loss::Bce => Loss::Bce,
        }),
        early_stopping: hyper.early_stopping.as_ref().map(|early| EarlyStopping {
            metric: match early.metric {
                job_api::ValidationMetric::ValidationLoss => Metric::ValidationLoss,
                job_api::ValidationMetric::ValidationAccuracy => Metric::ValidationAccuracy,
            },
            patience: count(early.patience),
            min_delta: early.min_delta,
        }),
        // A negative seed is as good a seed as any: its bits are used as they are.
        seed: hyper.seed_or_default() as u64,
    })
}

/// libtorch threads: `MODELOPS_THREADS`, else the pod's CPU limit rounded up, else libtorch's
/// default (every core the process sees).
/// `cpu` is the quantity as written (`2`, `500m`).
pub fn threads(cpu: Option<&str>) -> Option<usize> {
    if let Some(threads) = std::env::var(THREADS_ENV)
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        return Some(threads.max(1));
    }
    let cpu = cpu?.trim();
    let cores = match cpu.strip_suffix('m') {
        Some(millis) => millis.parse::<f64>().ok()? / 1000.0,
        None => cpu.parse::<f64>().ok()?,
    };
    Some((cores.ceil() as usize).max(1))
}

/// The checkpoint folder's copy in the store.
impl Mirror for Location {
    fn put(&self, name: &str, bytes: &[u8]) -> Result<()> {
        self.child(name)?.put(bytes.to_vec())
    }

    fn delete(&self, name: &str) -> Result<()> {
        self.child(name)?.delete()
    }
}

/// Where a train order's artifacts are copied to, in the pod.
pub struct TrainFolders {
    /// The prepared Dataset version.
    pub dataset: PathBuf,
    /// The checkpoint folder (resumed from the store's copy).
    pub checkpoints: PathBuf,
    /// Where the model folder is written before it is uploaded.
    pub models: PathBuf,
    /// The torchscript module, when the model is one.
    pub module: Option<PathBuf>,
}

/// Copies what a train order reads from the store into `scratch`: the Dataset version (which
/// must be complete), the checkpoint folder and the torchscript module.
pub fn fetch_training_inputs(order: &TrainOrder, scratch: &Path) -> Result<TrainFolders> {
    let folders = TrainFolders {
        // The folder keeps the digest as its name: training checks the data against it.
        dataset: scratch
            .join("dataset")
            .join(layout::digest_hex(&order.dataset_digest)),
        checkpoints: scratch.join("checkpoints"),
        models: scratch.join("models"),
        module: order
            .module_uri
            .as_ref()
            .map(|_| scratch.join(layout::MODULE_PT)),
    };
    let dataset = Location::open(&order.dataset_uri)?;
    dataset.download_folder(&folders.dataset, MAX_FOLDER_OBJECTS, MAX_DATASET_FILE_BYTES)?;
    if !folders.dataset.join(layout::DATASET_JSON).is_file() {
        return Err(Failure::error(
            "DatasetNotFound",
            true,
            format!(
                "{} holds no complete prepared Dataset (no {}); prepare the Dataset again",
                dataset.uri(),
                layout::DATASET_JSON
            ),
        ));
    }
    let checkpoints = Location::open(&order.checkpoint_uri)?;
    let copied = checkpoints.download_folder(
        &folders.checkpoints,
        MAX_FOLDER_OBJECTS,
        MAX_CHECKPOINT_FILE_BYTES,
    )?;
    if copied > 0 {
        tracing::info!(
            "copied {copied} checkpoint files from {}",
            checkpoints.uri()
        );
    }
    if let (Some(uri), Some(path)) = (&order.module_uri, &folders.module) {
        let module = Location::open(uri)?;
        if !module.download(path, MAX_CHECKPOINT_FILE_BYTES)? {
            return Err(Failure::error(
                "ArtifactNotFound",
                false,
                format!(
                    "the torchscript module {uri} does not exist; upload it or fix spec.model.torchscript.path"
                ),
            ));
        }
    }
    Ok(folders)
}

/// The training a train order asks for, on the local copies in `folders`.
pub fn train_config(
    order: &TrainOrder,
    folders: &TrainFolders,
    device: tch::Device,
) -> Result<TrainConfig> {
    let spec = order
        .effective_spec()
        .map_err(|message| Failure::error("InvalidTrial", false, message))?;
    let mirror: Arc<dyn Mirror> = Arc::new(Location::open(&order.checkpoint_uri)?);
    Ok(TrainConfig {
        dataset_dir: folders.dataset.clone(),
        expected_dataset_digest: Some(order.dataset_digest.clone()),
        task: spec.task,
        architecture: architecture(&spec.model, folders.module.as_deref())?,
        hyperparameters: hyperparameters(&spec)?,
        checkpoint_dir: folders.checkpoints.clone(),
        checkpoint_mirror: Some(SharedMirror(mirror)),
        models_dir: folders.models.clone(),
        device,
        threads: threads(spec.resources.cpu.as_ref().map(|q| q.0.as_str())),
        trial: order.trial.as_ref().map(|t| t.index.max(0) as u32),
    })
}

/// The training progress as Prometheus gauges, from one registry per process, set from the
/// latest `progress.json` on every scrape of `/metrics`.
struct ProgressGauges {
    registry: prometheus::Registry,
    epoch: prometheus::Gauge,
    total_epochs: prometheus::Gauge,
    train_loss: prometheus::Gauge,
    validation_loss: prometheus::Gauge,
    validation_accuracy: prometheus::Gauge,
    samples_per_second: prometheus::Gauge,
}

impl ProgressGauges {
    fn new() -> Self {
        let registry = prometheus::Registry::new();
        let gauge = |name: &str, help: &str| {
            let gauge = prometheus::Gauge::new(name, help).expect("a valid gauge");
            registry
                .register(Box::new(gauge.clone()))
                .expect("registered once");
            gauge
        };
        Self {
            epoch: gauge("modelops_training_epoch", "Epochs finished so far."),
            total_epochs: gauge(
                "modelops_training_total_epochs",
                "Epochs the run is asked for.",
            ),
            train_loss: gauge(
                "modelops_training_train_loss",
                "Training loss of the last epoch.",
            ),
            validation_loss: gauge(
                "modelops_training_validation_loss",
                "Validation loss of the last epoch.",
            ),
            validation_accuracy: gauge(
                "modelops_training_validation_accuracy",
                "Validation accuracy of the last epoch (classification).",
            ),
            samples_per_second: gauge(
                "modelops_training_samples_per_second",
                "Training throughput of the last epoch, in samples per second.",
            ),
            registry,
        }
    }

    /// The Prometheus text of `progress` (a loss or accuracy the run does not measure is NaN).
    fn render(&self, progress: Option<&modelops_api::trainingjob::TrainingProgress>) -> String {
        let value = |v: Option<f64>| v.unwrap_or(f64::NAN);
        self.epoch.set(progress.map_or(0.0, |p| f64::from(p.epoch)));
        self.total_epochs
            .set(progress.map_or(0.0, |p| f64::from(p.total_epochs)));
        self.train_loss
            .set(value(progress.and_then(|p| p.train_loss)));
        self.validation_loss
            .set(value(progress.and_then(|p| p.validation_loss)));
        self.validation_accuracy
            .set(value(progress.and_then(|p| p.validation_accuracy)));
        self.samples_per_second
            .set(value(progress.and_then(|p| p.samples_per_second)));
        let mut out = Vec::new();
        prometheus::Encoder::encode(
            &prometheus::TextEncoder::new(),
            &self.registry.gather(),
            &mut out,
        )
        .expect("the text encoding does not fail");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

/// Answers [`PROGRESS_PATH`] with the latest `progress.json` of `checkpoints`, and `/metrics`
/// with the same as Prometheus gauges, in the background, for the operator and for Prometheus.
/// A port that cannot be bound only costs the status its progress.
fn serve_progress(checkpoints: &Path) {
    let port = std::env::var(PROGRESS_PORT_ENV)
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(PROGRESS_PORT);
    let host = std::env::var(LISTEN_ADDRESS_ENV).unwrap_or_else(|_| "0.0.0.0".to_owned());
    let file = checkpoints.join(layout::PROGRESS_JSON);
    let bound = crate::store::runtime().block_on(tokio::net::TcpListener::bind((host, port)));
    let listener = match bound {
        Ok(listener) => listener,
        Err(error) => {
            tracing::info!("progress is not served: port {port}: {error}");
            return;
        }
    };
    let gauges = std::sync::Arc::new(ProgressGauges::new());
    let metrics_file = file.clone();
    let metrics = axum::routing::get(move || {
        let (file, gauges) = (metrics_file.clone(), gauges.clone());
        async move {
            let progress = tokio::fs::read(&file)
                .await
                .ok()
                .and_then(|bytes| serde_json::from_slice(&bytes).ok());
            (
                [(
                    axum::http::header::CONTENT_TYPE,
                    "text/plain; version=0.0.4",
                )],
                gauges.render(progress.as_ref()),
            )
        }
    });
    let app = axum::Router::new().route("/metrics", metrics).route(
        PROGRESS_PATH,
        axum::routing::get(move || {
            let file = file.clone();
            async move {
                use axum::response::IntoResponse;
                match tokio::fs::read(&file).await {
                    Ok(bytes) => (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        bytes,
                    )
                        .into_response(),
                    Err(_) => axum::http::StatusCode::NOT_FOUND.into_response(),
                }
            }
        }),
    );
    crate::store::runtime().spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
}

/// Uploads the model folder `local` to `<modelsUri>/<hex digest>/`, the card last, unless a
/// complete copy is there already (same digest, same bytes); returns its URI.
fn publish_model(order: &TrainOrder, local: &Path, digest: &str) -> Result<String> {
    let folder = Location::open(&order.models_uri)?.child(digest)?;
    if !folder.child(layout::MODEL_JSON)?.exists()? {
        folder.upload_folder(local, layout::MODEL_JSON)?;
    }
    Ok(folder.uri())
}

/// Runs a train order: train (or resume), evaluate, publish, describe.
pub fn train(order: &TrainOrder, device: tch::Device) -> Result<TrainResult> {
    let local = scratch("train")?;
    let folders = tracing::info_span!("fetch").in_scope(|| fetch_training_inputs(order, &local))?;
    serve_progress(&folders.checkpoints);
    let config = train_config(order, &folders, device)?;
    tracing::info!(
        "training {}/{}: {} on {} for {} epochs (device {}, {} threads)",
        order.namespace,
        order.name,
        config.architecture.name(),
        order.dataset_digest,
        config.hyperparameters.epochs,
        train::device_name(device),
        config
            .threads
            .map_or_else(|| tch::get_num_threads().to_string(), |t| t.to_string()),
    );
    let outcome = tracing::info_span!("train", epochs = config.hyperparameters.epochs)
        .in_scope(|| train::run(&config))
        .reason("TrainingFailed", false)?;
    let model_uri = tracing::info_span!("publish")
        .in_scope(|| publish_model(order, &outcome.dir, &outcome.digest))?;
    if let Some(samples_per_second) = outcome.samples_per_second {
        tracing::info!("trained at {samples_per_second:.0} samples/s");
    }
    let card = &outcome.card;
    let spec = order
        .effective_spec()
        .map_err(|message| Failure::error("InvalidTrial", false, message))?;
    let metrics = card.model_metrics();
    // The job's search (a trial's effective spec has none) names the objective.
    let objective = order
        .spec
        .search
        .as_ref()
        .and_then(|search| match search.objective.metric {
            job_api::ValidationMetric::ValidationLoss => metrics.validation_loss,
            job_api::ValidationMetric::ValidationAccuracy => metrics.validation_accuracy,
        });
    Ok(TrainResult {
        model_uri,
        model_digest: layout::sha256_digest(&outcome.digest),
        architecture: spec.model.architecture,
        dataset_digest: card.dataset_digest.clone(),
        metrics,
        epochs: card.training.epochs_run as i32,
        trial: order.trial.as_ref().map(|t| t.index),
        objective,
        curves: Some(outcome.curves.clone()),
    })
}

/// The serving a serve order asks for. The feedback key comes from `MODELOPS_FEEDBACK_KEY`;
/// without it the server makes up a key of its own, which only it knows (fine for one replica).
pub fn serve_config(order: &ServeOrder, device: tch::Device) -> Result<ServeConfig> {
    let invalid = |message: String| Failure::error("InvalidWorkOrder", false, message);
    let batch_timeout = parse_duration(&order.serving.batch_timeout)
        .map_err(|e| invalid(format!("serving.batchTimeout: {e}")))?;
    let feedback_max_age = parse_duration(
        order
            .feedback_max_age
            .as_deref()
            .unwrap_or(DEFAULT_FEEDBACK_MAX_AGE),
    )
    .map_err(|e| invalid(format!("feedbackMaxAge: {e}")))?;
    let host = std::env::var(LISTEN_ADDRESS_ENV).unwrap_or_else(|_| "0.0.0.0".to_owned());
    let ip: std::net::IpAddr = host.parse().map_err(|_| {
        invalid(format!(
            "{LISTEN_ADDRESS_ENV}={host:?} is not an IP address"
        ))
    })?;
    let feedback_key = match std::env::var(FEEDBACK_KEY_ENV) {
        Ok(hex) => FeedbackKey::from_hex(&hex, MIN_FEEDBACK_KEY_BYTES).map_err(|e| {
            Failure::error(
                "InvalidFeedbackKey",
                false,
                format!("{FEEDBACK_KEY_ENV}: {e}"),
            )
        })?,
        Err(_) => {
            tracing::info!(
                "{FEEDBACK_KEY_ENV} is not set: feedback ids are signed with a key of this process only, so other replicas refuse them"
            );
            FeedbackKey::random()
        }
    };
    Ok(ServeConfig {
        name: order.name.clone(),
        revision: order.revision,
        model: Location::open(&order.model_uri)?,
        store_root: Location::open(&order.store_uri)?,
        scratch_dir: scratch("serve")?,
        model_digest: order.model_digest.clone(),
        batch: BatchConfig {
            max_rows: order.serving.max_batch_size.max(1) as usize,
            timeout: batch_timeout,
            queue: QUEUE_LENGTH,
        },
        address: std::net::SocketAddr::new(ip, order.port),
        grpc_address: order
            .grpc_port
            .map(|port| std::net::SocketAddr::new(ip, port)),
        settings: Settings {
            max_request_bytes: order
                .max_request_bytes
                .unwrap_or(DEFAULT_MAX_REQUEST_BYTES)
                .min(usize::MAX as u64) as usize,
            feedback_max_age,
            replay_capacity: REPLAY_CAPACITY,
            max_rows: order.serving.max_rows_per_request.max(1) as usize,
            max_concurrent: order.serving.max_concurrent_requests.max(1) as usize,
            connections: ConnectionLimits::default(),
        },
        feedback_key,
        device,
        threads: threads(order.resources.cpu.as_ref().map(|q| q.0.as_str())),
    })
}

/// Runs a serve order until SIGTERM.
pub fn serve(order: &ServeOrder, device: tch::Device) -> Result<()> {
    let config = serve_config(order, device)?;
    tracing::info!(
        "serving {}/{} revision {} from {} (device {}, {} threads)",
        order.namespace,
        order.name,
        order.revision,
        order.model_uri,
        train::device_name(device),
        config
            .threads
            .map_or_else(|| tch::get_num_threads().to_string(), |t| t.to_string()),
    );
    serve::run(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn training_progress_reads_as_gauges() {
        let gauges = ProgressGauges::new();
        let progress = modelops_api::trainingjob::TrainingProgress {
            epoch: 3,
            total_epochs: 20,
            train_loss: Some(0.5),
            validation_accuracy: Some(0.9),
            samples_per_second: Some(1500.0),
            ..Default::default()
        };
        let samples = modelops_api::serving::parse_metrics(&gauges.render(Some(&progress)));
        let value = |name: &str| samples.iter().find(|s| s.name == name).map(|s| s.value);
        assert_eq!(value("modelops_training_epoch"), Some(3.0));
        assert_eq!(value("modelops_training_total_epochs"), Some(20.0));
        assert_eq!(value("modelops_training_samples_per_second"), Some(1500.0));
        assert_eq!(value("modelops_training_train_loss"), Some(0.5));
        assert_eq!(value("modelops_training_validation_accuracy"), Some(0.9));
        assert!(value("modelops_training_validation_loss").is_some_and(f64::is_nan));
        let before = modelops_api::serving::parse_metrics(&gauges.render(None));
        assert!(
            before
                .iter()
                .any(|s| s.name == "modelops_training_epoch" && s.value == 0.0)
        );
    }
}
