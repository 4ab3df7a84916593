//! The HTTP side of `serve`: the routes of the Open Inference Protocol v2, feedback, health and
//! metrics, over axum.
//!
//! Handlers are thin: [`protocol`] reads and writes the JSON, the [`Batcher`] runs the model,
//! [`feedback`] checks ids, [`Metrics`] counts. Every refusal is a 4xx or 5xx with a JSON body
//! `{"error": "..."}`; no input reaches a panic (and a panic in the model thread fails only its
//! batch).

use super::batcher::{BatchError, Batcher};
use super::feedback::{self, FeedbackClaim, FeedbackKey, ReplayGuard};
use super::metrics::Metrics;
use super::protocol::{
    self, InferRequest, InputKind, ModelInfo, OutputKind, RequestError, Row, RowOutput,
};
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::BodyExt;
use modelops_api::serving::{
    LIVE_PATH, METRICS_PATH, OUTPUT_FEEDBACK_ID, PROFILE_PATH, READY_PATH,
};
use serde_json::{Value, json};
use std::borrow::Cow;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The most of an oversized request body read (and dropped) before answering 413.
pub const DRAIN_LIMIT: usize = 64 << 20;

/// The model a server answers with, once loaded.
pub struct Served {
    /// The model as the protocol describes it.
    pub info: ModelInfo,
    /// The model thread.
    pub batcher: Batcher<Row, RowOutput>,
    /// The Dataset profile of the input histograms, with the model's prediction histogram
    /// (regression) as its `predictions`, as JSON, when there is one.
    pub profile: Option<String>,
}

enum ModelState {
    Loading,
    Ready(Arc<Served>),
    Failed(String),
    Stopped,
}

/// Limits and settings of a server.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The largest request body read.
    pub max_request_bytes: usize,
    /// How long feedback ids stay valid.
    pub feedback_max_age: Duration,
    /// Feedback ids remembered against replays.
    pub replay_capacity: usize,
    /// The most rows an inference request may carry (more: 413).
    pub max_rows: usize,
    /// Inference requests worked on at once (more: 429).
    pub max_concurrent: usize,
    /// What a connection may take, and how many may be open.
    pub connections: ConnectionLimits,
}

/// What one client connection may hold of the server.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// How long a connection may stay without a complete request head: from its opening, and
    /// from the end of each response on a kept-alive connection (an idle one is closed then).
    pub header_timeout: Duration,
    /// How long a request body may take to arrive (more: 408, and the connection closed).
    pub body_timeout: Duration,
    /// Connections open at once; one more is closed as soon as it is accepted.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_connections: 4096,
        }
    }
}

/// The state every handler shares.
pub struct Server {
    name: String,
    revision: i32,
    metrics: Metrics,
    model: RwLock<ModelState>,
    shutting_down: std::sync::atomic::AtomicBool,
    key: FeedbackKey,
    settings: Settings,
    replay: Mutex<ReplayGuard>,
    /// One permit per inference request being worked on.
    inferring: tokio::sync::Semaphore,
    /// The work requests left for after their answers.
    afterwards: Arc<Afterwards>,
}

/// The work a request leaves for after its answer (its log line, its inputs counted into the
/// histograms): queued, and run by a task that the runtime polls once the handler's task has
/// written the answer and waits for the next request, so that the client does not wait for
/// it. One task drains what is queued (a task is spawned when the queue was empty: under load
/// one drains the work of many requests). A scrape of the metrics waits for the work of the
/// requests answered before it began ([`Afterwards::settled`]): what a client was answered is
/// in the next scrape it makes.
#[derive(Default)]
struct Afterwards {
    queue: Mutex<Vec<Box<dyn FnOnce() + Send>>>,
    /// Work queued and work done, counted.
    queued: AtomicU64,
    done: AtomicU64,
    /// Woken whenever work is done.
    progress: tokio::sync::Notify,
}

/// The longest a scrape waits for the work left by answered requests (it is microseconds of
/// work; the bound keeps a scrape answering whatever happens to a task).
const SETTLE_TIMEOUT: Duration = Duration::from_secs(1);

impl Afterwards {
    /// Runs `work` after the current task's answer.
    fn run(self: &Arc<Self>, work: impl FnOnce() + Send + 'static) {
        self.queued.fetch_add(1, Ordering::SeqCst);
        let first = {
            let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            queue.push(Box::new(work));
            queue.len() == 1
        };
        if first {
            // What is left when the runtime drops the task (on shutdown) runs then.
            struct Drain(Arc<Afterwards>);
            impl Drop for Drain {
                fn drop(&mut self) {
                    while self.0.run_queued() {}
                }
            }
            let drain = Drain(Arc::clone(self));
            tokio::spawn(async move {
                // One batch a poll: under load the queue refills while a batch runs, and the
                // other tasks of this thread get their turn between batches.
                while drain.0.run_queued() {
                    tokio::task::yield_now().await;
                }
            });
        }
    }

    /// Runs what is queued; false when nothing was.
    fn run_queued(&self) -> bool {
        let works = std::mem::take(&mut *self.queue.lock().unwrap_or_else(|e| e.into_inner()));
        if works.is_empty() {
            return false;
        }
        let count = works.len() as u64;
        for work in works {
            // One work's panic neither loses the others nor leaves a scrape waiting.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
        }
        self.done.fetch_add(count, Ordering::SeqCst);
        self.progress.notify_waiters();
        true
    }

    /// Waits until as much work is done as had been queued when it was called (or
    /// [`SETTLE_TIMEOUT`]).
    async fn settled(&self) {
        let target = self.queued.load(Ordering::SeqCst);
        let wait = async {
            loop {
                let progress = self.progress.notified();
                tokio::pin!(progress);
                progress.as_mut().enable();
                if self.done.load(Ordering::SeqCst) >= target {
                    return;
                }
                progress.await;
            }
        };
        let _ = tokio::time::timeout(SETTLE_TIMEOUT, wait).await;
    }
}

/// A refusal, as a JSON response.
#[derive(Debug)]
pub(super) struct ApiError(pub(super) RequestError);

