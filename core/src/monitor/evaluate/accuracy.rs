//! Accuracy: the share of labelled feedback that was correct, judged against `accuracy.min`.
//!
//! Labels come back later than the requests they label, so a window with requests but fewer
//! labels than `minSamples` is `LabelsPending`, not a verdict either way.
//!
//! In mode `sequential` the judgement is the always-valid test of [`crate::monitor::sequential`]
//! on every label since the revision started (not the window's): a Fail as soon as the evidence
//! that accuracy is below `min` reaches `1/α`, at once rather than after `failureThreshold`
//! evaluations; a Pass once the evidence that it is at or above `min` is as strong and
//! `minSamples` labels are in; `LabelsPending` between, with the evidence in `values`.

use super::outcome::MetricResult;
use super::{evidence_number, keys, number};
use crate::monitor::scrape::RevisionTotals;
use crate::monitor::sequential::{self, Decision, Evidence, Labels};
use modelops_api::conditions::reasons;
use modelops_api::monitor::{AccuracyMetric, AccuracyMode};

/// Measures accuracy on a revision's window, or with mode `sequential` on `since_start`, every
/// label of the revision.
pub(super) fn measure(
    spec: &AccuracyMetric,
    totals: &RevisionTotals,
    since_start: Labels,
) -> MetricResult {
    if spec.mode == AccuracyMode::Sequential {
        return measure_sequential(spec, totals, since_start);
    }
    let key = keys::ACCURACY;
    let labels = totals.feedback_total();
    if labels == 0.0 && totals.requests_total() == 0.0 {
        return MetricResult::no_traffic(key, spec.min);
    }
    if labels < f64::from(spec.min_samples) {
        return MetricResult::unjudged(
            key,
            spec.min,
            reasons::LABELS_PENDING,
            format!(
                "{} labelled feedbacks in the window, accuracy needs {} (minSamples)",
                number(labels),
                spec.min_samples
            ),
        );
    }
    let accuracy = totals.feedback_correct / labels;
    let breach = accuracy < spec.min;
    MetricResult::measured(
        key,
        accuracy,
        spec.min,
        breach,
        format!(
            "accuracy {} {} minimum {} over {} labels",
            number(accuracy),
            if breach { "below" } else { "at or above" },
            number(spec.min),
            number(labels)
        ),
    )
}

/// Mode `sequential`: the test on every label since the revision started.
fn measure_sequential(
    spec: &AccuracyMetric,
    totals: &RevisionTotals,
    labels: Labels,
) -> MetricResult {
    let key = keys::ACCURACY;
    let n = labels.total();
    if n == 0.0 {
        if totals.requests_total() == 0.0 {
            return MetricResult::no_traffic(key, spec.min);
        }
        return MetricResult::unjudged(
            key,
            spec.min,
            reasons::LABELS_PENDING,
            "no labelled feedback since the revision started".into(),
        );
    }
    let evidence = sequential::test(labels, spec.min, spec.confidence());
    let accuracy = labels.correct / n;
    let summary = format!(
        "accuracy {} over {} labels since the revision started; evidence below minimum {}: {}, at or above: {}, a decision needs {} (confidence {})",
        number(accuracy),
        number(n),
        number(spec.min),
        evidence_number(evidence.below),
        evidence_number(evidence.at_or_above),
        number(evidence.needed),
        number(spec.confidence()),
    );
    let pass_ready = n >= f64::from(spec.min_samples);
    let mut result = match evidence.decision {
        Decision::Below => MetricResult {
            fails_at_once: true,
            ..MetricResult::measured(key, accuracy, spec.min, true, summary)
        },
        Decision::AtOrAbove if pass_ready => {
            MetricResult::measured(key, accuracy, spec.min, false, summary)
        }
        Decision::AtOrAbove => MetricResult::unjudged(
            key,
            spec.min,
            reasons::LABELS_PENDING,
            format!(
                "{summary}; a Pass also needs {} labels (minSamples)",
                spec.min_samples
            ),
        ),
        Decision::Undecided => {
            MetricResult::unjudged(key, spec.min, reasons::LABELS_PENDING, summary)
        }
    };
    // The live accuracy shows even while undecided: with the evidence, it says why.
    result.value = Some(accuracy);
    result.evidence = evidence_values(&evidence, n);
    result
}

