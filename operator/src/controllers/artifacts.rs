//! The artifact claim in each namespace that has modelops objects (see docs/decisions.md).
//!
//! Pods can only mount claims of their own namespace, and worker and serving pods run beside the
//! object they work for, so before the first pod in a namespace the operator makes sure the
//! claim is there.

use super::apply::{FIELD_MANAGER, MANAGED_BY_LABEL, apply};
use super::error::Result;
use crate::config::{ArtifactsConfig, ArtifactsProvisioning};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::{Api, Client};
use serde_json::json;
use std::collections::HashSet;
use std::sync::Mutex;

/// Remembers the namespaces whose claim is known to exist, so that it is applied once per
/// namespace and process rather than on every reconcile.
#[derive(Default)]
pub struct Claims {
    ensured: Mutex<HashSet<String>>,
}

impl Claims {
    /// Makes sure the artifact claim exists in `namespace`.
    pub async fn ensure(
        &self,
        client: &Client,
        config: &ArtifactsConfig,
        namespace: &str,
    ) -> Result<()> {
        if self
            .ensured
            .lock()
            .expect("not poisoned")
            .contains(namespace)
        {
            return Ok(());
        }
        let (volume, claim) = build(config, namespace);
        if let Some(volume) = volume {
            apply(&Api::<PersistentVolume>::all(client.clone()), &volume).await?;
        }
        if let Some(claim) = claim {
            apply(
                &Api::<PersistentVolumeClaim>::namespaced(client.clone(), namespace),
                &claim,
            )
            .await?;
        }
        self.ensured
            .lock()
            .expect("not poisoned")
            .insert(namespace.to_owned());
        Ok(())
    }
}

/// The PersistentVolume (host-path provisioning only) and the claim for `namespace`.
pub fn build(
    config: &ArtifactsConfig,
    namespace: &str,
) -> (Option<PersistentVolume>, Option<PersistentVolumeClaim>) {
    let labels = json!({MANAGED_BY_LABEL: FIELD_MANAGER});
    match &config.provisioning {
        ArtifactsProvisioning::Existing => (None, None),
        ArtifactsProvisioning::StorageClass { class, size } => {
            let claim = json!({
                "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": config.claim, "namespace": namespace, "labels": labels},
                "spec": {
                    "accessModes": ["ReadWriteMany"],
                    "storageClassName": class,
                    "resources": {"requests": {"storage": size}},
                },
            });
            (
                None,
                Some(serde_json::from_value(claim).expect("a valid claim")),
            )
        }
        ArtifactsProvisioning::HostPath { path } => {
            let volume_name = format!("{}-{namespace}", config.claim);
            let volume = json!({
                "apiVersion": "v1", "kind": "PersistentVolume",
                "metadata": {"name": volume_name, "labels": labels},
                "spec": {
                    "capacity": {"storage": "100Gi"},
                    "accessModes": ["ReadWriteMany", "ReadWriteOnce"],
                    "persistentVolumeReclaimPolicy": "Retain",
                    "storageClassName": "",
                    "hostPath": {"path": path, "type": "DirectoryOrCreate"},
                    "claimRef": {"namespace": namespace, "name": config.claim},
                },
            });
            let claim = json!({
                "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": config.claim, "namespace": namespace, "labels": labels},
                "spec": {
                    "accessModes": ["ReadWriteMany"],
                    "storageClassName": "",
                    "volumeName": volume_name,
                    "resources": {"requests": {"storage": "1Gi"}},
                },
            });
            (
                Some(serde_json::from_value(volume).expect("a valid volume")),
                Some(serde_json::from_value(claim).expect("a valid claim")),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OperatorConfig;

    #[test]
    fn host_path_volume_is_bound_to_the_namespace_claim() {
        let config = OperatorConfig::for_tests("/data/artifacts".into()).artifacts;
        let (volume, claim) = build(&config, "team-a");
        let volume = volume.unwrap();
        let claim = claim.unwrap();
        assert_eq!(
            volume.metadata.name.as_deref(),
            Some("modelops-artifacts-team-a")
        );
        let spec = volume.spec.unwrap();
        assert_eq!(spec.host_path.unwrap().path, "/data/artifacts");
        let bound = spec.claim_ref.unwrap();
        assert_eq!(bound.namespace.as_deref(), Some("team-a"));
        assert_eq!(bound.name.as_deref(), Some("modelops-artifacts"));
        assert_eq!(
            claim.spec.unwrap().volume_name.as_deref(),
            Some("modelops-artifacts-team-a")
        );
    }

    #[test]
    fn existing_claims_are_left_alone() {
        let mut config = OperatorConfig::for_tests("/x".into()).artifacts;
        config.provisioning = ArtifactsProvisioning::Existing;
        assert!(matches!(build(&config, "ns"), (None, None)));
    }
}
