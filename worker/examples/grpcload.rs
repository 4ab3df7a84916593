//! The gRPC load generator of `bench/serving`: `connections` HTTP/2 connections to a loopback
//! server, each sending the same `ModelInfer` (the rows as one FP32 `raw_input_contents`), one at
//! a time, until `requests` requests were sent or `seconds` passed. Prints one JSON line, as
//! `loadgen` does: requests, errors, requests per second, and latency percentiles in ms.
//!
//! `cargo run -p modelops-worker --example grpcload -- ADDRESS MODEL ROWS_JSON BATCH CONNECTIONS SECONDS REQUESTS`
//!
//! ROWS_JSON is an array of rows of numbers; the request takes its first BATCH rows.

#[path = "common/report.rs"]
mod report;

use modelops_worker::serve::grpc::inference::grpc_inference_service_client::GrpcInferenceServiceClient;
use modelops_worker::serve::grpc::inference::model_infer_request::InferInputTensor;
use modelops_worker::serve::grpc::inference::{ModelInferRequest, ModelInferResponse};
use std::time::{Duration, Instant};

fn usage() -> ! {
    eprintln!("usage: grpcload ADDRESS MODEL ROWS_JSON BATCH CONNECTIONS SECONDS REQUESTS");
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [address, model, rows, batch, connections, seconds, requests] = args.as_slice() else {
        usage()
    };
    let (batch, connections, seconds, requests): (usize, usize, f64, usize) = match (
        batch.parse(),
        connections.parse(),
        seconds.parse(),
        requests.parse(),
    ) {
        (Ok(b), Ok(c), Ok(s), Ok(r)) => (b, c, s, r),
        _ => usage(),
    };
    let rows: Vec<Vec<f32>> =
        serde_json::from_slice(&std::fs::read(rows).expect("read the rows")).expect("rows JSON");
    let rows = &rows[..batch];
    let raw: Vec<u8> = rows
        .iter()
        .flatten()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let request = ModelInferRequest {
        model_name: model.clone(),
        inputs: vec![InferInputTensor {
            name: "input-0".into(),
            datatype: "FP32".into(),
            shape: vec![batch as i64, rows[0].len() as i64],
            ..Default::default()
        }],
        raw_input_contents: vec![raw],
        ..Default::default()
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let endpoint = format!("http://{address}");
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let remaining = std::rc::Rc::new(std::cell::Cell::new(requests));
    let started = Instant::now();
    let (latencies, errors) = runtime.block_on(async {
        let local = tokio::task::LocalSet::new();
        let mut handles = Vec::new();
        for _ in 0..connections {
            let (request, endpoint, remaining) = (
                request.clone(),
                endpoint.clone(),
                std::rc::Rc::clone(&remaining),
            );
            handles.push(local.spawn_local(async move {
                let mut latencies = Vec::new();
                let mut errors = 0u64;
                // One channel each: its own HTTP/2 connection.
                let Ok(mut client) = GrpcInferenceServiceClient::connect(endpoint).await else {
                    return (latencies, 1);
                };
                while Instant::now() < deadline && remaining.get() > 0 {
                    remaining.set(remaining.get() - 1);
                    let sent = Instant::now();
                    match client.model_infer(request.clone()).await {
                        Ok(answer) if answered(answer.get_ref(), batch) => {
                            latencies.push(sent.elapsed())
                        }
                        _ => errors += 1,
                    }
                }
                (latencies, errors)
            }));
        }
        local
            .run_until(async {
                let mut all = (Vec::new(), 0);
                for handle in handles {
                    let (latencies, errors) = handle.await.unwrap();
                    all.0.extend(latencies);
                    all.1 += errors;
                }
                all
            })
            .await
    });
    let elapsed = started.elapsed().as_secs_f64();
    report::print(latencies, errors, elapsed);
}

/// An answer with a label output for every row, raw (the worker, Triton) or typed (KServe).
fn answered(answer: &ModelInferResponse, batch: usize) -> bool {
    answer
        .outputs
        .iter()
        .position(|o| o.name == "label")
        .is_some_and(|i| {
            let output = &answer.outputs[i];
            let typed = output
                .contents
                .as_ref()
                .map_or(0, |c| c.bytes_contents.len());
            output.shape.first() == Some(&(batch as i64))
                && (typed == batch
                    || answer
                        .raw_output_contents
                        .get(i)
                        .is_some_and(|raw| !raw.is_empty()))
        })
}
