//! The `TrainingJob` kind: train one model (or search over hyperparameters for the best one) on
//! a prepared Dataset, on worker pods with or without GPUs.

use crate::common::{ComputeResources, LocalRef, PodTemplate, RELATIVE_PATH_PATTERN};
use crate::conditions::Conditions;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube_derive::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Trains a model on a Dataset. The Dataset's digest is pinned when training starts, so a job
/// trains on one exact version of the data even when the Dataset is prepared again meanwhile.
// Clippy reads the repeated keys of the printcolumn(...) lists as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(crates(kube_core = ::kube_core))]
#[kube(
    crates(kube_core = ::kube_core),
    group = "modelops.dev",
    version = "v1alpha1",
    kind = "TrainingJob",
    doc = "Trains a model on a prepared Dataset, on worker pods with or without GPUs, optionally searching over hyperparameters. Its status holds the progress and the trained model.",
    namespaced,
    status = "TrainingJobStatus",
    shortname = "tjob",
    category = "modelops",
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "Pending, Running, Succeeded, Failed or Suspended"
    ),
    printcolumn(
        name = "Epoch",
        type_ = "integer",
        json_path = ".status.progress.epoch",
        description = "Last finished epoch"
    ),
    printcolumn(
        name = "Accuracy",
        type_ = "number",
        json_path = ".status.model.metrics.testAccuracy",
        description = "Test accuracy of the trained model (classification), to 3 decimals"
    ),
    printcolumn(
        name = "RMSE",
        type_ = "number",
        json_path = ".status.model.metrics.testRmse",
        description = "Test root mean squared error of the trained model (regression)"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Val-Accuracy",
        type_ = "number",
        json_path = ".status.progress.validationAccuracy",
        description = "Validation accuracy after the last epoch",
        priority = 1
    ),
    printcolumn(
        name = "Dataset",
        type_ = "string",
        json_path = ".spec.datasetRef.name",
        priority = 1
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].reason"#,
        priority = 1
    )
)]
#[x_kube(
    validation = Rule::new("!has(self.hyperparameters) || !has(self.hyperparameters.loss) || self.hyperparameters.loss != 'mse' || self.task == 'regression'")
        .message("spec.hyperparameters.loss mse is for task regression: use crossEntropy (or bce) for classification, or leave loss unset")
        .field_path(".hyperparameters.loss")
        .reason(Reason::FieldValueForbidden),
    validation = Rule::new("!has(self.hyperparameters) || !has(self.hyperparameters.loss) || self.hyperparameters.loss == 'mse' || self.task == 'classification'")
        .message("spec.hyperparameters.loss crossEntropy and bce are for task classification: use mse for regression, or leave loss unset")
        .field_path(".hyperparameters.loss")
        .reason(Reason::FieldValueForbidden),
    validation = Rule::new("!has(self.hyperparameters) || !has(self.hyperparameters.earlyStopping) || !has(self.hyperparameters.earlyStopping.metric) || self.hyperparameters.earlyStopping.metric != 'validationAccuracy' || self.task == 'classification'")
        .message("spec.hyperparameters.earlyStopping.metric validationAccuracy needs task classification: use validationLoss")
        .field_path(".hyperparameters.earlyStopping.metric")
        .reason(Reason::FieldValueForbidden),
    validation = Rule::new("!has(self.search) || !has(self.search.objective) || !has(self.search.objective.metric) || self.search.objective.metric != 'validationAccuracy' || self.task == 'classification'")
        .message("spec.search.objective.metric validationAccuracy needs task classification: use validationLoss")
        .field_path(".search.objective.metric")
        .reason(Reason::FieldValueForbidden),
)]
#[serde(rename_all = "camelCase")]
pub struct TrainingJobSpec {
    /// The Dataset to train on, in the same namespace.
    pub dataset_ref: LocalRef,
    /// What the model predicts: a class (`classification`) or a number (`regression`).
    pub task: Task,
    /// The model architecture and its options.
    pub model: ModelSpec,
    /// Training hyperparameters.
    #[serde(default)]
    pub hyperparameters: Hyperparameters,
    /// Hyperparameter search: when set, the job trains one model per trial and keeps the best.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<SearchSpec>,
    /// Compute resources of each worker pod.
    #[serde(default)]
    pub resources: ComputeResources,
    /// Adjustments to the worker pods.
    #[serde(default)]
    pub template: PodTemplate,
    /// Retries, deadlines, clean-up and suspension.
    #[serde(default)]
    pub run_policy: RunPolicy,
}

/// What the model predicts.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Task {
    /// A class out of the Dataset's classes.
    Classification,
    /// A number.
    Regression,
}

/// The model architecture. Each has an options block of the same name in `spec.model`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Architecture {
    /// Fully connected layers, for tabular features.
    Mlp,
    /// Convolutions over features laid out as an image (`cnn.inputShape`).
    Cnn,
    /// Embedding, LSTM and a dense layer, for text Datasets.
    TextLstm,
    /// A user's TorchScript module, trained through libtorch.
    Torchscript,
}

impl Architecture {
    /// The name as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mlp => "mlp",
            Self::Cnn => "cnn",
            Self::TextLstm => "textLstm",
            Self::Torchscript => "torchscript",
        }
    }
}

