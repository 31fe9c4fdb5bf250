//! A service's logs as a test reads them: every container line and request, oldest first.

use emulator::Store;
use emulator::state::filter::Filter;
use emulator::state::logs::{LogEntry, Order, Payload, Severity};
use emulator::state::page::PageRequest;

/// The log entries of `service` in `project` as text, one line each, oldest first.
pub(crate) fn service_logs(store: &Store, project: &str, service: &str) -> String {
    let text =
        format!("resource.type=cloud_run_revision AND resource.labels.service_name=\"{service}\"");
    let filter = match Filter::parse(&text) {
        Ok(filter) => filter,
        Err(error) => return format!("(cannot filter the logs: {error})\n"),
    };
    let mut out = String::new();
    let mut token = None;
    loop {
        let page = PageRequest {
            size: Some(1000),
            token: token.take(),
        };
        let page =
            match store
                .logs()
                .query(&[project.to_string()], &filter, Order::Ascending, &page)
            {
                Ok(page) => page,
                Err(error) => {
                    out.push_str(&format!("(cannot read the logs: {error})\n"));
                    return out;
                }
            };
        for entry in &page.items {
            out.push_str(&line(entry));
        }
        match page.next_token {
            Some(next) if !next.is_empty() => token = Some(next),
            _ => return out,
        }
    }
}

fn line(entry: &LogEntry) -> String {
    let revision = entry
        .resource
        .labels
        .get("revision_name")
        .map_or("-", String::as_str);
    let time = entry.timestamp.format("%H:%M:%S%.3f");
    let text = match (&entry.payload, &entry.http_request) {
        (Some(Payload::Text(text)), _) => text.clone(),
        (Some(Payload::Json(json)), _) => serde_json::Value::Object(json.clone()).to_string(),
        (None, Some(request)) => format!(
            "{} {} {}",
            request.request_method.as_deref().unwrap_or("-"),
            request.request_url.as_deref().unwrap_or("-"),
            request
                .status
                .map_or_else(|| "-".to_string(), |s| s.to_string()),
        ),
        (None, None) => String::new(),
    };
    match entry.severity {
        Severity::Default => format!("{time} {revision} {text}\n"),
        severity => format!("{time} {revision} {} {text}\n", severity.as_str()),
    }
}
