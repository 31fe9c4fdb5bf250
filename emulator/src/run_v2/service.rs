//! `google.cloud.run.v2.Service` and `Revision` as JSON: parsing what clients send into the
//! state's [`ServiceSpec`], and writing services and revisions with their status.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::enums::{
    COMMON_REASON, CONDITION_STATE, Encoding, INGRESS, LAUNCH_STAGE, REVISION_REASON, SEVERITY,
    TRAFFIC_TYPE,
};
use super::template::{
    check_reserved, is_reserved, knative_template_json, labels_of, nullable, parse_template,
    same_template, template_v2_json, unreserved,
};
use crate::error::ApiError;
use crate::state::run::{
    Condition, ConditionStatus, Revision, RevisionState, Service, ServiceSpec, ServiceView,
    TrafficTarget,
};
use crate::wire;

const INGRESS_ANNOTATION: &str = "run.googleapis.com/ingress";
const LAUNCH_STAGE_ANNOTATION: &str = "run.googleapis.com/launch-stage";
const INVOKER_IAM_DISABLED: &str = "run.googleapis.com/invoker-iam-disabled";
const CLIENT_NAME: &str = "run.googleapis.com/client-name";
const CLIENT_VERSION: &str = "run.googleapis.com/client-version";
const DESCRIPTION: &str = "run.googleapis.com/description";
/// The service annotations v2 writes from its own fields.
const CONTROLLED: [&str; 6] = [
    INGRESS_ANNOTATION,
    LAUNCH_STAGE_ANNOTATION,
    INVOKER_IAM_DISABLED,
    CLIENT_NAME,
    CLIENT_VERSION,
    DESCRIPTION,
];
/// Who the emulator says created and changed everything.
const ACTOR: &str = "emulator@localhost";

/// (v2 name, the `run.googleapis.com/ingress` value v1 uses).
const INGRESS_VALUES: [(&str, &str); 4] = [
    ("INGRESS_TRAFFIC_ALL", "all"),
    ("INGRESS_TRAFFIC_INTERNAL_ONLY", "internal"),
    (
        "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER",
        "internal-and-cloud-load-balancing",
    ),
    ("INGRESS_TRAFFIC_NONE", "none"),
];

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ServiceV2 {
    description: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    labels: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "nullable")]
    annotations: BTreeMap<String, String>,
    client: Option<String>,
    client_version: Option<String>,
    ingress: Option<Value>,
    launch_stage: Option<Value>,
    template: Option<Value>,
    #[serde(default, deserialize_with = "nullable")]
    traffic: Vec<TrafficV2>,
    invoker_iam_disabled: Option<bool>,
    etag: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TrafficV2 {
    #[serde(rename = "type")]
    kind: Option<Value>,
    revision: Option<String>,
    percent: Option<i64>,
    tag: Option<String>,
}

/// A Service as a client sent it, parsed.
#[derive(Debug)]
pub struct ServiceInput {
    pub spec: ServiceSpec,
    /// The etag sent, to refuse an update of a service that changed since.
    pub etag: Option<String>,
}

/// Parses a v2 Service body; `current` is the service an update replaces.
pub fn parse_service(body: &Value, current: Option<&Service>) -> Result<ServiceInput, ApiError> {
    if !body.is_object() {
        return Err(ApiError::invalid(
            "The request body must be a Service object.",
        ));
    }
    let parsed: ServiceV2 = serde_json::from_value(body.clone())
        .map_err(|e| ApiError::invalid(format!("Invalid JSON payload received. {e}")))?;
    check_reserved("labels", &parsed.labels)?;
    check_reserved("annotations", &parsed.annotations)?;
    let template_json = parsed
        .template
        .filter(|t| !t.is_null())
        .ok_or_else(|| ApiError::invalid("service.template: The template must be specified."))?;
    let template = parse_template(&template_json, current.map(|c| &c.template))?;

    let mut annotations = parsed.annotations;
    if let Some(current) = current {
        for (key, value) in &current.annotations {
            if is_reserved(key) && !CONTROLLED.contains(&key.as_str()) {
                annotations.insert(key.clone(), value.clone());
            }
        }
    }
    let system = [
        (DESCRIPTION, parsed.description),
        (CLIENT_NAME, parsed.client),
        (CLIENT_VERSION, parsed.client_version),
    ];
    for (key, value) in system {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            annotations.insert(key.into(), value);
        }
    }
    match INGRESS.parse("service.ingress", parsed.ingress.as_ref())? {
        None | Some("INGRESS_TRAFFIC_UNSPECIFIED") | Some("INGRESS_TRAFFIC_ALL") => {}
        Some(name) => {
            if let Some((_, v1)) = INGRESS_VALUES.iter().find(|(n, _)| *n == name) {
                annotations.insert(INGRESS_ANNOTATION.into(), (*v1).into());
            }
        }
    }
    match LAUNCH_STAGE.parse("service.launch_stage", parsed.launch_stage.as_ref())? {
        None | Some("LAUNCH_STAGE_UNSPECIFIED") | Some("GA") => {}
        Some(stage) => {
            annotations.insert(LAUNCH_STAGE_ANNOTATION.into(), stage.into());
        }
    }
    if parsed.invoker_iam_disabled == Some(true) {
        annotations.insert(INVOKER_IAM_DISABLED.into(), "true".into());
    }
    let traffic = parse_traffic(parsed.traffic)?;

    let (template_json, typed) = match current {
        Some(current) if same_template(&template, &current.template, &current.template_json) => {
            (current.template_json.clone(), current.template.clone())
        }
        _ => (knative_template_json(&template), template.template.clone()),
    };
    Ok(ServiceInput {
        spec: ServiceSpec {
            labels: parsed.labels,
            annotations,
            template_json,
            template: typed,
            traffic,
        },
        etag: parsed.etag.filter(|e| !e.is_empty()),
    })
}

