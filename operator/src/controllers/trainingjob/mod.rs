//! The TrainingJob controller: waits for its Dataset, pins the Dataset's digest, runs worker
//! pods as Jobs (one, or one per trial of a search with at most `parallelism` at once), copies
//! the worker's per-epoch progress into the status, and records the trained model.
//!
//! A TrainingJob that finished (Succeeded or Failed) is final, like a Kubernetes Job: to train
//! again, create a new one.

pub mod build;

use super::apply::{apply_over, apply_status, controlled_by, ours, owner_label_key};
use super::error::{ApiContext, Error, Result};
use super::runner::{Runner, Wakes, in_each_scope};
use super::{Context, events, jobs};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use modelops_api::conditions::{reasons, types};
use modelops_api::trainingjob::{
    Architecture, LearningCurves, ModelArtifact, TrainingJobStatus, TrainingPhase,
    TrainingProgress, TrialStatus,
};
use modelops_api::workorder::{POD_ANSWER_LIMIT, PROGRESS_PATH, PROGRESS_PORT, TrainResult};
use modelops_api::{Dataset, TrainingJob};
use modelops_core::training::search;
use modelops_core::training::status::{self, Observed, Stage};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Epochs a trial's learning curves keep in `status.trials` (the job's own keep
/// [`LearningCurves::MAX_POINTS`]).
const TRIAL_CURVE_POINTS: usize = 50;

/// How often a running job's progress is read again.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(3);

/// How long a training pod may take to say where it is.
const PROGRESS_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs the TrainingJob controller until shutdown.
pub async fn run(ctx: Arc<Context>) {
    let metrics = ctx.metrics.clone();
    in_each_scope(ctx, Wakes::SpecChange, |runner: Runner<TrainingJob>| {
        metrics.observe_trainingjobs(runner.store());
        // A job waiting for its Dataset proceeds as soon as the Dataset exists or is prepared;
        // reconciles read Datasets from that watch's cache.
        let (runner, datasets) = runner
            .owns_reading(jobs::read)
            .watches_named_cached::<Dataset>(|job: &TrainingJob| Some(&job.spec.dataset_ref.name));
        runner.run(move |job, ctx| reconcile(job, ctx, datasets.clone()))
    })
    .await;
}

/// The Dataset digest to train on: the one pinned at start, or the Dataset's now; or why the job
/// has to wait.
async fn dataset_digest(
    datasets: &Store<Dataset>,
    job: &TrainingJob,
    namespace: &str,
) -> Result<std::result::Result<(String, Option<Arc<Dataset>>), Stage>> {
    let name = &job.spec.dataset_ref.name;
    // Before its first list the cache would say every Dataset is missing.
    datasets
        .wait_until_ready()
        .await
        .map_err(|_| Error::Stopping(format!("reading Dataset {namespace}/{name}")))?;
    let dataset = datasets.get(&ObjectRef::new(name).within(namespace));
    if let Some(pinned) = job.status.as_ref().and_then(|s| s.dataset_digest.clone()) {
        return Ok(Ok((pinned, dataset)));
    }
    let Some(dataset) = dataset else {
        return Ok(Err(Stage::WaitingForDataset {
            reason: reasons::DATASET_NOT_FOUND,
            message: format!(
                "spec.datasetRef: Dataset {namespace}/{name} does not exist yet; training starts once it is created and prepared"
            ),
        }));
    };
    let status = dataset.status.as_ref();
    match status.and_then(|s| s.digest.clone()) {
        Some(digest) if status.is_some_and(|s| s.conditions.is_true(types::READY)) => {
            Ok(Ok((digest, Some(dataset))))
        }
        _ => {
            let why = status
                .and_then(|s| s.conditions.get(types::READY))
                .map(|c| format!(" ({}: {})", c.reason, c.message))
                .unwrap_or_default();
            Ok(Err(Stage::WaitingForDataset {
                reason: reasons::DATASET_NOT_READY,
                message: format!("spec.datasetRef: Dataset {namespace}/{name} is not Ready{why}"),
            }))
        }
    }
}

