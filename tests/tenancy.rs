//! Tenants of the artifact store: what namespace B can do to namespace A's artifacts. B's pods,
//! with B's own Secret, are refused (403) reading and writing A's prepared data, checkpoints and
//! models; a B object that names A's URI is refused by the operator with a condition that says
//! so, before any pod starts.

mod common;

use std::time::Duration;

use common::*;
use k8s_openapi::api::core::v1::Pod;
use kube::api::PostParams;
use modelops_api::ModelDeployment;
use modelops_api::conditions::{Condition, reasons, types};
use modelops_api::workorder::{WORK_ORDER_ENV, WorkOrder};

use serde_json::json;

const HEX: &str = "5f1e0a6fd8d4c6bba2c7bcdd7e0d5e3a4b6c7d8e9f0a1b2c3d4e5f60718293a4";

/// A worker pod in `ns` running `command` with `order`, with the namespace's store Secret (and
/// the iris ConfigMap as its source), as the operator would make it.
async fn start_worker(ns: &TestNamespace, name: &str, command: &str, order: serde_json::Value) {
    let order: WorkOrder = serde_json::from_value(order).expect("a work order");
    let pod: Pod = from_json(json!({
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": false,
            "containers": [{
                "name": "worker",
                "image": "modelops/worker:dev",
                "imagePullPolicy": "IfNotPresent",
                "args": [command],
                "env": [{"name": WORK_ORDER_ENV, "value": order.to_env_value()}],
                "envFrom": [{"secretRef": {"name": "modelops-artifacts"}}],
                "volumeMounts": [
                    {"name": "scratch", "mountPath": "/scratch"},
                    {"name": "source", "mountPath": "/source", "readOnly": true},
                ],
                "securityContext": restricted_security_context(),
            }],
            "volumes": [
                {"name": "scratch", "emptyDir": {}},
                {"name": "source", "configMap": {"name": "iris-data", "items": [{"key": "iris.csv", "path": "data"}]}},
            ],
        }
    }));
    ns.api::<Pod>()
        .create(&PostParams::default(), &pod)
        .await
        .unwrap();
}

/// Creates a ModelDeployment `name` of the model at `uri`, then waits until its condition
/// `type_` satisfies `holds` and returns that condition.
async fn deploy_artifact(
    ns: &TestNamespace,
    name: &str,
    uri: &str,
    type_: &str,
    holds: impl Fn(&Condition) -> bool,
) -> Condition {
    let md: ModelDeployment = from_json(json!({
        "metadata": {"name": name},
        "spec": {"model": {"artifact": {"uri": uri, "digest": format!("sha256:{HEX}")}}},
    }));
    let api = ns.api::<ModelDeployment>();
    api.create(&PostParams::default(), &md).await.unwrap();
    let found = wait(&api, name, Duration::from_secs(120), |md| {
        md.and_then(|m| m.status.as_ref())
            .and_then(|s| s.conditions.get(type_))
            .is_some_and(&holds)
    })
    .await
    .unwrap();
    found
        .status
        .unwrap()
        .conditions
        .get(type_)
        .cloned()
        .unwrap()
}

/// The iris data as the ConfigMap `iris-data` of the examples.
async fn iris_config_map(ns: &TestNamespace) {
    let csv = std::fs::read_to_string(repo_root().join("examples/data/iris.csv")).unwrap();
    let config_map: k8s_openapi::api::core::v1::ConfigMap = from_json(json!({
        "metadata": {"name": "iris-data"}, "data": {"iris.csv": csv},
    }));
    ns.api()
        .create(&PostParams::default(), &config_map)
        .await
        .unwrap();
}

