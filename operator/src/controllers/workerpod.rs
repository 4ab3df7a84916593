//! The pod template of every worker pod (prepare and train): the worker image, the work order,
//! the artifact claim at `/artifacts`, and the `restricted` Pod Security Standard. The pieces the
//! serving pods share (security contexts, resources, the artifact volume) live here too.

use crate::config::OperatorConfig;
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, EnvVar, EnvVarSource, ObjectFieldSelector,
    PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec, PodTemplateSpec,
    ResourceRequirements, SeccompProfile, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use modelops_api::common::{ComputeResources, PodTemplate};
use modelops_api::workorder::{ARTIFACTS_MOUNT_PATH, WORK_ORDER_ENV, WorkOrder};
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
    /// Volumes besides the artifact claim and `/tmp`, with their mounts.
    pub volumes: Vec<(Volume, VolumeMount)>,
    /// Labels of the pod.
    pub labels: BTreeMap<String, String>,
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

/// The artifact claim's volume, mounted at `/artifacts`.
pub fn artifacts_volume(config: &OperatorConfig, read_only: bool) -> (Volume, VolumeMount) {
    (
        Volume {
            name: "artifacts".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: config.artifacts.claim.clone(),
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
    )
}

/// An empty, writable `/tmp`: the root file system is read-only.
pub fn tmp_volume() -> (Volume, VolumeMount) {
    (
        Volume {
            name: "tmp".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        },
        VolumeMount {
            name: "tmp".into(),
            mount_path: "/tmp".into(),
            ..Default::default()
        },
    )
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
    let (volumes, mounts): (Vec<Volume>, Vec<VolumeMount>) =
        [artifacts_volume(config, false), tmp_volume()]
            .into_iter()
            .chain(pod.volumes)
            .unzip();
    let container = Container {
        name: "worker".into(),
        image: Some(image(config, &template, pod.resources)),
        image_pull_policy: Some(image_pull_policy(config, &template)),
        args: Some(vec![pod.command.to_owned()]),
        env: Some(vec![
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
        ]),
        resources: Some(resource_requirements(pod.resources)),
        security_context: Some(restricted_container_security_context()),
        volume_mounts: Some(mounts),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
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
            ..Default::default()
        }),
        spec: Some(with_scheduling(spec, &template)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use modelops_api::workorder::{PrepareOrder, layout};
    use serde_json::{Value, json};

    /// The serialised form of a typed object, as server-side apply sends it.
    fn wire<T: serde::Serialize>(object: &T) -> Value {
        serde_json::to_value(object).unwrap()
    }

    /// Today's JSON of an object once built from a `json!` manifest: what the operator sent
    /// before the builders were typed (the manifest went through the typed struct too).
    fn typed_wire<T: serde::Serialize + serde::de::DeserializeOwned>(manifest: Value) -> Value {
        wire(&serde_json::from_value::<T>(manifest).unwrap())
    }

    /// The builder as it was, kept to prove the typed one sends the same objects.
    mod before {
        use super::*;

        pub fn container_security_context() -> Value {
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

        pub fn pod_security_context() -> Value {
            json!({
                "runAsNonRoot": true,
                "runAsUser": 65532,
                "runAsGroup": 65532,
                "fsGroup": 65532,
                "seccompProfile": {"type": "RuntimeDefault"},
            })
        }

        pub fn resource_requirements(resources: &ComputeResources) -> Value {
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

        pub fn artifacts_volume(config: &OperatorConfig, read_only: bool) -> (Value, Value) {
            (
                json!({"name": "artifacts", "persistentVolumeClaim": {"claimName": config.artifacts.claim}}),
                json!({"name": "artifacts", "mountPath": ARTIFACTS_MOUNT_PATH, "readOnly": read_only}),
            )
        }

        pub fn pod_template(config: &OperatorConfig, pod: WorkerPod<'_>) -> Value {
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
                "securityContext": pod_security_context(),
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
                    "securityContext": container_security_context(),
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
                spec["automountServiceAccountToken"] = json!(false);
            }
            if let Some(priority) = &template.priority_class_name {
                spec["priorityClassName"] = json!(priority);
            }
            json!({"metadata": {"labels": pod.labels}, "spec": spec})
        }
    }

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
            output_dir: layout::mount_path("datasets/team-a/digits"),
            output_uri_prefix: "pvc://modelops-artifacts/datasets/team-a/digits".into(),
        })
    }

    /// A template with every setting, GPUs, and an extra volume.
    fn everything() -> (PodTemplate, ComputeResources, (Volume, VolumeMount)) {
        let template: PodTemplate = serde_json::from_value(json!({
            "image": "registry.example/worker:1",
            "imagePullPolicy": "Always",
            "nodeSelector": {"gpu": "h200"},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "serviceAccountName": "trainer",
            "priorityClassName": "high",
        }))
        .unwrap();
        let resources: ComputeResources =
            serde_json::from_value(json!({"gpu": 2, "cpu": "4", "memory": "8Gi"})).unwrap();
        let volume: Volume =
            serde_json::from_value(json!({"name": "source", "configMap": {"name": "cm"}})).unwrap();
        let mount: VolumeMount = serde_json::from_value(
            json!({"name": "source", "mountPath": "/source", "readOnly": true}),
        )
        .unwrap();
        (template, resources, (volume, mount))
    }

    #[test]
    fn the_shared_pieces_serialise_as_before() {
        assert_eq!(
            wire(&restricted_container_security_context()),
            typed_wire::<SecurityContext>(before::container_security_context())
        );
        assert_eq!(
            wire(&restricted_pod_security_context()),
            typed_wire::<PodSecurityContext>(before::pod_security_context())
        );
        let (_, gpus, _) = everything();
        for resources in [ComputeResources::default(), gpus] {
            assert_eq!(
                wire(&resource_requirements(&resources)),
                typed_wire::<ResourceRequirements>(before::resource_requirements(&resources))
            );
        }
        let config = OperatorConfig::for_tests("/srv".into());
        for read_only in [false, true] {
            let (volume, mount) = artifacts_volume(&config, read_only);
            let (old_volume, old_mount) = before::artifacts_volume(&config, read_only);
            assert_eq!(wire(&volume), typed_wire::<Volume>(old_volume));
            assert_eq!(wire(&mount), typed_wire::<VolumeMount>(old_mount));
        }
    }

    #[test]
    fn worker_pod_templates_serialise_as_before() {
        let config = OperatorConfig::for_tests("/srv".into());
        let order = order();
        let labels = BTreeMap::from([("modelops.dev/dataset".to_owned(), "digits".to_owned())]);
        let plain = ComputeResources::default();
        let (template, gpus, extra) = everything();
        let cases = [
            (None, &plain, vec![]),
            (Some(&template), &gpus, vec![extra]),
        ];
        for (template, resources, volumes) in cases {
            let pod = |volumes| WorkerPod {
                command: "prepare",
                order: &order,
                resources,
                template,
                volumes,
                labels: labels.clone(),
            };
            assert_eq!(
                wire(&pod_template(&config, pod(volumes.clone()))),
                typed_wire::<PodTemplateSpec>(before::pod_template(&config, pod(volumes)))
            );
        }
    }
}
