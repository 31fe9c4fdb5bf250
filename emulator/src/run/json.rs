//! Knative v1 objects as Cloud Run writes them: Service, Revision, Configuration, Route, and the
//! parsing of a client's Service.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::template::{parse_template, parse_traffic};
use crate::error::ApiError;
use crate::state::run::{
    Condition, ConditionStatus, Revision, RevisionState, Service, ServiceSpec, ServiceStatus,
    ServiceView,
};
use crate::wire;

/// The API version of every object.
pub const API_VERSION: &str = "serving.knative.dev/v1";

/// Parses a Service a client sends (create or replace); returns its name and spec.
pub fn parse_service(body: &Value) -> Result<(String, Option<String>, ServiceSpec), ApiError> {
    let object = body
        .as_object()
        .ok_or_else(|| ApiError::invalid("The request body must be a Service object."))?;
    match object.get("apiVersion").and_then(Value::as_str) {
        Some(API_VERSION) | None => {}
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "apiVersion: Unsupported API version '{other}'; expected '{API_VERSION}'."
            )));
        }
    }
    match object.get("kind").and_then(Value::as_str) {
        Some("Service") | None => {}
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "kind: Unsupported kind '{other}'; expected 'Service'."
            )));
        }
    }
    let metadata = object.get("metadata").cloned().unwrap_or(json!({}));
    let name = metadata
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::invalid("metadata.name: The service name must be specified."))?
        .to_string();
    let resource_version = metadata
        .get("resourceVersion")
        .and_then(Value::as_str)
        .map(str::to_string);
    let string_map = |field: &str| -> Result<BTreeMap<String, String>, ApiError> {
        match metadata.get(field) {
            None | Some(Value::Null) => Ok(BTreeMap::new()),
            Some(value) => serde_json::from_value(value.clone()).map_err(|_| {
                ApiError::invalid(format!("metadata.{field}: Expected a map of strings."))
            }),
        }
    };
    let mut labels = string_map("labels")?;
    labels.remove("cloud.googleapis.com/location");
    let mut annotations = string_map("annotations")?;
    for managed in [
        "serving.knative.dev/creator",
        "serving.knative.dev/lastModifier",
        "run.googleapis.com/urls",
        "run.googleapis.com/operation-id",
        "run.googleapis.com/ingress-status",
    ] {
        annotations.remove(managed);
    }
    let spec = object.get("spec").cloned().unwrap_or(json!({}));
    let template_json = spec.get("template").cloned().unwrap_or(json!({}));
    let template = parse_template(&template_json)?;
    let traffic = parse_traffic(spec.get("traffic"))?;
    Ok((
        name,
        resource_version,
        ServiceSpec {
            labels,
            annotations,
            template_json,
            template,
            traffic,
        },
    ))
}

