//! The guard after promotion: a rollback Monitor's Fail on the stable revision brings back the
//! newest superseded revision before it. A rollback stays visible (the `RolledBack` condition)
//! while the spec, at the same generation, still asks for the rolled-back revision.

use super::draft::{Draft, Inputs, rollback_failure, set_state};
use super::plan::{RolledBack, VerdictSeen};
use modelops_api::conditions::reasons;
use modelops_api::modeldeployment::{RevisionState, RevisionStatus};

/// Rolls the stable revision back if a rollback Monitor failed it since it became stable; says
/// so when there is nothing to roll back to (it then keeps serving: something beats nothing).
pub(super) fn roll_back_failed_stable(draft: &mut Draft, inputs: &Inputs) {
    let Some(index) = draft.position_of(RevisionState::Stable) else {
        return;
    };
    let stable = &draft.revisions[index];
    let Some(failure) = rollback_failure(inputs.verdicts, stable.revision, &stable.since) else {
        return;
    };
    match restorable(&draft.revisions, stable.revision) {
        Some(previous) => restore(draft, inputs, index, previous, failure),
        None => {
            let message = format!(
                "revision {} failed Monitor {} ({}) but no earlier revision is kept to roll back to",
                stable.revision, failure.monitor, failure.reason
            );
            draft.tell(true, reasons::ROLLBACK_IMPOSSIBLE, message);
        }
    }
}

/// The revision to roll back to from `failed`: the newest superseded one before it (the list is
/// newest first).
fn restorable(revisions: &[RevisionStatus], failed: i32) -> Option<usize> {
    revisions
        .iter()
        .position(|r| r.state == RevisionState::Superseded && r.revision < failed)
}

/// Rolls the failed stable revision (at `index`) back for this generation and makes `previous`
/// stable again.
fn restore(
    draft: &mut Draft,
    inputs: &Inputs,
    index: usize,
    previous: usize,
    failure: &VerdictSeen,
) {
    let failed = &mut draft.revisions[index];
    set_state(
        failed,
        RevisionState::RolledBack,
        reasons::MONITOR_FAILED,
        inputs.now,
    );
    failed.generation = inputs.generation;
    let revision = failed.revision;
    let restored = &mut draft.revisions[previous];
    set_state(
        restored,
        RevisionState::Stable,
        reasons::RESTORED_AFTER_ROLLBACK,
        inputs.now,
    );
    let message = format!(
        "revision {revision} failed Monitor {} ({}): traffic is back on revision {}",
        failure.monitor, failure.reason, restored.revision
    );
    draft.rolled_back = Some(RolledBack {
        revision,
        message: message.clone(),
        reason: reasons::ANALYSIS_FAILED,
    });
    draft.tell(true, reasons::ROLLED_BACK, message);
}

/// The rollback still in force when this pass rolled nothing back: the target revision, rolled
/// back at this generation. Its message is its recorded reason (the full message of the moment
/// is kept by the condition, see `status`).
pub(super) fn rollback_in_force(
    revisions: &[RevisionStatus],
    target: Option<i32>,
    generation: Option<i64>,
) -> Option<RolledBack> {
    revisions
        .iter()
        .find(|r| {
            r.state == RevisionState::RolledBack
                && Some(r.revision) == target
                && r.generation == generation
        })
        .map(|r| RolledBack {
            revision: r.revision,
            message: r.reason.clone().unwrap_or_default(),
            reason: condition_reason(r.reason.as_deref()),
        })
}

/// The `RolledBack` condition's reason for a revision rolled back for `recorded`: a canary
/// aborted without a verdict says so, every other rollback followed a Fail.
fn condition_reason(recorded: Option<&str>) -> &'static str {
    match recorded {
        Some(reasons::ANALYSIS_INCONCLUSIVE_TIMEOUT) => reasons::ANALYSIS_INCONCLUSIVE_TIMEOUT,
        _ => reasons::ANALYSIS_FAILED,
    }
}

#[cfg(test)]
mod tests {
    use super::super::draft::testing::*;
    use super::*;

    fn promoted_draft() -> Draft {
        Draft {
            revisions: vec![
                revision(3, RevisionState::Stable, 10),
                revision(2, RevisionState::Superseded, 10),
                revision(1, RevisionState::Superseded, 0),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn a_failed_stable_revision_gives_way_to_the_newest_superseded_one() {
        let mut fixture = Fixture::new("").at(20);
        fixture.generation = Some(4);
        fixture.verdicts = vec![verdict(3, false, true, 15)];
        let mut draft = promoted_draft();
        roll_back_failed_stable(&mut draft, &fixture.inputs());
        let states: Vec<_> = draft.revisions.iter().map(|r| r.state).collect();
        use RevisionState::*;
        assert_eq!(states, [RolledBack, Stable, Superseded]);
        assert_eq!(draft.revisions[0].generation, Some(4));
        assert_eq!(
            draft.revisions[0].reason.as_deref(),
            Some(reasons::MONITOR_FAILED)
        );
        let restored = draft.revisions[1].reason.as_deref();
        assert_eq!(restored, Some(reasons::RESTORED_AFTER_ROLLBACK));
        assert_eq!(draft.rolled_back.as_ref().map(|r| r.revision), Some(3));
        assert_eq!(draft.notices[0].reason, reasons::ROLLED_BACK);
    }

    #[test]
    fn a_fail_from_before_the_promotion_or_of_an_alert_monitor_moves_nothing() {
        let mut fixture = Fixture::new("").at(20);
        fixture.verdicts = vec![verdict(3, false, true, 9), verdict(3, false, false, 15)];
        let mut draft = promoted_draft();
        roll_back_failed_stable(&mut draft, &fixture.inputs());
        assert_eq!(draft, promoted_draft());
    }

    #[test]
    fn with_nothing_to_roll_back_to_the_failed_revision_keeps_serving() {
        let mut fixture = Fixture::new("").at(20);
        fixture.verdicts = vec![verdict(1, false, true, 15)];
        let mut draft = Draft {
            revisions: vec![revision(1, RevisionState::Stable, 10)],
            ..Default::default()
        };
        roll_back_failed_stable(&mut draft, &fixture.inputs());
        assert_eq!(draft.revisions[0].state, RevisionState::Stable);
        assert!(draft.rolled_back.is_none());
        assert_eq!(draft.notices[0].reason, reasons::ROLLBACK_IMPOSSIBLE);
    }

    #[test]
    fn a_rollback_stays_in_force_for_the_target_at_its_generation() {
        let mut rolled_back = revision(2, RevisionState::RolledBack, 0);
        rolled_back.reason = Some(reasons::ANALYSIS_FAILED.into());
        rolled_back.generation = Some(2);
        let revisions = [rolled_back];
        let in_force = rollback_in_force(&revisions, Some(2), Some(2));
        let message = reasons::ANALYSIS_FAILED.to_owned();
        assert_eq!(
            in_force,
            Some(RolledBack {
                revision: 2,
                message,
                reason: reasons::ANALYSIS_FAILED,
            })
        );
        assert_eq!(rollback_in_force(&revisions, Some(2), Some(3)), None);
        assert_eq!(rollback_in_force(&revisions, Some(1), Some(2)), None);
    }
}
