//! Log entries of Cloud Run revisions, kept in memory for `gcloud logging read`.
//!
//! [`LogStore`] is a bounded ring (the oldest entries fall out first) that answers
//! `entries.list` queries: a scope of projects, a [`Filter`] in Cloud Logging's syntax, an
//! [`Order`] and a page. [`container_line`] turns one line a container printed into the entry
//! Cloud Run's logging agent would write, and [`RunResource`] names the `cloud_run_revision`
//! resource the ingress and the runtime log against.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde_json::{Map, Value};

use super::filter::{Filter, Filterable, Op, snake_case};
use super::page::{Page, PageRequest, paginate};
use super::{StateError, StateResult};

/// How many entries the store keeps before it drops the oldest.
pub const CAPACITY: usize = 100_000;

/// `entries.list` pages: the default and the most a client may ask for.
const DEFAULT_PAGE_SIZE: usize = 50;
const MAX_PAGE_SIZE: usize = 1000;

/// The standard log of a container's stdout, as a log id (before escaping).
pub const STDOUT_LOG: &str = "run.googleapis.com/stdout";
/// The standard log of a container's stderr.
pub const STDERR_LOG: &str = "run.googleapis.com/stderr";
/// The log of requests the ingress served or refused.
pub const REQUESTS_LOG: &str = "run.googleapis.com/requests";
/// Cloud Run's platform log: probe failures and instances that stopped.
pub const SYSTEM_LOG: &str = "run.googleapis.com/varlog/system";

/// `LogSeverity`, ordered so that `severity>=ERROR` compares as Cloud Logging does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    #[default]
    Default,
    Debug,
    Info,
    Notice,
    Warning,
    Error,
    Critical,
    Alert,
    Emergency,
}

impl Severity {
    const ALL: [Severity; 9] = [
        Severity::Default,
        Severity::Debug,
        Severity::Info,
        Severity::Notice,
        Severity::Warning,
        Severity::Error,
        Severity::Critical,
        Severity::Alert,
        Severity::Emergency,
    ];

    /// The name Google writes, e.g. `ERROR`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Default => "DEFAULT",
            Severity::Debug => "DEBUG",
            Severity::Info => "INFO",
            Severity::Notice => "NOTICE",
            Severity::Warning => "WARNING",
            Severity::Error => "ERROR",
            Severity::Critical => "CRITICAL",
            Severity::Alert => "ALERT",
            Severity::Emergency => "EMERGENCY",
        }
    }

    /// The enum's number (`ERROR` is 500), which is also how filters compare severities.
    pub fn number(self) -> u16 {
        match self {
            Severity::Default => 0,
            Severity::Debug => 100,
            Severity::Info => 200,
            Severity::Notice => 300,
            Severity::Warning => 400,
            Severity::Error => 500,
            Severity::Critical => 600,
            Severity::Alert => 700,
            Severity::Emergency => 800,
        }
    }

    /// A severity by name (any case, `WARN` too, as the logging agent accepts) or by number.
    pub fn parse(text: &str) -> Option<Severity> {
        let text = text.trim();
        if let Ok(number) = text.parse::<u16>() {
            return Self::ALL.into_iter().find(|s| s.number() == number);
        }
        let upper = text.to_ascii_uppercase();
        match upper.as_str() {
            "WARN" => Some(Severity::Warning),
            "FATAL" => Some(Severity::Critical),
            _ => Self::ALL.into_iter().find(|s| s.as_str() == upper),
        }
    }

    /// The severity Cloud Run gives a request log entry with this HTTP status.
    pub fn for_status(status: u16) -> Severity {
        match status {
            500.. => Severity::Error,
            400.. => Severity::Warning,
            _ => Severity::Info,
        }
    }
}

/// A monitored resource: its type (`cloud_run_revision`) and labels.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resource {
    pub kind: String,
    pub labels: BTreeMap<String, String>,
}

/// What an entry carries: a line of text or a JSON object.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    Text(String),
    Json(Map<String, Value>),
}

