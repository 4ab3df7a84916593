//! The sliding window an evaluation looks at: the difference between the newest [`Snapshot`]
//! of cumulative totals and an older one, the baseline.
//!
//! `spec.window` asks for "the last `samples` requests no older than `maxAge`". Counters only
//! tell how many requests came between two scrapes, not in what order, so the window is made of
//! whole scrape intervals: per revision, the baseline is the newest snapshot that leaves at
//! least `samples` requests in the window, and never one older than `maxAge` (the oldest kept
//! snapshot when none leaves that many). Labelled feedback arrives later than its requests and
//! more sparsely, so it gets its own baseline by the same rule, counting feedbacks: the window
//! then holds the last `samples` labels.
//!
//! Nothing of the window needs to survive an operator restart: the serving pods keep counting,
//! and the first scrape after a restart offers a zero baseline at the start of the oldest pod
//! ([`Snapshot::counting_since`]), so the window reaches back to it at once when that is within
//! `maxAge`, and refills scrape by scrape otherwise.

use super::errors::ErrorSums;
use super::scrape::{RevisionTotals, Snapshot};
use super::sequential::Labels;
use k8s_openapi::jiff::Timestamp;
use modelops_api::common::parse_duration;
use modelops_api::monitor;
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

/// The most snapshots a window keeps. When `maxAge` spans more scrapes than this (a long
/// window scraped often) every other snapshot is dropped, halving the resolution of the
/// baseline rather than growing the memory the operator uses per Monitor.
pub const MAX_SNAPSHOTS: usize = 128;

/// `spec.window`, parsed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WindowBounds {
    /// Requests (and, for accuracy, labelled feedbacks) the window should hold.
    pub samples: f64,
    /// The oldest a baseline may be.
    pub max_age: Duration,
}

impl WindowBounds {
    /// Parses `spec.window`.
    pub fn from_spec(window: &monitor::Window) -> Result<Self, String> {
        let max_age =
            parse_duration(&window.max_age).map_err(|e| format!("spec.window.maxAge: {e}"))?;
        Ok(Self {
            samples: f64::from(window.samples.max(1)),
            max_age,
        })
    }
}

/// What one revision served within the window.
#[derive(Clone, Debug, PartialEq)]
pub struct RevisionWindow {
    /// The baseline of requests, latency, predictions and inputs.
    pub traffic_since: Timestamp,
    /// The baseline of labelled feedback.
    pub feedback_since: Timestamp,
    /// Counts within the window: the feedback counts since `feedback_since`, the rest since
    /// `traffic_since`.
    pub totals: RevisionTotals,
    /// Every labelled feedback counted since the revision's counting started, whatever the
    /// window: a sequential test must see one growing sequence, never one that forgets.
    pub labels_since_start: Labels,
    /// Every regression feedback counted since the revision's counting started, likewise.
    pub errors_since_start: ErrorSums,
}

/// The window of every revision, as an evaluation reads it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WindowDeltas {
    /// The newest scrape, or `None` before the first.
    pub end: Option<Timestamp>,
    /// Revisions with their window; empty until there is a baseline (a second scrape, or a
    /// first one whose counting start is known).
    pub per_revision: BTreeMap<i32, RevisionWindow>,
    /// What a `prometheus` metric's query gave for each revision judged (the controller runs
    /// the queries after the scrape; empty without such a metric).
    pub queries: BTreeMap<i32, crate::monitor::promql::QueryResult>,
}

/// The snapshots a Monitor keeps in memory, oldest first.
#[derive(Clone, Debug, Default)]
pub struct SlidingWindow {
    snapshots: VecDeque<Snapshot>,
}

impl SlidingWindow {
    /// Adds the newest snapshot and drops those no window will use again: older than
    /// `maxAge`, or older than every revision's baseline (a baseline only ever moves forward,
    /// since totals only grow).
    pub fn push(&mut self, snapshot: Snapshot, bounds: &WindowBounds) {
        if self.snapshots.is_empty()
            && let Some(since) = snapshot.counting_since
            && since < snapshot.time
        {
            // The totals count everything since `since`: zero then is a true baseline.
            self.snapshots.push_back(Snapshot {
                time: since,
                counting_since: Some(since),
                per_revision: BTreeMap::new(),
            });
        }
        // A clock that went back replaces the newest rather than breaking the order.
        while self
            .snapshots
            .back()
            .is_some_and(|newest| newest.time >= snapshot.time)
        {
            self.snapshots.pop_back();
        }
        let newest_time = snapshot.time;
        self.snapshots.push_back(snapshot);

        if let Ok(oldest_allowed) = newest_time.checked_sub(bounds.max_age) {
            while self
                .snapshots
                .front()
                .is_some_and(|oldest| oldest.time < oldest_allowed)
            {
                self.snapshots.pop_front();
            }
        }

        let newest = self.snapshots.back().expect("just pushed");
        let still_needed = newest
            .per_revision
            .keys()
            .map(|&revision| {
                self.baseline(revision, bounds.samples, RevisionTotals::requests_total)
                    .min(self.baseline(revision, bounds.samples, RevisionTotals::labels_total))
            })
            .min()
            .unwrap_or(0);
        self.snapshots.drain(..still_needed);

        if self.snapshots.len() > MAX_SNAPSHOTS {
            let last = self.snapshots.len() - 1;
            self.snapshots = std::mem::take(&mut self.snapshots)
                .into_iter()
                .enumerate()
                .filter(|(i, _)| i % 2 == 0 || *i == last)
                .map(|(_, snapshot)| snapshot)
                .collect();
        }
    }

