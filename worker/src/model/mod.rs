//! Models: the architectures (`mlp`, `cnn`, `textLstm`, `torchscript`) and
//! [`predict::LoadedModel`], which loads an artifact and predicts on raw inputs (what `serve`
//! uses). The model card and the types it nests are the contract's, `modelops_api::card`; the
//! worker's logic on them is in the extension traits here ([`ArchitectureExt`], [`HeadExt`],
//! [`ActivationExt`]).

pub mod cnn;
pub mod mlp;
pub mod predict;
pub mod text_lstm;
pub mod torchscript;

use anyhow::Result;
use tch::{Tensor, nn};

/// A network: a batch of inputs in, one row of outputs per input out.
pub trait Network: Send + std::fmt::Debug {
    /// The forward pass; `train` turns dropout (and a scripted module's training mode) on.
    fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor>;
}

// The model card's types are the contract's (`modelops_api::card`), re-exported here so that the
// model code names them where it always did; what the worker does with them is below.
pub use modelops_api::card::{
    Activation, Architecture, CnnOptions, Head, MlpOptions, Task, TextLstmOptions,
    TorchscriptOptions,
};

/// What the worker computes from a [`Head`].
pub trait HeadExt {
    /// Output columns of the network for `classes` classes.
    fn outputs(self, classes: usize) -> i64;
}

impl HeadExt for Head {
    fn outputs(self, classes: usize) -> i64 {
        match self {
            Head::Softmax => classes as i64,
            Head::Sigmoid | Head::Linear => 1,
        }
    }
}

/// An [`Activation`] applied to tensors.
pub trait ActivationExt {
    /// Applies the activation.
    fn apply(self, xs: &Tensor) -> Tensor;
}

impl ActivationExt for Activation {
    fn apply(self, xs: &Tensor) -> Tensor {
        match self {
            Activation::Relu => xs.relu(),
            Activation::Tanh => xs.tanh(),
            Activation::Gelu => xs.gelu("none"),
        }
    }
}

/// What the worker does with an [`Architecture`]: build its network.
pub trait ArchitectureExt {
    /// True when the architecture reads token ids rather than feature vectors.
    fn reads_text(&self) -> bool;

    /// Builds the network's variables under `path`. `inputs` is the feature count (or the
    /// vocabulary size for text); `outputs` the output columns. A torchscript module is loaded
    /// from `module_file` (the options' path, or the copy in a model folder).
    fn build(
        &self,
        path: &nn::Path,
        inputs: i64,
        outputs: i64,
        module_file: Option<&std::path::Path>,
    ) -> Result<Box<dyn Network>>;
}

impl ArchitectureExt for Architecture {
    fn reads_text(&self) -> bool {
        matches!(self, Architecture::TextLstm(_))
    }

    fn build(
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
