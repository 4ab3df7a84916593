//! The inconclusive timeout of a canary's analysis (`analysis.inconclusiveTimeout`): a Monitor
//! that never says Pass or Fail (no traffic, labels not yet arrived) would hold a canary forever.
//!
//! The clock starts when the canary's current step began (the revision's `since`, which moves at
//! every step) and runs while the analysis Monitor's latest evaluation gives no Pass or Fail
//! about the canary made since then. Once it passes the timeout, `onInconclusiveTimeout` decides:
//! `abort` (the default) rolls the canary back for the generation, `promote` counts the step as
//! passed (the other gates, ready pods and the pause, still apply), `hold` keeps the canary where
//! it is and reports the rollout stalled. A Pass or Fail stops the clock; the Monitor's verdicts
//! are only read at their latest evaluation, so a verdict that turns back to Inconclusive does not
//! restart it.

use super::draft::{Draft, Inputs, seconds_between, set_state};
use super::plan::{RolledBack, VerdictSeen};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use modelops_api::common::parse_duration;
use modelops_api::conditions::reasons;
use modelops_api::modeldeployment::{
    InconclusiveTimeoutAction, ModelDeploymentSpec, RevisionState,
};

/// The inconclusive timeout of a step under way.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Clock<'a> {
    /// Seconds left before the timeout (zero or less once it passed).
    pub left: f64,
    /// What happens then.
    pub action: InconclusiveTimeoutAction,
    /// The analysis Monitor.
    pub monitor: &'a str,
    /// The timeout as the spec writes it, for messages.
    pub timeout: &'a str,
}

impl Clock<'_> {
    /// Whether the timeout has passed.
    pub fn expired(&self) -> bool {
        self.left <= 0.0
    }

    /// What happened, for the messages of every action.
    fn note(&self) -> String {
        format!(
            "Monitor {} gave no Pass or Fail for {} (analysis.inconclusiveTimeout)",
            self.monitor, self.timeout
        )
    }
}

/// The clock of a canary `revision` whose step began `since`: None without a timeout in the spec
/// (or with an unparsable one, which the CRD's pattern keeps out), and None once the analysis
/// Monitor gave a Pass or Fail about it since the step began (the analysis is conclusive).
pub(super) fn inconclusive_clock<'a>(
    spec: &'a ModelDeploymentSpec,
    verdicts: &[VerdictSeen],
    revision: i32,
    since: &Time,
    now: &Time,
) -> Option<Clock<'a>> {
    let analysis = spec.strategy.canary.as_ref()?.analysis.as_ref()?;
    let timeout = analysis.inconclusive_timeout.as_deref()?;
    let seconds = parse_duration(timeout).ok()?.as_secs_f64();
    let monitor = analysis.monitor_ref.name.as_str();
    let decided = verdicts.iter().any(|v| {
        v.monitor == monitor && v.revision == revision && seconds_between(since, &v.time) >= 0.0
    });
    (!decided).then(|| Clock {
        left: seconds - seconds_between(since, now),
        action: analysis.on_inconclusive_timeout.unwrap_or_default(),
        monitor,
        timeout,
    })
}

/// `abort`: takes the canary (at `index`) out of traffic for this generation, as a failed
/// analysis would; the stable revision keeps serving.
pub(super) fn abort_inconclusive(draft: &mut Draft, inputs: &Inputs, index: usize, clock: &Clock) {
    let canary = &mut draft.revisions[index];
    let reason = reasons::ANALYSIS_INCONCLUSIVE_TIMEOUT;
    set_state(canary, RevisionState::RolledBack, reason, inputs.now);
    canary.generation = inputs.generation;
    let revision = canary.revision;
    let message = format!(
        "canary revision {revision} aborted: {} (onInconclusiveTimeout: abort): traffic stays on the stable revision",
        clock.note()
    );
    draft.rolled_back = Some(RolledBack {
        revision,
        message: message.clone(),
        reason,
    });
    draft.tell(true, reasons::ROLLED_BACK, message);
}

/// `hold`: the canary (at `index`) stays where it is; the plan says why (the `Stalled` condition)
/// in every pass, and the Event is told once, when the hold begins: the canary's reason records
/// that it is held (its `since`, the clock, does not move).
pub(super) fn hold_inconclusive(draft: &mut Draft, index: usize, step: i32, clock: &Clock) {
    let canary = &mut draft.revisions[index];
    let message = format!(
        "canary revision {} is held at step {step}: {} and onInconclusiveTimeout is hold; get the \
         Monitor a verdict (traffic, labels), or change the spec (onInconclusiveTimeout: abort or \
         promote, or another model)",
        canary.revision,
        clock.note()
    );
    let reason = reasons::ANALYSIS_INCONCLUSIVE_TIMEOUT;
    let newly = canary.reason.as_deref() != Some(reason);
    canary.reason = Some(reason.to_owned());
    if newly {
        draft.tell(true, reason, message.clone());
    }
    draft.held = Some(message);
}

