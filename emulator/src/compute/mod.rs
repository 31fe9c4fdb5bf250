//! Compute Engine API v1, only the region and zone look-ups behind `gcloud config set
//! compute/region|zone` and `gcloud compute regions|zones list|describe`.

mod filter;

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::server::AppState;
use crate::state::locations;
use crate::wire::Params;
use filter::ComputeFilter;

type PathParams = Path<HashMap<String, String>>;

/// The Compute routes; gcloud keeps the API's `compute/v1/` root under an endpoint override.
pub fn router() -> Router<AppState> {
    let root = "/compute/v1/projects/{project}";
    Router::new()
        .route(&format!("{root}/regions"), get(list_regions))
        .route(&format!("{root}/regions/{{region}}"), get(get_region))
        .route(&format!("{root}/zones"), get(list_zones))
        .route(&format!("{root}/zones/{{zone}}"), get(get_zone))
}

fn base_url(app: &AppState, project: &str) -> String {
    format!(
        "http://{}/compute/v1/projects/{project}",
        app.settings.public_addr
    )
}

/// A stable numeric id for a location name, as Compute gives every resource one.
fn id_of(name: &str) -> String {
    crate::state::projects::number_for(name)
}

fn region_json(app: &AppState, project: &str, region: &str) -> Value {
    let base = base_url(app, project);
    json!({
        "kind": "compute#region",
        "id": id_of(region),
        "creationTimestamp": "1969-12-31T16:00:00.000-08:00",
        "name": region,
        "description": region,
        "status": "UP",
        "zones": locations::zones(region)
            .iter()
            .map(|z| format!("{base}/zones/{z}"))
            .collect::<Vec<_>>(),
        "quotas": [],
        "selfLink": format!("{base}/regions/{region}"),
        "supportsPzs": false,
    })
}

fn zone_json(app: &AppState, project: &str, zone: &str, region: &str) -> Value {
    let base = base_url(app, project);
    json!({
        "kind": "compute#zone",
        "id": id_of(zone),
        "creationTimestamp": "1969-12-31T16:00:00.000-08:00",
        "name": zone,
        "description": zone,
        "status": "UP",
        "region": format!("{base}/regions/{region}"),
        "selfLink": format!("{base}/zones/{zone}"),
        "availableCpuPlatforms": ["Intel Broadwell", "Intel Cascade Lake", "AMD Milan"],
        "supportsPzs": false,
    })
}

fn check_project(app: &AppState, project: &str) -> ApiResult<()> {
    app.store.project(project)?;
    Ok(())
}

fn list_json(kind: &str, app: &AppState, project: &str, what: &str, items: Vec<Value>) -> Value {
    json!({
        "kind": kind,
        "id": format!("projects/{project}/{what}"),
        "items": items,
        "selfLink": format!("{}/{what}", base_url(app, project)),
    })
}

async fn list_regions(
    State(app): State<AppState>,
    Path(path): PathParams,
    params: Params,
) -> ApiResult<Json<Value>> {
    let project = &path["project"];
    check_project(&app, project)?;
    let filter = ComputeFilter::parse(params.get("filter").unwrap_or(""))?;
    let items = locations::REGIONS
        .iter()
        .map(|r| region_json(&app, project, r))
        .filter(|r| filter.matches(r))
        .collect();
    Ok(Json(list_json(
        "compute#regionList",
        &app,
        project,
        "regions",
        items,
    )))
}

async fn get_region(State(app): State<AppState>, Path(path): PathParams) -> ApiResult<Json<Value>> {
    let (project, region) = (&path["project"], &path["region"]);
    check_project(&app, project)?;
    if !locations::is_region(region) {
        return Err(ApiError::not_found(format!(
            "The resource 'projects/{project}/regions/{region}' was not found"
        )));
    }
    Ok(Json(region_json(&app, project, region)))
}

async fn list_zones(
    State(app): State<AppState>,
    Path(path): PathParams,
    params: Params,
) -> ApiResult<Json<Value>> {
    let project = &path["project"];
    check_project(&app, project)?;
    let filter = ComputeFilter::parse(params.get("filter").unwrap_or(""))?;
    let items = locations::REGIONS
        .iter()
        .flat_map(|r| {
            locations::zones(r)
                .into_iter()
                .map(|z| zone_json(&app, project, &z, r))
                .filter(|z| filter.matches(z))
                .collect::<Vec<_>>()
        })
        .collect();
    Ok(Json(list_json(
        "compute#zoneList",
        &app,
        project,
        "zones",
        items,
    )))
}

async fn get_zone(State(app): State<AppState>, Path(path): PathParams) -> ApiResult<Json<Value>> {
    let (project, zone) = (&path["project"], &path["zone"]);
    check_project(&app, project)?;
    let region = locations::region_of_zone(zone).ok_or_else(|| {
        ApiError::not_found(format!(
            "The resource 'projects/{project}/zones/{zone}' was not found"
        ))
    })?;
    Ok(Json(zone_json(&app, project, zone, region)))
}
