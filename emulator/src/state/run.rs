//! Cloud Run's resources and rules: Services, their Revisions, traffic and status.
//!
//! A Service holds the template clients send; every change of the template mints a Revision
//! (`SERVICE-NNNNN-xyz`). Revisions start Pending; the controller reports them Ready or Failed,
//! and the Service's conditions, latest revisions and traffic follow from that.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::iam::{Policy, PolicyUpdate};
use super::locations;
use super::projects::Project;
use super::{Data, Record, StateError, StateResult, Store, WriteMode};

/// Most containers one revision may have, ingress included.
pub const MAX_CONTAINERS: usize = 10;
/// Longest service name Cloud Run accepts.
const MAX_SERVICE_NAME: usize = 49;
/// The port of a lone container that declares none.
pub const DEFAULT_PORT: u16 = 8080;

/// `projects/NUMBER/locations/REGION/services/NAME`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ServiceName {
    pub project: String,
    pub region: String,
    pub name: String,
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "projects/{}/locations/{}/services/{}",
            self.project, self.region, self.name
        )
    }
}

/// A container's environment variable: a literal or a Secret Manager reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum EnvSource {
    Value(String),
    /// `secret` is a secret id, or `projects/P/secrets/S`; `version` a number or `latest`.
    Secret {
        secret: String,
        version: String,
    },
}

/// One environment variable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvVar {
    pub name: String,
    pub source: EnvSource,
}

/// What a probe checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ProbeCheck {
    Tcp {
        port: Option<u16>,
    },
    Http {
        port: Option<u16>,
        path: String,
        headers: Vec<(String, String)>,
    },
    Grpc {
        port: Option<u16>,
        service: Option<String>,
    },
}

/// A startup or liveness probe, with Cloud Run's defaults filled in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    pub check: ProbeCheck,
    pub initial_delay_seconds: u32,
    pub timeout_seconds: u32,
    pub period_seconds: u32,
    pub failure_threshold: u32,
}

/// A container of a revision template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Container {
    pub name: String,
    pub image: String,
    pub command: Vec<String>,
    pub args: Vec<String>,
    pub working_dir: Option<String>,
    pub env: Vec<EnvVar>,
    /// Declared container ports; the ingress container has exactly one.
    pub ports: Vec<u16>,
    pub cpu: Option<String>,
    pub memory: Option<String>,
    /// (volume name, mount path).
    pub volume_mounts: Vec<(String, String)>,
    pub startup_probe: Option<Probe>,
    pub liveness_probe: Option<Probe>,
}

/// A file of a secret volume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecretItem {
    /// Version: a number or `latest`.
    pub version: String,
    pub path: String,
    pub mode: Option<u32>,
}

/// A volume of a revision template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum VolumeSource {
    /// In-memory, shared between the containers that mount it.
    EmptyDir { size_limit: Option<String> },
    Secret {
        secret: String,
        items: Vec<SecretItem>,
        default_mode: Option<u32>,
    },
}

/// A named volume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Volume {
    pub name: String,
    pub source: VolumeSource,
}

/// What a revision runs: the typed part of `spec.template`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RevisionTemplate {
    /// `metadata.name`: a fixed revision name, `SERVICE-SUFFIX`.
    pub name: Option<String>,
    pub annotations: BTreeMap<String, String>,
    pub containers: Vec<Container>,
    pub volumes: Vec<Volume>,
    pub service_account: Option<String>,
    pub timeout_seconds: Option<i64>,
    pub container_concurrency: Option<i64>,
}

/// A traffic target of `spec.traffic`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrafficTarget {
    pub revision: Option<String>,
    pub latest: bool,
    pub percent: Option<i64>,
    pub tag: Option<String>,
}

/// A Service as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Service {
    pub name: ServiceName,
    /// The project id the service was written under (gcloud's namespace).
    pub project_id: String,
    pub uid: String,
    /// Bumped on every spec change.
    pub generation: i64,
    /// Bumped on every template change: the number in revision names.
    pub configuration_generation: i64,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// `spec.template` exactly as the client sent it, echoed back on reads.
    pub template_json: Value,
    pub template: RevisionTemplate,
    pub traffic: Vec<TrafficTarget>,
    /// The ingress port that serves the service's URL once assigned.
    pub url_port: Option<u16>,
    /// The ingress port of each traffic tag's own URL.
    #[serde(default)]
    pub tag_ports: BTreeMap<String, u16>,
}

/// Where a revision is in its life.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RevisionState {
    Pending,
    Ready,
    Failed { reason: String, message: String },
}

/// A Revision as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Revision {
    pub name: String,
    pub service: ServiceName,
    pub uid: String,
    pub configuration_generation: i64,
    pub create_time: DateTime<Utc>,
    pub template_json: Value,
    pub template: RevisionTemplate,
    pub state: RevisionState,
    pub ready_time: Option<DateTime<Utc>>,
}

