//! The serving protocol as the serving pods (`modelops-worker serve`) and the operator both see
//! it: paths, output names, the feedback key's environment variable, and the Prometheus series a
//! serving pod exposes on `/metrics`, which the Monitor controller scrapes and parses
//! ([`parse_metrics`]).
//!
//! Every series carries the labels `model` (the ModelDeployment's name) and `revision` (the
//! revision number, in decimal). A pod serves one revision, but feedback is counted under the
//! revision its feedback id names, so a pod may expose feedback series of other revisions: sum a
//! series over the pods of every revision, grouped by `revision`.

use serde::{Deserialize, Serialize};

/// The environment variable that holds the feedback key (hex, at least
/// [`MIN_FEEDBACK_KEY_BYTES`] bytes): the same for every replica of every revision of a
/// ModelDeployment, so that any replica verifies the feedback ids any other replica issued. The
/// operator sets it from a Secret of the ModelDeployment.
pub const FEEDBACK_KEY_ENV: &str = "MODELOPS_FEEDBACK_KEY";

/// The shortest feedback key a server accepts, in bytes (HMAC-SHA256 takes up to 64).
pub const MIN_FEEDBACK_KEY_BYTES: usize = 16;

/// The largest request body a server reads when the work order sets none (4 MiB); a larger one
/// is answered 413.
pub const DEFAULT_MAX_REQUEST_BYTES: u64 = 4 << 20;

/// How long a feedback id stays valid when the work order sets nothing else.
pub const DEFAULT_FEEDBACK_MAX_AGE: &str = "1h";

/// Liveness: 200 as long as the process serves HTTP.
pub const LIVE_PATH: &str = "/v2/health/live";
/// Readiness: 200 once the model is loaded and its digest verified; 503 before, after a failed
/// load (with the error in the body) and while shutting down.
pub const READY_PATH: &str = "/v2/health/ready";

/// The `state` of a not-ready answer of [`READY_PATH`] (`{"ready": false, "state", "error"}`)
/// when the model will not load (a refused or missing artifact, a digest mismatch): the server
/// stays up, never ready, and `error` says why. The other states are `loading` and `stopping`.
pub const READY_STATE_FAILED: &str = "failed";
/// The Prometheus metrics.
pub const METRICS_PATH: &str = "/metrics";

/// The Dataset profile whose bins the server's input histograms use (`Profile` JSON; 404 while
/// loading or without one): the drift reference the Monitor compares the histograms with.
pub const PROFILE_PATH: &str = "/modelops/profile";

/// Model metadata: `GET /v2/models/{name}`.
pub fn model_path(name: &str) -> String {
    format!("/v2/models/{name}")
}

/// Inference: `POST /v2/models/{name}/infer`.
pub fn infer_path(name: &str) -> String {
    format!("/v2/models/{name}/infer")
}

/// Feedback: `POST /v2/models/{name}/feedback` with a [`FeedbackRequest`].
pub fn feedback_path(name: &str) -> String {
    format!("/v2/models/{name}/feedback")
}

/// Output of a classification model: the predicted class names (BYTES, `[n]`).
pub const OUTPUT_LABEL: &str = "label";
/// Output of a classification model: every class's probability (FP32, `[n, classes]`).
pub const OUTPUT_PROBABILITIES: &str = "probabilities";
/// Output of a regression model: the predicted value (FP32, `[n]`).
pub const OUTPUT_PREDICTION: &str = "prediction";
/// One feedback id per row (BYTES, `[n]`), for [`FeedbackRequest::id`]: an output of
/// classification and regression models alike.
pub const OUTPUT_FEEDBACK_ID: &str = "feedback_id";

/// The body of `POST /v2/models/{name}/feedback`: the true label of one prediction.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct FeedbackRequest {
    /// A feedback id from the `feedback_id` output of an inference response.
    pub id: String,
    /// The true class, as the data writes it; for a regression model the true value, sent as a
    /// JSON number or its decimal string (`2.3` or `"2.3"`).
    pub label: String,
}

