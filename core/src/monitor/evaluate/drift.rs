//! Input and prediction drift: how far the window's inputs and predicted classes moved from the
//! Dataset profile, judged against `inputDrift.max` and `predictionDrift.max`.
//!
//! The statistics themselves (PSI, KS) are in [`crate::monitor::drift`]; this module only reads
//! the window, checks there is enough of it, and judges: a value above `max` is a breach when it
//! is beyond what chance gives a window of that size ([`Measured::significant`]), and
//! `TooFewSamples` (not a breach, not a pass) when it is not. Without the profile, the drift
//! reference, nothing can be judged: `ProfileUnavailable`.

use super::outcome::MetricResult;
use super::{keys, number};
use crate::monitor::drift::{Measured, histogram_drift, input_drift, prediction_drift};
use crate::monitor::scrape::RevisionTotals;
use modelops_api::conditions::reasons;
use modelops_api::monitor::{DriftMethod, DriftMetric};
use modelops_api::profile::Profile;

/// Measures input drift on a revision's window: the largest drift over the input features,
/// naming that feature.
pub(super) fn measure_input(
    spec: &DriftMetric,
    totals: &RevisionTotals,
    profile: Option<&Profile>,
) -> MetricResult {
    let key = keys::INPUT_DRIFT;
    let Some(profile) = profile else {
        return MetricResult::unjudged(
            key,
            spec.max,
            reasons::PROFILE_UNAVAILABLE,
            "inputDrift: the Dataset profile (the drift reference) is unavailable".into(),
        );
    };
    let drift = input_drift(spec.method, profile, &totals.inputs);
    let rows = drift.rows();
    if rows == 0.0 && totals.requests_total() == 0.0 {
        return MetricResult::no_traffic(key, spec.max);
    }
    let worst = match drift.worst() {
        Some(worst) if rows >= f64::from(spec.min_samples) => worst,
        _ => return too_few_input_rows(spec, rows),
    };
    // A breach names the worst feature beyond chance, which need not be the largest value.
    let named = drift.worst_breach(spec.max).unwrap_or(worst);
    let what = format!("inputDrift on feature {:?}", named.feature);
    let mut result = judge(key, spec, &named.measured, &what, rows);
    result.value = Some(worst.value);
    result.worst_feature = Some(named.feature.clone());
    result.evidence = drift
        .largest(keys::INPUT_DRIFT_FEATURES)
        .into_iter()
        .map(|f| (keys::input_drift_feature(&f.feature), f.value))
        .collect();
    result
}

/// Judges one drift statistic against `max`: within at or below it; above it, a breach when
/// beyond chance, else too few rows to tell.
fn judge(
    key: &'static str,
    spec: &DriftMetric,
    measured: &Measured,
    what: &str,
    rows: f64,
) -> MetricResult {
    let method = method_name(spec.method);
    let value = number(measured.value);
    let max = number(spec.max);
    let rows = number(rows);
    let correction = if measured.bias > 0.0 {
        format!(
            " (measured {} less {} for chance)",
            number(measured.raw),
            number(measured.bias)
        )
    } else {
        String::new()
    };
    if measured.value <= spec.max {
        let message =
            format!("{what}: {method} {value}{correction} within maximum {max} over {rows} rows");
        return MetricResult::measured(key, measured.value, spec.max, false, message);
    }
    if measured.significant() {
        let message =
            format!("{what}: {method} {value}{correction} above maximum {max} over {rows} rows");
        return MetricResult::measured(key, measured.value, spec.max, true, message);
    }
    let message = format!(
        "{what}: {method} {value}{correction} above maximum {max}, but {rows} rows cannot tell it from chance (measured {} is within the {} chance reaches once in 1000 windows); raise minSamples and window.samples",
        number(measured.raw),
        number(measured.chance)
    );
    MetricResult {
        value: Some(measured.value),
        ..MetricResult::unjudged(key, spec.max, reasons::TOO_FEW_SAMPLES, message)
    }
}

