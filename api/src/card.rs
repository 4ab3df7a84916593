//! The model card (`model.json`, [`crate::workorder::layout::MODEL_JSON`]): everything needed to
//! rebuild, trust and use a trained model — the architecture and its options, the task, the
//! classes, the input contract (feature order and normalisation, or the tokeniser), the metrics,
//! the data set it was trained on, the hyperparameters, and the sha256 of the weights. The
//! model's digest is the sha256 of this file's bytes: it pins the weights (and module) through
//! their sha256 here, and the input contract with them, so that the same weights under another
//! normalisation are another model.
//!
//! The training pod writes it and the serving pods read it (both `modelops-worker`); the
//! operator reads it back for a search's best trial. These are the types of the file only: what
//! the worker does with them (building a network, normalising a row, tokenising a text) stays in
//! the worker. The spec's enums are reused where the card writes the same words (the task, the
//! activation, the normalisation method), so that the two cannot drift apart.

use crate::dataset::Normalize;
use crate::trainingjob::{self, ModelMetrics};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

pub use crate::trainingjob::{Activation, Task};

/// The card format this version writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// How outputs become predictions (fixed by the task and the loss).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Head {
    /// One logit per class; probabilities by softmax (cross-entropy).
    Softmax,
    /// One logit for the second of two classes; its probability by sigmoid (binary cross-entropy).
    Sigmoid,
    /// One value, a standardised regression target.
    Linear,
}

/// Options of the `mlp` architecture, resolved (every default filled in).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MlpOptions {
    /// Widths of the hidden layers; none trains a linear model.
    pub hidden_layers: Vec<i64>,
    /// Activation after each hidden layer.
    pub activation: Activation,
    /// Dropout probability after each hidden layer.
    pub dropout: f64,
}

impl Default for MlpOptions {
    fn default() -> Self {
        Self {
            hidden_layers: vec![64, 32],
            activation: Activation::Relu,
            dropout: 0.0,
        }
    }
}

/// Options of the `cnn` architecture, resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CnnOptions {
    /// `[channels, height, width]` of the image each feature row holds (row-major).
    pub input_shape: Vec<i64>,
    /// Output channels of each convolution block (convolution, activation, 2×2 max-pooling
    /// while the image is at least 2×2).
    pub conv_channels: Vec<i64>,
    /// Side of the square kernels (odd sizes keep the image size).
    pub kernel_size: i64,
    /// Widths of the dense layers after the convolutions.
    pub hidden_layers: Vec<i64>,
    /// Activation after each convolution and dense layer.
    pub activation: Activation,
    /// Dropout probability before each dense layer (and the output layer).
    pub dropout: f64,
}

impl Default for CnnOptions {
    fn default() -> Self {
        Self {
            input_shape: Vec::new(),
            conv_channels: vec![16, 32],
            kernel_size: 3,
            hidden_layers: vec![64],
            activation: Activation::Relu,
            dropout: 0.0,
        }
    }
}

/// Options of the `textLstm` architecture, resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TextLstmOptions {
    /// Vocabulary size, including the padding and out-of-vocabulary ids.
    pub vocabulary_size: usize,
    /// Tokens kept per text.
    pub max_length: usize,
    /// Width of the token embedding.
    pub embedding_dim: i64,
    /// Width of the LSTM state.
    pub hidden_size: i64,
    /// Stacked LSTM layers.
    pub layers: i64,
    /// Read each text in both directions.
    pub bidirectional: bool,
    /// Dropout probability between LSTM layers and before the output layer.
    pub dropout: f64,
}

impl Default for TextLstmOptions {
    fn default() -> Self {
        Self {
            vocabulary_size: 20_000,
            max_length: 128,
            embedding_dim: 128,
            hidden_size: 64,
            layers: 1,
            bidirectional: false,
            dropout: 0.0,
        }
    }
}

/// Options of the `torchscript` architecture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TorchscriptOptions {
    /// The scripted module file (in a model card: its name inside the model folder,
    /// [`crate::workorder::layout::MODULE_PT`]).
    pub module: PathBuf,
}

/// The network architecture and its options: `{"type": "mlp", "hiddenLayers": …}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Architecture {
    /// Dense layers.
    Mlp(MlpOptions),
    /// Convolutions over an image per row.
    Cnn(CnnOptions),
    /// Embedding + LSTM + dense, for text.
    TextLstm(TextLstmOptions),
    /// A user's scripted module.
    Torchscript(TorchscriptOptions),
}

