//! End to end on the test bed, with the operator installed by the chart: ModelDeployments serve
//! trained models through one Service, roll new models out as canaries without failing a
//! request, refuse bad requests, and never serve a model whose digest does not match.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use kube::api::{ListParams, LogParams, Patch, PatchParams, PostParams};
use modelops_api::conditions::types;
use modelops_api::{Dataset, ModelDeployment, TrainingJob};
use serde_json::{Value, json};

fn infer_body(rows: &[&Vec<f64>]) -> Vec<u8> {
    let data: Vec<f64> = rows.iter().flat_map(|r| r.iter().copied()).collect();
    serde_json::to_vec(&json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [rows.len(), 64], "data": data}]}))
        .unwrap()
}

/// Prepares the digits Dataset and trains two models on it: `digits-a` (an mlp) and `digits-b`
/// (the example's cnn).
async fn two_models(ns: &TestNamespace) {
    let file = repo_root().join("examples/data/digits.csv");
    let map: ConfigMap = from_json(json!({
        "metadata": {"name": "digits-data"},
        "data": {"digits.csv": std::fs::read_to_string(file).unwrap()},
    }));
    ns.api::<ConfigMap>()
        .create(&PostParams::default(), &map)
        .await
        .unwrap();
    let dataset: Dataset = example("examples/digits/dataset.yaml");
    ns.api::<Dataset>()
        .create(&PostParams::default(), &dataset)
        .await
        .unwrap();
    let mut a: TrainingJob = example("examples/digits/trainingjob.yaml");
    a.metadata.name = Some("digits-a".into());
    a.spec.model =
        serde_json::from_value(json!({"architecture": "mlp", "mlp": {"hiddenLayers": [64]}}))
            .unwrap();
    a.spec.resources.gpu = 0;
    let mut b: TrainingJob = example("examples/digits/trainingjob.yaml");
    b.metadata.name = Some("digits-b".into());
    for job in [a, b] {
        ns.api::<TrainingJob>()
            .create(&PostParams::default(), &job)
            .await
            .unwrap();
    }
    for name in ["digits-a", "digits-b"] {
        training_succeeded(ns, name, Duration::from_secs(300)).await;
    }
}

async fn model_deployment(ns: &TestNamespace, manifest: Value) -> ModelDeployment {
    let md: ModelDeployment = from_json(manifest);
    ns.api::<ModelDeployment>()
        .create(&PostParams::default(), &md)
        .await
        .unwrap()
}

async fn cluster_ip(ns: &TestNamespace, name: &str) -> String {
    ns.api::<Service>()
        .get(name)
        .await
        .unwrap()
        .spec
        .unwrap()
        .cluster_ip
        .unwrap()
}