impl Revision {
    /// `projects/N/locations/R/revisions/NAME`, the store key.
    pub fn key(&self) -> String {
        revision_key(&self.service, &self.name)
    }

    /// The container that receives requests and its port.
    pub fn ingress(&self) -> Option<(&Container, u16)> {
        ingress_of(&self.template.containers)
    }
}

fn revision_key(service: &ServiceName, revision: &str) -> String {
    format!(
        "projects/{}/locations/{}/revisions/{revision}",
        service.project, service.region
    )
}

/// The ingress container of a template and its port (8080 for a lone container without ports).
pub fn ingress_of(containers: &[Container]) -> Option<(&Container, u16)> {
    match containers {
        [only] => Some((only, only.ports.first().copied().unwrap_or(DEFAULT_PORT))),
        many => many
            .iter()
            .find_map(|c| c.ports.first().map(|port| (c, *port))),
    }
}

/// A service as clients write it: metadata and spec.
#[derive(Debug, Clone, Default)]
pub struct ServiceSpec {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub template_json: Value,
    pub template: RevisionTemplate,
    pub traffic: Vec<TrafficTarget>,
}

/// The computed status of a service.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceStatus {
    pub latest_created: Option<String>,
    pub latest_ready: Option<String>,
    /// (revision, percent, is the `latestRevision` target, tag).
    pub traffic: Vec<ResolvedTarget>,
    pub ready: Condition,
    pub configurations_ready: Condition,
    pub routes_ready: Condition,
}

/// A traffic target with its revision resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedTarget {
    pub revision: String,
    pub percent: i64,
    pub latest: bool,
    pub tag: Option<String>,
}

/// A status condition: True, False (with why) or Unknown.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub status: ConditionStatus,
    pub reason: Option<String>,
    pub message: Option<String>,
}

/// The three values a condition takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

impl ConditionStatus {
    /// As Knative writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionStatus::True => "True",
            ConditionStatus::False => "False",
            ConditionStatus::Unknown => "Unknown",
        }
    }
}

impl Condition {
    fn ok() -> Self {
        Condition {
            status: ConditionStatus::True,
            reason: None,
            message: None,
        }
    }

    fn unknown(reason: &str, message: String) -> Self {
        Condition {
            status: ConditionStatus::Unknown,
            reason: Some(reason.into()),
            message: Some(message),
        }
    }

    fn failed(reason: &str, message: String) -> Self {
        Condition {
            status: ConditionStatus::False,
            reason: Some(reason.into()),
            message: Some(message),
        }
    }
}

