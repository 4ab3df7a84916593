//! What the operator and the worker pods tell each other, shared by both crates:
//!
//! - the work order, JSON in the environment variable [`WORK_ORDER_ENV`] of every worker pod;
//! - the result a worker writes to [`TERMINATION_LOG_PATH`] (the operator reads it back from the
//!   pod's `state.terminated.message`): [`PrepareResult`], [`TrainResult`] or, on failure,
//!   [`WorkerFailure`];
//! - `progress.json`, which a training worker rewrites every epoch
//!   ([`crate::trainingjob::TrainingProgress`]);
//! - the layout of a namespace's artifact store ([`layout`]), as docs/decisions.md describes it.
//!
//! Digests are written `sha256:<64 hex>` in statuses, results and work orders; folder names on
//! the artifact store use the 64 hex digits alone ([`layout::digest_hex`]).

use crate::common::ComputeResources;
use crate::dataset::{DatasetSpec, RowCounts};
use crate::modeldeployment::Serving;
use crate::trainingjob::{Architecture, ModelMetrics, ParameterValue, TrainingJobSpec};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The environment variable that holds a worker pod's work order (JSON).
pub const WORK_ORDER_ENV: &str = "MODELOPS_WORK_ORDER";

/// Where a worker writes its result; the kubelet hands it to the operator in the pod status.
pub const TERMINATION_LOG_PATH: &str = "/dev/termination-log";

/// The worker's exit code for a failure that only a change of the spec or the data can fix
/// (`retryable: false` in its [`WorkerFailure`]); the operator's Jobs fail at once on it.
pub const PERMANENT_FAILURE_EXIT_CODE: u8 = 3;

/// The most the kubelet keeps of a termination message, in bytes.
pub const TERMINATION_MESSAGE_LIMIT: usize = 4096;

/// Where a pod mounts its namespace's artifact claim when the store is `pvc://`.
pub const ARTIFACTS_MOUNT_PATH: &str = "/artifacts";

/// The Secret, in each workload namespace, whose keys (`AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_ENDPOINT_URL`, `AWS_REGION`) worker and serving pods get as
/// environment variables when the store is `s3://`, unless the chart names another.
pub const DEFAULT_ARTIFACTS_SECRET: &str = "modelops-artifacts";

/// The folder (an `emptyDir`) where worker pods keep their local copies of artifacts.
pub const SCRATCH_DIR: &str = "/scratch";

/// The port on which a training pod answers [`PROGRESS_PATH`].
pub const PROGRESS_PORT: u16 = 8080;

/// A training pod's progress (`TrainingProgress` JSON; 404 before the first epoch), which the
/// operator reads into the TrainingJob's status.
pub const PROGRESS_PATH: &str = "/modelops/progress";

/// The most bytes the operator reads of a pod's progress or profile answer.
pub const POD_ANSWER_LIMIT: usize = 1 << 20;

/// The artifact volume's claim when the chart's `artifacts.claimName` is left as it is.
pub const DEFAULT_ARTIFACTS_CLAIM: &str = "modelops-artifacts";

/// Where a prepare pod finds a `configMap` or `volume` source mounted.
pub const SOURCE_MOUNT_PATH: &str = "/source";

/// The port a serving pod listens on (inference API and `/metrics`).
pub const SERVING_PORT: u16 = 8080;

/// The port a serving pod answers the Open Inference Protocol's gRPC service on
/// (`inference.GRPCInferenceService`), KServe's.
pub const SERVING_GRPC_PORT: u16 = 8081;

/// The layout of a namespace's artifact store, relative to its root ([`crate::store`]): the
/// prepared versions of its Datasets, the checkpoints of its TrainingJobs and its models.
pub mod layout {
    /// Prepared numeric data (features, labels and split of every row).
    pub const DATA_SAFETENSORS: &str = "data.safetensors";
    /// Prepared text records (jsonl Datasets).
    pub const TEXT_JSONL: &str = "text.jsonl";
    /// Feature order, classes, normalisation and row counts of a prepared Dataset. Written last
    /// into its folder: a folder without it is incomplete.
    pub const DATASET_JSON: &str = "dataset.json";
    /// Per-feature histograms of the train split: the drift reference
    /// ([`crate::profile::Profile`]).
    pub const PROFILE_JSON: &str = "profile.json";
    /// Training progress, rewritten every epoch in the checkpoint folder.
    pub const PROGRESS_JSON: &str = "progress.json";
    /// The checkpoint folder's pointer to its latest checkpoint (file name and sha256).
    pub const CHECKPOINT_JSON: &str = "checkpoint.json";
    /// The weights of the best epoch so far, in the checkpoint folder.
    pub const BEST_SAFETENSORS: &str = "best.safetensors";
    /// Model weights.
    pub const MODEL_SAFETENSORS: &str = "model.safetensors";
    /// The model card ([`crate::card::ModelCard`]). Written last into its folder: a folder
    /// without it is incomplete.
    pub const MODEL_JSON: &str = "model.json";
    /// The scripted module of a `torchscript` model, in its model folder.
    pub const MODULE_PT: &str = "module.pt";
    /// The folder of all models.
    pub const MODELS_DIR: &str = "models";
    /// The folder of all prepared Datasets.
    pub const DATASETS_DIR: &str = "datasets";

