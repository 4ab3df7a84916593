//! `modelops-worker serve` end to end: the real binary on a loopback port, serving models that
//! the real binary trained. Accuracy as in the offline evaluation, every bad input, feedback
//! under the right revision, the metrics, draining on SIGTERM, a corrupted artifact, a text
//! model, and a regression model's prediction bins and numeric feedback.

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use modelops_api::modeldeployment::Serving;
use modelops_api::profile::Histogram;
use modelops_api::serving::{Sample, metrics as m, parse_metrics};
use modelops_api::workorder::{ServeOrder, WorkOrder, layout};
use modelops_worker::data::read::Records;
use modelops_worker::data::{SplitRows, read_and_split};
use modelops_worker::order::prepare_config;
use modelops_worker::serve::feedback::{FeedbackKey, NONCE_BYTES, ResponseSigner};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/// How long a server may take to do what a test waits for (a bound on polling, not a pause).
const PATIENCE: Duration = Duration::from_secs(60);

/// A trained model and what it was trained on.
struct Trained {
    dir: PathBuf,
    model_dir: PathBuf,
    digest: String,
    dataset_dir: PathBuf,
    card: Value,
    /// The raw test split: (inputs, labels).
    test_rows: Vec<(Value, String)>,
}

/// The raw rows of the test split, read and split as `prepare` did.
fn test_split(order: &WorkOrder, source: &Path) -> Vec<(Value, String)> {
    let WorkOrder::Prepare(prepare) = order else {
        unreachable!()
    };
    let SplitRows { records, split, .. } = read_and_split(
        &std::fs::read(source).unwrap(),
        &prepare_config(&prepare.spec),
    )
    .unwrap();
    let labels = records.labels().to_vec();
    split
        .test
        .iter()
        .map(|&r| {
            let input = match &records {
                Records::Table { rows, .. } => json!(rows[r]),
                Records::Text { texts, .. } => json!(texts[r]),
            };
            (input, labels[r].clone())
        })
        .collect()
}

/// A fresh folder under the target directory, one name per test: a model shared by every test
/// of the file outlives them, and is replaced by the next run instead of piling up in /tmp.
fn work_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Prepares (with the order `order`) and trains, all in one folder that the servers then use
/// as their artifact store.
fn train_model(name: &str, order: WorkOrder, source: &Path, job: Value) -> Trained {
    let dir = work_dir(name);
    let dataset = prepare(&dir, &order);
    let run = run("train", &train_order(&dir, &dataset, name, job), &dir);
    let result = run.ok().clone();
    let model_dir = model_dir(&dir, &result);
    let card =
        serde_json::from_slice(&std::fs::read(model_dir.join("model.json")).unwrap()).unwrap();
    Trained {
        test_rows: test_split(&order, source),
        digest: result["modelDigest"].as_str().unwrap().to_owned(),
        dataset_dir: dataset.0,
        model_dir,
        card,
        dir,
    }
}

/// The digits MLP, trained once for every test of this file.
fn digits() -> &'static Trained {
    static TRAINED: OnceLock<Trained> = OnceLock::new();
    TRAINED.get_or_init(|| {
        train_model(
            "serve-digits",
            digits_dataset(),
            &example("data/digits.csv"),
            digits_mlp(5),
        )
    })
}

fn serve_order(trained: &Trained, revision: i32, serving: Serving) -> ServeOrder {
    ServeOrder {
        namespace: "default".into(),
        name: "digits".into(),
        revision,
        model_uri: uri_of(&trained.dir, &trained.model_dir),
        model_digest: trained.digest.clone(),
        serving,
        // The kernel picks a free port; the server prints it.
        port: 0,
        grpc_port: Some(0),
        store_uri: ROOT.into(),
        max_request_bytes: Some(256 * 1024),
        feedback_max_age: None,
        resources: Default::default(),
    }
}

fn batching(max_batch_size: i32, batch_timeout: &str) -> Serving {
    Serving {
        max_batch_size,
        batch_timeout: batch_timeout.into(),
        ..Serving::default()
    }
}

/// A running `modelops-worker serve`.
struct Server {
    child: Child,
    reader: Option<std::thread::JoinHandle<()>>,
    base: String,
    log: Arc<Mutex<Vec<String>>>,
    lines: Mutex<Receiver<String>>,
    agent: ureq::Agent,
}

