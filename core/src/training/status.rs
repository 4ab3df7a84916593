//! Pure: the TrainingJob's status from where its run stands.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use modelops_api::conditions::{Conditions, new_condition, reasons, types};
use modelops_api::trainingjob::{
    LearningCurves, ModelArtifact, TrainingJobStatus, TrainingPhase, TrainingProgress, TrialStatus,
};

/// Where a TrainingJob stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Stage {
    /// Waiting for the Dataset to exist or to be prepared.
    WaitingForDataset {
        /// `DatasetNotFound` or `DatasetNotReady`.
        reason: &'static str,
        /// What the job waits for.
        message: String,
    },
    /// The spec cannot work with its Dataset; only a spec change helps.
    InvalidSpec(String),
    /// `spec.template` names what the workload policy does not allow; no pod is started.
    Forbidden(String),
    /// `spec.runPolicy.suspend` holds the job.
    Suspended,
    /// Queued in this Kueue LocalQueue, which has not admitted it yet (its Job is suspended).
    Queued(String),
    /// Worker pods are created but none runs yet.
    Pending,
    /// A worker pod is training.
    Running,
    /// Training produced this model.
    Succeeded(ModelArtifact),
    /// Training failed for good.
    Failed {
        /// The Job controller's or the worker's reason.
        reason: String,
        /// What happened.
        message: String,
    },
}

/// What the reconcile observed besides the stage.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    /// The Dataset digest the job trains on, once pinned.
    pub dataset_digest: Option<String>,
    /// Pods started so far (1 + retries), summed over trials.
    pub attempts: i32,
    /// The latest progress the worker reported.
    pub progress: Option<TrainingProgress>,
    /// The learning curves the worker reported (while it runs, or in its result).
    pub curves: Option<LearningCurves>,
    /// Trials of a search.
    pub trials: Vec<TrialStatus>,
    /// The best trial so far.
    pub best_trial: Option<i32>,
}

/// The phase a stage shows in `kubectl get`.
pub fn phase(stage: &Stage) -> TrainingPhase {
    match stage {
        Stage::WaitingForDataset { .. }
        | Stage::InvalidSpec(_)
        | Stage::Forbidden(_)
        | Stage::Queued(_)
        | Stage::Pending => TrainingPhase::Pending,
        Stage::Suspended => TrainingPhase::Suspended,
        Stage::Running => TrainingPhase::Running,
        Stage::Succeeded(_) => TrainingPhase::Succeeded,
        Stage::Failed { .. } => TrainingPhase::Failed,
    }
}

/// The new status: the observed facts, then the conditions, from where the job stands.
pub fn status(
    current: Option<&TrainingJobStatus>,
    generation: Option<i64>,
    stage: &Stage,
    observed: Observed,
    now: &Time,
) -> TrainingJobStatus {
    let mut status = current.cloned().unwrap_or_default();
    status.observed_generation = generation;
    record_observed(&mut status, stage, observed, now);
    let (reason, message) = ready_reason(stage, &status);
    set_conditions(&mut status, stage, reason, message, generation, now);
    status
}

