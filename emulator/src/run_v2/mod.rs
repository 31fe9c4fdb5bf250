//! Cloud Run Admin API v2 over REST (`/v2/projects/P/locations/L/services/...`), as Google's
//! client libraries and Terraform's `google_cloud_run_v2_service` use it. It serves the same
//! state as the v1 Knative API: a service written through either is read through both.
//!
//! - [`service`]: v2 Service and Revision JSON, to and from the state's types.
//! - [`template`]: the v2 revision template, and the Knative template v1 reads echo.
//! - [`operations`]: the long-running operations writes answer with.
//! - [`enums`]: enums by name or number (`$alt=json;enum-encoding=int`).

mod enums;
mod operations;
mod service;
mod template;

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use self::enums::Encoding;
use self::operations::Operations;
use self::service::{Names, etag_matches, parse_service, revision_json, service_json};
use crate::error::{ApiError, ApiResult, Code};
use crate::server::AppState;
use crate::state::locations;
use crate::state::page::paginate;
use crate::state::run::{ServiceRef, ServiceView};
use crate::state::{StateError, WriteMode};
use crate::wire::iam::PolicyJson;
use crate::wire::{self, Body, Params, split_verb};

type PathParams = Path<HashMap<String, String>>;
type Ops = Extension<Operations>;

/// Services per page when the client names no page size, and at most.
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;
/// How long `:wait` waits when the client names no timeout, and at most.
const DEFAULT_WAIT: Duration = Duration::from_secs(60);
const MAX_WAIT: Duration = Duration::from_secs(600);

/// The Cloud Run v2 routes.
pub fn router() -> Router<AppState> {
    let at = "/v2/projects/{project}/locations/{location}";
    Router::new()
        .route(
            &format!("{at}/services"),
            get(list_services).post(create_service),
        )
        .route(
            &format!("{at}/services/{{service}}"),
            get(get_service)
                .patch(update_service)
                .delete(delete_service)
                .post(service_verb),
        )
        .route(
            &format!("{at}/services/{{service}}/revisions"),
            get(list_revisions),
        )
        .route(
            &format!("{at}/services/{{service}}/revisions/{{revision}}"),
            get(get_revision).delete(delete_revision),
        )
        .route(&format!("{at}/operations"), get(list_operations))
        .route(
            &format!("{at}/operations/{{operation}}"),
            get(get_operation)
                .delete(delete_operation)
                .post(wait_operation),
        )
        .layer(Extension(Operations::default()))
}

fn names(path: &HashMap<String, String>) -> Names<'_> {
    Names {
        project: &path["project"],
        location: &path["location"],
    }
}

fn service_ref<'a>(path: &'a HashMap<String, String>, service: &'a str) -> ServiceRef<'a> {
    ServiceRef {
        project: &path["project"],
        region: &path["location"],
        name: service,
    }
}

fn encoding(params: &Params) -> Encoding {
    Encoding {
        ints: params.enum_ints(),
    }
}

/// A plain resource segment: a `:verb` here names a method this route does not have.
fn plain<'a>(segment: &'a str, method: &str) -> ApiResult<&'a str> {
    match split_verb(segment) {
        (name, None) => Ok(name),
        (_, Some(verb)) => Err(ApiError::not_found(format!(
            "Method [{verb}] is not a {method} method of Cloud Run services."
        ))),
    }
}

fn flag(params: &Params, key: &str, alias: &str) -> ApiResult<bool> {
    match params.get(key).or(params.get(alias)) {
        None | Some("") | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(ApiError::invalid(format!(
            "Invalid value for [{key}]: '{other}' is not a boolean."
        ))),
    }
}

/// `validateOnly=true` checks a write without storing anything.
fn write_mode(params: &Params) -> ApiResult<WriteMode> {
    Ok(if flag(params, "validateOnly", "validate_only")? {
        WriteMode::ValidateOnly
    } else {
        WriteMode::Apply
    })
}

/// The operation of a service write: followed until the service settles, or, when only
/// validating, done at once with the service as it would be.
fn service_written(
    app: &AppState,
    ops: &Operations,
    path: &HashMap<String, String>,
    params: &Params,
    view: ServiceView,
    mode: WriteMode,
) -> ApiResult<Json<Value>> {
    let name = match mode {
        WriteMode::Apply => {
            app.controller.service_changed(view.service.name.clone());
            ops.watch(names(path), &view.service.name)
        }
        WriteMode::ValidateOnly => ops.finished(names(path), view),
    };
    Ok(Json(operation_json(app, ops, &name, encoding(params))?))
}

