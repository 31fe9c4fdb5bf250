//! Database servers (Cloud SQL instances): one labelled container per instance, its data in a
//! named volume, its port published on 127.0.0.1, reachable from pods by its bridge address.
//!
//! A volume that must outlive the emulator (a data directory is set) carries no owner label,
//! so neither shutdown nor the reaper removes it; only [`Runtime::remove_database`] does.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use bollard::models::{
    ContainerCreateBody, HostConfig, Mount, MountType, PortBinding, VolumeCreateRequest,
};
use bollard::query_parameters::{CreateContainerOptionsBuilder, StopContainerOptionsBuilder};

use super::error::is_gone;
use super::labels::{Kind, LABEL_KIND, LABEL_MANAGED, LABEL_POD, object_labels};
use super::{Runtime, RuntimeError, images, logs};

/// The kind label of a database volume that outlives the emulator.
const KIND_KEPT_VOLUME: &str = "database-volume";
/// Seconds a server gets to shut down cleanly on stop.
const STOP_GRACE_SECS: i32 = 10;

/// A database server to run.
#[derive(Debug, Clone, Default)]
pub struct DatabaseSpec {
    /// The container's name; also names the server in labels.
    pub name: String,
    pub image: String,
    /// The named volume holding the data; created when missing.
    pub volume: String,
    /// Where the volume is mounted (a fresh volume gets the image's files there).
    pub mount_path: String,
    /// Whether the volume outlives the emulator (persistent state) or goes with it.
    pub keep_volume: bool,
    pub env: Vec<(String, String)>,
    /// The port the server listens on inside its container.
    pub port: u16,
    /// The host port to publish on 127.0.0.1, if a previous run had one (else any free one).
    pub host_port: Option<u16>,
    /// Extra labels for the container and volume.
    pub labels: BTreeMap<String, String>,
}

/// A started database server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseServer {
    /// The Docker id of its container.
    pub id: String,
    /// Where the host reaches it (127.0.0.1 and the published port).
    pub host_addr: SocketAddr,
    /// Where containers on Docker's default bridge (pods) reach it.
    pub network_addr: SocketAddr,
}

impl Runtime {
    /// Creates the volume if needed and starts the server's container with the port published;
    /// returns once the container runs (the caller waits for the server to answer).
    pub async fn start_database(
        &self,
        spec: &DatabaseSpec,
    ) -> Result<DatabaseServer, RuntimeError> {
        let docker = &self.engine.docker;
        images::ensure(docker, &spec.image).await?;
        self.remove_container_named(&spec.name).await?;
        let mut volume_labels = spec.labels.clone();
        volume_labels.insert(LABEL_POD.into(), spec.name.clone());
        let labels = if spec.keep_volume {
            let mut labels: HashMap<String, String> = volume_labels.into_iter().collect();
            labels.insert(LABEL_MANAGED.into(), "true".into());
            labels.insert(LABEL_KIND.into(), KIND_KEPT_VOLUME.into());
            labels
        } else {
            object_labels(&self.engine.owner, &spec.name, Kind::Volume, &volume_labels)
        };
        docker
            .create_volume(VolumeCreateRequest {
                name: Some(spec.volume.clone()),
                driver: Some("local".into()),
                labels: Some(labels),
                ..Default::default()
            })
            .await
            .map_err(RuntimeError::docker(format!(
                "create volume {}",
                spec.volume
            )))?;
        match self.run_database(spec, spec.host_port).await {
            Ok(server) => Ok(server),
            Err(error) if spec.host_port.is_some() => {
                tracing::info!(server = spec.name, %error, "the previous port is taken; publishing another");
                self.remove_container_named(&spec.name).await?;
                self.run_database(spec, None).await
            }
            Err(error) => Err(error),
        }
    }

