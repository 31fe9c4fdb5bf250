//! A whole stack declared in a test and brought up in one call: the emulator in-process,
//! secrets, Cloud SQL instances, images and Cloud Run services; torn down on drop.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::try_join_all;
use serde_json::Value;
use wiremock::MockServer;

use crate::api::{Api, POLL};
use crate::emulator::Emulator;
use crate::error::HarnessError;
use crate::images::{build_image, ensure_images};
use crate::logs::service_logs;
use crate::pubsub::{self, PubSub};
use crate::redis::{self, Redis};
use crate::service::{CloudRunService, DEFAULT_REGION, name_and_region};
use crate::sql::{Endpoint, SqlInstance};
use crate::stubs;
use crate::template_copies::TemplateCopies;

/// The project a stack uses unless it names another.
const DEFAULT_PROJECT: &str = "demo-proj";
/// How long a resumed Cloud SQL server may take to accept connections.
const SQL_RESTART_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a deploy may take to become ready (Cloud Run allows a revision 4 minutes to listen).
const DEFAULT_DEPLOY_TIMEOUT: Duration = Duration::from_secs(240);

/// Where a secret's first value comes from.
#[derive(Debug, Clone)]
enum SecretSource {
    Bytes(Vec<u8>),
    File(PathBuf),
}

/// A stack to start: declare its parts, then [`Stack::start`] it.
///
/// ```no_run
/// # async fn story() -> Result<(), harness::HarnessError> {
/// use harness::{CloudRunService, SqlInstance, Stack};
/// let stack = Stack::new()
///     .secret("db-password", "s3cret")
///     .sql_instance(SqlInstance::postgres("db").database("app").user("app", "s3cret"))
///     .service(
///         CloudRunService::from_yaml("apps/web/service.yaml")
///             .var("INSTANCE", "db")
///             .allow_unauthenticated(),
///     )
///     .start()
///     .await?;
/// let page = stack.http().get(stack.url("web")?).send().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use = "a stack does nothing until started"]
pub struct Stack {
    project: String,
    region: String,
    images: Vec<String>,
    builds: Vec<(String, PathBuf)>,
    secrets: Vec<(String, SecretSource)>,
    sql: Vec<SqlInstance>,
    services: Vec<CloudRunService>,
    stubs: Vec<String>,
    pubsub: bool,
    redis: Vec<String>,
    deploy_timeout: Duration,
}

impl Default for Stack {
    fn default() -> Self {
        Self::new()
    }
}

impl Stack {
    /// An empty stack in project `demo-proj`, region `us-central1`.
    pub fn new() -> Stack {
        Stack {
            project: DEFAULT_PROJECT.into(),
            region: DEFAULT_REGION.into(),
            images: vec!["sandbox".into()],
            builds: Vec::new(),
            secrets: Vec::new(),
            sql: Vec::new(),
            services: Vec::new(),
            stubs: Vec::new(),
            pubsub: false,
            redis: Vec::new(),
            deploy_timeout: DEFAULT_DEPLOY_TIMEOUT,
        }
    }

    /// The project id everything is created in (`${PROJECT}` in service files).
    pub fn project(mut self, project: impl Into<String>) -> Self {
        self.project = project.into();
        self
    }