/// The operation named `name`, as JSON.
fn operation_json(
    app: &AppState,
    ops: &Operations,
    name: &str,
    enums: Encoding,
) -> ApiResult<Value> {
    ops.get(name, &app.store, &app.settings.ingress_host, enums)
        .ok_or_else(|| ApiError::not_found(format!("Operation '{name}' not found.")))
}

async fn create_service(
    State(app): State<AppState>,
    Extension(ops): Ops,
    Path(path): PathParams,
    params: Params,
    Body(body): Body<Value>,
) -> ApiResult<Json<Value>> {
    let mode = write_mode(&params)?;
    let id = params
        .get("serviceId")
        .or(params.get("service_id"))
        .filter(|id| !id.is_empty())
        .ok_or_else(|| ApiError::invalid("service_id: The service id must be specified."))?
        .to_string();
    let input = parse_service(&body, None)?;
    let view = app
        .store
        .create_service(service_ref(&path, &id), input.spec, mode)?;
    service_written(&app, &ops, &path, &params, view, mode)
}

async fn update_service(
    State(app): State<AppState>,
    Extension(ops): Ops,
    Path(path): PathParams,
    params: Params,
    Body(body): Body<Value>,
) -> ApiResult<Json<Value>> {
    let mode = write_mode(&params)?;
    let id = plain(&path["service"], "PATCH")?.to_string();
    let at = service_ref(&path, &id);
    let full_name = names(&path).service(&id);
    if let Some(sent) = body
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        && sent != full_name
        && sent != id
    {
        return Err(ApiError::invalid(format!(
            "service.name: The name in the body '{sent}' does not match the URL '{full_name}'."
        )));
    }
    let current = match app.store.get_service(at) {
        Ok(view) => view,
        Err(StateError::NotFound { .. }) if flag(&params, "allowMissing", "allow_missing")? => {
            let input = parse_service(&body, None)?;
            let view = app.store.create_service(at, input.spec, mode)?;
            return service_written(&app, &ops, &path, &params, view, mode);
        }
        Err(error) => return Err(error.into()),
    };
    let mask = params.mask();
    let body = if mask.is_empty() {
        body
    } else {
        let base = service_json(
            &current,
            names(&path),
            &app.settings.ingress_host,
            Encoding { ints: false },
        );
        apply_mask(base, &body, &mask)
    };
    let input = parse_service(&body, Some(&current.service))?;
    if let Some(sent) = &input.etag
        && !etag_matches(&current.service, sent)
    {
        return Err(ApiError::new(
            Code::Aborted,
            format!(
                "Service '{id}' was modified since it was read (etag mismatch): read it again \
                 and retry."
            ),
        ));
    }
    let view = app.store.replace_service(at, input.spec, mode)?;
    service_written(&app, &ops, &path, &params, view, mode)
}

