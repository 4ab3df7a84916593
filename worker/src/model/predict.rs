//! Loading a model artifact and predicting on raw inputs: the model API `serve` builds on.
//!
//! Loading refuses weights whose sha256 differs from the card's (or from the digest the caller
//! expects), so a server never answers with a model other than the one it was asked for.
//! Predictions take raw inputs — feature values in the card's feature order, or texts — and
//! apply the card's normalisation or tokeniser themselves.

use super::{ArchitectureExt, Head, HeadExt, Network};
use crate::artifact;
use crate::data::normalize::ApplyNormalization;
use crate::tokenize::Tokenizer;
use anyhow::{Context, Result, bail};
use modelops_api::card::{DataKind, ModelCard, TargetScaling};
use modelops_api::workorder::layout;
use std::collections::HashMap;
use std::path::Path;
use tch::{Device, Kind, Tensor, nn};

/// What a model predicted for a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Prediction {
    /// Classification: the most probable class per input and every class's probability.
    Classes {
        /// Class names, one per input.
        labels: Vec<String>,
        /// One row per input, one probability per class in the card's class order.
        probabilities: Vec<Vec<f32>>,
    },
    /// Regression: one value per input.
    Values(Vec<f32>),
}

/// A model loaded for inference.
#[derive(Debug)]
pub struct LoadedModel {
    /// The model card.
    pub card: ModelCard,
    /// The model's digest: the sha256 of its card, which pins the weights' and module's
    /// (all verified).
    pub digest: String,
    /// The card's tokeniser, ready to encode (text models).
    tokenizer: Option<Tokenizer>,
    network: Box<dyn Network>,
    device: Device,
    // Owns the variables the network's layers point into.
    _variables: nn::VarStore,
}

/// Copies named tensors into a var store's variables, every variable required, shapes checked.
pub fn load_variables(
    variables: &nn::VarStore,
    tensors: &HashMap<String, Tensor>,
    prefix: &str,
) -> Result<()> {
    tch::no_grad(|| {
        for (name, mut variable) in variables.variables() {
            let Some(source) = tensors.get(&format!("{prefix}{name}")) else {
                bail!(
                    "the weights have no tensor {prefix}{name}; they were saved by a different architecture"
                );
            };
            if source.size() != variable.size() {
                bail!(
                    "tensor {name} has shape {:?} in the weights but {:?} in the model",
                    source.size(),
                    variable.size()
                );
            }
            variable
                .f_copy_(source)
                .with_context(|| format!("copying tensor {name}"))?;
        }
        Ok(())
    })
}

/// A var store's variables by name, sorted.
pub fn named_variables(variables: &nn::VarStore) -> Vec<(String, Tensor)> {
    let mut named: Vec<(String, Tensor)> = variables.variables().into_iter().collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    named
}

/// A [`Head`] applied to network outputs.
pub trait Probabilities {
    /// Turns network outputs into class probabilities `[n, classes]` (classification heads).
    fn probabilities(self, outputs: &Tensor) -> Tensor;
}

impl Probabilities for Head {
    fn probabilities(self, outputs: &Tensor) -> Tensor {
        match self {
            Head::Softmax => outputs.softmax(-1, Kind::Float),
            Head::Sigmoid => {
                let p = outputs.view([-1, 1]).sigmoid();
                Tensor::cat(&[p.ones_like() - &p, p], 1)
            }
            Head::Linear => outputs.view([-1, 1]),
        }
    }
}

