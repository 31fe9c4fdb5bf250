//! Cloud Logging v2 messages as JSON, and their mapping to the state layer's log entries.

use std::collections::BTreeMap;

use chrono::Utc;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::state::logs::{self, HttpRequest, LogEntry, Payload, Resource, Severity};
use crate::wire;

/// `ListLogEntriesRequest`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListRequest {
    #[serde(default)]
    pub resource_names: Vec<String>,
    /// The deprecated form of `resourceNames`.
    #[serde(default)]
    pub project_ids: Vec<String>,
    #[serde(default)]
    pub filter: String,
    #[serde(default)]
    pub order_by: String,
    #[serde(default)]
    pub page_size: Option<i64>,
    #[serde(default)]
    pub page_token: Option<String>,
}

/// `WriteLogEntriesRequest`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WriteRequest {
    #[serde(default)]
    pub log_name: Option<String>,
    #[serde(default)]
    pub resource: Option<ResourceJson>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub entries: Vec<EntryJson>,
    /// Accepted; a request is all or nothing either way.
    #[serde(default, rename = "partialSuccess")]
    _partial_success: Option<IgnoredAny>,
    #[serde(default)]
    pub dry_run: bool,
}

/// `MonitoredResource`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceJson {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A `LogEntry` as a client writes it; fields the emulator does not keep are accepted.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntryJson {
    #[serde(default)]
    pub log_name: Option<String>,
    #[serde(default)]
    pub resource: Option<ResourceJson>,
    #[serde(default)]
    pub timestamp: Option<String>,
    #[serde(default)]
    pub severity: Option<Value>,
    #[serde(default)]
    pub insert_id: Option<String>,
    #[serde(default)]
    pub http_request: Option<Value>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub text_payload: Option<String>,
    #[serde(default)]
    pub json_payload: Option<Map<String, Value>>,
    #[serde(default)]
    pub proto_payload: Option<Map<String, Value>>,
    #[serde(default)]
    pub trace: Option<String>,
    #[serde(default)]
    pub span_id: Option<String>,
    #[serde(default)]
    pub source_location: Option<Value>,
}

impl WriteRequest {
    /// The entries to append, each completed with the request's defaults and validated.
    pub fn into_entries(self) -> Result<Vec<LogEntry>, ApiError> {
        let received = Utc::now();
        let mut out = Vec::with_capacity(self.entries.len());
        for (i, entry) in self.entries.into_iter().enumerate() {
            let field = |name: &str| format!("entries[{i}].{name}");
            let log_name = entry
                .log_name
                .or_else(|| self.log_name.clone())
                .ok_or_else(|| {
                    ApiError::invalid(format!("{}: a log name is required.", field("log_name")))
                })?;
            logs::check_log_name(&log_name)?;
            let resource = entry
                .resource
                .or_else(|| self.resource.clone())
                .filter(|r| !r.kind.is_empty())
                .ok_or_else(|| {
                    ApiError::invalid(format!(
                        "{}: a monitored resource is required.",
                        field("resource")
                    ))
                })?;
            let timestamp = match &entry.timestamp {
                Some(text) => wire::parse_timestamp(&field("timestamp"), text)?,
                None => received,
            };
            let mut out_entry = LogEntry::new(
                log_name,
                Resource {
                    kind: resource.kind,
                    labels: resource.labels,
                },
                timestamp,
            );
            out_entry.receive_timestamp = received;
            out_entry.insert_id = entry.insert_id.unwrap_or_default();
            out_entry.severity = match &entry.severity {
                None | Some(Value::Null) => Some(Severity::Default),
                Some(Value::String(s)) => Severity::parse(s),
                Some(Value::Number(n)) => Severity::parse(&n.to_string()),
                Some(_) => None,
            }
            .ok_or_else(|| {
                ApiError::invalid(format!(
                    "Invalid value at '{}' (type.googleapis.com/google.logging.type.LogSeverity)",
                    field("severity")
                ))
            })?;
            out_entry.labels = self.labels.clone();
            out_entry.labels.extend(entry.labels);
            out_entry.http_request = match &entry.http_request {
                None => None,
                Some(value) => Some(HttpRequest::from_json(value).ok_or_else(|| {
                    ApiError::invalid(format!(
                        "Invalid value at '{}' (type.googleapis.com/google.logging.type.HttpRequest)",
                        field("http_request")
                    ))
                })?),
            };
            out_entry.payload = match (entry.text_payload, entry.json_payload, entry.proto_payload)
            {
                (Some(text), None, None) => Some(Payload::Text(text)),
                (None, Some(object), None) | (None, None, Some(object)) => {
                    Some(Payload::Json(object))
                }
                (None, None, None) => None,
                _ => {
                    return Err(ApiError::invalid(format!(
                        "entries[{i}]: at most one of textPayload, jsonPayload and protoPayload \
                         may be set."
                    )));
                }
            };
            out_entry.trace = entry.trace;
            out_entry.span_id = entry.span_id;
            out_entry.source_location = entry.source_location;
            out.push(out_entry);
        }
        Ok(out)
    }
}

/// A `LogEntry` as Google writes it.
pub fn entry_json(entry: &LogEntry) -> Value {
    let mut out = json!({
        "insertId": entry.insert_id,
        "logName": entry.log_name,
        "resource": {"type": entry.resource.kind},
        "timestamp": wire::timestamp(entry.timestamp),
        "receiveTimestamp": wire::timestamp(entry.receive_timestamp),
    });
    if !entry.resource.labels.is_empty() {
        out["resource"]["labels"] = json!(entry.resource.labels);
    }
    if !entry.labels.is_empty() {
        out["labels"] = json!(entry.labels);
    }
    if entry.severity != Severity::Default {
        out["severity"] = json!(entry.severity.as_str());
    }
    match &entry.payload {
        Some(Payload::Text(text)) => out["textPayload"] = json!(text),
        Some(Payload::Json(object)) => out["jsonPayload"] = Value::Object(object.clone()),
        None => {}
    }
    if let Some(request) = &entry.http_request {
        out["httpRequest"] = http_request_json(request);
    }
    if let Some(trace) = &entry.trace {
        out["trace"] = json!(trace);
    }
    if let Some(span) = &entry.span_id {
        out["spanId"] = json!(span);
    }
    if let Some(location) = &entry.source_location {
        out["sourceLocation"] = location.clone();
    }
    out
}

fn http_request_json(request: &HttpRequest) -> Value {
    let mut out = Map::new();
    let mut text = |key: &str, value: &Option<String>| {
        if let Some(value) = value {
            out.insert(key.to_string(), json!(value));
        }
    };
    text("requestMethod", &request.request_method);
    text("requestUrl", &request.request_url);
    text("userAgent", &request.user_agent);
    text("remoteIp", &request.remote_ip);
    text("serverIp", &request.server_ip);
    text("referer", &request.referer);
    text("protocol", &request.protocol);
    // int64 travels as a string, int32 as a number.
    if let Some(size) = request.request_size {
        out.insert("requestSize".into(), json!(size.to_string()));
    }
    if let Some(size) = request.response_size {
        out.insert("responseSize".into(), json!(size.to_string()));
    }
    if let Some(status) = request.status {
        out.insert("status".into(), json!(status));
    }
    if let Some(latency) = request.latency {
        out.insert("latency".into(), json!(wire::duration(latency)));
    }
    Value::Object(out)
}
