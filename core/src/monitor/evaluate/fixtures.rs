//! Test fixtures shared by the evaluation's tests: specs of each metric, and windows of
//! traffic that looks like the training split unless a test changes it.

use super::Outcome;
use crate::monitor::scrape::tests::at;
use crate::monitor::scrape::{BinCounts, RevisionTotals, UpperBound};
use crate::monitor::sequential::Labels;
use crate::monitor::window::{RevisionWindow, WindowDeltas};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use modelops_api::monitor::{
    AccuracyMetric, AccuracyMode, DriftMethod, DriftMetric, ErrorRateMetric, LatencyMetric,
    MetricSpec, MonitorSpec, MonitorStatus,
};
pub(super) use modelops_api::profile::example_profile as profile;
use std::collections::BTreeMap;

pub(super) fn now(second: i64) -> Time {
    Time(at(second))
}

pub(super) fn monitor_spec(metrics: Vec<MetricSpec>, failure_threshold: i32) -> MonitorSpec {
    MonitorSpec {
        target_ref: modelops_api::common::LocalRef::new("m"),
        interval: "30s".into(),
        window: Default::default(),
        metrics,
        failure_threshold,
        action: Default::default(),
    }
}

pub(super) fn accuracy(min: f64, min_samples: i32) -> MetricSpec {
    MetricSpec {
        accuracy: Some(AccuracyMetric::window(min, min_samples)),
        ..Default::default()
    }
}

pub(super) fn sequential_accuracy(min: f64, min_samples: i32) -> MetricSpec {
    MetricSpec {
        accuracy: Some(AccuracyMetric {
            mode: AccuracyMode::Sequential,
            ..AccuracyMetric::window(min, min_samples)
        }),
        ..Default::default()
    }
}

pub(super) fn input_drift(method: DriftMethod, max: f64, min_samples: i32) -> MetricSpec {
    MetricSpec {
        input_drift: Some(DriftMetric {
            method,
            max,
            min_samples,
        }),
        ..Default::default()
    }
}

pub(super) fn prediction_drift(max: f64, min_samples: i32) -> MetricSpec {
    MetricSpec {
        prediction_drift: Some(DriftMetric {
            method: DriftMethod::Psi,
            max,
            min_samples,
        }),
        ..Default::default()
    }
}

pub(super) fn latency(p99_max: &str) -> MetricSpec {
    MetricSpec {
        latency: Some(LatencyMetric {
            p99_max: p99_max.into(),
        }),
        ..Default::default()
    }
}

pub(super) fn error_rate(max: f64) -> MetricSpec {
    MetricSpec {
        error_rate: Some(ErrorRateMetric { max }),
        ..Default::default()
    }
}

/// A window where a revision served `ok` requests answered 200 in 10ms and `errors` answered
/// 503 in 1s, got `correct`/`incorrect` labels, predicted cat and dog as training did (half
/// each) and saw inputs like the training split.
pub(super) fn traffic(ok: f64, errors: f64, correct: f64, incorrect: f64) -> RevisionWindow {
    let mut totals = RevisionTotals::default();
    totals.requests.insert(200, ok);
    totals.requests.insert(503, errors);
    totals.latency.insert(UpperBound(0.01), ok);
    totals.latency.insert(UpperBound(1.0), ok + errors);
    totals
        .latency
        .insert(UpperBound(f64::INFINITY), ok + errors);
    let rows = ok;
    totals.predictions.insert("cat".into(), rows / 2.0);
    totals.predictions.insert("dog".into(), rows / 2.0);
    let quarter = rows / 4.0;
    let uniform = BinCounts {
        underflow: 0.0,
        inside: vec![quarter; 4],
        overflow: 0.0,
    };
    let like_training = BinCounts {
        underflow: 0.0,
        inside: vec![0.4 * rows, 0.3 * rows, 0.2 * rows, 0.1 * rows],
        overflow: 0.0,
    };
    totals.inputs.insert("x".into(), uniform);
    totals.inputs.insert("y".into(), like_training);
    totals.feedback_correct = correct;
    totals.feedback_incorrect = incorrect;
    RevisionWindow {
        traffic_since: at(0),
        feedback_since: at(0),
        totals,
        labels_since_start: Labels { correct, incorrect },
        errors_since_start: Default::default(),
    }
}

pub(super) fn window(revisions: impl IntoIterator<Item = (i32, RevisionWindow)>) -> WindowDeltas {
    WindowDeltas {
        end: Some(at(300)),
        per_revision: revisions.into_iter().collect(),
        queries: BTreeMap::new(),
    }
}

pub(super) fn all_metrics() -> Vec<MetricSpec> {
    vec![
        accuracy(0.9, 100),
        input_drift(DriftMethod::Psi, 0.2, 100),
        prediction_drift(0.2, 100),
        latency("200ms"),
        error_rate(0.01),
    ]
}

/// The status after an evaluation, as the controller would write it (enough for counts).
pub(super) fn status_after(outcome: &Outcome) -> MonitorStatus {
    MonitorStatus {
        last_evaluation: Some(outcome.last_evaluation()),
        consecutive_failures: outcome.focused.consecutive_failures,
        revisions: outcome.revision_verdicts(),
        ..Default::default()
    }
}
