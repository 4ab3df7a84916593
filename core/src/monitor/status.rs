//! From an evaluation to the Monitor's status: the conditions (`Ready`, `DriftDetected`,
//! `AccuracyDegraded`), `lastEvaluation`, the per-revision verdicts, the history of verdict
//! changes and the actions asked for.
//!
//! The conditions describe the revision `lastEvaluation` describes, as measured by the latest
//! evaluation: `DriftDetected` turns True at the first evaluation that measures drift above its
//! maximum, while the verdict waits for `failureThreshold` such evaluations in a row.

use super::evaluate::{Judgement, MetricResult, Outcome, keys};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use modelops_api::conditions::{ConditionStatus, Conditions, new_condition, reasons, types};
use modelops_api::monitor::{
    ACTIONS_LIMIT, ActionRecord, EvaluationSummary, HISTORY_LIMIT, Monitor, MonitorSpec,
    MonitorStatus,
};

/// The status to carry into an evaluation: `None` when the spec changed since it was written,
/// so that new thresholds start a fresh count of failing evaluations.
pub fn previous_status(monitor: &Monitor) -> Option<&MonitorStatus> {
    monitor
        .status
        .as_ref()
        .filter(|status| status.observed_generation == monitor.metadata.generation)
}

/// Sets `Ready`, `DriftDetected` and `AccuracyDegraded` (accuracy, rmse and mae: the quality
/// measured on labels) from an evaluation. A domain condition
/// whose metric the spec does not measure is removed. Returns whether anything changed.
pub fn set_conditions(
    conditions: &mut Conditions,
    outcome: &Outcome,
    generation: Option<i64>,
    now: &Time,
) -> bool {
    let focused = &outcome.focused;
    let ready_message = format!("{:?}: {}", focused.verdict, focused.message);
    let mut changed = conditions.set(new_condition(
        types::READY,
        true,
        reasons::EVALUATED,
        ready_message,
        generation,
        now,
    ));
    let drift: Vec<&MetricResult> = focused
        .metrics
        .iter()
        .filter(|m| m.key == keys::INPUT_DRIFT || m.key == keys::PREDICTION_DRIFT)
        .collect();
    let accuracy: Vec<&MetricResult> = focused
        .metrics
        .iter()
        .filter(|m| [keys::ACCURACY, keys::RMSE, keys::MAE].contains(&m.key))
        .collect();
    for (type_, metrics) in [
        (types::DRIFT_DETECTED, drift),
        (types::ACCURACY_DEGRADED, accuracy),
    ] {
        changed |= match domain_condition(&metrics) {
            Some((status, reason, message)) => conditions.set(new_condition(
                type_, status, reason, message, generation, now,
            )),
            None => conditions.remove(type_),
        };
    }
    changed
}