impl From<RequestError> for ApiError {
    fn from(error: RequestError) -> Self {
        Self(error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, axum::Json(json!({"error": self.0.message}))).into_response();
        if status == StatusCode::TOO_MANY_REQUESTS {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        if status == StatusCode::REQUEST_TIMEOUT {
            response.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
        }
        response
    }
}

fn error(status: u16, message: impl Into<String>) -> ApiError {
    ApiError(RequestError::status(status, message))
}

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Server {
    /// A server of revision `revision` of the model `name`, its model still loading.
    pub fn new(name: &str, revision: i32, key: FeedbackKey, settings: Settings) -> Self {
        Self {
            name: name.to_owned(),
            revision,
            metrics: Metrics::new(name, revision),
            model: RwLock::new(ModelState::Loading),
            shutting_down: Default::default(),
            key,
            replay: Mutex::new(ReplayGuard::new(settings.replay_capacity)),
            inferring: tokio::sync::Semaphore::new(settings.max_concurrent.max(1)),
            settings,
            afterwards: Arc::default(),
        }
    }

    /// Runs `work` after the answer now being written ([`Afterwards`]).
    pub(super) fn after_answer(&self, work: impl FnOnce() + Send + 'static) {
        self.afterwards.run(work);
    }

    /// The metrics, once the work of the requests answered so far is counted in them.
    pub async fn settled_metrics(&self) -> &Metrics {
        self.afterwards.settled().await;
        &self.metrics
    }

    /// The server's limits and settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The server's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The model is loaded and verified: take traffic. (The loader has given the metrics the
    /// classes and the profile with [`Metrics::set_model`].)
    pub fn set_ready(&self, served: Served) {
        *self.model.write().unwrap_or_else(|e| e.into_inner()) =
            ModelState::Ready(Arc::new(served));
        self.metrics.set_ready(true);
    }

    /// The model could not be loaded: stay up, never ready, and say why.
    pub fn set_failed(&self, message: String) {
        *self.model.write().unwrap_or_else(|e| e.into_inner()) = ModelState::Failed(message);
        self.metrics.set_ready(false);
    }

    /// Shutting down: not ready any more, and the batcher stops waiting for more rows.
    pub fn begin_shutdown(&self) {
        self.shutting_down
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.metrics.set_ready(false);
        if let ModelState::Ready(served) = &*self.model.read().unwrap_or_else(|e| e.into_inner()) {
            served.batcher.drain();
        }
    }

    /// Takes the model out, so that its thread ends once the last request holding it is done.
    pub fn stop(&self) -> Option<Arc<Served>> {
        let state = std::mem::replace(
            &mut *self.model.write().unwrap_or_else(|e| e.into_inner()),
            ModelState::Stopped,
        );
        match state {
            ModelState::Ready(served) => Some(served),
            _ => None,
        }
    }

    /// The model, or why there is none to answer with (503).
    pub(super) fn served(&self) -> Result<Arc<Served>, ApiError> {
        match &*self.model.read().unwrap_or_else(|e| e.into_inner()) {
            ModelState::Ready(served) => Ok(Arc::clone(served)),
            ModelState::Loading => Err(error(503, format!("model {:?} is loading", self.name))),
            ModelState::Failed(message) => Err(error(
                503,
                format!("model {:?} is not served: {message}", self.name),
            )),
            ModelState::Stopped => Err(error(503, "the server is shutting down")),
        }
    }

    /// Readiness, and why not: the state (`loading`, `failed` for a model that will not load,
    /// `stopping`) and a message.
    pub(super) fn readiness(&self) -> Result<(), (&'static str, String)> {
        if self.shutting_down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(("stopping", "the server is shutting down".to_owned()));
        }
        let state = match &*self.model.read().unwrap_or_else(|e| e.into_inner()) {
            ModelState::Failed(_) => modelops_api::serving::READY_STATE_FAILED,
            ModelState::Stopped => "stopping",
            _ => "loading",
        };
        self.served().map(|_| ()).map_err(|e| (state, e.0.message))
    }

    pub(super) fn check_model(&self, name: &str, version: Option<&str>) -> Result<(), ApiError> {
        if name != self.name {
            return Err(error(
                404,
                format!("unknown model {name:?}; this server serves {:?}", self.name),
            ));
        }
        if let Some(version) = version
            && version != self.revision.to_string()
        {
            return Err(error(
                404,
                format!(
                    "model {name:?} has no version {version:?}; this server serves version {}",
                    self.revision
                ),
            ));
        }
        Ok(())
    }

    /// Reads a request body of at most `max_request_bytes` within the body timeout (else 408).
    /// A larger one is still read (and dropped) up to [`DRAIN_LIMIT`] bytes before the 413: a
    /// client that is still sending when the server answers and closes gets a broken pipe
    /// instead of the answer.
    async fn body(&self, body: Body) -> Result<Vec<u8>, ApiError> {
        let timeout = self.settings.connections.body_timeout;
        tokio::time::timeout(timeout, self.read_body(body))
            .await
            .unwrap_or_else(|_| {
                Err(error(
                    408,
                    format!(
                        "the request body did not arrive within {} s; send it at once",
                        timeout.as_secs_f64()
                    ),
                ))
            })
    }

    async fn read_body(&self, body: Body) -> Result<Vec<u8>, ApiError> {
        let limit = self.settings.max_request_bytes;
        let too_large = || {
            error(
                413,
                format!(
                    "the request body is larger than this server's limit of {limit} bytes; send fewer rows per request"
                ),
            )
        };
        let mut body = body;
        let mut bytes = Vec::new();
        let mut total = 0usize;
        while let Some(frame) = body.frame().await {
            let frame =
                frame.map_err(|e| error(400, format!("could not read the request body: {e}")))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            total = total.saturating_add(data.len());
            if total <= limit {
                bytes.extend_from_slice(&data);
            } else if total > DRAIN_LIMIT.max(limit) {
                return Err(too_large());
            } else if !bytes.is_empty() {
                bytes = Vec::new();
            }
        }
        if total > limit {
            return Err(too_large());
        }
        Ok(bytes)
    }

    /// An inference over HTTP: the body read (within its limits), then [`Server::predict`]; the
    /// answer is JSON, or JSON then raw tensors for outputs asked for raw (the binary tensor
    /// extension).
    async fn infer(
        self: &Arc<Self>,
        name: &str,
        version: Option<&str>,
        request_id: &str,
        headers: &HeaderMap,
        body: Body,
    ) -> Result<Response, ApiError> {
        self.check_model(name, version)?;
        let header_length = binary_header_length(headers)?;
        let body = self.body(body).await?;
        self.predict(
            request_id,
            body.len(),
            move |info| protocol::parse_infer(&body, header_length, info),
            |mut response, binary_outputs| {
                if binary_outputs.is_empty() {
                    return (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        response.to_json(),
                    )
                        .into_response();
                }
                let raw = response.split_binary_outputs(binary_outputs);
                let mut body = serde_json::to_vec(&response).expect("a JSON value serialises");
                let header_length = body.len();
                body.extend_from_slice(&raw);
                (
                    [
                        (
                            axum::http::header::CONTENT_TYPE,
                            "application/octet-stream".to_owned(),
                        ),
                        (
                            axum::http::HeaderName::from_static(protocol::BINARY_HEADER_LENGTH),
                            header_length.to_string(),
                        ),
                    ],
                    body,
                )
                    .into_response()
            },
        )
        .await
    }

