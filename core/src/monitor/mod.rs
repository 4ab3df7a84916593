//! What a Monitor measures and decides, as pure functions that the Monitor controller calls once
//! per `spec.interval`:
//!
//! 1. scrape `/metrics` of every serving pod of the target (all revisions), parse it
//!    ([`modelops_api::serving::parse_metrics`]) and fold it into monotonic per-revision totals
//!    ([`scrape`]);
//! 2. keep those snapshots in a sliding window and take the difference between the newest and a
//!    baseline ([`window`]);
//! 3. measure accuracy, a regression model's rmse and mae ([`errors`]), drift ([`drift`], against
//!    the Dataset profile, [`modelops_api::profile`]), latency and errors, and give each
//!    revision a verdict ([`mod@evaluate`]; accuracy in mode `sequential` by an always-valid test
//!    on every label since the revision started, [`sequential`], rmse and mae by a confidence
//!    sequence, [`errors`]);
//! 4. turn that into the status: conditions, `lastEvaluation`, per-revision verdicts, history
//!    and actions ([`status`]).
//!
//! docs/monitor.md explains the window, the statistics and the verdict rules.

pub mod drift;
pub mod errors;
pub mod evaluate;
pub mod promql;
pub mod scrape;
pub mod sequential;
#[cfg(test)]
mod simulation;
pub mod status;
pub mod window;

pub use evaluate::{Outcome, evaluate, focus_revision, validate};
pub use scrape::{PodScrape, Snapshot};
pub use window::{WindowBounds, WindowDeltas};

use k8s_openapi::jiff::Timestamp;
use scrape::Accumulator;
use window::SlidingWindow;

/// What the controller keeps in memory per Monitor between evaluations: the last counter
/// values of each pod and the window's snapshots. Losing it (an operator restart) costs no
/// correctness: the next scrape starts again from the pods' own counters (see [`window`]).
#[derive(Debug, Default)]
pub struct MonitorState {
    accumulator: Accumulator,
    window: SlidingWindow,
}

/// Every Monitor's [`MonitorState`], by uid. A Monitor is reconciled once per `spec.interval`, so
/// a state not observed within three intervals and a minute belongs to a Monitor that is gone
/// (deleted, or moved to another leader): it is dropped, at most once a minute, so that creating
/// and deleting Monitors cannot make the operator's memory grow. Dropping a live one costs no
/// correctness (see [`MonitorState`]).
#[derive(Debug, Default)]
pub struct MonitorStates {
    states: std::collections::HashMap<String, (MonitorState, Timestamp)>,
    next_prune: Option<Timestamp>,
}

impl MonitorStates {
    /// [`MonitorState::observe`] for the Monitor `uid`, evaluated every `interval`, at `time`.
    pub fn observe(
        &mut self,
        uid: &str,
        interval: std::time::Duration,
        time: Timestamp,
        pods: &[PodScrape],
        bounds: &WindowBounds,
    ) -> WindowDeltas {
        if self.next_prune.is_none_or(|next| time >= next) {
            self.states.retain(|_, (_, expires)| *expires > time);
            self.next_prune = time
                .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(60))
                .ok();
        }
        let keep = k8s_openapi::jiff::SignedDuration::try_from(interval.saturating_mul(3))
            .unwrap_or(k8s_openapi::jiff::SignedDuration::MAX)
            .saturating_add(k8s_openapi::jiff::SignedDuration::from_secs(60));
        let expires = time.checked_add(keep).unwrap_or(Timestamp::MAX);
        let (state, until) = self.states.entry(uid.to_owned()).or_default();
        *until = expires;
        state.observe(time, pods, bounds)
    }

    /// How many Monitors have a state.
    pub fn len(&self) -> usize {
        self.states.len()
    }

    /// Whether no Monitor has a state.
    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }
}

