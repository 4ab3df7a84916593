//! From the `/metrics` of many serving pods to cumulative totals per revision.
//!
//! Each serving pod counts from zero since its process started, and the Monitor scrapes every pod
//! of every revision. [`Accumulator`] remembers each pod's last values and adds up increases, the
//! way Prometheus' `increase()` does: a counter that went down was reset (the container
//! restarted), so its whole new value is the increase. The totals it keeps therefore only grow,
//! whichever pods come and go, and the difference of two [`Snapshot`]s is the traffic between
//! them.

use super::errors::ErrorSums;
use k8s_openapi::jiff::Timestamp;
use modelops_api::serving::{Sample, metrics};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

/// Where a value falls among a Dataset profile's bins: the profile's own type, so that the
/// Monitor reads the `bin` label exactly as the serving pods write it.
pub use modelops_api::profile::Bin;

/// Counts of one feature's values on the profile's bins.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BinCounts {
    /// Values below the first edge.
    pub underflow: f64,
    /// Values in each bin, by index.
    pub inside: Vec<f64>,
    /// Values above the last edge.
    pub overflow: f64,
}

impl BinCounts {
    /// The count of one bin (0 for a bin never counted).
    pub fn get(&self, bin: Bin) -> f64 {
        match bin {
            Bin::Underflow => self.underflow,
            Bin::Inside(i) => self.inside.get(i).copied().unwrap_or(0.0),
            Bin::Overflow => self.overflow,
        }
    }

    /// Adds to one bin.
    pub fn add(&mut self, bin: Bin, amount: f64) {
        match bin {
            Bin::Underflow => self.underflow += amount,
            Bin::Inside(i) => {
                if self.inside.len() <= i {
                    self.inside.resize(i + 1, 0.0);
                }
                self.inside[i] += amount;
            }
            Bin::Overflow => self.overflow += amount,
        }
    }

    /// Values counted, over every bin.
    pub fn total(&self) -> f64 {
        self.underflow + self.inside.iter().sum::<f64>() + self.overflow
    }

    /// What was counted between `baseline` and `self`, bin by bin (never below 0).
    pub fn since(&self, baseline: &BinCounts) -> BinCounts {
        let minus = |now: f64, then: f64| (now - then).max(0.0);
        BinCounts {
            underflow: minus(self.underflow, baseline.underflow),
            inside: (0..self.inside.len())
                .map(|i| minus(self.get(Bin::Inside(i)), baseline.get(Bin::Inside(i))))
                .collect(),
            overflow: minus(self.overflow, baseline.overflow),
        }
    }
}

/// A latency bucket's upper bound in seconds (`le`), ordered so that it can key a map; `+Inf`
/// sorts last.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UpperBound(pub f64);

impl Eq for UpperBound {}

impl PartialOrd for UpperBound {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for UpperBound {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// What one revision served, counted since the totals began (see [`Snapshot::counting_since`]).
/// Counts are `f64` because Prometheus writes them so; they are whole numbers.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RevisionTotals {
    /// Inference requests by HTTP status code.
    pub requests: BTreeMap<u16, f64>,
    /// Latency histogram: requests that took at most each upper bound (cumulative, as Prometheus
    /// buckets are; the `+Inf` bucket counts every request).
    pub latency: BTreeMap<UpperBound, f64>,
    /// Predicted rows by class name.
    pub predictions: BTreeMap<String, f64>,
    /// Raw input values by feature name, on the profile's bins.
    pub inputs: BTreeMap<String, BinCounts>,
    /// Labelled feedback whose label was the predicted one.
    pub feedback_correct: f64,
    /// Labelled feedback whose label was not the predicted one.
    pub feedback_incorrect: f64,
    /// Labelled feedback of a regression model: its count and error sums.
    pub errors: ErrorSums,
    /// A regression model's predicted values on the bins of its training predictions.
    pub prediction_bins: BinCounts,
}

impl RevisionTotals {
    /// Inference requests, whatever their status.
    pub fn requests_total(&self) -> f64 {
        self.requests.values().sum()
    }

    /// Requests answered with a server error (5xx). Client errors (4xx) are the caller's
    /// mistake, not the model's, so they do not count.
    pub fn server_errors(&self) -> f64 {
        self.requests
            .iter()
            .filter(|(code, _)| (500..600).contains(*code))
            .map(|(_, count)| count)
            .sum()
    }