    /// An inference, whichever transport brought it: holding one of the `max_concurrent`
    /// permits (else 429), the request (`body_bytes` long) parsed by `parse` and the answer
    /// signed and written by `finish` (given the response and the outputs asked for raw), each
    /// on the blocking threads when it is large ([`offload`]), so that the async threads keep
    /// answering probes; the forward pass runs on the model's thread, or at once here for a lone
    /// small request ([`Server::run_rows`]). The limits, metrics and feedback ids are the same
    /// for every transport.
    pub(super) async fn predict<T: Send + 'static>(
        self: &Arc<Self>,
        request_id: &str,
        body_bytes: usize,
        parse: impl FnOnce(&ModelInfo) -> Result<InferRequest, RequestError> + Send + 'static,
        finish: impl FnOnce(protocol::InferResponse<'_>, &[String]) -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let _permit = self.inferring.try_acquire().map_err(|_| {
            error(
                429,
                format!(
                    "this server is working on {} inference requests already (spec.serving.maxConcurrentRequests); retry in a moment",
                    self.settings.max_concurrent
                ),
            )
        })?;
        let served = self.served()?;
        let parsing = Arc::clone(&served);
        let InferRequest {
            id,
            rows,
            outputs,
            binary_outputs,
        } = offload(body_bytes <= INLINE_BODY_BYTES, move || {
            parse(&parsing.info)
        })
        .await??;
        if rows.len() > self.settings.max_rows {
            return Err(error(
                413,
                format!(
                    "the request has {} rows; this model takes at most {} per request (spec.serving.maxRowsPerRequest): send fewer rows per request",
                    rows.len(),
                    self.settings.max_rows
                ),
            ));
        }
        let inputs = self.inputs_to_count(&served.info, &rows);
        let results = self
            .run_rows(&served, rows, body_bytes)
            .await
            .map_err(|e| match e {
                BatchError::Overloaded => error(429, e.to_string()),
                BatchError::Stopped => error(503, e.to_string()),
                BatchError::Failed(_) => error(500, e.to_string()),
            })?;
        self.metrics
            .count_predictions(results.iter().filter_map(|r| match r {
                RowOutput::Class { index, .. } => Some(*index),
                RowOutput::Value(_) => None,
            }));
        self.metrics
            .count_predicted_values(results.iter().filter_map(|r| match r {
                RowOutput::Value(value) => Some(*value),
                RowOutput::Class { .. } => None,
            }));
        if let Some(inputs) = inputs {
            let server = Arc::clone(self);
            self.after_answer(move || server.metrics.count_inputs(inputs.rows()));
        }
        let server = Arc::clone(self);
        let request_id = request_id.to_owned();
        offload(results.len() <= INLINE_ROWS, move || {
            let wants_feedback = outputs
                .as_ref()
                .is_none_or(|o| o.iter().any(|n| n == OUTPUT_FEEDBACK_ID));
            let feedback_ids = if wants_feedback {
                server.feedback_ids(&served.info, &results)
            } else {
                Vec::new()
            };
            let id = id.unwrap_or(request_id);
            let response = protocol::infer_response(
                &served.info,
                &id,
                &results,
                &feedback_ids,
                outputs.as_deref(),
            );
            finish(response, &binary_outputs)
        })
        .await
    }

    /// Runs a request's rows: at once on this thread when it is the only inference in flight
    /// and small, in rows and in bytes (the cost of a text model's pass grows with its texts)
    /// ([`Batcher::try_run_now`]: no batch to share, so no hand-off to the model thread and
    /// back), else in the model thread's next batch. Before deciding it lets the other requests
    /// that are ready run up to here, so that under load requests still meet in batches.
    async fn run_rows(
        &self,
        served: &Served,
        rows: Vec<Row>,
        body_bytes: usize,
    ) -> Result<Vec<RowOutput>, BatchError> {
        let alone =
            || self.settings.max_concurrent.max(1) - self.inferring.available_permits() == 1;
        let mut rows = rows;
        if rows.len() <= INLINE_ROWS && body_bytes <= INLINE_BODY_BYTES && alone() {
            tokio::task::yield_now().await;
            if alone() {
                match served.batcher.try_run_now(rows) {
                    Ok(outputs) => return outputs,
                    Err(given_back) => rows = given_back,
                }
            }
        }
        served.batcher.run(rows).await
    }

    /// One signed feedback id per row, claiming its prediction: the class name, or the value
    /// as [`feedback::value_text`] writes it. One nonce and one key for the response
    /// ([`feedback::ResponseSigner`]).
    fn feedback_ids(&self, info: &ModelInfo, results: &[RowOutput]) -> Vec<String> {
        let mut nonce = [0u8; feedback::NONCE_BYTES];
        rand::fill(&mut nonce);
        let mut signer = feedback::ResponseSigner::new(
            &self.key,
            &self.name,
            self.revision,
            unix_seconds(),
            &nonce,
        );
        results
            .iter()
            .enumerate()
            .map(|(row, result)| {
                let predicted = match (result, &info.output) {
                    (RowOutput::Class { index, .. }, OutputKind::Classes(classes)) => {
                        Cow::Borrowed(classes[*index].as_str())
                    }
                    (RowOutput::Value(value), _) => Cow::Owned(feedback::value_text(*value)),
                    (RowOutput::Class { .. }, OutputKind::Value) => Cow::Borrowed(""),
                };
                signer.sign(row, &predicted)
            })
            .collect()
    }

    /// What the input histograms count of `rows`, copied to be counted after the answer (the
    /// rows go to the model); `None` when the model has no input histograms.
    fn inputs_to_count(&self, info: &ModelInfo, rows: &[Row]) -> Option<InputsToCount> {
        if !self.metrics.counts_inputs() {
            return None;
        }
        let mut inputs = InputsToCount {
            values: Vec::new(),
            ends: Vec::with_capacity(rows.len()),
        };
        match &info.input {
            InputKind::Table { features } => {
                inputs.values.reserve(rows.len() * features.len());
                for row in rows {
                    if let Row::Features(values) = row {
                        inputs.values.extend_from_slice(values);
                    }
                    inputs.ends.push(inputs.values.len());
                }
            }
            InputKind::Text => {
                // The profile of a text data set has one feature: the text length in characters.
                for row in rows {
                    inputs.values.push(match row {
                        Row::Text(text) => text.chars().count() as f64,
                        Row::Features(_) => f64::NAN,
                    });
                    inputs.ends.push(inputs.values.len());
                }
            }
        }
        Some(inputs)
    }

    async fn feedback(&self, name: &str, body: Body) -> Result<Value, ApiError> {
        self.check_model(name, None)?;
        let body = self.body(body).await?;
        let served = self.served()?;
        let request: Value = serde_json::from_slice(&body)
            .map_err(|e| error(400, format!("the body is not valid JSON: {e}")))?;
        let id = request["id"].as_str().ok_or_else(|| {
            error(
                400,
                format!("the feedback has no string \"id\"; {FEEDBACK_USAGE}"),
            )
        })?;
        match &served.info.output {
            OutputKind::Classes(classes) => self.class_feedback(id, &request["label"], classes),
            OutputKind::Value => self.value_feedback(id, &request["label"]),
        }
    }

    /// Feedback on a classification: counted as correct or incorrect.
    fn class_feedback(
        &self,
        id: &str,
        label: &Value,
        classes: &[String],
    ) -> Result<Value, ApiError> {
        let label = match label {
            Value::String(label) => label.clone(),
            // A class written as a number in the data (digits: 0 to 9) may come as one.
            Value::Number(number) => number.to_string(),
            _ => {
                return Err(error(
                    400,
                    format!("the feedback has no string \"label\"; {FEEDBACK_USAGE}"),
                ));
            }
        };
        let claim = self.verified_claim(id)?;
        // Another revision may have other classes: only this revision's are known here, and a
        // wrong label for another revision counts as incorrect, as any wrong class would.
        if claim.revision == self.revision && !classes.contains(&label) {
            return Err(error(
                400,
                format!(
                    "unknown label {label:?}; model {:?} has the classes {}",
                    self.name,
                    protocol_classes(classes)
                ),
            ));
        }
        self.first_use(&claim)?;
        let correct = label == claim.predicted;
        self.metrics.count_feedback(claim.revision, correct);
        Ok(json!({"revision": claim.revision, "correct": correct}))
    }

    /// Feedback on a regression: its error (true minus predicted) is added to the sums.
    fn value_feedback(&self, id: &str, label: &Value) -> Result<Value, ApiError> {
        let true_value = true_value(label)?;
        let claim = self.verified_claim(id)?;
        let predicted = match claim.predicted.parse::<f64>() {
            Ok(predicted) if predicted.is_finite() => predicted,
            Ok(_) => {
                return Err(error(
                    400,
                    format!(
                        "the feedback id's prediction is {}, not a finite number: its error cannot be counted",
                        claim.predicted
                    ),
                ));
            }
            Err(_) => {
                return Err(error(
                    400,
                    format!(
                        "the feedback id is of a classification (it predicted the class {:?}), but model {:?} is a regression model; send an id from the feedback_id output of this model's inference responses",
                        claim.predicted, self.name
                    ),
                ));
            }
        };
        let error_value = true_value - predicted;
        // The pod sums e⁴: beyond 1e15 (e⁴ = 1e60) a few labels could overflow the sum and
        // freeze it, so such a label is refused rather than counted.
        if error_value.abs() > MAX_FEEDBACK_ERROR {
            return Err(error(
                400,
                format!(
                    "the \"label\" {true_value} is too far from the predicted value {predicted} to be counted; send the true value in the target's own units"
                ),
            ));
        }
        self.first_use(&claim)?;
        self.metrics
            .count_regression_feedback(claim.revision, error_value);
        Ok(json!({"revision": claim.revision, "error": error_value}))
    }

    /// Checks a feedback id (signature, age, model) and returns its claim.
    fn verified_claim(&self, id: &str) -> Result<FeedbackClaim, ApiError> {
        let now = unix_seconds();
        let max_age = self.settings.feedback_max_age.as_secs();
        let claim = feedback::verify(&self.key, &self.name, id, now, max_age)
            .map_err(|e| error(400, e.to_string()))?;
        if claim.model != self.name {
            return Err(error(
                400,
                format!(
                    "the feedback id belongs to model {:?}, not {:?}",
                    claim.model, self.name
                ),
            ));
        }
        Ok(claim)
    }

    /// Records the claim's nonce, refusing an id this replica has already counted (409).
    fn first_use(&self, claim: &FeedbackClaim) -> Result<(), ApiError> {
        let max_age = self.settings.feedback_max_age.as_secs();
        let now = unix_seconds();
        let first = self
            .replay
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .first_use(&claim.nonce, claim.issued_at.saturating_add(max_age), now);
        if first {
            Ok(())
        } else {
            Err(error(409, "this feedback id was already counted"))
        }
    }
}

