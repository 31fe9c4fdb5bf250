//! Pods: one sandbox container owns the network namespace and publishes every port; the
//! pod's containers join it, start in dependency order and are watched once ready.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::models::{
    ContainerCreateBody, HostConfig, Mount, MountType, PortBinding, VolumeCreateRequest,
};
use bollard::query_parameters::{CreateContainerOptionsBuilder, StopContainerOptionsBuilder};
use futures_util::future::{join_all, try_join_all};
use parking_lot::Mutex;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::error::is_gone;
use super::labels::{Kind, LABEL_CONTAINER, LABEL_OWNER, LABEL_POD, object_labels};
use super::monitor::{Exit, watch_exit};
use super::probes::{self, ProbeFailure};
use super::{ContainerSpec, Engine, HostLinks, PodSpec, RuntimeError, files, images, logs};

/// The image of the container that owns a pod's network namespace (`docker/images/sandbox`).
pub const SANDBOX_IMAGE: &str = "cloudrun-emulator/sandbox:1";
/// How the sandbox is named in exit reports.
const SANDBOX_NAME: &str = "(sandbox)";
/// SIGTERM-to-SIGKILL grace on stop; short, so deleting a service takes well under a second.
const STOP_GRACE_SECS: i32 = 2;
/// Log lines quoted when a container exits during startup.
const LAST_LOG_LINES: usize = 20;
/// Allowance for Docker's own work (create, start) on top of the probes' budgets.
const STARTUP_SLACK: Duration = Duration::from_secs(60);

/// Where a started pod stands; watch it with [`Pod::status`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodStatus {
    /// Every container passed its startup probe and is running.
    Ready,
    /// A container exited or failed its liveness probe; the pod should be replaced.
    Failed { reason: String },
    /// [`Runtime::stop_pod`](super::Runtime::stop_pod) was called.
    Stopped,
}

/// A started pod: its published ports and a status that changes if it fails later.
#[derive(Debug, Clone)]
pub struct Pod {
    /// The name from the [`PodSpec`].
    pub name: String,
    /// Host address of each published container port (every listened-on or probed port).
    pub ports: BTreeMap<u16, SocketAddr>,
    sandbox_id: String,
    /// Container name → Docker id.
    containers: BTreeMap<String, String>,
    shared: Arc<Shared>,
}

impl Pod {
    /// The host address that reaches `container_port` inside the pod.
    pub fn addr(&self, container_port: u16) -> Option<SocketAddr> {
        self.ports.get(&container_port).copied()
    }

    /// The Docker id of a container of the pod, by its spec name.
    pub fn container_id(&self, container: &str) -> Option<&str> {
        self.containers.get(container).map(String::as_str)
    }

    /// A receiver that sees the pod turn [`PodStatus::Failed`] or [`PodStatus::Stopped`].
    pub fn status(&self) -> watch::Receiver<PodStatus> {
        self.shared.status.subscribe()
    }
}

/// What the pod's background tasks share with its handle.
#[derive(Debug)]
struct Shared {
    status: watch::Sender<PodStatus>,
    /// Exit watchers and liveness probes; aborted when the pod stops.
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Shared {
    /// Records the first failure of a ready pod; later ones, and any after a stop, are ignored.
    fn fail(&self, reason: String) {
        self.status.send_if_modified(|status| {
            if *status == PodStatus::Ready {
                *status = PodStatus::Failed { reason };
                true
            } else {
                false
            }
        });
    }

    fn track(&self, task: JoinHandle<()>) {
        self.tasks.lock().push(task);
    }

    fn abort_tasks(&self) {
        for task in self.tasks.lock().drain(..) {
            task.abort();
        }
    }
}

/// Removes a pod's objects if its start is abandoned midway (the future dropped).
struct RemoveOnDrop<'a> {
    engine: &'a Engine,
    labels: Vec<String>,
    armed: bool,
}