/// `snake_case` → `camelCase`, for field-mask paths.
fn camel(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    let mut upper = false;
    for c in segment.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Copies the fields `mask` names from `body` over `base` (absent in `body` clears them).
fn apply_mask(mut base: Value, body: &Value, mask: &[String]) -> Value {
    for path in mask {
        let segments: Vec<String> = path.split('.').map(camel).collect();
        let Some((last, parents)) = segments.split_last() else {
            continue;
        };
        let mut source = Some(body);
        for segment in parents {
            source = source.and_then(|s| s.get(segment));
        }
        let value = source.and_then(|s| s.get(last)).cloned();
        let mut target = &mut base;
        for segment in parents {
            if !target.get(segment).is_some_and(Value::is_object) {
                target[segment.as_str()] = Value::Object(Map::new());
            }
            target = &mut target[segment.as_str()];
        }
        if let Some(object) = target.as_object_mut() {
            match value {
                Some(value) => {
                    object.insert(last.clone(), value);
                }
                None => {
                    object.remove(last);
                }
            }
        }
    }
    // The etag read back from the base is the current one; only the client's counts.
    if let Some(object) = base.as_object_mut() {
        match body.get("etag") {
            Some(etag) => object.insert("etag".into(), etag.clone()),
            None => object.remove("etag"),
        };
    }
    base
}

async fn get_service(
    State(app): State<AppState>,
    Path(path): PathParams,
    params: Params,
) -> ApiResult<Json<Value>> {
    let (id, verb) = split_verb(&path["service"]);
    let at = service_ref(&path, id);
    match verb {
        None => {
            let view = app.store.get_service(at)?;
            Ok(Json(service_json(
                &view,
                names(&path),
                &app.settings.ingress_host,
                encoding(&params),
            )))
        }
        Some("getIamPolicy") => Ok(Json(json!(PolicyJson::from(app.store.service_policy(at)?)))),
        Some(other) => Err(ApiError::not_found(format!(
            "Method [{other}] is not a GET method of Cloud Run services."
        ))),
    }
}

/// `?etag=` on deletes: refused when the service changed since the client read it.
fn check_etag(view: &ServiceView, params: &Params) -> ApiResult<()> {
    match params.get("etag").filter(|e| !e.is_empty()) {
        Some(sent) if !etag_matches(&view.service, sent) => Err(ApiError::new(
            Code::Aborted,
            format!(
                "Service '{}' was modified since it was read (etag mismatch).",
                view.service.name.name
            ),
        )),
        _ => Ok(()),
    }
}

async fn delete_service(
    State(app): State<AppState>,
    Extension(ops): Ops,
    Path(path): PathParams,
    params: Params,
) -> ApiResult<Json<Value>> {
    let mode = write_mode(&params)?;
    let id = plain(&path["service"], "DELETE")?.to_string();
    let at = service_ref(&path, &id);
    let view = app.store.get_service(at)?;
    check_etag(&view, &params)?;
    if mode == WriteMode::Apply {
        let service = app.store.delete_service(at)?;
        app.controller.service_deleted(service).await;
    }
    let name = ops.finished(names(&path), view);
    Ok(Json(operation_json(&app, &ops, &name, encoding(&params))?))
}

async fn service_verb(
    State(app): State<AppState>,
    Path(path): PathParams,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let (id, verb) = split_verb(&path["service"]);
    crate::run::service_iam(&app, service_ref(&path, id), verb, &body)
}

async fn list_services(
    State(app): State<AppState>,
    Path(path): PathParams,
    params: Params,
) -> ApiResult<Json<Value>> {
    let location = path["location"].as_str();
    let region = match location {
        "-" => None,
        region if locations::is_region(region) => Some(region),
        other => {
            return Err(ApiError::invalid(format!(
                "Location '{other}' is not a Cloud Run region."
            )));
        }
    };
    let views = app.store.list_services_run(&path["project"], region)?;
    let items = views
        .into_iter()
        .map(|v| (v.service.name.to_string(), v))
        .collect();
    let page = paginate(items, &params.page()?, DEFAULT_PAGE, MAX_PAGE)?;
    let enums = encoding(&params);
    let services: Vec<Value> = page
        .items
        .iter()
        .map(|v| {
            let names = Names {
                project: &path["project"],
                location: &v.service.name.region,
            };
            service_json(v, names, &app.settings.ingress_host, enums)
        })
        .collect();
    let mut out = json!({ "services": services });
    if let Some(token) = page.next_token {
        out["nextPageToken"] = json!(token);
    }
    Ok(Json(out))
}

async fn list_revisions(
    State(app): State<AppState>,
    Path(path): PathParams,
    params: Params,
) -> ApiResult<Json<Value>> {
    let id = path["service"].as_str();
    let view = app.store.get_service(service_ref(&path, id))?;
    let revisions =
        app.store
            .list_revisions(&path["project"], Some(&path["location"]), Some(id))?;
    let items = revisions.into_iter().map(|r| (r.name.clone(), r)).collect();
    let page = paginate(items, &params.page()?, DEFAULT_PAGE, MAX_PAGE)?;
    let enums = encoding(&params);
    let revisions: Vec<Value> = page
        .items
        .iter()
        .map(|r| {
            let serving = view.status.traffic.iter().any(|t| t.revision == r.name);
            revision_json(r, &view.service, names(&path), serving, enums)
        })
        .collect();
    let mut out = json!({ "revisions": revisions });
    if let Some(token) = page.next_token {
        out["nextPageToken"] = json!(token);
    }
    Ok(Json(out))
}

/// A revision of the service the path names (a revision of another service is not found).
fn revision_of(
    app: &AppState,
    path: &HashMap<String, String>,
) -> ApiResult<(crate::state::run::Revision, ServiceView)> {
    let id = path["service"].as_str();
    let view = app.store.get_service(service_ref(path, id))?;
    let name = plain(&path["revision"], "revision")?;
    let revision = app
        .store
        .get_revision(&path["project"], &path["location"], name)?;
    if revision.service != view.service.name {
        return Err(ApiError::not_found(format!("Revision [{name}] not found.")));
    }
    Ok((revision, view))
}

async fn get_revision(
    State(app): State<AppState>,
    Path(path): PathParams,
    params: Params,
) -> ApiResult<Json<Value>> {
    let (revision, view) = revision_of(&app, &path)?;
    let serving = view
        .status
        .traffic
        .iter()
        .any(|t| t.revision == revision.name);
    Ok(Json(revision_json(
        &revision,
        &view.service,
        names(&path),
        serving,
        encoding(&params),
    )))
}

async fn delete_revision(
    State(app): State<AppState>,
    Extension(ops): Ops,
    Path(path): PathParams,
    params: Params,
) -> ApiResult<Json<Value>> {
    let mode = write_mode(&params)?;
    let (revision, view) = revision_of(&app, &path)?;
    let deleted =
        app.store
            .delete_revision(&path["project"], &path["location"], &revision.name, mode)?;
    if mode == WriteMode::Apply {
        app.controller.service_changed(view.service.name.clone());
    }
    let name = ops.revision_deleted(names(&path), deleted, view.service);
    Ok(Json(operation_json(&app, &ops, &name, encoding(&params))?))
}

fn operation_name(path: &HashMap<String, String>, id: &str) -> String {
    format!(
        "projects/{}/locations/{}/operations/{id}",
        path["project"], path["location"]
    )
}

async fn get_operation(
    State(app): State<AppState>,
    Extension(ops): Ops,
    Path(path): PathParams,
    params: Params,
) -> ApiResult<Json<Value>> {
    let id = plain(&path["operation"], "GET")?;
    let name = operation_name(&path, id);
    Ok(Json(operation_json(&app, &ops, &name, encoding(&params))?))
}

async fn delete_operation(Extension(ops): Ops, Path(path): PathParams) -> ApiResult<Json<Value>> {
    let id = plain(&path["operation"], "DELETE")?;
    let name = operation_name(&path, id);
    if ops.delete(&name) {
        Ok(Json(json!({})))
    } else {
        Err(ApiError::not_found(format!(
            "Operation '{name}' not found."
        )))
    }
}

#[derive(Debug, Default, Deserialize)]
struct WaitRequest {
    #[serde(default)]
    timeout: Option<String>,
}

async fn wait_operation(
    State(app): State<AppState>,
    Extension(ops): Ops,
    Path(path): PathParams,
    params: Params,
    Body(request): Body<WaitRequest>,
) -> ApiResult<Json<Value>> {
    let (id, verb) = split_verb(&path["operation"]);
    if verb != Some("wait") {
        return Err(ApiError::not_found(format!(
            "Method [{}] is not a POST method of operations.",
            verb.unwrap_or("POST")
        )));
    }
    let name = operation_name(&path, id);
    let limit = match request.timeout.as_deref().filter(|t| !t.is_empty()) {
        Some(text) => wire::parse_duration("timeout", text)?.min(MAX_WAIT),
        None => DEFAULT_WAIT,
    };
    let enums = encoding(&params);
    let deadline = tokio::time::Instant::now() + limit;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        let operation = operation_json(&app, &ops, &name, enums)?;
        let done = operation.get("done").and_then(Value::as_bool) == Some(true);
        if done || tokio::time::Instant::now() >= deadline {
            return Ok(Json(operation));
        }
    }
}

