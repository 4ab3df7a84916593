//! The artifact claim in each namespace that has modelops objects, when the store is `pvc://`
//! (see docs/artifacts.md); nothing when it is `s3://`.
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
    let Some(claim_name) = config.claim() else {
        return (None, None);
    };
    match &config.provisioning {
        ArtifactsProvisioning::Existing => (None, None),
        ArtifactsProvisioning::StorageClass { class, size } => (
            None,
            Some(claim(
                &claim_name,
                namespace,
                PersistentVolumeClaimSpec {
                    storage_class_name: Some(class.clone()),
                    resources: Some(storage_request(size)),
                    ..read_write_many()
                },
            )),
        ),
        ArtifactsProvisioning::HostPath { path } => {
            let volume_name = format!("{claim_name}-{namespace}");
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
                    // The namespace's own subfolder: its pods see nothing of the others'.
                    host_path: Some(HostPathVolumeSource {
                        path: format!("{}/{namespace}", path.trim_end_matches('/')),
                        type_: Some("DirectoryOrCreate".into()),
                    }),
                    claim_ref: Some(ObjectReference {
                        namespace: Some(namespace.to_owned()),
                        name: Some(claim_name.clone()),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            };
            let claim = claim(
                &claim_name,
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

/// The artifact claim `name` of `namespace` with `spec`.
fn claim(name: &str, namespace: &str, spec: PersistentVolumeClaimSpec) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
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

    #[test]
    fn host_path_volumes_give_each_namespace_its_own_folder() {
        let config = OperatorConfig::for_tests_on_host_path("/data/artifacts/").artifacts;
        let (volume, claim) = build(&config, "team-a");
        let volume = volume.unwrap();
        let claim = claim.unwrap();
        assert_eq!(
            volume.metadata.name.as_deref(),
            Some("modelops-artifacts-team-a")
        );
        let spec = volume.spec.unwrap();
        assert_eq!(spec.host_path.unwrap().path, "/data/artifacts/team-a");
        let bound = spec.claim_ref.unwrap();
        assert_eq!(bound.namespace.as_deref(), Some("team-a"));
        assert_eq!(bound.name.as_deref(), Some("modelops-artifacts"));
        assert_eq!(
            claim.spec.unwrap().volume_name.as_deref(),
            Some("modelops-artifacts-team-a")
        );
    }

    #[test]
    fn storage_class_claims_and_existing_ones() {
        let mut config = OperatorConfig::for_tests_on_host_path("/x").artifacts;
        config.provisioning = ArtifactsProvisioning::StorageClass {
            class: "nfs".into(),
            size: "20Gi".into(),
        };
        let (volume, claim) = build(&config, "ns");
        assert!(volume.is_none());
        let spec = claim.unwrap().spec.unwrap();
        assert_eq!(spec.storage_class_name.as_deref(), Some("nfs"));
        assert_eq!(spec.access_modes.unwrap(), ["ReadWriteMany"]);
        config.provisioning = ArtifactsProvisioning::Existing;
        assert!(matches!(build(&config, "ns"), (None, None)));
    }

    #[test]
    fn an_s3_store_needs_no_claim() {
        let config = OperatorConfig::for_tests().artifacts;
        assert!(matches!(build(&config, "ns"), (None, None)));
    }
}
