//! A Compose file read into the subset of the Compose Specification that has a Cloud Run meaning:
//! variables interpolated (from the environment, then `.env` beside the file), `env_file`s
//! merged, and every other key reported once as a warning. Errors name the file and line.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::interpolate::{interpolate, parse_env_file, split_words};
use super::yaml::{self, Key, Node, Value};
use super::{ComposeError, Warning};

/// Largest file a bind mount may ship as a secret (Secret Manager's payload limit).
pub const MAX_BIND_FILE: u64 = 64 * 1024;

/// A Compose project: its services and the top-level volumes and secrets they use.
#[derive(Debug, Clone, Default)]
pub struct Project {
    /// `name:` of the file, else the name of its directory.
    pub name: String,
    /// The file's name, for messages.
    pub file: String,
    /// The directory relative paths start from.
    pub dir: PathBuf,
    /// Services in file order.
    pub services: Vec<Service>,
    /// Top-level named volumes.
    pub volumes: Vec<String>,
    /// Top-level secrets by name.
    pub secrets: BTreeMap<String, SecretSource>,
    /// Top-level configs by name (files, shipped the way secrets are).
    pub configs: BTreeMap<String, SecretSource>,
    /// Keys and values that have no Cloud Run meaning, one per key.
    pub warnings: Vec<Warning>,
}

/// Where a top-level secret's (or config's) value comes from.
#[derive(Clone, PartialEq)]
pub enum SecretSource {
    /// `file:` (read when the file is loaded), `environment:` or a config's `content:`: uploaded
    /// to Secret Manager.
    Value(Vec<u8>),
    /// `external: true`: a Secret Manager secret of this name that already exists.
    External(String),
}

impl std::fmt::Debug for SecretSource {
    /// Never prints a secret's value.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Value(bytes) => write!(f, "Value({} bytes)", bytes.len()),
            Self::External(name) => write!(f, "External({name})"),
        }
    }
}

/// One Compose service: a container of the Cloud Run service.
#[derive(Debug, Clone, Default)]
pub struct Service {
    pub name: String,
    /// The line the service's key is on.
    pub line: usize,
    pub image: Option<String>,
    pub build: Option<Build>,
    /// `entrypoint`.
    pub entrypoint: Option<Vec<String>>,
    /// `command`.
    pub command: Option<Vec<String>>,
    pub working_dir: Option<String>,
    /// `env_file` entries, then `environment` (later names win).
    pub environment: Vec<(String, String)>,
    pub ports: Vec<PortMapping>,
    /// `expose` ports: listened on, not published.
    pub expose: Vec<u16>,
    pub depends_on: Vec<Dependency>,
    pub healthcheck: Option<Healthcheck>,
    pub mounts: Vec<Mount>,
    pub secrets: Vec<SecretUse>,
    /// `configs`: files mounted like secrets (at `/<name>` by default).
    pub configs: Vec<SecretUse>,
    /// `deploy.resources.limits.cpus` (or `cpus`).
    pub cpus: Option<String>,
    /// `deploy.resources.limits.memory` (or `mem_limit`), as Compose wrote it.
    pub memory: Option<String>,
    /// `x-google-cloudrun: {ingress-container: true}`, as Google's `run compose` reads it.
    pub ingress: bool,
    /// `profiles`: a service in profiles runs only when one of them is active.
    pub profiles: Vec<String>,
}

/// `build:` of a service.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Build {
    /// Absolute path of the build context.
    pub context: PathBuf,
    /// Dockerfile path relative to the context (`Dockerfile` when absent).
    pub dockerfile: Option<String>,
    pub args: Vec<(String, String)>,
    pub target: Option<String>,
}

/// One entry of `ports:`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PortMapping {
    /// The host port, if one was given.
    pub published: Option<u16>,
    /// The container port.
    pub target: u16,
    pub line: usize,
}

/// What a dependent service waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    Started,
    Healthy,
    CompletedSuccessfully,
}

/// One entry of `depends_on:`.
#[derive(Debug, Clone, PartialEq)]
pub struct Dependency {
    pub service: String,
    pub condition: Condition,
    pub line: usize,
}

/// `healthcheck:` of a service.
#[derive(Debug, Clone, PartialEq)]
pub struct Healthcheck {
    /// The command: `["CMD", ...]` words, or a `CMD-SHELL` string as one word.
    pub test: HealthTest,
    pub interval: Duration,
    pub timeout: Duration,
    pub retries: u32,
    pub start_period: Duration,
    pub line: usize,
}

/// The check a healthcheck runs.
#[derive(Debug, Clone, PartialEq)]
pub enum HealthTest {
    /// `["CMD", args...]`.
    Exec(Vec<String>),
    /// `["CMD-SHELL", "..."]` or a plain string.
    Shell(String),
}

/// One entry of a service's `volumes:` or `tmpfs:`.
#[derive(Debug, Clone, PartialEq)]
pub struct Mount {
    pub kind: MountKind,
    pub target: String,
    pub read_only: bool,
    pub line: usize,
}

/// What is mounted.
#[derive(Debug, Clone, PartialEq)]
pub enum MountKind {
    /// A top-level named volume.
    Volume(String),
    /// A volume without a name (`- /data`): private to the container.
    Anonymous,
    Tmpfs,
    /// A host file, read when the file is loaded (`path` as written, for messages).
    BindFile {
        path: String,
        contents: Vec<u8>,
    },
    /// A host directory (or a missing path).
    BindDir {
        path: String,
    },
}

