//! The Dataset controller: runs a prepare pod (as a Job) for each version of the spec and
//! records the prepared data's digest, row counts, classes and profile in the status.

pub mod build;

use super::apply::{apply_over, apply_status, ours};
use super::error::{ApiContext, Error, Result};
use super::runner::{Runner, Wakes, in_each_scope};
use super::{Context, events, jobs};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use modelops_api::Dataset;
use modelops_api::conditions::{reasons, types};
use modelops_api::dataset::Source;
use modelops_api::workorder::PrepareResult;
use modelops_core::dataset::status::{self, Stage};
use std::sync::Arc;
use std::time::Duration;

/// How often a Dataset waiting for its source looks again (ConfigMaps and claims are not
/// watched: the operator would need to watch every one in the cluster).
const SOURCE_RECHECK: Duration = Duration::from_secs(10);

/// Runs the Dataset controller until shutdown.
pub async fn run(ctx: Arc<Context>) {
    let metrics = ctx.metrics.clone();
    in_each_scope(ctx, Wakes::AnyChange, |runner: Runner<Dataset>| {
        metrics.observe_datasets(runner.store());
        runner.owns_reading(jobs::read).run(reconcile)
    })
    .await;
}

/// The source's ConfigMap or claim, if it is missing: what to tell the user.
async fn missing_source(
    ctx: &Context,
    dataset: &Dataset,
    namespace: &str,
) -> Result<Option<String>> {
    let missing = match dataset.spec.source.get() {
        Some(Source::ConfigMap(cm)) => {
            let maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), namespace);
            match maps
                .get_opt(&cm.name)
                .await
                .action(|| format!("reading ConfigMap {namespace}/{}", cm.name))?
            {
                None => Some(format!(
                    "spec.source.configMap: ConfigMap {namespace}/{} does not exist; create it with the data under key {:?}",
                    cm.name, cm.key
                )),
                Some(map)
                    if !map.data.as_ref().is_some_and(|d| d.contains_key(&cm.key))
                        && !map
                            .binary_data
                            .as_ref()
                            .is_some_and(|d| d.contains_key(&cm.key)) =>
                {
                    Some(format!(
                        "spec.source.configMap: ConfigMap {namespace}/{} has no key {:?}",
                        cm.name, cm.key
                    ))
                }
                Some(_) => None,
            }
        }
        Some(Source::Volume(v)) => {
            let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), namespace);
            claims
                .get_opt(&v.claim_name)
                .await
                .action(|| format!("reading PersistentVolumeClaim {namespace}/{}", v.claim_name))?
                .is_none()
                .then(|| {
                    format!(
                        "spec.source.volume: PersistentVolumeClaim {namespace}/{} does not exist",
                        v.claim_name
                    )
                })
        }
        _ => None,
    };
    Ok(missing)
}

/// One reconcile, in the steps every controller takes: dereference (the source), validate (the
/// CRD's schema and rules check the whole spec; nothing is left to check here), build and apply
/// (the prepare Job), update status (from the Job's outcome).
async fn reconcile(dataset: Arc<Dataset>, ctx: Arc<Context>) -> Result<Action> {
    let namespace = dataset
        .namespace()
        .ok_or_else(|| Error::MissingMetadata(format!("Dataset {}", dataset.name_any())))?;
    let current = dataset.status.as_ref();

    // Prepared already at this generation: nothing to do until the spec changes.
    if current.is_some_and(|s| {
        s.observed_generation == dataset.metadata.generation && s.conditions.is_true(types::READY)
    }) {
        return Ok(Action::await_change());
    }

    // Validate: an object source must be one this namespace may read.
    if let Some(Source::S3(s3)) = dataset.spec.source.get()
        && let Err(message) =
            ctx.config
                .artifacts
                .check_user_uri(&namespace, "spec.source.s3.uri", &s3.uri)
    {
        let stage = Stage::Failed {
            reason: reasons::FORBIDDEN_ARTIFACT_URI.into(),
            message,
        };
        update_status(&ctx, &dataset, &namespace, stage).await?;
        return Ok(Action::await_change());
    }

    // Dereference: a pod would wait forever for a volume that is not there.
    if let Some(message) = missing_source(&ctx, &dataset, &namespace).await? {
        update_status(&ctx, &dataset, &namespace, Stage::SourceMissing(message)).await?;
        return Ok(Action::requeue(SOURCE_RECHECK));
    }

    // Build and apply.
    let job = apply_prepare_job(&ctx, &dataset, &namespace).await?;

    // Update status.
    let stage = stage_of(&ctx, &namespace, &job).await?;
    update_status(&ctx, &dataset, &namespace, stage).await?;
    Ok(Action::await_change())
}

