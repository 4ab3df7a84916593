//! The gRPC side of `serve`: the Open Inference Protocol v2's `inference.GRPCInferenceService`
//! (`proto/inference.proto`), over tonic, beside the HTTP routes.
//!
//! A `ModelInfer` is the HTTP inference by another road: its message becomes the same request
//! the JSON does ([`protocol::validate`]), typed `contents` or `raw_input_contents` alike, and it
//! goes through [`Server::predict`]: the same permits, row limit, batcher, metrics (the request
//! counted under the HTTP status it maps to), Monitor inputs and feedback ids. The outputs come
//! back as `raw_output_contents` (BYTES as 4-byte little-endian lengths and UTF-8, FP32
//! little-endian), as Triton's and KServe's clients read them. Feedback stays HTTP
//! (`POST /v2/models/{name}/feedback` with the `feedback_id` a gRPC answer carries).
//!
//! Refusals are gRPC statuses: a bad request (400, too many rows 413) `INVALID_ARGUMENT`, an
//! unknown model or version `NOT_FOUND`, too many requests at once `RESOURCE_EXHAUSTED`, a model
//! not ready `UNAVAILABLE`; the message is the HTTP error's, naming the field and the fix. A
//! message over `maxRequestBytes`, which tonic refuses before decoding it, is `INVALID_ARGUMENT`
//! too.

use super::http::{ApiError, RequestTimer, Server, request_id};
use super::protocol::{self, Element, RawInput, RawOutput, RawRequest, RequestError};
use serde_json::{Value, json};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tonic::{Code, Request, Response, Status};

/// The code generated from `proto/inference.proto`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod inference {
    tonic::include_proto!("inference");
}

use inference::grpc_inference_service_server::{GrpcInferenceService, GrpcInferenceServiceServer};
use inference::infer_parameter::ParameterChoice;
use inference::model_infer_request::InferInputTensor;
use inference::model_infer_response::InferOutputTensor;
use inference::model_metadata_response::TensorMetadata;
use inference::*;

/// The gRPC status of a refusal.
fn status(error: &RequestError) -> Status {
    let code = match error.status {
        400 | 413 => Code::InvalidArgument,
        404 => Code::NotFound,
        408 => Code::DeadlineExceeded,
        429 => Code::ResourceExhausted,
        503 => Code::Unavailable,
        _ => Code::Internal,
    };
    Status::new(code, error.message.clone())
}

impl From<ApiError> for Status {
    fn from(error: ApiError) -> Self {
        status(&error.0)
    }
}

/// A request's parameters as the JSON's: the same checks read them.
fn parameters(map: &std::collections::HashMap<String, InferParameter>) -> Option<Value> {
    if map.is_empty() {
        return None;
    }
    let object = map
        .iter()
        .map(|(key, parameter)| {
            let value = match &parameter.parameter_choice {
                Some(ParameterChoice::BoolParam(v)) => json!(v),
                Some(ParameterChoice::Int64Param(v)) => json!(v),
                Some(ParameterChoice::StringParam(v)) => json!(v),
                None => Value::Null,
            };
            (key.clone(), value)
        })
        .collect();
    Some(Value::Object(object))
}

/// An input's values from its typed `contents`: the field its datatype names (INT8 to INT32 in
/// `int_contents`, UINT8 to UINT32 in `uint_contents`, ...). Values in another field are not
/// read, so they count as missing against the shape.
fn typed_values(
    input: &InferInputTensor,
    contents: &InferTensorContents,
) -> Result<Element, RequestError> {
    let numbers = Element::Numbers;
    Ok(match input.datatype.as_str() {
        "FP32" => numbers(contents.fp32_contents.iter().map(|&v| v as f64).collect()),
        "FP64" => numbers(contents.fp64_contents.clone()),
        "INT8" | "INT16" | "INT32" => numbers(contents.int_contents.iter().map(|&v| v as f64).collect()),
        "INT64" => numbers(contents.int64_contents.iter().map(|&v| v as f64).collect()),
        "UINT8" | "UINT16" | "UINT32" => {
            numbers(contents.uint_contents.iter().map(|&v| v as f64).collect())
        }
        "UINT64" => numbers(contents.uint64_contents.iter().map(|&v| v as f64).collect()),
        "BYTES" => Element::Array(
            contents
                .bytes_contents
                .iter()
                .enumerate()
                .map(|(index, bytes)| {
                    std::str::from_utf8(bytes)
                        .map(|text| Element::Text(text.to_owned()))
                        .map_err(|e| {
                            RequestError::bad(format!(
                                "input {:?}: element {index} of bytes_contents is not UTF-8 text: {e}",
                                input.name
                            ))
                        })
                })
                .collect::<Result<_, _>>()?,
        ),
        // No table or text model reads it: `validate` refuses the datatype by name.
        _ => Element::Array(Vec::new()),
    })
}