#[tokio::test]
async fn the_digits_example_serves_after_one_kubectl_apply_server_side_k() {
    if skip_without_cluster() {
        return;
    }
    let client = client().await;
    let ns = TestNamespace::create(&client, "kustomize").await;
    let viewer = dashboard_viewer(&ns.name).await;
    let dashboard = dashboard_url().await;
    apply_kustomization(&ns.name, "examples/digits");

    // The dashboard while it trains: its curves have one point per finished epoch, in each of
    // the three series (train and validation loss, validation accuracy).
    let jobs = ns.api::<TrainingJob>();
    let epochs = |j: &TrainingJob| {
        j.status
            .as_ref()
            .and_then(|s| s.curves.as_ref())
            .map_or(0, |c| c.epochs.len())
    };
    let running = wait(&jobs, "digits", Duration::from_secs(300), |j| {
        j.is_some_and(|j| epochs(j) >= 1)
    })
    .await
    .unwrap();
    let job_page = format!("/namespaces/{}/trainingjobs/digits", ns.name);
    let dom = chromium(&dashboard, &viewer, &job_page, Some("trainingjob-training"));
    let after = jobs.get("digits").await.unwrap();
    let points = dom.matches("class=\"point\"").count();
    assert!(
        (3 * epochs(&running)..=3 * epochs(&after)).contains(&points) && points.is_multiple_of(3),
        "{points} points, {} to {} epochs:\n{dom}",
        epochs(&running),
        epochs(&after)
    );

    serving_stable(&ns, "digits", 1).await;
    // Healthy once every replica the spec asks for serves; in progress until then.
    replicas_ready(&ns, "digits", 2).await;
    assert_health(
        &ns.name,
        "ModelDeployment",
        "digits",
        ("Current", "Healthy"),
    );
    assert_health(&ns.name, "Dataset", "digits", ("Current", "Healthy"));

    // Each page once it serves.
    let done = jobs.get("digits").await.unwrap();
    let dom = chromium(&dashboard, &viewer, &job_page, Some("trainingjob"));
    assert_eq!(
        dom.matches("class=\"point\"").count(),
        3 * epochs(&done),
        "{dom}"
    );
    assert!(
        dom.contains("Model card") && dom.contains(&done.status.unwrap().model.unwrap().digest)
    );
    let overview = format!("/namespaces/{}", ns.name);
    // The namespaces this viewer may see: its own alone, whatever else the cluster runs.
    let dom = chromium(&dashboard, &viewer, "/", Some("namespaces"));
    let rows: Vec<&str> = dom
        .split("<tr><td><a href=\"")
        .skip(1)
        .map(|rest| &rest[..rest.find('"').unwrap()])
        .collect();
    assert_eq!(rows, [overview.as_str()], "{dom}");
    let dom = chromium(&dashboard, &viewer, &overview, Some("overview"));
    for kind in ["Dataset", "TrainingJob", "ModelDeployment", "Monitor"] {
        assert!(
            dom.contains(&format!("data-kind=\"{kind}\" data-name=\"digits\"")),
            "{dom}"
        );
    }
    assert!(dom.contains("class=\"pipeline\""), "{dom}");
    let dom = chromium(
        &dashboard,
        &viewer,
        &format!("{overview}/datasets/digits"),
        Some("dataset"),
    );
    assert!(
        dom.contains("class=\"part train\"") && dom.contains("rows rejected"),
        "{dom}"
    );
    // The profile as a serving pod answers it: a histogram for each of the 64 pixels.
    assert_eq!(dom.matches("class=\"histogram\"").count(), 64, "{dom}");
    assert!(dom.contains("data-feature=\"pixel_63\""), "{dom}");
    let dom = chromium(
        &dashboard,
        &viewer,
        &format!("{overview}/modeldeployments/digits"),
        Some("modeldeployment"),
    );
    assert!(
        dom.contains("data-revision=\"1\" data-state=\"Stable\""),
        "{dom}"
    );
    assert!(dom.contains("class=\"timeline\""), "{dom}");
    ns.delete().await;
}