/// One entry of a service's `secrets:`.
#[derive(Debug, Clone, PartialEq)]
pub struct SecretUse {
    /// The top-level secret.
    pub source: String,
    /// Absolute path of the file in the container (`/run/secrets/<source>` by default).
    pub target: String,
    pub mode: Option<u32>,
    pub line: usize,
}

/// Keys of a service that are accepted without a warning because they are translated.
const SERVICE_KEYS: &[&str] = &[
    "image",
    "build",
    "command",
    "entrypoint",
    "environment",
    "env_file",
    "ports",
    "expose",
    "depends_on",
    "healthcheck",
    "volumes",
    "tmpfs",
    "secrets",
    "configs",
    "restart",
    "deploy",
    "working_dir",
    "cpus",
    "mem_limit",
    "profiles",
    "x-google-cloudrun",
];

/// Why keys that Compose knows have no effect on Cloud Run.
fn no_effect(key: &str) -> String {
    match key {
        "networks" => "Cloud Run runs every container of a service in one network namespace; \
                       the containers reach each other on localhost and by service name, so \
                       `networks` is ignored"
            .into(),
        "container_name" | "hostname" => {
            format!("`{key}` is ignored: Cloud Run names the containers after the Compose services")
        }
        "labels" => "`labels` is ignored: Cloud Run containers carry no labels".into(),
        other => format!("`{other}` has no Cloud Run equivalent and is ignored"),
    }
}