impl Drop for RemoveOnDrop<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let docker = self.engine.docker.clone();
            let labels = std::mem::take(&mut self.labels);
            handle.spawn(async move {
                if let Err(error) = super::cleanup::remove_labelled(&docker, &labels).await {
                    tracing::warn!(%error, "could not remove an abandoned pod");
                }
            });
        }
    }
}

/// The label filter selecting every object of one pod of this runtime.
fn pod_filter(engine: &Engine, pod: &str) -> Vec<String> {
    vec![
        format!("{LABEL_OWNER}={}", engine.owner),
        format!("{LABEL_POD}={pod}"),
    ]
}

/// Starts a pod (see [`Runtime::start_pod`](super::Runtime::start_pod)).
pub(crate) async fn start(engine: &Engine, mut spec: PodSpec) -> Result<Pod, RuntimeError> {
    spec.validate()?;
    let began = Instant::now();
    // Images first, so a missing image creates nothing.
    if !images::is_present(&engine.docker, SANDBOX_IMAGE).await? {
        return Err(RuntimeError::SandboxImageMissing {
            image: SANDBOX_IMAGE.into(),
        });
    }
    if spec.host_links.is_some() && !sandbox_links(engine).await {
        tracing::warn!(
            pod = spec.name,
            image = SANDBOX_IMAGE,
            "the sandbox image predates links (rebuild it: docker/build-images.sh sandbox); \
             this instance reaches neither its metadata server nor other services"
        );
        spec.host_links = None;
    }
    let references: BTreeSet<&str> = spec.containers.iter().map(|c| c.image.as_str()).collect();
    try_join_all(
        references
            .into_iter()
            .map(|r| images::ensure(&engine.docker, r)),
    )
    .await?;

    let shared = Arc::new(Shared {
        status: watch::Sender::new(PodStatus::Ready),
        tasks: Mutex::new(Vec::new()),
    });
    let mut guard = RemoveOnDrop {
        engine,
        labels: pod_filter(engine, &spec.name),
        armed: true,
    };
    let limit = STARTUP_SLACK
        + spec
            .containers
            .iter()
            .filter_map(|c| c.startup_probe.as_ref())
            .map(|p| p.budget())
            .sum::<Duration>();
    let outcome = match tokio::time::timeout(limit, launch(engine, &spec, &shared)).await {
        Ok(outcome) => outcome,
        Err(_) => Err(RuntimeError::Timeout {
            what: format!("waiting for the containers of pod {} to start", spec.name),
            after: limit,
        }),
    };
    match outcome {
        Ok(pod) => {
            guard.armed = false;
            tracing::debug!(pod = pod.name, elapsed = ?began.elapsed(), "pod ready");
            Ok(pod)
        }
        Err(error) => {
            shared.abort_tasks();
            let removed =
                super::cleanup::remove_labelled(&engine.docker, &pod_filter(engine, &spec.name))
                    .await;
            // Only now: should this future be dropped during the removal, the guard retries it.
            guard.armed = false;
            if let Err(cleanup) = removed {
                tracing::warn!(pod = spec.name, %cleanup, "could not remove a failed pod");
            }
            Err(error)
        }
    }
}

