//! Artifact Registry API v1: the repositories a deploy script creates before it pushes images.

use std::collections::{BTreeMap, HashMap};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::server::AppState;
use crate::state::iam;
use crate::state::operations::new_id;
use crate::state::repositories::{Repository, RepositoryFields};
use crate::wire::iam::{
    PolicyJson, SetIamPolicyRequest, TestIamPermissionsRequest, TestIamPermissionsResponse,
};
use crate::wire::{self, Body, Params, split_verb};

type PathParams = Path<HashMap<String, String>>;

/// The Artifact Registry routes.
pub fn router() -> Router<AppState> {
    let base = "/v1/projects/{project}/locations/{location}";
    Router::new()
        .route(&format!("{base}/repositories"), get(list).post(create))
        .route(
            &format!("{base}/repositories/{{repository}}"),
            get(get_repository)
                .patch(patch)
                .delete(delete)
                .post(post_verb),
        )
        .route(
            &format!("{base}/operations/{{operation}}"),
            get(get_operation),
        )
}

/// `Repository` as a client sends it.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RepositoryJson {
    // Output-only fields clients echo back are accepted and ignored.
    #[serde(default, rename = "name")]
    _name: Option<IgnoredAny>,
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    kms_key_name: Option<String>,
    #[serde(default)]
    docker_config: Option<DockerConfigJson>,
    #[serde(default, rename = "cleanupPolicies")]
    _cleanup_policies: Option<IgnoredAny>,
    #[serde(default, rename = "cleanupPolicyDryRun")]
    _cleanup_policy_dry_run: Option<IgnoredAny>,
    #[serde(default, rename = "createTime")]
    _create_time: Option<IgnoredAny>,
    #[serde(default, rename = "updateTime")]
    _update_time: Option<IgnoredAny>,
    #[serde(default, rename = "sizeBytes")]
    _size_bytes: Option<IgnoredAny>,
    #[serde(default, rename = "registryUri")]
    _registry_uri: Option<IgnoredAny>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DockerConfigJson {
    #[serde(default)]
    immutable_tags: bool,
}

impl RepositoryJson {
    fn into_fields(self) -> RepositoryFields {
        RepositoryFields {
            format: self.format.unwrap_or_default(),
            mode: self.mode.unwrap_or_default(),
            description: self.description.unwrap_or_default(),
            labels: self.labels,
            kms_key_name: self.kms_key_name,
            immutable_tags: self.docker_config.is_some_and(|d| d.immutable_tags),
        }
    }
}

fn repository_json(repository: &Repository) -> Value {
    let mut out = json!({
        "name": repository.name.to_string(),
        "format": repository.format,
        "mode": repository.mode,
        "createTime": wire::timestamp(repository.create_time),
        "updateTime": wire::timestamp(repository.update_time),
        "sizeBytes": "0",
        "registryUri": repository.registry_uri(),
        "satisfiesPzi": false,
        "satisfiesPzs": false,
    });
    if !repository.description.is_empty() {
        out["description"] = json!(repository.description);
    }
    if !repository.labels.is_empty() {
        out["labels"] = json!(repository.labels);
    }
    if let Some(key) = &repository.kms_key_name {
        out["kmsKeyName"] = json!(key);
    }
    if repository.format == "DOCKER" {
        out["dockerConfig"] = if repository.immutable_tags {
            json!({"immutableTags": true})
        } else {
            json!({})
        };
    }
    out
}

/// A finished operation in `projects/P/locations/L/operations/ID` form, remembered for polling.
fn operation(app: &AppState, project: &str, location: &str, response: Value) -> Value {
    let name = format!(
        "projects/{project}/locations/{location}/operations/{}",
        new_id()
    );
    let op = app.store.operations().finish(name, None, response);
    json!({"name": op.name, "done": true, "response": op.response})
}

async fn create(
    State(app): State<AppState>,
    Path(path): PathParams,
    params: Params,
    Body(body): Body<RepositoryJson>,
) -> ApiResult<Json<Value>> {
    let id = params
        .get("repositoryId")
        .or(params.get("repository_id"))
        .ok_or_else(|| ApiError::invalid("repository_id is required."))?;
    let repository =
        app.store
            .create_repository(&path["project"], &path["location"], id, body.into_fields())?;
    let mut response = repository_json(&repository);
    response["@type"] = json!("type.googleapis.com/google.devtools.artifactregistry.v1.Repository");
    Ok(Json(operation(
        &app,
        &path["project"],
        &path["location"],
        response,
    )))
}

