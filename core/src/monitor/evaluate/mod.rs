//! One evaluation: the window of every revision against the spec's thresholds, giving each
//! revision a verdict (Pass, Fail or Inconclusive) and a count of failing evaluations in a row.
//!
//! Per metric, an evaluation either judges it (within its threshold, or a breach) or cannot
//! (too little data). Per revision:
//! - any breach makes the evaluation a failing one: the count goes up by one, and the verdict is
//!   Fail once the count reaches `failureThreshold`, Inconclusive (with the breach as reason)
//!   before, so that a canary is neither promoted nor rolled back on one bad interval; a breach
//!   that [`MetricResult::fails_at_once`] (a sequential accuracy test, valid at every look) is
//!   Fail at once;
//! - else, any metric not judged makes it Inconclusive (`NoTraffic` when the window has no
//!   request, else the first such metric's reason: `LabelsPending`, `TooFewSamples`,
//!   `ProfileUnavailable`); the count is kept, neither reset nor raised, so that gaps in traffic
//!   neither hide a bad model nor convict it;
//! - else the verdict is Pass and the count goes back to 0.
//!
//! This module holds that flow and the dispatch over the spec's metrics; each metric is measured
//! in its own module (`accuracy`, `drift` for input and prediction drift, `latency`,
//! `error_rate`), the result types are in `outcome`, and the checks and timing the spec asks for
//! around an evaluation are in `spec`. The public items are re-exported here.

mod accuracy;
mod drift;
mod error_rate;
mod latency;
mod outcome;
mod prometheus;
mod regression;
mod spec;

#[cfg(test)]
mod fixtures;

pub use latency::{LATENCY_QUANTILE, quantile};
pub use outcome::{Judgement, MetricResult, Outcome, RevisionOutcome};
pub use spec::{due_in, needs_profile, validate};

use super::errors::ErrorKind;
use super::promql::QueryResult;
use super::scrape::RevisionTotals;
use super::sequential::Labels;
use super::window::{RevisionWindow, WindowDeltas};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use modelops_api::conditions::reasons;
use modelops_api::modeldeployment::{ModelDeploymentStatus, RevisionState};
use modelops_api::monitor::{Metric, MonitorSpec, MonitorStatus, Verdict};
use modelops_api::profile::Profile;
use std::collections::BTreeMap;

/// The keys of `values` and `thresholds` in an evaluation, one per metric kind.
pub mod keys {
    /// Share of labelled feedback that was correct.
    pub const ACCURACY: &str = "accuracy";
    /// A regression model's root mean squared error on labelled feedback.
    pub const RMSE: &str = "rmse";
    /// A regression model's mean absolute error on labelled feedback.
    pub const MAE: &str = "mae";
    /// With rmse in mode `sequential`: the evidence that rmse is above `max`.
    pub const RMSE_EVIDENCE_ABOVE: &str = "rmseEvidenceAboveMax";
    /// With rmse in mode `sequential`: the evidence that rmse is at or below `max`.
    pub const RMSE_EVIDENCE_AT_OR_BELOW: &str = "rmseEvidenceAtOrBelowMax";
    /// With rmse in mode `sequential`: the evidence either needs, `1 / (1 - confidence)`.
    pub const RMSE_EVIDENCE_NEEDED: &str = "rmseEvidenceNeeded";
    /// With rmse in mode `sequential`: the labels the test rests on.
    pub const RMSE_LABELS: &str = "rmseLabels";
    /// With mae in mode `sequential`: the evidence that mae is above `max`.
    pub const MAE_EVIDENCE_ABOVE: &str = "maeEvidenceAboveMax";
    /// With mae in mode `sequential`: the evidence that mae is at or below `max`.
    pub const MAE_EVIDENCE_AT_OR_BELOW: &str = "maeEvidenceAtOrBelowMax";
    /// With mae in mode `sequential`: the evidence either needs, `1 / (1 - confidence)`.
    pub const MAE_EVIDENCE_NEEDED: &str = "maeEvidenceNeeded";
    /// With mae in mode `sequential`: the labels the test rests on.
    pub const MAE_LABELS: &str = "maeLabels";
    /// The largest drift over the input features (PSI: corrected for the window's size).
    pub const INPUT_DRIFT: &str = "inputDrift";
    /// The most drifted input features show as `inputDrift.<feature>`, at most this many.
    pub const INPUT_DRIFT_FEATURES: usize = 10;
    /// The key of one input feature's drift: `inputDrift.<feature>`.
    pub fn input_drift_feature(feature: &str) -> String {
        format!("{INPUT_DRIFT}.{feature}")
    }
    /// The drift of the predicted classes.
    pub const PREDICTION_DRIFT: &str = "predictionDrift";
    /// The p99 request latency, in seconds.
    pub const LATENCY: &str = "latency";
    /// Share of requests answered with a server error (5xx).
    pub const ERROR_RATE: &str = "errorRate";
    /// The number a `prometheus` metric's query gave.
    pub const PROMETHEUS: &str = "prometheus";
    /// With accuracy in mode `sequential`: the evidence that accuracy is below `min`
    /// (a Fail when it reaches `1 / (1 - confidence)`).
    pub const ACCURACY_EVIDENCE_BELOW: &str = "accuracyEvidenceBelowMin";
    /// With accuracy in mode `sequential`: the evidence that accuracy is at or above `min`
    /// (a Pass, given `minSamples` labels, when it reaches `1 / (1 - confidence)`).
    pub const ACCURACY_EVIDENCE_AT_OR_ABOVE: &str = "accuracyEvidenceAtOrAboveMin";
    /// With accuracy in mode `sequential`: the evidence either needs, `1 / (1 - confidence)`.
    pub const ACCURACY_EVIDENCE_NEEDED: &str = "accuracyEvidenceNeeded";
    /// With accuracy in mode `sequential`: the labels the test rests on (every one since the
    /// revision started).
    pub const ACCURACY_LABELS: &str = "accuracyLabels";
}

