//! A user's TorchScript module (`torch.jit.script(model).save(path)`), trained through libtorch.
//!
//! Its parameters join the var store (names with `.` replaced by `_`), so the optimiser,
//! checkpoints and the safetensors weights treat it like the built-in architectures. Buffers
//! (such as batch-norm running statistics) are not parameters and are not saved in the weights;
//! the module file itself is copied into the model artifact.

use super::Network;
use anyhow::{Context, Result};
use std::path::Path;
use std::sync::Mutex;
use tch::{Tensor, TrainableCModule, nn};

/// A scripted module whose training flag follows `forward_t`'s.
#[derive(Debug)]
pub struct Scripted {
    module: Mutex<(TrainableCModule, Option<bool>)>,
}

impl Scripted {
    /// Loads the module file onto the var store's device and registers its parameters.
    pub fn load(path: &nn::Path, module_file: &Path) -> Result<Self> {
        let module =
            TrainableCModule::load(module_file, path.sub("module")).with_context(|| {
                format!(
                    "loading the TorchScript module {} (save it with torch.jit.save)",
                    module_file.display()
                )
            })?;
        Ok(Self {
            module: Mutex::new((module, None)),
        })
    }
}

impl Network for Scripted {
    fn forward_t(&self, xs: &Tensor, train: bool) -> anyhow::Result<Tensor> {
        let mut guard = self
            .module
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let (module, mode) = &mut *guard;
        if *mode != Some(train) {
            if train {
                module.set_train();
            } else {
                module.set_eval();
            }
            *mode = Some(train);
        }
        module
            .forward_ts(&[xs])
            .context("running the TorchScript module's forward")
    }
}