/// The model: an architecture and the options of that architecture only.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(crates(kube_core = ::kube_core))]
#[x_kube(
    validation = Rule::new("self.architecture != 'cnn' || has(self.cnn)")
        .message("spec.model.cnn is required when spec.model.architecture is cnn: set spec.model.cnn.inputShape, for example [1, 8, 8]")
        .field_path(".cnn")
        .reason(Reason::FieldValueRequired),
    validation = Rule::new("self.architecture != 'torchscript' || has(self.torchscript)")
        .message("spec.model.torchscript is required when spec.model.architecture is torchscript: set spec.model.torchscript.path")
        .field_path(".torchscript")
        .reason(Reason::FieldValueRequired),
    validation = Rule::new("!has(self.mlp) || self.architecture == 'mlp'")
        .message("spec.model.mlp is set but spec.model.architecture is not mlp: remove spec.model.mlp or set architecture: mlp")
        .field_path(".mlp")
        .reason(Reason::FieldValueForbidden),
    validation = Rule::new("!has(self.cnn) || self.architecture == 'cnn'")
        .message("spec.model.cnn is set but spec.model.architecture is not cnn: remove spec.model.cnn or set architecture: cnn")
        .field_path(".cnn")
        .reason(Reason::FieldValueForbidden),
    validation = Rule::new("!has(self.textLstm) || self.architecture == 'textLstm'")
        .message("spec.model.textLstm is set but spec.model.architecture is not textLstm: remove spec.model.textLstm or set architecture: textLstm")
        .field_path(".textLstm")
        .reason(Reason::FieldValueForbidden),
    validation = Rule::new("!has(self.torchscript) || self.architecture == 'torchscript'")
        .message("spec.model.torchscript is set but spec.model.architecture is not torchscript: remove spec.model.torchscript or set architecture: torchscript")
        .field_path(".torchscript")
        .reason(Reason::FieldValueForbidden),
)]
#[serde(rename_all = "camelCase")]
pub struct ModelSpec {
    /// `mlp`, `cnn`, `textLstm` or `torchscript`.
    pub architecture: Architecture,
    /// Options of `mlp` (optional: defaults apply).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mlp: Option<MlpOptions>,
    /// Options of `cnn` (required for it: the input shape).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnn: Option<CnnOptions>,
    /// Options of `textLstm` (optional: defaults apply).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_lstm: Option<TextLstmOptions>,
    /// Options of `torchscript` (required for it: the module's path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub torchscript: Option<TorchScriptOptions>,
}

/// Activation function between layers.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Activation {
    /// max(0, x).
    #[default]
    Relu,
    /// Hyperbolic tangent.
    Tanh,
    /// Gaussian error linear unit.
    Gelu,
}

/// Options of the `mlp` architecture.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MlpOptions {
    /// Width of each hidden layer; empty trains a linear model.
    #[serde(default = "default_mlp_hidden_layers")]
    #[schemars(length(max = 16), inner(range(min = 1, max = 65536)))]
    pub hidden_layers: Vec<i32>,
    /// Activation between layers.
    #[serde(default)]
    pub activation: Activation,
    /// Dropout probability after each hidden layer, in [0, 0.95].
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 0.95))]
    pub dropout: f64,
}

fn default_mlp_hidden_layers() -> Vec<i32> {
    vec![64, 32]
}

impl Default for MlpOptions {
    fn default() -> Self {
        Self {
            hidden_layers: default_mlp_hidden_layers(),
            activation: Activation::default(),
            dropout: 0.0,
        }
    }
}

/// Options of the `cnn` architecture.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CnnOptions {
    /// How the feature vector is laid out as an image: `[channels, height, width]`, for example
    /// `[1, 8, 8]` for 64 grey pixels. The product must equal the number of features.
    #[schemars(length(min = 3, max = 3), inner(range(min = 1, max = 4096)))]
    pub input_shape: Vec<i32>,
    /// Output channels of each convolution block (convolution, activation, 2x2 max-pooling).
    #[serde(default = "default_cnn_channels")]
    #[schemars(length(min = 1, max = 8), inner(range(min = 1, max = 1024)))]
    pub conv_channels: Vec<i32>,
    /// Side of the square convolution kernels (odd, so that padding keeps the size).
    #[serde(default = "default_cnn_kernel_size")]
    #[schemars(range(min = 1, max = 15))]
    pub kernel_size: i32,
    /// Width of each dense layer after the convolutions.
    #[serde(default = "default_cnn_hidden_layers")]
    #[schemars(length(max = 8), inner(range(min = 1, max = 65536)))]
    pub hidden_layers: Vec<i32>,
    /// Activation between layers.
    #[serde(default)]
    pub activation: Activation,
    /// Dropout probability before each dense layer, in [0, 0.95].
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 0.95))]
    pub dropout: f64,
}

fn default_cnn_channels() -> Vec<i32> {
    vec![16, 32]
}

fn default_cnn_kernel_size() -> i32 {
    3
}

fn default_cnn_hidden_layers() -> Vec<i32> {
    vec![64]
}

/// Options of the `textLstm` architecture.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TextLstmOptions {
    /// Most frequent tokens of the train split kept in the vocabulary; others map to one
    /// unknown token.
    #[serde(default = "default_vocabulary_size")]
    #[schemars(range(min = 2, max = 1000000))]
    pub vocabulary_size: i32,
    /// Tokens per record: longer texts are cut, shorter ones padded.
    #[serde(default = "default_max_length")]
    #[schemars(range(min = 1, max = 8192))]
    pub max_length: i32,
    /// Size of the token embeddings.
    #[serde(default = "default_lstm_width")]
    #[schemars(range(min = 1, max = 4096))]
    pub embedding_dim: i32,
    /// Size of the LSTM's hidden state.
    #[serde(default = "default_lstm_width")]
    #[schemars(range(min = 1, max = 4096))]
    pub hidden_size: i32,
    /// Stacked LSTM layers.
    #[serde(default = "default_lstm_layers")]
    #[schemars(range(min = 1, max = 8))]
    pub layers: i32,
    /// Read the text in both directions.
    #[serde(default)]
    pub bidirectional: bool,
    /// Dropout probability between layers, in [0, 0.95].
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 0.95))]
    pub dropout: f64,
}

