//! Leader election: of the operator's replicas, only the holder of the Lease `modelops-operator`
//! (in the operator's namespace) runs the controllers; the others serve their probes and
//! `/metrics` and wait.
//!
//! The Lease is taken, renewed and released as client-go's resource lock does it: every write is
//! a PUT of the Lease as last read, carrying its `resourceVersion`, so that a write based on a
//! stale read fails with a conflict instead of overwriting what another replica wrote in between.
//! A candidate takes the Lease when it is free (no holder: released) or when it has not seen it
//! change for the Lease's duration, timed by its own clock from its own reads, so that clocks that
//! disagree between nodes do not matter. (`kube-lease-manager` 0.13, used before, cleared Leases
//! with unconditional patches, and a standby shutting down or a candidate acting on a stale read
//! could wipe the Lease another replica had just taken: docs/decisions.md.)
//!
//! A leader that loses the Lease stops at once and exits with an error, as client-go's leader
//! election does: the kubelet restarts it as a candidate, and nothing of its in-memory state
//! (Monitor windows, claim caches) outlives its leadership. It counts as lost when another holds
//! it, and also when the leader has not been able to renew it for [`RENEW_DEADLINE`] (client-go's
//! renew deadline): an API server that stops answering leaves a renewal hanging, and the leader
//! must stop before its Lease can expire and another take it, not after. A leader stopped by
//! SIGTERM releases the Lease on its way out (docs/security.md).

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// The Lease's name.
pub const LEASE_NAME: &str = "modelops-operator";
/// How long a Lease holds without renewal: a crashed leader is replaced within about this long
/// (plus one [`RETRY_EVERY`]).
pub const LEASE_SECONDS: i32 = 10;
/// How often the leader renews its Lease, and a candidate reads it.
pub const RETRY_EVERY: Duration = Duration::from_secs(1);
/// A leader that could not renew its Lease for this long stops: with a renewal every
/// [`RETRY_EVERY`] that itself times out after [`REQUEST_TIMEOUT`], it stops within 8 s of its
/// last renewal, before the 10 s Lease can be taken by another.
pub const RENEW_DEADLINE: Duration = Duration::from_secs(6);
/// Each read or write of the Lease is given up after this long.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// A held Lease.
pub struct Leadership {
    leases: Api<Lease>,
    identity: String,
    /// The Lease as this replica last wrote it (its `resourceVersion` is the precondition of the
    /// next write).
    held: Lease,
}

/// Waits until this replica holds the Lease in `namespace` as `identity`; `None` when a
/// shutdown signal came first.
pub async fn acquire(
    client: Client,
    namespace: &str,
    identity: &str,
) -> anyhow::Result<Option<Leadership>> {
    let leases: Api<Lease> = Api::namespaced(client, namespace);
    tracing::info!(lease = LEASE_NAME, %namespace, %identity, "waiting for the lease");
    let mut observed = Observed::default();
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let attempt = bounded(try_acquire(&leases, identity, &mut observed));
        let taken = tokio::select! {
            taken = attempt => taken,
            () = &mut shutdown => return Ok(None),
        };
        match taken {
            Ok(Some(held)) => {
                tracing::info!(lease = LEASE_NAME, %identity, "leading");
                return Ok(Some(Leadership {
                    leases,
                    identity: identity.to_owned(),
                    held,
                }));
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(lease = LEASE_NAME, "taking the lease: {e}"),
        }
        tokio::select! {
            () = tokio::time::sleep(RETRY_EVERY) => {}
            () = &mut shutdown => return Ok(None),
        }
    }
}

/// What a candidate last saw of the Lease, and since when (by its own clock).
#[derive(Default)]
struct Observed {
    seen: Option<(String, Instant)>,
}

impl Observed {
    /// How long the Lease has been seen unchanged at `version`.
    fn unchanged_for(&mut self, version: &str) -> Duration {
        match &self.seen {
            Some((seen, since)) if seen == version => since.elapsed(),
            _ => {
                self.seen = Some((version.to_owned(), Instant::now()));
                Duration::ZERO
            }
        }
    }
}

/// One attempt to take the Lease: the Lease as written when taken, `None` when another holds it
/// or took it first.
async fn try_acquire(
    leases: &Api<Lease>,
    identity: &str,
    observed: &mut Observed,
) -> kube::Result<Option<Lease>> {
    let Some(current) = leases.get_opt(LEASE_NAME).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(LEASE_NAME.to_owned()),
                ..ObjectMeta::default()
            },
            spec: Some(held_by(identity, 0)),
        };
        return created_or_taken(leases.create(&PostParams::default(), &lease).await);
    };
    let spec = current.spec.clone().unwrap_or_default();
    let holder = spec.holder_identity.as_deref().filter(|h| !h.is_empty());
    let version = current.metadata.resource_version.as_deref().unwrap_or("");
    let unchanged = observed.unchanged_for(version);
    let duration = spec
        .lease_duration_seconds
        .filter(|s| *s > 0)
        .unwrap_or(LEASE_SECONDS);
    let free = match holder {
        None => true,
        Some(holder) if holder == identity => true,
        Some(_) => unchanged >= Duration::from_secs(duration.unsigned_abs().into()),
    };
    if !free {
        return Ok(None);
    }
    if let Some(previous) = holder.filter(|h| *h != identity) {
        tracing::info!(lease = LEASE_NAME, %previous, "the lease expired unrenewed");
    }
    // As client-go counts them: every change of holder, a released Lease taken included.
    let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(holder != Some(identity));
    let mut taken = current;
    taken.spec = Some(held_by(identity, transitions));
    created_or_taken(
        leases
            .replace(LEASE_NAME, &PostParams::default(), &taken)
            .await,
    )
}

