//! Outages of what the operator depends on. The artifact store goes away in the middle of a
//! training run and comes back: the run finishes, resumed from its last uploaded checkpoint. The
//! API server freezes for 20 s during a training run and during a canary rollout: both complete,
//! and nothing is done twice. The operator narrowed to one namespace (namespaced mode) works there
//! with Roles alone and leaves the others be. A hostile serving pod's `/metrics` (100 MB, a
//! million series, a bin label of four billion) leaves the operator running within its memory
//! limit. A test binary of its own, its tests one at a time:
//! each stops or changes a part of the test bed that every test running beside it would feel.

mod common;

use std::time::Duration;

use common::*;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{ListParams, LogParams, Patch, PatchParams, PostParams};
use modelops_api::{Dataset, ModelDeployment, TrainingJob};
use serde_json::json;

/// Held by each test for its whole run: one outage at a time.
static ONE_OUTAGE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Kills the test bed's S3 server (SIGKILL, as a crash would).
fn kill_store() {
    let pidfile = cluster_dir().join("run/seaweedfs.pid");
    let text =
        std::fs::read_to_string(&pidfile).unwrap_or_else(|e| panic!("{}: {e}", pidfile.display()));
    let pid = text.split_whitespace().next().expect("a pid");
    let status = std::process::Command::new("kill")
        .args(["-KILL", pid])
        .status()
        .unwrap();
    assert!(status.success(), "kill -KILL {pid}");
}

