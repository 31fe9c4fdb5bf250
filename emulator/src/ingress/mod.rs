//! The ingress: each Cloud Run service's URL, and the only code that proxies to containers.
//!
//! Every exposed service gets its own loopback listener (`http://127.0.0.1:PORT` becomes its
//! `status.url`). A request passes the [`Access`] check as Google's front end does it, goes to
//! one of the service's [`Target`]s by weighted random choice, and leaves one
//! `run.googleapis.com/requests` entry in the log store. The ingress knows backend socket
//! addresses only, never Docker.
//!
//! Containers reach the same URLs from inside their instance: with [`Ingress::serve_sockets_in`]
//! each service URL `http://127.0.0.1:PORT` is also served on the unix socket `DIR/PORT.sock`,
//! which the instance's sandbox forwards to `127.0.0.1:PORT` in its network namespace.
//!
//! ```no_run
//! # async fn story(store: emulator::Store, backend: std::net::SocketAddr) -> std::io::Result<()> {
//! use emulator::ingress::{Access, Ingress, Target};
//!
//! let ingress = Ingress::new(store);
//! let key = "projects/123456789012/locations/us-central1/services/web";
//! let addr = ingress.expose(key, None).await?;
//! let revision = "web-00001-abc".to_string();
//! ingress.set_targets(key, vec![Target { revision, addr: backend, percent: 100 }]);
//! ingress.set_access(key, Access::Public);
//! println!("web is served at http://{addr}");
//! # Ok(()) }
//! ```

mod access;
mod proxy;

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hyper::http::uri::Authority;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use parking_lot::{Mutex, RwLock};
use rand::Rng;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use access::{Access, Invokers};

use crate::state::Store;
use crate::state::logs::RunResource;

/// Where a share of a service's requests goes: a revision and its ingress container's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub revision: String,
    pub addr: SocketAddr,
    /// The share of requests, in percent; a service's targets add up to 100.
    pub percent: u32,
}

/// Routes requests for every service; cheap to clone.
#[derive(Clone, Debug)]
pub struct Ingress {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    shared: Arc<Shared>,
    host: IpAddr,
    services: Mutex<HashMap<String, Entry>>,
    /// Where each URL is also served as `PORT.sock`, for callers inside instances.
    socket_dir: OnceLock<PathBuf>,
}

/// What every request handler needs: the pooled client and the log store.
#[derive(Debug)]
pub(crate) struct Shared {
    client: Client<HttpConnector, hyper::body::Incoming>,
    store: Store,
}

/// One service: the route its requests read and, once exposed, its listener.
#[derive(Debug)]
struct Entry {
    route: Arc<RwLock<Arc<Route>>>,
    listener: Option<Listener>,
}

/// A service's open port (and its unix socket), and the tasks accepting on them.
#[derive(Debug)]
struct Listener {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// The unix socket serving the same URL inside instances, removed with the listener.
    socket: Option<PathBuf>,
    /// Closed once the listener and every connection it accepted have ended.
    drained: mpsc::Receiver<()>,
}

/// A service's routing, replaced whole on every change; each request reads one snapshot.
#[derive(Debug, Clone)]
pub(crate) struct Route {
    resource: Arc<RunResource>,
    access: Access,
    backends: Vec<Backend>,
    total: u32,
}

#[derive(Debug, Clone)]
pub(crate) struct Backend {
    revision: String,
    addr: SocketAddr,
    percent: u32,
    authority: Authority,
}

impl Route {
    /// A backend by weighted random choice; `None` when nothing takes traffic.
    fn pick(&self) -> Option<usize> {
        if self.total == 0 {
            return None;
        }
        let mut ticket = rand::rng().random_range(0..self.total);
        self.backends.iter().position(|backend| {
            if ticket < backend.percent {
                true
            } else {
                ticket -= backend.percent;
                false
            }
        })
    }

    fn with_targets(&self, targets: Vec<Target>) -> Route {
        let backends: Vec<Backend> = targets
            .into_iter()
            .filter_map(|target| {
                let authority = Authority::try_from(target.addr.to_string()).ok()?;
                Some(Backend {
                    revision: target.revision,
                    addr: target.addr,
                    percent: target.percent,
                    authority,
                })
            })
            .collect();
        Route {
            resource: Arc::clone(&self.resource),
            access: self.access.clone(),
            total: backends.iter().map(|b| b.percent).sum(),
            backends,
        }
    }
}