/// The largest regression error a feedback may bring (|true - predicted|).
const MAX_FEEDBACK_ERROR: f64 = 1e15;

/// How to send feedback, for the errors that say what is missing.
const FEEDBACK_USAGE: &str = "send {\"id\": \"<a feedback_id from an inference response>\", \"label\": \"<the true class>\"}, or for a regression model {\"id\": \"<…>\", \"label\": <the true value as a number, 2.3 or \"2.3\">}";

/// The true value of a regression feedback: a JSON number, or a string holding a decimal number;
/// finite.
fn true_value(label: &Value) -> Result<f64, ApiError> {
    let value = match label {
        Value::Number(number) => number.as_f64(),
        Value::String(text) => text.trim().parse::<f64>().ok(),
        _ => None,
    };
    match value {
        Some(value) if value.is_finite() => Ok(value),
        _ => {
            let shown = match label {
                Value::Null => "missing".to_owned(),
                other => {
                    let text = other.to_string();
                    match text.char_indices().nth(40) {
                        Some((cut, _)) => format!("{}…", &text[..cut]),
                        None => text,
                    }
                }
            };
            Err(error(
                400,
                format!(
                    "the feedback's \"label\" is {shown}, not a finite number; send the true value as a JSON number or a string holding a decimal number (2.3 or \"2.3\")"
                ),
            ))
        }
    }
}

/// A request's input values, row after row, for the input histograms.
struct InputsToCount {
    values: Vec<f64>,
    /// Where each row's values end in `values`.
    ends: Vec<usize>,
}

impl InputsToCount {
    fn rows(&self) -> impl Iterator<Item = &[f64]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(&self.ends)
            .map(|(start, &end)| &self.values[start..end])
    }
}

/// Request bodies up to this size are parsed on the async thread that read them (about 50 µs of
/// work for 32 rows of 64 features); larger ones on the blocking threads.
const INLINE_BODY_BYTES: usize = 64 * 1024;

/// Responses of up to this many rows are signed and written on the async thread; larger ones on
/// the blocking threads.
const INLINE_ROWS: usize = 64;

/// Runs CPU work (parsing, signing, serialising): `small` work at once on this thread, since
/// handing it to another thread and back costs more than the work (two thread wake-ups), larger
/// work on the blocking threads, so that the async threads keep answering probes meanwhile.
async fn offload<T: Send + 'static>(
    small: bool,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    if small {
        return Ok(work());
    }
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| error(500, format!("the request's work failed: {e}")))
}

fn protocol_classes(classes: &[String]) -> String {
    const SHOWN: usize = 20;
    let mut list = classes
        .iter()
        .take(SHOWN)
        .map(|c| format!("{c:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    if classes.len() > SHOWN {
        list.push_str(&format!(", … ({} in all)", classes.len()));
    }
    list
}

/// The header of a request's id, in the request (a client's or a proxy's) and in the response.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The longest request id taken from a client; a longer or odd one is replaced.
const MAX_REQUEST_ID: usize = 128;

/// The request's id: the client's `x-request-id` when it is a plain token (at most
/// [`MAX_REQUEST_ID`] letters, digits and `-._:`), else a random one. It is the response's
/// `x-request-id`, the server's log line of the request, and the body's `id` when the request's
/// body has none.
pub(super) fn request_id(headers: &HeaderMap) -> String {
    let given = headers
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|id| {
            !id.is_empty()
                && id.len() <= MAX_REQUEST_ID
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._:".contains(&b))
        });
    if let Some(id) = given {
        return id.to_owned();
    }
    let mut bytes = [0u8; 16];
    rand::fill(&mut bytes);
    crate::artifact::hex(&bytes)
}