/// The prepare Job of this spec: the one that exists, or a new one built from the spec (Jobs
/// are immutable, and the spec's hash is in the name, so an existing one is left as it is).
async fn apply_prepare_job(ctx: &Context, dataset: &Dataset, namespace: &str) -> Result<Job> {
    ctx.artifacts
        .ensure(&ctx.client, &ctx.config.artifacts, namespace)
        .await?;
    let jobs_api: Api<Job> = Api::namespaced(ctx.client.clone(), namespace);
    let job_name = build::job_name(dataset);
    if let Some(job) = jobs_api
        .get_opt(&job_name)
        .await
        .action(|| format!("reading Job {namespace}/{job_name}"))?
    {
        // Found under its name: the Dataset's own Job, or someone else's, which it never uses.
        return ours(job, dataset);
    }
    let job = apply_over(
        &jobs_api,
        &build::prepare_job(&ctx.config, dataset, namespace),
        None,
    )
    .await?;
    events::publish(
        &ctx.recorder,
        dataset,
        false,
        reasons::PREPARING,
        format!(
            "started Job {job_name} to prepare generation {}",
            dataset.metadata.generation.unwrap_or(0)
        ),
    )
    .await;
    Ok(job)
}

/// Where the preparation stands, from the prepare Job and its pod's termination message.
async fn stage_of(ctx: &Context, namespace: &str, job: &Job) -> Result<Stage> {
    let job_name = job.name_any();
    Ok(match jobs::outcome(job) {
        jobs::Outcome::Succeeded => {
            let message =
                jobs::termination_message(&ctx.client, namespace, &job_name, "Succeeded").await?;
            match message
                .as_deref()
                .map(serde_json::from_str::<PrepareResult>)
            {
                Some(Ok(result)) => Stage::Prepared(result),
                other => Stage::Failed {
                    reason: reasons::UNREADABLE_RESULT.into(),
                    message: format!(
                        "the prepare pod of Job {job_name} succeeded but left no readable result ({other:?}); delete the Job to prepare again"
                    ),
                },
            }
        }
        jobs::Outcome::Failed {
            reason, message, ..
        } => {
            let pod_message =
                jobs::termination_message(&ctx.client, namespace, &job_name, "Failed").await?;
            status::failure_from_message(&reason, &message, pod_message.as_deref())
        }
        jobs::Outcome::Active { .. } | jobs::Outcome::Suspended => Stage::Preparing,
    })
}

/// Writes the status of `stage`, and tells a person about the changes worth noticing.
async fn update_status(
    ctx: &Context,
    dataset: &Dataset,
    namespace: &str,
    stage: Stage,
) -> Result<()> {
    let current = dataset.status.as_ref();
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let new = status::status(current, dataset.metadata.generation, &stage, &now);
    let api: Api<Dataset> = Api::namespaced(ctx.client.clone(), namespace);
    let was_ready = current.is_some_and(|s| s.conditions.is_true(types::READY));
    let was_stalled = current.is_some_and(|s| s.conditions.is_true(types::STALLED));
    if !apply_status(&api, dataset, current, &new).await? {
        return Ok(());
    }
    match &stage {
        Stage::Prepared(result) if !was_ready => {
            let rows = result.rows;
            events::publish(
                &ctx.recorder,
                dataset,
                false,
                reasons::PREPARED,
                format!(
                    "{}: {} rows ({} rejected), digest {}",
                    dataset.name_any(),
                    rows.total,
                    rows.rejected,
                    result.digest
                ),
            )
            .await
        }
        Stage::Failed { reason, message } if !was_stalled => {
            events::publish(
                &ctx.recorder,
                dataset,
                true,
                reasons::PREPARE_FAILED,
                format!("{reason}: {message}"),
            )
            .await
        }
        _ => {}
    }
    Ok(())
}
