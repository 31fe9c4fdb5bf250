//! Cloud Run Admin API v1, the Knative surface every `gcloud run` command uses
//! (`/apis/serving.knative.dev/v1/namespaces/PROJECT/...`), plus the IAM calls on
//! `/v1/projects/P/locations/R/services/S`. The region arrives only in the Host header
//! (`REGION-host`), or in the authority of an absolute-form request line sent through a proxy.

mod json;
mod template;

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult, Code};
use crate::server::AppState;
use crate::state::WriteMode;
use crate::state::iam;
use crate::state::locations::REGIONS;
use crate::state::run::{ServiceRef, ServiceView};
use crate::wire::iam::{
    PolicyJson, SetIamPolicyRequest, TestIamPermissionsRequest, TestIamPermissionsResponse,
};
use crate::wire::{self, Body, Params, split_verb};

type PathParams = Path<HashMap<String, String>>;

/// The Cloud Run routes.
pub fn router() -> Router<AppState> {
    let ns = "/apis/serving.knative.dev/v1/namespaces/{namespace}";
    Router::new()
        .route(
            &format!("{ns}/services"),
            get(list_services).post(create_service),
        )
        .route(
            &format!("{ns}/services/{{name}}"),
            get(get_service).put(replace_service).delete(delete_service),
        )
        .route(&format!("{ns}/revisions"), get(list_revisions))
        .route(
            &format!("{ns}/revisions/{{name}}"),
            get(get_revision).delete(delete_revision),
        )
        .route(&format!("{ns}/configurations"), get(list_configurations))
        .route(
            &format!("{ns}/configurations/{{name}}"),
            get(get_configuration),
        )
        .route(&format!("{ns}/routes"), get(list_routes))
        .route(&format!("{ns}/routes/{{name}}"), get(get_route))
        .route(
            "/v1/projects/{project}/locations/{location}/services/{service}",
            get(iam_get).post(iam_post),
        )
}

/// The region a Knative request is for, read from its host (`us-central1-run.googleapis.com`).
#[derive(Debug, Clone)]
pub struct Region(Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for Region {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let host = parts
            .uri
            .authority()
            .map(|a| a.host().to_string())
            .or_else(|| {
                parts
                    .headers
                    .get(axum::http::header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(|h| h.rsplit_once(':').map_or(h, |(host, _)| host).to_string())
            })
            .unwrap_or_default();
        Ok(Region(region_of_host(&host)))
    }
}

/// `us-central1-run.googleapis.com` → `us-central1`; the longest matching region wins.
pub fn region_of_host(host: &str) -> Option<String> {
    REGIONS
        .iter()
        .filter(|r| host.starts_with(&format!("{r}-")))
        .max_by_key(|r| r.len())
        .map(|r| r.to_string())
}

impl Region {
    fn required(&self) -> ApiResult<&str> {
        self.0.as_deref().ok_or_else(|| {
            ApiError::invalid(
                "This call needs a regional endpoint such as \
                 https://us-central1-run.googleapis.com: the region is read from the host name.",
            )
        })
    }
}

fn service_ref<'a>(namespace: &'a str, region: &'a str, name: &'a str) -> ServiceRef<'a> {
    ServiceRef {
        project: namespace,
        region,
        name,
    }
}

/// `dryRun=all` checks a write without storing anything, as `gcloud run services replace
/// --dry-run` sends it, and gcloud's check of a service before it builds a source deploy.
fn write_mode(params: &Params) -> ApiResult<WriteMode> {
    match params.get("dryRun") {
        None | Some("") => Ok(WriteMode::Apply),
        Some(value) if value.eq_ignore_ascii_case("all") => Ok(WriteMode::ValidateOnly),
        Some(other) => Err(ApiError::invalid(format!(
            "Invalid value for [dryRun]: '{other}'. Supported values: all."
        ))),
    }
}

async fn create_service(
    State(app): State<AppState>,
    region: Region,
    Path(path): PathParams,
    params: Params,
    Body(body): Body<Value>,
) -> ApiResult<Json<Value>> {
    let region = region.required()?;
    let mode = write_mode(&params)?;
    let (name, _, spec) = json::parse_service(&body)?;
    let view =
        app.store
            .create_service(service_ref(&path["namespace"], region, &name), spec, mode)?;
    if mode == WriteMode::Apply {
        app.controller.service_changed(view.service.name.clone());
    }
    Ok(Json(json::service_json(&view, &app.settings.ingress_host)))
}

