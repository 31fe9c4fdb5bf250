//! The metadata server of Cloud Run instances (`http://metadata.google.internal/computeMetadata/v1/`).
//!
//! Each instance gets its own server, so every answer is about the instance asking: its
//! project, region, instance id and service account, an access token, and ID tokens signed by
//! the emulator's [`TokenIssuer`](crate::state::identity::TokenIssuer) for any audience. As on
//! Google Cloud, requests need `Metadata-Flavor: Google` (and may not carry `X-Forwarded-For`),
//! and answers carry `Metadata-Flavor: Google`.
//!
//! So that apps can verify ID tokens inside the instance, the same server also answers the
//! emulator's JWKS at `/oauth2/v3/certs` and its OIDC discovery document at
//! `/.well-known/openid-configuration`, without the header (Google serves these at
//! `https://www.googleapis.com/oauth2/v3/certs`, which instances of the emulator cannot reach).
//!
//! ```no_run
//! # async fn story(store: emulator::Store, listener: tokio::net::UnixListener) {
//! use emulator::metadata::{self, Instance};
//!
//! let instance = Instance {
//!     project_id: "demo-proj".into(),
//!     project_number: "123456789012".into(),
//!     region: "us-central1".into(),
//!     instance_id: "web-00001-abc-x7k2q9".into(),
//!     service_account: "123456789012-compute@developer.gserviceaccount.com".into(),
//! };
//! axum::serve(listener, metadata::router(instance, store)).await.ok();
//! # }
//! ```

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::state::Store;
use crate::state::identity::{ISSUER, TokenIssuer};

/// Where client libraries look for the metadata server inside an instance.
pub const METADATA_HOST: &str = "metadata.google.internal";
/// The metadata server's link-local address, as on Google Cloud.
pub const METADATA_IP: &str = "169.254.169.254";
/// The only scope the emulator's access tokens claim.
const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// A cached token is handed out again until this many seconds before it expires.
const TOKEN_REUSE_MARGIN_SECS: i64 = 300;
const V1: &str = "/computeMetadata/v1/";

/// The instance a metadata server describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub project_id: String,
    pub project_number: String,
    pub region: String,
    /// The instance id, as in the `instanceId` label of its log entries.
    pub instance_id: String,
    /// The email of the revision's service account.
    pub service_account: String,
}

/// Which token a cached one is: `Some((audience, full))` for an ID token, `None` for the
/// access token.
type TokenKey = Option<(String, bool)>;

#[derive(Clone, Debug)]
struct Metadata {
    instance: Arc<Instance>,
    store: Store,
    /// Tokens handed out, with their expiry, reused until shortly before they expire, as
    /// Google's server does.
    tokens: Arc<Mutex<HashMap<TokenKey, (String, i64)>>>,
}

/// The metadata server of one instance.
pub fn router(instance: Instance, store: Store) -> Router {
    Router::new()
        .route("/oauth2/v3/certs", axum::routing::get(certs))
        .route(
            "/.well-known/openid-configuration",
            axum::routing::get(discovery),
        )
        .fallback(answer)
        .with_state(Metadata {
            instance: Arc::new(instance),
            store,
            tokens: Arc::default(),
        })
}

/// The OIDC discovery document of the emulator's issuer, with `jwks_uri` at `base`.
pub fn discovery_document(base: &str) -> Value {
    json!({
        "issuer": ISSUER,
        "jwks_uri": format!("{base}/oauth2/v3/certs"),
        "id_token_signing_alg_values_supported": ["RS256"],
        "subject_types_supported": ["public"],
        "response_types_supported": ["id_token"],
        "claims_supported": ["aud", "azp", "email", "email_verified", "exp", "iat", "iss", "sub"],
    })
}

async fn certs(State(metadata): State<Metadata>) -> Response {
    match metadata.store.token_issuer() {
        Ok(issuer) => axum::Json(issuer.jwks()).into_response(),
        Err(error) => unavailable(&error.to_string()),
    }
}

async fn discovery() -> Response {
    axum::Json(discovery_document(&format!("http://{METADATA_HOST}"))).into_response()
}