    /// The 64 hex digits of a digest, whether or not it starts with `sha256:`.
    pub fn digest_hex(digest: &str) -> &str {
        digest.strip_prefix("sha256:").unwrap_or(digest)
    }

    /// A digest as statuses write it, `sha256:<hex>`, from its hex digits.
    pub fn sha256_digest(hex: &str) -> String {
        format!("sha256:{}", digest_hex(hex))
    }

    /// The folder that holds every prepared version of a Dataset.
    pub fn dataset_versions_dir(name: &str) -> String {
        format!("{DATASETS_DIR}/{name}")
    }

    /// The folder of one prepared version of a Dataset.
    pub fn dataset_dir(name: &str, digest: &str) -> String {
        format!("{}/{}", dataset_versions_dir(name), digest_hex(digest))
    }

    /// The checkpoint folder of one TrainingJob (its uid tells apart a job deleted and created
    /// again under the same name).
    pub fn checkpoint_dir(job: &str, uid: &str) -> String {
        format!("checkpoints/{job}/{uid}")
    }

    /// The checkpoint folder of one trial of a search.
    pub fn trial_checkpoint_dir(job: &str, uid: &str, trial: i32) -> String {
        format!("{}/trial-{trial}", checkpoint_dir(job, uid))
    }

    /// The folder of one model.
    pub fn model_dir(digest: &str) -> String {
        format!("{MODELS_DIR}/{}", digest_hex(digest))
    }
}

/// The job of one worker pod.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
// A pod reads one order once: the size of the largest variant costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum WorkOrder {
    /// `modelops-worker prepare`: prepare a Dataset.
    Prepare(PrepareOrder),
    /// `modelops-worker train`: train a model (or one trial of a search).
    Train(TrainOrder),
    /// `modelops-worker serve`: serve one revision of a ModelDeployment.
    Serve(ServeOrder),
}

impl WorkOrder {
    /// The order as the operator puts it in [`WORK_ORDER_ENV`].
    pub fn to_env_value(&self) -> String {
        serde_json::to_string(self).expect("a work order serialises")
    }

    /// Reads an order from the text of [`WORK_ORDER_ENV`].
    pub fn from_env_value(value: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(value)
    }
}

/// Prepare a Dataset: fetch, validate, clean, split and normalise it, then publish the prepared
/// data and profile into `<outputUri>/<hex digest>/`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PrepareOrder {
    /// Namespace of the Dataset.
    pub namespace: String,
    /// Name of the Dataset.
    pub name: String,
    /// The Dataset's spec, as the operator read it.
    pub spec: DatasetSpec,
    /// Where the source file is mounted in the pod, for `configMap` and `volume` sources (under
    /// [`SOURCE_MOUNT_PATH`]); `None` for `http`, which the worker downloads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_path: Option<String>,
    /// The folder that receives the `<hex digest>/` folder: `<root>/datasets/<name>`.
    pub output_uri: String,
}

/// One trial of a search.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Trial {
    /// Index of the trial, from 0.
    pub index: i32,
    /// The hyperparameters to use, by name (`learningRate`, `optimizer`, ...); see
    /// [`TrainingJobSpec::for_trial`].
    pub parameters: BTreeMap<String, ParameterValue>,
}

