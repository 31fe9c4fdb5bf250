//! Cloud SQL instances as real Postgres servers: starts each stored instance's server (at
//! creation and at emulator start), carries out the queued operations over SQL (databases,
//! users, passwords), and removes the server and its data when the instance is deleted.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio_postgres::NoTls;

use crate::runtime::{DatabaseServer, DatabaseSpec, Runtime};
use crate::state::Store;
use crate::state::sql::{
    InstanceState, OperationError, SqlAction, SqlInstance, SqlOperation, instance_key,
};

/// The image of each database version this emulator runs (`docker/images/postgres15`).
pub const POSTGRES_IMAGES: &[(&str, &str)] = &[("POSTGRES_15", "cloudrun-emulator/postgres15:1")];
/// The superuser the emulator administers each server as (Cloud SQL's own name for it).
const ADMIN_USER: &str = "cloudsqladmin";
/// The label naming the instance a server belongs to, `PROJECT:REGION:NAME`.
pub const LABEL_SQL_INSTANCE: &str = "cloudrun-emulator.sql-instance";
/// Where the images keep the data directory.
const DATA_DIR: &str = "/var/lib/postgresql/data";
/// How long a server may take to answer after its container starts.
const READY_DEADLINE: Duration = Duration::from_secs(60);
/// Time between two readiness attempts.
const READY_POLL: Duration = Duration::from_millis(10);

/// Runs the Cloud SQL instances of one store; cheap to clone.
#[derive(Debug, Clone)]
pub struct SqlController {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    runtime: Runtime,
    /// Running servers by instance key.
    servers: parking_lot::Mutex<HashMap<String, Running>>,
    /// One reconciliation at a time per instance.
    locks: parking_lot::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    tasks: parking_lot::Mutex<tokio::task::JoinSet<()>>,
    closing: AtomicBool,
}

/// A server that answered, and the name the proxy knows it by.
#[derive(Debug, Clone)]
struct Running {
    server: DatabaseServer,
    container: String,
    connection_name: String,
}

/// Why an operation failed, as Cloud SQL reports it.
fn failure(code: &str, message: impl Into<String>) -> OperationError {
    OperationError {
        code: code.into(),
        message: message.into(),
    }
}

/// A Postgres error as the message a user can act on.
fn sql_failure(error: &tokio_postgres::Error) -> OperationError {
    let message = match error.as_db_error() {
        Some(db) => db.message().to_string(),
        None => error.to_string(),
    };
    failure("ERROR_RDBMS", message)
}