/// Reads and checks a Compose file. `env` is the process environment; `.env` beside the file
/// fills in what it lacks.
pub fn load(path: &Path, env: &HashMap<String, String>) -> Result<Project, ComposeError> {
    let text = std::fs::read_to_string(path).map_err(|source| ComposeError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let dir = path
        .canonicalize()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."));
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    let mut vars = env.clone();
    let dotenv = dir.join(".env");
    if dotenv.is_file() {
        let text = std::fs::read_to_string(&dotenv).map_err(|source| ComposeError::Read {
            path: dotenv.clone(),
            source,
        })?;
        let lookup = |k: &str| env.get(k).cloned();
        let pairs =
            parse_env_file(&text, &lookup).map_err(|(line, message)| ComposeError::Invalid {
                file: ".env".into(),
                line,
                message,
            })?;
        for (name, value) in pairs {
            vars.entry(name).or_insert(value);
        }
    }
    parse(&text, &file, &dir, &vars)
}

/// Parses Compose text; `file` names it in messages, `dir` anchors relative paths, `vars`
/// answers interpolation.
pub fn parse(
    text: &str,
    file: &str,
    dir: &Path,
    vars: &HashMap<String, String>,
) -> Result<Project, ComposeError> {
    let mut loader = Loader {
        file: file.to_string(),
        dir: dir.to_path_buf(),
        vars: vars.clone(),
        warnings: Vec::new(),
    };
    let mut root = yaml::parse(text).map_err(|e| loader.invalid(e.line, e.message))?;
    loader.interpolate(&mut root)?;
    loader.project(&root)
}

struct Loader {
    file: String,
    dir: PathBuf,
    vars: HashMap<String, String>,
    warnings: Vec<Warning>,
}

/// What the loader's steps return.
type Parsed<T> = Result<T, ComposeError>;

impl Loader {
    fn invalid(&self, line: usize, message: impl Into<String>) -> ComposeError {
        ComposeError::Invalid {
            file: self.file.clone(),
            line,
            message: message.into(),
        }
    }

    fn warn(&mut self, line: usize, message: impl Into<String>) {
        self.warnings.push(Warning {
            file: self.file.clone(),
            line,
            message: message.into(),
        });
    }

    /// Interpolates every scalar value (keys are never interpolated).
    fn interpolate(&mut self, node: &mut Node) -> Parsed<()> {
        let line = node.line;
        match &mut node.value {
            Value::Scalar(text) => {
                let vars = &self.vars;
                let lookup = |k: &str| vars.get(k).cloned();
                let out = interpolate(text, &lookup).map_err(|e| self.invalid(line, e))?;
                for name in out.unset {
                    self.warn(
                        line,
                        format!("the {name} variable is not set; defaulting to a blank string"),
                    );
                }
                *text = out.text;
            }
            Value::Seq(items) => {
                for item in items {
                    self.interpolate(item)?;
                }
            }
            Value::Map(entries) => {
                for (_, value) in entries {
                    self.interpolate(value)?;
                }
            }
            Value::Null => {}
        }
        Ok(())
    }

    fn map<'a>(&self, node: &'a Node, field: &str) -> Parsed<&'a [(Key, Node)]> {
        match &node.value {
            Value::Map(entries) => Ok(entries),
            Value::Null => Ok(&[]),
            _ => Err(self.invalid(
                node.line,
                format!("{field} must be a mapping, not {}", node.kind()),
            )),
        }
    }

    fn string(&self, node: &Node, field: &str) -> Parsed<String> {
        node.as_str().map(str::to_string).ok_or_else(|| {
            self.invalid(
                node.line,
                format!("{field} must be a single value, not {}", node.kind()),
            )
        })
    }

    fn strings(&self, node: &Node, field: &str) -> Parsed<Vec<String>> {
        match &node.value {
            Value::Scalar(text) => Ok(vec![text.clone()]),
            Value::Seq(items) => items.iter().map(|i| self.string(i, field)).collect(),
            Value::Null => Ok(Vec::new()),
            Value::Map(_) => {
                Err(self.invalid(node.line, format!("{field} must be a list, not a mapping")))
            }
        }
    }

    fn words(&self, node: &Node, field: &str) -> Parsed<Vec<String>> {
        match &node.value {
            Value::Scalar(text) => split_words(text).map_err(|e| self.invalid(node.line, e)),
            _ => self.strings(node, field),
        }
    }

    fn number<T: std::str::FromStr>(&self, node: &Node, field: &str) -> Parsed<T> {
        let text = self.string(node, field)?;
        text.trim().parse().map_err(|_| {
            self.invalid(
                node.line,
                format!("{field}: {text:?} is not a valid number"),
            )
        })
    }

    fn duration(&self, node: &Node, field: &str) -> Parsed<Duration> {
        let text = self.string(node, field)?;
        parse_duration(&text).ok_or_else(|| {
            self.invalid(
                node.line,
                format!("{field}: {text:?} is not a duration such as 10s, 1m30s or 500ms"),
            )
        })
    }

    fn boolean(&self, node: &Node, field: &str) -> Parsed<bool> {
        match self.string(node, field)?.as_str() {
            "true" | "True" | "TRUE" | "yes" => Ok(true),
            "false" | "False" | "FALSE" | "no" => Ok(false),
            other => Err(self.invalid(
                node.line,
                format!("{field}: {other:?} is not true or false"),
            )),
        }
    }

    /// `KEY=VALUE` lists and mappings; a name without a value (`- KEY`, `KEY:`) is `None`.
    fn key_values(&self, node: &Node, field: &str) -> Parsed<Vec<(String, Option<String>)>> {
        match &node.value {
            Value::Map(entries) => entries
                .iter()
                .map(|(k, v)| {
                    Ok((
                        k.name.clone(),
                        match &v.value {
                            Value::Null => None,
                            _ => Some(self.string(v, &format!("{field}.{}", k.name))?),
                        },
                    ))
                })
                .collect(),
            Value::Seq(items) => items
                .iter()
                .map(|item| {
                    let text = self.string(item, field)?;
                    Ok(match text.split_once('=') {
                        Some((k, v)) => (k.to_string(), Some(v.to_string())),
                        None => (text, None),
                    })
                })
                .collect(),
            Value::Null => Ok(Vec::new()),
            Value::Scalar(_) => Err(self.invalid(
                node.line,
                format!("{field} must be a list or a mapping, not a single value"),
            )),
        }
    }

    fn path(&self, text: &str) -> PathBuf {
        let expanded = match text.strip_prefix("~/") {
            Some(rest) => match self.vars.get("HOME") {
                Some(home) => PathBuf::from(home).join(rest),
                None => PathBuf::from(text),
            },
            None => PathBuf::from(text),
        };
        if expanded.is_absolute() {
            expanded
        } else {
            self.dir.join(expanded)
        }
    }

    fn project(&mut self, root: &Node) -> Parsed<Project> {
        let top = match &root.value {
            Value::Map(entries) => entries,
            _ => {
                return Err(self.invalid(
                    root.line,
                    format!("a Compose file must be a mapping, not {}", root.kind()),
                ));
            }
        };
        let mut project = Project {
            name: self
                .dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "compose".into()),
            file: self.file.clone(),
            dir: self.dir.clone(),
            ..Project::default()
        };
        let mut services_node = None;
        for (key, value) in top {
            match key.name.as_str() {
                "version" => {}
                "name" => project.name = self.string(value, "name")?,
                "services" => services_node = Some(value),
                "volumes" => {
                    for (name, spec) in self.map(value, "volumes")? {
                        if let Some(map) = spec.as_map() {
                            for (k, _) in map {
                                if k.name != "name" && !k.name.starts_with("x-") {
                                    self.warn(
                                        k.line,
                                        format!(
                                            "volumes.{}.{}: Cloud Run volumes are in memory; \
                                             `{}` is ignored",
                                            name.name, k.name, k.name
                                        ),
                                    );
                                }
                            }
                        }
                        project.volumes.push(name.name.clone());
                    }
                }
                "secrets" => {
                    for (name, spec) in self.map(value, "secrets")? {
                        let source = self.secret("secret", &name.name, spec)?;
                        project.secrets.insert(name.name.clone(), source);
                    }
                }
                "configs" => {
                    for (name, spec) in self.map(value, "configs")? {
                        let source = self.secret("config", &name.name, spec)?;
                        project.configs.insert(name.name.clone(), source);
                    }
                }
                "networks" => self.warn(key.line, no_effect("networks")),
                other if other.starts_with("x-") => {}
                other => self.warn(key.line, no_effect(other)),
            }
        }
        let Some(services_node) = services_node else {
            return Err(self.invalid(root.line, "the file defines no `services`"));
        };
        let entries = self.map(services_node, "services")?;
        if entries.is_empty() {
            return Err(self.invalid(services_node.line, "`services` is empty"));
        }
        let active: Vec<String> = self
            .vars
            .get("COMPOSE_PROFILES")
            .map(|p| p.split(',').map(|p| p.trim().to_string()).collect())
            .unwrap_or_default();
        for (key, node) in entries {
            let service = self.service(key, node, &project)?;
            if !service.profiles.is_empty() && !service.profiles.iter().any(|p| active.contains(p))
            {
                self.warn(
                    key.line,
                    format!(
                        "service \"{}\" belongs to profiles [{}], none of which is active \
                         (COMPOSE_PROFILES): it is not deployed",
                        service.name,
                        service.profiles.join(", ")
                    ),
                );
                continue;
            }
            project.services.push(service);
        }
        if project.services.is_empty() {
            return Err(self.invalid(
                services_node.line,
                "no service is active: every service belongs to an inactive profile",
            ));
        }
        for service in &project.services {
            for dependency in &service.depends_on {
                if !project
                    .services
                    .iter()
                    .any(|s| s.name == dependency.service)
                {
                    return Err(self.invalid(
                        dependency.line,
                        format!(
                            "service \"{}\" depends on undefined service \"{}\"",
                            service.name, dependency.service
                        ),
                    ));
                }
            }
        }
        project.warnings = std::mem::take(&mut self.warnings);
        project.warnings.sort_by_key(|w| w.line);
        Ok(project)
    }

    /// A top-level secret or config (`kind`).
    fn secret(&self, kind: &str, name: &str, spec: &Node) -> Parsed<SecretSource> {
        let field = format!("{kind}s.{name}");
        let map = self.map(spec, &field)?;
        if let Some(file) = spec.get("file") {
            let path = self.path(&self.string(file, &format!("{field}.file"))?);
            let bytes = std::fs::read(&path).map_err(|e| {
                self.invalid(file.line, format!("cannot read {}: {e}", path.display()))
            })?;
            return Ok(SecretSource::Value(bytes));
        }
        if let Some(content) = spec.get("content") {
            let text = self.string(content, &format!("{field}.content"))?;
            return Ok(SecretSource::Value(text.into_bytes()));
        }
        if let Some(var) = spec.get("environment") {
            let var = self.string(var, &format!("{field}.environment"))?;
            let value = self.vars.get(&var).ok_or_else(|| {
                self.invalid(
                    spec.line,
                    format!(
                        "{kind} \"{name}\" reads the environment variable {var}, which is not set"
                    ),
                )
            })?;
            return Ok(SecretSource::Value(value.clone().into_bytes()));
        }
        if let Some(external) = spec.get("external")
            && self.boolean(external, &format!("{field}.external"))?
        {
            let name = match spec.get("name") {
                Some(n) => self.string(n, &format!("{field}.name"))?,
                None => name.to_string(),
            };
            return Ok(SecretSource::External(name));
        }
        let line = map.first().map_or(spec.line, |(k, _)| k.line);
        Err(self.invalid(
            line,
            format!("{kind} \"{name}\" needs `file`, `environment`, `content` or `external: true`"),
        ))
    }

    fn service(&mut self, key: &Key, node: &Node, project: &Project) -> Parsed<Service> {
        let name = key.name.clone();
        let entries = match &node.value {
            Value::Map(entries) => entries,
            _ => {
                return Err(self.invalid(
                    key.line,
                    format!("service \"{name}\" must be a mapping, not {}", node.kind()),
                ));
            }
        };
        let mut service = Service {
            name: name.clone(),
            line: key.line,
            ..Service::default()
        };
        let mut env_files: Vec<(String, String)> = Vec::new();
        let mut environment: Vec<(String, String)> = Vec::new();
        for (k, v) in entries {
            let field = format!("services.{name}.{}", k.name);
            match k.name.as_str() {
                "image" => service.image = Some(self.string(v, &field)?),
                "build" => service.build = Some(self.build(v, &field)?),
                "command" => service.command = Some(self.words(v, &field)?),
                "entrypoint" => service.entrypoint = Some(self.words(v, &field)?),
                "working_dir" => service.working_dir = Some(self.string(v, &field)?),
                "environment" => {
                    for (var, value) in self.key_values(v, &field)? {
                        if let Some(value) = value.or_else(|| self.vars.get(&var).cloned()) {
                            environment.push((var, value));
                        }
                    }
                }
                "env_file" => env_files.extend(self.env_files(v, &field)?),
                "ports" => service.ports = self.ports(v, &field)?,
                "expose" => {
                    for item in self.strings(v, &field)? {
                        let port = item.split('/').next().unwrap_or(&item);
                        service.expose.push(port.parse().map_err(|_| {
                            self.invalid(v.line, format!("{field}: {item:?} is not a port"))
                        })?);
                    }
                }
                "depends_on" => service.depends_on = self.depends_on(v, &field)?,
                "healthcheck" => service.healthcheck = self.healthcheck(v, &field, k.line)?,
                "volumes" => {
                    let items = match &v.value {
                        Value::Seq(items) => items.as_slice(),
                        Value::Null => &[],
                        _ => {
                            return Err(self.invalid(v.line, format!("{field} must be a list")));
                        }
                    };
                    for item in items {
                        let mount = self.mount(item, &field, project)?;
                        service.mounts.push(mount);
                    }
                }
                "tmpfs" => {
                    for item in self.strings(v, &field)? {
                        let target = item.split(':').next().unwrap_or(&item).to_string();
                        service.mounts.push(Mount {
                            kind: MountKind::Tmpfs,
                            target,
                            read_only: false,
                            line: v.line,
                        });
                    }
                }
                "secrets" => {
                    service.secrets =
                        self.secret_uses(v, &field, &project.secrets, "secret", "/run/secrets")?
                }
                "configs" => {
                    service.configs = self.secret_uses(v, &field, &project.configs, "config", "")?
                }
                "restart" => {
                    let policy = self.string(v, &field)?;
                    match policy.as_str() {
                        "always" | "unless-stopped" | "on-failure" => {}
                        p if p.starts_with("on-failure:") => {}
                        "no" => self.warn(
                            v.line,
                            format!(
                                "{field}: Cloud Run replaces an instance whose container exits; \
                                 `restart: \"no\"` cannot keep it down"
                            ),
                        ),
                        other => {
                            return Err(self.invalid(
                                v.line,
                                format!("{field}: unknown restart policy {other:?}"),
                            ));
                        }
                    }
                }
                "deploy" => self.deploy(v, &field, &mut service)?,
                "cpus" => service.cpus = Some(self.string(v, &field)?),
                "mem_limit" => service.memory = Some(self.string(v, &field)?),
                "profiles" => service.profiles = self.strings(v, &field)?,
                "x-google-cloudrun" => {
                    if let Some(flag) = v.get("ingress-container") {
                        service.ingress =
                            self.boolean(flag, &format!("{field}.ingress-container"))?;
                    }
                }
                other if other.starts_with("x-") => {}
                other => {
                    debug_assert!(!SERVICE_KEYS.contains(&other));
                    self.warn(k.line, format!("services.{name}: {}", no_effect(other)));
                }
            }
        }
        if service.image.is_none() && service.build.is_none() {
            return Err(self.invalid(
                key.line,
                format!("service \"{name}\" has neither an image nor a build context specified"),
            ));
        }
        for (var, value) in env_files.into_iter().chain(environment) {
            service.environment.retain(|(v, _)| v != &var);
            service.environment.push((var, value));
        }
        Ok(service)
    }

    fn build(&self, node: &Node, field: &str) -> Parsed<Build> {
        if let Some(context) = node.as_str() {
            return Ok(Build {
                context: self.path(context),
                ..Build::default()
            });
        }
        let mut build = Build {
            context: self.dir.clone(),
            ..Build::default()
        };
        for (k, v) in self.map(node, field)? {
            let field = format!("{field}.{}", k.name);
            match k.name.as_str() {
                "context" => build.context = self.path(&self.string(v, &field)?),
                "dockerfile" => build.dockerfile = Some(self.string(v, &field)?),
                "target" => build.target = Some(self.string(v, &field)?),
                "args" => {
                    for (arg, value) in self.key_values(v, &field)? {
                        if let Some(value) = value.or_else(|| self.vars.get(&arg).cloned()) {
                            build.args.push((arg, value));
                        }
                    }
                }
                other if other.starts_with("x-") => {}
                other => {
                    return Err(self.invalid(
                        k.line,
                        format!("{field}: `{other}` is not supported by this emulator's builder"),
                    ));
                }
            }
        }
        Ok(build)
    }

    fn env_files(&self, node: &Node, field: &str) -> Parsed<Vec<(String, String)>> {
        let mut out = Vec::new();
        let items: Vec<&Node> = match &node.value {
            Value::Seq(items) => items.iter().collect(),
            _ => vec![node],
        };
        for item in items {
            let (path, required) = match &item.value {
                Value::Map(_) => {
                    let path = item.get("path").ok_or_else(|| {
                        self.invalid(item.line, format!("{field}: an entry needs a `path`"))
                    })?;
                    let required = match item.get("required") {
                        Some(r) => self.boolean(r, &format!("{field}.required"))?,
                        None => true,
                    };
                    (self.string(path, field)?, required)
                }
                _ => (self.string(item, field)?, true),
            };
            let full = self.path(&path);
            let text = match std::fs::read_to_string(&full) {
                Ok(text) => text,
                Err(_) if !required => continue,
                Err(e) => {
                    return Err(self.invalid(
                        item.line,
                        format!("env file {} not found: {e}", full.display()),
                    ));
                }
            };
            let vars = &self.vars;
            let lookup = |k: &str| vars.get(k).cloned();
            let pairs = parse_env_file(&text, &lookup).map_err(|(line, message)| {
                ComposeError::Invalid {
                    file: path.clone(),
                    line,
                    message,
                }
            })?;
            out.extend(pairs);
        }
        Ok(out)
    }

    fn ports(&self, node: &Node, field: &str) -> Parsed<Vec<PortMapping>> {
        let items = match &node.value {
            Value::Seq(items) => items,
            Value::Null => return Ok(Vec::new()),
            _ => return Err(self.invalid(node.line, format!("{field} must be a list"))),
        };
        let mut out = Vec::new();
        for item in items {
            let bad = |text: &str| {
                self.invalid(
                    item.line,
                    format!("{field}: invalid port {text:?}: expected [HOST:]CONTAINER[/PROTOCOL]"),
                )
            };
            if item.as_map().is_some() {
                let target = item.get("target").ok_or_else(|| {
                    self.invalid(item.line, format!("{field}: a port needs a `target`"))
                })?;
                let published = match item.get("published") {
                    Some(p) => Some(self.number(p, &format!("{field}.published"))?),
                    None => None,
                };
                out.push(PortMapping {
                    published,
                    target: self.number(target, &format!("{field}.target"))?,
                    line: item.line,
                });
                continue;
            }
            let text = self.string(item, field)?;
            let bare = text.split('/').next().unwrap_or(&text);
            let parts: Vec<&str> = bare.rsplitn(3, ':').collect();
            let target: u16 = parts[0].parse().map_err(|_| bad(&text))?;
            let published = match parts.get(1) {
                Some(p) if !p.is_empty() => Some(p.parse().map_err(|_| bad(&text))?),
                _ => None,
            };
            out.push(PortMapping {
                published,
                target,
                line: item.line,
            });
        }
        Ok(out)
    }

    fn depends_on(&self, node: &Node, field: &str) -> Parsed<Vec<Dependency>> {
        match &node.value {
            Value::Seq(items) => items
                .iter()
                .map(|item| {
                    Ok(Dependency {
                        service: self.string(item, field)?,
                        condition: Condition::Started,
                        line: item.line,
                    })
                })
                .collect(),
            Value::Map(entries) => entries
                .iter()
                .map(|(k, v)| {
                    let condition = match v.get("condition") {
                        None => Condition::Started,
                        Some(c) => match self.string(c, field)?.as_str() {
                            "service_started" => Condition::Started,
                            "service_healthy" => Condition::Healthy,
                            "service_completed_successfully" => Condition::CompletedSuccessfully,
                            other => {
                                return Err(self.invalid(
                                    c.line,
                                    format!("{field}.{}: unknown condition {other:?}", k.name),
                                ));
                            }
                        },
                    };
                    Ok(Dependency {
                        service: k.name.clone(),
                        condition,
                        line: k.line,
                    })
                })
                .collect(),
            Value::Null => Ok(Vec::new()),
            Value::Scalar(_) => Err(self.invalid(node.line, format!("{field} must be a list"))),
        }
    }

    fn healthcheck(&self, node: &Node, field: &str, line: usize) -> Parsed<Option<Healthcheck>> {
        if let Some(disable) = node.get("disable")
            && self.boolean(disable, &format!("{field}.disable"))?
        {
            return Ok(None);
        }
        let Some(test) = node.get("test") else {
            return Ok(None);
        };
        let test = match &test.value {
            Value::Scalar(text) => HealthTest::Shell(text.clone()),
            Value::Seq(_) => {
                let words = self.strings(test, &format!("{field}.test"))?;
                match words.split_first() {
                    Some((first, rest)) if first == "CMD" => HealthTest::Exec(rest.to_vec()),
                    Some((first, rest)) if first == "CMD-SHELL" => {
                        HealthTest::Shell(rest.join(" "))
                    }
                    Some((first, _)) if first == "NONE" => return Ok(None),
                    _ => {
                        return Err(self.invalid(
                            test.line,
                            format!("{field}.test must start with CMD, CMD-SHELL or NONE"),
                        ));
                    }
                }
            }
            _ => return Err(self.invalid(test.line, format!("{field}.test must be a list"))),
        };
        let duration = |key: &str, default: Duration| -> Parsed<Duration> {
            match node.get(key) {
                Some(v) => self.duration(v, &format!("{field}.{key}")),
                None => Ok(default),
            }
        };
        Ok(Some(Healthcheck {
            test,
            interval: duration("interval", Duration::from_secs(30))?,
            timeout: duration("timeout", Duration::from_secs(30))?,
            start_period: duration("start_period", Duration::ZERO)?,
            retries: match node.get("retries") {
                Some(v) => self.number(v, &format!("{field}.retries"))?,
                None => 3,
            },
            line,
        }))
    }

    fn mount(&self, item: &Node, field: &str, project: &Project) -> Parsed<Mount> {
        let (kind, source, target, read_only) = if item.as_map().is_some() {
            let get = |key: &str| item.get(key).and_then(Node::as_str).map(str::to_string);
            let target = get("target").ok_or_else(|| {
                self.invalid(item.line, format!("{field}: a volume needs a `target`"))
            })?;
            let read_only = match item.get("read_only") {
                Some(r) => self.boolean(r, &format!("{field}.read_only"))?,
                None => false,
            };
            let kind = get("type").unwrap_or_else(|| "volume".into());
            (kind, get("source"), target, read_only)
        } else {
            let text = self.string(item, field)?;
            let parts: Vec<&str> = text.split(':').collect();
            match parts.as_slice() {
                [target] => ("volume".to_string(), None, target.to_string(), false),
                [source, target, rest @ ..] => {
                    let read_only = rest
                        .first()
                        .is_some_and(|m| m.split(',').any(|o| o == "ro"));
                    let is_path = source.starts_with(['.', '/', '~']);
                    let kind = if is_path { "bind" } else { "volume" };
                    (
                        kind.to_string(),
                        Some(source.to_string()),
                        target.to_string(),
                        read_only,
                    )
                }
                [] => return Err(self.invalid(item.line, format!("{field}: empty volume"))),
            }
        };
        let kind = match (kind.as_str(), source) {
            ("volume", None) => MountKind::Anonymous,
            ("volume", Some(name)) => {
                if !project.volumes.contains(&name) {
                    return Err(self.invalid(
                        item.line,
                        format!("{field}: refers to undefined volume \"{name}\""),
                    ));
                }
                MountKind::Volume(name)
            }
            ("tmpfs", _) => MountKind::Tmpfs,
            ("bind", Some(path)) => {
                let full = self.path(&path);
                match std::fs::metadata(&full) {
                    Ok(meta) if meta.is_file() => {
                        if meta.len() > MAX_BIND_FILE {
                            return Err(self.invalid(
                                item.line,
                                format!(
                                    "{field}: {path} is {} bytes; a bind-mounted file ships as a \
                                     Secret Manager secret, which holds at most {MAX_BIND_FILE} \
                                     bytes",
                                    meta.len()
                                ),
                            ));
                        }
                        let contents = std::fs::read(&full).map_err(|e| {
                            self.invalid(item.line, format!("cannot read {}: {e}", full.display()))
                        })?;
                        MountKind::BindFile { path, contents }
                    }
                    _ => MountKind::BindDir { path },
                }
            }
            (other, _) => {
                return Err(self.invalid(
                    item.line,
                    format!("{field}: unsupported volume type {other:?}"),
                ));
            }
        };
        if !target.starts_with('/') {
            return Err(self.invalid(
                item.line,
                format!("{field}: the mount target {target:?} must be an absolute path"),
            ));
        }
        Ok(Mount {
            kind,
            target,
            read_only,
            line: item.line,
        })
    }

    /// A service's `secrets` or `configs` (`kind`), defined in `defined`; relative targets are
    /// under `dir`.
    fn secret_uses(
        &self,
        node: &Node,
        field: &str,
        defined: &BTreeMap<String, SecretSource>,
        kind: &str,
        dir: &str,
    ) -> Parsed<Vec<SecretUse>> {
        let items = match &node.value {
            Value::Seq(items) => items,
            Value::Null => return Ok(Vec::new()),
            _ => return Err(self.invalid(node.line, format!("{field} must be a list"))),
        };
        let mut out = Vec::new();
        for item in items {
            let (source, target, mode) = if item.as_map().is_some() {
                let source = item
                    .get("source")
                    .ok_or_else(|| self.invalid(item.line, format!("{field}: needs a `source`")))?;
                let source = self.string(source, field)?;
                let target = match item.get("target") {
                    Some(t) => self.string(t, field)?,
                    None => source.clone(),
                };
                let mode = match item.get("mode") {
                    Some(m) => {
                        let text = self.string(m, field)?;
                        Some(parse_mode(&text).ok_or_else(|| {
                            self.invalid(m.line, format!("{field}: invalid mode {text:?}"))
                        })?)
                    }
                    None => None,
                };
                (source, target, mode)
            } else {
                let source = self.string(item, field)?;
                (source.clone(), source, None)
            };
            if !defined.contains_key(&source) {
                return Err(self.invalid(
                    item.line,
                    format!("{field}: refers to undefined {kind} \"{source}\""),
                ));
            }
            let target = if target.starts_with('/') {
                target
            } else {
                format!("{dir}/{target}")
            };
            out.push(SecretUse {
                source,
                target,
                mode,
                line: item.line,
            });
        }
        Ok(out)
    }

    fn deploy(&mut self, node: &Node, field: &str, service: &mut Service) -> Parsed<()> {
        for (k, v) in self.map(node, field)? {
            match k.name.as_str() {
                "resources" => {
                    for (r, spec) in self.map(v, &format!("{field}.resources"))? {
                        match r.name.as_str() {
                            "limits" => {
                                for (l, value) in
                                    self.map(spec, &format!("{field}.resources.limits"))?
                                {
                                    let at = format!("{field}.resources.limits.{}", l.name);
                                    match l.name.as_str() {
                                        "cpus" => service.cpus = Some(self.string(value, &at)?),
                                        "memory" => service.memory = Some(self.string(value, &at)?),
                                        other => self.warn(
                                            l.line,
                                            format!("{at}: Cloud Run limits CPU and memory only; `{other}` is ignored"),
                                        ),
                                    }
                                }
                            }
                            other => self.warn(
                                r.line,
                                format!(
                                    "{field}.resources.{other}: Cloud Run allocates the limits; \
                                     `{other}` is ignored"
                                ),
                            ),
                        }
                    }
                }
                "replicas" => self.warn(
                    k.line,
                    format!("{field}.replicas: Cloud Run scales instances itself; ignored"),
                ),
                "restart_policy" => {}
                other => self.warn(
                    k.line,
                    format!("{field}.{other} has no Cloud Run equivalent and is ignored"),
                ),
            }
        }
        Ok(())
    }
}

