//! `netcheck`, the test bed's network probe (std only, so its image is tiny).
//!
//! - `netcheck serve PORT [STATUS]`: answers every HTTP request with `hello from <HOSTNAME>`,
//!   with status 200 or the STATUS given (e.g. 404, to stand in for a missing file).
//! - `netcheck get URL COUNT`: sends COUNT GET requests to an `http://host:port/` URL and prints
//!   each answer's body on a line; exits non-zero if any request fails.
//! - `netcheck serve` (no port: what the operator runs in a serving container, should a
//!   ModelDeployment name this image): a hostile serving pod on 8080. It is ready and live, and
//!   its `/metrics` is 100 MB of a million-odd series, a `bin="4000000000"` label first, sent as
//!   fast as the reader takes it.
#![forbid(unsafe_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

fn serve(port: u16, status: u16) -> std::io::Result<()> {
    let name = std::env::var("HOSTNAME").unwrap_or_else(|_| "unknown".to_owned());
    let listener = TcpListener::bind(("0.0.0.0", port))?;
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let mut reader = BufReader::new(stream.try_clone()?);
        // Read the request head; the body, if any, is ignored.
        let mut line = String::new();
        while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
            line.clear();
        }
        let body = format!("hello from {name}\n");
        let _ = write!(
            stream,
            "HTTP/1.1 {status} {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            if status == 200 { "OK" } else { "Not OK" },
            body.len()
        );
    }
    Ok(())
}

/// Answers `path` as a hostile serving pod would: health 200, `/metrics` a flood.
fn hostile(mut stream: TcpStream, path: &str) -> std::io::Result<()> {
    if path != "/metrics" {
        let body = "{\"ready\": true}";
        return write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    }
    // No Content-Length: the reader learns the size only by reading.
    write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n"
    )?;
    stream.write_all(
        b"modelops_input_bin_total{model=\"x\",revision=\"1\",feature=\"f\",bin=\"4000000000\"} 1\n",
    )?;
    let mut sent = 0usize;
    let mut chunk = String::with_capacity(1 << 16);
    let mut series = 0u64;
    while sent < 100 << 20 {
        chunk.clear();
        while chunk.len() < (1 << 16) - 128 {
            use std::fmt::Write as _;
            let _ = writeln!(
                chunk,
                "modelops_requests_total{{model=\"x\",revision=\"{series}\",code=\"200\"}} 1"
            );
            series += 1;
        }
        stream.write_all(chunk.as_bytes())?;
        sent += chunk.len();
    }
    Ok(())
}

fn serve_hostile() -> std::io::Result<()> {
    let listener = TcpListener::bind(("0.0.0.0", 8080))?;
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stream.try_clone()?);
            let mut line = String::new();
            reader.read_line(&mut line)?;
            let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            hostile(stream, &path)
        });
    }
    Ok(())
}

/// One GET over a fresh connection; returns the body.
pub fn get(url: &str) -> std::io::Result<String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "URL must start with http://",
        )
    })?;
    let (authority, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(a, p)| (a, format!("/{p}")));
    let mut stream = TcpStream::connect(authority)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    if !head.starts_with("HTTP/1.1 200") {
        return Err(std::io::Error::other(format!("unexpected answer: {head}")));
    }
    Ok(body.trim_end().to_owned())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["serve"] => serve_hostile(),
        ["serve", port] => port
            .parse()
            .map_err(std::io::Error::other)
            .and_then(|p| serve(p, 200)),
        ["serve", port, status] => match (port.parse(), status.parse()) {
            (Ok(port), Ok(status)) => serve(port, status),
            _ => Err(std::io::Error::other("PORT and STATUS are numbers")),
        },
        ["get", url, count] => count
            .parse::<u32>()
            .map_err(std::io::Error::other)
            .and_then(|count| {
                for _ in 0..count {
                    println!("{}", get(url)?);
                }
                Ok(())
            }),
        _ => Err(std::io::Error::other(
            "usage: netcheck serve [PORT [STATUS]] | netcheck get URL COUNT",
        )),
    };
    if let Err(e) = result {
        eprintln!("netcheck: {e}");
        std::process::exit(1);
    }
}