fn valid_dns_label(name: &str, max: usize) -> bool {
    !name.is_empty()
        && name.len() <= max
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn validate_service_name(name: &str) -> StateResult<()> {
    if valid_dns_label(name, MAX_SERVICE_NAME) {
        Ok(())
    } else {
        Err(StateError::invalid(format!(
            "metadata.name: Invalid service name '{name}': a service name must use only \
             lowercase alphanumeric characters and dashes, begin with a letter, not end with a \
             dash, and be at most {MAX_SERVICE_NAME} characters."
        )))
    }
}

fn validate_region(region: &str) -> StateResult<()> {
    if locations::is_region(region) {
        Ok(())
    } else {
        Err(StateError::invalid(format!(
            "Region '{region}' is not a Cloud Run region."
        )))
    }
}

/// Cloud Run's deploy-time checks of a template, worded as the real service words them.
fn validate_template(service: &str, template: &mut RevisionTemplate) -> StateResult<()> {
    let containers = &mut template.containers;
    let field = "spec.template.spec.containers";
    if containers.is_empty() {
        return Err(StateError::invalid(format!(
            "{field}: Revision template must contain at least one container."
        )));
    }
    if containers.len() > MAX_CONTAINERS {
        return Err(StateError::invalid(format!(
            "{field}: Revision template may contain at most {MAX_CONTAINERS} containers."
        )));
    }
    let lone = containers.len() == 1;
    for (i, container) in containers.iter_mut().enumerate() {
        if container.name.is_empty() {
            container.name = if lone {
                format!("{service}-1")
            } else {
                format!("{service}-{}", i + 1)
            };
        }
    }
    let mut names = BTreeSet::new();
    for (i, container) in containers.iter().enumerate() {
        if !valid_dns_label(&container.name, 63) {
            return Err(StateError::invalid(format!(
                "{field}[{i}].name: Invalid container name '{}': it must be a DNS label.",
                container.name
            )));
        }
        if !names.insert(container.name.as_str()) {
            return Err(StateError::invalid(format!(
                "{field}[{i}].name: Duplicate container name '{}'.",
                container.name
            )));
        }
        if container.image.trim().is_empty() {
            return Err(StateError::invalid(format!(
                "{field}[{i}].image: Image must be specified."
            )));
        }
        if let Some(liveness) = &container.liveness_probe
            && matches!(liveness.check, ProbeCheck::Tcp { .. })
        {
            return Err(StateError::invalid(format!(
                "{field}[{i}].liveness_probe: Cloud Run currently does not support TCP socket in \
                 liveness probe"
            )));
        }
        for probe in [&container.startup_probe, &container.liveness_probe]
            .into_iter()
            .flatten()
        {
            if probe.timeout_seconds >= probe.period_seconds {
                return Err(StateError::invalid(format!(
                    "{field}[{i}]: Probe timeoutSeconds must be smaller than periodSeconds."
                )));
            }
            if probe.failure_threshold == 0 {
                return Err(StateError::invalid(format!(
                    "{field}[{i}]: Probe failureThreshold must be at least 1."
                )));
            }
        }
        for (volume, path) in &container.volume_mounts {
            if !template.volumes.iter().any(|v| &v.name == volume) {
                return Err(StateError::invalid(format!(
                    "{field}[{i}].volume_mounts: Volume '{volume}' mounted at '{path}' is not \
                     defined in spec.template.spec.volumes."
                )));
            }
        }
    }
    let with_ports = containers.iter().filter(|c| !c.ports.is_empty()).count();
    if with_ports > 1 || (!lone && with_ports == 0) {
        return Err(StateError::invalid(format!(
            "{field}: Revision template should contain exactly one container with an exposed port"
        )));
    }
    if containers.iter().any(|c| c.ports.len() > 1) {
        return Err(StateError::invalid(format!(
            "{field}: A container may expose at most one port."
        )));
    }
    if let Some((i, ingress)) = containers
        .iter()
        .enumerate()
        .find(|(_, c)| lone || !c.ports.is_empty())
        && ingress.env.iter().any(|e| e.name == "PORT")
    {
        return Err(StateError::invalid(format!(
            "{field}[{i}].env: The following reserved env names were provided: PORT. These \
             values are automatically set by the system."
        )));
    }
    validate_dependencies(template)
}

/// The `run.googleapis.com/container-dependencies` annotation: `{"app":["sidecar"]}`.
pub const DEPENDENCIES_ANNOTATION: &str = "run.googleapis.com/container-dependencies";

/// Parses the dependencies annotation; accepts JSON and the YAML flow form `{app: [sidecar]}`.
pub fn parse_dependencies(text: &str) -> StateResult<BTreeMap<String, Vec<String>>> {
    if let Ok(map) = serde_json::from_str::<BTreeMap<String, Vec<String>>>(text) {
        return Ok(map);
    }
    let invalid = || {
        StateError::invalid(format!(
            "spec.template.metadata.annotations[{DEPENDENCIES_ANNOTATION}]: Invalid value \
             '{text}': expected a map from container name to a list of container names."
        ))
    };
    let inner = text
        .trim()
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .ok_or_else(invalid)?;
    let mut map = BTreeMap::new();
    let mut rest = inner.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once(':').ok_or_else(invalid)?;
        let after = after.trim_start().strip_prefix('[').ok_or_else(invalid)?;
        let (list, after) = after.split_once(']').ok_or_else(invalid)?;
        let unquote = |s: &str| s.trim().trim_matches(|c| c == '"' || c == '\'').to_string();
        map.insert(
            unquote(key),
            list.split(',')
                .map(unquote)
                .filter(|s| !s.is_empty())
                .collect(),
        );
        rest = after.trim_start().trim_start_matches(',').trim_start();
    }
    Ok(map)
}

fn validate_dependencies(template: &RevisionTemplate) -> StateResult<()> {
    let Some(text) = template.annotations.get(DEPENDENCIES_ANNOTATION) else {
        return Ok(());
    };
    let dependencies = parse_dependencies(text)?;
    let index = |name: &str| template.containers.iter().position(|c| c.name == name);
    for (dependent, needs) in &dependencies {
        let i = index(dependent).ok_or_else(|| {
            StateError::invalid(format!(
                "spec.template.metadata.annotations[{DEPENDENCIES_ANNOTATION}]: Container \
                 '{dependent}' does not exist."
            ))
        })?;
        for need in needs {
            let j = index(need).ok_or_else(|| {
                StateError::invalid(format!(
                    "spec.template.spec.containers[{i}].depends_on: Container '{need}' does not \
                     exist."
                ))
            })?;
            if need == dependent {
                return Err(StateError::invalid(format!(
                    "spec.template.spec.containers[{i}].depends_on: A container cannot depend \
                     on itself."
                )));
            }
            if template.containers[j].startup_probe.is_none()
                && ingress_of(&template.containers).is_none_or(|(c, _)| c.name != *need)
            {
                return Err(StateError::invalid(format!(
                    "spec.template.spec.containers[{i}].depends_on: Dependent container '{need}' \
                     must have startup probe specified"
                )));
            }
        }
    }
    let mut done = BTreeSet::new();
    let mut remaining: Vec<&String> = dependencies.keys().collect();
    while !remaining.is_empty() {
        let before = remaining.len();
        remaining.retain(|name| {
            let ready = dependencies[*name]
                .iter()
                .all(|d| done.contains(d) || !dependencies.contains_key(d));
            if ready {
                done.insert((*name).clone());
            }
            !ready
        });
        if remaining.len() == before {
            return Err(StateError::invalid(format!(
                "spec.template.metadata.annotations[{DEPENDENCIES_ANNOTATION}]: Container \
                 dependencies form a cycle."
            )));
        }
    }
    Ok(())
}