    /// The region Cloud SQL instances are created in (`${REGION}` in service files).
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = region.into();
        self
    }

    /// An image of this repository's `docker/images/<name>`, built unless up to date.
    pub fn image(mut self, name: impl Into<String>) -> Self {
        self.images.push(name.into());
        self
    }

    /// An image built from a Dockerfile directory and tagged `tag`, rebuilt only when a file
    /// in the directory changed.
    pub fn build_image(mut self, tag: impl Into<String>, dir: impl Into<PathBuf>) -> Self {
        self.builds.push((tag.into(), dir.into()));
        self
    }

    /// A Secret Manager secret whose version 1 is `value`.
    pub fn secret(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.secrets
            .push((name.into(), SecretSource::Bytes(value.into())));
        self
    }

    /// A secret whose version 1 is the contents of a file (`--data-file=PATH`).
    pub fn secret_file(mut self, name: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        self.secrets
            .push((name.into(), SecretSource::File(path.into())));
        self
    }

    /// A secret holding a JSON document, such as database credentials.
    pub fn secret_json(self, name: impl Into<String>, value: &Value) -> Self {
        self.secret(name, value.to_string())
    }

    /// A Cloud SQL instance with its databases, users and fixtures.
    pub fn sql_instance(mut self, instance: SqlInstance) -> Self {
        self.sql.push(instance);
        self
    }

    /// A Cloud Run service, deployed once everything above exists.
    pub fn service(mut self, service: CloudRunService) -> Self {
        self.services.push(service);
        self
    }

    /// A third-party HTTP API stubbed with wiremock, reached from inside the containers at
    /// `host`: service files get `${STUB_HOST}` (the host in capitals, `.` and `-` as `_`)
    /// holding its base URL `http://HOST:PORT`, and [`RunningStack::stub`] the server to mount
    /// mocks on.
    pub fn http_stub(mut self, host: impl Into<String>) -> Self {
        self.stubs.push(host.into());
        self
    }

    /// A Pub/Sub emulator (the Google Cloud SDK's), started beside the stack: every container
    /// gets `PUBSUB_EMULATOR_HOST`, which Google's client libraries follow, and
    /// [`RunningStack::pubsub_host`] tells the test where it is.
    pub fn pubsub(mut self) -> Self {
        self.pubsub = true;
        self
    }

    /// A Redis instance (a real `redis-server` standing in for Memorystore): service files get
    /// `${REDIS_NAME_HOST}` and `${REDIS_NAME_PORT}` (the name in capitals) as an app on Cloud
    /// Run gets them from Memorystore, and [`RunningStack::redis_url`] gives the test its URL.
    pub fn redis(mut self, name: impl Into<String>) -> Self {
        self.redis.push(name.into());
        self
    }

    /// How long each deploy may take to become ready (default 240 s).
    pub fn deploy_timeout(mut self, timeout: Duration) -> Self {
        self.deploy_timeout = timeout;
        self
    }

    /// Starts the emulator, builds images, creates secrets and Cloud SQL instances (these at
    /// once), then deploys every service and waits until each is ready. On any failure
    /// everything already started is removed and the error says why, with the service's logs.
    pub async fn start(self) -> Result<RunningStack, HarnessError> {
        let began = Instant::now();
        let images = {
            let mut names = self.images.clone();
            if !self.redis.is_empty() {
                names.push("redis".into());
            }
            if !self.sql.is_empty() {
                names.extend(["postgres15".into(), "cloudsql-proxy".into()]);
            }
            let builds = self.builds.clone();
            tokio::task::spawn_blocking(move || {
                let began = Instant::now();
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                ensure_images(&names)?;
                for (tag, dir) in &builds {
                    build_image(tag, dir)?;
                }
                Ok::<_, HarnessError>(began.elapsed())
            })
        };
        let emulator = Emulator::builder().project(&self.project).start().await?;
        let api = Api::new(emulator.url(), self.project.clone());
        let mut secrets = BTreeMap::new();
        for (name, source) in &self.secrets {
            let value = match source {
                SecretSource::Bytes(bytes) => bytes.clone(),
                SecretSource::File(path) => std::fs::read(path)
                    .map_err(HarnessError::io(format!("reading {}", path.display())))?,
            };
            secrets.insert(name.clone(), value);
        }
        let created_secrets = try_join_all(
            secrets
                .iter()
                .map(|(name, value)| api.create_secret(name, value)),
        );
        let sql_began = Instant::now();
        let created_sql = try_join_all(self.sql.iter().map(|instance| async {
            let endpoint = instance.create(&api, &self.region).await?;
            Ok::<_, HarnessError>((instance.name.clone(), (instance.clone(), endpoint)))
        }));
        let (_, sql) = tokio::try_join!(created_secrets, async {
            let sql = created_sql.await?;
            Ok::<_, HarnessError>((sql, sql_began.elapsed()))
        })?;
        let (sql, sql_elapsed) = sql;
        let gateway = if self.stubs.is_empty() && !self.pubsub {
            None
        } else {
            Some(stubs::bridge_gateway()?)
        };
        let pubsub = match gateway.filter(|_| self.pubsub) {
            Some(gateway) => Some(pubsub::start(gateway).await?),
            None => None,
        };
        let mut stubs = BTreeMap::new();
        if let Some(gateway) = gateway.filter(|_| !self.stubs.is_empty()) {
            for host in &self.stubs {
                stubs.insert(host.clone(), (gateway, stubs::start(gateway).await?));
            }
        }
        let images_elapsed = images.await.map_err(|e| HarnessError::Images {
            names: "(all)".into(),
            output: e.to_string(),
        })??;
        let owner = emulator.owner().unwrap_or("harness").to_string();
        let redis: BTreeMap<String, Redis> = try_join_all(self.redis.iter().map(|name| async {
            Ok::<_, HarnessError>((name.clone(), redis::start(name, &owner).await?))
        }))
        .await?
        .into_iter()
        .collect();
        let mut stack = RunningStack {
            api,
            http: reqwest::Client::new(),
            region: self.region,
            deploy_timeout: self.deploy_timeout,
            services: BTreeMap::new(),
            secrets,
            sql: sql.into_iter().collect(),
            stubs,
            pubsub,
            redis,
            timings: Timings {
                images: images_elapsed,
                sql: sql_elapsed,
                ..Timings::default()
            },
            copies: Default::default(),
            emulator,
        };
        stack.copy_declared_templates().await?;
        let deploy_began = Instant::now();
        for service in self.services {
            stack.deploy(service).await?;
        }
        stack.timings.deploy = deploy_began.elapsed();
        stack.timings.start = began.elapsed();
        Ok(stack)
    }
}

