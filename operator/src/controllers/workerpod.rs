//! The pod template of every worker pod (prepare and train): the worker image, the work order,
//! access to the artifact store (the namespace's Secret for `s3://`, its claim at `/artifacts`
//! for `pvc://`), a scratch folder, and the `restricted` Pod Security Standard. The pieces the
//! serving pods share (security contexts, resources, store access) live here too.

use crate::config::OperatorConfig;
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvFromSource, EnvVar,
    EnvVarSource, ObjectFieldSelector, PersistentVolumeClaimVolumeSource, PodSecurityContext,
    PodSpec, PodTemplateSpec, ResourceRequirements, SeccompProfile, SecretEnvSource,
    SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use modelops_api::common::{ComputeResources, PodTemplate};
use modelops_api::workorder::{ARTIFACTS_MOUNT_PATH, SCRATCH_DIR, WORK_ORDER_ENV, WorkOrder};
use std::collections::BTreeMap;

/// The user and group every modelops container runs as (the distroless `nonroot` user).
const NON_ROOT_ID: i64 = 65532;

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
    /// Volumes besides the store's, `/tmp` and the scratch folder, with their mounts.
    pub volumes: Vec<(Volume, VolumeMount)>,
    /// Labels of the pod.
    pub labels: BTreeMap<String, String>,
    /// The port the worker serves `/metrics` on while it runs (a training pod's progress),
    /// declared as the container port `metrics` and in the pod's scrape annotations.
    pub metrics_port: Option<u16>,
}

/// The annotations by which a Prometheus that follows the common `kubernetes-pods` convention
/// (the Prometheus community chart's default job, the test bed's) scrapes a pod's `/metrics`
/// on `port`. A Prometheus Operator selects the same pods through the chart's PodMonitor.
pub fn scrape_annotations(port: u16) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("prometheus.io/scrape".to_owned(), "true".to_owned()),
        ("prometheus.io/port".to_owned(), port.to_string()),
        (
            "prometheus.io/path".to_owned(),
            modelops_api::serving::METRICS_PATH.to_owned(),
        ),
    ])
}

/// The runtime's default seccomp profile.
fn runtime_default_seccomp() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".into(),
        ..Default::default()
    }
}

/// The security context of every container modelops runs: non-root, read-only root file
/// system, no capabilities, no privilege escalation, the runtime's default seccomp profile.
pub fn restricted_container_security_context() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        run_as_user: Some(NON_ROOT_ID),
        run_as_group: Some(NON_ROOT_ID),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Default::default()
        }),
        seccomp_profile: Some(runtime_default_seccomp()),
        ..Default::default()
    }
}

/// The pod-level security context that goes with it.
pub fn restricted_pod_security_context() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(NON_ROOT_ID),
        run_as_group: Some(NON_ROOT_ID),
        fs_group: Some(NON_ROOT_ID),
        seccomp_profile: Some(runtime_default_seccomp()),
        ..Default::default()
    }
}

/// Requests equal to limits, with `nvidia.com/gpu` when GPUs are asked for. Both maps are
/// always present, even empty (as the objects applied so far had them).
pub fn resource_requirements(resources: &ComputeResources) -> ResourceRequirements {
    let mut amounts = BTreeMap::new();
    if let Some(cpu) = &resources.cpu {
        amounts.insert("cpu".to_owned(), cpu.clone());
    }
    if let Some(memory) = &resources.memory {
        amounts.insert("memory".to_owned(), memory.clone());
    }
    let mut limits = amounts.clone();
    if resources.gpu > 0 {
        limits.insert(
            "nvidia.com/gpu".to_owned(),
            Quantity(resources.gpu.to_string()),
        );
    }
    ResourceRequirements {
        requests: Some(amounts),
        limits: Some(limits),
        ..Default::default()
    }
}

/// How a pod reaches its namespace's artifact store: for `s3://`, the environment from the
/// namespace's Secret (optional, so that a missing Secret is the worker's clear error rather than
/// a pod that never starts); for `pvc://`, the namespace's claim at `/artifacts`.
pub struct StoreAccess {
    /// Volumes and their mounts.
    pub volumes: Vec<(Volume, VolumeMount)>,
    /// Environment from Secrets.
    pub env_from: Option<Vec<EnvFromSource>>,
}

