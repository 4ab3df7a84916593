//! The training loop's parts: examples on the device, one epoch of shuffled mini-batches, the
//! evaluation of a split, and the histogram of a regression model's training predictions.

use super::loss::Loss;
use super::optim::Optimizer;
use crate::model::predict::Probabilities;
use crate::model::{Head, Network};
use crate::rng::SeededRng;
use crate::tokenize::PAD;
use anyhow::Result;
use modelops_api::card::TargetScaling;
use modelops_api::profile::{BINS, Histogram};
use std::collections::BTreeMap;
use tch::{Device, Kind, Tensor};

/// The rows of one split, as the network reads them.
#[derive(Debug)]
pub struct Examples {
    /// Normalised features `[n, f]`, or token ids `[n, length]` padded on the right.
    pub inputs: Tensor,
    /// Class indices (i64) or standardised targets (f32), `[n]`.
    pub targets: Tensor,
    /// Tokens per text, so a batch can be cut to its longest text.
    pub lengths: Option<Vec<i64>>,
}

impl Examples {
    /// Examples on `device`; token lengths are taken from the ids.
    pub fn new(inputs: Tensor, targets: Tensor, text: bool, device: Device) -> Result<Self> {
        let lengths = if text {
            Some(Vec::<i64>::try_from(inputs.ne(PAD).sum_dim_intlist(
                1,
                false,
                Kind::Int64,
            ))?)
        } else {
            None
        };
        Ok(Self {
            inputs: inputs.to_device(device),
            targets: targets.to_device(device),
            lengths,
        })
    }

    /// Rows.
    pub fn len(&self) -> usize {
        self.targets.size()[0] as usize
    }

    /// True without rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The inputs and targets of some rows.
    pub fn batch(&self, rows: &[i64]) -> (Tensor, Tensor) {
        self.batch_at(rows, &self.index(rows))
    }

    /// `rows` as an index on the examples' device.
    pub fn index(&self, rows: &[i64]) -> Tensor {
        Tensor::from_slice(rows).to_device(self.inputs.device())
    }

    /// The inputs and targets of `rows`, given as `index` too, on the examples' device.
    pub fn batch_at(&self, rows: &[i64], index: &Tensor) -> (Tensor, Tensor) {
        let mut inputs = self.inputs.index_select(0, index);
        if let Some(lengths) = &self.lengths {
            let longest = rows
                .iter()
                .map(|&r| lengths[r as usize])
                .max()
                .unwrap_or(1)
                .max(1);
            inputs = inputs.narrow(1, 0, longest);
        }
        (inputs, self.targets.index_select(0, index))
    }
}

/// Everything one epoch needs besides the network and the optimiser.
pub struct EpochPlan<'a> {
    /// The training examples.
    pub examples: &'a Examples,
    /// The loss.
    pub loss: Loss,
    /// Rows per batch.
    pub batch_size: usize,
    /// The epoch's learning rate.
    pub learning_rate: f64,
    /// The run's seed.
    pub seed: u64,
    /// The epoch (1-based).
    pub epoch: usize,
}

/// Trains one epoch and returns the mean training loss. The shuffle and libtorch's generator
/// (dropout) are seeded from (seed, epoch), so an epoch computes the same whether or not the
/// process ran the epochs before it.
pub fn train_epoch(
    network: &dyn Network,
    optimizer: &mut Optimizer,
    plan: &EpochPlan,
) -> Result<f64> {
    let mut order: Vec<i64> = (0..plan.examples.len() as i64).collect();
    SeededRng::derived(plan.seed, plan.epoch as u64).shuffle(&mut order);
    tch::manual_seed(
        SeededRng::derived(plan.seed, (1 << 32) | plan.epoch as u64).next_u64() as i64 & i64::MAX,
    );
    let mut total = 0.0;
    // On a GPU the losses are summed there and read once: reading each batch's loss would make
    // the host wait for every batch's kernels instead of queueing the next batch's.
    let mut on_device: Option<Tensor> = None;
    // The epoch's order is copied to the device once; each batch's index is a slice of it.
    let index = plan.examples.index(&order);
    let batch_size = plan.batch_size.max(1);
    for (n, rows) in order.chunks(batch_size).enumerate() {
        let at = index.narrow(0, (n * batch_size) as i64, rows.len() as i64);
        let (inputs, targets) = plan.examples.batch_at(rows, &at);
        let outputs = network.forward_t(&inputs, true)?;
        let loss = plan.loss.compute(&outputs, &targets);
        optimizer.backward_step(&loss, plan.learning_rate);
        if loss.device().is_cuda() {
            let weighted = loss.detach().to_kind(Kind::Double) * rows.len() as f64;
            on_device = Some(match on_device {
                Some(sum) => sum + weighted,
                None => weighted,
            });
        } else {
            total += loss.double_value(&[]) * rows.len() as f64;
        }
    }
    if let Some(sum) = on_device {
        total += sum.double_value(&[]);
    }
    Ok(total / plan.examples.len().max(1) as f64)
}

/// Rows per evaluation batch (no gradients, so larger than training batches).
const EVALUATION_BATCH: usize = 1024;