/// How long the parts of [`Stack::start`] took (images and Cloud SQL run side by side).
#[derive(Debug, Clone, Copy, Default)]
pub struct Timings {
    /// Building or checking the images.
    pub images: Duration,
    /// Creating the Cloud SQL instances, databases, users and fixtures.
    pub sql: Duration,
    /// Deploying every service until ready.
    pub deploy: Duration,
    /// The whole of [`Stack::start`].
    pub start: Duration,
}

/// A deployed service as the stack tracks it.
#[derive(Debug, Clone)]
struct Deployed {
    spec: CloudRunService,
    region: String,
    url: String,
    revision: String,
}

/// A running stack; dropping it removes every container, also when the test panics, and a
/// panicking test first prints every service's logs.
#[derive(Debug)]
pub struct RunningStack {
    api: Api,
    http: reqwest::Client,
    region: String,
    deploy_timeout: Duration,
    services: BTreeMap<String, Deployed>,
    secrets: BTreeMap<String, Vec<u8>>,
    sql: BTreeMap<String, (SqlInstance, Endpoint)>,
    /// Stubbed host name → (the address containers reach it at, its server).
    stubs: BTreeMap<String, (IpAddr, MockServer)>,
    pubsub: Option<PubSub>,
    redis: BTreeMap<String, Redis>,
    timings: Timings,
    /// Copies of template databases made ahead, by (instance, template, user); declared before
    /// the emulator so that copying stops before the instances go.
    copies: tokio::sync::Mutex<BTreeMap<(String, String, String), Arc<TemplateCopies>>>,
    emulator: Emulator,
}

impl RunningStack {
    /// The service's URL (`status.url`), e.g. `http://127.0.0.1:PORT`.
    pub fn url(&self, service: &str) -> Result<String, HarnessError> {
        Ok(self.deployed(service)?.url.clone())
    }

    /// A ready HTTP client.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// `GET` a path of a service.
    pub async fn get(&self, service: &str, path: &str) -> Result<reqwest::Response, HarnessError> {
        let url = format!("{}{path}", self.url(service)?);
        self.http
            .get(&url)
            .send()
            .await
            .map_err(|source| HarnessError::Http {
                call: format!("GET {url}"),
                source,
            })
    }

    /// The revision serving the service since its last deploy.
    pub fn revision(&self, service: &str) -> Result<String, HarnessError> {
        Ok(self.deployed(service)?.revision.clone())
    }

    /// A Postgres client connected from the host to `database` of a Cloud SQL instance of
    /// the stack, as `user` (with the password the stack declared).
    pub async fn postgres(
        &self,
        instance: &str,
        database: &str,
        user: &str,
    ) -> Result<tokio_postgres::Client, HarnessError> {
        let (declared, endpoint) = self.instance(instance)?;
        let password = declared
            .users
            .iter()
            .find(|(name, _)| name == user)
            .map(|(_, password)| password)
            .ok_or_else(|| HarnessError::NotInStack {
                kind: "Cloud SQL user",
                name: user.to_string(),
            })?;
        endpoint.connect(database, user, password).await
    }

