//! Pure: a ModelDeployment and its planned revisions in, the Deployment of each revision and the
//! Service out.

use crate::config::OperatorConfig;
use crate::controllers::apply::child_labels;
use crate::controllers::workerpod::{
    artifacts_volume, resource_requirements, restricted_container_security_context,
    restricted_pod_security_context,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::{Resource, ResourceExt};
use modelops_api::ModelDeployment;
use modelops_api::serving::{FEEDBACK_KEY_ENV, LIVE_PATH, READY_PATH};
use modelops_api::workorder::{SERVING_PORT, ServeOrder, WORK_ORDER_ENV, WorkOrder, layout};
use serde_json::json;

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
    let mut pod = json!({
        "enableServiceLinks": false,
        "automountServiceAccountToken": false,
        "securityContext": restricted_pod_security_context(),
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
            // Leave the Service's endpoints before the server stops accepting.
            "lifecycle": {"preStop": {"sleep": {"seconds": 2}}},
            "resources": resource_requirements(&md.spec.resources),
            "securityContext": restricted_container_security_context(),
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
    let owner = md
        .controller_owner_ref(&())
        .expect("a stored ModelDeployment has a uid");
    serde_json::from_value(json!({
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
    }))
    .expect("a valid Deployment")
}

/// The Service over every revision's pods: traffic follows the replica ratio.
pub fn service(md: &ModelDeployment, namespace: &str) -> Service {
    let labels = child_labels(md);
    let owner = md
        .controller_owner_ref(&())
        .expect("a stored ModelDeployment has a uid");
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": md.name_any(), "namespace": namespace, "labels": labels, "ownerReferences": [owner]},
        "spec": {
            "selector": labels,
            "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "http"}],
        },
    }))
    .expect("a valid Service")
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