/// A `ModelInferRequest` as the request its JSON form would be.
fn raw_request(request: ModelInferRequest) -> Result<RawRequest, RequestError> {
    let raw = &request.raw_input_contents;
    if !raw.is_empty() && raw.len() != request.inputs.len() {
        return Err(RequestError::bad(format!(
            "the request has {} raw_input_contents for {} inputs: send one raw tensor per input, in order, or typed contents",
            raw.len(),
            request.inputs.len()
        )));
    }
    let inputs = request
        .inputs
        .iter()
        .enumerate()
        .map(|(index, input)| {
            let data = match (raw.get(index), &input.contents) {
                (Some(_), Some(_)) => {
                    return Err(RequestError::bad(format!(
                        "input {:?} has both contents and raw_input_contents: send its values in one place",
                        input.name
                    )));
                }
                (Some(bytes), None) => {
                    protocol::decode_raw(&input.name, &input.datatype, &input.shape, bytes)?
                }
                (None, Some(contents)) => typed_values(input, contents)?,
                (None, None) => {
                    return Err(RequestError::bad(format!(
                        "input {:?} has no values: send them in contents (the field of its datatype) or in raw_input_contents",
                        input.name
                    )));
                }
            };
            Ok(RawInput {
                name: input.name.clone(),
                shape: input.shape.clone(),
                datatype: input.datatype.clone(),
                data: Some(data),
                parameters: parameters(&input.parameters),
            })
        })
        .collect::<Result<_, _>>()?;
    let outputs = (!request.outputs.is_empty()).then(|| {
        request
            .outputs
            .iter()
            .map(|output| RawOutput {
                name: output.name.clone(),
                parameters: parameters(&output.parameters),
            })
            .collect()
    });
    Ok(RawRequest {
        id: (!request.id.is_empty()).then_some(request.id),
        inputs,
        outputs,
        parameters: parameters(&request.parameters),
    })
}

/// The response as a `ModelInferResponse`, every output raw.
fn infer_response(response: protocol::InferResponse<'_>) -> ModelInferResponse {
    let mut outputs = Vec::with_capacity(response.outputs.len());
    let mut raw_output_contents = Vec::with_capacity(response.outputs.len());
    for output in response.outputs {
        let mut raw = Vec::new();
        if let Some(data) = &output.data {
            data.encode_raw(&mut raw);
        }
        outputs.push(InferOutputTensor {
            name: output.name.to_owned(),
            datatype: output.datatype.to_owned(),
            shape: output.shape.iter().map(|&n| n as i64).collect(),
            parameters: Default::default(),
            contents: None,
        });
        raw_output_contents.push(raw);
    }
    ModelInferResponse {
        model_name: response.model_name.to_owned(),
        model_version: response.model_version,
        id: response.id.to_owned(),
        parameters: Default::default(),
        outputs,
        raw_output_contents,
    }
}

/// The metadata's JSON as a `ModelMetadataResponse`.
fn model_metadata(metadata: &Value) -> ModelMetadataResponse {
    let tensors = |key: &str| {
        metadata[key]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| TensorMetadata {
                name: t["name"].as_str().unwrap_or_default().to_owned(),
                datatype: t["datatype"].as_str().unwrap_or_default().to_owned(),
                shape: t["shape"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_i64)
                    .collect(),
            })
            .collect()
    };
    ModelMetadataResponse {
        name: metadata["name"].as_str().unwrap_or_default().to_owned(),
        versions: metadata["versions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        platform: metadata["platform"].as_str().unwrap_or_default().to_owned(),
        inputs: tensors("inputs"),
        outputs: tensors("outputs"),
    }
}

/// The version a request names; empty is none.
fn version(version: &str) -> Option<&str> {
    (!version.is_empty()).then_some(version)
}

/// The service, over the server the HTTP routes share.
#[derive(Clone)]
pub struct Service(pub Arc<Server>);

#[tonic::async_trait]
impl GrpcInferenceService for Service {
    async fn server_live(
        &self,
        _: Request<ServerLiveRequest>,
    ) -> Result<Response<ServerLiveResponse>, Status> {
        Ok(Response::new(ServerLiveResponse { live: true }))
    }

    async fn server_ready(
        &self,
        _: Request<ServerReadyRequest>,
    ) -> Result<Response<ServerReadyResponse>, Status> {
        Ok(Response::new(ServerReadyResponse {
            ready: self.0.readiness().is_ok(),
        }))
    }

    async fn model_ready(
        &self,
        request: Request<ModelReadyRequest>,
    ) -> Result<Response<ModelReadyResponse>, Status> {
        let request = request.into_inner();
        self.0
            .check_model(&request.name, version(&request.version))?;
        Ok(Response::new(ModelReadyResponse {
            ready: self.0.readiness().is_ok(),
        }))
    }

