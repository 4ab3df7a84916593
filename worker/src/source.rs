//! Fetching a Dataset's source file: a file the pod has mounted (ConfigMap or volume sources),
//! a download over HTTP(S), or an object of an S3-compatible store, checked against the spec's
//! sha256 when it gives one.
//!
//! Downloads are streamed into the scratch folder, never held whole in memory, and the file is
//! then mapped into memory: its pages are the page cache's, which the kernel drops and reads
//! back as it needs, so a large source costs the pod disk, not memory of its own.

use crate::failure::{Failure, Reason};
use crate::store::Location;
use anyhow::Result;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

/// The largest source the worker reads.
pub const MAX_SOURCE: u64 = 64 << 30;

/// A source file, mapped into memory read-only.
pub struct SourceFile {
    map: Option<memmap2::Mmap>,
}

impl std::ops::Deref for SourceFile {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }
}

/// Maps the file at `path` (an empty file maps to no bytes).
pub fn open(path: &Path) -> Result<SourceFile> {
    let unavailable = |error: std::io::Error| {
        Failure::error(
            "SourceUnavailable",
            true,
            format!("reading the source file {}: {error}", path.display()),
        )
    };
    let file = std::fs::File::open(path).map_err(unavailable)?;
    if file.metadata().map_err(unavailable)?.len() == 0 {
        return Ok(SourceFile { map: None });
    }
    // SAFETY: the file is the worker's own copy in its scratch folder, or a read-only mount
    // (a ConfigMap or a claim mounted read-only) that nothing in the pod writes while the
    // worker reads it.
    #[allow(unsafe_code)]
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(unavailable)?;
    Ok(SourceFile { map: Some(map) })
}

/// Checks a file's sha256 against the spec's, naming `what` and `field` in the error.
pub fn check_sha256(path: &Path, expected: &str, what: &str, field: &str) -> Result<()> {
    let mut file = std::fs::File::open(path).reason("SourceUnavailable", true)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).reason("SourceUnavailable", true)?;
    let actual = crate::artifact::hex(&hasher.finalize());
    if actual != expected.trim_start_matches("sha256:") {
        return Err(Failure::error(
            "SourceDigestMismatch",
            false,
            format!(
                "{what} has sha256 {actual}, not the {expected} of {field}; fix the checksum or the file"
            ),
        ));
    }
    Ok(())
}

/// Downloads `url` into the file `to`, refusing content whose sha256 differs from
/// `expected_sha256`.
pub fn download(url: &str, expected_sha256: Option<&str>, to: &Path) -> Result<()> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_body(Some(Duration::from_secs(3600)))
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
    let mut output = std::fs::File::create(to).reason("ScratchUnavailable", true)?;
    let mut body = response.body_mut().as_reader().take(MAX_SOURCE + 1);
    let mut buffer = vec![0u8; 1 << 20];
    let mut written = 0u64;
    loop {
        let read = body.read(&mut buffer).map_err(|error| {
            Failure::error(
                "SourceUnavailable",
                true,
                format!("reading the body of {url}: {error}"),
            )
        })?;
        if read == 0 {
            break;
        }
        written += read as u64;
        if written > MAX_SOURCE {
            return Err(Failure::error(
                "SourceTooLarge",
                false,
                format!(
                    "{url} is larger than {} GiB, the most the worker reads",
                    MAX_SOURCE >> 30
                ),
            ));
        }
        output
            .write_all(&buffer[..read])
            .reason("ScratchUnavailable", true)?;
    }
    drop(output);
    if let Some(expected) = expected_sha256 {
        check_sha256(to, expected, url, "spec.source.http.sha256")?;
    }
    Ok(())
}

/// Streams the object at `uri` into the file `to`, refusing content whose sha256 differs from
/// `expected_sha256`.
pub fn download_object(uri: &str, expected_sha256: Option<&str>, to: &Path) -> Result<()> {
    let location = Location::open(uri)?;
    if !location.download(to, MAX_SOURCE)? {
        return Err(Failure::error(
            "SourceUnavailable",
            false,
            format!("{uri} does not exist; upload the file or fix spec.source.s3.uri"),
        ));
    }
    if let Some(expected) = expected_sha256 {
        check_sha256(to, expected, uri, "spec.source.s3.sha256")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_map_and_digests_are_checked() {
        let dir = std::env::temp_dir().join(format!("modelops-source-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("data.csv");
        std::fs::write(&path, b"x,y\n1,2\n").unwrap();
        assert_eq!(&*open(&path).unwrap(), b"x,y\n1,2\n");
        let sha = crate::artifact::sha256_hex(b"x,y\n1,2\n");
        check_sha256(&path, &sha, "data.csv", "spec.source.s3.sha256").unwrap();
        let error =
            check_sha256(&path, &"0".repeat(64), "data.csv", "spec.source.s3.sha256").unwrap_err();
        assert!(
            format!("{error}").contains("spec.source.s3.sha256"),
            "{error}"
        );
        std::fs::write(&path, b"").unwrap();
        assert!(open(&path).unwrap().is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