impl LoadedModel {
    /// Loads the model in `dir` (a `models/<digest>` folder) onto `device`, verifying the card
    /// against `expected_digest` when given (the model's digest is the sha256 of its card) and
    /// the weights and module against the card.
    pub fn load(dir: &Path, expected_digest: Option<&str>, device: Device) -> Result<Self> {
        let card_path = dir.join(layout::MODEL_JSON);
        let card_bytes = std::fs::read(&card_path)
            .with_context(|| format!("reading the model card {}", card_path.display()))?;
        let digest = artifact::sha256_hex(&card_bytes);
        if let Some(expected) = expected_digest
            && expected.trim_start_matches("sha256:") != digest
        {
            bail!(
                "the model in {} has digest {digest} (the sha256 of its card), not the expected {expected}",
                dir.display()
            );
        }
        let card: ModelCard = serde_json::from_slice(&card_bytes)
            .with_context(|| format!("parsing the model card {}", card_path.display()))?;
        if let Err(reason) = card.check_format() {
            bail!("model card {} has {reason}", card_path.display());
        }
        let weights_path = dir.join(&card.weights.file);
        let weights = std::fs::read(&weights_path)
            .with_context(|| format!("reading the weights {}", weights_path.display()))?;
        let weights_sha256 = artifact::sha256_hex(&weights);
        if weights_sha256 != card.weights.sha256 {
            bail!(
                "the weights {} have sha256 {weights_sha256} but the model card says {}; the artifact is damaged or was altered, train the model again",
                weights_path.display(),
                card.weights.sha256
            );
        }
        let module_file = match &card.module {
            Some(module) => {
                let path = dir.join(&module.file);
                let bytes = std::fs::read(&path)
                    .with_context(|| format!("reading the module {}", path.display()))?;
                if artifact::sha256_hex(&bytes) != module.sha256 {
                    bail!(
                        "the module {} does not match the model card's sha256; the artifact is damaged",
                        path.display()
                    );
                }
                Some(path)
            }
            None => None,
        };
        let variables = nn::VarStore::new(device);
        let (inputs, classes) = (
            input_width(&card)?,
            card.classes.as_ref().map_or(1, Vec::len),
        );
        let network = card.architecture.build(
            &variables.root(),
            inputs,
            card.head.outputs(classes),
            module_file.as_deref(),
        )?;
        let tensors: HashMap<String, Tensor> = artifact::read_safetensors_bytes(&weights)?
            .into_iter()
            .collect();
        load_variables(&variables, &tensors, "")?;
        Ok(Self {
            tokenizer: card.input.tokenizer.clone().map(Tokenizer::from),
            card,
            digest,
            network,
            device,
            _variables: variables,
        })
    }

    /// Predicts from raw feature rows (table models), in the card's feature order.
    pub fn predict_rows(&self, rows: &[Vec<f64>]) -> Result<Prediction> {
        if self.card.input.kind != DataKind::Table {
            bail!("this model reads text; send texts, not feature rows");
        }
        let width = self.card.input.features.len();
        for (index, row) in rows.iter().enumerate() {
            if row.len() != width {
                bail!(
                    "input {index} has {} values; the model expects {width} ({})",
                    row.len(),
                    self.card.input.features.join(", ")
                );
            }
            if let Some(position) = row.iter().position(|v| !v.is_finite()) {
                bail!(
                    "input {index}: feature {:?} is not a finite number",
                    self.card.input.features[position]
                );
            }
        }
        // The card's normalisation applied here, not by tensor operations: the same values
        // (f64, rounded to f32 once) into one tensor, where libtorch would take eight
        // operations for it, each costing more than the arithmetic on a small batch.
        let mut flat = Vec::with_capacity(rows.len() * width);
        match &self.card.input.normalization {
            Some(normalization)
                if normalization.offset.len() != width || normalization.scale.len() != width =>
            {
                bail!(
                    "the model card's normalisation has {} offsets and {} scales; the model has {width} features",
                    normalization.offset.len(),
                    normalization.scale.len()
                )
            }
            Some(normalization) => {
                for row in rows {
                    normalization.extend_row(row, &mut flat);
                }
            }
            None => flat.extend(rows.iter().flatten().map(|&value| value as f32)),
        }
        let inputs = Tensor::from_slice(&flat).view([rows.len() as i64, width as i64]);
        self.predict_inputs(&inputs)
    }

