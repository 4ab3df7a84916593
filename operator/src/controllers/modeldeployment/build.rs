//! Pure: a ModelDeployment and its planned revisions in, the Deployment of each revision and the
//! Service out.

use crate::config::OperatorConfig;
use crate::controllers::apply::child_labels;
use crate::controllers::workerpod::{
    artifacts_volume, image, image_pull_policy, resource_requirements,
    restricted_container_security_context, restricted_pod_security_context, tmp_volume,
    with_scheduling,
};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, HTTPGetAction, Lifecycle, LifecycleHandler, PodSpec,
    PodTemplateSpec, Probe, Service, ServicePort, ServiceSpec, SleepAction,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource, ResourceExt};
use modelops_api::ModelDeployment;
use modelops_api::serving::{FEEDBACK_KEY_ENV, LIVE_PATH, READY_PATH};
use modelops_api::workorder::{SERVING_PORT, ServeOrder, WORK_ORDER_ENV, WorkOrder, layout};
use std::collections::BTreeMap;

/// The label naming a serving pod's revision.
pub const REVISION_LABEL: &str = "modelops.dev/revision";

/// The port of the Service.
pub const SERVICE_PORT: u16 = 80;

/// Seconds a revision's pods may take to become ready before the revision counts as Failed.
pub const PROGRESS_DEADLINE_SECONDS: i32 = 180;

/// The Deployment name of a revision.
pub fn deployment_name(md: &ModelDeployment, revision: i32) -> String {
    let stem: String = md.name_any().chars().take(50).collect();
    format!("{stem}-r{revision}")
}

/// The inference endpoint, as the status shows it.
pub fn endpoint(md: &ModelDeployment, namespace: &str) -> String {
    format!("http://{}.{namespace}.svc:{SERVICE_PORT}", md.name_any())
}

/// The folder in the pod of a model stored at `pvc://<claim>/<path>`.
pub fn model_dir(uri: &str) -> Option<String> {
    layout::parse_pvc_uri(uri).map(|(_, path)| layout::mount_path(path))
}

/// The work order of one revision's serving pods.
fn serve_order(
    md: &ModelDeployment,
    namespace: &str,
    revision: i32,
    model_dir: &str,
    model_digest: &str,
) -> WorkOrder {
    WorkOrder::Serve(ServeOrder {
        namespace: namespace.to_owned(),
        name: md.name_any(),
        revision,
        model_dir: model_dir.to_owned(),
        model_digest: model_digest.to_owned(),
        serving: md.spec.serving.clone(),
        port: SERVING_PORT,
        profile_path: None,
        max_request_bytes: None,
        feedback_max_age: None,
        resources: md.spec.resources.clone(),
    })
}

/// An HTTP GET of `path` on the `http` port, every `period_seconds`.
fn http_probe(path: &str, period_seconds: i32, failure_threshold: Option<i32>) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String("http".into()),
            ..Default::default()
        }),
        period_seconds: Some(period_seconds),
        failure_threshold,
        ..Default::default()
    }
}

