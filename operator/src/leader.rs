//! Leader election: of the operator's replicas, only the holder of the Lease `modelops-operator`
//! (in the operator's namespace) runs the controllers; the others serve their probes and
//! `/metrics` and wait. The Lease is taken and renewed by `kube-lease-manager` (server-side
//! apply, so two candidates cannot both take it in one step).
//!
//! A leader that loses the Lease (it could not renew it in time, e.g. cut off from the API
//! server) stops at once and exits with an error, as client-go's leader election does: the
//! kubelet restarts it as a candidate, and nothing of its in-memory state (Monitor windows, claim
//! caches) outlives its leadership. A leader stopped by SIGTERM releases the Lease on its way out.
//! There is no fencing: a leader that stalls for longer than the Lease can overlap with the next
//! one for up to one renewal period (docs/security.md).

use kube::Client;
use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The Lease's name.
pub const LEASE_NAME: &str = "modelops-operator";
/// How long a Lease holds without renewal: a crashed leader is replaced within about this long.
pub const LEASE_SECONDS: u64 = 10;
/// The leader renews this long before its Lease would expire.
pub const RENEW_BEFORE_SECONDS: u64 = 3;

/// A held Lease.
pub struct Leadership {
    leading: watch::Receiver<bool>,
    manager: JoinHandle<Result<kube_lease_manager::LeaseManager, LeaseManagerError>>,
}

/// Waits until this replica holds the Lease in `namespace` as `identity`; `None` when a
/// shutdown signal came first.
pub async fn acquire(
    client: Client,
    namespace: &str,
    identity: &str,
) -> anyhow::Result<Option<Leadership>> {
    let manager = LeaseManagerBuilder::new(client, LEASE_NAME)
        .with_namespace(namespace)
        .with_identity(identity)
        .with_duration(LEASE_SECONDS)
        .with_grace(RENEW_BEFORE_SECONDS)
        .with_field_manager("modelops-operator")
        .build()
        .await?;
    let (mut leading, manager) = manager.watch().await;
    tracing::info!(lease = LEASE_NAME, %namespace, %identity, "waiting for the lease");
    let acquired = tokio::select! {
        changed = leading.wait_for(|leading| *leading) => changed.is_ok(),
        () = shutdown_signal() => false,
    };
    let leadership = Leadership { leading, manager };
    if !acquired {
        leadership.release().await;
        return Ok(None);
    }
    tracing::info!(lease = LEASE_NAME, %identity, "leading");
    Ok(Some(leadership))
}

impl Leadership {
    /// Resolves when the Lease is lost.
    pub async fn lost(&mut self) {
        // An error means the manager stopped: the Lease is not renewed any more either.
        let _ = self.leading.wait_for(|leading| !*leading).await;
    }

    /// Gives the Lease up, so that another replica takes it without waiting for it to expire.
    pub async fn release(self) {
        drop(self.leading);
        match self.manager.await {
            Ok(Ok(_)) => tracing::info!(lease = LEASE_NAME, "lease released"),
            Ok(Err(e)) => tracing::warn!(lease = LEASE_NAME, "releasing the lease: {e}"),
            Err(e) => tracing::warn!(lease = LEASE_NAME, "lease manager: {e}"),
        }
    }
}

/// SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
