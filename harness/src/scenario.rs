//! Scenario files: a stack and the story to check against it, written as YAML, run by
//! `cloudrun-emulator test FILE...` and by Rust tests alike.
//!
//! ```yaml
//! name: greeting from Secret Manager
//! stack:
//!   images: [testapp]                          # docker/images/<name>
//!   build: {cloudrun-emulator/web-proxy:1: ../apps/web/proxy}   # tag: Dockerfile directory
//!   secrets: {greeting: hello, creds: {json: {user: app}}, key: {file: key.pem}}
//!   sql: [{instance: db, databases: [app], users: {app: pw}, fixtures: ["CREATE TABLE t (x int)"]}]
//!   services: [{file: service.yaml, vars: {SERVICE: echo}, public: true}]
//! steps:
//!   - http: {service: echo, path: /env/GREETING, status: 200, body: hello}
//!   - http: {service: web, path: /api/data, json_keys: [now, version], body_contains: PostgreSQL}
//!   - sql: {instance: db, database: app, user: app, query: "SELECT 1 AS one", rows: [{one: 1}]}
//!   - rotate_secret: {name: greeting, value: hello again}
//!   - redeploy: echo
//!   - stop_sql: db
//!   - start_sql: db
//! ```
//!
//! Paths are relative to the scenario file. An `http` step expects status 200 unless it says
//! otherwise; `json` is matched as a subset (every key given must be there with that value).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

use crate::error::HarnessError;
use crate::service::CloudRunService;
use crate::sql::SqlInstance;
use crate::stack::{RunningStack, Stack};