fn validate_traffic(traffic: &[TrafficTarget]) -> StateResult<()> {
    if traffic.is_empty() {
        return Ok(());
    }
    let mut total = 0;
    for target in traffic {
        if target.latest && target.revision.is_some() {
            return Err(StateError::invalid(
                "spec.traffic: A traffic target may not set both revisionName and \
                 latestRevision.",
            ));
        }
        if !target.latest && target.revision.is_none() {
            return Err(StateError::invalid(
                "spec.traffic: A traffic target must set revisionName or latestRevision.",
            ));
        }
        let percent = target.percent.unwrap_or(0);
        if !(0..=100).contains(&percent) {
            return Err(StateError::invalid(
                "spec.traffic: Traffic percent must be between 0 and 100.",
            ));
        }
        total += percent;
    }
    if total != 100 {
        return Err(StateError::invalid(format!(
            "spec.traffic: Traffic percentages must add up to 100, got {total}."
        )));
    }
    Ok(())
}

fn random_suffix() -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..3)
        .map(|_| CHARS[rand::random_range(0..CHARS.len())] as char)
        .collect()
}

fn new_uid() -> String {
    super::operations::new_id()
}

impl Data {
    fn service_name(
        &self,
        project: &str,
        region: &str,
        name: &str,
    ) -> StateResult<(Project, ServiceName)> {
        validate_region(region)?;
        let project = self.project(project)?;
        let name = ServiceName {
            project: project.number.clone(),
            region: region.to_string(),
            name: name.to_string(),
        };
        Ok((project, name))
    }

    fn service(&self, name: &ServiceName) -> StateResult<&Service> {
        self.services_run
            .get(&name.to_string())
            .ok_or_else(|| StateError::NotFound {
                kind: "Service",
                name: name.name.clone(),
            })
    }

    /// The revisions of a service, oldest first.
    fn revisions_of(&self, service: &ServiceName) -> Vec<&Revision> {
        let mut out: Vec<&Revision> = self
            .revisions
            .values()
            .filter(|r| &r.service == service)
            .collect();
        out.sort_by_key(|r| (r.configuration_generation, r.create_time));
        out
    }

    fn status_of(&self, service: &Service) -> ServiceStatus {
        let revisions = self.revisions_of(&service.name);
        let latest_created = revisions.last().map(|r| r.name.clone());
        let latest_ready = revisions
            .iter()
            .rev()
            .find(|r| r.state == RevisionState::Ready)
            .map(|r| r.name.clone());
        let targets: Vec<TrafficTarget> = if service.traffic.is_empty() {
            vec![TrafficTarget {
                revision: None,
                latest: true,
                percent: Some(100),
                tag: None,
            }]
        } else {
            service.traffic.clone()
        };
        let traffic = targets
            .iter()
            .filter_map(|t| {
                let revision = if t.latest {
                    latest_ready.clone()?
                } else {
                    t.revision.clone()?
                };
                Some(ResolvedTarget {
                    revision,
                    percent: t.percent.unwrap_or(0),
                    latest: t.latest,
                    tag: t.tag.clone(),
                })
            })
            .collect();
        let latest = revisions.last();
        let (ready, configurations_ready) = match latest.map(|r| &r.state) {
            None => (
                Condition::unknown("Deploying", "No revision has been created yet.".into()),
                Condition::unknown("Deploying", "No revision has been created yet.".into()),
            ),
            Some(RevisionState::Pending) => {
                let message = format!(
                    "Revision '{}' is not yet ready.",
                    latest.map_or("", |r| r.name.as_str())
                );
                (
                    Condition::unknown("Deploying", message.clone()),
                    Condition::unknown("Deploying", message),
                )
            }
            Some(RevisionState::Ready) => (Condition::ok(), Condition::ok()),
            Some(RevisionState::Failed { reason, message }) => {
                let name = latest.map_or("", |r| r.name.as_str());
                let message =
                    format!("Revision '{name}' is not ready and cannot serve traffic. {message}");
                (
                    Condition::failed("RevisionFailed", message.clone()),
                    Condition::failed(reason, message),
                )
            }
        };
        let missing: Vec<&str> = targets
            .iter()
            .filter_map(|t| t.revision.as_deref())
            .filter(|name| !revisions.iter().any(|r| r.name == *name))
            .collect();
        let routes_ready = if !missing.is_empty() {
            Condition::failed(
                "RevisionMissing",
                format!("Revision '{}' referenced in traffic not found.", missing[0]),
            )
        } else if latest_ready.is_none() {
            match &ready.status {
                ConditionStatus::False => {
                    Condition::failed("RevisionFailed", ready.message.clone().unwrap_or_default())
                }
                _ => Condition::unknown("Deploying", "Waiting for a ready revision.".into()),
            }
        } else {
            Condition::ok()
        };
        let ready = if ready.status == ConditionStatus::True
            && routes_ready.status != ConditionStatus::True
        {
            routes_ready.clone()
        } else {
            ready
        };
        ServiceStatus {
            latest_created,
            latest_ready,
            traffic,
            ready,
            configurations_ready,
            routes_ready,
        }
    }