/// A domain condition from the metrics it covers: True on any breach, False when all are
/// within, Unknown when some could not be judged; `None` when the spec has none of them.
fn domain_condition(metrics: &[&MetricResult]) -> Option<(ConditionStatus, &'static str, String)> {
    let first = metrics.first()?;
    let message = |judgement: fn(Judgement) -> bool| {
        metrics
            .iter()
            .filter(|m| judgement(m.judgement))
            .map(|m| m.message.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    };
    if let Some(breach) = metrics.iter().find(|m| m.judgement == Judgement::Breach) {
        return Some((
            ConditionStatus::True,
            breach.breach_reason(),
            message(|j| j == Judgement::Breach),
        ));
    }
    if let Some(unjudged) = metrics
        .iter()
        .find(|m| matches!(m.judgement, Judgement::Unjudged(_)))
    {
        return Some((
            ConditionStatus::Unknown,
            unjudged.reason(),
            message(|j| matches!(j, Judgement::Unjudged(_))),
        ));
    }
    Some((ConditionStatus::False, first.reason(), message(|_| true)))
}

/// The status after an evaluation: the `current` status (all of it, whatever its generation)
/// with the evaluation's results. `Reconciling`, `Stalled` and the actions before this one are
/// kept; an action is recorded when the focused revision just turned Fail.
pub fn next_status(
    spec: &MonitorSpec,
    current: Option<&MonitorStatus>,
    outcome: &Outcome,
    generation: Option<i64>,
) -> MonitorStatus {
    let mut status = current.cloned().unwrap_or_default();
    status.observed_generation = generation;
    set_conditions(&mut status.conditions, outcome, generation, &outcome.time);
    let evaluation = outcome.last_evaluation();
    let summary = EvaluationSummary {
        time: evaluation.time.clone(),
        revision: evaluation.revision,
        verdict: evaluation.verdict,
        reason: evaluation.reason.clone(),
    };
    let same_as_newest = status.history.first().is_some_and(|newest| {
        (newest.revision, newest.verdict, &newest.reason)
            == (summary.revision, summary.verdict, &summary.reason)
    });
    if !same_as_newest {
        status.history.insert(0, summary);
        status.history.truncate(HISTORY_LIMIT);
    }
    if outcome.newly_failed() {
        status.actions.insert(
            0,
            ActionRecord {
                time: evaluation.time.clone(),
                action: spec.action,
                revision: evaluation.revision,
                reason: evaluation.reason.clone(),
            },
        );
        status.actions.truncate(ACTIONS_LIMIT);
    }
    status.consecutive_failures = outcome.focused.consecutive_failures;
    status.revisions = outcome.revision_verdicts();
    status.last_evaluation = Some(evaluation);
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::evaluate::evaluate;
    use crate::monitor::scrape::tests::at;
    use crate::monitor::scrape::{BinCounts, RevisionTotals};
    use crate::monitor::window::{RevisionWindow, WindowDeltas};
    use modelops_api::monitor::{DriftMethod, DriftMetric, MetricSpec, MonitorAction, Verdict};
    use modelops_api::profile::example_profile as profile;
    use std::collections::BTreeMap;

    fn now(second: i64) -> Time {
        Time(at(second))
    }

    fn spec() -> MonitorSpec {
        serde_yaml::from_str(
            r#"
targetRef: {name: m}
metrics:
  - accuracy: {min: 0.9, minSamples: 10}
  - inputDrift: {max: 0.2, minSamples: 10}
failureThreshold: 2
action: rollback
"#,
        )
        .unwrap()
    }

    /// Revision 1's window: `correct` of 20 labels right, `y` inputs like training or reversed.
    fn window(correct: f64, drifted: bool) -> WindowDeltas {
        let mut totals = RevisionTotals::default();
        totals.requests.insert(200, 100.0);
        totals.feedback_correct = correct;
        totals.feedback_incorrect = 20.0 - correct;
        let bins = |inside: Vec<f64>| BinCounts {
            inside,
            ..Default::default()
        };
        let x = bins(vec![25.0; 4]);
        let y = bins(if drifted {
            vec![10.0, 20.0, 30.0, 40.0]
        } else {
            vec![40.0, 30.0, 20.0, 10.0]
        });
        totals.inputs = BTreeMap::from([("x".into(), x), ("y".into(), y)]);
        WindowDeltas {
            end: Some(at(0)),
            per_revision: BTreeMap::from([(
                1,
                RevisionWindow {
                    traffic_since: at(0),
                    feedback_since: at(0),
                    totals,
                    labels_since_start: Default::default(),
                    errors_since_start: Default::default(),
                },
            )]),
            queries: BTreeMap::new(),
        }
    }

    fn step(previous: Option<&MonitorStatus>, deltas: &WindowDeltas, second: i64) -> MonitorStatus {
        let spec = spec();
        let outcome = evaluate(
            &spec,
            deltas,
            Some(&profile()),
            previous,
            None,
            &now(second),
        );
        next_status(&spec, previous, &outcome, Some(1))
    }

    #[test]
    fn conditions_follow_the_measurements_and_the_verdict_waits() {
        let healthy = step(None, &window(20.0, false), 0);
        let conditions = &healthy.conditions;
        assert!(conditions.is_true(types::READY));
        let drift = conditions.get(types::DRIFT_DETECTED).unwrap();
        assert_eq!(
            (drift.status.as_str(), drift.reason.as_str()),
            ("False", reasons::WITHIN_THRESHOLDS)
        );
        let accuracy = conditions.get(types::ACCURACY_DEGRADED).unwrap();
        assert_eq!(accuracy.status, "False");
        assert_eq!(healthy.observed_generation, Some(1));
        assert_eq!(
            healthy.last_evaluation.as_ref().unwrap().verdict,
            Verdict::Pass
        );

        // Drift appears: the condition turns True at once, the verdict needs two in a row.
        let drifting = step(Some(&healthy), &window(20.0, true), 30);
        let drift = drifting.conditions.get(types::DRIFT_DETECTED).unwrap();
        assert_eq!(
            (drift.status.as_str(), drift.reason.as_str()),
            ("True", reasons::INPUT_DRIFT_ABOVE_MAXIMUM)
        );
        assert!(
            drift.message.contains("on feature \"y\""),
            "{}",
            drift.message
        );
        assert_eq!(drift.last_transition_time, now(30));
        assert_eq!(
            drifting.last_evaluation.as_ref().unwrap().verdict,
            Verdict::Inconclusive
        );
        assert_eq!(drifting.consecutive_failures, 1);
        assert!(drifting.actions.is_empty());

        let failed = step(Some(&drifting), &window(20.0, true), 60);
        let evaluation = failed.last_evaluation.as_ref().unwrap();
        assert_eq!(evaluation.verdict, Verdict::Fail);
        assert_eq!(evaluation.worst_feature.as_deref(), Some("y"));
        assert_eq!(failed.consecutive_failures, 2);
        assert_eq!(failed.actions.len(), 1);
        assert_eq!(failed.actions[0].action, MonitorAction::Rollback);
        assert_eq!(failed.actions[0].revision, Some(1));
        assert_eq!(failed.actions[0].reason, reasons::INPUT_DRIFT_ABOVE_MAXIMUM);
        assert_eq!(
            failed
                .conditions
                .get(types::DRIFT_DETECTED)
                .unwrap()
                .last_transition_time,
            now(30),
            "still True: no transition"
        );
        assert_eq!(failed.revisions[0].consecutive_failures, 2);

        // Still failing: no second action.
        let still = step(Some(&failed), &window(20.0, true), 90);
        assert_eq!(still.actions.len(), 1);
        assert_eq!(still.consecutive_failures, 3);

        // History holds the changes only, newest first, each at its first time.
        assert_eq!(
            still
                .history
                .iter()
                .map(|h| (h.verdict, h.reason.as_str(), h.time.clone()))
                .collect::<Vec<_>>(),
            [
                (Verdict::Fail, reasons::INPUT_DRIFT_ABOVE_MAXIMUM, now(60)),
                (
                    Verdict::Inconclusive,
                    reasons::INPUT_DRIFT_ABOVE_MAXIMUM,
                    now(30)
                ),
                (Verdict::Pass, reasons::WITHIN_THRESHOLDS, now(0)),
            ]
        );
    }

    #[test]
    fn unjudged_metrics_make_their_condition_unknown() {
        let mut no_labels = window(0.0, false);
        let totals = &mut no_labels.per_revision.get_mut(&1).unwrap().totals;
        totals.feedback_correct = 0.0;
        totals.feedback_incorrect = 3.0;
        let status = step(None, &no_labels, 0);
        let accuracy = status.conditions.get(types::ACCURACY_DEGRADED).unwrap();
        assert_eq!(
            (accuracy.status.as_str(), accuracy.reason.as_str()),
            ("Unknown", reasons::LABELS_PENDING)
        );
        assert_eq!(
            status.last_evaluation.unwrap().reason,
            reasons::LABELS_PENDING
        );
    }

    #[test]
    fn a_condition_without_its_metric_is_removed() {
        let status = step(None, &window(20.0, false), 0);
        let mut only_drift = spec();
        only_drift.metrics = vec![MetricSpec {
            input_drift: Some(DriftMetric {
                method: DriftMethod::Psi,
                max: 0.2,
                min_samples: 10,
            }),
            ..Default::default()
        }];
        let outcome = evaluate(
            &only_drift,
            &window(20.0, false),
            Some(&profile()),
            Some(&status),
            None,
            &now(30),
        );
        let next = next_status(&only_drift, Some(&status), &outcome, Some(2));
        assert!(next.conditions.get(types::ACCURACY_DEGRADED).is_none());
        assert!(next.conditions.get(types::DRIFT_DETECTED).is_some());
        assert_eq!(next.history.len(), 1, "history carries over");
    }

    #[test]
    fn a_changed_spec_restarts_the_counts() {
        let mut monitor = Monitor::new("m", spec());
        monitor.metadata.generation = Some(2);
        monitor.status = Some(MonitorStatus {
            observed_generation: Some(1),
            consecutive_failures: 5,
            ..Default::default()
        });
        assert_eq!(previous_status(&monitor), None);
        monitor.metadata.generation = Some(1);
        assert_eq!(previous_status(&monitor).unwrap().consecutive_failures, 5);
    }
}
