//! The serving metrics (`GET /metrics`), kept and written by the `prometheus` crate.
//!
//! The series names are in `modelops_api::serving::metrics`, which the Monitor controller
//! parses. Two registries, written one after the other: the request, readiness, feedback and
//! batch series first, the bins after them, so a reader that keeps only so many samples
//! (`modelops_api::serving::MAX_SAMPLES`) loses a wide model's bins, never its feedback. The
//! input histograms count raw feature values into the bins of the Dataset profile, so the
//! Monitor compares live inputs with the training data bin by bin; a regression model's
//! predicted values are counted the same way, on the bins of its predictions on the training
//! split (the served profile's `predictions`).

use modelops_api::profile::{Bin, Histogram, Profile};
use modelops_api::serving::metrics::*;
use prometheus::core::Collector;
use prometheus::{
    CounterVec, Encoder, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};
use std::sync::Mutex;

/// The regression feedback series with their help, in the order of [`Metrics::errors`]: the
/// values received, then the sums of |e|, e² and e⁴ (e = true - predicted), from which `mae`,
/// `rmse` and the spread of the squared errors are measured.
const ERROR_SERIES: [(&str, &str); 4] = [
    (
        FEEDBACK_VALUES_TOTAL,
        "True values received as regression feedback, under the revision that predicted.",
    ),
    (
        FEEDBACK_ABSOLUTE_ERROR_TOTAL,
        "Sum of |true - predicted| over the regression feedback.",
    ),
    (
        FEEDBACK_SQUARED_ERROR_TOTAL,
        "Sum of (true - predicted)^2 over the regression feedback.",
    ),
    (
        FEEDBACK_SQUARED_ERROR_SQUARES_TOTAL,
        "Sum of (true - predicted)^4 over the regression feedback.",
    ),
];

/// A histogram's bins as counters, in the order of [`Histogram::bins`].
#[derive(Debug)]
struct BinCounters {
    /// The edges (counts unused).
    histogram: Histogram,
    /// Equal-width edges (what `prepare` writes): the first edge and bins per unit, so that a
    /// value's bin is computed rather than searched for.
    equal_width: Option<(f64, f64)>,
    counters: Vec<IntCounter>,
    /// Counts of each counter not yet added to it (inputs: added at each scrape).
    tally: Vec<u64>,
}

/// `(first edge, bins per unit)` when `edges` are equal-width to within rounding.
fn equal_width(edges: &[f64]) -> Option<(f64, f64)> {
    let (&low, &high) = (edges.first()?, edges.last()?);
    let bins = edges.len().checked_sub(1).filter(|&b| b > 0)?;
    let width = (high - low) / bins as f64;
    let even = width.is_finite()
        && width > 0.0
        && edges.windows(2).all(|pair| {
            let step = pair[1] - pair[0];
            step > 0.0 && (step - width).abs() <= width * 1e-9
        });
    even.then(|| (low, 1.0 / width))
}

/// The bin of `value` as [`Histogram::bin_of`] finds it, with equal-width edges' first edge
/// `low` and `scale` bins per unit: computed, then moved to the bin whose edges hold it (the
/// computation may land one off at an edge, by rounding).
fn equal_width_bin(edges: &[f64], low: f64, scale: f64, value: f64) -> Bin {
    let last = edges.len() - 1;
    if value.is_nan() || value < edges[0] {
        return Bin::Underflow;
    }
    if value > edges[last] {
        return Bin::Overflow;
    }
    let mut index = (((value - low) * scale) as usize).min(last - 1);
    while index > 0 && value < edges[index] {
        index -= 1;
    }
    while index + 1 < last && value >= edges[index + 1] {
        index += 1;
    }
    Bin::Inside(index)
}

impl BinCounters {
    /// The counters of `histogram`'s bins in `family`, with `labels` before the bin.
    fn new(family: &IntCounterVec, histogram: &Histogram, labels: &[&str]) -> Self {
        let histogram = histogram.emptied();
        let counters: Vec<IntCounter> = histogram
            .bins()
            .map(|(bin, _)| {
                let bin = bin.to_string();
                let mut values = labels.to_vec();
                values.push(&bin);
                family.with_label_values(&values)
            })
            .collect();
        Self {
            equal_width: equal_width(&histogram.edges),
            histogram,
            tally: vec![0; counters.len()],
            counters,
        }
    }