    fn new_revision(
        &self,
        service: &Service,
        configuration_generation: i64,
        now: DateTime<Utc>,
    ) -> StateResult<Revision> {
        let name = match &service.template.name {
            Some(fixed) => {
                if !fixed.starts_with(&format!("{}-", service.name.name)) {
                    return Err(StateError::invalid(format!(
                        "spec.template.metadata.name: Revision name '{fixed}' must be prefixed \
                         with the service name '{}-'.",
                        service.name.name
                    )));
                }
                if self
                    .revisions
                    .contains_key(&revision_key(&service.name, fixed))
                {
                    return Err(StateError::AlreadyExists {
                        kind: "Revision",
                        name: fixed.clone(),
                    });
                }
                fixed.clone()
            }
            None => format!(
                "{}-{configuration_generation:05}-{}",
                service.name.name,
                random_suffix()
            ),
        };
        Ok(Revision {
            name,
            service: service.name.clone(),
            uid: new_uid(),
            configuration_generation,
            create_time: now,
            template_json: service.template_json.clone(),
            template: service.template.clone(),
            state: RevisionState::Pending,
            ready_time: None,
        })
    }
}

/// Where a service is addressed from a request: project (id or number), region, name.
#[derive(Debug, Clone, Copy)]
pub struct ServiceRef<'a> {
    pub project: &'a str,
    pub region: &'a str,
    pub name: &'a str,
}

/// A service with its computed status, as reads return it.
#[derive(Debug, Clone)]
pub struct ServiceView {
    pub service: Service,
    pub status: ServiceStatus,
}

impl Store {
    /// Creates a service and its first revision (or, validating only, says what it would be).
    pub fn create_service(
        &self,
        at: ServiceRef<'_>,
        mut spec: ServiceSpec,
        mode: WriteMode,
    ) -> StateResult<ServiceView> {
        let now = Utc::now();
        self.write(mode, |data| {
            let (project, name) = data.service_name(at.project, at.region, at.name)?;
            validate_service_name(at.name)?;
            validate_template(at.name, &mut spec.template)?;
            validate_traffic(&spec.traffic)?;
            if data.services_run.contains_key(&name.to_string()) {
                return Err(StateError::AlreadyExists {
                    kind: "Service",
                    name: at.name.to_string(),
                });
            }
            let service = Service {
                name: name.clone(),
                project_id: project.id.clone(),
                uid: new_uid(),
                generation: 1,
                configuration_generation: 1,
                create_time: now,
                update_time: now,
                labels: spec.labels,
                annotations: spec.annotations,
                template_json: spec.template_json,
                template: spec.template,
                traffic: spec.traffic,
                url_port: None,
                tag_ports: BTreeMap::new(),
            };
            let revision = data.new_revision(&service, 1, now)?;
            check_traffic_revisions(data, &service, Some(&revision))?;
            let mut records: Vec<Record> = data.remember(&project).into_iter().collect();
            records.push(Record::PutService {
                service: service.clone(),
            });
            records.push(Record::PutRevision { revision });
            Ok((service, records))
        })
        .map(|service| self.view(service))
    }