    /// Labelled feedbacks of a classification model (right or wrong).
    pub fn feedback_total(&self) -> f64 {
        self.feedback_correct + self.feedback_incorrect
    }

    /// Labelled feedbacks of any kind: classes (right or wrong) and regression values. What
    /// the window's feedback baseline counts.
    pub fn labels_total(&self) -> f64 {
        self.feedback_total() + self.errors.values
    }

    /// Rows whose class was predicted.
    pub fn predicted_rows(&self) -> f64 {
        self.predictions.values().sum()
    }

    /// Input rows counted into the profile's bins. Every row adds one value to every feature, so
    /// the features agree; the largest is taken in case a scrape caught a row half counted.
    pub fn input_rows(&self) -> f64 {
        self.inputs
            .values()
            .map(BinCounts::total)
            .fold(0.0, f64::max)
    }

    /// What was served between `baseline` and `self` (every count `self - baseline`, never
    /// below 0, so that a baseline that counted more, which only a revision forgotten and seen
    /// again can cause, reads as no traffic rather than negative traffic).
    pub fn since(&self, baseline: &RevisionTotals) -> RevisionTotals {
        fn minus(now: f64, then: f64) -> f64 {
            (now - then).max(0.0)
        }
        fn map_since<K: Ord + Clone>(
            now: &BTreeMap<K, f64>,
            then: &BTreeMap<K, f64>,
        ) -> BTreeMap<K, f64> {
            now.iter()
                .map(|(key, value)| {
                    (
                        key.clone(),
                        minus(*value, then.get(key).copied().unwrap_or(0.0)),
                    )
                })
                .collect()
        }
        let inputs = self
            .inputs
            .iter()
            .map(|(feature, now)| {
                let then = baseline.inputs.get(feature).cloned().unwrap_or_default();
                (feature.clone(), now.since(&then))
            })
            .collect();
        RevisionTotals {
            requests: map_since(&self.requests, &baseline.requests),
            latency: map_since(&self.latency, &baseline.latency),
            predictions: map_since(&self.predictions, &baseline.predictions),
            inputs,
            feedback_correct: minus(self.feedback_correct, baseline.feedback_correct),
            feedback_incorrect: minus(self.feedback_incorrect, baseline.feedback_incorrect),
            errors: self.errors.since(&baseline.errors),
            prediction_bins: self.prediction_bins.since(&baseline.prediction_bins),
        }
    }

    fn add(&mut self, series: &Counter, amount: f64) {
        match series {
            Counter::Requests { code, .. } => *self.requests.entry(*code).or_default() += amount,
            Counter::Latency { le, .. } => *self.latency.entry(*le).or_default() += amount,
            Counter::Predictions { class, .. } => {
                *self.predictions.entry(class.clone()).or_default() += amount
            }
            Counter::Inputs { feature, bin, .. } => self
                .inputs
                .entry(feature.clone())
                .or_default()
                .add(*bin, amount),
            Counter::Feedback { correct: true, .. } => self.feedback_correct += amount,
            Counter::Feedback { correct: false, .. } => self.feedback_incorrect += amount,
            Counter::Errors { part, .. } => {
                let sum = match part {
                    ErrorPart::Values => &mut self.errors.values,
                    ErrorPart::Absolute => &mut self.errors.absolute,
                    ErrorPart::Squared => &mut self.errors.squared,
                    ErrorPart::SquaredSquares => &mut self.errors.squared_squares,
                };
                *sum += amount;
            }
            Counter::PredictionBins { bin, .. } => self.prediction_bins.add(*bin, amount),
        }
    }
}

/// One counter series of a pod, identified by what the Monitor reads from it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Counter {
    Requests {
        revision: i32,
        code: u16,
    },
    Latency {
        revision: i32,
        le: UpperBound,
    },
    Predictions {
        revision: i32,
        class: String,
    },
    Inputs {
        revision: i32,
        feature: String,
        bin: Bin,
    },
    Feedback {
        revision: i32,
        correct: bool,
    },
    Errors {
        revision: i32,
        part: ErrorPart,
    },
    PredictionBins {
        revision: i32,
        bin: Bin,
    },
}

/// One of the regression feedback series.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum ErrorPart {
    Values,
    Absolute,
    Squared,
    SquaredSquares,
}

