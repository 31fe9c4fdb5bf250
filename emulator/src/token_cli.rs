//! `cloudrun-emulator print-identity-token ACCOUNT --audiences URL`: a client of a running
//! emulator's IAM Credentials API that prints an ID token for ACCOUNT (a service account or a
//! user), as `gcloud auth print-identity-token` prints one for an account on Google Cloud.

use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

use crate::config::{Config, TokenArgs};

/// Asks the emulator for the token; returns it with a newline.
pub async fn fetch(config: &Config, args: &TokenArgs) -> Result<String, String> {
    let base = args
        .emulator
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.listen));
    let url = format!(
        "{}/v1/projects/-/serviceAccounts/{}:generateIdToken",
        base.trim_end_matches('/'),
        args.account
    );
    let body = json!({ "audience": args.audiences, "includeEmail": true });
    let request = Request::post(url)
        .header("content-type", "application/json")
        .body(Full::new(bytes::Bytes::from(body.to_string())))
        .map_err(|e| format!("bad emulator URL {base} or account {}: {e}", args.account))?;
    let client = Client::builder(TokioExecutor::new()).build_http();
    let response = client
        .request(request)
        .await
        .map_err(|e| format!("cannot reach the emulator at {base}: {e}"))?;
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("reading the answer failed: {e}"))?
        .to_bytes();
    let answer: Value = serde_json::from_slice(&bytes).map_err(|e| {
        format!("the emulator answered {status} with something other than JSON: {e}")
    })?;
    match answer["token"].as_str() {
        Some(token) if status.is_success() => Ok(format!("{token}\n")),
        _ => Err(answer["error"]["message"]
            .as_str()
            .unwrap_or("the emulator refused the request")
            .to_string()),
    }
}
