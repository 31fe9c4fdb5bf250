//! The v2 `RevisionTemplate` and the state's typed [`RevisionTemplate`], both ways, plus the
//! Knative (v1) template JSON the state keeps for v1 reads of a service written through v2.
//! Form only (types, one-of fields, reserved annotations); Cloud Run's rules stay in the state.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value, json};

use super::enums::{EXECUTION_ENVIRONMENT, Encoding, MEDIUM};
use crate::error::ApiError;
use crate::state::run::{
    Container, DEFAULT_PORT, DEPENDENCIES_ANNOTATION, EnvSource, EnvVar, Probe, ProbeCheck,
    RevisionTemplate, SecretItem, Volume, VolumeSource, parse_dependencies,
};
use crate::wire;

/// The annotation namespaces v2 reserves for Cloud Run itself.
const RESERVED: [&str; 4] = [
    "run.googleapis.com/",
    "cloud.googleapis.com/",
    "serving.knative.dev/",
    "autoscaling.knative.dev/",
];
const MIN_SCALE: &str = "autoscaling.knative.dev/minScale";
const MAX_SCALE: &str = "autoscaling.knative.dev/maxScale";
const EXECUTION_ENV: &str = "run.googleapis.com/execution-environment";
/// The template annotations v2 writes from its own fields; the other reserved ones a v1 client
/// set survive a v2 update.
const CONTROLLED: [&str; 4] = [DEPENDENCIES_ANNOTATION, MIN_SCALE, MAX_SCALE, EXECUTION_ENV];

/// Whether a label or annotation key is in a namespace v2 reserves.
pub fn is_reserved(key: &str) -> bool {
    RESERVED.iter().any(|prefix| key.starts_with(prefix))
}

/// Refuses user labels or annotations in the namespaces v2 reserves, in Cloud Run's words.
pub fn check_reserved(field: &str, map: &BTreeMap<String, String>) -> Result<(), ApiError> {
    match map.keys().find(|k| is_reserved(k)) {
        Some(key) => Err(ApiError::invalid(format!(
            "{field}: Unsupported key '{key}': Cloud Run API v2 does not support {field} with \
             `run.googleapis.com`, `cloud.googleapis.com`, `serving.knative.dev`, or \
             `autoscaling.knative.dev` namespaces; use the matching v2 fields instead."
        ))),
        None => Ok(()),
    }
}