/// Copies what the reconcile observed into the status; the start and completion times are set
/// once, when the job first runs and when it ends.
fn record_observed(status: &mut TrainingJobStatus, stage: &Stage, observed: Observed, now: &Time) {
    status.phase = Some(match status.phase {
        // A retry's pod waiting to start, or a pod that finished before its Job says so: the
        // run is still under way, and a phase never goes back.
        Some(TrainingPhase::Running) if matches!(stage, Stage::Pending) => TrainingPhase::Running,
        _ => phase(stage),
    });
    status.attempts = observed.attempts;
    if observed.dataset_digest.is_some() {
        status.dataset_digest = observed.dataset_digest;
    }
    if let Some(mut progress) = observed.progress {
        progress.train_loss = progress.train_loss.map(significant);
        progress.validation_loss = progress.validation_loss.map(significant);
        progress.validation_accuracy = progress.validation_accuracy.map(accuracy);
        status.progress = Some(progress);
    }
    if let Some(curves) = observed.curves {
        // Bounded whatever the worker sent: the schema allows no more.
        status.curves = Some(curves.thinned(LearningCurves::MAX_POINTS));
    }
    status.trials = observed.trials;
    status.best_trial = observed.best_trial;
    if matches!(stage, Stage::Pending | Stage::Running) && status.start_time.is_none() {
        status.start_time = Some(now.clone());
    }
    if matches!(stage, Stage::Succeeded(_) | Stage::Failed { .. })
        && status.completion_time.is_none()
    {
        status.completion_time = Some(now.clone());
    }
    if let Stage::Succeeded(model) = stage {
        let mut model = model.clone();
        let metrics = &mut model.metrics;
        metrics.test_accuracy = metrics.test_accuracy.map(accuracy);
        metrics.validation_accuracy = metrics.validation_accuracy.map(accuracy);
        for value in [
            &mut metrics.test_loss,
            &mut metrics.test_rmse,
            &mut metrics.test_mae,
            &mut metrics.validation_loss,
        ] {
            *value = value.map(significant);
        }
        status.model = Some(model);
    }
}

/// An accuracy as the status shows it (`kubectl get` prints it as stored): 3 decimals, 0.978.
/// The model card keeps the exact value.
pub fn accuracy(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// A loss or an error as the status shows it: 4 significant digits (0.04217, 12.35).
pub use modelops_api::common::significant;

/// The reason and message of `Ready` (and of whichever other condition the stage sets).
fn ready_reason<'a>(stage: &'a Stage, status: &TrainingJobStatus) -> (&'a str, String) {
    match stage {
        Stage::WaitingForDataset { reason, message } => (reason, message.clone()),
        Stage::InvalidSpec(message) => (reasons::INVALID_SPEC, message.clone()),
        Stage::Forbidden(message) => (reasons::FORBIDDEN_POD_TEMPLATE, message.clone()),
        Stage::Suspended => (
            reasons::JOB_SUSPENDED,
            "spec.runPolicy.suspend is true: no pods run until it is false".into(),
        ),
        Stage::Queued(queue) => (
            reasons::WAITING_FOR_ADMISSION,
            format!("queued in the Kueue LocalQueue {queue:?}: no pods run until Kueue admits it"),
        ),
        Stage::Pending => (reasons::PENDING, "waiting for worker pods to start".into()),
        Stage::Running => (reasons::TRAINING, running_message(status)),
        Stage::Succeeded(model) => (
            reasons::TRAINING_SUCCEEDED,
            format!(
                "trained model {}{}",
                model.digest,
                model
                    .metrics
                    .test_accuracy
                    .map(|a| format!(", test accuracy {a:.4}"))
                    .unwrap_or_default()
            ),
        ),
        Stage::Failed { reason, message } => (reason.as_str(), message.clone()),
    }
}

/// `Ready`, the domain conditions (`Succeeded`, `Failed`, `Suspended`) and kstatus'
/// `Reconciling` and `Stalled` (present only while true).
fn set_conditions(
    status: &mut TrainingJobStatus,
    stage: &Stage,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: &Time,
) {
    let conditions = &mut status.conditions;
    let succeeded = matches!(stage, Stage::Succeeded(_));
    let failed = matches!(stage, Stage::Failed { .. });
    let condition =
        |kind: &str, on: bool| new_condition(kind, on, reason, message.clone(), generation, now);
    if matches!(stage, Stage::Suspended) {
        // Held on purpose, not failing and not at work: no `Ready` (which kstatus would read as
        // in progress for as long as the hold lasts), `Suspended` True says why.
        conditions.remove(types::READY);
    } else {
        conditions.set(condition(types::READY, succeeded));
    }
    if succeeded {
        conditions.set(condition(types::SUCCEEDED, true));
    }
    if failed {
        conditions.set(condition(types::FAILED, true));
    }
    set_suspended(
        conditions,
        matches!(stage, Stage::Suspended),
        generation,
        now,
    );
    let in_progress = matches!(
        stage,
        Stage::WaitingForDataset { .. } | Stage::Queued(_) | Stage::Pending | Stage::Running
    );
    conditions.set_while_true(
        types::RECONCILING,
        in_progress.then(|| (reason, message.clone())),
        generation,
        now,
    );
    let stalled = matches!(
        stage,
        Stage::InvalidSpec(_) | Stage::Forbidden(_) | Stage::Failed { .. }
    );
    conditions.set_while_true(
        types::STALLED,
        stalled.then_some((reason, message)),
        generation,
        now,
    );
}