/// Every `/computeMetadata/v1/` path, and `/` (the "on Google Cloud?" probe of client libraries).
async fn answer(
    State(metadata): State<Metadata>,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let path = uri.path();
    if headers.contains_key("x-forwarded-for") {
        return refuse(path, "Request had an X-Forwarded-For header.");
    }
    if headers.get("metadata-flavor").and_then(|v| v.to_str().ok()) != Some("Google") {
        return refuse(path, "Missing Metadata-Flavor:Google header.");
    }
    if path == "/" {
        return text("computeMetadata/\n");
    }
    if path == "/computeMetadata/" {
        return text("v1/\n");
    }
    let Some(rest) = path
        .strip_prefix(V1)
        .or_else(|| (path == "/computeMetadata/v1").then_some(""))
    else {
        return not_found(path);
    };
    let instance = &metadata.instance;
    let recursive = query.get("recursive").is_some_and(|v| v == "true");
    match rest {
        "" => text("instance/\nproject/\n"),
        "project/" => text("numeric-project-id\nproject-id\n"),
        "project/project-id" => text(&instance.project_id),
        "project/numeric-project-id" => text(&instance.project_number),
        "instance/" => text("id\nregion\nservice-accounts/\nzone\n"),
        "instance/id" => text(&instance.instance_id),
        "instance/region" => text(&format!(
            "projects/{}/regions/{}",
            instance.project_number, instance.region
        )),
        "instance/zone" => text(&format!(
            "projects/{}/zones/{}-1",
            instance.project_number, instance.region
        )),
        "instance/service-accounts/" if recursive => json_answer(&json!({
            "default": account_json(instance),
            instance.service_account.clone(): account_json(instance),
        })),
        "instance/service-accounts/" => text(&format!("default/\n{}/\n", instance.service_account)),
        other => match other.strip_prefix("instance/service-accounts/") {
            Some(account) => service_account(&metadata, path, account, &query, recursive),
            None => not_found(path),
        },
    }
}

/// `instance/service-accounts/ACCOUNT/...`, where ACCOUNT is `default` or the email.
fn service_account(
    metadata: &Metadata,
    path: &str,
    rest: &str,
    query: &HashMap<String, String>,
    recursive: bool,
) -> Response {
    let instance = &metadata.instance;
    let (account, item) = rest.split_once('/').unwrap_or((rest, ""));
    if account != "default" && account != instance.service_account {
        return not_found(path);
    }
    match item {
        "" if recursive => json_answer(&account_json(instance)),
        "" => text("aliases\nemail\nidentity\nscopes\ntoken\n"),
        "aliases" => text("default\n"),
        "email" => text(&instance.service_account),
        "scopes" => text(&format!("{CLOUD_PLATFORM_SCOPE}\n")),
        "token" => match access_token(metadata) {
            Ok((token, expires_in)) => json_answer(&json!({
                "access_token": token,
                "expires_in": expires_in,
                "token_type": "Bearer",
            })),
            Err(error) => unavailable(&error),
        },
        "identity" => {
            let Some(audience) = query.get("audience").filter(|a| !a.is_empty()) else {
                return (
                    StatusCode::BAD_REQUEST,
                    flavoured("text/plain; charset=utf-8"),
                    "non-empty audience parameter required\n",
                )
                    .into_response();
            };
            let full = query.get("format").is_some_and(|f| f == "full");
            match id_token(metadata, audience, full) {
                Ok(token) => text(&token),
                Err(error) => unavailable(&error),
            }
        }
        _ => not_found(path),
    }
}

fn account_json(instance: &Instance) -> Value {
    json!({
        "aliases": ["default"],
        "email": instance.service_account,
        "scopes": [CLOUD_PLATFORM_SCOPE],
    })
}

fn issuer(metadata: &Metadata) -> Result<Arc<TokenIssuer>, String> {
    metadata.store.token_issuer().map_err(|e| e.to_string())
}

/// The instance's ID token for `audience`, reused while it has more than a few minutes left.
fn id_token(metadata: &Metadata, audience: &str, full: bool) -> Result<String, String> {
    let now = Utc::now().timestamp();
    let key = Some((audience.to_string(), full));
    if let Some((token, expires_at)) = metadata.tokens.lock().get(&key)
        && *expires_at - now > TOKEN_REUSE_MARGIN_SECS
    {
        return Ok(token.clone());
    }
    let instance = &metadata.instance;
    let extra = full.then(|| {
        json!({"google": {"compute_engine": {
            "project_id": instance.project_id,
            "project_number": instance.project_number,
            "zone": format!("{}-1", instance.region),
            "instance_id": instance.instance_id,
        }}})
    });
    let token = issuer(metadata)?
        .id_token(&instance.service_account, audience, extra.as_ref())
        .map_err(|e| e.to_string())?;
    let expires_at = now + crate::state::identity::TOKEN_LIFETIME_SECS;
    metadata
        .tokens
        .lock()
        .insert(key, (token.clone(), expires_at));
    Ok(token)
}