/// Train a model, resuming from the last checkpoint in `checkpointUri` when there is one, and
/// publish it into `<modelsUri>/<hex digest>/`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TrainOrder {
    /// Namespace of the TrainingJob.
    pub namespace: String,
    /// Name of the TrainingJob.
    pub name: String,
    /// Uid of the TrainingJob.
    pub uid: String,
    /// The TrainingJob's spec, as the operator read it (search included; a trial's worker
    /// applies `trial` with [`TrainingJobSpec::for_trial`]).
    pub spec: TrainingJobSpec,
    /// The prepared Dataset version: `<root>/datasets/<name>/<hex digest>`.
    pub dataset_uri: String,
    /// The pinned Dataset digest (`sha256:<hex>`), recorded in the model card.
    pub dataset_digest: String,
    /// The checkpoint folder: `<root>/checkpoints/<job>/<uid>[/trial-<n>]`.
    pub checkpoint_uri: String,
    /// The folder that receives the model's `<hex digest>/` folder: `<root>/models`.
    pub models_uri: String,
    /// The scripted module of a `torchscript` model: `spec.model.torchscript.path` below the
    /// root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module_uri: Option<String>,
    /// The trial to run, when the job searches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial: Option<Trial>,
}

impl TrainOrder {
    /// The spec to train with: the job's spec, with the trial's hyperparameters when there is a
    /// trial.
    pub fn effective_spec(&self) -> Result<TrainingJobSpec, String> {
        match &self.trial {
            Some(trial) => self.spec.for_trial(&trial.parameters),
            None => Ok(self.spec.clone()),
        }
    }
}

/// Serve one revision of a ModelDeployment: `modelops-worker serve`.
///
/// Besides the order, a serving pod needs the environment variable
/// [`crate::serving::FEEDBACK_KEY_ENV`] (from a Secret, the same for every revision) and access
/// to the store (the Secret's credentials for `s3://`, the claim for `pvc://`). It copies the
/// model into [`SCRATCH_DIR`] before it loads it. The server answers on `port` (the
/// inference API, the health checks and `/metrics`): readiness is
/// [`crate::serving::READY_PATH`], liveness [`crate::serving::LIVE_PATH`]. On SIGTERM
/// it stops accepting connections, answers the requests it holds and exits; a `preStop` sleep of
/// a few seconds lets the Service drop the pod before that.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServeOrder {
    /// Namespace of the ModelDeployment.
    pub namespace: String,
    /// Name of the ModelDeployment: the model name in inference paths and in metrics.
    pub name: String,
    /// The revision served, reported as `model_version` and in the metrics' `revision` label.
    pub revision: i32,
    /// The model folder: `<root>/models/<hex digest>` or a ModelDeployment's `artifact.uri`.
    pub model_uri: String,
    /// The model's expected digest (`sha256:<hex>` of its `model.json`, which pins the weights).
    /// On a mismatch (or any other load failure) the server stays up but never becomes ready, so
    /// it takes no traffic.
    pub model_digest: String,
    /// Batching settings.
    #[serde(default)]
    pub serving: Serving,
    /// Port to listen on.
    #[serde(default = "default_serving_port")]
    pub port: u16,
    /// Port to serve gRPC on (`inference.GRPCInferenceService`); none: HTTP only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_port: Option<u16>,
    /// The namespace's root. The server takes the Dataset profile whose bins its input
    /// histograms use from `<root>/datasets/*/<hex of the card's datasetDigest>/profile.json`,
    /// and serves without input histograms when there is none.
    pub store_uri: String,
    /// The largest request body read, in bytes; larger ones are answered 413. Default
    /// [`crate::serving::DEFAULT_MAX_REQUEST_BYTES`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_request_bytes: Option<u64>,
    /// How long a feedback id is accepted after its prediction (a duration such as `1h`).
    /// Default [`crate::serving::DEFAULT_FEEDBACK_MAX_AGE`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feedback_max_age: Option<String>,
    /// The ModelDeployment's `spec.resources`: the CPU limit sets the libtorch threads.
    #[serde(default)]
    pub resources: ComputeResources,
}

fn default_serving_port() -> u16 {
    SERVING_PORT
}

/// What a prepare pod reports when it succeeds.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PrepareResult {
    /// Digest of the prepared data (`sha256:<hex>`).
    pub digest: String,
    /// URI of the prepared data folder.
    pub artifact_uri: String,
    /// URI of `profile.json`.
    pub profile_uri: String,
    /// Row counts.
    pub rows: RowCounts,
    /// Class names in label order (categorical labels). Left out when the message would not fit
    /// in [`TERMINATION_MESSAGE_LIMIT`]; `dataset.json` always has them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<String>,
    /// The first row dropped as invalid and why (`dropInvalidRows`), at most
    /// [`FIRST_REJECTION_LIMIT`] bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_rejection: Option<String>,
}