/// The `serve` container: the worker image serving the order's model on the `http` port.
fn serve_container(
    config: &OperatorConfig,
    md: &ModelDeployment,
    order: &WorkOrder,
    feedback_key: &str,
) -> Container {
    let template = &md.spec.template;
    let env = |name: &str, value: String| EnvVar {
        name: name.to_owned(),
        value: Some(value),
        ..Default::default()
    };
    let (_, artifacts_mount) = artifacts_volume(config, true);
    let (_, tmp_mount) = tmp_volume();
    Container {
        name: "serve".into(),
        image: Some(image(config, template, &md.spec.resources)),
        image_pull_policy: Some(image_pull_policy(config, template)),
        args: Some(vec!["serve".into()]),
        env: Some(vec![
            env(WORK_ORDER_ENV, order.to_env_value()),
            env(FEEDBACK_KEY_ENV, feedback_key.to_owned()),
        ]),
        ports: Some(vec![ContainerPort {
            name: Some("http".into()),
            container_port: i32::from(SERVING_PORT),
            ..Default::default()
        }]),
        readiness_probe: Some(http_probe(READY_PATH, 1, Some(2))),
        liveness_probe: Some(http_probe(LIVE_PATH, 10, None)),
        // Leave the Service's endpoints before the server stops accepting.
        lifecycle: Some(Lifecycle {
            pre_stop: Some(LifecycleHandler {
                sleep: Some(SleepAction { seconds: 2 }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        resources: Some(resource_requirements(&md.spec.resources)),
        security_context: Some(restricted_container_security_context()),
        volume_mounts: Some(vec![artifacts_mount, tmp_mount]),
        ..Default::default()
    }
}

/// The pod of a revision around its container: the model read-only, no API access.
fn serving_pod_spec(
    config: &OperatorConfig,
    md: &ModelDeployment,
    container: Container,
) -> PodSpec {
    let (artifacts, _) = artifacts_volume(config, true);
    let (tmp, _) = tmp_volume();
    let spec = PodSpec {
        enable_service_links: Some(false),
        // Serving pods never call the API server, whatever account they run as.
        automount_service_account_token: Some(false),
        security_context: Some(restricted_pod_security_context()),
        termination_grace_period_seconds: Some(30),
        containers: vec![container],
        volumes: Some(vec![artifacts, tmp]),
        ..Default::default()
    };
    with_scheduling(spec, &md.spec.template)
}

/// The metadata of a child of `md`: its name, namespace, labels and controller reference.
fn child_metadata(
    md: &ModelDeployment,
    name: String,
    namespace: &str,
    labels: BTreeMap<String, String>,
) -> ObjectMeta {
    let owner = md
        .controller_owner_ref(&())
        .expect("a stored ModelDeployment has a uid");
    ObjectMeta {
        name: Some(name),
        namespace: Some(namespace.to_owned()),
        labels: Some(labels),
        owner_references: Some(vec![owner]),
        ..Default::default()
    }
}

/// One revision's Deployment.
#[allow(clippy::too_many_arguments)]
pub fn deployment(
    config: &OperatorConfig,
    md: &ModelDeployment,
    namespace: &str,
    revision: i32,
    model_dir: &str,
    model_digest: &str,
    replicas: i32,
    feedback_key: &str,
) -> Deployment {
    let order = serve_order(md, namespace, revision, model_dir, model_digest);
    let container = serve_container(config, md, &order, feedback_key);
    let mut labels = child_labels(md);
    labels.insert(REVISION_LABEL.to_owned(), revision.to_string());
    Deployment {
        metadata: child_metadata(md, deployment_name(md, revision), namespace, labels.clone()),
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            progress_deadline_seconds: Some(PROGRESS_DEADLINE_SECONDS),
            selector: LabelSelector {
                match_labels: Some(labels.clone()),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(serving_pod_spec(config, md, container)),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The Service over every revision's pods: traffic follows the replica ratio.
pub fn service(md: &ModelDeployment, namespace: &str) -> Service {
    let labels = child_labels(md);
    Service {
        metadata: child_metadata(md, md.name_any(), namespace, labels.clone()),
        spec: Some(ServiceSpec {
            selector: Some(labels),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: i32::from(SERVICE_PORT),
                target_port: Some(IntOrString::String("http".into())),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md() -> ModelDeployment {
        let mut md: ModelDeployment = serde_yaml::from_str(
            r#"
apiVersion: modelops.dev/v1alpha1
kind: ModelDeployment
metadata: {name: digits, namespace: team-a, uid: u-1}
spec:
  model: {trainingJobRef: {name: digits}}
  replicas: 2
"#,
        )
        .unwrap();
        md.metadata.uid = Some("u-1".into());
        md
    }

    /// The builders as they were, kept to prove the typed ones send the same objects. (The
    /// shared pieces are proven equal to their old `json!` in `workerpod`.)
    mod before {
        use super::*;
        use crate::controllers::workerpod::{
            artifacts_volume, resource_requirements, restricted_container_security_context,
            restricted_pod_security_context,
        };
        use serde_json::{Value, json};

        fn wire<T: serde::Serialize>(object: T) -> Value {
            serde_json::to_value(object).unwrap()
        }

        #[allow(clippy::too_many_arguments)]
        pub fn deployment(
            config: &OperatorConfig,
            md: &ModelDeployment,
            namespace: &str,
            revision: i32,
            model_dir: &str,
            model_digest: &str,
            replicas: i32,
            feedback_key: &str,
        ) -> Value {
            let order = WorkOrder::Serve(ServeOrder {
                namespace: namespace.to_owned(),
                name: md.name_any(),
                revision,
                model_dir: model_dir.to_owned(),
                model_digest: model_digest.to_owned(),
                serving: md.spec.serving.clone(),
                port: SERVING_PORT,
                profile_path: None,
                max_request_bytes: None,
                feedback_max_age: None,
                resources: md.spec.resources.clone(),
            });
            let mut labels = child_labels(md);
            labels.insert(REVISION_LABEL.to_owned(), revision.to_string());
            let template = &md.spec.template;
            let image = template.image.clone().unwrap_or_else(|| {
                if md.spec.resources.gpu > 0 {
                    config.worker_gpu_image.clone()
                } else {
                    config.worker_image.clone()
                }
            });
            let (artifacts, artifacts_mount) = artifacts_volume(config, true);
            let (artifacts, artifacts_mount) = (wire(artifacts), wire(artifacts_mount));
            let mut pod = json!({
                "enableServiceLinks": false,
                "automountServiceAccountToken": false,
                "securityContext": wire(restricted_pod_security_context()),
                "terminationGracePeriodSeconds": 30,
                "containers": [{
                    "name": "serve",
                    "image": image,
                    "imagePullPolicy": template.image_pull_policy.map(|p| p.as_str().to_owned()).unwrap_or_else(|| config.image_pull_policy.clone()),
                    "args": ["serve"],
                    "env": [
                        {"name": WORK_ORDER_ENV, "value": order.to_env_value()},
                        {"name": FEEDBACK_KEY_ENV, "value": feedback_key},
                    ],
                    "ports": [{"name": "http", "containerPort": SERVING_PORT}],
                    "readinessProbe": {"httpGet": {"path": READY_PATH, "port": "http"}, "periodSeconds": 1, "failureThreshold": 2},
                    "livenessProbe": {"httpGet": {"path": LIVE_PATH, "port": "http"}, "periodSeconds": 10},
                    "lifecycle": {"preStop": {"sleep": {"seconds": 2}}},
                    "resources": wire(resource_requirements(&md.spec.resources)),
                    "securityContext": wire(restricted_container_security_context()),
                    "volumeMounts": [artifacts_mount, {"name": "tmp", "mountPath": "/tmp"}],
                }],
                "volumes": [artifacts, {"name": "tmp", "emptyDir": {}}],
            });
            if !template.node_selector.is_empty() {
                pod["nodeSelector"] = json!(template.node_selector);
            }
            if !template.tolerations.is_empty() {
                pod["tolerations"] = json!(template.tolerations);
            }
            if let Some(account) = &template.service_account_name {
                pod["serviceAccountName"] = json!(account);
            }
            if let Some(priority) = &template.priority_class_name {
                pod["priorityClassName"] = json!(priority);
            }
            let owner = md.controller_owner_ref(&()).unwrap();
            json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {
                    "name": deployment_name(md, revision),
                    "namespace": namespace,
                    "labels": labels,
                    "ownerReferences": [owner],
                },
                "spec": {
                    "replicas": replicas,
                    "progressDeadlineSeconds": PROGRESS_DEADLINE_SECONDS,
                    "selector": {"matchLabels": labels},
                    "template": {"metadata": {"labels": labels}, "spec": pod},
                },
            })
        }

        pub fn service(md: &ModelDeployment, namespace: &str) -> Value {
            let labels = child_labels(md);
            let owner = md.controller_owner_ref(&()).unwrap();
            json!({
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": md.name_any(), "namespace": namespace, "labels": labels, "ownerReferences": [owner]},
                "spec": {
                    "selector": labels,
                    "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "http"}],
                },
            })
        }
    }

    /// A ModelDeployment with every pod setting and GPUs.
    fn md_with_everything() -> ModelDeployment {
        let mut md = md();
        md.spec.template = serde_json::from_value(serde_json::json!({
            "image": "registry.example/serve:1",
            "imagePullPolicy": "Never",
            "nodeSelector": {"gpu": "h200"},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}],
            "serviceAccountName": "server",
            "priorityClassName": "high",
        }))
        .unwrap();
        md.spec.resources =
            serde_json::from_value(serde_json::json!({"gpu": 1, "cpu": "2", "memory": "4Gi"}))
                .unwrap();
        md
    }

    #[test]
    fn deployments_and_services_serialise_as_before() {
        let config = OperatorConfig::for_tests("/srv".into());
        for md in [md(), md_with_everything()] {
            let typed = deployment(
                &config,
                &md,
                "team-a",
                3,
                "/artifacts/models/ab",
                "sha256:ab",
                2,
                "00ff",
            );
            let old: Deployment = serde_json::from_value(before::deployment(
                &config,
                &md,
                "team-a",
                3,
                "/artifacts/models/ab",
                "sha256:ab",
                2,
                "00ff",
            ))
            .unwrap();
            assert_eq!(
                serde_json::to_value(&typed).unwrap(),
                serde_json::to_value(&old).unwrap()
            );
            let old: Service = serde_json::from_value(before::service(&md, "team-a")).unwrap();
            assert_eq!(
                serde_json::to_value(service(&md, "team-a")).unwrap(),
                serde_json::to_value(&old).unwrap()
            );
        }
    }

    #[test]
    fn a_revision_serves_its_model_read_only_with_probes() {
        let config = OperatorConfig::for_tests("/srv".into());
        let d = deployment(
            &config,
            &md(),
            "team-a",
            3,
            "/artifacts/models/ab",
            "sha256:ab",
            2,
            "00ff",
        );
        assert_eq!(d.metadata.name.as_deref(), Some("digits-r3"));
        let spec = d.spec.unwrap();
        assert_eq!(spec.replicas, Some(2));
        assert_eq!(spec.selector.match_labels.unwrap()[REVISION_LABEL], "3");
        let pod = spec.template.spec.unwrap();
        let c = &pod.containers[0];
        assert_eq!(
            c.readiness_probe
                .as_ref()
                .unwrap()
                .http_get
                .as_ref()
                .unwrap()
                .path
                .as_deref(),
            Some(READY_PATH)
        );
        assert_eq!(c.volume_mounts.as_ref().unwrap()[0].read_only, Some(true));
        let env = c.env.as_ref().unwrap();
        let WorkOrder::Serve(order) =
            WorkOrder::from_env_value(env[0].value.as_deref().unwrap()).unwrap()
        else {
            panic!("not a serve order")
        };
        assert_eq!(
            (order.revision, order.model_dir.as_str()),
            (3, "/artifacts/models/ab")
        );
        assert_eq!(env[1].value.as_deref(), Some("00ff"));
    }

    #[test]
    fn the_service_spans_every_revision() {
        let s = service(&md(), "team-a");
        let selector = s.spec.unwrap().selector.unwrap();
        assert_eq!(selector["modelops.dev/modeldeployment"], "digits");
        assert!(!selector.contains_key(REVISION_LABEL));
    }

    #[test]
    fn model_dirs_come_from_pvc_uris() {
        assert_eq!(
            model_dir("pvc://modelops-artifacts/models/ab").as_deref(),
            Some("/artifacts/models/ab")
        );
        assert_eq!(model_dir("s3://x/y"), None);
    }
}
