//! The ModelDeployment controller: a Deployment per revision and one Service, revisions rolled
//! out as canaries and promoted or rolled back on the verdicts of the Monitors that watch them
//! (see [`plan`]). It never writes the spec: a rollback is status and child objects only.

pub mod build;

use super::apply::{apply, apply_secret, apply_status, controlled_by, owner_label_key};
use super::error::{ApiContext, Error, Result};
use super::runner::{Runner, Wakes, in_each_scope};
use super::{Context, events, jobs};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams};
use kube::runtime::controller::Action;
use modelops_api::conditions::{reasons, types};
use modelops_api::modeldeployment::ModelDeploymentStatus;
use modelops_api::monitor::{MonitorAction, Verdict};
use modelops_api::trainingjob::TrainingPhase;
use modelops_api::{ModelDeployment, Monitor, TrainingJob};
use modelops_core::rollout::plan::{self, DesiredModel, Observed, VerdictSeen};
use modelops_core::rollout::status;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Runs the ModelDeployment controller until shutdown.
pub async fn run(ctx: Arc<Context>) {
    let metrics = ctx.metrics.clone();
    in_each_scope(ctx, Wakes::AnyChange, |runner: Runner<ModelDeployment>| {
        metrics.observe_deployments(runner.store());
        runner
            .owns::<Deployment>()
            // A new model: the TrainingJob it names succeeded.
            .watches_named::<TrainingJob>(|md: &ModelDeployment| {
                md.spec
                    .model
                    .training_job_ref
                    .as_ref()
                    .map(|r| r.name.as_str())
            })
            // A verdict: the Monitors that target it evaluated.
            .watches(|monitor: &Monitor, md: &ModelDeployment| {
                md.name_any() == monitor.spec.target_ref.name
            })
            .run(reconcile)
    })
    .await;
}

/// The model the spec names: its URI and digest, or why it is not there yet.
async fn resolve(
    ctx: &Context,
    md: &ModelDeployment,
    namespace: &str,
) -> Result<std::result::Result<(String, DesiredModel), (&'static str, String)>> {
    let (uri, digest, training_job, field) = if let Some(reference) =
        &md.spec.model.training_job_ref
    {
        let jobs_api: Api<TrainingJob> = Api::namespaced(ctx.client.clone(), namespace);
        let Some(job) = jobs_api
            .get_opt(&reference.name)
            .await
            .action(|| format!("reading TrainingJob {namespace}/{}", reference.name))?
        else {
            return Ok(Err((
                reasons::REFERENCE_NOT_FOUND,
                format!(
                    "spec.model.trainingJobRef: TrainingJob {namespace}/{} does not exist",
                    reference.name
                ),
            )));
        };
        let status = job.status.unwrap_or_default();
        match (status.phase, status.model.clone()) {
            (Some(TrainingPhase::Succeeded), Some(model)) => (
                model.uri,
                model.digest,
                Some(reference.name.clone()),
                format!("status.model.uri of TrainingJob {}", reference.name),
            ),
            (phase, _) => return Ok(Err(not_trained(namespace, &reference.name, phase, &status))),
        }
    } else if let Some(artifact) = &md.spec.model.artifact {
        (
            artifact.uri.clone(),
            artifact.digest.clone(),
            None,
            "spec.model.artifact.uri".to_owned(),
        )
    } else {
        return Ok(Err((
            reasons::INVALID_SPEC,
            "spec.model: set trainingJobRef or artifact".into(),
        )));
    };
    if let Err(message) = ctx.config.artifacts.check_user_uri(namespace, &field, &uri) {
        return Ok(Err((reasons::FORBIDDEN_ARTIFACT_URI, message)));
    }
    if let Err(message) = ctx.config.policy.check("spec.template", &md.spec.template) {
        return Ok(Err((reasons::FORBIDDEN_POD_TEMPLATE, message)));
    }
    let spec_hash = jobs::short_hash(&(
        &digest,
        &md.spec.serving,
        &md.spec.resources,
        &md.spec.template,
    ));
    Ok(Ok((
        uri,
        DesiredModel {
            digest,
            training_job,
            spec_hash,
        },
    )))
}