/// The test's numbers, by their keys in `values`.
fn evidence_values(evidence: &Evidence, labels: f64) -> Vec<(String, f64)> {
    [
        (keys::ACCURACY_EVIDENCE_BELOW, evidence.below),
        (keys::ACCURACY_EVIDENCE_AT_OR_ABOVE, evidence.at_or_above),
        (keys::ACCURACY_EVIDENCE_NEEDED, evidence.needed),
        (keys::ACCURACY_LABELS, labels),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value))
    .collect()
}

#[cfg(test)]
mod tests {
    use crate::monitor::evaluate::evaluate;
    use crate::monitor::evaluate::fixtures::*;
    use modelops_api::conditions::reasons;
    use modelops_api::monitor::Verdict;

    #[test]
    fn too_few_labels_is_labels_pending() {
        let spec = monitor_spec(vec![accuracy(0.9, 100), error_rate(0.5)], 3);
        let outcome = evaluate(
            &spec,
            &window([(1, traffic(500.0, 0.0, 40.0, 9.0))]),
            None,
            None,
            None,
            &now(0),
        );
        assert_eq!(outcome.focused.verdict, Verdict::Inconclusive);
        assert_eq!(outcome.focused.reason, reasons::LABELS_PENDING);
        assert!(
            outcome.focused.message.contains("49 labelled feedbacks"),
            "{}",
            outcome.focused.message
        );
        // What could be judged still shows.
        assert_eq!(outcome.focused.values()["errorRate"], 0.0);
    }

    #[test]
    fn sequential_fails_a_bad_model_on_ten_labels_at_once() {
        // failureThreshold 3 and minSamples 100: neither holds a sequential Fail back.
        let spec = monitor_spec(vec![sequential_accuracy(0.85, 100)], 3);
        let outcome = evaluate(
            &spec,
            &window([(1, traffic(20.0, 0.0, 1.0, 9.0))]),
            None,
            None,
            None,
            &now(0),
        );
        let evaluation = outcome.last_evaluation();
        assert_eq!(evaluation.verdict, Verdict::Fail, "{evaluation:?}");
        assert_eq!(evaluation.reason, reasons::ACCURACY_BELOW_MINIMUM);
        assert!(outcome.newly_failed());
        assert_eq!(outcome.focused.consecutive_failures, 1);
        assert_eq!(evaluation.values["accuracy"], 0.1);
        assert_eq!(evaluation.values["accuracyLabels"], 10.0);
        assert_eq!(evaluation.values["accuracyEvidenceNeeded"], 100.0);
        assert!(evaluation.values["accuracyEvidenceBelowMin"] > 1000.0);
        let message = evaluation.message.unwrap();
        assert!(message.contains("fails at once"), "{message}");
        assert!(
            message.contains("accuracy 0.1 over 10 labels since the revision started"),
            "{message}"
        );
    }

    #[test]
    fn sequential_waits_for_evidence_then_for_min_samples_to_pass() {
        let spec = monitor_spec(vec![sequential_accuracy(0.85, 100)], 3);
        let judge = |correct: f64, incorrect: f64| {
            evaluate(
                &spec,
                &window([(1, traffic(500.0, 0.0, correct, incorrect))]),
                None,
                None,
                None,
                &now(0),
            )
            .focused
        };
        // Near min: no evidence either way, the values still show.
        let pending = judge(43.0, 7.0);
        assert_eq!(pending.verdict, Verdict::Inconclusive);
        assert_eq!(pending.reason, reasons::LABELS_PENDING);
        assert_eq!(pending.values()["accuracy"], 0.86);
        assert!(
            pending.message.contains("a decision needs 100"),
            "{}",
            pending.message
        );
        // 90 right of 90: evidence enough, labels not.
        let early = judge(90.0, 0.0);
        assert_eq!(early.reason, reasons::LABELS_PENDING);
        assert!(early.message.contains("minSamples"), "{}", early.message);
        assert_eq!(judge(100.0, 0.0).verdict, Verdict::Pass);
        // Requests but no label yet.
        let none = judge(0.0, 0.0);
        assert_eq!(none.reason, reasons::LABELS_PENDING);
        assert!(
            none.message.contains("no labelled feedback"),
            "{}",
            none.message
        );
    }
}