impl Server {
    fn start(order: ServeOrder, key: Option<&str>, dir: &Path) -> Self {
        let mut command = worker("serve", &WorkOrder::Serve(order), dir);
        command
            .env("MODELOPS_LISTEN_ADDRESS", "127.0.0.1")
            .env_remove("MODELOPS_FEEDBACK_KEY")
            .stdout(Stdio::piped());
        if let Some(key) = key {
            command.env("MODELOPS_FEEDBACK_KEY", key);
        }
        let mut child = command.spawn().expect("start modelops-worker serve");
        let stdout = child.stdout.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (sender, lines) = channel();
        let reader = {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    log.lock().unwrap().push(line.clone());
                    let _ = sender.send(line);
                }
            })
        };
        let mut server = Self {
            child,
            reader: Some(reader),
            base: String::new(),
            log,
            lines: Mutex::new(lines),
            // A fresh connection per request: a pooled one that the server closes as it is
            // reused (keep-alive's race) would read as a dropped request. Keep-alive itself is
            // tested on the raw socket (`serve::http` tests).
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .max_idle_connections(0)
                .max_idle_connections_per_host(0)
                .build()
                .into(),
        };
        let line = server.wait_for_line(" on http://");
        let address = line.split(" on http://").nth(1).unwrap();
        server.base = format!("http://{}", address.split_whitespace().next().unwrap());
        server
    }

    /// Waits for a log line containing `text`.
    fn wait_for_line(&self, text: &str) -> String {
        self.wait_for_line_where(|line| line.contains(text))
    }

    /// Waits for a log line for which `matches` holds.
    fn wait_for_line_where(&self, matches: impl Fn(&str) -> bool) -> String {
        if let Some(line) = self.log.lock().unwrap().iter().find(|l| matches(l)) {
            return line.clone();
        }
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.lock().unwrap().recv_timeout(left) {
                Ok(line) if matches(&line) => return line,
                Ok(_) => {}
                Err(_) => panic!(
                    "the server never logged the line waited for:\n{}",
                    self.log.lock().unwrap().join("\n")
                ),
            }
        }
    }

    /// Waits until the server says it is ready (it logs `ready: …` once readiness is set, or
    /// `NOT READY: …` when it never will be), then checks the readiness endpoint agrees.
    fn wait_ready(&self) {
        let line =
            self.wait_for_line_where(|l| l.starts_with("ready:") || l.starts_with("NOT READY"));
        let log = self.log.lock().unwrap().join("\n");
        assert!(line.starts_with("ready:"), "{log}");
        let (status, body) = self.get("/v2/health/ready");
        assert_eq!(status, 200, "{body}\n{log}");
    }

    fn get(&self, path: &str) -> (u16, String) {
        let mut response = self
            .agent
            .get(&format!("{}{path}", self.base))
            .call()
            .unwrap();
        let status = response.status().as_u16();
        (status, response.body_mut().read_to_string().unwrap())
    }

    fn get_json(&self, path: &str) -> (u16, Value) {
        let (status, body) = self.get(path);
        (status, serde_json::from_str(&body).unwrap())
    }

    fn post(&self, path: &str, body: impl AsRef<[u8]>) -> (u16, Value) {
        let mut response = self
            .agent
            .post(&format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .send(body.as_ref())
            .unwrap();
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap();
        let json = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{path}: the answer is not JSON ({e}): {text}"));
        (status, json)
    }

    /// Posts an inference body with the binary tensor extension's header (when given); returns
    /// the status, the answer's header and its bytes.
    fn post_raw(&self, body: &[u8], header_length: Option<&str>) -> (u16, Option<String>, Vec<u8>) {
        let mut request = self
            .agent
            .post(&format!("{}/v2/models/digits/infer", self.base))
            .header("content-type", "application/octet-stream");
        if let Some(length) = header_length {
            request = request.header("inference-header-content-length", length);
        }
        let mut response = request.send(body).unwrap();
        let status = response.status().as_u16();
        let length = response
            .headers()
            .get("inference-header-content-length")
            .map(|v| v.to_str().unwrap().to_owned());
        (status, length, response.body_mut().read_to_vec().unwrap())
    }

    fn infer(&self, body: &Value) -> (u16, Value) {
        self.post("/v2/models/digits/infer", body.to_string())
    }

    fn metrics(&self) -> Vec<Sample> {
        let (status, text) = self.get("/metrics");
        assert_eq!(status, 200);
        parse_metrics(&text)
    }

    fn sigterm(&self) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the exit; returns it with everything the server printed.
    fn wait_exit(mut self) -> (ExitStatus, Vec<String>) {
        let exit = self.child.wait().unwrap();
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        let log = self.log.lock().unwrap().clone();
        (exit, log)
    }

    /// Sends SIGTERM and waits for the exit.
    fn terminate(self) -> (ExitStatus, Vec<String>) {
        self.sigterm();
        self.wait_exit()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of the first sample named `name` whose labels include `labels`.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| s.name == name && labels.iter().all(|(k, v)| s.label(k) == Some(v)))
        .map(|s| s.value)
}

fn sum(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.label(k) == Some(v)))
        .map(|s| s.value)
        .sum()
}

fn rows_request(rows: &[&Value]) -> Value {
    let width = rows[0].as_array().unwrap().len();
    json!({"inputs": [{"name": "input-0", "shape": [rows.len(), width], "datatype": "FP64", "data": rows}]})
}

fn output<'a>(response: &'a Value, name: &str) -> &'a Value {
    response["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == name)
        .unwrap_or_else(|| panic!("no output {name}: {response}"))
}

