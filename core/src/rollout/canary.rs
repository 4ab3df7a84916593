//! The canary: where it stands in the strategy's steps, and what it does in this pass: roll back
//! on a rollback Monitor's Fail, move to its next step (or be promoted after the last) when its
//! pods are ready, its pause is over and its analysis passed, or wait; and, past the analysis'
//! inconclusive timeout (see `inconclusive`), abort, move on or hold as the spec says.

use super::draft::{Draft, Inputs, rollback_failure, seconds_between, set_state};
use super::inconclusive::{
    Clock, abort_inconclusive, hold_inconclusive, inconclusive_clock, tell_promoted_by_timeout,
};
use super::plan::{CanaryPosition, RolledBack, VerdictSeen};
use super::replicas::split_replicas;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use modelops_api::common::parse_duration;
use modelops_api::conditions::reasons;
use modelops_api::modeldeployment::{
    InconclusiveTimeoutAction, ModelDeploymentSpec, RevisionState, StrategyType,
};
use std::time::Duration;

/// One step of a rollout: the canary's share of the replicas, and how long it stays there at
/// least.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Step<'a> {
    pub weight: i32,
    pub pause: Option<&'a str>,
}

/// The steps a new revision goes through. Replace is a canary with one step at full weight, so
/// that both strategies share the gate (ready pods) and the promotion.
pub(super) fn strategy_steps(spec: &ModelDeploymentSpec) -> Vec<Step<'_>> {
    match (spec.strategy.type_, &spec.strategy.canary) {
        (StrategyType::Canary, Some(canary)) => canary
            .steps
            .iter()
            .map(|s| Step {
                weight: s.weight,
                pause: s.pause.as_deref(),
            })
            .collect(),
        _ => vec![Step {
            weight: 100,
            pause: None,
        }],
    }
}

/// The weight at a step index, full weight past the last step.
pub(super) fn weight_at(steps: &[Step], step: i32) -> i32 {
    steps.get(step as usize).map(|s| s.weight).unwrap_or(100)
}

/// The canary's position after this pass, if a canary remains (the first Canary revision).
pub(super) fn canary_position(draft: &Draft, steps: &[Step]) -> Option<CanaryPosition> {
    draft
        .revision_in(RevisionState::Canary)
        .map(|revision| CanaryPosition {
            revision,
            step: draft.step,
            weight: weight_at(steps, draft.step),
        })
}