fn default_vocabulary_size() -> i32 {
    20000
}

fn default_max_length() -> i32 {
    128
}

fn default_lstm_width() -> i32 {
    64
}

fn default_lstm_layers() -> i32 {
    1
}

impl Default for TextLstmOptions {
    fn default() -> Self {
        Self {
            vocabulary_size: default_vocabulary_size(),
            max_length: default_max_length(),
            embedding_dim: default_lstm_width(),
            hidden_size: default_lstm_width(),
            layers: default_lstm_layers(),
            bidirectional: false,
            dropout: 0.0,
        }
    }
}

/// Options of the `torchscript` architecture.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TorchScriptOptions {
    /// Path of the scripted module (`torch.jit.save`) in the namespace's artifact store,
    /// relative to its root, for example `user-models/net.pt` (`s3://modelops/<namespace>/user-models/net.pt`
    /// with the test bed's store). Its `forward` takes a batch of feature vectors
    /// and returns one row of logits (classification) or one value (regression) per input.
    #[schemars(length(min = 1, max = 1024), pattern(RELATIVE_PATH_PATTERN))]
    pub path: String,
}

/// Training hyperparameters.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Hyperparameters {
    /// Passes over the train split, at least 1.
    #[serde(default = "default_epochs")]
    #[schemars(range(min = 1, max = 100000))]
    pub epochs: i32,
    /// Rows per optimisation step, at least 1.
    #[serde(default = "default_batch_size")]
    #[schemars(range(min = 1, max = 65536))]
    pub batch_size: i32,
    /// The optimiser.
    #[serde(default)]
    pub optimizer: Optimizer,
    /// How the learning rate changes from epoch to epoch.
    #[serde(default)]
    pub learning_rate_schedule: LearningRateSchedule,
    /// The loss. Default: `crossEntropy` for classification, `mse` for regression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<Loss>,
    /// Stop when a validation metric stops improving.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_stopping: Option<EarlyStopping>,
    /// Seed of weight initialisation and batch order, for reproducible training.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub seed: Option<i64>,
}

/// The seed of a TrainingJob that sets none: training is reproducible by default, and a search
/// draws its trials from the same seed.
pub const DEFAULT_SEED: i64 = 42;

impl Hyperparameters {
    /// The seed, [`DEFAULT_SEED`] when the spec sets none.
    pub fn seed_or_default(&self) -> i64 {
        self.seed.unwrap_or(DEFAULT_SEED)
    }
}

fn default_epochs() -> i32 {
    10
}

fn default_batch_size() -> i32 {
    32
}

impl Default for Hyperparameters {
    fn default() -> Self {
        Self {
            epochs: default_epochs(),
            batch_size: default_batch_size(),
            optimizer: Optimizer::default(),
            learning_rate_schedule: LearningRateSchedule::default(),
            loss: None,
            early_stopping: None,
            seed: None,
        }
    }
}

/// Optimiser kinds.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum OptimizerType {
    /// Adam.
    #[default]
    Adam,
    /// Stochastic gradient descent, with optional momentum.
    Sgd,
    /// Adam with decoupled weight decay.
    Adamw,
}

impl OptimizerType {
    /// The name as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Adam => "adam",
            Self::Sgd => "sgd",
            Self::Adamw => "adamw",
        }
    }
}

/// The optimiser and its settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(crates(kube_core = ::kube_core))]
#[x_kube(
    validation = Rule::new("!has(self.momentum) || self.momentum == 0.0 || self.type == 'sgd'")
        .message("spec.hyperparameters.optimizer.momentum applies to type sgd only: remove it or set type: sgd")
        .field_path(".momentum")
        .reason(Reason::FieldValueForbidden),
)]
#[serde(rename_all = "camelCase")]
pub struct Optimizer {
    /// `adam` (default), `sgd` or `adamw`.
    #[serde(rename = "type", default)]
    pub type_: OptimizerType,
    /// Initial learning rate, greater than 0.
    #[serde(default = "default_learning_rate")]
    #[schemars(range(max = 10.0), extend("minimum" = 0.0, "exclusiveMinimum" = true))]
    pub learning_rate: f64,
    /// L2 weight decay, at least 0.
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub weight_decay: f64,
    /// Momentum of `sgd`, in [0, 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0), extend("maximum" = 1.0, "exclusiveMaximum" = true))]
    pub momentum: Option<f64>,
}

fn default_learning_rate() -> f64 {
    0.001
}

impl Default for Optimizer {
    fn default() -> Self {
        Self {
            type_: OptimizerType::default(),
            learning_rate: default_learning_rate(),
            weight_decay: 0.0,
            momentum: None,
        }
    }
}

/// Learning rate schedule kinds.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ScheduleType {
    /// The learning rate stays as set.
    #[default]
    Constant,
    /// Multiplied by `gamma` after every epoch.
    Exponential,
    /// Multiplied by `gamma` (default 0.1) every `stepSize` epochs.
    Step,
    /// Follows a half cosine from the learning rate down to `minLearningRate` over the epochs.
    Cosine,
}

