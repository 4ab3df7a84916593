//! One evaluation: the window of every revision against the spec's thresholds, giving each
//! revision a verdict (Pass, Fail or Inconclusive) and a count of failing evaluations in a row.
//!
//! Per metric, an evaluation either judges it (within its threshold, or a breach) or cannot
//! (too little data). Per revision:
//! - any breach makes the evaluation a failing one: the count goes up by one, and the verdict is
//!   Fail once the count reaches `failureThreshold`, Inconclusive (with the breach as reason)
//!   before, so that a canary is neither promoted nor rolled back on one bad interval;
//! - else, any metric not judged makes it Inconclusive (`NoTraffic` when the window has no
//!   request, else the first such metric's reason: `LabelsPending`, `TooFewSamples`,
//!   `ProfileUnavailable`); the count is kept, neither reset nor raised, so that gaps in traffic
//!   neither hide a bad model nor convict it;
//! - else the verdict is Pass and the count goes back to 0.

use super::drift::{input_drift, prediction_drift};
use super::scrape::{RevisionTotals, UpperBound};
use super::window::{RevisionWindow, WindowBounds, WindowDeltas};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use modelops_api::common::parse_duration;
use modelops_api::conditions::reasons;
use modelops_api::modeldeployment::{ModelDeploymentStatus, RevisionState};
use modelops_api::monitor::{
    DriftMethod, Evaluation, Metric, MonitorSpec, MonitorStatus, REVISIONS_LIMIT, RevisionVerdict,
    Verdict,
};
use modelops_api::profile::Profile;
use std::collections::BTreeMap;
use std::time::Duration;

/// The keys of `values` and `thresholds` in an evaluation, one per metric kind.
pub mod keys {
    /// Share of labelled feedback that was correct.
    pub const ACCURACY: &str = "accuracy";
    /// The largest drift over the input features.
    pub const INPUT_DRIFT: &str = "inputDrift";
    /// The drift of the predicted classes.
    pub const PREDICTION_DRIFT: &str = "predictionDrift";
    /// The p99 request latency, in seconds.
    pub const LATENCY: &str = "latency";
    /// Share of requests answered with a server error (5xx).
    pub const ERROR_RATE: &str = "errorRate";
}

/// The latency quantile `latency.p99Max` bounds.
pub const LATENCY_QUANTILE: f64 = 0.99;

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
}

impl MetricResult {
    /// The condition reason of a breach of this metric.
    pub fn breach_reason(&self) -> &'static str {
        match self.key {
            keys::ACCURACY => reasons::ACCURACY_BELOW_MINIMUM,
            keys::INPUT_DRIFT => reasons::INPUT_DRIFT_ABOVE_MAXIMUM,
            keys::PREDICTION_DRIFT => reasons::PREDICTION_DRIFT_ABOVE_MAXIMUM,
            keys::LATENCY => reasons::LATENCY_ABOVE_MAXIMUM,
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
        self.metrics
            .iter()
            .filter_map(|m| Some((m.key.to_owned(), m.value?)))
            .collect()
    }

