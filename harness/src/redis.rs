//! Redis instances (Memorystore stand-ins): a real `redis-server` per instance, started with
//! testcontainers from `docker/images/redis` and removed when the stack drops.

use std::net::IpAddr;

use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

use crate::error::HarnessError;

/// The image `docker/build-images.sh redis` builds.
pub(crate) const IMAGE: (&str, &str) = ("cloudrun-emulator/redis", "1");
/// Where Memorystore serves.
pub(crate) const PORT: u16 = 6379;

/// A running Redis of a stack.
#[derive(Debug)]
pub(crate) struct Redis {
    /// The address containers reach it at (its bridge address), port [`PORT`].
    pub(crate) ip: IpAddr,
    /// The host port the test reaches it at, on 127.0.0.1.
    pub(crate) host_port: u16,
    _container: ContainerAsync<GenericImage>,
}

/// Starts one, labelled as the emulator labels its objects (so its cleanup covers it too).
pub(crate) async fn start(name: &str, owner: &str) -> Result<Redis, HarnessError> {
    let failed = |what: &str, e: testcontainers::TestcontainersError| HarnessError::Dependency {
        what: format!("Redis {name}: {what}"),
        message: e.to_string(),
    };
    let container = GenericImage::new(IMAGE.0, IMAGE.1)
        .with_exposed_port(PORT.tcp())
        .with_wait_for(WaitFor::message_on_stdout("Ready to accept connections"))
        .with_network("bridge")
        .with_label(emulator::runtime::LABEL_MANAGED, "true")
        .with_label(emulator::runtime::LABEL_OWNER, owner)
        .with_label("cloudrun-emulator.redis", name)
        .start()
        .await
        .map_err(|e| failed("starting the container", e))?;
    let ip = container
        .get_bridge_ip_address()
        .await
        .map_err(|e| failed("reading its bridge address", e))?;
    let host_port = container
        .get_host_port_ipv4(PORT.tcp())
        .await
        .map_err(|e| failed("reading its host port", e))?;
    Ok(Redis {
        ip,
        host_port,
        _container: container,
    })
}

/// `cache` → `REDIS_CACHE`, the prefix of its service-file variables.
pub(crate) fn variable(name: &str) -> String {
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("REDIS_{name}")
}
