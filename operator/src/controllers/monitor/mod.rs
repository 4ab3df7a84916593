//! The Monitor controller: every `spec.interval` it scrapes `/metrics` of every serving pod of
//! its target ModelDeployment, folds the counters into a sliding window per revision, and writes
//! the values, thresholds and verdict into `Monitor.status` (the statistics are in
//! [`crate::monitor`]). It measures and judges; it never moves traffic: the ModelDeployment
//! controller reads the verdicts and acts.

use super::apply::{apply_status, controlled_by};
use super::error::{ApiContext, Error, Result};
use super::runner::{Runner, Wakes, in_each_scope};
use super::{Context, events};
use crate::controllers::modeldeployment::build::REVISION_LABEL;
use crate::profile::profile_key;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use kube::runtime::controller::Action;
use modelops_api::ModelDeployment;
use modelops_api::conditions::{new_condition, reasons, types};
use modelops_api::monitor::{Monitor, MonitorAction, MonitorStatus};
use modelops_api::profile::Profile;
use modelops_api::serving::{METRICS_PATH, PROFILE_PATH, parse_metrics};
use modelops_api::workorder::SERVING_PORT;
use modelops_core::monitor::{self as stats, PodScrape, evaluate, status as monitor_status};
use std::sync::Arc;
use std::time::Duration;

/// How long one pod's `/metrics` (or profile) may take.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(2);

/// The most of one pod's `/metrics` read.
const METRICS_LIMIT: usize = 16 << 20;

/// The most of one pod's profile read.
const PROFILE_LIMIT: usize = 16 << 20;

/// Runs the Monitor controller until shutdown. Nothing but its own changes wakes it: it
/// requeues itself every `spec.interval`.
pub async fn run(ctx: Arc<Context>) {
    let metrics = ctx.metrics.clone();
    in_each_scope(ctx, Wakes::AnyChange, |runner: Runner<Monitor>| {
        metrics.observe_monitors(runner.store());
        runner.run(reconcile)
    })
    .await;
}

/// GET `/metrics` of one pod (at most [`METRICS_LIMIT`] bytes).
async fn scrape(ip: &str) -> Option<String> {
    match crate::podhttp::get(
        ip,
        SERVING_PORT,
        METRICS_PATH,
        METRICS_LIMIT,
        SCRAPE_TIMEOUT,
    )
    .await
    {
        Ok(body) => String::from_utf8(body.to_vec()).ok(),
        Err(error) => {
            tracing::debug!("{error}");
            None
        }
    }
}

/// The serving pods of `target`: those labelled as its own whose ReplicaSet belongs to one of
/// the Deployments it controls. A pod a tenant labels by hand (or a ReplicaSet made to look like
/// a revision's) is neither scraped nor asked for a profile.
async fn owned_pods(
    ctx: &Context,
    namespace: &str,
    target: &ModelDeployment,
    selector: &str,
) -> Result<Vec<Pod>> {
    let name = target.name_any();
    let Some(uid) = target.uid() else {
        return Ok(Vec::new());
    };
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), namespace);
    let params = ListParams::default().labels(&format!("modelops.dev/modeldeployment={name}"));
    let revisions: Vec<String> = deployments
        .list(&params)
        .await
        .action(|| format!("listing the Deployments of {namespace}/{name}"))?
        .items
        .iter()
        .filter(|d| controlled_by(*d, &uid))
        .filter_map(|d| d.uid())
        .collect();
    let replica_sets: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), namespace);
    let sets: Vec<String> = replica_sets
        .list(&params)
        .await
        .action(|| format!("listing the ReplicaSets of {namespace}/{name}"))?
        .items
        .iter()
        .filter(|rs| revisions.iter().any(|d| controlled_by(*rs, d)))
        .filter_map(|rs| rs.uid())
        .collect();
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    Ok(pods
        .list(&ListParams::default().labels(selector))
        .await
        .action(|| format!("listing the serving pods of {namespace}/{name}"))?
        .items
        .into_iter()
        .filter(|pod| sets.iter().any(|rs| controlled_by(pod, rs)))
        .collect())
}

/// Scrapes every running serving pod of the target, concurrently.
async fn scrape_pods(
    ctx: &Context,
    namespace: &str,
    target: &ModelDeployment,
) -> Result<Vec<PodScrape>> {
    let selector = format!("modelops.dev/modeldeployment={}", target.name_any());
    let list = owned_pods(ctx, namespace, target, &selector).await?;
    let scrapes = list.into_iter().filter_map(|pod| {
        let status = pod.status.as_ref()?;
        let ip = status.pod_ip.clone()?;
        let container = status
            .container_statuses
            .as_ref()?
            .iter()
            .find(|c| c.name == "serve")?
            .clone();
        let started_at = container
            .state
            .as_ref()?
            .running
            .as_ref()?
            .started_at
            .clone()?
            .0;
        let id = format!("{}/{}", pod.uid()?, container.restart_count);
        Some(async move {
            let samples = scrape(&ip).await.map(|text| parse_metrics(&text));
            PodScrape {
                pod: id,
                started_at: Some(started_at),
                samples,
            }
        })
    });
    Ok(futures::future::join_all(scrapes).await)
}