    /// A new database copied from `template` (`CREATE DATABASE ... TEMPLATE`), for a test that
    /// wants its own data without creating an instance; owned by `user`, who must be allowed to
    /// create databases. Returns its name. Copies are made ahead of time, four kept ready, from
    /// the first call on (or from the start, for a [`SqlInstance::template_database`] as its
    /// first user); each is a copy of one snapshot of the template, taken when the copying
    /// began, so later writes to the template show in none of them.
    pub async fn fresh_database(
        &self,
        instance: &str,
        template: &str,
        user: &str,
    ) -> Result<String, HarnessError> {
        let key = (instance.to_string(), template.to_string(), user.to_string());
        let copies = match self.copies.lock().await.entry(key.clone()) {
            Entry::Occupied(copies) => copies.get().clone(),
            Entry::Vacant(vacant) => vacant
                .insert(Arc::new(
                    self.copy_template(instance, template, user).await?,
                ))
                .clone(),
        };
        match copies.take().await {
            Some(Ok(name)) => Ok(name),
            failed => {
                // The copying has ended: the next call starts it again, unless another caller
                // already did.
                let mut all = self.copies.lock().await;
                if all.get(&key).is_some_and(|kept| Arc::ptr_eq(kept, &copies)) {
                    all.remove(&key);
                }
                Err(failed
                    .and_then(Result::err)
                    .unwrap_or_else(|| HarnessError::Sql {
                        what: format!("copying database {template} of {instance}"),
                        message: "copying stopped after a failure another test was told of".into(),
                    }))
            }
        }
    }

    /// Starts copying each [`SqlInstance::template_database`] as its instance's first user.
    async fn copy_declared_templates(&self) -> Result<(), HarnessError> {
        for (instance, _) in self.sql.values() {
            for template in &instance.templates {
                let (user, _) = instance.users.first().ok_or_else(|| HarnessError::Sql {
                    what: format!("template database {template} of {}", instance.name),
                    message: "copies are made by the first user; declare one".into(),
                })?;
                let copies = self.copy_template(&instance.name, template, user).await?;
                self.copies.lock().await.insert(
                    (instance.name.clone(), template.clone(), user.clone()),
                    Arc::new(copies),
                );
            }
        }
        Ok(())
    }

    /// Starts making copies of `template` as `user`.
    async fn copy_template(
        &self,
        instance: &str,
        template: &str,
        user: &str,
    ) -> Result<TemplateCopies, HarnessError> {
        let client = self.postgres(instance, "postgres", user).await?;
        Ok(TemplateCopies::start(
            client,
            template,
            format!("copying database {template} of {instance}"),
        ))
    }

    /// Makes a Cloud SQL instance's database go away, as when its host drops off the network:
    /// the server container is frozen (`docker pause`), so connections hang and time out,
    /// until [`RunningStack::start_sql_instance`]. (A stopped container could come back on
    /// another address, which the proxy sidecars of running revisions would not follow.)
    pub async fn stop_sql_instance(&mut self, instance: &str) -> Result<(), HarnessError> {
        let container = self.sql_container(instance)?;
        docker(&["pause", &container])?;
        Ok(())
    }

    /// Brings a stopped instance's server back; returns once it accepts connections from
    /// the host.
    pub async fn start_sql_instance(&mut self, instance: &str) -> Result<(), HarnessError> {
        let container = self.sql_container(instance)?;
        docker(&["unpause", &container])?;
        let (declared, endpoint) = self.instance(instance)?;
        let (Some(database), Some((user, password))) =
            (declared.databases.first(), declared.users.first())
        else {
            return Ok(());
        };
        let deadline = Instant::now() + SQL_RESTART_TIMEOUT;
        loop {
            match endpoint.connect(database, user, password).await {
                Ok(_) => return Ok(()),
                Err(_) if Instant::now() < deadline => tokio::time::sleep(POLL).await,
                Err(error) => return Err(error),
            }
        }
    }

