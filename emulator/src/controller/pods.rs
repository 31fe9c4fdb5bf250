//! A Cloud Run revision as a runtime pod: the container contract (PORT, K_* variables), secrets
//! resolved from Secret Manager, in-memory volumes, limits, probes and start order.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::runtime::{ContainerSpec, FileSpec, PodSpec, Probe, ProbeAction};
use crate::state::Store;
use crate::state::run::{
    self, DEPENDENCIES_ANNOTATION, EnvSource, ProbeCheck, Revision, VolumeSource,
};
use crate::state::secrets::{SecretParent, SecretRef};

/// Why a revision cannot become a pod: the condition reason and message Cloud Run would show.
#[derive(Debug, Clone, PartialEq)]
pub struct RevisionFailure {
    pub reason: String,
    pub message: String,
}

impl RevisionFailure {
    fn new(reason: &str, message: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// Labels naming what a pod belongs to.
pub const LABEL_SERVICE: &str = "cloudrun-emulator.service";
/// Labels naming what a pod belongs to.
pub const LABEL_REVISION: &str = "cloudrun-emulator.revision";
/// Labels naming what a pod belongs to.
pub const LABEL_PROJECT: &str = "cloudrun-emulator.project";

/// Builds the pod of a revision; `project_id` is the service's project as written.
pub fn pod_spec(
    store: &Store,
    revision: &Revision,
    project_id: &str,
    strict_iam: bool,
) -> Result<PodSpec, RevisionFailure> {
    let template = &revision.template;
    let secrets = SecretReader {
        store,
        project: &revision.service.project,
        checked_as: strict_iam.then(|| service_account(revision)),
    };
    let (ingress, ingress_port) = revision
        .ingress()
        .map(|(c, port)| (c.name.clone(), port))
        .ok_or_else(|| {
            RevisionFailure::new("InvalidTemplate", "The revision has no ingress container.")
        })?;
    let service = &revision.service.name;
    let dependencies = match template.annotations.get(DEPENDENCIES_ANNOTATION) {
        Some(text) => run::parse_dependencies(text)
            .map_err(|e| RevisionFailure::new("InvalidTemplate", e.to_string()))?,
        None => BTreeMap::new(),
    };
    let host_aliases = match template.annotations.get(HOST_ALIASES_ANNOTATION) {
        Some(text) => parse_host_aliases(text).map_err(|e| {
            RevisionFailure::new(
                "InvalidTemplate",
                format!("spec.template.metadata.annotations[{HOST_ALIASES_ANNOTATION}]: {e}"),
            )
        })?,
        None => Vec::new(),
    };
    let mut volumes = Vec::new();
    let mut size_limits = BTreeMap::new();
    for volume in &template.volumes {
        if let VolumeSource::EmptyDir { size_limit } = &volume.source {
            volumes.push(volume.name.clone());
            if let Some(limit) = size_limit {
                size_limits.insert(
                    volume.name.clone(),
                    quantity_bytes(limit).map_err(|e| {
                        RevisionFailure::new(
                            "InvalidTemplate",
                            format!("spec.template.spec.volumes: {e}"),
                        )
                    })? as u64,
                );
            }
        }
    }
    let mut containers = Vec::new();
    for (i, container) in template.containers.iter().enumerate() {
        let field = format!("spec.template.spec.containers[{i}]");
        let is_ingress = container.name == ingress;
        let mut env = Vec::new();
        if is_ingress {
            env.push(("PORT".to_string(), ingress_port.to_string()));
        }
        env.push(("K_SERVICE".to_string(), service.clone()));
        env.push(("K_REVISION".to_string(), revision.name.clone()));
        env.push(("K_CONFIGURATION".to_string(), service.clone()));
        for (j, var) in container.env.iter().enumerate() {
            let value = match &var.source {
                EnvSource::Value(value) => value.clone(),
                EnvSource::Secret { secret, version } => {
                    let bytes = secrets.read(secret, version).map_err(|why| {
                        RevisionFailure::new(
                            "SecretsAccessCheckFailed",
                            format!("{field}.env[{j}].value_from.secret_key_ref.name: {why}"),
                        )
                    })?;
                    String::from_utf8_lossy(&bytes).into_owned()
                }
            };
            env.push((var.name.clone(), value));
        }
        let mut files = Vec::new();
        let mut mounts = Vec::new();
        for (volume_name, mount_path) in &container.volume_mounts {
            let Some(volume) = template.volumes.iter().find(|v| &v.name == volume_name) else {
                continue;
            };
            match &volume.source {
                VolumeSource::EmptyDir { .. } => {
                    mounts.push((volume_name.clone(), mount_path.clone()))
                }
                VolumeSource::Secret {
                    secret,
                    items,
                    default_mode,
                } => {
                    let default_mode = default_mode.unwrap_or(0o444);
                    let items: Vec<(String, String, u32)> = if items.is_empty() {
                        let file = secret.rsplit('/').next().unwrap_or(secret).to_string();
                        vec![("latest".into(), file, default_mode)]
                    } else {
                        items
                            .iter()
                            .map(|item| {
                                (
                                    item.version.clone(),
                                    item.path.clone(),
                                    item.mode.unwrap_or(default_mode),
                                )
                            })
                            .collect()
                    };
                    for (version, path, mode) in items {
                        let contents =
                            secrets.read(secret, &version)
                                .map_err(|why| {
                                    RevisionFailure::new(
                                        "SecretsAccessCheckFailed",
                                        format!(
                                            "spec.template.spec.volumes[{volume_name}].secret.secret_name: {why}"
                                        ),
                                    )
                                })?;
                        files.push(FileSpec {
                            path: format!("{}/{}", mount_path.trim_end_matches('/'), path),
                            contents,
                            mode,
                        });
                    }
                }
            }
        }
        let own_port = container.ports.first().copied().unwrap_or(ingress_port);
        let probe_of = |probe: &run::Probe| runtime_probe(probe, own_port);
        let startup_probe = match &container.startup_probe {
            Some(probe) => Some(probe_of(probe)),
            None if is_ingress => Some(Probe::default_startup(ingress_port)),
            None => None,
        };
        let cpu = container
            .cpu
            .as_deref()
            .map(cpu_quantity)
            .transpose()
            .map_err(|e| {
                RevisionFailure::new(
                    "InvalidTemplate",
                    format!("{field}.resources.limits.cpu: {e}"),
                )
            })?;
        let memory_bytes = container
            .memory
            .as_deref()
            .map(quantity_bytes)
            .transpose()
            .map_err(|e| {
                RevisionFailure::new(
                    "InvalidTemplate",
                    format!("{field}.resources.limits.memory: {e}"),
                )
            })?;
        containers.push(ContainerSpec {
            name: container.name.clone(),
            image: container.image.clone(),
            command: container.command.clone(),
            args: container.args.clone(),
            working_dir: container.working_dir.clone(),
            env,
            files,
            mounts,
            cpu,
            memory_bytes,
            ports: if is_ingress {
                vec![ingress_port]
            } else {
                container.ports.clone()
            },
            startup_probe,
            liveness_probe: container.liveness_probe.as_ref().map(probe_of),
            depends_on: dependencies
                .get(&container.name)
                .cloned()
                .unwrap_or_default(),
        });
    }
    let suffix: String = (0..6)
        .map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rand::random_range(0..36)]))
        .collect();
    Ok(PodSpec {
        name: format!("{}-{suffix}", revision.name),
        labels: BTreeMap::from([
            (LABEL_SERVICE.to_string(), service.clone()),
            (LABEL_REVISION.to_string(), revision.name.clone()),
            (LABEL_PROJECT.to_string(), project_id.to_string()),
        ]),
        containers,
        volumes,
        volume_size_limits: size_limits,
        host_links: None,
        host_aliases,
    })
}