/// The log of a running pod, followed until a line contains `text` (or `timeout` passes).
async fn log_until(pods: &kube::Api<Pod>, name: &str, text: &str, timeout: Duration) -> String {
    use futures::{AsyncBufReadExt, TryStreamExt};
    wait(pods, name, timeout, |pod| {
        pod.and_then(phase) == Some("Running")
    })
    .await;
    let stream = pods
        .log_stream(
            name,
            &kube::api::LogParams {
                follow: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut lines = stream.lines();
    let mut log = String::new();
    let _ = tokio::time::timeout(timeout, async {
        while let Ok(Some(line)) = lines.try_next().await {
            log.push_str(&line);
            log.push('\n');
            if line.contains(text) {
                break;
            }
        }
    })
    .await;
    log
}

/// The termination message of a finished worker pod.
fn termination_message(pod: &Pod) -> String {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
        .and_then(|c| c.state.as_ref()?.terminated.as_ref()?.message.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn another_namespaces_artifacts_are_refused_to_pods_and_to_objects() {
    if skip_without_cluster() {
        return;
    }
    let client = client().await;
    let a = TestNamespace::create(&client, "tenant-a").await;
    let b = TestNamespace::create(&client, "tenant-b").await;
    let (a_root, b_root) = (a.root.clone(), b.root.clone());
    assert_ne!(a_root, b_root);

    // A's artifacts, as A's pods would have left them; and a prepared Dataset of B's own.
    let a_dataset = format!("{a_root}/datasets/iris/{HEX}");
    let a_checkpoints = format!("{a_root}/checkpoints/iris/uid-1");
    let a_model = format!("{a_root}/models/{HEX}");
    let b_dataset = format!("{b_root}/datasets/iris/{HEX}");
    for uri in [
        format!("{a_dataset}/dataset.json"),
        format!("{a_checkpoints}/checkpoint.json"),
        format!("{a_model}/model.json"),
        format!("{b_dataset}/dataset.json"),
    ] {
        write_artifact(&uri, b"{}".to_vec()).await;
    }
    iris_config_map(&b).await;

    // B's pods, with B's Secret: copying A's prepared data or A's checkpoints to train, writing
    // prepared data into A's root, and reading A's model to serve it: each refused by the store.
    let job = example::<modelops_api::TrainingJob>("examples/iris/trainingjob.yaml").spec;
    let dataset = example::<modelops_api::Dataset>("examples/iris/dataset.yaml").spec;
    let train = |dataset_uri: &str| {
        json!({"kind": "train", "namespace": b.name, "name": "iris", "uid": "uid-1",
               "spec": job, "datasetUri": dataset_uri, "datasetDigest": format!("sha256:{HEX}"),
               "checkpointUri": a_checkpoints, "modelsUri": format!("{b_root}/models")})
    };
    let finishing = [
        ("read-data", "train", train(&a_dataset), a_dataset.clone()),
        (
            "read-checkpoints",
            "train",
            train(&b_dataset),
            a_checkpoints.clone(),
        ),
        (
            "write-data",
            "prepare",
            json!({"kind": "prepare", "namespace": b.name, "name": "iris", "spec": dataset,
                   "sourcePath": "/source/data", "outputUri": format!("{a_root}/datasets/iris")}),
            format!("{a_root}/datasets/iris"),
        ),
    ];
    for (name, command, order, _) in &finishing {
        start_worker(&b, name, command, order.clone()).await;
    }
    start_worker(
        &b,
        "read-model",
        "serve",
        json!({"kind": "serve", "namespace": b.name, "name": "iris", "revision": 1,
               "modelUri": a_model, "modelDigest": format!("sha256:{HEX}"), "storeUri": b_root}),
    )
    .await;
    for (name, _, _, uri) in &finishing {
        let (pod, log) = finished_pod(&b.api(), name, Duration::from_secs(180)).await;
        assert_eq!(phase(&pod), Some("Failed"), "{name} did not fail:\n{log}");
        let message = termination_message(&pod);
        assert!(
            message.contains("ArtifactAccessDenied") && message.contains(uri.as_str()),
            "{name}: {message}\n{log}"
        );
    }
    // The server stays up, never ready, and says why: follow its log to that line.
    let log = log_until(
        &b.api::<Pod>(),
        "read-model",
        "NOT READY",
        Duration::from_secs(120),
    )
    .await;
    assert!(
        log.contains("NOT READY") && log.contains("refused access") && log.contains(&a_model),
        "{log}"
    );

    // A ModelDeployment of B that names A's model is refused before any pod starts.
    let stalled = deploy_artifact(&b, "borrowed", &a_model, types::STALLED, |c| {
        c.status == "True"
    })
    .await;
    assert_eq!(stalled.reason, reasons::FORBIDDEN_ARTIFACT_URI);
    assert!(
        stalled.message.contains("spec.model.artifact.uri")
            && stalled.message.contains(&format!("namespace {}", a.name)),
        "{}",
        stalled.message
    );
    assert!(
        b.api::<k8s_openapi::api::apps::v1::Deployment>()
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty(),
        "a Deployment was made for a refused model"
    );
    b.delete().await;
    a.delete().await;
}

#[tokio::test]
async fn a_namespace_without_its_store_secret_is_told_which_secret_is_missing() {
    if skip_without_cluster() {
        return;
    }
    let client = client().await;
    let ns = TestNamespace::create(&client, "no-secret").await;
    let root = ns.root.clone();
    ns.api::<k8s_openapi::api::core::v1::Secret>()
        .delete("modelops-artifacts", &Default::default())
        .await
        .unwrap();
    iris_config_map(&ns).await;
    let dataset: modelops_api::Dataset = example("examples/iris/dataset.yaml");
    ns.api()
        .create(&PostParams::default(), &dataset)
        .await
        .unwrap();
    let stalled = wait(
        &ns.api::<modelops_api::Dataset>(),
        "iris",
        Duration::from_secs(180),
        |d| {
            d.and_then(|d| d.status.as_ref())
                .is_some_and(|s| s.conditions.is_true(types::STALLED))
        },
    )
    .await
    .unwrap();
    let condition = stalled
        .status
        .unwrap()
        .conditions
        .get(types::STALLED)
        .cloned()
        .unwrap();
    // The reason names the Secret to create and the URI the pod could not reach; the pod was
    // not retried (a missing Secret is not fixed by waiting).
    for says in [
        "ArtifactCredentialsMissing",
        "modelops-artifacts",
        &format!("{root}/datasets/iris"),
    ] {
        assert!(
            condition.message.contains(says),
            "{says}: {}",
            condition.message
        );
    }
    ns.delete().await;
}

#[tokio::test]
async fn a_model_that_is_not_in_the_store_is_named_on_the_model_deployment() {
    if skip_without_cluster() {
        return;
    }
    let client = client().await;
    let ns = TestNamespace::create(&client, "no-model").await;
    let root = ns.root.clone();
    // In the namespace's own root, so the operator lets it through; but nothing is there.
    let uri = format!("{root}/models/{HEX}");
    let ready = deploy_artifact(&ns, "missing", &uri, types::READY, |c| {
        c.reason == reasons::MODEL_NOT_SERVABLE
    })
    .await;
    assert_eq!(ready.status, "False");
    assert!(
        ready.message.contains("ArtifactNotFound") || ready.message.contains("no model.json"),
        "{}",
        ready.message
    );
    assert!(ready.message.contains(&uri), "{}", ready.message);
    ns.delete().await;
}

#[tokio::test]
async fn a_child_name_taken_by_someone_elses_object_is_not_adopted() {
    use k8s_openapi::api::batch::v1::Job;
    use modelops_api::Dataset;
    if skip_without_cluster() {
        return;
    }
    let client = client().await;
    let ns = TestNamespace::create(&client, "adopt").await;
    iris_config_map(&ns).await;
    let mut dataset: Dataset = example("examples/iris/dataset.yaml");
    dataset.metadata.namespace = Some(ns.name.clone());
    // Someone else's Job, suspended (it runs nothing), under the name the Dataset's would have.
    let taken = modelops_operator::controllers::dataset::build::job_name(&dataset);
    let squatter: Job = from_json(json!({
        "metadata": {"name": taken, "labels": {"app.kubernetes.io/managed-by": "someone-else"}},
        "spec": {"suspend": true, "template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "c", "image": "docker.io/modelops/worker:dev"}]}}},
    }));
    let jobs = ns.api::<Job>();
    jobs.create(&PostParams::default(), &squatter)
        .await
        .unwrap();
    ns.api::<Dataset>()
        .create(&PostParams::default(), &dataset)
        .await
        .unwrap();
    // The operator says why it does not go on, on the Dataset, where its user looks.
    let note = {
        use futures::StreamExt;
        use k8s_openapi::api::core::v1::Event;
        use kube::runtime::{WatchStreamExt, watcher};
        let selector = format!("reason={},involvedObject.name=iris", reasons::NAME_TAKEN);
        let mut events = watcher(
            ns.api::<Event>(),
            watcher::Config::default().fields(&selector),
        )
        .applied_objects()
        .boxed();
        let event = tokio::time::timeout(Duration::from_secs(60), events.next())
            .await
            .expect("a NameTaken event on the Dataset")
            .unwrap()
            .unwrap();
        // Each retry says it again: counted on that one Event, not a new Event each time.
        let repeated = async {
            loop {
                let event = events.next().await.unwrap().unwrap();
                if event
                    .series
                    .as_ref()
                    .and_then(|s| s.count)
                    .is_some_and(|c| c >= 2)
                {
                    return event;
                }
            }
        };
        let repeated = tokio::time::timeout(Duration::from_secs(120), repeated)
            .await
            .expect("the NameTaken event counted again");
        assert_eq!(repeated.metadata.name, event.metadata.name);
        let all = ns
            .api::<Event>()
            .list(&kube::api::ListParams::default().fields(&selector))
            .await
            .unwrap();
        assert_eq!(all.items.len(), 1, "{:?}", all.items);
        event.message.unwrap_or_default()
    };
    assert!(note.contains("not controlled by Dataset iris"), "{note}");
    // And the Job is as its owner left it: not adopted, not changed.
    let job = jobs.get(&taken).await.unwrap();
    assert!(job.metadata.owner_references.is_none(), "{job:?}");
    assert_eq!(
        job.metadata.labels.unwrap()["app.kubernetes.io/managed-by"],
        "someone-else"
    );
    assert_eq!(job.spec.unwrap().suspend, Some(true));
    ns.delete().await;
}

#[tokio::test]
async fn the_feedback_key_is_out_of_reach_of_view_and_the_operator_writes_only_its_own_secrets() {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::authorization::v1::SubjectAccessReview;
    use k8s_openapi::api::core::v1::Secret;
    if skip_without_cluster() {
        return;
    }
    let client = client().await;
    let ns = TestNamespace::create(&client, "feedback-key").await;
    // Its pods start (they answer their readiness check) only if they got the key from the
    // Secret: a missing one would hold them in CreateContainerConfigError.
    let uri = format!("{}/models/{HEX}", ns.root);
    deploy_artifact(&ns, "keyed", &uri, types::READY, |c| {
        c.reason == reasons::MODEL_NOT_SERVABLE
    })
    .await;
    let deployment = ns.api::<Deployment>().get("keyed-r1").await.unwrap();
    let container = &deployment.spec.unwrap().template.spec.unwrap().containers[0];
    let key = container
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "MODELOPS_FEEDBACK_KEY")
        .unwrap();
    assert_eq!(
        key.value, None,
        "the key is not a plain value of the Deployment"
    );
    let reference = key.value_from.clone().unwrap().secret_key_ref.unwrap();
    assert_eq!(reference.name, "keyed-feedback");
    let secret = ns.api::<Secret>().get("keyed-feedback").await.unwrap();
    assert_eq!(secret.data.unwrap()["key"].0.len(), 64, "32 bytes in hex");
    assert_eq!(
        secret.metadata.owner_references.unwrap()[0].name,
        "keyed",
        "owned by the ModelDeployment"
    );

    // Someone with `view` in the namespace reads the Deployments, not the Secret.
    let may = |user: String, resource: &str, name: &str| {
        let namespace = ns.name.clone();
        let (resource, name) = (resource.to_owned(), name.to_owned());
        let client = client.clone();
        async move {
            let review: SubjectAccessReview = from_json(json!({"spec": {
                "user": user,
                "groups": ["system:serviceaccounts", "system:authenticated"],
                "resourceAttributes": {"namespace": namespace, "verb": "get",
                    "group": if resource == "deployments" { "apps" } else { "" },
                    "resource": resource, "name": name},
            }}));
            let answer = kube::Api::<SubjectAccessReview>::all(client)
                .create(&PostParams::default(), &review)
                .await
                .unwrap();
            answer.status.unwrap().allowed
        }
    };
    let binding: k8s_openapi::api::rbac::v1::RoleBinding = from_json(json!({
        "metadata": {"name": "reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": ns.name}],
    }));
    ns.api::<k8s_openapi::api::rbac::v1::RoleBinding>()
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    let reader = format!("system:serviceaccount:{}:reader", ns.name);
    // The authorizer learns of the new binding through its own watch: ask until it has.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !may(reader.clone(), "deployments", "keyed-r1").await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "`view` never let the reader get the Deployment"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!may(reader, "secrets", "keyed-feedback").await);

    // The operator's own ServiceAccount may write only Secrets labelled as its own, and read none.
    let mut config = kube::Config::infer().await.unwrap();
    config.auth_info.impersonate =
        Some("system:serviceaccount:modelops-system:modelops-operator".into());
    let operator = kube::Client::try_from(config).unwrap();
    let secrets = kube::Api::<Secret>::namespaced(operator, &ns.name);
    let unlabelled: Secret =
        from_json(json!({"metadata": {"name": "loot"}, "stringData": {"a": "b"}}));
    let refused = secrets
        .create(&PostParams::default(), &unlabelled)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("writes only Secrets labelled app.kubernetes.io/managed-by=modelops"),
        "{refused}"
    );
    let read = secrets.get("keyed-feedback").await.unwrap_err().to_string();
    assert!(read.contains("forbidden"), "{read}");
    // Nor take over a user's Secret by labelling it as its own.
    let users: Secret = from_json(json!({"metadata": {"name": "users"}, "stringData": {"a": "b"}}));
    ns.api::<Secret>()
        .create(&PostParams::default(), &users)
        .await
        .unwrap();
    let takeover: Secret = from_json(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "users", "labels": {"app.kubernetes.io/managed-by": "modelops"}},
    }));
    let refused = secrets
        .patch(
            "users",
            &kube::api::PatchParams::apply("modelops"),
            &kube::api::Patch::Apply(&takeover),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("changes only Secrets that were already labelled"),
        "{refused}"
    );
    ns.delete().await;
}