/// Creates and starts everything; on error the caller removes what exists.
async fn launch(
    engine: &Engine,
    spec: &PodSpec,
    shared: &Arc<Shared>,
) -> Result<Pod, RuntimeError> {
    try_join_all(spec.volumes.iter().map(|v| create_volume(engine, spec, v))).await?;
    let sandbox_id = create_sandbox(engine, spec).await?;
    engine
        .docker
        .start_container(&sandbox_id, None)
        .await
        .map_err(RuntimeError::docker("start the pod's sandbox container"))?;
    let ports = published_ports(engine, spec, &sandbox_id).await?;
    let (exits, mut exited) = mpsc::unbounded_channel();
    shared.track(watch_exit(
        engine.streaming.clone(),
        SANDBOX_NAME.into(),
        sandbox_id.clone(),
        exits.clone(),
    ));

    let ids = try_join_all(
        spec.containers
            .iter()
            .map(|c| create_member(engine, spec, c, &sandbox_id)),
    )
    .await?;
    let containers: BTreeMap<String, String> = spec
        .containers
        .iter()
        .map(|c| c.name.clone())
        .zip(ids)
        .collect();
    if let Some(links) = &spec.host_links {
        links_ready(links, &spec.name).await?;
    }

    let ready: HashMap<&str, watch::Sender<bool>> = spec
        .containers
        .iter()
        .map(|c| (c.name.as_str(), watch::Sender::new(false)))
        .collect();
    let startups = try_join_all(spec.containers.iter().map(|c| {
        Member {
            engine,
            pod: &spec.name,
            spec: c,
            id: &containers[&c.name],
            ports: &ports,
            ready: &ready,
            exits: &exits,
            shared,
        }
        .start()
    }));
    let started = tokio::select! {
        started = startups => started,
        Some(exit) = exited.recv() => Err(exited_error(engine, &exit, &containers, &sandbox_id).await),
    };
    if let Err(RuntimeError::ProbeFailed { container, .. }) = &started {
        // A probe fails when its container died under it: report the death instead.
        if let Some(exit) = stopped(engine, container, &containers[container]).await {
            return Err(exited_error(engine, &exit, &containers, &sandbox_id).await);
        }
    }
    started?;
    // A container without a startup probe counts as started once running; it may already be
    // gone again.
    if let Ok(exit) = exited.try_recv() {
        return Err(exited_error(engine, &exit, &containers, &sandbox_id).await);
    }

    let watcher = Arc::clone(shared);
    shared.track(tokio::spawn(async move {
        if let Some(exit) = exited.recv().await {
            watcher.fail(exit.reason());
        }
    }));
    for container in &spec.containers {
        if let Some(probe) = container.liveness_probe.clone() {
            let addr = ports[&probe.action.port()];
            let name = container.name.clone();
            let watcher = Arc::clone(shared);
            shared.track(tokio::spawn(async move {
                let failure = probes::until_fail(&probe, &name, addr).await;
                watcher.fail(format!(
                    "{}. The instance has been shut down. Last failure: {}",
                    failure.description, failure.last_failure
                ));
            }));
        }
    }
    Ok(Pod {
        name: spec.name.clone(),
        ports,
        sandbox_id,
        containers,
        shared: Arc::clone(shared),
    })
}

/// One container's part of the start: wait for dependencies, start, pass the startup probe.
struct Member<'a> {
    engine: &'a Engine,
    pod: &'a str,
    spec: &'a ContainerSpec,
    id: &'a str,
    ports: &'a BTreeMap<u16, SocketAddr>,
    ready: &'a HashMap<&'a str, watch::Sender<bool>>,
    exits: &'a mpsc::UnboundedSender<Exit>,
    shared: &'a Shared,
}

impl Member<'_> {
    async fn start(self) -> Result<(), RuntimeError> {
        let name = &self.spec.name;
        for dependency in &self.spec.depends_on {
            let mut ready = self.ready[dependency.as_str()].subscribe();
            ready.wait_for(|ready| *ready).await.map_err(|_| {
                RuntimeError::Unexpected(format!("lost track of container {dependency:?}"))
            })?;
        }
        self.engine
            .docker
            .start_container(self.id, None)
            .await
            .map_err(RuntimeError::docker(format!("start container \"{name}\"")))?;
        // Not tracked: a log follower ends by itself once the container is gone, after
        // delivering its last lines.
        logs::follow(
            self.engine.streaming.clone(),
            Arc::clone(&self.engine.logs),
            self.pod.to_string(),
            name.clone(),
            self.id.to_string(),
        );
        self.shared.track(watch_exit(
            self.engine.streaming.clone(),
            name.clone(),
            self.id.to_string(),
            self.exits.clone(),
        ));
        if let Some(probe) = &self.spec.startup_probe {
            let addr = self.ports[&probe.action.port()];
            probes::until_pass(probe, name, addr).await.map_err(
                |ProbeFailure {
                     description,
                     last_failure,
                 }| RuntimeError::ProbeFailed {
                    container: name.clone(),
                    description,
                    last_failure,
                    default: probe.is_default,
                },
            )?;
        }
        tracing::debug!(pod = self.pod, container = name, "container started");
        self.ready[name.as_str()].send_replace(true);
        Ok(())
    }
}

