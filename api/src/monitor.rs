//! The `Monitor` kind: watch the live quality of a ModelDeployment (accuracy on labelled
//! feedback, input and prediction drift against the Dataset profile, latency, errors) and write
//! a verdict. The Monitor only measures; the ModelDeployment controller acts on its verdict.

use crate::common::{DURATION_PATTERN, LocalRef};
use crate::conditions::Conditions;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube_derive::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Evaluations kept in `status.history`.
pub const HISTORY_LIMIT: usize = 10;

/// Actions kept in `status.actions`.
pub const ACTIONS_LIMIT: usize = 10;

/// Revisions kept in `status.revisions`.
pub const REVISIONS_LIMIT: usize = 10;

/// Watches a ModelDeployment's live quality and gives a verdict every `interval`.
// Clippy reads the repeated keys of the printcolumn(...) lists as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(crates(kube_core = ::kube_core))]
#[kube(
    crates(kube_core = ::kube_core),
    group = "modelops.dev",
    version = "v1alpha1",
    kind = "Monitor",
    doc = "Watches the live quality of a ModelDeployment (accuracy, drift, latency, errors) and gives a verdict: Pass, Fail or Inconclusive.",
    namespaced,
    status = "MonitorStatus",
    shortname = "mmon",
    category = "modelops",
    printcolumn(
        name = "Verdict",
        type_ = "string",
        json_path = ".status.lastEvaluation.verdict",
        description = "Pass, Fail or Inconclusive"
    ),
    printcolumn(
        name = "Target",
        type_ = "string",
        json_path = ".spec.targetRef.name",
        description = "The ModelDeployment watched"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Worst",
        type_ = "string",
        json_path = ".status.lastEvaluation.worstMetric",
        description = "The metric closest to (or past) its threshold"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.lastEvaluation.reason",
        priority = 1
    ),
    printcolumn(
        name = "Action",
        type_ = "string",
        json_path = ".spec.action",
        priority = 1
    )
)]
#[x_kube(
    validation = Rule::new("self.metrics.filter(m, has(m.accuracy)).size() <= 1 && self.metrics.filter(m, has(m.rmse)).size() <= 1 && self.metrics.filter(m, has(m.mae)).size() <= 1 && self.metrics.filter(m, has(m.inputDrift)).size() <= 1 && self.metrics.filter(m, has(m.predictionDrift)).size() <= 1 && self.metrics.filter(m, has(m.latency)).size() <= 1 && self.metrics.filter(m, has(m.errorRate)).size() <= 1 && self.metrics.filter(m, has(m.prometheus)).size() <= 1")
        .message("spec.metrics: each kind (accuracy, rmse, mae, inputDrift, predictionDrift, latency, errorRate, prometheus) may appear at most once")
        .field_path(".metrics"),
)]
#[serde(rename_all = "camelCase")]
pub struct MonitorSpec {
    /// The ModelDeployment to watch, in the same namespace.
    pub target_ref: LocalRef,
    /// Time between evaluations (a duration such as `30s`), at least 1s.
    #[serde(default = "default_interval")]
    #[schemars(length(max = 64), pattern(DURATION_PATTERN))]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1s')").message("spec.interval must be at least 1s"))]
    pub interval: String,
    /// Which requests an evaluation looks at.
    #[serde(default)]
    pub window: Window,
    /// What to measure, each with its threshold.
    #[schemars(length(min = 1, max = 8))]
    pub metrics: Vec<MetricSpec>,
    /// Consecutive failing evaluations before the verdict is Fail, at least 1.
    #[serde(default = "default_failure_threshold")]
    #[schemars(range(min = 1, max = 1000))]
    pub failure_threshold: i32,
    /// What a Fail verdict asks for: `rollback` (the ModelDeployment goes back to its stable
    /// revision) or `alert` (a Warning event and conditions only, the default).
    #[serde(default)]
    pub action: MonitorAction,
}

fn default_interval() -> String {
    "30s".into()
}

fn default_failure_threshold() -> i32 {
    3
}

/// Which requests an evaluation looks at: the last `samples` requests no older than `maxAge`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Window {
    /// Most recent requests considered, at least 1.
    #[serde(default = "default_window_samples")]
    #[schemars(range(min = 1, max = 1000000))]
    pub samples: i32,
    /// Oldest request considered (a duration such as `1h`).
    #[serde(default = "default_window_max_age")]
    #[schemars(length(max = 64), pattern(DURATION_PATTERN))]
    pub max_age: String,
}

fn default_window_samples() -> i32 {
    1000
}