/// Why the TrainingJob `name` gives no model yet: failed for good (`ReferenceFailed`, which
/// stalls the ModelDeployment: kstatus and Argo CD read it as failed at once), or not finished.
fn not_trained(
    namespace: &str,
    name: &str,
    phase: Option<TrainingPhase>,
    status: &modelops_api::trainingjob::TrainingJobStatus,
) -> (&'static str, String) {
    let field = "spec.model.trainingJobRef";
    let why = status
        .conditions
        .get(types::READY)
        .map(|c| format!(" ({}: {})", c.reason, c.message))
        .unwrap_or_default();
    match phase {
        Some(TrainingPhase::Failed) => (
            reasons::REFERENCE_FAILED,
            format!(
                "{field}: TrainingJob {namespace}/{name} failed{why}; fix and re-create it, or point spec.model at another model"
            ),
        ),
        Some(TrainingPhase::Suspended) => (
            reasons::REFERENCE_NOT_READY,
            format!(
                "{field}: TrainingJob {namespace}/{name} is suspended (spec.runPolicy.suspend); its model is served once it has trained"
            ),
        ),
        phase => (
            reasons::REFERENCE_NOT_READY,
            format!(
                "{field}: TrainingJob {namespace}/{name} has not finished yet (phase {}){why}",
                phase.map_or("none yet", TrainingPhase::as_str)
            ),
        ),
    }
}

/// The verdicts of the Monitors that target this ModelDeployment: one per revision each Monitor
/// judged at its last evaluation (Inconclusive ones say nothing either way and are left out).
async fn verdicts(
    ctx: &Context,
    md: &ModelDeployment,
    namespace: &str,
) -> Result<Vec<VerdictSeen>> {
    let monitors: Api<Monitor> = Api::namespaced(ctx.client.clone(), namespace);
    let list = monitors
        .list(&ListParams::default())
        .await
        .action(|| format!("listing Monitors in {namespace}"))?;
    let mut seen = Vec::new();
    for monitor in list
        .items
        .into_iter()
        .filter(|m| m.spec.target_ref.name == md.name_any())
    {
        let rollback = monitor.spec.action == MonitorAction::Rollback;
        let name = monitor.name_any();
        let Some(status) = monitor.status else {
            continue;
        };
        let Some(time) = status.last_evaluation.as_ref().map(|e| e.time.clone()) else {
            continue;
        };
        for revision in status.revisions {
            let pass = match revision.verdict {
                Verdict::Pass => true,
                Verdict::Fail => false,
                Verdict::Inconclusive => continue,
            };
            seen.push(VerdictSeen {
                monitor: name.clone(),
                revision: revision.revision,
                time: time.clone(),
                pass,
                rollback,
                reason: revision.reason,
            });
        }
    }
    Ok(seen)
}

/// The Deployments of `md`'s revisions, by revision.
async fn revision_deployments(
    ctx: &Context,
    md: &ModelDeployment,
    namespace: &str,
) -> Result<BTreeMap<i32, Deployment>> {
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), namespace);
    Ok(deployments
        .list(&ListParams::default().labels(&format!(
            "{}={}",
            owner_label_key::<ModelDeployment>(),
            md.name_any()
        )))
        .await
        .action(|| {
            format!(
                "listing the Deployments of ModelDeployment {namespace}/{}",
                md.name_any()
            )
        })?
        .items
        .into_iter()
        // A label is no proof: only Deployments this ModelDeployment controls are revisions.
        .filter(|d| md.uid().is_some_and(|uid| controlled_by(d, &uid)))
        .filter_map(|d| Some((d.labels().get(build::REVISION_LABEL)?.parse().ok()?, d)))
        .collect())
}

/// What each revision's Deployment reports: ready pods, and whether it missed its progress
/// deadline.
fn observe(existing: &BTreeMap<i32, Deployment>) -> BTreeMap<i32, Observed> {
    existing
        .iter()
        .map(|(revision, d)| {
            let status = d.status.clone().unwrap_or_default();
            let failed = status.conditions.iter().flatten().any(|c| {
                c.type_ == "Progressing"
                    && c.status == "False"
                    && c.reason.as_deref() == Some(reasons::PROGRESS_DEADLINE_EXCEEDED)
            });
            (
                *revision,
                Observed {
                    ready: status.ready_replicas.unwrap_or(0),
                    failed,
                },
            )
        })
        .collect()
}

