//! Worker pods run as batch Jobs: the Job controller gives retries (`backoffLimit`), deadlines,
//! clean-up after finishing and suspension (which queue systems such as Kueue flip). This module
//! builds those Jobs and reads their outcome, including the worker's termination message.

use super::error::{ApiContext, Result};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::batch::v1::{
    Job, JobSpec, JobStatus, PodFailurePolicy, PodFailurePolicyOnExitCodesRequirement,
    PodFailurePolicyOnPodConditionsPattern, PodFailurePolicyRule,
};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use kube::api::{Api, ListParams};
use kube::{Client, Resource};
use modelops_api::conditions::reasons;
use modelops_api::trainingjob::RunPolicy;
use modelops_api::workorder::PERMANENT_FAILURE_EXIT_CODE;
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::BTreeMap;

/// The label the Job controller puts on a Job's pods.
pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";

/// A Job around a worker pod template.
pub fn build(
    name: &str,
    namespace: &str,
    labels: &BTreeMap<String, String>,
    owner: OwnerReference,
    template: PodTemplateSpec,
    policy: &RunPolicy,
) -> Job {
    Job {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(labels.clone()),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(policy.backoff_limit),
            suspend: Some(policy.suspend),
            template,
            pod_failure_policy: Some(pod_failure_policy()),
            active_deadline_seconds: policy.active_deadline_seconds,
            ttl_seconds_after_finished: policy.ttl_seconds_after_finished,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A worker that says its failure is permanent fails the Job at once; a pod evicted or preempted
/// does not count against the back-off limit.
fn pod_failure_policy() -> PodFailurePolicy {
    PodFailurePolicy {
        rules: vec![
            PodFailurePolicyRule {
                action: "FailJob".into(),
                on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
                    container_name: Some("worker".into()),
                    operator: "In".into(),
                    values: vec![i32::from(PERMANENT_FAILURE_EXIT_CODE)],
                }),
                ..Default::default()
            },
            PodFailurePolicyRule {
                action: "Ignore".into(),
                on_pod_conditions: Some(vec![PodFailurePolicyOnPodConditionsPattern {
                    type_: "DisruptionTarget".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            },
        ],
    }
}

/// Where a Job is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Suspended (not admitted yet).
    Suspended,
    /// Not finished: `running` pods are running, `failed` pods have failed so far.
    Active {
        /// Pods in the Running phase and ready.
        running: i32,
        /// Failed pods so far (each one a retry).
        failed: i32,
    },
    /// The Job completed.
    Succeeded,
    /// The Job failed for good, with the Job controller's reason (`BackoffLimitExceeded`,
    /// `DeadlineExceeded`, `PodFailurePolicy`) and message.
    Failed {
        /// The reason of the Job's `Failed` condition.
        reason: String,
        /// Its message.
        message: String,
        /// Failed pods.
        failed: i32,
    },
}

/// A Job as its owners' watches decode it: the metadata a watch and an owner need, the spec's
/// `suspend` and the status. The pod template and the `managedFields` are skipped while the JSON
/// is read, not decoded and then dropped: Kubernetes' Job controller writes each new Job's
/// status once more, minutes later when thousands were made at once, and decoding those whole
/// Jobs was most of the operator's idle cost.
#[derive(Clone, Debug, Deserialize)]
pub struct WatchedJob {
    /// Name, namespace, uid, resource version, labels, owner references and deletion time.
    #[serde(deserialize_with = "watched_metadata")]
    pub metadata: ObjectMeta,
    /// The spec's `suspend`.
    #[serde(default)]
    pub spec: Option<WatchedJobSpec>,
    /// The status, whole.
    #[serde(default)]
    pub status: Option<JobStatus>,
}

/// Of a Job's spec, what its owners read.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct WatchedJobSpec {
    /// Whether the Job is suspended.
    #[serde(default)]
    pub suspend: Option<bool>,
}

impl Resource for WatchedJob {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(dt: &()) -> Cow<'_, str> {
        Job::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        Job::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        Job::version(dt)
    }
    fn api_version(dt: &()) -> Cow<'_, str> {
        Job::api_version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        Job::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// Reads the metadata of a watched object, skipping what no watch or owner reads
/// (`managedFields` above all, often the largest part of it).
fn watched_metadata<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<ObjectMeta, D::Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Watched {
        name: Option<String>,
        namespace: Option<String>,
        uid: Option<String>,
        resource_version: Option<String>,
        generation: Option<i64>,
        labels: Option<BTreeMap<String, String>>,
        owner_references: Option<Vec<OwnerReference>>,
        deletion_timestamp: Option<Time>,
    }
    let watched = Watched::deserialize(deserializer)?;
    Ok(ObjectMeta {
        name: watched.name,
        namespace: watched.namespace,
        uid: watched.uid,
        resource_version: watched.resource_version,
        generation: watched.generation,
        labels: watched.labels,
        owner_references: watched.owner_references,
        deletion_timestamp: watched.deletion_timestamp,
        ..Default::default()
    })
}