fn default_window_max_age() -> String {
    "1h".into()
}

impl Default for Window {
    fn default() -> Self {
        Self {
            samples: default_window_samples(),
            max_age: default_window_max_age(),
        }
    }
}

/// What a Fail verdict asks for.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum MonitorAction {
    /// Send traffic back to the ModelDeployment's stable revision.
    Rollback,
    /// Report only: a Warning event and the Monitor's conditions.
    #[default]
    Alert,
}

/// One measurement with its threshold. Exactly one member is set.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(crates(kube_core = ::kube_core))]
#[x_kube(
    validation = Rule::new("[has(self.accuracy), has(self.rmse), has(self.mae), has(self.inputDrift), has(self.predictionDrift), has(self.latency), has(self.errorRate), has(self.prometheus)].filter(x, x).size() == 1")
        .message("spec.metrics[]: each item sets exactly one of accuracy, rmse, mae, inputDrift, predictionDrift, latency, errorRate or prometheus"),
)]
#[serde(rename_all = "camelCase")]
pub struct MetricSpec {
    /// Accuracy on labelled feedback (`POST /v2/models/{name}/feedback`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<AccuracyMetric>,
    /// Root mean squared error of a regression model on labelled feedback (the true values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rmse: Option<ErrorMetric>,
    /// Mean absolute error of a regression model on labelled feedback (the true values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mae: Option<ErrorMetric>,
    /// Drift of the input features against the Dataset profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_drift: Option<DriftMetric>,
    /// Drift of the predictions: the predicted classes against the Dataset's label distribution,
    /// or a regression model's predicted values against its predictions on the training split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prediction_drift: Option<DriftMetric>,
    /// Request latency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencyMetric>,
    /// Share of requests answered with an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<ErrorRateMetric>,
    /// Any number a Prometheus query gives (PromQL), as Flagger's and Argo Rollouts' analyses
    /// offer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusMetric>,
}