    /// The window of every revision in the newest snapshot.
    pub fn deltas(&self, bounds: &WindowBounds) -> WindowDeltas {
        let Some(newest) = self.snapshots.back() else {
            return WindowDeltas::default();
        };
        let mut deltas = WindowDeltas {
            end: Some(newest.time),
            ..WindowDeltas::default()
        };
        if self.snapshots.len() < 2 {
            return deltas;
        }
        let empty = RevisionTotals::default();
        for (&revision, now) in &newest.per_revision {
            let totals_at = |index: usize| {
                self.snapshots[index]
                    .per_revision
                    .get(&revision)
                    .unwrap_or(&empty)
            };
            let traffic = self.baseline(revision, bounds.samples, RevisionTotals::requests_total);
            let feedback = self.baseline(revision, bounds.samples, RevisionTotals::labels_total);
            let mut totals = now.since(totals_at(traffic));
            let labels = now.since(totals_at(feedback));
            totals.feedback_correct = labels.feedback_correct;
            totals.feedback_incorrect = labels.feedback_incorrect;
            totals.errors = labels.errors;
            deltas.per_revision.insert(
                revision,
                RevisionWindow {
                    traffic_since: self.snapshots[traffic].time,
                    feedback_since: self.snapshots[feedback].time,
                    totals,
                    labels_since_start: Labels {
                        correct: now.feedback_correct,
                        incorrect: now.feedback_incorrect,
                    },
                    errors_since_start: now.errors,
                },
            );
        }
        deltas
    }

    /// Snapshots kept.
    pub fn len(&self) -> usize {
        self.snapshots.len()
    }

    /// Whether no snapshot is kept.
    pub fn is_empty(&self) -> bool {
        self.snapshots.is_empty()
    }