/// The most bytes of [`PrepareResult::first_rejection`] kept: a row's value can be long.
pub const FIRST_REJECTION_LIMIT: usize = 300;

/// `text` cut to at most `limit` bytes on a character boundary, `…` marking a cut.
pub fn cut(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_owned();
    }
    let mut end = limit.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// What a train pod reports when it succeeds.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TrainResult {
    /// URI of the model folder.
    pub model_uri: String,
    /// The model's digest (`sha256:<hex>` of its `model.json`, which pins the weights).
    pub model_digest: String,
    /// The architecture trained.
    pub architecture: Architecture,
    /// The Dataset digest trained on.
    pub dataset_digest: String,
    /// Test and validation metrics.
    pub metrics: ModelMetrics,
    /// Epochs trained (fewer than planned after early stopping).
    pub epochs: i32,
    /// The trial, when the job searches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial: Option<i32>,
    /// The search objective's value, when the job searches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objective: Option<f64>,
    /// The learning curves of every epoch (thinned when the message would not fit otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub curves: Option<crate::trainingjob::LearningCurves>,
}

/// What a worker reports when it fails.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorkerFailure {
    /// One CamelCase word: becomes the condition reason (`SourceUnavailable`, `InvalidRow`,
    /// `DigestMismatch`, ...).
    pub reason: String,
    /// What failed and what to do, for a person.
    pub message: String,
    /// Whether running the pod again may help (a network error), as opposed to a problem only
    /// a spec or data change fixes (a bad row).
    pub retryable: bool,
}

/// A result as JSON that fits in a termination message. A [`PrepareResult`] that does not fit
/// loses its class list; anything else too long is cut at a character boundary (the operator
/// then sees invalid JSON and falls back to the artifact files).
pub fn termination_message<T: Serialize>(result: &T) -> String {
    let json = serde_json::to_string(result).expect("a result serialises");
    if json.len() <= TERMINATION_MESSAGE_LIMIT {
        return json;
    }
    let mut end = TERMINATION_MESSAGE_LIMIT;
    while !json.is_char_boundary(end) {
        end -= 1;
    }
    json[..end].to_owned()
}

impl TrainResult {
    /// The result as a termination message: its learning curves thinned (to 50, 25, then 10
    /// epochs) or left out when they would not fit.
    pub fn to_termination_message(&self) -> String {
        let mut result = self.clone();
        for points in [50, 25, 10, 0] {
            let json = serde_json::to_string(&result).expect("a result serialises");
            if json.len() <= TERMINATION_MESSAGE_LIMIT {
                return json;
            }
            result.curves = (points > 0)
                .then(|| self.curves.as_ref().map(|c| c.thinned(points)))
                .flatten();
        }
        termination_message(&result)
    }
}