#[tokio::test]
async fn a_second_model_rolls_out_as_a_canary_without_a_failed_request() {
    if skip_without_cluster() {
        return;
    }
    let client = client().await;
    let ns = TestNamespace::create(&client, "canary").await;
    two_models(&ns).await;
    model_deployment(
        &ns,
        json!({
            "metadata": {"name": "digits"},
            "spec": {
                "model": {"trainingJobRef": {"name": "digits-a"}},
                "replicas": 2,
                "strategy": {"type": "Canary", "canary": {"steps": [{"weight": 50, "pause": "15s"}, {"weight": 100, "pause": "5s"}]}},
            }
        }),
    )
    .await;
    serving_stable(&ns, "digits", 1).await;
    let ip = cluster_ip(&ns, "digits").await;

    // Traffic from the host through the Service, all along.
    let rows = digits_rows();
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = std::thread::spawn({
        let stop = stop.clone();
        move || {
            let mut answers = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let body = infer_body(&[&rows[i % rows.len()].0]);
                i += 1;
                let (answer, _) =
                    Answer::of(http(&ip, 80, "POST", "/v2/models/digits/infer", &body));
                answers.push(answer);
            }
            answers
        }
    });

    // The user points the ModelDeployment at the second model.
    ns.api::<ModelDeployment>()
        .patch(
            "digits",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"model": {"trainingJobRef": {"name": "digits-b"}}}})),
        )
        .await
        .unwrap();
    wait(
        &ns.api::<ModelDeployment>(),
        "digits",
        Duration::from_secs(120),
        |md| {
            md.and_then(|md| md.status.as_ref())
                .is_some_and(|s| s.canary_weight == Some(50) && s.ready_replicas == Some(2))
        },
    )
    .await;
    let canary_seen = Instant::now();
    assert_health(
        &ns.name,
        "ModelDeployment",
        "digits",
        ("InProgress", "Progressing"),
    );
    let promoted = serving_stable(&ns, "digits", 2).await;
    let promoted_at = Instant::now();
    replicas_ready(&ns, "digits", 2).await;
    assert_health(
        &ns.name,
        "ModelDeployment",
        "digits",
        ("Current", "Healthy"),
    );
    // Revision 1 keeps no pod once promoted.
    let pods = ns.api::<Pod>();
    let r1_gone = async {
        loop {
            let left = pods
                .list(&ListParams::default().labels("modelops.dev/revision=1"))
                .await
                .unwrap();
            if left.items.is_empty() {
                break;
            }
            let name = left.items[0].metadata.name.clone().unwrap();
            wait(&pods, &name, Duration::from_secs(60), |p| p.is_none()).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(90), r1_gone)
        .await
        .expect("revision 1's pods end");
    let gone_at = Instant::now();
    // Some traffic with revision 2 alone.
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        tokio::task::yield_now().await;
    }
    stop.store(true, Ordering::Relaxed);
    let answers = traffic.join().unwrap();

    assert_no_failed_answers(&answers);
    let during: std::collections::BTreeSet<&str> = answers
        .iter()
        .filter(|a| a.at >= canary_seen && a.at <= promoted_at)
        .filter_map(|a| a.version.as_deref())
        .collect();
    assert!(
        during.contains("1") && during.contains("2"),
        "during the canary: {during:?}"
    );
    let after: std::collections::BTreeSet<&str> = answers
        .iter()
        .filter(|a| a.at > gone_at)
        .filter_map(|a| a.version.as_deref())
        .collect();
    assert_eq!(after, ["2"].into_iter().collect(), "after promotion");
    let status = promoted.status.unwrap();
    assert_eq!(status.current_revision, Some(2));
    let states: Vec<(i32, String)> = status
        .revisions
        .iter()
        .map(|r| (r.revision, format!("{:?}", r.state)))
        .collect();
    assert_eq!(
        states,
        [(2, "Stable".to_owned()), (1, "Superseded".to_owned())]
    );
    ns.delete().await;
}

#[tokio::test]
async fn bad_requests_get_a_4xx_json_error_and_the_metrics_have_every_series() {
    if skip_without_cluster() {
        return;
    }
    let client = client().await;
    let ns = TestNamespace::create(&client, "badreq").await;
    two_models(&ns).await;
    model_deployment(&ns, json!({"metadata": {"name": "digits"}, "spec": {"model": {"trainingJobRef": {"name": "digits-a"}}, "replicas": 2}})).await;
    serving_stable(&ns, "digits", 1).await;
    let ip = cluster_ip(&ns, "digits").await;
    let rows = digits_rows();
    let good = infer_body(&[&rows[0].0, &rows[1].0]);
    let post = |path: &str, body: &[u8]| http(&ip, 80, "POST", path, body).unwrap();

    let (status, text) = post("/v2/models/digits/infer", &good);
    assert_eq!(status, 200, "{text}");
    let response: Value = serde_json::from_str(&text).unwrap();
    let ids = response["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "feedback_id")
        .unwrap()["data"]
        .clone();
    let id = ids[0].as_str().unwrap().to_owned();

    let wrong_shape = serde_json::to_vec(&json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}]})).unwrap();
    let wrong_type = serde_json::to_vec(&json!({"inputs": [{"name": "input", "datatype": "BYTES", "shape": [1, 64], "data": vec!["x"; 64]}]})).unwrap();
    let mut forged = id.clone();
    forged.replace_range(forged.len() - 4.., "AAAA");
    let forged = serde_json::to_vec(&json!({"id": forged, "label": "3"})).unwrap();
    let huge = vec![b' '; 5 << 20];
    let cases: [(&str, &str, &[u8], u16); 6] = [
        (
            "malformed JSON",
            "/v2/models/digits/infer",
            b"{\"inputs\": [",
            400,
        ),
        ("wrong shape", "/v2/models/digits/infer", &wrong_shape, 400),
        (
            "wrong datatype",
            "/v2/models/digits/infer",
            &wrong_type,
            400,
        ),
        ("unknown model", "/v2/models/nope/infer", &good, 404),
        ("oversized body", "/v2/models/digits/infer", &huge, 413),
        (
            "forged feedback id",
            "/v2/models/digits/feedback",
            &forged,
            400,
        ),
    ];
    for (what, path, body, expected) in cases {
        let (status, text) = post(path, body);
        assert!((400..500).contains(&status), "{what}: {status} {text}");
        assert_eq!(status, expected, "{what}: {text}");
        let error: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {text}"));
        assert!(
            error["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{what}: {error}"
        );
        // The server keeps serving.
        assert_eq!(
            post("/v2/models/digits/infer", &good).0,
            200,
            "after {what}"
        );
    }
    let (status, text) = post(
        "/v2/models/digits/feedback",
        &serde_json::to_vec(&json!({"id": id, "label": rows[0].1})).unwrap(),
    );
    assert_eq!(status, 200, "{text}");

    // Every per-revision series, summed over the pods.
    let pods = ns
        .api::<Pod>()
        .list(&ListParams::default().labels("modelops.dev/modeldeployment=digits"))
        .await
        .unwrap();
    let mut metrics = String::new();
    for pod in pods.items {
        let pod_ip = pod.status.unwrap().pod_ip.unwrap();
        metrics.push_str(&http(&pod_ip, 8080, "GET", "/metrics", b"").unwrap().1);
    }
    for series in [
        "modelops_requests_total{",
        "modelops_request_duration_seconds_bucket{",
        "modelops_predictions_total{",
        "modelops_input_feature_bin_total{",
        "modelops_feedback_total{",
    ] {
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with(series) && l.contains("revision=\"1\"")),
            "no {series} series for revision 1 in:\n{metrics}"
        );
    }
    ns.delete().await;
}