/// How the learning rate changes; the options that apply depend on `type`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(crates(kube_core = ::kube_core))]
#[x_kube(
    validation = Rule::new("self.type != 'exponential' || has(self.gamma)")
        .message("spec.hyperparameters.learningRateSchedule.gamma is required for type exponential: the factor applied after each epoch, for example 0.95")
        .field_path(".gamma")
        .reason(Reason::FieldValueRequired),
    validation = Rule::new("self.type != 'step' || has(self.stepSize)")
        .message("spec.hyperparameters.learningRateSchedule.stepSize is required for type step: the number of epochs between decays")
        .field_path(".stepSize")
        .reason(Reason::FieldValueRequired),
    validation = Rule::new("!has(self.gamma) || self.type == 'exponential' || self.type == 'step'")
        .message("spec.hyperparameters.learningRateSchedule.gamma applies to types exponential and step only: remove it")
        .field_path(".gamma")
        .reason(Reason::FieldValueForbidden),
    validation = Rule::new("!has(self.stepSize) || self.type == 'step'")
        .message("spec.hyperparameters.learningRateSchedule.stepSize applies to type step only: remove it")
        .field_path(".stepSize")
        .reason(Reason::FieldValueForbidden),
    validation = Rule::new("!has(self.minLearningRate) || self.type == 'cosine'")
        .message("spec.hyperparameters.learningRateSchedule.minLearningRate applies to type cosine only: remove it")
        .field_path(".minLearningRate")
        .reason(Reason::FieldValueForbidden),
)]
#[serde(rename_all = "camelCase")]
pub struct LearningRateSchedule {
    /// `constant` (default), `exponential`, `step` or `cosine`.
    #[serde(rename = "type", default)]
    pub type_: ScheduleType,
    /// Decay factor, in (0, 1] (exponential, step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 1.0), extend("minimum" = 0.0, "exclusiveMinimum" = true))]
    pub gamma: Option<f64>,
    /// Epochs between decays (step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100000))]
    pub step_size: Option<i32>,
    /// Learning rate at the last epoch (cosine), default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 10.0))]
    pub min_learning_rate: Option<f64>,
}

/// Loss functions.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Loss {
    /// Cross entropy over the classes (classification).
    CrossEntropy,
    /// Mean squared error (regression).
    Mse,
    /// Binary cross entropy (classification with two classes).
    Bce,
}

/// Validation metrics that early stopping and search objectives watch.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ValidationMetric {
    /// Loss on the validation split (lower is better).
    #[default]
    ValidationLoss,
    /// Accuracy on the validation split (higher is better; classification only).
    ValidationAccuracy,
}

impl ValidationMetric {
    /// Whether a higher value is better.
    pub fn higher_is_better(self) -> bool {
        self == Self::ValidationAccuracy
    }
}

/// Stop training when a validation metric has not improved for `patience` epochs; the model of
/// the best epoch is kept.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EarlyStopping {
    /// `validationLoss` (default) or `validationAccuracy`.
    #[serde(default)]
    pub metric: ValidationMetric,
    /// Epochs without improvement before stopping, at least 1.
    #[serde(default = "default_patience")]
    #[schemars(range(min = 1, max = 10000))]
    pub patience: i32,
    /// Smallest change that counts as an improvement.
    #[serde(default)]
    #[schemars(range(min = 0.0))]
    pub min_delta: f64,
}

fn default_patience() -> i32 {
    3
}

/// How trials are chosen.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum SearchStrategy {
    /// Every combination of the listed `values`/`choices`, up to `maxTrials`.
    Grid,
    /// Combinations drawn at random from `values`, `choices` or `min`..`max`.
    Random,
}

/// The hyperparameters a search can vary.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum TunableParameter {
    /// `hyperparameters.optimizer.learningRate`.
    LearningRate,
    /// `hyperparameters.batchSize` (rounded to an integer).
    BatchSize,
    /// `hyperparameters.epochs` (rounded to an integer).
    Epochs,
    /// `hyperparameters.optimizer.weightDecay`.
    WeightDecay,
    /// `hyperparameters.optimizer.momentum`.
    Momentum,
    /// The dropout of the model's options block.
    Dropout,
    /// `hyperparameters.optimizer.type` (takes `choices`).
    Optimizer,
}

impl TunableParameter {
    /// The name as the API spells it (the key in a trial's parameters).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LearningRate => "learningRate",
            Self::BatchSize => "batchSize",
            Self::Epochs => "epochs",
            Self::WeightDecay => "weightDecay",
            Self::Momentum => "momentum",
            Self::Dropout => "dropout",
            Self::Optimizer => "optimizer",
        }
    }
}

/// How a `min`..`max` range is sampled.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Scale {
    /// Uniformly.
    #[default]
    Linear,
    /// Uniformly in the logarithm (for learning rates); needs `min` > 0.
    Log,
}

/// One hyperparameter of a search and the values it may take.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(crates(kube_core = ::kube_core))]
#[x_kube(
    validation = Rule::new("[has(self.values), has(self.choices), has(self.min) || has(self.max)].filter(x, x).size() == 1")
        .message("spec.search.parameters[]: set exactly one of values, choices, or min and max"),
    validation = Rule::new("has(self.min) == has(self.max)")
        .message("spec.search.parameters[]: min and max go together: set both"),
    validation = Rule::new("!has(self.min) || !has(self.max) || self.min < self.max")
        .message("spec.search.parameters[].min must be less than max")
        .field_path(".min"),
    validation = Rule::new("self.name != 'optimizer' || has(self.choices)")
        .message("spec.search.parameters[]: optimizer takes choices (adam, sgd, adamw), not values or min/max")
        .field_path(".choices")
        .reason(Reason::FieldValueRequired),
    validation = Rule::new("self.name == 'optimizer' || !has(self.choices)")
        .message("spec.search.parameters[].choices is for the optimizer parameter only: numeric parameters take values or min and max")
        .field_path(".choices")
        .reason(Reason::FieldValueForbidden),
    validation = Rule::new("!has(self.scale) || self.scale != 'log' || !has(self.min) || self.min > 0.0")
        .message("spec.search.parameters[]: scale log needs min greater than 0")
        .field_path(".min"),
)]
#[serde(rename_all = "camelCase")]
pub struct SearchParameter {
    /// Which hyperparameter.
    pub name: TunableParameter,
    /// The values to try.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub values: Option<Vec<f64>>,
    /// The optimisers to try (for `optimizer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 3))]
    pub choices: Option<Vec<OptimizerType>>,
    /// Lower end of a range (strategy random).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Upper end of a range (strategy random).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// How the range is sampled: `linear` (default) or `log`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<Scale>,
}

