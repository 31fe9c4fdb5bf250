//! Cloud Logging API v2 over REST: `entries:list` (what `gcloud logging read` calls) and
//! `entries:write`, over the in-memory [`LogStore`](crate::state::logs::LogStore).

mod json;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::server::AppState;
use crate::state::filter::Filter;
use crate::state::logs::Order;
use crate::state::page::PageRequest;
use crate::wire::Body;
use json::{ListRequest, WriteRequest};

/// The Cloud Logging routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v2/entries:list", post(list))
        .route("/v2/entries:write", post(write))
}

/// `POST /v2/entries:list` with `resourceNames`, `filter`, `orderBy`, `pageSize`, `pageToken`.
async fn list(
    State(app): State<AppState>,
    Body(body): Body<ListRequest>,
) -> ApiResult<Json<Value>> {
    let projects = scope(&app, &body)?;
    let filter = Filter::parse(&body.filter)?;
    let order = Order::parse(&body.order_by)?;
    let page = PageRequest {
        size: body.page_size,
        token: body.page_token,
    };
    let page = app.store.logs().query(&projects, &filter, order, &page)?;
    let mut out = json!({});
    if !page.items.is_empty() {
        out["entries"] = json!(page.items.iter().map(json::entry_json).collect::<Vec<_>>());
    }
    if let Some(token) = page.next_token {
        out["nextPageToken"] = json!(token);
    }
    Ok(Json(out))
}

/// The project names (ids and numbers) whose entries a list request may see.
fn scope(app: &AppState, body: &ListRequest) -> ApiResult<Vec<String>> {
    let names: Vec<String> = body
        .resource_names
        .iter()
        .cloned()
        .chain(body.project_ids.iter().map(|id| format!("projects/{id}")))
        .collect();
    if names.is_empty() {
        return Err(ApiError::invalid(
            "resourceNames: at least one resource name is required.",
        ));
    }
    let mut projects = Vec::new();
    for name in &names {
        let mut parts = name.split('/');
        match (parts.next(), parts.next()) {
            (Some("projects"), Some(project)) if !project.is_empty() => {
                let project = app.store.project(project)?;
                projects.push(project.id);
                projects.push(project.number);
            }
            // The emulator holds no organization, folder or billing account logs.
            (Some("organizations" | "folders" | "billingAccounts"), Some(id)) if !id.is_empty() => {
            }
            _ => {
                return Err(ApiError::invalid(format!(
                    "Invalid resource name [{name}]: expected projects/[PROJECT_ID]."
                )));
            }
        }
    }
    Ok(projects)
}

/// `POST /v2/entries:write`: every entry is validated before any is kept.
async fn write(
    State(app): State<AppState>,
    Body(body): Body<WriteRequest>,
) -> ApiResult<Json<Value>> {
    let dry_run = body.dry_run;
    let entries = body.into_entries()?;
    if !dry_run {
        for entry in entries {
            app.store.logs().append(entry);
        }
    }
    Ok(Json(json!({})))
}
