//! Cloud SQL Admin API (v1beta4, as gcloud calls it, and v1, as client libraries do):
//! instances, databases, users and the `sql#operation`s gcloud polls until `DONE`.
//!
//! Handlers parse, call the state layer, tell the controller an instance has work, and
//! serialise; [`json`] holds the wire shapes.

mod json;

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::server::AppState;
use crate::state::sql::{self, SqlOperation};
use crate::wire::{Body, Params};

type PathParams = Path<HashMap<String, String>>;

/// The Cloud SQL Admin routes, under both API versions' prefixes.
pub fn router() -> Router<AppState> {
    let mut router = Router::new();
    for prefix in ["/sql/v1beta4", "/v1"] {
        let base = format!("{prefix}/projects/{{project}}");
        router = router
            .route(
                &format!("{base}/instances"),
                get(list_instances).post(create_instance),
            )
            .route(
                &format!("{base}/instances/{{instance}}"),
                get(get_instance)
                    .patch(patch_instance)
                    .put(patch_instance)
                    .delete(delete_instance),
            )
            .route(
                &format!("{base}/instances/{{instance}}/databases"),
                get(list_databases).post(create_database),
            )
            .route(
                &format!("{base}/instances/{{instance}}/databases/{{database}}"),
                get(get_database).delete(delete_database),
            )
            .route(
                &format!("{base}/instances/{{instance}}/users"),
                get(list_users)
                    .post(create_user)
                    .put(update_user)
                    .delete(delete_user),
            )
            .route(
                &format!("{base}/instances/{{instance}}/users/{{user}}"),
                get(get_user),
            )
            .route(&format!("{base}/operations"), get(list_operations))
            .route(
                &format!("{base}/operations/{{operation}}"),
                get(get_operation),
            );
    }
    router
}

/// Tells the controller an instance has an operation to carry out, and answers with it.
fn queued(app: &AppState, operation: SqlOperation) -> Json<Value> {
    app.controller
        .sql_instance_changed(sql::instance_key(&operation.project, &operation.instance));
    Json(json::operation(&app.settings.public_addr, &operation))
}

async fn create_instance(
    State(app): State<AppState>,
    Path(path): PathParams,
    Body(body): Body<Value>,
) -> ApiResult<Json<Value>> {
    let request = json::new_instance(&body)?;
    let operation = app.store.create_sql_instance(&path["project"], request)?;
    Ok(queued(&app, operation))
}

async fn list_instances(
    State(app): State<AppState>,
    Path(path): PathParams,
) -> ApiResult<Json<Value>> {
    let instances = app.store.list_sql_instances(&path["project"])?;
    let items: Vec<Value> = instances
        .iter()
        .map(|i| json::instance(&app.settings.public_addr, i))
        .collect();
    let mut out = serde_json::json!({"kind": "sql#instancesList"});
    if !items.is_empty() {
        out["items"] = Value::Array(items);
    }
    Ok(Json(out))
}

async fn get_instance(
    State(app): State<AppState>,
    Path(path): PathParams,
) -> ApiResult<Json<Value>> {
    let instance = app
        .store
        .get_sql_instance(&path["project"], &path["instance"])?;
    Ok(Json(json::instance(&app.settings.public_addr, &instance)))
}

async fn patch_instance(
    State(app): State<AppState>,
    Path(path): PathParams,
    Body(body): Body<Value>,
) -> ApiResult<Json<Value>> {
    let patch = json::settings_patch(&body)?;
    let operation = app
        .store
        .patch_sql_instance(&path["project"], &path["instance"], patch)?;
    Ok(queued(&app, operation))
}

async fn delete_instance(
    State(app): State<AppState>,
    Path(path): PathParams,
) -> ApiResult<Json<Value>> {
    let operation = app
        .store
        .delete_sql_instance(&path["project"], &path["instance"])?;
    Ok(queued(&app, operation))
}

async fn create_database(
    State(app): State<AppState>,
    Path(path): PathParams,
    Body(body): Body<Value>,
) -> ApiResult<Json<Value>> {
    let database = json::new_database(&body)?;
    let operation = app
        .store
        .create_sql_database(&path["project"], &path["instance"], database)?;
    Ok(queued(&app, operation))
}

