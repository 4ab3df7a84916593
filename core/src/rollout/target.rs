//! The target: the revision the spec asks for. A model seen for the first time becomes a new
//! revision; one seen before is rolled out again when that is due; a canary of any other model
//! is abandoned.

use super::draft::{Draft, Inputs, set_state};
use super::plan::DesiredModel;
use modelops_api::conditions::reasons;
use modelops_api::modeldeployment::{RevisionState, RevisionStatus};

/// Finds or makes the revision of the desired model and returns its number. A new or retried
/// revision starts at the canary's first step.
pub(super) fn admit_target(draft: &mut Draft, inputs: &Inputs, desired: &DesiredModel) -> i32 {
    // Decided before anything changes: whether the target arrives next to a stable revision.
    let state = entry_state(draft.position_of(RevisionState::Stable).is_some());
    let known = draft
        .revisions
        .iter()
        .position(|r| r.spec_hash.as_deref() == Some(&desired.spec_hash));
    match known {
        None => add_revision(draft, inputs, desired, state),
        Some(index) => {
            if may_roll_out_again(&draft.revisions[index], inputs.generation) {
                roll_out_again(draft, inputs, index, state);
            }
            draft.revisions[index].revision
        }
    }
}

/// The state a revision rolls out in: the first one serves at once (there is nothing to compare
/// it with), every later one is a canary next to the stable revision.
fn entry_state(stable_exists: bool) -> RevisionState {
    if stable_exists {
        RevisionState::Canary
    } else {
        RevisionState::Stable
    }
}

/// Whether a known revision the spec asks for again rolls out again. A rolled-back or failed one
/// stays so for the generation that saw it fail: only a change of the spec retries it.
fn may_roll_out_again(revision: &RevisionStatus, generation: Option<i64>) -> bool {
    match revision.state {
        RevisionState::Stable | RevisionState::Canary => false,
        RevisionState::RolledBack | RevisionState::Failed => revision.generation < generation,
        RevisionState::Superseded => true,
    }
}

/// Records the desired model as a new revision, numbered after the highest one known.
fn add_revision(
    draft: &mut Draft,
    inputs: &Inputs,
    desired: &DesiredModel,
    state: RevisionState,
) -> i32 {
    let number = draft
        .revisions
        .iter()
        .map(|r| r.revision)
        .max()
        .unwrap_or(0)
        + 1;
    let reason = match state {
        RevisionState::Stable => reasons::FIRST_REVISION,
        _ => reasons::NEW_REVISION,
    };
    draft.revisions.push(RevisionStatus {
        revision: number,
        model_digest: desired.digest.clone(),
        training_job: desired.training_job.clone(),
        state,
        since: inputs.now.clone(),
        reason: Some(reason.into()),
        spec_hash: Some(desired.spec_hash.clone()),
        generation: inputs.generation,
        weights: Vec::new(),
    });
    draft.step = 0;
    draft.tell(
        false,
        reasons::NEW_REVISION,
        format!("revision {number} serves model {}", desired.digest),
    );
    number
}

/// Rolls a known revision out again, from the first step, for the current generation.
fn roll_out_again(draft: &mut Draft, inputs: &Inputs, index: usize, state: RevisionState) {
    let revision = &mut draft.revisions[index];
    set_state(revision, state, reasons::ROLLED_OUT_AGAIN, inputs.now);
    revision.generation = inputs.generation;
    let message = format!("revision {} rolls out again", revision.revision);
    draft.step = 0;
    draft.tell(false, reasons::NEW_REVISION, message);
}

