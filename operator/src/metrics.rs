//! The operator's own metrics on `/metrics`, kept in one `prometheus` registry: reconciles,
//! their durations (a histogram) and failures per kind, whether this replica leads, what the
//! rollouts did and what the Monitors concluded. One [`Metrics`] lives in the shared context;
//! each reconcile holds a timer guard that records its duration when dropped. Counters carry a
//! namespace (for alerts routed per team) but no object's name; the chart's PrometheusRule alerts
//! on them. Gauges of single objects (a TrainingJob's progress, a ModelDeployment's canary weight,
//! a Monitor's last values and verdict)
//! are read from the controllers' caches when scraped ([`ObjectGauges`]), as kube-state-metrics
//! does, so a deleted object's series go with it and nothing is kept per object.

use kube::runtime::reflector::Store;
use modelops_api::trainingjob::TrainingPhase;
use modelops_api::{Dataset, ModelDeployment, Monitor, TrainingJob};
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use std::sync::{Arc, Mutex};
use std::time::Instant;

struct Inner {
    registry: Registry,
    reconciles: IntCounterVec,
    durations: HistogramVec,
    failures: IntCounterVec,
    leading: IntGauge,
    heap: IntGaugeVec,
    rollout_events: IntCounterVec,
    evaluations: IntCounterVec,
    training_ends: IntCounterVec,
    caches: Arc<Mutex<Caches>>,
}

/// The controllers' caches the object gauges (and the dashboard) are read from (one store per
/// watched scope).
#[derive(Default)]
struct Caches {
    datasets: Vec<Store<Dataset>>,
    trainingjobs: Vec<Store<TrainingJob>>,
    deployments: Vec<Store<ModelDeployment>>,
    monitors: Vec<Store<Monitor>>,
}

/// Copies of the objects of the controllers' caches.
pub struct CachedObjects {
    /// Datasets.
    pub datasets: Vec<Dataset>,
    /// TrainingJobs.
    pub jobs: Vec<TrainingJob>,
    /// ModelDeployments.
    pub deployments: Vec<ModelDeployment>,
    /// Monitors.
    pub monitors: Vec<Monitor>,
}

/// The gauges of single objects, computed from [`Caches`] at each scrape.
struct ObjectGauges {
    caches: Arc<Mutex<Caches>>,
    descs: Vec<Desc>,
}

/// Fresh, empty vectors of the object gauges: the progress of running TrainingJobs (epoch,
/// losses, accuracy and throughput of the last epoch) and the canary weight of ModelDeployments.
fn object_gauges() -> [GaugeVec; 6] {
    let gauge = |name: &str, help: &str, object: &str| {
        GaugeVec::new(Opts::new(name, help), &["namespace", object]).expect("valid metric")
    };
    [
        gauge(
            "modelops_trainingjob_epoch",
            "Epochs a running TrainingJob has finished (of its current trial when searching).",
            "trainingjob",
        ),
        gauge(
            "modelops_trainingjob_train_loss",
            "Mean training loss of a running TrainingJob's last epoch.",
            "trainingjob",
        ),
        gauge(
            "modelops_trainingjob_validation_loss",
            "Validation loss of a running TrainingJob after its last epoch.",
            "trainingjob",
        ),
        gauge(
            "modelops_trainingjob_validation_accuracy",
            "Validation accuracy of a running TrainingJob after its last epoch (classification).",
            "trainingjob",
        ),
        gauge(
            "modelops_trainingjob_samples_per_second",
            "Training throughput of a running TrainingJob's last epoch, in samples per second.",
            "trainingjob",
        ),
        gauge(
            "modelops_modeldeployment_canary_weight",
            "Percent of a ModelDeployment's traffic its canary receives (0 with no canary).",
            "modeldeployment",
        ),
    ]
}

/// Fresh, empty vectors of a Monitor's gauges, from its last evaluation: each metric's value and
/// threshold, and its verdict (a series at 1 for the verdict it gave).
fn monitor_gauges() -> [GaugeVec; 3] {
    let gauge = |name: &str, help: &str, last: &str| {
        GaugeVec::new(Opts::new(name, help), &["namespace", "monitor", last]).expect("valid metric")
    };
    [
        gauge(
            "modelops_monitor_metric_value",
            "A Monitor metric's value at its last evaluation (latency in seconds), by metric kind.",
            "metric",
        ),
        gauge(
            "modelops_monitor_metric_threshold",
            "A Monitor metric's threshold, as its spec sets it, by metric kind.",
            "metric",
        ),
        gauge(
            "modelops_monitor_verdict",
            "1 for the verdict of a Monitor's last evaluation (Pass, Fail, Inconclusive).",
            "verdict",
        ),
    ]
}

/// The `namespace` and object-name labels of an object's gauges.
fn object_labels(meta: &kube::api::ObjectMeta) -> [&str; 2] {
    [
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default(),
    ]
}

