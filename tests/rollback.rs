//! The closed loop on the test bed: Monitors judge live traffic, and a ModelDeployment whose
//! model goes bad is rolled back by itself — without its spec being touched.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use modelops_api::conditions::types;
use modelops_api::modeldeployment::RevisionState;
use modelops_api::monitor::{Monitor, Verdict};
use modelops_api::{Dataset, ModelDeployment, TrainingJob};
use serde_json::{Value, json};

/// The digits with their labels shuffled among the rows (a fixed permutation): a model trained
/// on them learns nothing true.
fn shuffled_digits_csv() -> String {
    let text = digits_csv();
    let mut lines: Vec<&str> = text.lines().collect();
    let header = lines.remove(0);
    let labels: Vec<&str> = lines
        .iter()
        .map(|l| l.rsplit_once(',').unwrap().1)
        .collect();
    let n = lines.len();
    let mut out = format!("{header}\n");
    for (i, line) in lines.iter().enumerate() {
        // A fixed permutation of the row indices: multiply by a number prime to n.
        let j = (i * 7919 + 13) % n;
        out.push_str(&format!(
            "{},{}\n",
            line.rsplit_once(',').unwrap().0,
            labels[j]
        ));
    }
    out
}

/// A ConfigMap `map` holding `csv` as `digits.csv`, the key the digits Dataset reads.
async fn data_config_map(ns: &TestNamespace, map: &str, csv: String) {
    let cm: ConfigMap = from_json(json!({"metadata": {"name": map}, "data": {"digits.csv": csv}}));
    ns.api::<ConfigMap>()
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
}

/// Starts TrainingJob `name`: an mlp on Dataset `dataset` for `epochs` epochs, on the CPU.
async fn start_mlp(ns: &TestNamespace, name: &str, dataset: &str, epochs: i32) {
    let mut job: TrainingJob = example("examples/digits/trainingjob.yaml");
    job.metadata.name = Some(name.into());
    job.spec.dataset_ref.name = dataset.into();
    job.spec.model =
        serde_json::from_value(json!({"architecture": "mlp", "mlp": {"hiddenLayers": [64]}}))
            .unwrap();
    job.spec.hyperparameters.early_stopping = None;
    job.spec.hyperparameters.epochs = epochs;
    job.spec.resources.gpu = 0;
    ns.api::<TrainingJob>()
        .create(&PostParams::default(), &job)
        .await
        .unwrap();
}

/// A good model (`good`, on the digits) and a bad one (`bad`, on shuffled labels), both mlps.
async fn good_and_bad_models(ns: &TestNamespace) {
    data_config_map(ns, "digits-data", digits_csv()).await;
    data_config_map(ns, "shuffled-data", shuffled_digits_csv()).await;
    let digits: Dataset = example("examples/digits/dataset.yaml");
    let mut shuffled = digits.clone();
    shuffled.metadata.name = Some("shuffled".into());
    shuffled.spec.source = serde_json::from_value(
        json!({"configMap": {"name": "shuffled-data", "key": "digits.csv"}}),
    )
    .unwrap();
    shuffled.spec.split.stratify = Some(false);
    for dataset in [digits, shuffled] {
        ns.api::<Dataset>()
            .create(&PostParams::default(), &dataset)
            .await
            .unwrap();
    }
    for (name, dataset) in [("good", "digits"), ("bad", "shuffled")] {
        start_mlp(ns, name, dataset, 12).await;
    }
    for name in ["good", "bad"] {
        training_succeeded(ns, name, Duration::from_secs(300)).await;
    }
}

async fn create<K>(ns: &TestNamespace, value: Value) -> K
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    ns.api::<K>()
        .create(&PostParams::default(), &from_json(value))
        .await
        .unwrap()
}

/// Labelled traffic at `per_second` requests per second from the host through the Service:
/// each request is one digits row (transformed by `shift`), and, with `feedback`, its true
/// label is sent back right after the answer. Runs until `stop`.
fn traffic(
    ip: String,
    per_second: u32,
    feedback: bool,
    shift: fn(&mut [f64]),
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Vec<Answer>> {
    std::thread::spawn(move || {
        let rows = digits_rows();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1) / per_second);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut answers = Vec::new();
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let (mut row, label) = rows[(i * 31) % rows.len()].clone();
                i += 1;
                shift(&mut row);
                let body = serde_json::to_vec(&json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 64], "data": row}]})).unwrap();
                let (answer, response) = Answer::of(http(&ip, 80, "POST", "/v2/models/digits/infer", &body));
                let id = response["outputs"].as_array().and_then(|o| o.iter().find(|o| o["name"] == "feedback_id")).map(|o| o["data"][0].clone());
                if feedback && let Some(id) = id {
                    let body = serde_json::to_vec(&json!({"id": id, "label": label})).unwrap();
                    let _ = http(&ip, 80, "POST", "/v2/models/digits/feedback", &body);
                }
                answers.push(answer);
            }
            answers
        })
    })
}

fn unchanged(_: &mut [f64]) {}

async fn service_ip(ns: &TestNamespace) -> String {
    ns.api::<Service>()
        .get("digits")
        .await
        .unwrap()
        .spec
        .unwrap()
        .cluster_ip
        .unwrap()
}

