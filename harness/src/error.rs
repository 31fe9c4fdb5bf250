//! The harness's error type.

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
    /// `docker/build-images.sh` failed.
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
}

impl HarnessError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| HarnessError::Io { context, source }
    }
}