    /// Thresholds by key.
    pub fn thresholds(&self) -> BTreeMap<String, f64> {
        self.metrics
            .iter()
            .map(|m| (m.key.to_owned(), m.threshold))
            .collect()
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

/// Checks what the CRD schema cannot: durations parse, and no `minSamples` exceeds
/// `window.samples` (the window would rarely hold that many, leaving the metric Inconclusive).
/// Returns the window's bounds.
pub fn validate(spec: &MonitorSpec) -> Result<WindowBounds, String> {
    let bounds = WindowBounds::from_spec(&spec.window)?;
    parse_duration(&spec.interval).map_err(|e| format!("spec.interval: {e}"))?;
    for (index, item) in spec.metrics.iter().enumerate() {
        let (field, min_samples) = match item.get() {
            Some(Metric::Accuracy(m)) => ("accuracy", m.min_samples),
            Some(Metric::InputDrift(m)) => ("inputDrift", m.min_samples),
            Some(Metric::PredictionDrift(m)) => ("predictionDrift", m.min_samples),
            Some(Metric::Latency(m)) => {
                parse_duration(&m.p99_max)
                    .map_err(|e| format!("spec.metrics[{index}].latency.p99Max: {e}"))?;
                continue;
            }
            Some(Metric::ErrorRate(_)) => continue,
            None => {
                return Err(format!(
                    "spec.metrics[{index}]: set exactly one of accuracy, inputDrift, predictionDrift, latency or errorRate"
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
            let outcome = evaluate_revision(spec, Some(revision), Some(w), profile, previous);
            (revision, outcome)
        })
        .collect();
    let focused = match focus {
        Some(revision) => revisions
            .entry(revision)
            .or_insert_with(|| evaluate_revision(spec, Some(revision), None, profile, previous))
            .clone(),
        None => evaluate_revision(spec, None, None, profile, previous),
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
    profile: Option<&Profile>,
    previous: Option<&MonitorStatus>,
) -> RevisionOutcome {
    let empty = RevisionTotals::default();
    let totals = window.map(|w| &w.totals).unwrap_or(&empty);
    let requests = totals.requests_total();
    let metrics: Vec<MetricResult> = spec
        .metrics
        .iter()
        .filter_map(|item| Some(measure(item.get()?, totals, profile)))
        .collect();
    let (previous_failures, previous_verdict) = revision
        .map(|revision| previous_of(previous, revision))
        .unwrap_or((0, None));
    let threshold = spec.failure_threshold.max(1);
    let name = revision.map_or("the target".to_owned(), |r| format!("revision {r}"));

    let breaches: Vec<&MetricResult> = metrics
        .iter()
        .filter(|m| m.judgement == Judgement::Breach)
        .collect();
    let unjudged = metrics.iter().find_map(|m| match m.judgement {
        Judgement::Unjudged(reason) => Some((reason, m)),
        _ => None,
    });
    let (verdict, reason, consecutive_failures, message) = if let Some(first) = breaches.first() {
        let failures = previous_failures.saturating_add(1);
        let details = join(breaches.iter().map(|m| m.message.as_str()));
        if failures >= threshold {
            (
                Verdict::Fail,
                first.breach_reason(),
                failures,
                format!(
                    "{name}: {details}; {failures} failing evaluations in a row (failureThreshold {threshold})"
                ),
            )
        } else {
            (
                Verdict::Inconclusive,
                first.breach_reason(),
                failures,
                format!(
                    "{name}: {details}; failing evaluation {failures} of {threshold} before the verdict is Fail"
                ),
            )
        }
    } else if let Some((reason, metric)) = unjudged {
        let (reason, details) = if requests == 0.0 {
            (reasons::NO_TRAFFIC, "no requests in the window".to_owned())
        } else {
            (reason, metric.message.clone())
        };
        (
            Verdict::Inconclusive,
            reason,
            previous_failures,
            format!("{name}: {details}"),
        )
    } else {
        let details = join(metrics.iter().map(|m| m.message.as_str()));
        (
            Verdict::Pass,
            reasons::WITHIN_THRESHOLDS,
            0,
            format!("{name}: {details}"),
        )
    };
    RevisionOutcome {
        revision,
        requests,
        metrics,
        verdict,
        reason,
        message,
        consecutive_failures,
        previous_verdict,
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

fn join<'a>(parts: impl Iterator<Item = &'a str>) -> String {
    parts.collect::<Vec<_>>().join("; ")
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

fn judged(breach: bool) -> Judgement {
    if breach {
        Judgement::Breach
    } else {
        Judgement::Within
    }
}

/// Measures one metric on a revision's window.
fn measure(metric: Metric<'_>, totals: &RevisionTotals, profile: Option<&Profile>) -> MetricResult {
    let requests = totals.requests_total();
    let unjudged = |key, threshold, reason, message: String| MetricResult {
        key,
        value: None,
        threshold,
        judgement: Judgement::Unjudged(reason),
        worst_feature: None,
        message,
    };
    let no_traffic = |key, threshold| {
        unjudged(
            key,
            threshold,
            reasons::NO_TRAFFIC,
            format!("{key}: no requests in the window"),
        )
    };
    match metric {
        Metric::Accuracy(spec) => {
            let key = keys::ACCURACY;
            let labels = totals.feedback_total();
            if labels == 0.0 && requests == 0.0 {
                return no_traffic(key, spec.min);
            }
            if labels < f64::from(spec.min_samples) {
                return unjudged(
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
            MetricResult {
                key,
                value: Some(accuracy),
                threshold: spec.min,
                judgement: judged(breach),
                worst_feature: None,
                message: format!(
                    "accuracy {} {} minimum {} over {} labels",
                    number(accuracy),
                    if breach { "below" } else { "at or above" },
                    number(spec.min),
                    number(labels)
                ),
            }
        }
        Metric::InputDrift(spec) => {
            let key = keys::INPUT_DRIFT;
            let Some(profile) = profile else {
                return unjudged(
                    key,
                    spec.max,
                    reasons::PROFILE_UNAVAILABLE,
                    "inputDrift: the Dataset profile (the drift reference) is unavailable".into(),
                );
            };
            let drift = input_drift(spec.method, profile, &totals.inputs);
            let rows = drift.rows();
            if rows == 0.0 && requests == 0.0 {
                return no_traffic(key, spec.max);
            }
            let worst = match drift.worst() {
                Some(worst) if rows >= f64::from(spec.min_samples) => worst,
                _ => {
                    let hint = if rows == 0.0 {
                        " (the serving pods count no input features: did they find the Dataset profile?)"
                    } else {
                        ""
                    };
                    return unjudged(
                        key,
                        spec.max,
                        reasons::TOO_FEW_SAMPLES,
                        format!(
                            "{} input rows in the window, inputDrift needs {} (minSamples){hint}",
                            number(rows),
                            spec.min_samples
                        ),
                    );
                }
            };
            let breach = worst.value > spec.max;
            MetricResult {
                key,
                value: Some(worst.value),
                threshold: spec.max,
                judgement: judged(breach),
                worst_feature: Some(worst.feature.clone()),
                message: format!(
                    "inputDrift {} {} on feature {:?} {} maximum {} over {} rows",
                    method_name(spec.method),
                    number(worst.value),
                    worst.feature,
                    if breach { "above" } else { "within" },
                    number(spec.max),
                    number(rows)
                ),
            }
        }
        Metric::PredictionDrift(spec) => {
            let key = keys::PREDICTION_DRIFT;
            let Some(balance) = profile.and_then(|p| p.class_balance.as_ref()) else {
                let why = if profile.is_some() {
                    "the Dataset profile has no classes (predictionDrift needs a classification model)"
                } else {
                    "the Dataset profile (the drift reference) is unavailable"
                };
                return unjudged(
                    key,
                    spec.max,
                    reasons::PROFILE_UNAVAILABLE,
                    format!("predictionDrift: {why}"),
                );
            };
            let rows = totals.predicted_rows();
            if rows == 0.0 && requests == 0.0 {
                return no_traffic(key, spec.max);
            }
            let value = match prediction_drift(spec.method, balance, &totals.predictions) {
                Some(value) if rows >= f64::from(spec.min_samples) => value,
                _ => {
                    return unjudged(
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
            let breach = value > spec.max;
            MetricResult {
                key,
                value: Some(value),
                threshold: spec.max,
                judgement: judged(breach),
                worst_feature: None,
                message: format!(
                    "predictionDrift {} {} {} maximum {} over {} rows",
                    method_name(spec.method),
                    number(value),
                    if breach { "above" } else { "within" },
                    number(spec.max),
                    number(rows)
                ),
            }
        }
        Metric::Latency(spec) => {
            let key = keys::LATENCY;
            let Ok(max) = parse_duration(&spec.p99_max) else {
                return unjudged(
                    key,
                    0.0,
                    reasons::INVALID_SPEC,
                    format!("latency.p99Max {:?} is not a duration", spec.p99_max),
                );
            };
            let max = max.as_secs_f64();
            if requests == 0.0 {
                return no_traffic(key, max);
            }
            let Some(p99) = quantile(LATENCY_QUANTILE, &totals.latency) else {
                return unjudged(
                    key,
                    max,
                    reasons::TOO_FEW_SAMPLES,
                    "latency: the serving pods report no request durations".into(),
                );
            };
            let breach = p99 > max;
            MetricResult {
                key,
                value: Some(p99),
                threshold: max,
                judgement: judged(breach),
                worst_feature: None,
                message: format!(
                    "latency p99 {}s {} maximum {}s over {} requests",
                    number(p99),
                    if breach { "above" } else { "within" },
                    number(max),
                    number(requests)
                ),
            }
        }
        Metric::ErrorRate(spec) => {
            let key = keys::ERROR_RATE;
            if requests == 0.0 {
                return no_traffic(key, spec.max);
            }
            let errors = totals.server_errors();
            let rate = errors / requests;
            let breach = rate > spec.max;
            MetricResult {
                key,
                value: Some(rate),
                threshold: spec.max,
                judgement: judged(breach),
                worst_feature: None,
                message: format!(
                    "errorRate {} {} maximum {} ({} of {} requests 5xx)",
                    number(rate),
                    if breach { "above" } else { "within" },
                    number(spec.max),
                    number(errors),
                    number(requests)
                ),
            }
        }
    }
}

fn method_name(method: DriftMethod) -> &'static str {
    match method {
        DriftMethod::Psi => "psi",
        DriftMethod::Ks => "ks",
    }
}

/// The `q` quantile of a cumulative histogram, as Prometheus' `histogram_quantile` estimates
/// it: find the bucket holding rank `q · total` and interpolate linearly inside it (the first
/// bucket starts at 0). A rank in the `+Inf` bucket gives the largest finite bound, the most
/// the histogram can tell. `None` when it counted nothing.
pub fn quantile(q: f64, buckets: &BTreeMap<UpperBound, f64>) -> Option<f64> {
    let total = buckets.values().copied().fold(0.0, f64::max);
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let (mut lower, mut below) = (0.0, 0.0);
    for (&UpperBound(upper), &count) in buckets {
        // Counts of separately reset series can leave a bucket below the one before it.
        let count = count.max(below);
        if count >= rank {
            if upper.is_infinite() {
                return Some(lower);
            }
            if count == below {
                return Some(upper);
            }
            return Some(lower + (upper - lower) * (rank - below) / (count - below));
        }
        lower = upper;
        below = count;
    }
    Some(lower)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::scrape::{BinCounts, tests::at};
    use modelops_api::monitor::{
        AccuracyMetric, DriftMetric, ErrorRateMetric, EvaluationSummary, LatencyMetric, MetricSpec,
    };
    use modelops_api::profile::example_profile as profile;

    pub(crate) fn now(second: i64) -> Time {
        Time(at(second))
    }

    fn monitor_spec(metrics: Vec<MetricSpec>, failure_threshold: i32) -> MonitorSpec {
        MonitorSpec {
            target_ref: modelops_api::common::LocalRef::new("m"),
            interval: "30s".into(),
            window: Default::default(),
            metrics,
            failure_threshold,
            action: Default::default(),
        }
    }

    fn accuracy(min: f64, min_samples: i32) -> MetricSpec {
        MetricSpec {
            accuracy: Some(AccuracyMetric { min, min_samples }),
            ..Default::default()
        }
    }

    fn input_drift(method: DriftMethod, max: f64, min_samples: i32) -> MetricSpec {
        MetricSpec {
            input_drift: Some(DriftMetric {
                method,
                max,
                min_samples,
            }),
            ..Default::default()
        }
    }

    fn prediction_drift(max: f64, min_samples: i32) -> MetricSpec {
        MetricSpec {
            prediction_drift: Some(DriftMetric {
                method: DriftMethod::Psi,
                max,
                min_samples,
            }),
            ..Default::default()
        }
    }

    fn latency(p99_max: &str) -> MetricSpec {
        MetricSpec {
            latency: Some(LatencyMetric {
                p99_max: p99_max.into(),
            }),
            ..Default::default()
        }
    }

    fn error_rate(max: f64) -> MetricSpec {
        MetricSpec {
            error_rate: Some(ErrorRateMetric { max }),
            ..Default::default()
        }
    }

    /// A window where a revision served `ok` requests answered 200 in 10ms and `errors` answered
    /// 503 in 1s, got `correct`/`incorrect` labels, predicted cat and dog as training did (half
    /// each) and saw inputs like the training split.
    pub(crate) fn traffic(ok: f64, errors: f64, correct: f64, incorrect: f64) -> RevisionWindow {
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
        }
    }

    fn window(revisions: impl IntoIterator<Item = (i32, RevisionWindow)>) -> WindowDeltas {
        WindowDeltas {
            end: Some(at(300)),
            per_revision: revisions.into_iter().collect(),
        }
    }

    fn all_metrics() -> Vec<MetricSpec> {
        vec![
            accuracy(0.9, 100),
            input_drift(DriftMethod::Psi, 0.2, 100),
            prediction_drift(0.2, 100),
            latency("200ms"),
            error_rate(0.01),
        ]
    }

    /// The status after an evaluation, as the controller would write it (enough for counts).
    fn status_after(outcome: &Outcome) -> MonitorStatus {
        MonitorStatus {
            last_evaluation: Some(outcome.last_evaluation()),
            consecutive_failures: outcome.focused.consecutive_failures,
            revisions: outcome.revision_verdicts(),
            ..Default::default()
        }
    }

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
    fn input_drift_names_the_worst_feature() {
        let spec = monitor_spec(vec![input_drift(DriftMethod::Ks, 0.3, 100)], 1);
        let mut drifted = traffic(100.0, 0.0, 0.0, 0.0);
        // y reversed: KS 0.4 (see drift.rs).
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
        let message = evaluation.message.unwrap();
        assert!(
            message.contains("inputDrift ks 0.4 on feature \"y\" above maximum 0.3 over 100 rows"),
            "{message}"
        );
    }

    #[test]
    fn prediction_drift_and_latency_breach() {
        let spec = monitor_spec(vec![prediction_drift(0.2, 100), latency("200ms")], 1);
        let mut slow = traffic(1000.0, 0.0, 0.0, 0.0);
        slow.totals.predictions.insert("cat".into(), 250.0);
        slow.totals.predictions.insert("dog".into(), 750.0);
        // 980 fast, 20 between 0.25s and 0.5s: rank 990 is half-way into (0.25, 0.5].
        slow.totals.latency = BTreeMap::from([
            (UpperBound(0.01), 980.0),
            (UpperBound(0.25), 980.0),
            (UpperBound(0.5), 1000.0),
            (UpperBound(f64::INFINITY), 1000.0),
        ]);
        let outcome = evaluate(
            &spec,
            &window([(1, slow)]),
            Some(&profile()),
            None,
            None,
            &now(0),
        );
        let values = outcome.focused.values();
        assert!((values["predictionDrift"] - 0.274_653_072_167_027_4).abs() < 1e-12);
        assert!((values["latency"] - 0.375).abs() < 1e-12);
        assert_eq!(
            outcome.focused.reason,
            reasons::PREDICTION_DRIFT_ABOVE_MAXIMUM
        );
        assert_eq!(
            outcome
                .focused
                .metrics
                .iter()
                .map(|m| m.judgement)
                .collect::<Vec<_>>(),
            [Judgement::Breach, Judgement::Breach]
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
            outcome.focused.message.contains("no classes"),
            "{}",
            outcome.focused.message
        );
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

    #[test]
    fn quantiles_interpolate_within_buckets() {
        let buckets = BTreeMap::from([
            (UpperBound(0.1), 50.0),
            (UpperBound(0.2), 100.0),
            (UpperBound(f64::INFINITY), 100.0),
        ]);
        // Rank 50 closes the first bucket; rank 75 is half-way into (0.1, 0.2].
        assert!((quantile(0.5, &buckets).unwrap() - 0.1).abs() < 1e-12);
        assert!((quantile(0.75, &buckets).unwrap() - 0.15).abs() < 1e-12);
        let slow = BTreeMap::from([(UpperBound(0.1), 0.0), (UpperBound(f64::INFINITY), 10.0)]);
        assert_eq!(quantile(0.99, &slow), Some(0.1), "beyond the last bound");
        assert_eq!(quantile(0.99, &BTreeMap::new()), None);
    }

    #[test]
    fn numbers_in_messages_are_short() {
        assert_eq!(number(0.95), "0.95");
        assert_eq!(number(100.0), "100");
        assert_eq!(number(0.274_653), "0.2747");
        assert_eq!(number(0.0), "0");
    }
}