/// The instance's access token and its remaining seconds.
fn access_token(metadata: &Metadata) -> Result<(String, i64), String> {
    let now = Utc::now().timestamp();
    if let Some((token, expires_at)) = metadata.tokens.lock().get(&None)
        && *expires_at - now > TOKEN_REUSE_MARGIN_SECS
    {
        return Ok((token.clone(), *expires_at - now));
    }
    let fresh = issuer(metadata)?.access_token();
    metadata
        .tokens
        .lock()
        .insert(None, (fresh.token.clone(), now + fresh.expires_in));
    Ok((fresh.token, fresh.expires_in))
}

/// The headers every answer carries, with `content_type`.
fn flavoured(content_type: &'static str) -> [(header::HeaderName, HeaderValue); 3] {
    [
        (
            header::HeaderName::from_static("metadata-flavor"),
            HeaderValue::from_static("Google"),
        ),
        (
            header::SERVER,
            HeaderValue::from_static("Metadata Server for Serverless"),
        ),
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
    ]
}

fn text(body: &str) -> Response {
    (flavoured("application/text"), body.to_string()).into_response()
}

fn json_answer(value: &Value) -> Response {
    (flavoured("application/json"), value.to_string()).into_response()
}

/// GCE's 403 page for a request the metadata server will not answer.
fn refuse(path: &str, why: &str) -> Response {
    let body = format!(
        "<!DOCTYPE html>\n<html lang=en>\n  <meta charset=utf-8>\n  <title>Error 403 (Forbidden)!!1</title>\n  \
         <p><b>403.</b> <ins>That\u{2019}s an error.</ins>\n  <p>Your client does not have permission to get URL \
         <code>{}</code> from this server. {why} <ins>That\u{2019}s all we know.</ins>\n",
        escape_html(path)
    );
    (
        StatusCode::FORBIDDEN,
        flavoured("text/html; charset=UTF-8"),
        body,
    )
        .into_response()
}

fn not_found(path: &str) -> Response {
    let body = format!(
        "<!DOCTYPE html>\n<html lang=en>\n  <meta charset=utf-8>\n  <title>Error 404 (Not Found)!!1</title>\n  \
         <p><b>404.</b> <ins>That\u{2019}s an error.</ins>\n  <p>The requested URL <code>{}</code> was not \
         found on this server.  <ins>That\u{2019}s all we know.</ins>\n",
        escape_html(path)
    );
    (
        StatusCode::NOT_FOUND,
        flavoured("text/html; charset=UTF-8"),
        body,
    )
        .into_response()
}

fn unavailable(why: &str) -> Response {
    tracing::error!(%why, "the metadata server cannot mint a token");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        flavoured("text/plain; charset=utf-8"),
        format!("{why}\n"),
    )
        .into_response()
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    fn server() -> Router {
        router(
            Instance {
                project_id: "demo-proj".into(),
                project_number: "123456789012".into(),
                region: "us-central1".into(),
                instance_id: "web-00001-abc-x7k2q9".into(),
                service_account: "caller@demo-proj.iam.gserviceaccount.com".into(),
            },
            Store::in_memory(),
        )
    }

    async fn get(path: &str, flavour: bool) -> (StatusCode, String) {
        let mut request = Request::get(path);
        if flavour {
            request = request.header("Metadata-Flavor", "Google");
        }
        let response = server()
            .oneshot(request.body(Body::empty()).expect("request"))
            .await
            .expect("answer");
        let status = response.status();
        assert_eq!(response.headers()["metadata-flavor"], "Google");
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn answers_about_the_instance_only_with_the_flavor_header() {
        let (status, body) = get("/computeMetadata/v1/project/project-id", false).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(body.contains("Missing Metadata-Flavor:Google header."));
        assert_eq!(
            get("/computeMetadata/v1/project/project-id", true).await,
            (StatusCode::OK, "demo-proj".into())
        );
        assert_eq!(
            get("/computeMetadata/v1/instance/region", true).await.1,
            "projects/123456789012/regions/us-central1"
        );
        assert_eq!(
            get(
                "/computeMetadata/v1/instance/service-accounts/default/email",
                true
            )
            .await
            .1,
            "caller@demo-proj.iam.gserviceaccount.com"
        );
        let (status, _) = get("/computeMetadata/v1/instance/nothing", true).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = get(
            "/computeMetadata/v1/instance/service-accounts/default/identity",
            true,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
}