    /// The Docker id of the server container of one of the stack's instances.
    fn sql_container(&self, instance: &str) -> Result<String, HarnessError> {
        let connection_name = self.connection_name(instance)?;
        let owner = self.emulator.owner().unwrap_or_default().to_string();
        let ids = docker(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label={}={owner}", emulator::runtime::LABEL_OWNER),
            "--filter",
            &format!(
                "label={}={connection_name}",
                emulator::controller::LABEL_SQL_INSTANCE
            ),
        ])?;
        ids.lines()
            .next()
            .map(str::to_string)
            .ok_or_else(|| HarnessError::NotInStack {
                kind: "running Cloud SQL server",
                name: instance.to_string(),
            })
    }

    /// `PROJECT:REGION:INSTANCE`, what the Cloud SQL Auth Proxy is given.
    pub fn connection_name(&self, instance: &str) -> Result<String, HarnessError> {
        Ok(self.instance(instance)?.1.connection_name.clone())
    }

    /// The latest value the stack gave a secret.
    pub fn secret_value(&self, name: &str) -> Result<&[u8], HarnessError> {
        self.secrets
            .get(name)
            .map(Vec::as_slice)
            .ok_or_else(|| HarnessError::NotInStack {
                kind: "secret",
                name: name.to_string(),
            })
    }

    /// Adds a secret version (a rotation); revisions started from now on read it.
    pub async fn rotate_secret(
        &mut self,
        name: &str,
        value: impl Into<Vec<u8>>,
    ) -> Result<(), HarnessError> {
        self.secret_value(name)?;
        let value = value.into();
        self.api.add_secret_version(name, &value).await?;
        self.secrets.insert(name.to_string(), value);
        Ok(())
    }

    /// The wiremock server standing in for `host`; mount mocks on it.
    pub fn stub(&self, host: &str) -> Result<&MockServer, HarnessError> {
        self.stubs
            .get(host)
            .map(|(_, server)| server)
            .ok_or_else(|| HarnessError::NotInStack {
                kind: "HTTP stub",
                name: host.to_string(),
            })
    }

    /// `HOST:PORT` of the stack's Pub/Sub emulator (what `PUBSUB_EMULATOR_HOST` holds).
    pub fn pubsub_host(&self) -> Result<String, HarnessError> {
        self.pubsub
            .as_ref()
            .map(|p| p.addr.to_string())
            .ok_or_else(|| HarnessError::NotInStack {
                kind: "Pub/Sub emulator",
                name: "pubsub".into(),
            })
    }

    /// `redis://127.0.0.1:PORT`, where the test reaches a Redis instance of the stack.
    pub fn redis_url(&self, name: &str) -> Result<String, HarnessError> {
        self.redis
            .get(name)
            .map(|r| format!("redis://127.0.0.1:{}", r.host_port))
            .ok_or_else(|| HarnessError::NotInStack {
                kind: "Redis instance",
                name: name.to_string(),
            })
    }

    /// Every log line of a service's containers and requests, oldest first.
    pub fn logs(&self, service: &str) -> String {
        service_logs(self.emulator.store(), &self.api.project, service)
    }

    /// The logs of every service of the stack, service by service.
    pub fn all_logs(&self) -> String {
        self.services
            .keys()
            .map(|name| format!("--- logs of service {name} ---\n{}", self.logs(name)))
            .collect()
    }

    /// The emulator the stack runs on, e.g. for its [`Gcloud`](crate::Gcloud).
    pub fn emulator(&self) -> &Emulator {
        &self.emulator
    }

    /// How long starting took, part by part.
    pub fn timings(&self) -> Timings {
        self.timings
    }

    /// Deploys (or replaces) a service and waits until its new revision is ready; returns that
    /// revision's name. A revision that fails is an error with Cloud Run's message and the
    /// service's logs; the previous revision keeps serving, as on Cloud Run.
    pub async fn deploy(&mut self, service: CloudRunService) -> Result<String, HarnessError> {
        self.apply(service, false).await
    }

    /// Deploys a service again unchanged, as `gcloud run deploy` with the same flags does: a
    /// new revision, which reads `latest` secrets anew; returns its name.
    pub async fn redeploy(&mut self, service: &str) -> Result<String, HarnessError> {
        let spec = self.deployed(service)?.spec.clone();
        self.apply(spec, true).await
    }

    async fn apply(
        &mut self,
        spec: CloudRunService,
        new_nonce: bool,
    ) -> Result<String, HarnessError> {
        let mut defaults = BTreeMap::from([
            ("PROJECT".to_string(), self.api.project.clone()),
            ("REGION".to_string(), self.region.clone()),
        ]);
        for (name, redis) in &self.redis {
            let prefix = redis::variable(name);
            defaults.insert(format!("{prefix}_HOST"), redis.ip.to_string());
            defaults.insert(format!("{prefix}_PORT"), redis::PORT.to_string());
        }
        for (host, (_, server)) in &self.stubs {
            let port = server.address().port();
            defaults.insert(stubs::variable(host), format!("http://{host}:{port}"));
        }
        let mut rendered = spec.render(&defaults)?;
        if !self.stubs.is_empty() {
            let aliases: Vec<String> = self
                .stubs
                .iter()
                .map(|(host, (ip, _))| format!("{host}={ip}"))
                .collect();
            rendered["spec"]["template"]["metadata"]["annotations"]
                [stubs::HOST_ALIASES_ANNOTATION] = Value::String(aliases.join(","));
        }
        if new_nonce {
            rendered["spec"]["template"]["metadata"]["labels"]["client.knative.dev/nonce"] =
                Value::String(nonce());
        }
        if let Some(pubsub) = &self.pubsub
            && let Some(containers) =
                rendered["spec"]["template"]["spec"]["containers"].as_array_mut()
        {
            for container in containers {
                let variable = serde_json::json!({
                    "name": "PUBSUB_EMULATOR_HOST",
                    "value": pubsub.addr.to_string(),
                });
                match container["env"].as_array_mut() {
                    Some(env) => env.push(variable),
                    None => container["env"] = Value::Array(vec![variable]),
                }
            }
        }
        let (name, region) = name_and_region(&rendered);
        let answer = self.api.replace_service(&region, &rendered).await?;
        let generation = answer["metadata"]["generation"].as_i64().unwrap_or(1);
        if spec.is_public() {
            self.api.allow_unauthenticated(&region, &name).await?;
        }
        let status = self.wait_ready(&region, &name, generation).await?;
        let deployed = Deployed {
            spec,
            region,
            url: status["url"].as_str().unwrap_or_default().to_string(),
            revision: status["latestReadyRevisionName"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        };
        let revision = deployed.revision.clone();
        self.services.insert(name, deployed);
        Ok(revision)
    }

    /// Polls the service until generation `generation` is Ready (its `status`) or failed.
    async fn wait_ready(
        &self,
        region: &str,
        name: &str,
        generation: i64,
    ) -> Result<Value, HarnessError> {
        let deadline = Instant::now() + self.deploy_timeout;
        loop {
            let service = self.api.get_service(region, name).await?;
            let status = &service["status"];
            let observed = status["observedGeneration"].as_i64().unwrap_or(0);
            let ready = status["conditions"]
                .as_array()
                .and_then(|c| c.iter().find(|c| c["type"] == "Ready"));
            if observed >= generation
                && let Some(ready) = ready
            {
                match ready["status"].as_str() {
                    Some("True") => return Ok(status.clone()),
                    Some("False") => {
                        return Err(HarnessError::Deploy {
                            service: name.to_string(),
                            message: ready["message"].as_str().unwrap_or_default().to_string(),
                            logs: self.logs(name),
                        });
                    }
                    _ => {}
                }
            }
            if Instant::now() >= deadline {
                return Err(HarnessError::Timeout {
                    what: format!("waiting for service {name} to become ready"),
                    after: self.deploy_timeout,
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    fn deployed(&self, service: &str) -> Result<&Deployed, HarnessError> {
        self.services
            .get(service)
            .ok_or_else(|| HarnessError::NotInStack {
                kind: "service",
                name: service.to_string(),
            })
    }

    fn instance(&self, instance: &str) -> Result<&(SqlInstance, Endpoint), HarnessError> {
        self.sql
            .get(instance)
            .ok_or_else(|| HarnessError::NotInStack {
                kind: "Cloud SQL instance",
                name: instance.to_string(),
            })
    }
}

impl Drop for RunningStack {
    /// A failing test shows what its services printed before everything is removed (by the
    /// emulator's own drop, which follows).
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        for (name, service) in &self.services {
            eprintln!(
                "--- logs of service {name} ({}, {}) ---\n{}",
                service.region,
                service.url,
                self.logs(name)
            );
        }
    }
}

/// A fresh `client.knative.dev/nonce`, as gcloud sets on every deploy.
pub(crate) fn nonce() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::rng();
    (0..10)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// Runs the docker CLI; its stdout, or its stderr as the error.
fn docker(args: &[&str]) -> Result<String, HarnessError> {
    let output = std::process::Command::new("docker")
        .args(args)
        .output()
        .map_err(HarnessError::io("running docker"))?;
    if !output.status.success() {
        return Err(HarnessError::Dependency {
            what: format!("docker {}", args.join(" ")),
            message: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