impl Ingress {
    /// An ingress with no service, writing request logs to `store`.
    pub fn new(store: Store) -> Ingress {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ingress {
            inner: Arc::new(Inner {
                shared: Arc::new(Shared { client, store }),
                host: IpAddr::V4(Ipv4Addr::LOCALHOST),
                services: Mutex::new(HashMap::new()),
                socket_dir: OnceLock::new(),
            }),
        }
    }

    /// Also serves every URL exposed from now on as the unix socket `dir/PORT.sock`, so that
    /// an instance's sandbox can forward `127.0.0.1:PORT` inside the instance to it. Set once.
    pub fn serve_sockets_in(&self, dir: PathBuf) {
        let _ = self.inner.socket_dir.set(dir);
    }

    /// Opens the listener of the service `key` (`projects/NUM/locations/REGION/services/NAME`)
    /// and returns its address; a service already exposed keeps its address. `preferred` is
    /// used when free, so a service keeps its URL across emulator restarts; otherwise any free
    /// port is.
    ///
    /// Until told otherwise a service has no target (503) and is private, as on Cloud Run.
    pub async fn expose(&self, key: &str, preferred: Option<u16>) -> io::Result<SocketAddr> {
        if let Some(addr) = self.addr(key) {
            return Ok(addr);
        }
        let listener = self.bind(key, preferred).await?;
        let addr = listener.local_addr()?;
        let mut services = self.inner.services.lock();
        let entry = services
            .entry(key.to_string())
            .or_insert_with(|| self.new_entry(key));
        if let Some(existing) = &entry.listener {
            // Another caller exposed it while this one was binding: keep theirs.
            return Ok(existing.addr);
        }
        let (stop, stopped) = watch::channel(false);
        let (open, drained) = mpsc::channel(1);
        let mut tasks = vec![tokio::spawn(serve(
            listener,
            Arc::clone(&self.inner.shared),
            Arc::clone(&entry.route),
            stopped.clone(),
            open.clone(),
        ))];
        let socket = self
            .inner
            .socket_dir
            .get()
            .and_then(|dir| bind_socket(dir, addr.port()));
        let socket = match socket {
            Some((path, unix)) => {
                tasks.push(tokio::spawn(serve(
                    unix,
                    Arc::clone(&self.inner.shared),
                    Arc::clone(&entry.route),
                    stopped,
                    open,
                )));
                Some(path)
            }
            None => None,
        };
        entry.listener = Some(Listener {
            addr,
            stop,
            tasks,
            socket,
            drained,
        });
        tracing::debug!(%key, %addr, "service exposed");
        Ok(addr)
    }

    async fn bind(&self, key: &str, preferred: Option<u16>) -> io::Result<TcpListener> {
        if let Some(port) = preferred.filter(|p| *p != 0) {
            match TcpListener::bind((self.inner.host, port)).await {
                Ok(listener) => return Ok(listener),
                Err(error) => {
                    tracing::info!(%key, port, %error, "preferred port taken; using another");
                }
            }
        }
        TcpListener::bind((self.inner.host, 0)).await
    }

    /// The address a service is exposed on.
    pub fn addr(&self, key: &str) -> Option<SocketAddr> {
        let services = self.inner.services.lock();
        services.get(key)?.listener.as_ref().map(|l| l.addr)
    }

    /// Replaces where the service's requests go (percents add up to 100); with no target, or
    /// none with a share, the service answers 503.
    pub fn set_targets(&self, key: &str, targets: Vec<Target>) {
        self.update(key, |route| route.with_targets(targets));
    }

    /// Sets who may invoke the service.
    pub fn set_access(&self, key: &str, access: Access) {
        self.update(key, |route| Route {
            access,
            ..route.clone()
        });
    }

    /// Swaps the service's route for `change(current)`; requests in flight keep the old one.
    fn update(&self, key: &str, change: impl FnOnce(&Route) -> Route) {
        let mut services = self.inner.services.lock();
        let entry = services
            .entry(key.to_string())
            .or_insert_with(|| self.new_entry(key));
        let mut route = entry.route.write();
        *route = Arc::new(change(&route));
    }

    fn new_entry(&self, key: &str) -> Entry {
        let route = Route {
            resource: Arc::new(self.resource_of(key)),
            access: Access::default(),
            backends: Vec::new(),
            total: 0,
        };
        Entry {
            route: Arc::new(RwLock::new(Arc::new(route))),
            listener: None,
        }
    }

