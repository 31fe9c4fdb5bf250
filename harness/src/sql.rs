//! Cloud SQL for PostgreSQL instances a stack declares: databases, users and SQL fixtures,
//! created through the emulator's Cloud SQL Admin API as gcloud creates them.

use serde_json::Value;

use crate::api::Api;
use crate::error::HarnessError;

/// A Cloud SQL instance to create before the services are deployed.
#[derive(Debug, Clone)]
pub struct SqlInstance {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) databases: Vec<String>,
    pub(crate) users: Vec<(String, String)>,
    pub(crate) fixtures: Vec<String>,
    pub(crate) templates: Vec<String>,
}

impl SqlInstance {
    /// A PostgreSQL 15 instance (`--database-version=POSTGRES_15`).
    pub fn postgres(name: impl Into<String>) -> SqlInstance {
        SqlInstance {
            name: name.into(),
            version: "POSTGRES_15".into(),
            databases: Vec::new(),
            users: Vec::new(),
            fixtures: Vec::new(),
            templates: Vec::new(),
        }
    }

    /// Another `--database-version`, e.g. `POSTGRES_16` (the emulator says which it can run).
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    /// `gcloud sql databases create NAME`.
    pub fn database(mut self, name: impl Into<String>) -> Self {
        self.databases.push(name.into());
        self
    }

    /// `gcloud sql users create NAME --password=PASSWORD`.
    pub fn user(mut self, name: impl Into<String>, password: impl Into<String>) -> Self {
        self.users.push((name.into(), password.into()));
        self
    }

    /// SQL run once everything exists, in the first database as the first user (several
    /// statements may be given at once).
    pub fn fixture_sql(mut self, sql: impl Into<String>) -> Self {
        self.fixtures.push(sql.into());
        self
    }

    /// Marks database `name` as the template of [`crate::RunningStack::fresh_database`]: copies
    /// of it, owned by the first user, are made from the start (after the fixtures), so even the
    /// first fresh database of a test is ready at once.
    pub fn template_database(mut self, name: impl Into<String>) -> Self {
        self.templates.push(name.into());
        self
    }

    /// Creates the instance, its databases and users, then runs the fixtures.
    pub(crate) async fn create(&self, api: &Api, region: &str) -> Result<Endpoint, HarnessError> {
        api.create_sql_instance(&self.name, &self.version, region)
            .await?;
        for database in &self.databases {
            api.create_database(&self.name, database).await?;
        }
        for (user, password) in &self.users {
            api.create_user(&self.name, user, password).await?;
        }
        let endpoint = Endpoint::read(api, &self.name).await?;
        if !self.fixtures.is_empty() {
            let (database, (user, password)) = self
                .databases
                .first()
                .zip(self.users.first())
                .ok_or_else(|| HarnessError::Sql {
                    what: format!("fixtures of {}", self.name),
                    message: "fixtures need a database and a user to run as".into(),
                })?;
            let client = endpoint.connect(database, user, password).await?;
            for sql in &self.fixtures {
                client
                    .batch_execute(sql)
                    .await
                    .map_err(HarnessError::postgres(format!(
                        "running a fixture in {}/{database}",
                        self.name
                    )))?;
            }
        }
        Ok(endpoint)
    }
}

/// Where the host reaches an instance's Postgres.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) connection_name: String,
}

impl Endpoint {
    /// Where the instance `name` is now, as the emulator describes it.
    pub(crate) async fn read(api: &Api, name: &str) -> Result<Endpoint, HarnessError> {
        let instance = api.get_sql_instance(name).await?;
        Endpoint::of(&instance).ok_or_else(|| HarnessError::Sql {
            what: format!("instances describe {name}"),
            message: format!("the instance reports no host address: {instance}"),
        })
    }

    /// Reads the host address the emulator reports for the instance (`emulatorAddress`, an
    /// emulator-only field beside Google's `ipAddresses`).
    fn of(instance: &Value) -> Option<Endpoint> {
        let address = instance["emulatorAddress"].as_str()?;
        let (host, port) = address.rsplit_once(':')?;
        Some(Endpoint {
            host: host.to_string(),
            port: port.parse().ok()?,
            connection_name: instance["connectionName"].as_str()?.to_string(),
        })
    }

    /// A tokio-postgres client; its connection runs on a task of its own.
    pub(crate) async fn connect(
        &self,
        database: &str,
        user: &str,
        password: &str,
    ) -> Result<tokio_postgres::Client, HarnessError> {
        let mut config = tokio_postgres::Config::new();
        config
            .host(&self.host)
            .port(self.port)
            .dbname(database)
            .user(user)
            .password(password);
        let (client, connection) =
            config
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(HarnessError::postgres(format!(
                    "connecting to {database} as {user} at {}:{}",
                    self.host, self.port
                )))?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "a test's Postgres connection ended");
            }
        });
        Ok(client)
    }
}