    /// Replaces a service's spec; a changed template mints a revision, traffic alone does not.
    pub fn replace_service(
        &self,
        at: ServiceRef<'_>,
        mut spec: ServiceSpec,
        mode: WriteMode,
    ) -> StateResult<ServiceView> {
        let now = Utc::now();
        self.write(mode, |data| {
            let (_, name) = data.service_name(at.project, at.region, at.name)?;
            let current = data.service(&name)?;
            validate_template(at.name, &mut spec.template)?;
            validate_traffic(&spec.traffic)?;
            let template_changed = spec.template_json != current.template_json;
            let spec_changed = template_changed
                || spec.traffic != current.traffic
                || spec.labels != current.labels
                || spec.annotations != current.annotations;
            let mut service = current.clone();
            service.labels = spec.labels;
            service.annotations = spec.annotations;
            service.traffic = spec.traffic;
            service.template_json = spec.template_json;
            service.template = spec.template;
            if spec_changed {
                service.generation += 1;
                service.update_time = now;
            }
            let mut records = Vec::new();
            let revision = if template_changed {
                service.configuration_generation += 1;
                Some(data.new_revision(&service, service.configuration_generation, now)?)
            } else {
                None
            };
            check_traffic_revisions(data, &service, revision.as_ref())?;
            records.push(Record::PutService {
                service: service.clone(),
            });
            if let Some(revision) = revision {
                records.push(Record::PutRevision { revision });
            }
            Ok((service, records))
        })
        .map(|service| self.view(service))
    }

    fn view(&self, service: Service) -> ServiceView {
        let status = self.read(|data| data.status_of(&service));
        ServiceView { service, status }
    }

    /// Reads a service with its status.
    pub fn get_service(&self, at: ServiceRef<'_>) -> StateResult<ServiceView> {
        self.read(|data| {
            let (_, name) = data.service_name(at.project, at.region, at.name)?;
            let service = data.service(&name)?.clone();
            let status = data.status_of(&service);
            Ok(ServiceView { service, status })
        })
    }

    /// Reads a service by its full name.
    pub fn service_by_name(&self, name: &ServiceName) -> Option<ServiceView> {
        self.read(|data| {
            let service = data.services_run.get(&name.to_string())?.clone();
            let status = data.status_of(&service);
            Some(ServiceView { service, status })
        })
    }

    /// Lists the services of a project, in one region or (`None`) all.
    pub fn list_services_run(
        &self,
        project: &str,
        region: Option<&str>,
    ) -> StateResult<Vec<ServiceView>> {
        self.read(|data| {
            let project = data.project(project)?;
            Ok(data
                .services_run
                .values()
                .filter(|s| {
                    s.name.project == project.number && region.is_none_or(|r| s.name.region == r)
                })
                .map(|s| ServiceView {
                    service: s.clone(),
                    status: data.status_of(s),
                })
                .collect())
        })
    }

    /// Every service of every project, for the controller's start-up reconciliation.
    pub fn all_services(&self) -> Vec<ServiceName> {
        self.read(|data| data.services_run.values().map(|s| s.name.clone()).collect())
    }

    /// Deletes a service with its revisions and policy.
    pub fn delete_service(&self, at: ServiceRef<'_>) -> StateResult<Service> {
        self.commit(|data| {
            let (_, name) = data.service_name(at.project, at.region, at.name)?;
            let service = data.service(&name)?.clone();
            Ok((
                service,
                vec![Record::DeleteService {
                    name: name.to_string(),
                }],
            ))
        })
    }

    /// The revisions of a project (optionally of one service), newest first.
    pub fn list_revisions(
        &self,
        project: &str,
        region: Option<&str>,
        service: Option<&str>,
    ) -> StateResult<Vec<Revision>> {
        self.read(|data| {
            let project = data.project(project)?;
            let mut out: Vec<Revision> = data
                .revisions
                .values()
                .filter(|r| {
                    r.service.project == project.number
                        && region.is_none_or(|reg| r.service.region == reg)
                        && service.is_none_or(|s| r.service.name == s)
                })
                .cloned()
                .collect();
            out.sort_by(|a, b| {
                (b.create_time, b.configuration_generation)
                    .cmp(&(a.create_time, a.configuration_generation))
            });
            Ok(out)
        })
    }

    /// Reads a revision.
    pub fn get_revision(&self, project: &str, region: &str, name: &str) -> StateResult<Revision> {
        self.read(|data| {
            validate_region(region)?;
            let project = data.project(project)?;
            data.revisions
                .get(&format!(
                    "projects/{}/locations/{region}/revisions/{name}",
                    project.number
                ))
                .cloned()
                .ok_or_else(|| StateError::NotFound {
                    kind: "Revision",
                    name: name.to_string(),
                })
        })
    }

    /// Deletes a revision that serves no traffic.
    pub fn delete_revision(
        &self,
        project: &str,
        region: &str,
        name: &str,
        mode: WriteMode,
    ) -> StateResult<Revision> {
        let revision = self.get_revision(project, region, name)?;
        self.write(mode, |data| {
            let service = data.service(&revision.service)?;
            let status = data.status_of(service);
            if status.traffic.iter().any(|t| t.revision == revision.name)
                || status.latest_created.as_deref() == Some(revision.name.as_str())
            {
                return Err(StateError::precondition(format!(
                    "Revision {} cannot be deleted because it is serving traffic.",
                    revision.name
                )));
            }
            Ok((
                revision.clone(),
                vec![Record::DeleteRevision {
                    key: revision.key(),
                }],
            ))
        })
    }

