//! Accuracy: the share of labelled feedback that was correct, judged against `accuracy.min`.
//!
//! Labels come back later than the requests they label, so a window with requests but fewer
//! labels than `minSamples` is `LabelsPending`, not a verdict either way.

use super::outcome::MetricResult;
use super::{keys, number};
use crate::monitor::scrape::RevisionTotals;
use modelops_api::conditions::reasons;
use modelops_api::monitor::AccuracyMetric;

/// Measures accuracy on a revision's window.
pub(super) fn measure(spec: &AccuracyMetric, totals: &RevisionTotals) -> MetricResult {
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
}
