//! Fetching a Dataset's source file: a file the pod has mounted (ConfigMap or volume sources),
//! or a download over HTTP(S), checked against the spec's sha256 when it gives one.

use crate::artifact;
use crate::failure::{Failure, Reason};
use anyhow::Result;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

/// The largest source the worker downloads.
const MAX_DOWNLOAD: u64 = 8 << 30;

/// Reads a mounted source file.
pub fn read_mounted(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|error| anyhow::anyhow!("reading the source file {}: {error}", path.display()))
        .reason("SourceUnavailable", true)
}

/// Downloads `url`, refusing content whose sha256 differs from `expected_sha256`.
pub fn download(url: &str, expected_sha256: Option<&str>) -> Result<Vec<u8>> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_body(Some(Duration::from_secs(600)))
        .build()
        .into();
    let mut response = match agent.get(url).call() {
        Ok(response) => response,
        Err(ureq::Error::StatusCode(status)) => {
            // Client errors (404, 403) need a spec change; server errors and throttling may pass.
            let retryable = status >= 500 || status == 429;
            return Err(Failure::error(
                "SourceUnavailable",
                retryable,
                format!("GET {url} answered HTTP {status}; check spec.source.http.url"),
            ));
        }
        Err(error) => {
            return Err(Failure::error(
                "SourceUnavailable",
                true,
                format!("GET {url} failed: {error}"),
            ));
        }
    };
    let mut bytes = Vec::new();
    response
        .body_mut()
        .as_reader()
        .take(MAX_DOWNLOAD + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| {
            Failure::error(
                "SourceUnavailable",
                true,
                format!("reading the body of {url}: {error}"),
            )
        })?;
    if bytes.len() as u64 > MAX_DOWNLOAD {
        return Err(Failure::error(
            "SourceTooLarge",
            false,
            format!(
                "{url} is larger than {} GiB, the most the worker downloads",
                MAX_DOWNLOAD >> 30
            ),
        ));
    }
    if let Some(expected) = expected_sha256 {
        let actual = artifact::sha256_hex(&bytes);
        if actual != expected.trim_start_matches("sha256:") {
            return Err(Failure::error(
                "SourceDigestMismatch",
                false,
                format!(
                    "{url} has sha256 {actual}, not the {expected} of spec.source.http.sha256; fix the checksum or the file"
                ),
            ));
        }
    }
    Ok(bytes)
}
