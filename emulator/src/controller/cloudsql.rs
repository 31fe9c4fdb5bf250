//! Cloud SQL in revisions: the Cloud SQL Auth Proxy sidecar and `/cloudsql` sockets.
//!
//! A container whose image is the Cloud SQL Auth Proxy runs the emulator's stand-in instead
//! (`docker/images/cloudsql-proxy`), with the user's arguments and the Postgres addresses of
//! the instances it may name. The `run.googleapis.com/cloudsql-instances` annotation adds an
//! in-memory volume at `/cloudsql` to every container and a hidden member, the stand-in in
//! unix-socket mode, that serves `/cloudsql/PROJECT:REGION:INSTANCE/.s.PGSQL.5432`; the other
//! containers start once those sockets exist.

use std::net::SocketAddr;
use std::time::Duration;

use super::pods::RevisionFailure;
use crate::runtime::{ContainerSpec, PodSpec, Probe, ProbeAction};
use crate::state::run::Revision;

/// The stand-in's image, built by `docker/build-images.sh cloudsql-proxy`.
pub const PROXY_IMAGE: &str = "cloudrun-emulator/cloudsql-proxy:1";
/// The template annotation listing the instances whose sockets go in `/cloudsql`.
pub const INSTANCES_ANNOTATION: &str = "run.googleapis.com/cloudsql-instances";
/// Where Cloud Run mounts the sockets.
const SOCKET_DIR: &str = "/cloudsql";
/// The hidden volume and member that serve the sockets.
const SOCKET_VOLUME: &str = "cloudsql-emulator";
const SOCKET_MEMBER: &str = "cloudsql-emulator-sockets";
/// The port of the hidden member's `/startup` health check.
const SOCKET_HEALTH_PORT: u16 = 19091;

/// Which proxy an image reference is: 2 for `cloud-sql-connectors/cloud-sql-proxy`, 1 for
/// `cloudsql-docker/gce-proxy`, `None` for anything else.
fn proxy_version(image: &str) -> Option<u8> {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last_slash = without_digest.rfind('/').unwrap_or(0);
    let repository = match without_digest[last_slash..].rfind(':') {
        Some(colon) => &without_digest[..last_slash + colon],
        None => without_digest,
    };
    if repository.ends_with("cloud-sql-connectors/cloud-sql-proxy") {
        Some(2)
    } else if repository.ends_with("cloudsql-docker/gce-proxy") {
        Some(1)
    } else {
        None
    }
}

/// `PROJECT:REGION:NAME=IP:PORT,...`, how the stand-in learns where each instance is.
fn targets_env(targets: &[(String, SocketAddr)]) -> (String, String) {
    let value = targets
        .iter()
        .map(|(name, addr)| format!("{name}={addr}"))
        .collect::<Vec<_>>()
        .join(",");
    ("CLOUDSQL_EMULATOR_TARGETS".into(), value)
}

/// Swaps proxy images for the stand-in and adds the `/cloudsql` sockets the template asks for.
pub fn attach(
    spec: &mut PodSpec,
    revision: &Revision,
    targets: &[(String, SocketAddr)],
) -> Result<(), RevisionFailure> {
    for container in &mut spec.containers {
        let Some(version) = proxy_version(&container.image) else {
            continue;
        };
        container.image = PROXY_IMAGE.into();
        // `command: ["/cloud-sql-proxy", flags...]` names the real binary: keep its flags only.
        let mut args: Vec<String> = container.command.drain(..).skip(1).collect();
        args.append(&mut container.args);
        container.args = args;
        container.env.push(targets_env(targets));
        if version == 1 {
            container
                .env
                .push(("CLOUDSQL_EMULATOR_PROXY_VERSION".into(), "1".into()));
        }
    }
    let instances: Vec<String> = revision
        .template
        .annotations
        .get(INSTANCES_ANNOTATION)
        .map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|name| !name.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if instances.is_empty() {
        return Ok(());
    }
    if spec.containers.iter().any(|c| c.name == SOCKET_MEMBER) {
        return Err(RevisionFailure {
            reason: "InvalidTemplate".into(),
            message: format!("The container name {SOCKET_MEMBER} is reserved by the emulator."),
        });
    }
    spec.volumes.push(SOCKET_VOLUME.into());
    for container in &mut spec.containers {
        if !container.mounts.iter().any(|(_, path)| path == SOCKET_DIR) {
            container
                .mounts
                .push((SOCKET_VOLUME.into(), SOCKET_DIR.into()));
        }
        container.depends_on.push(SOCKET_MEMBER.into());
    }
    let mut args = vec![
        "--unix-socket".to_string(),
        SOCKET_DIR.into(),
        "--health-check".into(),
        "--http-address".into(),
        "0.0.0.0".into(),
        "--http-port".into(),
        SOCKET_HEALTH_PORT.to_string(),
    ];
    args.extend(instances);
    spec.containers.push(ContainerSpec {
        name: SOCKET_MEMBER.into(),
        image: PROXY_IMAGE.into(),
        args,
        env: vec![targets_env(targets)],
        mounts: vec![(SOCKET_VOLUME.into(), SOCKET_DIR.into())],
        startup_probe: Some(Probe {
            action: ProbeAction::Http {
                port: SOCKET_HEALTH_PORT,
                path: "/startup".into(),
                headers: Vec::new(),
            },
            initial_delay: Duration::ZERO,
            timeout: Duration::from_secs(1),
            period: Duration::from_millis(50),
            failure_threshold: 200,
            is_default: false,
        }),
        ..Default::default()
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_images_are_recognised_by_repository() {
        assert_eq!(
            proxy_version("gcr.io/cloud-sql-connectors/cloud-sql-proxy:2.14.1"),
            Some(2)
        );
        assert_eq!(
            proxy_version("us.gcr.io/cloud-sql-connectors/cloud-sql-proxy"),
            Some(2)
        );
        assert_eq!(
            proxy_version("gcr.io/cloudsql-docker/gce-proxy:1.33.2"),
            Some(1)
        );
        assert_eq!(proxy_version("cloudrun-emulator/testapp:1"), None);
        assert_eq!(proxy_version("localhost:5000/cloud-sql-proxy"), None);
    }
}