/// The measurement, as one value, for code that handles each case.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Metric<'a> {
    /// `accuracy`.
    Accuracy(&'a AccuracyMetric),
    /// `rmse`.
    Rmse(&'a ErrorMetric),
    /// `mae`.
    Mae(&'a ErrorMetric),
    /// `inputDrift`.
    InputDrift(&'a DriftMetric),
    /// `predictionDrift`.
    PredictionDrift(&'a DriftMetric),
    /// `latency`.
    Latency(&'a LatencyMetric),
    /// `errorRate`.
    ErrorRate(&'a ErrorRateMetric),
    /// `prometheus`.
    Prometheus(&'a PrometheusMetric),
}

impl MetricSpec {
    /// The one measurement that is set, or `None` when none or several are (which the CRD's
    /// rules refuse).
    pub fn get(&self) -> Option<Metric<'_>> {
        let set: Vec<Metric<'_>> = [
            self.accuracy.as_ref().map(Metric::Accuracy),
            self.rmse.as_ref().map(Metric::Rmse),
            self.mae.as_ref().map(Metric::Mae),
            self.input_drift.as_ref().map(Metric::InputDrift),
            self.prediction_drift.as_ref().map(Metric::PredictionDrift),
            self.latency.as_ref().map(Metric::Latency),
            self.error_rate.as_ref().map(Metric::ErrorRate),
            self.prometheus.as_ref().map(Metric::Prometheus),
        ]
        .into_iter()
        .flatten()
        .collect();
        match set.as_slice() {
            [one] => Some(*one),
            _ => None,
        }
    }
}

/// Accuracy on labelled feedback must stay at or above `min`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(crates(kube_core = ::kube_core))]
#[x_kube(
    validation = Rule::new("!has(self.mode) || self.mode != 'sequential' || (self.min > 0.0 && self.min < 1.0)")
        .message("spec.metrics[].accuracy.min: mode sequential needs 0 < min < 1 (accuracy at or above 0 always holds, and 1 fails on the first wrong label); set min in (0, 1) or use mode window")
        .field_path(".min"),
    validation = Rule::new("!has(self.confidence) || (has(self.mode) && self.mode == 'sequential')")
        .message("spec.metrics[].accuracy.confidence applies to mode sequential only; set mode: sequential or remove confidence")
        .field_path(".confidence"),
)]
#[serde(rename_all = "camelCase")]
pub struct AccuracyMetric {
    /// Lowest acceptable accuracy, in [0, 1] (in (0, 1) with mode `sequential`).
    #[schemars(range(min = 0.0, max = 1.0))]
    pub min: f64,
    /// Labelled feedbacks needed before accuracy is judged (fewer gives Inconclusive). With
    /// mode `sequential` it is needed for a Pass only: a Fail needs only the evidence.
    #[serde(default = "default_min_samples")]
    #[schemars(range(min = 1, max = 1000000))]
    pub min_samples: i32,
    /// How accuracy is judged: `window` (the default: the labels in the window against `min`,
    /// failing after `failureThreshold` evaluations in a row) or `sequential` (a test on every
    /// label since the revision started, valid at every evaluation, failing at once when the
    /// evidence suffices).
    #[serde(default)]
    pub mode: AccuracyMode,
    /// With mode `sequential`: how sure the test must be before it decides, in (0.5, 1),
    /// default 0.99. A revision whose accuracy is at or above `min` is failed with probability
    /// at most `1 - confidence`, however long it is watched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self > 0.5 && self < 1.0").message("spec.metrics[].accuracy.confidence must be in (0.5, 1), for example 0.99 (at most 1% of good revisions failed)"))]
    pub confidence: Option<f64>,
}

/// `accuracy.confidence` when the spec leaves it unset.
pub const DEFAULT_ACCURACY_CONFIDENCE: f64 = 0.99;

impl AccuracyMetric {
    /// A window-mode accuracy metric (the behaviour of specs that set no mode).
    pub fn window(min: f64, min_samples: i32) -> Self {
        Self {
            min,
            min_samples,
            mode: AccuracyMode::Window,
            confidence: None,
        }
    }

    /// `confidence`, or its default.
    pub fn confidence(&self) -> f64 {
        self.confidence.unwrap_or(DEFAULT_ACCURACY_CONFIDENCE)
    }
}

/// How a metric on labelled feedback (accuracy, rmse, mae) is judged.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum AccuracyMode {
    /// The labels in the window against the threshold, per evaluation.
    #[default]
    Window,
    /// An always-valid sequential test on every label since the revision started.
    Sequential,
}

/// A regression model's error on labelled feedback (`rmse` or `mae`) must stay at or below
/// `max`, in the target's own units.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(crates(kube_core = ::kube_core))]
#[x_kube(
    validation = Rule::new("!has(self.confidence) || (has(self.mode) && self.mode == 'sequential')")
        .message("spec.metrics[].{rmse,mae}.confidence applies to mode sequential only; set mode: sequential or remove confidence")
        .field_path(".confidence"),
)]
#[serde(rename_all = "camelCase")]
pub struct ErrorMetric {
    /// Highest acceptable error, in the target's units, greater than 0.
    #[schemars(range(max = 1.0e12), extend("minimum" = 0.0, "exclusiveMinimum" = true))]
    pub max: f64,
    /// Labelled feedbacks needed before the error is judged (fewer gives Inconclusive). With
    /// mode `sequential` it is needed for a Pass and for a Fail.
    #[serde(default = "default_min_samples")]
    #[schemars(range(min = 1, max = 1000000))]
    pub min_samples: i32,
    /// How the error is judged: `window` (the default: the labels in the window against `max`,
    /// failing after `failureThreshold` evaluations in a row) or `sequential` (a confidence
    /// sequence on every label since the revision started, failing at once when the error is
    /// above `max` with the confidence asked for).
    #[serde(default)]
    pub mode: AccuracyMode,
    /// With mode `sequential`: how sure the test must be before it decides, in (0.5, 1),
    /// default 0.99.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self > 0.5 && self < 1.0").message("spec.metrics[].{rmse,mae}.confidence must be in (0.5, 1), for example 0.99"))]
    pub confidence: Option<f64>,
}

impl ErrorMetric {
    /// `confidence`, or its default (that of accuracy).
    pub fn confidence(&self) -> f64 {
        self.confidence.unwrap_or(DEFAULT_ACCURACY_CONFIDENCE)
    }
}

fn default_min_samples() -> i32 {
    100
}

/// Drift statistics.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum DriftMethod {
    /// Population stability index on the profile's bins (0.1: small shift, 0.25: large).
    #[default]
    Psi,
    /// Kolmogorov-Smirnov distance, in [0, 1].
    Ks,
}