impl PrepareResult {
    /// The result as a termination message, leaving the classes out when they do not fit.
    pub fn to_termination_message(&self) -> String {
        let json = serde_json::to_string(self).expect("a result serialises");
        if json.len() <= TERMINATION_MESSAGE_LIMIT {
            return json;
        }
        termination_message(&PrepareResult {
            classes: Vec::new(),
            ..self.clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trainingjob::OptimizerType;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const ROOT: &str = "s3://modelops/default";

    fn digits_dataset() -> DatasetSpec {
        let dataset: crate::Dataset =
            serde_yaml::from_str(include_str!("../../examples/digits/dataset.yaml")).unwrap();
        dataset.spec
    }

    fn digits_job() -> TrainingJobSpec {
        let job: crate::TrainingJob =
            serde_yaml::from_str(include_str!("../../examples/digits/trainingjob.yaml")).unwrap();
        job.spec
    }

    #[test]
    fn layout_follows_the_decisions() {
        let digest = format!("sha256:{HEX}");
        assert_eq!(
            layout::dataset_dir("digits", &digest),
            format!("datasets/digits/{HEX}")
        );
        assert_eq!(layout::model_dir(&digest), format!("models/{HEX}"));
        assert_eq!(layout::model_dir(HEX), format!("models/{HEX}"));
        assert_eq!(
            layout::checkpoint_dir("digits", "uid-1"),
            "checkpoints/digits/uid-1"
        );
        assert_eq!(
            layout::trial_checkpoint_dir("digits", "uid-1", 2),
            "checkpoints/digits/uid-1/trial-2"
        );
        assert_eq!(layout::sha256_digest(HEX), digest);
        assert_eq!(layout::sha256_digest(&digest), digest);
    }

    #[test]
    fn prepare_order_round_trips_tagged_by_kind() {
        let order = WorkOrder::Prepare(PrepareOrder {
            namespace: "default".into(),
            name: "digits".into(),
            spec: digits_dataset(),
            source_path: Some(format!("{SOURCE_MOUNT_PATH}/digits.csv")),
            output_uri: format!("{ROOT}/{}", layout::dataset_versions_dir("digits")),
        });
        let text = order.to_env_value();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["kind"], "prepare");
        assert_eq!(json["sourcePath"], "/source/digits.csv");
        assert_eq!(json["outputUri"], "s3://modelops/default/datasets/digits");
        assert_eq!(json["spec"]["source"]["configMap"]["name"], "digits-data");
        assert_eq!(WorkOrder::from_env_value(&text).unwrap(), order);
    }

    #[test]
    fn train_order_with_a_trial_round_trips() {
        let train = TrainOrder {
            namespace: "default".into(),
            name: "digits".into(),
            uid: "uid-1".into(),
            spec: digits_job(),
            dataset_uri: format!("{ROOT}/{}", layout::dataset_dir("digits", HEX)),
            dataset_digest: layout::sha256_digest(HEX),
            checkpoint_uri: format!(
                "{ROOT}/{}",
                layout::trial_checkpoint_dir("digits", "uid-1", 0)
            ),
            models_uri: format!("{ROOT}/{}", layout::MODELS_DIR),
            module_uri: None,
            trial: Some(Trial {
                index: 0,
                parameters: BTreeMap::from([
                    ("learningRate".into(), ParameterValue::Number(0.01)),
                    ("optimizer".into(), ParameterValue::Text("sgd".into())),
                ]),
            }),
        };
        let text = WorkOrder::Train(train.clone()).to_env_value();
        assert!(text.contains(r#""kind":"train""#), "{text}");
        assert!(
            text.contains(r#""parameters":{"learningRate":0.01,"optimizer":"sgd"}"#),
            "{text}"
        );
        let WorkOrder::Train(read) = WorkOrder::from_env_value(&text).unwrap() else {
            panic!("not a train order: {text}");
        };
        assert_eq!(read, train);
        let spec = read.effective_spec().unwrap();
        assert_eq!(spec.hyperparameters.optimizer.learning_rate, 0.01);
        assert_eq!(spec.hyperparameters.optimizer.type_, OptimizerType::Sgd);
    }

    #[test]
    fn a_serve_order_round_trips_with_defaults() {
        let text = format!(
            r#"{{"kind": "serve", "namespace": "default", "name": "digits", "revision": 3,
                "modelUri": "{ROOT}/models/{HEX}", "modelDigest": "sha256:{HEX}",
                "storeUri": "{ROOT}"}}"#
        );
        let WorkOrder::Serve(order) = WorkOrder::from_env_value(&text).unwrap() else {
            panic!("not a serve order: {text}");
        };
        assert_eq!(order.port, SERVING_PORT);
        assert_eq!(order.serving, Serving::default());
        assert_eq!(order.store_uri, ROOT);
        let again = WorkOrder::Serve(order.clone()).to_env_value();
        assert!(again.contains(r#""kind":"serve""#), "{again}");
        assert_eq!(
            WorkOrder::from_env_value(&again).unwrap(),
            WorkOrder::Serve(order)
        );
    }

    #[test]
    fn an_unknown_kind_is_refused() {
        let error = WorkOrder::from_env_value(r#"{"kind": "evaluate"}"#).unwrap_err();
        assert!(error.to_string().contains("evaluate"), "{error}");
    }

    #[test]
    fn results_read_what_a_worker_writes() {
        let prepare: PrepareResult = serde_json::from_str(&format!(
            r#"{{"digest": "sha256:{HEX}", "artifactUri": "pvc://c/datasets/d/n/{HEX}",
                "profileUri": "pvc://c/datasets/d/n/{HEX}/profile.json",
                "rows": {{"total": 10, "train": 8, "validation": 1, "test": 1}},
                "classes": ["a", "b"]}}"#
        ))
        .unwrap();
        assert_eq!(prepare.rows.rejected, 0);
        assert_eq!(prepare.classes, ["a", "b"]);

        let train: TrainResult = serde_json::from_str(&format!(
            r#"{{"modelUri": "pvc://c/models/{HEX}", "modelDigest": "sha256:{HEX}",
                "architecture": "cnn", "datasetDigest": "sha256:{HEX}",
                "metrics": {{"testAccuracy": 0.97, "testLoss": 0.1}}, "epochs": 12}}"#
        ))
        .unwrap();
        assert_eq!(train.architecture, Architecture::Cnn);
        assert_eq!(train.metrics.test_accuracy, Some(0.97));

        let failure: WorkerFailure = serde_json::from_str(
            r#"{"reason": "SourceUnavailable", "message": "GET http://x: 404", "retryable": false}"#,
        )
        .unwrap();
        assert!(!failure.retryable);
    }

    #[test]
    fn long_learning_curves_are_thinned_to_fit_the_termination_message() {
        use crate::trainingjob::{EpochFigures, LearningCurves};
        // Long numbers: 6-digit epochs, figures with 4 significant digits after zeros.
        let figures: Vec<EpochFigures> = (1..=100_000)
            .map(|epoch| EpochFigures {
                epoch,
                train_loss: Some(0.000_123_456_7 * f64::from(1 + epoch % 7)),
                validation_loss: Some(0.000_234_567_8 * f64::from(1 + epoch % 5)),
                validation_accuracy: Some(0.876_543_21),
            })
            .collect();
        let curves = LearningCurves::from_epochs(&figures, LearningCurves::MAX_POINTS);
        let result = TrainResult {
            // A long URI (a deep bucket prefix) leaves less room for the curves.
            model_uri: format!("s3://{}/default/models/{HEX}", "b".repeat(1500)),
            model_digest: layout::sha256_digest(HEX),
            architecture: Architecture::Mlp,
            dataset_digest: layout::sha256_digest(HEX),
            metrics: ModelMetrics::default(),
            epochs: 100_000,
            trial: None,
            objective: None,
            curves: Some(curves),
        };
        assert!(serde_json::to_string(&result).unwrap().len() > TERMINATION_MESSAGE_LIMIT);
        let message = result.to_termination_message();
        assert!(message.len() <= TERMINATION_MESSAGE_LIMIT);
        let read: TrainResult = serde_json::from_str(&message).unwrap();
        let kept = read.curves.unwrap();
        assert!(
            (10..100).contains(&kept.epochs.len()),
            "{}",
            kept.epochs.len()
        );
        assert_eq!((kept.epochs[0], *kept.epochs.last().unwrap()), (1, 100_000));
        assert_eq!(kept.validation_accuracy.len(), kept.epochs.len());
        // Short curves go whole.
        let short = TrainResult {
            curves: Some(LearningCurves::from_epochs(&figures[..20], 100)),
            ..read
        };
        let read: TrainResult = serde_json::from_str(&short.to_termination_message()).unwrap();
        assert_eq!(read.curves.unwrap().epochs, (1..=20).collect::<Vec<_>>());
    }

    #[test]
    fn a_long_class_list_is_left_out_of_the_termination_message() {
        let mut result = PrepareResult {
            digest: layout::sha256_digest(HEX),
            artifact_uri: "pvc://c/x".into(),
            profile_uri: "pvc://c/x/profile.json".into(),
            rows: RowCounts::default(),
            classes: vec!["a".into(), "b".into()],
            first_rejection: Some(cut(&"x".repeat(1000), FIRST_REJECTION_LIMIT)),
        };
        assert!(
            result
                .to_termination_message()
                .contains(r#""classes":["a","b"]"#)
        );
        result.classes = (0..2000).map(|i| format!("class-{i}")).collect();
        let message = result.to_termination_message();
        assert!(message.len() <= TERMINATION_MESSAGE_LIMIT);
        let read: PrepareResult = serde_json::from_str(&message).unwrap();
        assert!(read.classes.is_empty());
        assert_eq!(read.digest, result.digest);
    }

    #[test]
    fn cut_keeps_whole_characters() {
        assert_eq!(cut("short", 10), "short");
        let long = "é".repeat(200);
        let kept = cut(&long, 301);
        assert!(kept.len() <= 301 && kept.ends_with('…'), "{kept}");
        assert_eq!(cut("abcdef", 4), "a…");
    }

    #[test]
    fn termination_messages_are_cut_at_the_limit() {
        let long = "é".repeat(TERMINATION_MESSAGE_LIMIT);
        let message = termination_message(&long);
        assert!(message.len() <= TERMINATION_MESSAGE_LIMIT);
    }
}
