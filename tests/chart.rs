//! The chart as installed on the test bed (`tests/cluster/install`): least privilege, and every
//! pod under the `restricted` Pod Security Standard.

mod common;

use common::*;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, ListParams};

const OPERATOR: &str = "system:serviceaccount:modelops-system:modelops-operator";

/// `kubectl auth can-i` as the operator's ServiceAccount; a `/sub` suffix names a subresource.
fn can_i(verb: &str, resource: &str) -> bool {
    let (resource, subresource) = resource.split_once('/').unwrap_or((resource, ""));
    let mut command = std::process::Command::new("kubectl");
    command.args([
        "auth",
        "can-i",
        verb,
        resource,
        "--all-namespaces",
        "--as",
        OPERATOR,
    ]);
    if !subresource.is_empty() {
        command.arg(format!("--subresource={subresource}"));
    }
    let out = command.output().expect("kubectl runs");
    String::from_utf8_lossy(&out.stdout).trim() == "yes"
}

#[test]
fn the_operator_reads_no_secrets_and_has_no_wildcards() {
    if skip_without_cluster() {
        return;
    }
    // It writes each ModelDeployment's feedback key (only Secrets labelled as its own: the
    // chart's admission policy, tests/tenancy.rs), and reads none.
    for verb in ["get", "list", "watch", "delete"] {
        assert!(!can_i(verb, "secrets"), "the operator may {verb} Secrets");
    }
    assert!(!can_i("*", "*"), "the operator is cluster-admin");
    assert!(
        !can_i("delete", "customresourcedefinitions"),
        "the operator may delete CRDs"
    );
    assert!(
        !can_i("create", "clusterrolebindings"),
        "the operator may grant itself roles"
    );
    // The test bed's store is S3: the operator makes no claims and no volumes.
    for resource in ["persistentvolumeclaims", "persistentvolumes"] {
        assert!(
            !can_i("create", resource),
            "the operator may create {resource}"
        );
    }
    // What it does need.
    for (verb, resource) in [
        ("patch", "trainingjobs.modelops.dev/status"),
        ("create", "jobs.batch"),
        ("create", "deployments.apps"),
        ("list", "pods"),
        ("create", "secrets"),
    ] {
        assert!(
            can_i(verb, resource),
            "the operator may not {verb} {resource}"
        );
    }
}

#[tokio::test]
async fn the_operator_namespace_enforces_restricted_and_its_pod_complies() {
    if skip_without_cluster() {
        return;
    }
    let client = client().await;
    let ns = Api::<Namespace>::all(client.clone())
        .get("modelops-system")
        .await
        .unwrap();
    assert_eq!(
        ns.metadata
            .labels
            .unwrap()
            .get("pod-security.kubernetes.io/enforce")
            .map(String::as_str),
        Some("restricted")
    );
    let pods: Api<Pod> = Api::namespaced(client, "modelops-system");
    let list = pods
        .list(&ListParams::default().labels("app.kubernetes.io/name=modelops"))
        .await
        .unwrap();
    assert!(!list.items.is_empty());
    for pod in list.items {
        let spec = pod.spec.unwrap();
        // It reads no artifact: no claim, no host folder.
        for volume in spec.volumes.clone().unwrap_or_default() {
            assert!(
                volume.persistent_volume_claim.is_none() && volume.host_path.is_none(),
                "the operator mounts {volume:?}"
            );
        }
        assert_eq!(
            spec.security_context.as_ref().unwrap().run_as_non_root,
            Some(true)
        );
        for container in spec.containers {
            let sc = container.security_context.unwrap();
            assert_eq!(sc.read_only_root_filesystem, Some(true));
            assert_eq!(sc.allow_privilege_escalation, Some(false));
            assert_eq!(sc.capabilities.unwrap().drop.unwrap(), ["ALL"]);
        }
    }
}
