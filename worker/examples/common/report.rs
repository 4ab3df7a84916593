//! The one JSON line the load generators print (`bench/serving/bench.py` reads it): requests,
//! errors, seconds, requests per second and latency percentiles in milliseconds.

use std::time::Duration;

/// Prints the report of a run of `elapsed` seconds.
pub fn print(mut latencies: Vec<Duration>, errors: u64, elapsed: f64) {
    latencies.sort();
    let percentile = |p: f64| {
        if latencies.is_empty() {
            return f64::NAN;
        }
        let index = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[index].as_secs_f64() * 1000.0
    };
    println!(
        "{{\"requests\": {}, \"errors\": {errors}, \"seconds\": {elapsed:.3}, \"requestsPerSecond\": {:.1}, \"p50Ms\": {:.4}, \"p90Ms\": {:.4}, \"p99Ms\": {:.4}}}",
        latencies.len(),
        latencies.len() as f64 / elapsed,
        percentile(0.50),
        percentile(0.90),
        percentile(0.99),
    );
}
