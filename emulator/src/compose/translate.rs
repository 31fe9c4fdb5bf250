//! A Compose project as one Cloud Run service: the Knative Service JSON that `gcloud run services
//! replace` would send, the secrets to store first, and the images to build. Pure: no I/O.
//!
//! The mapping, service by service: every Compose service is a container sharing one network
//! namespace; the service that receives traffic (marked `x-google-cloudrun: ingress-container`,
//! else the only one publishing ports, else the publishing one nothing depends on) is the
//! ingress, on the container port it publishes. `depends_on` becomes
//! `run.googleapis.com/container-dependencies`, and since Cloud Run starts a dependent only after
//! its dependencies pass a startup probe, each depended-on container gets one: its
//! `healthcheck` when that is an HTTP request (`curl`/`wget` of a localhost URL), else a TCP probe
//! on the port it listens on. Named volumes, anonymous volumes and tmpfs become in-memory
//! `emptyDir` volumes; secrets and bind-mounted files become Secret Manager secrets mounted as
//! files.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{Value, json};

use super::file::{Build, Condition, HealthTest, Healthcheck, MountKind, Project, SecretSource};
use super::interpolate::split_words;
use super::{ComposeError, Warning};

/// How long a depended-on container without a healthcheck may take to listen (Cloud Run's
/// default startup budget).
const STARTUP_BUDGET_SECONDS: u64 = 240;

/// What `compose up` does, worked out before anything runs.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The Cloud Run service name.
    pub service: String,
    /// The Knative Service to create or replace.
    pub knative: Value,
    /// Secrets to store before deploying: (secret id, value).
    pub secrets: Vec<(String, Vec<u8>)>,
    /// Images to build: (Compose service, image tag, build).
    pub builds: Vec<(String, String, Build)>,
    /// What does not carry over to Cloud Run, one line each.
    pub warnings: Vec<Warning>,
}

/// A Compose or project name as a DNS label (`my_App.1` → `my-app-1`), as Cloud Run requires
/// of service and container names.
pub fn dns_label(name: &str, max: usize) -> String {
    let mut out = String::new();
    for c in name.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let mut out = out.trim_matches('-').to_string();
    if !out.starts_with(|c: char| c.is_ascii_lowercase()) {
        out.insert_str(0, "c-");
    }
    out.truncate(max);
    out.trim_end_matches('-').to_string()
}

