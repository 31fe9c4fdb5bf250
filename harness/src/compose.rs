//! Compose files brought up against an [`Emulator`] as Cloud Run services, with the same code as
//! `cloudrun-emulator compose up`, and taken down when the guard drops.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use emulator::compose::{self, BuildPolicy, ComposeError, Plan, Target};

use crate::emulator::Emulator;

/// The region Compose services are deployed to.
const REGION: &str = "us-central1";
/// How long a Compose service may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(180);
/// How long a background `compose down` may take.
const DOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// A Compose file about to be brought up; see [`Emulator::compose`].
#[derive(Debug)]
pub struct ComposeUp<'a> {
    emulator: &'a Emulator,
    file: PathBuf,
    env: HashMap<String, String>,
    service: Option<String>,
}

impl Emulator {
    /// Prepares `compose up` of `file` against this emulator.
    pub fn compose(&self, file: impl AsRef<Path>) -> ComposeUp<'_> {
        ComposeUp {
            emulator: self,
            file: file.as_ref().to_path_buf(),
            env: std::env::vars().collect(),
            service: None,
        }
    }

    /// Brings `file` up as a public Cloud Run service and returns once it serves.
    pub async fn compose_up(&self, file: impl AsRef<Path>) -> Result<ComposeService, ComposeError> {
        self.compose(file).up().await
    }
}

impl ComposeUp<'_> {
    /// Sets a variable for interpolation, as if exported in the shell.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.insert(name.to_string(), value.to_string());
        self
    }

    /// Deploys as this Cloud Run service instead of the Compose project name.
    pub fn service(mut self, name: &str) -> Self {
        self.service = Some(name.to_string());
        self
    }

    /// Builds the images (Docker's cache makes unchanged ones quick), deploys, and waits.
    pub async fn up(self) -> Result<ComposeService, ComposeError> {
        let plan = compose::plan(&self.file, self.service.as_deref(), &self.env)?;
        let target = Target {
            emulator: self.emulator.url(),
            project: self.emulator.project().to_string(),
            region: REGION.to_string(),
        };
        let mut guard = ComposeService {
            url: String::new(),
            revision: String::new(),
            warnings: plan.warnings.iter().map(ToString::to_string).collect(),
            plan,
            target,
            down: true,
        };
        let deployment = compose::deploy(
            &guard.plan,
            &guard.target,
            BuildPolicy::Always,
            true,
            READY_TIMEOUT,
        )
        .await?;
        guard.url = deployment.url;
        guard.revision = deployment.revision;
        Ok(guard)
    }
}

/// A Compose file running as a Cloud Run service; dropping it runs `compose down`.
#[derive(Debug)]
pub struct ComposeService {
    /// The service URL.
    pub url: String,
    /// The revision serving it.
    pub revision: String,
    /// The warnings `compose up` printed, as `file:line: message`.
    pub warnings: Vec<String>,
    plan: Plan,
    target: Target,
    down: bool,
}

impl ComposeService {
    /// The Cloud Run service name.
    pub fn name(&self) -> &str {
        &self.plan.service
    }

    /// Takes the service down now and reports failures.
    pub async fn down(mut self) -> Result<(), ComposeError> {
        self.down = false;
        compose::down(&self.plan, &self.target).await.map(|_| ())
    }
}

impl Drop for ComposeService {
    /// Takes the service down in the background when a runtime is at hand. The emulator's own
    /// drop removes every container it started regardless, so nothing outlives the test.
    fn drop(&mut self) {
        if !self.down {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let plan = self.plan.clone();
        let target = self.target.clone();
        handle.spawn(async move {
            let down = compose::down(&plan, &target);
            match tokio::time::timeout(DOWN_TIMEOUT, down).await {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => tracing::warn!(%error, "compose down failed"),
                Err(_) => tracing::warn!("compose down timed out"),
            }
        });
    }
}