/// The revision a Monitor's `lastEvaluation` describes, from its target's status: the canary
/// while one rolls out, else the stable revision (else the newest). `None` leaves the choice to
/// [`evaluate`]: the newest revision with requests in the window.
pub fn focus_revision(target: &ModelDeploymentStatus) -> Option<i32> {
    target
        .revisions
        .iter()
        .filter(|r| r.state == RevisionState::Canary)
        .map(|r| r.revision)
        .max()
        .or(target.stable_revision)
        .or(target.current_revision)
}

/// Evaluates every revision in the window, and `focus` (the revision `lastEvaluation` is to
/// describe, see [`focus_revision`]) even when the window has none of it.
///
/// `previous` is the status before this evaluation, for the counts of failing evaluations; pass
/// `None` when the spec changed since (`status.observedGeneration` differs from the
/// generation), so that new thresholds start a fresh count. `profile` is the Dataset profile
/// (`None` when it cannot be read: drift is then not judged).
pub fn evaluate(
    spec: &MonitorSpec,
    window: &WindowDeltas,
    profile: Option<&Profile>,
    previous: Option<&MonitorStatus>,
    focus: Option<i32>,
    now: &Time,
) -> Outcome {
    let focus = focus
        .or_else(|| {
            window
                .per_revision
                .iter()
                .rev()
                .find(|(_, w)| w.totals.requests_total() > 0.0)
                .map(|(&revision, _)| revision)
        })
        .or_else(|| window.per_revision.keys().next_back().copied());
    let mut revisions: BTreeMap<i32, RevisionOutcome> = window
        .per_revision
        .iter()
        .map(|(&revision, w)| {
            let query = window.queries.get(&revision);
            let outcome =
                evaluate_revision(spec, Some(revision), Some(w), query, profile, previous);
            (revision, outcome)
        })
        .collect();
    let focused = match focus {
        Some(revision) => revisions
            .entry(revision)
            .or_insert_with(|| {
                let query = window.queries.get(&revision);
                evaluate_revision(spec, Some(revision), None, query, profile, previous)
            })
            .clone(),
        None => evaluate_revision(spec, None, None, None, profile, previous),
    };
    Outcome {
        time: now.clone(),
        focused,
        revisions,
    }
}