    /// The labels of a service's request logs, from its key; logs name the project by id.
    fn resource_of(&self, key: &str) -> RunResource {
        let parts: Vec<&str> = key.split('/').collect();
        let (project, location, service) = match parts.as_slice() {
            [
                "projects",
                project,
                "locations",
                location,
                "services",
                service,
            ]
            | [
                "projects",
                project,
                "locations",
                location,
                "services",
                service,
                "tags",
                _,
            ] => (*project, *location, *service),
            _ => ("", "", key),
        };
        let project_id = self
            .inner
            .shared
            .store
            .project(project)
            .map_or_else(|_| project.to_string(), |p| p.id);
        RunResource {
            project_id,
            location: location.to_string(),
            service: service.to_string(),
            revision: String::new(),
        }
    }

    /// Closes the service's listener (its port is free when this returns), ends its
    /// connections once their requests finish, and forgets the service.
    pub async fn remove(&self, key: &str) {
        let removed = self.inner.services.lock().remove(key);
        if let Some(listener) = removed.and_then(|e| e.listener) {
            stop(listener).await;
        }
    }

    /// Closes every listener and forgets every service (emulator shutdown).
    pub async fn shutdown(&self) {
        let all: Vec<Entry> = self.inner.services.lock().drain().map(|(_, e)| e).collect();
        for listener in all.into_iter().filter_map(|e| e.listener) {
            stop(listener).await;
        }
    }
}

/// How long closing a service waits for requests in flight before it lets them finish alone.
const DRAIN_DEADLINE: Duration = Duration::from_secs(5);

async fn stop(mut listener: Listener) {
    let _ = listener.stop.send(true);
    for task in listener.tasks.drain(..) {
        let _ = task.await;
    }
    if let Some(path) = &listener.socket {
        let _ = std::fs::remove_file(path);
    }
    if tokio::time::timeout(DRAIN_DEADLINE, listener.drained.recv())
        .await
        .is_err()
    {
        tracing::warn!(addr = %listener.addr, "requests still in flight after the service closed");
    }
}

/// Binds the unix socket `dir/PORT.sock` (replacing a stale one, making `dir` if need be);
/// `None`, logged, on failure:
/// the URL then works from the host only.
fn bind_socket(dir: &Path, port: u16) -> Option<(PathBuf, UnixListener)> {
    let path = dir.join(format!("{port}.sock"));
    let _ = std::fs::remove_file(&path);
    match std::fs::create_dir_all(dir).and_then(|()| UnixListener::bind(&path)) {
        Ok(listener) => Some((path, listener)),
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "cannot serve a service URL to instances");
            None
        }
    }
}

/// The peer address logged for requests that come from inside an instance (a unix socket).
const IN_INSTANCE_PEER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);

/// A listener the ingress accepts connections from: a TCP port, or a unix socket.
trait Accept: Send + 'static {
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    fn next(&self) -> impl Future<Output = io::Result<(Self::Io, SocketAddr)>> + Send;
}

impl Accept for TcpListener {
    type Io = tokio::net::TcpStream;
    async fn next(&self) -> io::Result<(Self::Io, SocketAddr)> {
        let (stream, peer) = self.accept().await?;
        let _ = stream.set_nodelay(true);
        Ok((stream, peer))
    }
}

impl Accept for UnixListener {
    type Io = tokio::net::UnixStream;
    async fn next(&self) -> io::Result<(Self::Io, SocketAddr)> {
        let (stream, _) = self.accept().await?;
        Ok((stream, IN_INSTANCE_PEER))
    }
}

/// Accepts connections until told to stop (or the ingress is dropped).
async fn serve(
    listener: impl Accept,
    shared: Arc<Shared>,
    route: Arc<RwLock<Arc<Route>>>,
    mut stopped: watch::Receiver<bool>,
    open: mpsc::Sender<()>,
) {
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.next() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, typically: let connections finish first.
                    tracing::warn!(%error, "ingress accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopped.changed() => return,
        };
        let shared = Arc::clone(&shared);
        let route = Arc::clone(&route);
        let mut stopped = stopped.clone();
        let open = open.clone();
        tokio::spawn(async move {
            let _open = open;
            let service = service_fn(move |request| {
                let snapshot = Arc::clone(&route.read());
                proxy::handle(Arc::clone(&shared), snapshot, peer, request)
            });
            let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                served = connection.as_mut() => {
                    if let Err(error) = served {
                        tracing::debug!(%peer, %error, "ingress connection ended with an error");
                    }
                }
                _ = stopped.changed() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
}