/// A scenario file, parsed and checked.
#[derive(Debug, Clone)]
pub struct Scenario {
    path: PathBuf,
    file: ScenarioFile,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFile {
    name: String,
    #[serde(default)]
    stack: StackSpec,
    steps: Vec<Step>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StackSpec {
    project: Option<String>,
    region: Option<String>,
    #[serde(default)]
    images: Vec<String>,
    #[serde(default)]
    build: BTreeMap<String, String>,
    #[serde(default)]
    secrets: BTreeMap<String, SecretSpec>,
    #[serde(default)]
    sql: Vec<SqlSpec>,
    #[serde(default)]
    services: Vec<ServiceSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum SecretSpec {
    Literal(String),
    File { file: String },
    Json { json: Value },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SqlSpec {
    instance: String,
    version: Option<String>,
    #[serde(default)]
    databases: Vec<String>,
    #[serde(default)]
    users: BTreeMap<String, String>,
    #[serde(default)]
    fixtures: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceSpec {
    file: String,
    #[serde(default)]
    vars: BTreeMap<String, String>,
    #[serde(default)]
    public: bool,
}

/// One step: exactly one of its fields is set.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Step {
    http: Option<HttpStep>,
    sql: Option<SqlStep>,
    rotate_secret: Option<RotateStep>,
    redeploy: Option<String>,
    stop_sql: Option<String>,
    start_sql: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpStep {
    service: String,
    #[serde(default = "get")]
    method: String,
    path: String,
    /// The request body.
    send: Option<String>,
    #[serde(default = "ok")]
    status: u16,
    body: Option<String>,
    body_contains: Option<String>,
    json: Option<Value>,
    #[serde(default)]
    json_keys: Vec<String>,
}

fn get() -> String {
    "GET".into()
}

fn ok() -> u16 {
    200
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SqlStep {
    instance: String,
    database: String,
    user: String,
    query: String,
    rows: Option<Vec<BTreeMap<String, Value>>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateStep {
    name: String,
    value: String,
}

impl Step {
    fn describe(&self) -> String {
        if let Some(http) = &self.http {
            format!(
                "{} {}{} → {}",
                http.method, http.service, http.path, http.status
            )
        } else if let Some(sql) = &self.sql {
            format!("sql {}/{}: {}", sql.instance, sql.database, sql.query)
        } else if let Some(rotate) = &self.rotate_secret {
            format!("rotate secret {}", rotate.name)
        } else if let Some(service) = &self.redeploy {
            format!("redeploy {service}")
        } else if let Some(instance) = &self.stop_sql {
            format!("stop Cloud SQL instance {instance}")
        } else if let Some(instance) = &self.start_sql {
            format!("start Cloud SQL instance {instance}")
        } else {
            "(empty step)".into()
        }
    }

    fn kinds(&self) -> usize {
        [
            self.http.is_some(),
            self.sql.is_some(),
            self.rotate_secret.is_some(),
            self.redeploy.is_some(),
            self.stop_sql.is_some(),
            self.start_sql.is_some(),
        ]
        .into_iter()
        .filter(|set| *set)
        .count()
    }
}

/// What happened to one step.
#[derive(Debug, Clone)]
pub struct StepReport {
    /// What the step does, e.g. `GET web/api/data → 200`.
    pub name: String,
    pub elapsed: Duration,
    /// Why it failed; `None` when it passed.
    pub failure: Option<String>,
}

/// What happened to one scenario file.
#[derive(Debug, Clone)]
pub struct ScenarioReport {
    pub name: String,
    pub file: PathBuf,
    /// Starting the stack (images, secrets, Cloud SQL, deploys).
    pub setup: StepReport,
    /// The steps run; those after a failure are not run.
    pub steps: Vec<StepReport>,
    /// Every service's logs, kept when something failed.
    pub logs: String,
    pub elapsed: Duration,
}

impl ScenarioReport {
    /// Whether the stack started and every step passed.
    pub fn passed(&self) -> bool {
        self.setup.failure.is_none() && self.steps.iter().all(|s| s.failure.is_none())
    }

    /// A readable account of a failure: the step, what was expected and got, and the logs.
    pub fn failure_report(&self) -> Option<String> {
        let failed = std::iter::once(&self.setup)
            .chain(&self.steps)
            .find(|s| s.failure.is_some())?;
        Some(format!(
            "scenario {:?} ({}) failed at: {}\n{}\n--- logs ---\n{}",
            self.name,
            self.file.display(),
            failed.name,
            failed.failure.as_deref().unwrap_or_default(),
            self.logs
        ))
    }
}

/// A step as it starts or ends, for a progress display.
#[derive(Debug, Clone, Copy)]
pub enum Progress<'a> {
    Started(&'a str),
    Finished(&'a StepReport),
}

impl Scenario {
    /// Reads and checks a scenario file; errors name the line.
    pub fn load(path: impl AsRef<Path>) -> Result<Scenario, HarnessError> {
        let path = path.as_ref().to_path_buf();
        let error = |message: String| HarnessError::ServiceYaml {
            path: path.display().to_string(),
            message,
        };
        let text =
            std::fs::read_to_string(&path).map_err(|e| error(format!("cannot read it: {e}")))?;
        let file: ScenarioFile = serde_yaml::from_str(&text).map_err(|e| error(e.to_string()))?;
        for (i, step) in file.steps.iter().enumerate() {
            if step.kinds() != 1 {
                return Err(error(format!(
                    "steps[{i}]: a step is exactly one of http, sql, rotate_secret, redeploy, \
                     stop_sql, start_sql"
                )));
            }
        }
        Ok(Scenario { path, file })
    }

    /// The scenario's name.
    pub fn name(&self) -> &str {
        &self.file.name
    }

    fn relative(&self, path: &str) -> PathBuf {
        self.path
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join(path)
    }

    fn service(&self, spec: &ServiceSpec) -> CloudRunService {
        let mut service = CloudRunService::from_yaml(self.relative(&spec.file));
        for (name, value) in &spec.vars {
            service = service.var(name, value);
        }
        if spec.public {
            service = service.allow_unauthenticated();
        }
        service
    }

    /// The stack the file declares.
    pub fn stack(&self) -> Result<Stack, HarnessError> {
        let spec = &self.file.stack;
        let mut stack = Stack::new();
        if let Some(project) = &spec.project {
            stack = stack.project(project);
        }
        if let Some(region) = &spec.region {
            stack = stack.region(region);
        }
        for image in &spec.images {
            stack = stack.image(image);
        }
        for (tag, dir) in &spec.build {
            stack = stack.build_image(tag, self.relative(dir));
        }
        for (name, secret) in &spec.secrets {
            stack = match secret {
                SecretSpec::Literal(value) => stack.secret(name, value.as_str()),
                SecretSpec::File { file } => stack.secret_file(name, self.relative(file)),
                SecretSpec::Json { json } => stack.secret_json(name, json),
            };
        }
        for sql in &spec.sql {
            let mut instance = SqlInstance::postgres(&sql.instance);
            if let Some(version) = &sql.version {
                instance = instance.version(version);
            }
            for database in &sql.databases {
                instance = instance.database(database);
            }
            for (user, password) in &sql.users {
                instance = instance.user(user, password);
            }
            for fixture in &sql.fixtures {
                instance = instance.fixture_sql(fixture);
            }
            stack = stack.sql_instance(instance);
        }
        for service in &spec.services {
            stack = stack.service(self.service(service));
        }
        Ok(stack)
    }

    /// Starts the stack, runs the steps until one fails, and tears the stack down.
    pub async fn run(&self, mut progress: impl FnMut(Progress<'_>)) -> ScenarioReport {
        let began = Instant::now();
        let mut report = ScenarioReport {
            name: self.file.name.clone(),
            file: self.path.clone(),
            setup: StepReport {
                name: "start the stack".into(),
                elapsed: Duration::ZERO,
                failure: None,
            },
            steps: Vec::new(),
            logs: String::new(),
            elapsed: Duration::ZERO,
        };
        progress(Progress::Started(&report.setup.name));
        let started = match self.stack() {
            Ok(stack) => stack.start().await,
            Err(error) => Err(error),
        };
        report.setup.elapsed = began.elapsed();
        let mut stack = match started {
            Ok(stack) => stack,
            Err(error) => {
                report.setup.failure = Some(error.to_string());
                progress(Progress::Finished(&report.setup));
                report.elapsed = began.elapsed();
                return report;
            }
        };
        progress(Progress::Finished(&report.setup));
        for step in &self.file.steps {
            let name = step.describe();
            progress(Progress::Started(&name));
            let at = Instant::now();
            let failure = run_step(&mut stack, step).await.err();
            report.steps.push(StepReport {
                name,
                elapsed: at.elapsed(),
                failure,
            });
            if let Some(done) = report.steps.last() {
                progress(Progress::Finished(done));
            }
            if report.steps.last().is_some_and(|s| s.failure.is_some()) {
                report.logs = stack.all_logs();
                break;
            }
        }
        drop(stack);
        report.elapsed = began.elapsed();
        report
    }
}

async fn run_step(stack: &mut RunningStack, step: &Step) -> Result<(), String> {
    if let Some(http) = &step.http {
        return http_step(stack, http).await;
    }
    if let Some(sql) = &step.sql {
        return sql_step(stack, sql).await;
    }
    let outcome = if let Some(rotate) = &step.rotate_secret {
        stack
            .rotate_secret(&rotate.name, rotate.value.as_bytes())
            .await
    } else if let Some(service) = &step.redeploy {
        stack.redeploy(service).await.map(|_| ())
    } else if let Some(instance) = &step.stop_sql {
        stack.stop_sql_instance(instance).await
    } else if let Some(instance) = &step.start_sql {
        stack.start_sql_instance(instance).await
    } else {
        Ok(())
    };
    outcome.map_err(|e| e.to_string())
}

async fn http_step(stack: &RunningStack, step: &HttpStep) -> Result<(), String> {
    let url = format!(
        "{}{}",
        stack.url(&step.service).map_err(|e| e.to_string())?,
        step.path
    );
    let method = reqwest::Method::from_bytes(step.method.as_bytes())
        .map_err(|_| format!("{:?} is not an HTTP method", step.method))?;
    let mut request = stack.http().request(method, &url);
    if let Some(body) = &step.send {
        request = request.body(body.clone());
    }
    let response = request
        .send()
        .await
        .map_err(|e| format!("{} {url} failed: {e}", step.method))?;
    let status = response.status().as_u16();
    let body = response
        .text()
        .await
        .map_err(|e| format!("reading the body of {url} failed: {e}"))?;
    let got = || format!("got {status}: {body}");
    if status != step.status {
        return Err(format!("expected status {}, {}", step.status, got()));
    }
    if let Some(expected) = &step.body
        && &body != expected
    {
        return Err(format!("expected the body {expected:?}, {}", got()));
    }
    if let Some(expected) = &step.body_contains
        && !body.contains(expected.as_str())
    {
        return Err(format!(
            "expected the body to contain {expected:?}, {}",
            got()
        ));
    }
    if step.json.is_some() || !step.json_keys.is_empty() {
        let document: Value =
            serde_json::from_str(&body).map_err(|e| format!("expected JSON ({e}), {}", got()))?;
        if let Some(expected) = &step.json
            && let Err(at) = json_subset(expected, &document, "$")
        {
            return Err(format!(
                "expected {expected} (as a subset) but {at}; {}",
                got()
            ));
        }
        for key in &step.json_keys {
            if document.get(key).is_none_or(Value::is_null) {
                return Err(format!("expected a value for {key:?}, {}", got()));
            }
        }
    }
    Ok(())
}

/// Whether every key of `expected` is in `actual` with the same value (objects recursively).
fn json_subset(expected: &Value, actual: &Value, at: &str) -> Result<(), String> {
    match (expected, actual) {
        (Value::Object(expected), Value::Object(actual)) => {
            for (key, value) in expected {
                let path = format!("{at}.{key}");
                let found = actual
                    .get(key)
                    .ok_or_else(|| format!("{path} is missing"))?;
                json_subset(value, found, &path)?;
            }
            Ok(())
        }
        _ if expected == actual => Ok(()),
        _ => Err(format!("{at} is {actual}")),
    }
}

async fn sql_step(stack: &RunningStack, step: &SqlStep) -> Result<(), String> {
    let client = stack
        .postgres(&step.instance, &step.database, &step.user)
        .await
        .map_err(|e| e.to_string())?;
    let messages = client
        .simple_query(&step.query)
        .await
        .map_err(|e| format!("the query failed: {e}"))?;
    let rows: Vec<BTreeMap<String, Option<String>>> = messages
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => Some(row),
            _ => None,
        })
        .map(|row| {
            row.columns()
                .iter()
                .enumerate()
                .map(|(i, c)| (c.name().to_string(), row.get(i).map(str::to_string)))
                .collect()
        })
        .collect();
    let Some(expected) = &step.rows else {
        return Ok(());
    };
    let expected: Vec<BTreeMap<String, Option<String>>> = expected
        .iter()
        .map(|row| {
            row.iter()
                .map(|(column, value)| {
                    let text = match value {
                        Value::Null => None,
                        Value::String(text) => Some(text.clone()),
                        other => Some(other.to_string()),
                    };
                    (column.clone(), text)
                })
                .collect()
        })
        .collect();
    if rows != expected {
        return Err(format!("expected rows {expected:?}, got {rows:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_is_matched_as_a_subset() {
        let actual = json!({"a": 1, "b": {"c": "x", "d": [1]}});
        assert!(json_subset(&json!({"b": {"c": "x"}}), &actual, "$").is_ok());
        assert_eq!(
            json_subset(&json!({"b": {"c": "y"}}), &actual, "$"),
            Err("$.b.c is \"x\"".into())
        );
        assert_eq!(
            json_subset(&json!({"z": 1}), &actual, "$"),
            Err("$.z is missing".into())
        );
    }

    #[test]
    fn a_malformed_file_is_refused_with_its_line() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("bad.yaml");
        std::fs::write(
            &path,
            "name: x\nsteps:\n  - http: {service: a, path: /}\n  - htp: {}\n",
        )
        .expect("written");
        let error = Scenario::load(&path).expect_err("refused").to_string();
        assert!(
            error.contains("unknown field `htp`") && error.contains("line 4"),
            "{error}"
        );

        std::fs::write(&path, "name: x\nsteps:\n  - {redeploy: a, stop_sql: b}\n")
            .expect("written");
        let error = Scenario::load(&path).expect_err("refused").to_string();
        assert!(
            error.contains("steps[0]: a step is exactly one of"),
            "{error}"
        );
    }
}
