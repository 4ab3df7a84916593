//! Replicas and history. Traffic follows the replica ratio (one Service spans every revision's
//! pods), so a canary's weight is a share of the replicas; revisions out of traffic keep no pods
//! and only the newest `revisionHistoryLimit` of them are kept at all.

use super::draft::Inputs;
use super::plan::{CanaryPosition, RolledBack};
use modelops_api::modeldeployment::{RevisionState, RevisionStatus};
use std::collections::BTreeMap;

/// Canary and stable replicas at a weight: the canary gets `max(1, ceil(replicas·weight/100))`
/// and the stable revision the rest, never fewer than one, so that a failed canary never leaves
/// nothing to serve.
pub fn split_replicas(replicas: i32, weight: i32) -> (i32, i32) {
    let canary = ((replicas as i64 * weight as i64 + 99) / 100).max(1) as i32;
    let stable = (replicas - canary).max(1);
    (canary, stable)
}

/// Desired replicas of every revision's Deployment.
pub(super) fn assign_replicas(
    revisions: &[RevisionStatus],
    inputs: &Inputs,
    stable: Option<i32>,
    canary: Option<&CanaryPosition>,
    rolled_back: Option<&RolledBack>,
) -> BTreeMap<i32, i32> {
    let replicas = inputs.spec.replicas;
    let stable_ready = stable.map(|s| inputs.ready(s)).unwrap_or(0);
    let just_rolled_back = rolled_back.map(|r| r.revision);
    let mut assigned = BTreeMap::new();
    for r in revisions {
        let count = match (r.state, canary) {
            (RevisionState::Stable, Some(c)) => split_replicas(replicas, c.weight).1,
            (RevisionState::Stable, None) => replicas,
            (RevisionState::Canary, Some(c)) => split_replicas(replicas, c.weight).0,
            // A revision just rolled back keeps the pods it has ready until the restored one has
            // a ready pod, so that the switch drops no request.
            (RevisionState::RolledBack, _)
                if stable_ready == 0 && Some(r.revision) == just_rolled_back =>
            {
                inputs.ready(r.revision)
            }
            _ => 0,
        };
        assigned.insert(r.revision, count);
    }
    assigned
}

/// Keeps the revisions in traffic (stable, canary), the target, and the newest
/// `revisionHistoryLimit` others (to roll back to); drops the replicas of the rest, whose
/// Deployments are then deleted.
pub(super) fn prune_history(
    revisions: &mut Vec<RevisionStatus>,
    replicas: &mut BTreeMap<i32, i32>,
    target: Option<i32>,
    limit: i32,
) {
    let mut kept_inactive = 0;
    revisions.retain(|r| {
        let active = matches!(r.state, RevisionState::Stable | RevisionState::Canary)
            || Some(r.revision) == target;
        if active {
            return true;
        }
        kept_inactive += 1;
        kept_inactive <= limit
    });
    replicas.retain(|revision, _| revisions.iter().any(|r| r.revision == *revision));
}

#[cfg(test)]
mod tests {
    use super::super::draft::testing::*;
    use super::*;

    #[test]
    fn replicas_split_by_weight() {
        assert_eq!(split_replicas(2, 10), (1, 1));
        assert_eq!(split_replicas(10, 30), (3, 7));
        assert_eq!(split_replicas(4, 100), (4, 1));
    }

    #[test]
    fn a_canary_and_the_stable_revision_share_the_replicas_and_the_rest_get_none() {
        use RevisionState::*;
        let fixture = Fixture::canary();
        let revisions = [
            revision(3, Canary, 0),
            revision(2, Stable, 0),
            revision(1, Superseded, 0),
        ];
        let canary = CanaryPosition {
            revision: 3,
            step: 0,
            weight: 50,
        };
        let assigned = assign_replicas(&revisions, &fixture.inputs(), Some(2), Some(&canary), None);
        assert_eq!(assigned, BTreeMap::from([(1, 0), (2, 1), (3, 1)]));
        let assigned = assign_replicas(&revisions[1..], &fixture.inputs(), Some(2), None, None);
        assert_eq!(assigned, BTreeMap::from([(1, 0), (2, 2)]));
    }

    #[test]
    fn a_revision_just_rolled_back_serves_until_the_restored_one_is_ready() {
        let fixture = Fixture::new("").ready(2, 2);
        let revisions = [
            revision(2, RevisionState::RolledBack, 0),
            revision(1, RevisionState::Stable, 0),
        ];
        let rolled_back = RolledBack {
            revision: 2,
            message: String::new(),
            reason: modelops_api::conditions::reasons::ANALYSIS_FAILED,
        };
        let inputs = fixture.inputs();
        let assigned = assign_replicas(&revisions, &inputs, Some(1), None, Some(&rolled_back));
        assert_eq!(assigned, BTreeMap::from([(1, 2), (2, 2)]));
        let fixture = fixture.ready(1, 1);
        let inputs = fixture.inputs();
        let assigned = assign_replicas(&revisions, &inputs, Some(1), None, Some(&rolled_back));
        assert_eq!(assigned, BTreeMap::from([(1, 2), (2, 0)]));
    }

    #[test]
    fn history_keeps_the_active_revisions_the_target_and_the_newest_others() {
        use RevisionState::*;
        let mut revisions = vec![
            revision(5, Stable, 0),
            revision(4, Superseded, 0),
            revision(3, RolledBack, 0),
            revision(2, Superseded, 0),
            revision(1, Superseded, 0),
        ];
        let mut replicas: BTreeMap<i32, i32> = (1..=5).map(|r| (r, 0)).collect();
        prune_history(&mut revisions, &mut replicas, Some(3), 1);
        let kept: Vec<_> = revisions.iter().map(|r| r.revision).collect();
        assert_eq!(kept, [5, 4, 3]);
        assert_eq!(replicas.keys().copied().collect::<Vec<_>>(), [3, 4, 5]);
    }
}