async fn list_operations(
    State(app): State<AppState>,
    Extension(ops): Ops,
    Path(path): PathParams,
    params: Params,
) -> ApiResult<Json<Value>> {
    let prefix = operation_name(&path, "");
    let enums = encoding(&params);
    let items = ops
        .names_under(&prefix)
        .into_iter()
        .map(|n| (n.clone(), n))
        .collect();
    let page = paginate(items, &params.page()?, DEFAULT_PAGE, MAX_PAGE)?;
    let operations: Vec<Value> = page
        .items
        .iter()
        .filter_map(|n| ops.get(n, &app.store, &app.settings.ingress_host, enums))
        .collect();
    let mut out = json!({ "operations": operations });
    if let Some(token) = page.next_token {
        out["nextPageToken"] = json!(token);
    }
    Ok(Json(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_copy_named_fields_only() {
        let base = json!({"labels": {"a": "1"}, "template": {"timeout": "10s", "containers": []}, "etag": "old"});
        let body = json!({"labels": {"b": "2"}, "template": {"containers": [{"image": "x"}]}});
        let merged = apply_mask(
            base,
            &body,
            &["template.containers".into(), "description".into()],
        );
        assert_eq!(merged["labels"], json!({"a": "1"}));
        assert_eq!(merged["template"]["timeout"], json!("10s"));
        assert_eq!(merged["template"]["containers"][0]["image"], json!("x"));
        assert!(merged.get("etag").is_none());
        assert_eq!(
            camel("max_instance_request_concurrency"),
            "maxInstanceRequestConcurrency"
        );
    }
}