    /// The counter of `value`'s bin.
    fn index(&self, value: f64) -> usize {
        let bin = match self.equal_width {
            Some((low, scale)) => equal_width_bin(&self.histogram.edges, low, scale, value),
            None => self.histogram.bin_of(value),
        };
        match bin {
            Bin::Underflow => 0,
            Bin::Inside(i) => i + 1,
            Bin::Overflow => self.counters.len() - 1,
        }
    }

    fn add(&self, value: f64) {
        self.counters[self.index(value)].inc();
    }

    /// Counts many values into the tally of not yet published counts ([`BinCounters::publish`]
    /// adds them to the counters): plain additions under the series' lock, no atomic add per
    /// request.
    fn add_all(&mut self, values: impl Iterator<Item = f64>) {
        for value in values {
            let index = self.index(value);
            self.tally[index] += 1;
        }
    }

    /// Adds the tallied counts to the counters.
    fn publish(&mut self) {
        for (counter, count) in self.counters.iter().zip(self.tally.iter_mut()) {
            if *count > 0 {
                counter.inc_by(std::mem::take(count));
            }
        }
    }
}

/// The series of a loaded model: its classes and bins.
#[derive(Debug, Default)]
struct ModelSeries {
    /// Whether [`Metrics::set_model`] ran.
    loaded: bool,
    predictions: Vec<IntCounter>,
    inputs: Vec<BinCounters>,
    /// Regression: predicted values on the bins of the training predictions.
    prediction_bins: Option<BinCounters>,
}

/// The metrics of one server (one model revision; feedback of any revision).
pub struct Metrics {
    model: String,
    revision: String,
    /// Readiness, requests, feedback and batches.
    registry: Registry,
    /// Classes and bins, once the model is loaded.
    bins: Registry,
    ready: IntGauge,
    requests: IntCounterVec,
    in_flight: IntGauge,
    latency: prometheus::Histogram,
    /// By model, revision and result.
    feedback: IntCounterVec,
    /// By model and revision, in the order of [`ERROR_SERIES`].
    errors: [CounterVec; 4],
    batches: IntCounter,
    batch_rows: IntCounter,
    series: Mutex<ModelSeries>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("model", &self.model)
            .field("revision", &self.revision)
            .finish_non_exhaustive()
    }
}

/// The options of series `name` of `model` revision `revision` (its const labels).
fn own_opts(model: &str, revision: &str, name: &str, help: &str) -> Opts {
    Opts::new(name, help)
        .const_label(LABEL_MODEL, model)
        .const_label(LABEL_REVISION, revision)
}

/// Registers `collector` in `registry` and gives it back.
fn registered<C: Collector + Clone + 'static>(registry: &Registry, collector: C) -> C {
    registry
        .register(Box::new(collector.clone()))
        .expect("each series is registered once");
    collector
}