/// An opaque version that changes whenever the service's spec does.
pub fn resource_version(service: &Service) -> String {
    use base64::Engine;
    let text = format!(
        "{}:{}",
        service.generation,
        service.update_time.timestamp_micros()
    );
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

fn condition(kind: &str, condition: &Condition, at: &str) -> Value {
    let mut out = json!({
        "type": kind,
        "status": condition.status.as_str(),
        "lastTransitionTime": at,
    });
    if let Some(reason) = &condition.reason {
        out["reason"] = json!(reason);
    }
    if let Some(message) = &condition.message {
        out["message"] = json!(message);
    }
    out
}

fn object_meta(
    kind_plural: &str,
    name: &str,
    service: &Service,
    uid: &str,
    generation: i64,
    created: &str,
) -> Map<String, Value> {
    let namespace = &service.name.project;
    let mut meta = Map::new();
    meta.insert("name".into(), json!(name));
    meta.insert("namespace".into(), json!(namespace));
    meta.insert(
        "selfLink".into(),
        json!(format!(
            "/apis/{API_VERSION}/namespaces/{namespace}/{kind_plural}/{name}"
        )),
    );
    meta.insert("uid".into(), json!(uid));
    meta.insert("resourceVersion".into(), json!(resource_version(service)));
    meta.insert("generation".into(), json!(generation));
    meta.insert("creationTimestamp".into(), json!(created));
    meta
}

/// `http://HOST:PORT`, a URL the ingress serves.
fn url_at(host: &str, port: Option<u16>) -> Option<String> {
    port.map(|port| format!("http://{host}:{port}"))
}

/// A Service; `host` is where the ingress listens.
pub fn service_json(view: &ServiceView, host: &str) -> Value {
    let service = &view.service;
    let url = url_at(host, service.url_port);
    let url = url.as_deref();
    let status = &view.status;
    let created = wire::timestamp(service.create_time);
    let updated = wire::timestamp(service.update_time);
    let mut meta = object_meta(
        "services",
        &service.name.name,
        service,
        &service.uid,
        service.generation,
        &created,
    );
    let mut labels = service.labels.clone();
    labels.insert(
        "cloud.googleapis.com/location".into(),
        service.name.region.clone(),
    );
    let mut annotations = service.annotations.clone();
    annotations.insert(
        "serving.knative.dev/creator".into(),
        "emulator@localhost".into(),
    );
    annotations.insert(
        "serving.knative.dev/lastModifier".into(),
        "emulator@localhost".into(),
    );
    let ingress = annotations
        .entry("run.googleapis.com/ingress".into())
        .or_insert_with(|| "all".into())
        .clone();
    annotations.insert("run.googleapis.com/ingress-status".into(), ingress);
    if let Some(url) = url {
        annotations.insert("run.googleapis.com/urls".into(), json!([url]).to_string());
    }
    meta.insert("labels".into(), json!(labels));
    meta.insert("annotations".into(), json!(annotations));

    let mut template = service.template_json.clone();
    fill_container_names(&mut template, service);
    let mut spec = json!({ "template": template });
    spec["traffic"] = if service.traffic.is_empty() {
        json!([{"percent": 100, "latestRevision": true}])
    } else {
        Value::Array(
            service
                .traffic
                .iter()
                .map(|t| {
                    let mut out = json!({});
                    if let Some(percent) = t.percent {
                        out["percent"] = json!(percent);
                    }
                    if t.latest {
                        out["latestRevision"] = json!(true);
                    }
                    if let Some(revision) = &t.revision {
                        out["revisionName"] = json!(revision);
                    }
                    if let Some(tag) = &t.tag {
                        out["tag"] = json!(tag);
                    }
                    out
                })
                .collect(),
        )
    };
    json!({
        "apiVersion": API_VERSION,
        "kind": "Service",
        "metadata": meta,
        "spec": spec,
        "status": service_status_json(service, status, host, &updated),
    })
}

fn service_status_json(service: &Service, status: &ServiceStatus, host: &str, at: &str) -> Value {
    let url = url_at(host, service.url_port);
    let url = url.as_deref();
    let ready = match (&status.ready.status, url) {
        (ConditionStatus::True, None) => Condition {
            status: ConditionStatus::Unknown,
            reason: Some("Deploying".into()),
            message: Some("Assigning the service URL.".into()),
        },
        _ => status.ready.clone(),
    };
    let mut out = json!({
        "observedGeneration": service.generation,
        "conditions": [
            condition("Ready", &ready, at),
            condition("ConfigurationsReady", &status.configurations_ready, at),
            condition("RoutesReady", &status.routes_ready, at),
        ],
        "traffic": status.traffic.iter().map(|t| {
            let mut target = json!({"revisionName": t.revision, "percent": t.percent});
            if t.latest {
                target["latestRevision"] = json!(true);
            }
            if let Some(tag) = &t.tag {
                target["tag"] = json!(tag);
                if let Some(tag_url) = url_at(host, service.tag_ports.get(tag).copied()) {
                    target["url"] = json!(tag_url);
                }
            }
            target
        }).collect::<Vec<_>>(),
    });
    if let Some(name) = &status.latest_created {
        out["latestCreatedRevisionName"] = json!(name);
    }
    if let Some(name) = &status.latest_ready {
        out["latestReadyRevisionName"] = json!(name);
    }
    if let Some(url) = url {
        out["url"] = json!(url);
        out["address"] = json!({ "url": url });
    }
    out
}

/// Writes the server-generated container names into a template echoed back to clients.
fn fill_container_names(template: &mut Value, service: &Service) {
    if let Some(containers) = template
        .pointer_mut("/spec/containers")
        .and_then(Value::as_array_mut)
    {
        for (json, typed) in containers.iter_mut().zip(&service.template.containers) {
            if json
                .get("name")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                json["name"] = json!(typed.name);
            }
        }
    }
}