impl Collector for ObjectGauges {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let objects = object_gauges();
        let [
            epoch,
            train_loss,
            validation_loss,
            accuracy,
            throughput,
            canary_weight,
        ] = &objects;
        let caches = self
            .caches
            .lock()
            .expect("the caches' lock is never poisoned");
        for job in caches.trainingjobs.iter().flat_map(Store::state) {
            let Some(status) = &job.status else { continue };
            let (Some(TrainingPhase::Running), Some(progress)) = (status.phase, &status.progress)
            else {
                continue;
            };
            let labels = object_labels(&job.metadata);
            epoch
                .with_label_values(&labels)
                .set(f64::from(progress.epoch));
            for (gauge, value) in [
                (train_loss, progress.train_loss),
                (validation_loss, progress.validation_loss),
                (accuracy, progress.validation_accuracy),
                (throughput, progress.samples_per_second),
            ] {
                if let Some(value) = value {
                    gauge.with_label_values(&labels).set(value);
                }
            }
        }
        let monitors = monitor_gauges();
        let [value, threshold, verdict] = &monitors;
        for monitor in caches.monitors.iter().flat_map(Store::state) {
            let Some(last) = monitor
                .status
                .as_ref()
                .and_then(|s| s.last_evaluation.as_ref())
            else {
                continue;
            };
            let [namespace, name] = object_labels(&monitor.metadata);
            for (gauge, values) in [(value, &last.values), (threshold, &last.thresholds)] {
                for (metric, v) in values {
                    gauge.with_label_values(&[namespace, name, metric]).set(*v);
                }
            }
            verdict
                .with_label_values(&[namespace, name, last.verdict.as_str()])
                .set(1.0);
        }
        for deployment in caches.deployments.iter().flat_map(Store::state) {
            let Some(weight) = deployment.status.as_ref().and_then(|s| s.canary_weight) else {
                continue;
            };
            let labels = object_labels(&deployment.metadata);
            canary_weight
                .with_label_values(&labels)
                .set(f64::from(weight));
        }
        drop(caches);
        objects
            .iter()
            .chain(&monitors)
            .flat_map(Collector::collect)
            .collect()
    }
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
        let heap = IntGaugeVec::new(
            Opts::new(
                "modelops_heap_bytes",
                "The operator's heap: in_use (allocated), free (freed, kept by the allocator), every 10 s.",
            ),
            &["state"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(heap.clone()))
            .expect("registered once");
        let caches = Arc::new(Mutex::new(Caches::default()));
        let descs = object_gauges()
            .iter()
            .chain(monitor_gauges().iter())
            .flat_map(|gauge| gauge.desc().into_iter().cloned())
            .collect();
        registry
            .register(Box::new(ObjectGauges {
                caches: caches.clone(),
                descs,
            }))
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
            heap,
            rollout_events,
            evaluations,
            training_ends,
            caches,
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

    /// Records the heap's figures.
    pub fn set_heap(&self, heap: crate::memory::Heap) {
        for (state, bytes) in [("in_use", heap.in_use), ("free", heap.free)] {
            let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
            self.0.heap.with_label_values(&[state]).set(bytes);
        }
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

    /// Keeps the Datasets of a controller's cache for the dashboard.
    pub fn observe_datasets(&self, store: Store<Dataset>) {
        self.caches().datasets.push(store);
    }

    /// The objects of the controllers' caches (of `namespace`, or all), when this replica runs
    /// the controllers of all four kinds (the leader); `None` otherwise.
    pub fn cached(&self, namespace: Option<&str>) -> Option<CachedObjects> {
        fn of<K: kube::Resource<DynamicType = ()> + Clone>(
            stores: &[Store<K>],
            namespace: Option<&str>,
        ) -> Vec<K> {
            stores
                .iter()
                .flat_map(|s| s.state())
                .filter(|o| namespace.is_none_or(|ns| o.meta().namespace.as_deref() == Some(ns)))
                .map(|o| (*o).clone())
                .collect()
        }
        let caches = self.caches();
        let ready = [
            caches.datasets.len(),
            caches.trainingjobs.len(),
            caches.deployments.len(),
            caches.monitors.len(),
        ];
        // Every kind's cache registered and filled by its first list (else a page would miss
        // objects that exist).
        fn filled<K: kube::Resource<DynamicType = ()> + Clone>(stores: &[Store<K>]) -> bool {
            use futures::FutureExt;
            stores
                .iter()
                .all(|s| matches!(s.wait_until_ready().now_or_never(), Some(Ok(()))))
        }
        if ready.contains(&0)
            || !filled(&caches.datasets)
            || !filled(&caches.trainingjobs)
            || !filled(&caches.deployments)
            || !filled(&caches.monitors)
        {
            return None;
        }
        Some(CachedObjects {
            datasets: of(&caches.datasets, namespace),
            jobs: of(&caches.trainingjobs, namespace),
            deployments: of(&caches.deployments, namespace),
            monitors: of(&caches.monitors, namespace),
        })
    }

    /// Publishes the progress of the running TrainingJobs of a controller's cache.
    pub fn observe_trainingjobs(&self, store: Store<TrainingJob>) {
        self.caches().trainingjobs.push(store);
    }

    /// Publishes the canary weights of the ModelDeployments of a controller's cache.
    pub fn observe_deployments(&self, store: Store<ModelDeployment>) {
        self.caches().deployments.push(store);
    }

    /// Publishes the last evaluation of the Monitors of a controller's cache.
    pub fn observe_monitors(&self, store: Store<Monitor>) {
        self.caches().monitors.push(store);
    }

    fn caches(&self) -> std::sync::MutexGuard<'_, Caches> {
        self.0
            .caches
            .lock()
            .expect("the caches' lock is never poisoned")
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

    #[test]
    fn object_gauges_follow_the_cached_objects_and_go_with_them() {
        use kube::runtime::watcher::Event;
        let metrics = Metrics::default();
        let (jobs, mut jobs_writer) = kube::runtime::reflector::store::<TrainingJob>();
        let (deployments, mut deployments_writer) =
            kube::runtime::reflector::store::<ModelDeployment>();
        metrics.observe_trainingjobs(jobs);
        metrics.observe_deployments(deployments);
        let job = |name: &str, phase: &str| -> TrainingJob {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "modelops.dev/v1alpha1", "kind": "TrainingJob",
                "metadata": {"name": name, "namespace": "team-a"},
                "spec": {"datasetRef": {"name": "d"}, "task": "classification",
                         "model": {"architecture": "mlp"}},
                "status": {"phase": phase, "progress": {"epoch": 7, "totalEpochs": 20,
                           "trainLoss": 0.25, "validationAccuracy": 0.9,
                           "samplesPerSecond": 1500.0}},
            }))
            .unwrap()
        };
        let running = job("running", "Running");
        jobs_writer.apply_watcher_event(&Event::Apply(running.clone()));
        jobs_writer.apply_watcher_event(&Event::Apply(job("done", "Succeeded")));
        let deployment: ModelDeployment = serde_json::from_value(serde_json::json!({
            "apiVersion": "modelops.dev/v1alpha1", "kind": "ModelDeployment",
            "metadata": {"name": "digits", "namespace": "team-b"},
            "spec": {"model": {"trainingJobRef": {"name": "t"}}},
            "status": {"canaryWeight": 25},
        }))
        .unwrap();
        deployments_writer.apply_watcher_event(&Event::Apply(deployment));
        let (monitors, mut monitors_writer) = kube::runtime::reflector::store::<Monitor>();
        metrics.observe_monitors(monitors);
        let monitor: Monitor = serde_json::from_value(serde_json::json!({
            "apiVersion": "modelops.dev/v1alpha1", "kind": "Monitor",
            "metadata": {"name": "guard", "namespace": "team-b"},
            "spec": {"targetRef": {"name": "digits"}, "metrics": [
                {"accuracy": {"min": 0.8}}]},
            "status": {"lastEvaluation": {"time": "2026-12-03T10:00:00Z", "verdict": "Fail",
                "reason": "AccuracyBelowMinimum", "values": {"accuracy": 0.71},
                "thresholds": {"accuracy": 0.8}}},
        }))
        .unwrap();
        monitors_writer.apply_watcher_event(&Event::Apply(monitor));
        let samples = parse_metrics(&metrics.render());
        let value = |name: &str, object: (&str, &str)| {
            samples
                .iter()
                .find(|s| s.name == name && s.label(object.0) == Some(object.1))
                .map(|s| s.value)
        };
        let running_job = ("trainingjob", "running");
        assert_eq!(value("modelops_trainingjob_epoch", running_job), Some(7.0));
        assert_eq!(
            value("modelops_trainingjob_train_loss", running_job),
            Some(0.25)
        );
        assert_eq!(
            value("modelops_trainingjob_validation_accuracy", running_job),
            Some(0.9)
        );
        assert_eq!(
            value("modelops_trainingjob_samples_per_second", running_job),
            Some(1500.0)
        );
        assert_eq!(
            value("modelops_trainingjob_validation_loss", running_job),
            None
        );
        assert_eq!(
            value("modelops_trainingjob_epoch", ("trainingjob", "done")),
            None
        );
        assert_eq!(
            value(
                "modelops_modeldeployment_canary_weight",
                ("modeldeployment", "digits")
            ),
            Some(25.0)
        );
        let of_guard = |name: &str, label: (&str, &str)| {
            samples
                .iter()
                .find(|s| {
                    s.name == name
                        && s.label("monitor") == Some("guard")
                        && s.label(label.0) == Some(label.1)
                })
                .map(|s| s.value)
        };
        assert_eq!(
            of_guard("modelops_monitor_metric_value", ("metric", "accuracy")),
            Some(0.71)
        );
        assert_eq!(
            of_guard("modelops_monitor_metric_threshold", ("metric", "accuracy")),
            Some(0.8)
        );
        assert_eq!(
            of_guard("modelops_monitor_verdict", ("verdict", "Fail")),
            Some(1.0)
        );
        // Deleted from the cache, its series are gone from the next scrape.
        jobs_writer.apply_watcher_event(&Event::Delete(running));
        let samples = parse_metrics(&metrics.render());
        assert!(
            !samples
                .iter()
                .any(|s| s.name == "modelops_trainingjob_epoch")
        );
    }
}