/// Emulator-only template annotation `host=IP[,host=IP...]`: extra `/etc/hosts` entries in the
/// revision's containers, so an app's third-party host name can reach a stub server in tests.
pub const HOST_ALIASES_ANNOTATION: &str = "cloudrun-emulator/host-aliases";

/// `api.example.com=172.17.0.1,auth.example.com=172.17.0.1` → pairs.
fn parse_host_aliases(text: &str) -> Result<Vec<(String, std::net::IpAddr)>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            let (host, ip) = entry
                .split_once('=')
                .ok_or_else(|| format!("expected HOST=IP, got {entry:?}"))?;
            let ip = ip
                .trim()
                .parse()
                .map_err(|_| format!("{:?} is not an IP address", ip.trim()))?;
            Ok((host.trim().to_string(), ip))
        })
        .collect()
}

fn runtime_probe(probe: &run::Probe, default_port: u16) -> Probe {
    let action = match &probe.check {
        ProbeCheck::Tcp { port } => ProbeAction::Tcp {
            port: port.unwrap_or(default_port),
        },
        ProbeCheck::Http {
            port,
            path,
            headers,
        } => ProbeAction::Http {
            port: port.unwrap_or(default_port),
            path: path.clone(),
            headers: headers.clone(),
        },
        ProbeCheck::Grpc { port, service } => ProbeAction::Grpc {
            port: port.unwrap_or(default_port),
            service: service.clone(),
        },
    };
    Probe {
        action,
        initial_delay: Duration::from_secs(probe.initial_delay_seconds.into()),
        timeout: Duration::from_secs(probe.timeout_seconds.into()),
        period: Duration::from_secs(probe.period_seconds.into()),
        failure_threshold: probe.failure_threshold,
        is_default: false,
    }
}