impl Metrics {
    /// Metrics of `model` revision `revision`, before the model is loaded.
    pub fn new(model: &str, revision: i32) -> Self {
        let revision = revision.to_string();
        let own = |name: &str, help: &str| own_opts(model, &revision, name, help);
        let registry = Registry::new();
        let ready = registered(
            &registry,
            IntGauge::with_opts(own(MODEL_READY, "1 once the model is loaded and verified."))
                .expect("a valid gauge"),
        );
        let requests = registered(
            &registry,
            IntCounterVec::new(
                own(REQUESTS_TOTAL, "Inference requests by HTTP status."),
                &[LABEL_CODE],
            )
            .expect("a valid counter"),
        );
        let in_flight = registered(
            &registry,
            IntGauge::with_opts(own(
                REQUESTS_IN_FLIGHT,
                "Inference requests being answered.",
            ))
            .expect("a valid gauge"),
        );
        let latency = registered(
            &registry,
            prometheus::Histogram::with_opts(
                HistogramOpts::from(own(
                    REQUEST_DURATION_SECONDS,
                    "Seconds to answer an inference request.",
                ))
                .buckets(LATENCY_BUCKETS.to_vec()),
            )
            .expect("a valid histogram"),
        );
        let feedback = registered(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    FEEDBACK_TOTAL,
                    "Labelled feedback by result, under the revision that predicted.",
                ),
                &[LABEL_MODEL, LABEL_REVISION, LABEL_RESULT],
            )
            .expect("a valid counter"),
        );
        let errors = ERROR_SERIES.map(|(name, help)| {
            registered(
                &registry,
                CounterVec::new(Opts::new(name, help), &[LABEL_MODEL, LABEL_REVISION])
                    .expect("a valid counter"),
            )
        });
        let batches = registered(
            &registry,
            IntCounter::with_opts(own(BATCHES_TOTAL, "Forward passes run."))
                .expect("a valid counter"),
        );
        let batch_rows = registered(
            &registry,
            IntCounter::with_opts(own(BATCH_ROWS_TOTAL, "Rows run through forward passes."))
                .expect("a valid counter"),
        );
        Self {
            model: model.to_owned(),
            revision,
            registry,
            bins: Registry::new(),
            ready,
            requests,
            in_flight,
            latency,
            feedback,
            errors,
            batches,
            batch_rows,
            series: Mutex::new(ModelSeries::default()),
        }
    }

    fn series(&self) -> std::sync::MutexGuard<'_, ModelSeries> {
        // A panic while holding the lock leaves plain counters behind: keep counting.
        self.series.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The options of a series of this server's model and revision.
    fn own(&self, name: &str, help: &str) -> Opts {
        own_opts(&self.model, &self.revision, name, help)
    }

    /// Once the model is loaded: its classes (so every class has a series, at 0 until predicted)
    /// and the profile whose bins the input histograms use (the features in the model's order)
    /// and, for a regression model, the prediction histogram (its `predictions`). Called once
    /// per server: a second call leaves the first model's series.
    pub fn set_model(&self, classes: &[String], profile: Option<&Profile>) {
        let mut series = self.series();
        if std::mem::replace(&mut series.loaded, true) {
            return;
        }
        if !classes.is_empty() {
            let family = registered(
                &self.bins,
                IntCounterVec::new(
                    self.own(PREDICTIONS_TOTAL, "Predicted rows by class."),
                    &[LABEL_CLASS],
                )
                .expect("a valid counter"),
            );
            series.predictions = classes
                .iter()
                .map(|class| family.with_label_values(&[class.as_str()]))
                .collect();
        }
        if let Some(profile) = profile.filter(|p| !p.features.is_empty()) {
            let family = registered(
                &self.bins,
                IntCounterVec::new(
                    self.own(
                        INPUT_FEATURE_BIN_TOTAL,
                        "Raw input values on the bins of the Dataset profile.",
                    ),
                    &[LABEL_FEATURE, LABEL_BIN],
                )
                .expect("a valid counter"),
            );
            series.inputs = profile
                .features
                .iter()
                .map(|feature| BinCounters::new(&family, &feature.histogram, &[&feature.name]))
                .collect();
        }
        if let Some(predictions) = profile.and_then(|p| p.predictions.as_ref()) {
            let family = registered(
                &self.bins,
                IntCounterVec::new(
                    self.own(
                        PREDICTION_BIN_TOTAL,
                        "Predicted values on the bins of the model's predictions on its training split.",
                    ),
                    &[LABEL_BIN],
                )
                .expect("a valid counter"),
            );
            series.prediction_bins = Some(BinCounters::new(&family, predictions, &[]));
        }
    }

    /// Whether the model takes traffic.
    pub fn set_ready(&self, ready: bool) {
        self.ready.set(i64::from(ready));
    }

    /// An inference request begins.
    pub fn request_started(&self) {
        self.in_flight.inc();
    }

    /// An inference request was answered with `code` after `seconds`. A refusal of the client's
    /// request (4xx: a bad body, too many rows, a slow upload's 408, an overload's 429, a client
    /// gone, 499) is counted by code but kept out of the latency histogram: it says nothing of the
    /// model's speed, and 30-second 408s or instant 429s would move the p99 a Monitor judges.
    pub fn request_finished(&self, code: u16, seconds: f64) {
        self.in_flight.dec();
        self.requests.with_label_values(&[&code.to_string()]).inc();
        if !(400..500).contains(&code) {
            self.latency.observe(seconds);
        }
    }

    /// Counts predicted classes (indices into the classes).
    pub fn count_predictions(&self, classes: impl IntoIterator<Item = usize>) {
        let series = self.series();
        for class in classes {
            if let Some(counter) = series.predictions.get(class) {
                counter.inc();
            }
        }
    }

    /// Counts a regression model's predicted values (when there are prediction bins).
    pub fn count_predicted_values(&self, values: impl IntoIterator<Item = f32>) {
        if let Some(bins) = &self.series().prediction_bins {
            for value in values {
                bins.add(f64::from(value));
            }
        }
    }

    /// Whether inputs are counted (the model's profile gave input histograms).
    pub fn counts_inputs(&self) -> bool {
        !self.series().inputs.is_empty()
    }

    /// Counts input rows: each row's value of each profiled feature, in order.
    pub fn count_inputs<'a>(&self, rows: impl IntoIterator<Item = &'a [f64]>) {
        let mut series = self.series();
        if series.inputs.is_empty() {
            return;
        }
        let rows: Vec<&[f64]> = rows.into_iter().collect();
        for (index, feature) in series.inputs.iter_mut().enumerate() {
            feature.add_all(rows.iter().filter_map(|row| row.get(index).copied()));
        }
    }

    /// Counts one labelled feedback under `revision`. Both results get a series, so a rate of
    /// either is defined from the first feedback on.
    pub fn count_feedback(&self, revision: i32, correct: bool) {
        let revision = revision.to_string();
        let series = |result| {
            self.feedback
                .with_label_values(&[self.model.as_str(), &revision, result])
        };
        let (counted, other) = if correct {
            (RESULT_CORRECT, RESULT_INCORRECT)
        } else {
            (RESULT_INCORRECT, RESULT_CORRECT)
        };
        series(counted).inc();
        series(other);
    }

    /// Counts one regression feedback under `revision`: `error` is the true value minus the
    /// predicted one.
    pub fn count_regression_feedback(&self, revision: i32, error: f64) {
        let revision = revision.to_string();
        let squared = error * error;
        for (family, value) in
            self.errors
                .iter()
                .zip([1.0, error.abs(), squared, squared * squared])
        {
            family
                .with_label_values(&[self.model.as_str(), &revision])
                .inc_by(value);
        }
    }

    /// Brings the forward-pass counters up to the batcher's totals.
    pub fn set_batches(&self, batches: u64, rows: u64) {
        for (counter, total) in [(&self.batches, batches), (&self.batch_rows, rows)] {
            counter.inc_by(total.saturating_sub(counter.get()));
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        for inputs in &mut self.series().inputs {
            inputs.publish();
        }
        let mut out = Vec::new();
        let encoder = TextEncoder::new();
        for registry in [&self.registry, &self.bins] {
            encoder
                .encode(&registry.gather(), &mut out)
                .expect("the text encoding does not fail");
        }
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use modelops_api::profile::FeatureProfile;
    use modelops_api::serving::{Sample, parse_metrics};
    use proptest::prelude::*;

    proptest! {
        /// The computed bin is the searched one, for any equal-width histogram and any value:
        /// on the edges, between them, outside, NaN and the infinities.
        #[test]
        fn an_equal_width_bin_is_the_bin_searched_for(
            low in -1e6f64..1e6,
            span in 1e-6f64..1e6,
            bins in 1usize..64,
            picks in proptest::collection::vec((0usize..70, -2.0f64..3.0), 1..40),
        ) {
            let histogram = Histogram::equal_width(low, low + span, bins);
            let (first, scale) = equal_width(&histogram.edges).expect("equal-width edges");
            let mut values = vec![f64::NAN, f64::INFINITY, f64::NEG_INFINITY, low, low + span];
            for (edge, fraction) in picks {
                let edges = &histogram.edges;
                values.push(edges[edge % edges.len()]);
                values.push(low + span * fraction);
                values.push(f64::from_bits(edges[edge % edges.len()].to_bits() + 1));
                values.push(f64::from_bits(edges[edge % edges.len()].to_bits().wrapping_sub(1)));
            }
            for value in values {
                prop_assert_eq!(
                    equal_width_bin(&histogram.edges, first, scale, value),
                    histogram.bin_of(value),
                    "value {}", value
                );
            }
        }
    }

    #[test]
    fn uneven_edges_are_searched() {
        assert_eq!(equal_width(&[0.0, 1.0, 3.0]), None);
        assert_eq!(equal_width(&[0.0]), None);
        assert_eq!(equal_width(&[1.0, 1.0]), None);
        assert!(equal_width(&[0.0, 0.5, 1.0]).is_some());
    }

    fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        samples
            .iter()
            .find(|s| s.name == name && labels.iter().all(|(k, v)| s.label(k) == Some(v)))
            .map(|s| s.value)
    }

    #[test]
    fn every_series_renders_and_parses_back() {
        let metrics = Metrics::new("digits", 3);
        let profile = Profile {
            rows: 5,
            features: vec![FeatureProfile::of("pixel \"0\"", &[0.0, 10.0])],
            class_balance: None,
            class_balance_all: None,
            predictions: Some(Histogram::equal_width(0.0, 10.0, 10)),
        };
        metrics.set_model(&["a".into(), "b\\c".into()], Some(&profile));
        metrics.set_ready(true);
        metrics.request_started();
        metrics.request_finished(200, 0.003);
        metrics.request_started();
        metrics.request_finished(400, 0.0001);
        metrics.request_started();
        metrics.request_finished(200, 60.0);
        metrics.request_started();
        metrics.count_predictions([1, 1, 0, 7]);
        metrics.count_inputs([[-1.0].as_slice(), &[0.0], &[10.0], &[5.0], &[11.0]]);
        metrics.count_feedback(3, true);
        metrics.count_feedback(3, false);
        metrics.count_feedback(2, true);
        metrics.count_predicted_values([-1.0, 0.0, 5.0, 10.0, 11.0, f32::NAN]);
        metrics.count_regression_feedback(3, 2.0);
        metrics.count_regression_feedback(3, -1.0);
        metrics.count_regression_feedback(2, 0.5);
        metrics.set_batches(2, 9);

        let text = metrics.render();
        let samples = parse_metrics(&text);
        let own = [("model", "digits"), ("revision", "3")];
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut labels = own.to_vec();
            labels.extend_from_slice(extra);
            labels
        };
        assert_eq!(value(&samples, MODEL_READY, &own), Some(1.0));
        assert_eq!(value(&samples, REQUESTS_IN_FLIGHT, &own), Some(1.0));
        assert_eq!(
            value(&samples, REQUESTS_TOTAL, &with(&[("code", "200")])),
            Some(2.0)
        );
        assert_eq!(
            value(&samples, REQUESTS_TOTAL, &with(&[("code", "400")])),
            Some(1.0)
        );
        // The 400 is counted by code, not timed: two requests in the histogram.
        let bucket = format!("{REQUEST_DURATION_SECONDS}_bucket");
        assert_eq!(
            value(&samples, &bucket, &with(&[("le", "0.0005")])),
            Some(0.0)
        );
        assert_eq!(
            value(&samples, &bucket, &with(&[("le", "0.005")])),
            Some(1.0)
        );
        assert_eq!(value(&samples, &bucket, &with(&[("le", "10")])), Some(1.0));
        assert_eq!(
            value(&samples, &bucket, &with(&[("le", "+Inf")])),
            Some(2.0)
        );
        assert_eq!(
            value(&samples, &format!("{REQUEST_DURATION_SECONDS}_count"), &own),
            Some(2.0)
        );
        assert_eq!(
            value(&samples, PREDICTIONS_TOTAL, &with(&[("class", "a")])),
            Some(1.0)
        );
        assert_eq!(
            value(&samples, PREDICTIONS_TOTAL, &with(&[("class", "b\\c")])),
            Some(2.0),
            "class names are escaped and parse back:\n{text}"
        );
        let bin = |bin| {
            value(
                &samples,
                INPUT_FEATURE_BIN_TOTAL,
                &with(&[("feature", "pixel \"0\""), ("bin", bin)]),
            )
        };
        assert_eq!(bin("underflow"), Some(1.0));
        assert_eq!(bin("0"), Some(1.0));
        assert_eq!(bin("5"), Some(1.0));
        assert_eq!(
            bin("9"),
            Some(1.0),
            "the profile's maximum is in the last bin"
        );
        assert_eq!(bin("overflow"), Some(1.0));
        assert_eq!(bin("3"), Some(0.0), "empty bins are written too");
        let feedback = |revision, result| {
            value(
                &samples,
                FEEDBACK_TOTAL,
                &[
                    ("model", "digits"),
                    ("revision", revision),
                    ("result", result),
                ],
            )
        };
        assert_eq!(feedback("3", "correct"), Some(1.0));
        assert_eq!(feedback("3", "incorrect"), Some(1.0));
        assert_eq!(feedback("2", "correct"), Some(1.0));
        assert_eq!(feedback("2", "incorrect"), Some(0.0));
        let predicted = |bin| value(&samples, PREDICTION_BIN_TOTAL, &with(&[("bin", bin)]));
        assert_eq!(predicted("underflow"), Some(2.0), "NaN is an underflow");
        assert_eq!(predicted("0"), Some(1.0));
        assert_eq!(predicted("5"), Some(1.0));
        assert_eq!(predicted("9"), Some(1.0));
        assert_eq!(predicted("overflow"), Some(1.0));
        assert_eq!(predicted("1"), Some(0.0), "empty bins are written too");
        let errors = |name, revision| {
            value(
                &samples,
                name,
                &[("model", "digits"), ("revision", revision)],
            )
        };
        assert_eq!(errors(FEEDBACK_VALUES_TOTAL, "3"), Some(2.0));
        assert_eq!(errors(FEEDBACK_ABSOLUTE_ERROR_TOTAL, "3"), Some(3.0));
        assert_eq!(errors(FEEDBACK_SQUARED_ERROR_TOTAL, "3"), Some(5.0));
        assert_eq!(
            errors(FEEDBACK_SQUARED_ERROR_SQUARES_TOTAL, "3"),
            Some(17.0)
        );
        assert_eq!(errors(FEEDBACK_VALUES_TOTAL, "2"), Some(1.0));
        assert_eq!(errors(FEEDBACK_ABSOLUTE_ERROR_TOTAL, "2"), Some(0.5));
        assert_eq!(errors(FEEDBACK_SQUARED_ERROR_TOTAL, "2"), Some(0.25));
        assert_eq!(
            errors(FEEDBACK_SQUARED_ERROR_SQUARES_TOTAL, "2"),
            Some(0.0625)
        );
        for name in [
            FEEDBACK_VALUES_TOTAL,
            FEEDBACK_ABSOLUTE_ERROR_TOTAL,
            FEEDBACK_SQUARED_ERROR_TOTAL,
            FEEDBACK_SQUARED_ERROR_SQUARES_TOTAL,
            PREDICTION_BIN_TOTAL,
        ] {
            assert!(text.contains(&format!("# TYPE {name} counter")), "{name}");
        }
        assert_eq!(value(&samples, BATCHES_TOTAL, &own), Some(2.0));
        assert_eq!(value(&samples, BATCH_ROWS_TOTAL, &own), Some(9.0));
        assert!(text.contains("# TYPE modelops_request_duration_seconds histogram"));
    }

    #[test]
    fn a_model_without_profile_or_classes_renders_the_rest() {
        let metrics = Metrics::new("m", 1);
        metrics.set_model(&[], None);
        metrics.count_inputs([[1.0].as_slice()]);
        metrics.count_predicted_values([1.0]);
        let text = metrics.render();
        assert!(!text.contains(INPUT_FEATURE_BIN_TOTAL));
        assert!(!text.contains(PREDICTION_BIN_TOTAL));
        assert!(!text.contains(PREDICTIONS_TOTAL));
        assert!(text.contains("modelops_model_ready{model=\"m\",revision=\"1\"} 0"));
    }
}