#[test]
fn digits_are_served_with_the_accuracy_of_the_offline_evaluation() {
    let trained = digits();
    let server = Server::start(
        serve_order(trained, 3, batching(16, "2ms")),
        Some(KEY),
        &trained.dir,
    );
    let (status, live) = server.get_json("/v2/health/live");
    assert_eq!((status, &live), (200, &json!({"live": true})));
    server.wait_ready();

    let (status, metadata) = server.get_json("/v2/models/digits");
    assert_eq!(status, 200, "{metadata}");
    assert_eq!(metadata["versions"], json!(["3"]));
    assert_eq!(metadata["inputs"][0]["shape"], json!([-1, 64]));
    assert_eq!(metadata["outputs"][1]["shape"], json!([-1, 10]));
    assert_eq!(metadata["parameters"]["digest"], trained.digest.as_str());
    let (_, server_metadata) = server.get_json("/v2");
    assert_eq!(server_metadata["name"], "modelops-worker");
    assert_eq!(server_metadata["extensions"], json!(["binary_tensor_data"]));
    assert_eq!(server.get_json("/v2/models/digits/versions/3").0, 200);
    assert_eq!(server.get_json("/v2/models/digits/ready").0, 200);
    assert_eq!(server.get_json("/v2/models/digits/versions/3/ready").0, 200);
    assert_eq!(server.get_json("/v2/models/digits/versions/2/ready").0, 404);

    // The test split, in requests of 1 to 4 rows from 6 clients at once: batches mix clients.
    let rows = &trained.test_rows;
    let chunks: Vec<Vec<usize>> = {
        let mut chunks = Vec::new();
        let mut start = 0;
        while start < rows.len() {
            let end = (start + 1 + chunks.len() % 4).min(rows.len());
            chunks.push((start..end).collect());
            start = end;
        }
        chunks
    };
    let predicted = Mutex::new(vec![String::new(); rows.len()]);
    let feedback_ids = Mutex::new(vec![String::new(); rows.len()]);
    let next = Mutex::new(0usize);
    std::thread::scope(|scope| {
        for _ in 0..6 {
            scope.spawn(|| {
                loop {
                    let chunk = {
                        let mut next = next.lock().unwrap();
                        let Some(chunk) = chunks.get(*next) else {
                            return;
                        };
                        *next += 1;
                        chunk
                    };
                    let inputs: Vec<&Value> = chunk.iter().map(|&i| &rows[i].0).collect();
                    let mut request = rows_request(&inputs);
                    request["id"] = json!(format!("chunk-{}", chunk[0]));
                    let (status, response) = server.infer(&request);
                    assert_eq!(status, 200, "{response}");
                    assert_eq!(response["id"], format!("chunk-{}", chunk[0]));
                    assert_eq!(response["model_name"], "digits");
                    assert_eq!(response["model_version"], "3");
                    let labels = output(&response, "label")["data"].as_array().unwrap();
                    let ids = output(&response, "feedback_id")["data"].as_array().unwrap();
                    let probabilities = output(&response, "probabilities");
                    assert_eq!(probabilities["shape"], json!([chunk.len(), 10]));
                    for (k, &i) in chunk.iter().enumerate() {
                        predicted.lock().unwrap()[i] = labels[k].as_str().unwrap().to_owned();
                        feedback_ids.lock().unwrap()[i] = ids[k].as_str().unwrap().to_owned();
                    }
                }
            });
        }
    });
    let predicted = predicted.into_inner().unwrap();
    let correct = predicted
        .iter()
        .zip(rows)
        .filter(|(p, (_, label))| *p == label)
        .count();
    let accuracy = trained.card["metrics"]["testAccuracy"].as_f64().unwrap();
    assert_eq!(
        correct,
        (accuracy * rows.len() as f64).round() as usize,
        "the server's accuracy {} differs from the card's {accuracy}",
        correct as f64 / rows.len() as f64
    );

    // The metrics count every request, row, class and input value.
    let samples = server.metrics();
    let own = [("model", "digits"), ("revision", "3")];
    let n = rows.len() as f64;
    assert_eq!(value(&samples, m::MODEL_READY, &own), Some(1.0));
    assert_eq!(
        value(
            &samples,
            m::REQUESTS_TOTAL,
            &[("revision", "3"), ("code", "200")]
        ),
        Some(chunks.len() as f64)
    );
    assert_eq!(
        value(
            &samples,
            &format!("{}_count", m::REQUEST_DURATION_SECONDS),
            &own
        ),
        Some(chunks.len() as f64)
    );
    assert_eq!(sum(&samples, m::PREDICTIONS_TOTAL, &own), n);
    let sevens = predicted.iter().filter(|p| *p == "7").count() as f64;
    assert_eq!(
        value(
            &samples,
            m::PREDICTIONS_TOTAL,
            &[("revision", "3"), ("class", "7")]
        ),
        Some(sevens)
    );
    // The input histograms use the profile's bins: found in the store from the card, and
    // served for the Monitor as it is in the store.
    let profile: Value =
        serde_json::from_slice(&std::fs::read(trained.dataset_dir.join("profile.json")).unwrap())
            .unwrap();
    let (status, served) = server.get_json(modelops_api::serving::PROFILE_PATH);
    assert_eq!(status, 200, "{served}");
    assert_eq!(served, profile);
    let pixel = &profile["features"][20];
    let name = pixel["name"].as_str().unwrap();
    assert_eq!(
        sum(
            &samples,
            m::INPUT_FEATURE_BIN_TOTAL,
            &[("revision", "3"), ("feature", name)]
        ),
        n
    );
    let edges: Vec<f64> = serde_json::from_value(pixel["histogram"]["edges"].clone()).unwrap();
    let column = 20;
    let in_first_bin = rows
        .iter()
        .filter(|(input, _)| {
            let v = input[column].as_f64().unwrap();
            v >= edges[0] && v < edges[1]
        })
        .count() as f64;
    assert_eq!(
        value(
            &samples,
            m::INPUT_FEATURE_BIN_TOTAL,
            &[("feature", name), ("bin", "0")]
        ),
        Some(in_first_bin)
    );
    assert_eq!(value(&samples, m::BATCH_ROWS_TOTAL, &own), Some(n));
    let batches = value(&samples, m::BATCHES_TOTAL, &own).unwrap();
    assert!((1.0..=chunks.len() as f64).contains(&batches), "{batches}");

    // Feedback: the true label of five predictions (one wrong on purpose).
    let feedback_ids = feedback_ids.into_inner().unwrap();
    let mut expected_correct = 0;
    for i in 0..5 {
        let label = if i == 4 {
            if predicted[i] == "0" { "1" } else { "0" }.to_owned()
        } else {
            predicted[i].clone()
        };
        expected_correct += usize::from(label == predicted[i]);
        let (status, answer) = server.post(
            "/v2/models/digits/feedback",
            json!({"id": feedback_ids[i], "label": label}).to_string(),
        );
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["revision"], 3);
    }
    // A label written as a number in the data may come as one.
    let (status, answer) = server.post(
        "/v2/models/digits/feedback",
        json!({"id": feedback_ids[5], "label": predicted[5].parse::<i64>().unwrap()}).to_string(),
    );
    assert_eq!(
        (status, &answer["correct"]),
        (200, &json!(true)),
        "{answer}"
    );
    expected_correct += 1;
    let samples = server.metrics();
    let feedback = |revision, result| {
        value(
            &samples,
            m::FEEDBACK_TOTAL,
            &[("revision", revision), ("result", result)],
        )
    };
    assert_eq!(feedback("3", "correct"), Some(expected_correct as f64));
    assert_eq!(feedback("3", "incorrect"), Some(1.0));

    // The same id twice counts once here.
    let (status, answer) = server.post(
        "/v2/models/digits/feedback",
        json!({"id": feedback_ids[0], "label": predicted[0]}).to_string(),
    );
    assert_eq!(status, 409, "{answer}");

    // Another replica of another revision with the same key counts an id of revision 3 under
    // revision 3; a replica with another key refuses it.
    let other = Server::start(
        serve_order(trained, 4, batching(8, "1ms")),
        Some(KEY),
        &trained.dir,
    );
    let stranger = Server::start(
        serve_order(trained, 4, batching(8, "1ms")),
        Some(&"ff".repeat(32)),
        &trained.dir,
    );
    other.wait_ready();
    stranger.wait_ready();
    let (status, answer) = other.post(
        "/v2/models/digits/feedback",
        json!({"id": feedback_ids[10], "label": predicted[10]}).to_string(),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["revision"], 3);
    let samples = other.metrics();
    assert_eq!(
        value(
            &samples,
            m::FEEDBACK_TOTAL,
            &[("revision", "3"), ("result", "correct")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(&samples, m::MODEL_READY, &[("revision", "4")]),
        Some(1.0)
    );
    let (status, answer) = stranger.post(
        "/v2/models/digits/feedback",
        json!({"id": feedback_ids[11], "label": predicted[11]}).to_string(),
    );
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("not authentic"),
        "{answer}"
    );
    drop(stranger);
    drop(other);

    every_bad_request_is_refused_and_the_server_keeps_serving(&server, &feedback_ids, &predicted);
    raw_tensors_answer_as_json_ones_and_malformed_ones_are_refused(&server, rows, &predicted);
    grpc_answers_as_http_does_and_refuses_malformed_messages(&server, rows, &predicted);
}

