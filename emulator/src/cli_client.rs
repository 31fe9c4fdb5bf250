//! The one HTTP call the emulator's client subcommands (`logs`, `print-identity-token`) make to
//! a running emulator: POST a JSON body, get Google's JSON answer or its error message.

use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// The emulator a client subcommand asks: `--emulator URL` (or its env var), else `--listen`.
pub fn emulator_base(emulator: Option<&str>, listen: &str) -> String {
    emulator
        .map(str::to_string)
        .unwrap_or_else(|| format!("http://{listen}"))
        .trim_end_matches('/')
        .to_string()
}

/// Posts `body` to `base` + `path`; a non-2xx answer becomes its Google error message.
pub async fn post_json(base: &str, path: &str, body: &Value) -> Result<Value, String> {
    let request = Request::post(format!("{base}{path}"))
        .header("content-type", "application/json")
        .body(Full::new(bytes::Bytes::from(body.to_string())))
        .map_err(|e| format!("bad emulator URL {base}{path}: {e}"))?;
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
    if status.is_success() {
        Ok(answer)
    } else {
        Err(answer["error"]["message"]
            .as_str()
            .unwrap_or("the emulator refused the request")
            .to_string())
    }
}
