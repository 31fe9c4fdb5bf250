//! What a caller asks the runtime to run: plain structs, no Docker and no wire types.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::RuntimeError;

/// One Cloud Run instance to start: containers sharing a network namespace and volumes.
#[derive(Debug, Clone, Default)]
pub struct PodSpec {
    /// Unique name, e.g. `svc-00001-abc-x7k2q9`; Docker objects are named `cre-<name>-…`.
    pub name: String,
    /// Extra labels (service, revision, project) put on every Docker object of the pod.
    pub labels: BTreeMap<String, String>,
    /// The containers, ingress included; their names are unique.
    pub containers: Vec<ContainerSpec>,
    /// Names of the in-memory `emptyDir` volumes the containers may mount.
    pub volumes: Vec<String>,
    /// Optional size caps of those volumes in bytes (`sizeLimit`), by volume name.
    pub volume_size_limits: BTreeMap<String, u64>,
    /// Extra `/etc/hosts` entries `(host name, address)`, as Kubernetes' `hostAliases`: how a
    /// test points an app's third-party host name at a stub server.
    pub host_aliases: Vec<(String, IpAddr)>,
    /// The emulator's sockets the sandbox makes reachable inside the pod; `None`: none.
    pub host_links: Option<HostLinks>,
}

/// Host directories of unix sockets that the pod's sandbox forwards into its network
/// namespace, so the containers reach the emulator as Cloud Run containers reach Google: the
/// metadata server at `metadata.google.internal` (169.254.169.254:80), and every service URL
/// `http://127.0.0.1:PORT`. Needs an engine on this machine (bind mounts of unix sockets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostLinks {
    /// Holds `metadata.sock`, the pod's own metadata server.
    pub instance_dir: PathBuf,
    /// Holds `PORT.sock` for each service URL `http://127.0.0.1:PORT`, added as services come.
    pub services_dir: PathBuf,
}

/// One container of a pod, with everything already resolved by the caller.
#[derive(Debug, Clone, Default)]
pub struct ContainerSpec {
    /// The container's name; also resolves to 127.0.0.1 inside the pod.
    pub name: String,
    /// The image reference as the user wrote it; it must name a local image.
    pub image: String,
    /// Entrypoint override; empty keeps the image's.
    pub command: Vec<String>,
    /// Cmd override; empty keeps the image's (unless `command` is set, as in Kubernetes).
    pub args: Vec<String>,
    /// Working directory override.
    pub working_dir: Option<String>,
    /// The complete environment (PORT, K_SERVICE, secrets…), in order.
    pub env: Vec<(String, String)>,
    /// Files (mounted secrets) written into the container before it starts.
    pub files: Vec<FileSpec>,
    /// `(volume name, mount path)` pairs; the volume must be in [`PodSpec::volumes`].
    pub mounts: Vec<(String, String)>,
    /// CPU limit in vCPUs.
    pub cpu: Option<f64>,
    /// Memory limit in bytes.
    pub memory_bytes: Option<i64>,
    /// Ports this container listens on (the ingress has one); each is published on the host.
    pub ports: Vec<u16>,
    /// Must pass before the container counts as started; `None` means "started once running".
    pub startup_probe: Option<Probe>,
    /// Checked after startup; failing it fails the pod.
    pub liveness_probe: Option<Probe>,
    /// Containers that must pass their startup probe before this one starts.
    pub depends_on: Vec<String>,
}

/// A file to place in a container before it starts (a mounted secret).
#[derive(Clone, Default)]
pub struct FileSpec {
    /// Absolute path; missing parent directories are created (root, 0755).
    pub path: String,
    pub contents: Vec<u8>,
    /// Unix permission bits, e.g. `0o400`; the file is owned by root.
    pub mode: u32,
}

impl std::fmt::Debug for FileSpec {
    /// Never prints the contents: they are secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSpec")
            .field("path", &self.path)
            .field("len", &self.contents.len())
            .field("mode", &format_args!("{:o}", self.mode))
            .finish()
    }
}

/// A startup or liveness probe, with Cloud Run's timing fields.
#[derive(Debug, Clone)]
pub struct Probe {
    pub action: ProbeAction,
    pub initial_delay: Duration,
    /// How long one attempt may take.
    pub timeout: Duration,
    /// Time between the starts of two attempts.
    pub period: Duration,
    /// Consecutive failed attempts that fail the probe (at least 1).
    pub failure_threshold: u32,
    /// The default TCP probe Cloud Run gives an ingress without one; each attempt keeps
    /// re-dialling until its timeout, because it means "listen within the timeout".
    pub is_default: bool,
}

impl Probe {
    /// Cloud Run's default startup probe of an ingress: TCP on its port, 240 s to listen.
    pub fn default_startup(port: u16) -> Self {
        Self {
            action: ProbeAction::Tcp { port },
            initial_delay: Duration::ZERO,
            timeout: Duration::from_secs(240),
            period: Duration::from_secs(240),
            failure_threshold: 1,
            is_default: true,
        }
    }