/// `"name"` with embedded quotes doubled: a Postgres identifier.
pub fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'text'` with embedded quotes doubled: a literal (standard_conforming_strings is on).
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

impl SqlController {
    /// A controller for `store`'s instances, running servers through `runtime`.
    pub fn new(store: Store, runtime: Runtime) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                runtime,
                servers: parking_lot::Mutex::default(),
                locks: parking_lot::Mutex::default(),
                tasks: parking_lot::Mutex::new(tokio::task::JoinSet::new()),
                closing: AtomicBool::new(false),
            }),
        }
    }

    /// Brings every stored instance back up (their data is in their volumes).
    pub fn boot(&self) {
        for instance in self.inner.store.all_sql_instances() {
            self.changed(instance.key());
        }
    }

    /// An instance has new operations, or needs its server: reconcile it in the background.
    pub fn changed(&self, key: String) {
        if self.inner.closing.load(Ordering::SeqCst) {
            return;
        }
        let controller = self.clone();
        let mut tasks = self.inner.tasks.lock();
        while tasks.try_join_next().is_some() {}
        tasks.spawn(async move { controller.reconcile(key).await });
    }

    /// Where pods reach each running instance: `(PROJECT:REGION:NAME, bridge address)`.
    pub fn targets(&self) -> Vec<(String, SocketAddr)> {
        self.inner
            .servers
            .lock()
            .values()
            .map(|r| (r.connection_name.clone(), r.server.network_addr))
            .collect()
    }

    /// Stops starting anything new.
    pub fn close(&self) {
        self.inner.closing.store(true, Ordering::SeqCst);
        self.inner.tasks.lock().abort_all();
    }

    /// Stops every server cleanly (their volumes stay when the state is persistent).
    pub async fn shutdown(&self) {
        self.close();
        let running: Vec<Running> = self.inner.servers.lock().drain().map(|(_, r)| r).collect();
        let stops = running
            .iter()
            .map(|r| self.inner.runtime.remove_database(&r.container, None));
        for result in futures_util::future::join_all(stops).await {
            if let Err(error) = result {
                tracing::warn!(%error, "stopping a Cloud SQL server failed");
            }
        }
    }

    fn lock_for(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.inner
            .locks
            .lock()
            .entry(key.to_string())
            .or_default()
            .clone()
    }

    async fn reconcile(&self, key: String) {
        let lock = self.lock_for(&key);
        let _guard = lock.lock().await;
        let store = &self.inner.store;
        let Some(instance) = store.sql_instance_by_key(&key) else {
            return;
        };
        if instance.state == InstanceState::PendingDelete {
            let outcome = self.delete(&instance).await;
            for operation in store.pending_sql_operations(&key) {
                store.start_sql_operation(&operation.id);
                let error = match (&operation.action, &outcome) {
                    (SqlAction::DeleteInstance, Err(e)) => Some(e.clone()),
                    (SqlAction::DeleteInstance, Ok(())) => None,
                    _ => Some(failure(
                        "INSTANCE_NOT_FOUND",
                        "The Cloud SQL instance does not exist.",
                    )),
                };
                store.finish_sql_operation(&operation.id, error);
            }
            return;
        }
        if instance.state == InstanceState::Failed {
            for operation in store.pending_sql_operations(&key) {
                store.finish_sql_operation(
                    &operation.id,
                    Some(failure(
                        "INTERNAL_ERROR",
                        "The instance failed to start; delete it and create it again.",
                    )),
                );
            }
            return;
        }
        let running = match self.ensure_running(&instance).await {
            Ok(running) => running,
            Err(error) => {
                tracing::error!(instance = %key, message = %error.message, "a Cloud SQL server failed to start");
                if let Err(e) = store.update_sql_instance(&key, |i| i.state = InstanceState::Failed)
                {
                    tracing::warn!(error = %e, "recording an instance failure failed");
                }
                for operation in store.pending_sql_operations(&key) {
                    store.finish_sql_operation(&operation.id, Some(error.clone()));
                }
                return;
            }
        };
        for operation in store.pending_sql_operations(&key) {
            store.start_sql_operation(&operation.id);
            let outcome = self.carry_out(&instance, &running, &operation).await;
            store.finish_sql_operation(&operation.id, outcome.err());
        }
    }

    /// The instance's server, started and answering.
    async fn ensure_running(&self, instance: &SqlInstance) -> Result<Running, OperationError> {
        let key = instance.key();
        let known = self.inner.servers.lock().get(&key).cloned();
        if let Some(running) = known
            && self
                .inner
                .runtime
                .database_exited(&running.server.id)
                .await
                .is_none()
        {
            return Ok(running);
        }
        let image = POSTGRES_IMAGES
            .iter()
            .find(|(version, _)| *version == instance.database_version)
            .map(|(_, image)| *image)
            .ok_or_else(|| {
                failure(
                    "INTERNAL_ERROR",
                    format!(
                        "This emulator has no image for {}.",
                        instance.database_version
                    ),
                )
            })?;
        let container = format!("{}-server", instance.volume);
        let spec = DatabaseSpec {
            name: container.clone(),
            image: image.into(),
            volume: instance.volume.clone(),
            mount_path: DATA_DIR.into(),
            keep_volume: self.inner.store.is_persistent(),
            env: vec![(
                "CLOUDSQL_ADMIN_PASSWORD".into(),
                instance.admin_password.clone(),
            )],
            port: 5432,
            host_port: instance.host_port,
            labels: [(LABEL_SQL_INSTANCE.to_string(), instance.connection_name())]
                .into_iter()
                .collect(),
        };
        let began = Instant::now();
        let server = self
            .inner
            .runtime
            .start_database(&spec)
            .await
            .map_err(|e| failure("INTERNAL_ERROR", e.to_string()))?;
        if let Err(error) = self.wait_ready(&server, instance).await {
            if let Err(e) = self.inner.runtime.remove_database(&container, None).await {
                tracing::warn!(error = %e, "removing a server that did not start failed");
            }
            return Err(error);
        }
        tracing::info!(instance = %key, elapsed = ?began.elapsed(), addr = %server.host_addr, "Cloud SQL server ready");
        let running = Running {
            server: server.clone(),
            container,
            connection_name: instance.connection_name(),
        };
        self.inner
            .servers
            .lock()
            .insert(key.clone(), running.clone());
        let port = server.host_addr.port();
        self.inner
            .store
            .update_sql_instance(&key, |i| {
                i.host_port = Some(port);
                if i.state == InstanceState::PendingCreate {
                    i.state = InstanceState::Runnable;
                }
            })
            .map_err(|e| failure("INTERNAL_ERROR", e.to_string()))?;
        Ok(running)
    }

    /// Waits until the server accepts the admin's login, or its container exits.
    async fn wait_ready(
        &self,
        server: &DatabaseServer,
        instance: &SqlInstance,
    ) -> Result<(), OperationError> {
        let deadline = Instant::now() + READY_DEADLINE;
        let mut attempts: u32 = 0;
        loop {
            match self.admin(server, instance, "postgres").await {
                Ok(_) => return Ok(()),
                Err(error) => {
                    attempts += 1;
                    if attempts.is_multiple_of(50)
                        && let Some(logs) = self.inner.runtime.database_exited(&server.id).await
                    {
                        return Err(failure(
                            "INTERNAL_ERROR",
                            format!(
                                "The Postgres server of {} exited while starting: {}",
                                instance.connection_name(),
                                logs.join("\n")
                            ),
                        ));
                    }
                    if Instant::now() > deadline {
                        return Err(failure(
                            "INTERNAL_ERROR",
                            format!(
                                "The Postgres server of {} did not answer within {}s: {error}",
                                instance.connection_name(),
                                READY_DEADLINE.as_secs()
                            ),
                        ));
                    }
                    tokio::time::sleep(READY_POLL).await;
                }
            }
        }
    }

    /// A session as the emulator's superuser on `database`.
    async fn admin(
        &self,
        server: &DatabaseServer,
        instance: &SqlInstance,
        database: &str,
    ) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let mut config = tokio_postgres::Config::new();
        config
            .host(server.host_addr.ip().to_string())
            .port(server.host_addr.port())
            .user(ADMIN_USER)
            .password(&instance.admin_password)
            .dbname(database)
            .connect_timeout(Duration::from_secs(5));
        let (client, connection) = config.connect(NoTls).await?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "an admin session to a Cloud SQL server ended");
            }
        });
        Ok(client)
    }

    /// Runs one operation's SQL and records its result in the store.
    async fn carry_out(
        &self,
        instance: &SqlInstance,
        running: &Running,
        operation: &SqlOperation,
    ) -> Result<(), OperationError> {
        let statement = match &operation.action {
            SqlAction::CreateInstance {
                root_password: Some(password),
            } => format!("ALTER ROLE postgres PASSWORD {}", literal(password)),
            SqlAction::CreateInstance {
                root_password: None,
            }
            | SqlAction::UpdateInstance
            | SqlAction::DeleteInstance => return Ok(()),
            SqlAction::CreateDatabase { database } => format!(
                "CREATE DATABASE {} OWNER cloudsqlsuperuser ENCODING 'UTF8'",
                quote_identifier(&database.name)
            ),
            SqlAction::DeleteDatabase { name } => {
                format!("DROP DATABASE {} WITH (FORCE)", quote_identifier(name))
            }
            SqlAction::CreateUser { user, password } => format!(
                "CREATE ROLE {} LOGIN CREATEDB CREATEROLE IN ROLE cloudsqlsuperuser{}",
                quote_identifier(&user.name),
                password
                    .as_deref()
                    .map(|p| format!(" PASSWORD {}", literal(p)))
                    .unwrap_or_default()
            ),
            SqlAction::SetPassword { name, password } => {
                format!(
                    "ALTER ROLE {} PASSWORD {}",
                    quote_identifier(name),
                    literal(password)
                )
            }
            SqlAction::DeleteUser { name } => format!("DROP ROLE {}", quote_identifier(name)),
        };
        let client = self
            .admin(&running.server, instance, "postgres")
            .await
            .map_err(|e| sql_failure(&e))?;
        client
            .batch_execute(&statement)
            .await
            .map_err(|e| sql_failure(&e))?;
        let key = instance_key(&operation.project, &operation.instance);
        let recorded = self
            .inner
            .store
            .update_sql_instance(&key, |i| match &operation.action {
                SqlAction::CreateDatabase { database } => {
                    i.databases.insert(database.name.clone(), database.clone());
                }
                SqlAction::DeleteDatabase { name } => {
                    i.databases.remove(name);
                }
                SqlAction::CreateUser { user, .. } => {
                    i.users.insert(user.name.clone(), user.clone());
                }
                SqlAction::DeleteUser { name } => {
                    i.users.remove(name);
                }
                _ => {}
            });
        recorded
            .map(|_| ())
            .map_err(|e| failure("INTERNAL_ERROR", e.to_string()))
    }

    /// Removes the server and its data, then the instance record.
    async fn delete(&self, instance: &SqlInstance) -> Result<(), OperationError> {
        let key = instance.key();
        self.inner.servers.lock().remove(&key);
        self.inner
            .runtime
            .remove_database(
                &format!("{}-server", instance.volume),
                Some(&instance.volume),
            )
            .await
            .map_err(|e| failure("INTERNAL_ERROR", e.to_string()))?;
        self.inner
            .store
            .remove_sql_instance(&key)
            .map_err(|e| failure("INTERNAL_ERROR", e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_passwords_are_quoted() {
        assert_eq!(quote_identifier("app\"db"), "\"app\"\"db\"");
        assert_eq!(literal("it's"), "'it''s'");
    }
}