async fn replace_service(
    State(app): State<AppState>,
    region: Region,
    Path(path): PathParams,
    params: Params,
    Body(body): Body<Value>,
) -> ApiResult<Json<Value>> {
    let region = region.required()?;
    let mode = write_mode(&params)?;
    let (name, resource_version, spec) = json::parse_service(&body)?;
    if name != path["name"] {
        return Err(ApiError::invalid(format!(
            "metadata.name: The name in the body '{name}' does not match the URL '{}'.",
            path["name"]
        )));
    }
    let at = service_ref(&path["namespace"], region, &name);
    if let Some(sent) = resource_version {
        let current = app.store.get_service(at)?;
        if sent != json::resource_version(&current.service) {
            return Err(ApiError::new(
                Code::Aborted,
                format!(
                    "Operation cannot be fulfilled on services \"{name}\": the object has been \
                     modified; please apply your changes to the latest version and try again."
                ),
            ));
        }
    }
    let view = app.store.replace_service(at, spec, mode)?;
    if mode == WriteMode::Apply {
        app.controller.service_changed(view.service.name.clone());
    }
    Ok(Json(json::service_json(&view, &app.settings.ingress_host)))
}

async fn get_service(
    State(app): State<AppState>,
    region: Region,
    Path(path): PathParams,
) -> ApiResult<Json<Value>> {
    get_view(&app, &region, &path, json::service_json)
}

async fn list_services(
    State(app): State<AppState>,
    region: Region,
    Path(path): PathParams,
) -> ApiResult<Json<Value>> {
    list_views(&app, &region, &path, "ServiceList", json::service_json)
}

async fn delete_service(
    State(app): State<AppState>,
    region: Region,
    Path(path): PathParams,
    params: Params,
) -> ApiResult<Json<Value>> {
    let region = region.required()?;
    let at = service_ref(&path["namespace"], region, &path["name"]);
    let service = match write_mode(&params)? {
        WriteMode::ValidateOnly => app.store.get_service(at)?.service,
        WriteMode::Apply => {
            let service = app.store.delete_service(at)?;
            app.controller.service_deleted(service.clone()).await;
            service
        }
    };
    Ok(Json(json!({
        "apiVersion": "v1",
        "kind": "Status",
        "status": "Success",
        "details": {"name": service.name.name, "group": "serving.knative.dev", "kind": "services", "uid": service.uid},
    })))
}

/// A list of the objects Knative derives from the services of a namespace (and region).
fn list_views(
    app: &AppState,
    region: &Region,
    path: &HashMap<String, String>,
    kind: &str,
    render: impl Fn(&ServiceView, &str) -> Value,
) -> ApiResult<Json<Value>> {
    let views = app
        .store
        .list_services_run(&path["namespace"], region.0.as_deref())?;
    let host = &app.settings.ingress_host;
    let items = views.iter().map(|v| render(v, host)).collect();
    Ok(Json(json::list_json(kind, items)))
}

/// One object Knative derives from the service named in the path.
fn get_view(
    app: &AppState,
    region: &Region,
    path: &HashMap<String, String>,
    render: impl Fn(&ServiceView, &str) -> Value,
) -> ApiResult<Json<Value>> {
    let region = region.required()?;
    let view = app
        .store
        .get_service(service_ref(&path["namespace"], region, &path["name"]))?;
    Ok(Json(render(&view, &app.settings.ingress_host)))
}

/// `serving.knative.dev/service = NAME` (spaces optional, `==` accepted).
fn service_selector(selector: Option<&str>) -> ApiResult<Option<String>> {
    let Some(selector) = selector.filter(|s| !s.trim().is_empty()) else {
        return Ok(None);
    };
    let (key, value) = selector
        .split_once("==")
        .or_else(|| selector.split_once('='))
        .ok_or_else(|| ApiError::invalid(format!("Invalid labelSelector [{selector}].")))?;
    match key.trim() {
        "serving.knative.dev/service" | "serving.knative.dev/configuration" => {
            Ok(Some(value.trim().to_string()))
        }
        other => Err(ApiError::invalid(format!(
            "Unsupported labelSelector key [{other}]: select revisions by serving.knative.dev/service."
        ))),
    }
}

async fn list_revisions(
    State(app): State<AppState>,
    region: Region,
    Path(path): PathParams,
    params: Params,
) -> ApiResult<Json<Value>> {
    let service = service_selector(params.get("labelSelector"))?;
    let revisions =
        app.store
            .list_revisions(&path["namespace"], region.0.as_deref(), service.as_deref())?;
    let mut items = Vec::new();
    for revision in &revisions {
        if let Some(view) = app.store.service_by_name(&revision.service) {
            let serving = view
                .status
                .traffic
                .iter()
                .any(|t| t.revision == revision.name);
            items.push(json::revision_json(revision, &view.service, serving));
        }
    }
    Ok(Json(json::list_json("RevisionList", items)))
}