impl ErrorPart {
    fn of(name: &str) -> Option<Self> {
        use metrics::*;
        Some(match name {
            FEEDBACK_VALUES_TOTAL => Self::Values,
            FEEDBACK_ABSOLUTE_ERROR_TOTAL => Self::Absolute,
            FEEDBACK_SQUARED_ERROR_TOTAL => Self::Squared,
            FEEDBACK_SQUARED_ERROR_SQUARES_TOTAL => Self::SquaredSquares,
            _ => return None,
        })
    }
}

impl Counter {
    /// The counter a sample belongs to, or `None` for gauges, other series and malformed labels.
    fn of(sample: &Sample) -> Option<Self> {
        use metrics::*;
        let revision = sample.label(LABEL_REVISION)?.parse().ok()?;
        let name = sample.name.as_str();
        if name == REQUESTS_TOTAL {
            let code = sample.label(LABEL_CODE)?.parse().ok()?;
            Some(Self::Requests { revision, code })
        } else if name.strip_suffix("_bucket") == Some(REQUEST_DURATION_SECONDS) {
            let le = match sample.label(LABEL_LE)? {
                "+Inf" => f64::INFINITY,
                bound => bound.parse().ok()?,
            };
            Some(Self::Latency {
                revision,
                le: UpperBound(le),
            })
        } else if name == PREDICTIONS_TOTAL {
            let class = sample.label(LABEL_CLASS)?.to_owned();
            Some(Self::Predictions { revision, class })
        } else if name == INPUT_FEATURE_BIN_TOTAL {
            let feature = sample.label(LABEL_FEATURE)?.to_owned();
            let bin = Bin::parse(sample.label(LABEL_BIN)?)?;
            Some(Self::Inputs {
                revision,
                feature,
                bin,
            })
        } else if name == FEEDBACK_TOTAL {
            let correct = match sample.label(LABEL_RESULT)? {
                RESULT_CORRECT => true,
                RESULT_INCORRECT => false,
                _ => return None,
            };
            Some(Self::Feedback { revision, correct })
        } else if let Some(part) = ErrorPart::of(name) {
            Some(Self::Errors { revision, part })
        } else if name == PREDICTION_BIN_TOTAL {
            let bin = Bin::parse(sample.label(LABEL_BIN)?)?;
            Some(Self::PredictionBins { revision, bin })
        } else {
            None
        }
    }

    fn revision(&self) -> i32 {
        match self {
            Self::Requests { revision, .. }
            | Self::Latency { revision, .. }
            | Self::Predictions { revision, .. }
            | Self::Inputs { revision, .. }
            | Self::Feedback { revision, .. }
            | Self::Errors { revision, .. }
            | Self::PredictionBins { revision, .. } => *revision,
        }
    }
}

/// One serving pod as the controller found it at a scrape.
#[derive(Clone, Debug, PartialEq)]
pub struct PodScrape {
    /// Who counted: the pod's uid and its container's restart count (`<uid>/<restarts>`), so
    /// that a restarted container, whose counters start again at zero, is a new counter source
    /// even when a scrape missed the moment its counters went down.
    pub pod: String,
    /// When the serving container started (`state.running.startedAt`): its counters count from
    /// then.
    pub started_at: Option<Timestamp>,
    /// The parsed `/metrics`, or `None` when the scrape failed (the pod's last values are kept,
    /// so that its next successful scrape is not counted twice).
    pub samples: Option<Vec<Sample>>,
}

/// The cumulative totals of every revision at one scrape.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// When the scrape ran.
    pub time: Timestamp,
    /// Since when the totals count everything, if known: the start of the oldest pod the
    /// first scrape folded in. Zero totals at that time are a valid baseline, so that a window
    /// can reach back before the first scrape (after an operator restart, or for a revision whose
    /// pods started before the Monitor first looked).
    pub counting_since: Option<Timestamp>,
    /// Totals by revision number.
    pub per_revision: BTreeMap<i32, RevisionTotals>,
}

/// Adds up the counters of every serving pod into monotonic totals per revision.
///
/// Rules, per pod and counter series:
/// - a value at or above the last one adds the difference;
/// - a value below the last one means the counter restarted from zero: it adds the whole value;
/// - a pod seen for the first time adds its whole value when its counters began after the
///   previous scrape (it started since) or at the very first scrape (then
///   [`Snapshot::counting_since`] records how far back the totals reach); otherwise (a pod that
///   ran unseen, for example never scraped successfully) its values are only a baseline, since
///   when its traffic happened is unknown;
/// - a pod the controller no longer lists is forgotten; a pod whose scrape failed keeps its last
///   values.
///
/// A revision's totals are dropped once no remembered pod has a series of it (its pods are gone).
#[derive(Clone, Debug, Default)]
pub struct Accumulator {
    last_values: BTreeMap<String, BTreeMap<Counter, f64>>,
    totals: BTreeMap<i32, RevisionTotals>,
    last_scrape: Option<Timestamp>,
    counting_since: Option<Timestamp>,
}

