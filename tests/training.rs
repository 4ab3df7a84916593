//! End to end on the test bed, with the operator installed by the chart (`tests/cluster/install`):
//! Datasets are prepared and TrainingJobs train real models on real data in worker pods.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::*;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Service};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, LogParams, Patch, PatchParams,
    PostParams,
};
use kube::runtime::{WatchStreamExt, watcher};
use modelops_api::conditions::types;
use modelops_api::trainingjob::TrainingPhase;
use modelops_api::workorder::layout;
use modelops_api::{Dataset, ModelDeployment, TrainingJob};
use serde_json::json;
use sha2::{Digest, Sha256};

/// Creates the ConfigMap a Dataset example reads its data from.
async fn data_config_map(ns: &TestNamespace, name: &str, key: &str, file: &str) {
    let path = repo_root().join(file);
    let map: ConfigMap = from_json(json!({
        "metadata": {"name": name},
        "data": {key: std::fs::read_to_string(path).unwrap()},
    }));
    ns.api::<ConfigMap>()
        .create(&PostParams::default(), &map)
        .await
        .unwrap();
}

async fn create<K>(ns: &TestNamespace, object: &K) -> K
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    ns.api::<K>()
        .create(&PostParams::default(), object)
        .await
        .unwrap()
}

async fn dataset_ready(ns: &TestNamespace, name: &str) -> Dataset {
    wait(&ns.api::<Dataset>(), name, Duration::from_secs(180), |d| {
        d.and_then(|d| d.status.as_ref()).is_some_and(|s| {
            s.conditions.is_true(types::READY) || s.conditions.is_true(types::STALLED)
        })
    })
    .await
    .unwrap()
}

/// Waits for a TrainingJob to finish and returns it; panics with its status if it failed.
async fn succeeded(ns: &TestNamespace, name: &str, timeout: Duration) -> TrainingJob {
    let job = training_succeeded(ns, name, timeout).await;
    assert!(
        job.status
            .as_ref()
            .unwrap()
            .conditions
            .is_true(types::READY)
    );
    job
}