/// Checks of the spec against its Dataset that the CRD schema cannot make.
fn validate(job: &TrainingJob, dataset: Option<&Dataset>) -> Option<String> {
    let dataset = dataset?;
    let text = dataset.spec.schema.text.is_some();
    match job.spec.model.architecture {
        Architecture::TextLstm if !text => Some(format!(
            "spec.model.architecture textLstm needs a text Dataset, but Dataset {} has no spec.schema.text: use mlp or cnn, or a jsonl Dataset",
            dataset.name_any()
        )),
        Architecture::Mlp | Architecture::Cnn if text => Some(format!(
            "spec.model.architecture {} needs numeric features, but Dataset {} is text: use textLstm",
            job.spec.model.architecture.as_str(),
            dataset.name_any()
        )),
        _ => None,
    }
}

/// What a training pod answers on [`PROGRESS_PATH`]: the last epoch's figures, and the learning
/// curves so far.
#[derive(serde::Deserialize)]
struct ProgressAnswer {
    #[serde(flatten)]
    progress: TrainingProgress,
    #[serde(default)]
    curves: Option<LearningCurves>,
}

/// The progress of a run's worker, as its running pod reports it (see
/// [`modelops_api::workorder::PROGRESS_PATH`]), with its learning curves; `None` while no pod
/// runs or it has nothing to say yet.
async fn read_progress(ctx: &Context, namespace: &str, worker_job: &str) -> Option<ProgressAnswer> {
    let ip = jobs::running_pod_ip(&ctx.client, namespace, worker_job)
        .await
        .ok()
        .flatten()?;
    let body = crate::podhttp::get(
        &ip,
        PROGRESS_PORT,
        PROGRESS_PATH,
        POD_ANSWER_LIMIT,
        PROGRESS_TIMEOUT,
    )
    .await
    .map_err(|e| tracing::debug!("TrainingJob {namespace}: {e}"))
    .ok()?;
    serde_json::from_slice(&body).ok()
}

/// The progress of a finished run, from its result, when the status shows an earlier epoch (or
/// none): the epochs it ran and its validation metrics.
fn final_progress(job: &TrainingJob, result: &TrainResult) -> Option<TrainingProgress> {
    let shown = job
        .status
        .as_ref()
        .and_then(|s| s.progress.as_ref())
        .map(|p| p.epoch);
    (shown < Some(result.epochs)).then_some(TrainingProgress {
        epoch: result.epochs,
        total_epochs: job.spec.hyperparameters.epochs,
        train_loss: None,
        validation_loss: result.metrics.validation_loss,
        validation_accuracy: result.metrics.validation_accuracy,
        samples_per_second: None,
        trial: None,
        updated_at: None,
    })
}

/// The model recorded by a finished worker.
fn model_from_result(result: &TrainResult) -> ModelArtifact {
    ModelArtifact {
        uri: result.model_uri.clone(),
        digest: result.model_digest.clone(),
        architecture: result.architecture,
        dataset_digest: result.dataset_digest.clone(),
        metrics: result.metrics.clone(),
    }
}

/// The outcome of one worker Job, as the TrainingJob sees it.
struct RunState {
    stage: Stage,
    attempts: i32,
    result: Option<TrainResult>,
}

/// Gets or creates the Job of a run (or trial), then reads where it stands.
async fn run_job(
    ctx: &Context,
    job: &TrainingJob,
    namespace: &str,
    desired: Job,
    created: &mut bool,
) -> Result<RunState> {
    let worker_job = apply_worker_job(ctx, job, namespace, desired, created).await?;
    run_state(ctx, namespace, &worker_job).await
}

/// The worker Job as it is: created from `desired` when missing (setting `created`), or the
/// existing one with its suspension brought in line with the spec.
async fn apply_worker_job(
    ctx: &Context,
    job: &TrainingJob,
    namespace: &str,
    desired: Job,
    created: &mut bool,
) -> Result<Job> {
    let jobs_api: Api<Job> = Api::namespaced(ctx.client.clone(), namespace);
    let name = desired.metadata.name.clone().unwrap_or_default();
    let existing = jobs_api
        .get_opt(&name)
        .await
        .action(|| format!("reading Job {namespace}/{name}"))?;
    Ok(
        match existing.map(|existing| ours(existing, job)).transpose()? {
            Some(existing) => {
                // Suspension is the one field that may change after creation; a queued job's
                // belongs to Kueue, which admits it by unsuspending the Job.
                let suspend = job.spec.run_policy.suspend;
                if build::queue_name(job).is_none()
                    && existing
                        .spec
                        .as_ref()
                        .and_then(|s| s.suspend)
                        .unwrap_or(false)
                        != suspend
                {
                    jobs_api
                        .patch(
                            &name,
                            &PatchParams::default(),
                            &Patch::Merge(serde_json::json!({"spec": {"suspend": suspend}})),
                        )
                        .await
                        .action(|| format!("setting suspend on Job {namespace}/{name}"))?
                } else {
                    existing
                }
            }
            None => {
                *created = true;
                apply_over(&jobs_api, &desired, None).await?
            }
        },
    )
}