impl Accumulator {
    /// Folds one scrape of every pod the controller lists (failed scrapes included) into the
    /// totals and returns them.
    pub fn observe(&mut self, time: Timestamp, pods: &[PodScrape]) -> Snapshot {
        let first_scrape = self.last_scrape.is_none();
        let mut folded_starts = Vec::new();
        for pod in pods {
            let Some(samples) = &pod.samples else {
                continue;
            };
            let mut current = BTreeMap::new();
            for sample in samples {
                // A counter is finite and never negative; anything else is a broken exposition.
                if !(sample.value.is_finite() && sample.value >= 0.0) {
                    continue;
                }
                if let Some(counter) = Counter::of(sample) {
                    current.insert(counter, sample.value);
                }
            }
            let previous = self.last_values.get(&pod.pod);
            let fold_whole = match (previous, self.last_scrape) {
                (Some(_), _) => true,
                (None, None) => {
                    folded_starts.push(pod.started_at);
                    true
                }
                (None, Some(last)) => pod.started_at.is_some_and(|start| start >= last),
            };
            for (counter, &value) in &current {
                let increase = match previous.and_then(|p| p.get(counter)) {
                    Some(&last) if value >= last => value - last,
                    // Went down: the counter restarted from zero.
                    Some(_) => value,
                    None if fold_whole => value,
                    None => 0.0,
                };
                if increase > 0.0 {
                    self.totals
                        .entry(counter.revision())
                        .or_default()
                        .add(counter, increase);
                }
            }
            self.last_values.insert(pod.pod.clone(), current);
        }

        let listed: BTreeSet<&str> = pods.iter().map(|p| p.pod.as_str()).collect();
        self.last_values
            .retain(|pod, _| listed.contains(pod.as_str()));
        let live: BTreeSet<i32> = self
            .last_values
            .values()
            .flat_map(|counters| counters.keys().map(Counter::revision))
            .collect();
        self.totals.retain(|revision, _| live.contains(revision));
        // A revision whose pods serve but counted nothing yet is still there, with no traffic.
        for revision in live {
            self.totals.entry(revision).or_default();
        }

        if first_scrape {
            // Every folded pod must say when it started; otherwise how far back the totals
            // reach is unknown and no zero baseline is offered.
            self.counting_since = if folded_starts.is_empty() {
                Some(time)
            } else {
                folded_starts
                    .into_iter()
                    .collect::<Option<Vec<_>>>()
                    .and_then(|starts| starts.into_iter().min())
                    .map(|start| start.min(time))
            };
        }
        self.last_scrape = Some(time);
        Snapshot {
            time,
            counting_since: self.counting_since,
            per_revision: self.totals.clone(),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use modelops_api::serving::parse_metrics;

    pub(crate) fn at(second: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + second).unwrap()
    }

    fn pod(name: &str, started: i64, text: &str) -> PodScrape {
        PodScrape {
            pod: name.into(),
            started_at: Some(at(started)),
            samples: Some(parse_metrics(text)),
        }
    }

    fn requests(revision: i32, ok: u64, errors: u64) -> String {
        format!(
            "modelops_requests_total{{model=\"m\",revision=\"{revision}\",code=\"200\"}} {ok}\n\
             modelops_requests_total{{model=\"m\",revision=\"{revision}\",code=\"503\"}} {errors}\n"
        )
    }

    #[test]
    fn every_series_is_read_and_summed_over_pods() {
        let text = r#"
modelops_model_ready{model="m",revision="2"} 1
modelops_requests_in_flight{model="m",revision="2"} 4
modelops_requests_total{model="m",revision="2",code="200"} 10
modelops_requests_total{model="m",revision="2",code="400"} 1
modelops_request_duration_seconds_bucket{model="m",revision="2",le="0.1"} 7
modelops_request_duration_seconds_bucket{model="m",revision="2",le="+Inf"} 11
modelops_request_duration_seconds_sum{model="m",revision="2"} 3.5
modelops_request_duration_seconds_count{model="m",revision="2"} 11
modelops_predictions_total{model="m",revision="2",class="cat"} 6
modelops_input_feature_bin_total{model="m",revision="2",feature="x",bin="underflow"} 1
modelops_input_feature_bin_total{model="m",revision="2",feature="x",bin="3"} 5
modelops_input_feature_bin_total{model="m",revision="2",feature="x",bin="overflow"} 2
modelops_feedback_total{model="m",revision="1",result="correct"} 4
modelops_feedback_total{model="m",revision="2",result="incorrect"} 2
modelops_batches_total{model="m",revision="2"} 3
modelops_feedback_values_total{model="m",revision="3"} 2
modelops_feedback_absolute_error_total{model="m",revision="3"} 1.5
modelops_feedback_squared_error_total{model="m",revision="3"} 1.25
modelops_feedback_squared_error_squares_total{model="m",revision="3"} 1.0625
modelops_prediction_bin_total{model="m",revision="3",bin="0"} 7
modelops_prediction_bin_total{model="m",revision="3",bin="overflow"} 1
"#;
        let mut accumulator = Accumulator::default();
        let snapshot = accumulator.observe(at(100), &[pod("a/0", 0, text), pod("b/0", 50, text)]);
        let two = &snapshot.per_revision[&2];
        assert_eq!(two.requests[&200], 20.0);
        assert_eq!(two.requests[&400], 2.0);
        assert_eq!(two.requests_total(), 22.0);
        assert_eq!(two.server_errors(), 0.0, "4xx are the client's errors");
        assert_eq!(two.latency[&UpperBound(0.1)], 14.0);
        assert_eq!(two.latency[&UpperBound(f64::INFINITY)], 22.0);
        assert_eq!(two.predictions["cat"], 12.0);
        let x = &two.inputs["x"];
        assert_eq!(
            (x.underflow, x.get(Bin::Inside(3)), x.overflow),
            (2.0, 10.0, 4.0)
        );
        assert_eq!(x.get(Bin::Inside(0)), 0.0);
        assert_eq!(two.input_rows(), 16.0);
        assert_eq!(two.feedback_incorrect, 4.0);
        // Feedback of revision 1 counted on revision 2's pods belongs to revision 1.
        assert_eq!(snapshot.per_revision[&1].feedback_correct, 8.0);
        let three = &snapshot.per_revision[&3];
        assert_eq!(
            three.errors,
            ErrorSums {
                values: 4.0,
                absolute: 3.0,
                squared: 2.5,
                squared_squares: 2.125
            }
        );
        assert_eq!(three.labels_total(), 4.0);
        assert_eq!(three.feedback_total(), 0.0);
        assert_eq!(
            (
                three.prediction_bins.get(Bin::Inside(0)),
                three.prediction_bins.overflow
            ),
            (14.0, 2.0)
        );
        assert_eq!(
            snapshot.counting_since,
            Some(at(0)),
            "the oldest pod's start"
        );
    }

    #[test]
    fn increases_add_up_and_a_decrease_is_a_restart() {
        let mut accumulator = Accumulator::default();
        accumulator.observe(at(0), &[pod("a/0", 0, &requests(1, 10, 1))]);
        let snapshot = accumulator.observe(at(30), &[pod("a/0", 0, &requests(1, 15, 1))]);
        assert_eq!(snapshot.per_revision[&1].requests[&200], 15.0);
        // The counter went from 15 to 4: it restarted, and 4 requests came since.
        let snapshot = accumulator.observe(at(60), &[pod("a/0", 0, &requests(1, 4, 0))]);
        assert_eq!(snapshot.per_revision[&1].requests[&200], 19.0);
        assert_eq!(snapshot.per_revision[&1].requests[&503], 1.0);
        let snapshot = accumulator.observe(at(90), &[pod("a/0", 0, &requests(1, 6, 2))]);
        assert_eq!(snapshot.per_revision[&1].requests[&200], 21.0);
        assert_eq!(snapshot.per_revision[&1].server_errors(), 3.0);
    }

    #[test]
    fn a_restarted_container_is_a_new_source_even_when_its_counter_grew_back() {
        let mut accumulator = Accumulator::default();
        accumulator.observe(at(0), &[pod("a/0", 0, &requests(1, 10, 0))]);
        // The container restarted at 10s and counted 12 since: more than before, so only the
        // restart count in the pod's identity tells that all 12 are new.
        let snapshot = accumulator.observe(at(30), &[pod("a/1", 10, &requests(1, 12, 0))]);
        assert_eq!(snapshot.per_revision[&1].requests[&200], 22.0);
    }

    #[test]
    fn a_new_pod_adds_all_it_counted_and_a_late_one_is_only_a_baseline() {
        let mut accumulator = Accumulator::default();
        accumulator.observe(at(0), &[pod("a/0", 0, &requests(1, 10, 0))]);
        let snapshot = accumulator.observe(
            at(30),
            &[
                pod("a/0", 0, &requests(1, 10, 0)),
                // Started after the last scrape: everything it counted came since.
                pod("b/0", 20, &requests(1, 5, 0)),
                // Ran since before the last scrape unseen: when its 7 came is unknown.
                pod("c/0", -100, &requests(1, 7, 0)),
            ],
        );
        assert_eq!(snapshot.per_revision[&1].requests[&200], 15.0);
        let snapshot = accumulator.observe(
            at(60),
            &[
                pod("a/0", 0, &requests(1, 10, 0)),
                pod("b/0", 20, &requests(1, 5, 0)),
                pod("c/0", -100, &requests(1, 9, 0)),
            ],
        );
        assert_eq!(snapshot.per_revision[&1].requests[&200], 17.0);
    }

    #[test]
    fn a_failed_scrape_keeps_the_pod_and_a_gone_pod_is_forgotten() {
        let mut accumulator = Accumulator::default();
        accumulator.observe(at(0), &[pod("a/0", 0, &requests(1, 10, 0))]);
        let failed = PodScrape {
            samples: None,
            ..pod("a/0", 0, "")
        };
        let snapshot = accumulator.observe(at(30), &[failed]);
        assert_eq!(snapshot.per_revision[&1].requests[&200], 10.0);
        let snapshot = accumulator.observe(at(60), &[pod("a/0", 0, &requests(1, 13, 0))]);
        assert_eq!(
            snapshot.per_revision[&1].requests[&200], 13.0,
            "not counted twice"
        );
        // Revision 1's only pod is gone, and revision 2 took over.
        let snapshot = accumulator.observe(at(90), &[pod("b/0", 70, &requests(2, 4, 0))]);
        assert!(!snapshot.per_revision.contains_key(&1));
        assert_eq!(snapshot.per_revision[&2].requests[&200], 4.0);
    }

    #[test]
    fn counting_since_is_unknown_when_a_pod_start_is() {
        let mut accumulator = Accumulator::default();
        let unknown = PodScrape {
            started_at: None,
            ..pod("a/0", 0, &requests(1, 1, 0))
        };
        assert_eq!(accumulator.observe(at(5), &[unknown]).counting_since, None);
        let mut empty = Accumulator::default();
        assert_eq!(empty.observe(at(5), &[]).counting_since, Some(at(5)));
    }

    #[test]
    fn since_subtracts_every_count_and_never_goes_below_zero() {
        let mut now = RevisionTotals::default();
        now.requests.insert(200, 10.0);
        now.predictions.insert("a".into(), 4.0);
        now.inputs
            .entry("x".into())
            .or_default()
            .add(Bin::Inside(1), 3.0);
        now.feedback_correct = 2.0;
        let mut then = RevisionTotals::default();
        then.requests.insert(200, 4.0);
        then.predictions.insert("a".into(), 9.0);
        let delta = now.since(&then);
        assert_eq!(delta.requests[&200], 6.0);
        assert_eq!(delta.predictions["a"], 0.0);
        assert_eq!(delta.inputs["x"].get(Bin::Inside(1)), 3.0);
        assert_eq!(delta.feedback_correct, 2.0);
    }

    #[test]
    fn bins_parse_and_sort_in_order() {
        assert_eq!(Bin::parse("underflow"), Some(Bin::Underflow));
        assert_eq!(Bin::parse("9"), Some(Bin::Inside(9)));
        assert_eq!(Bin::parse("overflow"), Some(Bin::Overflow));
        assert_eq!(Bin::parse("x"), None);
        // A hostile pod's label does not make the Monitor allocate a huge vector.
        assert_eq!(Bin::parse("18446744073709551615"), None);
        assert_eq!(Bin::parse("1024"), None);
        assert_eq!(Bin::parse("1023"), Some(Bin::Inside(1023)));
        assert!(Bin::Underflow < Bin::Inside(0) && Bin::Inside(9) < Bin::Overflow);
    }
}
