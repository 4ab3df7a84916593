//! Pure: the revisions of a ModelDeployment and the replicas of each, from the spec, the model it
//! names, what its Deployments report, and the verdicts of the Monitors that watch it.
//!
//! - Each distinct model (digest plus serving-relevant spec, hashed) is a revision. The first one
//!   becomes Stable at once; each later one rolls out as a Canary (Replace is a canary with one
//!   step at full weight) and is promoted when its steps end: ready, paused, analysis passed.
//! - Traffic follows the replica ratio: one Service spans every revision's pods. During a step of
//!   weight w the canary runs `max(1, ceil(replicas·w/100))` pods and the stable revision the rest
//!   (never fewer than one, so that a failed canary never leaves nothing to serve).
//! - A Fail verdict on the canary aborts it (RolledBack, no pods); a Fail on the stable revision
//!   after its promotion brings back the newest Superseded revision. A rolled-back revision stays
//!   so until the spec's generation changes. The spec is never written: this is all status and
//!   child objects, which GitOps tools do not reconcile.
//!
//! [`plan`] is a pipeline of steps, each in the module of its idea, each deciding one thing on
//! the revisions as the steps before it left them: admit the target, abandon stale canaries, fail
//! revisions that never became ready, move the canary, guard the stable revision, then derive the
//! position, the replicas and the history.

use super::draft::{Draft, Inputs};
use super::{canary, failed, guard, replicas, target};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use modelops_api::modeldeployment::{
    ModelDeploymentSpec, ModelDeploymentStatus, RevisionState, RevisionStatus,
};
use std::collections::BTreeMap;

pub use super::replicas::split_replicas;

/// The model the spec asks for, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredModel {
    /// `sha256:<hex>` of the weights.
    pub digest: String,
    /// The TrainingJob it came from, if any.
    pub training_job: Option<String>,
    /// Hash of the digest and the serving-relevant spec.
    pub spec_hash: String,
}

/// A Monitor's latest verdict about one revision.
#[derive(Debug, Clone, PartialEq)]
pub struct VerdictSeen {
    /// The Monitor.
    pub monitor: String,
    /// The revision it judged.
    pub revision: i32,
    /// When.
    pub time: Time,
    /// Pass (true) or Fail (false); Inconclusive verdicts are not passed in.
    pub pass: bool,
    /// Whether the Monitor's action is `rollback`. An `alert` Monitor never moves traffic: as a
    /// canary's analysis its Pass still lets a step advance, but its Fail only holds the canary
    /// where it is (and says so in an Event), it does not roll it back.
    pub rollback: bool,
    /// Its reason, for the revision's record.
    pub reason: String,
}

/// What the Deployment of a revision reports.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Observed {
    /// Ready replicas.
    pub ready: i32,
    /// The Deployment gave up (progress deadline exceeded): its pods never became ready.
    pub failed: bool,
}

/// Something a person should be told.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    /// Warning rather than Normal.
    pub warning: bool,
    /// CamelCase reason.
    pub reason: &'static str,
    /// The message.
    pub message: String,
}

/// Where the canary under way stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CanaryPosition {
    /// The canary revision.
    pub revision: i32,
    /// The index of its step in `spec.strategy.canary.steps` (always 0 for Replace, whose only
    /// step is full weight); recorded as `status.canaryStep`.
    pub step: i32,
    /// The percentage of the replicas, hence of the traffic, it takes at that step.
    pub weight: i32,
}

/// A revision rolled back at the current generation.
#[derive(Debug, Clone, PartialEq)]
pub struct RolledBack {
    /// The revision taken out of traffic.
    pub revision: i32,
    /// Why: the Monitor and its reason when the rollback happened in this pass, else the
    /// revision's recorded reason.
    pub message: String,
    /// The reason of the `RolledBack` condition: `AnalysisFailed`, or
    /// `AnalysisInconclusiveTimeout` for a canary aborted without a verdict.
    pub reason: &'static str,
}

/// The outcome of planning.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Revisions kept, newest first.
    pub revisions: Vec<RevisionStatus>,
    /// Desired replicas of every kept revision's Deployment.
    pub replicas: BTreeMap<i32, i32>,
    /// The revision the spec asks for.
    pub current: Option<i32>,
    /// The stable revision.
    pub stable: Option<i32>,
    /// The canary under way, its step and weight.
    pub canary: Option<CanaryPosition>,
    /// The revision rolled back at this generation, with why.
    pub rolled_back: Option<RolledBack>,
    /// Things to tell.
    pub notices: Vec<Notice>,
    /// When to look again without a change (a pause or an inconclusive timeout ending).
    pub requeue_after: Option<std::time::Duration>,
    /// Why the canary is held past its analysis' inconclusive timeout, if it is (reported as
    /// `Stalled`).
    pub held: Option<String>,
}