/// Waits until the Monitor has evaluated `n` more times, and returns every verdict it gave.
async fn evaluations(
    ns: &TestNamespace,
    monitor: &str,
    n: usize,
    timeout: Duration,
) -> Vec<(Verdict, Option<i32>, String)> {
    use futures::StreamExt;
    use kube::runtime::{WatchStreamExt, watcher};
    let config = watcher::Config::default().fields(&format!("metadata.name={monitor}"));
    let mut stream = watcher(ns.api::<Monitor>(), config)
        .applied_objects()
        .boxed();
    let mut times = BTreeSet::new();
    let mut verdicts = Vec::new();
    let first = ns
        .api::<Monitor>()
        .get(monitor)
        .await
        .unwrap()
        .status
        .and_then(|s| s.last_evaluation)
        .map(|e| e.time.0);
    let deadline = tokio::time::Instant::now() + timeout;
    while times.len() < n {
        let next = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("the Monitor kept evaluating");
        let Some(Ok(m)) = next else {
            panic!("watch ended")
        };
        if let Some(e) = m.status.and_then(|s| s.last_evaluation)
            && Some(e.time.0) != first
            && times.insert(e.time.0)
        {
            verdicts.push((e.verdict, e.revision, e.reason.clone()));
        }
    }
    verdicts
}

/// ModelDeployment `digits` serving `good`, a new model rolling out as a canary (`replicas`
/// pods, half of them for `pause` at the first step) gated by the Monitor `monitor`.
async fn canary_deployment(ns: &TestNamespace, replicas: i32, pause: &str, monitor: &str) {
    create::<ModelDeployment>(
        ns,
        json!({
            "metadata": {"name": "digits"},
            "spec": {
                "model": {"trainingJobRef": {"name": "good"}},
                "replicas": replicas,
                "strategy": {"type": "Canary", "canary": {
                    "steps": [{"weight": 50, "pause": pause}, {"weight": 100}],
                    "analysis": {"monitorRef": {"name": monitor}},
                }},
            }
        }),
    )
    .await;
}

/// Points ModelDeployment `digits` at TrainingJob `job`, as a GitOps tool applying a changed
/// manifest would.
async fn point_at(ns: &TestNamespace, job: &str) {
    ns.api::<ModelDeployment>()
        .patch(
            "digits",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"model": {"trainingJobRef": {"name": job}}}})),
        )
        .await
        .unwrap();
}

