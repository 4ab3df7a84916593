//! Pure: a TrainingJob (with its pinned Dataset digest) in, its worker Jobs out.

use crate::config::OperatorConfig;
use crate::controllers::apply::child_labels;
use crate::controllers::jobs;
use crate::controllers::workerpod::{WorkerPod, pod_template};
use k8s_openapi::api::batch::v1::Job;
use kube::{Resource, ResourceExt};
use modelops_api::TrainingJob;
use modelops_api::workorder::{PROGRESS_PORT, TrainOrder, Trial, WorkOrder, layout};
use modelops_core::training::search::TrialParameters;

/// The label that tells a trial's Job which trial it runs.
pub const TRIAL_LABEL: &str = "modelops.dev/trial";

/// The name of the Job of the whole run, or of one trial.
pub fn job_name(job: &TrainingJob, trial: Option<i32>) -> String {
    // At most 40 characters (`modelops_api::NAME_RULES`), never truncated.
    let stem = job.name_any();
    match trial {
        None => format!("{stem}-train"),
        Some(index) => format!("{stem}-trial-{index}"),
    }
}

/// The checkpoint folder (relative to the namespace's root) of the run or of one trial.
pub fn checkpoint_dir(job: &TrainingJob, trial: Option<i32>) -> String {
    let uid = job.uid().unwrap_or_default();
    match trial {
        None => layout::checkpoint_dir(&job.name_any(), &uid),
        Some(index) => layout::trial_checkpoint_dir(&job.name_any(), &uid, index),
    }
}

/// The work order of the run or of one trial.
pub fn train_order(
    config: &OperatorConfig,
    job: &TrainingJob,
    namespace: &str,
    dataset_digest: &str,
    trial: Option<(i32, &TrialParameters)>,
) -> WorkOrder {
    let store = &config.artifacts;
    WorkOrder::Train(TrainOrder {
        namespace: namespace.to_owned(),
        name: job.name_any(),
        uid: job.uid().unwrap_or_default(),
        spec: job.spec.clone(),
        dataset_uri: store.uri(
            namespace,
            &layout::dataset_dir(&job.spec.dataset_ref.name, dataset_digest),
        ),
        dataset_digest: dataset_digest.to_owned(),
        checkpoint_uri: store.uri(namespace, &checkpoint_dir(job, trial.map(|t| t.0))),
        models_uri: store.uri(namespace, layout::MODELS_DIR),
        module_uri: job
            .spec
            .model
            .torchscript
            .as_ref()
            .map(|options| store.uri(namespace, &options.path)),
        trial: trial.map(|(index, parameters)| Trial {
            index,
            parameters: parameters.clone(),
        }),
    })
}

/// The Job of the run or of one trial.
pub fn train_job(
    config: &OperatorConfig,
    job: &TrainingJob,
    namespace: &str,
    dataset_digest: &str,
    trial: Option<(i32, &TrialParameters)>,
) -> Job {
    let order = train_order(config, job, namespace, dataset_digest, trial);
    let mut labels = child_labels(job);
    if let Some((index, _)) = trial {
        labels.insert(TRIAL_LABEL.to_owned(), index.to_string());
    }
    let template = pod_template(
        config,
        WorkerPod {
            command: "train",
            order: &order,
            resources: &job.spec.resources,
            template: Some(&job.spec.template),
            volumes: Vec::new(),
            labels: labels.clone(),
            metrics_port: Some(PROGRESS_PORT),
        },
    );
    let owner = job
        .controller_owner_ref(&())
        .expect("a stored TrainingJob has a uid");
    // Queued with Kueue: the Job carries the queue and starts suspended; Kueue admits it by
    // unsuspending it (and owns `spec.suspend` from then on).
    let mut job_labels = labels;
    let mut policy = job.spec.run_policy.clone();
    if let Some(queue) = queue_name(job) {
        job_labels.insert(QUEUE_NAME_LABEL.to_owned(), queue.to_owned());
        policy.suspend = true;
    }
    jobs::build(
        &job_name(job, trial.map(|t| t.0)),
        namespace,
        &job_labels,
        owner,
        template,
        &policy,
    )
}

/// The label that puts a TrainingJob (and so its Jobs) in a Kueue LocalQueue.
pub const QUEUE_NAME_LABEL: &str = "kueue.x-k8s.io/queue-name";

