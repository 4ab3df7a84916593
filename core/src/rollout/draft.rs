//! The planner's working state: what it reads (the same for every step) and the plan as the
//! steps build it. Each step of [`super::plan::plan`] takes the draft as the steps before it left
//! it, so the order of the steps is part of the behaviour.

use super::plan::{Notice, Observed, RolledBack, VerdictSeen};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use modelops_api::modeldeployment::{
    ModelDeploymentSpec, ModelDeploymentStatus, RevisionState, RevisionStatus,
};
use std::collections::BTreeMap;
use std::time::Duration;

/// What the planner reads: the spec, what the Deployments and Monitors report, and the time.
pub(super) struct Inputs<'a> {
    pub spec: &'a ModelDeploymentSpec,
    /// The generation of the spec, recorded on the revisions it rolls out or back.
    pub generation: Option<i64>,
    pub observed: &'a BTreeMap<i32, Observed>,
    pub verdicts: &'a [VerdictSeen],
    pub now: &'a Time,
}

impl Inputs<'_> {
    /// Ready pods of a revision's Deployment (none when it has no Deployment yet).
    pub fn ready(&self, revision: i32) -> i32 {
        self.observed.get(&revision).map(|o| o.ready).unwrap_or(0)
    }
}

/// The plan under construction.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Draft {
    /// Every revision known so far (newest first once the target is admitted).
    pub revisions: Vec<RevisionStatus>,
    /// The canary's step index as the status recorded it, then as the steps move it.
    pub step: i32,
    pub notices: Vec<Notice>,
    pub rolled_back: Option<RolledBack>,
    pub requeue_after: Option<Duration>,
    /// Why the canary is held past its analysis' inconclusive timeout (`onInconclusiveTimeout:
    /// hold`), if it is.
    pub held: Option<String>,
}

impl Draft {
    /// Starts from the status of the previous pass (nothing for a new ModelDeployment).
    pub fn from_status(current: Option<&ModelDeploymentStatus>) -> Self {
        Draft {
            revisions: current.map(|s| s.revisions.clone()).unwrap_or_default(),
            step: current.and_then(|s| s.canary_step).unwrap_or(0),
            ..Default::default()
        }
    }

    /// The index of the first revision in a state. There is at most one Stable and one Canary
    /// revision; "first" only makes that assumption harmless if the status says otherwise.
    pub fn position_of(&self, state: RevisionState) -> Option<usize> {
        self.revisions.iter().position(|r| r.state == state)
    }

    /// The number of the first revision in a state.
    pub fn revision_in(&self, state: RevisionState) -> Option<i32> {
        self.position_of(state).map(|i| self.revisions[i].revision)
    }

    pub fn tell(&mut self, warning: bool, reason: &'static str, message: String) {
        self.notices.push(Notice {
            warning,
            reason,
            message,
        });
    }
}

/// Moves a revision to a state, now, for a reason (a constant of `conditions::reasons`).
pub(super) fn set_state(
    revision: &mut RevisionStatus,
    state: RevisionState,
    reason: &'static str,
    now: &Time,
) {
    revision.state = state;
    revision.since = now.clone();
    revision.reason = Some(reason.to_owned());
}

/// Seconds from one time to another (negative when `to` is earlier).
pub(super) fn seconds_between(from: &Time, to: &Time) -> f64 {
    (to.0.as_millisecond() - from.0.as_millisecond()) as f64 / 1000.0
}

/// The first Fail verdict of a rollback Monitor about a revision, given at or after `since` (the
/// moment the revision entered its state: an older Fail was about an earlier rollout of it).
/// Alert Monitors never move traffic, so their verdicts are left out.
pub(super) fn rollback_failure<'v>(
    verdicts: &'v [VerdictSeen],
    revision: i32,
    since: &Time,
) -> Option<&'v VerdictSeen> {
    verdicts.iter().find(|v| {
        v.revision == revision && !v.pass && v.rollback && seconds_between(since, &v.time) >= 0.0
    })
}