/// What the canary does in this pass.
#[derive(Debug, PartialEq)]
enum Move<'v> {
    /// A rollback Monitor failed it: it leaves traffic.
    Abort(&'v VerdictSeen),
    /// Its step is done and another follows.
    NextStep,
    /// Its last step is done: it becomes the stable revision.
    Promote,
    /// Its pause (or its analysis' inconclusive timeout) has this many seconds left: look again
    /// then, as no event will say so.
    WaitForPause(f64),
    /// Its pods are not ready or its analysis has not passed: their change triggers a pass.
    Hold,
    /// Its analysis gave no Pass or Fail for the inconclusive timeout: the spec's action applies
    /// (for `promote`, only once the step's other gates, ready pods and pause, are open).
    TimedOut(Clock<'v>),
}

/// Decides and applies the canary's move, if there is a canary. Its step index is clamped to the
/// strategy's steps (the strategy may have changed under it).
pub(super) fn move_canary(draft: &mut Draft, inputs: &Inputs) {
    let Some(index) = draft.position_of(RevisionState::Canary) else {
        return;
    };
    let steps = strategy_steps(inputs.spec);
    draft.step = draft.step.clamp(0, steps.len() as i32 - 1);
    let last = draft.step as usize + 1 == steps.len();
    match decide_move(
        inputs,
        draft.revisions[index].revision,
        &draft.revisions[index].since,
        steps[draft.step as usize],
        last,
    ) {
        Move::Abort(failure) => abort(draft, inputs, index, failure),
        Move::NextStep => next_step(draft, inputs, index, &steps),
        Move::Promote => promote(draft, inputs, index),
        Move::WaitForPause(left) => {
            draft.requeue_after = Some(Duration::from_secs_f64(left.min(30.0) + 0.1));
        }
        Move::Hold => {}
        Move::TimedOut(clock) => match clock.action {
            InconclusiveTimeoutAction::Abort => abort_inconclusive(draft, inputs, index, &clock),
            InconclusiveTimeoutAction::Hold => {
                let step = draft.step;
                hold_inconclusive(draft, index, step, &clock);
            }
            InconclusiveTimeoutAction::Promote if last => {
                promote(draft, inputs, index);
                tell_promoted_by_timeout(draft, index, &clock);
            }
            InconclusiveTimeoutAction::Promote => {
                next_step(draft, inputs, index, &steps);
                tell_promoted_by_timeout(draft, index, &clock);
            }
        },
    }
}

/// The move of a canary `revision` that entered its step `since`, at `step`, the `last` one or
/// not. A rollback Fail wins over everything; otherwise the step ends when all three gates are
/// open: its pods ready, its pause over, its analysis passed. Past the inconclusive timeout,
/// `abort` and `hold` apply at once, and `promote` opens the analysis gate. Before it, the next
/// look is due when the pause or the timeout ends, whichever comes first.
fn decide_move<'v>(
    inputs: &Inputs<'v>,
    revision: i32,
    since: &Time,
    step: Step,
    last: bool,
) -> Move<'v> {
    if let Some(failure) = rollback_failure(inputs.verdicts, revision, since) {
        return Move::Abort(failure);
    }
    let (canary_replicas, _) = split_replicas(inputs.spec.replicas, step.weight);
    let ready = inputs.ready(revision) >= canary_replicas;
    let pause_left = pause_left(step.pause, since, inputs.now);
    let clock = inconclusive_clock(inputs.spec, inputs.verdicts, revision, since, inputs.now);
    let expired = clock.as_ref().filter(|c| c.expired()).map(|c| c.action);
    if matches!(
        expired,
        Some(InconclusiveTimeoutAction::Abort | InconclusiveTimeoutAction::Hold)
    ) {
        return Move::TimedOut(clock.expect("an expired clock"));
    }
    let by_timeout = expired == Some(InconclusiveTimeoutAction::Promote);
    let passed = by_timeout || analysis_passed(inputs.spec, inputs.verdicts, revision, since);
    // Seconds to the end of a timeout still running, if one is (else no bound on the wait).
    let timeout_left = clock
        .as_ref()
        .filter(|c| !c.expired())
        .map_or(f64::INFINITY, |c| c.left);
    match (ready && pause_left <= 0.0 && passed, last) {
        (true, _) if by_timeout => Move::TimedOut(clock.expect("an expired clock")),
        (true, false) => Move::NextStep,
        (true, true) => Move::Promote,
        (false, _) if pause_left > 0.0 => Move::WaitForPause(pause_left.min(timeout_left)),
        (false, _) if timeout_left.is_finite() => Move::WaitForPause(timeout_left),
        (false, _) => Move::Hold,
    }
}

/// Seconds left of a step's pause (zero or less when over; an unparsable pause is none, the
/// CRD's pattern keeps those out).
fn pause_left(pause: Option<&str>, since: &Time, now: &Time) -> f64 {
    pause
        .and_then(|p| parse_duration(p).ok())
        .map(|p| p.as_secs_f64() - seconds_between(since, now))
        .unwrap_or(0.0)
}

/// Whether the analysis Monitor (if the strategy names one) passed the revision since its step
/// began: a verdict from before says nothing about the step's weight.
fn analysis_passed(
    spec: &ModelDeploymentSpec,
    verdicts: &[VerdictSeen],
    revision: i32,
    since: &Time,
) -> bool {
    let analysis = spec
        .strategy
        .canary
        .as_ref()
        .and_then(|c| c.analysis.as_ref());
    match analysis.map(|a| a.monitor_ref.name.as_str()) {
        None => true,
        Some(monitor) => verdicts.iter().any(|v| {
            v.monitor == monitor
                && v.revision == revision
                && v.pass
                && seconds_between(since, &v.time) > 0.0
        }),
    }
}

