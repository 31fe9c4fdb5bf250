//! Handlers for SecretVersions: get, list, access, enable, disable, destroy.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use super::json::{self as wire_json, VersionChangeRequest};
use super::secret_ref;
use super::secrets::unknown_method;
use crate::error::ApiResult;
use crate::server::AppState;
use crate::state::filter::Filter;
use crate::wire::{Params, parse_json as parse, split_verb};

type PathParams = Path<HashMap<String, String>>;

/// `GET .../versions/V` and `GET .../versions/V:access`.
pub async fn get(
    State(app): State<AppState>,
    Path(path): PathParams,
    params: Params,
) -> ApiResult<Json<Value>> {
    let secret = secret_ref(&path, &path["secret"]);
    let (version, verb) = split_verb(&path["version"]);
    match verb {
        None => {
            let found = app.store.get_version(&secret, version)?;
            let replication = app.store.get_secret(&secret)?.replication;
            Ok(Json(wire_json::version_json(
                &found,
                replication.as_ref(),
                params.enum_ints(),
            )))
        }
        Some("access") => Ok(Json(wire_json::access_json(
            &app.store.access_version(&secret, version)?,
        ))),
        Some(other) => Err(unknown_method(other)),
    }
}

/// `GET .../versions` with `filter`, `pageSize`, `pageToken`: newest first.
pub async fn list(
    State(app): State<AppState>,
    Path(path): PathParams,
    params: Params,
) -> ApiResult<Json<Value>> {
    let secret = secret_ref(&path, &path["secret"]);
    let filter = Filter::parse(params.get("filter").unwrap_or(""))?;
    let page = app.store.list_versions(&secret, &filter, &params.page()?)?;
    let replication = app.store.get_secret(&secret)?.replication;
    let mut out = json!({});
    if !page.items.is_empty() {
        out["versions"] = json!(
            page.items
                .iter()
                .map(|v| wire_json::version_json(v, replication.as_ref(), params.enum_ints()))
                .collect::<Vec<_>>()
        );
    }
    if let Some(token) = page.next_token {
        out["nextPageToken"] = json!(token);
    }
    out["totalSize"] = json!(page.total);
    Ok(Json(out))
}

/// `POST .../versions/V:enable|:disable|:destroy`, each with an optional etag.
pub async fn post_verb(
    State(app): State<AppState>,
    Path(path): PathParams,
    params: Params,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let secret = secret_ref(&path, &path["secret"]);
    let (version, verb) = split_verb(&path["version"]);
    let request: VersionChangeRequest = parse(&body)?;
    let etag = request.etag.as_deref();
    let changed = match verb {
        Some("enable") => app.store.enable_version(&secret, version, etag)?,
        Some("disable") => app.store.disable_version(&secret, version, etag)?,
        Some("destroy") => app.store.destroy_version(&secret, version, etag)?,
        Some(other) => return Err(unknown_method(other)),
        None => return Err(unknown_method("POST")),
    };
    let replication = app.store.get_secret(&secret)?.replication;
    Ok(Json(wire_json::version_json(
        &changed,
        replication.as_ref(),
        params.enum_ints(),
    )))
}