/// A Revision; `serving` says whether it holds traffic.
pub fn revision_json(revision: &Revision, service: &Service, serving: bool) -> Value {
    let created = wire::timestamp(revision.create_time);
    let mut meta = object_meta(
        "revisions",
        &revision.name,
        service,
        &revision.uid,
        1,
        &created,
    );
    let mut labels: BTreeMap<String, String> = BTreeMap::new();
    labels.insert(
        "serving.knative.dev/service".into(),
        service.name.name.clone(),
    );
    labels.insert(
        "serving.knative.dev/configuration".into(),
        service.name.name.clone(),
    );
    labels.insert(
        "serving.knative.dev/configurationGeneration".into(),
        revision.configuration_generation.to_string(),
    );
    labels.insert("serving.knative.dev/serviceUid".into(), service.uid.clone());
    labels.insert(
        "cloud.googleapis.com/location".into(),
        service.name.region.clone(),
    );
    let has_probe = revision
        .ingress()
        .is_some_and(|(c, _)| c.startup_probe.is_some());
    if !has_probe {
        labels.insert(
            "run.googleapis.com/startupProbeType".into(),
            "Default".into(),
        );
    }
    let mut annotations = revision.template.annotations.clone();
    annotations.insert(
        "serving.knative.dev/creator".into(),
        "emulator@localhost".into(),
    );
    meta.insert("labels".into(), json!(labels));
    meta.insert("annotations".into(), json!(annotations));
    meta.insert(
        "ownerReferences".into(),
        json!([{
            "kind": "Configuration",
            "name": service.name.name,
            "uid": service.uid,
            "apiVersion": API_VERSION,
            "controller": true,
            "blockOwnerDeletion": true,
        }]),
    );
    let mut template = revision.template_json.clone();
    if let Some(containers) = template
        .pointer_mut("/spec/containers")
        .and_then(Value::as_array_mut)
    {
        for (json, typed) in containers.iter_mut().zip(&revision.template.containers) {
            if json
                .get("name")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                json["name"] = json!(typed.name);
            }
        }
    }
    let spec = template.get("spec").cloned().unwrap_or(json!({}));
    let at = wire::timestamp(revision.ready_time.unwrap_or(revision.create_time));
    let (ready, healthy) = match &revision.state {
        RevisionState::Pending => (
            Condition {
                status: ConditionStatus::Unknown,
                reason: Some("Deploying".into()),
                message: Some("Starting the revision's containers.".into()),
            },
            Condition {
                status: ConditionStatus::Unknown,
                reason: Some("Deploying".into()),
                message: None,
            },
        ),
        RevisionState::Ready => {
            let took = revision
                .ready_time
                .map(|t| (t - revision.create_time).num_milliseconds() as f64 / 1000.0)
                .unwrap_or(0.0);
            (
                Condition {
                    status: ConditionStatus::True,
                    reason: None,
                    message: Some(format!("Deploying revision succeeded in {took:.2}s.")),
                },
                Condition {
                    status: ConditionStatus::True,
                    reason: None,
                    message: Some(format!("Containers became healthy in {took:.2}s.")),
                },
            )
        }
        RevisionState::Failed { reason, message } => {
            let failed = Condition {
                status: ConditionStatus::False,
                reason: Some(reason.clone()),
                message: Some(message.clone()),
            };
            (failed.clone(), failed)
        }
    };
    let active = Condition {
        status: if serving {
            ConditionStatus::True
        } else {
            ConditionStatus::False
        },
        reason: (!serving).then(|| "Reserve".to_string()),
        message: (!serving).then(|| "The revision is not serving traffic.".to_string()),
    };
    let mut active_json = condition("Active", &active, &at);
    active_json["severity"] = json!("Info");
    json!({
        "apiVersion": API_VERSION,
        "kind": "Revision",
        "metadata": meta,
        "spec": spec,
        "status": {
            "observedGeneration": 1,
            "conditions": [
                condition("Ready", &ready, &at),
                condition("ContainerHealthy", &healthy, &at),
                condition("ResourcesAvailable", &healthy, &at),
                active_json,
            ],
            "serviceName": service.name.name,
        }
    })
}

/// The Configuration Knative derives from a service.
pub fn configuration_json(view: &ServiceView) -> Value {
    let service = &view.service;
    let created = wire::timestamp(service.create_time);
    let mut meta = object_meta(
        "configurations",
        &service.name.name,
        service,
        &service.uid,
        service.configuration_generation,
        &created,
    );
    meta.insert(
        "labels".into(),
        json!({"serving.knative.dev/service": service.name.name,
               "cloud.googleapis.com/location": service.name.region}),
    );
    let at = wire::timestamp(service.update_time);
    let mut status = json!({
        "observedGeneration": service.configuration_generation,
        "conditions": [condition("Ready", &view.status.configurations_ready, &at)],
    });
    if let Some(name) = &view.status.latest_created {
        status["latestCreatedRevisionName"] = json!(name);
    }
    if let Some(name) = &view.status.latest_ready {
        status["latestReadyRevisionName"] = json!(name);
    }
    json!({
        "apiVersion": API_VERSION,
        "kind": "Configuration",
        "metadata": meta,
        "spec": {"template": service.template_json},
        "status": status,
    })
}

/// The Route Knative derives from a service.
pub fn route_json(view: &ServiceView, host: &str) -> Value {
    let service_json = service_json(view, host);
    let url = url_at(host, view.service.url_port);
    let service = &view.service;
    let created = wire::timestamp(service.create_time);
    let mut meta = object_meta(
        "routes",
        &service.name.name,
        service,
        &service.uid,
        service.generation,
        &created,
    );
    meta.insert(
        "labels".into(),
        json!({"serving.knative.dev/service": service.name.name,
               "cloud.googleapis.com/location": service.name.region}),
    );
    let at = wire::timestamp(service.update_time);
    let mut status = json!({
        "observedGeneration": service.generation,
        "conditions": [condition("Ready", &view.status.routes_ready, &at)],
        "traffic": service_json["status"]["traffic"],
    });
    if let Some(url) = url {
        status["url"] = json!(url);
    }
    json!({
        "apiVersion": API_VERSION,
        "kind": "Route",
        "metadata": meta,
        "spec": {"traffic": service_json["spec"]["traffic"]},
        "status": status,
    })
}

/// A Knative list: `{"apiVersion","kind","metadata":{},"items":[...]}` (gcloud needs `metadata`).
pub fn list_json(kind: &str, items: Vec<Value>) -> Value {
    json!({
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": {},
        "items": items,
    })
}