async fn get_revision(
    State(app): State<AppState>,
    region: Region,
    Path(path): PathParams,
) -> ApiResult<Json<Value>> {
    let region = region.required()?;
    let revision = app
        .store
        .get_revision(&path["namespace"], region, &path["name"])?;
    let view = app
        .store
        .service_by_name(&revision.service)
        .ok_or_else(|| ApiError::not_found(format!("Revision [{}] not found.", path["name"])))?;
    let serving = view
        .status
        .traffic
        .iter()
        .any(|t| t.revision == revision.name);
    Ok(Json(json::revision_json(&revision, &view.service, serving)))
}

async fn delete_revision(
    State(app): State<AppState>,
    region: Region,
    Path(path): PathParams,
    params: Params,
) -> ApiResult<Json<Value>> {
    let region = region.required()?;
    let mode = write_mode(&params)?;
    let revision = app
        .store
        .delete_revision(&path["namespace"], region, &path["name"], mode)?;
    if mode == WriteMode::Apply {
        app.controller.service_changed(revision.service.clone());
    }
    Ok(Json(
        json!({"apiVersion": "v1", "kind": "Status", "status": "Success",
        "details": {"name": revision.name, "group": "serving.knative.dev", "kind": "revisions"}}),
    ))
}

async fn list_configurations(
    State(app): State<AppState>,
    region: Region,
    Path(path): PathParams,
) -> ApiResult<Json<Value>> {
    list_views(&app, &region, &path, "ConfigurationList", |v, _| {
        json::configuration_json(v)
    })
}

async fn get_configuration(
    State(app): State<AppState>,
    region: Region,
    Path(path): PathParams,
) -> ApiResult<Json<Value>> {
    get_view(&app, &region, &path, |v, _| json::configuration_json(v))
}

async fn list_routes(
    State(app): State<AppState>,
    region: Region,
    Path(path): PathParams,
) -> ApiResult<Json<Value>> {
    list_views(&app, &region, &path, "RouteList", json::route_json)
}

async fn get_route(
    State(app): State<AppState>,
    region: Region,
    Path(path): PathParams,
) -> ApiResult<Json<Value>> {
    get_view(&app, &region, &path, json::route_json)
}

async fn iam_get(State(app): State<AppState>, Path(path): PathParams) -> ApiResult<Json<Value>> {
    let (service, verb) = split_verb(&path["service"]);
    let at = service_ref(&path["project"], &path["location"], service);
    match verb {
        Some("getIamPolicy") => Ok(Json(json!(PolicyJson::from(app.store.service_policy(at)?)))),
        other => Err(ApiError::not_found(format!(
            "Method [{}] is not a GET method of Cloud Run services.",
            other.unwrap_or("get")
        ))),
    }
}

async fn iam_post(
    State(app): State<AppState>,
    Path(path): PathParams,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let (service, verb) = split_verb(&path["service"]);
    let at = service_ref(&path["project"], &path["location"], service);
    service_iam(&app, at, verb, &body)
}

/// The IAM methods of a service, shared by the v1 and v2 surfaces.
pub(crate) fn service_iam(
    app: &AppState,
    at: ServiceRef<'_>,
    verb: Option<&str>,
    body: &[u8],
) -> ApiResult<Json<Value>> {
    match verb {
        Some("setIamPolicy") => {
            let request: SetIamPolicyRequest = wire::parse_json(body)?;
            let policy = app.store.set_service_policy(at, request.into_update()?)?;
            let view = app.store.get_service(at)?;
            app.controller.service_changed(view.service.name.clone());
            Ok(Json(json!(PolicyJson::from(policy))))
        }
        Some("getIamPolicy") => Ok(Json(json!(PolicyJson::from(app.store.service_policy(at)?)))),
        Some("testIamPermissions") => {
            let request: TestIamPermissionsRequest = wire::parse_json(body)?;
            // gcloud asks before creating a service, so the service need not exist yet.
            app.store.project(at.project)?;
            let permissions = iam::known_permissions(&request.permissions, &["run"])?;
            Ok(Json(json!(TestIamPermissionsResponse { permissions })))
        }
        other => Err(ApiError::not_found(format!(
            "Method [{}] is not a method of Cloud Run services.",
            other.unwrap_or("POST")
        ))),
    }
}