/// Names of the series on `/metrics`.
pub mod metrics {
    /// Counter: inference requests, by `code` (the HTTP status), bad requests included.
    pub const REQUESTS_TOTAL: &str = "modelops_requests_total";
    /// Histogram (`_bucket{le}`, `_sum`, `_count`): seconds from the request's arrival to the
    /// response, of every inference request but those refused with a 4xx (counted in
    /// [`REQUESTS_TOTAL`] only: a client's error or overload says nothing of the model's speed).
    pub const REQUEST_DURATION_SECONDS: &str = "modelops_request_duration_seconds";
    /// Gauge: inference requests being answered now.
    pub const REQUESTS_IN_FLIGHT: &str = "modelops_requests_in_flight";
    /// Counter: predicted rows by `class` (classification models).
    pub const PREDICTIONS_TOTAL: &str = "modelops_predictions_total";
    /// Counter: raw input values by `feature` and `bin`, on the bins of the Dataset profile
    /// (`profile.json`): `bin` is `underflow`, `0` … `9` (bin `i` holds `edges[i] <= v <
    /// edges[i+1]`, the last bin closed) or `overflow`. Text models count `textLength` (in
    /// characters).
    pub const INPUT_FEATURE_BIN_TOTAL: &str = "modelops_input_feature_bin_total";
    /// Counter: labelled feedback by `result` (`correct` or `incorrect`), under the revision the
    /// feedback id names.
    pub const FEEDBACK_TOTAL: &str = "modelops_feedback_total";
    /// Counter: labelled feedback of a regression model (true values received), under the
    /// revision the feedback id names. With the three sums below, what `rmse` and `mae` are
    /// measured on.
    pub const FEEDBACK_VALUES_TOTAL: &str = "modelops_feedback_values_total";
    /// Counter: the sum of `|true - predicted|` over the regression feedback.
    pub const FEEDBACK_ABSOLUTE_ERROR_TOTAL: &str = "modelops_feedback_absolute_error_total";
    /// Counter: the sum of `(true - predicted)²` over the regression feedback.
    pub const FEEDBACK_SQUARED_ERROR_TOTAL: &str = "modelops_feedback_squared_error_total";
    /// Counter: the sum of `(true - predicted)⁴` over the regression feedback: the spread of the
    /// squared errors, which the sequential `rmse` test needs.
    pub const FEEDBACK_SQUARED_ERROR_SQUARES_TOTAL: &str =
        "modelops_feedback_squared_error_squares_total";
    /// Counter: predicted values of a regression model by `bin`, on the bins of the histogram of
    /// the model's predictions on its training split (`predictions` of the served profile):
    /// what prediction drift is measured on for regression.
    pub const PREDICTION_BIN_TOTAL: &str = "modelops_prediction_bin_total";
    /// Gauge: 1 once the model is loaded and verified, 0 before, after a failed load, and while
    /// shutting down.
    pub const MODEL_READY: &str = "modelops_model_ready";
    /// Counter: forward passes run (one per batch).
    pub const BATCHES_TOTAL: &str = "modelops_batches_total";
    /// Counter: rows run through forward passes (divided by batches: the mean batch size).
    pub const BATCH_ROWS_TOTAL: &str = "modelops_batch_rows_total";

    /// Label: the ModelDeployment's name.
    pub const LABEL_MODEL: &str = "model";
    /// Label: the revision number.
    pub const LABEL_REVISION: &str = "revision";
    /// Label: the HTTP status code.
    pub const LABEL_CODE: &str = "code";
    /// Label: a histogram bucket's upper bound.
    pub const LABEL_LE: &str = "le";
    /// Label: a class name as the data writes it.
    pub const LABEL_CLASS: &str = "class";
    /// Label: a feature name.
    pub const LABEL_FEATURE: &str = "feature";
    /// Label: a profile bin (`underflow`, `0` … `9`, `overflow`).
    pub const LABEL_BIN: &str = "bin";
    /// Label: `correct` or `incorrect`.
    pub const LABEL_RESULT: &str = "result";

    /// `result` of feedback whose label is the predicted one.
    pub const RESULT_CORRECT: &str = "correct";
    /// `result` of feedback whose label differs from the predicted one.
    pub const RESULT_INCORRECT: &str = "incorrect";
    /// `bin` of values below the profile's first edge.
    pub const BIN_UNDERFLOW: &str = "underflow";
    /// `bin` of values above the profile's last edge.
    pub const BIN_OVERFLOW: &str = "overflow";