/// The store access of every worker and serving pod.
pub fn store_access(config: &OperatorConfig, read_only: bool) -> StoreAccess {
    match config.artifacts.claim() {
        Some(claim) => StoreAccess {
            volumes: vec![(
                Volume {
                    name: "artifacts".into(),
                    persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                        claim_name: claim,
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                VolumeMount {
                    name: "artifacts".into(),
                    mount_path: ARTIFACTS_MOUNT_PATH.into(),
                    read_only: Some(read_only),
                    ..Default::default()
                },
            )],
            env_from: None,
        },
        None => StoreAccess {
            volumes: Vec::new(),
            env_from: Some(vec![EnvFromSource {
                secret_ref: Some(SecretEnvSource {
                    name: config.artifacts.secret.clone(),
                    optional: Some(true),
                }),
                ..Default::default()
            }]),
        },
    }
}

/// An empty, writable folder at `path` named `name`.
fn empty_dir(name: &str, path: &str) -> (Volume, VolumeMount) {
    (
        Volume {
            name: name.into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        },
        VolumeMount {
            name: name.into(),
            mount_path: path.into(),
            ..Default::default()
        },
    )
}

/// The scratch folder where worker and serving pods keep their copies of artifacts.
pub fn scratch_volume() -> (Volume, VolumeMount) {
    empty_dir("scratch", SCRATCH_DIR)
}

/// An empty, writable `/tmp`: the root file system is read-only.
pub fn tmp_volume() -> (Volume, VolumeMount) {
    empty_dir("tmp", "/tmp")
}

/// The image of a pod: the template's, else the worker image for CPU or GPU.
pub fn image(
    config: &OperatorConfig,
    template: &PodTemplate,
    resources: &ComputeResources,
) -> String {
    template.image.clone().unwrap_or_else(|| {
        if resources.gpu > 0 {
            config.worker_gpu_image.clone()
        } else {
            config.worker_image.clone()
        }
    })
}

/// The pull policy of a pod: the template's, else the operator's default.
pub fn image_pull_policy(config: &OperatorConfig, template: &PodTemplate) -> String {
    template
        .image_pull_policy
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| config.image_pull_policy.clone())
}

/// A pod spec with the template's scheduling and identity settings (node selector, tolerations,
/// service account, priority class) applied; empty ones stay unset.
pub fn with_scheduling(spec: PodSpec, template: &PodTemplate) -> PodSpec {
    PodSpec {
        node_selector: (!template.node_selector.is_empty()).then(|| template.node_selector.clone()),
        tolerations: (!template.tolerations.is_empty()).then(|| template.tolerations.clone()),
        service_account_name: template.service_account_name.clone(),
        priority_class_name: template.priority_class_name.clone(),
        ..spec
    }
}

