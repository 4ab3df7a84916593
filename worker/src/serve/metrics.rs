//! The serving metrics and their Prometheus text rendering (`GET /metrics`).
//!
//! Plain counters behind one mutex, rendered by hand: the series are few and fixed (their names
//! are in `modelops_api::serving::metrics`, which the Monitor controller parses), and an update
//! is a handful of additions. The input histograms count raw feature values into the bins of
//! the Dataset profile, so the Monitor compares live inputs with the training data bin by bin;
//! a regression model's predicted values are counted the same way, on the bins of its
//! predictions on the training split (the served profile's `predictions`).

use modelops_api::profile::{Histogram, Profile};
use modelops_api::serving::metrics::*;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// A histogram of request durations over [`LATENCY_BUCKETS`].
#[derive(Debug, Default, Clone)]
struct Latency {
    /// Requests at or below each bound (not cumulative; summed when rendered).
    buckets: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// Counts of one feature's raw values on its profile bins.
#[derive(Debug, Clone)]
struct FeatureBins {
    name: String,
    /// The profile's edges, with counts of this server's inputs.
    histogram: Histogram,
}

/// The sums of one revision's regression feedback, from which `mae` and `rmse` (and the spread
/// of the squared errors) are measured.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct ErrorSums {
    values: u64,
    absolute: f64,
    squared: f64,
    squared_squares: f64,
}

/// The regression feedback series with their help, in the order of
/// [`ErrorSums::in_series_order`].
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

impl ErrorSums {
    /// The values of [`ERROR_SERIES`].
    fn in_series_order(&self) -> [f64; 4] {
        [
            self.values as f64,
            self.absolute,
            self.squared,
            self.squared_squares,
        ]
    }

    fn add(&mut self, error: f64) {
        let squared = error * error;
        self.values += 1;
        self.absolute += error.abs();
        self.squared += squared;
        self.squared_squares += squared * squared;
    }
}

#[derive(Debug, Default)]
struct Counters {
    requests: BTreeMap<u16, u64>,
    latency: Latency,
    in_flight: i64,
    ready: bool,
    classes: Vec<String>,
    predictions: Vec<u64>,
    inputs: Vec<FeatureBins>,
    /// Regression: predicted values on the bins of the training predictions.
    prediction_bins: Option<Histogram>,
    /// (correct, incorrect) by revision.
    feedback: BTreeMap<i32, (u64, u64)>,
    /// Regression feedback by revision.
    errors: BTreeMap<i32, ErrorSums>,
    batches: u64,
    batch_rows: u64,
}

/// The metrics of one server (one model revision; feedback of any revision).
#[derive(Debug)]
pub struct Metrics {
    model: String,
    revision: i32,
    counters: Mutex<Counters>,
}

impl Metrics {
    /// Metrics of `model` revision `revision`, before the model is loaded.
    pub fn new(model: &str, revision: i32) -> Self {
        Self {
            model: model.to_owned(),
            revision,
            counters: Mutex::new(Counters::default()),
        }
    }

