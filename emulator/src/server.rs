//! The HTTP server: one listener answers every API, routed by path.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::controller::Reconcile;
use crate::error::ApiError;
use crate::run as cloud_run;

use crate::state::Store;
use crate::{artifactregistry, compute, logging, run_v2, secretmanager, serviceusage, sqladmin};

/// What every handler can reach: the state store, the controller and the emulator's settings.
#[derive(Clone, Debug)]
pub struct AppState {
    pub store: Store,
    pub controller: Arc<dyn Reconcile>,
    pub settings: Arc<Settings>,
}

/// Settings the APIs need to answer (addresses to report back to clients).
#[derive(Debug, Clone)]
pub struct Settings {
    /// The address the emulator serves on, as clients reach it.
    pub public_addr: SocketAddr,
    /// The host in service URLs: where the ingress listens.
    pub ingress_host: String,
}

impl AppState {
    /// State for a server reachable at `public_addr`, running revisions with `controller`.
    pub fn new(store: Store, public_addr: SocketAddr, controller: Arc<dyn Reconcile>) -> Self {
        Self {
            store,
            controller,
            settings: Arc::new(Settings {
                public_addr,
                ingress_host: "127.0.0.1".into(),
            }),
        }
    }
}

/// Every API the emulator answers, as one router (tests call it without a socket).
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .merge(secretmanager::router())
        .merge(serviceusage::router())
        .merge(artifactregistry::router())
        .merge(compute::router())
        .merge(logging::router())
        .merge(cloud_run::router())
        .merge(run_v2::router())
        .merge(sqladmin::router())
        .fallback(unknown_route)
        .method_not_allowed_fallback(unknown_method)
        .layer(middleware::from_fn_with_state(state.clone(), trace_request))
        .with_state(state)
}

async fn unknown_route(uri: Uri) -> ApiError {
    ApiError::not_found(format!(
        "The requested URL {} was not found on this server.",
        uri.path()
    ))
}

async fn unknown_method(method: axum::http::Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!(
        "The requested URL {} was not found on this server: it has no {method} method.",
        uri.path()
    ))
}

async fn trace_request(State(_): State<AppState>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let response = next.run(request).await;
    let status = response.status();
    if status.is_server_error() {
        tracing::error!(%method, %path, status = status.as_u16(), "request failed");
    } else if status == StatusCode::NOT_FOUND || status.is_client_error() {
        tracing::info!(%method, %path, status = status.as_u16(), "request refused");
    } else {
        tracing::debug!(%method, %path, status = status.as_u16(), "request");
    }
    response
}

/// Serves `router` on `listener` until `shutdown` resolves, then drains in-flight requests.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let sweeper = tokio::spawn(sweep(state.store.clone()));
    let app = router(state);
    let served = axum::serve(listener, app.into_make_service())
        .with_graceful_shutdown(shutdown)
        .await;
    sweeper.abort();
    served
}

/// Applies time-based rules (secret expiry, scheduled version destruction) in the background.
async fn sweep(store: Store) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(error) = store.sweep_secrets() {
            tracing::warn!(%error, "sweeping expired secrets failed");
        }
    }
}