/// Whether the objective is maximised or minimised.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Goal {
    /// Higher is better.
    Maximize,
    /// Lower is better.
    Minimize,
}

/// What makes a trial the best.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(crates(kube_core = ::kube_core))]
#[x_kube(
    validation = Rule::new("!has(self.goal) || (self.goal == 'maximize') == (has(self.metric) && self.metric == 'validationAccuracy')")
        .message("spec.search.objective.goal: validationLoss is minimized and validationAccuracy maximized; leave goal unset to follow the metric")
        .field_path(".goal"),
)]
#[serde(rename_all = "camelCase")]
pub struct Objective {
    /// `validationLoss` (default) or `validationAccuracy`.
    #[serde(default)]
    pub metric: ValidationMetric,
    /// Default: follows the metric (minimize a loss, maximize an accuracy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goal: Option<Goal>,
}

impl Objective {
    /// The goal, defaulted from the metric.
    pub fn goal(&self) -> Goal {
        self.goal.unwrap_or(if self.metric.higher_is_better() {
            Goal::Maximize
        } else {
            Goal::Minimize
        })
    }
}

/// A hyperparameter search: trials with different hyperparameters; the best trial's model
/// becomes the job's model.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(crates(kube_core = ::kube_core))]
#[x_kube(
    validation = Rule::new("self.strategy != 'grid' || self.parameters.all(p, has(p.values) || has(p.choices))")
        .message("spec.search.parameters: strategy grid needs values or choices for every parameter; ranges (min and max) need strategy random")
        .field_path(".parameters"),
)]
#[serde(rename_all = "camelCase")]
pub struct SearchSpec {
    /// `grid` or `random`.
    pub strategy: SearchStrategy,
    /// The hyperparameters to vary, each at most once.
    #[schemars(
        length(min = 1, max = 7),
        extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"])
    )]
    pub parameters: Vec<SearchParameter>,
    /// Trials to run at most, at least 1.
    #[schemars(range(min = 1, max = 1000))]
    pub max_trials: i32,
    /// Trials that run at the same time, at least 1.
    #[serde(default = "default_parallelism")]
    #[schemars(range(min = 1, max = 64))]
    pub parallelism: i32,
    /// What makes a trial the best.
    #[serde(default)]
    pub objective: Objective,
}

fn default_parallelism() -> i32 {
    1
}

/// Retries, deadlines, clean-up and suspension, as in a Kubernetes Job.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunPolicy {
    /// Failed worker pods retried before the job fails (each retry resumes from the last
    /// checkpoint).
    #[serde(default = "default_backoff_limit")]
    #[schemars(range(min = 0, max = 100))]
    pub backoff_limit: i32,
    /// Seconds the job may run, counted from its start, before it fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub active_deadline_seconds: Option<i64>,
    /// Seconds after the job finishes before its worker pods are deleted (the TrainingJob and
    /// its model stay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub ttl_seconds_after_finished: Option<i32>,
    /// Hold the job: no pods run while true. A job queued with Kueue (label
    /// `kueue.x-k8s.io/queue-name`) is held and admitted by Kueue instead (docs/gitops.md).
    #[serde(default)]
    pub suspend: bool,
}

fn default_backoff_limit() -> i32 {
    3
}

impl Default for RunPolicy {
    fn default() -> Self {
        Self {
            backoff_limit: default_backoff_limit(),
            active_deadline_seconds: None,
            ttl_seconds_after_finished: None,
            suspend: false,
        }
    }
}

/// A value of a hyperparameter in a trial: a number, or a name (the optimiser).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(untagged)]
pub enum ParameterValue {
    /// A number (learning rate, batch size, ...).
    Number(f64),
    /// A name (`adam`, `sgd`, `adamw`).
    Text(String),
}

impl std::fmt::Display for ParameterValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Number(n) => write!(f, "{n}"),
            Self::Text(s) => f.write_str(s),
        }
    }
}

impl TrainingJobSpec {
    /// The loss, defaulted from the task.
    pub fn loss(&self) -> Loss {
        self.hyperparameters.loss.unwrap_or(match self.task {
            Task::Classification => Loss::CrossEntropy,
            Task::Regression => Loss::Mse,
        })
    }

