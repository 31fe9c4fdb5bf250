//! `cloudrun-emulator logs SERVICE`: a client of a running emulator's Cloud Logging API that
//! prints a service's container output, as `gcloud logging read` would find it.

use serde_json::{Value, json};

use crate::cli_client::{emulator_base, post_json};
use crate::config::{Config, LogsArgs};

/// Fetches and formats the newest `args.limit` lines, oldest first.
pub async fn fetch(config: &Config, args: &LogsArgs) -> Result<String, String> {
    let base = emulator_base(args.emulator.as_deref(), &config.listen.to_string());
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
    let answer = post_json(&base, "/v2/entries:list", &body).await?;
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