/// All an owner's reconcile reads of its Job's spec and status (besides its metadata): the
/// outcome and the count of failed pods. The owners are woken when it changes
/// ([`super::runner::Runner::owns_reading`]), not at every write to the Job.
pub fn read(job: &WatchedJob) -> (Outcome, Option<i32>) {
    let suspend = job.spec.as_ref().and_then(|s| s.suspend);
    (
        outcome_of(suspend, job.status.as_ref()),
        job.status.as_ref().and_then(|s| s.failed),
    )
}

/// Reads a Job's outcome from its status.
pub fn outcome(job: &Job) -> Outcome {
    outcome_of(
        job.spec.as_ref().and_then(|s| s.suspend),
        job.status.as_ref(),
    )
}

/// The outcome of a Job whose `spec.suspend` and status these are.
fn outcome_of(suspend: Option<bool>, status: Option<&JobStatus>) -> Outcome {
    // Read in place: every watched Job change comes through here.
    let count = |field: fn(&JobStatus) -> Option<i32>| status.and_then(field).unwrap_or(0);
    let failed = count(|s| s.failed);
    for condition in status
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
    {
        if condition.status != "True" {
            continue;
        }
        match condition.type_.as_str() {
            "Complete" => return Outcome::Succeeded,
            "Failed" => {
                return Outcome::Failed {
                    reason: condition
                        .reason
                        .clone()
                        .unwrap_or_else(|| reasons::FAILED.into()),
                    message: condition.message.clone().unwrap_or_default(),
                    failed,
                };
            }
            _ => {}
        }
    }
    if suspend == Some(true) && count(|s| s.active) == 0 {
        return Outcome::Suspended;
    }
    Outcome::Active {
        running: count(|s| s.ready),
        failed,
    }
}

/// The termination message of the newest pod of `job` that ended in `phase` (`Succeeded` or
/// `Failed`): the worker's JSON result, or the tail of its log when it wrote none.
pub async fn termination_message(
    client: &Client,
    namespace: &str,
    job: &str,
    phase: &str,
) -> Result<Option<String>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let list = pods
        .list(&ListParams::default().labels(&format!("{JOB_NAME_LABEL}={job}")))
        .await
        .action(|| format!("listing the pods of Job {namespace}/{job}"))?;
    let newest = list
        .items
        .into_iter()
        .filter(|pod| pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some(phase))
        .max_by_key(|pod| pod.metadata.creation_timestamp.clone());
    Ok(newest.and_then(|pod| {
        pod.status?
            .container_statuses?
            .into_iter()
            .find(|c| c.name == "worker")?
            .state?
            .terminated?
            .message
    }))
}

/// The IP of the newest running pod of `job`, if there is one.
pub async fn running_pod_ip(client: &Client, namespace: &str, job: &str) -> Result<Option<String>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let list = pods
        .list(&ListParams::default().labels(&format!("{JOB_NAME_LABEL}={job}")))
        .await
        .action(|| format!("listing the pods of Job {namespace}/{job}"))?;
    Ok(list
        .items
        .into_iter()
        .filter(|pod| pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .max_by_key(|pod| pod.metadata.creation_timestamp.clone())
        .and_then(|pod| pod.status?.pod_ip))
}