/// Where a worker Job stands, with the worker's result or failure read from its pod.
async fn run_state(ctx: &Context, namespace: &str, worker_job: &Job) -> Result<RunState> {
    let name = worker_job.name_any();
    Ok(match jobs::outcome(worker_job) {
        jobs::Outcome::Suspended => RunState {
            stage: match worker_job.labels().get(build::QUEUE_NAME_LABEL) {
                Some(queue) => Stage::Queued(queue.clone()),
                None => Stage::Suspended,
            },
            attempts: 0,
            result: None,
        },
        jobs::Outcome::Active { running, failed } => RunState {
            stage: if running > 0 {
                Stage::Running
            } else {
                Stage::Pending
            },
            attempts: failed + 1,
            result: None,
        },
        jobs::Outcome::Succeeded => {
            let failed = worker_job
                .status
                .as_ref()
                .and_then(|s| s.failed)
                .unwrap_or(0);
            let message =
                jobs::termination_message(&ctx.client, namespace, &name, "Succeeded").await?;
            match message.as_deref().map(serde_json::from_str::<TrainResult>) {
                Some(Ok(result)) => RunState {
                    stage: Stage::Succeeded(model_from_result(&result)),
                    attempts: failed + 1,
                    result: Some(result),
                },
                other => RunState {
                    stage: Stage::Failed {
                        reason: reasons::UNREADABLE_RESULT.into(),
                        message: format!(
                            "the worker of Job {name} succeeded but left no readable result: {other:?}"
                        ),
                    },
                    attempts: failed + 1,
                    result: None,
                },
            }
        }
        jobs::Outcome::Failed {
            reason,
            message,
            failed,
        } => {
            let pod_message =
                jobs::termination_message(&ctx.client, namespace, &name, "Failed").await?;
            let detail = failure_detail(pod_message);
            let message = if detail.is_empty() {
                message
            } else {
                format!("{message}; last worker error: {detail}")
            };
            RunState {
                stage: Stage::Failed { reason, message },
                attempts: failed.max(1),
                result: None,
            }
        }
    })
}

/// The worker's own account of a failure, from its termination message: its reason and message
/// when it wrote a [`WorkerFailure`](modelops_api::workorder::WorkerFailure), else the tail of
/// its log; empty when there is none.
fn failure_detail(pod_message: Option<String>) -> String {
    match pod_message
        .as_deref()
        .map(serde_json::from_str::<modelops_api::workorder::WorkerFailure>)
    {
        Some(Ok(failure)) => format!("{}: {}", failure.reason, failure.message),
        Some(Err(_)) => pod_message.unwrap_or_default().trim().to_owned(),
        None => String::new(),
    }
}