/// The Open Inference Protocol over gRPC, with the generated client: health, metadata, and
/// inferences with raw and typed contents answering the labels HTTP did; malformed messages are
/// INVALID_ARGUMENT (an oversized one too, which tonic refuses before decoding), an unknown model
/// NOT_FOUND, and the server keeps serving, counting gRPC requests with the HTTP ones.
fn grpc_answers_as_http_does_and_refuses_malformed_messages(
    server: &Server,
    rows: &[(Value, String)],
    predicted: &[String],
) {
    use modelops_worker::serve::grpc::inference::grpc_inference_service_client::GrpcInferenceServiceClient;
    use modelops_worker::serve::grpc::inference::model_infer_request::{
        InferInputTensor, InferRequestedOutputTensor,
    };
    use modelops_worker::serve::grpc::inference::*;
    use tonic::Code;

    let line = server.wait_for_line("gRPC (inference.GRPCInferenceService) on ");
    let address = line.rsplit(' ').next().unwrap().to_owned();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let requests_before = sum(&server.metrics(), m::REQUESTS_TOTAL, &[]);
    runtime.block_on(async {
        let mut client = GrpcInferenceServiceClient::connect(format!("http://{address}"))
            .await
            .unwrap();
        let live = client.server_live(ServerLiveRequest {}).await.unwrap();
        assert!(live.into_inner().live);
        let ready = client.server_ready(ServerReadyRequest {}).await.unwrap();
        assert!(ready.into_inner().ready);
        let ready = client
            .model_ready(ModelReadyRequest {
                name: "digits".into(),
                version: "3".into(),
            })
            .await
            .unwrap();
        assert!(ready.into_inner().ready);
        let metadata = client
            .model_metadata(ModelMetadataRequest {
                name: "digits".into(),
                version: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(metadata.versions, ["3"]);
        assert_eq!(metadata.inputs[0].shape, [-1, 64]);
        assert_eq!(metadata.outputs[0].name, "label");
        let server_metadata = client
            .server_metadata(ServerMetadataRequest {})
            .await
            .unwrap();
        assert_eq!(server_metadata.into_inner().name, "modelops-worker");

        let rows = &rows[..32];
        let values: Vec<f32> = rows
            .iter()
            .flat_map(|(row, _)| row.as_array().unwrap().iter())
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let input = |shape: Vec<i64>, datatype: &str| InferInputTensor {
            name: "input-0".into(),
            datatype: datatype.into(),
            shape,
            ..Default::default()
        };
        let request = |inputs, raw_input_contents| ModelInferRequest {
            model_name: "digits".into(),
            id: "grpc-1".into(),
            inputs,
            raw_input_contents,
            ..Default::default()
        };
        let labels_of = |response: &ModelInferResponse| {
            let index = response
                .outputs
                .iter()
                .position(|o| o.name == "label")
                .unwrap();
            let mut bytes = &response.raw_output_contents[index][..];
            let mut labels = Vec::new();
            while let Some((length, rest)) = bytes.split_first_chunk::<4>() {
                let (text, rest) = rest.split_at(u32::from_le_bytes(*length) as usize);
                labels.push(String::from_utf8(text.to_vec()).unwrap());
                bytes = rest;
            }
            labels
        };
        // Raw contents.
        let answer = client
            .model_infer(request(
                vec![input(vec![32, 64], "FP32")],
                vec![raw.clone()],
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            (answer.id.as_str(), answer.model_version.as_str()),
            ("grpc-1", "3")
        );
        assert_eq!(labels_of(&answer), predicted[..32]);
        let probabilities = answer
            .outputs
            .iter()
            .position(|o| o.name == "probabilities")
            .unwrap();
        assert_eq!(answer.outputs[probabilities].shape, [32, 10]);
        assert_eq!(answer.raw_output_contents[probabilities].len(), 32 * 10 * 4);
        // Typed contents, one output asked for.
        let mut typed = input(vec![32, 64], "FP32");
        typed.contents = Some(InferTensorContents {
            fp32_contents: values.clone(),
            ..Default::default()
        });
        let mut asked = request(vec![typed], Vec::new());
        asked.outputs = vec![InferRequestedOutputTensor {
            name: "label".into(),
            ..Default::default()
        }];
        let answer = client.model_infer(asked).await.unwrap().into_inner();
        assert_eq!(answer.outputs.len(), 1);
        assert_eq!(labels_of(&answer), predicted[..32]);

        // Malformed messages.
        let refused = [
            (
                "a raw tensor cut short",
                request(vec![input(vec![32, 64], "FP32")], vec![raw[4..].to_vec()]),
                Code::InvalidArgument,
                "the raw tensor has 8188 bytes; shape [32, 64] of FP32 takes 8192 bytes",
            ),
            (
                "a shape that does not fit",
                request(
                    vec![input(vec![32, 63], "FP32")],
                    vec![raw[..32 * 63 * 4].to_vec()],
                ),
                Code::InvalidArgument,
                "expects [n, 64]",
            ),
            (
                "a wrong datatype",
                request(vec![input(vec![2048], "BYTES")], vec![raw.clone()]),
                Code::InvalidArgument,
                "input \"input-0\"",
            ),
            (
                "raw contents for no input",
                request(vec![], vec![raw.clone()]),
                Code::InvalidArgument,
                "1 raw_input_contents for 0 inputs",
            ),
            (
                "no values at all",
                request(vec![input(vec![1, 64], "FP32")], vec![]),
                Code::InvalidArgument,
                "has no values",
            ),
            (
                "too many rows",
                request(
                    vec![input(vec![65536, 64], "UINT8")],
                    vec![vec![0; 65536 * 64]],
                ),
                Code::InvalidArgument,
                "larger than this server's limit of 262144 bytes",
            ),
        ];
        for (what, message, code, expected) in refused {
            let status = client.model_infer(message).await.unwrap_err();
            assert_eq!(status.code(), code, "{what}: {status:?}");
            assert!(status.message().contains(expected), "{what}: {status:?}");
        }
        let mut unknown = request(vec![input(vec![32, 64], "FP32")], vec![raw.clone()]);
        unknown.model_name = "iris".into();
        let status = client.model_infer(unknown).await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        // Still serving.
        let answer = client
            .model_infer(request(
                vec![input(vec![32, 64], "FP32")],
                vec![raw.clone()],
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(labels_of(&answer), predicted[..32]);
    });
    // Counted as HTTP requests are: three answered, six refused (the oversized one is refused by
    // the transport before it is a request).
    let requests = sum(&server.metrics(), m::REQUESTS_TOTAL, &[]) - requests_before;
    assert_eq!(requests, 3.0 + 6.0);
}

/// The binary tensor extension: 32 rows as raw FP32 after the JSON, every output asked for raw,
/// answer the labels the JSON requests did; bodies whose lengths do not add up are 400s, and
/// the server keeps serving.
fn raw_tensors_answer_as_json_ones_and_malformed_ones_are_refused(
    server: &Server,
    rows: &[(Value, String)],
    predicted: &[String],
) {
    let rows = &rows[..32];
    let raw: Vec<u8> = rows
        .iter()
        .flat_map(|(row, _)| row.as_array().unwrap().iter())
        .flat_map(|v| (v.as_f64().unwrap() as f32).to_le_bytes())
        .collect();
    let header = json!({
        "id": "raw",
        "inputs": [{"name": "input-0", "shape": [32, 64], "datatype": "FP32", "parameters": {"binary_data_size": raw.len()}}],
        "parameters": {"binary_data_output": true},
    })
    .to_string();
    let body = [header.as_bytes(), &raw].concat();
    let (status, length, answer) = server.post_raw(&body, Some(&header.len().to_string()));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    let length: usize = length.expect("the answer's json length").parse().unwrap();
    let json: Value = serde_json::from_slice(&answer[..length]).unwrap();
    assert_eq!(json["id"], "raw");
    // The outputs in order, each with its size: label (BYTES), probabilities (FP32), ids.
    let mut tail = &answer[length..];
    let mut take = |name: &str| {
        let size = output(&json, name)["parameters"]["binary_data_size"]
            .as_u64()
            .unwrap_or_else(|| panic!("{name} is not raw: {json}")) as usize;
        let (bytes, rest) = tail.split_at(size);
        tail = rest;
        bytes
    };
    let mut labels = Vec::new();
    let mut bytes = take("label");
    while let Some((length, rest)) = bytes.split_first_chunk::<4>() {
        let (text, rest) = rest.split_at(u32::from_le_bytes(*length) as usize);
        labels.push(String::from_utf8(text.to_vec()).unwrap());
        bytes = rest;
    }
    assert_eq!(labels, predicted[..32]);
    let probabilities = take("probabilities");
    assert_eq!(probabilities.len(), 32 * 10 * 4);
    let first: f32 = probabilities
        .chunks(4)
        .take(10)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .sum();
    assert!((first - 1.0).abs() < 1e-4, "{first}");
    assert!(take("feedback_id").len() > 32 * 4);
    assert!(tail.is_empty());

    for (what, body, length, expected) in [
        (
            "a header longer than the body",
            body.clone(),
            (body.len() + 1).to_string(),
            "but the body has",
        ),
        (
            "a header that is no number",
            body.clone(),
            "twelve".to_owned(),
            "is not a length",
        ),
        (
            "a tensor cut short",
            body[..body.len() - 4].to_vec(),
            header.len().to_string(),
            "bytes of raw tensors remain",
        ),
        (
            "bytes no input claims",
            [&body[..], &[0; 8]].concat(),
            header.len().to_string(),
            "8 bytes follow the JSON header",
        ),
        (
            "the header inside the JSON",
            body.clone(),
            "7".to_owned(),
            "not valid JSON",
        ),
    ] {
        let (status, _, answer) = server.post_raw(&body, Some(&length));
        let answer: Value = serde_json::from_slice(&answer).unwrap();
        assert_eq!(status, 400, "{what}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(expected),
            "{what}: {answer}"
        );
    }
    let (status, answer) = server.infer(&rows_request(&[&rows[0].0]));
    assert_eq!(status, 200, "{answer}");
}

/// Each bad request gets its 4xx and a JSON error that names the problem.
fn every_bad_request_is_refused_and_the_server_keeps_serving(
    server: &Server,
    feedback_ids: &[String],
    predicted: &[String],
) {
    let row = json!(vec![1.0; 64]);
    let mut with_string = row.clone();
    with_string[5] = json!("x");
    let infer_path = "/v2/models/digits/infer";
    let cases: Vec<(&str, String, u16, &str)> = vec![
        ("malformed JSON", "{\"inputs\": [".into(), 400, "not valid JSON"),
        ("not JSON at all", "hello".into(), 400, "not valid JSON"),
        ("missing inputs", "{}".into(), 400, "missing field `inputs`"),
        ("no input", json!({"inputs": []}).to_string(), 400, "no inputs"),
        (
            "wrong feature count",
            json!({"inputs": [{"name": "x", "shape": [1, 63], "datatype": "FP32", "data": vec![1.0; 63]}]}).to_string(),
            400,
            "expects [n, 64]",
        ),
        (
            "data not matching the shape",
            json!({"inputs": [{"name": "x", "shape": [2, 64], "datatype": "FP32", "data": row}]}).to_string(),
            400,
            "(128 values) but 64 values",
        ),
        (
            "wrong datatype",
            json!({"inputs": [{"name": "x", "shape": [1, 64], "datatype": "BYTES", "data": vec!["1"; 64]}]}).to_string(),
            400,
            "reads numbers, not text",
        ),
        (
            "three dimensions",
            json!({"inputs": [{"name": "x", "shape": [1, 2, 32], "datatype": "FP32", "data": row}]}).to_string(),
            400,
            "expects [n, 64]",
        ),
        (
            "a short row",
            json!({"inputs": [{"name": "x", "shape": [1, 64], "datatype": "FP32", "data": [[0.5, 1.0]]}]}).to_string(),
            400,
            "row 0 has 2 values",
        ),
        (
            "a string among numbers",
            json!({"inputs": [{"name": "x", "shape": [1, 64], "datatype": "FP32", "data": with_string}]}).to_string(),
            400,
            "value 5 (row 0, feature \"pixel_5\") is \"x\", not a number",
        ),
        (
            "unknown output",
            json!({"inputs": [{"name": "x", "shape": [1, 64], "datatype": "FP32", "data": row}], "outputs": [{"name": "logits"}]}).to_string(),
            400,
            "unknown output \"logits\"",
        ),
    ];
    for (case, body, status, message) in cases {
        let (got, answer) = server.post(infer_path, &body);
        assert_eq!(got, status, "{case}: {answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(error.contains(message), "{case}: {answer}");
    }

    let valid =
        json!({"inputs": [{"name": "x", "shape": [1, 64], "datatype": "FP32", "data": row}]});
    let (status, answer) = server.post("/v2/models/fashion/infer", valid.to_string());
    assert_eq!(status, 404, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("unknown model \"fashion\"")
    );
    let (status, answer) = server.post("/v2/models/digits/versions/9/infer", valid.to_string());
    assert_eq!(status, 404, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("no version \"9\"")
    );
    assert_eq!(server.get_json("/v2/models/fashion").0, 404);
    let (status, answer) = server.get_json("/v2/nothing/here");
    assert_eq!(status, 404);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("no route GET /v2/nothing/here")
    );
    let (status, answer) = server.get_json("/v2/models/digits/infer");
    assert_eq!(status, 405, "{answer}");
    assert!(answer["error"].as_str().is_some());

    // A body over the limit (256 KiB in these tests) is refused before it is parsed.
    let big = json!({"inputs": [{"name": "x", "shape": [1000, 64], "datatype": "FP64",
        "data": vec![vec![12.345_678_9; 64]; 1000]}]})
    .to_string();
    assert!(big.len() > 256 * 1024);
    let (status, answer) = server.post(infer_path, &big);
    assert_eq!(status, 413, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("limit of 262144 bytes")
    );

    // Feedback that cannot be trusted, or does not fit.
    let id = &feedback_ids[20];
    let label = &predicted[20];
    // Signed with a key the client made up...
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let forged = ResponseSigner::new(
        &FeedbackKey::from_hex(&"ee".repeat(32), 16).unwrap(),
        "digits",
        3,
        now,
        &[7; NONCE_BYTES],
    )
    .sign(0, label);
    // ...or a real id that claims another prediction, under its real tag (the prediction is
    // the id's bytes between its 33-byte head and its 8-byte tag).
    let mut bytes = URL_SAFE_NO_PAD.decode(id).unwrap();
    let at = bytes.len() - 9;
    bytes[at] = if label == "0" { b'1' } else { b'0' };
    let altered = URL_SAFE_NO_PAD.encode(&bytes);
    let feedback_cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "forged id",
            json!({"id": forged, "label": label}),
            400,
            "not authentic",
        ),
        (
            "altered id",
            json!({"id": altered, "label": label}),
            400,
            "not authentic",
        ),
        (
            "invented id",
            json!({"id": URL_SAFE_NO_PAD.encode([2; 48]), "label": label}),
            400,
            "not authentic",
        ),
        (
            "garbage id",
            json!({"id": "x", "label": label}),
            400,
            "malformed",
        ),
        ("no id", json!({"label": label}), 400, "no string \"id\""),
        ("no label", json!({"id": id}), 400, "no string \"label\""),
        (
            "unknown label",
            json!({"id": id, "label": "eleven"}),
            400,
            "unknown label \"eleven\"",
        ),
    ];
    for (case, body, status, message) in feedback_cases {
        let (got, answer) = server.post("/v2/models/digits/feedback", body.to_string());
        assert_eq!(got, status, "{case}: {answer}");
        assert!(
            answer["error"]
                .as_str()
                .unwrap_or_default()
                .contains(message),
            "{case}: {answer}"
        );
    }
    let (status, _) = server.post("/v2/models/digits/feedback", "{");
    assert_eq!(status, 400);
    let (status, _) = server.post(
        "/v2/models/other/feedback",
        json!({"id": id, "label": label}).to_string(),
    );
    assert_eq!(status, 404);

    // Still serving, and the refusals are counted by code.
    let (status, answer) = server.post(infer_path, valid.to_string());
    assert_eq!(status, 200, "{answer}");
    assert_eq!(server.get("/v2/health/ready").0, 200);
    let samples = server.metrics();
    assert_eq!(
        value(&samples, m::REQUESTS_TOTAL, &[("code", "400")]),
        Some(11.0)
    );
    assert_eq!(
        value(&samples, m::REQUESTS_TOTAL, &[("code", "413")]),
        Some(1.0)
    );
    assert_eq!(
        value(&samples, m::REQUESTS_TOTAL, &[("code", "404")]),
        Some(2.0)
    );
}

#[test]
fn sigterm_answers_the_requests_in_flight_then_exits() {
    let trained = digits();
    // A batch that waits a minute for company, unless the server shuts down.
    let server = Server::start(
        serve_order(trained, 1, batching(1000, "60s")),
        Some(KEY),
        &trained.dir,
    );
    server.wait_ready();
    let rows: Vec<&Value> = trained.test_rows[..3].iter().map(|(r, _)| r).collect();
    let request = rows_request(&rows);
    let response = std::thread::scope(|scope| {
        let in_flight = scope.spawn(|| server.infer(&request));
        let deadline = Instant::now() + PATIENCE;
        while value(&server.metrics(), m::REQUESTS_IN_FLIGHT, &[]) != Some(1.0) {
            assert!(Instant::now() < deadline, "the request never arrived");
            std::thread::yield_now();
        }
        let started = Instant::now();
        server.sigterm();
        let response = in_flight.join().unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the request waited for its batch timeout instead of being drained"
        );
        response
    });
    assert_eq!(response.0, 200, "{}", response.1);
    assert_eq!(
        output(&response.1, "label")["data"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let base = server.base.clone();
    let (exit, log) = server.wait_exit();
    assert!(exit.success(), "{exit:?}");
    let log = log.join("\n");
    assert!(log.contains("SIGTERM: not ready any more"), "{log}");
    assert!(log.ends_with("stopped"), "{log}");
    // Nobody listens any more.
    assert!(std::net::TcpStream::connect(base.trim_start_matches("http://")).is_err());
}

#[test]
fn each_request_id_is_in_its_response_and_in_the_server_log() {
    let trained = digits();
    let server = Server::start(
        serve_order(trained, 2, Serving::default()),
        Some(KEY),
        &trained.dir,
    );
    server.wait_ready();
    let request = rows_request(&[&trained.test_rows[0].0]);
    let send = |id: Option<&str>, body: &str| {
        let mut call = server
            .agent
            .post(&format!("{}/v2/models/digits/infer", server.base))
            .header("content-type", "application/json");
        if let Some(id) = id {
            call = call.header("x-request-id", id);
        }
        let mut response = call.send(body).unwrap();
        let header = response
            .headers()
            .get("x-request-id")
            .map(|v| v.to_str().unwrap().to_owned());
        let json: Value =
            serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
        (response.status().as_u16(), header, json)
    };

    // A client's id is the response's, the body's (which had none) and the log's.
    let (status, header, body) = send(Some("client-7.a:b"), &request.to_string());
    assert_eq!(status, 200, "{body}");
    assert_eq!(header.as_deref(), Some("client-7.a:b"));
    assert_eq!(body["id"], "client-7.a:b");
    server.wait_for_line("request client-7.a:b: infer digits: 200 in ");

    // A body's own id stays the body's; the header keeps the request's.
    let mut with_id = request.clone();
    with_id["id"] = json!("body-id");
    let (status, header, body) = send(Some("header-id"), &with_id.to_string());
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (header.as_deref(), body["id"].as_str()),
        (Some("header-id"), Some("body-id"))
    );

    // No id, or one that is not a plain token: a random one, logged with the refusal and why.
    for given in [None, Some("a b"), Some(&*"x".repeat(129))] {
        let (status, header, body) = send(given, "{\"inputs\": [");
        assert_eq!(status, 400, "{body}");
        let id = header.expect("every response has an x-request-id");
        assert_eq!(id.len(), 32, "{id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        let line = server.wait_for_line(&format!("request {id}: "));
        assert!(line.contains(": infer digits: 400 in "), "{line}");
        assert!(line.contains("not valid JSON"), "{line}");
    }
}

#[test]
fn a_corrupted_or_unexpected_model_is_never_ready() {
    let trained = digits();
    let dir = temp_dir("serve-corrupted");
    let model = dir.join("models/corrupted");
    std::fs::create_dir_all(&model).unwrap();
    for file in ["model.json", "model.safetensors"] {
        std::fs::copy(trained.model_dir.join(file), model.join(file)).unwrap();
    }
    let weights = model.join("model.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&weights, bytes).unwrap();
    let mut order = serve_order(trained, 2, batching(8, "1ms"));
    order.model_uri = uri_of(&dir, &model);
    let corrupted = Server::start(order, Some(KEY), &dir);

    // Intact weights, but not the model the order asks for.
    let mut order = serve_order(trained, 2, batching(8, "1ms"));
    order.model_digest = layout::sha256_digest(&"0".repeat(64));
    let unexpected = Server::start(order, Some(KEY), &trained.dir);

    // The same weights under an altered card (another normalisation): another model.
    let altered = dir.join("models/altered");
    std::fs::create_dir_all(&altered).unwrap();
    std::fs::copy(
        trained.model_dir.join("model.safetensors"),
        altered.join("model.safetensors"),
    )
    .unwrap();
    let mut card: Value =
        serde_json::from_slice(&std::fs::read(trained.model_dir.join("model.json")).unwrap())
            .unwrap();
    card["input"]["normalization"]["offset"][0] = json!(10.0);
    std::fs::write(
        altered.join("model.json"),
        serde_json::to_vec_pretty(&card).unwrap(),
    )
    .unwrap();
    let mut order = serve_order(trained, 2, batching(8, "1ms"));
    order.model_uri = uri_of(&dir, &altered);
    let altered = Server::start(order, Some(KEY), &dir);

    for (server, reason) in [
        (corrupted, "the artifact is damaged or was altered"),
        (unexpected, "not the expected sha256:0000"),
        (altered, "(the sha256 of its card), not the expected"),
    ] {
        let line = server.wait_for_line("NOT READY");
        assert!(line.contains(reason), "{line}");
        let (status, ready) = server.get_json("/v2/health/ready");
        assert_eq!(status, 503, "{ready}");
        assert_eq!(ready["ready"], false);
        assert!(ready["error"].as_str().unwrap().contains(reason), "{ready}");
        assert_eq!(server.get("/v2/health/live").0, 200, "alive, but not ready");
        let row = json!(vec![0.0; 64]);
        let (status, answer) = server.infer(
            &json!({"inputs": [{"name": "x", "shape": [1, 64], "datatype": "FP32", "data": row}]}),
        );
        assert_eq!(status, 503, "{answer}");
        assert_eq!(
            value(&server.metrics(), m::MODEL_READY, &[("revision", "2")]),
            Some(0.0)
        );
        let (exit, _) = server.terminate();
        assert!(exit.success());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_text_model_answers_bytes_inputs() {
    let source = example("text/news-or-blog.jsonl");
    let order = prepare_order(
        "news-or-blog",
        Some(&source),
        example_spec("text/dataset.yaml"),
    );
    // Small and quick: the round trip matters here, not the accuracy.
    let job = json!({
        "datasetRef": {"name": "news-or-blog"},
        "task": "classification",
        "model": {"architecture": "textLstm", "textLstm": {"vocabularySize": 2000, "maxLength": 32, "embeddingDim": 16, "hiddenSize": 16}},
        "hyperparameters": {"epochs": 2, "batchSize": 64, "optimizer": {"type": "adam", "learningRate": 0.01}, "seed": 3},
    });
    let trained = train_model("serve-text", order, &source, job);
    let mut serve = serve_order(&trained, 1, batching(32, "2ms"));
    serve.name = "news".into();
    let server = Server::start(serve, None, &trained.dir);
    server.wait_ready();

    let (status, metadata) = server.get_json("/v2/models/news");
    assert_eq!(status, 200);
    assert_eq!(metadata["inputs"][0]["datatype"], "BYTES");
    let rows = &trained.test_rows[..40];
    let texts: Vec<&Value> = rows.iter().map(|(t, _)| t).collect();
    let request = json!({"inputs": [{"name": "text", "shape": [texts.len()], "datatype": "BYTES", "data": texts}]});
    let (status, response) = server.post("/v2/models/news/infer", request.to_string());
    assert_eq!(status, 200, "{response}");
    let labels: Vec<String> =
        serde_json::from_value(output(&response, "label")["data"].clone()).unwrap();

    // The same predictions as the model API offline.
    let model = modelops_worker::model::predict::LoadedModel::load(
        &trained.model_dir,
        None,
        tch::Device::Cpu,
    )
    .unwrap();
    let offline_texts: Vec<&str> = texts.iter().map(|t| t.as_str().unwrap()).collect();
    let modelops_worker::model::predict::Prediction::Classes {
        labels: offline, ..
    } = model.predict_texts(&offline_texts).unwrap()
    else {
        panic!("a classifier")
    };
    assert_eq!(labels, offline);

    // A number is not a text; [n, 1] is as good as [n].
    let (status, answer) = server.post(
        "/v2/models/news/infer",
        json!({"inputs": [{"name": "text", "shape": [1], "datatype": "FP32", "data": [1.0]}]})
            .to_string(),
    );
    assert_eq!(status, 400);
    assert!(
        answer["error"].as_str().unwrap().contains("reads text"),
        "{answer}"
    );
    let (status, _) = server.post(
        "/v2/models/news/infer",
        json!({"inputs": [{"name": "text", "shape": [1, 1], "datatype": "BYTES", "data": [["短讯"]]}]})
            .to_string(),
    );
    assert_eq!(status, 200);

    // Text lengths are counted on the profile's bins; feedback works without a configured key
    // (on this replica).
    let samples = server.metrics();
    assert_eq!(
        sum(
            &samples,
            m::INPUT_FEATURE_BIN_TOTAL,
            &[("feature", "textLength")]
        ),
        41.0
    );
    let ids = output(&response, "feedback_id")["data"].as_array().unwrap();
    let (status, answer) = server.post(
        "/v2/models/news/feedback",
        json!({"id": ids[0], "label": rows[0].1}).to_string(),
    );
    assert_eq!(status, 200, "{answer}");
    let (exit, log) = server.terminate();
    assert!(exit.success());
    assert!(
        log.iter()
            .any(|l| l.contains("MODELOPS_FEEDBACK_KEY is not set")),
        "{log:?}"
    );
    std::fs::remove_dir_all(&trained.dir).unwrap();
}

#[test]
fn a_regression_model_counts_its_predictions_and_the_errors_of_its_feedback() {
    let source = example("data/iris.csv");
    let order = prepare_order(
        "iris-width",
        Some(&source),
        example_spec("iris-width/dataset.yaml"),
    );
    let job = example_spec("iris-width/trainingjob.yaml");
    let trained = train_model("serve-regression", order, &source, job);
    let mut serve = serve_order(&trained, 2, batching(16, "1ms"));
    serve.name = "petals".into();
    let server = Server::start(serve, Some(KEY), &trained.dir);
    server.wait_ready();
    let (status, metadata) = server.get_json("/v2/models/petals");
    assert_eq!(status, 200);
    assert_eq!(metadata["outputs"][1]["name"], "feedback_id");

    // The served profile is the Dataset's, with the card's prediction histogram.
    let mut profile: Value =
        serde_json::from_slice(&std::fs::read(trained.dataset_dir.join("profile.json")).unwrap())
            .unwrap();
    assert!(profile.get("predictions").is_none());
    let reference: Histogram = serde_json::from_value(trained.card["predictions"].clone())
        .expect("a regression card has its training predictions");
    profile["predictions"] = trained.card["predictions"].clone();
    let (status, served) = server.get_json(modelops_api::serving::PROFILE_PATH);
    assert_eq!(status, 200, "{served}");
    assert_eq!(served, profile);

    // Every predicted value is counted on the reference's bins, and has a feedback id.
    let rows = &trained.test_rows;
    let inputs: Vec<&Value> = rows.iter().map(|(input, _)| input).collect();
    let (status, response) =
        server.post("/v2/models/petals/infer", rows_request(&inputs).to_string());
    assert_eq!(status, 200, "{response}");
    let predicted: Vec<f32> =
        serde_json::from_value(output(&response, "prediction")["data"].clone()).unwrap();
    let ids = output(&response, "feedback_id")["data"].as_array().unwrap();
    assert_eq!((predicted.len(), ids.len()), (rows.len(), rows.len()));
    let mut expected = reference.emptied();
    for &value in &predicted {
        expected.add(f64::from(value));
    }
    let samples = server.metrics();
    for (bin, count) in expected.bins() {
        assert_eq!(
            value(
                &samples,
                m::PREDICTION_BIN_TOTAL,
                &[("revision", "2"), ("bin", &bin.to_string())]
            ),
            Some(count as f64),
            "bin {bin}"
        );
    }

    // The true widths of two flowers, as a number and as a string: their errors are summed.
    let mut errors = Vec::new();
    for (i, label) in [json!(rows[0].1.parse::<f64>().unwrap()), json!(rows[1].1)]
        .into_iter()
        .enumerate()
    {
        let (status, answer) = server.post(
            "/v2/models/petals/feedback",
            json!({"id": ids[i], "label": label}).to_string(),
        );
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["revision"], 2);
        let error = answer["error"].as_f64().unwrap();
        let truth: f64 = rows[i].1.parse().unwrap();
        assert!(
            (error - (truth - f64::from(predicted[i]))).abs() < 1e-6,
            "{answer}"
        );
        errors.push(error);
    }
    let samples = server.metrics();
    let own = [("model", "petals"), ("revision", "2")];
    let sum_of = |name| value(&samples, name, &own).unwrap();
    assert_eq!(sum_of(m::FEEDBACK_VALUES_TOTAL), 2.0);
    let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
    assert!(close(
        sum_of(m::FEEDBACK_ABSOLUTE_ERROR_TOTAL),
        errors[0].abs() + errors[1].abs()
    ));
    assert!(close(
        sum_of(m::FEEDBACK_SQUARED_ERROR_TOTAL),
        errors[0].powi(2) + errors[1].powi(2)
    ));
    assert!(close(
        sum_of(m::FEEDBACK_SQUARED_ERROR_SQUARES_TOTAL),
        errors[0].powi(4) + errors[1].powi(4)
    ));
    assert_eq!(value(&samples, m::FEEDBACK_TOTAL, &[]), None);

    // A label that is not a number is refused, naming the field.
    let (status, answer) = server.post(
        "/v2/models/petals/feedback",
        json!({"id": ids[2], "label": "wide"}).to_string(),
    );
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("\"label\""),
        "{answer}"
    );
    let (exit, _) = server.terminate();
    assert!(exit.success());
    std::fs::remove_dir_all(&trained.dir).unwrap();
}
