//! Pure: the ModelDeployment's status from its plan and what its Deployments report.
//!
//! [`status`] records the plan, then sets each condition in its own step: `Ready` (a stable
//! revision serves), `Progressing` (a canary is under way), `Degraded` (fewer ready replicas than
//! planned), `RolledBack` and, from those, kstatus's `Reconciling`; and kstatus's `Stalled` while
//! a canary is held past its analysis' inconclusive timeout.

use super::plan::{Plan, RolledBack};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use modelops_api::conditions::{Conditions, new_condition, reasons, types};
use modelops_api::modeldeployment::{
    MAX_WEIGHT_CHANGES, ModelDeploymentStatus, RevisionState, WeightChange,
};
use std::collections::BTreeMap;

/// Why the model could not be resolved, if it could not.
pub type Unresolved = Option<(&'static str, String)>;

/// The new status.
pub fn status(
    current: Option<&ModelDeploymentStatus>,
    generation: Option<i64>,
    plan: &Plan,
    ready_by_revision: &BTreeMap<i32, i32>,
    endpoint: String,
    unresolved: Unresolved,
    now: &Time,
) -> ModelDeploymentStatus {
    let mut status = current.cloned().unwrap_or_default();
    let history: BTreeMap<i32, Vec<WeightChange>> = status
        .revisions
        .iter()
        .map(|r| (r.revision, r.weights.clone()))
        .collect();
    record_plan(&mut status, generation, plan);
    record_weights(&mut status, &history, plan, now);
    let (ready, desired) = serving_replicas(plan, ready_by_revision);
    status.ready_replicas = Some(ready);
    status.endpoint = Some(endpoint);

    let set = |conditions: &mut Conditions, type_: &str, value: &Assessment| {
        let message = value.message.clone();
        conditions.set(new_condition(
            type_,
            value.holds,
            value.reason,
            message,
            generation,
            now,
        ));
    };
    let conditions = &mut status.conditions;
    let serving = readiness(plan, ready_by_revision, &unresolved);
    set(conditions, types::READY, &serving);
    let progress = progress(plan);
    set(conditions, types::PROGRESSING, &progress);
    let degraded = degradation(ready, desired);
    set(conditions, types::DEGRADED, &degraded);
    record_rollback(conditions, plan.rolled_back.as_ref(), generation, now);
    // kstatus reads Reconciling before Stalled: a stalled object must not say it is at work.
    let stalled = stalled(plan, &unresolved);
    let reconciling = reconciling(&serving, &progress, &degraded, plan.stable.is_some())
        .filter(|_| stalled.is_none());
    conditions.set_while_true(types::RECONCILING, reconciling, generation, now);
    conditions.set_while_true(types::STALLED, stalled, generation, now);
    status
}

/// Holds `Ready` back while a request through the Service does not succeed yet although the
/// stable revision's pods are ready (`why` says what the request got): `Ready` means a request
/// sent now succeeds, not merely that pods are ready. `Reconciling` says the same meanwhile.
pub fn not_servable_yet(
    status: &mut ModelDeploymentStatus,
    why: &str,
    generation: Option<i64>,
    now: &Time,
) {
    if status.conditions.is_true(types::READY) {
        let message = format!(
            "the serving pods are ready, but a request through the Service did not succeed yet: {why}"
        );
        not_ready(
            status,
            reasons::SERVICE_NOT_SERVING,
            message,
            generation,
            now,
        );
    }
}

/// Says why `Ready` is False when the stable revision's pods run but cannot load its model (`why`
/// is what a pod's readiness check answers): a person then knows what to fix rather than seeing
/// replicas that never become ready.
pub fn model_not_servable(
    status: &mut ModelDeploymentStatus,
    revision: i32,
    why: &str,
    generation: Option<i64>,
    now: &Time,
) {
    if !status.conditions.is_true(types::READY) {
        let message = format!("revision {revision} cannot serve its model: {why}");
        not_ready(
            status,
            reasons::MODEL_NOT_SERVABLE,
            message,
            generation,
            now,
        );
    }
}

/// `Ready` False for `reason`, and `Reconciling` saying the same.
fn not_ready(
    status: &mut ModelDeploymentStatus,
    reason: &'static str,
    message: String,
    generation: Option<i64>,
    now: &Time,
) {
    status.conditions.set(new_condition(
        types::READY,
        false,
        reason,
        message.clone(),
        generation,
        now,
    ));
    status
        .conditions
        .set_while_true(types::RECONCILING, Some((reason, message)), generation, now);
}

/// Copies what the plan decided into the status: the revisions and the canary's position.
fn record_plan(status: &mut ModelDeploymentStatus, generation: Option<i64>, plan: &Plan) {
    status.observed_generation = generation;
    status.revisions = plan.revisions.clone();
    status.current_revision = plan.current;
    status.stable_revision = plan.stable;
    status.canary_weight = Some(plan.canary.map(|c| c.weight).unwrap_or(0));
    status.canary_step = plan.canary.map(|c| c.step);
}

/// Adds each revision's weight to its history when it changed: a revision gets a history once
/// it is a canary (the canary's step weight), then 100 while stable and 0 once out of traffic.
fn record_weights(
    status: &mut ModelDeploymentStatus,
    history: &BTreeMap<i32, Vec<WeightChange>>,
    plan: &Plan,
    now: &Time,
) {
    for revision in &mut status.revisions {
        if revision.weights.is_empty()
            && let Some(kept) = history.get(&revision.revision)
        {
            revision.weights = kept.clone();
        }
        let weight = match plan.canary {
            Some(c) if c.revision == revision.revision => c.weight,
            _ if revision.weights.is_empty() => continue,
            _ if revision.state == RevisionState::Stable => 100,
            _ => 0,
        };
        if revision.weights.last().map(|w| w.weight) != Some(weight) {
            revision.weights.push(WeightChange {
                weight,
                since: now.clone(),
            });
            let over = revision.weights.len().saturating_sub(MAX_WEIGHT_CHANGES);
            revision.weights.drain(..over);
        }
    }
}

/// Ready and desired replicas over the revisions the plan keeps.
fn serving_replicas(plan: &Plan, ready_by_revision: &BTreeMap<i32, i32>) -> (i32, i32) {
    let ready = plan
        .replicas
        .keys()
        .map(|r| ready_by_revision.get(r).copied().unwrap_or(0))
        .sum();
    (ready, plan.replicas.values().sum())
}

/// A condition's status, reason and message, before it is stamped with generation and time.
#[derive(Debug, Clone, PartialEq)]
struct Assessment {
    holds: bool,
    reason: &'static str,
    message: String,
}

impl Assessment {
    fn new(holds: bool, reason: &'static str, message: impl Into<String>) -> Self {
        Assessment {
            holds,
            reason,
            message: message.into(),
        }
    }
}

/// `Ready`: the stable revision has a ready pod. A stable revision that serves wins over an
/// unresolved model (what serves keeps serving); otherwise the unresolved model is the news.
fn readiness(
    plan: &Plan,
    ready_by_revision: &BTreeMap<i32, i32>,
    unresolved: &Unresolved,
) -> Assessment {
    let stable_ready = plan
        .stable
        .and_then(|s| ready_by_revision.get(&s))
        .copied()
        .unwrap_or(0);
    match (unresolved, plan.stable) {
        (_, Some(stable)) if stable_ready > 0 => Assessment::new(
            true,
            reasons::AVAILABLE,
            format!("revision {stable} serves with {stable_ready} ready replicas"),
        ),
        (Some((reason, message)), _) => Assessment::new(false, reason, message.clone()),
        (None, Some(stable)) => Assessment::new(
            false,
            reasons::REPLICAS_UNAVAILABLE,
            format!("revision {stable} has no ready replica yet"),
        ),
        (None, None) => Assessment::new(false, reasons::PROGRESSING, "no revision is serving"),
    }
}

/// `Progressing`: a canary is under way, at its step and weight; False while it is held past its
/// analysis' inconclusive timeout (like a Deployment past its progress deadline): it does not
/// progress until a person acts or a verdict comes.
fn progress(plan: &Plan) -> Assessment {
    if let Some(held) = &plan.held {
        return Assessment::new(false, reasons::ANALYSIS_INCONCLUSIVE_TIMEOUT, held.clone());
    }
    match plan.canary {
        Some(c) => Assessment::new(
            true,
            reasons::CANARY_STEP,
            format!(
                "revision {} is rolling out: step {} at weight {}",
                c.revision, c.step, c.weight
            ),
        ),
        None => Assessment::new(false, reasons::RECONCILED, "no rollout under way"),
    }
}

/// `Degraded`: fewer serving replicas are ready than the plan asks for.
fn degradation(ready: i32, desired: i32) -> Assessment {
    let degraded = ready < desired;
    let reason = if degraded {
        reasons::REPLICAS_UNAVAILABLE
    } else {
        reasons::AVAILABLE
    };
    Assessment::new(
        degraded,
        reason,
        format!("{ready} of {desired} serving replicas ready"),
    )
}

/// `RolledBack`: set when a revision is rolled back at this generation, cleared (not removed)
/// once none is; absent for a ModelDeployment that never rolled back.
fn record_rollback(
    conditions: &mut Conditions,
    rolled_back: Option<&RolledBack>,
    generation: Option<i64>,
    now: &Time,
) {
    let condition = match rolled_back {
        // Once recorded, the message of the moment of the rollback (which names the Monitor and
        // its reason) is kept while the same revision stays rolled back: later passes only know
        // the revision's recorded reason.
        Some(r) if records_rollback_of(conditions, r.revision) => return,
        Some(RolledBack {
            revision,
            message,
            reason,
        }) => new_condition(
            types::ROLLED_BACK,
            true,
            reason,
            format!(
                "revision {revision} rolled back: {message}; it stays so until the spec changes"
            ),
            generation,
            now,
        ),
        None if conditions.get(types::ROLLED_BACK).is_some() => new_condition(
            types::ROLLED_BACK,
            false,
            reasons::RECONCILED,
            "no revision is rolled back at this generation",
            generation,
            now,
        ),
        None => return,
    };
    conditions.set(condition);
}

/// Whether the `RolledBack` condition already records the rollback of `revision`.
fn records_rollback_of(conditions: &Conditions, revision: i32) -> bool {
    conditions.get(types::ROLLED_BACK).is_some_and(|c| {
        c.status == "True" && c.message.starts_with(&format!("revision {revision} "))
    })
}

/// kstatus's `Stalled`, present while the canary is held past its analysis' inconclusive timeout
/// (`onInconclusiveTimeout: hold`): a held rollout must not read as done, nor as still under way.
/// Also while the model cannot be used until the spec changes (an invalid spec, an artifact URI
/// the namespace may not use, a template the workload policy refuses, a failed TrainingJob), and
/// while the model the spec asks for is rolled back.
fn stalled(plan: &Plan, unresolved: &Unresolved) -> Option<(&'static str, String)> {
    if let Some((reason, message)) = unresolved
        && [
            reasons::INVALID_SPEC,
            reasons::FORBIDDEN_ARTIFACT_URI,
            reasons::FORBIDDEN_POD_TEMPLATE,
            reasons::REFERENCE_FAILED,
        ]
        .contains(reason)
    {
        return Some((*reason, message.clone()));
    }
    // The model this generation asks for was refused: what serves is the older one, and a
    // GitOps tool must not read the commit that asked for it as healthy.
    if let Some(rolled_back) = &plan.rolled_back {
        let instead = match plan.stable {
            Some(stable) => format!("revision {stable} serves instead"),
            None => "no revision serves".to_owned(),
        };
        return Some((
            rolled_back.reason,
            format!(
                "the model spec.model asks for (revision {}) was rolled back: {}; {instead}. Change spec.model to roll out another model",
                rolled_back.revision, rolled_back.message
            ),
        ));
    }
    plan.held
        .clone()
        .map(|message| (reasons::ANALYSIS_INCONCLUSIVE_TIMEOUT, message))
}

/// kstatus's `Reconciling`, present while a canary is under way (its step says what is going
/// on), or while the stable revision is not serving yet (Ready says why).
fn reconciling(
    serving: &Assessment,
    progress: &Assessment,
    degraded: &Assessment,
    stable_exists: bool,
) -> Option<(&'static str, String)> {
    if progress.holds {
        Some((reasons::CANARY_STEP, progress.message.clone()))
    } else if !serving.holds && stable_exists {
        Some((serving.reason, serving.message.clone()))
    } else if degraded.holds && stable_exists {
        // Pods starting or being replaced: under way, as a Deployment's rollout is (kstatus
        // InProgress, Argo CD Progressing), not yet failed.
        Some((degraded.reason, degraded.message.clone()))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::super::plan::CanaryPosition;
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn at(seconds: i64) -> Time {
        Time(Timestamp::from_second(1_800_000_000 + seconds).unwrap())
    }

    fn idle_replicas() -> Assessment {
        degradation(2, 2)
    }

    fn stable_plan() -> Plan {
        Plan {
            stable: Some(1),
            replicas: BTreeMap::from([(1, 2)]),
            ..Default::default()
        }
    }

    /// The status of [`stable_plan`] with these ready pods per revision.
    fn stable_status(ready: &BTreeMap<i32, i32>) -> ModelDeploymentStatus {
        status(
            None,
            Some(1),
            &stable_plan(),
            ready,
            "e".into(),
            None,
            &at(0),
        )
    }

    #[test]
    fn a_model_that_will_not_load_is_the_reason_ready_is_false() {
        let mut waiting = stable_status(&BTreeMap::new());
        model_not_servable(
            &mut waiting,
            1,
            "ArtifactNotFound: s3://b/ns/models/x has no model.json",
            Some(1),
            &at(0),
        );
        let ready = waiting.conditions.get(types::READY).unwrap();
        assert_eq!(ready.reason, reasons::MODEL_NOT_SERVABLE);
        assert!(
            ready.message.contains("s3://b/ns/models/x"),
            "{}",
            ready.message
        );
        let mut serving = stable_status(&BTreeMap::from([(1, 1)]));
        model_not_servable(&mut serving, 1, "x", Some(1), &at(0));
        assert!(serving.conditions.is_true(types::READY));
    }

    #[test]
    fn ready_waits_for_the_service_to_serve() {
        let ready = BTreeMap::from([(1, 2)]);
        let mut new = stable_status(&ready);
        assert!(new.conditions.is_true(types::READY));
        not_servable_yet(&mut new, "connection refused", Some(1), &at(0));
        let condition = new.conditions.get(types::READY).unwrap();
        assert_eq!(condition.status, "False");
        assert_eq!(condition.reason, reasons::SERVICE_NOT_SERVING);
        assert!(condition.message.contains("connection refused"));
        assert!(new.conditions.is_true(types::RECONCILING));
        // Not ready for another reason: that reason stays.
        let mut waiting = stable_status(&BTreeMap::new());
        not_servable_yet(&mut waiting, "x", Some(1), &at(0));
        assert_eq!(
            waiting.conditions.get(types::READY).unwrap().reason,
            reasons::REPLICAS_UNAVAILABLE
        );
    }

    #[test]
    fn a_forbidden_artifact_uri_stalls_until_the_spec_changes() {
        let unresolved = Some((
            reasons::FORBIDDEN_ARTIFACT_URI,
            "spec.model.artifact.uri: s3://modelops/a/x is in the artifact store of namespace a"
                .to_owned(),
        ));
        let (reason, message) = stalled(&stable_plan(), &unresolved).unwrap();
        assert_eq!(reason, reasons::FORBIDDEN_ARTIFACT_URI);
        assert!(message.contains("spec.model.artifact.uri"));
        let waiting = Some((reasons::REFERENCE_NOT_READY, "not yet".to_owned()));
        assert_eq!(stalled(&stable_plan(), &waiting), None);
        // So does a template outside the workload policy.
        let forbidden = Some((
            reasons::FORBIDDEN_POD_TEMPLATE,
            "spec.template.image: \"x:1\" is not allowed".to_owned(),
        ));
        let (reason, _) = stalled(&stable_plan(), &forbidden).unwrap();
        assert_eq!(reason, reasons::FORBIDDEN_POD_TEMPLATE);
    }

    #[test]
    fn a_serving_stable_revision_is_ready_even_with_the_model_unresolved() {
        let unresolved = Some((reasons::REFERENCE_NOT_FOUND, "no job".to_owned()));
        let serving = readiness(&stable_plan(), &BTreeMap::from([(1, 1)]), &unresolved);
        assert_eq!((serving.holds, serving.reason), (true, reasons::AVAILABLE));
        let waiting = readiness(&stable_plan(), &BTreeMap::new(), &unresolved);
        assert_eq!(
            waiting,
            Assessment::new(false, reasons::REFERENCE_NOT_FOUND, "no job")
        );
        let waiting = readiness(&stable_plan(), &BTreeMap::new(), &None);
        assert_eq!(waiting.reason, reasons::REPLICAS_UNAVAILABLE);
        let nothing = readiness(&Plan::default(), &BTreeMap::new(), &None);
        assert_eq!(nothing.reason, reasons::PROGRESSING);
    }

    #[test]
    fn a_canary_is_progress_and_reconciling() {
        let plan = Plan {
            canary: Some(CanaryPosition {
                revision: 2,
                step: 1,
                weight: 50,
            }),
            ..stable_plan()
        };
        let progress = progress(&plan);
        let message = "revision 2 is rolling out: step 1 at weight 50";
        assert_eq!(
            progress,
            Assessment::new(true, reasons::CANARY_STEP, message)
        );
        let serving = Assessment::new(true, reasons::AVAILABLE, "");
        let reconciling = reconciling(&serving, &progress, &idle_replicas(), true);
        assert_eq!(
            reconciling,
            Some((reasons::CANARY_STEP, message.to_owned()))
        );
    }

    #[test]
    fn a_stable_revision_not_serving_yet_is_reconciling_for_the_ready_reason() {
        let waiting = Assessment::new(false, reasons::REPLICAS_UNAVAILABLE, "not yet");
        let idle = progress(&stable_plan());
        let expected = Some((reasons::REPLICAS_UNAVAILABLE, "not yet".to_owned()));
        assert_eq!(
            reconciling(&waiting, &idle, &idle_replicas(), true),
            expected
        );
        assert_eq!(reconciling(&waiting, &idle, &idle_replicas(), false), None);
        // One of two replicas still starting: under way too.
        let serving = Assessment::new(true, reasons::AVAILABLE, "ok");
        let (reason, message) = reconciling(&serving, &idle, &degradation(1, 2), true).unwrap();
        assert_eq!(reason, reasons::REPLICAS_UNAVAILABLE);
        assert_eq!(message, "1 of 2 serving replicas ready");
    }

    #[test]
    fn each_revision_keeps_its_weights_over_time() {
        use super::super::draft::testing::revision;
        let canary = |weight, step| Plan {
            revisions: vec![
                revision(2, RevisionState::Canary, 0),
                revision(1, RevisionState::Stable, 0),
            ],
            stable: Some(1),
            current: Some(2),
            canary: Some(CanaryPosition {
                revision: 2,
                step,
                weight,
            }),
            ..Default::default()
        };
        let ready = BTreeMap::new();
        let run = |current: Option<&ModelDeploymentStatus>, plan: &Plan, t| {
            status(current, Some(2), plan, &ready, "e".into(), None, &at(t))
        };
        let weights = |s: &ModelDeploymentStatus, r: i32| -> Vec<(i32, Time)> {
            let revision = s.revisions.iter().find(|x| x.revision == r).unwrap();
            revision
                .weights
                .iter()
                .map(|w| (w.weight, w.since.clone()))
                .collect()
        };
        let first = run(None, &canary(10, 0), 0);
        let again = run(Some(&first), &canary(10, 0), 5);
        assert_eq!(weights(&again, 2), vec![(10, at(0))]);
        assert!(weights(&again, 1).is_empty(), "stable before any canary");
        let half = run(Some(&again), &canary(50, 1), 10);
        // Rolled back: out of traffic.
        let mut back = canary(0, 0);
        back.canary = None;
        back.current = Some(1);
        back.revisions[0].state = RevisionState::RolledBack;
        let rolled = run(Some(&half), &back, 20);
        assert_eq!(
            weights(&rolled, 2),
            vec![(10, at(0)), (50, at(10)), (0, at(20))]
        );
        // A history is bounded.
        let mut s = rolled;
        for t in 0..50 {
            s = run(
                Some(&s),
                &canary(if t % 2 == 0 { 10 } else { 50 }, 0),
                30 + t,
            );
        }
        let kept = weights(&s, 2);
        assert_eq!(kept.len(), MAX_WEIGHT_CHANGES);
        assert_eq!(kept.last().unwrap().1, at(79));
    }

    #[test]
    fn the_status_records_the_plan_and_its_conditions() {
        let plan = Plan {
            current: Some(1),
            replicas: BTreeMap::from([(1, 2), (2, 0)]),
            ..stable_plan()
        };
        let ready = BTreeMap::from([(1, 1), (3, 5)]);
        let status = status(None, Some(4), &plan, &ready, "e".into(), None, &at(0));
        assert_eq!(status.observed_generation, Some(4));
        assert_eq!((status.canary_weight, status.canary_step), (Some(0), None));
        assert_eq!(status.ready_replicas, Some(1), "only kept revisions count");
        assert!(status.conditions.is_true(types::READY));
        assert!(status.conditions.is_true(types::DEGRADED), "1 of 2 ready");
        assert!(!status.conditions.is_true(types::PROGRESSING));
        // Replicas still to come: under way for kstatus.
        assert_eq!(
            status.conditions.get(types::RECONCILING).unwrap().message,
            "1 of 2 serving replicas ready"
        );
        assert!(status.conditions.get(types::ROLLED_BACK).is_none());
    }

    #[test]
    fn a_held_canary_is_stalled_not_progressing_nor_reconciling() {
        let held =
            "canary revision 2 is held at step 0: Monitor guard gave no Pass or Fail for 20s";
        let plan = Plan {
            canary: Some(CanaryPosition {
                revision: 2,
                step: 0,
                weight: 50,
            }),
            held: Some(held.to_owned()),
            ..stable_plan()
        };
        let ready = BTreeMap::from([(1, 2)]);
        let status = status(None, Some(2), &plan, &ready, "e".into(), None, &at(0));
        let conditions = &status.conditions;
        let stalled = conditions.get(types::STALLED).unwrap();
        assert_eq!(stalled.status, "True");
        assert_eq!(stalled.reason, reasons::ANALYSIS_INCONCLUSIVE_TIMEOUT);
        assert_eq!(stalled.message, held);
        let progressing = conditions.get(types::PROGRESSING).unwrap();
        assert_eq!(progressing.status, "False");
        assert_eq!(progressing.reason, reasons::ANALYSIS_INCONCLUSIVE_TIMEOUT);
        assert!(conditions.get(types::RECONCILING).is_none());
        let released = Plan { held: None, ..plan };
        let status = status_of(&status, &released);
        assert!(status.conditions.get(types::STALLED).is_none());
        assert!(status.conditions.is_true(types::RECONCILING));
    }

    fn status_of(previous: &ModelDeploymentStatus, plan: &Plan) -> ModelDeploymentStatus {
        let ready = BTreeMap::from([(1, 2)]);
        status(
            Some(previous),
            Some(2),
            plan,
            &ready,
            "e".into(),
            None,
            &at(5),
        )
    }

    #[test]
    fn a_canary_aborted_by_timeout_is_rolled_back_for_that_reason() {
        let mut conditions = Conditions::default();
        let aborted = RolledBack {
            revision: 2,
            message: "no verdict for 20s".into(),
            reason: reasons::ANALYSIS_INCONCLUSIVE_TIMEOUT,
        };
        record_rollback(&mut conditions, Some(&aborted), Some(2), &at(0));
        let condition = conditions.get(types::ROLLED_BACK).unwrap();
        assert_eq!(condition.reason, reasons::ANALYSIS_INCONCLUSIVE_TIMEOUT);
    }

    #[test]
    fn the_rollback_message_of_the_moment_is_kept_and_cleared_when_over() {
        let mut conditions = Conditions::default();
        let now = at(0);
        let first = RolledBack {
            revision: 2,
            message: "failed Monitor guard (AccuracyBelowMinimum)".into(),
            reason: reasons::ANALYSIS_FAILED,
        };
        record_rollback(&mut conditions, Some(&first), Some(2), &now);
        let later = RolledBack {
            message: reasons::ANALYSIS_FAILED.into(),
            ..first.clone()
        };
        record_rollback(&mut conditions, Some(&later), Some(2), &at(5));
        let condition = conditions.get(types::ROLLED_BACK).unwrap();
        assert!(condition.message.contains("guard"), "{}", condition.message);
        record_rollback(&mut conditions, None, Some(3), &at(9));
        let condition = conditions.get(types::ROLLED_BACK).unwrap();
        assert_eq!(
            (condition.status.as_str(), condition.reason.as_str()),
            ("False", reasons::RECONCILED)
        );
        let mut never = Conditions::default();
        record_rollback(&mut never, None, Some(3), &at(9));
        assert!(never.is_empty());
    }

    #[test]
    fn a_rolled_back_request_is_stalled_for_gitops_tools_while_the_old_model_serves() {
        let plan = Plan {
            rolled_back: Some(RolledBack {
                revision: 2,
                message: "failed Monitor guard (AccuracyBelowMinimum)".into(),
                reason: reasons::ANALYSIS_FAILED,
            }),
            ..stable_plan()
        };
        let s = status(
            None,
            Some(2),
            &plan,
            &BTreeMap::from([(1, 2)]),
            "e".into(),
            None,
            &at(5),
        );
        // Ready (revision 1 serves), but kstatus reads Failed and Argo CD Degraded.
        assert!(s.conditions.is_true(types::READY));
        assert!(s.conditions.is_true(types::ROLLED_BACK));
        assert!(!s.conditions.is_true(types::RECONCILING));
        let stalled = s.conditions.get(types::STALLED).unwrap();
        assert_eq!(stalled.status, "True");
        assert_eq!(stalled.reason, reasons::ANALYSIS_FAILED);
        assert!(
            stalled.message.contains("revision 2")
                && stalled.message.contains("revision 1 serves instead"),
            "{}",
            stalled.message
        );
        // A new model asked for: no longer stalled.
        let s = status(
            Some(&s),
            Some(3),
            &stable_plan(),
            &BTreeMap::from([(1, 2)]),
            "e".into(),
            None,
            &at(9),
        );
        assert!(!s.conditions.is_true(types::STALLED));
    }

    #[test]
    fn a_failed_training_job_stalls_at_once() {
        let unresolved = Some((
            reasons::REFERENCE_FAILED,
            "spec.model.trainingJobRef: TrainingJob a/x failed".to_owned(),
        ));
        let s = status(
            None,
            Some(1),
            &Plan::default(),
            &BTreeMap::new(),
            "e".into(),
            unresolved,
            &at(1),
        );
        assert!(s.conditions.is_true(types::STALLED));
        assert!(!s.conditions.is_true(types::RECONCILING));
        assert_eq!(
            s.conditions.get(types::READY).unwrap().reason,
            reasons::REFERENCE_FAILED
        );
    }
}