/// `Suspended`: True while `spec.runPolicy.suspend` holds the job; once it has been True, it
/// stays as False (`JobResumed`) so that the resume shows.
fn set_suspended(
    conditions: &mut Conditions,
    suspended: bool,
    generation: Option<i64>,
    now: &Time,
) {
    if !suspended && conditions.get(types::SUSPENDED).is_none() {
        return;
    }
    let (reason, text) = if suspended {
        (reasons::JOB_SUSPENDED, "spec.runPolicy.suspend is true")
    } else {
        (reasons::JOB_RESUMED, "spec.runPolicy.suspend is false")
    };
    conditions.set(new_condition(
        types::SUSPENDED,
        suspended,
        reason,
        text,
        generation,
        now,
    ));
}

fn running_message(status: &TrainingJobStatus) -> String {
    match &status.progress {
        Some(p) => format!(
            "training: epoch {} of {}{}",
            p.epoch,
            p.total_epochs,
            p.validation_accuracy
                .map(|a| format!(", validation accuracy {a:.4}"))
                .unwrap_or_default()
        ),
        None => "training".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_shows_metrics_rounded() {
        assert_eq!(accuracy(0.977_777_8), 0.978);
        assert_eq!(accuracy(1.0), 1.0);
        assert_eq!(significant(0.042_171_3), 0.042_17);
        assert_eq!(significant(12.3456), 12.35);
        assert_eq!(significant(123_456.7), 123_500.0);
        assert_eq!(significant(0.0), 0.0);
        assert!(significant(f64::NAN).is_nan());
        assert_eq!(significant(1e-300), 1e-300);
    }
    use k8s_openapi::jiff::Timestamp;
    use modelops_api::trainingjob::{Architecture, ModelMetrics};

    fn at(seconds: i64) -> Time {
        Time(Timestamp::from_second(seconds).unwrap())
    }

    fn model() -> ModelArtifact {
        ModelArtifact {
            uri: "pvc://modelops-artifacts/models/abc".into(),
            digest: "sha256:abc".into(),
            architecture: Architecture::Mlp,
            dataset_digest: "sha256:def".into(),
            metrics: ModelMetrics {
                test_accuracy: Some(0.97),
                ..Default::default()
            },
        }
    }

    #[test]
    fn waiting_for_a_missing_dataset_says_so() {
        let stage = Stage::WaitingForDataset {
            reason: reasons::DATASET_NOT_FOUND,
            message: "Dataset digits does not exist".into(),
        };
        let s = status(None, Some(1), &stage, Observed::default(), &at(1));
        assert_eq!(s.phase, Some(TrainingPhase::Pending));
        let ready = s.conditions.get(types::READY).unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "DatasetNotFound")
        );
        assert!(s.conditions.is_true(types::RECONCILING));
        assert!(s.start_time.is_none());
    }

    #[test]
    fn a_template_the_policy_forbids_is_stalled_with_the_reason() {
        let message = "spec.template.image: \"evil.example/x:1\" is not allowed".to_owned();
        let s = status(
            None,
            Some(1),
            &Stage::Forbidden(message.clone()),
            Observed::default(),
            &at(1),
        );
        assert_eq!(s.phase, Some(TrainingPhase::Pending));
        for condition in [types::READY, types::STALLED] {
            let c = s.conditions.get(condition).unwrap();
            assert_eq!(c.reason, reasons::FORBIDDEN_POD_TEMPLATE);
            assert_eq!(c.message, message);
        }
        assert!(s.conditions.is_true(types::STALLED));
        assert!(!s.conditions.is_true(types::READY));
        assert!(!s.conditions.is_true(types::RECONCILING));
        assert!(s.start_time.is_none());
    }

    #[test]
    fn the_phase_does_not_go_back_from_running_to_pending() {
        let running = status(None, Some(1), &Stage::Running, Observed::default(), &at(1));
        let between = status(
            Some(&running),
            Some(1),
            &Stage::Pending,
            Observed::default(),
            &at(2),
        );
        assert_eq!(between.phase, Some(TrainingPhase::Running));
        let fresh = status(None, Some(1), &Stage::Pending, Observed::default(), &at(1));
        assert_eq!(fresh.phase, Some(TrainingPhase::Pending));
    }

    #[test]
    fn a_queued_job_waits_for_admission_in_progress() {
        let s = status(
            None,
            Some(1),
            &Stage::Queued("gpus".into()),
            Observed::default(),
            &at(1),
        );
        assert_eq!(s.phase, Some(TrainingPhase::Pending));
        let ready = s.conditions.get(types::READY).unwrap();
        assert_eq!(ready.reason, reasons::WAITING_FOR_ADMISSION);
        assert!(ready.message.contains("\"gpus\""), "{}", ready.message);
        assert!(s.conditions.is_true(types::RECONCILING));
        assert!(!s.conditions.is_true(types::SUSPENDED));
    }

    #[test]
    fn running_then_succeeded() {
        let observed = Observed {
            attempts: 1,
            progress: Some(TrainingProgress {
                epoch: 3,
                total_epochs: 20,
                ..Default::default()
            }),
            ..Default::default()
        };
        let running = status(None, Some(1), &Stage::Running, observed, &at(10));
        assert_eq!(running.start_time, Some(at(10)));
        assert!(
            running
                .conditions
                .get(types::READY)
                .unwrap()
                .message
                .contains("epoch 3 of 20")
        );

        let done = status(
            Some(&running),
            Some(1),
            &Stage::Succeeded(model()),
            Observed {
                attempts: 1,
                ..Default::default()
            },
            &at(20),
        );
        assert_eq!(done.phase, Some(TrainingPhase::Succeeded));
        assert!(done.conditions.is_true(types::READY));
        assert!(done.conditions.is_true(types::SUCCEEDED));
        assert!(done.conditions.get(types::RECONCILING).is_none());
        assert_eq!(done.start_time, Some(at(10)));
        assert_eq!(done.completion_time, Some(at(20)));
        // progress is kept from the last report
        assert_eq!(done.progress.unwrap().epoch, 3);
        assert_eq!(done.model.unwrap().metrics.test_accuracy, Some(0.97));
    }

    #[test]
    fn failure_stalls() {
        let stage = Stage::Failed {
            reason: reasons::BACKOFF_LIMIT_EXCEEDED.into(),
            message: "3 pods failed".into(),
        };
        let s = status(None, Some(1), &stage, Observed::default(), &at(5));
        assert!(s.conditions.is_true(types::FAILED));
        assert!(s.conditions.is_true(types::STALLED));
        assert!(!s.conditions.is_true(types::READY));
    }

    #[test]
    fn suspend_and_resume_flip_the_condition() {
        let suspended = status(
            None,
            Some(1),
            &Stage::Suspended,
            Observed::default(),
            &at(1),
        );
        assert!(suspended.conditions.is_true(types::SUSPENDED));
        // kstatus reads a held job as current, not as in progress for ever.
        assert!(suspended.conditions.get(types::READY).is_none());
        assert!(!suspended.conditions.is_true(types::RECONCILING));
        let resumed = status(
            Some(&suspended),
            Some(2),
            &Stage::Pending,
            Observed::default(),
            &at(2),
        );
        let condition = resumed.conditions.get(types::SUSPENDED).unwrap();
        assert_eq!(
            (condition.status.as_str(), condition.reason.as_str()),
            ("False", "JobResumed")
        );
        assert!(resumed.conditions.get(types::READY).is_some());
    }
}
