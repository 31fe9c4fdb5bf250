//! `cloudrun-emulator compose up|down`: a Docker Compose file run as one Cloud Run
//! multi-container service, the way `gcloud run compose up` deploys it to Google Cloud.
//!
//! Like `docker compose` with its daemon, this is a client of a running emulator: [`file`] reads
//! the Compose file (interpolation, `.env`, `env_file`, warnings and errors with their line),
//! [`translate`] turns it into the Knative Service `gcloud run services replace` would send
//! (pure), the runtime builds the images that have a `build:` section, and [`client`] stores the
//! secrets and deploys through the emulator's Google APIs, so the service is the emulator's like
//! any other (gcloud sees it, its secrets live in Secret Manager, deleting it removes it).

pub mod cli;
pub mod client;
pub mod file;
pub mod interpolate;
pub mod translate;
pub mod yaml;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::runtime::{ImageBuild, Runtime, RuntimeError};
pub use client::Client;
pub use translate::Plan;

/// The files `compose up` looks for when none is named, in Compose's order.
pub const DEFAULT_FILES: &[&str] = &[
    "compose.yaml",
    "compose.yml",
    "docker-compose.yaml",
    "docker-compose.yml",
];

/// How often the deployment's progress is polled.
const POLL: Duration = Duration::from_millis(50);
/// How long a public URL may take to admit requests after the revision is ready.
const ACCESS_DEADLINE: Duration = Duration::from_secs(10);

/// Why `compose up` or `down` failed.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    /// The Compose file (or a file it names) cannot be read.
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The Compose file is not valid, at a line.
    #[error("{file}:{line}: {message}")]
    Invalid {
        file: String,
        line: usize,
        message: String,
    },
    /// No Compose file was named and none of [`DEFAULT_FILES`] exists.
    #[error("no Compose file found: name one, or create {}", DEFAULT_FILES.join(", "))]
    NoFile,
    /// Building an image failed, or Docker is unreachable.
    #[error("service \"{service}\": {source}")]
    Build {
        service: String,
        #[source]
        source: RuntimeError,
    },
    /// The emulator did not answer.
    #[error(
        "cannot reach the emulator at {url}: {message} (start it with `cloudrun-emulator`, or point --emulator / CLOUDRUN_EMULATOR_URL at it)"
    )]
    Unreachable { url: String, message: String },
    /// The emulator refused a call, with Google's message.
    #[error("{action} failed: {message}")]
    Refused { action: String, message: String },
    /// The revision failed to start.
    #[error("service \"{service}\" did not become ready: {message}")]
    NotReady { service: String, message: String },
    /// A wait passed its deadline.
    #[error("timed out after {}s waiting for {what}", .after.as_secs())]
    Timeout { what: String, after: Duration },
}

/// Something in the Compose file that does not carry over to Cloud Run.
#[derive(Debug, Clone, PartialEq)]
pub struct Warning {
    pub file: String,
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

/// When images with a `build:` section are built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BuildPolicy {
    /// Only images missing from Docker (what `docker compose up` does).
    #[default]
    Missing,
    /// Every time (`--build`).
    Always,
    /// Never (`--no-build`): the images must exist.
    Never,
}

/// Where and how to bring a Compose file up.
#[derive(Debug, Clone)]
pub struct Target {
    /// The emulator's root URL.
    pub emulator: String,
    pub project: String,
    pub region: String,
}

/// A deployed Compose file.
#[derive(Debug, Clone)]
pub struct Deployment {
    /// The Cloud Run service.
    pub service: String,
    /// The revision serving it.
    pub revision: String,
    /// The service URL.
    pub url: String,
}

/// The Compose file to use: `named`, else the first of [`DEFAULT_FILES`] in `dir`.
pub fn find_file(named: Option<&Path>, dir: &Path) -> Result<PathBuf, ComposeError> {
    match named {
        Some(path) => Ok(path.to_path_buf()),
        None => DEFAULT_FILES
            .iter()
            .map(|f| dir.join(f))
            .find(|p| p.is_file())
            .ok_or(ComposeError::NoFile),
    }
}

/// Reads and translates a Compose file; `env` answers interpolation (with `.env` filling in).
pub fn plan(
    file: &Path,
    service: Option<&str>,
    env: &HashMap<String, String>,
) -> Result<Plan, ComposeError> {
    let project = file::load(file, env)?;
    let name = match service {
        Some(name) => name.to_string(),
        None => translate::dns_label(&project.name, 49),
    };
    translate::translate(&project, &name)
}

