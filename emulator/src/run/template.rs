//! Knative `spec.template` JSON into the state layer's typed revision template. Form only (types,
//! required fields); Cloud Run's rules are checked by the state layer.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::error::ApiError;
use crate::state::run::{
    Container, EnvSource, EnvVar, Probe, ProbeCheck, RevisionTemplate, SecretItem, TrafficTarget,
    Volume, VolumeSource,
};

/// The annotation that names secrets of other projects: `alias:projects/N/secrets/S,...`.
const SECRETS_ANNOTATION: &str = "run.googleapis.com/secrets";

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TemplateJson {
    #[serde(default)]
    metadata: MetaJson,
    #[serde(default)]
    spec: RevisionSpecJson,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetaJson {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RevisionSpecJson {
    #[serde(default)]
    containers: Vec<ContainerJson>,
    #[serde(default)]
    volumes: Vec<VolumeJson>,
    #[serde(default)]
    service_account_name: Option<String>,
    #[serde(default)]
    timeout_seconds: Option<i64>,
    #[serde(default)]
    container_concurrency: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContainerJson {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    command: Vec<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    working_dir: Option<String>,
    #[serde(default)]
    env: Vec<EnvJson>,
    #[serde(default)]
    ports: Vec<PortJson>,
    #[serde(default)]
    resources: ResourcesJson,
    #[serde(default)]
    volume_mounts: Vec<VolumeMountJson>,
    #[serde(default)]
    startup_probe: Option<ProbeJson>,
    #[serde(default)]
    liveness_probe: Option<ProbeJson>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EnvJson {
    #[serde(default)]
    name: String,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    value_from: Option<ValueFromJson>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ValueFromJson {
    #[serde(default)]
    secret_key_ref: Option<SecretKeyRefJson>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SecretKeyRefJson {
    #[serde(default)]
    name: String,
    #[serde(default)]
    key: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PortJson {
    #[serde(default)]
    container_port: Option<u16>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResourcesJson {
    #[serde(default)]
    limits: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct VolumeMountJson {
    #[serde(default)]
    name: String,
    #[serde(default)]
    mount_path: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProbeJson {
    #[serde(default)]
    initial_delay_seconds: Option<u32>,
    #[serde(default)]
    timeout_seconds: Option<u32>,
    #[serde(default)]
    period_seconds: Option<u32>,
    #[serde(default)]
    failure_threshold: Option<u32>,
    #[serde(default)]
    http_get: Option<HttpGetJson>,
    #[serde(default)]
    tcp_socket: Option<PortOnlyJson>,
    #[serde(default)]
    grpc: Option<GrpcJson>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HttpGetJson {
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    http_headers: Vec<HeaderJson>,
}

#[derive(Debug, Default, Deserialize)]
struct HeaderJson {
    #[serde(default)]
    name: String,
    #[serde(default)]
    value: String,
}

#[derive(Debug, Default, Deserialize)]
struct PortOnlyJson {
    #[serde(default)]
    port: Option<u16>,
}

#[derive(Debug, Default, Deserialize)]
struct GrpcJson {
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    service: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct VolumeJson {
    #[serde(default)]
    name: String,
    #[serde(default)]
    secret: Option<SecretVolumeJson>,
    #[serde(default)]
    empty_dir: Option<EmptyDirJson>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SecretVolumeJson {
    #[serde(default)]
    secret_name: String,
    #[serde(default)]
    items: Vec<KeyToPathJson>,
    #[serde(default)]
    default_mode: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
struct KeyToPathJson {
    #[serde(default)]
    key: String,
    #[serde(default)]
    path: String,
    #[serde(default)]
    mode: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EmptyDirJson {
    #[serde(default)]
    size_limit: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TrafficJson {
    #[serde(default)]
    revision_name: Option<String>,
    #[serde(default)]
    latest_revision: Option<bool>,
    #[serde(default)]
    percent: Option<i64>,
    #[serde(default)]
    tag: Option<String>,
}

fn invalid(field: &str, error: impl std::fmt::Display) -> ApiError {
    ApiError::invalid(format!("{field}: {error}"))
}

/// Parses `spec.template`.
pub fn parse_template(json: &Value) -> Result<RevisionTemplate, ApiError> {
    let parsed: TemplateJson = serde_json::from_value(json.clone())
        .map_err(|e| invalid("spec.template", format!("Invalid value: {e}")))?;
    let aliases = secret_aliases(&parsed.metadata.annotations)?;
    let containers = parsed
        .spec
        .containers
        .into_iter()
        .enumerate()
        .map(|(i, c)| container(i, c, &aliases))
        .collect::<Result<Vec<_>, _>>()?;
    let volumes = parsed
        .spec
        .volumes
        .into_iter()
        .enumerate()
        .map(|(i, v)| volume(i, v, &aliases))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RevisionTemplate {
        name: parsed.metadata.name.filter(|n| !n.is_empty()),
        annotations: parsed.metadata.annotations,
        containers,
        volumes,
        service_account: parsed.spec.service_account_name.filter(|s| !s.is_empty()),
        timeout_seconds: parsed.spec.timeout_seconds,
        container_concurrency: parsed.spec.container_concurrency,
    })
}

fn secret_aliases(
    annotations: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, ApiError> {
    let mut out = BTreeMap::new();
    if let Some(text) = annotations.get(SECRETS_ANNOTATION) {
        for entry in text.split(',').filter(|e| !e.trim().is_empty()) {
            let (alias, target) = entry.trim().split_once(':').ok_or_else(|| {
                invalid(
                    &format!("spec.template.metadata.annotations[{SECRETS_ANNOTATION}]"),
                    format!(
                        "Invalid entry '{entry}': expected alias:projects/NUMBER/secrets/NAME."
                    ),
                )
            })?;
            out.insert(alias.to_string(), target.to_string());
        }
    }
    Ok(out)
}

fn container(
    i: usize,
    c: ContainerJson,
    aliases: &BTreeMap<String, String>,
) -> Result<Container, ApiError> {
    let field = format!("spec.template.spec.containers[{i}]");
    let env = c
        .env
        .into_iter()
        .enumerate()
        .map(|(j, e)| {
            let field = format!("{field}.env[{j}]");
            if e.name.is_empty() {
                return Err(invalid(
                    &field,
                    "Environment variable name must not be empty.",
                ));
            }
            let source = match (e.value, e.value_from.and_then(|v| v.secret_key_ref)) {
                (Some(_), Some(_)) => {
                    return Err(invalid(
                        &field,
                        "Only one of value and valueFrom may be set.",
                    ));
                }
                (_, Some(secret)) => {
                    if secret.name.is_empty() {
                        return Err(invalid(
                            &format!("{field}.value_from.secret_key_ref.name"),
                            "Secret name must be specified.",
                        ));
                    }
                    EnvSource::Secret {
                        secret: aliases.get(&secret.name).cloned().unwrap_or(secret.name),
                        version: if secret.key.is_empty() {
                            "latest".into()
                        } else {
                            secret.key
                        },
                    }
                }
                (value, None) => EnvSource::Value(value.unwrap_or_default()),
            };
            Ok(EnvVar {
                name: e.name,
                source,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let ports = c
        .ports
        .into_iter()
        .map(|p| p.container_port.unwrap_or(crate::state::run::DEFAULT_PORT))
        .collect();
    Ok(Container {
        name: c.name.unwrap_or_default(),
        image: c.image.unwrap_or_default(),
        command: c.command,
        args: c.args,
        working_dir: c.working_dir.filter(|w| !w.is_empty()),
        env,
        ports,
        cpu: c.resources.limits.get("cpu").cloned(),
        memory: c.resources.limits.get("memory").cloned(),
        volume_mounts: c
            .volume_mounts
            .into_iter()
            .map(|m| (m.name, m.mount_path))
            .collect(),
        startup_probe: c.startup_probe.map(|p| probe(&field, p)).transpose()?,
        liveness_probe: c.liveness_probe.map(|p| probe(&field, p)).transpose()?,
    })
}

fn probe(field: &str, p: ProbeJson) -> Result<Probe, ApiError> {
    let check = match (p.http_get, p.tcp_socket, p.grpc) {
        (Some(http), None, None) => ProbeCheck::Http {
            port: http.port,
            path: http
                .path
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| "/".into()),
            headers: http
                .http_headers
                .into_iter()
                .map(|h| (h.name, h.value))
                .collect(),
        },
        (None, Some(tcp), None) => ProbeCheck::Tcp { port: tcp.port },
        (None, None, Some(grpc)) => ProbeCheck::Grpc {
            port: grpc.port,
            service: grpc.service,
        },
        _ => {
            return Err(invalid(
                field,
                "A probe must set exactly one of httpGet, tcpSocket and grpc.",
            ));
        }
    };
    Ok(Probe {
        check,
        initial_delay_seconds: p.initial_delay_seconds.unwrap_or(0),
        timeout_seconds: p.timeout_seconds.unwrap_or(1),
        period_seconds: p.period_seconds.unwrap_or(10),
        failure_threshold: p.failure_threshold.unwrap_or(3),
    })
}

fn volume(i: usize, v: VolumeJson, aliases: &BTreeMap<String, String>) -> Result<Volume, ApiError> {
    let field = format!("spec.template.spec.volumes[{i}]");
    let source = match (v.secret, v.empty_dir) {
        (Some(secret), None) => {
            if secret.secret_name.is_empty() {
                return Err(invalid(&field, "secret.secretName must be specified."));
            }
            VolumeSource::Secret {
                secret: aliases
                    .get(&secret.secret_name)
                    .cloned()
                    .unwrap_or(secret.secret_name),
                items: secret
                    .items
                    .into_iter()
                    .map(|item| SecretItem {
                        version: if item.key.is_empty() {
                            "latest".into()
                        } else {
                            item.key
                        },
                        path: item.path,
                        mode: item.mode,
                    })
                    .collect(),
                default_mode: secret.default_mode,
            }
        }
        (None, Some(dir)) => VolumeSource::EmptyDir {
            size_limit: dir.size_limit,
        },
        _ => {
            return Err(invalid(
                &field,
                "A volume must set exactly one of secret and emptyDir.",
            ));
        }
    };
    if v.name.is_empty() {
        return Err(invalid(&field, "Volume name must be specified."));
    }
    Ok(Volume {
        name: v.name,
        source,
    })
}

/// Parses `spec.traffic`.
pub fn parse_traffic(json: Option<&Value>) -> Result<Vec<TrafficTarget>, ApiError> {
    let Some(json) = json.filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let targets: Vec<TrafficJson> = serde_json::from_value(json.clone())
        .map_err(|e| invalid("spec.traffic", format!("Invalid value: {e}")))?;
    Ok(targets
        .into_iter()
        .map(|t| TrafficTarget {
            revision: t.revision_name.filter(|r| !r.is_empty()),
            latest: t.latest_revision.unwrap_or(false),
            percent: t.percent,
            tag: t.tag.filter(|t| !t.is_empty()),
        })
        .collect())
}
