//! Regression end to end on the test bed: the iris petal-width example (examples/iris-width)
//! trained, served with feedback of true widths, judged on live RMSE and MAE, watched for
//! prediction drift, and an untrained model rolled back on its RMSE.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::{Patch, PatchParams, PostParams};
use modelops_api::conditions::reasons;
use modelops_api::monitor::{Monitor, Verdict};
use modelops_api::{Dataset, ModelDeployment, TrainingJob};
use serde_json::{Value, json};

const NAME: &str = "iris-width";

/// Iris rows as (sepal length, sepal width, petal length) and the true petal width.
fn iris_rows() -> Vec<(Vec<f64>, f64)> {
    let csv = std::fs::read_to_string(repo_root().join("examples/data/iris.csv")).unwrap();
    csv.lines()
        .skip(1)
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let fields: Vec<f64> = line
                .split(',')
                .take(4)
                .map(|f| f.parse().unwrap())
                .collect();
            (fields[..3].to_vec(), fields[3])
        })
        .collect()
}

/// `per_second` requests of one iris row each through the Service, each followed by the
/// flower's true width as feedback (a JSON number, or its decimal string every other time).
fn traffic(
    ip: String,
    per_second: u32,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Vec<Answer>> {
    std::thread::spawn(move || {
        let rows = iris_rows();
        let period = Duration::from_secs(1) / per_second;
        let mut answers = Vec::new();
        let mut next = Instant::now();
        let mut i = 0usize;
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
            next += period;
            let (row, width) = &rows[(i * 37) % rows.len()];
            i += 1;
            let body = serde_json::to_vec(&json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3], "data": row}]})).unwrap();
            let path = format!("/v2/models/{NAME}/infer");
            let (mut answer, response) = Answer::of(http(&ip, 80, "POST", &path, &body));
            if answer.failure.is_none() {
                answer.failure = send_feedback(&ip, &response, *width, i.is_multiple_of(2));
            }
            answers.push(answer);
        }
        answers
    })
}

/// Sends the true `width` back for the answer `response` (as a JSON number, or with
/// `as_number` false as its decimal string); the failure, if any.
fn send_feedback(ip: &str, response: &Value, width: f64, as_number: bool) -> Option<String> {
    let outputs = response["outputs"].as_array().cloned().unwrap_or_default();
    let Some(id) = outputs.iter().find(|o| o["name"] == "feedback_id") else {
        return Some(format!("no feedback_id output: {response}"));
    };
    let label = if as_number {
        json!(width)
    } else {
        json!(width.to_string())
    };
    let body = serde_json::to_vec(&json!({"id": id["data"][0], "label": label})).unwrap();
    match http(
        ip,
        80,
        "POST",
        &format!("/v2/models/{NAME}/feedback"),
        &body,
    ) {
        Ok((200, _)) => None,
        Ok((status, text)) => Some(format!("feedback {status}: {text}")),
        Err(e) => Some(format!("feedback: {e}")),
    }
}

async fn apply_examples(ns: &TestNamespace) {
    let csv = std::fs::read_to_string(repo_root().join("examples/data/iris.csv")).unwrap();
    let cm: ConfigMap =
        from_json(json!({"metadata": {"name": "iris-data"}, "data": {"iris.csv": csv}}));
    let pp = PostParams::default();
    ns.api::<ConfigMap>().create(&pp, &cm).await.unwrap();
    let dataset: Dataset = example("examples/iris-width/dataset.yaml");
    ns.api::<Dataset>().create(&pp, &dataset).await.unwrap();
    for file in ["trainingjob.yaml", "bad-model.yaml"] {
        let job: TrainingJob = example(&format!("examples/iris-width/{file}"));
        ns.api::<TrainingJob>().create(&pp, &job).await.unwrap();
    }
}

/// The Monitor's newest evaluation once `done` holds for it.
async fn evaluation_where(
    ns: &TestNamespace,
    monitor: &str,
    timeout: Duration,
    done: impl Fn(&modelops_api::monitor::Evaluation) -> bool,
) -> modelops_api::monitor::Evaluation {
    let found = wait(&ns.api::<Monitor>(), monitor, timeout, |m| {
        m.and_then(|m| m.status.as_ref())
            .and_then(|s| s.last_evaluation.as_ref())
            .is_some_and(&done)
    })
    .await
    .unwrap_or_else(|| panic!("Monitor {monitor}: no such evaluation within {timeout:?}"));
    found.status.unwrap().last_evaluation.unwrap()
}