/// Evaluates a split and returns its metrics named `<split>Loss`, `<split>Accuracy`
/// (classification), `<split>Mse`, `<split>Rmse`, `<split>Mae`, `<split>R2` (regression, in the target's own
/// units; the loss is on the standardised target).
pub fn evaluate(
    network: &dyn Network,
    loss: Loss,
    head: Head,
    examples: &Examples,
    scaling: Option<TargetScaling>,
    split: &str,
) -> Result<BTreeMap<String, f64>> {
    let mut metrics = BTreeMap::new();
    if examples.is_empty() {
        return Ok(metrics);
    }
    let rows: Vec<i64> = (0..examples.len() as i64).collect();
    let (mut loss_sum, mut correct) = (0.0, 0i64);
    let mut predictions = Vec::new();
    tch::no_grad(|| -> Result<()> {
        for chunk in rows.chunks(EVALUATION_BATCH) {
            let (inputs, targets) = examples.batch(chunk);
            let outputs = network.forward_t(&inputs, false)?;
            loss_sum += loss.compute(&outputs, &targets).double_value(&[]) * chunk.len() as f64;
            match head {
                Head::Linear => predictions.push(outputs.view([-1]).to_device(Device::Cpu)),
                _ => {
                    let predicted = head.probabilities(&outputs).argmax(-1, false);
                    correct += predicted
                        .eq_tensor(&targets)
                        .sum(Kind::Int64)
                        .int64_value(&[]);
                }
            }
        }
        Ok(())
    })?;
    let n = examples.len() as f64;
    metrics.insert(format!("{split}Loss"), loss_sum / n);
    match (head, scaling) {
        (Head::Linear, Some(scaling)) => {
            let predicted = in_target_units(&Tensor::cat(&predictions, 0), scaling);
            let actual = in_target_units(&examples.targets.to_device(Device::Cpu), scaling);
            let error = &predicted - &actual;
            let mse = error.square().mean(Kind::Double).double_value(&[]);
            let variance = (&actual - actual.mean(Kind::Double))
                .square()
                .mean(Kind::Double)
                .double_value(&[]);
            metrics.insert(format!("{split}Mse"), mse);
            metrics.insert(format!("{split}Rmse"), mse.sqrt());
            metrics.insert(
                format!("{split}Mae"),
                error.abs().mean(Kind::Double).double_value(&[]),
            );
            if variance > 0.0 {
                metrics.insert(format!("{split}R2"), 1.0 - mse / variance);
            }
        }
        _ => {
            metrics.insert(format!("{split}Accuracy"), correct as f64 / n);
        }
    }
    Ok(metrics)
}

/// Standardised regression outputs or targets back in the target's own units.
fn in_target_units(standardised: &Tensor, scaling: TargetScaling) -> Tensor {
    standardised.to_kind(Kind::Double) * scaling.scale + scaling.offset
}

/// A regression network's predictions on every row of a split, in the target's own units (as
/// [`evaluate`] measures them and a server answers them).
pub fn predicted_values(
    network: &dyn Network,
    examples: &Examples,
    scaling: TargetScaling,
) -> Result<Vec<f64>> {
    let rows: Vec<i64> = (0..examples.len() as i64).collect();
    let mut outputs = Vec::new();
    tch::no_grad(|| -> Result<()> {
        for chunk in rows.chunks(EVALUATION_BATCH) {
            let (inputs, _) = examples.batch(chunk);
            outputs.push(
                network
                    .forward_t(&inputs, false)?
                    .view([-1])
                    .to_device(Device::Cpu),
            );
        }
        Ok(())
    })?;
    if outputs.is_empty() {
        return Ok(Vec::new());
    }
    Ok(Vec::<f64>::try_from(in_target_units(
        &Tensor::cat(&outputs, 0),
        scaling,
    ))?)
}

/// The histogram of a regression model's predictions on its training split: [`BINS`]
/// equal-width bins over the finite predictions' range, every prediction counted (a NaN as an
/// underflow). `None` without a finite prediction: there is no range to bin.
pub fn prediction_histogram(values: &[f64]) -> Option<Histogram> {
    let finite = values.iter().copied().filter(|v| v.is_finite());
    let min = finite.clone().fold(f64::INFINITY, f64::min);
    let max = finite.fold(f64::NEG_INFINITY, f64::max);
    if !min.is_finite() {
        return None;
    }
    let mut histogram = Histogram::equal_width(min, max, BINS);
    for &value in values {
        histogram.add(value);
    }
    Some(histogram)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_prediction_is_counted_on_bins_over_their_range() {
        let histogram = prediction_histogram(&[0.0, 1.0, 2.5, 10.0, f64::NAN]).unwrap();
        assert_eq!(histogram.edges.len(), BINS + 1);
        assert_eq!((histogram.edges[0], histogram.edges[BINS]), (0.0, 10.0));
        assert_eq!(histogram.counts, [1, 1, 1, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!((histogram.underflow, histogram.overflow), (1, 0));
        assert_eq!(histogram.check(), Ok(()));
        let constant = prediction_histogram(&[2.0, 2.0]).unwrap();
        assert_eq!(constant.counts.iter().sum::<u64>(), 2);
        assert_eq!(prediction_histogram(&[f64::NAN]), None);
        assert_eq!(prediction_histogram(&[]), None);
    }
}
