//! Pure: a ModelDeployment and its planned revisions in, the Deployment of each revision, the
//! Service and the Secret of its feedback key out.

use crate::config::OperatorConfig;
use crate::controllers::apply::child_labels;
use crate::controllers::workerpod::{
    image, image_pull_policy, resource_requirements, restricted_container_security_context,
    restricted_pod_security_context, scrape_annotations, scratch_volume, store_access, tmp_volume,
    with_scheduling,
};
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, Lifecycle, LifecycleHandler,
    PodSpec, PodTemplateSpec, Probe, Secret, SecretKeySelector, Service, ServicePort, ServiceSpec,
    SleepAction,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource, ResourceExt};
use modelops_api::ModelDeployment;
use modelops_api::serving::{FEEDBACK_KEY_ENV, LIVE_PATH, READY_PATH};
use modelops_api::workorder::{
    SERVING_GRPC_PORT, SERVING_PORT, ServeOrder, WORK_ORDER_ENV, WorkOrder,
};
use std::collections::BTreeMap;

/// The label naming a serving pod's revision.
pub const REVISION_LABEL: &str = "modelops.dev/revision";

/// The port of the Service.
pub const SERVICE_PORT: u16 = 80;

/// The port of a ModelDeployment's Service for the Open Inference Protocol over gRPC.
pub const SERVICE_GRPC_PORT: u16 = SERVING_GRPC_PORT;

/// Seconds a revision's pods may take to become ready before the revision counts as Failed.
pub const PROGRESS_DEADLINE_SECONDS: i32 = 180;

/// The Deployment name of a revision.
pub fn deployment_name(md: &ModelDeployment, revision: i32) -> String {
    // At most 50 characters (`modelops_api::NAME_RULES`), never truncated.
    format!("{}-r{revision}", md.name_any())
}

/// The inference endpoint, as the status shows it.
pub fn endpoint(md: &ModelDeployment, namespace: &str) -> String {
    format!("http://{}.{namespace}.svc:{SERVICE_PORT}", md.name_any())
}

/// The model URI a revision's Deployment serves (from its work order).
pub fn served_model_uri(deployment: &Deployment) -> Option<String> {
    let pod = deployment.spec.as_ref()?.template.spec.as_ref()?;
    let env = pod.containers.first()?.env.as_ref()?;
    let order = env
        .iter()
        .find(|e| e.name == WORK_ORDER_ENV)?
        .value
        .as_deref()?;
    match WorkOrder::from_env_value(order).ok()? {
        WorkOrder::Serve(order) => Some(order.model_uri),
        _ => None,
    }
}