    /// The spec of one trial: this spec with the trial's hyperparameters applied and no search.
    /// Fails naming the parameter when a name or value does not fit.
    pub fn for_trial(
        &self,
        parameters: &BTreeMap<String, ParameterValue>,
    ) -> Result<TrainingJobSpec, String> {
        let mut spec = self.clone();
        spec.search = None;
        let hyper = &mut spec.hyperparameters;
        for (name, value) in parameters {
            let number = || match value {
                ParameterValue::Number(n) if n.is_finite() => Ok(*n),
                _ => Err(format!("trial parameter {name}: {value} is not a number")),
            };
            let count = || {
                let n = number()?.round();
                if (1.0..=f64::from(i32::MAX)).contains(&n) {
                    Ok(n as i32)
                } else {
                    Err(format!(
                        "trial parameter {name}: {value} is not a count >= 1"
                    ))
                }
            };
            match name.as_str() {
                "learningRate" => hyper.optimizer.learning_rate = number()?,
                "batchSize" => hyper.batch_size = count()?,
                "epochs" => hyper.epochs = count()?,
                "weightDecay" => hyper.optimizer.weight_decay = number()?,
                "momentum" => hyper.optimizer.momentum = Some(number()?),
                "dropout" => {
                    let dropout = number()?;
                    let model = &mut spec.model;
                    match model.architecture {
                        Architecture::Mlp => {
                            model.mlp.get_or_insert_with(Default::default).dropout = dropout
                        }
                        Architecture::Cnn => match model.cnn.as_mut() {
                            Some(cnn) => cnn.dropout = dropout,
                            None => return Err("trial parameter dropout: no spec.model.cnn".into()),
                        },
                        Architecture::TextLstm => {
                            model.text_lstm.get_or_insert_with(Default::default).dropout = dropout
                        }
                        Architecture::Torchscript => {
                            return Err(
                                "trial parameter dropout: a torchscript model has no dropout option"
                                    .into(),
                            );
                        }
                    }
                }
                "optimizer" => {
                    hyper.optimizer.type_ = match value {
                        ParameterValue::Text(t) if t == "adam" => OptimizerType::Adam,
                        ParameterValue::Text(t) if t == "sgd" => OptimizerType::Sgd,
                        ParameterValue::Text(t) if t == "adamw" => OptimizerType::Adamw,
                        _ => {
                            return Err(format!(
                                "trial parameter optimizer: {value} is not adam, sgd or adamw"
                            ));
                        }
                    }
                }
                other => return Err(format!("trial parameter {other} is not tunable")),
            }
        }
        Ok(spec)
    }
}

impl ModelSpec {
    /// The `mlp` options, defaulted.
    pub fn mlp_options(&self) -> MlpOptions {
        self.mlp.clone().unwrap_or_default()
    }

    /// The `textLstm` options, defaulted.
    pub fn text_lstm_options(&self) -> TextLstmOptions {
        self.text_lstm.clone().unwrap_or_default()
    }
}

/// Where a TrainingJob is in its life.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum TrainingPhase {
    /// Waiting for the Dataset, for admission or for pods to start.
    Pending,
    /// Worker pods are training.
    Running,
    /// A model was trained and recorded in `status.model`.
    Succeeded,
    /// Training failed for good; the Ready condition says why.
    Failed,
    /// `spec.runPolicy.suspend` holds the job.
    Suspended,
}

impl TrainingPhase {
    /// The phase as `kubectl get` shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Running => "Running",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
            Self::Suspended => "Suspended",
        }
    }
}

/// Progress of the running training, updated every epoch. The worker writes the same structure
/// to `progress.json` in its checkpoint directory.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrainingProgress {
    /// Epochs finished.
    pub epoch: i32,
    /// Epochs planned.
    pub total_epochs: i32,
    /// Mean training loss of the last epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_loss: Option<f64>,
    /// Loss on the validation split after the last epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_loss: Option<f64>,
    /// Accuracy on the validation split after the last epoch (classification).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_accuracy: Option<f64>,
    /// Training throughput of the last epoch, in samples per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub samples_per_second: Option<f64>,
    /// The trial this progress belongs to, when searching.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial: Option<i32>,
    /// When the worker wrote this progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<Time>,
}

/// Learning curves: the figures of each finished epoch, one list per figure, the lists as long
/// as `epochs` (a figure the task does not have, such as a regression's accuracy, is left out).
/// Numbers keep 4 significant digits. At most [`LearningCurves::MAX_POINTS`] epochs are kept:
/// past that, evenly spaced ones, the first and the last among them, so that a long run keeps
/// its shape in a bounded status.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LearningCurves {
    /// The epochs recorded (1-based), in order.
    #[schemars(length(max = 100))]
    pub epochs: Vec<i32>,
    /// Mean training loss of each epoch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub train_loss: Vec<f64>,
    /// Loss on the validation split after each epoch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub validation_loss: Vec<f64>,
    /// Accuracy on the validation split after each epoch (classification).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub validation_accuracy: Vec<f64>,
}

/// One finished epoch's figures, as [`LearningCurves::from_epochs`] takes them.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct EpochFigures {
    /// The epoch (1-based).
    pub epoch: i32,
    /// Mean training loss.
    pub train_loss: Option<f64>,
    /// Validation loss.
    pub validation_loss: Option<f64>,
    /// Validation accuracy.
    pub validation_accuracy: Option<f64>,
}

impl LearningCurves {
    /// Epochs kept at most.
    pub const MAX_POINTS: usize = 100;

    /// The curves of `epochs` (in order), at most `max_points` of them (at least 2): evenly
    /// spaced, the first and the last kept. A figure missing from any kept epoch is left out.
    pub fn from_epochs(epochs: &[EpochFigures], max_points: usize) -> LearningCurves {
        let n = epochs.len();
        let max_points = max_points.clamp(2, Self::MAX_POINTS);
        let kept: Vec<&EpochFigures> = if n <= max_points {
            epochs.iter().collect()
        } else {
            (0..max_points)
                .map(|i| &epochs[(i * (n - 1) + (max_points - 1) / 2) / (max_points - 1)])
                .collect()
        };
        let series = |figure: fn(&EpochFigures) -> Option<f64>| -> Vec<f64> {
            kept.iter()
                .map(|e| figure(e))
                .collect::<Option<Vec<f64>>>()
                .unwrap_or_default()
                .into_iter()
                .map(crate::common::significant)
                .collect()
        };
        LearningCurves {
            epochs: kept.iter().map(|e| e.epoch).collect(),
            train_loss: series(|e| e.train_loss),
            validation_loss: series(|e| e.validation_loss),
            validation_accuracy: series(|e| e.validation_accuracy),
        }
    }

