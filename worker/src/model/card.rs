//! The model card (`model.json`): everything needed to rebuild, trust and use a trained model —
//! the architecture and its options, the task, the classes, the input contract (feature order
//! and normalisation, or the tokeniser), the metrics, the data set it was trained on, the
//! hyperparameters, and the sha256 of the weights (which is also the model's digest).

use super::{Architecture, Head, Task};
use crate::data::normalize::Normalization;
use crate::data::prepared::DataKind;
use crate::tokenize::Tokenizer;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The card's file name in a model folder.
pub const CARD_FILE: &str = "model.json";
/// The weights' file name in a model folder.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// The scripted module's file name in a model folder (torchscript models).
pub const MODULE_FILE: &str = "module.pt";
/// The card format this worker writes and reads.
pub const FORMAT_VERSION: u32 = 1;

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
    /// Card format version.
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
    /// Digest of the prepared data set it was trained on.
    pub dataset_digest: String,
    /// The hyperparameters as given (epochs, batch size, optimiser, schedule, loss, seed, …).
    pub hyperparameters: serde_json::Value,
    /// The weights; their sha256 is the model's digest.
    pub weights: FileDigest,
    /// The scripted module (torchscript).
    pub module: Option<FileDigest>,
    /// How it was trained.
    pub training: TrainingRecord,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cards in api/tests/cards are what this worker writes: each reads, and writes back
    /// byte for byte (compact form; the worker writes the same fields pretty-printed).
    #[test]
    fn the_api_fixtures_are_cards_this_worker_writes() {
        for fixture in [
            include_str!("../../../api/tests/cards/mlp.json"),
            include_str!("../../../api/tests/cards/cnn.json"),
            include_str!("../../../api/tests/cards/text_lstm.json"),
            include_str!("../../../api/tests/cards/torchscript.json"),
        ] {
            let card: ModelCard = serde_json::from_str(fixture).unwrap();
            assert_eq!(serde_json::to_string(&card).unwrap(), fixture);
        }
    }
}