/// Builds a worker pod template.
pub fn pod_template(config: &OperatorConfig, pod: WorkerPod<'_>) -> PodTemplateSpec {
    let template = pod.template.cloned().unwrap_or_default();
    let access = store_access(config, false);
    let (volumes, mounts): (Vec<Volume>, Vec<VolumeMount>) = access
        .volumes
        .into_iter()
        .chain([tmp_volume(), scratch_volume()])
        .chain(pod.volumes)
        .unzip();
    let container = Container {
        name: "worker".into(),
        image: Some(image(config, &template, pod.resources)),
        image_pull_policy: Some(image_pull_policy(config, &template)),
        args: Some(vec![pod.command.to_owned()]),
        env: Some(
            [
                EnvVar {
                    name: WORK_ORDER_ENV.into(),
                    value: Some(pod.order.to_env_value()),
                    ..Default::default()
                },
                EnvVar {
                    name: "POD_NAME".into(),
                    value_from: Some(EnvVarSource {
                        field_ref: Some(ObjectFieldSelector {
                            field_path: "metadata.name".into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            ]
            .into_iter()
            // Text is the worker's default: pods of a text-logging operator stay as they were.
            .chain((config.worker_log_format != "text").then(|| EnvVar {
                name: "MODELOPS_LOG_FORMAT".into(),
                value: Some(config.worker_log_format.clone()),
                ..Default::default()
            }))
            .collect(),
        ),
        env_from: access.env_from,
        resources: Some(resource_requirements(pod.resources)),
        security_context: Some(restricted_container_security_context()),
        volume_mounts: Some(mounts),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        ports: pod.metrics_port.map(|port| {
            vec![ContainerPort {
                name: Some("metrics".into()),
                container_port: i32::from(port),
                ..Default::default()
            }]
        }),
        ..Default::default()
    };
    let spec = PodSpec {
        restart_policy: Some("Never".into()),
        enable_service_links: Some(false),
        security_context: Some(restricted_pod_security_context()),
        containers: vec![container],
        volumes: Some(volumes),
        // Workers need no API access: no token in the pod, unless the spec names an account.
        automount_service_account_token: template.service_account_name.is_none().then_some(false),
        ..Default::default()
    };
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(pod.labels),
            annotations: pod.metrics_port.map(scrape_annotations),
            ..Default::default()
        }),
        spec: Some(with_scheduling(spec, &template)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use modelops_api::workorder::PrepareOrder;
    use serde_json::json;

    fn order() -> WorkOrder {
        WorkOrder::Prepare(PrepareOrder {
            namespace: "team-a".into(),
            name: "digits".into(),
            spec: serde_yaml::from_str::<modelops_api::Dataset>(include_str!(
                "../../../examples/digits/dataset.yaml"
            ))
            .unwrap()
            .spec,
            source_path: None,
            output_uri: "s3://modelops/team-a/datasets/digits".into(),
        })
    }

    fn pod(config: &OperatorConfig, template: Option<&PodTemplate>) -> PodSpec {
        let order = order();
        let resources: ComputeResources =
            serde_json::from_value(json!({"gpu": 2, "cpu": "4", "memory": "8Gi"})).unwrap();
        pod_template(
            config,
            WorkerPod {
                command: "prepare",
                order: &order,
                resources: &resources,
                template,
                volumes: Vec::new(),
                labels: BTreeMap::new(),
                metrics_port: None,
            },
        )
        .spec
        .unwrap()
    }

    #[test]
    fn with_an_s3_store_pods_get_the_secret_and_no_artifact_volume() {
        let spec = pod(&OperatorConfig::for_tests(), None);
        let volumes: Vec<_> = spec.volumes.as_ref().unwrap().iter().collect();
        assert!(
            volumes
                .iter()
                .all(|v| v.persistent_volume_claim.is_none() && v.host_path.is_none()),
            "{volumes:?}"
        );
        let container = &spec.containers[0];
        let secret = container.env_from.as_ref().unwrap()[0]
            .secret_ref
            .clone()
            .unwrap();
        assert_eq!(secret.name, "modelops-artifacts");
        assert_eq!(secret.optional, Some(true));
        let mounts: Vec<&str> = container
            .volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .map(|m| m.mount_path.as_str())
            .collect();
        assert_eq!(mounts, ["/tmp", SCRATCH_DIR]);
        assert_eq!(spec.automount_service_account_token, Some(false));
        let limits = container
            .resources
            .as_ref()
            .unwrap()
            .limits
            .clone()
            .unwrap();
        assert_eq!(limits["nvidia.com/gpu"], Quantity("2".into()));
        let security = container.security_context.as_ref().unwrap();
        assert_eq!(security.read_only_root_filesystem, Some(true));
        assert_eq!(security.allow_privilege_escalation, Some(false));
    }

    #[test]
    fn with_a_pvc_store_pods_mount_the_namespace_claim() {
        let spec = pod(&OperatorConfig::for_tests_on_host_path("/srv"), None);
        let claim = spec.volumes.as_ref().unwrap()[0]
            .persistent_volume_claim
            .clone()
            .unwrap();
        assert_eq!(claim.claim_name, "modelops-artifacts");
        assert_eq!(
            spec.containers[0].volume_mounts.as_ref().unwrap()[0].mount_path,
            ARTIFACTS_MOUNT_PATH
        );
        assert!(spec.containers[0].env_from.is_none());
    }

    #[test]
    fn the_template_sets_scheduling_and_identity() {
        let template: PodTemplate = serde_json::from_value(json!({
            "image": "registry.example/worker:1",
            "imagePullPolicy": "Always",
            "nodeSelector": {"gpu": "h200"},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "serviceAccountName": "trainer",
            "priorityClassName": "high",
        }))
        .unwrap();
        let spec = pod(&OperatorConfig::for_tests(), Some(&template));
        assert_eq!(
            spec.containers[0].image.as_deref(),
            Some("registry.example/worker:1")
        );
        assert_eq!(
            spec.containers[0].image_pull_policy.as_deref(),
            Some("Always")
        );
        assert_eq!(spec.node_selector.unwrap()["gpu"], "h200");
        assert_eq!(spec.tolerations.unwrap().len(), 1);
        assert_eq!(spec.service_account_name.as_deref(), Some("trainer"));
        assert_eq!(spec.priority_class_name.as_deref(), Some("high"));
        assert_eq!(spec.automount_service_account_token, None);
    }
}
