//! Models: the architectures (`mlp`, `cnn`, `textLstm`, `torchscript`), the model card, and
//! [`predict::LoadedModel`], which loads an artifact and predicts on raw inputs (what `serve`
//! uses).

pub mod card;
pub mod cnn;
pub mod mlp;
pub mod predict;
pub mod text_lstm;
pub mod torchscript;

use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use tch::{Tensor, nn};

/// A network: a batch of inputs in, one row of outputs per input out.
pub trait Network: Send + std::fmt::Debug {
    /// The forward pass; `train` turns dropout (and a scripted module's training mode) on.
    fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor>;
}

/// What the model predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// One of the data set's classes.
    Classification,
    /// A number.
    Regression,
}

/// How a network's outputs become predictions (fixed by the task and the loss).
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

impl Head {
    /// Output columns of the network for `classes` classes.
    pub fn outputs(self, classes: usize) -> i64 {
        match self {
            Head::Softmax => classes as i64,
            Head::Sigmoid | Head::Linear => 1,
        }
    }
}

/// Hidden-layer activation of the MLP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// max(0, x)
    #[default]
    Relu,
    /// tanh(x)
    Tanh,
    /// Gaussian error linear unit.
    Gelu,
}

impl Activation {
    /// Applies the activation.
    pub fn apply(self, xs: &Tensor) -> Tensor {
        match self {
            Activation::Relu => xs.relu(),
            Activation::Tanh => xs.tanh(),
            Activation::Gelu => xs.gelu("none"),
        }
    }
}

/// Options of the `mlp` architecture.
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

/// Options of the `cnn` architecture.
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

/// Options of the `textLstm` architecture.
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
    /// The scripted module file (in a model card: its name inside the model folder).
    pub module: PathBuf,
}

/// The network architecture and its options.
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
    /// The name used in specs and model cards.
    pub fn name(&self) -> &'static str {
        match self {
            Architecture::Mlp(_) => "mlp",
            Architecture::Cnn(_) => "cnn",
            Architecture::TextLstm(_) => "textLstm",
            Architecture::Torchscript(_) => "torchscript",
        }
    }

    /// True when the architecture reads token ids rather than feature vectors.
    pub fn reads_text(&self) -> bool {
        matches!(self, Architecture::TextLstm(_))
    }

    /// Builds the network's variables under `path`. `inputs` is the feature count (or the
    /// vocabulary size for text); `outputs` the output columns. A torchscript module is loaded
    /// from `module_file` (the options' path, or the copy in a model folder).
    pub fn build(
        &self,
        path: &nn::Path,
        inputs: i64,
        outputs: i64,
        module_file: Option<&std::path::Path>,
    ) -> Result<Box<dyn Network>> {
        Ok(match self {
            Architecture::Mlp(options) => Box::new(mlp::Mlp::new(path, inputs, outputs, options)),
            Architecture::Cnn(options) => Box::new(cnn::Cnn::new(path, inputs, outputs, options)?),
            Architecture::TextLstm(options) => {
                Box::new(text_lstm::TextLstm::new(path, inputs, outputs, options))
            }
            Architecture::Torchscript(options) => {
                let file = module_file.unwrap_or(&options.module);
                Box::new(torchscript::Scripted::load(path, file)?)
            }
        })
    }
}
