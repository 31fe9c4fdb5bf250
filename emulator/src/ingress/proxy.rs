//! One request through a service's URL: the access check, the choice of a revision, the
//! forwarding itself, and the request log entry written once the response is done.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::http::uri::{self, Scheme};
use hyper::{Request, Response, StatusCode, Uri, Version};
use rand::Rng;

use super::access::{self, Denial};
use super::{Backend, Route, Shared};
use crate::state::logs::{HttpRequest, LogEntry, Payload, REQUESTS_LOG, Severity};

/// The header Cloud Run's front end sets to carry the trace of a request.
const TRACE_CONTEXT: &str = "x-cloud-trace-context";

/// Headers that describe one connection, not the request, so a proxy never forwards them.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Answers one request that reached a service's listener from `peer`.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    route: Arc<Route>,
    peer: SocketAddr,
    mut request: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let trace_id = ensure_trace_context(request.headers_mut());
    let log = RequestLog::begin(&shared, &route, peer, &request, &trace_id);

    let issuer = || shared.store.token_issuer().ok();
    if let Err(denial) = access::check(&route.access, request.headers(), issuer) {
        return Ok(refuse(denial, request.uri().path(), log));
    }
    let Some(index) = route.pick() else {
        return Ok(text(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service Unavailable\n",
            log.with_message("The service has no revision serving traffic."),
        ));
    };
    let log = log.with_backend(index);
    let backend = &route.backends[index];
    let request = forward_request(request, backend, peer);
    match shared.client.request(request).await {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            // The client's connection is ours, not the backend's: an HTTP/1.0 backend must not
            // make the ingress close a keep-alive connection after every request.
            parts.version = Version::HTTP_11;
            strip_hop_by_hop(&mut parts.headers);
            let log = log.with_status(parts.status);
            Ok(Response::from_parts(parts, ProxyBody::stream(body, log)))
        }
        Err(error) => {
            let why = if error.is_connect() {
                "the revision's container refused the connection"
            } else {
                "the connection to the revision's container failed"
            };
            tracing::debug!(revision = %backend.revision, addr = %backend.addr, %error, "{why}");
            Ok(text(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("Service Unavailable: {why}.\n"),
                log.with_message(&format!("The request failed because {why}.")),
            ))
        }
    }
}

/// Rewrites a request for a backend: absolute URI, no hop-by-hop headers, forwarding headers.
fn forward_request(
    request: Request<Incoming>,
    backend: &Backend,
    peer: SocketAddr,
) -> Request<Incoming> {
    let (mut parts, body) = request.into_parts();
    let mut uri = uri::Parts::default();
    uri.scheme = Some(Scheme::HTTP);
    uri.authority = Some(backend.authority.clone());
    uri.path_and_query = parts.uri.path_and_query().cloned();
    if let Ok(absolute) = Uri::from_parts(uri) {
        parts.uri = absolute;
    }
    parts.version = Version::HTTP_11;
    strip_hop_by_hop(&mut parts.headers);
    add_forwarding(&mut parts.headers, peer);
    Request::from_parts(parts, body)
}

/// Removes the hop-by-hop headers and those the `Connection` header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
}

/// `X-Forwarded-For`, `X-Forwarded-Proto` and `Forwarded`, as a front end sets them.
fn add_forwarding(headers: &mut HeaderMap, peer: SocketAddr) {
    let ip = peer.ip();
    let appended = |existing: Option<&HeaderValue>, value: String| -> Option<HeaderValue> {
        let value = match existing.and_then(|v| v.to_str().ok()) {
            Some(before) if !before.is_empty() => format!("{before}, {value}"),
            _ => value,
        };
        HeaderValue::from_str(&value).ok()
    };
    if let Some(value) = appended(headers.get("x-forwarded-for"), ip.to_string()) {
        headers.insert("x-forwarded-for", value);
    }
    headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    let node = if ip.is_ipv6() {
        format!("for=\"[{ip}]\";proto=http")
    } else {
        format!("for=\"{ip}\";proto=http")
    };
    if let Some(value) = appended(headers.get(header::FORWARDED), node) {
        headers.insert(header::FORWARDED, value);
    }
}

/// Keeps the caller's `X-Cloud-Trace-Context` or starts a trace; returns the trace id.
fn ensure_trace_context(headers: &mut HeaderMap) -> String {
    if let Some(existing) = headers.get(TRACE_CONTEXT).and_then(|v| v.to_str().ok()) {
        let id = existing.split('/').next().unwrap_or("");
        if !id.is_empty() {
            return id.to_string();
        }
    }
    let mut rng = rand::rng();
    let trace_id = format!("{:032x}", rng.random::<u128>());
    let span: u64 = rng.random_range(1..=u64::MAX >> 1);
    if let Ok(value) = HeaderValue::from_str(&format!("{trace_id}/{span};o=1")) {
        headers.insert(TRACE_CONTEXT, value);
    }
    trace_id
}

