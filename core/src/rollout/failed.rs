//! Revisions that cannot serve: a Deployment that gave up with no ready pod means the model, its
//! digest or the image is broken, so the revision leaves traffic whatever the Monitors say.

use super::draft::{Draft, Inputs, set_state};
use modelops_api::conditions::reasons;
use modelops_api::modeldeployment::RevisionState;

/// Marks Failed every serving revision (stable or canary) whose Deployment passed its progress
/// deadline without a single ready pod. One ready pod is enough to keep it: it can serve.
pub(super) fn fail_revisions_never_ready(draft: &mut Draft, inputs: &Inputs) {
    let mut failed = Vec::new();
    for r in draft.revisions.iter_mut() {
        let serving = matches!(r.state, RevisionState::Canary | RevisionState::Stable);
        let never_ready = inputs
            .observed
            .get(&r.revision)
            .is_some_and(|o| o.failed && o.ready == 0);
        if serving && never_ready {
            set_state(
                r,
                RevisionState::Failed,
                reasons::PROGRESS_DEADLINE_EXCEEDED,
                inputs.now,
            );
            failed.push(r.revision);
        }
    }
    for revision in failed {
        draft.tell(
            true,
            reasons::REVISION_FAILED,
            format!(
                "revision {revision} never became ready (model, digest or image problem): it takes no traffic"
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::draft::testing::*;
    use super::super::plan::Observed;
    use super::*;

    #[test]
    fn a_serving_revision_whose_deployment_gave_up_without_a_ready_pod_fails() {
        use RevisionState::*;
        let mut fixture = Fixture::new("").at(9);
        for (revision, ready) in [(1, 1), (2, 0), (3, 0)] {
            let failed = true;
            fixture
                .observed
                .insert(revision, Observed { ready, failed });
        }
        let mut draft = Draft {
            revisions: vec![
                revision(3, Superseded, 0),
                revision(2, Canary, 0),
                revision(1, Stable, 0),
            ],
            ..Default::default()
        };
        fail_revisions_never_ready(&mut draft, &fixture.inputs());
        let states: Vec<_> = draft.revisions.iter().map(|r| r.state).collect();
        assert_eq!(states, [Superseded, Failed, Stable]);
        assert_eq!(draft.revisions[1].since, at(9));
        assert_eq!(draft.notices.len(), 1);
        assert!(draft.notices[0].warning);
        assert_eq!(draft.notices[0].reason, reasons::REVISION_FAILED);
    }
}
