//! The operator's own metrics on `/metrics`, kept in one `prometheus` registry: reconciles,
//! their durations (a histogram) and failures per kind, whether this replica leads, what the
//! rollouts did and what the Monitors concluded. One [`Metrics`] lives in the shared context;
//! each reconcile holds a timer guard that records its duration when dropped. Series carry a
//! namespace (for alerts routed per team) but no object's name, so nothing here outlives the
//! objects it counted; the chart's PrometheusRule alerts on them.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};
use std::sync::Arc;
use std::time::Instant;

struct Inner {
    registry: Registry,
    reconciles: IntCounterVec,
    durations: HistogramVec,
    failures: IntCounterVec,
    leading: IntGauge,
    rollout_events: IntCounterVec,
    evaluations: IntCounterVec,
    training_ends: IntCounterVec,
}

/// The operator's metrics, cheap to clone.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

/// Records a reconcile's duration when dropped.
pub struct ReconcileTimer {
    metrics: Metrics,
    kind: String,
    started: Instant,
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        let labels = [self.kind.as_str()];
        self.metrics.0.reconciles.with_label_values(&labels).inc();
        self.metrics
            .0
            .durations
            .with_label_values(&labels)
            .observe(self.started.elapsed().as_secs_f64());
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let metric = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(metric.clone()))
                .expect("registered once");
            metric
        };
        let reconciles = counter(
            "modelops_reconciles_total",
            "Reconciles run, by kind.",
            &["kind"],
        );
        let failures = counter(
            "modelops_reconcile_failures_total",
            "Failed reconciles, by kind and error category.",
            &["kind", "category"],
        );
        let rollout_events = counter(
            "modelops_rollout_events_total",
            "What ModelDeployment rollouts did, by namespace and Event reason (NewRevision, CanaryStep, Promoted, RolledBack, ...).",
            &["namespace", "reason"],
        );
        let evaluations = counter(
            "modelops_monitor_evaluations_total",
            "Monitor evaluations, by namespace, verdict (Pass, Fail, Inconclusive) and reason (WithinThresholds, InputDriftAboveMaximum, NoTraffic, ...).",
            &["namespace", "verdict", "reason"],
        );
        let training_ends = counter(
            "modelops_trainingjobs_finished_total",
            "TrainingJobs that finished, by namespace and phase (Succeeded, Failed).",
            &["namespace", "phase"],
        );
        let durations = HistogramVec::new(
            HistogramOpts::new(
                "modelops_reconcile_duration_seconds",
                "Time one reconcile took, by kind.",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["kind"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(durations.clone()))
            .expect("registered once");
        let leading = IntGauge::new(
            "modelops_leading",
            "1 while this replica holds the leader Lease and reconciles, else 0.",
        )
        .expect("valid metric");
        registry
            .register(Box::new(leading.clone()))
            .expect("registered once");
        // Every kind's series from the start (at zero), so that a rate over them is defined
        // before the first reconcile.
        for kind in ["Dataset", "TrainingJob", "ModelDeployment", "Monitor"] {
            reconciles.with_label_values(&[kind]);
            durations.with_label_values(&[kind]);
        }
        Self(Arc::new(Inner {
            registry,
            reconciles,
            durations,
            failures,
            leading,
            rollout_events,
            evaluations,
            training_ends,
        }))
    }
}

impl Metrics {
    /// Starts timing a reconcile of `kind`.
    pub fn reconcile_timer(&self, kind: &str) -> ReconcileTimer {
        ReconcileTimer {
            metrics: self.clone(),
            kind: kind.to_owned(),
            started: Instant::now(),
        }
    }

    /// Counts a failed reconcile.
    pub fn reconcile_failed(&self, kind: &str, category: &str) {
        self.0.failures.with_label_values(&[kind, category]).inc();
    }

    /// Says whether this replica leads.
    pub fn set_leading(&self, leading: bool) {
        self.0.leading.set(i64::from(leading));
    }

    /// Counts what a rollout in `namespace` did (the reason of the Event it published).
    pub fn rollout_event(&self, namespace: &str, reason: &str) {
        self.0
            .rollout_events
            .with_label_values(&[namespace, reason])
            .inc();
    }

    /// Counts a Monitor evaluation in `namespace`, its verdict and reason.
    pub fn evaluation(&self, namespace: &str, verdict: &str, reason: &str) {
        self.0
            .evaluations
            .with_label_values(&[namespace, verdict, reason])
            .inc();
    }

    /// Counts a TrainingJob in `namespace` that finished in `phase`.
    pub fn training_finished(&self, namespace: &str, phase: &str) {
        self.0
            .training_ends
            .with_label_values(&[namespace, phase])
            .inc();
    }

    /// The metrics in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.0.registry.gather(), &mut out)
            .expect("the text encoding of gathered metrics does not fail");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use modelops_api::serving::parse_metrics;

    #[test]
    fn counts_reconciles_failures_and_their_durations() {
        let metrics = Metrics::default();
        drop(metrics.reconcile_timer("Dataset"));
        drop(metrics.reconcile_timer("Dataset"));
        metrics.reconcile_failed("TrainingJob", "api");
        metrics.set_leading(true);
        metrics.rollout_event("team-a", "RolledBack");
        metrics.evaluation("team-a", "Fail", "InputDriftAboveMaximum");
        metrics.training_finished("team-b", "Failed");
        let text = metrics.render();
        let samples = parse_metrics(&text);
        let value = |name: &str, labels: &[(&str, &str)]| {
            samples
                .iter()
                .find(|s| s.name == name && labels.iter().all(|(k, v)| s.label(k) == Some(*v)))
                .map(|s| s.value)
        };
        assert_eq!(
            value("modelops_reconciles_total", &[("kind", "Dataset")]),
            Some(2.0)
        );
        assert_eq!(
            value(
                "modelops_reconcile_duration_seconds_count",
                &[("kind", "Dataset")]
            ),
            Some(2.0)
        );
        assert_eq!(
            value(
                "modelops_reconcile_duration_seconds_bucket",
                &[("kind", "Dataset"), ("le", "+Inf")]
            ),
            Some(2.0)
        );
        assert_eq!(
            value(
                "modelops_reconcile_failures_total",
                &[("kind", "TrainingJob"), ("category", "api")]
            ),
            Some(1.0)
        );
        assert_eq!(value("modelops_leading", &[]), Some(1.0));
        assert_eq!(
            value(
                "modelops_rollout_events_total",
                &[("namespace", "team-a"), ("reason", "RolledBack")]
            ),
            Some(1.0)
        );
        assert_eq!(
            value(
                "modelops_monitor_evaluations_total",
                &[
                    ("namespace", "team-a"),
                    ("verdict", "Fail"),
                    ("reason", "InputDriftAboveMaximum")
                ]
            ),
            Some(1.0)
        );
        assert_eq!(
            value(
                "modelops_trainingjobs_finished_total",
                &[("namespace", "team-b"), ("phase", "Failed")]
            ),
            Some(1.0)
        );
        assert!(text.contains("# TYPE modelops_reconcile_duration_seconds histogram"));
    }
}
