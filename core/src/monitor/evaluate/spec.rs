//! What the spec asks of the controller around an evaluation: checks the CRD schema cannot
//! express, whether the Dataset profile is needed, and when the next evaluation is due.

use super::keys;
use crate::monitor::window::WindowBounds;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use modelops_api::common::parse_duration;
use modelops_api::monitor::{Metric, MonitorSpec, MonitorStatus};
use std::time::Duration;

/// Checks what the CRD schema cannot: durations parse, and no `minSamples` exceeds
/// `window.samples` (the window would rarely hold that many, leaving the metric Inconclusive).
/// Returns the window's bounds.
pub fn validate(spec: &MonitorSpec) -> Result<WindowBounds, String> {
    let bounds = WindowBounds::from_spec(&spec.window)?;
    parse_duration(&spec.interval).map_err(|e| format!("spec.interval: {e}"))?;
    for (index, item) in spec.metrics.iter().enumerate() {
        // The keys are the spec's field names too.
        let (field, min_samples) = match item.get() {
            Some(Metric::Accuracy(m)) => (keys::ACCURACY, m.min_samples),
            Some(Metric::Rmse(m)) => (keys::RMSE, m.min_samples),
            Some(Metric::Mae(m)) => (keys::MAE, m.min_samples),
            Some(Metric::InputDrift(m)) => (keys::INPUT_DRIFT, m.min_samples),
            Some(Metric::PredictionDrift(m)) => (keys::PREDICTION_DRIFT, m.min_samples),
            Some(Metric::Latency(m)) => {
                parse_duration(&m.p99_max)
                    .map_err(|e| format!("spec.metrics[{index}].latency.p99Max: {e}"))?;
                continue;
            }
            Some(Metric::ErrorRate(_)) => continue,
            Some(Metric::Prometheus(m)) => {
                if m.min.is_some() == m.max.is_some() {
                    return Err(format!(
                        "spec.metrics[{index}].prometheus: set exactly one of min (the value must stay at or above it) or max (at or below it)"
                    ));
                }
                continue;
            }
            None => {
                return Err(format!(
                    "spec.metrics[{index}]: set exactly one of accuracy, rmse, mae, inputDrift, predictionDrift, latency, errorRate or prometheus"
                ));
            }
        };
        if f64::from(min_samples) > bounds.samples {
            return Err(format!(
                "spec.metrics[{index}].{field}.minSamples ({min_samples}) exceeds spec.window.samples ({}): the window would rarely hold enough; raise window.samples or lower minSamples",
                spec.window.samples
            ));
        }
    }
    Ok(bounds)
}

/// Whether the spec measures drift, which needs the Dataset profile.
pub fn needs_profile(spec: &MonitorSpec) -> bool {
    spec.metrics.iter().any(|m| {
        matches!(
            m.get(),
            Some(Metric::InputDrift(_) | Metric::PredictionDrift(_))
        )
    })
}

/// How long until the next evaluation is due: zero when it is, or when none ran yet. An
/// evaluation counts towards `failureThreshold`, so it must run once per `spec.interval`, not on
/// every reconcile.
pub fn due_in(spec: &MonitorSpec, previous: Option<&MonitorStatus>, now: &Time) -> Duration {
    let interval = parse_duration(&spec.interval).unwrap_or(Duration::from_secs(30));
    let Some(last) = previous.and_then(|s| s.last_evaluation.as_ref()) else {
        return Duration::ZERO;
    };
    let elapsed = now.0.duration_since(last.time.0);
    let elapsed = Duration::try_from(elapsed).unwrap_or(Duration::ZERO);
    interval.saturating_sub(elapsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::evaluate::evaluate;
    use crate::monitor::evaluate::fixtures::*;

    #[test]
    fn the_spec_is_checked_for_what_the_schema_cannot() {
        let mut checked = monitor_spec(all_metrics(), 3);
        assert!(validate(&checked).is_ok());
        assert!(needs_profile(&checked));
        checked.window.samples = 50;
        let error = validate(&checked).unwrap_err();
        assert!(
            error.starts_with(
                "spec.metrics[0].accuracy.minSamples (100) exceeds spec.window.samples (50)"
            ),
            "{error}"
        );
        assert!(!needs_profile(&monitor_spec(vec![latency("1s")], 1)));
    }

    #[test]
    fn evaluations_are_due_once_per_interval() {
        let spec = monitor_spec(vec![latency("1s")], 1);
        assert_eq!(due_in(&spec, None, &now(0)), Duration::ZERO);
        let outcome = evaluate(&spec, &window([]), None, None, None, &now(100));
        let status = status_after(&outcome);
        assert_eq!(
            due_in(&spec, Some(&status), &now(110)),
            Duration::from_secs(20)
        );
        assert_eq!(due_in(&spec, Some(&status), &now(130)), Duration::ZERO);
        assert_eq!(due_in(&spec, Some(&status), &now(500)), Duration::ZERO);
    }
}