/// The Secret Manager id for a value the project stores: `<service>-<name>`.
fn secret_id(service: &str, name: &str) -> String {
    let mut id: String = format!("{service}-{name}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    id.truncate(255);
    id
}

/// Translates `project` into the Cloud Run service `service`.
pub fn translate(project: &Project, service: &str) -> Result<Plan, ComposeError> {
    let mut warnings = project.warnings.clone();
    let file = project.file.clone();
    let warn = |warnings: &mut Vec<Warning>, line: usize, message: String| {
        warnings.push(Warning {
            file: file.clone(),
            line,
            message,
        })
    };
    let invalid = |line: usize, message: String| ComposeError::Invalid {
        file: file.clone(),
        line,
        message,
    };
    let project_label = dns_label(&project.name, 49);

    let mut names: BTreeMap<&str, String> = BTreeMap::new();
    for s in &project.services {
        let name = dns_label(&s.name, 63);
        if let Some((other, _)) = names.iter().find(|(_, n)| **n == name) {
            return Err(invalid(
                s.line,
                format!(
                    "services \"{other}\" and \"{}\" would both be the Cloud Run container \
                     \"{name}\"; rename one",
                    s.name
                ),
            ));
        }
        if name != s.name {
            warn(
                &mut warnings,
                s.line,
                format!(
                    "service \"{}\" runs as the container \"{name}\" (Cloud Run container names \
                     are DNS labels); other containers reach it as {name}, not {}",
                    s.name, s.name
                ),
            );
        }
        names.insert(&s.name, name);
    }

    let ingress = choose_ingress(project, &mut warnings, &file)?;
    let ingress_port = {
        let s = &project.services[ingress];
        s.ports
            .first()
            .map(|p| p.target)
            .or_else(|| s.expose.first().copied())
            .unwrap_or(crate::state::run::DEFAULT_PORT)
    };
    let depended_on: BTreeSet<&str> = project
        .services
        .iter()
        .flat_map(|s| s.depends_on.iter().map(|d| d.service.as_str()))
        .collect();

    let mut containers = Vec::new();
    let mut volumes: Vec<Value> = Vec::new();
    let mut named_volumes: BTreeSet<&str> = BTreeSet::new();
    let mut secrets: Vec<(String, Vec<u8>)> = Vec::new();
    let mut builds = Vec::new();
    let mut probed: BTreeSet<&str> = BTreeSet::new();
    let mut dependencies: BTreeMap<String, Vec<String>> = BTreeMap::new();

    for (index, s) in project.services.iter().enumerate() {
        let name = &names[s.name.as_str()];
        let is_ingress = index == ingress;
        let own_port = if is_ingress {
            Some(ingress_port)
        } else {
            s.ports
                .first()
                .map(|p| p.target)
                .or_else(|| s.expose.first().copied())
        };
        let image = match (&s.image, &s.build) {
            (Some(image), Some(build)) => {
                builds.push((s.name.clone(), image.clone(), build.clone()));
                image.clone()
            }
            (None, Some(build)) => {
                let tag = format!("{project_label}-{name}");
                builds.push((s.name.clone(), tag.clone(), build.clone()));
                tag
            }
            (Some(image), None) => image.clone(),
            (None, None) => {
                return Err(invalid(
                    s.line,
                    format!(
                        "service \"{}\" has neither an image nor a build context",
                        s.name
                    ),
                ));
            }
        };
        let mut container = json!({"name": name, "image": image});
        if let Some(entrypoint) = &s.entrypoint {
            container["command"] = json!(entrypoint);
        }
        if let Some(command) = &s.command {
            container["args"] = json!(command);
        }
        if let Some(dir) = &s.working_dir {
            container["workingDir"] = json!(dir);
        }
        let mut env = Vec::new();
        for (var, value) in &s.environment {
            if is_ingress && var == "PORT" {
                warn(
                    &mut warnings,
                    s.line,
                    format!(
                        "service \"{}\" sets PORT, which Cloud Run sets for the ingress \
                         container (here PORT={ingress_port}); its value {value:?} is dropped",
                        s.name
                    ),
                );
                continue;
            }
            env.push(json!({"name": var, "value": value}));
        }
        if !env.is_empty() {
            container["env"] = json!(env);
        }
        if is_ingress {
            container["ports"] = json!([{"containerPort": ingress_port}]);
            for extra in s.ports.iter().skip(1) {
                warn(
                    &mut warnings,
                    extra.line,
                    format!(
                        "service \"{}\" publishes port {} too, but a Cloud Run service receives \
                         traffic on one port ({ingress_port}); {} stays internal (localhost:{} \
                         inside the service)",
                        s.name, extra.target, extra.target, extra.target
                    ),
                );
            }
        } else {
            for port in &s.ports {
                warn(
                    &mut warnings,
                    port.line,
                    format!(
                        "service \"{}\" publishes port {}, but only the ingress container \
                         receives traffic on Cloud Run; it stays internal (localhost:{} inside \
                         the service)",
                        s.name, port.target, port.target
                    ),
                );
            }
        }
        let mut limits = serde_json::Map::new();
        if let Some(cpus) = &s.cpus {
            limits.insert("cpu".into(), json!(cpus));
        }
        if let Some(memory) = &s.memory {
            let quantity = memory_quantity(memory).ok_or_else(|| {
                invalid(
                    s.line,
                    format!("service \"{}\": invalid memory limit {memory:?}", s.name),
                )
            })?;
            limits.insert("memory".into(), json!(quantity));
        }
        if !limits.is_empty() {
            container["resources"] = json!({"limits": limits});
        }

        let mut mounts = Vec::new();
        for (i, mount) in s.mounts.iter().enumerate() {
            match &mount.kind {
                MountKind::Volume(volume) => {
                    let volume_name = dns_label(volume, 63);
                    if named_volumes.insert(volume.as_str()) {
                        volumes
                            .push(json!({"name": volume_name, "emptyDir": {"medium": "Memory"}}));
                        warn(
                            &mut warnings,
                            mount.line,
                            format!(
                                "volume \"{volume}\" is an in-memory volume on Cloud Run, shared \
                                 by the containers of one instance; its data does not outlive \
                                 the instance"
                            ),
                        );
                    }
                    mounts.push(json!({"name": volume_name, "mountPath": mount.target}));
                }
                MountKind::Anonymous | MountKind::Tmpfs => {
                    let volume_name = format!("{name}-tmp-{i}");
                    volumes.push(json!({"name": volume_name, "emptyDir": {"medium": "Memory"}}));
                    mounts.push(json!({"name": volume_name, "mountPath": mount.target}));
                }
                MountKind::BindFile { path, contents } => {
                    let (dir, file_name) = split_target(&mount.target);
                    let id = secret_id(service, &format!("{name}-file-{i}"));
                    secrets.push((id.clone(), contents.clone()));
                    let volume_name = format!("{name}-file-{i}");
                    volumes.push(json!({"name": volume_name, "secret": {
                        "secretName": id,
                        "items": [{"key": "latest", "path": file_name}],
                        "defaultMode": 0o444,
                    }}));
                    mounts.push(json!({"name": volume_name, "mountPath": dir}));
                    if !mount.read_only {
                        warn(
                            &mut warnings,
                            mount.line,
                            format!(
                                "the file {path} ships as the Secret Manager secret \"{id}\", \
                                 mounted read-only at {} (Cloud Run has no host paths)",
                                mount.target
                            ),
                        );
                    }
                }
                MountKind::BindDir { path } => warn(
                    &mut warnings,
                    mount.line,
                    format!(
                        "the host directory {path} is not mounted at {}: Cloud Run has no host \
                         paths; copy it into the image (only single files ship, as secrets)",
                        mount.target
                    ),
                ),
            }
        }
        let files = s
            .secrets
            .iter()
            .map(|u| ("secret", u, &project.secrets[&u.source]))
            .chain(
                s.configs
                    .iter()
                    .map(|u| ("config", u, &project.configs[&u.source])),
            );
        for (i, (kind, used, source)) in files.enumerate() {
            let id = match source {
                SecretSource::External(id) => id.clone(),
                SecretSource::Value(bytes) => {
                    let id = match kind {
                        "config" => secret_id(service, &format!("config-{}", used.source)),
                        _ => secret_id(service, &used.source),
                    };
                    if !secrets.iter().any(|(known, _)| known == &id) {
                        secrets.push((id.clone(), bytes.clone()));
                    }
                    id
                }
            };
            let (dir, file_name) = split_target(&used.target);
            let volume_name = format!("{name}-{kind}-{i}");
            let mut item = json!({"key": "latest", "path": file_name});
            if let Some(mode) = used.mode {
                item["mode"] = json!(mode);
            }
            volumes
                .push(json!({"name": volume_name, "secret": {"secretName": id, "items": [item]}}));
            mounts.push(json!({"name": volume_name, "mountPath": dir}));
        }
        if !mounts.is_empty() {
            container["volumeMounts"] = json!(mounts);
        }

        let needed = depended_on.contains(s.name.as_str()) && !is_ingress;
        let probe = match &s.healthcheck {
            Some(check) => {
                let probe = health_probe(check);
                match (&probe, own_port) {
                    (Some(_), _) => {}
                    (None, Some(port)) => warn(
                        &mut warnings,
                        check.line,
                        format!(
                            "the healthcheck of \"{}\" runs a command; Cloud Run probes are HTTP, \
                             TCP or gRPC, so its startup probe checks that port {port} accepts \
                             connections",
                            s.name
                        ),
                    ),
                    (None, None) => warn(
                        &mut warnings,
                        check.line,
                        format!(
                            "the healthcheck of \"{}\" runs a command and the service declares no \
                             port (`ports` or `expose`) to probe instead; it is not checked",
                            s.name
                        ),
                    ),
                }
                probe.or_else(|| own_port.map(|port| tcp_probe(port, Some(check))))
            }
            None if needed => own_port.map(|port| tcp_probe(port, None)),
            None => None,
        };
        if let Some(probe) = probe {
            container["startupProbe"] = probe;
            probed.insert(s.name.as_str());
        }
        containers.push(container);
    }

    for s in &project.services {
        let mut needs = Vec::new();
        for dependency in &s.depends_on {
            let target = &dependency.service;
            let is_ingress = project.services[ingress].name == *target;
            if dependency.condition == Condition::CompletedSuccessfully {
                warn(
                    &mut warnings,
                    dependency.line,
                    format!(
                        "\"{}\" waits for \"{target}\" to complete, but every Cloud Run container \
                         runs for the life of the instance: it waits for \"{target}\" to start",
                        s.name
                    ),
                );
            }
            if !probed.contains(target.as_str()) && !is_ingress {
                warn(
                    &mut warnings,
                    dependency.line,
                    format!(
                        "\"{}\" starts alongside \"{target}\": Cloud Run orders containers by \
                         startup probes, and \"{target}\" has no healthcheck and no port \
                         (`ports` or `expose`) to probe",
                        s.name
                    ),
                );
                continue;
            }
            needs.push(names[target.as_str()].clone());
        }
        if !needs.is_empty() {
            dependencies.insert(names[s.name.as_str()].clone(), needs);
        }
    }

    let mut annotations = serde_json::Map::new();
    if !dependencies.is_empty() {
        annotations.insert(
            crate::state::run::DEPENDENCIES_ANNOTATION.into(),
            json!(serde_json::to_string(&dependencies).unwrap_or_default()),
        );
    }
    let mut spec = json!({"containers": containers});
    if !volumes.is_empty() {
        spec["volumes"] = json!(volumes);
    }
    let knative = json!({
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": service},
        "spec": {"template": {
            "metadata": {"annotations": annotations},
            "spec": spec,
        }},
    });
    Ok(Plan {
        service: service.to_string(),
        knative,
        secrets,
        builds,
        warnings,
    })
}

/// The Compose service that receives requests.
fn choose_ingress(
    project: &Project,
    warnings: &mut Vec<Warning>,
    file: &str,
) -> Result<usize, ComposeError> {
    let marked: Vec<usize> = (0..project.services.len())
        .filter(|&i| project.services[i].ingress)
        .collect();
    match marked.as_slice() {
        [one] => return Ok(*one),
        [_, second, ..] => {
            return Err(ComposeError::Invalid {
                file: file.to_string(),
                line: project.services[*second].line,
                message: "only one service may set x-google-cloudrun: ingress-container: true"
                    .into(),
            });
        }
        [] => {}
    }
    if project.services.len() == 1 {
        return Ok(0);
    }
    let publishing: Vec<usize> = (0..project.services.len())
        .filter(|&i| !project.services[i].ports.is_empty())
        .collect();
    let top: Vec<usize> = publishing
        .iter()
        .copied()
        .filter(|&i| {
            let name = &project.services[i].name;
            !project
                .services
                .iter()
                .any(|s| s.depends_on.iter().any(|d| &d.service == name))
        })
        .collect();
    match (publishing.as_slice(), top.as_slice()) {
        ([one], _) | (_, [one]) => Ok(*one),
        ([], _) => Err(ComposeError::Invalid {
            file: file.to_string(),
            line: project.services[0].line,
            message: "no service publishes a port: a Cloud Run service needs exactly one \
                      ingress container; add `ports` to the service that receives requests, or \
                      mark it with x-google-cloudrun: ingress-container: true"
                .into(),
        }),
        (_, candidates) => {
            let chosen = candidates.first().copied().unwrap_or(publishing[0]);
            let others: Vec<&str> = publishing
                .iter()
                .filter(|&&i| i != chosen)
                .map(|&i| project.services[i].name.as_str())
                .collect();
            warnings.push(Warning {
                file: file.to_string(),
                line: project.services[chosen].line,
                message: format!(
                    "several services publish ports; \"{}\" receives the traffic, not {} (mark \
                     the one that should with x-google-cloudrun: ingress-container: true)",
                    project.services[chosen].name,
                    others.join(", ")
                ),
            });
            Ok(chosen)
        }
    }
}

/// `/run/secrets/db` → (`/run/secrets`, `db`).
fn split_target(target: &str) -> (String, String) {
    match target.rsplit_once('/') {
        Some(("", file)) => ("/".into(), file.into()),
        Some((dir, file)) => (dir.into(), file.into()),
        None => ("/".into(), target.into()),
    }
}

/// Docker's memory units are binary: `256m` / `256M` / `256mb` are MiB.
fn memory_quantity(text: &str) -> Option<String> {
    let lower = text.trim().to_ascii_lowercase();
    let lower = lower
        .strip_suffix('b')
        .filter(|s| !s.is_empty())
        .unwrap_or(&lower);
    let (number, unit) = match lower.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((at, _)) => lower.split_at(at),
        None => (lower, ""),
    };
    let value: f64 = number.parse().ok()?;
    let unit = match unit {
        "" => "",
        "k" => "Ki",
        "m" => "Mi",
        "g" => "Gi",
        "t" => "Ti",
        _ => return None,
    };
    (value > 0.0).then(|| format!("{number}{unit}"))
}

