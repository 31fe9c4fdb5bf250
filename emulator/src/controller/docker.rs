//! The Docker-backed controller.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::Mutex;

use super::Reconcile;
use super::links::Links;
use super::pods::{self, RevisionFailure};
use crate::state::Store;
use crate::state::run::{RevisionState, Service, ServiceName};

use crate::ingress::{Access, Ingress, Invokers, Target};
use crate::metadata::Instance;
use crate::runtime::{LogLine, LogSink, LogStream, Pod, PodStatus, Runtime, RuntimeError};
use crate::state::logs::{RunResource, Severity, Stream, container_line, system_line};

/// The controller of an emulator with a Docker engine.
#[derive(Debug, Clone)]
pub struct Controller {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    runtime: Runtime,
    ingress: Ingress,
    /// Running pods by revision key.
    pods: Mutex<HashMap<String, Pod>>,
    /// One reconciliation at a time per service.
    locks: parking_lot::Mutex<HashMap<ServiceName, Arc<Mutex<()>>>>,
    /// The traffic tags whose URLs are open, by service.
    tags: parking_lot::Mutex<HashMap<ServiceName, std::collections::BTreeSet<String>>>,
    /// Whether a revision's service account must be granted access to the secrets it reads.
    strict_iam: bool,
    /// Set once shutdown starts: nothing new is started after it.
    closing: std::sync::atomic::AtomicBool,
    /// Reconciliations in flight, aborted at shutdown.
    tasks: parking_lot::Mutex<tokio::task::JoinSet<()>>,
    /// The reconciliations in flight of each service, aborted when it is deleted (a start may
    /// wait minutes for a probe; a deletion does not).
    in_flight: parking_lot::Mutex<HashMap<ServiceName, Vec<tokio::task::AbortHandle>>>,
    /// The revision each running pod belongs to, for its log entries.
    owners: Arc<parking_lot::Mutex<HashMap<String, RunResource>>>,
    /// The Cloud SQL instances' servers.
    sql: super::sql::SqlController,
    /// The metadata servers and service sockets instances reach.
    links: Links,
}

