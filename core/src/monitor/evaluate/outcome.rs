//! What an evaluation gives: a [`MetricResult`] per metric, a [`RevisionOutcome`] per revision,
//! and an [`Outcome`] for the whole evaluation, with the views of it that the status is written
//! from (`lastEvaluation`, `revisions`).

use super::keys;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use modelops_api::conditions::reasons;
use modelops_api::monitor::{Evaluation, REVISIONS_LIMIT, RevisionVerdict, Verdict};
use std::collections::BTreeMap;

/// What one evaluation made of one metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Judgement {
    /// Within its threshold.
    Within,
    /// Out of its threshold.
    Breach,
    /// Not judged, for the reason given (`NoTraffic`, `LabelsPending`, ...).
    Unjudged(&'static str),
}

/// One metric of one revision.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricResult {
    /// Its key in `values` and `thresholds` ([`keys`]).
    pub key: &'static str,
    /// The measured value, when there was anything to measure.
    pub value: Option<f64>,
    /// The threshold, as the spec set it (latency in seconds).
    pub threshold: f64,
    /// The verdict on it.
    pub judgement: Judgement,
    /// The input feature that drifted most (input drift only).
    pub worst_feature: Option<String>,
    /// One line for a person: the value, the threshold and how much data they rest on.
    pub message: String,
    /// More values shown beside `value` in `values`, by key: the evidence a sequential test
    /// decided on, or the most drifted input features, so that a person can see why.
    pub evidence: Vec<(String, f64)>,
    /// Whether a breach is Fail at once rather than after `failureThreshold` failing
    /// evaluations: a sequential test's decision is valid at every look, so waiting adds
    /// nothing to its guarantee.
    pub fails_at_once: bool,
    /// Whether the threshold is a minimum (accuracy, a `prometheus` metric with `min`) rather
    /// than a maximum.
    pub minimum: bool,
}

impl MetricResult {
    /// The condition reason of a breach of this metric.
    pub fn breach_reason(&self) -> &'static str {
        match self.key {
            keys::ACCURACY => reasons::ACCURACY_BELOW_MINIMUM,
            keys::RMSE => reasons::RMSE_ABOVE_MAXIMUM,
            keys::MAE => reasons::MAE_ABOVE_MAXIMUM,
            keys::INPUT_DRIFT => reasons::INPUT_DRIFT_ABOVE_MAXIMUM,
            keys::PREDICTION_DRIFT => reasons::PREDICTION_DRIFT_ABOVE_MAXIMUM,
            keys::LATENCY => reasons::LATENCY_ABOVE_MAXIMUM,
            keys::PROMETHEUS if self.minimum => reasons::PROMETHEUS_BELOW_MINIMUM,
            keys::PROMETHEUS => reasons::PROMETHEUS_ABOVE_MAXIMUM,
            // keys::ERROR_RATE, the last of the keys: a key is always one of them.
            _ => reasons::ERROR_RATE_ABOVE_MAXIMUM,
        }
    }

    /// The reason this metric gives to a condition about it.
    pub fn reason(&self) -> &'static str {
        match self.judgement {
            Judgement::Within => reasons::WITHIN_THRESHOLDS,
            Judgement::Breach => self.breach_reason(),
            Judgement::Unjudged(reason) => reason,
        }
    }

    /// A metric that was measured: a breach when `breach`, else within its threshold.
    pub(super) fn measured(
        key: &'static str,
        value: f64,
        threshold: f64,
        breach: bool,
        message: String,
    ) -> Self {
        Self {
            key,
            value: Some(value),
            threshold,
            judgement: if breach {
                Judgement::Breach
            } else {
                Judgement::Within
            },
            worst_feature: None,
            message,
            evidence: Vec::new(),
            fails_at_once: false,
            minimum: key == keys::ACCURACY,
        }
    }

    /// A metric that could not be judged, for `reason`.
    pub(super) fn unjudged(
        key: &'static str,
        threshold: f64,
        reason: &'static str,
        message: String,
    ) -> Self {
        Self {
            key,
            value: None,
            threshold,
            judgement: Judgement::Unjudged(reason),
            worst_feature: None,
            message,
            evidence: Vec::new(),
            fails_at_once: false,
            minimum: key == keys::ACCURACY,
        }
    }

    /// A metric not judged because no request reached the revision in the window.
    pub(super) fn no_traffic(key: &'static str, threshold: f64) -> Self {
        Self::unjudged(
            key,
            threshold,
            reasons::NO_TRAFFIC,
            format!("{key}: no requests in the window"),
        )
    }
}

/// The verdict on one revision.
#[derive(Clone, Debug, PartialEq)]
pub struct RevisionOutcome {
    /// The revision, or `None` when the target has no revision to judge yet.
    pub revision: Option<i32>,
    /// Requests in its window.
    pub requests: f64,
    /// Every metric of the spec, in the spec's order.
    pub metrics: Vec<MetricResult>,
    /// Pass, Fail or Inconclusive.
    pub verdict: Verdict,
    /// Why, in one CamelCase word.
    pub reason: &'static str,
    /// Details for a person.
    pub message: String,
    /// Failing evaluations in a row, this one included.
    pub consecutive_failures: i32,
    /// The verdict the previous status held for this revision.
    pub previous_verdict: Option<Verdict>,
}