/// The Kueue LocalQueue the TrainingJob is queued in, if any.
pub fn queue_name(job: &TrainingJob) -> Option<&str> {
    job.metadata
        .labels
        .as_ref()?
        .get(QUEUE_NAME_LABEL)
        .map(String::as_str)
        .filter(|queue| !queue.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queued_job_carries_its_queue_and_starts_suspended() {
        let mut job: TrainingJob = serde_yaml::from_str(
            r#"
apiVersion: modelops.dev/v1alpha1
kind: TrainingJob
metadata: {name: digits, namespace: team-a, uid: u-1, labels: {kueue.x-k8s.io/queue-name: gpus}}
spec:
  datasetRef: {name: digits}
  task: classification
  model: {architecture: mlp}
"#,
        )
        .unwrap();
        job.metadata.uid = Some("u-1".into());
        let built = train_job(
            &OperatorConfig::for_tests(),
            &job,
            "team-a",
            "sha256:d",
            None,
        );
        assert_eq!(built.metadata.labels.unwrap()[QUEUE_NAME_LABEL], "gpus");
        assert_eq!(built.spec.unwrap().suspend, Some(true));
        job.metadata.labels = None;
        let built = train_job(
            &OperatorConfig::for_tests(),
            &job,
            "team-a",
            "sha256:d",
            None,
        );
        assert_eq!(built.spec.unwrap().suspend, Some(false));
    }
    use modelops_api::trainingjob::ParameterValue;
    use std::collections::BTreeMap;

    fn digits() -> TrainingJob {
        let mut job: TrainingJob =
            serde_yaml::from_str(include_str!("../../../../examples/digits/trainingjob.yaml"))
                .unwrap();
        job.metadata.namespace = Some("team-a".into());
        job.metadata.uid = Some("uid-7".into());
        job
    }

    fn order_of(job: &Job) -> TrainOrder {
        let pod = job.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        let env = &pod.containers[0].env.as_ref().unwrap()[0];
        match serde_json::from_str(env.value.as_deref().unwrap()).unwrap() {
            WorkOrder::Train(order) => order,
            other => panic!("not a train order: {other:?}"),
        }
    }

    #[test]
    fn the_order_points_at_the_pinned_dataset_and_the_checkpoints() {
        let config = OperatorConfig::for_tests();
        let digest = format!("sha256:{}", "b".repeat(64));
        let job = train_job(&config, &digits(), "team-a", &digest, None);
        assert_eq!(job.metadata.name.as_deref(), Some("digits-train"));
        let order = order_of(&job);
        assert_eq!(
            order.dataset_uri,
            format!("s3://modelops/team-a/datasets/digits/{}", "b".repeat(64))
        );
        assert_eq!(
            order.checkpoint_uri,
            "s3://modelops/team-a/checkpoints/digits/uid-7"
        );
        assert_eq!(order.models_uri, "s3://modelops/team-a/models");
        assert_eq!(order.module_uri, None);
        assert!(order.trial.is_none());
        let spec = job.spec.unwrap();
        assert_eq!(
            spec.backoff_limit,
            Some(digits().spec.run_policy.backoff_limit)
        );
    }

    #[test]
    fn gpus_and_scheduling_reach_the_pod() {
        let config = OperatorConfig::for_tests();
        let mut tj = digits();
        tj.spec.resources.gpu = 1;
        tj.spec
            .template
            .node_selector
            .insert("gpu".into(), "h200".into());
        let job = train_job(&config, &tj, "team-a", "sha256:00", None);
        let pod = job.spec.unwrap().template.spec.unwrap();
        let limits = pod.containers[0].resources.clone().unwrap().limits.unwrap();
        assert_eq!(limits["nvidia.com/gpu"].0, "1");
        assert_eq!(pod.node_selector.unwrap()["gpu"], "h200");
    }

    #[test]
    fn a_trial_has_its_own_job_checkpoints_and_parameters() {
        let config = OperatorConfig::for_tests();
        let parameters =
            BTreeMap::from([("learningRate".to_owned(), ParameterValue::Number(0.01))]);
        let job = train_job(
            &config,
            &digits(),
            "team-a",
            "sha256:00",
            Some((2, &parameters)),
        );
        assert_eq!(job.metadata.name.as_deref(), Some("digits-trial-2"));
        assert_eq!(job.metadata.labels.as_ref().unwrap()[TRIAL_LABEL], "2");
        let order = order_of(&job);
        assert_eq!(
            order.checkpoint_uri,
            "s3://modelops/team-a/checkpoints/digits/uid-7/trial-2"
        );
        assert_eq!(
            order.trial.unwrap().parameters["learningRate"],
            ParameterValue::Number(0.01)
        );
    }
}
