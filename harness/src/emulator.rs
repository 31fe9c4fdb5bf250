//! An emulator running inside the test process.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use emulator::controller::Controller;
use emulator::{AppState, Store};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::error::HarnessError;
use crate::gcloud::Gcloud;

/// The project tests use unless they name another.
const DEFAULT_PROJECT: &str = "demo-proj";

/// How to start an [`Emulator`].
#[derive(Debug, Default)]
pub struct EmulatorBuilder {
    data_dir: Option<PathBuf>,
    project: Option<String>,
    strict_iam: bool,
}

impl EmulatorBuilder {
    /// Persist state in `dir`, as `--data-dir` does.
    pub fn data_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.data_dir = Some(dir.as_ref().to_path_buf());
        self
    }

    /// The project [`Emulator::gcloud`] uses by default.
    pub fn project(mut self, project: impl Into<String>) -> Self {
        self.project = Some(project.into());
        self
    }

    /// Enforce IAM as `--iam strict` does: revisions read only secrets they were granted.
    pub fn strict_iam(mut self) -> Self {
        self.strict_iam = true;
        self
    }

    /// Starts serving on a free loopback port; returns once the emulator accepts requests.
    pub async fn start(self) -> Result<Emulator, HarnessError> {
        let store = match &self.data_dir {
            Some(dir) => Store::open(dir).map_err(HarnessError::io(format!(
                "opening data dir {}",
                dir.display()
            )))?,
            None => Store::in_memory(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(HarnessError::io("binding a loopback port"))?;
        let addr = listener
            .local_addr()
            .map_err(HarnessError::io("reading the bound address"))?;
        let (stop, stopped) = oneshot::channel::<()>();
        let (reconciler, controller) = emulator::controller::connect(&store, self.strict_iam).await;
        let state = AppState::new(store.clone(), addr, reconciler);
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.await;
            };
            if let Err(error) = emulator::run(listener, state, shutdown).await {
                tracing::error!(%error, "in-process emulator stopped with an error");
            }
        });
        Ok(Emulator {
            addr,
            project: self.project.unwrap_or_else(|| DEFAULT_PROJECT.to_string()),
            store,
            controller,
            stop: Some(stop),
            task: Some(task),
        })
    }
}

/// A running emulator; dropping it stops the server.
#[derive(Debug)]
pub struct Emulator {
    addr: SocketAddr,
    project: String,
    store: Store,
    controller: Option<Controller>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Emulator {
    /// An in-memory emulator with the default project.
    pub async fn start() -> Result<Emulator, HarnessError> {
        Self::builder().start().await
    }

    /// Options for starting one.
    pub fn builder() -> EmulatorBuilder {
        EmulatorBuilder::default()
    }

    /// `http://127.0.0.1:PORT`, the root every API is served under.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The socket address it serves on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The default project of this emulator's clients.
    pub fn project(&self) -> &str {
        &self.project
    }

    /// The state store, for assertions that look behind the API.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// An ID token for `email` (a service account, or a user), addressed to `audience` (a
    /// service URL), signed as the emulator's metadata server signs them: what
    /// `gcloud auth print-identity-token --audiences=URL` gives a principal on Google Cloud.
    pub fn identity_token(&self, email: &str, audience: &str) -> Result<String, HarnessError> {
        self.store
            .token_issuer()
            .and_then(|issuer| issuer.id_token(email, audience, None))
            .map_err(|e| HarnessError::Identity(e.to_string()))
    }

    /// The owner label of the Docker objects it starts (none without a Docker engine).
    pub fn owner(&self) -> Option<&str> {
        self.controller.as_ref().map(Controller::owner)
    }

    /// A gcloud CLI with its own configuration directory, pointed at this emulator.
    pub fn gcloud(&self) -> Gcloud {
        Gcloud::new(self.addr, &self.project)
    }

    /// Stops serving, removes every container it started, and waits until all is closed.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        if let Some(controller) = self.controller.take() {
            controller.shutdown().await;
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
        if let Some(controller) = self.controller.take() {
            // Drop may run while a panicking test unwinds inside its runtime, whose tasks then
            // never run again: clean up from a thread with its own runtime and its own Docker
            // connection, and wait, so no container outlives the test.
            controller.close();
            let owner = controller.owner().to_string();
            drop(controller);
            let cleanup = std::thread::spawn(move || remove_all(&owner));
            let _ = cleanup.join();
        }
    }
}

/// Removes every Docker object labelled with `owner`, on a runtime of its own.
fn remove_all(owner: &str) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot clean up the emulator's containers");
            return;
        }
    };
    runtime.block_on(async {
        let docker = emulator::runtime::Runtime::connect(owner, std::sync::Arc::new(|_| {})).await;
        match docker {
            Ok(docker) => {
                if let Err(error) = docker.remove_all().await {
                    tracing::error!(%error, "removing the emulator's containers failed");
                }
            }
            Err(error) => tracing::error!(%error, "cannot reach Docker to clean up"),
        }
    });
}
