//! Pure: the Dataset's status from what its prepare Job did.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use modelops_api::common::ArtifactRef;
use modelops_api::conditions::{Conditions, new_condition, reasons, types};
use modelops_api::dataset::DatasetStatus;
use modelops_api::workorder::{PrepareResult, WorkerFailure};

/// Where preparing stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Stage {
    /// A referenced object (the source's ConfigMap or claim) is missing.
    SourceMissing(String),
    /// The prepare pod is running (or waiting to).
    Preparing,
    /// The prepare pod succeeded with this result.
    Prepared(PrepareResult),
    /// The prepare Job failed for good: the worker's reason and message.
    Failed {
        /// A CamelCase reason (`SourceUnavailable`, `NoUsableRows`, ...).
        reason: String,
        /// What happened and what to do.
        message: String,
    },
}

/// Reads a failed worker's termination message: its JSON failure, or the text it left.
pub fn failure_from_message(
    job_reason: &str,
    job_message: &str,
    pod_message: Option<&str>,
) -> Stage {
    match pod_message.map(|m| (m, serde_json::from_str::<WorkerFailure>(m))) {
        Some((_, Ok(failure))) => Stage::Failed {
            reason: failure.reason,
            message: failure.message,
        },
        Some((text, Err(_))) if !text.trim().is_empty() => Stage::Failed {
            reason: job_reason.to_owned(),
            message: text.trim().to_owned(),
        },
        _ => Stage::Failed {
            reason: job_reason.to_owned(),
            message: job_message.to_owned(),
        },
    }
}

/// The new status, from the present one (kept fields, condition times) and the stage.
pub fn status(
    current: Option<&DatasetStatus>,
    generation: Option<i64>,
    stage: &Stage,
    now: &Time,
) -> DatasetStatus {
    let mut status = current.cloned().unwrap_or_default();
    status.observed_generation = generation;
    let conditions: &mut Conditions = &mut status.conditions;
    let (ready, reason, message, reconciling, stalled) = match stage {
        Stage::SourceMissing(message) => (
            false,
            reasons::REFERENCE_NOT_FOUND,
            message.clone(),
            Some((reasons::REFERENCE_NOT_FOUND, message.clone())),
            None,
        ),
        Stage::Preparing => {
            let message = "a prepare pod is fetching, validating and splitting the data".to_owned();
            (
                false,
                reasons::PREPARING,
                message.clone(),
                Some((reasons::PREPARING, message)),
                None,
            )
        }
        Stage::Prepared(result) => {
            let rows = result.rows;
            let mut message = format!(
                "prepared {} rows ({} train, {} validation, {} test, {} rejected), digest {}",
                rows.total, rows.train, rows.validation, rows.test, rows.rejected, result.digest
            );
            if let Some(first) = &result.first_rejection {
                message.push_str(&format!("; the first rejected: {first}"));
            }
            (true, reasons::PREPARED, message, None, None)
        }
        Stage::Failed { reason, message } => {
            let message = format!("{reason}: {message}");
            (
                false,
                reasons::PREPARE_FAILED,
                message.clone(),
                None,
                Some((reasons::PREPARE_FAILED, message)),
            )
        }
    };
    conditions.set(new_condition(
        types::READY,
        ready,
        reason,
        message,
        generation,
        now,
    ));
    conditions.set_while_true(types::RECONCILING, reconciling, generation, now);
    conditions.set_while_true(types::STALLED, stalled, generation, now);
    if let Stage::Prepared(result) = stage {
        status.digest = Some(result.digest.clone());
        status.artifact = Some(ArtifactRef {
            uri: result.artifact_uri.clone(),
        });
        status.profile = Some(ArtifactRef {
            uri: result.profile_uri.clone(),
        });
        status.rows = Some(result.rows);
        status.classes = result.classes.clone();
        status.first_rejection = result.first_rejection.clone();
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;
    use modelops_api::dataset::RowCounts;

    fn at(seconds: i64) -> Time {
        Time(Timestamp::from_second(seconds).unwrap())
    }

    fn prepared() -> Stage {
        Stage::Prepared(PrepareResult {
            digest: format!("sha256:{}", "a".repeat(64)),
            artifact_uri: "pvc://modelops-artifacts/datasets/ns/digits/aaa".into(),
            profile_uri: "pvc://modelops-artifacts/datasets/ns/digits/aaa/profile.json".into(),
            rows: RowCounts {
                total: 1797,
                train: 1257,
                validation: 270,
                test: 270,
                rejected: 0,
            },
            classes: (0..10).map(|c| c.to_string()).collect(),
            first_rejection: None,
        })
    }

    #[test]
    fn preparing_then_prepared() {
        let preparing = status(None, Some(1), &Stage::Preparing, &at(10));
        assert!(!preparing.conditions.is_true(types::READY));
        assert!(preparing.conditions.is_true(types::RECONCILING));
        assert!(preparing.conditions.get(types::STALLED).is_none());

        let done = status(Some(&preparing), Some(1), &prepared(), &at(20));
        assert!(done.conditions.is_true(types::READY));
        assert!(done.conditions.get(types::RECONCILING).is_none());
        assert_eq!(done.rows.unwrap().total, 1797);
        assert_eq!(done.classes.len(), 10);
        assert_eq!(done.observed_generation, Some(1));
        assert_eq!(
            done.conditions
                .get(types::READY)
                .unwrap()
                .last_transition_time,
            at(20)
        );
    }

    #[test]
    fn the_first_rejected_row_is_kept_and_told() {
        let Stage::Prepared(mut result) = prepared() else {
            unreachable!()
        };
        result.rows.rejected = 2;
        result.first_rejection =
            Some("row 3 (line 4): column \"x\": \"abc\" is not a number".into());
        let done = status(None, Some(1), &Stage::Prepared(result), &at(20));
        assert_eq!(
            done.first_rejection.as_deref(),
            Some("row 3 (line 4): column \"x\": \"abc\" is not a number")
        );
        let ready = &done.conditions.get(types::READY).unwrap().message;
        assert!(
            ready.ends_with(
                "; the first rejected: row 3 (line 4): column \"x\": \"abc\" is not a number"
            ),
            "{ready}"
        );
    }

    #[test]
    fn a_failure_stalls_with_the_workers_reason() {
        let stage = failure_from_message(
            reasons::BACKOFF_LIMIT_EXCEEDED,
            "Job has reached the specified backoff limit",
            Some(
                r#"{"reason":"SourceUnavailable","message":"GET http://x/data.csv answered 404 Not Found","retryable":false}"#,
            ),
        );
        let failed = status(None, Some(2), &stage, &at(5));
        let stalled = failed.conditions.get(types::STALLED).unwrap();
        assert_eq!(stalled.reason, reasons::PREPARE_FAILED);
        assert!(
            stalled
                .message
                .contains("SourceUnavailable: GET http://x/data.csv answered 404"),
            "{}",
            stalled.message
        );
        assert!(!failed.conditions.is_true(types::READY));
    }

    #[test]
    fn a_failure_without_a_worker_message_keeps_the_jobs_reason() {
        let stage = failure_from_message(
            reasons::DEADLINE_EXCEEDED,
            "Job was active longer than specified deadline",
            None,
        );
        assert_eq!(
            stage,
            Stage::Failed {
                reason: reasons::DEADLINE_EXCEEDED.into(),
                message: "Job was active longer than specified deadline".into()
            }
        );
    }
}