    /// Records the outcome of starting a revision (the controller's report).
    pub fn set_revision_state(&self, revision_key: &str, state: RevisionState) -> StateResult<()> {
        let now = Utc::now();
        self.commit(|data| {
            let Some(current) = data.revisions.get(revision_key) else {
                return Ok(((), vec![]));
            };
            if current.state == state {
                return Ok(((), vec![]));
            }
            let mut revision = current.clone();
            if state == RevisionState::Ready && revision.ready_time.is_none() {
                revision.ready_time = Some(now);
            }
            revision.state = state;
            Ok(((), vec![Record::PutRevision { revision }]))
        })
    }

    /// Remembers the ingress port serving a service, so its URL survives restarts.
    pub fn set_service_port(&self, name: &ServiceName, port: u16) -> StateResult<()> {
        self.commit(|data| {
            let Some(current) = data.services_run.get(&name.to_string()) else {
                return Ok(((), vec![]));
            };
            if current.url_port == Some(port) {
                return Ok(((), vec![]));
            }
            let mut service = current.clone();
            service.url_port = Some(port);
            Ok(((), vec![Record::PutService { service }]))
        })
    }

    /// Remembers the ingress port serving a tag's URL, so it survives restarts.
    pub fn set_tag_port(&self, name: &ServiceName, tag: &str, port: u16) -> StateResult<()> {
        self.commit(|data| {
            let Some(current) = data.services_run.get(&name.to_string()) else {
                return Ok(((), vec![]));
            };
            if current.tag_ports.get(tag) == Some(&port) {
                return Ok(((), vec![]));
            }
            let mut service = current.clone();
            service.tag_ports.insert(tag.to_string(), port);
            Ok(((), vec![Record::PutService { service }]))
        })
    }

    /// The IAM policy of a service.
    pub fn service_policy(&self, at: ServiceRef<'_>) -> StateResult<Policy> {
        self.read(|data| {
            let (_, name) = data.service_name(at.project, at.region, at.name)?;
            data.service(&name)?;
            Ok(data.policy(&name.to_string()))
        })
    }

    /// The IAM policy of a service by full name (for the ingress).
    pub fn service_policy_by_name(&self, name: &ServiceName) -> Policy {
        self.read(|data| data.policy(&name.to_string()))
    }

    /// Replaces the IAM policy of a service.
    pub fn set_service_policy(
        &self,
        at: ServiceRef<'_>,
        update: PolicyUpdate,
    ) -> StateResult<Policy> {
        self.commit(|data| {
            let (_, name) = data.service_name(at.project, at.region, at.name)?;
            data.service(&name)?;
            data.set_policy(&name.to_string(), update)
        })
    }
}