/// Starts it again (`tests/cluster/up` starts what is not running and waits until S3 answers).
fn restart_store() {
    let output = std::process::Command::new(repo_root().join("tests/cluster/up"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "tests/cluster/up failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn a_training_run_survives_the_store_going_away_and_resumes_from_a_checkpoint() {
    if skip_without_cluster() {
        return;
    }
    let _alone = ONE_OUTAGE_AT_A_TIME.lock().await;
    let client = client().await;
    let ns = TestNamespace::create(&client, "outage").await;
    let text =
        std::fs::read_to_string(repo_root().join("examples/text/news-or-blog.jsonl")).unwrap();
    let map: ConfigMap = from_json(json!({
        "metadata": {"name": "news-or-blog-data"}, "data": {"news-or-blog.jsonl": text},
    }));
    ns.api::<ConfigMap>()
        .create(&PostParams::default(), &map)
        .await
        .unwrap();
    let dataset: Dataset = example("examples/text/dataset.yaml");
    ns.api::<Dataset>()
        .create(&PostParams::default(), &dataset)
        .await
        .unwrap();
    let mut job: TrainingJob = example("examples/text/trainingjob.yaml");
    job.spec.hyperparameters.epochs = 24;
    job.spec.hyperparameters.early_stopping = None;
    job.spec.run_policy.backoff_limit = 4;
    ns.api::<TrainingJob>()
        .create(&PostParams::default(), &job)
        .await
        .unwrap();

    // A few epochs in (each one's checkpoint uploaded), the store dies.
    let epoch_at_outage = progress_reaches(&ns, "news-or-blog", 3).await;
    kill_store();

    // The pod cannot save its next checkpoint: it fails, retryably, and the Job starts another.
    wait(
        &ns.api::<Job>(),
        "news-or-blog-train",
        Duration::from_secs(300),
        |j| {
            j.and_then(|j| j.status.as_ref()?.failed)
                .is_some_and(|failed| failed >= 1)
        },
    )
    .await;
    restart_store();

    let job = training_succeeded(&ns, "news-or-blog", Duration::from_secs(600)).await;
    let status = job.status.unwrap();
    assert!(status.attempts >= 2, "attempts {}", status.attempts);
    let accuracy = status.model.unwrap().metrics.test_accuracy.unwrap();
    assert!(accuracy >= 0.9, "test accuracy after the outage {accuracy}");

    // The pod that finished resumed from an uploaded checkpoint, not from the start.
    let pods = ns.api::<Pod>();
    let finished = pods
        .list(&ListParams::default().labels("batch.kubernetes.io/job-name=news-or-blog-train"))
        .await
        .unwrap()
        .items
        .into_iter()
        .find(|p| phase(p) == Some("Succeeded"))
        .expect("a pod that succeeded");
    let log = pods
        .logs(
            finished.metadata.name.as_deref().unwrap(),
            &LogParams::default(),
        )
        .await
        .unwrap();
    let resumed = resumed_epoch(&log)
        .unwrap_or_else(|| panic!("the pod that finished did not resume:\n{log}"));
    assert!(
        resumed >= epoch_at_outage,
        "resumed from {resumed}, had done {epoch_at_outage}"
    );
    ns.delete().await;
}

/// The test bed's kube-apiserver stopped (SIGSTOP: connections hang, nothing answers, as a
/// partitioned or overloaded control plane looks) until this is dropped (SIGCONT), a panic
/// included.
struct FrozenApiServer(String);

impl FrozenApiServer {
    fn freeze() -> Self {
        let pidfile = cluster_dir().join("run/kube-apiserver.pid");
        let text = std::fs::read_to_string(&pidfile)
            .unwrap_or_else(|e| panic!("{}: {e}", pidfile.display()));
        let pid = text.split_whitespace().next().expect("a pid").to_owned();
        signal("-STOP", &pid);
        Self(pid)
    }
}

impl Drop for FrozenApiServer {
    fn drop(&mut self) {
        signal("-CONT", &self.0);
    }
}

fn signal(which: &str, pid: &str) {
    let status = std::process::Command::new("kill")
        .args([which, pid])
        .status()
        .unwrap();
    assert!(status.success(), "kill {which} {pid}");
}

/// How long the API server stays frozen: the outage itself, not a wait for something.
const FREEZE: Duration = Duration::from_secs(20);

/// Events of `reason` about `kind` objects in the namespace.
fn events(ns: &TestNamespace, kind: &str, reason: &str) -> Vec<String> {
    let out = std::process::Command::new("kubectl")
        .args(["get", "events", "-n", &ns.name, "--field-selector"])
        .arg(format!("involvedObject.kind={kind},reason={reason}"))
        .args([
            "-o",
            "jsonpath={range .items[*]}{.involvedObject.name} {.message}{\"\\n\"}{end}",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn training_and_a_rollout_complete_through_a_20_second_api_server_freeze_and_nothing_is_done_twice()
 {
    if skip_without_cluster() {
        return;
    }
    let _alone = ONE_OUTAGE_AT_A_TIME.lock().await;
    let client = client().await;
    let ns = TestNamespace::create(&client, "freeze").await;
    let map: ConfigMap = from_json(json!({
        "metadata": {"name": "digits-data"}, "data": {"digits.csv": digits_csv()},
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
    // `first` (a small mlp) to serve first; `second` (the example's cnn) trains through the freeze.
    let mut first: TrainingJob = example("examples/digits/trainingjob.yaml");
    first.metadata.name = Some("first".into());
    first.spec.model =
        serde_json::from_value(json!({"architecture": "mlp", "mlp": {"hiddenLayers": [32]}}))
            .unwrap();
    first.spec.hyperparameters.epochs = 4;
    first.spec.resources.gpu = 0;
    let mut second: TrainingJob = example("examples/digits/trainingjob.yaml");
    second.metadata.name = Some("second".into());
    second.spec.hyperparameters.early_stopping = None;
    second.spec.hyperparameters.epochs = 30;
    for job in [&first, &second] {
        ns.api::<TrainingJob>()
            .create(&PostParams::default(), job)
            .await
            .unwrap();
    }
    training_succeeded(&ns, "first", Duration::from_secs(300)).await;
    let md: ModelDeployment = from_json(json!({
        "metadata": {"name": "digits"},
        "spec": {
            "model": {"trainingJobRef": {"name": "first"}},
            "replicas": 2,
            "strategy": {"type": "Canary", "canary": {"steps": [{"weight": 50, "pause": "10s"}, {"weight": 100}]}},
        }
    }));
    ns.api::<ModelDeployment>()
        .create(&PostParams::default(), &md)
        .await
        .unwrap();

    // Training: a few epochs in, the API server freezes. The pod goes on (it needs no API
    // server); the operator catches up when it answers again.
    progress_reaches(&ns, "second", 2).await;
    {
        let _frozen = FrozenApiServer::freeze();
        tokio::time::sleep(FREEZE).await;
    }
    let trained = training_succeeded(&ns, "second", Duration::from_secs(600)).await;
    assert_eq!(trained.status.unwrap().attempts, 1, "one pod, not a second");
    let pods = ns
        .api::<Pod>()
        .list(&ListParams::default().labels("batch.kubernetes.io/job-name=second-train"))
        .await
        .unwrap();
    assert_eq!(pods.items.len(), 1, "training pods of second");
    let jobs = ns.api::<Job>().list(&ListParams::default()).await.unwrap();
    let names: Vec<String> = jobs
        .items
        .iter()
        .map(|j| j.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(
        names.iter().filter(|n| n.starts_with("second")).count(),
        1,
        "Jobs: {names:?}"
    );

    // A rollout: the canary of `second` at its first step when the API server freezes.
    serving_stable(&ns, "digits", 1).await;
    ns.api::<ModelDeployment>()
        .patch(
            "digits",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"model": {"trainingJobRef": {"name": "second"}}}})),
        )
        .await
        .unwrap();
    wait(
        &ns.api::<ModelDeployment>(),
        "digits",
        Duration::from_secs(180),
        |md| {
            md.and_then(|md| md.status.as_ref())
                .is_some_and(|s| s.canary_weight == Some(50))
        },
    )
    .await;
    {
        let _frozen = FrozenApiServer::freeze();
        tokio::time::sleep(FREEZE).await;
    }
    let promoted = serving_stable(&ns, "digits", 2).await;
    let revisions: Vec<(i32, String)> = promoted
        .status
        .unwrap()
        .revisions
        .iter()
        .map(|r| (r.revision, format!("{:?}", r.state)))
        .collect();
    assert_eq!(
        revisions,
        [(2, "Stable".to_owned()), (1, "Superseded".to_owned())]
    );
    // Nothing done twice: revision 2 promoted once, nothing rolled back, no revision announced
    // twice. (An Event in flight when the API server froze may be lost with the leader that sent
    // it: Events are best effort.)
    for (reason, expected) in [("Promoted", 1), ("RolledBack", 0)] {
        let seen = events(&ns, "ModelDeployment", reason);
        assert_eq!(seen.len(), expected, "{reason} events: {seen:?}");
    }
    let announced = events(&ns, "ModelDeployment", "NewRevision");
    let distinct: std::collections::BTreeSet<&String> = announced.iter().collect();
    assert_eq!(
        distinct.len(),
        announced.len(),
        "NewRevision events: {announced:?}"
    );
    ns.delete().await;
}

/// `helm upgrade` of the test bed's release, keeping its values, with `args`.
fn upgrade_operator(args: &[&str]) {
    let out = std::process::Command::new("helm")
        .args(["upgrade", "modelops"])
        .arg(repo_root().join("charts/modelops"))
        .args([
            "--namespace",
            "modelops-system",
            "--reuse-values",
            "--wait",
            "--timeout",
            "180s",
        ])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "helm upgrade: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = std::process::Command::new("kubectl")
        .args([
            "-n",
            "modelops-system",
            "rollout",
            "status",
            "deployment/modelops-operator",
        ])
        .args(["--timeout=180s"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The chart back in its cluster-wide mode when dropped, a panic included.
struct NamespacedMode;

impl Drop for NamespacedMode {
    fn drop(&mut self) {
        // `{}` is helm's empty list (as [""], which the chart reads as none); `null` would leave
        // the rendered value as it was under --reuse-values.
        upgrade_operator(&["--set", "watchNamespaces={}"]);
    }
}

/// `kubectl auth can-i` as the operator's ServiceAccount, in `namespace` or in all of them.
fn operator_may(verb: &str, resource: &str, namespace: Option<&str>) -> bool {
    let mut command = std::process::Command::new("kubectl");
    command.args(["auth", "can-i", verb, resource, "--as"]);
    command.arg("system:serviceaccount:modelops-system:modelops-operator");
    match namespace {
        Some(ns) => command.args(["-n", ns]),
        None => command.arg("--all-namespaces"),
    };
    let out = command.output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "yes"
}

/// The iris Dataset and its data in `ns`.
async fn iris(ns: &TestNamespace) {
    let map: ConfigMap = from_json(json!({
        "metadata": {"name": "iris-data"},
        "data": {"iris.csv": std::fs::read_to_string(repo_root().join("examples/data/iris.csv")).unwrap()},
    }));
    ns.api::<ConfigMap>()
        .create(&PostParams::default(), &map)
        .await
        .unwrap();
    let dataset: Dataset = example("examples/iris/dataset.yaml");
    ns.api::<Dataset>()
        .create(&PostParams::default(), &dataset)
        .await
        .unwrap();
}

#[tokio::test]
async fn in_namespaced_mode_the_operator_works_in_its_namespaces_with_roles_alone() {
    if skip_without_cluster() {
        return;
    }
    let _alone = ONE_OUTAGE_AT_A_TIME.lock().await;
    let client = client().await;
    let watched = TestNamespace::create(&client, "watched").await;
    let other = TestNamespace::create(&client, "unwatched").await;
    let _restore = NamespacedMode;
    upgrade_operator(&["--set", &format!("watchNamespaces={{{}}}", watched.name)]);

    // Its rights: the workloads of the watched namespace, nothing of the others.
    assert!(operator_may("create", "jobs.batch", Some(&watched.name)));
    assert!(operator_may(
        "list",
        "trainingjobs.modelops.dev",
        Some(&watched.name)
    ));
    assert!(!operator_may("create", "jobs.batch", Some(&other.name)));
    assert!(!operator_may("list", "trainingjobs.modelops.dev", None));
    assert!(!operator_may("list", "pods", None));

    // It prepares a Dataset in the watched namespace, and does not touch one in another.
    iris(&watched).await;
    iris(&other).await;
    let ready = wait(
        &watched.api::<Dataset>(),
        "iris",
        Duration::from_secs(180),
        |d| {
            d.and_then(|d| d.status.as_ref())
                .is_some_and(|s| s.conditions.is_true(modelops_api::conditions::types::READY))
        },
    )
    .await
    .unwrap();
    assert!(ready.status.unwrap().digest.is_some());
    let untouched = other.api::<Dataset>().get("iris").await.unwrap();
    assert!(untouched.status.is_none(), "{:?}", untouched.status);
    assert!(
        other
            .api::<Job>()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    watched.delete().await;
    other.delete().await;
}

/// The workload policy back to the worker images alone when dropped, a panic included.
struct NetcheckAllowed;

impl Drop for NetcheckAllowed {
    fn drop(&mut self) {
        upgrade_operator(&["--set", "policy.images={}"]);
    }
}

/// Memory (working set, bytes) and restarts of each operator container, from the kubelet.
async fn operator_memory(client: &kube::Client) -> Vec<(String, u64, i32)> {
    use k8s_openapi::api::core::v1::Node;
    let nodes = kube::Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap();
    let node = nodes.items[0].metadata.name.clone().unwrap();
    let summary: serde_json::Value = serde_json::from_slice(
        &client
            .request_text(
                http::Request::get(format!("/api/v1/nodes/{node}/proxy/stats/summary"))
                    .body(Vec::new())
                    .unwrap(),
            )
            .await
            .unwrap()
            .into_bytes(),
    )
    .unwrap();
    let pods = kube::Api::<Pod>::namespaced(client.clone(), "modelops-system")
        .list(&ListParams::default().labels("app.kubernetes.io/name=modelops"))
        .await
        .unwrap();
    pods.items
        .iter()
        .filter(|p| phase(p) == Some("Running") && p.metadata.deletion_timestamp.is_none())
        .map(|p| {
            let name = p.metadata.name.clone().unwrap();
            let restarts = p
                .status
                .as_ref()
                .unwrap()
                .container_statuses
                .as_ref()
                .unwrap()[0]
                .restart_count;
            let memory = summary["pods"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["podRef"]["name"] == name.as_str())
                .and_then(|s| s["containers"][0]["memory"]["workingSetBytes"].as_u64())
                .unwrap_or_else(|| panic!("no memory figure for {name}: {summary}"));
            (name, memory, restarts)
        })
        .collect()
}

/// How an operator container last ended, and the tail of its log then.
async fn why_restarted(client: &kube::Client, pod: &str) -> String {
    let pods = kube::Api::<Pod>::namespaced(client.clone(), "modelops-system");
    let ended = pods.get(pod).await.ok().and_then(|p| {
        let status = p.status?.container_statuses?.into_iter().next()?;
        let ended = status.last_state?.terminated?;
        Some(format!(
            "{} (exit code {}) at {:?}",
            ended.reason.unwrap_or_default(),
            ended.exit_code,
            ended.finished_at
        ))
    });
    let params = LogParams {
        previous: true,
        tail_lines: Some(20),
        ..Default::default()
    };
    let log = pods
        .logs(pod, &params)
        .await
        .unwrap_or_else(|e| e.to_string());
    format!(
        "last ended {}; its log then:\n{log}",
        ended.unwrap_or_else(|| "unknown".into())
    )
}

#[tokio::test]
async fn a_hostile_metrics_endpoint_leaves_the_operator_running_within_its_memory_limit() {
    if skip_without_cluster() {
        return;
    }
    let _alone = ONE_OUTAGE_AT_A_TIME.lock().await;
    let client = client().await;
    let ns = TestNamespace::create(&client, "hostile").await;
    // A cluster whose policy allows an image that serves what it likes: here `netcheck serve`,
    // whose /metrics is a flood.
    let _restore = NetcheckAllowed;
    upgrade_operator(&["--set", "policy.images={modelops/netcheck:dev}"]);
    let before = operator_memory(&client).await;
    let digest = format!("sha256:{}", "ab".repeat(32));
    let md: ModelDeployment = from_json(json!({
        "metadata": {"name": "hostile"},
        "spec": {
            "model": {"artifact": {"uri": format!("{}/models/{}", ns.root, "ab".repeat(32)), "digest": digest}},
            "template": {"image": "modelops/netcheck:dev", "imagePullPolicy": "IfNotPresent"},
        }
    }));
    ns.api::<ModelDeployment>()
        .create(&PostParams::default(), &md)
        .await
        .unwrap();
    let monitor: modelops_api::Monitor = from_json(json!({
        "metadata": {"name": "hostile"},
        "spec": {
            "targetRef": {"name": "hostile"},
            "interval": "1s",
            "metrics": [{"errorRate": {"max": 0.5}}],
            "action": "alert",
        }
    }));
    ns.api::<modelops_api::Monitor>()
        .create(&PostParams::default(), &monitor)
        .await
        .unwrap();
    serving_stable(&ns, "hostile", 1).await;
    // Ten evaluations, each scraping the flood.
    let monitors = ns.api::<modelops_api::Monitor>();
    let mut seen = std::collections::BTreeSet::new();
    let mut peak = 0u64;
    while seen.len() < 10 {
        let m = wait(&monitors, "hostile", Duration::from_secs(60), |m| {
            m.and_then(|m| m.status.as_ref()?.last_evaluation.as_ref())
                .is_some_and(|e| !seen.contains(&e.time.0))
        })
        .await
        .unwrap();
        seen.insert(m.status.unwrap().last_evaluation.unwrap().time.0);
        for (name, memory, _) in operator_memory(&client).await {
            assert!(memory < 256 << 20, "{name} uses {memory} bytes");
            peak = peak.max(memory);
        }
    }
    println!(
        "operator working set at most {} MiB over 10 scrapes of a hostile /metrics",
        peak >> 20
    );
    // Nothing restarted (an OOM kill would have); a restart says why.
    let after = operator_memory(&client).await;
    for (name, _, restarts) in &after {
        let was = before.iter().find(|b| &b.0 == name).map(|b| b.2);
        if was != Some(*restarts) {
            panic!(
                "{name} restarted ({was:?} -> {restarts}): {}",
                why_restarted(&client, name).await
            );
        }
    }
    ns.delete().await;
}
