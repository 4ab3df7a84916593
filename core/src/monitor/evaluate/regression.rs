//! A regression model's error on labelled feedback: `rmse` and `mae`, judged against their
//! `max`, in the target's own units.
//!
//! As with accuracy, feedback comes back later than the requests it labels: a window with
//! requests but fewer labels than `minSamples` is `LabelsPending`. In mode `sequential` the
//! judgement is the confidence sequence of [`crate::monitor::errors`] on every label since the
//! revision started: a Fail at once when the error is above `max` with the confidence asked for,
//! a Pass once it is at or below with the same confidence, both after `minSamples` labels.

use super::outcome::MetricResult;
use super::{evidence_number, keys, number};
use crate::monitor::errors::{self, ErrorEvidence, ErrorKind, ErrorSums};
use crate::monitor::scrape::RevisionTotals;
use crate::monitor::sequential::Decision;
use modelops_api::conditions::reasons;
use modelops_api::monitor::{AccuracyMode, ErrorMetric};

/// The keys of one error's value and evidence in `values`.
struct Keys {
    value: &'static str,
    above: &'static str,
    at_or_below: &'static str,
    needed: &'static str,
    labels: &'static str,
}

fn keys_of(kind: ErrorKind) -> Keys {
    match kind {
        ErrorKind::Rmse => Keys {
            value: keys::RMSE,
            above: keys::RMSE_EVIDENCE_ABOVE,
            at_or_below: keys::RMSE_EVIDENCE_AT_OR_BELOW,
            needed: keys::RMSE_EVIDENCE_NEEDED,
            labels: keys::RMSE_LABELS,
        },
        ErrorKind::Mae => Keys {
            value: keys::MAE,
            above: keys::MAE_EVIDENCE_ABOVE,
            at_or_below: keys::MAE_EVIDENCE_AT_OR_BELOW,
            needed: keys::MAE_EVIDENCE_NEEDED,
            labels: keys::MAE_LABELS,
        },
    }
}

/// Measures `kind` on a revision's window, or with mode `sequential` on `since_start`, every
/// regression label of the revision.
pub(super) fn measure(
    kind: ErrorKind,
    spec: &ErrorMetric,
    totals: &RevisionTotals,
    since_start: &ErrorSums,
) -> MetricResult {
    let key = keys_of(kind).value;
    let labelled = if spec.mode == AccuracyMode::Sequential {
        since_start
    } else {
        &totals.errors
    };
    let n = labelled.values;
    if n == 0.0 && totals.requests_total() == 0.0 {
        return MetricResult::no_traffic(key, spec.max);
    }
    if n == 0.0 && totals.feedback_total() > 0.0 {
        return MetricResult::unjudged(
            key,
            spec.max,
            reasons::LABELS_PENDING,
            format!(
                "{key}: the feedback is of classes; {key} needs a regression model's true values"
            ),
        );
    }
    if spec.mode == AccuracyMode::Sequential {
        return measure_sequential(kind, spec, labelled);
    }
    let Some(error) = labelled
        .error(kind)
        .filter(|_| n >= f64::from(spec.min_samples))
    else {
        return MetricResult::unjudged(
            key,
            spec.max,
            reasons::LABELS_PENDING,
            format!(
                "{} labelled feedbacks in the window, {key} needs {} (minSamples)",
                number(n),
                spec.min_samples
            ),
        );
    };
    let breach = error > spec.max;
    MetricResult::measured(
        key,
        error,
        spec.max,
        breach,
        format!(
            "{key} {} {} maximum {} over {} labels",
            number(error),
            if breach { "above" } else { "at or below" },
            number(spec.max),
            number(n)
        ),
    )
}

/// Mode `sequential`: the confidence sequence on every label since the revision started.
fn measure_sequential(kind: ErrorKind, spec: &ErrorMetric, labelled: &ErrorSums) -> MetricResult {
    let names = keys_of(kind);
    let key = names.value;
    let n = labelled.values;
    let Some(error) = labelled.error(kind) else {
        return MetricResult::unjudged(
            key,
            spec.max,
            reasons::LABELS_PENDING,
            format!("{key}: no labelled feedback since the revision started"),
        );
    };
    let min_samples = f64::from(spec.min_samples);
    let evidence = errors::test(labelled, kind, spec.max, spec.confidence(), min_samples);
    let mut summary = format!(
        "{key} {} over {} labels since the revision started; evidence above maximum {}: {}, at or below: {}, a decision needs {} (confidence {})",
        number(error),
        number(n),
        number(spec.max),
        evidence_number(evidence.above),
        evidence_number(evidence.at_or_below),
        number(evidence.needed),
        number(spec.confidence()),
    );
    if n < min_samples {
        summary.push_str(&format!(
            "; a decision also needs {} labels (minSamples)",
            spec.min_samples
        ));
    }
    let mut result = match evidence.decision {
        Decision::Below => MetricResult {
            fails_at_once: true,
            ..MetricResult::measured(key, error, spec.max, true, summary)
        },
        Decision::AtOrAbove => MetricResult::measured(key, error, spec.max, false, summary),
        Decision::Undecided => {
            MetricResult::unjudged(key, spec.max, reasons::LABELS_PENDING, summary)
        }
    };
    result.value = Some(error);
    result.evidence = evidence_values(&names, &evidence, n);
    result
}