/// `HttpRequest`: the request a request-log entry describes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpRequest {
    pub request_method: Option<String>,
    pub request_url: Option<String>,
    pub request_size: Option<i64>,
    pub status: Option<i32>,
    pub response_size: Option<i64>,
    pub user_agent: Option<String>,
    pub remote_ip: Option<String>,
    pub server_ip: Option<String>,
    pub referer: Option<String>,
    pub latency: Option<Duration>,
    pub protocol: Option<String>,
}

impl HttpRequest {
    /// Reads an `httpRequest` object as Google's JSON writes it (int64 as strings or numbers,
    /// latency as `"0.25s"`); `None` when it is not an object or a field has the wrong type.
    pub fn from_json(value: &Value) -> Option<HttpRequest> {
        let object = value.as_object()?;
        let text = |key: &str| -> Option<Option<String>> {
            match object.get(key) {
                None | Some(Value::Null) => Some(None),
                Some(Value::String(s)) => Some(Some(s.clone())),
                Some(_) => None,
            }
        };
        let int = |key: &str| -> Option<Option<i64>> {
            match object.get(key) {
                None | Some(Value::Null) => Some(None),
                Some(Value::Number(n)) => n.as_i64().map(Some),
                Some(Value::String(s)) => s.parse().ok().map(Some),
                Some(_) => None,
            }
        };
        let latency = match object.get("latency") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(parse_seconds(s)?),
            Some(_) => return None,
        };
        Some(HttpRequest {
            request_method: text("requestMethod")?,
            request_url: text("requestUrl")?,
            request_size: int("requestSize")?,
            status: int("status")?.and_then(|s| i32::try_from(s).ok()),
            response_size: int("responseSize")?,
            user_agent: text("userAgent")?,
            remote_ip: text("remoteIp")?,
            server_ip: text("serverIp")?,
            referer: text("referer")?,
            latency,
            protocol: text("protocol")?,
        })
    }
}

/// A `google.protobuf.Duration` in JSON (`"1.5s"`).
fn parse_seconds(text: &str) -> Option<Duration> {
    let seconds: f64 = text.strip_suffix('s')?.parse().ok()?;
    Duration::try_from_secs_f64(seconds).ok()
}

/// One `LogEntry`.
#[derive(Debug, Clone, PartialEq)]
pub struct LogEntry {
    /// Unique in the store; [`LogStore::append`] assigns one when empty.
    pub insert_id: String,
    /// `projects/P/logs/LOG_ID` with the log id URL-encoded (`run.googleapis.com%2Fstdout`).
    pub log_name: String,
    pub resource: Resource,
    pub labels: BTreeMap<String, String>,
    pub timestamp: DateTime<Utc>,
    pub receive_timestamp: DateTime<Utc>,
    pub severity: Severity,
    pub payload: Option<Payload>,
    pub http_request: Option<HttpRequest>,
    /// `projects/P/traces/TRACE_ID`.
    pub trace: Option<String>,
    pub span_id: Option<String>,
    pub source_location: Option<Value>,
}

impl LogEntry {
    /// An entry in `log_name` about `resource`, at `timestamp`, with nothing else set.
    pub fn new(log_name: String, resource: Resource, timestamp: DateTime<Utc>) -> LogEntry {
        LogEntry {
            insert_id: String::new(),
            log_name,
            resource,
            labels: BTreeMap::new(),
            timestamp,
            receive_timestamp: Utc::now(),
            severity: Severity::Default,
            payload: None,
            http_request: None,
            trace: None,
            span_id: None,
            source_location: None,
        }
    }

    /// The project the entry's log belongs to, as its name writes it (id or number).
    pub fn project(&self) -> &str {
        self.log_name
            .strip_prefix("projects/")
            .and_then(|rest| rest.split('/').next())
            .unwrap_or("")
    }
}

/// `projects/P/logs/ID` with the id URL-encoded as Cloud Logging writes log names.
pub fn log_name(project: &str, log_id: &str) -> String {
    let mut name = format!("projects/{project}/logs/");
    for byte in log_id.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-') {
            name.push(char::from(byte));
        } else {
            name.push_str(&format!("%{byte:02X}"));
        }
    }
    name
}

