//! Worker pods run as batch Jobs: the Job controller gives retries (`backoffLimit`), deadlines,
//! clean-up after finishing and suspension (which queue systems such as Kueue flip). This module
//! builds those Jobs and reads their outcome, including the worker's termination message.

use super::error::{ApiContext, Result};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Client;
use kube::api::{Api, ListParams};
use modelops_api::trainingjob::RunPolicy;
use modelops_api::workorder::PERMANENT_FAILURE_EXIT_CODE;
use serde_json::json;
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
    let mut spec = json!({
        "backoffLimit": policy.backoff_limit,
        "suspend": policy.suspend,
        "template": template,
        // A worker that says its failure is permanent fails the Job at once; a pod evicted or
        // preempted does not count against the back-off limit.
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
    serde_json::from_value(json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace, "labels": labels, "ownerReferences": [owner]},
        "spec": spec,
    }))
    .expect("a valid Job")
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
                    reason: condition.reason.clone().unwrap_or_else(|| "Failed".into()),
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

/// A short, stable hash of anything serialisable, for child names that change with a spec.
pub fn short_hash<T: serde::Serialize>(value: &T) -> String {
    use sha2::{Digest, Sha256};
    let bytes = serde_json::to_vec(value).expect("serialises");
    let digest = Sha256::digest(&bytes);
    digest.iter().take(4).map(|b| format!("{b:02x}")).collect()
}
