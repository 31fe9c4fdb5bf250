//! What links an instance to the emulator from inside, as Cloud Run instances are linked to
//! Google: its own metadata server (one unix socket per instance, so every answer is about the
//! instance asking) and the directory where the ingress serves each service URL as a socket.
//! The instance's sandbox forwards both into its network namespace.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use tokio::net::UnixListener;
use tokio::task::JoinHandle;

use crate::metadata::{self, Instance, METADATA_HOST, METADATA_IP};
use crate::runtime::{HostLinks, PodSpec};
use crate::state::Store;

/// The sockets of every instance of one emulator, under one private temporary directory, made
/// when the first socket is and removed with the emulator.
#[derive(Debug)]
pub(crate) struct Links {
    root: PathBuf,
    store: Store,
    /// The metadata server of each running instance, by pod name: its directory and task.
    servers: Mutex<HashMap<String, (PathBuf, JoinHandle<()>)>>,
    next: AtomicU64,
}

impl Links {
    /// Creates the directory of an emulator whose Docker objects carry the label `owner`
    /// (`emulator-PID-RANDOM`), after removing those of emulators whose process is gone.
    pub(crate) fn create(owner: &str, store: Store) -> Links {
        reap_orphans();
        let root = std::env::temp_dir().join(format!("{DIR_PREFIX}{owner}"));
        Links {
            root,
            store,
            servers: Mutex::default(),
            next: AtomicU64::new(1),
        }
    }

    /// Where the ingress serves service URLs as `PORT.sock`.
    pub(crate) fn services_dir(&self) -> PathBuf {
        self.root.join("services")
    }

    /// Starts the metadata server of the pod `spec` describes, as `instance`, and points the
    /// pod at it: the sandbox forwards it, containers learn its address.
    pub(crate) fn attach(&self, spec: &mut PodSpec, instance: Instance) -> io::Result<()> {
        // Short names: a unix socket path has at most 107 bytes.
        let dir = self
            .root
            .join("instances")
            .join(self.next.fetch_add(1, Ordering::Relaxed).to_string());
        std::fs::create_dir_all(&dir)?;
        std::fs::create_dir_all(self.services_dir())?;
        let listener = match UnixListener::bind(dir.join("metadata.sock")) {
            Ok(listener) => listener,
            Err(error) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(error);
            }
        };
        let router = metadata::router(instance, self.store.clone());
        let pod = spec.name.clone();
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, router).await {
                tracing::warn!(%pod, %error, "the metadata server of an instance stopped");
            }
        });
        self.servers
            .lock()
            .insert(spec.name.clone(), (dir.clone(), task));
        for container in &mut spec.containers {
            container
                .env
                .push(("GCE_METADATA_HOST".into(), METADATA_HOST.into()));
            container
                .env
                .push(("GCE_METADATA_IP".into(), METADATA_IP.into()));
        }
        spec.host_links = Some(HostLinks {
            instance_dir: dir,
            services_dir: self.services_dir(),
        });
        Ok(())
    }

    /// Stops the metadata server of a pod that is gone.
    pub(crate) fn detach(&self, pod: &str) {
        if let Some((dir, task)) = self.servers.lock().remove(pod) {
            task.abort();
            remove(&dir);
        }
    }

    /// Stops every metadata server and removes the directory (emulator shutdown).
    pub(crate) fn remove_all(&self) {
        for (_, (_, task)) in self.servers.lock().drain() {
            task.abort();
        }
        remove(&self.root);
    }
}

impl Drop for Links {
    fn drop(&mut self) {
        self.remove_all();
    }
}

/// The name of an emulator's directory, before its owner label.
const DIR_PREFIX: &str = "cloudrun-emulator-";

/// Removes the directories of emulators that crashed: named after an owner label of this
/// machine's emulators (`emulator-PID-RANDOM`) whose PID no longer runs.
fn reap_orphans() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(owner) = name
            .to_str()
            .and_then(|n| n.strip_prefix(DIR_PREFIX))
            .and_then(|n| n.strip_prefix("emulator-"))
        else {
            continue;
        };
        let pid = owner.split('-').next().and_then(|p| p.parse::<u32>().ok());
        let dir = entry.path();
        if let Some(pid) = pid
            && (dir.join("services").is_dir() || dir.join("instances").is_dir())
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            remove(&dir);
        }
    }
}

fn remove(dir: &Path) {
    if let Err(error) = std::fs::remove_dir_all(dir)
        && error.kind() != io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %dir.display(), %error, "cannot remove an instance's sockets");
    }
}
