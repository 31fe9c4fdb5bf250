//! The ingress in front of revision containers: two tiny in-test backends play two revisions,
//! and a plain HTTP client plays the caller of the service URL.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use emulator::Store;
use emulator::ingress::{Access, Ingress, Target};
use emulator::state::filter::Filter;
use emulator::state::logs::{LogEntry, Order, Payload, Severity};
use emulator::state::page::PageRequest;
use serde_json::{Value, json};

const KEY: &str = "projects/demo-proj/locations/us-central1/services/web";

/// A backend that answers every request with what it received, as JSON.
async fn backend(revision: &'static str) -> SocketAddr {
    let app = axum::Router::new()
        .route(
            "/teapot",
            axum::routing::get(|| async {
                (
                    axum::http::StatusCode::IM_A_TEAPOT,
                    [("x-backend", "yes")],
                    "short and stout",
                )
            }),
        )
        .fallback(echo)
        .with_state(revision);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind backend");
    let addr = listener.local_addr().expect("backend addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

async fn echo(State(revision): State<&'static str>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .expect("request body");
    let headers: serde_json::Map<String, Value> = parts
        .headers
        .iter()
        .map(|(name, value)| {
            (
                name.to_string(),
                json!(value.to_str().expect("ascii header")),
            )
        })
        .collect();
    axum::Json(json!({
        "revision": revision,
        "method": parts.method.as_str(),
        "uri": parts.uri.to_string(),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    }))
    .into_response()
}

fn target(revision: &str, addr: SocketAddr, percent: u32) -> Target {
    Target {
        revision: revision.into(),
        addr,
        percent,
    }
}

/// An ingress exposing `web`, public, with all traffic to one backend.
async fn public_service(store: &Store) -> (Ingress, SocketAddr) {
    let ingress = Ingress::new(store.clone());
    let url = ingress.expose(KEY, None).await.expect("expose");
    let backend = backend("web-00001-aaa").await;
    ingress.set_targets(KEY, vec![target("web-00001-aaa", backend, 100)]);
    ingress.set_access(KEY, Access::Public);
    (ingress, url)
}

/// Waits (with a deadline) until the store holds `n` request log entries, newest first.
async fn request_logs(store: &Store, n: usize) -> Vec<LogEntry> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let entries = store
            .logs()
            .query(
                &["demo-proj".to_string()],
                &Filter::parse("logName:requests").expect("filter"),
                Order::Descending,
                &PageRequest::default(),
            )
            .expect("query")
            .items;
        if entries.len() >= n {
            return entries;
        }
        assert!(
            Instant::now() < deadline,
            "expected {n} request log entries, have {}",
            entries.len()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_public_service_forwards_the_request_as_sent() {
    let store = Store::in_memory();
    let (_ingress, url) = public_service(&store).await;

    let response = reqwest::Client::new()
        .put(format!("http://{url}/some/path?x=1&y=two%20words"))
        .header("x-custom", "kept")
        .header("user-agent", "ingress-test/1.0")
        .header("connection", "keep-alive, x-per-hop")
        .header("x-per-hop", "dropped")
        .body("the body")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let echo: Value = response.json().await.expect("json");

    assert_eq!(echo["revision"], "web-00001-aaa");
    assert_eq!(echo["method"], "PUT");
    assert_eq!(echo["uri"], "/some/path?x=1&y=two%20words");
    assert_eq!(echo["body"], "the body");
    let headers = &echo["headers"];
    assert_eq!(headers["x-custom"], "kept");
    assert_eq!(
        headers["host"],
        url.to_string(),
        "the service's host, not the backend's"
    );
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(headers["x-forwarded-proto"], "http");
    assert_eq!(headers["forwarded"], "for=\"127.0.0.1\";proto=http");
    assert!(
        headers["x-cloud-trace-context"]
            .as_str()
            .is_some_and(|t| t.len() > 33)
    );
    assert!(
        headers.get("x-per-hop").is_none(),
        "headers named by Connection are dropped"
    );

    let logged = request_logs(&store, 1).await;
    let entry = &logged[0];
    assert_eq!(
        entry.log_name,
        "projects/demo-proj/logs/run.googleapis.com%2Frequests"
    );
    assert_eq!(entry.resource.kind, "cloud_run_revision");
    assert_eq!(entry.resource.labels["service_name"], "web");
    assert_eq!(entry.resource.labels["revision_name"], "web-00001-aaa");
    assert_eq!(entry.resource.labels["location"], "us-central1");
    assert_eq!(entry.severity, Severity::Info);
    let request = entry.http_request.as_ref().expect("httpRequest");
    assert_eq!(request.request_method.as_deref(), Some("PUT"));
    assert_eq!(
        request.request_url.as_deref(),
        Some(format!("http://{url}/some/path?x=1&y=two%20words").as_str())
    );
    assert_eq!(request.status, Some(200));
    assert_eq!(request.user_agent.as_deref(), Some("ingress-test/1.0"));
    assert_eq!(request.remote_ip.as_deref(), Some("127.0.0.1"));
    assert!(request.latency.is_some());
}

#[tokio::test]
async fn the_backend_answer_comes_back_unchanged() {
    let store = Store::in_memory();
    let (_ingress, url) = public_service(&store).await;

    let response = reqwest::get(format!("http://{url}/teapot"))
        .await
        .expect("request");
    assert_eq!(response.status(), 418);
    assert_eq!(response.headers()["x-backend"], "yes");
    assert_eq!(response.text().await.expect("body"), "short and stout");

    let logged = request_logs(&store, 1).await;
    assert_eq!(logged[0].severity, Severity::Warning);
    let request = logged[0].http_request.as_ref().expect("httpRequest");
    assert_eq!(request.status, Some(418));
    assert_eq!(request.response_size, Some(15));
}

#[tokio::test]
async fn a_private_service_refuses_callers_as_google_front_end_does() {
    let store = Store::in_memory();
    let ingress = Ingress::new(store.clone());
    let url = ingress.expose(KEY, None).await.expect("expose");
    let backend = backend("web-00001-aaa").await;
    ingress.set_targets(KEY, vec![target("web-00001-aaa", backend, 100)]);
    let client = reqwest::Client::new();

    let anonymous = client
        .get(format!("http://{url}/admin/panel?q=1"))
        .send()
        .await
        .expect("request");
    assert_eq!(anonymous.status(), 403);
    assert_eq!(
        anonymous.headers()["content-type"],
        "text/html; charset=UTF-8"
    );
    assert_eq!(
        anonymous.text().await.expect("body"),
        "<html><head>\n<meta http-equiv=\"content-type\" content=\"text/html;charset=utf-8\">\n\
         <title>403 Forbidden</title>\n</head>\n<body text=#000000 bgcolor=#ffffff>\n\
         <h1>Error: Forbidden</h1>\n<h2>Your client does not have permission to get URL \
         <code>/admin/panel</code> from this server.</h2>\n<h2></h2>\n</body></html>"
    );

    for header in ["authorization", "x-serverless-authorization"] {
        let with_token = client
            .get(format!("http://{url}/"))
            .header(header, "Bearer not-a-verified-token")
            .send()
            .await
            .expect("request");
        assert_eq!(with_token.status(), 401, "{header}");
        assert!(
            with_token
                .text()
                .await
                .expect("body")
                .contains("The request was not authorized to invoke this service.")
        );
    }

    let logged = request_logs(&store, 3).await;
    let denied = logged
        .iter()
        .find(|e| e.http_request.as_ref().and_then(|r| r.status) == Some(403))
        .expect("the 403 is logged");
    assert!(matches!(
        &denied.payload,
        Some(Payload::Text(t)) if t.starts_with("The request was not authenticated.")
    ));

    ingress.set_access(KEY, Access::Public);
    let allowed = client
        .get(format!("http://{url}/"))
        .send()
        .await
        .expect("request");
    assert_eq!(allowed.status(), 200, "public once allUsers may invoke");
}

#[tokio::test]
async fn no_target_or_a_dead_backend_is_503() {
    let store = Store::in_memory();
    let ingress = Ingress::new(store.clone());
    let url = ingress.expose(KEY, None).await.expect("expose");
    ingress.set_access(KEY, Access::Public);

    let empty = reqwest::get(format!("http://{url}/"))
        .await
        .expect("request");
    assert_eq!(empty.status(), 503);
    assert_eq!(empty.text().await.expect("body"), "Service Unavailable\n");

    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr")
    };
    ingress.set_targets(KEY, vec![target("web-00002-bbb", dead, 100)]);
    let refused = reqwest::get(format!("http://{url}/"))
        .await
        .expect("request");
    assert_eq!(refused.status(), 503);
    assert!(
        refused
            .text()
            .await
            .expect("body")
            .starts_with("Service Unavailable")
    );

    let logged = request_logs(&store, 2).await;
    assert!(logged.iter().all(|e| e.severity == Severity::Error));
}

#[tokio::test]
async fn traffic_splits_by_weight() {
    let store = Store::in_memory();
    let (ingress, url) = public_service(&store).await;
    let (blue, green) = (
        backend("web-00001-blu").await,
        backend("web-00002-grn").await,
    );
    ingress.set_targets(
        KEY,
        vec![
            target("web-00001-blu", blue, 80),
            target("web-00002-grn", green, 20),
        ],
    );

    let client = reqwest::Client::new();
    let mut to_blue = 0;
    for _ in 0..500 {
        let echo: Value = client
            .get(format!("http://{url}/"))
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("json");
        if echo["revision"] == "web-00001-blu" {
            to_blue += 1;
        }
    }
    // 400 expected; the standard deviation is about 9.
    assert!(
        (370..=430).contains(&to_blue),
        "{to_blue} of 500 went to blue"
    );
}

#[tokio::test]
async fn routes_set_before_the_port_opens_apply_once_it_does() {
    let store = Store::in_memory();
    let ingress = Ingress::new(store.clone());
    let backend = backend("web-00001-aaa").await;
    ingress.set_targets(KEY, vec![target("web-00001-aaa", backend, 100)]);
    ingress.set_access(KEY, Access::Public);
    assert_eq!(ingress.addr(KEY), None, "not listening yet");

    let url = ingress.expose(KEY, None).await.expect("expose");
    let echo: Value = reqwest::get(format!("http://{url}/"))
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(echo["revision"], "web-00001-aaa");
}

#[tokio::test]
async fn remove_closes_the_port() {
    let store = Store::in_memory();
    let (ingress, url) = public_service(&store).await;
    assert_eq!(ingress.addr(KEY), Some(url));

    ingress.remove(KEY).await;

    assert!(tokio::net::TcpStream::connect(url).await.is_err());
    assert_eq!(ingress.addr(KEY), None);
}

#[tokio::test]
async fn a_service_keeps_its_port_when_it_is_free() {
    let store = Store::in_memory();
    let ingress = Ingress::new(store.clone());
    let first = ingress.expose(KEY, None).await.expect("expose");
    assert_eq!(
        ingress.expose(KEY, None).await.expect("again"),
        first,
        "exposing twice is idempotent"
    );
    ingress.shutdown().await;

    // As after an emulator restart: the remembered port is reused.
    let restarted = Ingress::new(store.clone());
    let again = restarted
        .expose(KEY, Some(first.port()))
        .await
        .expect("expose on the preferred port");
    assert_eq!(again, first);

    // A taken port is not an error: the service gets another one.
    let other = restarted
        .expose(
            "projects/demo-proj/locations/us-central1/services/api",
            Some(first.port()),
        )
        .await
        .expect("expose elsewhere");
    assert_ne!(other.port(), first.port());
}

/// Prints the latency the ingress adds (p50 and p99 over sequential keep-alive requests);
/// timing is machine-dependent, so run it on demand:
/// `cargo test --release -p emulator --test ingress -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "timing; run on demand"]
async fn ingress_overhead() {
    let store = Store::in_memory();
    let (ingress, url) = public_service(&store).await;
    let direct = backend("web-00002-dir").await;
    ingress.set_targets(KEY, vec![target("web-00002-dir", direct, 100)]);
    let client = reqwest::Client::new();
    let measure = |addr: SocketAddr| {
        let client = client.clone();
        async move {
            let mut times = Vec::with_capacity(3000);
            for i in 0..3500 {
                let started = Instant::now();
                let response = client
                    .get(format!("http://{addr}/bench?i={i}"))
                    .send()
                    .await
                    .expect("request");
                response.bytes().await.expect("body");
                if i >= 500 {
                    times.push(started.elapsed());
                }
            }
            times.sort();
            (times[times.len() / 2], times[times.len() * 99 / 100])
        }
    };
    let (direct_p50, direct_p99) = measure(direct).await;
    let (proxied_p50, proxied_p99) = measure(url).await;
    println!(
        "direct p50 {direct_p50:?} p99 {direct_p99:?}; through the ingress p50 {proxied_p50:?} \
         p99 {proxied_p99:?}; added p50 {:?}",
        proxied_p50.saturating_sub(direct_p50)
    );
}