/// Abandons every canary that is not the target any more: the spec moved on (or, with no target,
/// the model cannot be resolved, and only what is stable keeps serving).
pub(super) fn supersede_abandoned_canaries(
    draft: &mut Draft,
    inputs: &Inputs,
    target: Option<i32>,
) {
    for r in draft.revisions.iter_mut() {
        if r.state == RevisionState::Canary && Some(r.revision) != target {
            set_state(
                r,
                RevisionState::Superseded,
                reasons::SPEC_CHANGED,
                inputs.now,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::draft::testing::*;
    use super::*;

    fn desired(n: i32) -> DesiredModel {
        DesiredModel {
            digest: format!("sha256:{n}"),
            training_job: None,
            spec_hash: format!("hash-{n}"),
        }
    }

    #[test]
    fn a_new_model_next_to_a_stable_revision_is_a_canary_numbered_after_the_highest() {
        let mut fixture = Fixture::new("").at(50);
        fixture.generation = Some(2);
        let mut draft = Draft {
            revisions: vec![
                revision(1, RevisionState::Stable, 0),
                revision(3, RevisionState::Superseded, 0),
            ],
            step: 4,
            ..Default::default()
        };
        assert_eq!(admit_target(&mut draft, &fixture.inputs(), &desired(9)), 4);
        let added = draft.revisions.last().unwrap();
        assert_eq!(added.state, RevisionState::Canary);
        assert_eq!(added.reason.as_deref(), Some(reasons::NEW_REVISION));
        assert_eq!((added.since.clone(), added.generation), (at(50), Some(2)));
        assert_eq!(draft.step, 0);
        assert_eq!(draft.notices[0].reason, reasons::NEW_REVISION);
    }

    #[test]
    fn the_first_revision_is_stable() {
        let fixture = Fixture::new("");
        let mut draft = Draft::default();
        assert_eq!(admit_target(&mut draft, &fixture.inputs(), &desired(1)), 1);
        assert_eq!(draft.revisions[0].state, RevisionState::Stable);
        assert_eq!(
            draft.revisions[0].reason.as_deref(),
            Some(reasons::FIRST_REVISION)
        );
    }

    #[test]
    fn a_rolled_back_revision_rolls_out_again_only_at_a_later_generation() {
        let mut rolled_back = revision(2, RevisionState::RolledBack, 0);
        rolled_back.generation = Some(2);
        assert!(!may_roll_out_again(&rolled_back, Some(2)));
        assert!(may_roll_out_again(&rolled_back, Some(3)));
        let superseded = revision(2, RevisionState::Superseded, 0);
        assert!(may_roll_out_again(&superseded, Some(1)));
        let canary = revision(2, RevisionState::Canary, 0);
        assert!(!may_roll_out_again(&canary, Some(9)));
    }

    #[test]
    fn a_superseded_revision_asked_for_again_restarts_as_a_canary() {
        let mut fixture = Fixture::new("").at(70);
        fixture.generation = Some(5);
        let mut draft = Draft {
            revisions: vec![
                revision(2, RevisionState::Stable, 0),
                revision(1, RevisionState::Superseded, 0),
            ],
            step: 1,
            ..Default::default()
        };
        assert_eq!(admit_target(&mut draft, &fixture.inputs(), &desired(1)), 1);
        let again = &draft.revisions[1];
        assert_eq!(again.state, RevisionState::Canary);
        assert_eq!(again.reason.as_deref(), Some(reasons::ROLLED_OUT_AGAIN));
        assert_eq!((again.since.clone(), again.generation), (at(70), Some(5)));
        assert_eq!((draft.revisions.len(), draft.step), (2, 0));
    }

    #[test]
    fn a_canary_the_spec_no_longer_asks_for_is_superseded() {
        use RevisionState::*;
        let fixture = Fixture::new("").at(70);
        let mut draft = Draft {
            revisions: vec![
                revision(3, Canary, 0),
                revision(2, Canary, 0),
                revision(1, Stable, 0),
            ],
            ..Default::default()
        };
        supersede_abandoned_canaries(&mut draft, &fixture.inputs(), Some(3));
        let states: Vec<_> = draft.revisions.iter().map(|r| r.state).collect();
        assert_eq!(states, [Canary, Superseded, Stable]);
        assert_eq!(
            draft.revisions[1].reason.as_deref(),
            Some(reasons::SPEC_CHANGED)
        );
    }
}