async fn list_databases(
    State(app): State<AppState>,
    Path(path): PathParams,
) -> ApiResult<Json<Value>> {
    let instance = app
        .store
        .get_sql_instance(&path["project"], &path["instance"])?;
    let items: Vec<Value> = instance
        .all_databases()
        .iter()
        .map(|d| json::database(&instance, d))
        .collect();
    Ok(Json(
        serde_json::json!({"kind": "sql#databasesList", "items": items}),
    ))
}

async fn get_database(
    State(app): State<AppState>,
    Path(path): PathParams,
) -> ApiResult<Json<Value>> {
    let instance = app
        .store
        .get_sql_instance(&path["project"], &path["instance"])?;
    let database =
        app.store
            .get_sql_database(&path["project"], &path["instance"], &path["database"])?;
    Ok(Json(json::database(&instance, &database)))
}

async fn delete_database(
    State(app): State<AppState>,
    Path(path): PathParams,
) -> ApiResult<Json<Value>> {
    let operation =
        app.store
            .delete_sql_database(&path["project"], &path["instance"], &path["database"])?;
    Ok(queued(&app, operation))
}

async fn create_user(
    State(app): State<AppState>,
    Path(path): PathParams,
    Body(body): Body<Value>,
) -> ApiResult<Json<Value>> {
    let (user, password) = json::new_user(&body)?;
    let operation =
        app.store
            .create_sql_user(&path["project"], &path["instance"], user, password)?;
    Ok(queued(&app, operation))
}

async fn list_users(State(app): State<AppState>, Path(path): PathParams) -> ApiResult<Json<Value>> {
    let instance = app
        .store
        .get_sql_instance(&path["project"], &path["instance"])?;
    let items: Vec<Value> = instance
        .all_users()
        .iter()
        .map(|u| json::user(&instance, u))
        .collect();
    Ok(Json(
        serde_json::json!({"kind": "sql#usersList", "items": items}),
    ))
}

async fn get_user(State(app): State<AppState>, Path(path): PathParams) -> ApiResult<Json<Value>> {
    let instance = app
        .store
        .get_sql_instance(&path["project"], &path["instance"])?;
    let user = instance
        .all_users()
        .into_iter()
        .find(|u| u.name == path["user"])
        .ok_or_else(|| ApiError::not_found(format!("The user {} does not exist.", path["user"])))?;
    Ok(Json(json::user(&instance, &user)))
}

/// `PUT users?name=&host=`: gcloud's `users set-password`.
async fn update_user(
    State(app): State<AppState>,
    Path(path): PathParams,
    params: Params,
    Body(body): Body<Value>,
) -> ApiResult<Json<Value>> {
    let name = params
        .get("name")
        .map(str::to_string)
        .or_else(|| body.get("name").and_then(Value::as_str).map(str::to_string))
        .ok_or_else(|| ApiError::invalid("Invalid request: the user name is required."))?;
    let password = body
        .get("password")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::invalid("Invalid request: password is required."))?;
    let operation = app.store.set_sql_user_password(
        &path["project"],
        &path["instance"],
        &name,
        password.to_string(),
    )?;
    Ok(queued(&app, operation))
}

/// `DELETE users?name=&host=`.
async fn delete_user(
    State(app): State<AppState>,
    Path(path): PathParams,
    params: Params,
) -> ApiResult<Json<Value>> {
    let name = params
        .get("name")
        .ok_or_else(|| ApiError::invalid("Invalid request: the user name is required."))?;
    let operation = app
        .store
        .delete_sql_user(&path["project"], &path["instance"], name)?;
    Ok(queued(&app, operation))
}

async fn get_operation(
    State(app): State<AppState>,
    Path(path): PathParams,
) -> ApiResult<Json<Value>> {
    let operation = app
        .store
        .get_sql_operation(&path["project"], &path["operation"])?;
    Ok(Json(json::operation(&app.settings.public_addr, &operation)))
}

async fn list_operations(
    State(app): State<AppState>,
    Path(path): PathParams,
    params: Params,
) -> ApiResult<Json<Value>> {
    let instance = params.get("instance");
    if let Some(name) = instance {
        app.store.get_sql_instance(&path["project"], name)?;
    }
    let items: Vec<Value> = app
        .store
        .list_sql_operations(&path["project"], instance)
        .iter()
        .map(|o| json::operation(&app.settings.public_addr, o))
        .collect();
    let mut out = serde_json::json!({"kind": "sql#operationsList"});
    if !items.is_empty() {
        out["items"] = Value::Array(items);
    }
    Ok(Json(out))
}