fn parse_traffic(targets: Vec<TrafficV2>) -> Result<Vec<TrafficTarget>, ApiError> {
    let mut out = Vec::new();
    for (i, target) in targets.into_iter().enumerate() {
        let field = format!("service.traffic[{i}]");
        let revision =
            target
                .revision
                .filter(|r| !r.is_empty())
                .map(|r| match r.rsplit_once("/revisions/") {
                    Some((_, short)) => short.to_string(),
                    None => r,
                });
        let latest = match TRAFFIC_TYPE.parse(&format!("{field}.type"), target.kind.as_ref())? {
            Some("TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST") => true,
            Some("TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION") => false,
            _ => revision.is_none(),
        };
        if latest && revision.is_some() {
            return Err(ApiError::invalid(format!(
                "{field}: A traffic target of type TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST may not \
                 name a revision."
            )));
        }
        if !latest && revision.is_none() {
            return Err(ApiError::invalid(format!(
                "{field}.revision: A traffic target of type \
                 TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION must name a revision."
            )));
        }
        out.push(TrafficTarget {
            revision,
            latest,
            percent: target.percent,
            tag: target.tag.filter(|t| !t.is_empty()),
        });
    }
    // All traffic to the latest revision is what an empty list means to the state.
    if let [only] = out.as_slice()
        && only.latest
        && only.percent == Some(100)
        && only.tag.is_none()
    {
        out.clear();
    }
    Ok(out)
}

/// An opaque fingerprint that changes whenever the service's spec does.
pub fn etag(service: &Service) -> String {
    use base64::Engine;
    let text = format!(
        "{}:{}",
        service.generation,
        service.update_time.timestamp_micros()
    );
    format!(
        "\"{}\"",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
    )
}

/// Whether a sent etag names this version of the service (quotes optional).
pub fn etag_matches(service: &Service, sent: &str) -> bool {
    etag(service).trim_matches('"') == sent.trim_matches('"')
}

/// Where the names of one request's resources are rooted: the project as the client wrote it.
#[derive(Debug, Clone, Copy)]
pub struct Names<'a> {
    pub project: &'a str,
    pub location: &'a str,
}

impl Names<'_> {
    /// `projects/P/locations/L/services/S`.
    pub fn service(&self, service: &str) -> String {
        format!(
            "projects/{}/locations/{}/services/{service}",
            self.project, self.location
        )
    }

    /// `projects/P/locations/L/services/S/revisions/R`.
    pub fn revision(&self, service: &str, revision: &str) -> String {
        format!("{}/revisions/{revision}", self.service(service))
    }
}

/// `http://HOST:PORT`, a URL the ingress serves.
fn url_at(host: &str, port: Option<u16>) -> Option<String> {
    port.map(|port| format!("http://{host}:{port}"))
}

/// A condition's state in v2 terms.
fn state_of(status: ConditionStatus) -> &'static str {
    match status {
        ConditionStatus::True => "CONDITION_SUCCEEDED",
        ConditionStatus::False => "CONDITION_FAILED",
        ConditionStatus::Unknown => "CONDITION_RECONCILING",
    }
}