/// The model card and its sha256 (the model's digest), read from the model's folder in the
/// store, once the weights there are checked against the card.
async fn model_in_store(uri: &str) -> (serde_json::Value, String) {
    let hex = |bytes: &[u8]| -> String {
        Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let card_bytes = read_artifact(&format!("{uri}/{}", layout::MODEL_JSON)).await;
    let weights = read_artifact(&format!("{uri}/{}", layout::MODEL_SAFETENSORS)).await;
    let card: serde_json::Value = serde_json::from_slice(&card_bytes).unwrap();
    assert_eq!(
        card["weights"]["sha256"],
        hex(&weights),
        "the weights are not the card's"
    );
    (card, hex(&card_bytes))
}

#[tokio::test]
async fn digits_are_prepared_and_trained_to_95_percent() {
    if skip_without_cluster() {
        return;
    }
    let client = client().await;
    let ns = TestNamespace::create(&client, "digits").await;
    data_config_map(&ns, "digits-data", "digits.csv", "examples/data/digits.csv").await;
    create(&ns, &example::<Dataset>("examples/digits/dataset.yaml")).await;
    create(
        &ns,
        &example::<TrainingJob>("examples/digits/trainingjob.yaml"),
    )
    .await;

    let dataset = dataset_ready(&ns, "digits").await;
    let status = dataset.status.unwrap();
    let dataset_digest = status.digest.clone();
    assert!(status.conditions.is_true(types::READY), "{status:#?}");
    assert_eq!(status.rows.unwrap().total, 1797);
    assert_eq!(status.classes.len(), 10);
    assert!(status.digest.as_deref().unwrap().starts_with("sha256:"));
    assert_health(&ns.name, "Dataset", "digits", ("Current", "Healthy"));

    // Flux and Argo CD wait while it trains (the state a watch saw while it ran: a short run may
    // be done by the time it is read again), and call it done once it has.
    let running = wait(
        &ns.api::<TrainingJob>(),
        "digits",
        Duration::from_secs(300),
        |j| {
            j.and_then(|j| j.status.as_ref())
                .is_some_and(|s| s.phase == Some(TrainingPhase::Running))
        },
    )
    .await
    .unwrap();
    let mut object = serde_json::to_value(&running).unwrap();
    object["apiVersion"] = json!("modelops.dev/v1alpha1");
    object["kind"] = json!("TrainingJob");
    let health = health_of("TrainingJob", &object);
    assert_eq!(
        (health.kstatus.as_str(), health.argo.as_str()),
        ("InProgress", "Progressing"),
        "{health:?}"
    );
    // Live learning curves: one point per finished epoch, as far as the progress goes.
    let live = wait(
        &ns.api::<TrainingJob>(),
        "digits",
        Duration::from_secs(300),
        |j| {
            j.and_then(|j| j.status.as_ref()?.progress.as_ref())
                .is_some_and(|p| p.epoch >= 1)
        },
    )
    .await
    .unwrap()
    .status
    .unwrap();
    let done = live.progress.unwrap().epoch;
    let curves = live.curves.expect("curves beside the progress");
    assert_eq!(curves.epochs, (1..=done).collect::<Vec<_>>());
    let job = succeeded(&ns, "digits", Duration::from_secs(300)).await;
    assert_health(&ns.name, "TrainingJob", "digits", ("Current", "Healthy"));
    let status = job.status.unwrap();
    let model = status.model.unwrap();
    let accuracy = model.metrics.test_accuracy.unwrap();
    assert!(accuracy >= 0.95, "test accuracy {accuracy}");
    assert_eq!(Some(&model.dataset_digest), dataset_digest.as_ref());
    // The model lives in the namespace's own part of the store.
    assert!(
        model
            .uri
            .starts_with(&format!("s3://modelops/{}/models/", ns.name)),
        "{}",
        model.uri
    );
    let (card, sha) = model_in_store(&model.uri).await;
    assert_eq!(
        format!("sha256:{sha}"),
        model.digest,
        "the model is not what the status names"
    );
    // The status shows it to 3 decimals (what `kubectl get` prints); the card keeps it exact.
    let exact = card["metrics"]["testAccuracy"].as_f64().unwrap();
    assert_eq!(accuracy, (exact * 1000.0).round() / 1000.0, "card {exact}");
    let table = std::process::Command::new("kubectl")
        .args(["get", "trainingjob", "digits", "-n", &ns.name])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    let column = header.iter().position(|h| *h == "ACCURACY").unwrap();
    assert_eq!(row[column], accuracy.to_string(), "{table}");
    assert!(row[column].len() <= 5, "{table}");
    // The status shows the last epoch, however short the run was.
    let progress = status.progress.clone().expect("progress in the status");
    assert_eq!(
        Some(i64::from(progress.epoch)),
        card["training"]["epochsRun"].as_i64()
    );
    // And every epoch's figures, for the learning curves.
    let curves = status
        .curves
        .clone()
        .expect("learning curves in the status");
    assert_eq!(curves.epochs, (1..=progress.epoch).collect::<Vec<_>>());
    for series in [
        &curves.train_loss,
        &curves.validation_loss,
        &curves.validation_accuracy,
    ] {
        assert_eq!(series.len(), curves.epochs.len(), "{curves:?}");
    }
    // (the status shows an accuracy to 3 decimals, a curve's figures to 4 significant digits)
    let last = curves.validation_accuracy.last().copied().unwrap();
    let shown = progress.validation_accuracy.unwrap();
    assert!((last - shown).abs() <= 0.0005, "{curves:?} vs {shown}");
    assert_eq!(status.dataset_digest, Some(model.dataset_digest.clone()));

    // The columns a person looks at.
    let table = std::process::Command::new("kubectl")
        .args(["get", "trainingjobs", "-n", &ns.name])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "PHASE", "EPOCH", "ACCURACY", "RMSE", "AGE"],
        "{table}"
    );
    assert!(
        table.lines().nth(1).unwrap().contains("Succeeded"),
        "{table}"
    );

    // Events a person can follow.
    let events = std::process::Command::new("kubectl")
        .args([
            "get",
            "events",
            "-n",
            &ns.name,
            "-o",
            "jsonpath={.items[*].reason}",
        ])
        .output()
        .unwrap();
    let reasons = String::from_utf8_lossy(&events.stdout);
    for reason in ["Preparing", "Prepared", "Started", "Succeeded"] {
        assert!(
            reasons.split_whitespace().any(|r| r == reason),
            "no {reason} event in {reasons}"
        );
    }
    ns.delete().await;
}

