//! `cloudrun-emulator logs SERVICE`: a client of a running emulator's Cloud Logging API that
//! prints a service's container output, as `gcloud logging read` would find it.

use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

use crate::config::{Config, LogsArgs};

/// Fetches and formats the newest `args.limit` lines, oldest first.
pub async fn fetch(config: &Config, args: &LogsArgs) -> Result<String, String> {
    let base = args
        .emulator
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.listen));
    let mut filter = format!(
        "resource.type=cloud_run_revision AND resource.labels.service_name=\"{}\"",
        args.service
    );
    if let Some(revision) = &args.revision {
        filter.push_str(&format!(
            " AND resource.labels.revision_name=\"{revision}\""
        ));
    }
    let body = json!({
        "resourceNames": [format!("projects/{}", config.project)],
        "filter": filter,
        "orderBy": "timestamp desc",
        "pageSize": args.limit,
    });
    let request = Request::post(format!("{}/v2/entries:list", base.trim_end_matches('/')))
        .header("content-type", "application/json")
        .body(Full::new(bytes::Bytes::from(body.to_string())))
        .map_err(|e| format!("bad emulator URL {base}: {e}"))?;
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
    if !status.is_success() {
        return Err(answer["error"]["message"]
            .as_str()
            .unwrap_or("the emulator refused the request")
            .to_string());
    }
    let mut lines: Vec<String> = answer["entries"]
        .as_array()
        .map(|entries| entries.iter().map(format_entry).collect())
        .unwrap_or_default();
    lines.reverse();
    Ok(lines.concat())
}

fn format_entry(entry: &Value) -> String {
    let revision = entry["resource"]["labels"]["revision_name"]
        .as_str()
        .unwrap_or("-");
    let time = entry["timestamp"].as_str().unwrap_or("");
    let text = match (&entry["textPayload"], &entry["jsonPayload"]) {
        (Value::String(text), _) => text.clone(),
        (_, Value::Object(_)) => entry["jsonPayload"].to_string(),
        _ => entry["httpRequest"].to_string(),
    };
    format!("{time} {revision} {text}\n")
}