    fn counters(&self) -> std::sync::MutexGuard<'_, Counters> {
        // A panic while holding the lock leaves plain numbers behind: keep counting.
        self.counters.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Once the model is loaded: its classes (so every class has a series, at 0 until predicted)
    /// and the profile whose bins the input histograms use (the features in the model's order)
    /// and, for a regression model, the prediction histogram (its `predictions`).
    pub fn set_model(&self, classes: &[String], profile: Option<&Profile>) {
        let mut counters = self.counters();
        counters.classes = classes.to_vec();
        counters.predictions = vec![0; classes.len()];
        counters.inputs = profile
            .map(|profile| {
                profile
                    .features
                    .iter()
                    .map(|feature| FeatureBins {
                        name: feature.name.clone(),
                        histogram: feature.histogram.emptied(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        counters.prediction_bins = profile
            .and_then(|profile| profile.predictions.as_ref())
            .map(Histogram::emptied);
    }

    /// Whether the model takes traffic.
    pub fn set_ready(&self, ready: bool) {
        self.counters().ready = ready;
    }

    /// An inference request begins.
    pub fn request_started(&self) {
        self.counters().in_flight += 1;
    }

    /// An inference request was answered with `code` after `seconds`. A refusal of the client's
    /// request (4xx: a bad body, too many rows, a slow upload's 408, an overload's 429, a client
    /// gone, 499) is counted by code but kept out of the latency histogram: it says nothing of the
    /// model's speed, and 30-second 408s or instant 429s would move the p99 a Monitor judges.
    pub fn request_finished(&self, code: u16, seconds: f64) {
        let mut counters = self.counters();
        counters.in_flight -= 1;
        *counters.requests.entry(code).or_default() += 1;
        if (400..500).contains(&code) {
            return;
        }
        let latency = &mut counters.latency;
        latency.count += 1;
        latency.sum += seconds;
        if let Some(bucket) = LATENCY_BUCKETS.iter().position(|&le| seconds <= le) {
            latency.buckets[bucket] += 1;
        }
    }

    /// Counts predicted classes (indices into the classes).
    pub fn count_predictions(&self, classes: impl IntoIterator<Item = usize>) {
        let mut counters = self.counters();
        for class in classes {
            if let Some(count) = counters.predictions.get_mut(class) {
                *count += 1;
            }
        }
    }

    /// Counts a regression model's predicted values (when there are prediction bins).
    pub fn count_predicted_values(&self, values: impl IntoIterator<Item = f32>) {
        if let Some(histogram) = &mut self.counters().prediction_bins {
            for value in values {
                histogram.add(f64::from(value));
            }
        }
    }

    /// Counts input rows: `values(row)` gives a row's value of each profiled feature, in order.
    pub fn count_inputs<'a>(&self, rows: impl IntoIterator<Item = &'a [f64]>) {
        let mut counters = self.counters();
        if counters.inputs.is_empty() {
            return;
        }
        for row in rows {
            for (feature, value) in counters.inputs.iter_mut().zip(row) {
                feature.histogram.add(*value);
            }
        }
    }

    /// Counts one labelled feedback under `revision`.
    pub fn count_feedback(&self, revision: i32, correct: bool) {
        let mut counters = self.counters();
        let entry = counters.feedback.entry(revision).or_default();
        if correct {
            entry.0 += 1;
        } else {
            entry.1 += 1;
        }
    }

    /// Counts one regression feedback under `revision`: `error` is the true value minus the
    /// predicted one.
    pub fn count_regression_feedback(&self, revision: i32, error: f64) {
        self.counters()
            .errors
            .entry(revision)
            .or_default()
            .add(error);
    }

    /// Sets the forward-pass counters (kept by the batcher).
    pub fn set_batches(&self, batches: u64, rows: u64) {
        let mut counters = self.counters();
        counters.batches = batches;
        counters.batch_rows = rows;
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let counters = self.counters();
        let mut out = String::new();
        let own = format!(
            "{LABEL_MODEL}=\"{}\",{LABEL_REVISION}=\"{}\"",
            escape(&self.model),
            self.revision
        );
        render_requests(&mut out, &counters, &own);
        // Labels before the bins: a reader that keeps only so many samples
        // (`modelops_api::serving::MAX_SAMPLES`) loses a wide model's bins, never its feedback.
        render_feedback(&mut out, &counters, &self.model);
        render_regression_feedback(&mut out, &counters, &self.model);
        render_batches(&mut out, &counters, &own);
        render_predictions(&mut out, &counters, &own);
        render_prediction_bins(&mut out, &counters, &own);
        out
    }
}

/// Readiness, requests by code, requests in flight and the latency histogram.
fn render_requests(out: &mut String, counters: &Counters, own: &str) {
    header(
        out,
        MODEL_READY,
        "gauge",
        "1 once the model is loaded and verified.",
    );
    let _ = writeln!(out, "{MODEL_READY}{{{own}}} {}", u8::from(counters.ready));
    header(
        out,
        REQUESTS_TOTAL,
        "counter",
        "Inference requests by HTTP status.",
    );
    for (code, count) in &counters.requests {
        let _ = writeln!(
            out,
            "{REQUESTS_TOTAL}{{{own},{LABEL_CODE}=\"{code}\"}} {count}"
        );
    }
    header(
        out,
        REQUESTS_IN_FLIGHT,
        "gauge",
        "Inference requests being answered.",
    );
    let _ = writeln!(out, "{REQUESTS_IN_FLIGHT}{{{own}}} {}", counters.in_flight);
    header(
        out,
        REQUEST_DURATION_SECONDS,
        "histogram",
        "Seconds to answer an inference request.",
    );
    let latency = &counters.latency;
    let mut cumulative = 0;
    for (le, count) in LATENCY_BUCKETS.iter().zip(latency.buckets) {
        cumulative += count;
        let _ = writeln!(
            out,
            "{REQUEST_DURATION_SECONDS}_bucket{{{own},{LABEL_LE}=\"{le}\"}} {cumulative}"
        );
    }
    let _ = writeln!(
        out,
        "{REQUEST_DURATION_SECONDS}_bucket{{{own},{LABEL_LE}=\"+Inf\"}} {}",
        latency.count
    );
    let _ = writeln!(
        out,
        "{REQUEST_DURATION_SECONDS}_sum{{{own}}} {}",
        latency.sum
    );
    let _ = writeln!(
        out,
        "{REQUEST_DURATION_SECONDS}_count{{{own}}} {}",
        latency.count
    );
}

/// Predicted rows by class and raw inputs on the profile's bins: what drift is measured on.
fn render_predictions(out: &mut String, counters: &Counters, own: &str) {
    if !counters.classes.is_empty() {
        header(
            out,
            PREDICTIONS_TOTAL,
            "counter",
            "Predicted rows by class.",
        );
        for (class, count) in counters.classes.iter().zip(&counters.predictions) {
            let _ = writeln!(
                out,
                "{PREDICTIONS_TOTAL}{{{own},{LABEL_CLASS}=\"{}\"}} {count}",
                escape(class)
            );
        }
    }
    if !counters.inputs.is_empty() {
        header(
            out,
            INPUT_FEATURE_BIN_TOTAL,
            "counter",
            "Raw input values on the bins of the Dataset profile.",
        );
        for feature in &counters.inputs {
            for (bin, count) in feature.histogram.bins() {
                let _ = writeln!(
                    out,
                    "{INPUT_FEATURE_BIN_TOTAL}{{{own},{LABEL_FEATURE}=\"{}\",{LABEL_BIN}=\"{bin}\"}} {count}",
                    escape(&feature.name)
                );
            }
        }
    }
}

/// A regression model's predicted values on the bins of its training predictions.
fn render_prediction_bins(out: &mut String, counters: &Counters, own: &str) {
    let Some(histogram) = &counters.prediction_bins else {
        return;
    };
    header(
        out,
        PREDICTION_BIN_TOTAL,
        "counter",
        "Predicted values on the bins of the model's predictions on its training split.",
    );
    for (bin, count) in histogram.bins() {
        let _ = writeln!(
            out,
            "{PREDICTION_BIN_TOTAL}{{{own},{LABEL_BIN}=\"{bin}\"}} {count}"
        );
    }
}

/// Labelled feedback by result, under the revision that made the prediction (which may be
/// another revision than this pod's).
fn render_feedback(out: &mut String, counters: &Counters, model: &str) {
    header(
        out,
        FEEDBACK_TOTAL,
        "counter",
        "Labelled feedback by result, under the revision that predicted.",
    );
    for (revision, (correct, incorrect)) in &counters.feedback {
        for (result, count) in [(RESULT_CORRECT, correct), (RESULT_INCORRECT, incorrect)] {
            let _ = writeln!(
                out,
                "{FEEDBACK_TOTAL}{{{LABEL_MODEL}=\"{}\",{LABEL_REVISION}=\"{revision}\",{LABEL_RESULT}=\"{result}\"}} {count}",
                escape(model)
            );
        }
    }
}

/// Regression feedback: the values received and the sums of their errors, under the revision
/// that predicted.
fn render_regression_feedback(out: &mut String, counters: &Counters, model: &str) {
    for (index, (name, help)) in ERROR_SERIES.into_iter().enumerate() {
        header(out, name, "counter", help);
        for (revision, sums) in &counters.errors {
            let _ = writeln!(
                out,
                "{name}{{{LABEL_MODEL}=\"{}\",{LABEL_REVISION}=\"{revision}\"}} {}",
                escape(model),
                sums.in_series_order()[index]
            );
        }
    }
}

/// Forward passes and the rows they ran (the batcher's work).
fn render_batches(out: &mut String, counters: &Counters, own: &str) {
    header(out, BATCHES_TOTAL, "counter", "Forward passes run.");
    let _ = writeln!(out, "{BATCHES_TOTAL}{{{own}}} {}", counters.batches);
    header(
        out,
        BATCH_ROWS_TOTAL,
        "counter",
        "Rows run through forward passes.",
    );
    let _ = writeln!(out, "{BATCH_ROWS_TOTAL}{{{own}}} {}", counters.batch_rows);
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A label value as the text format writes it.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use modelops_api::profile::FeatureProfile;
    use modelops_api::serving::{Sample, parse_metrics};

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
