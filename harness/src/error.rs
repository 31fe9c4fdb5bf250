//! The harness's error type.

use std::time::Duration;

/// Why the harness could not bring something up or a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// Binding, spawning or a data directory failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// `docker/build-images.sh` or `docker build` failed.
    #[error("building images [{names}] failed:\n{output}")]
    Images { names: String, output: String },
    /// The emulator could not sign a token.
    #[error("minting an identity token failed: {0}")]
    Identity(String),
    /// A gcloud command exited non-zero where success was expected.
    #[error("`gcloud {args}` failed with {status}:\n{stderr}")]
    Gcloud {
        args: String,
        status: String,
        stderr: String,
    },
    /// The emulator refused a call, with Google's error message.
    #[error("{call} answered {status}: {message}")]
    Api {
        call: String,
        status: u16,
        message: String,
    },
    /// The emulator could not be reached at all, or answered something other than JSON.
    #[error("{call} failed: {source}")]
    Http {
        call: String,
        #[source]
        source: reqwest::Error,
    },
    /// A service's revision did not become ready; `logs` holds its containers' output.
    #[error("deploying service {service} failed: {message}\n--- logs of {service} ---\n{logs}")]
    Deploy {
        service: String,
        message: String,
        logs: String,
    },
    /// A Cloud SQL operation finished with an error.
    #[error("Cloud SQL {what} failed: {message}")]
    Sql { what: String, message: String },
    /// A service.yaml could not be read, substituted or parsed.
    #[error("{path}: {message}")]
    ServiceYaml { path: String, message: String },
    /// A Postgres connection or query failed.
    #[error("{context}: {source}")]
    Postgres {
        context: String,
        #[source]
        source: tokio_postgres::Error,
    },
    /// A dependency container (Redis) could not be started or inspected.
    #[error("{what} failed: {message}")]
    Dependency { what: String, message: String },
    /// Something awaited did not happen before its deadline.
    #[error("timed out after {after:?} {what}")]
    Timeout { what: String, after: Duration },
    /// The test asked the stack for something it does not have.
    #[error("the stack has no {kind} named {name:?}")]
    NotInStack { kind: &'static str, name: String },
}

impl HarnessError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| HarnessError::Io { context, source }
    }

    pub(crate) fn postgres(
        context: impl Into<String>,
    ) -> impl FnOnce(tokio_postgres::Error) -> Self {
        let context = context.into();
        move |source| HarnessError::Postgres { context, source }
    }
}
