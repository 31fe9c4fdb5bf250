//! The runtime's error: every way starting, watching or stopping a pod can fail, worded so a
//! user can act on it.

use std::time::Duration;

/// Why a runtime operation failed; the revision layer turns each variant into a condition.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The Docker engine could not be reached or answered nothing sensible.
    #[error("cannot reach the Docker engine at {host}: {source}")]
    Connect {
        host: String,
        #[source]
        source: bollard::errors::Error,
    },
    /// The image is neither present locally nor pullable (Cloud Run's `ContainerMissing`).
    #[error("Image '{image}' not found.")]
    ImageNotFound { image: String },
    /// The emulator's own sandbox image is missing: a setup problem, not the user's image.
    #[error(
        "the emulator's sandbox image '{image}' is missing from the Docker engine; \
         build it with `docker/build-images.sh sandbox`"
    )]
    SandboxImageMissing { image: String },
    /// An image build (Compose's `build:`) failed; `message` quotes the builder.
    #[error("building the image {image} failed: {message}")]
    BuildFailed { image: String, message: String },
    /// A container stopped before the pod became ready.
    #[error("{}", exited_message(.container, .code, .last_logs))]
    ContainerExited {
        container: String,
        code: i64,
        /// The container's last log lines (stdout and stderr), oldest first.
        last_logs: Vec<String>,
    },
    /// A startup probe failed `failure_threshold` times in a row.
    #[error("{description}. The instance was not started. Last failure: {last_failure}")]
    ProbeFailed {
        container: String,
        /// Cloud Run's wording, e.g. `STARTUP HTTP probe failed 3 times consecutively for
        /// container "api" on port 8080 path "/healthz"`.
        description: String,
        /// What the last attempt saw, e.g. `HTTP status 500`.
        last_failure: String,
        /// Whether it was the default probe Cloud Run adds to an ingress without one.
        default: bool,
    },
    /// The pod spec contradicts itself (unknown dependency, cycle, unknown volume, bad path).
    #[error("invalid pod spec: {0}")]
    InvalidSpec(String),
    /// A wait exceeded its deadline.
    #[error("timed out after {}s {what}", .after.as_secs())]
    Timeout { what: String, after: Duration },
    /// The engine answered something the runtime cannot use (e.g. no host port published).
    #[error("the Docker engine answered unexpectedly: {0}")]
    Unexpected(String),
    /// A Docker call failed; `action` says what the runtime was doing.
    #[error("Docker could not {action}: {source}")]
    Docker {
        action: String,
        #[source]
        source: bollard::errors::Error,
    },
}

impl RuntimeError {
    /// Wraps a Docker failure with what the runtime was trying to do.
    pub(crate) fn docker(action: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> Self {
        let action = action.into();
        move |source| Self::Docker { action, source }
    }
}

fn exited_message(container: &str, code: &i64, last_logs: &[String]) -> String {
    let mut message =
        format!("Container \"{container}\" exited with code {code} before the instance was ready.");
    if last_logs.is_empty() {
        message.push_str(" It wrote no logs.");
    } else {
        message.push_str(" Its last log lines:");
        for line in last_logs {
            message.push_str("\n  ");
            message.push_str(line);
        }
    }
    message
}

/// Whether a Docker error only says the object is already gone or going (404, 409 in progress,
/// 304 already stopped): removal and stop treat those as success.
pub(crate) fn is_gone(error: &bollard::errors::Error) -> bool {
    matches!(
        error,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 304 | 404 | 409,
            ..
        }
    )
}