#[tokio::test]
async fn a_regression_model_is_judged_on_live_rmse_and_an_untrained_one_rolled_back() {
    if skip_without_cluster() {
        return;
    }
    let client = client().await;
    let ns = TestNamespace::create(&client, "regression").await;
    apply_examples(&ns).await;
    let good = training_succeeded(&ns, NAME, Duration::from_secs(300)).await;
    let bad = training_succeeded(&ns, "iris-width-untrained", Duration::from_secs(300)).await;
    let rmse_of = |job: &TrainingJob| {
        job.status
            .as_ref()
            .and_then(|s| s.model.as_ref())
            .and_then(|m| m.metrics.test_rmse)
            .unwrap()
    };
    println!(
        "test rmse: trained {:.3}, untrained {:.3}",
        rmse_of(&good),
        rmse_of(&bad)
    );
    assert!(
        rmse_of(&good) < 0.35,
        "the example model predicts widths to within 0.35 cm"
    );
    assert!(rmse_of(&bad) > 0.5, "the untrained model is bad");
    // The RMSE column shows it (and Accuracy is empty for regression).
    let table = std::process::Command::new("kubectl")
        .args(["get", "trainingjob", NAME, "-n", &ns.name])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    let column = header
        .iter()
        .position(|h| *h == "RMSE")
        .expect("an RMSE column");
    // Accuracy is blank for a regression model, so the row has one field less before it.
    let shown: f64 = row[column - 1]
        .parse()
        .unwrap_or_else(|_| panic!("{table}"));
    assert!((shown - rmse_of(&good)).abs() < 1e-6, "{table}");

    let pp = PostParams::default();
    let md: ModelDeployment = example("examples/iris-width/modeldeployment.yaml");
    ns.api::<ModelDeployment>().create(&pp, &md).await.unwrap();
    for file in ["monitor.yaml", "drift-monitor.yaml"] {
        let monitor: Monitor = example(&format!("examples/iris-width/{file}"));
        ns.api::<Monitor>().create(&pp, &monitor).await.unwrap();
    }
    serving_stable(&ns, NAME, 1).await;
    let ip = ns
        .api::<Service>()
        .get(NAME)
        .await
        .unwrap()
        .spec
        .unwrap()
        .cluster_ip
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let load = traffic(ip, 20, stop.clone());

    // The trained model passes on its live RMSE, with the evidence that says why.
    let passed = evaluation_where(&ns, NAME, Duration::from_secs(120), |e| {
        e.revision == Some(1) && e.verdict == Verdict::Pass
    })
    .await;
    println!("revision 1: {:?}", passed.values);
    assert!(passed.values["rmse"] < 0.4, "{passed:?}");
    assert!(passed.values["mae"] < 0.35, "{passed:?}");
    assert!(passed.values["rmseEvidenceAtOrBelowMax"] >= passed.values["rmseEvidenceNeeded"]);
    // And prediction drift is measured against its predictions on the training split.
    let drift = evaluation_where(&ns, "iris-width-drift", Duration::from_secs(120), |e| {
        e.revision == Some(1) && e.values.contains_key("predictionDrift")
    })
    .await;
    println!("revision 1 prediction drift: {:?}", drift.values);

    // The user points the deployment at the untrained model.
    let mds = ns.api::<ModelDeployment>();
    let patch = json!({"spec": {"model": {"trainingJobRef": {"name": "iris-width-untrained"}}}});
    mds.patch(NAME, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .unwrap();
    rolled_back(&ns, NAME, 2, 1, Duration::from_secs(180))
        .await
        .expect("the untrained model is rolled back");
    let monitor = ns.api::<Monitor>().get(NAME).await.unwrap().status.unwrap();
    assert_eq!(monitor.actions.len(), 1, "{:#?}", monitor.actions);
    let action = &monitor.actions[0];
    assert_eq!(action.revision, Some(2), "{action:?}");
    assert_eq!(action.reason, reasons::RMSE_ABOVE_MAXIMUM, "{action:?}");
    // Traffic served by revision 1 again.
    evaluation_where(&ns, NAME, Duration::from_secs(60), |e| {
        e.revision == Some(1)
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let answers = load.join().unwrap();
    let (exposure, second) = served_for(&answers, "2");
    println!(
        "untrained revision served for {exposure:?} ({second} of {} answers)",
        answers.len()
    );
    assert_no_failed_answers(&answers);
    ns.delete().await;
}