/// The verdict on one revision (`window` `None`: nothing of it in the window).
fn evaluate_revision(
    spec: &MonitorSpec,
    revision: Option<i32>,
    window: Option<&RevisionWindow>,
    query: Option<&QueryResult>,
    profile: Option<&Profile>,
    previous: Option<&MonitorStatus>,
) -> RevisionOutcome {
    let empty = RevisionTotals::default();
    let totals = window.map(|w| &w.totals).unwrap_or(&empty);
    let requests = totals.requests_total();
    let metrics: Vec<MetricResult> = spec
        .metrics
        .iter()
        .filter_map(|item| Some(measure(item.get()?, totals, window, query, profile)))
        .collect();
    let (previous_failures, previous_verdict) = revision
        .map(|revision| previous_of(previous, revision))
        .unwrap_or((0, None));
    let threshold = spec.failure_threshold.max(1);
    let combined = combine(&metrics, requests, previous_failures, threshold);
    let name = revision.map_or("the target".to_owned(), |r| format!("revision {r}"));
    RevisionOutcome {
        revision,
        requests,
        metrics,
        verdict: combined.verdict,
        reason: combined.reason,
        message: format!("{name}: {}", combined.details),
        consecutive_failures: combined.consecutive_failures,
        previous_verdict,
    }
}

/// Measures one metric on a revision's window (`window` also holds every label of the revision
/// since it started, for the sequential tests).
fn measure(
    metric: Metric<'_>,
    totals: &RevisionTotals,
    window: Option<&RevisionWindow>,
    query: Option<&QueryResult>,
    profile: Option<&Profile>,
) -> MetricResult {
    let labels: Labels = window.map(|w| w.labels_since_start).unwrap_or_default();
    let errors = window.map(|w| w.errors_since_start).unwrap_or_default();
    match metric {
        Metric::Accuracy(spec) => accuracy::measure(spec, totals, labels),
        Metric::Rmse(spec) => regression::measure(ErrorKind::Rmse, spec, totals, &errors),
        Metric::Mae(spec) => regression::measure(ErrorKind::Mae, spec, totals, &errors),
        Metric::InputDrift(spec) => drift::measure_input(spec, totals, profile),
        Metric::PredictionDrift(spec) => drift::measure_prediction(spec, totals, profile),
        Metric::Latency(spec) => latency::measure(spec, totals),
        Metric::ErrorRate(spec) => error_rate::measure(spec, totals),
        Metric::Prometheus(spec) => prometheus::measure(spec, query),
    }
}

/// A revision's metrics combined: its verdict, why, and its count of failing evaluations.
struct Combined {
    verdict: Verdict,
    reason: &'static str,
    consecutive_failures: i32,
    /// The message, less the revision's name.
    details: String,
}

/// Combines a revision's metrics into a verdict, by the rules of the module's documentation:
/// a breach first, then a metric not judged, else Pass.
fn combine(
    metrics: &[MetricResult],
    requests: f64,
    previous_failures: i32,
    threshold: i32,
) -> Combined {
    let breaches: Vec<&MetricResult> = metrics
        .iter()
        .filter(|m| m.judgement == Judgement::Breach)
        .collect();
    if !breaches.is_empty() {
        return failing(&breaches, previous_failures, threshold);
    }
    let unjudged = metrics.iter().find_map(|m| match m.judgement {
        Judgement::Unjudged(reason) => Some((reason, m)),
        _ => None,
    });
    if let Some((reason, metric)) = unjudged {
        // With no request at all, that is the one thing to say, whatever each metric lacked.
        let (reason, details) = if requests == 0.0 {
            (reasons::NO_TRAFFIC, "no requests in the window".to_owned())
        } else {
            (reason, metric.message.clone())
        };
        return Combined {
            verdict: Verdict::Inconclusive,
            reason,
            consecutive_failures: previous_failures,
            details,
        };
    }
    Combined {
        verdict: Verdict::Pass,
        reason: reasons::WITHIN_THRESHOLDS,
        consecutive_failures: 0,
        details: join(metrics.iter().map(|m| m.message.as_str())),
    }
}

/// A failing evaluation (`breaches` not empty): Fail once the count reaches `threshold`,
/// Inconclusive before, the first breach giving the reason either way.
fn failing(breaches: &[&MetricResult], previous_failures: i32, threshold: i32) -> Combined {
    let failures = previous_failures.saturating_add(1);
    let details = join(breaches.iter().map(|m| m.message.as_str()));
    let (verdict, details) = if breaches.iter().any(|m| m.fails_at_once) {
        (
            Verdict::Fail,
            format!("{details}; a sequential test fails at once (failing evaluation {failures})"),
        )
    } else if failures >= threshold {
        (
            Verdict::Fail,
            format!(
                "{details}; {failures} failing evaluations in a row (failureThreshold {threshold})"
            ),
        )
    } else {
        (
            Verdict::Inconclusive,
            format!(
                "{details}; failing evaluation {failures} of {threshold} before the verdict is Fail"
            ),
        )
    };
    Combined {
        verdict,
        reason: breaches[0].breach_reason(),
        consecutive_failures: failures,
        details,
    }
}

