//! The pod template of every worker pod (prepare and train): the worker image, the work order,
//! the artifact claim at `/artifacts`, and the `restricted` Pod Security Standard.

use crate::config::OperatorConfig;
use k8s_openapi::api::core::v1::{PodTemplateSpec, Volume, VolumeMount};
use modelops_api::common::{ComputeResources, PodTemplate};
use modelops_api::workorder::{ARTIFACTS_MOUNT_PATH, WORK_ORDER_ENV, WorkOrder};
use serde_json::json;
use std::collections::BTreeMap;

/// What differs between worker pods.
pub struct WorkerPod<'a> {
    /// The worker subcommand: `prepare` or `train`.
    pub command: &'a str,
    /// The work order.
    pub order: &'a WorkOrder,
    /// CPU, memory and GPUs.
    pub resources: &'a ComputeResources,
    /// Scheduling and identity settings from the spec.
    pub template: Option<&'a PodTemplate>,
    /// Volumes besides the artifact claim and `/tmp`, with their mounts.
    pub volumes: Vec<(Volume, VolumeMount)>,
    /// Labels of the pod.
    pub labels: BTreeMap<String, String>,
}

/// The security context of every container modelops runs: non-root, read-only root file
/// system, no capabilities, no privilege escalation, the runtime's default seccomp profile.
pub fn restricted_container_security_context() -> serde_json::Value {
    json!({
        "allowPrivilegeEscalation": false,
        "readOnlyRootFilesystem": true,
        "runAsNonRoot": true,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    })
}

/// The pod-level security context that goes with it.
pub fn restricted_pod_security_context() -> serde_json::Value {
    json!({
        "runAsNonRoot": true,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "fsGroup": 65532,
        "seccompProfile": {"type": "RuntimeDefault"},
    })
}

/// Requests equal to limits, with `nvidia.com/gpu` when GPUs are asked for.
pub fn resource_requirements(resources: &ComputeResources) -> serde_json::Value {
    let mut amounts = serde_json::Map::new();
    if let Some(cpu) = &resources.cpu {
        amounts.insert("cpu".into(), json!(cpu));
    }
    if let Some(memory) = &resources.memory {
        amounts.insert("memory".into(), json!(memory));
    }
    let mut limits = amounts.clone();
    if resources.gpu > 0 {
        limits.insert("nvidia.com/gpu".into(), json!(resources.gpu));
    }
    json!({"requests": amounts, "limits": limits})
}

/// The artifact claim's volume, mounted at `/artifacts`.
pub fn artifacts_volume(
    config: &OperatorConfig,
    read_only: bool,
) -> (serde_json::Value, serde_json::Value) {
    (
        json!({"name": "artifacts", "persistentVolumeClaim": {"claimName": config.artifacts.claim}}),
        json!({"name": "artifacts", "mountPath": ARTIFACTS_MOUNT_PATH, "readOnly": read_only}),
    )
}

/// Builds a worker pod template.
pub fn pod_template(config: &OperatorConfig, pod: WorkerPod<'_>) -> PodTemplateSpec {
    let template = pod.template.cloned().unwrap_or_default();
    let image = template.image.clone().unwrap_or_else(|| {
        if pod.resources.gpu > 0 {
            config.worker_gpu_image.clone()
        } else {
            config.worker_image.clone()
        }
    });
    let pull_policy = template
        .image_pull_policy
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| config.image_pull_policy.clone());
    let (artifacts, artifacts_mount) = artifacts_volume(config, false);
    let mut volumes = vec![artifacts, json!({"name": "tmp", "emptyDir": {}})];
    let mut mounts = vec![artifacts_mount, json!({"name": "tmp", "mountPath": "/tmp"})];
    for (volume, mount) in pod.volumes {
        volumes.push(serde_json::to_value(volume).expect("a volume serialises"));
        mounts.push(serde_json::to_value(mount).expect("a mount serialises"));
    }
    let mut spec = json!({
        "restartPolicy": "Never",
        "enableServiceLinks": false,
        "securityContext": restricted_pod_security_context(),
        "containers": [{
            "name": "worker",
            "image": image,
            "imagePullPolicy": pull_policy,
            "args": [pod.command],
            "env": [
                {"name": WORK_ORDER_ENV, "value": pod.order.to_env_value()},
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            ],
            "resources": resource_requirements(pod.resources),
            "securityContext": restricted_container_security_context(),
            "volumeMounts": mounts,
            "terminationMessagePolicy": "FallbackToLogsOnError",
        }],
        "volumes": volumes,
    });
    if !template.node_selector.is_empty() {
        spec["nodeSelector"] = json!(template.node_selector);
    }
    if !template.tolerations.is_empty() {
        spec["tolerations"] = json!(template.tolerations);
    }
    if let Some(account) = &template.service_account_name {
        spec["serviceAccountName"] = json!(account);
    } else {
        // Workers need no API access: no token in the pod.
        spec["automountServiceAccountToken"] = json!(false);
    }
    if let Some(priority) = &template.priority_class_name {
        spec["priorityClassName"] = json!(priority);
    }
    serde_json::from_value(json!({"metadata": {"labels": pod.labels}, "spec": spec}))
        .expect("a valid pod template")
}
