//! Early stopping: end training when a validation metric has not improved for `patience`
//! epochs, and keep the weights of the best epoch.

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

/// The metric early stopping watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Metric {
    /// Lower is better.
    #[default]
    ValidationLoss,
    /// Higher is better (classification only).
    ValidationAccuracy,
}

impl Metric {
    /// True when `candidate` beats `best` by more than `min_delta`.
    fn better(self, candidate: f64, best: f64, min_delta: f64) -> bool {
        match self {
            Metric::ValidationLoss => candidate < best - min_delta,
            Metric::ValidationAccuracy => candidate > best + min_delta,
        }
    }
}

/// Early stopping settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EarlyStopping {
    /// The watched metric.
    #[serde(default)]
    pub metric: Metric,
    /// Epochs without improvement before training stops.
    pub patience: usize,
    /// The smallest change that counts as an improvement.
    #[serde(default)]
    pub min_delta: f64,
}

impl EarlyStopping {
    /// Checks the settings against what the data offers.
    pub fn validate(&self, has_validation: bool, classification: bool) -> Result<()> {
        if self.patience == 0 {
            bail!("earlyStopping.patience must be at least 1");
        }
        if !has_validation {
            bail!(
                "earlyStopping watches the validation split, which is empty; give the Dataset's split a validation fraction"
            );
        }
        if self.metric == Metric::ValidationAccuracy && !classification {
            bail!(
                "earlyStopping.metric validationAccuracy needs a classification task; use validationLoss"
            );
        }
        Ok(())
    }
}

/// What an epoch's metric meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A new best: keep these weights.
    Improved,
    /// No better, patience left.
    Wait,
    /// No better for `patience` epochs: stop.
    Stop,
}

/// The best value so far and how long ago it was (checkpointed with the weights).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tracker {
    /// The best metric value seen.
    pub best: Option<f64>,
    /// The epoch (1-based) that reached it.
    pub best_epoch: usize,
    /// Epochs since then.
    pub epochs_since_best: usize,
}

impl Tracker {
    /// Records the metric of `epoch` (1-based).
    pub fn observe(&mut self, settings: &EarlyStopping, epoch: usize, value: f64) -> Verdict {
        let improved = match self.best {
            None => true,
            Some(best) => settings.metric.better(value, best, settings.min_delta),
        };
        if improved {
            self.best = Some(value);
            self.best_epoch = epoch;
            self.epochs_since_best = 0;
            return Verdict::Improved;
        }
        self.epochs_since_best += 1;
        if self.epochs_since_best >= settings.patience {
            Verdict::Stop
        } else {
            Verdict::Wait
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_after_patience_epochs_without_improvement() {
        let settings = EarlyStopping {
            metric: Metric::ValidationLoss,
            patience: 2,
            min_delta: 0.0,
        };
        let mut tracker = Tracker::default();
        let verdicts: Vec<Verdict> = [1.0, 0.5, 0.6, 0.4, 0.45, 0.41]
            .iter()
            .enumerate()
            .map(|(e, v)| tracker.observe(&settings, e + 1, *v))
            .collect();
        use Verdict::*;
        assert_eq!(verdicts, [Improved, Improved, Wait, Improved, Wait, Stop]);
        assert_eq!((tracker.best, tracker.best_epoch), (Some(0.4), 4));
    }

    #[test]
    fn accuracy_improves_upwards() {
        let settings = EarlyStopping {
            metric: Metric::ValidationAccuracy,
            patience: 1,
            min_delta: 0.0,
        };
        let mut tracker = Tracker::default();
        assert_eq!(tracker.observe(&settings, 1, 0.5), Verdict::Improved);
        assert_eq!(tracker.observe(&settings, 2, 0.7), Verdict::Improved);
        assert_eq!(tracker.observe(&settings, 3, 0.7), Verdict::Stop);
    }

    #[test]
    fn a_change_below_min_delta_is_no_improvement() {
        let settings = EarlyStopping {
            metric: Metric::ValidationLoss,
            patience: 2,
            min_delta: 0.1,
        };
        let mut tracker = Tracker::default();
        assert_eq!(tracker.observe(&settings, 1, 1.0), Verdict::Improved);
        assert_eq!(tracker.observe(&settings, 2, 0.95), Verdict::Wait);
        assert_eq!(tracker.observe(&settings, 3, 0.85), Verdict::Improved);
    }

    #[test]
    fn settings_are_checked_against_the_data() {
        let settings = EarlyStopping {
            metric: Metric::ValidationAccuracy,
            patience: 1,
            min_delta: 0.0,
        };
        assert!(
            settings
                .validate(false, true)
                .unwrap_err()
                .to_string()
                .contains("validation fraction")
        );
        assert!(
            settings
                .validate(true, false)
                .unwrap_err()
                .to_string()
                .contains("use validationLoss")
        );
    }
}