    /// The same curves with at most `max_points` epochs.
    pub fn thinned(&self, max_points: usize) -> LearningCurves {
        let at = |list: &[f64], i: usize| list.get(i).copied();
        let epochs: Vec<EpochFigures> = self
            .epochs
            .iter()
            .enumerate()
            .map(|(i, &epoch)| EpochFigures {
                epoch,
                train_loss: at(&self.train_loss, i),
                validation_loss: at(&self.validation_loss, i),
                validation_accuracy: at(&self.validation_accuracy, i),
            })
            .collect();
        Self::from_epochs(&epochs, max_points)
    }

    /// Whether no epoch is recorded.
    pub fn is_empty(&self) -> bool {
        self.epochs.is_empty()
    }
}

/// Metrics of a trained model.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelMetrics {
    /// Accuracy on the test split (classification). The status shows accuracies to 3 decimals
    /// and losses and errors to 4 significant digits; the model card keeps them exact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_accuracy: Option<f64>,
    /// Loss on the test split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_loss: Option<f64>,
    /// Root mean squared error on the test split (regression).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_rmse: Option<f64>,
    /// Mean absolute error on the test split (regression).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_mae: Option<f64>,
    /// Accuracy on the validation split of the kept epoch (classification).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_accuracy: Option<f64>,
    /// Loss on the validation split of the kept epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_loss: Option<f64>,
}

/// The model a TrainingJob produced.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelArtifact {
    /// The model folder, holding `model.safetensors` and `model.json`:
    /// `<namespace root>/models/<hex digest>` (`s3://...` or `pvc://...`).
    pub uri: String,
    /// The model's digest, `sha256:<64 hex>`: the sha256 of its `model.json` (the card, which
    /// pins the weights' sha256).
    pub digest: String,
    /// The architecture trained.
    pub architecture: Architecture,
    /// The digest of the Dataset version it was trained on.
    pub dataset_digest: String,
    /// Test and validation metrics.
    #[serde(default)]
    pub metrics: ModelMetrics,
}

/// One trial of a search.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrialStatus {
    /// Index of the trial, from 0.
    pub index: i32,
    /// The hyperparameters of the trial, by name, as text (`learningRate: "0.01"`).
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
    /// Where the trial is.
    pub phase: TrainingPhase,
    /// The objective's value, once the trial succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objective: Option<f64>,
    /// The digest of the trial's model, once it succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_digest: Option<String>,
    /// The trial's model, once it succeeded: the job's model when it is the best trial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelArtifact>,
    /// Why the trial failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The trial's learning curves, once it succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub curves: Option<LearningCurves>,
}