/// A search: starts trials up to `parallelism`, records finished ones, picks the best.
async fn run_search(
    ctx: &Context,
    job: &TrainingJob,
    namespace: &str,
    digest: &str,
    created: &mut bool,
) -> Result<(Stage, Observed)> {
    let search = job.spec.search.as_ref().expect("called for searching jobs");
    let plan = search::trials(search, job.spec.hyperparameters.seed_or_default());
    let recorded: BTreeMap<i32, TrialStatus> = job
        .status
        .as_ref()
        .map(|s| s.trials.iter().map(|t| (t.index, t.clone())).collect())
        .unwrap_or_default();
    let existing = worker_jobs(ctx, job, namespace).await?;

    let mut trials = Vec::new();
    let mut attempts = 0;
    let mut active = 0;
    let mut progress = None;
    let mut curves = None;
    for (index, parameters) in plan.iter().enumerate() {
        let index = index as i32;
        let shown = parameters
            .iter()
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect();
        let finished = recorded
            .get(&index)
            .filter(|t| matches!(t.phase, TrainingPhase::Succeeded | TrainingPhase::Failed));
        if let Some(trial) = finished {
            trials.push(trial.clone());
            continue;
        }
        let name = build::job_name(job, Some(index));
        let may_start = active < search.parallelism || existing.contains_key(&name);
        if !may_start {
            trials.push(TrialStatus {
                index,
                parameters: shown,
                phase: TrainingPhase::Pending,
                objective: None,
                model_digest: None,
                model: None,
                message: None,
                curves: None,
            });
            continue;
        }
        let desired = build::train_job(
            &ctx.config,
            job,
            namespace,
            digest,
            Some((index, parameters)),
        );
        let state = run_job(ctx, job, namespace, desired, created).await?;
        attempts += state.attempts;
        let phase = status::phase(&state.stage);
        if matches!(
            phase,
            TrainingPhase::Pending | TrainingPhase::Running | TrainingPhase::Suspended
        ) {
            active += 1;
            if let Some(answer) = read_progress(ctx, namespace, &name).await {
                progress = Some(TrainingProgress {
                    trial: Some(index),
                    ..answer.progress
                });
                curves = answer.curves;
            }
        }
        trials.push(trial_status(index, shown, &state));
    }
    let best = search::best(&trials, search.objective.goal()).map(|t| (t.index, t.model.clone()));
    let stage = search_stage(job, &trials, &best);
    let observed = Observed {
        dataset_digest: Some(digest.to_owned()),
        attempts,
        progress,
        curves,
        trials,
        best_trial: best.map(|b| b.0),
    };
    Ok((stage, observed))
}

/// A started trial's status, from where its Job stands.
fn trial_status(index: i32, parameters: BTreeMap<String, String>, state: &RunState) -> TrialStatus {
    let message = match &state.stage {
        Stage::Failed { message, .. } => Some(message.clone()),
        _ => None,
    };
    TrialStatus {
        index,
        parameters,
        phase: status::phase(&state.stage),
        objective: state.result.as_ref().and_then(|r| r.objective),
        model_digest: state.result.as_ref().map(|r| r.model_digest.clone()),
        model: state.result.as_ref().map(model_from_result),
        message,
        curves: state
            .result
            .as_ref()
            .and_then(|r| r.curves.as_ref())
            .map(|c| c.thinned(TRIAL_CURVE_POINTS)),
    }
}

/// The Jobs of a TrainingJob's trials, by name.
async fn worker_jobs(
    ctx: &Context,
    job: &TrainingJob,
    namespace: &str,
) -> Result<BTreeMap<String, Job>> {
    let jobs_api: Api<Job> = Api::namespaced(ctx.client.clone(), namespace);
    Ok(jobs_api
        .list(&ListParams::default().labels(&format!(
            "{}={}",
            owner_label_key::<TrainingJob>(),
            job.name_any()
        )))
        .await
        .action(|| {
            format!(
                "listing the Jobs of TrainingJob {namespace}/{}",
                job.name_any()
            )
        })?
        .items
        .into_iter()
        // A label is no proof: only Jobs this TrainingJob controls are its trials.
        .filter(|j| job.uid().is_some_and(|uid| controlled_by(j, &uid)))
        .map(|j| (j.name_any(), j))
        .collect())
}

/// Where a search stands: succeeded with the best trial's model once every trial finished,
/// failed when none produced one, else suspended, running or pending.
fn search_stage(
    job: &TrainingJob,
    trials: &[TrialStatus],
    best: &Option<(i32, Option<ModelArtifact>)>,
) -> Stage {
    let all_finished = trials
        .iter()
        .all(|t| matches!(t.phase, TrainingPhase::Succeeded | TrainingPhase::Failed));
    if all_finished {
        match best {
            Some((_, Some(model))) => Stage::Succeeded(model.clone()),
            _ => Stage::Failed {
                reason: reasons::ALL_TRIALS_FAILED.into(),
                message: format!("all {} trials failed; see status.trials", trials.len()),
            },
        }
    } else if job.spec.run_policy.suspend {
        Stage::Suspended
    } else if trials.iter().any(|t| t.phase == TrainingPhase::Running) {
        Stage::Running
    } else {
        Stage::Pending
    }
}