/// Checks a log name as `entries.write` receives it: `projects/P/logs/LOG_ID`.
pub fn check_log_name(name: &str) -> StateResult<()> {
    let valid = name
        .strip_prefix("projects/")
        .and_then(|rest| rest.split_once("/logs/"))
        .is_some_and(|(project, id)| {
            !project.is_empty()
                && !project.contains('/')
                && !id.is_empty()
                && id.len() <= 512
                && id.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-' | b'.' | b'%')
                })
        });
    if valid {
        Ok(())
    } else {
        Err(StateError::invalid(format!(
            "Invalid log name [{name}]: expected projects/[PROJECT_ID]/logs/[LOG_ID]."
        )))
    }
}

/// The Cloud Run revision an entry is about: the `cloud_run_revision` resource and its project.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunResource {
    /// The project id (not the number), as Cloud Run's logs name it.
    pub project_id: String,
    /// The region, e.g. `us-central1`.
    pub location: String,
    pub service: String,
    /// The revision; empty when the request never reached one (the label is then left out).
    pub revision: String,
}

impl RunResource {
    /// The monitored resource, labelled as Cloud Run labels it.
    pub fn resource(&self) -> Resource {
        let mut labels = BTreeMap::from([
            ("project_id".to_string(), self.project_id.clone()),
            ("service_name".to_string(), self.service.clone()),
            ("configuration_name".to_string(), self.service.clone()),
            ("location".to_string(), self.location.clone()),
        ]);
        if !self.revision.is_empty() {
            labels.insert("revision_name".to_string(), self.revision.clone());
        }
        Resource {
            kind: "cloud_run_revision".to_string(),
            labels,
        }
    }

    /// The full name of one of this project's logs, e.g. [`STDOUT_LOG`].
    pub fn log_name(&self, log_id: &str) -> String {
        log_name(&self.project_id, log_id)
    }
}

/// Which output stream a container line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// The entry Cloud Run writes for one line of container output (without its newline).
///
/// A line holding one JSON object becomes `jsonPayload`, with `severity`, `httpRequest`,
/// `time`/`timestamp` and the `logging.googleapis.com/*` keys lifted into the entry; `message`
/// stays in the payload. Any other line becomes `textPayload` with no severity.
pub fn container_line(
    revision: &RunResource,
    instance_id: &str,
    stream: Stream,
    line: &str,
    at: DateTime<Utc>,
) -> LogEntry {
    let log_id = match stream {
        Stream::Stdout => STDOUT_LOG,
        Stream::Stderr => STDERR_LOG,
    };
    let mut entry = LogEntry::new(revision.log_name(log_id), revision.resource(), at);
    entry.receive_timestamp = at;
    if !instance_id.is_empty() {
        entry
            .labels
            .insert("instanceId".to_string(), instance_id.to_string());
    }
    let line = line.trim_end_matches(['\r', '\n']);
    match serde_json::from_str::<Value>(line) {
        Ok(Value::Object(object)) => lift_special_keys(&mut entry, object),
        _ => entry.payload = Some(Payload::Text(line.to_string())),
    }
    entry
}

/// The entry Cloud Run writes to its system log about one instance, e.g. why it stopped.
pub fn system_line(
    revision: &RunResource,
    instance_id: &str,
    severity: Severity,
    message: &str,
) -> LogEntry {
    let now = Utc::now();
    let mut entry = LogEntry::new(revision.log_name(SYSTEM_LOG), revision.resource(), now);
    entry.receive_timestamp = now;
    entry.severity = severity;
    entry
        .labels
        .insert("instanceId".to_string(), instance_id.to_string());
    entry.payload = Some(Payload::Text(message.to_string()));
    entry
}