/// The exit of a container that is no longer running, if it is not.
async fn stopped(engine: &Engine, container: &str, id: &str) -> Option<Exit> {
    let state = engine
        .docker
        .inspect_container(id, None)
        .await
        .ok()?
        .state?;
    if state.running == Some(true) {
        return None;
    }
    Some(Exit {
        container: container.to_string(),
        code: state.exit_code,
        detail: state.error.unwrap_or_default(),
    })
}

/// `ContainerExited` with the container's last log lines.
async fn exited_error(
    engine: &Engine,
    exit: &Exit,
    containers: &BTreeMap<String, String>,
    sandbox_id: &str,
) -> RuntimeError {
    let id = containers
        .get(&exit.container)
        .map_or(sandbox_id, String::as_str);
    let mut last_logs = logs::tail(&engine.docker, id, LAST_LOG_LINES).await;
    if exit.code.is_none() && !exit.detail.is_empty() {
        last_logs.push(exit.detail.clone());
    }
    RuntimeError::ContainerExited {
        container: exit.container.clone(),
        code: exit.code.unwrap_or(-1),
        last_logs,
    }
}

/// The label of sandbox images that link the emulator's sockets (`docker/images/sandbox`).
const LABEL_SANDBOX_LINKS: &str = "cloudrun-emulator.sandbox-links";

/// Whether the local sandbox image can link the emulator's sockets into a pod.
async fn sandbox_links(engine: &Engine) -> bool {
    engine
        .docker
        .inspect_image(SANDBOX_IMAGE)
        .await
        .ok()
        .and_then(|image| image.config?.labels)
        .is_some_and(|labels| labels.contains_key(LABEL_SANDBOX_LINKS))
}

/// How long the sandbox may take to link the emulator's sockets into the namespace.
const LINKS_DEADLINE: Duration = Duration::from_secs(15);

