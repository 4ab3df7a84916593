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

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use modelops_api::common::parse_duration;
use modelops_api::conditions::reasons;
use modelops_api::modeldeployment::{
    ModelDeploymentSpec, ModelDeploymentStatus, RevisionState, RevisionStatus, StrategyType,
};
use std::collections::BTreeMap;

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
    pub canary: Option<(i32, i32, i32)>,
    /// The revision rolled back at this generation, with why.
    pub rolled_back: Option<(i32, String)>,
    /// Things to tell.
    pub notices: Vec<Notice>,
    /// When to look again without a change (a pause ending).
    pub requeue_after: Option<std::time::Duration>,
}

fn seconds_between(from: &Time, to: &Time) -> f64 {
    (to.0.as_millisecond() - from.0.as_millisecond()) as f64 / 1000.0
}

/// Canary and stable replicas at a weight.
pub fn split_replicas(replicas: i32, weight: i32) -> (i32, i32) {
    let canary = ((replicas as i64 * weight as i64 + 99) / 100).max(1) as i32;
    let stable = (replicas - canary).max(1);
    (canary, stable)
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
    let mut plan = Plan::default();
    let mut revisions: Vec<RevisionStatus> =
        current.map(|s| s.revisions.clone()).unwrap_or_default();
    let mut step = current.and_then(|s| s.canary_step).unwrap_or(0);
    let set_state = |r: &mut RevisionStatus, state: RevisionState, reason: &str| {
        r.state = state;
        r.since = now.clone();
        r.reason = Some(reason.to_owned());
    };

    // The target revision: the one whose hash the spec asks for.
    let target = desired.map(|desired| {
        let stable_exists = revisions.iter().any(|r| r.state == RevisionState::Stable);
        match revisions
            .iter()
            .position(|r| r.spec_hash.as_deref() == Some(&desired.spec_hash))
        {
            None => {
                let number = revisions.iter().map(|r| r.revision).max().unwrap_or(0) + 1;
                let (state, reason) = if stable_exists {
                    (RevisionState::Canary, reasons::NEW_REVISION)
                } else {
                    (RevisionState::Stable, reasons::FIRST_REVISION)
                };
                revisions.push(RevisionStatus {
                    revision: number,
                    model_digest: desired.digest.clone(),
                    training_job: desired.training_job.clone(),
                    state,
                    since: now.clone(),
                    reason: Some(reason.into()),
                    spec_hash: Some(desired.spec_hash.clone()),
                    generation,
                });
                step = 0;
                plan.notices.push(Notice {
                    warning: false,
                    reason: reasons::NEW_REVISION,
                    message: format!("revision {number} serves model {}", desired.digest),
                });
                number
            }
            Some(index) => {
                let r = &mut revisions[index];
                let retry = match r.state {
                    RevisionState::Stable | RevisionState::Canary => false,
                    // Rolled back (or failed) at this generation: stays so until the spec changes.
                    RevisionState::RolledBack | RevisionState::Failed => r.generation < generation,
                    RevisionState::Superseded => true,
                };
                if retry {
                    let state = if stable_exists {
                        RevisionState::Canary
                    } else {
                        RevisionState::Stable
                    };
                    set_state(r, state, reasons::ROLLED_OUT_AGAIN);
                    r.generation = generation;
                    step = 0;
                    plan.notices.push(Notice {
                        warning: false,
                        reason: reasons::NEW_REVISION,
                        message: format!("revision {} rolls out again", r.revision),
                    });
                }
                r.revision
            }
        }
    });
    revisions.sort_by_key(|r| std::cmp::Reverse(r.revision));
    plan.current = target.or_else(|| current.and_then(|s| s.current_revision));

    // A canary that is not the target any more (the spec moved on) is abandoned.
    for r in revisions.iter_mut() {
        if r.state == RevisionState::Canary && Some(r.revision) != target {
            set_state(r, RevisionState::Superseded, reasons::SPEC_CHANGED);
        }
    }

    // A revision whose pods never became ready failed.
    for r in revisions.iter_mut() {
        if matches!(r.state, RevisionState::Canary | RevisionState::Stable)
            && observed
                .get(&r.revision)
                .is_some_and(|o| o.failed && o.ready == 0)
        {
            set_state(
                r,
                RevisionState::Failed,
                reasons::PROGRESS_DEADLINE_EXCEEDED,
            );
            plan.notices.push(Notice {
                warning: true,
                reason: reasons::REVISION_FAILED,
                message: format!(
                    "revision {} never became ready (model, digest or image problem): it takes no traffic",
                    r.revision
                ),
            });
        }
    }

    let fail_for = |revision: i32, since: &Time| {
        verdicts.iter().find(|v| {
            v.revision == revision
                && !v.pass
                && v.rollback
                && seconds_between(since, &v.time) >= 0.0
        })
    };
    let analysis = spec
        .strategy
        .canary
        .as_ref()
        .and_then(|c| c.analysis.as_ref())
        .map(|a| a.monitor_ref.name.as_str());

    // The canary: abort on Fail, advance when ready, paused and passed, promote after the last step.
    if let Some(index) = revisions
        .iter()
        .position(|r| r.state == RevisionState::Canary)
    {
        let revision = revisions[index].revision;
        let since = revisions[index].since.clone();
        let steps: Vec<(i32, Option<String>)> = match (spec.strategy.type_, &spec.strategy.canary) {
            (StrategyType::Canary, Some(canary)) => canary
                .steps
                .iter()
                .map(|s| (s.weight, s.pause.clone()))
                .collect(),
            _ => vec![(100, None)],
        };
        step = step.clamp(0, steps.len() as i32 - 1);
        let (weight, pause) = steps[step as usize].clone();
        if let Some(failure) = fail_for(revision, &since) {
            set_state(
                &mut revisions[index],
                RevisionState::RolledBack,
                reasons::ANALYSIS_FAILED,
            );
            revisions[index].generation = generation;
            let message = format!(
                "canary revision {revision} failed Monitor {} ({}): traffic stays on the stable revision",
                failure.monitor, failure.reason
            );
            plan.rolled_back = Some((revision, message.clone()));
            plan.notices.push(Notice {
                warning: true,
                reason: reasons::ROLLED_BACK,
                message,
            });
        } else {
            let (canary_replicas, _) = split_replicas(spec.replicas, weight);
            let ready = observed.get(&revision).map(|o| o.ready).unwrap_or(0) >= canary_replicas;
            let pause_left = pause
                .as_deref()
                .and_then(|p| parse_duration(p).ok())
                .map(|p| p.as_secs_f64() - seconds_between(&since, now))
                .unwrap_or(0.0);
            let passed = match analysis {
                None => true,
                Some(monitor) => verdicts.iter().any(|v| {
                    v.monitor == monitor
                        && v.revision == revision
                        && v.pass
                        // A verdict from before the step began says nothing about it.
                        && seconds_between(&since, &v.time) > 0.0
                }),
            };
            if ready && pause_left <= 0.0 && passed {
                if (step as usize) + 1 < steps.len() {
                    step += 1;
                    revisions[index].since = now.clone();
                    plan.notices.push(Notice {
                        warning: false,
                        reason: reasons::CANARY_STEP,
                        message: format!(
                            "revision {revision}: step {} at weight {}",
                            step, steps[step as usize].0
                        ),
                    });
                    plan.requeue_after = Some(std::time::Duration::from_secs(1));
                } else {
                    for r in revisions.iter_mut() {
                        if r.state == RevisionState::Stable {
                            set_state(r, RevisionState::Superseded, reasons::REPLACED);
                        }
                    }
                    set_state(
                        &mut revisions[index],
                        RevisionState::Stable,
                        reasons::PROMOTED,
                    );
                    plan.notices.push(Notice {
                        warning: false,
                        reason: reasons::PROMOTED,
                        message: format!("revision {revision} is stable and takes all traffic"),
                    });
                }
            } else if pause_left > 0.0 {
                plan.requeue_after = Some(std::time::Duration::from_secs_f64(
                    pause_left.min(30.0) + 0.1,
                ));
            }
        }
    }

    // The guard after promotion: a Fail on the stable revision brings the previous good one back.
    if let Some(index) = revisions
        .iter()
        .position(|r| r.state == RevisionState::Stable)
    {
        let revision = revisions[index].revision;
        let since = revisions[index].since.clone();
        if let Some(failure) = fail_for(revision, &since) {
            let previous = revisions
                .iter()
                .position(|r| r.state == RevisionState::Superseded && r.revision < revision);
            match previous {
                Some(previous) => {
                    let restored = revisions[previous].revision;
                    set_state(&mut revisions[index], RevisionState::RolledBack, reasons::MONITOR_FAILED);
                    revisions[index].generation = generation;
                    set_state(&mut revisions[previous], RevisionState::Stable, reasons::RESTORED_AFTER_ROLLBACK);
                    let message = format!(
                        "revision {revision} failed Monitor {} ({}): traffic is back on revision {restored}",
                        failure.monitor, failure.reason
                    );
                    plan.rolled_back = Some((revision, message.clone()));
                    plan.notices.push(Notice { warning: true, reason: reasons::ROLLED_BACK, message });
                }
                None => plan.notices.push(Notice {
                    warning: true,
                    reason: reasons::ROLLBACK_IMPOSSIBLE,
                    message: format!(
                        "revision {revision} failed Monitor {} ({}) but no earlier revision is kept to roll back to",
                        failure.monitor, failure.reason
                    ),
                }),
            }
        }
    }
    if plan.rolled_back.is_none() {
        // A rollback stays visible while the spec still asks for the rolled-back revision.
        plan.rolled_back = revisions
            .iter()
            .find(|r| {
                r.state == RevisionState::RolledBack
                    && Some(r.revision) == target
                    && r.generation == generation
            })
            .map(|r| (r.revision, r.reason.clone().unwrap_or_default()));
    }

    // Replicas.
    let stable = revisions
        .iter()
        .find(|r| r.state == RevisionState::Stable)
        .map(|r| r.revision);
    let canary = revisions
        .iter()
        .find(|r| r.state == RevisionState::Canary)
        .map(|r| r.revision);
    let weight = match (&spec.strategy.canary, spec.strategy.type_) {
        (Some(c), StrategyType::Canary) => {
            c.steps.get(step as usize).map(|s| s.weight).unwrap_or(100)
        }
        _ => 100,
    };
    let stable_ready = stable
        .and_then(|s| observed.get(&s))
        .map(|o| o.ready)
        .unwrap_or(0);
    for r in &revisions {
        let replicas = match r.state {
            RevisionState::Stable => match canary {
                Some(_) => split_replicas(spec.replicas, weight).1,
                None => spec.replicas,
            },
            RevisionState::Canary => split_replicas(spec.replicas, weight).0,
            // A revision just rolled back keeps serving until the restored one has a ready pod,
            // so that the switch drops no request.
            RevisionState::RolledBack
                if stable_ready == 0
                    && Some(r.revision) == plan.rolled_back.as_ref().map(|(n, _)| *n) =>
            {
                observed.get(&r.revision).map(|o| o.ready).unwrap_or(0)
            }
            _ => 0,
        };
        plan.replicas.insert(r.revision, replicas);
    }
    plan.stable = stable;
    plan.canary = canary.map(|c| (c, step, weight));

    // History: keep the active revisions, the target, and the newest `revisionHistoryLimit` others.
    let mut kept_inactive = 0;
    revisions.retain(|r| {
        let active = matches!(r.state, RevisionState::Stable | RevisionState::Canary)
            || Some(r.revision) == target;
        if active {
            return true;
        }
        kept_inactive += 1;
        kept_inactive <= spec.revision_history_limit
    });
    plan.replicas
        .retain(|revision, _| revisions.iter().any(|r| r.revision == *revision));
    plan.revisions = revisions;
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;
    use modelops_api::modeldeployment::ModelDeployment;

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
            canary_step: plan.canary.map(|c| c.1),
            current_revision: plan.current,
            ..Default::default()
        }
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
        assert_eq!(p.canary, Some((2, 0, 50)));
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
        assert_eq!(p.canary, Some((2, 0, 50)));
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
        assert_eq!(p.canary, Some((2, 1, 100)));
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
        assert_eq!(p.canary, Some((2, 1, 100)));
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
        assert!(p.notices.iter().any(|n| n.reason == "Promoted"));
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
        assert_eq!(p.rolled_back.as_ref().map(|r| r.0), Some(2));
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
        assert_eq!(retried.canary.map(|c| c.0), Some(2));
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
        assert_eq!(p.canary, Some((2, 0, 50)), "held at its step");
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
        assert_eq!(p.canary, Some((2, 0, 100)));
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

    #[test]
    fn replicas_split_by_weight() {
        assert_eq!(split_replicas(2, 10), (1, 1));
        assert_eq!(split_replicas(10, 30), (3, 7));
        assert_eq!(split_replicas(4, 100), (4, 1));
    }
}
