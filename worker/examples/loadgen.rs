//! A small HTTP/1.1 load generator for `bench/serving`: `connections` kept-alive connections to
//! a loopback server each send the same POST, one at a time, until `requests` requests were sent
//! or `seconds` passed. Prints one JSON line: requests, errors, requests per second, and latency
//! percentiles in milliseconds.
//!
//! `cargo run -p modelops-worker --example loadgen -- URL BODY_FILE CONNECTIONS SECONDS REQUESTS [JSON_LENGTH]`
//!
//! With JSON_LENGTH the body is of the binary tensor extension: its first JSON_LENGTH bytes are
//! JSON (sent as `Inference-Header-Content-Length`), raw tensors follow.
//!
//! The same client measures every server of the benchmark, so it is written to cost little:
//! one thread, no allocation per request beyond the response buffer.

#[path = "common/report.rs"]
mod report;

use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug, Default)]
struct Tally {
    latencies: Vec<Duration>,
    errors: u64,
}

fn usage() -> ! {
    eprintln!("usage: loadgen URL BODY_FILE CONNECTIONS SECONDS REQUESTS [JSON_LENGTH]");
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (url, body_file, connections, seconds, requests, json_length) = match args.as_slice() {
        [url, body, connections, seconds, requests] => {
            (url, body, connections, seconds, requests, None)
        }
        [url, body, connections, seconds, requests, length] => {
            (url, body, connections, seconds, requests, Some(length))
        }
        _ => usage(),
    };
    let (connections, seconds, requests): (usize, f64, usize) =
        match (connections.parse(), seconds.parse(), requests.parse()) {
            (Ok(c), Ok(s), Ok(r)) => (c, s, r),
            _ => usage(),
        };
    let rest = url.strip_prefix("http://").unwrap_or_else(|| usage());
    let (address, path) = rest.split_once('/').unwrap_or((rest, ""));
    let body = std::fs::read(body_file).expect("read the body file");
    let binary = match json_length {
        Some(length) => format!(
            "Content-Type: application/octet-stream\r\nInference-Header-Content-Length: {length}\r\n"
        ),
        None => "Content-Type: application/json\r\n".to_owned(),
    };
    let mut request = format!(
        "POST /{path} HTTP/1.1\r\nHost: {address}\r\n{binary}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let remaining = std::rc::Rc::new(std::cell::Cell::new(requests));
    let tallies = runtime.block_on(async {
        let local = tokio::task::LocalSet::new();
        let mut handles = Vec::new();
        for _ in 0..connections {
            let request = request.clone();
            let address = address.to_owned();
            let remaining = std::rc::Rc::clone(&remaining);
            handles.push(local.spawn_local(async move {
                let mut tally = Tally::default();
                let mut stream = match TcpStream::connect(&address).await {
                    Ok(stream) => stream,
                    Err(_) => {
                        tally.errors += 1;
                        return tally;
                    }
                };
                let _ = stream.set_nodelay(true);
                let mut buffer = Vec::with_capacity(64 * 1024);
                while Instant::now() < deadline && remaining.get() > 0 {
                    remaining.set(remaining.get() - 1);
                    let sent = Instant::now();
                    match exchange(&mut stream, &request, &mut buffer).await {
                        Ok(200) => tally.latencies.push(sent.elapsed()),
                        Ok(_) => tally.errors += 1,
                        Err(_) => {
                            tally.errors += 1;
                            break;
                        }
                    }
                }
                tally
            }));
        }
        local
            .run_until(async {
                let mut tallies = Vec::new();
                for handle in handles {
                    tallies.push(handle.await.unwrap());
                }
                tallies
            })
            .await
    });
    let elapsed = started.elapsed().as_secs_f64();
    let latencies: Vec<Duration> = tallies.iter().flat_map(|t| t.latencies.clone()).collect();
    let errors: u64 = tallies.iter().map(|t| t.errors).sum();
    report::print(latencies, errors, elapsed);
}

/// Sends one request and reads one response; returns its status.
async fn exchange(
    stream: &mut TcpStream,
    request: &[u8],
    buffer: &mut Vec<u8>,
) -> std::io::Result<u16> {
    stream.write_all(request).await?;
    buffer.clear();
    let mut chunk = [0u8; 16 * 1024];
    // Read the head, then as much body as Content-Length says (chunked bodies are read to their
    // terminating empty chunk).
    let (head_end, status, length, chunked) = loop {
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buffer.extend_from_slice(&chunk[..read]);
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
            let status = head
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            let chunked = head.contains("transfer-encoding: chunked");
            break (end + 4, status, length, chunked);
        }
    };
    loop {
        let body = &buffer[head_end..];
        let done = match (length, chunked) {
            (Some(length), _) => body.len() >= length,
            (None, true) => body.ends_with(b"0\r\n\r\n"),
            (None, false) => true,
        };
        if done {
            return Ok(status);
        }
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
}
