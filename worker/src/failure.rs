//! Why a worker failed, in the form the operator records: a CamelCase reason for the condition,
//! and whether running the pod again may help.
//!
//! Code that knows what went wrong tags its error with [`Reason::reason`]; anything untagged is
//! classified by [`classify`]: an I/O error is a retryable `ArtifactStoreError` (a volume that
//! hiccupped), anything else the caller's fallback.

use std::fmt;

/// An error with its reason.
#[derive(Debug)]
pub struct Failure {
    /// One CamelCase word (`InvalidRow`, `SourceUnavailable`, `DigestMismatch`, …).
    pub reason: &'static str,
    /// True when a retry may succeed (a network error), false when only a change of the spec or
    /// the data can fix it.
    pub retryable: bool,
    message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

impl Failure {
    /// An error with a reason.
    pub fn error(
        reason: &'static str,
        retryable: bool,
        message: impl Into<String>,
    ) -> anyhow::Error {
        anyhow::Error::new(Self {
            reason,
            retryable,
            message: message.into(),
        })
    }
}

/// Tags errors with a reason.
pub trait Reason<T> {
    /// Gives the error `reason` unless it already has one (the innermost, most specific reason
    /// wins) or is an I/O error (which [`classify`] calls a retryable `ArtifactStoreError`).
    fn reason(self, reason: &'static str, retryable: bool) -> anyhow::Result<T>;
}

impl<T, E: Into<anyhow::Error>> Reason<T> for Result<T, E> {
    fn reason(self, reason: &'static str, retryable: bool) -> anyhow::Result<T> {
        self.map_err(|error| {
            let error = error.into();
            if error
                .chain()
                .any(|e| e.is::<Failure>() || e.is::<std::io::Error>())
            {
                error
            } else {
                Failure::error(reason, retryable, format!("{error:#}"))
            }
        })
    }
}

/// The reason and retryability of an error, with `fallback` (not retryable) when nothing says.
pub fn classify(error: &anyhow::Error, fallback: &'static str) -> (&'static str, bool) {
    if let Some(failure) = error.chain().find_map(|e| e.downcast_ref::<Failure>()) {
        return (failure.reason, failure.retryable);
    }
    if error.chain().any(|e| e.is::<std::io::Error>()) {
        return ("ArtifactStoreError", true);
    }
    (fallback, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn the_innermost_reason_wins_and_io_errors_are_retryable() {
        let tagged: anyhow::Result<()> = Err(Failure::error("InvalidRow", false, "row 3"));
        let error = tagged
            .context("preparing")
            .reason("InvalidData", false)
            .unwrap_err();
        assert_eq!(classify(&error, "Fallback"), ("InvalidRow", false));
        assert_eq!(format!("{error:#}"), "preparing: row 3");

        let error = anyhow::Error::from(std::io::Error::other("disk full")).context("writing");
        let error = Err::<(), _>(error)
            .reason("InvalidData", false)
            .unwrap_err();
        assert_eq!(classify(&error, "Fallback"), ("ArtifactStoreError", true));
        assert_eq!(
            classify(&anyhow::anyhow!("odd"), "Fallback"),
            ("Fallback", false)
        );
    }
}
