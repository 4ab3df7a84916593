//! The operator's own metrics (Prometheus text on `/metrics`): reconciles and failures per kind,
//! and reconcile durations. One [`Metrics`] lives in the shared context; each reconcile holds a
//! timer guard that records its duration when dropped.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(Default)]
struct Counters {
    reconciles: BTreeMap<String, u64>,
    failures: BTreeMap<(String, String), u64>,
    duration_seconds_sum: BTreeMap<String, f64>,
}

/// Reconcile metrics, cheap to clone.
#[derive(Clone, Default)]
pub struct Metrics(Arc<Mutex<Counters>>);

/// Records a reconcile's duration when dropped.
pub struct ReconcileTimer {
    metrics: Metrics,
    kind: String,
    started: Instant,
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        let mut counters = self.metrics.0.lock().expect("not poisoned");
        *counters.reconciles.entry(self.kind.clone()).or_default() += 1;
        *counters
            .duration_seconds_sum
            .entry(self.kind.clone())
            .or_default() += self.started.elapsed().as_secs_f64();
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
        let mut counters = self.0.lock().expect("not poisoned");
        *counters
            .failures
            .entry((kind.to_owned(), category.to_owned()))
            .or_default() += 1;
    }

    /// The metrics in the Prometheus text format.
    pub fn render(&self) -> String {
        let counters = self.0.lock().expect("not poisoned");
        let mut out = String::new();
        out.push_str("# HELP modelops_reconciles_total Reconciles run, by kind.\n# TYPE modelops_reconciles_total counter\n");
        for (kind, n) in &counters.reconciles {
            let _ = writeln!(out, "modelops_reconciles_total{{kind=\"{kind}\"}} {n}");
        }
        out.push_str("# HELP modelops_reconcile_duration_seconds_sum Time spent reconciling, by kind.\n# TYPE modelops_reconcile_duration_seconds_sum counter\n");
        for (kind, s) in &counters.duration_seconds_sum {
            let _ = writeln!(
                out,
                "modelops_reconcile_duration_seconds_sum{{kind=\"{kind}\"}} {s}"
            );
        }
        out.push_str("# HELP modelops_reconcile_failures_total Failed reconciles, by kind and error category.\n# TYPE modelops_reconcile_failures_total counter\n");
        for ((kind, category), n) in &counters.failures {
            let _ = writeln!(
                out,
                "modelops_reconcile_failures_total{{kind=\"{kind}\",category=\"{category}\"}} {n}"
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_reconciles_and_failures() {
        let metrics = Metrics::default();
        drop(metrics.reconcile_timer("Dataset"));
        drop(metrics.reconcile_timer("Dataset"));
        metrics.reconcile_failed("TrainingJob", "api");
        let text = metrics.render();
        assert!(
            text.contains("modelops_reconciles_total{kind=\"Dataset\"} 2"),
            "{text}"
        );
        assert!(
            text.contains(
                "modelops_reconcile_failures_total{kind=\"TrainingJob\",category=\"api\"} 1"
            ),
            "{text}"
        );
    }
}