/// Traffic may only name revisions of the service that exist (or are being created).
fn check_traffic_revisions(
    data: &Data,
    service: &Service,
    new: Option<&Revision>,
) -> StateResult<()> {
    for target in &service.traffic {
        if let Some(name) = &target.revision {
            let exists = new.is_some_and(|r| &r.name == name)
                || data
                    .revisions
                    .get(&revision_key(&service.name, name))
                    .is_some_and(|r| r.service == service.name);
            if !exists {
                return Err(StateError::invalid(format!(
                    "spec.traffic: Revision '{name}' does not exist in service '{}'.",
                    service.name.name
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(name: &str, ports: &[u16]) -> Container {
        Container {
            name: name.into(),
            image: "img".into(),
            command: vec![],
            args: vec![],
            working_dir: None,
            env: vec![],
            ports: ports.to_vec(),
            cpu: None,
            memory: None,
            volume_mounts: vec![],
            startup_probe: None,
            liveness_probe: None,
        }
    }

    fn spec(containers: Vec<Container>) -> ServiceSpec {
        ServiceSpec {
            template_json: serde_json::json!({"n": rand::random::<u32>()}),
            template: RevisionTemplate {
                containers,
                ..RevisionTemplate::default()
            },
            ..ServiceSpec::default()
        }
    }

    const AT: ServiceRef<'static> = ServiceRef {
        project: "demo-proj",
        region: "us-central1",
        name: "web",
    };

    #[test]
    fn exactly_one_container_exposes_a_port() {
        let store = Store::in_memory();
        let two = store.create_service(
            AT,
            spec(vec![container("a", &[80]), container("b", &[81])]),
            WriteMode::Apply,
        );
        assert!(
            matches!(two, Err(StateError::InvalidArgument(m)) if m.contains("exactly one container with an exposed port"))
        );
        let none = store.create_service(
            AT,
            spec(vec![container("a", &[]), container("b", &[])]),
            WriteMode::Apply,
        );
        assert!(none.is_err());
        let lone = store
            .create_service(AT, spec(vec![container("", &[])]), WriteMode::Apply)
            .expect("a lone container defaults to 8080");
        assert_eq!(lone.service.template.containers[0].name, "web-1");
    }

    #[test]
    fn validating_only_checks_the_same_rules_and_stores_nothing() {
        let store = Store::in_memory();
        let refused = store.create_service(
            AT,
            spec(vec![container("a", &[80]), container("b", &[81])]),
            WriteMode::ValidateOnly,
        );
        assert!(matches!(refused, Err(StateError::InvalidArgument(_))));
        let would_be = store
            .create_service(AT, spec(vec![container("", &[])]), WriteMode::ValidateOnly)
            .expect("valid");
        assert_eq!(would_be.service.generation, 1);
        assert!(matches!(
            store.get_service(AT),
            Err(StateError::NotFound { .. })
        ));

        store
            .create_service(AT, spec(vec![container("", &[])]), WriteMode::Apply)
            .expect("created");
        let changed = store
            .replace_service(AT, spec(vec![container("", &[])]), WriteMode::ValidateOnly)
            .expect("valid");
        assert_eq!(changed.service.generation, 2);
        assert_eq!(store.get_service(AT).expect("kept").service.generation, 1);
        let revisions = store.read(|data| data.revisions_of(&changed.service.name).len());
        assert_eq!(revisions, 1, "no revision was minted");
    }

    #[test]
    fn dependencies_need_startup_probes_and_no_cycles() {
        let store = Store::in_memory();
        let mut with_deps = spec(vec![container("app", &[8080]), container("side", &[])]);
        with_deps
            .template
            .annotations
            .insert(DEPENDENCIES_ANNOTATION.into(), "{app: [side]}".into());
        let refused = store.create_service(AT, with_deps.clone(), WriteMode::Apply);
        assert!(
            matches!(refused, Err(StateError::InvalidArgument(m)) if m.contains("Dependent container 'side' must have startup probe specified"))
        );
        with_deps.template.containers[1].startup_probe = Some(Probe {
            check: ProbeCheck::Tcp { port: Some(5000) },
            initial_delay_seconds: 0,
            timeout_seconds: 1,
            period_seconds: 10,
            failure_threshold: 3,
        });
        store
            .create_service(AT, with_deps, WriteMode::Apply)
            .expect("valid now");
        assert_eq!(
            parse_dependencies(r#"{"a":["b","c"]}"#).expect("json"),
            BTreeMap::from([("a".to_string(), vec!["b".to_string(), "c".to_string()])])
        );
    }

    #[test]
    fn template_changes_mint_revisions_and_traffic_changes_do_not() {
        let store = Store::in_memory();
        let first = store
            .create_service(AT, spec(vec![container("app", &[])]), WriteMode::Apply)
            .expect("created");
        let one = first.status.latest_created.clone().expect("revision");
        assert!(one.starts_with("web-00001-"));
        assert_eq!(first.status.ready.status, ConditionStatus::Unknown);
        let key = format!(
            "projects/{}/locations/us-central1/revisions/{one}",
            first.service.name.project
        );
        store
            .set_revision_state(&key, RevisionState::Ready)
            .expect("ready");
        let ready = store.get_service(AT).expect("get");
        assert_eq!(ready.status.ready.status, ConditionStatus::True);
        assert_eq!(ready.status.traffic[0].revision, one);

        let second = store
            .replace_service(AT, spec(vec![container("app", &[])]), WriteMode::Apply)
            .expect("replaced");
        let two = second.status.latest_created.clone().expect("revision");
        assert!(two.starts_with("web-00002-"));
        let key2 = format!(
            "projects/{}/locations/us-central1/revisions/{two}",
            first.service.name.project
        );
        store
            .set_revision_state(
                &key2,
                RevisionState::Failed {
                    reason: "X".into(),
                    message: "boom".into(),
                },
            )
            .expect("failed");
        let failed = store.get_service(AT).expect("get");
        assert_eq!(failed.status.ready.status, ConditionStatus::False);
        assert!(
            failed
                .status
                .ready
                .message
                .as_deref()
                .is_some_and(|m| m.contains("boom") && m.contains(&two))
        );
        assert_eq!(
            failed.status.traffic[0].revision, one,
            "the last ready revision keeps serving"
        );

        let mut traffic_only = spec(vec![]);
        traffic_only.template = failed.service.template.clone();
        traffic_only.template_json = failed.service.template_json.clone();
        traffic_only.traffic = vec![TrafficTarget {
            revision: Some(one.clone()),
            latest: false,
            percent: Some(100),
            tag: None,
        }];
        let pinned = store
            .replace_service(AT, traffic_only, WriteMode::Apply)
            .expect("traffic");
        assert_eq!(
            pinned.status.latest_created.as_deref(),
            Some(two.as_str()),
            "no new revision"
        );
        assert_eq!(pinned.service.generation, 3);
    }
}
