//! The runtime: the only code that talks to Docker (through bollard).
//!
//! It runs a Cloud Run instance as a *pod*: a sandbox container ([`SANDBOX_IMAGE`]) owns the
//! network namespace and publishes every port on 127.0.0.1; the pod's containers join it, so
//! they reach each other on `localhost` and by container name. Callers describe pods with plain
//! structs ([`PodSpec`], [`ContainerSpec`], [`Probe`]) and get a [`Pod`] back once every
//! container is up; nothing here knows HTTP or the Cloud Run API.
//!
//! Files, one concern each: `pod` starts (dependency order, startup probes) and stops pods;
//! `probes` runs TCP, HTTP and gRPC health probes against published ports; `monitor` watches container exits; `logs` delivers every output line to the caller's
//! [`LogSink`]; `images` resolves references; `files` places secret files; `database` runs Cloud SQL servers; `labels` and
//! `cleanup` mark, remove and reap objects; `spec` and `error` are the types above.
//!
//! A pod that fails after it was ready is reported through its status: [`Pod::status`] is a
//! `watch` receiver that turns [`PodStatus::Failed`] when a container exits or fails its
//! liveness probe. The runtime does not stop a failed pod itself (the caller replaces it), and
//! dropping a [`Pod`] does not stop it either: call [`Runtime::stop_pod`] or
//! [`Runtime::remove_all`].

mod cleanup;
mod database;
mod error;
mod files;
mod grpc_health;
mod images;
mod labels;
mod logs;
mod monitor;
mod pod;
mod probes;
mod spec;

use bollard::{ClientVersion, Docker};
use std::sync::Arc;
use std::time::Duration;

pub use database::{DatabaseServer, DatabaseSpec};
pub use error::RuntimeError;
/// The check behind gRPC probes; public so tests can run it against a real gRPC server.
pub use grpc_health::check_grpc_health;
pub use labels::{LABEL_CONTAINER, LABEL_KIND, LABEL_MANAGED, LABEL_OWNER, LABEL_POD, new_owner};
pub use logs::{LogLine, LogSink, LogStream};
pub use pod::{Pod, PodStatus, SANDBOX_IMAGE};
pub use spec::{ContainerSpec, FileSpec, PodSpec, Probe, ProbeAction};

/// The Docker API version the runtime speaks (Docker 20.10); newer engines accept it too.
const API_VERSION: ClientVersion = ClientVersion {
    major_version: 1,
    minor_version: 41,
};
/// Where the engine listens when `DOCKER_HOST` is not set.
const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";
/// Deadline for one ordinary Docker call (create, start, stop, remove…).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Deadline for the response headers of a streaming call (logs, wait): effectively none, as
/// these streams live as long as their container.
const STREAM_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 3600);

/// Handle on the Docker engine; cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    engine: Arc<Engine>,
}

/// What every runtime operation needs.
pub(crate) struct Engine {
    /// For ordinary calls, with [`REQUEST_TIMEOUT`].
    docker: Docker,
    /// For long-lived streams (logs, wait).
    streaming: Docker,
    /// The owner label value of every object this runtime creates.
    owner: String,
    logs: LogSink,
    /// The engine's CPU count: Docker refuses a CPU limit above it, Cloud Run allows up to 8.
    host_cpus: f64,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("owner", &self.engine.owner)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// Connects to the local engine (`DOCKER_HOST` or /var/run/docker.sock) pinned to API 1.41;
    /// `owner` labels every object created, e.g. [`new_owner`]`("emulator")`.
    pub async fn connect(owner: &str, logs: LogSink) -> Result<Runtime, RuntimeError> {
        let host = std::env::var("DOCKER_HOST").unwrap_or_else(|_| DEFAULT_HOST.to_string());
        let connect_error = |source| RuntimeError::Connect {
            host: host.clone(),
            source,
        };
        let timeout = REQUEST_TIMEOUT.as_secs();
        let docker = if host.starts_with("unix://") {
            Docker::connect_with_unix(&host, timeout, &API_VERSION)
        } else if host.starts_with("tcp://") || host.starts_with("http://") {
            Docker::connect_with_http(&host, timeout, &API_VERSION)
        } else {
            Err(bollard::errors::Error::UnsupportedURISchemeError { uri: host.clone() })
        }
        .map_err(connect_error)?;
        let info = docker.info().await.map_err(connect_error)?;
        let streaming = docker.clone().with_timeout(STREAM_TIMEOUT);
        Ok(Runtime {
            engine: Arc::new(Engine {
                docker,
                streaming,
                owner: owner.to_string(),
                logs,
                host_cpus: info.ncpu.unwrap_or(1).max(1) as f64,
            }),
        })
    }

    /// The owner label value of everything this runtime creates.
    pub fn owner(&self) -> &str {
        &self.engine.owner
    }

    /// Removes the pod objects (containers, volumes) of every *other* owner whose process is
    /// gone, i.e. what a crashed earlier run left behind; returns how many were removed.
    /// Owners whose pid still runs, or whose label has no pid, are left alone.
    pub async fn reap_orphans(&self) -> Result<usize, RuntimeError> {
        cleanup::reap_orphans(&self.engine.docker, &self.engine.owner).await
    }

    /// Starts a pod and returns once every container started in dependency order and passed
    /// its startup probe (or, without one, is running); on failure everything created is
    /// removed before the error is returned.
    pub async fn start_pod(&self, spec: PodSpec) -> Result<Pod, RuntimeError> {
        pod::start(&self.engine, spec).await
    }

    /// Stops the pod's containers (SIGTERM, 2 s grace) and removes them and its volumes.
    pub async fn stop_pod(&self, pod: &Pod) -> Result<(), RuntimeError> {
        pod::stop(&self.engine, pod).await
    }

    /// Removes every object this runtime's owner created; for emulator shutdown.
    pub async fn remove_all(&self) -> Result<(), RuntimeError> {
        let filter = [format!("{LABEL_OWNER}={}", self.engine.owner)];
        cleanup::remove_labelled(&self.engine.docker, &filter).await?;
        Ok(())
    }

    /// Whether the engine holds an image under exactly this reference (no pull).
    pub async fn has_image(&self, reference: &str) -> Result<bool, RuntimeError> {
        images::is_present(&self.engine.docker, reference).await
    }
}