/// Waits until `revision` of `digits` is rolled back and the canary takes no traffic.
async fn canary_rolled_back(ns: &TestNamespace, revision: i32) -> ModelDeployment {
    wait(
        &ns.api::<ModelDeployment>(),
        "digits",
        Duration::from_secs(180),
        |md| {
            md.and_then(|md| md.status.as_ref()).is_some_and(|s| {
                s.revisions
                    .iter()
                    .any(|r| r.revision == revision && r.state == RevisionState::RolledBack)
                    && s.canary_weight == Some(0)
            })
        },
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn a_bad_model_is_rolled_back_within_30_seconds_and_the_spec_is_untouched() {
    if skip_without_cluster() {
        return;
    }
    let client = client().await;
    let ns = TestNamespace::create(&client, "rollback").await;
    good_and_bad_models(&ns).await;
    create::<ModelDeployment>(&ns, json!({"metadata": {"name": "digits"}, "spec": {"model": {"trainingJobRef": {"name": "good"}}, "replicas": 2}})).await;
    create::<Monitor>(
        &ns,
        json!({
            "metadata": {"name": "guard"},
            "spec": {
                "targetRef": {"name": "digits"},
                "interval": "5s",
                "window": {"samples": 40, "maxAge": "20s"},
                "metrics": [{"accuracy": {"min": 0.8, "minSamples": 20}}],
                "failureThreshold": 1,
                "action": "rollback",
            }
        }),
    )
    .await;
    serving_stable(&ns, "digits", 1).await;
    let ip = service_ip(&ns).await;
    let stop = Arc::new(AtomicBool::new(false));
    let load = traffic(ip, 20, true, unchanged, stop.clone());
    // The guard judges the good model first.
    let verdicts = evaluations(&ns, "guard", 3, Duration::from_secs(60)).await;
    assert!(
        verdicts.iter().any(|v| v.0 == Verdict::Pass),
        "{verdicts:?}"
    );
    replicas_ready(&ns, "digits", 2).await;
    assert_health(
        &ns.name,
        "ModelDeployment",
        "digits",
        ("Current", "Healthy"),
    );

    // `kubectl modelops get --watch` follows the pipeline through what comes next.
    let watched = Shared::default();
    let (stop_watch, watch_stopped) = tokio::sync::oneshot::channel::<()>();
    let watching = {
        let cli = plugin_cli(&["get", "mdep/digits", "-n", &ns.name, "--watch"]);
        let mut sink = watched.clone();
        tokio::spawn(async move {
            let stop = async {
                let _ = watch_stopped.await;
            };
            kubectl_modelops::run(cli, &mut sink, false, stop)
                .await
                .map_err(|e| format!("{e:#}"))
        })
    };

    // The user deploys the bad model (as a GitOps tool would apply a changed manifest).
    let mds = ns.api::<ModelDeployment>();
    point_at(&ns, "bad").await;
    let applied = mds.get("digits").await.unwrap();

    // Promoted, judged, rolled back: revision 1 is stable again and revision 2 keeps no pod.
    let rolled_back = rolled_back(&ns, "digits", 2, 1, Duration::from_secs(120))
        .await
        .unwrap();
    let pods = ns.api::<Pod>();
    let r2_gone = async {
        loop {
            let left = pods
                .list(&ListParams::default().labels("modelops.dev/revision=2"))
                .await
                .unwrap();
            let Some(pod) = left.items.first() else { break };
            let name = pod.metadata.name.clone().unwrap();
            wait(&pods, &name, Duration::from_secs(60), |p| p.is_none()).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(90), r2_gone)
        .await
        .expect("revision 2's pods end");
    // A little more traffic, all of it on revision 1.
    let after = evaluations(&ns, "guard", 1, Duration::from_secs(30)).await;
    stop.store(true, Ordering::Relaxed);
    let answers = load.join().unwrap();

    // Time from the first answer of the bad revision to the last one.
    let (exposure, bad) = served_for(&answers, "2");
    println!(
        "bad revision served for {exposure:?} ({bad} of {} answers)",
        answers.len()
    );
    assert!(
        exposure <= Duration::from_secs(30),
        "the bad revision served for {exposure:?}"
    );
    assert_no_failed_answers(&answers);
    assert!(answers.last().unwrap().version.as_deref() == Some("1"));
    assert!(after.iter().all(|v| v.1 == Some(1)), "{after:?}");

    // GitOps: the commit that asked for the bad model does not read as healthy, for Flux
    // (kstatus) nor for Argo CD, and says what serves instead.
    let health = assert_health(
        &ns.name,
        "ModelDeployment",
        "digits",
        ("Failed", "Degraded"),
    );
    assert!(
        health.message.contains("revision 2")
            && health.message.contains("revision 1 serves instead"),
        "{health:?}"
    );
    // The spec and its generation are the user's, untouched by the rollback.
    assert_eq!(rolled_back.metadata.generation, applied.metadata.generation);
    assert_eq!(
        serde_json::to_value(&rolled_back.spec).unwrap(),
        serde_json::to_value(&applied.spec).unwrap()
    );
    // And the rolled-back revision is not retried while the spec stays the same.
    let later = mds.get("digits").await.unwrap();
    let status = later.status.unwrap();
    assert_eq!(status.stable_revision, Some(1));
    assert!(
        status
            .revisions
            .iter()
            .any(|r| r.revision == 2 && r.state == RevisionState::RolledBack)
    );
    let r2 = ns.api::<Deployment>().get("digits-r2").await.unwrap();
    assert_eq!(r2.spec.unwrap().replicas, Some(0));
    let monitor = ns
        .api::<Monitor>()
        .get("guard")
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(monitor.actions.len(), 1, "{:#?}", monitor.actions);

    // What `kubectl modelops` shows of it.
    let r2_reason = status
        .revisions
        .iter()
        .find(|r| r.revision == 2)
        .and_then(|r| r.reason.clone())
        .expect("revision 2 says why it was rolled back");
    plugin_shows_the_rollback(&ns.name, &r2_reason).await;
    let frames = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let text = watched.text();
            let frames: Vec<String> = text
                .split("Namespace:  ")
                .skip(1)
                .map(str::to_owned)
                .collect();
            if frames
                .last()
                .is_some_and(|f| r2_row(f).is_some_and(|r| r.contains("✖ RolledBack")))
            {
                break frames;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "the watch never showed revision 2 rolled back:\n{}",
            watched.text()
        )
    });
    // It printed the tree as it went: revision 2 serving before it was rolled back.
    assert!(
        frames
            .iter()
            .any(|f| r2_row(f).is_some_and(|r| r.contains("✔ Stable") || r.contains("◌ Canary"))),
        "{frames:#?}"
    );
    stop_watch.send(()).unwrap();
    watching.await.unwrap().unwrap();

    // The dashboard marks the rollback on revision 2's lane of the timeline.
    let viewer = dashboard_viewer(&ns.name).await;
    let page = format!("/namespaces/{}/modeldeployments/digits", ns.name);
    let dom = chromium(
        &dashboard_url().await,
        &viewer,
        &page,
        Some("modeldeployment-rolled-back"),
    );
    assert!(
        dom.contains("class=\"action rollback\" data-revision=\"2\""),
        "{dom}"
    );
    assert!(
        dom.contains("data-revision=\"2\" data-state=\"RolledBack\""),
        "{dom}"
    );

    // The whole loop ran with its artifacts in the object store alone.
    assert_no_artifact_volumes(&ns).await;
    ns.delete().await;
}

/// `kubectl modelops ARGS`, read as the binary reads its command line.
fn plugin_cli(args: &[&str]) -> kubectl_modelops::Cli {
    use clap::Parser;
    kubectl_modelops::Cli::try_parse_from(
        std::iter::once("kubectl-modelops").chain(args.iter().copied()),
    )
    .unwrap()
}

/// What `kubectl modelops ARGS` prints, or its error.
async fn plugin(args: &[&str]) -> Result<String, String> {
    let mut out = Vec::new();
    kubectl_modelops::run(plugin_cli(args), &mut out, false, std::future::pending())
        .await
        .map_err(|e| format!("{e:#}"))?;
    Ok(String::from_utf8(out).unwrap())
}

/// A buffer the watch writes to while the test reads it.
#[derive(Clone, Default)]
struct Shared(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Shared {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Shared {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

/// The row of revision 2 in a tree.
fn r2_row(tree: &str) -> Option<&str> {
    tree.lines().find(|l| l.contains("─r2 "))
}

/// `kubectl modelops get`, `history` and `logs` on the rollback test's namespace: the rolled-back
/// revision with its reason (in full), the verdicts, the action, the training log; every line
/// within 100 columns.
async fn plugin_shows_the_rollback(ns: &str, r2_reason: &str) {
    let fits = |text: &str| {
        for line in text.lines() {
            assert!(line.chars().count() <= 100, "too wide: {line}");
        }
    };
    let tree = plugin(&["get", "-n", ns]).await.unwrap();
    println!("kubectl modelops get -n {ns}\n{tree}");
    fits(&tree);
    let r2 = r2_row(&tree).unwrap_or_else(|| panic!("no revision 2 in\n{tree}"));
    assert!(
        r2.contains("Revision") && r2.contains("✖ RolledBack") && r2.contains("from bad"),
        "{r2}"
    );
    let r1 = tree.lines().find(|l| l.contains("─r1 ")).unwrap();
    assert!(r1.contains("✔ Stable") && r1.contains("from good"), "{r1}");
    let md = tree
        .lines()
        .find(|l| l.contains("ModelDeployment"))
        .unwrap();
    assert!(
        md.contains("✖ RolledBack") && md.contains("stable r1"),
        "{md}"
    );
    for name in ["digits", "shuffled", "good", "bad", "guard"] {
        assert!(
            tree.lines()
                .any(|l| l.contains(&format!("─{name} ")) || l.starts_with(&format!("{name} "))),
            "{name} missing:\n{tree}"
        );
    }
    // The reason, wrapped under the revision, reads whole.
    let words = |t: &str| {
        t.split_whitespace()
            .filter(|w| *w != "│")
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert!(
        words(&tree).contains(&words(r2_reason)),
        "{r2_reason:?} not in\n{tree}"
    );
    // One pipeline: the same tree for any of its objects; another namespace's objects are not read.
    let one = plugin(&["get", "monitor/guard", "-n", ns]).await.unwrap();
    assert_eq!(
        one.lines().skip(3).count(),
        tree.lines().skip(3).count(),
        "{one}"
    );
    assert_eq!(
        plugin(&["get", "nothing", "-n", ns]).await.unwrap_err(),
        format!(
            "no Dataset, TrainingJob, ModelDeployment or Monitor named \"nothing\" in namespace {ns}"
        )
    );

    let history = plugin(&["history", "digits", "-n", ns]).await.unwrap();
    println!("kubectl modelops history digits -n {ns}\n{history}");
    fits(&history);
    let row = |r: &str| {
        history
            .lines()
            .find(|l| l.starts_with(r))
            .unwrap_or_else(|| panic!("no {r} in\n{history}"))
    };
    assert!(
        row("r2 ").contains("RolledBack")
            && row("r2 ").contains("bad")
            && row("r2 ").contains("guard Fail"),
        "{history}"
    );
    assert!(
        row("r1 ").contains("Stable") && row("r1 ").contains("good"),
        "{history}"
    );
    assert!(
        history.contains("Actions of Monitor guard:") && history.contains("rollback r2"),
        "{history}"
    );

    let log = plugin(&["logs", "good", "-n", ns, "--tail", "50"])
        .await
        .unwrap();
    assert!(log.contains("epoch 12/12"), "{log}");
}

/// Pixel 20 (row 2, column 4) brightened by 10 grey levels: far outside what the model saw.
fn brighten_pixel_20(row: &mut [f64]) {
    row[20] += 10.0;
}

#[tokio::test]
async fn input_drift_without_labels_is_detected_and_the_feature_named() {
    if skip_without_cluster() {
        return;
    }
    let client = client().await;
    let ns = TestNamespace::create(&client, "drift").await;
    good_and_bad_models(&ns).await;
    create::<ModelDeployment>(&ns, json!({"metadata": {"name": "digits"}, "spec": {"model": {"trainingJobRef": {"name": "good"}}}})).await;
    create::<Monitor>(
        &ns,
        json!({
            "metadata": {"name": "drift"},
            "spec": {
                "targetRef": {"name": "digits"},
                "interval": "2s",
                "window": {"samples": 60, "maxAge": "30s"},
                "metrics": [{"inputDrift": {"method": "psi", "max": 0.5, "minSamples": 40}}],
                "failureThreshold": 2,
                "action": "alert",
            }
        }),
    )
    .await;
    serving_stable(&ns, "digits", 1).await;
    let stop = Arc::new(AtomicBool::new(false));
    let load = traffic(
        service_ip(&ns).await,
        20,
        false,
        brighten_pixel_20,
        stop.clone(),
    );
    wait(
        &ns.api::<Monitor>(),
        "drift",
        Duration::from_secs(90),
        |m| {
            m.and_then(|m| m.status.as_ref())
                .is_some_and(|s| s.conditions.is_true(types::DRIFT_DETECTED))
        },
    )
    .await;
    let monitor = wait(
        &ns.api::<Monitor>(),
        "drift",
        Duration::from_secs(30),
        |m| {
            m.and_then(|m| m.status.as_ref()?.last_evaluation.as_ref())
                .is_some_and(|e| e.verdict == Verdict::Fail)
        },
    )
    .await
    .unwrap();
    // Failing while the drift lasts: Degraded for Argo CD (kstatus has no such state for an
    // object that works as it should).
    let health = assert_health(&ns.name, "Monitor", "drift", ("Current", "Degraded"));
    assert!(health.message.contains("fails"), "{health:?}");
    // The dashboard draws the drift per feature, pixel 20's bar past the maximum.
    let viewer = dashboard_viewer(&ns.name).await;
    let base = dashboard_url().await;
    let path = format!("/namespaces/{}/modeldeployments/digits", ns.name);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, page) = dashboard_get(&base, &path, Some(&viewer)).await;
        assert_eq!(status, 200, "{page}");
        let bar = page
            .split_once("<g class=\"feature\" data-feature=\"pixel_20\"")
            .and_then(|(_, rest)| rest.split_once("</g>"))
            .map(|(bar, _)| bar.to_owned());
        if bar.is_some_and(|bar| bar.contains("class=\"bar over\"")) {
            assert!(page.contains("class=\"threshold\""), "{page}");
            let dom = chromium(&base, &viewer, &path, Some("modeldeployment-drift"));
            assert!(dom.contains("class=\"feature-drift\""), "{dom}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no pixel_20 bar over the maximum in 30 s: {page}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();
    let evaluation = monitor.status.unwrap().last_evaluation.unwrap();
    assert_eq!(evaluation.verdict, Verdict::Fail, "{evaluation:#?}");
    assert_eq!(
        evaluation.worst_feature.as_deref(),
        Some("pixel_20"),
        "{evaluation:#?}"
    );
    // An alert Monitor moves no traffic.
    let md = ns
        .api::<ModelDeployment>()
        .get("digits")
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(md.stable_revision, Some(1));
    assert!(!md.conditions.is_true(types::ROLLED_BACK));
    ns.delete().await;
}

/// The digits with pixel 20 brightened by 10 grey levels in every row: a model trained on them
/// expects inputs that production never sends.
fn brightened_digits_csv() -> String {
    let text = digits_csv();
    let mut lines = text.lines();
    let mut out = format!("{}\n", lines.next().unwrap());
    for line in lines {
        let mut fields: Vec<String> = line.split(',').map(str::to_owned).collect();
        let value: f64 = fields[20].parse().unwrap();
        fields[20] = (value + 10.0).to_string();
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    out
}

#[tokio::test]
async fn a_model_trained_on_other_inputs_is_rolled_back_on_input_drift_alone() {
    use modelops_api::conditions::reasons;
    if skip_without_cluster() {
        return;
    }
    let client = client().await;
    let ns = TestNamespace::create(&client, "drift-rollback").await;
    data_config_map(&ns, "digits-data", digits_csv()).await;
    data_config_map(&ns, "bright-data", brightened_digits_csv()).await;
    let digits: Dataset = example("examples/digits/dataset.yaml");
    let mut bright = digits.clone();
    bright.metadata.name = Some("bright".into());
    bright.spec.source =
        serde_json::from_value(json!({"configMap": {"name": "bright-data", "key": "digits.csv"}}))
            .unwrap();
    for dataset in [digits, bright] {
        ns.api::<Dataset>()
            .create(&PostParams::default(), &dataset)
            .await
            .unwrap();
    }
    start_mlp(&ns, "good", "digits", 4).await;
    start_mlp(&ns, "bright", "bright", 4).await;
    for name in ["good", "bright"] {
        training_succeeded(&ns, name, Duration::from_secs(300)).await;
    }
    create::<ModelDeployment>(&ns, json!({"metadata": {"name": "digits"}, "spec": {"model": {"trainingJobRef": {"name": "good"}}}})).await;
    // No labels at all: input drift against each revision's own training data is the only
    // evidence.
    create::<Monitor>(
        &ns,
        json!({
            "metadata": {"name": "drift"},
            "spec": {
                "targetRef": {"name": "digits"},
                "interval": "2s",
                "window": {"samples": 60, "maxAge": "30s"},
                "metrics": [{"inputDrift": {"method": "psi", "max": 0.5, "minSamples": 40}}],
                "failureThreshold": 2,
                "action": "rollback",
            }
        }),
    )
    .await;
    serving_stable(&ns, "digits", 1).await;
    let stop = Arc::new(AtomicBool::new(false));
    let load = traffic(service_ip(&ns).await, 20, false, unchanged, stop.clone());
    // Production's inputs look like the good model's training data.
    let verdicts = evaluations(&ns, "drift", 3, Duration::from_secs(60)).await;
    assert!(
        verdicts
            .iter()
            .any(|v| v.0 == Verdict::Pass && v.1 == Some(1)),
        "{verdicts:?}"
    );
    point_at(&ns, "bright").await;
    let rolled_back = rolled_back(&ns, "digits", 2, 1, Duration::from_secs(180))
        .await
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    let answers = load.join().unwrap();
    let monitor = ns
        .api::<Monitor>()
        .get("drift")
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(monitor.actions.len(), 1, "{:#?}", monitor.actions);
    assert_eq!(monitor.actions[0].revision, Some(2));
    assert_eq!(
        monitor.actions[0].reason,
        reasons::INPUT_DRIFT_ABOVE_MAXIMUM
    );
    let failed = monitor
        .history
        .iter()
        .find(|h| h.revision == Some(2) && h.verdict == Verdict::Fail);
    assert!(failed.is_some(), "{:#?}", monitor.history);
    assert_no_failed_answers(&answers);
    assert_eq!(rolled_back.status.unwrap().stable_revision, Some(1));
    ns.delete().await;
}

#[tokio::test]
async fn a_good_revision_under_labelled_traffic_stays_stable_for_10_windows() {
    if skip_without_cluster() {
        return;
    }
    let client = client().await;
    let ns = TestNamespace::create(&client, "steady").await;
    good_and_bad_models(&ns).await;
    create::<ModelDeployment>(
        &ns,
        json!({"metadata": {"name": "digits"}, "spec": {"model": {"trainingJobRef": {"name": "good"}}, "replicas": 2}}),
    )
    .await;
    create::<Monitor>(
        &ns,
        json!({
            "metadata": {"name": "guard"},
            "spec": {
                "targetRef": {"name": "digits"},
                "interval": "4s",
                // PSI over few rows reads chance as drift (about (bins - 1) / rows for unchanged
                // data, maximised over 64 features): judge drift on 120 rows or more.
                "window": {"samples": 160, "maxAge": "13s"},
                "metrics": [
                    {"accuracy": {"min": 0.8, "minSamples": 20}},
                    {"inputDrift": {"method": "psi", "max": 0.5, "minSamples": 120}},
                ],
                "failureThreshold": 1,
                "action": "rollback",
            }
        }),
    )
    .await;
    serving_stable(&ns, "digits", 1).await;
    let stop = Arc::new(AtomicBool::new(false));
    let load = traffic(service_ip(&ns).await, 20, true, unchanged, stop.clone());
    // Once the window has filled and the first verdict is in: ten windows (8 s of traffic
    // each) of evaluations every 4 s. None fails; a window a little short of rows may be
    // Inconclusive, never a reason to act.
    wait(
        &ns.api::<Monitor>(),
        "guard",
        Duration::from_secs(60),
        |m| {
            m.and_then(|m| m.status.as_ref()?.last_evaluation.as_ref())
                .is_some_and(|e| e.verdict == Verdict::Pass)
        },
    )
    .await;
    let verdicts = evaluations(&ns, "guard", 20, Duration::from_secs(150)).await;
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();
    // None fails. An evaluation may be Inconclusive (a window short of rows, a scrape that timed
    // out on a busy machine), which never moves traffic.
    assert!(
        verdicts.iter().all(|v| v.0 != Verdict::Fail),
        "{verdicts:?}"
    );
    let passes = verdicts.iter().filter(|v| v.0 == Verdict::Pass).count();
    assert!(
        passes >= 12,
        "{passes} of 20 evaluations passed: {verdicts:?}"
    );
    let md = ns
        .api::<ModelDeployment>()
        .get("digits")
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(md.stable_revision, Some(1));
    assert_eq!(md.revisions.len(), 1);
    assert!(!md.conditions.is_true(types::ROLLED_BACK));
    ns.delete().await;
}

#[tokio::test]
async fn the_leader_killed_mid_canary_is_replaced_within_15_seconds_and_the_rollback_happens_once()
{
    if skip_without_cluster() {
        return;
    }
    let client = client().await;
    let ns = TestNamespace::create(&client, "restart").await;
    good_and_bad_models(&ns).await;
    canary_deployment(&ns, 2, "10m", "analysis").await;
    create::<Monitor>(
        &ns,
        json!({
            "metadata": {"name": "analysis"},
            "spec": {
                "targetRef": {"name": "digits"},
                "interval": "3s",
                "window": {"samples": 40, "maxAge": "30s"},
                "metrics": [{"accuracy": {"min": 0.8, "minSamples": 15}}],
                "failureThreshold": 2,
                "action": "rollback",
            }
        }),
    )
    .await;
    serving_stable(&ns, "digits", 1).await;
    let stop = Arc::new(AtomicBool::new(false));
    let load = traffic(service_ip(&ns).await, 20, true, unchanged, stop.clone());
    let mds = ns.api::<ModelDeployment>();
    point_at(&ns, "bad").await;
    // The canary takes traffic and the analysis starts judging it.
    wait(&mds, "digits", Duration::from_secs(120), |md| {
        md.and_then(|md| md.status.as_ref())
            .is_some_and(|s| s.canary_weight == Some(50) && s.ready_replicas == Some(2))
    })
    .await;
    // Kill the leading operator in the middle of the analysis as a crash would: SIGKILL to its
    // container, so it cannot release its Lease. Another candidate (the standby replica, or the
    // killed one restarted, which is a new candidate) takes the Lease once it expires.
    let operator: kube::Api<Pod> = kube::Api::namespaced(client.clone(), "modelops-system");
    let leases: kube::Api<k8s_openapi::api::coordination::v1::Lease> =
        kube::Api::namespaced(client.clone(), "modelops-system");
    let holder = |lease: Option<&k8s_openapi::api::coordination::v1::Lease>| {
        lease
            .and_then(|l| l.spec.as_ref())
            .and_then(|s| s.holder_identity.clone())
    };
    let leader = holder(Some(&leases.get("modelops-operator").await.unwrap())).unwrap();
    let pods = operator
        .list(&ListParams::default().labels("app.kubernetes.io/name=modelops"))
        .await
        .unwrap();
    let leading_pod = pods
        .items
        .iter()
        .find(|p| leader.starts_with(&format!("{}-", p.metadata.name.as_deref().unwrap())))
        .unwrap_or_else(|| panic!("no operator pod holds the lease ({leader})"));
    let container = leading_pod
        .status
        .as_ref()
        .unwrap()
        .container_statuses
        .as_ref()
        .unwrap()[0]
        .container_id
        .clone()
        .unwrap();
    let killed = std::process::Command::new(cluster_dir().join("bin/ctr"))
        .arg("--address")
        .arg(cluster_dir().join("containerd/containerd.sock"))
        .args(["-n", "k8s.io", "task", "kill", "-s", "SIGKILL"])
        .arg(container.trim_start_matches("containerd://"))
        .output()
        .unwrap();
    assert!(
        killed.status.success(),
        "ctr task kill: {}",
        String::from_utf8_lossy(&killed.stderr)
    );
    let killed = std::time::Instant::now();
    wait(
        &leases,
        "modelops-operator",
        Duration::from_secs(60),
        |lease| holder(lease).is_some_and(|h| h != leader),
    )
    .await;
    let takeover = killed.elapsed();
    println!("another replica took the lease {takeover:?} after the leader was killed");
    assert!(
        takeover <= Duration::from_secs(15),
        "the lease was taken over after {takeover:?}"
    );
    let rolled_back = canary_rolled_back(&ns, 2).await;
    // One more evaluation after the rollback: nothing happens twice.
    evaluations(&ns, "analysis", 2, Duration::from_secs(60)).await;
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();
    let status = rolled_back.status.unwrap();
    assert_eq!(status.stable_revision, Some(1));
    // One RolledBack event: the new leader recovered the state from the cluster and did not act
    // again.
    let events = std::process::Command::new("kubectl")
        .args([
            "get",
            "events",
            "-n",
            &ns.name,
            "--field-selector",
            "involvedObject.kind=ModelDeployment,reason=RolledBack",
            "-o",
            "name",
        ])
        .output()
        .unwrap();
    let events = String::from_utf8_lossy(&events.stdout).to_string();
    assert_eq!(events.lines().count(), 1, "RolledBack events: {events:?}");
    let md = mds.get("digits").await.unwrap().status.unwrap();
    assert!(
        md.revisions
            .iter()
            .any(|r| r.revision == 2 && r.state == RevisionState::RolledBack)
    );
    ns.delete().await;
}

#[tokio::test]
async fn a_passing_canary_is_promoted_and_a_bad_one_gets_no_traffic_5_seconds_after_its_first_answer()
 {
    if skip_without_cluster() {
        return;
    }
    let client = client().await;
    let ns = TestNamespace::create(&client, "fast").await;
    // A second good model (fewer epochs: other weights, another digest).
    start_mlp(&ns, "good2", "digits", 8).await;
    good_and_bad_models(&ns).await;
    training_succeeded(&ns, "good2", Duration::from_secs(300)).await;
    canary_deployment(&ns, 2, "5s", "analysis").await;
    // A sequential test, looked at every second: a verdict as soon as the labels prove it.
    create::<Monitor>(
        &ns,
        json!({
            "metadata": {"name": "analysis"},
            "spec": {
                "targetRef": {"name": "digits"},
                "interval": "1s",
                "metrics": [{"accuracy": {"min": 0.85, "minSamples": 20, "mode": "sequential"}}],
                "action": "rollback",
            }
        }),
    )
    .await;
    serving_stable(&ns, "digits", 1).await;
    let stop = Arc::new(AtomicBool::new(false));
    let load = traffic(service_ip(&ns).await, 20, true, unchanged, stop.clone());
    // A good canary passes its analysis and is promoted.
    point_at(&ns, "good2").await;
    let promoted = serving_stable(&ns, "digits", 2).await;
    let monitor = ns.api::<Monitor>().get("analysis").await.unwrap();
    let passed = monitor
        .status
        .as_ref()
        .unwrap()
        .history
        .iter()
        .any(|h| h.revision == Some(2) && h.verdict == Verdict::Pass);
    assert!(passed, "promoted without a Pass: {:#?}", monitor.status);
    assert!(
        !promoted
            .status
            .unwrap()
            .conditions
            .is_true(types::ROLLED_BACK)
    );

    // A bad canary is failed on its first labels and leaves traffic at once.
    point_at(&ns, "bad").await;
    canary_rolled_back(&ns, 3).await;
    // A few more seconds of traffic, which must all reach revision 2.
    evaluations(&ns, "analysis", 5, Duration::from_secs(60)).await;
    stop.store(true, Ordering::Relaxed);
    let answers = load.join().unwrap();
    let (exposure, bad) = served_for(&answers, "3");
    println!("the bad canary answered for {exposure:?} after its first answer ({bad} answers)");
    assert!(
        exposure <= Duration::from_secs(5),
        "the bad canary still answered {exposure:?} after its first answer"
    );
    assert_no_failed_answers(&answers);
    assert_eq!(answers.last().unwrap().version.as_deref(), Some("2"));
    ns.delete().await;
}

#[tokio::test]
async fn a_canary_guarded_by_a_promql_query_is_rolled_back_when_the_query_crosses_its_bound() {
    if skip_without_cluster() {
        return;
    }
    let client = client().await;
    let ns = TestNamespace::create(&client, "promql").await;
    good_and_bad_models(&ns).await;
    canary_deployment(&ns, 2, "10s", "promql").await;
    // The share of wrong answers of the revision judged, over its labelled feedback in the test
    // bed's Prometheus (which scrapes the serving pods): any series Prometheus has could do.
    let wrong_share = r#"sum(increase(modelops_feedback_total{namespace="{{namespace}}",model="{{target}}",revision="{{revision}}",result="incorrect"}[20s])) / sum(increase(modelops_feedback_total{namespace="{{namespace}}",model="{{target}}",revision="{{revision}}"}[20s]))"#;
    create::<Monitor>(
        &ns,
        json!({
            "metadata": {"name": "promql"},
            "spec": {
                "targetRef": {"name": "digits"},
                "interval": "2s",
                "metrics": [{"prometheus": {
                    "address": prometheus_url(),
                    "query": wrong_share,
                    "max": 0.5,
                }}],
                "failureThreshold": 2,
                "action": "rollback",
            }
        }),
    )
    .await;
    serving_stable(&ns, "digits", 1).await;
    let stop = Arc::new(AtomicBool::new(false));
    let load = traffic(service_ip(&ns).await, 20, true, unchanged, stop.clone());

    // Prometheus has the serving pods' request histogram, by namespace.
    let patience = Duration::from_secs(120);
    let rate = prometheus_until(
        &format!(
            r#"sum(rate(modelops_request_duration_seconds_count{{namespace="{}"}}[20s]))"#,
            ns.name
        ),
        patience,
        |r| r > 0.0,
    )
    .await;
    println!("Prometheus sees {rate:.1} requests/s");
    // The good revision passes on the query.
    let passed = async {
        loop {
            let verdicts = evaluations(&ns, "promql", 1, patience).await;
            if verdicts
                .iter()
                .any(|v| v.0 == Verdict::Pass && v.1 == Some(1))
            {
                break;
            }
        }
    };
    tokio::time::timeout(patience, passed)
        .await
        .expect("revision 1 passes its query");

    // The bad model as a canary: its share of wrong answers crosses 0.5, it is rolled back.
    point_at(&ns, "bad").await;
    canary_rolled_back(&ns, 2).await;
    stop.store(true, Ordering::Relaxed);
    let answers = load.join().unwrap();
    assert_no_failed_answers(&answers);
    let status = ns
        .api::<Monitor>()
        .get("promql")
        .await
        .unwrap()
        .status
        .unwrap();
    let failed = status
        .history
        .iter()
        .find(|h| h.revision == Some(2) && h.verdict == Verdict::Fail)
        .unwrap_or_else(|| panic!("no Fail of revision 2: {status:#?}"));
    assert_eq!(failed.reason, "PrometheusAboveMaximum", "{status:#?}");
    let judged = status
        .revisions
        .iter()
        .find(|r| r.revision == 2)
        .expect("revision 2 judged");
    let share = judged.values["prometheus"];
    assert!(share > 0.5, "{judged:?}");
    println!("the bad canary's share of wrong answers: {share:.2}");
    ns.delete().await;
}

/// One good model (`good`, an mlp on the digits), trained on the digits ConfigMap.
async fn a_good_model(ns: &TestNamespace) {
    data_config_map(ns, "digits-data", digits_csv()).await;
    let digits: Dataset = example("examples/digits/dataset.yaml");
    ns.api::<Dataset>()
        .create(&PostParams::default(), &digits)
        .await
        .unwrap();
    start_mlp(ns, "good", "digits", 4).await;
    training_succeeded(ns, "good", Duration::from_secs(300)).await;
}

#[tokio::test]
async fn a_canary_without_a_verdict_is_aborted_at_its_inconclusive_timeout() {
    use modelops_api::conditions::reasons;
    if skip_without_cluster() {
        return;
    }
    let client = client().await;
    let ns = TestNamespace::create(&client, "inconclusive").await;
    a_good_model(&ns).await;
    // A canary gated by a Monitor that never gets traffic: its verdict stays Inconclusive.
    create::<ModelDeployment>(
        &ns,
        json!({"metadata": {"name": "digits"}, "spec": {
            "model": {"trainingJobRef": {"name": "good"}},
            "replicas": 2,
            "strategy": {"type": "Canary", "canary": {
                "steps": [{"weight": 50}],
                "analysis": {"monitorRef": {"name": "guard"}, "inconclusiveTimeout": "20s"},
            }},
        }}),
    )
    .await;
    create::<Monitor>(
        &ns,
        json!({
            "metadata": {"name": "guard"},
            "spec": {
                "targetRef": {"name": "digits"},
                "interval": "5s",
                "metrics": [{"accuracy": {"min": 0.8, "minSamples": 20}}],
                "action": "rollback",
            }
        }),
    )
    .await;
    serving_stable(&ns, "digits", 1).await;

    // A serving change makes revision 2 (the same model), rolled out as a canary at 50%.
    let mds = ns.api::<ModelDeployment>();
    mds.patch(
        "digits",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"serving": {"maxBatchSize": 16}}})),
    )
    .await
    .unwrap();
    let applied = mds.get("digits").await.unwrap();

    // 20s at its step without a Pass or Fail: aborted (the default), revision 1 serves.
    let timeout = reasons::ANALYSIS_INCONCLUSIVE_TIMEOUT;
    let aborted = wait(&mds, "digits", Duration::from_secs(150), |md| {
        md.and_then(|md| md.status.as_ref()).is_some_and(|s| {
            s.conditions
                .get(types::ROLLED_BACK)
                .is_some_and(|c| c.status == "True" && c.reason == timeout)
                && s.stable_revision == Some(1)
                && s.canary_weight == Some(0)
                && s.revisions.iter().any(|r| {
                    r.revision == 2
                        && r.state == RevisionState::RolledBack
                        && r.reason.as_deref() == Some(timeout)
                })
        })
    })
    .await
    .unwrap();
    let status = aborted.status.as_ref().unwrap();
    let condition = status.conditions.get(types::ROLLED_BACK).unwrap();
    assert!(condition.message.contains("20s"), "{}", condition.message);
    assert!(status.conditions.is_true(types::READY));

    // The Monitor never judged: no Fail made this rollback.
    let monitor = ns.api::<Monitor>().get("guard").await.unwrap();
    let verdicts: Vec<Verdict> = monitor
        .status
        .iter()
        .flat_map(|s| s.revisions.iter().map(|r| r.verdict))
        .collect();
    assert!(!verdicts.contains(&Verdict::Fail), "{verdicts:?}");

    // GitOps: the spec is the user's, and revision 2 stays rolled back with no pod.
    assert_eq!(aborted.metadata.generation, applied.metadata.generation);
    assert_eq!(
        serde_json::to_value(&aborted.spec).unwrap(),
        serde_json::to_value(&applied.spec).unwrap()
    );
    let r2 = wait(
        &ns.api::<Deployment>(),
        "digits-r2",
        Duration::from_secs(30),
        |d| d.and_then(|d| d.spec.as_ref()?.replicas) == Some(0),
    )
    .await;
    assert!(r2.is_some());
    ns.delete().await;
}