/// The v2 reason of a state-layer reason: a common reason or a revision reason.
fn reason_of(reason: &str) -> (&'static str, &'static str) {
    match reason {
        "ContainerMissing" => ("reason", "CONTAINER_MISSING"),
        "SecretsAccessCheckFailed" => ("reason", "SECRETS_ACCESS_CHECK_FAILED"),
        "HealthCheckContainerError" => ("revisionReason", "HEALTH_CHECK_CONTAINER_ERROR"),
        "RevisionMissing" => ("reason", "UNKNOWN"),
        _ => ("reason", "REVISION_FAILED"),
    }
}

fn condition_json(kind: &str, condition: &Condition, at: &str, enums: Encoding) -> Value {
    let mut out = json!({
        "type": kind,
        "state": enums.write(&CONDITION_STATE, state_of(condition.status)),
        "lastTransitionTime": at,
    });
    if let Some(message) = &condition.message {
        out["message"] = json!(message);
    }
    if condition.status == ConditionStatus::False
        && let Some(reason) = &condition.reason
    {
        let (field, value) = reason_of(reason);
        let kind = if field == "reason" {
            &COMMON_REASON
        } else {
            &REVISION_REASON
        };
        out[field] = enums.write(kind, value);
    }
    out
}

/// The Ready condition as clients should see it: not ready until the URL is assigned.
pub fn ready_condition(view: &ServiceView) -> Condition {
    match (&view.status.ready.status, view.service.url_port) {
        (ConditionStatus::True, None) => Condition {
            status: ConditionStatus::Unknown,
            reason: Some("Deploying".into()),
            message: Some("Assigning the service URL.".into()),
        },
        _ => view.status.ready.clone(),
    }
}

/// A Service, v2 shape; `host` is where the ingress listens.
pub fn service_json(view: &ServiceView, names: Names<'_>, host: &str, enums: Encoding) -> Value {
    let service = &view.service;
    let status = &view.status;
    let short = &service.name.name;
    let uri = url_at(host, service.url_port);
    let updated = wire::timestamp(service.update_time);
    let ready = ready_condition(view);
    let mut out = Map::new();
    out.insert("name".into(), json!(names.service(short)));
    if let Some(description) = service.annotations.get(DESCRIPTION) {
        out.insert("description".into(), json!(description));
    }
    out.insert("uid".into(), json!(service.uid));
    out.insert("generation".into(), json!(service.generation.to_string()));
    let labels = unreserved(&service.labels);
    if !labels.is_empty() {
        out.insert("labels".into(), json!(labels));
    }
    let annotations = unreserved(&service.annotations);
    if !annotations.is_empty() {
        out.insert("annotations".into(), json!(annotations));
    }
    out.insert(
        "createTime".into(),
        json!(wire::timestamp(service.create_time)),
    );
    out.insert("updateTime".into(), json!(updated));
    out.insert("creator".into(), json!(ACTOR));
    out.insert("lastModifier".into(), json!(ACTOR));
    if let Some(client) = service.annotations.get(CLIENT_NAME) {
        out.insert("client".into(), json!(client));
    }
    if let Some(version) = service.annotations.get(CLIENT_VERSION) {
        out.insert("clientVersion".into(), json!(version));
    }
    let ingress = service
        .annotations
        .get(INGRESS_ANNOTATION)
        .and_then(|v1| INGRESS_VALUES.iter().find(|(_, v)| v == v1))
        .map_or("INGRESS_TRAFFIC_ALL", |(name, _)| *name);
    out.insert("ingress".into(), enums.write(&INGRESS, ingress));
    let stage = service
        .annotations
        .get(LAUNCH_STAGE_ANNOTATION)
        .map_or("GA", String::as_str);
    out.insert("launchStage".into(), enums.write(&LAUNCH_STAGE, stage));
    out.insert(
        "template".into(),
        template_v2_json(&service.template, &labels_of(&service.template_json), enums),
    );
    let traffic: Vec<Value> = if service.traffic.is_empty() {
        vec![json!({
            "type": enums.write(&TRAFFIC_TYPE, "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"),
            "percent": 100,
        })]
    } else {
        service
            .traffic
            .iter()
            .map(|t| {
                let kind = if t.latest {
                    "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"
                } else {
                    "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION"
                };
                let mut target = json!({"type": enums.write(&TRAFFIC_TYPE, kind)});
                if let Some(revision) = &t.revision {
                    target["revision"] = json!(revision);
                }
                if let Some(percent) = t.percent.filter(|p| *p != 0) {
                    target["percent"] = json!(percent);
                }
                if let Some(tag) = &t.tag {
                    target["tag"] = json!(tag);
                }
                target
            })
            .collect()
    };
    out.insert("traffic".into(), json!(traffic));
    if service
        .annotations
        .get(INVOKER_IAM_DISABLED)
        .is_some_and(|v| v == "true")
    {
        out.insert("invokerIamDisabled".into(), json!(true));
    }
    if let Some(uri) = &uri {
        out.insert("urls".into(), json!([uri]));
    }
    out.insert(
        "observedGeneration".into(),
        json!(service.generation.to_string()),
    );
    out.insert(
        "terminalCondition".into(),
        condition_json("Ready", &ready, &updated, enums),
    );
    out.insert(
        "conditions".into(),
        json!([
            condition_json("RoutesReady", &status.routes_ready, &updated, enums),
            condition_json(
                "ConfigurationsReady",
                &status.configurations_ready,
                &updated,
                enums
            ),
        ]),
    );
    if let Some(name) = &status.latest_ready {
        out.insert(
            "latestReadyRevision".into(),
            json!(names.revision(short, name)),
        );
    }
    if let Some(name) = &status.latest_created {
        out.insert(
            "latestCreatedRevision".into(),
            json!(names.revision(short, name)),
        );
    }
    let statuses: Vec<Value> = status
        .traffic
        .iter()
        .map(|t| {
            let kind = if t.latest {
                "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"
            } else {
                "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION"
            };
            let mut target = json!({"type": enums.write(&TRAFFIC_TYPE, kind)});
            if !t.latest {
                target["revision"] = json!(t.revision);
            }
            if t.percent != 0 {
                target["percent"] = json!(t.percent);
            }
            if let Some(tag) = &t.tag {
                target["tag"] = json!(tag);
                if let Some(tag_uri) = url_at(host, service.tag_ports.get(tag).copied()) {
                    target["uri"] = json!(tag_uri);
                }
            }
            target
        })
        .collect();
    if !statuses.is_empty() {
        out.insert("trafficStatuses".into(), json!(statuses));
    }
    if let Some(uri) = uri {
        out.insert("uri".into(), json!(uri));
    }
    if ready.status == ConditionStatus::Unknown {
        out.insert("reconciling".into(), json!(true));
    }
    out.insert("etag".into(), json!(etag(service)));
    Value::Object(out)
}