/// Input drift left unjudged: fewer input rows than `minSamples`.
fn too_few_input_rows(spec: &DriftMetric, rows: f64) -> MetricResult {
    // Requests but no rows at all: the pods bin inputs only once they have read the profile.
    let hint = if rows == 0.0 {
        " (the serving pods count no input features: did they find the Dataset profile?)"
    } else {
        ""
    };
    MetricResult::unjudged(
        keys::INPUT_DRIFT,
        spec.max,
        reasons::TOO_FEW_SAMPLES,
        format!(
            "{} input rows in the window, inputDrift needs {} (minSamples){hint}",
            number(rows),
            spec.min_samples
        ),
    )
}

/// Measures prediction drift on a revision's window: the drift of the predicted classes from
/// the training split's class balance (classification), or of the predicted values from the
/// model's predictions on the training split (regression, the profile's `predictions`).
pub(super) fn measure_prediction(
    spec: &DriftMetric,
    totals: &RevisionTotals,
    profile: Option<&Profile>,
) -> MetricResult {
    let key = keys::PREDICTION_DRIFT;
    let balance = profile.and_then(|p| p.class_balance.as_ref());
    let values = profile.and_then(|p| p.predictions.as_ref());
    // Only a regression model's served profile has `predictions`; its Dataset profile may still
    // have a class balance (a label with few distinct values), which says nothing of values.
    let (rows, drift) = match (balance, values) {
        (_, Some(histogram)) => (
            totals.prediction_bins.total(),
            histogram_drift(spec.method, histogram, &totals.prediction_bins, 1),
        ),
        (Some(balance), None) => (
            totals.predicted_rows(),
            prediction_drift(spec.method, balance, &totals.predictions),
        ),
        (None, None) => {
            let why = if profile.is_some() {
                "the served profile has neither classes nor the model's training predictions (a regression model trained before they were recorded: train it again)"
            } else {
                "the Dataset profile (the drift reference) is unavailable"
            };
            return MetricResult::unjudged(
                key,
                spec.max,
                reasons::PROFILE_UNAVAILABLE,
                format!("predictionDrift: {why}"),
            );
        }
    };
    if rows == 0.0 && totals.requests_total() == 0.0 {
        return MetricResult::no_traffic(key, spec.max);
    }
    let measured = match drift {
        Some(measured) if rows >= f64::from(spec.min_samples) => measured,
        _ => {
            return MetricResult::unjudged(
                key,
                spec.max,
                reasons::TOO_FEW_SAMPLES,
                format!(
                    "{} predicted rows in the window, predictionDrift needs {} (minSamples)",
                    number(rows),
                    spec.min_samples
                ),
            );
        }
    };
    judge(key, spec, &measured, "predictionDrift", rows)
}

/// The method as a message names it.
fn method_name(method: DriftMethod) -> &'static str {
    match method {
        DriftMethod::Psi => "psi",
        DriftMethod::Ks => "ks",
    }
}

#[cfg(test)]
mod tests {
    // Not `super::*`: the statistics `input_drift` and `prediction_drift` would clash with the
    // fixtures of the same names.
    use crate::monitor::evaluate::evaluate;
    use crate::monitor::evaluate::fixtures::*;
    use modelops_api::conditions::reasons;
    use modelops_api::monitor::{DriftMethod, Verdict};
    use modelops_api::profile::Profile;

    #[test]
    fn too_few_rows_is_too_few_samples() {
        let spec = monitor_spec(vec![input_drift(DriftMethod::Psi, 0.2, 100)], 3);
        let outcome = evaluate(
            &spec,
            &window([(1, traffic(40.0, 0.0, 0.0, 0.0))]),
            Some(&profile()),
            None,
            None,
            &now(0),
        );
        assert_eq!(outcome.focused.verdict, Verdict::Inconclusive);
        assert_eq!(outcome.focused.reason, reasons::TOO_FEW_SAMPLES);
        assert!(
            outcome.focused.message.contains("40 input rows"),
            "{}",
            outcome.focused.message
        );

        let spec = monitor_spec(vec![prediction_drift(0.2, 100)], 3);
        let outcome = evaluate(
            &spec,
            &window([(1, traffic(40.0, 0.0, 0.0, 0.0))]),
            Some(&profile()),
            None,
            None,
            &now(0),
        );
        assert_eq!(outcome.focused.reason, reasons::TOO_FEW_SAMPLES);
    }

