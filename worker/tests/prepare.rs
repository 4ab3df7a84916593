//! `modelops-worker prepare` end to end: the prepared layout, digests, invalid rows, HTTP
//! sources, and the failures the operator reads back.

mod common;

use common::*;
use modelops_api::workorder::WorkOrder;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpListener;

#[test]
fn digits_are_prepared_into_a_content_addressed_folder() {
    let dir = temp_dir("prepare-digits");
    let order = digits_dataset();
    let prepared = run("prepare", &order, &dir);
    let result = prepared.ok().clone();
    let digest = result["digest"].as_str().unwrap();
    let hex = digest.strip_prefix("sha256:").unwrap();
    assert_eq!(hex.len(), 64);
    assert_eq!(
        result["artifactUri"],
        format!("pvc://artifacts/datasets/digits/{hex}")
    );
    assert_eq!(
        result["profileUri"],
        format!("pvc://artifacts/datasets/digits/{hex}/profile.json")
    );
    assert_eq!(
        result["rows"],
        json!({"total": 1797, "train": 1259, "validation": 269, "test": 269, "rejected": 0})
    );
    assert_eq!(result["classes"].as_array().unwrap().len(), 10);
    // The result is also the last line of stdout.
    let last_line: Value = serde_json::from_str(prepared.stdout().lines().last().unwrap()).unwrap();
    assert_eq!(last_line, result);

    let folder = dir.join("datasets/digits").join(hex);
    let mut files: Vec<String> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(files, ["data.safetensors", "dataset.json", "profile.json"]);
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(folder.join("dataset.json")).unwrap()).unwrap();
    assert_eq!(manifest["features"][0], "pixel_0");
    assert_eq!(manifest["normalization"]["method"], "standard");
    let profile: Value =
        serde_json::from_slice(&std::fs::read(folder.join("profile.json")).unwrap()).unwrap();
    let pixel = &profile["features"][36]["histogram"];
    assert_eq!(pixel["edges"].as_array().unwrap().len(), 11);
    let counted: u64 = pixel["counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_u64().unwrap())
        .sum();
    assert_eq!(counted, 1259, "every raw training value is in a bin");
    assert_eq!(
        profile["features"][36]["max"], 16.0,
        "histograms are of raw values"
    );
    assert_eq!(
        profile["classBalance"]["counts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_u64().unwrap())
            .sum::<u64>(),
        1259
    );

    // Preparing the same data again finds the same folder.
    let again = run("prepare", &order, &dir);
    assert_eq!(again.ok()["digest"], digest);
    assert!(
        again.stdout().contains("found already prepared"),
        "{}",
        again.stdout()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

fn bad_iris(dir: &std::path::Path, drop_invalid_rows: bool) -> WorkOrder {
    let mut csv = std::fs::read_to_string(example("data/iris.csv")).unwrap();
    csv = csv.replacen("4.9,3.0,1.4,0.2,setosa", "4.9,three,1.4,0.2,setosa", 1);
    csv.push_str("5.0,3.1,1.5\n");
    let source = dir.join("iris-bad.csv");
    std::fs::write(&source, csv).unwrap();
    prepare_order(
        "iris",
        Some(&source),
        json!({
            "source": {"volume": {"claimName": "data", "path": "iris-bad.csv"}},
            "format": "csv",
            "schema": {"label": "species"},
            "preprocessing": {"dropInvalidRows": drop_invalid_rows},
            "split": {"train": 0.6, "validation": 0.2, "test": 0.2},
        }),
    )
}

#[test]
fn invalid_rows_fail_the_preparation_unless_dropped() {
    let dir = temp_dir("prepare-invalid");
    let failure = run("prepare", &bad_iris(&dir, false), &dir)
        .failed()
        .clone();
    assert_eq!(failure["reason"], "InvalidRow");
    assert_eq!(failure["retryable"], false);
    let message = failure["message"].as_str().unwrap();
    assert!(
        message
            .contains("row 2 (line 3): feature \"sepal_width\" is not a finite number: \"three\""),
        "{message}"
    );
    assert!(message.contains("dropInvalidRows"), "{message}");

    let run = run("prepare", &bad_iris(&dir, true), &dir);
    let result = run.ok();
    assert_eq!(result["rows"]["rejected"], 2);
    assert_eq!(
        result["firstRejection"],
        "row 2 (line 3): feature \"sepal_width\" is not a finite number: \"three\""
    );
    assert_eq!(
        result["rows"]["total"], 149,
        "150 rows and 1 appended, 2 of them invalid"
    );
    assert!(
        run.stdout().contains("dropped 2 invalid rows"),
        "{}",
        run.stdout()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Serves `body` to `requests` GETs on a loopback port, answering 404 for any path but `/data.csv`.
fn serve(body: Vec<u8>, requests: usize) -> (String, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        for stream in listener.incoming().take(requests) {
            let mut stream = stream.unwrap();
            let mut request = [0u8; 4096];
            let read = stream.read(&mut request).unwrap();
            let found = String::from_utf8_lossy(&request[..read]).starts_with("GET /data.csv ");
            let head = if found {
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                )
            } else {
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_owned()
            };
            stream.write_all(head.as_bytes()).unwrap();
            if found {
                stream.write_all(&body).unwrap();
            }
        }
    });
    (url, server)
}

fn http_order(url: &str, sha256: &str) -> WorkOrder {
    prepare_order(
        "iris",
        None,
        json!({
            "source": {"http": {"url": url, "sha256": sha256}},
            "format": "csv",
            "schema": {"label": "species"},
        }),
    )
}

#[test]
fn http_sources_are_downloaded_and_checked() {
    let dir = temp_dir("prepare-http");
    let body = std::fs::read(example("data/iris.csv")).unwrap();
    let sha256 = modelops_worker::artifact::sha256_hex(&body);
    let (url, server) = serve(body, 3);

    let result = run(
        "prepare",
        &http_order(&format!("{url}/data.csv"), &sha256),
        &dir,
    )
    .ok()
    .clone();
    assert_eq!(result["rows"]["total"], 150);
    assert_eq!(
        result["classes"],
        json!(["setosa", "versicolor", "virginica"])
    );

    let wrong = run(
        "prepare",
        &http_order(&format!("{url}/data.csv"), &"0".repeat(64)),
        &dir,
    );
    assert_eq!(wrong.failed()["reason"], "SourceDigestMismatch");

    let missing = run(
        "prepare",
        &http_order(&format!("{url}/gone.csv"), &sha256),
        &dir,
    );
    let failure = missing.failed();
    assert_eq!(failure["reason"], "SourceUnavailable");
    assert_eq!(failure["retryable"], false, "a 404 needs a spec change");
    assert!(
        failure["message"].as_str().unwrap().contains("HTTP 404"),
        "{failure}"
    );
    server.join().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_work_order_for_another_command_is_refused() {
    let dir = temp_dir("prepare-kind");
    let run = run("train", &digits_dataset(), &dir);
    let failure = run.failed();
    assert_eq!(failure["reason"], "InvalidWorkOrder");
    assert!(
        failure["message"]
            .as_str()
            .unwrap()
            .contains("run modelops-worker prepare"),
        "{failure}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn json_logs_carry_the_command_and_step_spans() {
    let dir = temp_dir("prepare-json-logs");
    let order = digits_dataset();
    let output = worker("prepare", &order, &dir)
        .env("MODELOPS_LOG_FORMAT", "json")
        .output()
        .expect("run modelops-worker");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    let lines: Vec<Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    // The step that publishes the folder says so, inside the command's span and its own.
    let published = lines
        .iter()
        .find(|l| {
            l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("prepared data set default/digits as "))
        })
        .unwrap_or_else(|| panic!("no line says the data set was prepared:\n{stdout}"));
    assert_eq!(published["level"], "INFO", "{published}");
    let command = &published["spans"][0];
    assert_eq!(
        (
            &command["name"],
            &command["command"],
            &command["namespace"],
            &command["object"]
        ),
        (
            &json!("worker"),
            &json!("prepare"),
            &json!("default"),
            &json!("digits")
        ),
        "{published}"
    );

    // Text (the default) is the messages alone.
    let text_dir = temp_dir("prepare-text-logs");
    let text = worker("prepare", &order, &text_dir).output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("prepared data set default/digits as ")),
        "{text}"
    );
}
