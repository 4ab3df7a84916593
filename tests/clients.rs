//! The Open Inference Protocol's own clients, which no one here wrote, against ModelDeployments
//! on the test bed, as black boxes: Triton's `tritonclient` (HTTP with JSON and binary tensors,
//! gRPC with raw contents) and KServe's `InferenceRESTClient` and `InferenceGRPCClient`, from
//! PyPI in the project's venv (`ensure_clients` in scripts/env.sh). Each runs
//! `tests/clients/oip.py` in a process of its own; the labels it gets must be the offline
//! evaluation's (digits: the test split at the status' accuracy) and the plain JSON request's
//! (the text model, BYTES input).

mod common;

use std::time::Duration;

use common::*;
use k8s_openapi::api::core::v1::Service;
use kube::api::PostParams;
use modelops_api::{Dataset, ModelDeployment};
use serde_json::{Value, json};

/// The clients, and the ways each sends a request (as `oip.py` names them).
const CLIENTS: [(&str, &[&str]); 4] = [
    ("triton-http", &["json", "binary", "binary_in_json_out"]),
    ("triton-grpc", &["raw", "label_only"]),
    ("kserve-rest", &["json", "binary"]),
    ("kserve-grpc", &["contents"]),
];

/// Runs one client over `rows`; returns, per way of sending, the label of each row.
fn run_client(client: &str, request: &Value) -> Value {
    let python =
        std::env::var("VIRTUAL_ENV").map_or("python3".into(), |venv| format!("{venv}/bin/python"));
    let mut child = std::process::Command::new(&python)
        .arg(repo_root().join("tests/clients/oip.py"))
        .arg(client)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{python}: {e}"));
    serde_json::to_writer(child.stdin.take().unwrap(), request).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{client}: {}\n(the clients come from scripts/env.sh ensure_clients)",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn service_ip(ns: &TestNamespace, name: &str) -> String {
    let service = ns.api::<Service>().get(name).await.unwrap();
    let ports: Vec<_> = service.spec.as_ref().unwrap().ports.clone().unwrap();
    // The Service has the protocol's two ports: HTTP on 80, gRPC (h2c) on 8081.
    assert!(
        ports
            .iter()
            .any(|p| p.name.as_deref() == Some("grpc") && p.port == 8081),
        "{ports:?}"
    );
    service.spec.unwrap().cluster_ip.unwrap()
}

/// Labels from the server's plain JSON request, 32 rows at a time.
fn json_labels(ip: &str, model: &str, input: Value) -> Vec<String> {
    let (status, text) = http(
        ip,
        80,
        "POST",
        &format!("/v2/models/{model}/infer"),
        json!({"inputs": [input]}).to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(status, 200, "{text}");
    let answer: Value = serde_json::from_str(&text).unwrap();
    serde_json::from_value(answer["outputs"][0]["data"].clone()).unwrap()
}

/// Every client, every way: the labels `expected`.
fn every_client_answers(request: &Value, expected: &[String]) {
    for (client, ways) in CLIENTS {
        let answers = run_client(client, request);
        for way in ways {
            let labels: Vec<String> = serde_json::from_value(answers[way].clone())
                .unwrap_or_else(|_| panic!("{client} {way}: {answers}"));
            let differ = labels.iter().zip(expected).filter(|(a, b)| a != b).count();
            assert_eq!(
                (labels.len(), differ),
                (expected.len(), 0),
                "{client} sending {way} for {}",
                request["model"]
            );
        }
    }
}

#[tokio::test]
async fn tritons_and_kserves_clients_get_the_offline_labels_over_json_binary_and_grpc() {
    if skip_without_cluster() {
        return;
    }
    let client = client().await;
    let ns = TestNamespace::create(&client, "oip-clients").await;
    for example in ["examples/digits", "examples/text"] {
        apply_kustomization(&ns.name, example);
    }
    let text_md: ModelDeployment = from_json(json!({
        "metadata": {"name": "news-or-blog"},
        "spec": {"model": {"trainingJobRef": {"name": "news-or-blog"}}},
    }));
    ns.api::<ModelDeployment>()
        .create(&PostParams::default(), &text_md)
        .await
        .unwrap();
    let digits = training_succeeded(&ns, "digits", Duration::from_secs(300)).await;
    serving_stable(&ns, "digits", 1).await;

    // Digits: the test split, whose labels at the status' accuracy are the offline evaluation.
    let dataset = ns
        .api::<Dataset>()
        .get("digits")
        .await
        .unwrap()
        .status
        .unwrap();
    let (rows, classes) = raw_test_split(&dataset).await;
    let ip = service_ip(&ns, "digits").await;
    let expected = json_labels(
        &ip,
        "digits",
        json!({"name": "input-0", "shape": [rows.len(), 64], "datatype": "FP32", "data": rows}),
    );
    let correct = expected
        .iter()
        .zip(&classes)
        .filter(|(label, class)| **label == dataset.classes[**class as usize])
        .count();
    let offline = digits
        .status
        .unwrap()
        .model
        .unwrap()
        .metrics
        .test_accuracy
        .unwrap();
    assert_eq!(
        (correct as f64 / rows.len() as f64 * 1000.0).round() / 1000.0,
        offline,
        "the JSON answers' accuracy against the offline evaluation's"
    );
    let request = json!({
        "http": format!("{ip}:80"), "grpc": format!("{ip}:8081"),
        "model": "digits", "version": "1", "kind": "table", "rows": rows, "batch": 32,
    });
    every_client_answers(&request, &expected);

    // Text: BYTES in, the first 320 texts of the example (English and Chinese).
    training_succeeded(&ns, "news-or-blog", Duration::from_secs(600)).await;
    serving_stable(&ns, "news-or-blog", 1).await;
    let texts: Vec<String> =
        std::fs::read_to_string(repo_root().join("examples/text/news-or-blog.jsonl"))
            .unwrap()
            .lines()
            .take(320)
            .map(|line| {
                serde_json::from_str::<Value>(line).unwrap()["text"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
    let ip = service_ip(&ns, "news-or-blog").await;
    let expected = json_labels(
        &ip,
        "news-or-blog",
        json!({"name": "text", "shape": [texts.len()], "datatype": "BYTES", "data": texts}),
    );
    let request = json!({
        "http": format!("{ip}:80"), "grpc": format!("{ip}:8081"),
        "model": "news-or-blog", "version": "1", "kind": "text", "rows": texts, "batch": 32,
    });
    every_client_answers(&request, &expected);
    ns.delete().await;
}