impl MonitorState {
    /// Folds one scrape of every pod of the target (failed scrapes included, as `samples:
    /// None`) into the window and returns the window every revision has now.
    pub fn observe(
        &mut self,
        time: Timestamp,
        pods: &[PodScrape],
        bounds: &WindowBounds,
    ) -> WindowDeltas {
        let snapshot = self.accumulator.observe(time, pods);
        self.window.push(snapshot, bounds);
        self.window.deltas(bounds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use modelops_api::conditions::reasons;
    use modelops_api::monitor::{MonitorSpec, Verdict};
    use modelops_api::serving::parse_metrics;
    use scrape::tests::at;

    /// What a serving pod of `revision` shows after `ok` requests (all predicted `cat`, inputs
    /// in x's first bin) and `correct`/`incorrect` feedbacks.
    fn metrics_text(revision: i32, ok: u64, correct: u64, incorrect: u64) -> String {
        format!(
            r#"modelops_requests_total{{model="m",revision="{revision}",code="200"}} {ok}
modelops_request_duration_seconds_bucket{{model="m",revision="{revision}",le="0.01"}} {ok}
modelops_request_duration_seconds_bucket{{model="m",revision="{revision}",le="+Inf"}} {ok}
modelops_predictions_total{{model="m",revision="{revision}",class="cat"}} {ok}
modelops_input_feature_bin_total{{model="m",revision="{revision}",feature="x",bin="0"}} {ok}
modelops_feedback_total{{model="m",revision="{revision}",result="correct"}} {correct}
modelops_feedback_total{{model="m",revision="{revision}",result="incorrect"}} {incorrect}
"#
        )
    }

    fn pod(name: &str, started: i64, text: String) -> PodScrape {
        PodScrape {
            pod: name.into(),
            started_at: Some(at(started)),
            samples: Some(parse_metrics(&text)),
        }
    }

    fn spec() -> MonitorSpec {
        serde_yaml::from_str(
            r#"
targetRef: {name: m}
window: {samples: 100, maxAge: 10m}
metrics:
  - accuracy: {min: 0.9, minSamples: 20}
  - latency: {p99Max: 100ms}
failureThreshold: 2
"#,
        )
        .unwrap()
    }

    #[test]
    fn scrapes_become_verdicts() {
        let spec = spec();
        let bounds = validate(&spec).unwrap();
        let mut state = MonitorState::default();
        // The operator starts while a pod that started 5 minutes ago has served 50 requests:
        // within maxAge, so its counts are the window at once.
        let deltas = state.observe(
            at(0),
            &[pod("a/0", -300, metrics_text(1, 50, 10, 0))],
            &bounds,
        );
        assert_eq!(deltas.per_revision[&1].totals.requests_total(), 50.0);
        let outcome = evaluate(&spec, &deltas, None, None, None, &Time(at(0)));
        assert_eq!(outcome.focused.reason, reasons::LABELS_PENDING);

        let deltas = state.observe(
            at(30),
            &[pod("a/0", -300, metrics_text(1, 150, 30, 0))],
            &bounds,
        );
        let outcome = evaluate(&spec, &deltas, None, None, None, &Time(at(30)));
        assert_eq!(
            outcome.focused.verdict,
            Verdict::Pass,
            "{}",
            outcome.focused.message
        );

        // A canary (revision 2) starts and answers badly; its pod restarts in between.
        let mut previous = None;
        let mut verdicts = vec![];
        for (second, pod_2) in [
            (60, pod("b/0", 45, metrics_text(2, 40, 5, 15))),
            (90, pod("b/1", 80, metrics_text(2, 10, 2, 3))),
        ] {
            let deltas = state.observe(
                at(second),
                &[pod("a/0", -300, metrics_text(1, 150, 30, 0)), pod_2],
                &bounds,
            );
            let outcome = evaluate(
                &spec,
                &deltas,
                None,
                previous.as_ref(),
                Some(2),
                &Time(at(second)),
            );
            verdicts.push((
                outcome.focused.verdict,
                outcome.focused.values()["accuracy"],
            ));
            previous = Some(status::next_status(
                &spec,
                previous.as_ref(),
                &outcome,
                None,
            ));
        }
        // 5 of 20 right, then 7 of 25 (the restarted pod's 2 and 3 added to 5 and 15).
        assert_eq!(
            verdicts,
            [(Verdict::Inconclusive, 0.25), (Verdict::Fail, 0.28)]
        );
        let status = previous.unwrap();
        assert_eq!(status.revisions.len(), 2);
        assert_eq!(
            status.revisions[1].verdict,
            Verdict::Pass,
            "revision 1 still passes"
        );
    }
}

#[cfg(test)]
mod states_tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_state_of_a_monitor_no_longer_observed_is_dropped() {
        let bounds = WindowBounds::from_spec(&modelops_api::monitor::Window::default()).unwrap();
        let at = |s: i64| Timestamp::from_second(1_700_000_000 + s).unwrap();
        let mut states = MonitorStates::default();
        states.observe("a", Duration::from_secs(10), at(0), &[], &bounds);
        states.observe("b", Duration::from_secs(3600), at(0), &[], &bounds);
        assert_eq!(states.len(), 2);
        // `a` keeps being observed; `b` (hourly) is not due yet.
        for s in (10..=600).step_by(10) {
            states.observe("a", Duration::from_secs(10), at(s), &[], &bounds);
        }
        assert_eq!(states.len(), 2);
        // `a` is deleted: 3 intervals and a minute after its last observation, and the next
        // prune, it is gone; `b` is kept until its own three hours have passed.
        states.observe("b", Duration::from_secs(3600), at(3600), &[], &bounds);
        assert_eq!(states.len(), 1);
        states.observe("c", Duration::from_secs(1), at(3600 * 4), &[], &bounds);
        assert_eq!(states.len(), 2, "b is kept for 3 hours and a minute");
        states.observe("c", Duration::from_secs(1), at(3600 * 5), &[], &bounds);
        assert_eq!(states.len(), 1, "only c is left");
    }
}