    async fn run_database(
        &self,
        spec: &DatabaseSpec,
        host_port: Option<u16>,
    ) -> Result<DatabaseServer, RuntimeError> {
        let docker = &self.engine.docker;
        let port_key = format!("{}/tcp", spec.port);
        let binding = PortBinding {
            host_ip: Some(Ipv4Addr::LOCALHOST.to_string()),
            host_port: Some(host_port.map(|p| p.to_string()).unwrap_or_default()),
        };
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            exposed_ports: Some(vec![port_key.clone()]),
            labels: Some(object_labels(
                &self.engine.owner,
                &spec.name,
                Kind::Database,
                &spec.labels,
            )),
            host_config: Some(HostConfig {
                port_bindings: Some(HashMap::from([(port_key.clone(), Some(vec![binding]))])),
                mounts: Some(vec![Mount {
                    target: Some(spec.mount_path.clone()),
                    source: Some(spec.volume.clone()),
                    typ: Some(MountType::VOLUME),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::new()
            .name(&spec.name)
            .build();
        let created =
            docker
                .create_container(Some(options), body)
                .await
                .map_err(RuntimeError::docker(format!(
                    "create container {}",
                    spec.name
                )))?;
        docker
            .start_container(&created.id, None)
            .await
            .map_err(RuntimeError::docker(format!(
                "start container {}",
                spec.name
            )))?;
        let info =
            docker
                .inspect_container(&created.id, None)
                .await
                .map_err(RuntimeError::docker(format!(
                    "inspect container {}",
                    spec.name
                )))?;
        let network = info.network_settings.unwrap_or_default();
        let host_port = network
            .ports
            .as_ref()
            .and_then(|ports| ports.get(&port_key)?.as_ref())
            .and_then(|bindings| {
                bindings
                    .iter()
                    .find_map(|b| b.host_port.as_deref()?.parse::<u16>().ok())
            })
            .ok_or_else(|| {
                RuntimeError::Unexpected(format!("no host port was published for {}", spec.name))
            })?;
        let bridge_ip = network
            .networks
            .as_ref()
            .and_then(|n| n.get("bridge"))
            .and_then(|n| n.ip_address.as_deref())
            .and_then(|ip| ip.parse::<IpAddr>().ok())
            .ok_or_else(|| {
                RuntimeError::Unexpected(format!(
                    "{} has no address on Docker's default bridge",
                    spec.name
                ))
            })?;
        Ok(DatabaseServer {
            id: created.id,
            host_addr: SocketAddr::from((Ipv4Addr::LOCALHOST, host_port)),
            network_addr: SocketAddr::new(bridge_ip, spec.port),
        })
    }

    /// Stops a server cleanly and removes its container; with `volume`, its data too.
    pub async fn remove_database(
        &self,
        name: &str,
        volume: Option<&str>,
    ) -> Result<(), RuntimeError> {
        let docker = &self.engine.docker;
        let stop = StopContainerOptionsBuilder::new()
            .t(STOP_GRACE_SECS)
            .build();
        match docker.stop_container(name, Some(stop)).await {
            Ok(()) => {}
            Err(e) if is_gone(&e) => {}
            Err(e) => {
                tracing::warn!(server = name, error = %e, "stopping a database server failed")
            }
        }
        self.remove_container_named(name).await?;
        if let Some(volume) = volume {
            match docker
                .remove_volume(
                    volume,
                    None::<bollard::query_parameters::RemoveVolumeOptions>,
                )
                .await
            {
                Ok(()) => {}
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) => {}
                Err(e) => return Err(RuntimeError::docker(format!("remove volume {volume}"))(e)),
            }
        }
        Ok(())
    }

    /// Whether a server's container is still running, and if not, its last log lines.
    pub async fn database_exited(&self, id: &str) -> Option<Vec<String>> {
        let state = self
            .engine
            .docker
            .inspect_container(id, None)
            .await
            .ok()
            .and_then(|info| info.state);
        if state.as_ref().and_then(|s| s.running) == Some(true) {
            return None;
        }
        Some(logs::tail(&self.engine.docker, id, 20).await)
    }

    /// Force-removes the container of that name if it is one of this emulator's servers.
    async fn remove_container_named(&self, name: &str) -> Result<(), RuntimeError> {
        let docker = &self.engine.docker;
        let labels = match docker.inspect_container(name, None).await {
            Ok(info) => info.config.and_then(|c| c.labels).unwrap_or_default(),
            Err(e) if is_gone(&e) => return Ok(()),
            Err(e) => return Err(RuntimeError::docker(format!("inspect container {name}"))(e)),
        };
        if labels.get(LABEL_POD).map(String::as_str) != Some(name) {
            return Err(RuntimeError::Unexpected(format!(
                "a container named {name} exists that this emulator did not create"
            )));
        }
        super::cleanup::remove_containers(docker, &[name]).await?;
        Ok(())
    }
}