/// Takes the canary out of traffic for this generation; the stable revision keeps serving.
fn abort(draft: &mut Draft, inputs: &Inputs, index: usize, failure: &VerdictSeen) {
    let canary = &mut draft.revisions[index];
    set_state(
        canary,
        RevisionState::RolledBack,
        reasons::ANALYSIS_FAILED,
        inputs.now,
    );
    canary.generation = inputs.generation;
    let revision = canary.revision;
    let message = format!(
        "canary revision {revision} failed Monitor {} ({}): traffic stays on the stable revision",
        failure.monitor, failure.reason
    );
    draft.rolled_back = Some(RolledBack {
        revision,
        message: message.clone(),
        reason: reasons::ANALYSIS_FAILED,
    });
    draft.tell(true, reasons::ROLLED_BACK, message);
}

/// Moves the canary to its next step, which starts now. Its state and reason stay: only `since`
/// moves, so that the next step's pause and analysis count from here.
fn next_step(draft: &mut Draft, inputs: &Inputs, index: usize, steps: &[Step]) {
    draft.step += 1;
    draft.revisions[index].since = inputs.now.clone();
    // A hold past the inconclusive timeout ends with its step: the next step may be held anew.
    let reason = &mut draft.revisions[index].reason;
    if reason.as_deref() == Some(reasons::ANALYSIS_INCONCLUSIVE_TIMEOUT) {
        *reason = Some(reasons::CANARY_STEP.to_owned());
    }
    let revision = draft.revisions[index].revision;
    let message = format!(
        "revision {revision}: step {} at weight {}",
        draft.step, steps[draft.step as usize].weight
    );
    draft.tell(false, reasons::CANARY_STEP, message);
    // Look again soon: the next step may already be ready (and has no event to trigger a pass).
    draft.requeue_after = Some(Duration::from_secs(1));
}

/// Makes the canary the stable revision; the stable one it replaces is superseded (kept, within
/// the history limit, to roll back to).
fn promote(draft: &mut Draft, inputs: &Inputs, index: usize) {
    for r in draft.revisions.iter_mut() {
        if r.state == RevisionState::Stable {
            set_state(r, RevisionState::Superseded, reasons::REPLACED, inputs.now);
        }
    }
    let canary = &mut draft.revisions[index];
    set_state(canary, RevisionState::Stable, reasons::PROMOTED, inputs.now);
    let message = format!(
        "revision {} is stable and takes all traffic",
        canary.revision
    );
    draft.tell(false, reasons::PROMOTED, message);
}

#[cfg(test)]
mod tests {
    use super::super::draft::testing::*;
    use super::*;

    fn canary_draft(step: i32, since: i64) -> Draft {
        Draft {
            revisions: vec![
                revision(2, RevisionState::Canary, since),
                revision(1, RevisionState::Stable, 0),
            ],
            step,
            ..Default::default()
        }
    }

    #[test]
    fn replace_is_one_step_at_full_weight() {
        let fixture = Fixture::new("");
        let steps = strategy_steps(&fixture.spec);
        assert_eq!(
            steps,
            [Step {
                weight: 100,
                pause: None
            }]
        );
        assert_eq!((weight_at(&steps, 0), weight_at(&steps, 3)), (100, 100));
        let fixture = Fixture::canary();
        let steps = strategy_steps(&fixture.spec);
        assert_eq!(
            steps[0],
            Step {
                weight: 50,
                pause: Some("10s")
            }
        );
        assert_eq!((weight_at(&steps, 0), weight_at(&steps, -1)), (50, 100));
    }

    #[test]
    fn a_pause_counts_from_the_start_of_the_step() {
        assert_eq!(pause_left(Some("10s"), &at(0), &at(4)), 6.0);
        assert_eq!(pause_left(Some("10s"), &at(0), &at(14)), -4.0);
        assert_eq!(pause_left(None, &at(0), &at(4)), 0.0);
    }