/// The Dataset profile of the model the target serves (the drift reference), as a serving pod
/// of the revision judged (else of the first revision) serves it. None while no pod of that
/// revision answers with one (the model did not come from a prepared Dataset, or is loading).
pub(crate) async fn profile(
    ctx: &Context,
    namespace: &str,
    target: &ModelDeployment,
    revision: Option<i32>,
) -> Result<Option<Arc<Profile>>> {
    let Some(status) = &target.status else {
        return Ok(None);
    };
    let Some(revision) = status
        .revisions
        .iter()
        .find(|r| Some(r.revision) == revision)
        .or_else(|| status.revisions.first())
    else {
        return Ok(None);
    };
    let name = target.name_any();
    let key = profile_key(namespace, &name, revision.revision, &revision.model_digest);
    if let Some(profile) = ctx.profiles.get(&key) {
        return Ok(Some(profile));
    }
    let selector = format!(
        "modelops.dev/modeldeployment={name},{REVISION_LABEL}={}",
        revision.revision
    );
    let list = owned_pods(ctx, namespace, target, &selector).await?;
    for ip in list
        .iter()
        .filter_map(|pod| pod.status.as_ref()?.pod_ip.clone())
    {
        let answer = crate::podhttp::get(
            &ip,
            SERVING_PORT,
            PROFILE_PATH,
            PROFILE_LIMIT,
            SCRAPE_TIMEOUT,
        )
        .await;
        match answer.map_err(|e| e.to_string()).and_then(|body| {
            crate::profile::parse_profile(&body).map_err(|e| format!("{PROFILE_PATH}: {e}"))
        }) {
            Ok(profile) => {
                let profile = Arc::new(profile);
                ctx.profiles.insert(&key, profile.clone());
                return Ok(Some(profile));
            }
            Err(error) => tracing::debug!(
                "Monitor target {namespace}/{name} revision {}: profile from {ip}: {error}",
                revision.revision
            ),
        }
    }
    Ok(None)
}

/// Whether the operator's policy lets this Monitor's `prometheus` metric query its address.
fn prometheus_allowed(ctx: &Context, monitor: &Monitor) -> std::result::Result<(), String> {
    for (index, metric) in monitor.spec.metrics.iter().enumerate() {
        if let Some(prometheus) = &metric.prometheus {
            ctx.config.policy.check_prometheus(
                &format!("spec.metrics[{index}].prometheus.address"),
                &prometheus.address,
            )?;
        }
    }
    Ok(())
}

/// A status that says the Monitor cannot evaluate, and why.
fn not_evaluating(
    monitor: &Monitor,
    reason: &str,
    message: String,
    stalled: bool,
) -> MonitorStatus {
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let generation = monitor.metadata.generation;
    let mut status = monitor.status.clone().unwrap_or_default();
    status.observed_generation = generation;
    status.conditions.set(new_condition(
        types::READY,
        false,
        reason,
        message.clone(),
        generation,
        &now,
    ));
    status.conditions.set_while_true(
        types::STALLED,
        stalled.then_some((reason, message)),
        generation,
        &now,
    );
    status
}