#[tokio::test]
async fn prometheus_scrapes_a_training_pod_while_it_trains_and_the_operators_reconciles() {
    if skip_without_cluster() {
        return;
    }
    let client = client().await;
    let ns = TestNamespace::create(&client, "scraped").await;
    data_config_map(&ns, "digits-data", "digits.csv", "examples/data/digits.csv").await;
    create(&ns, &example::<Dataset>("examples/digits/dataset.yaml")).await;
    // A run long enough to be scraped a few times, deleted once it has been.
    let mut job: TrainingJob = example("examples/digits/trainingjob.yaml");
    job.spec.hyperparameters.epochs = 5000;
    job.spec.hyperparameters.early_stopping = None;
    job.spec.resources.gpu = 0;
    create(&ns, &job).await;

    // The test bed's Prometheus finds the training pod by its annotations, through Kubernetes
    // service discovery, and has its progress while it trains.
    let patience = Duration::from_secs(300);
    let of_ns = |series: &str| format!("max({series}{{namespace=\"{}\"}})", ns.name);
    let epoch = prometheus_until(&of_ns("modelops_training_epoch"), patience, |e| e >= 1.0).await;
    let total =
        prometheus_until(&of_ns("modelops_training_total_epochs"), patience, |_| true).await;
    assert_eq!(total, 5000.0);
    let accuracy = prometheus_until(
        &of_ns("modelops_training_validation_accuracy"),
        patience,
        |a| a > 0.0,
    )
    .await;
    println!("Prometheus saw epoch {epoch} of {total}, validation accuracy {accuracy}");
    // The operator's gauges of the running TrainingJob, read from its cache, and the pod's
    // throughput.
    let of_job = |series: &str| {
        format!(
            "max({series}{{namespace=\"{}\", trainingjob=\"digits\"}})",
            ns.name
        )
    };
    let operator_epoch = prometheus_until(&of_job("modelops_trainingjob_epoch"), patience, |e| {
        e >= 1.0
    })
    .await;
    let throughput = prometheus_until(
        &of_ns("modelops_training_samples_per_second"),
        patience,
        |t| t > 0.0,
    )
    .await;
    let operator_throughput = prometheus_until(
        &of_job("modelops_trainingjob_samples_per_second"),
        patience,
        |t| t > 0.0,
    )
    .await;
    println!(
        "the operator says epoch {operator_epoch} at {operator_throughput:.0} samples/s (the pod: {throughput:.0})"
    );
    let job_now = ns.api::<TrainingJob>().get("digits").await.unwrap();
    assert_eq!(
        job_now.status.and_then(|s| s.phase),
        Some(TrainingPhase::Running),
        "scraped while it trains"
    );

    // The operator's reconcile histogram: buckets by kind, from which a quantile is computed.
    let reconciles = prometheus_until(
        r#"sum(modelops_reconcile_duration_seconds_count{kind="TrainingJob"})"#,
        patience,
        |n| n > 0.0,
    )
    .await;
    let p99 = prometheus_until(
        r#"histogram_quantile(0.99, sum by (le) (rate(modelops_reconcile_duration_seconds_bucket{kind="TrainingJob"}[5m])))"#,
        patience,
        f64::is_finite,
    )
    .await;
    println!("{reconciles} TrainingJob reconciles, p99 {p99} s");
    // Which replica leads, as Prometheus sees it: exactly one.
    let leading = prometheus_until("sum(modelops_leading)", patience, |n| n == 1.0).await;
    assert_eq!(leading, 1.0);
    ns.api::<TrainingJob>()
        .delete("digits", &DeleteParams::default())
        .await
        .unwrap();
    ns.delete().await;
}

#[tokio::test]
async fn a_training_job_waits_for_its_dataset_and_then_proceeds() {
    if skip_without_cluster() {
        return;
    }
    let client = client().await;
    let ns = TestNamespace::create(&client, "wait").await;
    let mut job: TrainingJob = example("examples/iris/trainingjob.yaml");
    job.spec.search = None;
    create(&ns, &job).await;
    let waiting = wait(
        &ns.api::<TrainingJob>(),
        "iris",
        Duration::from_secs(60),
        |j| {
            j.and_then(|j| j.status.as_ref()?.conditions.get(types::READY).cloned())
                .is_some_and(|c| c.reason == "DatasetNotFound")
        },
    )
    .await
    .unwrap();
    assert_eq!(waiting.status.unwrap().phase, Some(TrainingPhase::Pending));
    assert_health(
        &ns.name,
        "TrainingJob",
        "iris",
        ("InProgress", "Progressing"),
    );

    data_config_map(&ns, "iris-data", "iris.csv", "examples/data/iris.csv").await;
    create(&ns, &example::<Dataset>("examples/iris/dataset.yaml")).await;
    let job = succeeded(&ns, "iris", Duration::from_secs(240)).await;
    let accuracy = job
        .status
        .unwrap()
        .model
        .unwrap()
        .metrics
        .test_accuracy
        .unwrap();
    assert!(accuracy >= 0.85, "iris test accuracy {accuracy}");
    ns.delete().await;
}