fn evidence_values(names: &Keys, evidence: &ErrorEvidence, n: f64) -> Vec<(String, f64)> {
    [
        (names.above, evidence.above),
        (names.at_or_below, evidence.at_or_below),
        (names.needed, evidence.needed),
        (names.labels, n),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::evaluate::evaluate;
    use crate::monitor::evaluate::fixtures::*;
    use modelops_api::monitor::{MetricSpec, Verdict};

    fn rmse(max: f64, min_samples: i32, mode: AccuracyMode) -> MetricSpec {
        MetricSpec {
            rmse: Some(ErrorMetric {
                max,
                min_samples,
                mode,
                confidence: None,
            }),
            ..Default::default()
        }
    }

    fn mae(max: f64, min_samples: i32) -> MetricSpec {
        MetricSpec {
            mae: Some(ErrorMetric {
                max,
                min_samples,
                mode: AccuracyMode::Window,
                confidence: None,
            }),
            ..Default::default()
        }
    }

    /// A window of `n` regression labels, each error `e` (alternating sign), on 100 requests.
    fn labelled(n: f64, e: f64) -> crate::monitor::window::RevisionWindow {
        let mut w = traffic(100.0, 0.0, 0.0, 0.0);
        let sums = ErrorSums {
            values: n,
            absolute: n * e.abs(),
            squared: n * e * e,
            squared_squares: n * e.powi(4),
        };
        w.totals.errors = sums;
        w.errors_since_start = sums;
        w
    }

    #[test]
    fn window_mode_judges_rmse_and_mae_in_the_targets_units() {
        let spec = monitor_spec(vec![rmse(0.5, 20, AccuracyMode::Window), mae(0.5, 20)], 1);
        let good = evaluate(
            &spec,
            &window([(1, labelled(40.0, 0.2))]),
            None,
            None,
            None,
            &now(0),
        );
        let evaluation = good.last_evaluation();
        assert_eq!(evaluation.verdict, Verdict::Pass, "{evaluation:?}");
        assert!((evaluation.values["rmse"] - 0.2).abs() < 1e-12);
        assert!((evaluation.values["mae"] - 0.2).abs() < 1e-12);
        assert_eq!(evaluation.thresholds["rmse"], 0.5);

        let bad = evaluate(
            &spec,
            &window([(1, labelled(40.0, 2.0))]),
            None,
            None,
            None,
            &now(0),
        );
        let evaluation = bad.last_evaluation();
        assert_eq!(evaluation.verdict, Verdict::Fail, "{evaluation:?}");
        assert_eq!(evaluation.reason, reasons::RMSE_ABOVE_MAXIMUM);
        assert!(
            evaluation
                .message
                .as_deref()
                .unwrap()
                .contains("rmse 2 above maximum 0.5 over 40 labels"),
            "{evaluation:?}"
        );

        let few = evaluate(
            &spec,
            &window([(1, labelled(5.0, 2.0))]),
            None,
            None,
            None,
            &now(0),
        );
        assert_eq!(few.focused.verdict, Verdict::Inconclusive);
        assert_eq!(few.focused.reason, reasons::LABELS_PENDING);
    }

    #[test]
    fn sequential_mode_fails_at_once_on_the_evidence() {
        let spec = monitor_spec(vec![rmse(0.5, 20, AccuracyMode::Sequential)], 3);
        let outcome = evaluate(
            &spec,
            &window([(1, labelled(30.0, 2.0))]),
            None,
            None,
            None,
            &now(0),
        );
        let evaluation = outcome.last_evaluation();
        assert_eq!(evaluation.verdict, Verdict::Fail, "{evaluation:?}");
        assert_eq!(evaluation.reason, reasons::RMSE_ABOVE_MAXIMUM);
        assert!(evaluation.values["rmseEvidenceAboveMax"] >= 100.0);
        assert_eq!(evaluation.values["rmseEvidenceNeeded"], 100.0);
        assert_eq!(evaluation.values["rmseLabels"], 30.0);

        let early = evaluate(
            &spec,
            &window([(1, labelled(10.0, 2.0))]),
            None,
            None,
            None,
            &now(0),
        );
        assert_eq!(early.focused.verdict, Verdict::Inconclusive, "{early:?}");
        assert!(
            early
                .focused
                .message
                .contains("needs 20 labels (minSamples)")
        );
    }

    #[test]
    fn class_feedback_does_not_count_as_regression_labels() {
        let spec = monitor_spec(vec![mae(0.5, 20)], 1);
        let outcome = evaluate(
            &spec,
            &window([(1, traffic(100.0, 0.0, 90.0, 10.0))]),
            None,
            None,
            None,
            &now(0),
        );
        assert_eq!(outcome.focused.reason, reasons::LABELS_PENDING);
        assert!(
            outcome
                .focused
                .message
                .contains("the feedback is of classes")
        );
    }
}