/// One reconcile, in the steps every controller takes: dereference (the model, the revisions'
/// Deployments, the Monitors' verdicts), validate (in [`resolve`]: the model reference), build
/// (the plan of the revisions, pure) and apply (a Deployment per kept revision and the
/// Service), update status (and the Events of the plan).
async fn reconcile(md: Arc<ModelDeployment>, ctx: Arc<Context>) -> Result<Action> {
    let namespace = md
        .namespace()
        .ok_or_else(|| Error::MissingMetadata(format!("ModelDeployment {}", md.name_any())))?;
    let generation = md.metadata.generation;
    let current: Option<&ModelDeploymentStatus> = md.status.as_ref();
    let now = Time(k8s_openapi::jiff::Timestamp::now());

    // Dereference: the model, the revisions' Deployments, the Monitors' verdicts.
    let resolved = resolve(&ctx, &md, &namespace).await?;
    let existing = revision_deployments(&ctx, &md, &namespace).await?;
    let observed = observe(&existing);
    let verdicts = verdicts(&ctx, &md, &namespace).await?;

    // Plan the revisions.
    let (desired, model_dir, unresolved) = match &resolved {
        Ok((uri, desired)) => (Some(desired), Some(uri.clone()), None),
        Err((reason, message)) => (None, None, Some((*reason, message.clone()))),
    };
    let plan = plan::plan(
        &md.spec, generation, current, desired, &observed, &verdicts, &now,
    );

    // Build and apply: a Deployment per kept revision, the Service; prune the rest.
    let model = desired.zip(model_dir.as_deref());
    apply_children(&ctx, &md, &namespace, &plan, model, &existing).await?;

    // Update status.
    let new = update_status(&ctx, &md, &namespace, &plan, &observed, unresolved, &now).await?;
    let pending = plan.canary.is_some() || new.conditions.is_true(types::DEGRADED);
    let not_serving = new
        .conditions
        .get(types::READY)
        .is_some_and(|c| c.reason == reasons::SERVICE_NOT_SERVING);
    if not_serving {
        return Ok(Action::requeue(std::time::Duration::from_secs(1)));
    }
    Ok(match (plan.requeue_after, pending) {
        (Some(after), _) => Action::requeue(after),
        (None, true) => Action::requeue(std::time::Duration::from_secs(5)),
        (None, false) => Action::await_change(),
    })
}

/// Applies a Deployment per revision the plan keeps and the Service, and deletes the
/// Deployments of the revisions it dropped. `model` is the resolved model and its URI.
async fn apply_children(
    ctx: &Context,
    md: &ModelDeployment,
    namespace: &str,
    plan: &plan::Plan,
    model: Option<(&DesiredModel, &str)>,
    existing: &BTreeMap<i32, Deployment>,
) -> Result<()> {
    ctx.artifacts
        .ensure(&ctx.client, &ctx.config.artifacts, namespace)
        .await?;
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), namespace);
    let key = ctx.feedback_key(namespace, &md.name_any(), &md.uid().unwrap_or_default());
    apply_secret(
        &Api::<Secret>::namespaced(ctx.client.clone(), namespace),
        &build::feedback_secret(md, namespace, &key),
    )
    .await?;
    // Every revision's Deployment is built with the spec's template: one the workload policy
    // refuses leaves them all as they are (what serves keeps serving; status says Stalled).
    let template_allowed = ctx
        .config
        .policy
        .check("spec.template", &md.spec.template)
        .is_ok();
    for revision in plan.revisions.iter().filter(|_| template_allowed) {
        let replicas = plan.replicas.get(&revision.revision).copied().unwrap_or(0);
        // A revision's model folder: the resolved model's, else the one its Deployment serves,
        // else the one its digest names in the namespace's store.
        let uri = match model {
            Some((desired, uri)) if desired.digest == revision.model_digest => uri.to_owned(),
            _ => existing
                .get(&revision.revision)
                .and_then(build::served_model_uri)
                .unwrap_or_else(|| {
                    ctx.config.artifacts.uri(
                        namespace,
                        &modelops_api::workorder::layout::model_dir(&revision.model_digest),
                    )
                }),
        };
        let deployment = build::deployment(
            &ctx.config,
            md,
            namespace,
            revision.revision,
            &uri,
            &revision.model_digest,
            replicas,
        );
        apply(&deployments, &deployment).await?;
    }
    for (revision, d) in existing.iter().filter(|_| template_allowed) {
        if !plan.revisions.iter().any(|r| r.revision == *revision) {
            deployments
                .delete(&d.name_any(), &DeleteParams::background())
                .await
                .action(|| format!("deleting Deployment {namespace}/{}", d.name_any()))?;
        }
    }
    apply(
        &Api::<Service>::namespaced(ctx.client.clone(), namespace),
        &build::service(md, namespace),
    )
    .await?;
    Ok(())
}