    /// The times of the snapshots kept, oldest first.
    pub fn times(&self) -> impl Iterator<Item = Timestamp> + '_ {
        self.snapshots.iter().map(|s| s.time)
    }

    /// The index of a revision's baseline for one count: the newest snapshot before the newest
    /// that leaves at least `samples` in the window, else the oldest.
    fn baseline(&self, revision: i32, samples: f64, count: fn(&RevisionTotals) -> f64) -> usize {
        let count_at = |index: usize| {
            self.snapshots[index]
                .per_revision
                .get(&revision)
                .map(count)
                .unwrap_or(0.0)
        };
        let Some(newest) = self.snapshots.len().checked_sub(1) else {
            return 0;
        };
        let now = count_at(newest);
        (0..newest)
            .rev()
            .find(|&index| now - count_at(index) >= samples)
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::scrape::tests::at;

    fn bounds(samples: f64, max_age_seconds: u64) -> WindowBounds {
        WindowBounds {
            samples,
            max_age: Duration::from_secs(max_age_seconds),
        }
    }

    /// A snapshot where revision 1 served `requests` requests (all 200) and got `labels`
    /// feedbacks (all correct) in total.
    fn snapshot(second: i64, requests: f64, labels: f64) -> Snapshot {
        let mut totals = RevisionTotals::default();
        totals.requests.insert(200, requests);
        totals.feedback_correct = labels;
        Snapshot {
            time: at(second),
            counting_since: None,
            per_revision: BTreeMap::from([(1, totals)]),
        }
    }

    fn window_of(
        snapshots: impl IntoIterator<Item = Snapshot>,
        bounds: &WindowBounds,
    ) -> SlidingWindow {
        let mut window = SlidingWindow::default();
        for snapshot in snapshots {
            window.push(snapshot, bounds);
        }
        window
    }

    #[test]
    fn bounds_come_from_the_spec() {
        let parsed = WindowBounds::from_spec(&monitor::Window::default()).unwrap();
        assert_eq!(parsed, bounds(1000.0, 3600));
    }

    #[test]
    fn one_snapshot_without_a_known_start_is_no_window_yet() {
        let b = bounds(100.0, 3600);
        let window = window_of([snapshot(0, 50.0, 0.0)], &b);
        let deltas = window.deltas(&b);
        assert_eq!(deltas.end, Some(at(0)));
        assert!(deltas.per_revision.is_empty());
        assert_eq!(SlidingWindow::default().deltas(&b), WindowDeltas::default());
    }

    #[test]
    fn the_window_is_the_fewest_intervals_holding_samples_requests() {
        let b = bounds(100.0, 3600);
        // Totals 0, 60, 130, 170, 260: the last 100 requests need the baseline at 130
        // (170 - 130 = 40 is too few; 260 - 130 = 130 is enough).
        let window = window_of(
            [0, 60, 130, 170, 260]
                .into_iter()
                .enumerate()
                .map(|(i, total)| snapshot(30 * i as i64, total as f64, 0.0)),
            &b,
        );
        let one = &window.deltas(&b).per_revision[&1];
        assert_eq!(one.traffic_since, at(60));
        assert_eq!(one.totals.requests_total(), 130.0);
        // Snapshots before the baseline are never needed again.
        assert_eq!(
            window.times().next(),
            Some(at(0)),
            "feedback still needs it"
        );
    }

    #[test]
    fn feedback_has_its_own_baseline() {
        let b = bounds(10.0, 3600);
        let window = window_of(
            [
                snapshot(0, 0.0, 0.0),
                snapshot(30, 500.0, 4.0),
                snapshot(60, 1000.0, 8.0),
                snapshot(90, 1500.0, 15.0),
            ],
            &b,
        );
        let one = &window.deltas(&b).per_revision[&1];
        assert_eq!(one.traffic_since, at(60));
        assert_eq!(one.totals.requests_total(), 500.0);
        assert_eq!(one.feedback_since, at(30));
        assert_eq!(one.totals.feedback_total(), 11.0);
        // Both baselines are at or after 30s: the snapshot at 0s is gone.
        assert_eq!(window.times().next(), Some(at(30)));
        // The sequential test still sees every label since the counting started.
        assert_eq!(one.labels_since_start.total(), 15.0);
        assert_eq!(one.labels_since_start.correct, 15.0);
    }

    #[test]
    fn snapshots_older_than_max_age_are_evicted() {
        let b = bounds(1_000_000.0, 60);
        let window = window_of((0..6).map(|i| snapshot(30 * i, 10.0 * i as f64, 0.0)), &b);
        // The newest is at 150s: 90s and later are within 60s.
        assert_eq!(
            window.times().collect::<Vec<_>>(),
            [at(90), at(120), at(150)]
        );
        let one = &window.deltas(&b).per_revision[&1];
        assert_eq!(one.traffic_since, at(90));
        assert_eq!(
            one.totals.requests_total(),
            20.0,
            "too few, but all there is"
        );
    }

    #[test]
    fn a_known_counting_start_is_a_zero_baseline() {
        let b = bounds(100.0, 3600);
        let first = Snapshot {
            counting_since: Some(at(-600)),
            ..snapshot(0, 80.0, 3.0)
        };
        let window = window_of([first], &b);
        let one = &window.deltas(&b).per_revision[&1];
        assert_eq!(one.traffic_since, at(-600));
        assert_eq!(one.totals.requests_total(), 80.0);
        assert_eq!(one.totals.feedback_total(), 3.0);

        // A start older than maxAge is no baseline: its counts may be too old.
        let old = Snapshot {
            counting_since: Some(at(-7200)),
            ..snapshot(0, 80.0, 3.0)
        };
        assert!(window_of([old], &b).deltas(&b).per_revision.is_empty());
    }

    #[test]
    fn a_revision_that_appears_counts_from_zero() {
        let b = bounds(100.0, 3600);
        let mut later = snapshot(30, 10.0, 0.0);
        let mut two = RevisionTotals::default();
        two.requests.insert(200, 7.0);
        later.per_revision.insert(2, two);
        let window = window_of([snapshot(0, 0.0, 0.0), later], &b);
        let deltas = window.deltas(&b);
        assert_eq!(deltas.per_revision[&2].totals.requests_total(), 7.0);
        assert_eq!(deltas.per_revision[&1].totals.requests_total(), 10.0);
    }

    #[test]
    fn a_long_window_is_thinned_not_grown() {
        let b = bounds(1e12, 1_000_000);
        let window = window_of(
            (0..(MAX_SNAPSHOTS as i64 + 1)).map(|i| snapshot(i, i as f64, 0.0)),
            &b,
        );
        assert!(window.len() <= MAX_SNAPSHOTS / 2 + 2, "{}", window.len());
        let times: Vec<_> = window.times().collect();
        assert_eq!(times[0], at(0), "the oldest baseline is kept");
        assert_eq!(
            *times.last().unwrap(),
            at(MAX_SNAPSHOTS as i64),
            "and the newest"
        );
    }

    #[test]
    fn a_clock_that_goes_back_replaces_the_newest() {
        let b = bounds(100.0, 3600);
        let window = window_of(
            [
                snapshot(0, 0.0, 0.0),
                snapshot(60, 10.0, 0.0),
                snapshot(30, 12.0, 0.0),
            ],
            &b,
        );
        assert_eq!(window.times().collect::<Vec<_>>(), [at(0), at(30)]);
    }
}