/// `10s`, `1m30s`, `500ms`, `1h`, `2us`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        return (seconds >= 0.0).then(|| Duration::from_secs_f64(seconds));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(digits);
        let value: f64 = number.parse().ok()?;
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let seconds = match unit {
            "h" => value * 3600.0,
            "m" => value * 60.0,
            "s" => value,
            "ms" => value / 1e3,
            "us" | "µs" => value / 1e6,
            "ns" => value / 1e9,
            _ => return None,
        };
        total += Duration::from_secs_f64(seconds);
        rest = after;
    }
    (!text.is_empty()).then_some(total)
}

/// An octal (`0440`, `0o440`) or decimal file mode.
fn parse_mode(text: &str) -> Option<u32> {
    let text = text.trim();
    if let Some(octal) = text
        .strip_prefix("0o")
        .or_else(|| text.strip_prefix('0').filter(|rest| !rest.is_empty()))
    {
        u32::from_str_radix(octal, 8).ok()
    } else {
        text.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str, vars: &[(&str, &str)]) -> Result<Project, ComposeError> {
        let vars = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse(text, "compose.yaml", Path::new("/nonexistent"), &vars)
    }

    #[test]
    fn reads_the_translated_keys() {
        let project = parse_text(
            r#"
version: "3.9"
name: shop
services:
  web:
    image: "nginx:${TAG:-1.25}"
    ports: ["8080:80"]
    depends_on:
      api:
        condition: service_healthy
    command: nginx -g 'daemon off;'
  api:
    image: api
    environment:
      - MODE=prod
      - FROM_SHELL
    expose: ["5000"]
    healthcheck:
      test: ["CMD", "curl", "-f", "http://localhost:5000/health"]
      interval: 2s
      retries: 5
    deploy:
      resources:
        limits: {cpus: "0.5", memory: 256M}
"#,
            &[("FROM_SHELL", "yes")],
        )
        .expect("valid");
        assert_eq!(project.name, "shop");
        let web = &project.services[0];
        assert_eq!(web.image.as_deref(), Some("nginx:1.25"));
        assert_eq!(web.ports[0].target, 80);
        assert_eq!(web.ports[0].published, Some(8080));
        assert_eq!(web.command.as_deref().map(<[String]>::len), Some(3));
        assert_eq!(web.depends_on[0].condition, Condition::Healthy);
        let api = &project.services[1];
        assert_eq!(
            api.environment,
            vec![
                ("MODE".into(), "prod".into()),
                ("FROM_SHELL".into(), "yes".into())
            ]
        );
        let health = api.healthcheck.as_ref().expect("healthcheck");
        assert_eq!(health.interval, Duration::from_secs(2));
        assert_eq!(health.retries, 5);
        assert_eq!(api.cpus.as_deref(), Some("0.5"));
        assert_eq!(api.memory.as_deref(), Some("256M"));
        assert!(project.warnings.is_empty(), "{:?}", project.warnings);
    }

    #[test]
    fn keys_without_cloud_run_meaning_warn_once_each_with_their_line() {
        let project = parse_text(
            "services:\n  web:\n    image: nginx\n    privileged: true\n    networks: [front]\nnetworks:\n  front: {}\n",
            &[],
        )
        .expect("valid");
        let lines: Vec<String> = project.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(lines[0].starts_with("compose.yaml:4: ") && lines[0].contains("privileged"));
        assert!(lines[1].starts_with("compose.yaml:5: ") && lines[1].contains("network"));
        assert!(lines[2].starts_with("compose.yaml:6: "));
    }

    #[test]
    fn invalid_files_name_the_line() {
        let cases = [
            (
                "services:\n  web:\n    image: nginx\n    ports: [\"http:80\"]\n",
                4,
                "invalid port",
            ),
            (
                "services:\n  web:\n    image: nginx\n   bad indent: x\n",
                4,
                "",
            ),
            (
                "services:\n  web:\n    ports: [\"80\"]\n",
                2,
                "neither an image",
            ),
            (
                "services:\n  web:\n    image: nginx\n    depends_on: [db]\n",
                4,
                "undefined service \"db\"",
            ),
            (
                "services:\n  web:\n    image: ${IMAGE:?set IMAGE}\n",
                3,
                "set IMAGE",
            ),
            (
                "services:\n  web:\n    image: nginx\n    healthcheck:\n      test: [CMD, x]\n      interval: soon\n",
                6,
                "duration",
            ),
        ];
        for (text, line, words) in cases {
            match parse_text(text, &[]) {
                Err(ComposeError::Invalid {
                    line: got, message, ..
                }) => {
                    assert_eq!(got, line, "{text}: {message}");
                    assert!(message.contains(words), "{message}");
                }
                other => panic!("expected an error at line {line} for {text}, got {other:?}"),
            }
        }
    }

    #[test]
    fn services_in_inactive_profiles_are_left_out() {
        let text = "services:\n  web:\n    image: nginx\n  debug:\n    image: busybox\n    profiles: [tools]\n";
        let project = parse_text(text, &[]).expect("valid");
        let names: Vec<&str> = project.services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, vec!["web"]);
        assert!(
            project.warnings[0]
                .to_string()
                .starts_with("compose.yaml:4: ")
        );
        let project = parse_text(text, &[("COMPOSE_PROFILES", "tools")]).expect("valid");
        assert_eq!(project.services.len(), 2);
    }

    #[test]
    fn unset_variables_warn_and_become_blank() {
        let project =
            parse_text("services:\n  web:\n    image: \"nginx${SUFFIX}\"\n", &[]).expect("valid");
        assert_eq!(project.services[0].image.as_deref(), Some("nginx"));
        assert!(project.warnings[0].to_string().contains("SUFFIX"));
    }

    #[test]
    fn durations_read_as_compose_writes_them() {
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("10"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(parse_mode("0440"), Some(0o440));
        assert_eq!(parse_mode("292"), Some(292));
    }
}