impl Controller {
    /// Connects to Docker, reaps what a crashed earlier emulator left, and brings every stored
    /// service back up (same URLs, ready revisions restarted).
    pub async fn start(
        store: Store,
        ingress: Ingress,
        strict_iam: bool,
    ) -> Result<Controller, RuntimeError> {
        let owners: Arc<parking_lot::Mutex<HashMap<String, RunResource>>> = Arc::default();
        let sink: LogSink = {
            let owners = owners.clone();
            let store = store.clone();
            Arc::new(move |line: LogLine| {
                let owner = owners.lock().get(&line.pod).cloned();
                if let Some(owner) = owner {
                    let stream = match line.stream {
                        LogStream::Stdout => Stream::Stdout,
                        LogStream::Stderr => Stream::Stderr,
                    };
                    store.logs().append(container_line(
                        &owner, &line.pod, stream, &line.text, line.time,
                    ));
                }
            })
        };
        let runtime = Runtime::connect(&crate::runtime::new_owner("emulator"), sink).await?;
        match runtime.reap_orphans().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(objects = n, "removed containers a crashed emulator left"),
            Err(error) => tracing::warn!(%error, "reaping leftovers failed"),
        }
        let sql = super::sql::SqlController::new(store.clone(), runtime.clone());
        let links = Links::create(runtime.owner(), store.clone());
        ingress.serve_sockets_in(links.services_dir());
        let controller = Controller {
            inner: Arc::new(Inner {
                store: store.clone(),
                runtime,
                ingress,
                pods: Mutex::default(),
                locks: parking_lot::Mutex::default(),
                strict_iam,
                tags: parking_lot::Mutex::default(),
                closing: std::sync::atomic::AtomicBool::new(false),
                tasks: parking_lot::Mutex::new(tokio::task::JoinSet::new()),
                in_flight: parking_lot::Mutex::default(),
                owners,
                sql,
                links,
            }),
        };
        controller.inner.sql.boot();
        for service in store.all_services() {
            controller.service_changed(service);
        }
        Ok(controller)
    }

    /// The owner label of every Docker object this controller starts.
    pub fn owner(&self) -> &str {
        self.inner.runtime.owner()
    }

    /// Stops every pod and closes every service URL (emulator shutdown). Reconciliations in
    /// flight are cancelled first, so nothing is started behind the removal.
    pub async fn shutdown(&self) {
        self.close();
        self.inner.pods.lock().await.clear();
        self.inner.sql.shutdown().await;
        // A second pass catches a container whose create was already on its way to Docker.
        for _ in 0..2 {
            if let Err(error) = self.inner.runtime.remove_all().await {
                tracing::warn!(%error, "removing containers at shutdown failed");
            }
        }
        self.inner.ingress.shutdown().await;
        self.inner.links.remove_all();
    }

    /// Stops starting anything: cancels reconciliations in flight and ignores later changes.
    /// Containers already running stay until [`Controller::shutdown`] or a removal by owner.
    pub fn close(&self) {
        self.inner
            .closing
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.inner.tasks.lock().abort_all();
        self.inner.sql.close();
    }

    fn closing(&self) -> bool {
        self.inner.closing.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn lock_for(&self, service: &ServiceName) -> Arc<Mutex<()>> {
        self.inner
            .locks
            .lock()
            .entry(service.clone())
            .or_default()
            .clone()
    }

    /// Brings one service's pods, URL, routes and access in line with the state.
    async fn reconcile(&self, name: ServiceName) {
        let lock = self.lock_for(&name);
        let _guard = lock.lock().await;
        if self.closing() {
            return;
        }
        let inner = &self.inner;
        let key = name.to_string();
        let Some(view) = inner.store.service_by_name(&name) else {
            self.remove_service_pods(&name).await;
            inner.ingress.remove(&key).await;
            let tags = inner.tags.lock().remove(&name).unwrap_or_default();
            for tag in tags {
                inner.ingress.remove(&format!("{key}/tags/{tag}")).await;
            }
            return;
        };
        match inner.ingress.expose(&key, view.service.url_port).await {
            Ok(addr) => {
                if let Err(error) = inner.store.set_service_port(&name, addr.port()) {
                    tracing::warn!(%error, "recording the service URL failed");
                }
            }
            Err(error) => tracing::error!(%error, service = %key, "cannot open the service URL"),
        }
        let revisions = inner
            .store
            .list_revisions(&name.project, Some(&name.region), Some(&name.name))
            .unwrap_or_default();
        let latest = revisions.first().cloned();
        if let Some(revision) = latest.filter(|r| r.state == RevisionState::Pending) {
            self.start_revision(&revision, &view.service.project_id)
                .await;
        }
        let Some(view) = inner.store.service_by_name(&name) else {
            return;
        };
        for target in &view.status.traffic {
            let Some(revision) = revisions.iter().find(|r| r.name == target.revision) else {
                continue;
            };
            let running = inner.pods.lock().await.contains_key(&revision.key());
            if revision.state == RevisionState::Ready && !running {
                self.start_revision(revision, &view.service.project_id)
                    .await;
            }
        }
        let Some(view) = inner.store.service_by_name(&name) else {
            return;
        };
        let pods = inner.pods.lock().await;
        let targets: Vec<Target> = view
            .status
            .traffic
            .iter()
            .filter(|t| t.percent > 0)
            .filter_map(|t| {
                let revision = revisions.iter().find(|r| r.name == t.revision)?;
                let pod = pods.get(&revision.key())?;
                let (_, port) = revision.ingress()?;
                Some(Target {
                    revision: revision.name.clone(),
                    addr: pod.addr(port)?,
                    percent: u32::try_from(t.percent).unwrap_or(0),
                })
            })
            .collect();
        drop(pods);
        inner.ingress.set_targets(&key, targets);
        let tags = self.route_tags(&name, &view, &revisions).await;
        let access = self.access_of(&view.service, &key, &tags);
        inner.ingress.set_access(&key, access.clone());
        for tag in &tags {
            inner
                .ingress
                .set_access(&format!("{key}/tags/{tag}"), access.clone());
        }
        let serving: Vec<String> = view
            .status
            .traffic
            .iter()
            .filter_map(|t| {
                revisions
                    .iter()
                    .find(|r| r.name == t.revision)
                    .map(|r| r.key())
            })
            .collect();
        let idle: Vec<Pod> = {
            let mut pods = inner.pods.lock().await;
            let stale: Vec<String> = pods
                .keys()
                .filter(|k| {
                    revisions.iter().any(|r| &r.key() == *k) && !serving.contains(k)
                        || (k.starts_with(&format!(
                            "projects/{}/locations/{}/revisions/{}-",
                            name.project, name.region, name.name
                        )) && !revisions.iter().any(|r| &r.key() == *k))
                })
                .cloned()
                .collect();
            stale.iter().filter_map(|k| pods.remove(k)).collect()
        };
        for pod in idle {
            self.stop(&pod).await;
        }
    }

    /// Gives each tagged traffic target its own URL, routed to that revision alone; returns
    /// the tags whose URLs are open.
    async fn route_tags(
        &self,
        name: &ServiceName,
        view: &crate::state::run::ServiceView,
        revisions: &[crate::state::run::Revision],
    ) -> std::collections::BTreeSet<String> {
        let inner = &self.inner;
        let key = name.to_string();
        let mut open = std::collections::BTreeSet::new();
        for target in &view.status.traffic {
            let Some(tag) = &target.tag else { continue };
            let tag_key = format!("{key}/tags/{tag}");
            match inner
                .ingress
                .expose(&tag_key, view.service.tag_ports.get(tag).copied())
                .await
            {
                Ok(addr) => {
                    if let Err(error) = inner.store.set_tag_port(name, tag, addr.port()) {
                        tracing::warn!(%error, "recording a tag URL failed");
                    }
                }
                Err(error) => {
                    tracing::error!(%error, tag = %tag, "cannot open a tag URL");
                    continue;
                }
            }
            let pods = inner.pods.lock().await;
            let backend = revisions
                .iter()
                .find(|r| r.name == target.revision)
                .and_then(|r| Some((r, pods.get(&r.key())?)))
                .and_then(|(r, pod)| pod.addr(r.ingress()?.1));
            drop(pods);
            let targets = backend
                .map(|addr| Target {
                    revision: target.revision.clone(),
                    addr,
                    percent: 100,
                })
                .into_iter()
                .collect();
            inner.ingress.set_targets(&tag_key, targets);
            open.insert(tag.clone());
        }
        let previous = inner
            .tags
            .lock()
            .insert(name.clone(), open.clone())
            .unwrap_or_default();
        for gone in previous.difference(&open) {
            inner.ingress.remove(&format!("{key}/tags/{gone}")).await;
        }
        open
    }

    /// Who may invoke a service through its URLs (`key` and its `tags`): anyone when `allUsers`
    /// may or the invoker check is disabled, else the members granted an invoking role, with
    /// ID tokens for one of the service's URLs or custom audiences.
    fn access_of(
        &self,
        service: &Service,
        key: &str,
        tags: &std::collections::BTreeSet<String>,
    ) -> Access {
        let disabled = service
            .annotations
            .get("run.googleapis.com/invoker-iam-disabled")
            .is_some_and(|v| v == "true");
        let members = crate::state::identity::run_invokers(
            &self.inner.store.service_policy_by_name(&service.name),
        );
        if disabled || members.contains("allUsers") {
            return Access::Public;
        }
        let ingress = &self.inner.ingress;
        let mut audiences: std::collections::BTreeSet<String> = std::iter::once(key.to_string())
            .chain(tags.iter().map(|tag| format!("{key}/tags/{tag}")))
            .filter_map(|k| ingress.addr(&k))
            .map(|addr| format!("http://{addr}"))
            .collect();
        if let Some(custom) = service.annotations.get(CUSTOM_AUDIENCES)
            && let Ok(list) = serde_json::from_str::<Vec<String>>(custom)
        {
            audiences.extend(list);
        }
        Access::Private(Arc::new(Invokers { members, audiences }))
    }

    async fn start_revision(&self, revision: &crate::state::run::Revision, project_id: &str) {
        if self.closing() {
            return;
        }
        let inner = &self.inner;
        let outcome = match pods::pod_spec(&inner.store, revision, project_id, inner.strict_iam)
            .and_then(|mut spec| {
                super::cloudsql::attach(&mut spec, revision, &inner.sql.targets())?;
                Ok(spec)
            }) {
            Err(failure) => Err(failure),
            Ok(mut spec) => {
                let instance = instance_of(revision, project_id, &spec.name);
                if let Err(error) = inner.links.attach(&mut spec, instance) {
                    tracing::warn!(pod = %spec.name, %error, "no metadata server for this instance");
                }
                inner.owners.lock().insert(
                    spec.name.clone(),
                    RunResource {
                        project_id: project_id.to_string(),
                        service: revision.service.name.clone(),
                        revision: revision.name.clone(),
                        location: revision.service.region.clone(),
                    },
                );
                let pod_name = spec.name.clone();
                let started = inner.runtime.start_pod(spec).await;
                if started.is_err() {
                    inner.owners.lock().remove(&pod_name);
                    inner.links.detach(&pod_name);
                }
                started.map_err(|e| failure_of(&e))
            }
        };
        if self.closing() {
            return;
        }
        let state = match outcome {
            Ok(pod) => {
                self.watch(revision.key(), revision.service.clone(), &pod);
                if let Some(old) = inner.pods.lock().await.insert(revision.key(), pod) {
                    self.stop(&old).await;
                }
                RevisionState::Ready
            }
            Err(failure) => {
                tracing::info!(revision = %revision.name, reason = %failure.reason, message = %failure.message, "revision failed");
                RevisionState::Failed {
                    reason: failure.reason,
                    message: failure.message,
                }
            }
        };
        if let Err(error) = inner.store.set_revision_state(&revision.key(), state) {
            tracing::warn!(%error, "recording a revision's state failed");
        }
    }

    /// Replaces a pod that fails after it was ready, as Cloud Run replaces a crashed instance.
    fn watch(&self, key: String, service: ServiceName, pod: &Pod) {
        let mut status = pod.status();
        let pod_name = pod.name.clone();
        let controller = self.clone();
        tokio::spawn(async move {
            while status.changed().await.is_ok() {
                let current = status.borrow().clone();
                match current {
                    PodStatus::Failed { .. } if controller.closing() => return,
                    PodStatus::Failed { reason } => {
                        tracing::warn!(pod = %pod_name, %reason, "instance failed; replacing it");
                        let owner = controller.inner.owners.lock().get(&pod_name).cloned();
                        if let Some(owner) = owner {
                            controller.inner.store.logs().append(system_line(
                                &owner,
                                &pod_name,
                                Severity::Error,
                                &reason,
                            ));
                        }
                        let failed = {
                            let mut pods = controller.inner.pods.lock().await;
                            match pods.get(&key) {
                                Some(p) if p.name == pod_name => pods.remove(&key),
                                _ => None,
                            }
                        };
                        if let Some(pod) = failed {
                            controller.stop(&pod).await;
                        }
                        controller.service_changed(service.clone());
                        return;
                    }
                    PodStatus::Stopped => return,
                    PodStatus::Ready => {}
                }
            }
        });
    }

    async fn stop(&self, pod: &Pod) {
        if let Err(error) = self.inner.runtime.stop_pod(pod).await {
            tracing::warn!(%error, pod = %pod.name, "stopping an instance failed");
        }
        self.inner.owners.lock().remove(&pod.name);
        self.inner.links.detach(&pod.name);
    }

    async fn remove_service_pods(&self, name: &ServiceName) {
        let prefix = format!(
            "projects/{}/locations/{}/revisions/{}-",
            name.project, name.region, name.name
        );
        let removed: Vec<Pod> = {
            let mut pods = self.inner.pods.lock().await;
            let keys: Vec<String> = pods
                .keys()
                .filter(|k| k.starts_with(&prefix))
                .cloned()
                .collect();
            keys.iter().filter_map(|k| pods.remove(k)).collect()
        };
        for pod in removed {
            self.stop(&pod).await;
        }
    }
}

