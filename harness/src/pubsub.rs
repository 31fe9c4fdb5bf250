//! The Pub/Sub emulator of the Google Cloud SDK (`gcloud beta emulators pubsub`), started for a
//! stack and reached at the Docker bridge's gateway address by both the test and the containers.
//! It listens on every interface: its REST gateway forwards to its own gRPC server through
//! `localhost`, so bound to the bridge address alone it answers every call with 503.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use crate::error::HarnessError;

/// The emulator's launcher inside the SDK (it `exec`s java, so killing it stops the server).
const LAUNCHER: &str = "platform/pubsub-emulator/bin/cloud-pubsub-emulator";
/// How long the JVM may take to answer (about 3 s here).
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A running Pub/Sub emulator; dropping it kills the server.
#[derive(Debug)]
pub(crate) struct PubSub {
    pub(crate) addr: SocketAddr,
    _child: Child,
}

/// The SDK root: the directory above the real `gcloud` program's `bin/`.
fn sdk_root() -> Result<PathBuf, HarnessError> {
    let not_found = || HarnessError::Io {
        context: "finding the Google Cloud SDK".into(),
        source: std::io::Error::new(std::io::ErrorKind::NotFound, "gcloud is not on PATH"),
    };
    let path = std::env::var_os("PATH").ok_or_else(not_found)?;
    let gcloud = std::env::split_paths(&path)
        .map(|dir| dir.join("gcloud"))
        .find(|candidate| candidate.is_file())
        .ok_or_else(not_found)?;
    let real = std::fs::canonicalize(&gcloud)
        .map_err(HarnessError::io(format!("resolving {}", gcloud.display())))?;
    real.parent()
        .and_then(|bin| bin.parent())
        .map(PathBuf::from)
        .ok_or_else(not_found)
}

/// Starts the emulator on a free port and waits until it answers at `gateway`.
pub(crate) async fn start(gateway: IpAddr) -> Result<PubSub, HarnessError> {
    let launcher = sdk_root()?.join(LAUNCHER);
    let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    let port = std::net::TcpListener::bind((any, 0))
        .and_then(|listener| listener.local_addr())
        .map_err(HarnessError::io("finding a free port"))?
        .port();
    let addr = SocketAddr::new(gateway, port);
    let child = Command::new(&launcher)
        .arg(format!("--host={any}"))
        .arg(format!("--port={port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(HarnessError::io(format!(
            "starting the Pub/Sub emulator {} (gcloud component pubsub-emulator)",
            launcher.display()
        )))?;
    let pubsub = PubSub {
        addr,
        _child: child,
    };
    let http = reqwest::Client::new();
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(answer) = http.get(format!("http://{addr}/")).send().await
            && answer.status().is_success()
        {
            return Ok(pubsub);
        }
        if Instant::now() >= deadline {
            return Err(HarnessError::Timeout {
                what: format!("waiting for the Pub/Sub emulator on {addr}"),
                after: READY_TIMEOUT,
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