#[tokio::test]
async fn a_model_whose_digest_does_not_match_is_never_served() {
    if skip_without_cluster() {
        return;
    }
    let client = client().await;
    let ns = TestNamespace::create(&client, "corrupt").await;
    two_models(&ns).await;
    let job = ns.api::<TrainingJob>().get("digits-a").await.unwrap();
    let model = job.status.unwrap().model.unwrap();
    let wrong = format!("sha256:{}", "0".repeat(64));
    model_deployment(
        &ns,
        json!({"metadata": {"name": "digits"}, "spec": {"model": {"artifact": {"uri": model.uri, "digest": &wrong}}}}),
    )
    .await;
    // The serving pod starts, says why it will not serve, and never turns ready.
    wait(
        &ns.api::<Deployment>(),
        "digits-r1",
        Duration::from_secs(120),
        |d| {
            d.and_then(|d| d.status.as_ref()?.replicas)
                .is_some_and(|n| n >= 1)
        },
    )
    .await;
    let pods = ns.api::<Pod>();
    let list = pods
        .list(&ListParams::default().labels("modelops.dev/modeldeployment=digits"))
        .await
        .unwrap();
    let name = list.items[0].metadata.name.clone().unwrap();
    wait(&pods, &name, Duration::from_secs(120), |p| {
        p.and_then(phase) == Some("Running")
    })
    .await;
    let log = tokio::time::timeout(Duration::from_secs(60), async {
        use futures::{AsyncBufReadExt, TryStreamExt};
        let stream = pods
            .log_stream(
                &name,
                &LogParams {
                    follow: true,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let mut lines = stream.lines();
        let mut seen = String::new();
        while let Some(line) = lines.try_next().await.unwrap() {
            seen.push_str(&line);
            seen.push('\n');
            if line.starts_with("NOT READY") {
                break;
            }
        }
        seen
    })
    .await
    .expect("the serving pod says why it does not serve");
    let reason = log.lines().last().unwrap_or_default();
    assert!(
        reason.contains("digest") && reason.contains(&wrong[7..]),
        "{log}"
    );
    let pod = pods.get(&name).await.unwrap();
    let ready = pod
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.status, "False");
    let md = ns.api::<ModelDeployment>().get("digits").await.unwrap();
    assert!(!md.status.unwrap().conditions.is_true(types::READY));
    // No endpoint: the Service routes to nothing.
    let deployment = ns.api::<Deployment>().get("digits-r1").await.unwrap();
    assert_eq!(deployment.status.unwrap().ready_replicas.unwrap_or(0), 0);
    ns.delete().await;
}

#[tokio::test]
async fn two_replicas_answer_the_test_split_with_the_offline_accuracy_and_lose_no_request_when_one_is_deleted()
 {
    if skip_without_cluster() {
        return;
    }
    let client = client().await;
    let ns = TestNamespace::create(&client, "accuracy").await;
    two_models(&ns).await;
    model_deployment(&ns, json!({"metadata": {"name": "digits"}, "spec": {"model": {"trainingJobRef": {"name": "digits-b"}}, "replicas": 2}})).await;
    serving_stable(&ns, "digits", 1).await;
    // Ready means servable: requests sent the moment it turns true all succeed.
    let ip = cluster_ip(&ns, "digits").await;
    let row = &digits_rows()[0].0;
    for i in 0..20 {
        let (status, text) = http(
            &ip,
            80,
            "POST",
            "/v2/models/digits/infer",
            &infer_body(&[row]),
        )
        .unwrap_or_else(|e| panic!("request {i} right after Ready: {e}"));
        assert_eq!(status, 200, "request {i} right after Ready: {text}");
    }
    replicas_ready(&ns, "digits", 2).await;

    let dataset = ns
        .api::<Dataset>()
        .get("digits")
        .await
        .unwrap()
        .status
        .unwrap();
    let job = ns
        .api::<TrainingJob>()
        .get("digits-b")
        .await
        .unwrap()
        .status
        .unwrap();
    let offline = job.model.unwrap().metrics.test_accuracy.unwrap();
    let (rows, labels) = raw_test_split(&dataset).await;
    assert_eq!(rows.len(), 179);

    // One request per row, spread by the Service over both replicas.
    let mut correct = 0;
    for (row, label) in rows.iter().zip(&labels) {
        let (status, text) = http(
            &ip,
            80,
            "POST",
            "/v2/models/digits/infer",
            &infer_body(&[row]),
        )
        .unwrap();
        assert_eq!(status, 200, "{text}");
        let response: Value = serde_json::from_str(&text).unwrap();
        let predicted = response["outputs"][0]["data"][0]
            .as_str()
            .unwrap()
            .to_owned();
        if predicted == dataset.classes[*label as usize] {
            correct += 1;
        }
    }
    // The status shows the offline accuracy to 3 decimals: on these 179 rows one answer more
    // or less moves it by 0.0056, so equal rounded values are equal counts.
    let served = correct as f64 / rows.len() as f64;
    assert_eq!(
        (served * 1000.0).round() / 1000.0,
        offline,
        "served accuracy {served}, offline {offline}"
    );

    // A serving pod deleted under 50 requests a second: it leaves the Service's endpoints
    // before it stops answering, the other replica takes its share, and no request fails.
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = std::thread::spawn({
        let (stop, ip, row) = (stop.clone(), ip.clone(), row.clone());
        move || {
            let mut answers = Vec::new();
            let start = Instant::now();
            let mut sent = 0u32;
            while !stop.load(Ordering::Relaxed) {
                // Paced at 50 a second: the n-th request goes at n × 20 ms.
                let due = start + Duration::from_millis(20) * sent;
                if let Some(ahead) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(ahead);
                }
                sent += 1;
                let body = infer_body(&[&row]);
                answers.push(Answer::of(http(&ip, 80, "POST", "/v2/models/digits/infer", &body)).0);
            }
            answers
        }
    });
    let pods = ns.api::<Pod>();
    let serving = pods
        .list(&ListParams::default().labels("modelops.dev/revision=1"))
        .await
        .unwrap();
    let victim = serving.items[0].metadata.name.clone().unwrap();
    pods.delete(&victim, &Default::default()).await.unwrap();
    let deleted = Instant::now();
    // Until the pod is gone and its replacement serves: both replicas ready again.
    wait(&pods, &victim, Duration::from_secs(90), |p| p.is_none()).await;
    wait(
        &ns.api::<Deployment>(),
        "digits-r1",
        Duration::from_secs(90),
        |d| d.and_then(|d| d.status.as_ref()?.ready_replicas) == Some(2),
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    let answers = traffic.join().unwrap();
    let after = answers.iter().filter(|a| a.at >= deleted).count();
    let seconds = deleted.elapsed().as_secs_f64();
    println!("{after} requests in the {seconds:.1} s from the pod's deletion to its replacement");
    assert!(
        after as f64 >= 20.0 * seconds,
        "the traffic fell to {after} requests in {seconds:.1} s"
    );
    assert_no_failed_answers(&answers);
    ns.delete().await;
}

/// A scripted module (`torch.jit.save`) for iris: 4 inputs, 3 logits, made with the torch of
/// the build's virtual environment.
fn scripted_iris_module() -> Vec<u8> {
    let dir = std::env::temp_dir().join(format!("modelops-torchscript-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let module = dir.join("net.pt");
    let python =
        std::env::var("VIRTUAL_ENV").map_or("python3".into(), |venv| format!("{venv}/bin/python"));
    let status = std::process::Command::new(&python)
        .arg(repo_root().join("worker/tests/fixtures/script_iris_net.py"))
        .arg(&module)
        .status()
        .expect("run python");
    assert!(status.success(), "{python} could not script the module");
    let bytes = std::fs::read(&module).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    bytes
}

#[tokio::test]
async fn a_torchscript_module_uploaded_to_s3_trains_and_serves() {
    if skip_without_cluster() {
        return;
    }
    let client = client().await;
    let ns = TestNamespace::create(&client, "torchscript").await;
    let root = ns.root.clone();
    write_artifact(
        &format!("{root}/user-models/net.pt"),
        scripted_iris_module(),
    )
    .await;
    let csv = std::fs::read_to_string(repo_root().join("examples/data/iris.csv")).unwrap();
    let map: ConfigMap =
        from_json(json!({"metadata": {"name": "iris-data"}, "data": {"iris.csv": csv}}));
    ns.api::<ConfigMap>()
        .create(&PostParams::default(), &map)
        .await
        .unwrap();
    let dataset: Dataset = example("examples/iris/dataset.yaml");
    ns.api::<Dataset>()
        .create(&PostParams::default(), &dataset)
        .await
        .unwrap();
    let job: TrainingJob = from_json(json!({
        "metadata": {"name": "scripted"},
        "spec": {
            "datasetRef": {"name": "iris"},
            "task": "classification",
            "model": {"architecture": "torchscript", "torchscript": {"path": "user-models/net.pt"}},
            "hyperparameters": {"epochs": 60, "batchSize": 16, "optimizer": {"type": "adamw", "learningRate": 0.01, "weightDecay": 0.01}, "seed": 1},
            "resources": {"cpu": "500m", "memory": "512Mi"},
        }
    }));
    ns.api::<TrainingJob>()
        .create(&PostParams::default(), &job)
        .await
        .unwrap();
    let trained = training_succeeded(&ns, "scripted", Duration::from_secs(300)).await;
    let model = trained.status.unwrap().model.unwrap();
    assert!(
        model.metrics.test_accuracy.unwrap() >= 0.85,
        "{:?}",
        model.metrics
    );
    // The module travels with the model, in the namespace's store.
    assert!(
        model.uri.starts_with(&format!("{root}/models/")),
        "{}",
        model.uri
    );
    assert!(
        !read_artifact(&format!("{}/module.pt", model.uri))
            .await
            .is_empty()
    );

    model_deployment(
        &ns,
        json!({"metadata": {"name": "iris"}, "spec": {"model": {"trainingJobRef": {"name": "scripted"}}, "replicas": 1}}),
    )
    .await;
    serving_stable(&ns, "iris", 1).await;
    let ip = cluster_ip(&ns, "iris").await;
    let body = serde_json::to_vec(
        &json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [2, 4],
        "data": [5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3]}]}),
    )
    .unwrap();
    let (status, text) = http(&ip, 80, "POST", "/v2/models/iris/infer", &body).unwrap();
    assert_eq!(status, 200, "{text}");
    let answer: Value = serde_json::from_str(&text).unwrap();
    let labels = answer["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "label")
        .unwrap()["data"]
        .clone();
    assert_eq!(labels, json!(["setosa", "virginica"]), "{answer}");
    ns.delete().await;
}
