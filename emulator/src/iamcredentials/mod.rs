//! IAM Service Account Credentials API v1 (`generateIdToken`, `generateAccessToken`), and the
//! issuer's OAuth 2.0 certificates and OIDC discovery document, on the emulator's own port.
//!
//! This is how a test or a script on the host gets an ID token for a principal, as
//! `gcloud auth print-identity-token --impersonate-service-account` gets one from Google:
//! `POST /v1/projects/-/serviceAccounts/EMAIL:generateIdToken` with `{"audience": URL}`. The
//! emulator signs for any email; one outside `gserviceaccount.com` names a user (`user:EMAIL`),
//! which Google's API would refuse.

use std::collections::HashMap;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use chrono::{Duration, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::metadata::discovery_document;
use crate::server::AppState;
use crate::wire::{Body, split_verb};

/// The routes of the credentials API and the issuer's documents.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/projects/{project}/serviceAccounts/{account}",
            post(account_verb),
        )
        .route("/oauth2/v3/certs", get(certs))
        .route("/.well-known/openid-configuration", get(discovery))
}

/// The body of `generateIdToken` and `generateAccessToken`; the other fields (`includeEmail`,
/// `delegates`, `scope`, `lifetime`) change nothing here: tokens always carry the email.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct TokenRequest {
    audience: Option<String>,
}

async fn account_verb(
    State(app): State<AppState>,
    Path(path): Path<HashMap<String, String>>,
    Body(request): Body<TokenRequest>,
) -> Result<Json<Value>, ApiError> {
    let segment = path.get("account").map_or("", String::as_str);
    let (account, verb) = split_verb(segment);
    if !account.contains('@') {
        return Err(ApiError::not_found(format!(
            "Service account projects/-/serviceAccounts/{account} not found: the emulator \
             names service accounts by email."
        )));
    }
    let issuer = app.store.token_issuer()?;
    match verb {
        Some("generateIdToken") => {
            let audience = request
                .audience
                .filter(|a| !a.is_empty())
                .ok_or_else(|| ApiError::invalid("Invalid value for audience: must be set."))?;
            Ok(Json(
                json!({ "token": issuer.id_token(account, &audience, None)? }),
            ))
        }
        Some("generateAccessToken") => {
            let token = issuer.access_token();
            let expires = Utc::now() + Duration::seconds(token.expires_in);
            Ok(Json(json!({
                "accessToken": token.token,
                "expireTime": expires.to_rfc3339_opts(SecondsFormat::Secs, true),
            })))
        }
        _ => Err(ApiError::not_found(format!(
            "The requested URL /v1/projects/-/serviceAccounts/{segment} was not found on this server."
        ))),
    }
}

async fn certs(State(app): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(app.store.token_issuer()?.jwks()))
}

async fn discovery(State(app): State<AppState>) -> Json<Value> {
    Json(discovery_document(&format!(
        "http://{}",
        app.settings.public_addr
    )))
}