/// Drift must stay at or below `max` (the largest over the features, for input drift).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(crates(kube_core = ::kube_core))]
#[x_kube(
    validation = Rule::new("!has(self.method) || self.method != 'ks' || self.max <= 1.0")
        .message("spec.metrics[].{inputDrift,predictionDrift}.max: a ks distance is at most 1; set max in (0, 1] or use method psi")
        .field_path(".max"),
)]
#[serde(rename_all = "camelCase")]
pub struct DriftMetric {
    /// `psi` (default) or `ks`.
    #[serde(default)]
    pub method: DriftMethod,
    /// Highest acceptable drift, greater than 0.
    #[schemars(range(max = 100.0), extend("minimum" = 0.0, "exclusiveMinimum" = true))]
    pub max: f64,
    /// Requests needed in the window before drift is judged (fewer gives Inconclusive).
    #[serde(default = "default_min_samples")]
    #[schemars(range(min = 1, max = 1000000))]
    pub min_samples: i32,
}

/// The 99th percentile of request latency must stay at or below `p99Max`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(crates(kube_core = ::kube_core))]
#[serde(rename_all = "camelCase")]
pub struct LatencyMetric {
    /// Highest acceptable p99 latency (a duration such as `200ms`), greater than 0.
    #[schemars(length(max = 64), pattern(DURATION_PATTERN))]
    #[x_kube(validation = Rule::new("duration(self) > duration('0s')").message("spec.metrics[].latency.p99Max must be greater than 0, for example 200ms"))]
    pub p99_max: String,
}

/// The share of requests answered with an error must stay at or below `max`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorRateMetric {
    /// Highest acceptable error rate, in [0, 1].
    #[schemars(range(min = 0.0, max = 1.0))]
    pub max: f64,
}

/// A PromQL query, judged against `min` or `max` (exactly one). The query is run as an instant
/// query (`GET <address>/api/v1/query`) at each evaluation, once per revision judged, after these
/// placeholders are replaced: `{{namespace}}` (the Monitor's), `{{target}}` (the ModelDeployment's
/// name, the `model` label of its serving series) and `{{revision}}` (the revision judged: a
/// canary and the stable revision get their own value). It must give one number: a scalar, or a
/// vector of exactly one series (aggregate with `sum`, `max`, ...). No series, NaN or a failed
/// query leave the metric not judged (`NoData`, `QueryFailed`), never a breach.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(crates(kube_core = ::kube_core))]
#[x_kube(
    validation = Rule::new("has(self.min) != has(self.max)")
        .message("spec.metrics[].prometheus: set exactly one of min (the value must stay at or above it) or max (at or below it)"),
)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusMetric {
    /// The Prometheus' base URL, `http://` or `https://` with a host and an optional port and
    /// path prefix, e.g. `http://prometheus.monitoring:9090`. The operator must allow it
    /// (chart value `policy.prometheusAddresses`).
    #[schemars(
        length(min = 8, max = 512),
        pattern(r"^https?://[^\s/?#@]+(/[^\s?#]*)?$")
    )]
    pub address: String,
    /// The PromQL query, with `{{namespace}}`, `{{target}}` and `{{revision}}` placeholders.
    #[schemars(length(min = 1, max = 4096))]
    pub query: String,
    /// The lowest acceptable value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// The highest acceptable value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

/// The outcome of an evaluation.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Verdict {
    /// Every metric is within its threshold.
    Pass,
    /// A metric has been out of its threshold for `failureThreshold` evaluations in a row, or a
    /// sequential accuracy test proved accuracy below its minimum (at once).
    Fail,
    /// Not enough traffic or labels to judge.
    Inconclusive,
}

impl Verdict {
    /// The verdict as the API writes it (`Pass`, `Fail`, `Inconclusive`).
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "Pass",
            Verdict::Fail => "Fail",
            Verdict::Inconclusive => "Inconclusive",
        }
    }
}

/// One evaluation.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Evaluation {
    /// When it ran.
    pub time: Time,
    /// The ModelDeployment revision evaluated (the canary during a rollout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i32>,
    /// Measured values by metric kind (`accuracy`, `inputDrift`, ...; latency in seconds).
    #[serde(default)]
    pub values: BTreeMap<String, f64>,
    /// Thresholds by metric kind, as the spec set them (latency in seconds).
    #[serde(default)]
    pub thresholds: BTreeMap<String, f64>,
    /// Pass, Fail or Inconclusive.
    pub verdict: Verdict,
    /// Why, in one CamelCase word (see the conditions' reasons).
    pub reason: String,
    /// Details for a person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The input feature that drifted most (with an `inputDrift` metric).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worst_feature: Option<String>,
    /// The measured metric closest to its threshold, or furthest past it (relative to the
    /// threshold), as `<metric> <value> (<min|max> <threshold>)`: `accuracy 0.71 (min 0.8)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worst_metric: Option<String>,
}