/// A write that lost the race to another replica's (it exists already, or changed since read) is
/// no error: the Lease is simply not taken.
fn created_or_taken(written: kube::Result<Lease>) -> kube::Result<Option<Lease>> {
    match written {
        Ok(lease) => Ok(Some(lease)),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(None),
        Err(e) => Err(e),
    }
}

/// A Lease spec held by `identity` from now on.
fn held_by(identity: &str, transitions: i32) -> LeaseSpec {
    let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
    LeaseSpec {
        holder_identity: Some(identity.to_owned()),
        lease_duration_seconds: Some(LEASE_SECONDS),
        acquire_time: Some(now.clone()),
        renew_time: Some(now),
        lease_transitions: Some(transitions),
        ..LeaseSpec::default()
    }
}

/// `request`, given up after [`REQUEST_TIMEOUT`].
async fn bounded<T, E: Into<anyhow::Error>>(
    request: impl Future<Output = Result<T, E>>,
) -> anyhow::Result<T> {
    match tokio::time::timeout(REQUEST_TIMEOUT, request).await {
        Ok(result) => result.map_err(Into::into),
        Err(_) => Err(anyhow::anyhow!("no answer in {REQUEST_TIMEOUT:?}")),
    }
}

/// Whether a renewal found the Lease still ours.
enum Renewal {
    Renewed(Box<Lease>),
    HeldByAnother(Option<String>),
}

impl Leadership {
    /// Renews the Lease every [`RETRY_EVERY`]; resolves when it is lost, or could not be renewed
    /// for [`RENEW_DEADLINE`].
    pub async fn lost(&mut self) {
        let mut renewed = Instant::now();
        loop {
            tokio::time::sleep(RETRY_EVERY).await;
            match bounded(self.renew()).await {
                Ok(Renewal::Renewed(lease)) => {
                    self.held = *lease;
                    renewed = Instant::now();
                }
                Ok(Renewal::HeldByAnother(holder)) => {
                    tracing::error!(lease = LEASE_NAME, ?holder, "the lease is held by another");
                    return;
                }
                Err(e) => tracing::warn!(lease = LEASE_NAME, "renewing the lease: {e}"),
            }
            if renewed.elapsed() > RENEW_DEADLINE {
                tracing::error!(
                    lease = LEASE_NAME,
                    "the lease could not be renewed for {RENEW_DEADLINE:?}"
                );
                return;
            }
        }
    }

    /// One renewal: a write conditional on the Lease being as this replica last wrote it. When
    /// something else changed it meanwhile (a label added by hand), it is read again and, if still
    /// held by this replica, written once more on the new version.
    async fn renew(&self) -> anyhow::Result<Renewal> {
        let mut lease = self.held.clone();
        for _ in 0..2 {
            if let Some(spec) = lease.spec.as_mut() {
                spec.renew_time = Some(MicroTime(k8s_openapi::jiff::Timestamp::now()));
            }
            match self
                .leases
                .replace(LEASE_NAME, &PostParams::default(), &lease)
                .await
            {
                Ok(lease) => return Ok(Renewal::Renewed(Box::new(lease))),
                Err(kube::Error::Api(status)) if status.code == 409 => {}
                Err(e) => return Err(e.into()),
            }
            lease = match self.leases.get_opt(LEASE_NAME).await? {
                Some(lease) => lease,
                None => return Ok(Renewal::HeldByAnother(None)),
            };
            let holder = lease.spec.as_ref().and_then(|s| s.holder_identity.clone());
            if holder.as_deref() != Some(self.identity.as_str()) {
                return Ok(Renewal::HeldByAnother(holder));
            }
        }
        Err(anyhow::anyhow!(
            "the lease kept changing while being renewed"
        ))
    }

    /// Gives the Lease up, so that another replica takes it without waiting for it to expire: the
    /// holder cleared, on the condition that the Lease is still as this replica last wrote it (a
    /// Lease another replica has taken meanwhile is left alone).
    pub async fn release(self) {
        let mut released = self.held;
        if let Some(spec) = released.spec.as_mut() {
            spec.holder_identity = None;
            spec.acquire_time = None;
            spec.renew_time = None;
            spec.lease_duration_seconds = Some(1);
        }
        let params = PostParams::default();
        let write = self.leases.replace(LEASE_NAME, &params, &released);
        match bounded(write).await {
            Ok(_) => tracing::info!(lease = LEASE_NAME, "lease released"),
            Err(e) => tracing::warn!(lease = LEASE_NAME, "releasing the lease: {e}"),
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