/// One reconcile, in the steps every controller takes: dereference (the Dataset's digest),
/// validate (the spec against that Dataset), build and apply (the worker Jobs, see
/// [`run_workers`]), update status (and the Events of what changed).
async fn reconcile(
    job: Arc<TrainingJob>,
    ctx: Arc<Context>,
    datasets: Store<Dataset>,
) -> Result<Action> {
    let namespace = job
        .namespace()
        .ok_or_else(|| Error::MissingMetadata(format!("TrainingJob {}", job.name_any())))?;
    let current: Option<&TrainingJobStatus> = job.status.as_ref();
    if current.is_some_and(|s| {
        matches!(
            s.phase,
            Some(TrainingPhase::Succeeded | TrainingPhase::Failed)
        )
    }) {
        return Ok(Action::await_change());
    }
    let mut created = false;

    // Dereference and validate: a spec that does not fit its Dataset is refused before it
    // starts; once the digest is pinned, the run goes on with the data it began with.
    // A template outside the workload policy starts no pod, whenever it came to be so.
    let forbidden = ctx.config.policy.check("spec.template", &job.spec.template);
    let (stage, observed) = if let Err(message) = forbidden {
        // Mid-run (a search's later trials would use the new template): what ran is kept.
        let kept = current.map(|s| Observed {
            dataset_digest: s.dataset_digest.clone(),
            attempts: s.attempts,
            progress: None,
            curves: None,
            trials: s.trials.clone(),
            best_trial: s.best_trial,
        });
        (Stage::Forbidden(message), kept.unwrap_or_default())
    } else {
        match dataset_digest(&datasets, &job, &namespace).await? {
            Err(waiting) => (waiting, Observed::default()),
            Ok((digest, dataset)) => match validate(&job, dataset.as_deref()) {
                Some(problem) if current.and_then(|s| s.dataset_digest.as_ref()).is_none() => {
                    (Stage::InvalidSpec(problem), Observed::default())
                }
                // Build and apply.
                _ => run_workers(&ctx, &job, &namespace, digest, &mut created).await?,
            },
        }
    };

    // Update status.
    update_status(&ctx, &job, &namespace, &stage, observed, created).await?;
    Ok(match stage {
        Stage::Running | Stage::Pending => Action::requeue(PROGRESS_INTERVAL),
        _ => Action::await_change(),
    })
}

/// Builds and applies the worker Jobs (one, or the trials of a search) and reads where they
/// stand. Sets `created` when it created one.
async fn run_workers(
    ctx: &Context,
    job: &TrainingJob,
    namespace: &str,
    digest: String,
    created: &mut bool,
) -> Result<(Stage, Observed)> {
    ctx.artifacts
        .ensure(&ctx.client, &ctx.config.artifacts, namespace)
        .await?;
    if job.spec.search.is_some() {
        return run_search(ctx, job, namespace, &digest, created).await;
    }
    let desired = build::train_job(&ctx.config, job, namespace, &digest, None);
    let name = build::job_name(job, None);
    let state = run_job(ctx, job, namespace, desired, created).await?;
    let (progress, curves) = match (&state.stage, &state.result) {
        (Stage::Running, _) => match read_progress(ctx, namespace, &name).await {
            Some(answer) => (Some(answer.progress), answer.curves),
            None => (None, None),
        },
        // A run that ended between two looks still shows its last epoch, and every epoch's
        // figures, from its result.
        (Stage::Succeeded(_), Some(result)) => (final_progress(job, result), result.curves.clone()),
        _ => (None, None),
    };
    let observed = Observed {
        dataset_digest: Some(digest),
        attempts: state.attempts,
        progress,
        curves,
        ..Default::default()
    };
    Ok((state.stage, observed))
}

/// Writes the status of `stage` and publishes the changes a person should notice.
async fn update_status(
    ctx: &Context,
    job: &TrainingJob,
    namespace: &str,
    stage: &Stage,
    observed: Observed,
    created: bool,
) -> Result<()> {
    let current = job.status.as_ref();
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let previous = Previous {
        attempts: current.map(|s| s.attempts).unwrap_or(0),
        phase: current.and_then(|s| s.phase),
    };
    // The attempts this reconcile observed (the status may keep a count from before).
    let attempts = observed.attempts;
    let new = status::status(current, job.metadata.generation, stage, observed, &now);
    let api: Api<TrainingJob> = Api::namespaced(ctx.client.clone(), namespace);
    apply_status(&api, job, current, &new).await?;
    publish_events(ctx, job, &previous, &new, stage, attempts, created).await;
    Ok(())
}