    /// Upper bounds of the latency histogram's buckets, in seconds (`+Inf` follows).
    pub const LATENCY_BUCKETS: [f64; 14] = [
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ];
}

/// One sample of the Prometheus text format.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The series name (`modelops_requests_total`, `modelops_request_duration_seconds_bucket`).
    pub name: String,
    /// Label names and values, in the order written.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
}

impl Sample {
    /// The value of a label.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The most samples [`parse_metrics`] keeps from one exposition. A serving pod writes a few
/// thousand (a feature's bins, the latency buckets, the classes, per revision of feedback); a
/// hostile one could write millions, which must not become millions of allocations.
pub const MAX_SAMPLES: usize = 50_000;

/// Reads the `modelops_` samples of a Prometheus text exposition, at most [`MAX_SAMPLES`]
/// (comments, other series and malformed lines skipped before anything is allocated for them;
/// timestamps ignored).
pub fn parse_metrics(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| line.trim_start().starts_with("modelops_"))
        .filter_map(parse_sample)
        .take(MAX_SAMPLES)
        .collect()
}

fn parse_sample(line: &str) -> Option<Sample> {
    let line = line.trim();
    let name_end = line.find(|c: char| c == '{' || c.is_whitespace())?;
    let name = &line[..name_end];
    if name.is_empty() {
        return None;
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(inner) = rest.strip_prefix('{') {
        let mut chars = inner.char_indices().peekable();
        loop {
            // A label name, `=`, then a quoted value with `\\`, `\"` and `\n` escapes.
            while chars.next_if(|(_, c)| *c == ',' || *c == ' ').is_some() {}
            let (start, first) = chars.next()?;
            if first == '}' {
                rest = &inner[start + 1..];
                break;
            }
            let mut end = start + first.len_utf8();
            for (i, c) in chars.by_ref() {
                if c == '=' {
                    break;
                }
                end = i + c.len_utf8();
            }
            let label = inner[start..end].trim().to_owned();
            if chars.next()?.1 != '"' {
                return None;
            }
            let mut value = String::new();
            loop {
                match chars.next()?.1 {
                    '"' => break,
                    '\\' => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    c => value.push(c),
                }
            }
            labels.push((label, value));
        }
    }
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other.parse().ok()?,
    };
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_with_escaped_labels_parse() {
        let text = r#"
# HELP modelops_requests_total Inference requests.
# TYPE modelops_requests_total counter
modelops_requests_total{model="digits",revision="2",code="200"} 17
modelops_predictions_total{model="m",revision="1",class="a \"quoted\", \\ class\nx"} 3
modelops_request_duration_seconds_bucket{model="m",revision="1",le="+Inf"} 4
modelops_model_ready{model="m",revision="1"} 1 1700000000000
up 1
not a sample
"#;
        let samples = parse_metrics(text);
        assert_eq!(
            samples.len(),
            4,
            "{samples:?}: not `up`, not the malformed line"
        );
        assert_eq!(samples[0].name, metrics::REQUESTS_TOTAL);
        assert_eq!(samples[0].label(metrics::LABEL_CODE), Some("200"));
        assert_eq!(samples[0].value, 17.0);
        assert_eq!(
            samples[1].label(metrics::LABEL_CLASS),
            Some("a \"quoted\", \\ class\nx")
        );
        assert_eq!(samples[2].label(metrics::LABEL_LE), Some("+Inf"));
        assert_eq!(samples[3].value, 1.0, "the timestamp is not the value");
    }

    #[test]
    fn a_flood_of_series_is_cut_short() {
        let mut text = String::from("up 1\n");
        for i in 0..(MAX_SAMPLES + 1000) {
            text.push_str(&format!("modelops_requests_total{{code=\"{i}\"}} 1\n"));
        }
        assert_eq!(parse_metrics(&text).len(), MAX_SAMPLES);
    }

    #[test]
    fn paths_name_the_model() {
        assert_eq!(infer_path("digits"), "/v2/models/digits/infer");
        assert_eq!(feedback_path("digits"), "/v2/models/digits/feedback");
        assert_eq!(model_path("digits"), "/v2/models/digits");
    }
}