/// One reconcile, in the steps every controller takes: validate (the thresholds and the
/// window), dereference (the target, its pods' counters, the drift reference), build (the window
/// and the verdict, pure), apply and update status (a Monitor has no children: its status is
/// all it writes, with an Event when a revision turns Fail).
async fn reconcile(monitor: Arc<Monitor>, ctx: Arc<Context>) -> Result<Action> {
    let namespace = monitor
        .namespace()
        .ok_or_else(|| Error::MissingMetadata(format!("Monitor {}", monitor.name_any())))?;
    let api: Api<Monitor> = Api::namespaced(ctx.client.clone(), &namespace);
    let current = monitor.status.as_ref();
    let now = Time(k8s_openapi::jiff::Timestamp::now());

    // Validate.
    let bounds = match stats::validate(&monitor.spec) {
        Ok(bounds) => bounds,
        Err(problem) => {
            let status = not_evaluating(&monitor, reasons::INVALID_SPEC, problem, true);
            apply_status(&api, monitor.as_ref(), current, &status).await?;
            return Ok(Action::await_change());
        }
    };
    if let Err(problem) = prometheus_allowed(&ctx, &monitor) {
        let status = not_evaluating(
            &monitor,
            reasons::FORBIDDEN_PROMETHEUS_ADDRESS,
            problem,
            true,
        );
        apply_status(&api, monitor.as_ref(), current, &status).await?;
        return Ok(Action::await_change());
    }
    let interval = modelops_api::common::parse_duration(&monitor.spec.interval)
        .unwrap_or(Duration::from_secs(30));
    let previous = monitor_status::previous_status(&monitor);
    let due = evaluate::due_in(&monitor.spec, previous, &now);
    if !due.is_zero() {
        return Ok(Action::requeue(due));
    }

    // Dereference the target and scrape its pods.
    let target_name = &monitor.spec.target_ref.name;
    let targets: Api<ModelDeployment> = Api::namespaced(ctx.client.clone(), &namespace);
    let Some(target) = targets
        .get_opt(target_name)
        .await
        .action(|| format!("reading ModelDeployment {namespace}/{target_name}"))?
    else {
        let status = not_evaluating(
            &monitor,
            reasons::REFERENCE_NOT_FOUND,
            format!("spec.targetRef: ModelDeployment {namespace}/{target_name} does not exist"),
            false,
        );
        apply_status(&api, monitor.as_ref(), current, &status).await?;
        return Ok(Action::requeue(interval));
    };
    let pods = scrape_pods(&ctx, &namespace, &target).await?;
    let focus = target.status.as_ref().and_then(stats::focus_revision);
    let profile = if evaluate::needs_profile(&monitor.spec) {
        profile(&ctx, &namespace, &target, focus).await?
    } else {
        None
    };

    // Build: the window and the verdict.
    let mut window = observe(&ctx, &monitor, &now, &pods, &bounds);
    window.queries = query_prometheus(&monitor, &namespace, &window, focus).await;
    let outcome = stats::evaluate(
        &monitor.spec,
        &window,
        profile.as_deref(),
        previous,
        focus,
        &now,
    );
    ctx.metrics.evaluation(
        &namespace,
        outcome.focused.verdict.as_str(),
        outcome.focused.reason,
    );
    let status = monitor_status::next_status(
        &monitor.spec,
        previous,
        &outcome,
        monitor.metadata.generation,
    );
    // Apply and update status.
    apply_status(&api, monitor.as_ref(), current, &status).await?;
    if outcome.newly_failed() {
        publish_failure(&ctx, &monitor, &outcome).await;
    }
    Ok(Action::requeue(interval))
}

/// What the Monitor's `prometheus` metric's query gives for every revision in the window and
/// the one `lastEvaluation` describes (`focus`); nothing without such a metric.
async fn query_prometheus(
    monitor: &Monitor,
    namespace: &str,
    window: &stats::WindowDeltas,
    focus: Option<i32>,
) -> std::collections::BTreeMap<i32, stats::promql::QueryResult> {
    let Some(metric) = monitor
        .spec
        .metrics
        .iter()
        .find_map(|m| m.prometheus.as_ref())
    else {
        return Default::default();
    };
    let mut revisions: Vec<i32> = window.per_revision.keys().copied().collect();
    revisions.extend(focus.filter(|f| !revisions.contains(f)));
    let target = &monitor.spec.target_ref.name;
    crate::promql::query_revisions(metric, namespace, target, &revisions).await
}

/// Folds the pods' counters into the Monitor's sliding window (kept in the context, by uid) and
/// returns the window's deltas.
fn observe(
    ctx: &Context,
    monitor: &Monitor,
    now: &Time,
    pods: &[PodScrape],
    bounds: &stats::WindowBounds,
) -> stats::WindowDeltas {
    let interval = modelops_api::common::parse_duration(&monitor.spec.interval)
        .unwrap_or(Duration::from_secs(30));
    let mut states = ctx.monitor_states.lock().expect("not poisoned");
    states.observe(
        &monitor.uid().unwrap_or_default(),
        interval,
        now.0,
        pods,
        bounds,
    )
}

/// The Event of a revision that just turned Fail: what failed, and what happens next.
async fn publish_failure(ctx: &Context, monitor: &Monitor, outcome: &stats::Outcome) {
    let target_name = &monitor.spec.target_ref.name;
    let evaluation = outcome.last_evaluation();
    let action = match monitor.spec.action {
        MonitorAction::Rollback => "the ModelDeployment rolls it back",
        MonitorAction::Alert => "alert only: traffic stays as it is",
    };
    events::publish(
        &ctx.recorder,
        monitor,
        true,
        &evaluation.reason,
        format!(
            "revision {} of {target_name} failed: {}{}; {action}",
            evaluation
                .revision
                .map(|r| r.to_string())
                .unwrap_or_else(|| "?".into()),
            evaluation
                .message
                .clone()
                .unwrap_or_else(|| evaluation.reason.clone()),
            evaluation
                .worst_feature
                .as_ref()
                .map(|f| format!(" (worst feature {f})"))
                .unwrap_or_default(),
        ),
    )
    .await;
}