#[tokio::test]
async fn a_suspended_job_reads_as_held_and_a_failed_one_fails_its_model_deployment_at_once() {
    if skip_without_cluster() {
        return;
    }
    let client = client().await;
    let ns = TestNamespace::create(&client, "held").await;
    data_config_map(&ns, "iris-data", "iris.csv", "examples/data/iris.csv").await;
    create(&ns, &example::<Dataset>("examples/iris/dataset.yaml")).await;
    let mut held: TrainingJob = example("examples/iris/trainingjob.yaml");
    held.metadata.name = Some("held".into());
    held.spec.search = None;
    held.spec.run_policy.suspend = true;
    let mut doomed = held.clone();
    doomed.metadata.name = Some("doomed".into());
    doomed.spec.run_policy.suspend = false;
    doomed.spec.run_policy.active_deadline_seconds = Some(1);
    doomed.spec.run_policy.backoff_limit = 0;
    for job in [&held, &doomed] {
        create(&ns, job).await;
    }
    let jobs = ns.api::<TrainingJob>();
    // Held on purpose: done as far as Flux is concerned, Suspended for Argo CD.
    wait(&jobs, "held", Duration::from_secs(120), |j| {
        j.and_then(|j| j.status.as_ref()?.phase) == Some(TrainingPhase::Suspended)
    })
    .await;
    assert_health(&ns.name, "TrainingJob", "held", ("Current", "Suspended"));
    // Out of time: failed for both.
    wait(&jobs, "doomed", Duration::from_secs(180), |j| {
        j.and_then(|j| j.status.as_ref()?.phase) == Some(TrainingPhase::Failed)
    })
    .await;
    assert_health(&ns.name, "TrainingJob", "doomed", ("Failed", "Degraded"));

    // A ModelDeployment of the held job waits for it; one of the failed job fails at once.
    for (name, job) in [("waits", "held"), ("fails", "doomed")] {
        let md: ModelDeployment = from_json(json!({
            "metadata": {"name": name},
            "spec": {"model": {"trainingJobRef": {"name": job}}},
        }));
        create(&ns, &md).await;
    }
    let mds = ns.api::<ModelDeployment>();
    let failing = wait(&mds, "fails", Duration::from_secs(60), |md| {
        md.and_then(|md| md.status.as_ref())
            .is_some_and(|s| s.conditions.is_true(types::STALLED))
    })
    .await
    .unwrap();
    let stalled = failing
        .status
        .unwrap()
        .conditions
        .get(types::STALLED)
        .cloned()
        .unwrap();
    assert_eq!(stalled.reason, "ReferenceFailed");
    assert!(
        stalled.message.contains("TrainingJob")
            && stalled.message.contains("doomed")
            && !stalled.message.contains("Some("),
        "{stalled:?}"
    );
    assert_health(&ns.name, "ModelDeployment", "fails", ("Failed", "Degraded"));
    let waiting = wait(&mds, "waits", Duration::from_secs(60), |md| {
        md.and_then(|md| md.status.as_ref()?.conditions.get(types::READY).cloned())
            .is_some_and(|c| c.reason == "ReferenceNotReady")
    })
    .await
    .unwrap();
    let ready = waiting
        .status
        .unwrap()
        .conditions
        .get(types::READY)
        .cloned()
        .unwrap();
    assert!(ready.message.contains("suspended"), "{ready:?}");
    assert_health(
        &ns.name,
        "ModelDeployment",
        "waits",
        ("InProgress", "Progressing"),
    );
    ns.delete().await;
}

/// One of Kueue's kinds (the test bed runs Kueue v0.17, API `kueue.x-k8s.io/v1beta2`), untyped.
fn kueue_api(client: &kube::Client, kind: &str, namespace: Option<&str>) -> Api<DynamicObject> {
    let resource = ApiResource {
        group: "kueue.x-k8s.io".into(),
        version: "v1beta2".into(),
        api_version: "kueue.x-k8s.io/v1beta2".into(),
        kind: kind.into(),
        plural: format!("{}s", kind.to_lowercase()),
    };
    match namespace {
        Some(namespace) => Api::namespaced_with(client.clone(), namespace, &resource),
        None => Api::all_with(client.clone(), &resource),
    }
}

/// The status condition `kind` of an untyped object: (status, reason, message).
fn condition_of(object: &DynamicObject, kind: &str) -> Option<(String, String, String)> {
    let conditions = object.data["status"]["conditions"].as_array()?;
    let c = conditions.iter().find(|c| c["type"] == kind)?;
    let text = |field: &str| c[field].as_str().unwrap_or_default().to_owned();
    Some((text("status"), text("reason"), text("message")))
}

/// Kueue's Workload for a worker Job (Kueue names it; its owner is the Job).
async fn workload_of(workloads: &Api<DynamicObject>, job: &str) -> Option<DynamicObject> {
    workloads
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .find(|w| {
            w.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.kind == "Job" && o.name == job)
        })
}