/// The annotation listing extra audiences a service's ID tokens may name (a JSON array).
const CUSTOM_AUDIENCES: &str = "run.googleapis.com/custom-audiences";

/// What a pod's metadata server says about it.
fn instance_of(revision: &crate::state::run::Revision, project_id: &str, pod: &str) -> Instance {
    Instance {
        project_id: project_id.to_string(),
        project_number: revision.service.project.clone(),
        region: revision.service.region.clone(),
        instance_id: pod.to_string(),
        service_account: pods::service_account(revision),
    }
}

/// A runtime failure as the revision condition Cloud Run shows.
fn failure_of(error: &RuntimeError) -> RevisionFailure {
    let (reason, message) = match error {
        RuntimeError::ImageNotFound { .. } => ("ContainerMissing", error.to_string()),
        RuntimeError::ProbeFailed { default: true, .. } => (
            "HealthCheckContainerError",
            format!(
                "The user-provided container failed to start and listen on the port defined \
                 provided by the PORT environment variable within the allocated timeout. {error}"
            ),
        ),
        RuntimeError::ProbeFailed { .. } => (
            "HealthCheckContainerError",
            format!(
                "The user-provided container failed the configured startup probe checks. {error}"
            ),
        ),
        RuntimeError::ContainerExited { .. } => ("HealthCheckContainerError", error.to_string()),
        _ => ("ContainerRuntimeError", error.to_string()),
    };
    RevisionFailure {
        reason: reason.into(),
        message,
    }
}

impl Reconcile for Controller {
    fn service_changed(&self, service: ServiceName) {
        if self.closing() {
            return;
        }
        let controller = self.clone();
        let name = service.clone();
        let handle = {
            let mut tasks = self.inner.tasks.lock();
            while tasks.try_join_next().is_some() {}
            tasks.spawn(async move { controller.reconcile(name).await })
        };
        let mut in_flight = self.inner.in_flight.lock();
        let handles = in_flight.entry(service).or_default();
        handles.retain(|h| !h.is_finished());
        handles.push(handle);
    }

    fn service_deleted(&self, service: Service) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        let cancelled = self
            .inner
            .in_flight
            .lock()
            .remove(&service.name)
            .unwrap_or_default();
        for handle in cancelled {
            handle.abort();
        }
        Box::pin(async move { self.reconcile(service.name).await })
    }

    fn sql_instance_changed(&self, instance: String) {
        self.inner.sql.changed(instance);
    }
}
