//! The gRPC probe's health check against a real gRPC server (tonic-health) and against servers
//! that are not gRPC: only `SERVING` passes, every failure says what the call saw, and no check
//! outlives its timeout.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use emulator::runtime::check_grpc_health;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;

const TIMEOUT: Duration = Duration::from_secs(2);

/// A tonic health server on 127.0.0.1: the server ("") and `api` serve, `worker` does not.
async fn health_server() -> SocketAddr {
    let (reporter, service) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("api", ServingStatus::Serving)
        .await;
    reporter
        .set_service_status("worker", ServingStatus::NotServing)
        .await;
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a local port");
    let addr = listener.local_addr().expect("the local address");
    tokio::spawn(async move {
        // Keeps the statuses alive as long as the server.
        let _reporter = reporter;
        Server::builder()
            .add_service(service)
            .serve_with_incoming(TcpIncoming::from(listener))
            .await
            .expect("the health server runs");
    });
    addr
}

/// A TCP server that hands every connection to `answer`.
async fn raw_server<F, Fut>(answer: F) -> SocketAddr
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a local port");
    let addr = listener.local_addr().expect("the local address");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(answer(stream));
        }
    });
    addr
}

/// Runs the check and asserts it returned within the timeout (plus scheduling slack).
async fn check(addr: SocketAddr, service: Option<&str>) -> Result<(), String> {
    let started = Instant::now();
    let outcome = check_grpc_health(addr, service, TIMEOUT).await;
    eprintln!("check {service:?}: {outcome:?}");
    assert!(
        started.elapsed() < TIMEOUT + Duration::from_millis(500),
        "the check took {:?}: {outcome:?}",
        started.elapsed()
    );
    outcome
}

#[tokio::test]
async fn serving_passes() {
    let addr = health_server().await;
    check(addr, None).await.expect("SERVING passes");
    check(addr, Some("")).await.expect("SERVING passes");
    check(addr, Some("api")).await.expect("SERVING passes");
}

#[tokio::test]
async fn not_serving_fails() {
    let addr = health_server().await;
    let error = check(addr, Some("worker"))
        .await
        .expect_err("the check fails");
    assert_eq!(error, "gRPC health status NOT_SERVING");
}

#[tokio::test]
async fn unknown_service_fails_with_not_found() {
    let addr = health_server().await;
    let error = check(addr, Some("billing"))
        .await
        .expect_err("the check fails");
    assert!(error.starts_with("grpc-status 5 (NOT_FOUND)"), "{error}");
}

#[tokio::test]
async fn http1_server_fails() {
    let addr = raw_server(|mut stream| async move {
        let mut buffer = [0u8; 1024];
        let _ = stream.read(&mut buffer).await;
        let _ = stream
            .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            .await;
        let _ = stream.shutdown().await;
    })
    .await;
    let error = check(addr, None).await.expect_err("the check fails");
    assert!(!error.is_empty());
    assert!(!error.starts_with("no answer"), "{error}");
}

#[tokio::test]
async fn silent_server_fails_at_the_timeout() {
    let addr = raw_server(|mut stream| async move {
        // Reads the request and never answers, keeping the connection open.
        let mut buffer = [0u8; 1024];
        while let Ok(1..) = stream.read(&mut buffer).await {}
        std::future::pending::<()>().await;
    })
    .await;
    let error = check(addr, None).await.expect_err("the check fails");
    assert_eq!(
        error,
        format!("no answer within {} ms", TIMEOUT.as_millis())
    );
}

#[tokio::test]
async fn server_closing_at_once_fails() {
    // What Docker's port proxy does when nothing listens inside the container.
    let addr = raw_server(|stream| async move { drop(stream) }).await;
    let error = check(addr, None).await.expect_err("the check fails");
    assert!(!error.starts_with("no answer"), "{error}");
}

#[tokio::test]
async fn closed_port_fails() {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a local port");
    let addr = listener.local_addr().expect("the local address");
    drop(listener);
    let error = check(addr, None).await.expect_err("the check fails");
    assert!(error.starts_with("connection failed: "), "{error}");
    assert!(error.contains("refused"), "{error}");
}