/// The identity a revision runs as: its `serviceAccountName`, else the project's default
/// compute service account, as on Cloud Run.
pub fn service_account(revision: &Revision) -> String {
    revision
        .template
        .service_account
        .clone()
        .unwrap_or_else(|| {
            format!(
                "{}-compute@developer.gserviceaccount.com",
                revision.service.project
            )
        })
}

/// Reads secrets for one revision, as its service account: in strict IAM mode the account
/// must hold a role that grants `secretmanager.versions.access` on each secret.
struct SecretReader<'a> {
    store: &'a Store,
    /// The revision's project number.
    project: &'a str,
    /// `Some(service account email)` when access is checked.
    checked_as: Option<String>,
}

impl SecretReader<'_> {
    /// The payload of `secret` (an id, or `projects/P/secrets/S`) at `version`; the error is
    /// Cloud Run's wording.
    fn read(&self, secret: &str, version: &str) -> Result<Vec<u8>, String> {
        let (project, secret_id) = match secret
            .strip_prefix("projects/")
            .and_then(|rest| rest.split_once("/secrets/"))
        {
            Some((project, id)) => (project, id),
            None => (self.project, secret),
        };
        let reference = SecretRef {
            parent: SecretParent {
                project,
                location: None,
            },
            secret_id,
        };
        let name = format!("projects/{project}/secrets/{secret_id}/versions/{version}");
        if let Some(account) = &self.checked_as {
            let allowed = self
                .store
                .may_access_secret(&reference, &format!("serviceAccount:{account}"))
                .map_err(|_| format!("Secret {name} was not found"))?;
            if !allowed {
                return Err(format!(
                    "Permission denied on secret: {name} for Revision service account \
                     {account}. The service account used must be granted the 'Secret Manager \
                     Secret Accessor' role (roles/secretmanager.secretAccessor) at the secret, \
                     project or higher level."
                ));
            }
        }
        self.store
            .access_version(&reference, version)
            .map(|v| v.payload)
            .map_err(|e| match e {
                crate::state::StateError::FailedPrecondition(message) => message,
                _ => format!("Secret {name} was not found"),
            })
    }
}

/// `"1"`, `"0.5"`, `"500m"` → vCPUs.
fn cpu_quantity(text: &str) -> Result<f64, String> {
    let value = match text.strip_suffix('m') {
        Some(milli) => milli.parse::<f64>().map(|m| m / 1000.0),
        None => text.parse::<f64>(),
    }
    .map_err(|_| format!("Invalid CPU quantity '{text}'."))?;
    if value <= 0.0 {
        return Err(format!("Invalid CPU quantity '{text}'."));
    }
    Ok(value)
}

/// `"512Mi"`, `"1Gi"`, `"256M"`, `"1000000"` → bytes.
fn quantity_bytes(text: &str) -> Result<i64, String> {
    const UNITS: &[(&str, f64)] = &[
        ("Ki", 1024.0),
        ("Mi", 1024.0 * 1024.0),
        ("Gi", 1024.0 * 1024.0 * 1024.0),
        ("Ti", 1024.0 * 1024.0 * 1024.0 * 1024.0),
        ("k", 1e3),
        ("K", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
    ];
    let (number, factor) = UNITS
        .iter()
        .find_map(|(suffix, factor)| text.strip_suffix(suffix).map(|n| (n, *factor)))
        .unwrap_or((text, 1.0));
    let value: f64 = number
        .parse()
        .map_err(|_| format!("Invalid quantity '{text}'."))?;
    if value <= 0.0 {
        return Err(format!("Invalid quantity '{text}'."));
    }
    Ok((value * factor) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_aliases_are_host_ip_pairs() {
        assert_eq!(
            parse_host_aliases("api.example.com=172.17.0.1, b=::1"),
            Ok(vec![
                ("api.example.com".to_string(), [172, 17, 0, 1].into()),
                ("b".to_string(), std::net::Ipv6Addr::LOCALHOST.into()),
            ])
        );
        assert!(parse_host_aliases("api.example.com").is_err());
        assert!(parse_host_aliases("a=not-an-ip").is_err());
    }

    #[test]
    fn kubernetes_quantities() {
        assert_eq!(quantity_bytes("512Mi"), Ok(512 * 1024 * 1024));
        assert_eq!(quantity_bytes("1Gi"), Ok(1024 * 1024 * 1024));
        assert_eq!(quantity_bytes("256M"), Ok(256_000_000));
        assert!(quantity_bytes("lots").is_err());
        assert_eq!(cpu_quantity("500m"), Ok(0.5));
        assert_eq!(cpu_quantity("2"), Ok(2.0));
        assert!(cpu_quantity("-1").is_err());
    }
}
