//! Startup and liveness probes, run from the emulator's host against the pod's published ports.
//!
//! Published ports go through Docker's proxy, which accepts every connection and closes it at
//! once when nothing listens inside the pod; a TCP attempt therefore also waits briefly for that
//! close. gRPC probes call `grpc.health.v1.Health/Check` over HTTP/2 cleartext (see
//! `grpc_health`).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, sleep_until, timeout, timeout_at};

use super::{Probe, ProbeAction, grpc_health};

/// How long a TCP attempt watches a fresh connection for Docker's proxy closing it.
const PROXY_CLOSE_WINDOW: Duration = Duration::from_millis(100);
/// How often a startup probe re-dials within one attempt.
const STARTUP_REDIAL: Duration = Duration::from_millis(100);

/// Startup or liveness: only changes the wording of failures.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Phase {
    Startup,
    Liveness,
}

/// A probe that reached its failure threshold.
#[derive(Debug, Clone)]
pub(crate) struct ProbeFailure {
    /// Cloud Run's wording, e.g. `STARTUP HTTP probe failed 3 times consecutively for container
    /// "api" on port 8080 path "/healthz"`.
    pub description: String,
    /// What the last attempt saw.
    pub last_failure: String,
}

/// Runs a startup probe until it passes (`Ok`) or fails `failure_threshold` times in a row.
pub(crate) async fn until_pass(
    probe: &Probe,
    container: &str,
    addr: SocketAddr,
) -> Result<(), ProbeFailure> {
    sleep(probe.initial_delay).await;
    let mut failures = 0;
    loop {
        let started = Instant::now();
        match attempt(probe, addr, true).await {
            Ok(()) => return Ok(()),
            Err(last_failure) => {
                failures += 1;
                if failures >= probe.failure_threshold.max(1) {
                    return Err(ProbeFailure {
                        description: describe(Phase::Startup, probe, container, failures),
                        last_failure,
                    });
                }
            }
        }
        sleep_until(started + probe.period).await;
    }
}

/// Runs a liveness probe forever; returns once it fails `failure_threshold` times in a row.
pub(crate) async fn until_fail(probe: &Probe, container: &str, addr: SocketAddr) -> ProbeFailure {
    sleep(probe.initial_delay).await;
    let mut failures = 0;
    loop {
        let started = Instant::now();
        match attempt(probe, addr, false).await {
            Ok(()) => failures = 0,
            Err(last_failure) => {
                failures += 1;
                if failures >= probe.failure_threshold.max(1) {
                    return ProbeFailure {
                        description: describe(Phase::Liveness, probe, container, failures),
                        last_failure,
                    };
                }
            }
        }
        sleep_until(started + probe.period).await;
    }
}

/// One attempt within the probe's timeout; a startup attempt keeps re-dialling until then, so an
/// instance that starts listening a moment after its container starts is not held back a whole
/// period (failures still count once per period).
async fn attempt(probe: &Probe, addr: SocketAddr, redial: bool) -> Result<(), String> {
    let deadline = Instant::now() + probe.timeout;
    loop {
        let outcome = match timeout_at(deadline, check(&probe.action, addr)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!("no answer within {} ms", probe.timeout.as_millis())),
        };
        if outcome.is_ok() || !redial || Instant::now() + STARTUP_REDIAL >= deadline {
            return outcome;
        }
        sleep(STARTUP_REDIAL).await;
    }
}

async fn check(action: &ProbeAction, addr: SocketAddr) -> Result<(), String> {
    match action {
        ProbeAction::Tcp { .. } => tcp(addr).await,
        ProbeAction::Grpc { port, service } => {
            grpc_health::check(addr, *port, service.as_deref().unwrap_or("")).await
        }
        ProbeAction::Http {
            port,
            path,
            headers,
        } => http(addr, *port, path, headers).await,
    }
}

/// Connects, then treats an immediate close as "nothing listens" (Docker's proxy behaviour).
async fn tcp(addr: SocketAddr) -> Result<(), String> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connection failed: {e}"))?;
    let mut byte = [0u8; 1];
    match timeout(PROXY_CLOSE_WINDOW, stream.read(&mut byte)).await {
        Err(_) | Ok(Ok(1..)) => Ok(()),
        Ok(Ok(0)) => Err("connection closed at once: nothing is listening".into()),
        Ok(Err(e)) => Err(format!("connection failed: {e}")),
    }
}

/// `GET path` over HTTP/1.1; 200–399 passes.
async fn http(
    addr: SocketAddr,
    port: u16,
    path: &str,
    headers: &[(String, String)],
) -> Result<(), String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connection failed: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake failed: {e}"))?;
    // Aborted however this returns, a timeout included, so no connection outlives its attempt.
    let _connection = AbortOnDrop(tokio::spawn(connection));
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    let mut request =
        hyper::Request::get(path).header(hyper::header::HOST, format!("localhost:{port}"));
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let request = request
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("invalid probe request: {e}"))?;
    let status = sender
        .send_request(request)
        .await
        .map_err(|e| format!("HTTP request failed: {e}"))?
        .status();
    if (200..400).contains(&status.as_u16()) {
        Ok(())
    } else {
        Err(format!("HTTP status {}", status.as_u16()))
    }
}

/// Aborts a spawned connection task when dropped.
pub(super) struct AbortOnDrop<T>(pub(super) JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Cloud Run's log wording for a probe that failed `failures` times.
pub(crate) fn describe(phase: Phase, probe: &Probe, container: &str, failures: u32) -> String {
    let default = if probe.is_default { "Default " } else { "" };
    let phase = match phase {
        Phase::Startup => "STARTUP",
        Phase::Liveness => "LIVENESS",
    };
    let (kind, path) = match &probe.action {
        ProbeAction::Tcp { .. } => ("TCP", String::new()),
        ProbeAction::Http { path, .. } => ("HTTP", format!(" path \"{path}\"")),
        ProbeAction::Grpc { .. } => ("GRPC", String::new()),
    };
    let times = if failures == 1 { "time" } else { "times" };
    format!(
        "{default}{phase} {kind} probe failed {failures} {times} consecutively for container \
         \"{container}\" on port {}{path}",
        probe.action.port()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_like_cloud_run() {
        let mut probe = Probe {
            action: ProbeAction::Http {
                port: 8080,
                path: "/healthz".into(),
                headers: vec![],
            },
            initial_delay: Duration::ZERO,
            timeout: Duration::from_secs(1),
            period: Duration::from_secs(10),
            failure_threshold: 3,
            is_default: false,
        };
        assert_eq!(
            describe(Phase::Startup, &probe, "api", 3),
            "STARTUP HTTP probe failed 3 times consecutively for container \"api\" on port 8080 \
             path \"/healthz\""
        );
        probe.action = ProbeAction::Tcp { port: 8080 };
        probe.is_default = true;
        assert_eq!(
            describe(Phase::Startup, &probe, "worker", 1),
            "Default STARTUP TCP probe failed 1 time consecutively for container \"worker\" on \
             port 8080"
        );
    }
}
