//! The raw forward pass that `bench/serving` compares serving latency with: the time of
//! `LoadedModel::predict_rows` (normalisation, forward, softmax, labels) on a batch of raw rows,
//! without HTTP, JSON or batching. Prints one JSON line per batch size: the median and the
//! 99th percentile in milliseconds.
//!
//! `cargo run -p modelops-worker --example forward -- MODEL_DIR ROWS_JSON_FILE BATCH [BATCH …]`
//! (ROWS_JSON_FILE: a JSON array of raw feature rows; MODELOPS_THREADS sets libtorch's threads).

use modelops_worker::model::predict::LoadedModel;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: forward MODEL_DIR ROWS_JSON_FILE BATCH [BATCH …]");
        std::process::exit(2);
    }
    if let Some(threads) = std::env::var("MODELOPS_THREADS")
        .ok()
        .and_then(|t| t.parse::<i32>().ok())
    {
        tch::set_num_threads(threads);
    }
    let model = LoadedModel::load(std::path::Path::new(&args[0]), None, tch::Device::Cpu)
        .expect("load the model");
    let rows: Vec<Vec<f64>> =
        serde_json::from_slice(&std::fs::read(&args[1]).expect("read the rows")).expect("rows");
    for batch in &args[2..] {
        let batch: usize = batch.parse().expect("a batch size");
        let inputs: Vec<Vec<f64>> = rows.iter().cycle().take(batch).cloned().collect();
        for _ in 0..50 {
            model.predict_rows(&inputs).unwrap();
        }
        let mut times: Vec<Duration> = (0..2000)
            .map(|_| {
                let started = Instant::now();
                model.predict_rows(&inputs).unwrap();
                started.elapsed()
            })
            .collect();
        times.sort();
        let ms = |p: f64| {
            times[((times.len() as f64 * p) as usize).min(times.len() - 1)].as_secs_f64() * 1000.0
        };
        println!(
            "{{\"batch\": {batch}, \"p50Ms\": {:.4}, \"p99Ms\": {:.4}}}",
            ms(0.5),
            ms(0.99)
        );
    }
}
