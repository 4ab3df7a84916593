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