/// `promote`: tells that the step (and the promotion after the last one) happened by timeout;
/// the move itself is the ordinary one. A promoted revision records the timeout as its reason.
pub(super) fn tell_promoted_by_timeout(draft: &mut Draft, index: usize, clock: &Clock) {
    let canary = &mut draft.revisions[index];
    let revision = canary.revision;
    if canary.state == RevisionState::Stable {
        canary.reason = Some(reasons::ANALYSIS_INCONCLUSIVE_TIMEOUT.to_owned());
    }
    let message = format!(
        "canary revision {revision} moved on without a verdict: {} (onInconclusiveTimeout: promote)",
        clock.note()
    );
    draft.tell(false, reasons::ANALYSIS_INCONCLUSIVE_TIMEOUT, message);
}

#[cfg(test)]
mod tests {
    use super::super::draft::testing::*;
    use super::*;
    use InconclusiveTimeoutAction::*;

    /// The canary fixture, its analysis with `extra` (YAML flow members, may be empty).
    fn timed(extra: &str) -> Fixture {
        Fixture::new(&format!(
            "  strategy: {{type: Canary, canary: {{steps: [{{weight: 50}}, {{weight: 100}}], \
             analysis: {{monitorRef: {{name: guard}}{extra}}}}}}}\n"
        ))
    }

    #[test]
    fn the_clock_counts_from_the_start_of_the_step_with_abort_by_default() {
        let fixture = timed(", inconclusiveTimeout: 20s").at(25);
        let cases = [(10, 5.0), (5, 0.0), (4, -1.0)];
        for (since, left) in cases {
            let clock = inconclusive_clock(&fixture.spec, &[], 2, &at(since), &fixture.now);
            let clock = clock.unwrap();
            assert_eq!((clock.left, clock.action), (left, Abort), "since {since}");
            assert_eq!(clock.expired(), left <= 0.0, "since {since}");
        }
    }

    #[test]
    fn the_action_is_read_from_the_spec() {
        for (text, action) in [("abort", Abort), ("promote", Promote), ("hold", Hold)] {
            let extra = format!(", inconclusiveTimeout: 1m, onInconclusiveTimeout: {text}");
            let fixture = timed(&extra);
            let clock = inconclusive_clock(&fixture.spec, &[], 2, &at(0), &at(60)).unwrap();
            assert_eq!(
                (clock.action, clock.timeout, clock.left),
                (action, "1m", 0.0)
            );
        }
    }

    #[test]
    fn no_timeout_or_a_verdict_since_the_step_began_stops_no_clock() {
        let plain = timed("");
        assert_eq!(
            inconclusive_clock(&plain.spec, &[], 2, &at(0), &at(99)),
            None
        );
        let fixture = timed(", inconclusiveTimeout: 20s");
        let clock = |verdicts: &[VerdictSeen]| {
            inconclusive_clock(&fixture.spec, verdicts, 2, &at(10), &at(40)).is_some()
        };
        assert!(!clock(&[verdict(2, true, true, 10)]), "a Pass");
        assert!(!clock(&[verdict(2, false, false, 30)]), "an alert Fail");
        assert!(
            clock(&[verdict(2, true, true, 9)]),
            "a Pass of the step before"
        );
        assert!(
            clock(&[verdict(1, true, true, 30)]),
            "about the stable revision"
        );
        let other = VerdictSeen {
            monitor: "other".into(),
            ..verdict(2, true, true, 30)
        };
        assert!(clock(&[other]), "another Monitor");
    }

    #[test]
    fn a_hold_is_told_once_and_said_in_every_pass() {
        let fixture = timed(", inconclusiveTimeout: 20s, onInconclusiveTimeout: hold");
        let clock = inconclusive_clock(&fixture.spec, &[], 2, &at(0), &at(30)).unwrap();
        let mut draft = Draft {
            revisions: vec![revision(2, RevisionState::Canary, 0)],
            ..Default::default()
        };
        hold_inconclusive(&mut draft, 0, 0, &clock);
        let again = draft.revisions.clone();
        let mut next = Draft {
            revisions: again,
            ..Default::default()
        };
        hold_inconclusive(&mut next, 0, 0, &clock);
        assert_eq!(draft.notices.len(), 1);
        assert!(next.notices.is_empty());
        let held = next.held.unwrap();
        assert!(held.contains("20s") && held.contains("guard"), "{held}");
        assert_eq!(next.revisions[0].since, at(0), "the clock does not move");
        assert_eq!(next.revisions[0].state, RevisionState::Canary);
    }
}
