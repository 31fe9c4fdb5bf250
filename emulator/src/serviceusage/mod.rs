//! Service Usage API v1: `gcloud services enable|disable|list` and the enablement check that
//! `gcloud run deploy` makes before deploying.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::server::AppState;
use crate::state::operations::new_id;
use crate::state::services::ServiceState;
use crate::wire::{Body, Params, split_verb};

type PathParams = Path<HashMap<String, String>>;

/// The Service Usage routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/projects/{project}/services", get(list))
        .route(
            "/v1/projects/{project}/services:batchEnable",
            post(batch_enable),
        )
        .route("/v1/projects/{project}/services:batchGet", get(batch_get))
        .route(
            "/v1/projects/{project}/services/{service}",
            get(get_service).post(post_verb),
        )
        .route("/v1/operations/{operation}", get(get_operation))
}

fn service_json(state: &ServiceState) -> Value {
    json!({
        "name": format!("projects/{}/services/{}", state.project.number, state.name),
        "parent": format!("projects/{}", state.project.number),
        "config": {"name": state.name, "title": state.title},
        "state": if state.enabled { "ENABLED" } else { "DISABLED" },
    })
}

async fn get_service(
    State(app): State<AppState>,
    Path(path): PathParams,
) -> ApiResult<Json<Value>> {
    let (service, verb) = split_verb(&path["service"]);
    if let Some(verb) = verb {
        return Err(ApiError::not_found(format!(
            "Method [{verb}] is not a GET method."
        )));
    }
    Ok(Json(service_json(
        &app.store.service(&path["project"], service)?,
    )))
}

async fn list(
    State(app): State<AppState>,
    Path(path): PathParams,
    params: Params,
) -> ApiResult<Json<Value>> {
    let enabled = match params.get("filter").map(str::trim).unwrap_or("") {
        "" => None,
        "state:ENABLED" | "state = ENABLED" | "state=ENABLED" => Some(true),
        "state:DISABLED" | "state = DISABLED" | "state=DISABLED" => Some(false),
        other => {
            return Err(ApiError::invalid(format!(
                "Invalid filter [{other}]: only state:ENABLED and state:DISABLED are supported."
            )));
        }
    };
    let page = app
        .store
        .list_services(&path["project"], enabled, &params.page()?)?;
    let mut out = json!({"services": page.items.iter().map(service_json).collect::<Vec<_>>()});
    if let Some(token) = page.next_token {
        out["nextPageToken"] = json!(token);
    }
    Ok(Json(out))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct BatchEnableRequest {
    #[serde(default)]
    service_ids: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ChangeRequest {
    #[serde(default, rename = "disableDependentServices")]
    _disable_dependent_services: Option<bool>,
    #[serde(default, rename = "checkIfServiceHasUsage")]
    _check_if_service_has_usage: Option<String>,
}

async fn batch_enable(
    State(app): State<AppState>,
    Path(path): PathParams,
    Body(request): Body<BatchEnableRequest>,
) -> ApiResult<Json<Value>> {
    if request.service_ids.len() > 20 {
        return Err(ApiError::invalid(
            "At most 20 services can be enabled in one request.",
        ));
    }
    let states = app
        .store
        .set_services_enabled(&path["project"], &request.service_ids, true)?;
    let response = json!({
        "@type": "type.googleapis.com/google.api.serviceusage.v1.BatchEnableServicesResponse",
        "services": states.iter().map(service_json).collect::<Vec<_>>(),
    });
    Ok(Json(operation(&app, &states, response)))
}

async fn batch_get(
    State(app): State<AppState>,
    Path(path): PathParams,
    params: Params,
) -> ApiResult<Json<Value>> {
    let names = params.get("names").unwrap_or("");
    let services: Vec<Value> = names
        .split(',')
        .filter(|n| !n.is_empty())
        .map(|name| {
            let service = name.rsplit('/').next().unwrap_or(name);
            app.store
                .service(&path["project"], service)
                .map(|s| service_json(&s))
        })
        .collect::<Result<_, _>>()?;
    Ok(Json(json!({ "services": services })))
}

async fn post_verb(
    State(app): State<AppState>,
    Path(path): PathParams,
    Body(_request): Body<ChangeRequest>,
) -> ApiResult<Json<Value>> {
    let (service, verb) = split_verb(&path["service"]);
    let (enabled, kind) = match verb {
        Some("enable") => (true, "EnableServiceResponse"),
        Some("disable") => (false, "DisableServiceResponse"),
        _ => {
            return Err(ApiError::not_found(format!(
                "Method [{}] is not a method of Service Usage.",
                verb.unwrap_or("POST")
            )));
        }
    };
    let states =
        app.store
            .set_services_enabled(&path["project"], &[service.to_string()], enabled)?;
    let response = json!({
        "@type": format!("type.googleapis.com/google.api.serviceusage.v1.{kind}"),
        "service": service_json(&states[0]),
    });
    Ok(Json(operation(&app, &states, response)))
}

/// A finished operation, remembered so that a poll finds it.
fn operation(app: &AppState, states: &[ServiceState], response: Value) -> Value {
    let number = states.first().map_or("0", |s| s.project.number.as_str());
    let name = format!("operations/acat.p2-{number}-{}", new_id());
    let op = app.store.operations().finish(name, None, response);
    json!({"name": op.name, "done": true, "response": op.response})
}

async fn get_operation(
    State(app): State<AppState>,
    Path(path): PathParams,
) -> ApiResult<Json<Value>> {
    let name = format!("operations/{}", path["operation"]);
    let op = app
        .store
        .operations()
        .get(&name)
        .ok_or_else(|| ApiError::not_found(format!("Operation [{name}] not found.")))?;
    Ok(Json(
        json!({"name": op.name, "done": true, "response": op.response}),
    ))
}