/// Why the pods of `revision` cannot load its model, as their readiness check says (state
/// `failed`); `None` while they load, or when no pod answers.
async fn model_failure(
    ctx: &Context,
    md: &ModelDeployment,
    namespace: &str,
    revision: i32,
) -> Option<String> {
    use k8s_openapi::api::core::v1::Pod;
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    let selector = format!(
        "{}={},{}={revision}",
        owner_label_key::<ModelDeployment>(),
        md.name_any(),
        build::REVISION_LABEL
    );
    let list = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .ok()?;
    for ip in list
        .items
        .iter()
        .filter_map(|pod| pod.status.as_ref()?.pod_ip.clone())
    {
        let Ok((503, body)) = crate::podhttp::get_answer(
            &ip,
            modelops_api::workorder::SERVING_PORT,
            modelops_api::serving::READY_PATH,
            64 << 10,
            std::time::Duration::from_secs(2),
        )
        .await
        else {
            continue;
        };
        let answer: serde_json::Value = serde_json::from_slice(&body).ok()?;
        if answer["state"] == modelops_api::serving::READY_STATE_FAILED
            && let Some(error) = answer["error"].as_str()
        {
            // A pod's words: bounded, like everything a pod says.
            return Some(error.chars().take(1024).collect());
        }
    }
    None
}

/// Whether a request through the ModelDeployment's Service succeeds now: a readiness check of a
/// serving pod, sent to the Service's cluster IP as a client's request would be.
async fn service_serves(
    ctx: &Context,
    md: &ModelDeployment,
    namespace: &str,
) -> std::result::Result<(), String> {
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), namespace);
    let service = services
        .get_opt(&md.name_any())
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("Service {namespace}/{} does not exist yet", md.name_any()))?;
    let ip = service
        .spec
        .and_then(|s| s.cluster_ip)
        .filter(|ip| !ip.is_empty() && ip != "None")
        .ok_or_else(|| {
            format!(
                "Service {namespace}/{} has no cluster IP yet",
                md.name_any()
            )
        })?;
    crate::podhttp::get(
        &ip,
        build::SERVICE_PORT,
        modelops_api::serving::READY_PATH,
        4096,
        std::time::Duration::from_secs(2),
    )
    .await
    .map(|_| ())
    .map_err(|e| e.to_string())
}

/// Writes the status the plan leads to and publishes its notices (and `Available` when the
/// ModelDeployment turns Ready). Returns the new status.
async fn update_status(
    ctx: &Context,
    md: &ModelDeployment,
    namespace: &str,
    plan: &plan::Plan,
    observed: &BTreeMap<i32, Observed>,
    unresolved: Option<(&'static str, String)>,
    now: &Time,
) -> Result<ModelDeploymentStatus> {
    let current = md.status.as_ref();
    let ready_by_revision: BTreeMap<i32, i32> =
        observed.iter().map(|(r, o)| (*r, o.ready)).collect();
    let mut new = status::status(
        current,
        md.metadata.generation,
        plan,
        &ready_by_revision,
        build::endpoint(md, namespace),
        unresolved,
        now,
    );
    // Ready means servable: before it first turns true, a request through the Service must
    // succeed (the Service's routes lag the pods' readiness by a moment).
    let was_ready = current.is_some_and(|s| s.conditions.is_true(types::READY));
    if !was_ready
        && new.conditions.is_true(types::READY)
        && let Err(why) = service_serves(ctx, md, namespace).await
    {
        status::not_servable_yet(&mut new, &why, md.metadata.generation, now);
    }
    // No ready pod of the stable revision: if its pods say they cannot load the model, say why.
    if let Some(stable) = plan.stable
        && ready_by_revision.get(&stable).copied().unwrap_or(0) == 0
        && let Some(why) = model_failure(ctx, md, namespace, stable).await
    {
        status::model_not_servable(&mut new, stable, &why, md.metadata.generation, now);
    }
    let api: Api<ModelDeployment> = Api::namespaced(ctx.client.clone(), namespace);
    apply_status(&api, md, current, &new).await?;
    for notice in &plan.notices {
        ctx.metrics.rollout_event(namespace, notice.reason);
        events::publish(
            &ctx.recorder,
            md,
            notice.warning,
            notice.reason,
            notice.message.clone(),
        )
        .await;
    }
    if !was_ready && new.conditions.is_true(types::READY) {
        events::publish(
            &ctx.recorder,
            md,
            false,
            reasons::AVAILABLE,
            new.conditions
                .get(types::READY)
                .map(|c| c.message.clone())
                .unwrap_or_default(),
        )
        .await;
    }
    Ok(new)
}