/// Builds the plan's images (per `policy`), stores its secrets, deploys the service, opens it
/// to all users when `public`, and returns once the new revision serves or has failed.
pub async fn deploy(
    plan: &Plan,
    target: &Target,
    policy: BuildPolicy,
    public: bool,
    timeout: Duration,
) -> Result<Deployment, ComposeError> {
    build_images(plan, policy).await?;
    let client = Client::new(&target.emulator, &target.project, &target.region);
    for (id, value) in &plan.secrets {
        client.put_secret(id, value).await?;
    }
    let applied = client.apply_service(&plan.knative).await?;
    let revision = applied["status"]["latestCreatedRevisionName"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if public {
        client.allow_unauthenticated(&plan.service).await?;
    }
    let deadline = Instant::now() + timeout;
    let url = loop {
        let service =
            client
                .get_service(&plan.service)
                .await?
                .ok_or_else(|| ComposeError::NotReady {
                    service: plan.service.clone(),
                    message: "the service was deleted while it deployed".into(),
                })?;
        match outcome(&service, &revision) {
            Some(Ok(url)) => break url,
            Some(Err(message)) => {
                return Err(ComposeError::NotReady {
                    service: plan.service.clone(),
                    message,
                });
            }
            None => {}
        }
        if Instant::now() > deadline {
            return Err(ComposeError::Timeout {
                what: format!("revision {revision} to become ready"),
                after: timeout,
            });
        }
        tokio::time::sleep(POLL).await;
    };
    if public {
        let admitted = Instant::now() + ACCESS_DEADLINE;
        while client.status_of(&url).await == Some(403) && Instant::now() < admitted {
            tokio::time::sleep(POLL).await;
        }
    }
    Ok(Deployment {
        service: plan.service.clone(),
        revision,
        url,
    })
}

/// `Some(Ok(url))` once `revision` serves, `Some(Err(why))` once it failed, else `None`.
fn outcome(service: &Value, revision: &str) -> Option<Result<String, String>> {
    let status = &service["status"];
    let ready = status["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")?;
    let url = status["url"].as_str();
    match ready["status"].as_str() {
        Some("True") if status["latestReadyRevisionName"] == revision => {
            url.map(|u| Ok(u.to_string()))
        }
        Some("False") if status["latestCreatedRevisionName"] == revision => {
            Some(Err(ready["message"]
                .as_str()
                .unwrap_or("the revision failed")
                .to_string()))
        }
        _ => None,
    }
}

/// Builds the images of services with a `build:` section, all at once.
async fn build_images(plan: &Plan, policy: BuildPolicy) -> Result<(), ComposeError> {
    if plan.builds.is_empty() || policy == BuildPolicy::Never {
        return Ok(());
    }
    let runtime = Runtime::connect(
        &crate::runtime::new_owner("compose"),
        std::sync::Arc::new(|_| {}),
    )
    .await
    .map_err(|source| ComposeError::Build {
        service: plan.builds[0].0.clone(),
        source,
    })?;
    let builds = plan.builds.iter().map(|(service, tag, build)| {
        let runtime = runtime.clone();
        async move {
            let wrap = |source| ComposeError::Build {
                service: service.clone(),
                source,
            };
            if policy == BuildPolicy::Missing && runtime.has_image(tag).await.map_err(wrap)? {
                return Ok(());
            }
            let request = ImageBuild {
                context: build.context.clone(),
                dockerfile: build.dockerfile.clone(),
                args: build.args.clone(),
                target: build.target.clone(),
                tag: tag.clone(),
            };
            runtime.build_image(&request).await.map_err(wrap)
        }
    });
    futures_util::future::try_join_all(builds).await?;
    Ok(())
}

/// Deletes the plan's service and the secrets `up` stored for it; returns whether the service
/// existed.
pub async fn down(plan: &Plan, target: &Target) -> Result<bool, ComposeError> {
    let client = Client::new(&target.emulator, &target.project, &target.region);
    let existed = client.delete_service(&plan.service).await?;
    for (id, _) in &plan.secrets {
        client.delete_secret(id).await?;
    }
    Ok(existed)
}