#[cfg(test)]
pub(super) mod testing {
    //! Values shared by the tests of the steps.
    use super::*;
    use k8s_openapi::jiff::Timestamp;
    use modelops_api::modeldeployment::ModelDeployment;

    pub fn at(seconds: i64) -> Time {
        Time(Timestamp::from_second(1_800_000_000 + seconds).unwrap())
    }

    pub fn revision(number: i32, state: RevisionState, since: i64) -> RevisionStatus {
        RevisionStatus {
            revision: number,
            model_digest: format!("sha256:{number}"),
            training_job: None,
            state,
            since: at(since),
            reason: None,
            spec_hash: Some(format!("hash-{number}")),
            generation: Some(1),
            weights: Vec::new(),
        }
    }

    pub fn verdict(revision: i32, pass: bool, rollback: bool, time: i64) -> VerdictSeen {
        VerdictSeen {
            monitor: "guard".into(),
            revision,
            time: at(time),
            pass,
            rollback,
            reason: "AccuracyBelowMinimum".into(),
        }
    }

    /// Owns what [`Inputs`] borrows.
    pub struct Fixture {
        pub spec: ModelDeploymentSpec,
        pub generation: Option<i64>,
        pub observed: BTreeMap<i32, Observed>,
        pub verdicts: Vec<VerdictSeen>,
        pub now: Time,
    }

    impl Fixture {
        /// Two replicas, rolled out with the given `strategy:` (YAML flow style, may be empty).
        pub fn new(strategy: &str) -> Self {
            let yaml = format!(
                "apiVersion: modelops.dev/v1alpha1\nkind: ModelDeployment\nmetadata: {{name: digits}}\n\
                 spec:\n  model: {{trainingJobRef: {{name: digits}}}}\n  replicas: 2\n{strategy}"
            );
            let md: ModelDeployment = serde_yaml::from_str(&yaml).unwrap();
            Fixture {
                spec: md.spec,
                generation: Some(1),
                observed: BTreeMap::new(),
                verdicts: Vec::new(),
                now: at(0),
            }
        }

        /// Steps of 50% (paused 10s) then 100%, gated by the Monitor `guard`.
        pub fn canary() -> Self {
            Self::new(
                "  strategy: {type: Canary, canary: {steps: [{weight: 50, pause: 10s}, {weight: 100}], \
                 analysis: {monitorRef: {name: guard}}}}\n",
            )
        }

        pub fn ready(mut self, revision: i32, ready: i32) -> Self {
            self.observed.insert(
                revision,
                Observed {
                    ready,
                    failed: false,
                },
            );
            self
        }

        pub fn at(mut self, seconds: i64) -> Self {
            self.now = at(seconds);
            self
        }

        pub fn inputs(&self) -> Inputs<'_> {
            Inputs {
                spec: &self.spec,
                generation: self.generation,
                observed: &self.observed,
                verdicts: &self.verdicts,
                now: &self.now,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    #[test]
    fn a_rollback_failure_counts_from_the_moment_the_revision_entered_its_state() {
        let verdicts = [verdict(2, false, true, 9), verdict(2, false, true, 10)];
        assert_eq!(
            rollback_failure(&verdicts, 2, &at(10)).map(|v| v.time.clone()),
            Some(at(10))
        );
        assert!(rollback_failure(&verdicts, 2, &at(11)).is_none());
        assert!(rollback_failure(&verdicts, 3, &at(0)).is_none());
    }

    #[test]
    fn alert_failures_and_passes_are_no_rollback_failures() {
        let verdicts = [verdict(2, false, false, 10), verdict(2, true, true, 10)];
        assert!(rollback_failure(&verdicts, 2, &at(0)).is_none());
    }

    #[test]
    fn a_draft_starts_from_the_recorded_status() {
        let status = ModelDeploymentStatus {
            revisions: vec![revision(1, RevisionState::Stable, 0)],
            canary_step: Some(2),
            ..Default::default()
        };
        let draft = Draft::from_status(Some(&status));
        assert_eq!((draft.revisions.len(), draft.step), (1, 2));
        assert_eq!(Draft::from_status(None), Draft::default());
    }
}
