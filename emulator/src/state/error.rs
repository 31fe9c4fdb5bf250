//! The state layer's error: every rule the store enforces fails with one of these.

use std::io;

/// Why a state operation was refused; the API layer maps each variant to one Google status.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The named resource does not exist.
    #[error("{kind} [{name}] not found.")]
    NotFound { kind: &'static str, name: String },
    /// A secret has no version for `latest` to name.
    #[error("Secret [{name}] not found or has no versions.")]
    NoVersions { name: String },
    /// A resource of that name already exists.
    #[error("{kind} [{name}] already exists.")]
    AlreadyExists { kind: &'static str, name: String },
    /// The request is malformed or breaks a validation rule.
    #[error("{0}")]
    InvalidArgument(String),
    /// The resource is not in a state that allows the operation.
    #[error("{0}")]
    FailedPrecondition(String),
    /// An etag did not match: a concurrent change won.
    #[error("{0}")]
    Aborted(String),
    /// The resource does not exist, in the API's own words (e.g. Cloud SQL's
    /// `The Cloud SQL instance does not exist.`).
    #[error("{0}")]
    Missing(String),
    /// The resource conflicts with an existing one, in the API's own words.
    #[error("{0}")]
    Conflict(String),
    /// The caller lacks a permission.
    #[error("{0}")]
    PermissionDenied(String),
    /// The durable journal could not be written; nothing was applied.
    #[error("the state could not be persisted: {0}")]
    Storage(#[from] io::Error),
}

impl StateError {
    /// Shorthand for a validation failure.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::InvalidArgument(message.into())
    }

    /// Shorthand for a state-rule failure.
    pub fn precondition(message: impl Into<String>) -> Self {
        Self::FailedPrecondition(message.into())
    }
}

/// Result of a state operation.
pub type StateResult<T> = Result<T, StateError>;