#[tokio::test]
async fn trainingjobs_queued_with_kueue_are_admitted_by_kueue_one_at_a_time_within_the_quota() {
    if skip_without_cluster() {
        return;
    }
    let client = client().await;
    let ns = TestNamespace::create(&client, "kueue").await;
    // The test bed applies Kueue's Job webhooks to namespaces with this label (tests/cluster/up).
    Api::<Namespace>::all(client.clone())
        .patch(
            &ns.name,
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"labels": {"testbed.modelops.dev/kueue": "enabled"}}}),
            ),
        )
        .await
        .unwrap();
    // A flavor, a ClusterQueue of this namespace alone with room for one 500m/512Mi job at a
    // time, and the LocalQueue `ml` in the namespace.
    let cluster_scoped = ns.name.clone();
    let flavors = kueue_api(&client, "ResourceFlavor", None);
    let cluster_queues = kueue_api(&client, "ClusterQueue", None);
    let post = PostParams::default();
    flavors
        .create(
            &post,
            &from_json(json!({
                "apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ResourceFlavor",
                "metadata": {"name": cluster_scoped},
            })),
        )
        .await
        .unwrap();
    cluster_queues
        .create(
            &post,
            &from_json(json!({
                "apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ClusterQueue",
                "metadata": {"name": cluster_scoped},
                "spec": {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns.name}},
                    "resourceGroups": [{
                        "coveredResources": ["cpu", "memory"],
                        "flavors": [{"name": cluster_scoped, "resources": [
                            {"name": "cpu", "nominalQuota": "500m"},
                            {"name": "memory", "nominalQuota": "768Mi"},
                        ]}],
                    }],
                },
            })),
        )
        .await
        .unwrap();
    kueue_api(&client, "LocalQueue", Some(&ns.name))
        .create(
            &post,
            &from_json(json!({
                "apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "LocalQueue",
                "metadata": {"name": "ml"},
                "spec": {"clusterQueue": cluster_scoped},
            })),
        )
        .await
        .unwrap();
    wait(
        &cluster_queues,
        &cluster_scoped,
        Duration::from_secs(60),
        |q| {
            q.and_then(|q| condition_of(q, "Active"))
                .is_some_and(|(status, ..)| status == "True")
        },
    )
    .await;

    data_config_map(&ns, "iris-data", "iris.csv", "examples/data/iris.csv").await;
    create(&ns, &example::<Dataset>("examples/iris/dataset.yaml")).await;
    let names = ["first", "second"];
    for name in names {
        let mut queued: TrainingJob = example("examples/iris/trainingjob.yaml");
        queued.metadata.name = Some(name.to_owned());
        queued.spec.search = None;
        // Long enough that the one admitted is seen running while the other waits.
        queued.spec.hyperparameters.epochs = 300;
        queued.metadata.labels = Some(BTreeMap::from([(
            "kueue.x-k8s.io/queue-name".to_owned(),
            "ml".to_owned(),
        )]));
        create(&ns, &queued).await;
    }

    // Kueue admits one (it unsuspends its Job); the other, over the quota, waits with its Job
    // suspended and its Workload without a quota reservation, and the TrainingJob says so.
    let worker_jobs = ns.api::<k8s_openapi::api::batch::v1::Job>();
    let workloads = kueue_api(&client, "Workload", Some(&ns.name));
    let trainings = ns.api::<TrainingJob>();
    let suspended = |job: &k8s_openapi::api::batch::v1::Job| {
        job.spec.as_ref().and_then(|s| s.suspend) == Some(true)
    };
    let training_jobs = ListParams::default().labels("modelops.dev/trainingjob");
    // Admitted and not finished: at most one at any time.
    let running = |job: &k8s_openapi::api::batch::v1::Job| {
        !suspended(job)
            && job
                .status
                .as_ref()
                .is_none_or(|s| s.completion_time.is_none() && s.failed.unwrap_or(0) == 0)
    };
    let seen = tokio::time::timeout(Duration::from_secs(300), async {
        loop {
            let jobs = worker_jobs.list(&training_jobs).await.unwrap().items;
            let admitted = jobs.iter().filter(|j| running(j)).count();
            assert!(
                admitted <= 1,
                "Kueue admitted both jobs past a quota for one: {jobs:#?}"
            );
            if jobs.len() == 2
                && admitted == 1
                && let Some(waiting) = jobs.iter().find(|j| suspended(j))
            {
                break waiting.metadata.name.clone().unwrap();
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
    .await;
    let waiting = seen.expect("one job running while the other waits for admission");
    let waiting_training = waiting.trim_end_matches("-train").to_owned();
    let training = trainings.get(&waiting_training).await.unwrap();
    let ready = training
        .status
        .unwrap()
        .conditions
        .get(types::READY)
        .cloned()
        .unwrap();
    assert_eq!(ready.reason, "WaitingForAdmission", "{ready:?}");
    assert!(ready.message.contains("\"ml\""), "{ready:?}");
    assert_health(
        &ns.name,
        "TrainingJob",
        &waiting_training,
        ("InProgress", "Progressing"),
    );
    let workload = workload_of(&workloads, &waiting)
        .await
        .expect("a Workload for the waiting Job");
    let (reserved, _, message) = condition_of(&workload, "QuotaReserved").unwrap();
    assert_eq!(reserved, "False", "{message}");
    assert!(message.contains("insufficient"), "{message}");

    // Both train to the end, the second admitted only once the first has finished; the operator
    // never suspends an admitted Job again.
    for name in names {
        training_succeeded(&ns, name, Duration::from_secs(600)).await;
    }
    let mut jobs = worker_jobs.list(&training_jobs).await.unwrap().items;
    assert_eq!(jobs.len(), 2, "{jobs:#?}");
    jobs.sort_by_key(|j| {
        j.status
            .as_ref()
            .and_then(|s| s.start_time.clone())
            .map(|t| t.0)
    });
    for job in &jobs {
        assert_eq!(
            job.metadata.labels.as_ref().unwrap()["kueue.x-k8s.io/queue-name"],
            "ml"
        );
        assert!(!suspended(job), "{job:#?}");
        let name = job.metadata.name.as_deref().unwrap();
        let workload = workload_of(&workloads, name)
            .await
            .expect("a Workload per Job");
        let (admitted, ..) = condition_of(&workload, "Admitted").unwrap();
        let (finished, ..) = condition_of(&workload, "Finished").unwrap();
        assert_eq!(
            (admitted.as_str(), finished.as_str()),
            ("True", "True"),
            "{workload:#?}"
        );
    }
    let finished = jobs[0]
        .status
        .as_ref()
        .and_then(|s| s.completion_time.clone())
        .unwrap();
    let started = jobs[1]
        .status
        .as_ref()
        .and_then(|s| s.start_time.clone())
        .unwrap();
    assert!(
        started.0 >= finished.0,
        "the second job started at {started:?}, before the first finished at {finished:?}"
    );

    ns.delete().await;
    let _ = cluster_queues
        .delete(&cluster_scoped, &DeleteParams::default())
        .await;
    let _ = flavors
        .delete(&cluster_scoped, &DeleteParams::default())
        .await;
}

#[tokio::test]
async fn a_dataset_whose_url_answers_404_stalls_with_the_reason() {
    if skip_without_cluster() {
        return;
    }
    let client = client().await;
    let ns = TestNamespace::create(&client, "http404").await;
    let labels = json!({"app": "files"});
    let server: Deployment = from_json(json!({
        "metadata": {"name": "files"},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{
                "name": "serve", "image": "modelops/netcheck:dev", "imagePullPolicy": "IfNotPresent",
                "args": ["serve", "8080", "404"],
                "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
                "securityContext": restricted_security_context(),
            }]}},
        }
    }));
    create(&ns, &server).await;
    let service: Service = from_json(json!({
        "metadata": {"name": "files"},
        "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]},
    }));
    let service = create(&ns, &service).await;
    let ip = service.spec.unwrap().cluster_ip.unwrap();
    wait(
        &ns.api::<Deployment>(),
        "files",
        Duration::from_secs(120),
        |d| d.and_then(|d| d.status.as_ref()?.ready_replicas) == Some(1),
    )
    .await;

    let mut dataset: Dataset = example("examples/iris/dataset.yaml");
    dataset.spec.source =
        serde_json::from_value(json!({"http": {"url": format!("http://{ip}/iris.csv")}})).unwrap();
    create(&ns, &dataset).await;
    let dataset = dataset_ready(&ns, "iris").await;
    let status = dataset.status.unwrap();
    let stalled = status
        .conditions
        .get(types::STALLED)
        .expect("Stalled")
        .clone();
    assert!(stalled.message.contains("404"), "{stalled:?}");
    assert!(!status.conditions.is_true(types::READY));
    let health = assert_health(&ns.name, "Dataset", "iris", ("Failed", "Degraded"));
    assert!(health.message.contains("404"), "{health:?}");
    ns.delete().await;
}