/// Waits until the sandbox reports the emulator's sockets linked (it creates `ready` in the
/// instance directory), so that no container starts before its metadata server answers.
async fn links_ready(links: &HostLinks, pod: &str) -> Result<(), RuntimeError> {
    let marker = links.instance_dir.join("ready");
    let started = Instant::now();
    while !marker.exists() {
        if started.elapsed() > LINKS_DEADLINE {
            return Err(RuntimeError::Timeout {
                what: format!(
                    "waiting for the sandbox of pod {pod} to link the metadata server and service URLs \
                     (is {SANDBOX_IMAGE} up to date? docker/build-images.sh sandbox)"
                ),
                after: LINKS_DEADLINE,
            });
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// Where the sandbox finds the pod's own sockets (`docker/images/sandbox/sandbox.sh`).
const LINKS_INSTANCE_DIR: &str = "/run/cloudrun-emulator/instance";
/// Where the sandbox finds one socket per service URL.
const LINKS_SERVICES_DIR: &str = "/run/cloudrun-emulator/services";
/// The metadata server's name and address inside a pod, as on Google Cloud.
const METADATA_HOST: &str = "metadata.google.internal";
const METADATA_IP: &str = "169.254.169.254";

fn bind_mount(source: &std::path::Path, target: &str) -> Mount {
    Mount {
        target: Some(target.into()),
        source: Some(source.to_string_lossy().into_owned()),
        typ: Some(MountType::BIND),
        ..Default::default()
    }
}

/// Docker's name for a pod object.
fn object_name(pod: &str, part: &str) -> String {
    format!("cre-{pod}-{part}")
}

/// Volumes and the sandbox use `_`, which container names cannot contain: no collisions.
fn internal_name(pod: &str, part: &str) -> String {
    format!("cre-{pod}_{part}")
}

async fn create_volume(engine: &Engine, spec: &PodSpec, volume: &str) -> Result<(), RuntimeError> {
    let mut options = HashMap::from([
        ("type".to_string(), "tmpfs".to_string()),
        ("device".to_string(), "tmpfs".to_string()),
    ]);
    if let Some(limit) = spec.volume_size_limits.get(volume) {
        options.insert("o".into(), format!("size={limit}"));
    }
    engine
        .docker
        .create_volume(VolumeCreateRequest {
            name: Some(internal_name(&spec.name, volume)),
            driver: Some("local".into()),
            driver_opts: Some(options),
            labels: Some(object_labels(
                &engine.owner,
                &spec.name,
                Kind::Volume,
                &spec.labels,
            )),
            ..Default::default()
        })
        .await
        .map_err(RuntimeError::docker(format!("create volume {volume:?}")))?;
    Ok(())
}

/// The namespace owner: publishes every port on 127.0.0.1 and maps container names in
/// `/etc/hosts`, which the members share.
async fn create_sandbox(engine: &Engine, spec: &PodSpec) -> Result<String, RuntimeError> {
    let ports = spec.published_ports();
    let bindings = ports
        .iter()
        .map(|port| {
            let binding = PortBinding {
                host_ip: Some(Ipv4Addr::LOCALHOST.to_string()),
                host_port: Some(String::new()),
            };
            (format!("{port}/tcp"), Some(vec![binding]))
        })
        .collect();
    let mut extra_hosts: Vec<String> = spec
        .containers
        .iter()
        .map(|c| format!("{}:127.0.0.1", c.name))
        .chain(
            spec.host_aliases
                .iter()
                .map(|(host, ip)| format!("{host}:{ip}")),
        )
        .collect();
    let mut host_config = HostConfig {
        init: Some(true),
        port_bindings: Some(bindings),
        ..Default::default()
    };
    let mut env = Vec::new();
    if let Some(links) = &spec.host_links {
        extra_hosts.push(format!("{METADATA_HOST}:{METADATA_IP}"));
        // To add the metadata address to the namespace's loopback interface; the sandbox only.
        host_config.cap_add = Some(vec!["NET_ADMIN".into()]);
        host_config.mounts = Some(vec![
            bind_mount(&links.instance_dir, LINKS_INSTANCE_DIR),
            bind_mount(&links.services_dir, LINKS_SERVICES_DIR),
        ]);
        let own: BTreeSet<u16> = spec
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().copied())
            .chain(ports.iter().copied())
            .collect();
        let own: Vec<String> = own.iter().map(u16::to_string).collect();
        env.push(format!("CLOUDRUN_EMULATOR_POD_PORTS={}", own.join(" ")));
    }
    host_config.extra_hosts = Some(extra_hosts);
    let body = ContainerCreateBody {
        image: Some(SANDBOX_IMAGE.into()),
        exposed_ports: Some(ports.iter().map(|p| format!("{p}/tcp")).collect()),
        labels: Some(object_labels(
            &engine.owner,
            &spec.name,
            Kind::Sandbox,
            &spec.labels,
        )),
        env: Some(env),
        host_config: Some(host_config),
        ..Default::default()
    };
    let options = CreateContainerOptionsBuilder::new()
        .name(&internal_name(&spec.name, "sandbox"))
        .build();
    let created = engine
        .docker
        .create_container(Some(options), body)
        .await
        .map_err(RuntimeError::docker("create the pod's sandbox container"))?;
    Ok(created.id)
}

/// The host address Docker chose for each published port.
async fn published_ports(
    engine: &Engine,
    spec: &PodSpec,
    sandbox_id: &str,
) -> Result<BTreeMap<u16, SocketAddr>, RuntimeError> {
    let info = engine
        .docker
        .inspect_container(sandbox_id, None)
        .await
        .map_err(RuntimeError::docker("inspect the pod's sandbox container"))?;
    let map = info
        .network_settings
        .and_then(|n| n.ports)
        .unwrap_or_default();
    spec.published_ports()
        .into_iter()
        .map(|port| {
            map.get(&format!("{port}/tcp"))
                .and_then(Option::as_ref)
                .and_then(|bindings| {
                    bindings
                        .iter()
                        .find_map(|b| b.host_port.as_deref()?.parse::<u16>().ok())
                })
                .map(|host| (port, SocketAddr::from((Ipv4Addr::LOCALHOST, host))))
                .ok_or_else(|| {
                    RuntimeError::Unexpected(format!("no host port was published for port {port}"))
                })
        })
        .collect()
}

/// Creates (without starting) one container in the sandbox's namespace and places its files.
async fn create_member(
    engine: &Engine,
    spec: &PodSpec,
    container: &ContainerSpec,
    sandbox_id: &str,
) -> Result<String, RuntimeError> {
    let mut labels = object_labels(&engine.owner, &spec.name, Kind::PodMember, &spec.labels);
    labels.insert(LABEL_CONTAINER.into(), container.name.clone());
    let mounts = container
        .mounts
        .iter()
        .map(|(volume, path)| Mount {
            target: Some(path.clone()),
            source: Some(internal_name(&spec.name, volume)),
            typ: Some(MountType::VOLUME),
            ..Default::default()
        })
        .collect();
    let body = ContainerCreateBody {
        image: Some(container.image.clone()),
        entrypoint: (!container.command.is_empty()).then(|| container.command.clone()),
        cmd: (!container.args.is_empty()).then(|| container.args.clone()),
        working_dir: container.working_dir.clone(),
        env: Some(
            container
                .env
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
        ),
        labels: Some(labels),
        host_config: Some(HostConfig {
            network_mode: Some(format!("container:{sandbox_id}")),
            // An init as PID 1: an app that does not trap SIGTERM dies at once, as on Cloud Run.
            init: Some(true),
            // Docker refuses more CPUs than the host has; the limit is capped there.
            nano_cpus: container
                .cpu
                .map(|cpu| (cpu.min(engine.host_cpus) * 1e9).round() as i64),
            memory: container.memory_bytes,
            mounts: Some(mounts),
            ..Default::default()
        }),
        ..Default::default()
    };
    let options = CreateContainerOptionsBuilder::new()
        .name(&object_name(&spec.name, &container.name))
        .build();
    let created = engine
        .docker
        .create_container(Some(options), body)
        .await
        .map_err(RuntimeError::docker(format!(
            "create container \"{}\"",
            container.name
        )))?;
    files::place(&engine.docker, &created.id, &container.files).await?;
    Ok(created.id)
}

/// Stops a pod (see [`Runtime::stop_pod`](super::Runtime::stop_pod)).
pub(crate) async fn stop(engine: &Engine, pod: &Pod) -> Result<(), RuntimeError> {
    pod.shared.status.send_replace(PodStatus::Stopped);
    pod.shared.abort_tasks();
    let stop = StopContainerOptionsBuilder::new()
        .t(STOP_GRACE_SECS)
        .build();
    let ids = pod.containers.values().chain([&pod.sandbox_id]);
    let results = join_all(ids.map(|id| {
        let stop = stop.clone();
        async move { engine.docker.stop_container(id, Some(stop)).await }
    }))
    .await;
    for error in results.into_iter().filter_map(Result::err) {
        if !is_gone(&error) {
            tracing::warn!(pod = pod.name, %error, "stopping a container failed; removing it anyway");
        }
    }
    let ids: Vec<&str> = pod
        .containers
        .values()
        .chain([&pod.sandbox_id])
        .map(String::as_str)
        .collect();
    super::cleanup::remove_containers(&engine.docker, &ids).await?;
    super::cleanup::remove_volumes(&engine.docker, &pod_filter(engine, &pod.name)).await?;
    Ok(())
}