    /// The longest a startup run of this probe can take before it fails.
    pub(crate) fn budget(&self) -> Duration {
        self.initial_delay
            + self.period.max(self.timeout) * self.failure_threshold.max(1)
            + self.timeout
    }
}

/// What a probe checks, always against a port of the pod.
#[derive(Debug, Clone)]
pub enum ProbeAction {
    /// The port accepts a connection.
    Tcp { port: u16 },
    /// `GET path` answers 200–399.
    Http {
        port: u16,
        path: String,
        headers: Vec<(String, String)>,
    },
    /// `grpc.health.v1.Health/Check` for `service` (none: the server) answers `SERVING`.
    Grpc { port: u16, service: Option<String> },
}

impl ProbeAction {
    /// The container port the probe targets.
    pub fn port(&self) -> u16 {
        match self {
            Self::Tcp { port } | Self::Http { port, .. } | Self::Grpc { port, .. } => *port,
        }
    }
}

impl PodSpec {
    /// Every port to publish: those containers listen on and those probes target.
    pub(crate) fn published_ports(&self) -> BTreeSet<u16> {
        let mut ports = BTreeSet::new();
        for container in &self.containers {
            ports.extend(container.ports.iter().copied());
            for probe in [&container.startup_probe, &container.liveness_probe]
                .into_iter()
                .flatten()
            {
                ports.insert(probe.action.port());
            }
        }
        ports
    }

    /// Checks the spec is self-consistent before anything is created.
    pub(crate) fn validate(&self) -> Result<(), RuntimeError> {
        let invalid = |message: String| Err(RuntimeError::InvalidSpec(message));
        if !is_docker_name(&self.name) {
            return invalid(format!(
                "pod name {:?} is not a valid Docker name",
                self.name
            ));
        }
        if self.containers.is_empty() {
            return invalid("a pod needs at least one container".into());
        }
        let volumes: BTreeSet<&str> = self.volumes.iter().map(String::as_str).collect();
        if volumes.len() != self.volumes.len() {
            return invalid("volume names must be unique".into());
        }
        for volume in &self.volumes {
            if !is_docker_name(volume) {
                return invalid(format!("volume name {volume:?} is not a valid Docker name"));
            }
        }
        for (host, _) in &self.host_aliases {
            if !is_host_name(host) {
                return invalid(format!("host alias {host:?} is not a host name"));
            }
        }
        let mut names = BTreeSet::new();
        for container in &self.containers {
            if !is_docker_name(&container.name) {
                return invalid(format!("container name {:?} is not valid", container.name));
            }
            if !names.insert(container.name.as_str()) {
                return invalid(format!("container name {:?} is used twice", container.name));
            }
            for (volume, path) in &container.mounts {
                if !volumes.contains(volume.as_str()) {
                    return invalid(format!(
                        "container {:?} mounts unknown volume {volume:?}",
                        container.name
                    ));
                }
                if !is_absolute_clean(path) {
                    return invalid(format!("mount path {path:?} must be absolute"));
                }
            }
            for file in &container.files {
                if !is_absolute_clean(&file.path) || file.path.ends_with('/') {
                    return invalid(format!(
                        "file path {:?} must be an absolute file path without '..'",
                        file.path
                    ));
                }
            }
            if container.ports.contains(&0) {
                return invalid(format!("container {:?} lists port 0", container.name));
            }
        }
        for container in &self.containers {
            for dependency in &container.depends_on {
                if dependency == &container.name || !names.contains(dependency.as_str()) {
                    return invalid(format!(
                        "container {:?} depends on unknown container {dependency:?}",
                        container.name
                    ));
                }
            }
        }
        if let Some(cycle) = self.dependency_cycle() {
            return invalid(format!(
                "container dependencies form a cycle through {cycle:?}"
            ));
        }
        Ok(())
    }

    /// A container on a dependency cycle, if any (depth-first search with colours).
    fn dependency_cycle(&self) -> Option<String> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            Visiting,
            Done,
        }
        fn visit<'a>(
            spec: &'a PodSpec,
            name: &'a str,
            marks: &mut BTreeMap<&'a str, Mark>,
        ) -> Option<String> {
            match marks.get(name) {
                Some(Mark::Done) => return None,
                Some(Mark::Visiting) => return Some(name.to_string()),
                None => {}
            }
            marks.insert(name, Mark::Visiting);
            let container = spec.containers.iter().find(|c| c.name == name)?;
            for dependency in &container.depends_on {
                if let Some(cycle) = visit(spec, dependency, marks) {
                    return Some(cycle);
                }
            }
            marks.insert(name, Mark::Done);
            None
        }
        let mut marks = BTreeMap::new();
        self.containers
            .iter()
            .find_map(|c| visit(self, &c.name, &mut marks))
    }
}

/// Docker's rule for container and volume names: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
fn is_docker_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Dot-separated labels of letters, digits and inner hyphens, as `/etc/hosts` takes them.
fn is_host_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

fn is_absolute_clean(path: &str) -> bool {
    path.starts_with('/') && !path.split('/').any(|part| part == "..")
}