#[tokio::test]
async fn text_example_reaches_90_percent() {
    if skip_without_cluster() {
        return;
    }
    let client = client().await;
    let ns = TestNamespace::create(&client, "text").await;
    data_config_map(
        &ns,
        "news-or-blog-data",
        "news-or-blog.jsonl",
        "examples/text/news-or-blog.jsonl",
    )
    .await;
    create(&ns, &example::<Dataset>("examples/text/dataset.yaml")).await;
    create(
        &ns,
        &example::<TrainingJob>("examples/text/trainingjob.yaml"),
    )
    .await;
    let job = succeeded(&ns, "news-or-blog", Duration::from_secs(300)).await;
    let accuracy = job
        .status
        .unwrap()
        .model
        .unwrap()
        .metrics
        .test_accuracy
        .unwrap();
    assert!(accuracy >= 0.9, "text test accuracy {accuracy}");
    ns.delete().await;
}

#[tokio::test]
async fn a_deleted_training_pod_is_replaced_and_resumes_from_its_checkpoint() {
    if skip_without_cluster() {
        return;
    }
    let client = client().await;
    let ns = TestNamespace::create(&client, "resume").await;
    data_config_map(
        &ns,
        "news-or-blog-data",
        "news-or-blog.jsonl",
        "examples/text/news-or-blog.jsonl",
    )
    .await;
    create(&ns, &example::<Dataset>("examples/text/dataset.yaml")).await;
    let mut job: TrainingJob = example("examples/text/trainingjob.yaml");
    // Long enough to delete the pod in the middle: no early stop.
    job.spec.hyperparameters.epochs = 24;
    job.spec.hyperparameters.early_stopping = None;
    create(&ns, &job).await;

    // Once the status shows a few epochs done, delete the training pod.
    let epoch_at_delete = progress_reaches(&ns, "news-or-blog", 3).await;
    let pods = ns.api::<Pod>();
    let selector = "batch.kubernetes.io/job-name=news-or-blog-train";
    let first = pods
        .list(&ListParams::default().labels(selector))
        .await
        .unwrap();
    assert_eq!(first.items.len(), 1);
    let first = first.items[0].metadata.name.clone().unwrap();
    pods.delete(&first, &DeleteParams::default()).await.unwrap();

    let job = succeeded(&ns, "news-or-blog", Duration::from_secs(400)).await;
    let status = job.status.unwrap();
    assert!(status.attempts >= 2, "attempts {}", status.attempts);
    let accuracy = status.model.unwrap().metrics.test_accuracy.unwrap();
    assert!(accuracy >= 0.9, "test accuracy after resuming {accuracy}");
    // The curves hold the epochs of both pods.
    assert_eq!(status.curves.unwrap().epochs, (1..=24).collect::<Vec<_>>());

    // The replacement pod said where it resumed.
    let second: Vec<String> = pods
        .list(&ListParams::default().labels(selector))
        .await
        .unwrap()
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .filter(|name| *name != first)
        .collect();
    assert_eq!(second.len(), 1, "{second:?}");
    let log = pods.logs(&second[0], &LogParams::default()).await.unwrap();
    let resumed =
        resumed_epoch(&log).unwrap_or_else(|| panic!("the replacement pod did not resume:\n{log}"));
    assert!(
        resumed >= epoch_at_delete,
        "resumed from {resumed}, had done {epoch_at_delete}"
    );
    ns.delete().await;
}