    #[test]
    fn input_drift_names_the_worst_feature() {
        let spec = monitor_spec(vec![input_drift(DriftMethod::Ks, 0.3, 100)], 1);
        let mut drifted = traffic(100.0, 0.0, 0.0, 0.0);
        // y reversed: KS 0.4 (see monitor/drift.rs).
        drifted.totals.inputs.get_mut("y").unwrap().inside = vec![10.0, 20.0, 30.0, 40.0];
        let outcome = evaluate(
            &spec,
            &window([(1, drifted)]),
            Some(&profile()),
            None,
            None,
            &now(0),
        );
        let evaluation = outcome.last_evaluation();
        assert_eq!(evaluation.verdict, Verdict::Fail);
        assert_eq!(evaluation.reason, reasons::INPUT_DRIFT_ABOVE_MAXIMUM);
        assert_eq!(evaluation.worst_feature.as_deref(), Some("y"));
        assert!((evaluation.values["inputDrift"] - 0.4).abs() < 1e-12);
        // Per feature too, under `inputDrift.<feature>`.
        assert!((evaluation.values["inputDrift.y"] - 0.4).abs() < 1e-12);
        assert!(evaluation.values.contains_key("inputDrift.x"));
        let message = evaluation.message.unwrap();
        assert!(
            message.contains("inputDrift on feature \"y\": ks 0.4 above maximum 0.3 over 100 rows"),
            "{message}"
        );
    }

    #[test]
    fn drift_without_a_profile_is_not_judged() {
        let spec = monitor_spec(
            vec![
                input_drift(DriftMethod::Psi, 0.2, 1),
                prediction_drift(0.2, 1),
            ],
            1,
        );
        let outcome = evaluate(
            &spec,
            &window([(1, traffic(100.0, 0.0, 0.0, 0.0))]),
            None,
            None,
            None,
            &now(0),
        );
        assert_eq!(outcome.focused.reason, reasons::PROFILE_UNAVAILABLE);
        let regression = Profile {
            class_balance: None,
            ..profile()
        };
        let spec = monitor_spec(vec![prediction_drift(0.2, 1)], 1);
        let outcome = evaluate(
            &spec,
            &window([(1, traffic(100.0, 0.0, 0.0, 0.0))]),
            Some(&regression),
            None,
            None,
            &now(0),
        );
        assert_eq!(outcome.focused.reason, reasons::PROFILE_UNAVAILABLE);
        assert!(
            outcome.focused.message.contains("neither classes nor"),
            "{}",
            outcome.focused.message
        );
    }

    #[test]
    fn a_regression_models_predicted_values_drift_from_its_training_predictions() {
        use crate::monitor::scrape::BinCounts;
        use modelops_api::profile::Histogram;
        let mut histogram = Histogram::equal_width(0.0, 4.0, 4);
        histogram.counts = vec![40, 30, 20, 10];
        // A regression label with few values may have a class balance too: the predictions win.
        let regression = Profile {
            predictions: Some(histogram),
            ..profile()
        };
        let spec = monitor_spec(vec![prediction_drift(0.3, 50)], 1);
        let judged = |inside: Vec<f64>, overflow: f64| {
            let mut live = traffic(100.0, 0.0, 0.0, 0.0);
            live.totals.predictions.clear();
            live.totals.prediction_bins = BinCounts {
                underflow: 0.0,
                inside,
                overflow,
            };
            evaluate(
                &spec,
                &window([(1, live)]),
                Some(&regression),
                None,
                None,
                &now(0),
            )
            .last_evaluation()
        };
        let same = judged(vec![40.0, 30.0, 20.0, 10.0], 0.0);
        assert_eq!(same.verdict, Verdict::Pass, "{same:?}");
        assert!(same.values["predictionDrift"].abs() < 1e-12);
        // Predictions above every training prediction: a large drift.
        let shifted = judged(vec![0.0, 0.0, 10.0, 30.0], 60.0);
        assert_eq!(shifted.verdict, Verdict::Fail, "{shifted:?}");
        assert_eq!(shifted.reason, reasons::PREDICTION_DRIFT_ABOVE_MAXIMUM);
        let few = judged(vec![4.0, 3.0, 2.0, 1.0], 0.0);
        assert_eq!(few.reason, reasons::TOO_FEW_SAMPLES, "{few:?}");
    }
}