/// Moves the keys the logging agent understands out of a structured line into the entry.
fn lift_special_keys(entry: &mut LogEntry, mut object: Map<String, Value>) {
    if let Some(severity) = object.get("severity") {
        let parsed = match severity {
            Value::String(s) => Severity::parse(s),
            Value::Number(n) => n.as_u64().and_then(|n| Severity::parse(&n.to_string())),
            _ => None,
        };
        if let Some(severity) = parsed {
            entry.severity = severity;
            object.remove("severity");
        }
    }
    if let Some(request) = object.get("httpRequest").and_then(HttpRequest::from_json) {
        entry.http_request = Some(request);
        object.remove("httpRequest");
    }
    for key in ["timestamp", "time"] {
        if let Some(time) = object.get(key).and_then(json_time) {
            entry.timestamp = time;
            object.remove(key);
            break;
        }
    }
    if let Some(Value::String(trace)) = object.remove("logging.googleapis.com/trace") {
        entry.trace = Some(trace);
    }
    if let Some(Value::String(span)) = object.remove("logging.googleapis.com/spanId") {
        entry.span_id = Some(span);
    }
    if let Some(Value::Object(labels)) = object.remove("logging.googleapis.com/labels") {
        for (key, value) in labels {
            let value = match value {
                Value::String(s) => s,
                other => other.to_string(),
            };
            entry.labels.insert(key, value);
        }
    }
    if let Some(location) = object.remove("logging.googleapis.com/sourceLocation") {
        entry.source_location = Some(location);
    }
    if let Some(Value::String(id)) = object.remove("logging.googleapis.com/insertId") {
        entry.insert_id = id;
    }
    entry.payload = Some(Payload::Json(object));
}

/// `"2024-01-01T00:00:00Z"` or `{"seconds": S, "nanos": N}`.
fn json_time(value: &Value) -> Option<DateTime<Utc>> {
    match value {
        Value::String(s) => DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.with_timezone(&Utc)),
        Value::Object(o) => {
            let seconds = o.get("seconds")?.as_i64()?;
            let nanos = o.get("nanos").and_then(Value::as_u64).unwrap_or(0);
            DateTime::from_timestamp(seconds, u32::try_from(nanos).ok()?)
        }
        _ => None,
    }
}

/// The order `entries.list` returns entries in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Order {
    /// Oldest first, the API's default.
    #[default]
    Ascending,
    /// Newest first, what `gcloud logging read` asks for.
    Descending,
}

impl Order {
    /// Parses `orderBy`: empty, `timestamp asc` or `timestamp desc`.
    pub fn parse(text: &str) -> StateResult<Order> {
        let words: Vec<&str> = text.split_whitespace().collect();
        match words.as_slice() {
            [] | ["timestamp"] | ["timestamp", "asc"] => Ok(Order::Ascending),
            ["timestamp", "desc"] => Ok(Order::Descending),
            _ => Err(StateError::invalid(format!(
                "Invalid orderBy [{text}]: only \"timestamp asc\" and \"timestamp desc\" are \
                 supported."
            ))),
        }
    }
}

/// The log entries the emulator keeps: the newest [`CAPACITY`] entries, in arrival order.
#[derive(Debug)]
pub struct LogStore {
    ring: Mutex<Ring>,
}

#[derive(Debug)]
struct Ring {
    entries: VecDeque<Stored>,
    next: u64,
    capacity: usize,
}

#[derive(Debug)]
struct Stored {
    seq: u64,
    entry: LogEntry,
}

impl Default for LogStore {
    fn default() -> Self {
        Self::with_capacity(CAPACITY)
    }
}

impl LogStore {
    /// A store that keeps at most `capacity` entries.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            ring: Mutex::new(Ring {
                entries: VecDeque::new(),
                next: 0,
                capacity: capacity.max(1),
            }),
        }
    }

    /// Adds an entry, dropping the oldest when full; gives it an insert id if it has none.
    pub fn append(&self, mut entry: LogEntry) {
        let mut ring = self.ring.lock();
        let seq = ring.next;
        ring.next += 1;
        if entry.insert_id.is_empty() {
            entry.insert_id = format!("{:08x}{:012x}", entry.timestamp.timestamp(), seq);
        }
        if ring.entries.len() >= ring.capacity {
            ring.entries.pop_front();
        }
        ring.entries.push_back(Stored { seq, entry });
    }

    /// How many entries the store holds.
    pub fn len(&self) -> usize {
        self.ring.lock().entries.len()
    }

    /// Whether the store holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// One page of the entries of `projects` (ids or numbers, as log names write them) that
    /// match `filter`, ordered by timestamp (ties in arrival order).
    pub fn query(
        &self,
        projects: &[String],
        filter: &Filter,
        order: Order,
        page: &PageRequest,
    ) -> StateResult<Page<LogEntry>> {
        let filter = severity_as_numbers(filter)?;
        let ring = self.ring.lock();
        let mut matched: Vec<&Stored> = ring
            .entries
            .iter()
            .filter(|s| projects.iter().any(|p| p == s.entry.project()))
            .filter(|s| filter.matches(&s.entry))
            .collect();
        matched.sort_by(|a, b| {
            let by_time = a
                .entry
                .timestamp
                .cmp(&b.entry.timestamp)
                .then(a.seq.cmp(&b.seq));
            match order {
                Order::Ascending => by_time,
                Order::Descending => by_time.reverse(),
            }
        });
        let keyed = matched
            .into_iter()
            .map(|s| (s.seq.to_string(), s))
            .collect();
        let page = paginate(keyed, page, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)?;
        Ok(Page {
            items: page.items.into_iter().map(|s| s.entry.clone()).collect(),
            next_token: page.next_token,
            total: page.total,
        })
    }
}

