//! Loss functions, and which network head each one implies for a task.

use crate::model::{Head, Task};
use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};
use tch::{Kind, Reduction, Tensor};

/// The training loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Loss {
    /// Softmax cross-entropy over class logits (classification).
    CrossEntropy,
    /// Mean squared error on the standardised target (regression).
    Mse,
    /// Binary cross-entropy on one logit (classification with two classes).
    Bce,
}

impl Loss {
    /// The default loss of a task.
    pub fn default_for(task: Task) -> Self {
        match task {
            Task::Classification => Loss::CrossEntropy,
            Task::Regression => Loss::Mse,
        }
    }

    /// The head this loss trains for `task` with `classes` classes, or why the pair does not fit.
    pub fn head(self, task: Task, classes: usize) -> Result<Head> {
        match (self, task) {
            (Loss::CrossEntropy, Task::Classification) if classes >= 2 => Ok(Head::Softmax),
            (Loss::Bce, Task::Classification) if classes == 2 => Ok(Head::Sigmoid),
            (Loss::Bce, Task::Classification) => {
                bail!(
                    "loss bce needs exactly 2 classes and the data set has {classes}; use crossEntropy"
                )
            }
            (Loss::CrossEntropy, Task::Classification) => {
                bail!("classification needs at least 2 classes and the data set has {classes}")
            }
            (Loss::Mse, Task::Regression) => Ok(Head::Linear),
            (Loss::Mse, Task::Classification) => {
                bail!("loss mse is for regression; use crossEntropy or bce for classification")
            }
            (_, Task::Regression) => {
                bail!("loss {self:?} is for classification; use mse for regression")
            }
        }
    }

    /// The mean loss of a batch: `outputs` from the network, `targets` class indices (i64) for
    /// classification or standardised values (f32) for regression.
    pub fn compute(self, outputs: &Tensor, targets: &Tensor) -> Tensor {
        match self {
            Loss::CrossEntropy => outputs.cross_entropy_for_logits(targets),
            Loss::Bce => outputs
                .view([-1])
                .binary_cross_entropy_with_logits::<Tensor>(
                    &targets.to_kind(Kind::Float),
                    None,
                    None,
                    Reduction::Mean,
                ),
            Loss::Mse => outputs.view([-1]).mse_loss(targets, Reduction::Mean),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_loss_has_its_textbook_value() {
        let logits = Tensor::from_slice(&[0.0f32, 0.0]).view([1, 2]);
        let ce = Loss::CrossEntropy.compute(&logits, &Tensor::from_slice(&[1i64]));
        assert!((ce.double_value(&[]) - 2f64.ln()).abs() < 1e-6);
        let bce = Loss::Bce.compute(
            &Tensor::from_slice(&[0.0f32]).view([1, 1]),
            &Tensor::from_slice(&[1i64]),
        );
        assert!((bce.double_value(&[]) - 2f64.ln()).abs() < 1e-6);
        let mse = Loss::Mse.compute(
            &Tensor::from_slice(&[1.0f32, 3.0]).view([2, 1]),
            &Tensor::from_slice(&[0.0f32, 1.0]),
        );
        assert!((mse.double_value(&[]) - 2.5).abs() < 1e-6);
    }

    #[test]
    fn each_loss_fits_its_task() {
        assert_eq!(
            Loss::CrossEntropy.head(Task::Classification, 10).unwrap(),
            Head::Softmax
        );
        assert_eq!(
            Loss::Bce.head(Task::Classification, 2).unwrap(),
            Head::Sigmoid
        );
        assert_eq!(Loss::Mse.head(Task::Regression, 0).unwrap(), Head::Linear);
        assert!(
            Loss::Bce
                .head(Task::Classification, 3)
                .unwrap_err()
                .to_string()
                .contains("use crossEntropy")
        );
        assert!(Loss::Mse.head(Task::Classification, 3).is_err());
        assert!(
            Loss::CrossEntropy
                .head(Task::Regression, 0)
                .unwrap_err()
                .to_string()
                .contains("use mse")
        );
    }
}