/// The latest verdict on one revision. During a canary the Monitor judges the canary and the
/// stable revision apart, each with its own count of failing evaluations.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevisionVerdict {
    /// The ModelDeployment revision.
    pub revision: i32,
    /// Pass, Fail or Inconclusive.
    pub verdict: Verdict,
    /// Why, in one CamelCase word.
    pub reason: String,
    /// Failing evaluations of this revision in a row so far.
    #[serde(default)]
    pub consecutive_failures: i32,
    /// Measured values by metric kind, as in `lastEvaluation.values`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub values: BTreeMap<String, f64>,
}

/// An entry of the evaluation history.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EvaluationSummary {
    /// When it ran.
    pub time: Time,
    /// The revision evaluated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i32>,
    /// Pass, Fail or Inconclusive.
    pub verdict: Verdict,
    /// Why.
    pub reason: String,
}

/// An action the Monitor asked for.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActionRecord {
    /// When.
    pub time: Time,
    /// `rollback` or `alert`.
    pub action: MonitorAction,
    /// The revision it concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i32>,
    /// Why.
    pub reason: String,
}

/// What the Monitor measured and decided.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MonitorStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `DriftDetected`, `AccuracyDegraded`, and `Reconciling` or `Stalled` while they
    /// hold.
    #[serde(default, skip_serializing_if = "Conditions::is_empty")]
    pub conditions: Conditions,
    /// The latest evaluation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_evaluation: Option<Evaluation>,
    /// Failing evaluations in a row so far, of the revision `lastEvaluation` describes.
    #[serde(default)]
    pub consecutive_failures: i32,
    /// The latest verdict on every revision the window saw, newest revision first, at most
    /// `REVISIONS_LIMIT`; `lastEvaluation` describes one of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revisions: Vec<RevisionVerdict>,
    /// Changes of verdict, newest first, at most `HISTORY_LIMIT`: an entry is added when the
    /// revision, verdict or reason differs from the newest entry, and keeps the time the change
    /// was first seen.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<EvaluationSummary>,
    /// Actions asked for, newest first, at most `ACTIONS_LIMIT`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<ActionRecord>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_reads_with_defaults() {
        let monitor: Monitor = serde_yaml::from_str(
            r#"
apiVersion: modelops.dev/v1alpha1
kind: Monitor
metadata: {name: digits, namespace: default}
spec:
  targetRef: {name: digits}
  metrics:
    - accuracy: {min: 0.9}
    - inputDrift: {max: 0.2}
    - latency: {p99Max: 200ms}
  action: rollback
"#,
        )
        .unwrap();
        let spec = &monitor.spec;
        assert_eq!(spec.interval, "30s");
        assert_eq!(spec.failure_threshold, 3);
        assert_eq!(spec.window, Window::default());
        assert_eq!(spec.action, MonitorAction::Rollback);
        let drift = spec.metrics[1].input_drift.as_ref().unwrap();
        assert_eq!(drift.method, DriftMethod::Psi);
        assert_eq!(drift.min_samples, 100);
        assert!(matches!(spec.metrics[2].get(), Some(Metric::Latency(_))));
    }

    #[test]
    fn two_kinds_in_one_item_are_no_metric() {
        let item = MetricSpec {
            accuracy: Some(AccuracyMetric::window(0.9, 1)),
            error_rate: Some(ErrorRateMetric { max: 0.1 }),
            ..Default::default()
        };
        assert_eq!(item.get(), None);
        assert_eq!(MetricSpec::default().get(), None);
    }

    #[test]
    fn accuracy_is_judged_per_window_unless_sequential_is_asked() {
        let window: AccuracyMetric = serde_json::from_str(r#"{"min": 0.9}"#).unwrap();
        assert_eq!(window, AccuracyMetric::window(0.9, 100));
        assert_eq!(window.confidence(), DEFAULT_ACCURACY_CONFIDENCE);
        // What the operator would write back keeps an unset confidence unset.
        assert_eq!(
            serde_json::to_value(&window).unwrap(),
            serde_json::json!({"min": 0.9, "minSamples": 100, "mode": "window"})
        );
        let sequential: AccuracyMetric =
            serde_json::from_str(r#"{"min": 0.85, "mode": "sequential", "confidence": 0.95}"#)
                .unwrap();
        assert_eq!(sequential.mode, AccuracyMode::Sequential);
        assert_eq!(sequential.confidence(), 0.95);
    }

    #[test]
    fn action_defaults_to_alert() {
        assert_eq!(MonitorAction::default(), MonitorAction::Alert);
    }
}