fn refuse(denial: Denial, path: &str, log: RequestLog) -> Response<ProxyBody> {
    let (content_type, body) = denial.body(path);
    let log = log
        .with_status(denial.status())
        .with_message(denial.log_message());
    let mut response = Response::new(ProxyBody::full(Bytes::from(body), log));
    *response.status_mut() = denial.status();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn text(status: StatusCode, body: &str, log: RequestLog) -> Response<ProxyBody> {
    let log = log.with_status(status);
    let mut response = Response::new(ProxyBody::full(Bytes::from(body.to_string()), log));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// What the `run.googleapis.com/requests` entry of a request will say, written when the
/// response body is done (or dropped) so that latency and size cover the whole response.
#[derive(Debug)]
pub(crate) struct RequestLog {
    shared: Arc<Shared>,
    route: Arc<Route>,
    backend: Option<usize>,
    started: Instant,
    timestamp: DateTime<Utc>,
    method: String,
    url: String,
    user_agent: Option<String>,
    remote_ip: String,
    request_size: Option<i64>,
    status: StatusCode,
    trace_id: String,
    message: Option<String>,
}

impl RequestLog {
    fn begin(
        shared: &Arc<Shared>,
        route: &Arc<Route>,
        peer: SocketAddr,
        request: &Request<Incoming>,
        trace_id: &str,
    ) -> RequestLog {
        let headers = request.headers();
        let text = |name: header::HeaderName| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let path = request
            .uri()
            .path_and_query()
            .map_or("/", uri::PathAndQuery::as_str);
        RequestLog {
            shared: Arc::clone(shared),
            route: Arc::clone(route),
            backend: None,
            started: Instant::now(),
            timestamp: Utc::now(),
            method: request.method().as_str().to_string(),
            url: format!("http://{host}{path}"),
            user_agent: text(header::USER_AGENT),
            remote_ip: peer.ip().to_string(),
            request_size: text(header::CONTENT_LENGTH).and_then(|n| n.parse().ok()),
            status: StatusCode::OK,
            trace_id: trace_id.to_string(),
            message: None,
        }
    }

    fn with_backend(mut self, index: usize) -> Self {
        self.backend = Some(index);
        self
    }

    fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    fn with_message(mut self, message: &str) -> Self {
        self.message = Some(message.to_string());
        self
    }

    /// Appends the entry to the log store.
    fn finish(self, response_size: u64) {
        let mut resource = (*self.route.resource).clone();
        if let Some(backend) = self.backend.and_then(|i| self.route.backends.get(i)) {
            resource.revision.clone_from(&backend.revision);
        }
        let mut entry = LogEntry::new(
            resource.log_name(REQUESTS_LOG),
            resource.resource(),
            self.timestamp,
        );
        entry.severity = Severity::for_status(self.status.as_u16());
        entry.trace = Some(format!(
            "projects/{}/traces/{}",
            resource.project_id, self.trace_id
        ));
        entry.payload = self.message.map(Payload::Text);
        entry.http_request = Some(HttpRequest {
            request_method: Some(self.method),
            request_url: Some(self.url),
            request_size: self.request_size,
            status: Some(i32::from(self.status.as_u16())),
            response_size: i64::try_from(response_size).ok(),
            user_agent: self.user_agent,
            remote_ip: Some(self.remote_ip),
            latency: Some(self.started.elapsed()),
            protocol: Some("HTTP/1.1".to_string()),
            ..HttpRequest::default()
        });
        self.shared.store.logs().append(entry);
    }
}

/// A response body: the backend's, streamed, or one the ingress wrote; either way it writes the
/// request log entry when it ends.
#[derive(Debug)]
pub(crate) struct ProxyBody {
    inner: Inner,
    sent: u64,
    log: Option<RequestLog>,
}

#[derive(Debug)]
enum Inner {
    Full(Option<Bytes>),
    Stream(Incoming),
}

impl ProxyBody {
    /// An answer the ingress wrote itself; it is logged at once, before the caller sees it.
    fn full(bytes: Bytes, log: RequestLog) -> Self {
        log.finish(bytes.len() as u64);
        Self {
            inner: Inner::Full(Some(bytes)),
            sent: 0,
            log: None,
        }
    }

    fn stream(body: Incoming, log: RequestLog) -> Self {
        Self {
            inner: Inner::Stream(body),
            sent: 0,
            log: Some(log),
        }
    }

    fn finish(&mut self) {
        if let Some(log) = self.log.take() {
            log.finish(self.sent);
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = match &mut this.inner {
            Inner::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Inner::Stream(body) => Pin::new(body).poll_frame(cx),
        };
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.sent += data.len() as u64;
                }
            }
            Poll::Ready(None) => this.finish(),
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Full(bytes) => bytes.is_none(),
            Inner::Stream(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            Inner::Stream(body) => body.size_hint(),
        }
    }
}

impl Drop for ProxyBody {
    fn drop(&mut self) {
        self.finish();
    }
}
