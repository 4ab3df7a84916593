//! Leader election: of the operator's replicas, only the holder of the Lease `modelops-operator`
//! (in the operator's namespace) runs the controllers; the others serve their probes and
//! `/metrics` and wait. The Lease is taken and renewed by `kube-lease-manager` (server-side
//! apply, so two candidates cannot both take it in one step).
//!
//! A leader that loses the Lease stops at once and exits with an error, as client-go's leader
//! election does: the kubelet restarts it as a candidate, and nothing of its in-memory state
//! (Monitor windows, claim caches) outlives its leadership. It counts as lost when another holds
//! it, and also when the leader has not been able to see that it holds it for
//! [`RENEW_DEADLINE`] (client-go's renew deadline): an API server that stops answering leaves a
//! renewal hanging, and the leader must stop before its Lease can expire and another take it, not
//! after. A leader stopped by SIGTERM releases the Lease on its way out (docs/security.md).

use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client};
use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The Lease's name.
pub const LEASE_NAME: &str = "modelops-operator";
/// How long a Lease holds without renewal: a crashed leader is replaced within about this long.
pub const LEASE_SECONDS: u64 = 10;
/// The leader renews this long before its Lease would expire.
pub const RENEW_BEFORE_SECONDS: u64 = 3;

/// A leader that could not confirm its Lease for this long stops: with a confirmation at most
/// every [`CONFIRM_EVERY`] that itself times out after as long, it stops within 8 s of its last
/// renewal, before the 10 s Lease expires.
pub const RENEW_DEADLINE: Duration = Duration::from_secs(6);
/// How often the leader reads its Lease back, each read limited to as long.
pub const CONFIRM_EVERY: Duration = Duration::from_secs(1);

/// A held Lease.
pub struct Leadership {
    leading: watch::Receiver<bool>,
    manager: JoinHandle<Result<kube_lease_manager::LeaseManager, LeaseManagerError>>,
    leases: Api<Lease>,
    identity: String,
}

/// Waits until this replica holds the Lease in `namespace` as `identity`; `None` when a
/// shutdown signal came first.
pub async fn acquire(
    client: Client,
    namespace: &str,
    identity: &str,
) -> anyhow::Result<Option<Leadership>> {
    let manager = LeaseManagerBuilder::new(client.clone(), LEASE_NAME)
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
    let leadership = Leadership {
        leading,
        manager,
        leases: Api::namespaced(client, namespace),
        identity: identity.to_owned(),
    };
    if !acquired {
        leadership.release().await;
        return Ok(None);
    }
    tracing::info!(lease = LEASE_NAME, %identity, "leading");
    Ok(Some(leadership))
}

impl Leadership {
    /// Resolves when the Lease is lost, or can no longer be seen to be held.
    pub async fn lost(&mut self) {
        let unconfirmed = unconfirmed(&self.leases, &self.identity);
        tokio::select! {
            // An error means the manager stopped: the Lease is not renewed any more either.
            _ = self.leading.wait_for(|leading| !*leading) => {}
            () = unconfirmed => {}
        }
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

/// Resolves when `identity` has not been seen to hold the Lease for [`RENEW_DEADLINE`], or is
/// seen not to.
async fn unconfirmed(leases: &Api<Lease>, identity: &str) {
    let mut confirmed = Instant::now();
    loop {
        tokio::time::sleep(CONFIRM_EVERY).await;
        match tokio::time::timeout(CONFIRM_EVERY, leases.get(LEASE_NAME)).await {
            Ok(Ok(lease)) => {
                let holder = lease.spec.and_then(|s| s.holder_identity);
                if holder.as_deref() != Some(identity) {
                    tracing::error!(lease = LEASE_NAME, ?holder, "the lease is held by another");
                    return;
                }
                confirmed = Instant::now();
            }
            Ok(Err(e)) => tracing::warn!(lease = LEASE_NAME, "reading the lease: {e}"),
            Err(_) => tracing::warn!(lease = LEASE_NAME, "reading the lease: no answer"),
        }
        if confirmed.elapsed() > RENEW_DEADLINE {
            tracing::error!(
                lease = LEASE_NAME,
                "the lease could not be confirmed for {RENEW_DEADLINE:?}"
            );
            return;
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