impl RevisionOutcome {
    /// Measured values by key.
    pub fn values(&self) -> BTreeMap<String, f64> {
        let measured = self
            .metrics
            .iter()
            .filter_map(|m| Some((m.key.to_owned(), m.value?)));
        let evidence = self
            .metrics
            .iter()
            .flat_map(|m| m.evidence.iter().map(|(key, value)| (key.clone(), *value)));
        measured.chain(evidence).collect()
    }

    /// Thresholds by key.
    pub fn thresholds(&self) -> BTreeMap<String, f64> {
        self.metrics
            .iter()
            .map(|m| (m.key.to_owned(), m.threshold))
            .collect()
    }

    /// The measured metric closest to (or furthest past) its threshold, relative to the
    /// threshold, as `<key> <value> (<min|max> <threshold>)`: the Monitor's worst metric.
    pub fn worst_metric(&self) -> Option<String> {
        let headroom = |m: &MetricResult| {
            let value = m.value?;
            let margin = if m.minimum {
                value - m.threshold
            } else {
                m.threshold - value
            };
            Some(margin / m.threshold.abs().max(1e-9))
        };
        let worst = self
            .metrics
            .iter()
            .filter_map(|m| Some((headroom(m)?, m)))
            .filter(|(h, _)| !h.is_nan())
            .min_by(|a, b| a.0.total_cmp(&b.0))?
            .1;
        Some(format!(
            "{} {} ({} {})",
            worst.key,
            super::number(worst.value?),
            if worst.minimum { "min" } else { "max" },
            super::number(worst.threshold)
        ))
    }

    /// The input feature that drifted most, when input drift was measured.
    pub fn worst_feature(&self) -> Option<&str> {
        self.metrics.iter().find_map(|m| m.worst_feature.as_deref())
    }

    /// Whether a metric was out of its threshold in this evaluation.
    pub fn failing(&self) -> bool {
        self.metrics
            .iter()
            .any(|m| m.judgement == Judgement::Breach)
    }
}

/// The result of one evaluation.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// When it ran.
    pub time: Time,
    /// The revision `status.lastEvaluation` describes (see [`focus_revision`]).
    ///
    /// [`focus_revision`]: super::focus_revision
    pub focused: RevisionOutcome,
    /// Every revision judged (the focused one included), by revision.
    pub revisions: BTreeMap<i32, RevisionOutcome>,
}

impl Outcome {
    /// `status.lastEvaluation`.
    pub fn last_evaluation(&self) -> Evaluation {
        let focused = &self.focused;
        Evaluation {
            time: self.time.clone(),
            revision: focused.revision,
            values: focused.values(),
            thresholds: focused.thresholds(),
            verdict: focused.verdict,
            reason: focused.reason.to_owned(),
            message: Some(focused.message.clone()),
            worst_feature: focused.worst_feature().map(str::to_owned),
            worst_metric: focused.worst_metric(),
        }
    }

    /// `status.revisions`: newest revision first, at most [`REVISIONS_LIMIT`].
    pub fn revision_verdicts(&self) -> Vec<RevisionVerdict> {
        self.revisions
            .iter()
            .rev()
            .take(REVISIONS_LIMIT)
            .map(|(&revision, outcome)| RevisionVerdict {
                revision,
                verdict: outcome.verdict,
                reason: outcome.reason.to_owned(),
                consecutive_failures: outcome.consecutive_failures,
                values: outcome.values(),
            })
            .collect()
    }

    /// Whether the focused revision just turned Fail: the moment to emit a Warning event and
    /// record the spec's action.
    pub fn newly_failed(&self) -> bool {
        self.focused.verdict == Verdict::Fail
            && self.focused.previous_verdict != Some(Verdict::Fail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(metrics: Vec<MetricResult>) -> RevisionOutcome {
        RevisionOutcome {
            revision: Some(2),
            requests: 100.0,
            metrics,
            verdict: Verdict::Pass,
            reason: reasons::WITHIN_THRESHOLDS,
            message: String::new(),
            consecutive_failures: 0,
            previous_verdict: None,
        }
    }

    #[test]
    fn the_worst_metric_is_the_closest_to_its_threshold_relative_to_it() {
        let measured = |key, value, threshold| {
            MetricResult::measured(key, value, threshold, false, String::new())
        };
        // Accuracy 0.91 against a minimum of 0.9 has 1% of headroom; drift 0.1 against 0.5,
        // 80%; latency 0.3 s against 0.25 s is 20% past its maximum.
        let within = outcome(vec![
            measured(keys::ACCURACY, 0.91, 0.9),
            measured(keys::INPUT_DRIFT, 0.1, 0.5),
        ]);
        assert_eq!(
            within.worst_metric().as_deref(),
            Some("accuracy 0.91 (min 0.9)")
        );
        let mut past = within.clone();
        past.metrics.push(measured(keys::LATENCY, 0.3, 0.25));
        assert_eq!(
            past.worst_metric().as_deref(),
            Some("latency 0.3 (max 0.25)")
        );
        // A metric not measured has no place in it; nothing measured, no worst metric.
        let unjudged = MetricResult::no_traffic(keys::ERROR_RATE, 0.05);
        assert_eq!(outcome(vec![unjudged]).worst_metric(), None);
    }
}
