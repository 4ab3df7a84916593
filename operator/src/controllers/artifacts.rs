//! The artifact claim in each namespace that has modelops objects (see docs/decisions.md).
//!
//! Pods can only mount claims of their own namespace, and worker and serving pods run beside the
//! object they work for, so before the first pod in a namespace the operator makes sure the
//! claim is there.

use super::apply::{FIELD_MANAGER, MANAGED_BY_LABEL, apply};
use super::error::Result;
use crate::config::{ArtifactsConfig, ArtifactsProvisioning};
use k8s_openapi::api::core::v1::{
    HostPathVolumeSource, ObjectReference, PersistentVolume, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PersistentVolumeSpec, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{Api, Client};
use std::collections::{BTreeMap, HashSet};
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
    match &config.provisioning {
        ArtifactsProvisioning::Existing => (None, None),
        ArtifactsProvisioning::StorageClass { class, size } => (
            None,
            Some(claim(
                config,
                namespace,
                PersistentVolumeClaimSpec {
                    storage_class_name: Some(class.clone()),
                    resources: Some(storage_request(size)),
                    ..read_write_many()
                },
            )),
        ),
        ArtifactsProvisioning::HostPath { path } => {
            let volume_name = format!("{}-{namespace}", config.claim);
            let volume = PersistentVolume {
                metadata: ObjectMeta {
                    name: Some(volume_name.clone()),
                    labels: Some(labels()),
                    ..Default::default()
                },
                spec: Some(PersistentVolumeSpec {
                    capacity: Some(BTreeMap::from([(
                        "storage".to_owned(),
                        Quantity("100Gi".into()),
                    )])),
                    access_modes: Some(vec!["ReadWriteMany".into(), "ReadWriteOnce".into()]),
                    persistent_volume_reclaim_policy: Some("Retain".into()),
                    // No class: the volume binds only to the claim named below.
                    storage_class_name: Some(String::new()),
                    host_path: Some(HostPathVolumeSource {
                        path: path.clone(),
                        type_: Some("DirectoryOrCreate".into()),
                    }),
                    claim_ref: Some(ObjectReference {
                        namespace: Some(namespace.to_owned()),
                        name: Some(config.claim.clone()),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            };
            let claim = claim(
                config,
                namespace,
                PersistentVolumeClaimSpec {
                    storage_class_name: Some(String::new()),
                    volume_name: Some(volume_name),
                    resources: Some(storage_request("1Gi")),
                    ..read_write_many()
                },
            );
            (Some(volume), Some(claim))
        }
    }
}

/// The labels of the volume and the claim.
fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([(MANAGED_BY_LABEL.to_owned(), FIELD_MANAGER.to_owned())])
}

/// A claim spec shared by every pod of the namespace, workers and servers alike.
fn read_write_many() -> PersistentVolumeClaimSpec {
    PersistentVolumeClaimSpec {
        access_modes: Some(vec!["ReadWriteMany".into()]),
        ..Default::default()
    }
}

/// A request for `size` of storage.
fn storage_request(size: &str) -> VolumeResourceRequirements {
    VolumeResourceRequirements {
        requests: Some(BTreeMap::from([(
            "storage".to_owned(),
            Quantity(size.to_owned()),
        )])),
        ..Default::default()
    }
}

/// The artifact claim of `namespace` with `spec`.
fn claim(
    config: &ArtifactsConfig,
    namespace: &str,
    spec: PersistentVolumeClaimSpec,
) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(config.claim.clone()),
            namespace: Some(namespace.to_owned()),
            labels: Some(labels()),
            ..Default::default()
        },
        spec: Some(spec),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OperatorConfig;
    use serde_json::{Value, json};

    /// The builder as it was, kept to prove the typed one sends the same objects.
    fn before(config: &ArtifactsConfig, namespace: &str) -> (Option<Value>, Option<Value>) {
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
                (None, Some(claim))
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
                (Some(volume), Some(claim))
            }
        }
    }

    #[test]
    fn volumes_and_claims_serialise_as_before() {
        let host_path = OperatorConfig::for_tests("/data/artifacts".into()).artifacts;
        let mut storage_class = host_path.clone();
        storage_class.provisioning = ArtifactsProvisioning::StorageClass {
            class: "nfs".into(),
            size: "20Gi".into(),
        };
        for config in [host_path, storage_class] {
            let (volume, claim) = build(&config, "team-a");
            let (old_volume, old_claim) = before(&config, "team-a");
            let old_volume =
                old_volume.map(|v| serde_json::from_value::<PersistentVolume>(v).unwrap());
            let old_claim =
                old_claim.map(|c| serde_json::from_value::<PersistentVolumeClaim>(c).unwrap());
            assert_eq!(
                serde_json::to_value(&volume).unwrap(),
                serde_json::to_value(&old_volume).unwrap()
            );
            assert_eq!(
                serde_json::to_value(&claim).unwrap(),
                serde_json::to_value(&old_claim).unwrap()
            );
        }
    }

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
