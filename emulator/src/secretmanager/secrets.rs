//! Handlers for Secrets: create, get, list, patch, delete, addVersion and IAM.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use super::json::{self as wire_json, AddVersionRequest, SecretJson};
use super::{parent, secret_ref};
use crate::error::{ApiError, ApiResult};
use crate::server::AppState;
use crate::state::filter::Filter;
use crate::state::secrets::SecretUpdate;
use crate::wire::iam::{
    PolicyJson, SetIamPolicyRequest, TestIamPermissionsRequest, TestIamPermissionsResponse,
};
use crate::wire::{Body, Params, parse_json as parse, split_verb};

type PathParams = Path<HashMap<String, String>>;

/// `POST .../secrets?secretId=ID`.
pub async fn create(
    State(app): State<AppState>,
    Path(path): PathParams,
    params: Params,
    Body(body): Body<SecretJson>,
) -> ApiResult<Json<SecretJson>> {
    let secret_id = params
        .get("secretId")
        .or(params.get("secret_id"))
        .ok_or_else(|| ApiError::invalid("secret_id is required."))?;
    let fields = body.into_fields()?;
    let secret = app.store.create_secret(&parent(&path), secret_id, fields)?;
    Ok(Json(SecretJson::from(&secret)))
}

/// `GET .../secrets` with `filter`, `pageSize`, `pageToken`.
pub async fn list(
    State(app): State<AppState>,
    Path(path): PathParams,
    params: Params,
) -> ApiResult<Json<Value>> {
    let filter = Filter::parse(params.get("filter").unwrap_or(""))?;
    let page = app
        .store
        .list_secrets(&parent(&path), &filter, &params.page()?)?;
    let mut out = json!({});
    if !page.items.is_empty() {
        out["secrets"] = json!(page.items.iter().map(SecretJson::from).collect::<Vec<_>>());
    }
    if let Some(token) = page.next_token {
        out["nextPageToken"] = json!(token);
    }
    out["totalSize"] = json!(page.total);
    Ok(Json(out))
}

/// `GET .../secrets/S`, and `GET .../secrets/S:getIamPolicy` as gcloud sends it.
pub async fn get(State(app): State<AppState>, Path(path): PathParams) -> ApiResult<Json<Value>> {
    let (secret_id, verb) = split_verb(&path["secret"]);
    let secret = secret_ref(&path, secret_id);
    match verb {
        None => Ok(Json(json!(SecretJson::from(
            &app.store.get_secret(&secret)?
        )))),
        Some("getIamPolicy") => Ok(Json(json!(PolicyJson::from(
            app.store.secret_policy(&secret)?
        )))),
        Some(other) => Err(unknown_method(other)),
    }
}

/// `PATCH .../secrets/S?updateMask=...`.
pub async fn patch(
    State(app): State<AppState>,
    Path(path): PathParams,
    params: Params,
    Body(body): Body<SecretJson>,
) -> ApiResult<Json<SecretJson>> {
    let (secret_id, verb) = split_verb(&path["secret"]);
    if let Some(verb) = verb {
        return Err(unknown_method(verb));
    }
    let update = SecretUpdate {
        fields: body.into_fields()?,
        update_mask: params.mask(),
    };
    let secret = app
        .store
        .update_secret(&secret_ref(&path, secret_id), update)?;
    Ok(Json(SecretJson::from(&secret)))
}

/// `DELETE .../secrets/S[?etag=...]`.
pub async fn delete(
    State(app): State<AppState>,
    Path(path): PathParams,
    params: Params,
) -> ApiResult<Json<Value>> {
    let (secret_id, verb) = split_verb(&path["secret"]);
    if let Some(verb) = verb {
        return Err(unknown_method(verb));
    }
    app.store
        .delete_secret(&secret_ref(&path, secret_id), params.get("etag"))?;
    Ok(Json(json!({})))
}

/// `POST .../secrets/S:addVersion|:setIamPolicy|:getIamPolicy|:testIamPermissions`.
pub async fn post_verb(
    State(app): State<AppState>,
    Path(path): PathParams,
    params: Params,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    let (secret_id, verb) = split_verb(&path["secret"]);
    let secret = secret_ref(&path, secret_id);
    match verb {
        Some("addVersion") => {
            let request: AddVersionRequest = parse(&body)?;
            let payload = request
                .payload
                .ok_or_else(|| ApiError::invalid("SecretPayload is required."))?;
            let (data, crc) = wire_json::decode_payload(payload)?;
            let version = app.store.add_version(&secret, data, crc)?;
            let replication = app.store.get_secret(&secret)?.replication;
            Ok(Json(wire_json::version_json(
                &version,
                replication.as_ref(),
                params.enum_ints(),
            )))
        }
        Some("setIamPolicy") => {
            let request: SetIamPolicyRequest = parse(&body)?;
            let policy = app
                .store
                .set_secret_policy(&secret, request.into_update()?)?;
            Ok(Json(json!(PolicyJson::from(policy))))
        }
        Some("getIamPolicy") => Ok(Json(json!(PolicyJson::from(
            app.store.secret_policy(&secret)?
        )))),
        Some("testIamPermissions") => {
            let request: TestIamPermissionsRequest = parse(&body)?;
            let permissions = app
                .store
                .test_secret_permissions(&secret, &request.permissions)?;
            Ok(Json(json!(TestIamPermissionsResponse { permissions })))
        }
        Some(other) => Err(unknown_method(other)),
        None => Err(ApiError::new(
            crate::error::Code::InvalidArgument,
            format!(
                "POST is not allowed on secret [{secret_id}]; use PATCH to update it or a \
                 method such as :addVersion."
            ),
        )),
    }
}

pub(super) fn unknown_method(verb: &str) -> ApiError {
    ApiError::not_found(format!(
        "Method [{verb}] is not a method of Secret Manager."
    ))
}