/// The user part of a map: what v2 shows as `labels` / `annotations`.
pub fn unreserved(map: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    map.iter()
        .filter(|(k, _)| !is_reserved(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Absent and `null` both read as the type's default, as proto3 JSON does.
pub fn nullable<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(
    d: D,
) -> Result<T, D::Error> {
    Option::<T>::deserialize(d).map(Option::unwrap_or_default)
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TemplateV2 {
    revision: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    labels: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "nullable")]
    annotations: BTreeMap<String, String>,
    scaling: Option<ScalingV2>,
    timeout: Option<String>,
    service_account: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    containers: Vec<ContainerV2>,
    #[serde(default, deserialize_with = "nullable")]
    volumes: Vec<VolumeV2>,
    execution_environment: Option<Value>,
    max_instance_request_concurrency: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScalingV2 {
    min_instance_count: Option<i64>,
    max_instance_count: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContainerV2 {
    name: Option<String>,
    image: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    command: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    args: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    env: Vec<EnvV2>,
    resources: Option<ResourcesV2>,
    #[serde(default, deserialize_with = "nullable")]
    ports: Vec<PortV2>,
    #[serde(default, deserialize_with = "nullable")]
    volume_mounts: Vec<MountV2>,
    working_dir: Option<String>,
    liveness_probe: Option<ProbeV2>,
    startup_probe: Option<ProbeV2>,
    readiness_probe: Option<Value>,
    #[serde(default, deserialize_with = "nullable")]
    depends_on: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EnvV2 {
    #[serde(default, deserialize_with = "nullable")]
    name: String,
    value: Option<String>,
    value_source: Option<ValueSourceV2>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ValueSourceV2 {
    secret_key_ref: Option<SecretKeyRefV2>,
}

#[derive(Debug, Default, Deserialize)]
struct SecretKeyRefV2 {
    #[serde(default, deserialize_with = "nullable")]
    secret: String,
    version: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct ResourcesV2 {
    #[serde(default, deserialize_with = "nullable")]
    limits: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PortV2 {
    container_port: Option<u16>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MountV2 {
    #[serde(default, deserialize_with = "nullable")]
    name: String,
    #[serde(default, deserialize_with = "nullable")]
    mount_path: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProbeV2 {
    initial_delay_seconds: Option<u32>,
    timeout_seconds: Option<u32>,
    period_seconds: Option<u32>,
    failure_threshold: Option<u32>,
    http_get: Option<HttpGetV2>,
    tcp_socket: Option<PortOnlyV2>,
    grpc: Option<GrpcV2>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HttpGetV2 {
    path: Option<String>,
    port: Option<u16>,
    #[serde(default, deserialize_with = "nullable")]
    http_headers: Vec<HeaderV2>,
}

#[derive(Debug, Default, Deserialize)]
struct HeaderV2 {
    #[serde(default, deserialize_with = "nullable")]
    name: String,
    #[serde(default, deserialize_with = "nullable")]
    value: String,
}

#[derive(Debug, Default, Deserialize)]
struct PortOnlyV2 {
    port: Option<u16>,
}

#[derive(Debug, Default, Deserialize)]
struct GrpcV2 {
    port: Option<u16>,
    service: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct VolumeV2 {
    #[serde(default, deserialize_with = "nullable")]
    name: String,
    secret: Option<SecretVolumeV2>,
    empty_dir: Option<EmptyDirV2>,
    cloud_sql_instance: Option<Value>,
    nfs: Option<Value>,
    gcs: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SecretVolumeV2 {
    #[serde(default, deserialize_with = "nullable")]
    secret: String,
    #[serde(default, deserialize_with = "nullable")]
    items: Vec<SecretItemV2>,
    default_mode: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
struct SecretItemV2 {
    #[serde(default, deserialize_with = "nullable")]
    path: String,
    version: Option<String>,
    mode: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EmptyDirV2 {
    medium: Option<Value>,
    size_limit: Option<String>,
}

fn invalid(field: &str, error: impl std::fmt::Display) -> ApiError {
    ApiError::invalid(format!("{field}: {error}"))
}

fn non_empty(text: Option<String>) -> Option<String> {
    text.filter(|t| !t.is_empty())
}

/// A parsed v2 template: the typed template and the template labels (which the typed template
/// does not carry; they live in the stored template JSON).
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedTemplate {
    pub template: RevisionTemplate,
    pub labels: BTreeMap<String, String>,
}

/// Parses `service.template`; `current` is the template being replaced, whose reserved
/// annotations that v2 does not control are kept.
pub fn parse_template(
    json: &Value,
    current: Option<&RevisionTemplate>,
) -> Result<ParsedTemplate, ApiError> {
    let parsed: TemplateV2 = serde_json::from_value(json.clone())
        .map_err(|e| invalid("service.template", format!("Invalid value: {e}")))?;
    check_reserved("template.labels", &parsed.labels)?;
    check_reserved("template.annotations", &parsed.annotations)?;
    let mut annotations = parsed.annotations;
    if let Some(current) = current {
        for (key, value) in &current.annotations {
            if is_reserved(key) && !CONTROLLED.contains(&key.as_str()) {
                annotations.insert(key.clone(), value.clone());
            }
        }
    }
    if let Some(scaling) = &parsed.scaling {
        if let Some(min) = scaling.min_instance_count.filter(|n| *n > 0) {
            annotations.insert(MIN_SCALE.into(), min.to_string());
        }
        if let Some(max) = scaling.max_instance_count.filter(|n| *n > 0) {
            annotations.insert(MAX_SCALE.into(), max.to_string());
        }
    }
    match EXECUTION_ENVIRONMENT.parse(
        "template.execution_environment",
        parsed.execution_environment.as_ref(),
    )? {
        Some("EXECUTION_ENVIRONMENT_GEN1") => {
            annotations.insert(EXECUTION_ENV.into(), "gen1".into());
        }
        Some("EXECUTION_ENVIRONMENT_GEN2") => {
            annotations.insert(EXECUTION_ENV.into(), "gen2".into());
        }
        _ => {}
    }
    let mut dependencies = BTreeMap::new();
    let mut containers = Vec::new();
    for (i, c) in parsed.containers.into_iter().enumerate() {
        let (container, depends_on) = container(i, c)?;
        if !depends_on.is_empty() {
            if container.name.is_empty() {
                return Err(invalid(
                    &format!("template.containers[{i}].depends_on"),
                    "A container with dependencies must be named.",
                ));
            }
            dependencies.insert(container.name.clone(), depends_on);
        }
        containers.push(container);
    }
    if !dependencies.is_empty() {
        let text = serde_json::to_string(&dependencies)
            .map_err(|e| invalid("template.containers.depends_on", e))?;
        annotations.insert(DEPENDENCIES_ANNOTATION.into(), text);
    }
    let volumes = parsed
        .volumes
        .into_iter()
        .enumerate()
        .map(|(i, v)| volume(i, v))
        .collect::<Result<Vec<_>, _>>()?;
    let timeout_seconds = non_empty(parsed.timeout)
        .map(|t| {
            wire::parse_duration("template.timeout", &t).map(|d| {
                // Cloud Run counts whole seconds; a fraction rounds up.
                i64::try_from(d.as_secs()).unwrap_or(i64::MAX) + i64::from(d.subsec_nanos() > 0)
            })
        })
        .transpose()?;
    Ok(ParsedTemplate {
        template: RevisionTemplate {
            name: non_empty(parsed.revision),
            annotations,
            containers,
            volumes,
            service_account: non_empty(parsed.service_account),
            timeout_seconds,
            container_concurrency: parsed.max_instance_request_concurrency.filter(|n| *n > 0),
        },
        labels: parsed.labels,
    })
}

fn container(i: usize, c: ContainerV2) -> Result<(Container, Vec<String>), ApiError> {
    let field = format!("template.containers[{i}]");
    if c.readiness_probe.as_ref().is_some_and(|p| !p.is_null()) {
        return Err(invalid(
            &format!("{field}.readiness_probe"),
            "Readiness probes are not supported by the emulator.",
        ));
    }
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
            let source = match (e.value, e.value_source.and_then(|v| v.secret_key_ref)) {
                (Some(value), Some(_)) if !value.is_empty() => {
                    return Err(invalid(
                        &field,
                        "Only one of value and value_source may be set.",
                    ));
                }
                (_, Some(secret)) => {
                    if secret.secret.is_empty() {
                        return Err(invalid(
                            &format!("{field}.value_source.secret_key_ref.secret"),
                            "Secret name must be specified.",
                        ));
                    }
                    EnvSource::Secret {
                        secret: secret.secret,
                        version: non_empty(secret.version).unwrap_or_else(|| "latest".into()),
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
    let limits = c.resources.map(|r| r.limits).unwrap_or_default();
    let container = Container {
        name: c.name.unwrap_or_default(),
        image: c.image.unwrap_or_default(),
        command: c.command,
        args: c.args,
        working_dir: non_empty(c.working_dir),
        env,
        ports: c
            .ports
            .into_iter()
            .map(|p| p.container_port.unwrap_or(DEFAULT_PORT))
            .collect(),
        cpu: limits.get("cpu").cloned(),
        memory: limits.get("memory").cloned(),
        volume_mounts: c
            .volume_mounts
            .into_iter()
            .map(|m| (m.name, m.mount_path))
            .collect(),
        startup_probe: c.startup_probe.map(|p| probe(&field, p)).transpose()?,
        liveness_probe: c.liveness_probe.map(|p| probe(&field, p)).transpose()?,
    };
    Ok((container, c.depends_on))
}

fn probe(field: &str, p: ProbeV2) -> Result<Probe, ApiError> {
    let check = match (p.http_get, p.tcp_socket, p.grpc) {
        (Some(http), None, None) => ProbeCheck::Http {
            port: http.port.filter(|p| *p > 0),
            path: non_empty(http.path).unwrap_or_else(|| "/".into()),
            headers: http
                .http_headers
                .into_iter()
                .map(|h| (h.name, h.value))
                .collect(),
        },
        (None, Some(tcp), None) => ProbeCheck::Tcp {
            port: tcp.port.filter(|p| *p > 0),
        },
        (None, None, Some(grpc)) => ProbeCheck::Grpc {
            port: grpc.port.filter(|p| *p > 0),
            service: non_empty(grpc.service),
        },
        _ => {
            return Err(invalid(
                field,
                "A probe must set exactly one of http_get, tcp_socket and grpc.",
            ));
        }
    };
    Ok(Probe {
        check,
        initial_delay_seconds: p.initial_delay_seconds.unwrap_or(0),
        timeout_seconds: p.timeout_seconds.filter(|n| *n > 0).unwrap_or(1),
        period_seconds: p.period_seconds.filter(|n| *n > 0).unwrap_or(10),
        failure_threshold: p.failure_threshold.filter(|n| *n > 0).unwrap_or(3),
    })
}

fn volume(i: usize, v: VolumeV2) -> Result<Volume, ApiError> {
    let field = format!("template.volumes[{i}]");
    if v.cloud_sql_instance.is_some() || v.nfs.is_some() || v.gcs.is_some() {
        return Err(invalid(
            &field,
            "The emulator supports secret and empty_dir volumes only.",
        ));
    }
    let source = match (v.secret, v.empty_dir) {
        (Some(secret), None) => {
            if secret.secret.is_empty() {
                return Err(invalid(&field, "secret.secret must be specified."));
            }
            VolumeSource::Secret {
                secret: secret.secret,
                items: secret
                    .items
                    .into_iter()
                    .map(|item| SecretItem {
                        version: non_empty(item.version).unwrap_or_else(|| "latest".into()),
                        path: item.path,
                        mode: item.mode.filter(|m| *m > 0),
                    })
                    .collect(),
                default_mode: secret.default_mode.filter(|m| *m > 0),
            }
        }
        (None, Some(dir)) => {
            MEDIUM.parse(&format!("{field}.empty_dir.medium"), dir.medium.as_ref())?;
            VolumeSource::EmptyDir {
                size_limit: non_empty(dir.size_limit),
            }
        }
        _ => {
            return Err(invalid(
                &field,
                "A volume must set exactly one of secret and empty_dir.",
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

/// Whether `new` (container names possibly left to the server) is the template `current` runs,
/// with the same labels: then an update mints no revision.
pub fn same_template(
    new: &ParsedTemplate,
    current: &RevisionTemplate,
    current_json: &Value,
) -> bool {
    let mut named = new.template.clone();
    for (container, existing) in named.containers.iter_mut().zip(&current.containers) {
        if container.name.is_empty() {
            container.name = existing.name.clone();
        }
    }
    named == *current && new.labels == labels_of(current_json)
}

/// The template labels kept in a stored (v1-shaped) template JSON.
pub fn labels_of(template_json: &Value) -> BTreeMap<String, String> {
    template_json
        .pointer("/metadata/labels")
        .and_then(|l| serde_json::from_value(l.clone()).ok())
        .unwrap_or_default()
}

fn probe_json(probe: &Probe) -> Value {
    let mut out = json!({
        "initialDelaySeconds": probe.initial_delay_seconds,
        "timeoutSeconds": probe.timeout_seconds,
        "periodSeconds": probe.period_seconds,
        "failureThreshold": probe.failure_threshold,
    });
    let with_port = |mut check: Value, port: Option<u16>| {
        if let Some(port) = port {
            check["port"] = json!(port);
        }
        check
    };
    match &probe.check {
        ProbeCheck::Http {
            port,
            path,
            headers,
        } => {
            let mut check = json!({ "path": path });
            if !headers.is_empty() {
                check["httpHeaders"] = headers
                    .iter()
                    .map(|(name, value)| json!({"name": name, "value": value}))
                    .collect();
            }
            out["httpGet"] = with_port(check, *port);
        }
        ProbeCheck::Tcp { port } => out["tcpSocket"] = with_port(json!({}), *port),
        ProbeCheck::Grpc { port, service } => {
            let mut check = json!({});
            if let Some(service) = service {
                check["service"] = json!(service);
            }
            out["grpc"] = with_port(check, *port);
        }
    }
    out
}

fn insert_list<T>(out: &mut Map<String, Value>, key: &str, items: &[T], f: impl Fn(&T) -> Value) {
    if !items.is_empty() {
        out.insert(key.into(), items.iter().map(f).collect());
    }
}

fn limits_json(container: &Container) -> Option<Value> {
    let mut limits = Map::new();
    if let Some(cpu) = &container.cpu {
        limits.insert("cpu".into(), json!(cpu));
    }
    if let Some(memory) = &container.memory {
        limits.insert("memory".into(), json!(memory));
    }
    (!limits.is_empty()).then(|| json!({ "limits": limits }))
}

/// A typed template as v2 writes it (`labels` from the stored template JSON).
pub fn template_v2_json(
    template: &RevisionTemplate,
    labels: &BTreeMap<String, String>,
    enums: Encoding,
) -> Value {
    let mut out = Map::new();
    if let Some(name) = &template.name {
        out.insert("revision".into(), json!(name));
    }
    let user_labels = unreserved(labels);
    if !user_labels.is_empty() {
        out.insert("labels".into(), json!(user_labels));
    }
    let annotations = unreserved(&template.annotations);
    if !annotations.is_empty() {
        out.insert("annotations".into(), json!(annotations));
    }
    let scale = |key: &str| {
        template
            .annotations
            .get(key)
            .and_then(|v| v.parse::<i64>().ok())
    };
    let mut scaling = Map::new();
    if let Some(min) = scale(MIN_SCALE) {
        scaling.insert("minInstanceCount".into(), json!(min));
    }
    if let Some(max) = scale(MAX_SCALE) {
        scaling.insert("maxInstanceCount".into(), json!(max));
    }
    if !scaling.is_empty() {
        out.insert("scaling".into(), Value::Object(scaling));
    }
    if let Some(seconds) = template.timeout_seconds {
        out.insert("timeout".into(), json!(format!("{seconds}s")));
    }
    if let Some(account) = &template.service_account {
        out.insert("serviceAccount".into(), json!(account));
    }
    let dependencies = template
        .annotations
        .get(DEPENDENCIES_ANNOTATION)
        .and_then(|text| parse_dependencies(text).ok())
        .unwrap_or_default();
    let containers: Vec<Value> = template
        .containers
        .iter()
        .map(|c| container_v2_json(c, dependencies.get(&c.name)))
        .collect();
    out.insert("containers".into(), json!(containers));
    insert_list(&mut out, "volumes", &template.volumes, |v| {
        volume_json(v, enums, true)
    });
    match template.annotations.get(EXECUTION_ENV).map(String::as_str) {
        Some("gen1") => {
            out.insert(
                "executionEnvironment".into(),
                enums.write(&EXECUTION_ENVIRONMENT, "EXECUTION_ENVIRONMENT_GEN1"),
            );
        }
        Some("gen2") => {
            out.insert(
                "executionEnvironment".into(),
                enums.write(&EXECUTION_ENVIRONMENT, "EXECUTION_ENVIRONMENT_GEN2"),
            );
        }
        _ => {}
    }
    if let Some(concurrency) = template.container_concurrency {
        out.insert("maxInstanceRequestConcurrency".into(), json!(concurrency));
    }
    Value::Object(out)
}

/// The container fields of a revision or template, v2 shape.
pub fn container_v2_json(c: &Container, depends_on: Option<&Vec<String>>) -> Value {
    let mut out = Map::new();
    out.insert("name".into(), json!(c.name));
    out.insert("image".into(), json!(c.image));
    insert_list(&mut out, "command", &c.command, |s| json!(s));
    insert_list(&mut out, "args", &c.args, |s| json!(s));
    insert_list(&mut out, "env", &c.env, |e| match &e.source {
        EnvSource::Value(value) => json!({"name": e.name, "value": value}),
        EnvSource::Secret { secret, version } => json!({
            "name": e.name,
            "valueSource": {"secretKeyRef": {"secret": secret, "version": version}},
        }),
    });
    if let Some(resources) = limits_json(c) {
        out.insert("resources".into(), resources);
    }
    insert_list(
        &mut out,
        "ports",
        &c.ports,
        |p| json!({"name": "http1", "containerPort": p}),
    );
    insert_list(
        &mut out,
        "volumeMounts",
        &c.volume_mounts,
        |(name, path)| json!({"name": name, "mountPath": path}),
    );
    if let Some(dir) = &c.working_dir {
        out.insert("workingDir".into(), json!(dir));
    }
    if let Some(probe) = &c.liveness_probe {
        out.insert("livenessProbe".into(), probe_json(probe));
    }
    if let Some(probe) = &c.startup_probe {
        out.insert("startupProbe".into(), probe_json(probe));
    }
    if let Some(depends_on) = depends_on.filter(|d| !d.is_empty()) {
        out.insert("dependsOn".into(), json!(depends_on));
    }
    Value::Object(out)
}

/// A volume, in the v2 shape (`v2`) or the Knative one.
pub fn volume_json(volume: &Volume, enums: Encoding, v2: bool) -> Value {
    match &volume.source {
        VolumeSource::EmptyDir { size_limit } => {
            let mut dir = if v2 {
                json!({"medium": enums.write(&MEDIUM, "MEMORY")})
            } else {
                json!({"medium": "Memory"})
            };
            if let Some(limit) = size_limit {
                dir["sizeLimit"] = json!(limit);
            }
            json!({"name": volume.name, "emptyDir": dir})
        }
        VolumeSource::Secret {
            secret,
            items,
            default_mode,
        } => {
            let items: Vec<Value> = items
                .iter()
                .map(|item| {
                    let mut out = if v2 {
                        json!({"path": item.path, "version": item.version})
                    } else {
                        json!({"path": item.path, "key": item.version})
                    };
                    if let Some(mode) = item.mode {
                        out["mode"] = json!(mode);
                    }
                    out
                })
                .collect();
            let mut source = if v2 {
                json!({ "secret": secret })
            } else {
                json!({ "secretName": secret })
            };
            if !items.is_empty() {
                source["items"] = json!(items);
            }
            if let Some(mode) = default_mode {
                source["defaultMode"] = json!(mode);
            }
            json!({"name": volume.name, "secret": source})
        }
    }
}

/// The Knative `spec.template` the state stores for a template written through v2, so v1 reads
/// (`gcloud run services describe`) show it as if a v1 client had sent it.
pub fn knative_template_json(parsed: &ParsedTemplate) -> Value {
    let template = &parsed.template;
    let mut metadata = Map::new();
    if let Some(name) = &template.name {
        metadata.insert("name".into(), json!(name));
    }
    if !parsed.labels.is_empty() {
        metadata.insert("labels".into(), json!(parsed.labels));
    }
    if !template.annotations.is_empty() {
        metadata.insert("annotations".into(), json!(template.annotations));
    }
    let containers: Vec<Value> = template
        .containers
        .iter()
        .map(|c| {
            let mut out = Map::new();
            if !c.name.is_empty() {
                out.insert("name".into(), json!(c.name));
            }
            out.insert("image".into(), json!(c.image));
            insert_list(&mut out, "command", &c.command, |s| json!(s));
            insert_list(&mut out, "args", &c.args, |s| json!(s));
            if let Some(dir) = &c.working_dir {
                out.insert("workingDir".into(), json!(dir));
            }
            insert_list(&mut out, "env", &c.env, |e| match &e.source {
                EnvSource::Value(value) => json!({"name": e.name, "value": value}),
                EnvSource::Secret { secret, version } => json!({
                    "name": e.name,
                    "valueFrom": {"secretKeyRef": {"name": secret, "key": version}},
                }),
            });
            insert_list(
                &mut out,
                "ports",
                &c.ports,
                |p| json!({"name": "http1", "containerPort": p}),
            );
            if let Some(resources) = limits_json(c) {
                out.insert("resources".into(), resources);
            }
            insert_list(
                &mut out,
                "volumeMounts",
                &c.volume_mounts,
                |(name, path)| json!({"name": name, "mountPath": path}),
            );
            if let Some(probe) = &c.startup_probe {
                out.insert("startupProbe".into(), probe_json(probe));
            }
            if let Some(probe) = &c.liveness_probe {
                out.insert("livenessProbe".into(), probe_json(probe));
            }
            Value::Object(out)
        })
        .collect();
    let mut spec = Map::new();
    if let Some(concurrency) = template.container_concurrency {
        spec.insert("containerConcurrency".into(), json!(concurrency));
    }
    if let Some(seconds) = template.timeout_seconds {
        spec.insert("timeoutSeconds".into(), json!(seconds));
    }
    if let Some(account) = &template.service_account {
        spec.insert("serviceAccountName".into(), json!(account));
    }
    spec.insert("containers".into(), json!(containers));
    insert_list(&mut spec, "volumes", &template.volumes, |v| {
        volume_json(v, Encoding { ints: false }, false)
    });
    json!({"metadata": metadata, "spec": spec})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_v2_template_maps_to_the_state_and_back() {
        let json = json!({
            "revision": "web-v1",
            "labels": {"team": "a"},
            "scaling": {"maxInstanceCount": 3},
            "timeout": "30s",
            "maxInstanceRequestConcurrency": 10,
            "containers": [
                {"name": "app", "image": "img", "ports": [{"containerPort": 9000}],
                 "env": [{"name": "A", "value": "1"},
                         {"name": "S", "valueSource": {"secretKeyRef": {"secret": "db"}}}],
                 "dependsOn": ["side"]},
                {"name": "side", "image": "img2",
                 "startupProbe": {"tcpSocket": {"port": 5000}}}
            ],
            "volumes": [{"name": "tmp", "emptyDir": {"medium": 1, "sizeLimit": "1Mi"}}]
        });
        let parsed = parse_template(&json, None).expect("parses");
        let t = &parsed.template;
        assert_eq!(t.name.as_deref(), Some("web-v1"));
        assert_eq!(t.timeout_seconds, Some(30));
        assert_eq!(t.containers[0].ports, vec![9000]);
        assert_eq!(
            t.annotations
                .get(DEPENDENCIES_ANNOTATION)
                .map(String::as_str),
            Some(r#"{"app":["side"]}"#)
        );
        assert_eq!(
            t.containers[0].env[1].source,
            EnvSource::Secret {
                secret: "db".into(),
                version: "latest".into()
            }
        );
        let back = template_v2_json(t, &parsed.labels, Encoding { ints: false });
        assert_eq!(back["containers"][0]["dependsOn"], json!(["side"]));
        assert_eq!(back["scaling"]["maxInstanceCount"], json!(3));
        assert_eq!(back["labels"], json!({"team": "a"}));
        assert!(
            back.get("annotations").is_none(),
            "reserved ones are fields"
        );
        let reparsed = parse_template(&back, Some(t)).expect("round trip");
        assert!(same_template(&reparsed, t, &knative_template_json(&parsed)));
        let v1 = knative_template_json(&parsed);
        assert_eq!(
            v1["spec"]["containers"][1]["startupProbe"]["tcpSocket"]["port"],
            json!(5000)
        );
        assert_eq!(v1["metadata"]["labels"]["team"], json!("a"));
    }

    #[test]
    fn reserved_annotations_and_unknown_enums_are_refused() {
        let reserved = json!({
            "annotations": {"run.googleapis.com/cpu-throttling": "false"},
            "containers": [{"image": "img"}]
        });
        let error = parse_template(&reserved, None).expect_err("refused");
        assert!(error.message.contains("run.googleapis.com/cpu-throttling"));
        let bad_medium = json!({
            "containers": [{"image": "img"}],
            "volumes": [{"name": "v", "emptyDir": {"medium": "DISK"}}]
        });
        assert!(parse_template(&bad_medium, None).is_err());
    }
}