    /// Predicts from texts (text models).
    pub fn predict_texts<S: AsRef<str>>(&self, texts: &[S]) -> Result<Prediction> {
        let Some(tokenizer) = &self.tokenizer else {
            bail!("this model reads feature rows; send numbers, not texts");
        };
        self.predict_inputs(&tokenizer.encode_batch(texts))
    }

    /// Runs the network on prepared inputs (normalised features or token ids) and interprets
    /// the outputs by the card's head.
    pub fn predict_inputs(&self, inputs: &Tensor) -> Result<Prediction> {
        let rows = inputs.size().first().copied().unwrap_or(0);
        if rows == 0 {
            return Ok(match self.card.head {
                Head::Linear => Prediction::Values(Vec::new()),
                _ => Prediction::Classes {
                    labels: Vec::new(),
                    probabilities: Vec::new(),
                },
            });
        }
        let on_device = |tensor: &Tensor, device: Device| {
            if tensor.device() == device {
                tensor.shallow_clone()
            } else {
                tensor.to_device(device)
            }
        };
        let mut outputs = tch::no_grad(|| {
            self.network
                .forward_t(&on_device(inputs, self.device), false)
        })?;
        outputs = on_device(&outputs, Device::Cpu);
        if outputs.kind() != Kind::Float {
            outputs = outputs.to_kind(Kind::Float);
        }
        match (self.card.head, &self.card.classes) {
            (Head::Linear, _) => {
                let scaling = self.card.target_scaling.unwrap_or(TargetScaling {
                    offset: 0.0,
                    scale: 1.0,
                });
                let values = outputs.view([-1]) * scaling.scale + scaling.offset;
                Ok(Prediction::Values(Vec::<f32>::try_from(values)?))
            }
            (head, Some(classes)) => {
                let probabilities = head.probabilities(&outputs);
                let width = classes.len();
                let flat = Vec::<f32>::try_from(probabilities.contiguous().view([-1]))?;
                if flat.len() != rows as usize * width {
                    bail!(
                        "the network gave {} probabilities for {rows} inputs of {width} classes",
                        flat.len()
                    );
                }
                let rows: Vec<Vec<f32>> = flat.chunks(width).map(<[f32]>::to_vec).collect();
                Ok(Prediction::Classes {
                    labels: rows
                        .iter()
                        .map(|row| classes[argmax(row)].clone())
                        .collect(),
                    probabilities: rows,
                })
            }
            (_, None) => bail!("the model card of a classification model lists no classes"),
        }
    }
}

/// The index of the largest value as libtorch's `argmax` picks it: the first of equal values,
/// and a NaN counting as the largest.
fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (index, &value) in values.iter().enumerate().skip(1) {
        let current = values[best];
        if !current.is_nan() && (value.is_nan() || value > current) {
            best = index;
        }
    }
    best
}

/// The network's input width: the feature count, or the vocabulary size for text.
pub fn input_width(card: &ModelCard) -> Result<i64> {
    match (&card.input.kind, &card.input.tokenizer) {
        (DataKind::Text, Some(tokenizer)) => Ok(tokenizer.vocabulary.len() as i64),
        (DataKind::Text, None) => bail!("the model card of a text model has no tokenizer"),
        (DataKind::Table, _) => Ok(card.input.features.len() as i64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_picks_what_libtorch_picks() {
        let cases: [&[f32]; 6] = [
            &[0.1, 0.7, 0.2],
            &[0.4, 0.4, 0.2],
            &[0.2, 0.4, 0.4],
            &[0.5, f32::NAN, 0.9],
            &[f32::NAN, 1.0, f32::NAN],
            &[3.0],
        ];
        for values in cases {
            let torch = Tensor::from_slice(values)
                .argmax(-1, false)
                .int64_value(&[]);
            assert_eq!(argmax(values), torch as usize, "{values:?}");
        }
    }
}
