//! The controllers, one per kind, and what they share: the context, the error type, writing to
//! the API server, events, worker pods, the artifact claim and the runner that wires each
//! controller to its watches.
//!
//! Every controller follows one flow: dereference (read referenced objects) → validate → build
//! (pure: the object in, child objects out) → apply → update status.

pub mod apply;
pub mod artifacts;
pub mod dataset;
pub mod error;
pub mod events;
pub mod jobs;
pub mod modeldeployment;
pub mod monitor;
pub mod runner;
pub mod trainingjob;
pub mod workerpod;

use crate::config::OperatorConfig;
use crate::metrics::Metrics;
use events::Recorder;
use kube::Client;
use std::sync::Arc;

/// What every reconcile gets.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// The operator's configuration.
    pub config: OperatorConfig,
    /// Publishes Kubernetes Events.
    pub recorder: Recorder,
    /// Reconcile counters and timings.
    pub metrics: Metrics,
    /// The namespaces whose artifact claim exists.
    pub artifacts: artifacts::Claims,
    /// Each Monitor's window, by uid (rebuilt from the pods' counters after a restart; dropped
    /// once its Monitor is no longer reconciled).
    pub monitor_states: std::sync::Mutex<modelops_core::monitor::MonitorStates>,
    /// Dataset profiles read so far.
    pub profiles: crate::profile::ProfileCache,
}

impl Context {
    /// A context with a fresh recorder and metrics.
    pub fn new(client: Client, config: OperatorConfig, metrics: Metrics) -> Arc<Self> {
        let recorder = events::recorder(client.clone());
        Arc::new(Self {
            client,
            config,
            recorder,
            metrics,
            artifacts: artifacts::Claims::default(),
            monitor_states: Default::default(),
            profiles: Default::default(),
        })
    }
}

impl Context {
    /// The feedback key of one ModelDeployment's serving pods (hex): HMAC-SHA256 of its
    /// namespace, name and uid under the operator's master key. Every replica of every revision
    /// gets the same key, so any of them verifies a feedback id another issued; a ModelDeployment
    /// deleted and created again gets a new one. Derived rather than stored, so a restart
    /// changes nothing; it reaches the pods through the Secret `<name>-feedback` the operator
    /// writes (it may create and patch Secrets, never read them), not as a plain value.
    pub fn feedback_key(&self, namespace: &str, name: &str, uid: &str) -> String {
        use hmac::{Hmac, Mac};
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&self.config.feedback_master_key)
            .expect("HMAC takes keys of any length");
        mac.update(format!("{namespace}/{name}/{uid}").as_bytes());
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// Runs every controller until a shutdown signal.
pub async fn run(ctx: Arc<Context>) {
    tokio::join!(
        dataset::run(ctx.clone()),
        trainingjob::run(ctx.clone()),
        modeldeployment::run(ctx.clone()),
        monitor::run(ctx.clone())
    );
}