#[tokio::test]
async fn a_search_keeps_to_its_parallelism_and_picks_the_best_trial() {
    if skip_without_cluster() {
        return;
    }
    let client = client().await;
    let ns = TestNamespace::create(&client, "search").await;
    data_config_map(&ns, "iris-data", "iris.csv", "examples/data/iris.csv").await;
    create(&ns, &example::<Dataset>("examples/iris/dataset.yaml")).await;
    let job: TrainingJob = example("examples/iris/trainingjob.yaml");
    let search = job.spec.search.clone().unwrap();
    assert_eq!((search.max_trials, search.parallelism), (4, 2));

    // Watch the job's pods from before the first one exists, counting those alive at once.
    let pods = ns.api::<Pod>();
    let config = watcher::Config::default().labels("modelops.dev/trainingjob=iris");
    let counter = tokio::spawn(async move {
        let mut alive: BTreeMap<String, bool> = BTreeMap::new();
        let mut most = 0;
        let mut stream = watcher(pods, config).applied_objects().boxed();
        while let Some(Ok(pod)) = stream.next().await {
            let name = pod.metadata.name.clone().unwrap();
            let is_alive = matches!(phase(&pod), Some("Pending" | "Running") | None);
            alive.insert(name, is_alive);
            most = most.max(alive.values().filter(|a| **a).count());
            if alive.len() == 4 && alive.values().all(|a| !a) {
                break;
            }
        }
        most
    });
    create(&ns, &job).await;
    let job = succeeded(&ns, "iris", Duration::from_secs(400)).await;
    let most = tokio::time::timeout(Duration::from_secs(60), counter)
        .await
        .unwrap()
        .unwrap();
    assert!(most <= 2, "{most} trial pods ran at once, parallelism is 2");
    assert!(most >= 1);

    let status = job.status.unwrap();
    assert_eq!(status.trials.len(), 4, "{:#?}", status.trials);
    // Each trial's learning curves, side by side: one point per epoch it ran (at most 50).
    for trial in &status.trials {
        let curves = trial
            .curves
            .as_ref()
            .unwrap_or_else(|| panic!("{trial:#?}"));
        let n = curves.epochs.len();
        assert!((1..=50).contains(&n), "{curves:?}");
        assert_eq!(curves.epochs[0], 1, "{curves:?}");
        assert_eq!(curves.train_loss.len(), n, "{curves:?}");
    }
    assert!(
        status
            .trials
            .iter()
            .all(|t| t.phase == TrainingPhase::Succeeded),
        "{:#?}",
        status.trials
    );
    let distinct: BTreeSet<String> = status
        .trials
        .iter()
        .map(|t| format!("{:?}", t.parameters))
        .collect();
    assert_eq!(distinct.len(), 4);
    // The objective is validationLoss: the best trial has the lowest.
    let best = status
        .trials
        .iter()
        .min_by(|a, b| a.objective.unwrap().total_cmp(&b.objective.unwrap()))
        .unwrap();
    assert_eq!(status.best_trial, Some(best.index));
    assert_eq!(Some(status.model.unwrap().digest), best.model_digest);
    ns.delete().await;
}