/// Plans the revisions. `desired` is None while the model cannot be resolved (then nothing new
/// rolls out, and what serves keeps serving).
pub fn plan(
    spec: &ModelDeploymentSpec,
    generation: Option<i64>,
    current: Option<&ModelDeploymentStatus>,
    desired: Option<&DesiredModel>,
    observed: &BTreeMap<i32, Observed>,
    verdicts: &[VerdictSeen],
    now: &Time,
) -> Plan {
    let inputs = Inputs {
        spec,
        generation,
        observed,
        verdicts,
        now,
    };
    let mut draft = Draft::from_status(current);
    let target = desired.map(|desired| target::admit_target(&mut draft, &inputs, desired));
    draft
        .revisions
        .sort_by_key(|r| std::cmp::Reverse(r.revision));
    target::supersede_abandoned_canaries(&mut draft, &inputs, target);
    failed::fail_revisions_never_ready(&mut draft, &inputs);
    canary::move_canary(&mut draft, &inputs);
    guard::roll_back_failed_stable(&mut draft, &inputs);
    if draft.rolled_back.is_none() {
        draft.rolled_back = guard::rollback_in_force(&draft.revisions, target, generation);
    }
    finish(draft, &inputs, target, current)
}

/// The plan from the decided revisions: the positions of the stable revision and the canary, the
/// replicas they imply, and the history pruned.
fn finish(
    mut draft: Draft,
    inputs: &Inputs,
    target: Option<i32>,
    current: Option<&ModelDeploymentStatus>,
) -> Plan {
    let stable = draft.revision_in(RevisionState::Stable);
    let canary = canary::canary_position(&draft, &canary::strategy_steps(inputs.spec));
    let mut replicas = replicas::assign_replicas(
        &draft.revisions,
        inputs,
        stable,
        canary.as_ref(),
        draft.rolled_back.as_ref(),
    );
    let limit = inputs.spec.revision_history_limit;
    replicas::prune_history(&mut draft.revisions, &mut replicas, target, limit);
    Plan {
        revisions: draft.revisions,
        replicas,
        // With the model unresolved, the spec still asks for what it asked for before.
        current: target.or_else(|| current.and_then(|s| s.current_revision)),
        stable,
        canary,
        rolled_back: draft.rolled_back,
        notices: draft.notices,
        requeue_after: draft.requeue_after,
        held: draft.held,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;
    use modelops_api::conditions::reasons;
    use modelops_api::modeldeployment::{ModelDeployment, StrategyType};

    fn at(seconds: i64) -> Time {
        Time(Timestamp::from_second(1_800_000_000 + seconds).unwrap())
    }

    fn spec(yaml: &str) -> ModelDeploymentSpec {
        let md: ModelDeployment = serde_yaml::from_str(yaml).unwrap();
        md.spec
    }

    fn canary_spec() -> ModelDeploymentSpec {
        spec(
            r#"
apiVersion: modelops.dev/v1alpha1
kind: ModelDeployment
metadata: {name: digits}
spec:
  model: {trainingJobRef: {name: digits}}
  replicas: 2
  strategy:
    type: Canary
    canary:
      steps: [{weight: 50, pause: 10s}, {weight: 100}]
      analysis: {monitorRef: {name: guard}}
"#,
        )
    }

    fn model(n: u8) -> DesiredModel {
        DesiredModel {
            digest: format!("sha256:{n}"),
            training_job: Some(format!("job-{n}")),
            spec_hash: format!("hash-{n}"),
        }
    }

    fn status_of(plan: &Plan) -> ModelDeploymentStatus {
        ModelDeploymentStatus {
            revisions: plan.revisions.clone(),
            canary_step: plan.canary.map(|c| c.step),
            current_revision: plan.current,
            ..Default::default()
        }
    }

    /// The canary `revision` at `step`, of `weight`.
    fn at_step(revision: i32, step: i32, weight: i32) -> Option<CanaryPosition> {
        Some(CanaryPosition {
            revision,
            step,
            weight,
        })
    }

    fn ready(pairs: &[(i32, i32)]) -> BTreeMap<i32, Observed> {
        pairs
            .iter()
            .map(|(r, n)| {
                (
                    *r,
                    Observed {
                        ready: *n,
                        failed: false,
                    },
                )
            })
            .collect()
    }

    fn verdict(revision: i32, pass: bool, time: i64) -> VerdictSeen {
        VerdictSeen {
            monitor: "guard".into(),
            revision,
            time: at(time),
            pass,
            rollback: true,
            reason: "AccuracyBelowMinimum".into(),
        }
    }

    #[test]
    fn the_first_revision_is_stable_at_once() {
        let spec = canary_spec();
        let plan = plan(
            &spec,
            Some(1),
            None,
            Some(&model(1)),
            &BTreeMap::new(),
            &[],
            &at(0),
        );
        assert_eq!(plan.stable, Some(1));
        assert_eq!(plan.canary, None);
        assert_eq!(plan.replicas[&1], 2);
        assert_eq!(plan.revisions[0].state, RevisionState::Stable);
    }

    #[test]
    fn a_canary_steps_after_its_pause_and_analysis_then_is_promoted() {
        let spec = canary_spec();
        let first = plan(
            &spec,
            Some(1),
            None,
            Some(&model(1)),
            &ready(&[(1, 2)]),
            &[],
            &at(0),
        );
        // A new model: revision 2 is a canary at 50%: one pod each.
        let p = plan(
            &spec,
            Some(2),
            Some(&status_of(&first)),
            Some(&model(2)),
            &ready(&[(1, 2)]),
            &[],
            &at(100),
        );
        assert_eq!(p.canary, at_step(2, 0, 50));
        assert_eq!((p.replicas[&2], p.replicas[&1]), (1, 1));
        // Ready and passed, but the pause is not over.
        let obs = ready(&[(1, 1), (2, 1)]);
        let p = plan(
            &spec,
            Some(2),
            Some(&status_of(&p)),
            Some(&model(2)),
            &obs,
            &[verdict(2, true, 105)],
            &at(105),
        );
        assert_eq!(p.canary, at_step(2, 0, 50));
        assert!(p.requeue_after.is_some());
        // Pause over and a passing verdict after the step began: next step.
        let p = plan(
            &spec,
            Some(2),
            Some(&status_of(&p)),
            Some(&model(2)),
            &obs,
            &[verdict(2, true, 111)],
            &at(111),
        );
        assert_eq!(p.canary, at_step(2, 1, 100));
        assert_eq!((p.replicas[&2], p.replicas[&1]), (2, 1));
        // The old verdict predates the new step: wait for a fresh one.
        let obs = ready(&[(1, 1), (2, 2)]);
        let p = plan(
            &spec,
            Some(2),
            Some(&status_of(&p)),
            Some(&model(2)),
            &obs,
            &[verdict(2, true, 111)],
            &at(112),
        );
        assert_eq!(p.canary, at_step(2, 1, 100));
        let p = plan(
            &spec,
            Some(2),
            Some(&status_of(&p)),
            Some(&model(2)),
            &obs,
            &[verdict(2, true, 113)],
            &at(113),
        );
        assert_eq!(p.stable, Some(2));
        assert_eq!(p.canary, None);
        assert_eq!((p.replicas[&2], p.replicas[&1]), (2, 0));
        assert_eq!(
            p.revisions.iter().find(|r| r.revision == 1).unwrap().state,
            RevisionState::Superseded
        );
        assert!(p.notices.iter().any(|n| n.reason == reasons::PROMOTED));
    }

    #[test]
    fn a_failing_canary_is_rolled_back_and_stays_so_for_the_generation() {
        let spec = canary_spec();
        let first = plan(
            &spec,
            Some(1),
            None,
            Some(&model(1)),
            &ready(&[(1, 2)]),
            &[],
            &at(0),
        );
        let p = plan(
            &spec,
            Some(2),
            Some(&status_of(&first)),
            Some(&model(2)),
            &ready(&[(1, 2)]),
            &[],
            &at(100),
        );
        let obs = ready(&[(1, 1), (2, 1)]);
        let p = plan(
            &spec,
            Some(2),
            Some(&status_of(&p)),
            Some(&model(2)),
            &obs,
            &[verdict(2, false, 101)],
            &at(101),
        );
        assert_eq!(p.stable, Some(1));
        assert_eq!(p.canary, None);
        assert_eq!(p.replicas[&2], 0);
        assert_eq!(p.replicas[&1], 2);
        assert_eq!(p.rolled_back.as_ref().map(|r| r.revision), Some(2));
        // Same generation, later: not retried.
        let again = plan(
            &spec,
            Some(2),
            Some(&status_of(&p)),
            Some(&model(2)),
            &obs,
            &[],
            &at(200),
        );
        assert_eq!(again.canary, None);
        assert_eq!(again.replicas[&2], 0);
        assert!(again.rolled_back.is_some());
        // A new generation (the user touched the spec): it rolls out again.
        let retried = plan(
            &spec,
            Some(3),
            Some(&status_of(&again)),
            Some(&model(2)),
            &obs,
            &[],
            &at(300),
        );
        assert_eq!(retried.canary.map(|c| c.revision), Some(2));
        assert!(retried.rolled_back.is_none());
    }

    #[test]
    fn an_alert_analysis_holds_a_failing_canary_without_rolling_it_back() {
        let spec = canary_spec();
        let first = plan(
            &spec,
            Some(1),
            None,
            Some(&model(1)),
            &ready(&[(1, 2)]),
            &[],
            &at(0),
        );
        let p = plan(
            &spec,
            Some(2),
            Some(&status_of(&first)),
            Some(&model(2)),
            &ready(&[(1, 2)]),
            &[],
            &at(100),
        );
        let alert = VerdictSeen {
            rollback: false,
            ..verdict(2, false, 120)
        };
        let obs = ready(&[(1, 1), (2, 1)]);
        let p = plan(
            &spec,
            Some(2),
            Some(&status_of(&p)),
            Some(&model(2)),
            &obs,
            &[alert],
            &at(120),
        );
        assert_eq!(p.canary, at_step(2, 0, 50), "held at its step");
        assert!(p.rolled_back.is_none());
    }

    #[test]
    fn a_stable_revision_that_fails_brings_back_the_previous_one() {
        let spec = spec(
            r#"
apiVersion: modelops.dev/v1alpha1
kind: ModelDeployment
metadata: {name: digits}
spec:
  model: {trainingJobRef: {name: digits}}
  replicas: 2
"#,
        );
        let first = plan(
            &spec,
            Some(1),
            None,
            Some(&model(1)),
            &ready(&[(1, 2)]),
            &[],
            &at(0),
        );
        let p = plan(
            &spec,
            Some(2),
            Some(&status_of(&first)),
            Some(&model(2)),
            &ready(&[(1, 2)]),
            &[],
            &at(10),
        );
        assert_eq!(p.canary, at_step(2, 0, 100));
        let p = plan(
            &spec,
            Some(2),
            Some(&status_of(&p)),
            Some(&model(2)),
            &ready(&[(1, 1), (2, 2)]),
            &[],
            &at(20),
        );
        assert_eq!(p.stable, Some(2));
        // An alert Monitor's failure moves nothing.
        let alert = VerdictSeen {
            rollback: false,
            ..verdict(2, false, 30)
        };
        let kept = plan(
            &spec,
            Some(2),
            Some(&status_of(&p)),
            Some(&model(2)),
            &ready(&[(2, 2)]),
            &[alert],
            &at(30),
        );
        assert_eq!(kept.stable, Some(2));
        // A rollback Monitor's failure brings revision 1 back; 2 serves until 1 is ready.
        let p = plan(
            &spec,
            Some(2),
            Some(&status_of(&p)),
            Some(&model(2)),
            &ready(&[(2, 2)]),
            &[verdict(2, false, 30)],
            &at(30),
        );
        assert_eq!(p.stable, Some(1));
        assert_eq!(p.replicas[&1], 2);
        assert_eq!(p.replicas[&2], 2);
        let p = plan(
            &spec,
            Some(2),
            Some(&status_of(&p)),
            Some(&model(2)),
            &ready(&[(1, 1), (2, 2)]),
            &[verdict(2, false, 30)],
            &at(31),
        );
        assert_eq!(p.replicas[&2], 0);
        assert_eq!(
            p.revisions.iter().find(|r| r.revision == 2).unwrap().state,
            RevisionState::RolledBack
        );
    }

    #[test]
    fn history_is_pruned_to_the_limit() {
        let mut spec = canary_spec();
        spec.strategy.type_ = StrategyType::Replace;
        spec.strategy.canary = None;
        spec.revision_history_limit = 1;
        let mut status = None;
        for n in 1..=4u8 {
            let obs: BTreeMap<i32, Observed> = (1..=n as i32)
                .map(|r| {
                    (
                        r,
                        Observed {
                            ready: 2,
                            failed: false,
                        },
                    )
                })
                .collect();
            let first = plan(
                &spec,
                Some(n as i64),
                status.as_ref(),
                Some(&model(n)),
                &obs,
                &[],
                &at(n as i64 * 10),
            );
            let promoted = plan(
                &spec,
                Some(n as i64),
                Some(&status_of(&first)),
                Some(&model(n)),
                &obs,
                &[],
                &at(n as i64 * 10 + 1),
            );
            status = Some(status_of(&promoted));
        }
        let revisions: Vec<i32> = status
            .unwrap()
            .revisions
            .iter()
            .map(|r| r.revision)
            .collect();
        assert_eq!(revisions, [4, 3]);
    }
}
