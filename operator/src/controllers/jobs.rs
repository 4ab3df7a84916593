//! Worker pods run as batch Jobs: the Job controller gives retries (`backoffLimit`), deadlines,
//! clean-up after finishing and suspension (which queue systems such as Kueue flip). This module
//! builds those Jobs and reads their outcome, including the worker's termination message.

use super::error::{ApiContext, Result};
use k8s_openapi::api::batch::v1::{
    Job, JobSpec, PodFailurePolicy, PodFailurePolicyOnExitCodesRequirement,
    PodFailurePolicyOnPodConditionsPattern, PodFailurePolicyRule,
};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Client;
use kube::api::{Api, ListParams};
use modelops_api::conditions::reasons;
use modelops_api::trainingjob::RunPolicy;
use modelops_api::workorder::PERMANENT_FAILURE_EXIT_CODE;
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
#[derive(Debug, Clone, PartialEq)]
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

/// Reads a Job's outcome from its status.
pub fn outcome(job: &Job) -> Outcome {
    let status = job.status.clone().unwrap_or_default();
    let failed = status.failed.unwrap_or(0);
    for condition in status.conditions.iter().flatten() {
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
    if job.spec.as_ref().and_then(|s| s.suspend) == Some(true) && status.active.unwrap_or(0) == 0 {
        return Outcome::Suspended;
    }
    Outcome::Active {
        running: status.ready.unwrap_or(0),
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
}