fn seconds_up(duration: Duration) -> u64 {
    duration.as_millis().div_ceil(1000) as u64
}

/// Cloud Run's probe timing for a Compose healthcheck: period = interval (at least 2 s, since
/// the timeout must be shorter), failures during `start_period` not counted.
fn timing(check: Option<&Healthcheck>) -> serde_json::Map<String, Value> {
    let (period, timeout, threshold) = match check {
        Some(check) => {
            let period = seconds_up(check.interval).max(2);
            let timeout = seconds_up(check.timeout).clamp(1, period - 1);
            let grace = seconds_up(check.start_period).div_ceil(period);
            (period, timeout, u64::from(check.retries.max(1)) + grace)
        }
        None => (2, 1, STARTUP_BUDGET_SECONDS / 2),
    };
    let mut out = serde_json::Map::new();
    out.insert("periodSeconds".into(), json!(period));
    out.insert("timeoutSeconds".into(), json!(timeout));
    out.insert("failureThreshold".into(), json!(threshold));
    out
}

fn tcp_probe(port: u16, check: Option<&Healthcheck>) -> Value {
    let mut probe = timing(check);
    probe.insert("tcpSocket".into(), json!({"port": port}));
    Value::Object(probe)
}

/// An HTTP startup probe for a healthcheck that fetches a localhost URL with curl or wget.
fn health_probe(check: &Healthcheck) -> Option<Value> {
    let words = match &check.test {
        HealthTest::Exec(words) => words.clone(),
        HealthTest::Shell(text) => split_words(text).ok()?,
    };
    let fetches = words.iter().any(|w| {
        let program = w.rsplit('/').next().unwrap_or(w);
        program == "curl" || program == "wget"
    });
    if !fetches {
        return None;
    }
    let url = words.iter().find_map(|w| w.strip_prefix("http://"))?;
    let (authority, path) = match url.find('/') {
        Some(at) => (&url[..at], &url[at..]),
        None => (url, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (host, port.parse().ok()?),
        None => (authority, 80),
    };
    if !matches!(host, "localhost" | "127.0.0.1" | "0.0.0.0" | "[::1]") {
        return None;
    }
    let mut probe = timing(Some(check));
    probe.insert("httpGet".into(), json!({"path": path, "port": port}));
    Some(Value::Object(probe))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::Path;

    use super::*;
    use crate::compose::file;

    fn plan(text: &str) -> Plan {
        let project = file::parse(
            text,
            "compose.yaml",
            Path::new("/nonexistent"),
            &HashMap::new(),
        )
        .expect("valid compose");
        translate(&project, "shop").expect("translates")
    }

    fn container<'a>(plan: &'a Plan, name: &str) -> &'a Value {
        plan.knative["spec"]["template"]["spec"]["containers"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["name"] == name))
            .unwrap_or_else(|| panic!("no container {name} in {}", plan.knative))
    }

    const SHOP: &str = r#"
