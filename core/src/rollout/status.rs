//! Pure: the ModelDeployment's status from its plan and what its Deployments report.

use super::plan::Plan;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use modelops_api::conditions::{new_condition, reasons, types};
use modelops_api::modeldeployment::ModelDeploymentStatus;

/// Why the model could not be resolved, if it could not.
pub type Unresolved = Option<(&'static str, String)>;

/// The new status.
pub fn status(
    current: Option<&ModelDeploymentStatus>,
    generation: Option<i64>,
    plan: &Plan,
    ready_by_revision: &std::collections::BTreeMap<i32, i32>,
    endpoint: String,
    unresolved: Unresolved,
    now: &Time,
) -> ModelDeploymentStatus {
    let mut status = current.cloned().unwrap_or_default();
    status.observed_generation = generation;
    status.revisions = plan.revisions.clone();
    status.current_revision = plan.current;
    status.stable_revision = plan.stable;
    status.canary_weight = Some(plan.canary.map(|c| c.2).unwrap_or(0));
    status.canary_step = plan.canary.map(|c| c.1);
    let ready: i32 = plan
        .replicas
        .keys()
        .map(|r| ready_by_revision.get(r).copied().unwrap_or(0))
        .sum();
    let desired: i32 = plan.replicas.values().sum();
    status.ready_replicas = Some(ready);
    status.endpoint = Some(endpoint);

    let stable_ready = plan
        .stable
        .and_then(|s| ready_by_revision.get(&s))
        .copied()
        .unwrap_or(0);
    let conditions = &mut status.conditions;
    let (ready_ok, ready_reason, ready_message) = match (&unresolved, plan.stable) {
        (_, Some(stable)) if stable_ready > 0 => (
            true,
            reasons::AVAILABLE,
            format!("revision {stable} serves with {stable_ready} ready replicas"),
        ),
        (Some((reason, message)), _) => (false, *reason, message.clone()),
        (None, Some(stable)) => (
            false,
            reasons::REPLICAS_UNAVAILABLE,
            format!("revision {stable} has no ready replica yet"),
        ),
        (None, None) => (false, reasons::PROGRESSING, "no revision is serving".into()),
    };
    conditions.set(new_condition(
        types::READY,
        ready_ok,
        ready_reason,
        ready_message.clone(),
        generation,
        now,
    ));
    let (progressing, reason, message) = match plan.canary {
        Some((revision, step, weight)) => (
            true,
            reasons::CANARY_STEP,
            format!("revision {revision} is rolling out: step {step} at weight {weight}"),
        ),
        None => (
            false,
            reasons::RECONCILED,
            "no rollout under way".to_owned(),
        ),
    };
    conditions.set(new_condition(
        types::PROGRESSING,
        progressing,
        reason,
        message.clone(),
        generation,
        now,
    ));
    let degraded = ready < desired;
    conditions.set(new_condition(
        types::DEGRADED,
        degraded,
        if degraded {
            reasons::REPLICAS_UNAVAILABLE
        } else {
            reasons::AVAILABLE
        },
        format!("{ready} of {desired} serving replicas ready"),
        generation,
        now,
    ));
    match &plan.rolled_back {
        // Once recorded, the message of the moment of the rollback (which names the Monitor and
        // its reason) is kept while the same revision stays rolled back.
        Some((revision, _))
            if conditions.get(types::ROLLED_BACK).is_some_and(|c| {
                c.status == "True" && c.message.starts_with(&format!("revision {revision} "))
            }) => {}
        Some((revision, why)) => {
            conditions.set(new_condition(
                types::ROLLED_BACK,
                true,
                reasons::ANALYSIS_FAILED,
                format!(
                    "revision {revision} rolled back: {why}; it stays so until the spec changes"
                ),
                generation,
                now,
            ));
        }
        None if conditions.get(types::ROLLED_BACK).is_some() => {
            conditions.set(new_condition(
                types::ROLLED_BACK,
                false,
                reasons::RECONCILED,
                "no revision is rolled back at this generation",
                generation,
                now,
            ));
        }
        None => {}
    }
    let reconciling = (progressing || (!ready_ok && plan.stable.is_some())).then_some({
        (
            if progressing {
                reasons::CANARY_STEP
            } else {
                ready_reason
            },
            if progressing { message } else { ready_message },
        )
    });
    conditions.set_while_true(types::RECONCILING, reconciling, generation, now);
    status
}