/// The response to a request with id `id`: its `x-request-id` header, and one log line with the
/// id, what was asked, the status, the time taken and, for a refusal, why (written after the
/// answer, [`Server::after_answer`]).
fn answer(
    server: &Server,
    id: &str,
    what: std::fmt::Arguments<'_>,
    started: Instant,
    result: Result<Response, ApiError>,
) -> Response {
    let millis = started.elapsed().as_secs_f64() * 1000.0;
    let line = match &result {
        Ok(_) => format!("request {id}: {what}: 200 in {millis:.1} ms"),
        Err(error) => format!(
            "request {id}: {what}: {} in {millis:.1} ms: {}",
            error.0.status, error.0.message
        ),
    };
    server.after_answer(move || tracing::info!("{line}"));
    let mut response = match result {
        Ok(response) => response,
        Err(error) => error.into_response(),
    };
    if let Ok(value) = axum::http::HeaderValue::from_str(id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

/// Counts a request when its response is ready, or as 499 when the client went away first.
pub(super) struct RequestTimer<'a> {
    metrics: &'a Metrics,
    pub(super) started: Instant,
    pub(super) code: Option<u16>,
}

impl<'a> RequestTimer<'a> {
    pub(super) fn start(metrics: &'a Metrics) -> Self {
        metrics.request_started();
        Self {
            metrics,
            started: Instant::now(),
            code: None,
        }
    }
}

impl Drop for RequestTimer<'_> {
    fn drop(&mut self) {
        self.metrics.request_finished(
            self.code.unwrap_or(499),
            self.started.elapsed().as_secs_f64(),
        );
    }
}

fn respond(result: Result<Value, ApiError>) -> Response {
    match result {
        Ok(body) => axum::Json(body).into_response(),
        Err(error) => error.into_response(),
    }
}

/// The length of the JSON at the start of a body of the binary tensor extension, from its
/// `Inference-Header-Content-Length` header; `None` for a JSON body.
fn binary_header_length(headers: &HeaderMap) -> Result<Option<usize>, ApiError> {
    let Some(value) = headers.get(protocol::BINARY_HEADER_LENGTH) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .map(Some)
        .ok_or_else(|| {
            error(
                400,
                format!(
                    "{}: {:?} is not a length: it is the number of bytes of JSON at the start of the body",
                    protocol::BINARY_HEADER_LENGTH,
                    String::from_utf8_lossy(value.as_bytes())
                ),
            )
        })
}

async fn infer(
    State(server): State<Arc<Server>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut timer = RequestTimer::start(&server.metrics);
    let id = request_id(&headers);
    let result = server.infer(&name, None, &id, &headers, body).await;
    let response = answer(
        &server,
        &id,
        format_args!("infer {name}"),
        timer.started,
        result,
    );
    timer.code = Some(response.status().as_u16());
    response
}

async fn infer_version(
    State(server): State<Arc<Server>>,
    Path((name, version)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut timer = RequestTimer::start(&server.metrics);
    let id = request_id(&headers);
    let result = server
        .infer(&name, Some(&version), &id, &headers, body)
        .await;
    let response = answer(
        &server,
        &id,
        format_args!("infer {name} version {version}"),
        timer.started,
        result,
    );
    timer.code = Some(response.status().as_u16());
    response
}

async fn feedback(
    State(server): State<Arc<Server>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let id = request_id(&headers);
    let result = server
        .feedback(&name, body)
        .await
        .map(|body| axum::Json(body).into_response());
    answer(
        &server,
        &id,
        format_args!("feedback {name}"),
        started,
        result,
    )
}

fn model_metadata(server: &Server, name: &str, version: Option<&str>) -> Response {
    respond(
        server
            .check_model(name, version)
            .and_then(|()| server.served())
            .map(|served| served.info.metadata()),
    )
}

async fn model(State(server): State<Arc<Server>>, Path(name): Path<String>) -> Response {
    model_metadata(&server, &name, None)
}

async fn model_version(
    State(server): State<Arc<Server>>,
    Path((name, version)): Path<(String, String)>,
) -> Response {
    model_metadata(&server, &name, Some(&version))
}

fn ready_response(readiness: Result<(), (&'static str, String)>) -> Response {
    match readiness {
        Ok(()) => axum::Json(json!({"ready": true})).into_response(),
        Err((state, reason)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"ready": false, "state": state, "error": reason})),
        )
            .into_response(),
    }
}

async fn ready(State(server): State<Arc<Server>>) -> Response {
    ready_response(server.readiness())
}

async fn model_ready(State(server): State<Arc<Server>>, Path(name): Path<String>) -> Response {
    match server.check_model(&name, None) {
        Ok(()) => ready_response(server.readiness()),
        Err(error) => error.into_response(),
    }
}

async fn model_version_ready(
    State(server): State<Arc<Server>>,
    Path((name, version)): Path<(String, String)>,
) -> Response {
    match server.check_model(&name, Some(&version)) {
        Ok(()) => ready_response(server.readiness()),
        Err(error) => error.into_response(),
    }
}

async fn live() -> Response {
    axum::Json(json!({"live": true})).into_response()
}

async fn server_metadata() -> Response {
    axum::Json(protocol::server_metadata()).into_response()
}

async fn metrics(State(server): State<Arc<Server>>) -> Response {
    server.afterwards.settled().await;
    if let ModelState::Ready(served) = &*server.model.read().unwrap_or_else(|e| e.into_inner()) {
        let stats = served.batcher.stats();
        server.metrics.set_batches(
            stats.batches.load(std::sync::atomic::Ordering::Relaxed),
            stats.rows.load(std::sync::atomic::Ordering::Relaxed),
        );
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        server.metrics.render(),
    )
        .into_response()
}

async fn profile(State(server): State<Arc<Server>>) -> Response {
    let profile = match &*server.model.read().unwrap_or_else(|e| e.into_inner()) {
        ModelState::Ready(served) => served.profile.clone(),
        _ => None,
    };
    match profile {
        Some(json) => (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            json,
        )
            .into_response(),
        None => error(404, "this server has no Dataset profile").into_response(),
    }
}

async fn not_found(method: Method, uri: Uri) -> Response {
    error(
        404,
        format!(
            "no route {method} {}; the API is {LIVE_PATH}, {READY_PATH}, /v2, /v2/models/{{name}}, /v2/models/{{name}}/infer, /v2/models/{{name}}/feedback, {METRICS_PATH} and {PROFILE_PATH}",
            uri.path()
        ),
    )
    .into_response()
}

async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    error(405, format!("{method} is not allowed on {}", uri.path())).into_response()
}

/// The routes.
pub fn router(server: Arc<Server>) -> Router {
    Router::new()
        .route(LIVE_PATH, get(live))
        .route(READY_PATH, get(ready))
        .route("/v2", get(server_metadata))
        .route("/v2/models/{name}", get(model))
        .route("/v2/models/{name}/ready", get(model_ready))
        .route("/v2/models/{name}/infer", post(infer))
        .route("/v2/models/{name}/feedback", post(feedback))
        .route("/v2/models/{name}/versions/{version}", get(model_version))
        .route(
            "/v2/models/{name}/versions/{version}/ready",
            get(model_version_ready),
        )
        .route(
            "/v2/models/{name}/versions/{version}/infer",
            post(infer_version),
        )
        .route(METRICS_PATH, get(metrics))
        .route(PROFILE_PATH, get(profile))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(server)
}