/// Rewrites comparisons on `severity` to compare the enum's numbers, so `severity>=ERROR` works.
fn severity_as_numbers(filter: &Filter) -> StateResult<Filter> {
    let rewrite = |inner: &Filter| severity_as_numbers(inner).map(Box::new);
    Ok(match filter {
        Filter::And(a, b) => Filter::And(rewrite(a)?, rewrite(b)?),
        Filter::Or(a, b) => Filter::Or(rewrite(a)?, rewrite(b)?),
        Filter::Not(inner) => Filter::Not(rewrite(inner)?),
        Filter::Compare { path, op, value }
            if path.len() == 1 && path[0] == "severity" && !(*op == Op::Has && value == "*") =>
        {
            let severity = Severity::parse(value).ok_or_else(|| {
                StateError::invalid(format!(
                    "Invalid filter: [{value}] is not a severity (DEFAULT, DEBUG, INFO, NOTICE, \
                     WARNING, ERROR, CRITICAL, ALERT, EMERGENCY)."
                ))
            })?;
            Filter::Compare {
                path: path.clone(),
                op: if *op == Op::Has { Op::Eq } else { *op },
                value: severity.number().to_string(),
            }
        }
        Filter::Compare { value, .. } if value.starts_with('~') => {
            return Err(StateError::invalid(
                "Invalid filter: the regular expression operators =~ and !~ are not supported \
                 by the emulator.",
            ));
        }
        other => other.clone(),
    })
}

impl Filterable for LogEntry {
    fn values(&self, path: &[&str]) -> Vec<String> {
        let one = |value: &str| vec![value.to_string()];
        let some = |value: &Option<String>| value.iter().cloned().collect();
        match path {
            // A bare word searches the whole entry.
            ["name"] => self.searchable_text(),
            ["log_name"] => vec![self.log_name.clone(), self.log_name.replace("%2F", "/")],
            ["insert_id"] => one(&self.insert_id),
            ["resource", "type"] => one(&self.resource.kind),
            ["resource", "labels"] => self.resource.labels.keys().cloned().collect(),
            ["resource", "labels", key] => self
                .resource
                .labels
                .get(*key)
                .cloned()
                .into_iter()
                .collect(),
            ["labels"] => self.labels.keys().cloned().collect(),
            ["labels", key] => self.labels.get(*key).cloned().into_iter().collect(),
            ["severity"] => vec![self.severity.number().to_string()],
            ["timestamp"] => vec![rfc3339(self.timestamp)],
            ["receive_timestamp"] => vec![rfc3339(self.receive_timestamp)],
            ["trace"] => some(&self.trace),
            ["span_id"] => some(&self.span_id),
            ["text_payload"] => match &self.payload {
                Some(Payload::Text(text)) => one(text),
                _ => vec![],
            },
            ["json_payload", keys @ ..] => match &self.payload {
                Some(Payload::Json(object)) => json_values(object, keys),
                _ => vec![],
            },
            ["http_request", field] => self.http_request_value(field),
            _ => vec![],
        }
    }
}