services:
  proxy:
    image: nginx
    ports: ["8080:80"]
    depends_on: [frontend, backend]
  frontend:
    build: ./frontend
    expose: ["3000"]
  backend:
    build:
      context: ./backend
      args: {VERSION: "2"}
    ports: ["8000:8000"]
    environment: {DB_HOST: localhost}
    healthcheck:
      test: ["CMD", "curl", "-fsS", "http://localhost:8000/healthz"]
      interval: 1s
      timeout: 5s
      retries: 10
      start_period: 4s
    depends_on:
      db:
        condition: service_healthy
  db:
    image: postgres
    healthcheck:
      test: pg_isready -U app
"#;

    #[test]
    fn the_publishing_service_nothing_depends_on_is_the_ingress() {
        let plan = plan(SHOP);
        let proxy = container(&plan, "proxy");
        assert_eq!(proxy["ports"], json!([{"containerPort": 80}]));
        assert!(
            proxy.get("startupProbe").is_none(),
            "Cloud Run adds its default"
        );
        assert!(container(&plan, "backend").get("ports").is_none());
        let backend_warning = plan
            .warnings
            .iter()
            .any(|w| w.message.contains("\"backend\" publishes port 8000") && w.line == 14);
        assert!(backend_warning, "{:?}", plan.warnings);
    }

    #[test]
    fn depends_on_orders_containers_behind_startup_probes() {
        let plan = plan(SHOP);
        let annotations = &plan.knative["spec"]["template"]["metadata"]["annotations"];
        let dependencies: BTreeMap<String, Vec<String>> = serde_json::from_str(
            annotations["run.googleapis.com/container-dependencies"]
                .as_str()
                .expect("annotation"),
        )
        .expect("json");
        assert_eq!(dependencies["proxy"], vec!["frontend", "backend"]);
        assert!(
            !dependencies.contains_key("backend"),
            "db has no port to probe"
        );
        assert_eq!(
            container(&plan, "frontend")["startupProbe"]["tcpSocket"],
            json!({"port": 3000})
        );
        let backend = &container(&plan, "backend")["startupProbe"];
        assert_eq!(
            backend["httpGet"],
            json!({"path": "/healthz", "port": 8000})
        );
        assert_eq!(backend["periodSeconds"], 2);
        assert_eq!(backend["timeoutSeconds"], 1);
        assert_eq!(backend["failureThreshold"], 12);
        assert!(plan.warnings.iter().any(|w| {
            w.message.contains("\"db\" has no healthcheck")
                || w.message
                    .contains("runs a command and the service declares no port")
        }));
    }

    #[test]
    fn builds_are_tagged_per_project_and_service() {
        let plan = plan(SHOP);
        let tags: Vec<&str> = plan.builds.iter().map(|(_, tag, _)| tag.as_str()).collect();
        assert_eq!(tags, vec!["nonexistent-frontend", "nonexistent-backend"]);
        assert_eq!(
            container(&plan, "frontend")["image"],
            "nonexistent-frontend"
        );
        assert_eq!(
            plan.builds[1].2.args,
            vec![("VERSION".to_string(), "2".to_string())]
        );
    }

    #[test]
    fn volumes_secrets_and_limits_map_to_cloud_run_shapes() {
        let plan = plan(
            r#"
services:
  app:
    image: app
    ports: ["8080"]
    volumes: ["cache:/cache", "/scratch"]
    tmpfs: /tmp
    secrets:
      - db_password
      - source: api_key
        target: /etc/app/key
        mode: 0400
    deploy:
      resources:
        limits: {cpus: "0.5", memory: 256M}
    environment: [PORT=9999]
  worker:
    image: app
    volumes: ["cache:/data"]
volumes:
  cache:
secrets:
  db_password:
    external: true
  api_key:
    external: true
    name: prod-api-key
"#,
        );
        let app = container(&plan, "app");
        assert_eq!(
            app["resources"]["limits"],
            json!({"cpu": "0.5", "memory": "256Mi"})
        );
        assert!(app.get("env").is_none(), "PORT is Cloud Run's to set");
        let volumes = plan.knative["spec"]["template"]["spec"]["volumes"]
            .as_array()
            .expect("volumes");
        let cache: Vec<&Value> = volumes.iter().filter(|v| v["name"] == "cache").collect();
        assert_eq!(cache.len(), 1, "one shared volume");
        assert_eq!(cache[0]["emptyDir"]["medium"], "Memory");
        let mounts = app["volumeMounts"].as_array().expect("mounts");
        let paths: Vec<&str> = mounts
            .iter()
            .filter_map(|m| m["mountPath"].as_str())
            .collect();
        assert_eq!(
            paths,
            vec!["/cache", "/scratch", "/tmp", "/run/secrets", "/etc/app"]
        );
        let key = volumes
            .iter()
            .find(|v| v["secret"]["secretName"] == "prod-api-key")
            .expect("external secret by its name");
        assert_eq!(
            key["secret"]["items"],
            json!([{"key": "latest", "path": "key", "mode": 0o400}])
        );
        assert!(plan.secrets.is_empty(), "external secrets are not uploaded");
        assert_eq!(
            container(&plan, "worker")["volumeMounts"][0]["name"],
            "cache"
        );
    }

    #[test]
    fn the_cloud_sql_proxy_keeps_its_image_and_instance_argument() {
        let plan = plan(
            r#"
services:
  app:
    image: app
    ports: ["8080:8080"]
    environment:
      DATABASE_URL: postgres://app@localhost:5432/app
    depends_on: [cloud-sql-proxy]
  cloud-sql-proxy:
    image: gcr.io/cloud-sql-connectors/cloud-sql-proxy:2.11.0
    command: ["--address=0.0.0.0", "--port=5432", "demo-proj:us-central1:shop-db"]
    ports: ["5432:5432"]
"#,
        );
        let proxy = container(&plan, "cloud-sql-proxy");
        assert_eq!(
            proxy["image"],
            "gcr.io/cloud-sql-connectors/cloud-sql-proxy:2.11.0"
        );
        assert_eq!(
            proxy["args"],
            json!([
                "--address=0.0.0.0",
                "--port=5432",
                "demo-proj:us-central1:shop-db"
            ])
        );
        assert_eq!(proxy["startupProbe"]["tcpSocket"], json!({"port": 5432}));
        assert!(proxy.get("ports").is_none(), "the app is the ingress");
    }

    #[test]
    fn configs_ship_as_secret_files_at_their_target() {
        let plan = plan(
            "services:\n  web:\n    image: nginx\n    ports: [\"80\"]\n    configs:\n      - source: site\n        target: /etc/nginx/conf.d/site.conf\n      - banner\nconfigs:\n  site:\n    content: \"server {}\"\n  banner:\n    content: hello\n",
        );
        let stored: Vec<&str> = plan.secrets.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(stored, vec!["shop-config-site", "shop-config-banner"]);
        assert_eq!(plan.secrets[0].1, b"server {}");
        let mounts = &container(&plan, "web")["volumeMounts"];
        assert_eq!(mounts[0]["mountPath"], "/etc/nginx/conf.d");
        assert_eq!(mounts[1]["mountPath"], "/");
    }

    #[test]
    fn names_become_dns_labels() {
        assert_eq!(dns_label("My_App.v2", 63), "my-app-v2");
        assert_eq!(dns_label("9lives", 63), "c-9lives");
        assert_eq!(memory_quantity("1g").as_deref(), Some("1Gi"));
        assert_eq!(memory_quantity("512mb").as_deref(), Some("512Mi"));
        assert_eq!(memory_quantity("lots"), None);
    }

    #[test]
    fn a_file_without_a_port_cannot_choose_an_ingress() {
        let project = file::parse(
            "services:\n  a:\n    image: x\n  b:\n    image: y\n",
            "compose.yaml",
            Path::new("/nonexistent"),
            &HashMap::new(),
        )
        .expect("valid");
        let error = translate(&project, "svc")
            .expect_err("must fail")
            .to_string();
        assert!(
            error.contains("compose.yaml:2:") && error.contains("ingress"),
            "{error}"
        );
    }
}
