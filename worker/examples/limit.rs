//! The limit of `bench/serving`: an HTTP server on the worker's own stack (tokio with as many
//! runtime threads as `serve` starts, hyper's HTTP/1.1 with the same connection settings, axum)
//! that reads each inference request's body and answers a precomputed response: no parsing, no
//! model, no metrics, no feedback ids. Its latency is what any server on this stack pays for
//! the exchange; the worker's overhead is reported as a ratio to it.
//!
//! `cargo run -p modelops-worker --example limit -- PORT THREADS NAME=RESPONSE_FILE[:JSON_LENGTH] ...`
//!
//! `POST /v2/models/NAME/infer` answers the bytes of RESPONSE_FILE: JSON, or with JSON_LENGTH
//! the binary tensor extension (its first JSON_LENGTH bytes JSON, raw tensors after them). The
//! benchmark writes there what the worker answered to the same request, so the sizes match.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

struct Answer {
    body: Bytes,
    json_length: Option<usize>,
}

fn usage() -> ! {
    eprintln!("usage: limit PORT THREADS NAME=RESPONSE_FILE[:JSON_LENGTH] ...");
    std::process::exit(2)
}

async fn infer(
    State(answers): State<Arc<HashMap<String, Answer>>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    // The body is read whole, as the worker reads it, and dropped.
    drop(body);
    let Some(answer) = answers.get(&name) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut response = Response::new(axum::body::Body::from(answer.body.clone()));
    let headers = response.headers_mut();
    match answer.json_length {
        None => {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        Some(length) => {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            headers.insert("inference-header-content-length", HeaderValue::from(length));
        }
    }
    response
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [port, threads, responses @ ..] = args.as_slice() else {
        usage()
    };
    let (Ok(port), Ok(threads)) = (port.parse::<u16>(), threads.parse::<usize>()) else {
        usage()
    };
    let mut answers = HashMap::new();
    for response in responses {
        let Some((name, file)) = response.split_once('=') else {
            usage()
        };
        let (file, json_length) = match file.rsplit_once(':') {
            Some((file, length)) => (file, Some(length.parse().unwrap_or_else(|_| usage()))),
            None => (file, None),
        };
        let body = std::fs::read(file).unwrap_or_else(|e| panic!("reading {file}: {e}"));
        answers.insert(
            name.to_owned(),
            Answer {
                body: Bytes::from(body),
                json_length,
            },
        );
    }
    // As `serve` sizes its runtime: one thread per libtorch thread, 1 to 4.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.clamp(1, 4))
        .enable_all()
        .build()
        .expect("start the runtime");
    runtime.block_on(async move {
        let app = Router::new()
            .route("/v2/models/{name}/infer", post(infer))
            .route("/v2/health/ready", get(|| async { "" }))
            .with_state(Arc::new(answers));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("listen");
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(10))
            .keep_alive(true);
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let service = TowerToHyperService::new(app.clone());
            let connection = http.serve_connection(TokioIo::new(stream), service);
            tokio::spawn(async move {
                let _ = connection.await;
            });
        }
    });
}