/// What the status said before this reconcile, for the Events of what changed.
struct Previous {
    attempts: i32,
    phase: Option<TrainingPhase>,
}

/// The Events of a reconcile: started, retrying, and each change of phase.
async fn publish_events(
    ctx: &Context,
    job: &TrainingJob,
    previous: &Previous,
    new: &TrainingJobStatus,
    stage: &Stage,
    attempts: i32,
    created: bool,
) {
    let (previous_attempts, previous_phase) = (previous.attempts, previous.phase);
    let name = job.name_any();
    if created
        && previous_phase.is_none_or(|p| p == TrainingPhase::Pending)
        && previous_attempts == 0
    {
        let what = if job.spec.search.is_some() {
            "search trials"
        } else {
            "training"
        };
        events::publish(
            &ctx.recorder,
            job,
            false,
            reasons::STARTED,
            format!(
                "{name}: started {what} on Dataset digest {}",
                new.dataset_digest.clone().unwrap_or_default()
            ),
        )
        .await;
    }
    if attempts > previous_attempts
        && previous_attempts > 0
        && !matches!(stage, Stage::Failed { .. })
    {
        events::publish(
            &ctx.recorder,
            job,
            true,
            reasons::RETRYING,
            format!("{name}: a worker pod ended before finishing; attempt {attempts} resumes from the last checkpoint"),
        )
        .await;
    }
    publish_phase_change(ctx, job, previous.phase, new, stage).await;
}

/// The Event of a change of phase: succeeded, failed, suspended, waiting or refused.
async fn publish_phase_change(
    ctx: &Context,
    job: &TrainingJob,
    previous_phase: Option<TrainingPhase>,
    new: &TrainingJobStatus,
    stage: &Stage,
) {
    if previous_phase != new.phase {
        if let (Some(phase @ (TrainingPhase::Succeeded | TrainingPhase::Failed)), Some(namespace)) =
            (new.phase, job.metadata.namespace.as_deref())
        {
            ctx.metrics.training_finished(
                namespace,
                if phase == TrainingPhase::Succeeded {
                    "Succeeded"
                } else {
                    "Failed"
                },
            );
        }
        match stage {
            Stage::Succeeded(model) => {
                events::publish(
                    &ctx.recorder,
                    job,
                    false,
                    reasons::SUCCEEDED,
                    new.conditions
                        .get(types::READY)
                        .map(|c| c.message.clone())
                        .unwrap_or_else(|| model.digest.clone()),
                )
                .await
            }
            Stage::Failed { reason, message } => {
                events::publish(
                    &ctx.recorder,
                    job,
                    true,
                    reasons::FAILED,
                    format!("{reason}: {message}"),
                )
                .await
            }
            Stage::Suspended => {
                events::publish(
                    &ctx.recorder,
                    job,
                    false,
                    reasons::SUSPENDED,
                    "spec.runPolicy.suspend is true".into(),
                )
                .await
            }
            Stage::WaitingForDataset { reason, message } => {
                events::publish(&ctx.recorder, job, false, reason, message.clone()).await
            }
            Stage::InvalidSpec(message) => {
                events::publish(
                    &ctx.recorder,
                    job,
                    true,
                    reasons::INVALID_SPEC,
                    message.clone(),
                )
                .await
            }
            Stage::Forbidden(message) => {
                events::publish(
                    &ctx.recorder,
                    job,
                    true,
                    reasons::FORBIDDEN_POD_TEMPLATE,
                    message.clone(),
                )
                .await
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workers_failure_reads_from_its_result_or_its_log() {
        let written =
            r#"{"reason":"DigestMismatch","message":"dataset changed","retryable":false}"#;
        assert_eq!(
            failure_detail(Some(written.into())),
            "DigestMismatch: dataset changed"
        );
        assert_eq!(
            failure_detail(Some("  panicked at main.rs\n".into())),
            "panicked at main.rs"
        );
        assert_eq!(failure_detail(None), "");
    }
}
