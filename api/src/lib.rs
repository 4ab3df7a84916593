//! The modelops API, group `modelops.dev`, version `v1alpha1`: the four kinds (Dataset,
//! TrainingJob, ModelDeployment, Monitor) with their CRD schemas and CEL rules, the status
//! conditions they share, the work orders the operator hands worker pods, and the artifact
//! formats both sides read: the data profile ([`profile`]), the model card ([`card`]) and the
//! artifact volume's file names ([`workorder::layout`]).
//!
//! This crate is plain data (serde, schemars and the kube derive), so that the operator, the
//! worker and the pure core can all depend on it without pulling in anything that runs.
#![forbid(unsafe_code)]

pub mod card;
pub mod common;
pub mod conditions;
pub mod dataset;
pub mod modeldeployment;
pub mod monitor;
pub mod profile;
pub mod serving;
pub mod store;
pub mod trainingjob;
pub mod workorder;

pub use dataset::{Dataset, DatasetSpec, DatasetStatus};
pub use modeldeployment::{ModelDeployment, ModelDeploymentSpec, ModelDeploymentStatus};
pub use monitor::{Monitor, MonitorSpec, MonitorStatus};
pub use trainingjob::{TrainingJob, TrainingJobSpec, TrainingJobStatus};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube_core::CustomResourceExt;

/// The API group of every modelops kind.
pub const GROUP: &str = "modelops.dev";

/// The API version of every modelops kind.
pub const VERSION: &str = "v1alpha1";

/// The `kubectl get` category that lists every modelops kind (`kubectl get modelops`).
pub const CATEGORY: &str = "modelops";

/// The rules on `metadata.name` of the kinds with children, as (kind, CEL rule, message): each
/// child's name is derived from its owner's, so the owner's name must leave room for it (Job
/// names are label values, at most 63 characters; a ModelDeployment's name is its Service's, a
/// DNS label). Child names are never truncated, so two owners never share a child. The rules hold
/// at creation (`oldSelf`, optional): an object made before them is not refused its updates.
pub const NAME_RULES: [(&str, &str, &str); 3] = [
    (
        "Dataset",
        "oldSelf.hasValue() || self.metadata.name.size() <= 40",
        "metadata.name: a Dataset name has at most 40 characters, so that its prepare Job's name (<name>-prepare-<hash>) fits a label value; use a shorter name",
    ),
    (
        "TrainingJob",
        "oldSelf.hasValue() || self.metadata.name.size() <= 40",
        "metadata.name: a TrainingJob name has at most 40 characters, so that its Jobs' names (<name>-train, <name>-trial-<n>) fit a label value; use a shorter name",
    ),
    (
        "ModelDeployment",
        "oldSelf.hasValue() || (self.metadata.name.size() <= 50 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$'))",
        "metadata.name: a ModelDeployment name is its Service's name, so a DNS label (lower-case letters, digits and '-', starting with a letter), and at most 50 characters so that its Deployments' names (<name>-r<revision>) fit; use such a name",
    ),
];

/// The CRDs of every kind, in the order of the loop: data, training, serving, monitoring.
pub fn crds() -> Vec<CustomResourceDefinition> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::ValidationRule;
    let mut crds = vec![
        Dataset::crd(),
        TrainingJob::crd(),
        ModelDeployment::crd(),
        Monitor::crd(),
    ];
    // A rule at the root of the schema: kube-derive writes those only through the `kube` crate,
    // and this crate has `kube-core` alone (it must not pull in a client).
    for crd in &mut crds {
        let Some((_, rule, message)) = NAME_RULES
            .iter()
            .find(|(kind, _, _)| *kind == crd.spec.names.kind)
        else {
            continue;
        };
        let root = crd.spec.versions[0]
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
            .expect("a derived CRD has a schema");
        root.x_kubernetes_validations
            .get_or_insert_default()
            .push(ValidationRule {
                rule: (*rule).to_owned(),
                message: Some((*message).to_owned()),
                // Checked when an object is created: one made before the rule keeps working.
                optional_old_self: Some(true),
                ..Default::default()
            });
    }
    crds
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn every_crd_is_namespaced_with_status_category_and_a_unique_short_name() {
        let crds = crds();
        let mut short_names = BTreeSet::new();
        for crd in &crds {
            let name = crd.metadata.name.as_deref().unwrap();
            assert!(name.ends_with(".modelops.dev"), "{name}");
            assert_eq!(crd.spec.group, GROUP);
            assert_eq!(crd.spec.scope, "Namespaced", "{name}");
            assert_eq!(
                crd.spec.names.categories.as_deref(),
                Some(&[CATEGORY.to_owned()][..]),
                "{name}"
            );
            let version = &crd.spec.versions[0];
            assert_eq!(version.name, VERSION);
            assert!(
                version
                    .subresources
                    .as_ref()
                    .and_then(|s| s.status.as_ref())
                    .is_some(),
                "{name} has no status subresource"
            );
            assert!(
                version.additional_printer_columns.as_ref().unwrap().len() >= 3,
                "{name} needs printer columns"
            );
            for short in crd.spec.names.short_names.clone().unwrap() {
                assert!(short_names.insert(short.clone()), "{short} used twice");
                // Short names of built-in kinds (kubectl api-resources) must not be shadowed.
                assert!(
                    ![
                        "ds", "deploy", "mon", "po", "svc", "cm", "sts", "rs", "cj", "pv", "pvc",
                        "ns", "no", "ep", "ev", "sa", "pc", "sc", "hpa", "pdb", "ing", "netpol",
                        "crd", "crds", "csr", "cs", "quota", "limits", "rc", "ip", "vac"
                    ]
                    .contains(&short.as_str()),
                    "{short} clashes with a built-in kind"
                );
            }
        }
        assert_eq!(crds.len(), 4);
    }

    #[test]
    fn schemas_are_structural_with_no_untyped_fields() {
        for crd in crds() {
            let schema = serde_json::to_value(&crd.spec.versions[0].schema).unwrap();
            let text = schema.to_string();
            for forbidden in [
                "\"anyOf\"",
                "\"oneOf\"",
                "\"allOf\"",
                "x-kubernetes-preserve-unknown-fields",
                "\"$ref\"",
            ] {
                assert!(
                    !text.contains(forbidden),
                    "{}: {forbidden} in schema",
                    crd.metadata.name.as_deref().unwrap()
                );
            }
        }
    }

    #[test]
    fn conditions_are_list_maps_keyed_by_type() {
        for crd in crds() {
            let schema = serde_json::to_value(&crd.spec.versions[0].schema).unwrap();
            let conditions =
                &schema["openAPIV3Schema"]["properties"]["status"]["properties"]["conditions"];
            assert_eq!(conditions["x-kubernetes-list-type"], "map");
            assert_eq!(
                conditions["x-kubernetes-list-map-keys"],
                serde_json::json!(["type"])
            );
            assert!(
                conditions["items"]["properties"]["observedGeneration"].is_object(),
                "conditions carry observedGeneration"
            );
        }
    }
}
