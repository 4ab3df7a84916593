//! The artifact store goes away in the middle of a training run and comes back: the run
//! finishes, resumed from its last uploaded checkpoint. A test binary of its own: it stops the
//! test bed's S3 server, which every test running beside it would feel.

mod common;

use std::time::Duration;

use common::*;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{ListParams, LogParams, PostParams};
use modelops_api::{Dataset, TrainingJob};
use serde_json::json;

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
