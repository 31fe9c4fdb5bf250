//! Secret Manager API v1 over REST: global (`projects/P/secrets`) and regional
//! (`projects/P/locations/L/secrets`) secrets, their versions and IAM policies.

mod json;
mod secrets;
mod versions;

use std::collections::HashMap;

use axum::Router;
use axum::routing::get;

use crate::server::AppState;
use crate::state::secrets::{SecretParent, SecretRef};

/// The Secret Manager routes.
pub fn router() -> Router<AppState> {
    let mut router = Router::new();
    for base in [
        "/v1/projects/{project}",
        "/v1/projects/{project}/locations/{location}",
    ] {
        router = router
            .route(
                &format!("{base}/secrets"),
                get(secrets::list).post(secrets::create),
            )
            .route(
                &format!("{base}/secrets/{{secret}}"),
                get(secrets::get)
                    .patch(secrets::patch)
                    .delete(secrets::delete)
                    .post(secrets::post_verb),
            )
            .route(
                &format!("{base}/secrets/{{secret}}/versions"),
                get(versions::list),
            )
            .route(
                &format!("{base}/secrets/{{secret}}/versions/{{version}}"),
                get(versions::get).post(versions::post_verb),
            );
    }
    router
}

/// The project and location of a request path.
fn parent(path: &HashMap<String, String>) -> SecretParent<'_> {
    SecretParent {
        project: path.get("project").map_or("", String::as_str),
        location: path.get("location").map(String::as_str),
    }
}

/// The secret of a request path, without any `:verb`.
fn secret_ref<'a>(path: &'a HashMap<String, String>, secret_id: &'a str) -> SecretRef<'a> {
    SecretRef {
        parent: parent(path),
        secret_id,
    }
}