/// A short, stable hash of anything serialisable, for child names that change with a spec.
pub fn short_hash<T: serde::Serialize>(value: &T) -> String {
    use sha2::{Digest, Sha256};
    let bytes = serde_json::to_vec(value).expect("serialises");
    let digest = Sha256::digest(&bytes);
    digest.iter().take(4).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// The builder as it was, kept to prove the typed one sends the same Job.
    fn before(
        name: &str,
        namespace: &str,
        labels: &BTreeMap<String, String>,
        owner: OwnerReference,
        template: PodTemplateSpec,
        policy: &RunPolicy,
    ) -> Value {
        let mut spec = json!({
            "backoffLimit": policy.backoff_limit,
            "suspend": policy.suspend,
            "template": template,
            "podFailurePolicy": {"rules": [
                {"action": "FailJob", "onExitCodes": {"containerName": "worker", "operator": "In",
                 "values": [PERMANENT_FAILURE_EXIT_CODE]}},
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
            ]},
        });
        if let Some(deadline) = policy.active_deadline_seconds {
            spec["activeDeadlineSeconds"] = json!(deadline);
        }
        if let Some(ttl) = policy.ttl_seconds_after_finished {
            spec["ttlSecondsAfterFinished"] = json!(ttl);
        }
        json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": name, "namespace": namespace, "labels": labels, "ownerReferences": [owner]},
            "spec": spec,
        })
    }

    #[test]
    fn jobs_serialise_as_before() {
        let labels = BTreeMap::from([("modelops.dev/trainingjob".to_owned(), "digits".to_owned())]);
        let owner = OwnerReference {
            api_version: "modelops.dev/v1alpha1".into(),
            kind: "TrainingJob".into(),
            name: "digits".into(),
            uid: "uid-1".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        };
        let template: PodTemplateSpec = serde_json::from_value(json!({
            "metadata": {"labels": labels},
            "spec": {"containers": [{"name": "worker", "image": "w"}], "restartPolicy": "Never"},
        }))
        .unwrap();
        let everything = RunPolicy {
            backoff_limit: 4,
            active_deadline_seconds: Some(600),
            ttl_seconds_after_finished: Some(3600),
            suspend: true,
        };
        for policy in [RunPolicy::default(), everything] {
            let job = build(
                "digits-train",
                "team-a",
                &labels,
                owner.clone(),
                template.clone(),
                &policy,
            );
            let old: Job = serde_json::from_value(before(
                "digits-train",
                "team-a",
                &labels,
                owner.clone(),
                template.clone(),
                &policy,
            ))
            .unwrap();
            assert_eq!(
                serde_json::to_value(&job).unwrap(),
                serde_json::to_value(&old).unwrap()
            );
        }
    }

    #[test]
    fn a_watched_job_reads_as_the_whole_job_does_without_its_template() {
        let whole = json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {
                "name": "tj-train", "namespace": "team-a", "uid": "u1", "resourceVersion": "42",
                "generation": 1, "labels": {"modelops.dev/trainingjob": "tj"},
                "annotations": {"a": "b"},
                "ownerReferences": [{"apiVersion": "modelops.dev/v1alpha1", "kind": "TrainingJob",
                                     "name": "tj", "uid": "owner", "controller": true}],
                "managedFields": [{"manager": "modelops", "operation": "Apply",
                                   "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:suspend": {}}}}],
            },
            "spec": {"suspend": true, "backoffLimit": 3,
                     "template": {"spec": {"containers": [{"name": "worker", "image": "w"}]}}},
        });
        let statuses = [
            json!(null),
            json!({"conditions": [{"type": "Suspended", "status": "True"}]}),
            json!({"active": 1, "ready": 1, "failed": 2}),
            json!({"failed": 1, "conditions": [{"type": "Complete", "status": "True"}]}),
            json!({"failed": 4, "conditions": [{"type": "Failed", "status": "True",
                                                "reason": "BackoffLimitExceeded", "message": "m"}]}),
        ];
        for status in statuses {
            let mut body = whole.clone();
            body["status"] = status;
            let job: Job = serde_json::from_value(body.clone()).unwrap();
            let watched: WatchedJob = serde_json::from_value(body).unwrap();
            assert_eq!(
                read(&watched),
                (outcome(&job), job.status.as_ref().and_then(|s| s.failed))
            );
            let meta = &watched.metadata;
            assert_eq!(meta.name, job.metadata.name);
            assert_eq!(meta.namespace, job.metadata.namespace);
            assert_eq!(meta.uid, job.metadata.uid);
            assert_eq!(meta.resource_version, job.metadata.resource_version);
            assert_eq!(meta.labels, job.metadata.labels);
            assert_eq!(meta.owner_references, job.metadata.owner_references);
            assert_eq!(meta.managed_fields, None, "managedFields are skipped");
            assert_eq!(meta.annotations, None);
        }
        assert_eq!(
            WatchedJob::url_path(&(), Some("team-a")),
            Job::url_path(&(), Some("team-a"))
        );
    }
}