impl Architecture {
    /// The architecture without its options, as a TrainingJob's spec and status name it.
    pub fn kind(&self) -> trainingjob::Architecture {
        match self {
            Architecture::Mlp(_) => trainingjob::Architecture::Mlp,
            Architecture::Cnn(_) => trainingjob::Architecture::Cnn,
            Architecture::TextLstm(_) => trainingjob::Architecture::TextLstm,
            Architecture::Torchscript(_) => trainingjob::Architecture::Torchscript,
        }
    }

    /// The name used in specs and model cards (`mlp`, `cnn`, `textLstm`, `torchscript`).
    pub fn name(&self) -> &'static str {
        self.kind().as_str()
    }
}

/// What the rows of a data set are made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataKind {
    /// Numeric feature columns.
    Table,
    /// One text per row.
    Text,
}

/// A fitted normalisation: `normalised = (raw - offset) / scale`, per feature.
///
/// For `standard` the offset is the mean and the scale the standard deviation; for `minmax` the
/// offset is the minimum and the scale the range; for `none` they are 0 and 1. A feature that is
/// constant on the training split gets scale 1, so it never divides by zero.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    /// The method that was fitted.
    pub method: Normalize,
    /// Subtracted from each raw feature value.
    pub offset: Vec<f64>,
    /// Divides each shifted feature value.
    pub scale: Vec<f64>,
}

/// The only tokenisation scheme there is, as a card describes it. A reader does not compare it:
/// it documents the card for people.
pub const TOKENIZER_SCHEME: &str =
    "lowercase; words of letters and digits; one token per Han/Kana character";

/// A fitted tokeniser, as a card stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tokenizer {
    /// How texts are cut into tokens ([`TOKENIZER_SCHEME`]).
    pub scheme: String,
    /// Longer texts keep their first `max_length` tokens.
    pub max_length: usize,
    /// Tokens by id: `<pad>` (0), `<oov>` (1), then the most frequent training tokens.
    pub vocabulary: Vec<String>,
}

/// A file of the model folder and its sha256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileDigest {
    /// The file name inside the model folder.
    pub file: String,
    /// Lowercase hex sha256 of the file.
    pub sha256: String,
}

/// What the model reads, and how raw inputs are turned into network inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelInput {
    /// Feature vectors or text.
    pub kind: DataKind,
    /// Feature names, in the order inputs must list them (table data).
    pub features: Vec<String>,
    /// Applied to raw features before the network (table data).
    pub normalization: Option<Normalization>,
    /// The text field of the data set (text data).
    pub text_field: Option<String>,
    /// The tokeniser and its vocabulary (text data).
    pub tokenizer: Option<Tokenizer>,
}

/// A regression target's standardisation: `prediction = output * scale + offset`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetScaling {
    /// Mean of the training targets.
    pub offset: f64,
    /// Standard deviation of the training targets (1 when constant).
    pub scale: f64,
}

/// How the model was trained (informative; not part of the digest).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrainingRecord {
    /// Epochs run, including those of earlier attempts that this run resumed.
    pub epochs_run: usize,
    /// The epoch whose weights were kept.
    pub best_epoch: usize,
    /// True when early stopping ended training before the last epoch.
    pub stopped_early: bool,
    /// The seed.
    pub seed: u64,
    /// `cpu` or `cuda:N`.
    pub device: String,
    /// The libtorch version.
    pub libtorch: String,
}

/// `model.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelCard {
    /// Card format version ([`FORMAT_VERSION`]).
    pub format_version: u32,
    /// Architecture and options.
    pub architecture: Architecture,
    /// Classification or regression.
    pub task: Task,
    /// How outputs become predictions.
    pub head: Head,
    /// Class names as in the data, in output order (classification).
    pub classes: Option<Vec<String>>,
    /// The input contract.
    pub input: ModelInput,
    /// Target standardisation (regression).
    pub target_scaling: Option<TargetScaling>,
    /// Metrics: `testAccuracy`, `testLoss`, `validationAccuracy`, … (only those that apply).
    pub metrics: BTreeMap<String, f64>,
    /// Digest of the prepared data set it was trained on, `sha256:<hex>`.
    pub dataset_digest: String,
    /// The hyperparameters as given (epochs, batch size, optimiser, schedule, loss, seed, …).
    pub hyperparameters: serde_json::Value,
    /// The weights and their sha256 (the card's own sha256 is the model's digest).
    pub weights: FileDigest,
    /// The scripted module (torchscript).
    pub module: Option<FileDigest>,
    /// How it was trained.
    pub training: TrainingRecord,
    /// Regression: the model's predictions on the training split, in the target's own units, on
    /// equal-width bins: the reference of prediction drift (served with the Dataset profile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predictions: Option<crate::profile::Histogram>,
}