/// The count of failing evaluations and the verdict the previous status held for a revision.
fn previous_of(previous: Option<&MonitorStatus>, revision: i32) -> (i32, Option<Verdict>) {
    let Some(status) = previous else {
        return (0, None);
    };
    if let Some(entry) = status.revisions.iter().find(|r| r.revision == revision) {
        return (entry.consecutive_failures, Some(entry.verdict));
    }
    // A status written before `revisions` existed counts for its last evaluation only.
    match &status.last_evaluation {
        Some(last) if last.revision == Some(revision) => {
            (status.consecutive_failures, Some(last.verdict))
        }
        _ => (0, None),
    }
}

/// The messages of several metrics, as one.
fn join<'a>(parts: impl Iterator<Item = &'a str>) -> String {
    parts.collect::<Vec<_>>().join("; ")
}

/// An evidence for a message: 3 significant digits, in scientific notation when large or small.
fn evidence_number(value: f64) -> String {
    if (0.01..10_000.0).contains(&value) {
        format!("{value:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_owned()
    } else {
        format!("{value:.2e}")
    }
}

/// A number for a message: at most 4 decimals, no trailing zeros.
fn number(value: f64) -> String {
    let text = format!("{value:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".into()
    } else {
        text.into()
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;
    use modelops_api::monitor::{Evaluation, EvaluationSummary, RevisionVerdict};

    #[test]
    fn healthy_traffic_passes_with_every_value_and_threshold() {
        let spec = monitor_spec(all_metrics(), 3);
        let outcome = evaluate(
            &spec,
            &window([(1, traffic(1000.0, 0.0, 190.0, 10.0))]),
            Some(&profile()),
            None,
            None,
            &now(300),
        );
        let evaluation = outcome.last_evaluation();
        assert_eq!(evaluation.verdict, Verdict::Pass, "{evaluation:?}");
        assert_eq!(evaluation.reason, reasons::WITHIN_THRESHOLDS);
        assert_eq!(evaluation.revision, Some(1));
        assert_eq!(evaluation.values["accuracy"], 0.95);
        assert!(evaluation.values["inputDrift"].abs() < 1e-12);
        assert!(evaluation.values["predictionDrift"].abs() < 1e-12);
        // Rank 990 of 1000, all in (0, 0.01]: 0.01 · 990/1000.
        assert!((evaluation.values["latency"] - 0.0099).abs() < 1e-12);
        assert_eq!(evaluation.values["errorRate"], 0.0);
        assert_eq!(evaluation.thresholds["latency"], 0.2);
        assert_eq!(evaluation.thresholds["accuracy"], 0.9);
        assert_eq!(evaluation.thresholds.len(), 5);
        assert_eq!(
            evaluation.worst_feature.as_deref(),
            Some("x"),
            "ties go to the first"
        );
        assert_eq!(outcome.focused.consecutive_failures, 0);
        let message = evaluation.message.unwrap();
        assert!(
            message.contains("accuracy 0.95 at or above minimum 0.9 over 200 labels"),
            "{message}"
        );
    }

    #[test]
    fn consecutive_failures_reach_the_threshold_then_fail() {
        let spec = monitor_spec(vec![accuracy(0.9, 100)], 3);
        let bad = window([(2, traffic(1000.0, 0.0, 80.0, 20.0))]);
        let mut status = None;
        let mut verdicts = vec![];
        for second in [0, 30, 60, 90] {
            let outcome = evaluate(&spec, &bad, None, status.as_ref(), None, &now(second));
            verdicts.push((
                outcome.focused.verdict,
                outcome.focused.consecutive_failures,
                outcome.newly_failed(),
            ));
            assert_eq!(outcome.focused.reason, reasons::ACCURACY_BELOW_MINIMUM);
            status = Some(status_after(&outcome));
        }
        assert_eq!(
            verdicts,
            [
                (Verdict::Inconclusive, 1, false),
                (Verdict::Inconclusive, 2, false),
                (Verdict::Fail, 3, true),
                (Verdict::Fail, 4, false),
            ]
        );
        let message = status.unwrap().last_evaluation.unwrap().message.unwrap();
        assert!(
            message.contains("accuracy 0.8 below minimum 0.9 over 100 labels"),
            "{message}"
        );

        // A passing evaluation starts the count again.
        let good = window([(2, traffic(1000.0, 0.0, 95.0, 5.0))]);
        let failing = MonitorStatus {
            revisions: vec![RevisionVerdict {
                revision: 2,
                verdict: Verdict::Inconclusive,
                reason: reasons::ACCURACY_BELOW_MINIMUM.into(),
                consecutive_failures: 2,
                values: BTreeMap::new(),
            }],
            ..Default::default()
        };
        let outcome = evaluate(&spec, &good, None, Some(&failing), None, &now(0));
        assert_eq!(outcome.focused.verdict, Verdict::Pass);
        assert_eq!(outcome.focused.consecutive_failures, 0);
    }

    #[test]
    fn a_threshold_of_one_fails_at_once() {
        let spec = monitor_spec(vec![error_rate(0.01)], 1);
        let outcome = evaluate(
            &spec,
            &window([(1, traffic(90.0, 10.0, 0.0, 0.0))]),
            None,
            None,
            None,
            &now(0),
        );
        assert_eq!(outcome.focused.verdict, Verdict::Fail);
        assert_eq!(outcome.focused.reason, reasons::ERROR_RATE_ABOVE_MAXIMUM);
        assert_eq!(outcome.focused.values()["errorRate"], 0.1);
        assert!(outcome.newly_failed());
    }

    #[test]
    fn no_requests_is_no_traffic_and_keeps_the_count() {
        let spec = monitor_spec(all_metrics(), 3);
        let previous = MonitorStatus {
            last_evaluation: Some(Evaluation {
                time: now(0),
                revision: Some(1),
                values: BTreeMap::new(),
                thresholds: BTreeMap::new(),
                verdict: Verdict::Inconclusive,
                reason: reasons::ACCURACY_BELOW_MINIMUM.into(),
                message: None,
                worst_feature: None,
                worst_metric: None,
            }),
            consecutive_failures: 2,
            ..Default::default()
        };
        for deltas in [
            window([(1, traffic(0.0, 0.0, 0.0, 0.0))]),
            // Revision 1 has no series at all in the window.
            window([]),
        ] {
            let outcome = evaluate(
                &spec,
                &deltas,
                Some(&profile()),
                Some(&previous),
                Some(1),
                &now(30),
            );
            assert_eq!(outcome.focused.verdict, Verdict::Inconclusive);
            assert_eq!(outcome.focused.reason, reasons::NO_TRAFFIC);
            assert_eq!(
                outcome.focused.consecutive_failures, 2,
                "neither reset nor raised"
            );
            assert!(outcome.last_evaluation().values.is_empty());
        }
        // No revision at all: nothing to describe yet.
        let outcome = evaluate(&spec, &window([]), None, None, None, &now(0));
        assert_eq!(outcome.focused.revision, None);
        assert_eq!(outcome.focused.reason, reasons::NO_TRAFFIC);
    }

    #[test]
    fn a_breach_outweighs_missing_data() {
        let spec = monitor_spec(vec![accuracy(0.9, 100), error_rate(0.01)], 3);
        let outcome = evaluate(
            &spec,
            &window([(1, traffic(90.0, 10.0, 1.0, 0.0))]),
            None,
            None,
            None,
            &now(0),
        );
        assert_eq!(outcome.focused.reason, reasons::ERROR_RATE_ABOVE_MAXIMUM);
        assert_eq!(outcome.focused.consecutive_failures, 1);
    }

    #[test]
    fn each_revision_is_judged_apart_and_the_focus_is_described() {
        let spec = monitor_spec(vec![accuracy(0.9, 100)], 2);
        let deltas = window([
            (1, traffic(900.0, 0.0, 950.0, 50.0)),
            (2, traffic(100.0, 0.0, 50.0, 50.0)),
        ]);
        let previous = MonitorStatus {
            revisions: vec![
                RevisionVerdict {
                    revision: 2,
                    verdict: Verdict::Inconclusive,
                    reason: reasons::ACCURACY_BELOW_MINIMUM.into(),
                    consecutive_failures: 1,
                    values: BTreeMap::new(),
                },
                RevisionVerdict {
                    revision: 1,
                    verdict: Verdict::Pass,
                    reason: reasons::WITHIN_THRESHOLDS.into(),
                    consecutive_failures: 0,
                    values: BTreeMap::new(),
                },
            ],
            ..Default::default()
        };
        // The canary (2) is in focus.
        let outcome = evaluate(&spec, &deltas, None, Some(&previous), Some(2), &now(0));
        assert_eq!(outcome.focused.revision, Some(2));
        assert_eq!(outcome.focused.verdict, Verdict::Fail);
        assert_eq!(outcome.revisions[&1].verdict, Verdict::Pass);
        let verdicts = outcome.revision_verdicts();
        assert_eq!(
            verdicts
                .iter()
                .map(|v| (v.revision, v.verdict, v.consecutive_failures))
                .collect::<Vec<_>>(),
            [(2, Verdict::Fail, 2), (1, Verdict::Pass, 0)],
            "newest first"
        );
        // Without a focus: the newest revision with requests.
        let outcome = evaluate(&spec, &deltas, None, None, None, &now(0));
        assert_eq!(outcome.focused.revision, Some(2));
        let quiet = window([
            (1, traffic(900.0, 0.0, 950.0, 50.0)),
            (2, traffic(0.0, 0.0, 0.0, 0.0)),
        ]);
        let outcome = evaluate(&spec, &quiet, None, None, None, &now(0));
        assert_eq!(outcome.focused.revision, Some(1));
        assert_eq!(outcome.revisions[&2].reason, reasons::NO_TRAFFIC);
        // A focus absent from the window is still described.
        let outcome = evaluate(&spec, &quiet, None, None, Some(3), &now(0));
        assert_eq!(outcome.focused.revision, Some(3));
        assert_eq!(outcome.focused.reason, reasons::NO_TRAFFIC);
        assert_eq!(outcome.revisions.len(), 3);
    }

    #[test]
    fn an_old_status_counts_for_its_last_evaluation() {
        let old = MonitorStatus {
            last_evaluation: Some(Evaluation {
                time: now(0),
                revision: Some(4),
                values: BTreeMap::new(),
                thresholds: BTreeMap::new(),
                verdict: Verdict::Inconclusive,
                reason: reasons::ERROR_RATE_ABOVE_MAXIMUM.into(),
                message: None,
                worst_feature: None,
                worst_metric: None,
            }),
            consecutive_failures: 1,
            history: vec![EvaluationSummary {
                time: now(0),
                revision: Some(4),
                verdict: Verdict::Inconclusive,
                reason: reasons::ERROR_RATE_ABOVE_MAXIMUM.into(),
            }],
            ..Default::default()
        };
        assert_eq!(previous_of(Some(&old), 4), (1, Some(Verdict::Inconclusive)));
        assert_eq!(previous_of(Some(&old), 5), (0, None));
    }

    #[test]
    fn the_focus_is_the_canary_then_the_stable_revision() {
        let status: ModelDeploymentStatus = serde_json::from_value(serde_json::json!({
            "currentRevision": 3, "stableRevision": 2,
            "revisions": [
                {"revision": 3, "modelDigest": "d3", "state": "Canary", "since": "2027-01-01T00:00:00Z"},
                {"revision": 2, "modelDigest": "d2", "state": "Stable", "since": "2027-01-01T00:00:00Z"},
            ],
        }))
        .unwrap();
        assert_eq!(focus_revision(&status), Some(3));
        let promoted: ModelDeploymentStatus = serde_json::from_value(serde_json::json!({
            "currentRevision": 3, "stableRevision": 3,
            "revisions": [
                {"revision": 3, "modelDigest": "d3", "state": "Stable", "since": "2027-01-01T00:00:00Z"},
                {"revision": 2, "modelDigest": "d2", "state": "Superseded", "since": "2027-01-01T00:00:00Z"},
            ],
        }))
        .unwrap();
        assert_eq!(focus_revision(&promoted), Some(3));
        assert_eq!(focus_revision(&ModelDeploymentStatus::default()), None);
    }

    #[test]
    fn numbers_in_messages_are_short() {
        assert_eq!(number(0.95), "0.95");
        assert_eq!(number(100.0), "100");
        assert_eq!(number(0.274_653), "0.2747");
        assert_eq!(number(0.0), "0");
    }
}