/// A synthetic three-class table of about `bytes` bytes: 16 features, the first of each three
/// shifted by the class, written with a fixed-seed generator (the same file every run).
fn synthetic_csv(bytes: usize) -> (Vec<u8>, usize) {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let header: Vec<String> = (0..16).map(|i| format!("f{i}")).collect();
    let mut csv = format!("{},label\n", header.join(",")).into_bytes();
    let mut rows = 0;
    while csv.len() < bytes {
        let class = (uniform() * 3.0) as usize % 3;
        for i in 0..16 {
            let shift = if i % 3 == 0 { class as f64 } else { 0.0 };
            // The sum of two uniforms: a bump around the class's shift.
            let value = shift + uniform() + uniform() - 1.0;
            csv.extend_from_slice(format!("{value:.5},").as_bytes());
        }
        csv.extend_from_slice(format!("c{class}\n").as_bytes());
        rows += 1;
    }
    (csv, rows)
}

#[tokio::test]
async fn a_50_mb_csv_in_s3_is_prepared_streamed_and_trained() {
    if skip_without_cluster() {
        return;
    }
    let client = client().await;
    let ns = TestNamespace::create(&client, "big").await;
    let root = ns.root.clone();
    let (csv, rows) = synthetic_csv(50_000_000);
    let sha = Sha256::digest(&csv)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    let uri = format!("{root}/raw/big.csv");
    write_artifact(&uri, csv).await;

    // No ConfigMap: the prepare pod streams the object, within a memory limit of 512Mi.
    let dataset: Dataset = from_json(json!({
        "metadata": {"name": "big"},
        "spec": {
            "source": {"s3": {"uri": uri, "sha256": sha}},
            "format": "csv",
            "schema": {"label": "label"},
            "preprocessing": {"normalize": "standard"},
            "resources": {"cpu": "1", "memory": "512Mi"},
        }
    }));
    create(&ns, &dataset).await;
    let job: TrainingJob = from_json(json!({
        "metadata": {"name": "big"},
        "spec": {
            "datasetRef": {"name": "big"},
            "task": "classification",
            "model": {"architecture": "mlp", "mlp": {"hiddenLayers": [32]}},
            "hyperparameters": {"epochs": 1, "batchSize": 512, "optimizer": {"type": "adam", "learningRate": 0.01}},
            "resources": {"cpu": "1", "memory": "1Gi"},
        }
    }));
    create(&ns, &job).await;

    let prepared = dataset_ready(&ns, "big").await;
    let status = prepared.status.unwrap();
    assert!(status.conditions.is_true(types::READY), "{status:#?}");
    assert_eq!(status.rows.unwrap().total, rows as i64);
    assert!(
        status
            .artifact
            .unwrap()
            .uri
            .starts_with(&format!("{root}/datasets/big/")),
    );
    // The prepare pod had requests and limits, and stayed within them.
    let pods = ns
        .api::<Pod>()
        .list(&ListParams::default().labels("modelops.dev/dataset=big"))
        .await
        .unwrap();
    let pod = &pods.items[0];
    let resources = pod.spec.as_ref().unwrap().containers[0]
        .resources
        .clone()
        .unwrap();
    assert_eq!(resources.limits.unwrap()["memory"].0, "512Mi");
    assert_eq!(resources.requests.unwrap()["memory"].0, "512Mi");
    assert_eq!(phase(pod), Some("Succeeded"));

    let job = succeeded(&ns, "big", Duration::from_secs(300)).await;
    let accuracy = job
        .status
        .unwrap()
        .model
        .unwrap()
        .metrics
        .test_accuracy
        .unwrap();
    assert!(accuracy >= 0.8, "test accuracy {accuracy}");
    ns.delete().await;
}