    #[test]
    fn only_a_pass_of_the_analysis_monitor_after_the_step_began_counts() {
        let fixture = Fixture::canary();
        let pass = |time| verdict(2, true, true, time);
        assert!(!analysis_passed(&fixture.spec, &[pass(10)], 2, &at(10)));
        assert!(analysis_passed(&fixture.spec, &[pass(11)], 2, &at(10)));
        let other = VerdictSeen {
            monitor: "other".into(),
            ..pass(11)
        };
        assert!(!analysis_passed(&fixture.spec, &[other], 2, &at(10)));
        let replace = Fixture::new("");
        assert!(
            analysis_passed(&replace.spec, &[], 2, &at(10)),
            "no analysis"
        );
    }

    /// The move at the first step (50%, paused 10s) of a canary that began it at 0.
    fn decide(fixture: &Fixture, last: bool) -> Move<'_> {
        let step = Step {
            weight: 50,
            pause: Some("10s"),
        };
        decide_move(&fixture.inputs(), 2, &at(0), step, last)
    }

    #[test]
    fn a_step_waits_for_its_pause_then_for_ready_pods_and_a_pass() {
        let mut fixture = Fixture::canary().at(5).ready(2, 1);
        fixture.verdicts = vec![verdict(2, true, true, 5)];
        assert_eq!(decide(&fixture, false), Move::WaitForPause(5.0));
        let fixture = fixture.at(10);
        assert_eq!(decide(&fixture, false), Move::NextStep);
        assert_eq!(decide(&fixture, true), Move::Promote);
        let unready = Fixture {
            verdicts: fixture.verdicts.clone(),
            ..Fixture::canary().at(10)
        };
        assert_eq!(decide(&unready, false), Move::Hold);
        let unpassed = Fixture::canary().at(10).ready(2, 1);
        assert_eq!(decide(&unpassed, false), Move::Hold);
    }

    #[test]
    fn a_rollback_fail_aborts_the_canary_for_the_generation() {
        let mut fixture = Fixture::canary().at(3).ready(2, 1);
        fixture.generation = Some(7);
        fixture.verdicts = vec![verdict(2, false, true, 2)];
        let mut draft = canary_draft(0, 1);
        move_canary(&mut draft, &fixture.inputs());
        let aborted = &draft.revisions[0];
        assert_eq!(aborted.state, RevisionState::RolledBack);
        assert_eq!(aborted.reason.as_deref(), Some(reasons::ANALYSIS_FAILED));
        assert_eq!(aborted.generation, Some(7));
        assert_eq!(draft.rolled_back.as_ref().map(|r| r.revision), Some(2));
        assert_eq!(draft.notices[0].reason, reasons::ROLLED_BACK);
        assert_eq!(
            canary_position(&draft, &strategy_steps(&fixture.spec)),
            None
        );
    }

    #[test]
    fn an_alert_fail_only_holds_the_canary() {
        let mut fixture = Fixture::canary().at(30).ready(2, 1);
        fixture.verdicts = vec![verdict(2, false, false, 20)];
        let mut draft = canary_draft(0, 0);
        move_canary(&mut draft, &fixture.inputs());
        assert_eq!(draft.revisions[0].state, RevisionState::Canary);
        assert!(draft.rolled_back.is_none() && draft.requeue_after.is_none());
    }

    #[test]
    fn a_finished_step_moves_on_and_restarts_the_clock() {
        let mut fixture = Fixture::canary().at(20).ready(2, 1);
        fixture.verdicts = vec![verdict(2, true, true, 15)];
        let mut draft = canary_draft(0, 0);
        move_canary(&mut draft, &fixture.inputs());
        assert_eq!(draft.revisions[0].since, at(20));
        assert_eq!(draft.requeue_after, Some(Duration::from_secs(1)));
        let position = canary_position(&draft, &strategy_steps(&fixture.spec));
        let (revision, step, weight) = (2, 1, 100);
        assert_eq!(
            position,
            Some(CanaryPosition {
                revision,
                step,
                weight
            })
        );
        assert_eq!(draft.notices[0].reason, reasons::CANARY_STEP);
    }

    #[test]
    fn the_last_step_promotes_the_canary_and_supersedes_the_stable_revision() {
        let mut fixture = Fixture::canary().at(20).ready(2, 2);
        fixture.verdicts = vec![verdict(2, true, true, 15)];
        // Step 5 of two steps: the strategy shrank under the canary, so it is at its last step.
        let mut draft = canary_draft(5, 0);
        move_canary(&mut draft, &fixture.inputs());
        assert_eq!(draft.step, 1);
        let states: Vec<_> = draft.revisions.iter().map(|r| r.state).collect();
        assert_eq!(states, [RevisionState::Stable, RevisionState::Superseded]);
        assert_eq!(
            draft.revisions[0].reason.as_deref(),
            Some(reasons::PROMOTED)
        );
        assert_eq!(
            draft.revisions[1].reason.as_deref(),
            Some(reasons::REPLACED)
        );
        assert_eq!(draft.notices[0].reason, reasons::PROMOTED);
    }

    /// Steps of 50% then 100% (no pause), gated by `guard` with a 20s inconclusive timeout and
    /// the given `onInconclusiveTimeout` (none: the default).
    fn timed(action: Option<&str>) -> Fixture {
        let action = action.map_or(String::new(), |a| format!(", onInconclusiveTimeout: {a}"));
        Fixture::new(&format!(
            "  strategy: {{type: Canary, canary: {{steps: [{{weight: 50}}, {{weight: 100}}], \
             analysis: {{monitorRef: {{name: guard}}, inconclusiveTimeout: 20s{action}}}}}}}\n"
        ))
    }

    /// The move at the first step (50%, no pause) of a canary that began it at 0, `last` or not.
    fn decide_timed(fixture: &Fixture, last: bool) -> Move<'_> {
        let step = Step {
            weight: 50,
            pause: None,
        };
        decide_move(&fixture.inputs(), 2, &at(0), step, last)
    }

    /// The action a decided move takes, or the move itself when it is no timeout.
    fn timed_out(decided: Move) -> Result<InconclusiveTimeoutAction, String> {
        match decided {
            Move::TimedOut(clock) => Ok(clock.action),
            other => Err(format!("{other:?}")),
        }
    }

    #[test]
    fn an_inconclusive_analysis_times_out_into_the_spec_action() {
        use InconclusiveTimeoutAction::*;
        // (onInconclusiveTimeout, seconds since the step began, the move)
        let cases: [(Option<&str>, i64, Result<InconclusiveTimeoutAction, String>); 8] = [
            (None, 19, Err("WaitForPause(1.0)".into())),
            (None, 20, Ok(Abort)),
            (Some("abort"), 21, Ok(Abort)),
            (Some("hold"), 19, Err("WaitForPause(1.0)".into())),
            (Some("hold"), 20, Ok(Hold)),
            (Some("promote"), 19, Err("WaitForPause(1.0)".into())),
            (Some("promote"), 20, Ok(Promote)),
            (Some("promote"), 600, Ok(Promote)),
        ];
        for (action, now, expected) in cases {
            let fixture = timed(action).at(now).ready(2, 1);
            assert_eq!(
                timed_out(decide_timed(&fixture, false)),
                expected,
                "{action:?} at {now}"
            );
        }
    }

    #[test]
    fn a_timed_out_promote_still_waits_for_ready_pods_but_abort_does_not() {
        let unready = timed(Some("promote")).at(30);
        assert_eq!(decide_timed(&unready, false), Move::Hold);
        let unready = timed(None).at(30);
        let abort = timed_out(decide_timed(&unready, false));
        assert_eq!(abort, Ok(InconclusiveTimeoutAction::Abort));
    }

    #[test]
    fn a_pass_or_fail_before_the_timeout_decides_as_without_one() {
        let verdicts = |pass, rollback| vec![verdict(2, pass, rollback, 19)];
        let mut passed = timed(None).at(25).ready(2, 1);
        passed.verdicts = verdicts(true, true);
        assert_eq!(decide_timed(&passed, false), Move::NextStep);
        let mut failed = timed(None).at(25).ready(2, 1);
        failed.verdicts = verdicts(false, true);
        assert!(matches!(decide_timed(&failed, false), Move::Abort(_)));
        let mut alerted = timed(Some("promote")).at(25).ready(2, 1);
        alerted.verdicts = verdicts(false, false);
        assert_eq!(
            decide_timed(&alerted, false),
            Move::Hold,
            "an alert Fail holds"
        );
    }

    #[test]
    fn a_pause_longer_than_the_timeout_is_looked_at_when_the_timeout_ends() {
        let fixture = timed(Some("promote")).at(5).ready(2, 1);
        let step = Step {
            weight: 50,
            pause: Some("1m"),
        };
        let decided = decide_move(&fixture.inputs(), 2, &at(0), step, false);
        assert_eq!(decided, Move::WaitForPause(15.0));
        let fixture = fixture.at(30);
        let decided = decide_move(&fixture.inputs(), 2, &at(0), step, false);
        assert_eq!(
            decided,
            Move::WaitForPause(30.0),
            "promote waits for the pause"
        );
    }

    #[test]
    fn an_abort_by_timeout_rolls_the_canary_back_for_the_generation() {
        let mut fixture = timed(None).at(20).ready(2, 1);
        fixture.generation = Some(7);
        let mut draft = canary_draft(0, 0);
        move_canary(&mut draft, &fixture.inputs());
        let aborted = &draft.revisions[0];
        assert_eq!(aborted.state, RevisionState::RolledBack);
        let reason = Some(reasons::ANALYSIS_INCONCLUSIVE_TIMEOUT);
        assert_eq!(aborted.reason.as_deref(), reason);
        assert_eq!(aborted.generation, Some(7));
        let rolled_back = draft.rolled_back.as_ref().unwrap();
        assert_eq!(rolled_back.reason, reasons::ANALYSIS_INCONCLUSIVE_TIMEOUT);
        assert!(
            rolled_back.message.contains("20s"),
            "{}",
            rolled_back.message
        );
        assert_eq!(draft.notices[0].reason, reasons::ROLLED_BACK);
        assert!(draft.notices[0].warning);
    }

    #[test]
    fn a_promote_by_timeout_moves_on_then_promotes_and_says_why() {
        let fixture = timed(Some("promote")).at(20).ready(2, 1);
        let mut draft = canary_draft(0, 0);
        move_canary(&mut draft, &fixture.inputs());
        assert_eq!((draft.step, draft.revisions[0].since.clone()), (1, at(20)));
        let told: Vec<_> = draft.notices.iter().map(|n| n.reason).collect();
        let timeout = reasons::ANALYSIS_INCONCLUSIVE_TIMEOUT;
        assert_eq!(told, [reasons::CANARY_STEP, timeout]);
        let fixture = timed(Some("promote")).at(40).ready(2, 2);
        let mut draft = Draft {
            notices: Vec::new(),
            ..draft
        };
        move_canary(&mut draft, &fixture.inputs());
        assert_eq!(draft.revisions[0].state, RevisionState::Stable);
        assert_eq!(draft.revisions[0].reason.as_deref(), Some(timeout));
        let told: Vec<_> = draft.notices.iter().map(|n| n.reason).collect();
        assert_eq!(told, [reasons::PROMOTED, timeout]);
    }

    #[test]
    fn a_hold_by_timeout_keeps_the_canary_and_says_so() {
        let fixture = timed(Some("hold")).at(25).ready(2, 1);
        let mut draft = canary_draft(0, 0);
        move_canary(&mut draft, &fixture.inputs());
        assert_eq!(draft.revisions[0].state, RevisionState::Canary);
        assert_eq!(draft.revisions[0].since, at(0));
        assert!(draft.rolled_back.is_none());
        assert!(draft.held.as_deref().unwrap().contains("hold"));
        assert_eq!(
            draft.notices[0].reason,
            reasons::ANALYSIS_INCONCLUSIVE_TIMEOUT
        );
        // A Pass ends the hold: the next step begins, and may be held anew.
        let mut passed = timed(Some("hold")).at(30).ready(2, 1);
        passed.verdicts = vec![verdict(2, true, true, 29)];
        let mut next = Draft {
            notices: Vec::new(),
            held: None,
            ..draft
        };
        move_canary(&mut next, &passed.inputs());
        assert_eq!(next.step, 1);
        assert!(next.held.is_none());
        assert_eq!(
            next.revisions[0].reason.as_deref(),
            Some(reasons::CANARY_STEP)
        );
    }
}