impl ModelCard {
    /// The metrics a TrainingJob's status records: those of [`ModelMetrics`] the card has (the
    /// rest, such as a per-class figure, stay in the card).
    pub fn model_metrics(&self) -> ModelMetrics {
        let metric = |name: &str| self.metrics.get(name).copied();
        ModelMetrics {
            test_accuracy: metric("testAccuracy"),
            test_loss: metric("testLoss"),
            test_rmse: metric("testRmse"),
            test_mae: metric("testMae"),
            validation_accuracy: metric("validationAccuracy"),
            validation_loss: metric("validationLoss"),
        }
    }

    /// Checks that this is a card of the format this version reads.
    pub fn check_format(&self) -> Result<(), String> {
        if self.format_version != FORMAT_VERSION {
            return Err(format!(
                "format version {}; this build reads version {FORMAT_VERSION}",
                self.format_version
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cards as `modelops-worker train` writes them (one per architecture), compact.
    const CARDS: [&str; 4] = [
        include_str!("../tests/cards/mlp.json"),
        include_str!("../tests/cards/cnn.json"),
        include_str!("../tests/cards/text_lstm.json"),
        include_str!("../tests/cards/torchscript.json"),
    ];

    #[test]
    fn cards_the_worker_writes_read_and_write_back_byte_for_byte() {
        for text in CARDS {
            let card: ModelCard = serde_json::from_str(text).unwrap();
            assert_eq!(card.check_format(), Ok(()));
            assert_eq!(serde_json::to_string(&card).unwrap(), text);
        }
    }

    #[test]
    fn the_architecture_names_its_kind() {
        let kinds: Vec<trainingjob::Architecture> = CARDS
            .iter()
            .map(|text| {
                serde_json::from_str::<ModelCard>(text)
                    .unwrap()
                    .architecture
                    .kind()
            })
            .collect();
        assert_eq!(
            kinds,
            [
                trainingjob::Architecture::Mlp,
                trainingjob::Architecture::Cnn,
                trainingjob::Architecture::TextLstm,
                trainingjob::Architecture::Torchscript
            ]
        );
        let text: ModelCard = serde_json::from_str(CARDS[2]).unwrap();
        assert_eq!(text.architecture.name(), "textLstm");
        assert_eq!(
            text.input.tokenizer.unwrap().scheme,
            TOKENIZER_SCHEME,
            "the worker writes the one scheme"
        );
    }

    #[test]
    fn the_status_metrics_are_the_cards() {
        let card: ModelCard = serde_json::from_str(CARDS[0]).unwrap();
        assert_eq!(
            card.model_metrics(),
            ModelMetrics {
                test_accuracy: Some(0.9),
                test_loss: Some(0.25),
                validation_accuracy: Some(0.875),
                ..ModelMetrics::default()
            }
        );
        // The names are those the status writes, so the card's keys read as the status's.
        let status: ModelMetrics =
            serde_json::from_value(serde_json::to_value(&card.metrics).unwrap()).unwrap();
        assert_eq!(status, card.model_metrics());
    }

    #[test]
    fn another_format_version_is_refused() {
        let mut card: ModelCard = serde_json::from_str(CARDS[0]).unwrap();
        card.format_version = 2;
        assert_eq!(
            card.check_format().unwrap_err(),
            "format version 2; this build reads version 1"
        );
    }

    #[test]
    fn options_left_out_take_their_defaults() {
        let architecture: Architecture = serde_json::from_str(r#"{"type": "mlp"}"#).unwrap();
        assert_eq!(architecture, Architecture::Mlp(MlpOptions::default()));
    }
}