/// What training has done so far.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrainingJobStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` (true once Succeeded), `Succeeded`, `Failed`, `Suspended`, and `Reconciling` or
    /// `Stalled` while they hold.
    #[serde(default, skip_serializing_if = "Conditions::is_empty")]
    pub conditions: Conditions,
    /// Where the job is in its life.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<TrainingPhase>,
    /// Worker pods started so far (the first run and its retries).
    #[serde(default)]
    pub attempts: i32,
    /// When the first worker pod started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the job succeeded or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// The Dataset digest pinned when training started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_digest: Option<String>,
    /// Progress of the running training.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<TrainingProgress>,
    /// The learning curves of the run (of the trial under way, when searching), one point per
    /// finished epoch: live while it trains, complete once it succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub curves: Option<LearningCurves>,
    /// The trained model, once Succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelArtifact>,
    /// The trials, when searching.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trials: Vec<TrialStatus>,
    /// Index of the best trial so far, when searching.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_trial: Option<i32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(n: i32) -> Vec<EpochFigures> {
        (1..=n)
            .map(|epoch| EpochFigures {
                epoch,
                train_loss: Some(1.0 / epoch as f64),
                validation_loss: Some(1.234_567_8 / epoch as f64),
                validation_accuracy: (epoch != 3).then_some(0.5),
            })
            .collect()
    }

    #[test]
    fn curves_keep_every_epoch_up_to_their_bound_then_evenly_spaced_ones() {
        let short = LearningCurves::from_epochs(&figures(2), LearningCurves::MAX_POINTS);
        assert_eq!(short.epochs, vec![1, 2]);
        assert_eq!(short.train_loss, vec![1.0, 0.5]);
        assert_eq!(short.validation_loss, vec![1.235, 0.6173]);
        assert_eq!(short.validation_accuracy, vec![0.5, 0.5]);
        // A figure missing from an epoch is left out rather than misaligned.
        let five = LearningCurves::from_epochs(&figures(5), LearningCurves::MAX_POINTS);
        assert!(five.validation_accuracy.is_empty());
        assert_eq!(five.train_loss.len(), 5);

        let long = LearningCurves::from_epochs(&figures(1000), LearningCurves::MAX_POINTS);
        assert_eq!(long.epochs.len(), LearningCurves::MAX_POINTS);
        assert_eq!((long.epochs[0], *long.epochs.last().unwrap()), (1, 1000));
        assert!(
            long.epochs
                .windows(2)
                .all(|w| w[1] - w[0] >= 9 && w[1] - w[0] <= 11)
        );
        let thin = long.thinned(10);
        assert_eq!(thin.epochs.len(), 10);
        assert_eq!((thin.epochs[0], *thin.epochs.last().unwrap()), (1, 1000));
        assert_eq!(thin.train_loss.len(), 10);
        assert_eq!(thin.train_loss[9], long.train_loss[99]);
    }

    const DIGITS: &str = include_str!("../../examples/digits/trainingjob.yaml");
    const IRIS: &str = include_str!("../../examples/iris/trainingjob.yaml");

    fn minimal() -> TrainingJobSpec {
        serde_json::from_value(serde_json::json!({
            "datasetRef": {"name": "iris"},
            "task": "classification",
            "model": {"architecture": "mlp"},
        }))
        .unwrap()
    }

    #[test]
    fn digits_example_is_a_cnn_on_8x8_images() {
        let job: TrainingJob = serde_yaml::from_str(DIGITS).unwrap();
        assert_eq!(job.spec.dataset_ref.name, "digits");
        assert_eq!(job.spec.model.architecture, Architecture::Cnn);
        assert_eq!(job.spec.model.cnn.as_ref().unwrap().input_shape, [1, 8, 8]);
        assert_eq!(job.spec.loss(), Loss::CrossEntropy);
    }

    #[test]
    fn iris_example_round_trips() {
        let job: TrainingJob = serde_yaml::from_str(IRIS).unwrap();
        let json = serde_json::to_value(&job).unwrap();
        let again: TrainingJob = serde_json::from_value(json).unwrap();
        assert_eq!(again.spec, job.spec);
    }

    #[test]
    fn minimal_spec_takes_defaults() {
        let spec = minimal();
        assert_eq!(spec.hyperparameters, Hyperparameters::default());
        assert_eq!(spec.hyperparameters.epochs, 10);
        assert_eq!(spec.hyperparameters.batch_size, 32);
        assert_eq!(spec.hyperparameters.optimizer.type_, OptimizerType::Adam);
        assert_eq!(spec.hyperparameters.optimizer.learning_rate, 0.001);
        assert_eq!(spec.run_policy.backoff_limit, 3);
        assert!(!spec.run_policy.suspend);
        assert_eq!(spec.resources.gpu, 0);
        assert_eq!(spec.model.mlp_options().hidden_layers, [64, 32]);
    }

    #[test]
    fn loss_follows_the_task_unless_set() {
        let mut spec = minimal();
        assert_eq!(spec.loss(), Loss::CrossEntropy);
        spec.task = Task::Regression;
        assert_eq!(spec.loss(), Loss::Mse);
        spec.hyperparameters.loss = Some(Loss::Bce);
        assert_eq!(spec.loss(), Loss::Bce);
    }

    #[test]
    fn objective_goal_follows_the_metric() {
        let mut objective = Objective::default();
        assert_eq!(objective.goal(), Goal::Minimize);
        objective.metric = ValidationMetric::ValidationAccuracy;
        assert_eq!(objective.goal(), Goal::Maximize);
    }

    #[test]
    fn a_trial_overrides_hyperparameters_and_drops_the_search() {
        let mut spec = minimal();
        spec.search = Some(SearchSpec {
            strategy: SearchStrategy::Grid,
            parameters: vec![],
            max_trials: 4,
            parallelism: 2,
            objective: Objective::default(),
        });
        let parameters = BTreeMap::from([
            ("learningRate".to_owned(), ParameterValue::Number(0.01)),
            ("batchSize".to_owned(), ParameterValue::Number(63.7)),
            ("dropout".to_owned(), ParameterValue::Number(0.2)),
            ("optimizer".to_owned(), ParameterValue::Text("sgd".into())),
            ("momentum".to_owned(), ParameterValue::Number(0.9)),
        ]);
        let trial = spec.for_trial(&parameters).unwrap();
        assert_eq!(trial.search, None);
        assert_eq!(trial.hyperparameters.optimizer.learning_rate, 0.01);
        assert_eq!(trial.hyperparameters.batch_size, 64);
        assert_eq!(trial.hyperparameters.optimizer.type_, OptimizerType::Sgd);
        assert_eq!(trial.hyperparameters.optimizer.momentum, Some(0.9));
        assert_eq!(trial.model.mlp.unwrap().dropout, 0.2);
    }

    #[test]
    fn a_bad_trial_parameter_is_named() {
        let spec = minimal();
        let bad = |name: &str, value: ParameterValue| {
            spec.for_trial(&BTreeMap::from([(name.to_owned(), value)]))
                .unwrap_err()
        };
        assert!(bad("depth", ParameterValue::Number(3.0)).contains("depth"));
        assert!(bad("batchSize", ParameterValue::Number(0.0)).contains("batchSize"));
        assert!(bad("optimizer", ParameterValue::Text("lbfgs".into())).contains("lbfgs"));
        assert!(bad("epochs", ParameterValue::Text("ten".into())).contains("epochs"));
    }

    #[test]
    fn parameter_values_are_untagged_json() {
        let values: BTreeMap<String, ParameterValue> =
            serde_json::from_str(r#"{"learningRate": 0.1, "optimizer": "adamw"}"#).unwrap();
        assert_eq!(values["learningRate"], ParameterValue::Number(0.1));
        assert_eq!(values["optimizer"], ParameterValue::Text("adamw".into()));
        assert_eq!(values["optimizer"].to_string(), "adamw");
    }

    #[test]
    fn progress_reads_what_a_worker_writes() {
        let progress: TrainingProgress = serde_json::from_str(
            r#"{"epoch": 3, "totalEpochs": 10, "trainLoss": 0.5, "validationAccuracy": 0.9,
                "updatedAt": "2027-01-15T08:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(progress.epoch, 3);
        assert_eq!(progress.validation_accuracy, Some(0.9));
        assert!(progress.updated_at.is_some());
    }
}