async fn list(
    State(app): State<AppState>,
    Path(path): PathParams,
    params: Params,
) -> ApiResult<Json<Value>> {
    let page = app
        .store
        .list_repositories(&path["project"], &path["location"], &params.page()?)?;
    let mut out = json!({});
    if !page.items.is_empty() {
        out["repositories"] = json!(page.items.iter().map(repository_json).collect::<Vec<_>>());
    }
    if let Some(token) = page.next_token {
        out["nextPageToken"] = json!(token);
    }
    Ok(Json(out))
}

async fn get_repository(
    State(app): State<AppState>,
    Path(path): PathParams,
) -> ApiResult<Json<Value>> {
    let (id, verb) = split_verb(&path["repository"]);
    let repository = app
        .store
        .get_repository(&path["project"], &path["location"], id)?;
    match verb {
        None => Ok(Json(repository_json(&repository))),
        Some("getIamPolicy") => Ok(Json(json!(PolicyJson::from(app.store.repository_policy(
            &path["project"],
            &path["location"],
            id
        )?)))),
        Some(other) => Err(unknown_method(other)),
    }
}

async fn patch(
    State(app): State<AppState>,
    Path(path): PathParams,
    params: Params,
    Body(body): Body<RepositoryJson>,
) -> ApiResult<Json<Value>> {
    let (id, verb) = split_verb(&path["repository"]);
    if let Some(verb) = verb {
        return Err(unknown_method(verb));
    }
    let repository = app.store.update_repository(
        &path["project"],
        &path["location"],
        id,
        body.into_fields(),
        &params.mask(),
    )?;
    Ok(Json(repository_json(&repository)))
}

async fn delete(State(app): State<AppState>, Path(path): PathParams) -> ApiResult<Json<Value>> {
    let (id, verb) = split_verb(&path["repository"]);
    if let Some(verb) = verb {
        return Err(unknown_method(verb));
    }
    app.store
        .delete_repository(&path["project"], &path["location"], id)?;
    Ok(Json(operation(
        &app,
        &path["project"],
        &path["location"],
        json!({"@type": "type.googleapis.com/google.protobuf.Empty"}),
    )))
}

async fn post_verb(
    State(app): State<AppState>,
    Path(path): PathParams,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let (id, verb) = split_verb(&path["repository"]);
    let (project, location) = (&path["project"], &path["location"]);
    match verb {
        Some("setIamPolicy") => {
            let request: SetIamPolicyRequest = wire::parse_json(&body)?;
            let policy =
                app.store
                    .set_repository_policy(project, location, id, request.into_update()?)?;
            Ok(Json(json!(PolicyJson::from(policy))))
        }
        Some("getIamPolicy") => Ok(Json(json!(PolicyJson::from(
            app.store.repository_policy(project, location, id)?
        )))),
        Some("testIamPermissions") => {
            app.store.get_repository(project, location, id)?;
            let request: TestIamPermissionsRequest = wire::parse_json(&body)?;
            let permissions = iam::known_permissions(&request.permissions, &["artifactregistry"])?;
            Ok(Json(json!(TestIamPermissionsResponse { permissions })))
        }
        other => Err(unknown_method(other.unwrap_or("POST"))),
    }
}

async fn get_operation(
    State(app): State<AppState>,
    Path(path): PathParams,
) -> ApiResult<Json<Value>> {
    let name = format!(
        "projects/{}/locations/{}/operations/{}",
        path["project"], path["location"], path["operation"]
    );
    let op = app
        .store
        .operations()
        .get(&name)
        .ok_or_else(|| ApiError::not_found(format!("Operation [{name}] not found.")))?;
    Ok(Json(
        json!({"name": op.name, "done": true, "response": op.response}),
    ))
}

fn unknown_method(verb: &str) -> ApiError {
    ApiError::not_found(format!(
        "Method [{verb}] is not a method of Artifact Registry."
    ))
}