    async fn server_metadata(
        &self,
        _: Request<ServerMetadataRequest>,
    ) -> Result<Response<ServerMetadataResponse>, Status> {
        let metadata = protocol::server_metadata();
        Ok(Response::new(ServerMetadataResponse {
            name: metadata["name"].as_str().unwrap_or_default().to_owned(),
            version: metadata["version"].as_str().unwrap_or_default().to_owned(),
            extensions: Vec::new(),
        }))
    }

    async fn model_metadata(
        &self,
        request: Request<ModelMetadataRequest>,
    ) -> Result<Response<ModelMetadataResponse>, Status> {
        let request = request.into_inner();
        self.0
            .check_model(&request.name, version(&request.version))?;
        let served = self.0.served()?;
        Ok(Response::new(model_metadata(&served.info.metadata())))
    }

    async fn model_infer(
        &self,
        request: Request<ModelInferRequest>,
    ) -> Result<Response<ModelInferResponse>, Status> {
        let server = &self.0;
        let mut timer = RequestTimer::start(server.metrics());
        let id = request_id(&request.metadata().clone().into_headers());
        let request = request.into_inner();
        let size = prost::Message::encoded_len(&request);
        let name = request.model_name.clone();
        let result = match server.check_model(&name, version(&request.model_version)) {
            Ok(()) => {
                server
                    .predict(
                        &id,
                        size,
                        move |info| protocol::validate(raw_request(request)?, info),
                        |response, _| infer_response(response),
                    )
                    .await
            }
            Err(refused) => Err(refused),
        };
        let millis = timer.started.elapsed().as_secs_f64() * 1000.0;
        let (code, line) = match &result {
            Ok(_) => (
                200,
                format!("request {id}: grpc infer {name}: OK in {millis:.1} ms"),
            ),
            Err(refused) => (
                refused.0.status,
                format!(
                    "request {id}: grpc infer {name}: {} in {millis:.1} ms: {}",
                    refused.0.status, refused.0.message
                ),
            ),
        };
        // Written after the answer, as the HTTP side's.
        server.after_answer(move || tracing::info!("{line}"));
        timer.code = Some(code);
        Ok(Response::new(result?))
    }
}

/// Serves the gRPC service on `listener` until `shutdown` resolves, then answers the requests in
/// flight and returns. The message size limit is the HTTP body's (`max_request_bytes`,
/// [`oversized_is_invalid_argument`]); at most
/// `max_connections` connections are open at once (one more is closed on accept); a peer that
/// stops answering HTTP/2 pings is dropped.
pub async fn serve(
    listener: tokio::net::TcpListener,
    server: Arc<Server>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let settings = server.settings().clone();
    let limits = settings.connections;
    let open = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let incoming = futures::stream::unfold(listener, move |listener| {
        let open = Arc::clone(&open);
        async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        let Ok(permit) = Arc::clone(&open).try_acquire_owned() else {
                            drop(stream);
                            continue;
                        };
                        let _ = stream.set_nodelay(true);
                        return Some((
                            Ok::<_, std::io::Error>(Limited {
                                stream,
                                _permit: permit,
                            }),
                            listener,
                        ));
                    }
                    Err(e) => {
                        tracing::warn!("accepting a gRPC connection: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        }
    });
    let service = GrpcInferenceServiceServer::new(Service(server))
        .max_decoding_message_size(settings.max_request_bytes)
        .max_encoding_message_size(usize::MAX);
    let limit = settings.max_request_bytes;
    tonic::transport::Server::builder()
        .layer(tower::util::MapResponseLayer::new(
            move |response: axum::http::Response<tonic::body::Body>| {
                oversized_is_invalid_argument(response, limit)
            },
        ))
        .http2_keepalive_interval(Some(limits.header_timeout))
        .http2_keepalive_timeout(Some(limits.header_timeout))
        .timeout(limits.body_timeout)
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}

/// tonic refuses a message over the size limit with OUT_OF_RANGE before the service sees it (it
/// reads the length prefix, not the message); to the protocol's callers that is a request the
/// server will not take, so INVALID_ARGUMENT, as every other refused request, with the limit and
/// the fix named.
fn oversized_is_invalid_argument(
    mut response: axum::http::Response<tonic::body::Body>,
    limit: usize,
) -> axum::http::Response<tonic::body::Body> {
    let oversized = response.extensions().get::<Status>().is_some_and(|status| {
        status.code() == Code::OutOfRange && status.message().contains("message length too large")
    });
    if oversized {
        let status = Status::invalid_argument(format!(
            "the message is larger than this server's limit of {limit} bytes (spec.serving maxRequestBytes of the serve order); send fewer rows per request"
        ));
        let headers = response.headers_mut();
        headers.remove("grpc-message");
        let _ = status.add_header(headers);
        response.extensions_mut().insert(status);
    }
    response
}

/// A connection holding one of the `max_connections` permits until it closes.
struct Limited {
    stream: tokio::net::TcpStream,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl tonic::transport::server::Connected for Limited {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.stream.connect_info()
    }
}

impl tokio::io::AsyncRead for Limited {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Limited {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
