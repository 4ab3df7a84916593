//! Learning-rate schedules, stepped once per epoch (as PyTorch's `lr_scheduler` usually is).

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

/// How the learning rate changes from epoch to epoch.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Schedule {
    /// The base learning rate throughout.
    #[default]
    Constant,
    /// Multiplied by `gamma` after every epoch.
    Exponential {
        /// Factor per epoch.
        gamma: f64,
    },
    /// Multiplied by `gamma` every `stepSize` epochs.
    #[serde(rename_all = "camelCase")]
    Step {
        /// Epochs between decays.
        step_size: usize,
        /// Factor per decay.
        gamma: f64,
    },
    /// Half a cosine from the base rate at the first epoch down to `minLearningRate` at the last.
    #[serde(rename_all = "camelCase")]
    Cosine {
        /// The rate of the last epoch.
        min_learning_rate: f64,
    },
}

impl Schedule {
    /// Checks the schedule's parameters.
    pub fn validate(&self) -> Result<()> {
        match *self {
            Schedule::Constant => {}
            Schedule::Exponential { gamma } | Schedule::Step { gamma, .. }
                if !(gamma > 0.0 && gamma <= 1.0) =>
            {
                bail!("learningRateSchedule.gamma must be in (0, 1], got {gamma}")
            }
            Schedule::Step { step_size: 0, .. } => {
                bail!("learningRateSchedule.stepSize must be at least 1")
            }
            Schedule::Cosine { min_learning_rate }
                if min_learning_rate.is_nan() || min_learning_rate < 0.0 =>
            {
                bail!(
                    "learningRateSchedule.minLearningRate must be 0 or more, got {min_learning_rate}"
                )
            }
            _ => {}
        }
        Ok(())
    }

    /// The learning rate of `epoch` (0-based) of `epochs`, from the base rate.
    pub fn learning_rate(&self, base: f64, epoch: usize, epochs: usize) -> f64 {
        match *self {
            Schedule::Constant => base,
            Schedule::Exponential { gamma } => base * gamma.powi(epoch as i32),
            Schedule::Step { step_size, gamma } => {
                base * gamma.powi((epoch / step_size.max(1)) as i32)
            }
            Schedule::Cosine { min_learning_rate } => {
                let last = epochs.saturating_sub(1).max(1) as f64;
                let progress = (epoch as f64 / last).min(1.0);
                min_learning_rate
                    + (base - min_learning_rate) * (1.0 + (std::f64::consts::PI * progress).cos())
                        / 2.0
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rates(schedule: &Schedule, epochs: usize) -> Vec<f64> {
        (0..epochs)
            .map(|e| schedule.learning_rate(1.0, e, epochs))
            .collect()
    }

    fn close(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-12)
    }

    #[test]
    fn each_schedule_gives_its_rates() {
        assert_eq!(rates(&Schedule::Constant, 3), [1.0, 1.0, 1.0]);
        assert!(close(
            &rates(&Schedule::Exponential { gamma: 0.5 }, 3),
            &[1.0, 0.5, 0.25]
        ));
        assert!(close(
            &rates(
                &Schedule::Step {
                    step_size: 2,
                    gamma: 0.1
                },
                5
            ),
            &[1.0, 1.0, 0.1, 0.1, 0.01]
        ));
        assert!(close(
            &rates(
                &Schedule::Cosine {
                    min_learning_rate: 0.0
                },
                3
            ),
            &[1.0, 0.5, 0.0]
        ));
        assert!(close(
            &rates(
                &Schedule::Cosine {
                    min_learning_rate: 0.2
                },
                1
            ),
            &[1.0]
        ));
    }

    #[test]
    fn parameters_are_checked_with_their_names() {
        assert!(
            Schedule::Exponential { gamma: 1.5 }
                .validate()
                .unwrap_err()
                .to_string()
                .contains("gamma")
        );
        assert!(
            Schedule::Step {
                step_size: 0,
                gamma: 0.5
            }
            .validate()
            .unwrap_err()
            .to_string()
            .contains("stepSize")
        );
        assert!(
            Schedule::Cosine {
                min_learning_rate: 0.0
            }
            .validate()
            .is_ok()
        );
    }

    #[test]
    fn the_spec_form_parses() {
        let step: Schedule =
            serde_json::from_str(r#"{"type":"step","stepSize":3,"gamma":0.5}"#).unwrap();
        assert_eq!(
            step,
            Schedule::Step {
                step_size: 3,
                gamma: 0.5
            }
        );
        let cosine: Schedule =
            serde_json::from_str(r#"{"type":"cosine","minLearningRate":0.001}"#).unwrap();
        assert_eq!(
            cosine,
            Schedule::Cosine {
                min_learning_rate: 0.001
            }
        );
    }
}
