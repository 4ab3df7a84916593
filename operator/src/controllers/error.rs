//! The controllers' error type. Each variant says what failed and what to do, and carries a
//! stable category for the metrics. Permanent errors wait for a change of the object; transient
//! ones are retried with a back-off.

use std::time::Duration;

/// What can go wrong in a reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused or failed a request.
    #[error("{action}: {source}")]
    Api {
        /// What the controller was doing.
        action: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// The object lacks something every object has (a namespace, a uid).
    #[error("{0} is missing metadata the API server always sets")]
    MissingMetadata(String),
    /// A cache the reconcile reads is no longer fed: the operator is stopping.
    #[error("{0}: the operator is stopping")]
    Stopping(String),
    /// A child's name is taken by an object the owner does not control: the operator never
    /// adopts it (it may be someone else's, or a collision).
    #[error(
        "{kind} {name} exists and is not controlled by {owner}: the operator does not adopt it; delete or rename that {kind}, or rename the {owner_kind}"
    )]
    NotOurs {
        /// The child's kind.
        kind: String,
        /// The child's name.
        name: String,
        /// The owner, `<Kind> <name>`.
        owner: String,
        /// The owner's kind.
        owner_kind: String,
    },
}

impl Error {
    /// A stable label for the error's kind, for metrics and logs.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Api { .. } => "api",
            Error::MissingMetadata(_) => "metadata",
            Error::Stopping(_) => "stopping",
            Error::NotOurs { .. } => "conflict",
        }
    }

    /// How long to wait before trying again.
    pub fn retry_after(&self) -> Duration {
        match self {
            // Conflicts clear as soon as the watch delivers the newer object.
            Error::Api {
                source: kube::Error::Api(status),
                ..
            } if status.code == 409 => Duration::from_secs(1),
            Error::MissingMetadata(_) => Duration::from_secs(300),
            Error::NotOurs { .. } => Duration::from_secs(60),
            _ => Duration::from_secs(10),
        }
    }
}

/// Adds what the controller was doing to an API error.
pub trait ApiContext<T> {
    /// Names the action that failed.
    fn action(self, action: impl FnOnce() -> String) -> Result<T, Error>;
}

impl<T> ApiContext<T> for Result<T, kube::Error> {
    fn action(self, action: impl FnOnce() -> String) -> Result<T, Error> {
        self.map_err(|source| Error::Api {
            action: action(),
            source,
        })
    }
}

/// The result of a reconcile step.
pub type Result<T, E = Error> = std::result::Result<T, E>;
