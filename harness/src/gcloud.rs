//! The real gcloud CLI, isolated from the user's configuration and pointed at an emulator.

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::Arc;

use tempfile::TempDir;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::error::HarnessError;

/// A gcloud CLI with its own `CLOUDSDK_CONFIG`; cheap to clone, removed with the last clone.
#[derive(Debug, Clone)]
pub struct Gcloud {
    config_dir: Arc<TempDir>,
    env: Vec<(String, String)>,
}

impl Gcloud {
    /// A gcloud that sends every emulated API to `addr`, with credentials disabled.
    pub fn new(addr: SocketAddr, project: &str) -> Gcloud {
        let config_dir = Arc::new(
            tempfile::Builder::new()
                .prefix("cloudrun-emulator-gcloud-")
                .tempdir()
                .unwrap_or_else(|e| panic!("cannot create a gcloud config directory: {e}")),
        );
        let mut env = emulator::config::gcloud_env(addr, project);
        env.extend(
            [
                ("CLOUDSDK_CORE_DISABLE_PROMPTS", "1"),
                ("CLOUDSDK_CORE_DISABLE_COLOR", "true"),
                ("TERM", "dumb"),
                ("CLOUDSDK_CORE_DISABLE_USAGE_REPORTING", "true"),
                ("CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK", "true"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        Gcloud { config_dir, env }
    }

    /// The isolated configuration directory.
    pub fn config_dir(&self) -> &Path {
        self.config_dir.path()
    }

    /// Sets an extra environment variable for every command (e.g. another property).
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Gives a command (a shell script calling gcloud, say) this gcloud's configuration.
    pub fn configure(&self, command: &mut std::process::Command) {
        command
            .env("CLOUDSDK_CONFIG", self.config_dir())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    }

    /// A gcloud command; `.await` it for its output.
    pub fn run<I, S>(&self, args: I) -> GcloudCommand
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        GcloudCommand {
            gcloud: self.clone(),
            args: args.into_iter().map(Into::into).collect(),
            stdin: None,
            expect_success: false,
        }
    }
}

/// One gcloud invocation being built.
#[derive(Debug)]
#[must_use = "a gcloud command does nothing until awaited"]
pub struct GcloudCommand {
    gcloud: Gcloud,
    args: Vec<String>,
    stdin: Option<Vec<u8>>,
    expect_success: bool,
}

impl GcloudCommand {
    /// Feeds `data` on standard input (for `--data-file=-`).
    pub fn stdin(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(data.into());
        self
    }

    /// Makes a non-zero exit an error carrying gcloud's stderr.
    pub fn ok(mut self) -> Self {
        self.expect_success = true;
        self
    }

    async fn execute(self) -> Result<GcloudOutput, HarnessError> {
        let mut command = Command::new("gcloud");
        command
            .args(&self.args)
            .env("CLOUDSDK_CONFIG", self.gcloud.config_dir())
            .envs(
                self.gcloud
                    .env
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            )
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(HarnessError::io(
            "running gcloud (is the Google Cloud SDK on PATH?)",
        ))?;
        if let (Some(data), Some(mut pipe)) = (self.stdin, child.stdin.take()) {
            pipe.write_all(&data)
                .await
                .map_err(HarnessError::io("writing gcloud's stdin"))?;
        }
        let output = child
            .wait_with_output()
            .await
            .map_err(HarnessError::io("waiting for gcloud"))?;
        let result = GcloudOutput {
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        };
        if self.expect_success && !result.success {
            return Err(HarnessError::Gcloud {
                args: self.args.join(" "),
                status: output.status.to_string(),
                stderr: result.stderr,
            });
        }
        Ok(result)
    }
}

impl IntoFuture for GcloudCommand {
    type Output = Result<GcloudOutput, HarnessError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.execute())
    }
}

/// What a gcloud command printed and whether it succeeded.
#[derive(Debug, Clone)]
pub struct GcloudOutput {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl GcloudOutput {
    /// Whether gcloud itself crashed (as opposed to reporting an API error cleanly).
    pub fn crashed(&self) -> bool {
        self.stderr.contains("gcloud crashed") || self.stderr.contains("Traceback")
    }
}