/// Serves on `listener` until `shutdown` resolves, then stops accepting connections, answers
/// the requests in flight, and returns.
///
/// Each connection is served by hyper with a timer: a connection that sends no complete request
/// head within `header_timeout` (from its opening, or from the end of the last response) is
/// closed, so idle and slow-head clients cannot pile up; at most `max_connections` are open at
/// once, and one more is closed on accept. The server's own work per request is bounded by the
/// body limits and the inference permits ([`Server::infer`]).
pub async fn serve(
    listener: tokio::net::TcpListener,
    server: Arc<Server>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::server::graceful::GracefulShutdown;
    use hyper_util::service::TowerToHyperService;
    let limits = server.settings.connections;
    let app = router(Arc::clone(&server));
    let open = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, say: give the open connections a moment to end.
                    tracing::warn!("accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = Arc::clone(&open).try_acquire_owned() else {
            drop(stream);
            continue;
        };
        // Small responses on kept-alive connections must not wait for Nagle's algorithm.
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    server.begin_shutdown();
    graceful.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::batcher::BatchConfig;
    use modelops_api::profile::{FeatureProfile, Histogram, Profile};
    use modelops_api::serving::metrics::{
        FEEDBACK_ABSOLUTE_ERROR_TOTAL, FEEDBACK_SQUARED_ERROR_SQUARES_TOTAL,
        FEEDBACK_SQUARED_ERROR_TOTAL, FEEDBACK_TOTAL, FEEDBACK_VALUES_TOTAL,
        INPUT_FEATURE_BIN_TOTAL, PREDICTION_BIN_TOTAL,
    };
    use modelops_api::serving::parse_metrics;
    use std::sync::atomic::Ordering;

    fn model() -> ModelInfo {
        ModelInfo {
            name: "toy".into(),
            revision: 1,
            platform: "modelops-mlp".into(),
            digest: "sha256:00".into(),
            input: InputKind::Table {
                features: vec!["a".into(), "b".into()],
            },
            output: OutputKind::Classes(vec!["no".into(), "yes".into()]),
        }
    }

    fn settings() -> Settings {
        Settings {
            max_request_bytes: 1024,
            feedback_max_age: Duration::from_secs(3600),
            replay_capacity: 16,
            max_rows: 8,
            max_concurrent: 4,
            connections: ConnectionLimits::default(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shutdown_stops_accepting_then_answers_the_request_in_flight() {
        // A forward pass that holds on until the test lets it go.
        let (release, released) = std::sync::mpsc::channel::<()>();
        let released = Mutex::new(released);
        let (server, address, stop, serving) = toy_server(settings(), move || {
            let _ = released.lock().unwrap().recv();
        })
        .await;

        let request = tokio::task::spawn_blocking(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .into();
            let mut response = agent
                .post(&format!("http://{address}/v2/models/toy/infer"))
                .send(r#"{"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]}"#)
                .unwrap();
            (
                response.status().as_u16(),
                response.body_mut().read_to_string().unwrap(),
            )
        });
        let served = server.served().unwrap();
        while served.batcher.stats().batches.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        // The request is in the forward pass: shut down.
        stop.send(()).unwrap();
        while tokio::net::TcpStream::connect(address).await.is_ok() {
            tokio::task::yield_now().await;
        }
        assert!(server.readiness().is_err(), "not ready while draining");
        assert!(!request.is_finished(), "the request is still held");
        drop(release);
        let (status, body) = request.await.unwrap();
        assert_eq!(status, 200, "{body}");
        assert!(body.contains(r#""data":["yes"]"#), "{body}");
        serving.await.unwrap().unwrap();
    }

    /// A ready classifier of "toy" whose forward pass answers "yes" to every row (after
    /// `before_answer` returns), serving on a local port until the sender is dropped or sent to.
    async fn toy_server(
        settings: Settings,
        before_answer: impl Fn() + Send + 'static,
    ) -> (
        Arc<Server>,
        std::net::SocketAddr,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<std::io::Result<()>>,
    ) {
        let server = Arc::new(Server::new("toy", 1, FeedbackKey::random(), settings));
        let batcher = Batcher::spawn(
            BatchConfig {
                max_rows: 8,
                timeout: Duration::ZERO,
                queue: 8,
            },
            move |rows: Vec<Row>| {
                before_answer();
                Ok(rows
                    .iter()
                    .map(|_| RowOutput::Class {
                        index: 1,
                        probabilities: vec![0.0, 1.0],
                    })
                    .collect())
            },
        );
        server.set_ready(Served {
            info: model(),
            batcher,
            profile: None,
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(serve(listener, Arc::clone(&server), async {
            let _ = stopped.await;
        }));
        (server, address, stop, serving)
    }

    /// Sends `request` (a whole HTTP/1.1 request) on `stream` and reads one response's head and
    /// body (the server sets Content-Length).
    async fn exchange(stream: &mut tokio::net::TcpStream, request: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut received = Vec::new();
        let mut buffer = [0u8; 4096];
        loop {
            let n = stream.read(&mut buffer).await.unwrap();
            assert!(n > 0, "closed before a whole response: {received:?}");
            received.extend_from_slice(&buffer[..n]);
            let text = String::from_utf8_lossy(&received).into_owned();
            let Some((head, body)) = text.split_once("\r\n\r\n") else {
                continue;
            };
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if body.len() >= length {
                let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
                return (status, body.to_owned());
            }
        }
    }

    /// Whether the server closes `stream` within `within` (reading nothing more).
    async fn closed_within(stream: &mut tokio::net::TcpStream, within: Duration) -> bool {
        use tokio::io::AsyncReadExt;
        let mut rest = Vec::new();
        matches!(
            tokio::time::timeout(within, stream.read_to_end(&mut rest)).await,
            Ok(Ok(_)) | Ok(Err(_))
        )
    }

    const READY_REQUEST: &str = "GET /v2/health/ready HTTP/1.1\r\nHost: toy\r\n\r\n";

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn idle_and_slow_clients_neither_starve_readiness_nor_stay_connected() {
        use tokio::io::AsyncWriteExt;
        let mut limits = settings();
        limits.connections.header_timeout = Duration::from_secs(1);
        limits.connections.body_timeout = Duration::from_secs(1);
        let (_server, address, _stop, _) = toy_server(limits, || {}).await;
        let connect = || tokio::net::TcpStream::connect(address);
        // 500 connections that send nothing, 50 that send a head and then a body byte by byte.
        let mut idle = Vec::new();
        for _ in 0..500 {
            idle.push(connect().await.unwrap());
        }
        let mut slow = Vec::new();
        for _ in 0..50 {
            let mut stream = connect().await.unwrap();
            stream
                .write_all(b"POST /v2/models/toy/infer HTTP/1.1\r\nHost: toy\r\nContent-Length: 1000\r\n\r\n{")
                .await
                .unwrap();
            slow.push(stream);
        }
        // A kept-alive client that went quiet after one request.
        let mut kept = connect().await.unwrap();
        assert_eq!(exchange(&mut kept, READY_REQUEST).await.0, 200);

        let mut slowest = Duration::ZERO;
        for _ in 0..20 {
            let started = std::time::Instant::now();
            let mut probe = connect().await.unwrap();
            let (status, body) = exchange(&mut probe, READY_REQUEST).await;
            assert_eq!(status, 200, "{body}");
            slowest = slowest.max(started.elapsed());
        }
        println!(
            "readiness beside 500 idle and 50 slow clients: slowest of 20 answers {slowest:?}"
        );
        assert!(slowest < Duration::from_millis(100), "{slowest:?}");

        // The timeouts close them all: the idle ones and the quiet kept-alive one after the
        // header timeout, the slow bodies with a 408 after the body timeout.
        let within = Duration::from_secs(5);
        for stream in idle.iter_mut().chain([&mut kept]) {
            assert!(
                closed_within(stream, within).await,
                "an idle connection stayed open"
            );
        }
        for stream in &mut slow {
            use tokio::io::AsyncReadExt;
            let mut answer = Vec::new();
            tokio::time::timeout(within, stream.read_to_end(&mut answer))
                .await
                .expect("a slow body is answered and closed")
                .unwrap();
            let answer = String::from_utf8_lossy(&answer);
            assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        }
    }

    /// The process' resident memory in bytes (Linux).
    fn resident_bytes() -> u64 {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
        let pages: u64 = statm
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        pages * 4096
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_live_server_answers_fuzzed_requests_without_a_5xx() {
        use proptest::strategy::{Strategy, ValueTree};
        let (server, address, _stop, _) = toy_server(settings(), || {}).await;
        use crate::serve::fuzz::{request_like, valid_for};
        // Half malformed, half well-formed (some over the 8-row limit).
        let strategy = proptest::prop_oneof![request_like(), valid_for(2)];
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let before = resident_bytes();
        let mut codes = std::collections::BTreeMap::<u16, u32>::new();
        for _ in 0..1000 {
            let body = strategy
                .new_tree(&mut runner)
                .unwrap()
                .current()
                .to_string();
            let request = format!(
                "POST /v2/models/toy/infer HTTP/1.1\r\nHost: toy\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
            let (status, answer) = exchange(&mut stream, &request).await;
            assert!(status < 500, "{status} {answer} for {body}");
            *codes.entry(status).or_default() += 1;
        }
        let grown = resident_bytes().saturating_sub(before);
        println!(
            "1000 fuzzed requests: answers by status {codes:?}; resident memory grew {} KiB",
            grown / 1024
        );
        assert!(grown < 64 << 20, "memory grew {grown} bytes");
        assert!(codes.get(&200).copied().unwrap_or(0) > 100, "{codes:?}");
        assert!(server.readiness().is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn too_many_rows_is_413_and_too_many_requests_429() {
        let (server, address, _stop, _) = toy_server(settings(), || {}).await;
        let infer = |rows: usize| {
            let data = vec!["1"; rows * 2].join(",");
            let body = format!(
                r#"{{"inputs": [{{"name": "x", "shape": [{rows}, 2], "datatype": "FP32", "data": [{data}]}}]}}"#
            );
            format!(
                "POST /v2/models/toy/infer HTTP/1.1\r\nHost: toy\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
        };
        let mut client = tokio::net::TcpStream::connect(address).await.unwrap();
        let (status, body) = exchange(&mut client, &infer(8)).await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = exchange(&mut client, &infer(9)).await;
        assert_eq!(status, 413, "{body}");
        assert!(body.contains("spec.serving.maxRowsPerRequest"), "{body}");
        // Every permit taken: the next inference is told to come back.
        let held: Vec<_> = (0..4)
            .map(|_| server.inferring.try_acquire().unwrap())
            .collect();
        let (status, body) = exchange(&mut client, &infer(1)).await;
        assert_eq!(status, 429, "{body}");
        assert!(
            body.contains("spec.serving.maxConcurrentRequests"),
            "{body}"
        );
        drop(held);
        assert_eq!(exchange(&mut client, &infer(1)).await.0, 200);
        // 429 is the client's to handle: not counted as a server error.
        let text = server.metrics().render();
        let refused = parse_metrics(&text)
            .into_iter()
            .find(|s| s.name == "modelops_requests_total" && s.label("code") == Some("429"))
            .map(|s| s.value);
        assert_eq!(refused, Some(1.0), "{text}");
    }

    /// A regression server (revision 1 of "toy") whose model predicts the sum of its two
    /// features, with prediction bins over [0, 10].
    fn regression_server() -> Server {
        let server = Server::new("toy", 1, key(), settings());
        let info = ModelInfo {
            output: OutputKind::Value,
            ..model()
        };
        let profile = Profile {
            rows: 2,
            features: ["a", "b"]
                .map(|name| FeatureProfile::of(name, &[0.0, 1.0]))
                .to_vec(),
            class_balance: None,
            class_balance_all: None,
            predictions: Some(Histogram::equal_width(0.0, 10.0, 10)),
        };
        server.metrics().set_model(&[], Some(&profile));
        let batcher = Batcher::spawn(
            BatchConfig {
                max_rows: 8,
                timeout: Duration::ZERO,
                queue: 8,
            },
            |rows: Vec<Row>| {
                Ok(rows
                    .iter()
                    .map(|row| match row {
                        Row::Features(values) => {
                            RowOutput::Value(values.iter().sum::<f64>() as f32)
                        }
                        Row::Text(_) => RowOutput::Value(f32::NAN),
                    })
                    .collect())
            },
        );
        server.set_ready(Served {
            info,
            batcher,
            profile: None,
        });
        server
    }

    /// An inference of the model "toy" with a JSON body, its answer's JSON.
    async fn infer_json(server: &Arc<Server>, id: &str, body: Body) -> Value {
        let response = server
            .infer("toy", None, id, &HeaderMap::new(), body)
            .await
            .map_err(|e| e.0)
            .unwrap();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    fn key() -> FeedbackKey {
        FeedbackKey::from_hex(&"0f".repeat(32), 16).unwrap()
    }

    async fn post_feedback(server: &Server, body: Value) -> Result<Value, (u16, String)> {
        server
            .feedback("toy", Body::from(body.to_string()))
            .await
            .map_err(|e| (e.0.status, e.0.message))
    }

    async fn series(server: &Server, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        parse_metrics(&server.settled_metrics().await.render())
            .into_iter()
            .find(|s| s.name == name && labels.iter().all(|(k, v)| s.label(k) == Some(v)))
            .map(|s| s.value)
    }

    /// The inputs are counted after the answer (with the log line); a scrape begun after an
    /// answer counts them all, on one runtime thread or several.
    async fn a_scrape_counts_the_inputs_of_the_requests_answered_before_it() {
        let server = Arc::new(regression_server());
        for round in 1..=20 {
            let request = json!({"inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP32",
                "data": [[0.05, 0.95], [0.05, 2.0]]}]});
            infer_json(&server, "r", Body::from(request.to_string())).await;
            let response = metrics(State(Arc::clone(&server))).await;
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            let samples = parse_metrics(std::str::from_utf8(&bytes).unwrap());
            let bin = |feature: &str, bin: &str| {
                samples
                    .iter()
                    .find(|s| {
                        s.name == INPUT_FEATURE_BIN_TOTAL
                            && s.label("feature") == Some(feature)
                            && s.label("bin") == Some(bin)
                    })
                    .map(|s| s.value)
            };
            let counted = [bin("a", "0"), bin("b", "9"), bin("b", "overflow")];
            let expected = [2.0, 1.0, 1.0].map(|per_round| Some(per_round * f64::from(round)));
            assert_eq!(counted, expected, "round {round}");
        }
    }

    #[test]
    fn work_left_for_after_the_answer_runs_when_the_runtime_stops_first() {
        let afterwards = Arc::new(Afterwards::default());
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let ran = Arc::clone(&ran);
            afterwards.run(move || ran.store(true, Ordering::SeqCst));
        });
        // The runtime returned without running the task; dropping it drops the task.
        assert!(!ran.load(Ordering::SeqCst));
        drop(runtime);
        assert!(ran.load(Ordering::SeqCst));
        assert_eq!(afterwards.done.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn inputs_are_counted_by_the_next_scrape_on_one_thread() {
        a_scrape_counts_the_inputs_of_the_requests_answered_before_it().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn inputs_are_counted_by_the_next_scrape_on_two_threads() {
        a_scrape_counts_the_inputs_of_the_requests_answered_before_it().await;
    }

    #[tokio::test]
    async fn a_regression_model_issues_feedback_ids_and_counts_the_errors() {
        let server = Arc::new(regression_server());
        let request = json!({"inputs": [{"name": "x", "shape": [3, 2], "datatype": "FP32",
            "data": [[1, 2], [0.25, 0.25], [20, 0]]}]});
        let response = infer_json(&server, "r1", Body::from(request.to_string())).await;
        assert_eq!(response["outputs"][0]["data"], json!([3.0, 0.5, 20.0]));
        assert_eq!(response["outputs"][1]["name"], OUTPUT_FEEDBACK_ID);
        let ids: Vec<String> =
            serde_json::from_value(response["outputs"][1]["data"].clone()).unwrap();
        let claims: Vec<FeedbackClaim> = ids
            .iter()
            .map(|id| feedback::verify(&key(), "toy", id, unix_seconds(), 60).unwrap())
            .collect();
        let predicted: Vec<&str> = claims.iter().map(|c| c.predicted.as_str()).collect();
        assert_eq!(predicted, ["3", "0.5", "20"]);
        // Every predicted value is counted on the prediction bins.
        let mut bins = Vec::new();
        for bin in ["0", "3", "overflow"] {
            bins.push(series(&server, PREDICTION_BIN_TOTAL, &[("bin", bin)]).await);
        }
        assert_eq!(bins, [Some(1.0), Some(1.0), Some(1.0)]);
        // The outputs asked for: no ids unless asked.
        let mut only = request.clone();
        only["outputs"] = json!([{"name": "prediction"}]);
        let response = infer_json(&server, "r2", Body::from(only.to_string())).await;
        assert_eq!(response["outputs"].as_array().unwrap().len(), 1);

        // A number, and a decimal string: errors -0.5 and 1.
        let answer = post_feedback(&server, json!({"id": ids[0], "label": 2.5})).await;
        assert_eq!(answer, Ok(json!({"revision": 1, "error": -0.5})));
        let answer = post_feedback(&server, json!({"id": ids[1], "label": " 1.5"})).await;
        assert_eq!(answer, Ok(json!({"revision": 1, "error": 1.0})));
        let sums = |name| series(&server, name, &[("model", "toy"), ("revision", "1")]);
        assert_eq!(sums(FEEDBACK_VALUES_TOTAL).await, Some(2.0));
        assert_eq!(sums(FEEDBACK_ABSOLUTE_ERROR_TOTAL).await, Some(1.5));
        assert_eq!(sums(FEEDBACK_SQUARED_ERROR_TOTAL).await, Some(1.25));
        assert_eq!(
            sums(FEEDBACK_SQUARED_ERROR_SQUARES_TOTAL).await,
            Some(1.0625)
        );
        assert_eq!(series(&server, FEEDBACK_TOTAL, &[]).await, None);
        // The same id twice counts once.
        let again = post_feedback(&server, json!({"id": ids[0], "label": 3})).await;
        assert_eq!(again.unwrap_err().0, 409);
        assert_eq!(sums(FEEDBACK_VALUES_TOTAL).await, Some(2.0));
    }

    #[tokio::test]
    async fn regression_feedback_refuses_what_it_cannot_count() {
        let server = Arc::new(regression_server());
        let now = unix_seconds();
        let id = |model: &str, predicted: &str| {
            let mut nonce = [0; feedback::NONCE_BYTES];
            getrandom::fill(&mut nonce).unwrap();
            feedback::ResponseSigner::new(&key(), model, 1, now, &nonce).sign(0, predicted)
        };
        let valid = id("toy", "3");
        for label in [
            json!(null),
            json!(true),
            json!("abc"),
            json!(""),
            json!("NaN"),
            json!("inf"),
            json!([1]),
            json!({"value": 1}),
        ] {
            let (status, message) = post_feedback(&server, json!({"id": valid, "label": label}))
                .await
                .unwrap_err();
            assert_eq!(status, 400, "{label}");
            assert!(
                message.contains("\"label\"") && message.contains("JSON number"),
                "{label}: {message}"
            );
        }
        let (_, message) = post_feedback(&server, json!({"id": valid}))
            .await
            .unwrap_err();
        assert!(message.contains("\"label\" is missing"), "{message}");
        for (case, body, expected) in [
            (
                "an id of a classification",
                json!({"id": id("toy", "yes"), "label": 1}),
                "is of a classification",
            ),
            (
                "a prediction that was not a number",
                json!({"id": id("toy", "NaN"), "label": 1}),
                "not a finite number",
            ),
            (
                "an id of another model",
                json!({"id": id("other", "3"), "label": 1}),
                "not issued by this model",
            ),
            (
                "an id of another model, of the first format",
                json!({"id": FeedbackClaim::new("other", 1, "3", now).sign_v1(&key()), "label": 1}),
                "belongs to model \"other\"",
            ),
            (
                "an error too large to sum",
                json!({"id": valid, "label": 1e300}),
                "too far from the predicted value",
            ),
            ("a forged id", json!({"id": "x.y", "label": 1}), "malformed"),
        ] {
            let (status, message) = post_feedback(&server, body).await.unwrap_err();
            assert_eq!(status, 400, "{case}");
            assert!(message.contains(expected), "{case}: {message}");
        }
        assert_eq!(series(&server, FEEDBACK_VALUES_TOTAL, &[]).await, None);
        // A refused feedback leaves its id unused.
        let answer = post_feedback(&server, json!({"id": valid, "label": "4"})).await;
        assert_eq!(answer, Ok(json!({"revision": 1, "error": 1.0})));
    }

    #[tokio::test]
    async fn a_server_not_ready_says_why() {
        let server = Server::new("toy", 1, FeedbackKey::random(), settings());
        assert_eq!(
            server.readiness(),
            Err(("loading", "model \"toy\" is loading".into()))
        );
        server.set_failed("the weights have sha256 1, not 2".into());
        let (state, message) = server.readiness().unwrap_err();
        assert_eq!(state, "failed");
        assert!(message.contains("is not served: the weights"), "{message}");
        assert!(
            server
                .metrics()
                .render()
                .contains("modelops_model_ready{model=\"toy\",revision=\"1\"} 0")
        );
    }
}