impl LogEntry {
    fn searchable_text(&self) -> Vec<String> {
        let mut out = vec![self.log_name.clone()];
        match &self.payload {
            Some(Payload::Text(text)) => out.push(text.clone()),
            Some(Payload::Json(object)) => out.push(Value::Object(object.clone()).to_string()),
            None => {}
        }
        out.extend(self.labels.values().cloned());
        out.extend(self.resource.labels.values().cloned());
        if let Some(url) = self
            .http_request
            .as_ref()
            .and_then(|r| r.request_url.clone())
        {
            out.push(url);
        }
        out
    }

    fn http_request_value(&self, field: &str) -> Vec<String> {
        let Some(request) = &self.http_request else {
            return vec![];
        };
        let text = match field {
            "request_method" => request.request_method.clone(),
            "request_url" => request.request_url.clone(),
            "request_size" => request.request_size.map(|n| n.to_string()),
            "status" => request.status.map(|n| n.to_string()),
            "response_size" => request.response_size.map(|n| n.to_string()),
            "user_agent" => request.user_agent.clone(),
            "remote_ip" => request.remote_ip.clone(),
            "server_ip" => request.server_ip.clone(),
            "referer" => request.referer.clone(),
            "latency" => request.latency.map(|d| format!("{}s", d.as_secs_f64())),
            "protocol" => request.protocol.clone(),
            _ => None,
        };
        text.into_iter().collect()
    }
}

fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// The values at `keys` inside a JSON object; filter paths arrive snake_cased, so a key matches
/// as written or snake_cased.
fn json_values(object: &Map<String, Value>, keys: &[&str]) -> Vec<String> {
    let Some((first, rest)) = keys.split_first() else {
        return object.keys().cloned().collect();
    };
    let found = object.get(*first).or_else(|| {
        object
            .iter()
            .find(|(key, _)| snake_case(key) == *first)
            .map(|(_, v)| v)
    });
    match (found, rest.is_empty()) {
        (None, _) => vec![],
        (Some(Value::Object(inner)), false) => json_values(inner, rest),
        (Some(_), false) => vec![],
        (Some(Value::String(s)), true) => vec![s.clone()],
        (Some(Value::Array(items)), true) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect(),
        (Some(Value::Null), true) => vec![],
        (Some(other), true) => vec![other.to_string()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn web() -> RunResource {
        RunResource {
            project_id: "demo-proj".into(),
            location: "us-central1".into(),
            service: "web".into(),
            revision: "web-00001-abc".into(),
        }
    }

    fn at(second: u32) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(&format!("2024-05-01T00:00:{second:02}Z"))
            .expect("valid time")
            .with_timezone(&Utc)
    }

    fn query(store: &LogStore, filter: &str, order: Order) -> Vec<LogEntry> {
        store
            .query(
                &["demo-proj".to_string()],
                &Filter::parse(filter).expect("parses"),
                order,
                &PageRequest::default(),
            )
            .expect("query")
            .items
    }

    fn texts(entries: &[LogEntry]) -> Vec<String> {
        entries
            .iter()
            .map(|e| match &e.payload {
                Some(Payload::Text(t)) => t.clone(),
                Some(Payload::Json(o)) => o["message"].as_str().unwrap_or("").to_string(),
                None => String::new(),
            })
            .collect()
    }

    #[test]
    fn plain_lines_become_text_payload_in_the_stream_log() {
        let entry = container_line(&web(), "inst-1", Stream::Stderr, "boom\n", at(1));
        assert_eq!(
            entry.log_name,
            "projects/demo-proj/logs/run.googleapis.com%2Fstderr"
        );
        assert_eq!(entry.payload, Some(Payload::Text("boom".into())));
        assert_eq!(entry.severity, Severity::Default);
        assert_eq!(entry.resource.kind, "cloud_run_revision");
        assert_eq!(entry.resource.labels["revision_name"], "web-00001-abc");
        assert_eq!(entry.resource.labels["configuration_name"], "web");
        assert_eq!(entry.labels["instanceId"], "inst-1");
    }

    #[test]
    fn json_lines_lift_the_special_keys() {
        let line = r#"{"severity":"warning","message":"slow","time":"2024-05-01T00:00:07Z",
            "httpRequest":{"requestMethod":"GET","status":200,"latency":"0.5s"},
            "logging.googleapis.com/trace":"projects/demo-proj/traces/abc",
            "logging.googleapis.com/labels":{"user":"ann"},"extra":{"n":1}}"#
            .replace('\n', "");
        let entry = container_line(&web(), "i", Stream::Stdout, &line, at(1));
        assert_eq!(entry.severity, Severity::Warning);
        assert_eq!(entry.timestamp, at(7));
        assert_eq!(
            entry.trace.as_deref(),
            Some("projects/demo-proj/traces/abc")
        );
        assert_eq!(entry.labels["user"], "ann");
        let request = entry.http_request.as_ref().expect("lifted");
        assert_eq!(request.status, Some(200));
        assert_eq!(request.latency, Some(Duration::from_millis(500)));
        let Some(Payload::Json(payload)) = &entry.payload else {
            panic!("json payload expected");
        };
        let keys: Vec<&str> = payload.keys().map(String::as_str).collect();
        assert_eq!(keys, ["extra", "message"]);
    }

    #[test]
    fn queries_filter_order_and_page() {
        let store = LogStore::default();
        let mut other = web();
        other.service = "api".into();
        for (second, (revision, line)) in [
            (&web(), "one"),
            (&other, "api line"),
            (&web(), r#"{"severity":"ERROR","message":"two"}"#),
            (
                &web(),
                r#"{"severity":"CRITICAL","message":"three","userId":"u1"}"#,
            ),
        ]
        .into_iter()
        .enumerate()
        {
            let second = u32::try_from(second).expect("small");
            store.append(container_line(
                revision,
                "i",
                Stream::Stdout,
                line,
                at(second),
            ));
        }
        let web_filter = "resource.type=cloud_run_revision AND resource.labels.service_name=web";
        assert_eq!(
            texts(&query(&store, web_filter, Order::Descending)),
            ["three", "two", "one"]
        );
        assert_eq!(
            texts(&query(&store, "severity>=ERROR", Order::Ascending)),
            ["two", "three"]
        );
        assert_eq!(
            texts(&query(&store, "severity=ERROR", Order::Ascending)),
            ["two"]
        );
        assert_eq!(
            texts(&query(&store, "jsonPayload.userId=u1", Order::Ascending)),
            ["three"]
        );
        assert_eq!(
            texts(&query(&store, "textPayload:api", Order::Ascending)),
            ["api line"]
        );
        assert_eq!(
            texts(&query(
                &store,
                "timestamp>=\"2024-05-01T00:00:02Z\"",
                Order::Ascending
            )),
            ["two", "three"]
        );
        assert_eq!(
            query(
                &store,
                "logName=projects/demo-proj/logs/run.googleapis.com%2Fstdout",
                Order::Ascending
            )
            .len(),
            4
        );
        assert!(
            store
                .query(
                    &["other".to_string()],
                    &Filter::All,
                    Order::Ascending,
                    &PageRequest::default()
                )
                .expect("query")
                .items
                .is_empty()
        );

        let mut request = PageRequest {
            size: Some(3),
            token: None,
        };
        let first = store
            .query(
                &["demo-proj".into()],
                &Filter::All,
                Order::Descending,
                &request,
            )
            .expect("page 1");
        assert_eq!(texts(&first.items), ["three", "two", "api line"]);
        request.token = first.next_token;
        let second = store
            .query(
                &["demo-proj".into()],
                &Filter::All,
                Order::Descending,
                &request,
            )
            .expect("page 2");
        assert_eq!(texts(&second.items), ["one"]);
        assert!(second.next_token.is_none());
    }

    #[test]
    fn unknown_severities_and_regexes_are_invalid() {
        let store = LogStore::default();
        for bad in ["severity>=LOUD", "textPayload=~\"a.*\""] {
            let result = store.query(
                &["demo-proj".into()],
                &Filter::parse(bad).expect("parses"),
                Order::Ascending,
                &PageRequest::default(),
            );
            assert!(
                matches!(result, Err(StateError::InvalidArgument(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_ring_keeps_the_newest_entries() {
        let store = LogStore::with_capacity(2);
        for line in ["a", "b", "c"] {
            store.append(container_line(&web(), "i", Stream::Stdout, line, at(1)));
        }
        assert_eq!(store.len(), 2);
        assert_eq!(texts(&query(&store, "", Order::Ascending)), ["b", "c"]);
    }
}