/// The work order of one revision's serving pods.
fn serve_order(
    config: &OperatorConfig,
    md: &ModelDeployment,
    namespace: &str,
    revision: i32,
    model_uri: &str,
    model_digest: &str,
) -> WorkOrder {
    WorkOrder::Serve(ServeOrder {
        namespace: namespace.to_owned(),
        name: md.name_any(),
        revision,
        model_uri: model_uri.to_owned(),
        model_digest: model_digest.to_owned(),
        serving: md.spec.serving.clone(),
        port: SERVING_PORT,
        grpc_port: Some(SERVING_GRPC_PORT),
        store_uri: config.artifacts.root_for(namespace).to_string(),
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
fn serve_container(config: &OperatorConfig, md: &ModelDeployment, order: &WorkOrder) -> Container {
    let template = &md.spec.template;
    let env = |name: &str, value: String| EnvVar {
        name: name.to_owned(),
        value: Some(value),
        ..Default::default()
    };
    let access = store_access(config, true);
    let mounts = access
        .volumes
        .into_iter()
        .chain([tmp_volume(), scratch_volume()])
        .map(|(_, mount)| mount)
        .collect();
    Container {
        name: "serve".into(),
        image: Some(image(config, template, &md.spec.resources)),
        image_pull_policy: Some(image_pull_policy(config, template)),
        args: Some(vec!["serve".into()]),
        env: Some(vec![
            env(WORK_ORDER_ENV, order.to_env_value()),
            // From the ModelDeployment's Secret, never a plain value of the Deployment: whoever
            // may read Deployments (`view`) must not be able to forge feedback.
            EnvVar {
                name: FEEDBACK_KEY_ENV.to_owned(),
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: feedback_secret_name(md),
                        key: FEEDBACK_SECRET_KEY.to_owned(),
                        optional: Some(false),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ]),
        ports: Some(vec![
            ContainerPort {
                name: Some("http".into()),
                container_port: i32::from(SERVING_PORT),
                ..Default::default()
            },
            ContainerPort {
                name: Some("grpc".into()),
                container_port: i32::from(SERVING_GRPC_PORT),
                ..Default::default()
            },
        ]),
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
        env_from: access.env_from,
        resources: Some(resource_requirements(&md.spec.resources)),
        security_context: Some(restricted_container_security_context()),
        volume_mounts: Some(mounts),
        ..Default::default()
    }
}

/// The pod of a revision around its container: the model read-only, no API access.
fn serving_pod_spec(
    config: &OperatorConfig,
    md: &ModelDeployment,
    container: Container,
) -> PodSpec {
    let volumes = store_access(config, true)
        .volumes
        .into_iter()
        .chain([tmp_volume(), scratch_volume()])
        .map(|(volume, _)| volume)
        .collect();
    let spec = PodSpec {
        enable_service_links: Some(false),
        // Serving pods never call the API server, whatever account they run as.
        automount_service_account_token: Some(false),
        security_context: Some(restricted_pod_security_context()),
        termination_grace_period_seconds: Some(30),
        containers: vec![container],
        volumes: Some(volumes),
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
    model_uri: &str,
    model_digest: &str,
    replicas: i32,
) -> Deployment {
    let order = serve_order(config, md, namespace, revision, model_uri, model_digest);
    let container = serve_container(config, md, &order);
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
                    annotations: Some(scrape_annotations(SERVING_PORT)),
                    ..Default::default()
                }),
                spec: Some(serving_pod_spec(config, md, container)),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The key of the feedback key in its Secret.
pub const FEEDBACK_SECRET_KEY: &str = "key";

/// The Secret holding a ModelDeployment's feedback key: `<name>-feedback`.
pub fn feedback_secret_name(md: &ModelDeployment) -> String {
    format!("{}-feedback", md.name_any())
}

/// The Secret of the feedback key (`key`, in hex) every serving pod of every revision reads.
pub fn feedback_secret(md: &ModelDeployment, namespace: &str, key: &str) -> Secret {
    Secret {
        metadata: child_metadata(md, feedback_secret_name(md), namespace, child_labels(md)),
        data: Some(BTreeMap::from([(
            FEEDBACK_SECRET_KEY.to_owned(),
            ByteString(key.as_bytes().to_vec()),
        )])),
        type_: Some("Opaque".into()),
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
            ports: Some(vec![
                ServicePort {
                    name: Some("http".into()),
                    port: i32::from(SERVICE_PORT),
                    target_port: Some(IntOrString::String("http".into())),
                    ..Default::default()
                },
                // HTTP/2 without TLS: `appProtocol` tells meshes and gateways so.
                ServicePort {
                    name: Some("grpc".into()),
                    port: i32::from(SERVICE_GRPC_PORT),
                    target_port: Some(IntOrString::String("grpc".into())),
                    app_protocol: Some("kubernetes.io/h2c".into()),
                    ..Default::default()
                },
            ]),
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
    fn template_settings_and_the_store_reach_the_serving_pods() {
        let config = OperatorConfig::for_tests();
        let d = deployment(
            &config,
            &md_with_everything(),
            "team-a",
            3,
            "s3://modelops/team-a/models/ab",
            "sha256:ab",
            2,
        );
        let pod = d.spec.unwrap().template.spec.unwrap();
        assert_eq!(pod.node_selector.unwrap()["gpu"], "h200");
        assert_eq!(pod.service_account_name.as_deref(), Some("server"));
        assert_eq!(pod.automount_service_account_token, Some(false));
        let c = &pod.containers[0];
        assert_eq!(c.image.as_deref(), Some("registry.example/serve:1"));
        let secret = c.env_from.as_ref().unwrap()[0].secret_ref.clone().unwrap();
        assert_eq!(secret.name, "modelops-artifacts");
        assert!(
            pod.volumes
                .unwrap()
                .iter()
                .all(|v| v.persistent_volume_claim.is_none() && v.host_path.is_none())
        );
        let limits = c.resources.clone().unwrap().limits.unwrap();
        assert_eq!(limits["nvidia.com/gpu"].0, "1");
    }

    #[test]
    fn a_revision_serves_its_model_with_probes() {
        let config = OperatorConfig::for_tests();
        let d = deployment(
            &config,
            &md(),
            "team-a",
            3,
            "s3://modelops/team-a/models/ab",
            "sha256:ab",
            2,
        );
        assert_eq!(d.metadata.name.as_deref(), Some("digits-r3"));
        assert_eq!(
            served_model_uri(&d).as_deref(),
            Some("s3://modelops/team-a/models/ab")
        );
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
        let env = c.env.as_ref().unwrap();
        let WorkOrder::Serve(order) =
            WorkOrder::from_env_value(env[0].value.as_deref().unwrap()).unwrap()
        else {
            panic!("not a serve order")
        };
        assert_eq!(
            (order.revision, order.model_uri.as_str()),
            (3, "s3://modelops/team-a/models/ab")
        );
        assert_eq!(order.store_uri, "s3://modelops/team-a");
        // The feedback key comes from the ModelDeployment's Secret, never as a plain value.
        assert_eq!(env[1].value, None);
        let key = env[1].value_from.clone().unwrap().secret_key_ref.unwrap();
        assert_eq!(
            (key.name.as_str(), key.key.as_str()),
            ("digits-feedback", "key")
        );
    }

    #[test]
    fn the_feedback_key_is_a_secret_of_the_model_deployment() {
        let secret = feedback_secret(&md(), "team-a", "00ff");
        assert_eq!(secret.metadata.name.as_deref(), Some("digits-feedback"));
        assert_eq!(secret.data.unwrap()["key"].0, b"00ff");
        let owner = &secret.metadata.owner_references.unwrap()[0];
        assert_eq!((owner.uid.as_str(), owner.controller), ("u-1", Some(true)));
        assert_eq!(
            secret.metadata.labels.unwrap()["app.kubernetes.io/managed-by"],
            "modelops"
        );
    }

    #[test]
    fn the_service_spans_every_revision() {
        let s = service(&md(), "team-a");
        let selector = s.spec.unwrap().selector.unwrap();
        assert_eq!(selector["modelops.dev/modeldeployment"], "digits");
        assert!(!selector.contains_key(REVISION_LABEL));
    }
}