/// A Revision, v2 shape; `serving` says whether it holds traffic.
pub fn revision_json(
    revision: &Revision,
    service: &Service,
    names: Names<'_>,
    serving: bool,
    enums: Encoding,
) -> Value {
    let template = &revision.template;
    let mut out = match template_v2_json(template, &labels_of(&revision.template_json), enums) {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    // The template's `revision` field is the revision's own name here.
    out.remove("revision");
    let short = &service.name.name;
    out.insert("name".into(), json!(names.revision(short, &revision.name)));
    out.insert("uid".into(), json!(revision.uid));
    out.insert("generation".into(), json!("1"));
    let created = wire::timestamp(revision.create_time);
    let at = wire::timestamp(revision.ready_time.unwrap_or(revision.create_time));
    out.insert("createTime".into(), json!(created));
    out.insert("updateTime".into(), json!(at));
    out.insert("launchStage".into(), enums.write(&LAUNCH_STAGE, "GA"));
    out.insert("service".into(), json!(names.service(short)));
    let (ready, reconciling) = match &revision.state {
        RevisionState::Pending => (
            Condition {
                status: ConditionStatus::Unknown,
                reason: Some("Deploying".into()),
                message: Some("Starting the revision's containers.".into()),
            },
            true,
        ),
        RevisionState::Ready => (
            Condition {
                status: ConditionStatus::True,
                reason: None,
                message: None,
            },
            false,
        ),
        RevisionState::Failed { reason, message } => (
            Condition {
                status: ConditionStatus::False,
                reason: Some(reason.clone()),
                message: Some(message.clone()),
            },
            false,
        ),
    };
    if reconciling {
        out.insert("reconciling".into(), json!(true));
    }
    let mut active = json!({
        "type": "Active",
        "state": enums.write(&CONDITION_STATE, if serving { "CONDITION_SUCCEEDED" } else { "CONDITION_FAILED" }),
        "lastTransitionTime": at,
        "severity": enums.write(&SEVERITY, "INFO"),
    });
    if !serving {
        active["message"] = json!("The revision is not serving traffic.");
        active["revisionReason"] = enums.write(&REVISION_REASON, "RESERVE");
    }
    out.insert(
        "conditions".into(),
        json!([
            condition_json("Ready", &ready, &at, enums),
            condition_json("ContainerHealthy", &ready, &at, enums),
            condition_json("ResourcesAvailable", &ready, &at, enums),
            active,
        ]),
    );
    out.insert("observedGeneration".into(), json!("1"));
    out.insert("creator".into(), json!(ACTOR));
    out.insert("etag".into(), json!(format!("\"{}\"", revision.uid)));
    Value::Object(out)
}
