//! Cloud SQL for PostgreSQL: instances with their databases and users, and the operations that
//! change them.
//!
//! A write is accepted here (validated, the instance record journaled when it is created or
//! patched) and becomes an [`SqlOperation`] in state `PENDING`. The controller carries out each
//! operation against the instance's real Postgres server, then records the outcome: the
//! database or user record on success, the error on the operation otherwise. Operations live in
//! memory only; passwords live in Postgres alone and never reach the journal.

use std::collections::{BTreeMap, HashMap, VecDeque};

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::locations;
use super::operations::new_id;
use super::{Record, StateError, StateResult, Store};

/// The database versions this emulator can run, each backed by a local image.
pub const SUPPORTED_VERSIONS: &[&str] = &["POSTGRES_15"];
/// The database every Cloud SQL for PostgreSQL instance starts with.
pub const DEFAULT_DATABASE: &str = "postgres";
/// The user every Cloud SQL for PostgreSQL instance starts with.
pub const DEFAULT_USER: &str = "postgres";
/// How many finished operations are remembered for polling and listing.
const KEPT_OPERATIONS: usize = 4096;

/// Where an instance stands, in Cloud SQL's words (`state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InstanceState {
    /// Created, its server not answering yet.
    PendingCreate,
    /// Its server answers.
    Runnable,
    /// Its server could not be started.
    Failed,
    /// Being deleted.
    PendingDelete,
}

impl InstanceState {
    /// The enum value as the API writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PendingCreate => "PENDING_CREATE",
            Self::Runnable => "RUNNABLE",
            Self::Failed => "FAILED",
            Self::PendingDelete => "PENDING_DELETE",
        }
    }
}

/// The settings a client chooses (`settings` in the API).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InstanceSettings {
    pub tier: String,
    pub data_disk_size_gb: i64,
    pub data_disk_type: String,
    pub availability_type: String,
    pub activation_policy: String,
    pub pricing_plan: String,
    pub backup_enabled: bool,
    pub deletion_protection: bool,
    pub user_labels: BTreeMap<String, String>,
}

/// A database of an instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SqlDatabase {
    pub name: String,
    pub charset: String,
    pub collation: String,
}

/// A user of an instance (a Postgres role that can log in); its password lives in Postgres.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SqlUser {
    pub name: String,
    /// `BUILT_IN` for password users.
    pub user_type: String,
}

/// A stored Cloud SQL instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SqlInstance {
    /// The project id as the client wrote it (connection names use ids).
    pub project: String,
    pub name: String,
    pub region: String,
    pub database_version: String,
    pub settings: InstanceSettings,
    pub settings_version: i64,
    pub state: InstanceState,
    pub create_time: DateTime<Utc>,
    /// The Docker volume holding the data directory; unique per instance record.
    pub volume: String,
    /// The emulator's own superuser password for this server (never shown by the API).
    pub admin_password: String,
    /// The 127.0.0.1 port the server is published on, kept across restarts when free.
    pub host_port: Option<u16>,
    pub databases: BTreeMap<String, SqlDatabase>,
    pub users: BTreeMap<String, SqlUser>,
}

impl SqlInstance {
    /// `PROJECT:REGION:NAME`, what the Cloud SQL Auth Proxy and `/cloudsql` sockets are named by.
    pub fn connection_name(&self) -> String {
        format!("{}:{}:{}", self.project, self.region, self.name)
    }

    /// The key of the instance in the store: `PROJECT/NAME`.
    pub fn key(&self) -> String {
        instance_key(&self.project, &self.name)
    }

    /// The zone reported as `gceZone`.
    pub fn zone(&self) -> String {
        format!("{}-a", self.region)
    }

    /// The databases, the built-in one first.
    pub fn all_databases(&self) -> Vec<SqlDatabase> {
        let mut out = vec![SqlDatabase {
            name: DEFAULT_DATABASE.into(),
            charset: "UTF8".into(),
            collation: "en_US.UTF8".into(),
        }];
        out.extend(self.databases.values().cloned());
        out
    }

    /// The users, the built-in one first.
    pub fn all_users(&self) -> Vec<SqlUser> {
        let mut out = vec![SqlUser {
            name: DEFAULT_USER.into(),
            user_type: "BUILT_IN".into(),
        }];
        out.extend(self.users.values().cloned());
        out
    }
}

/// The store key of an instance.
pub fn instance_key(project: &str, name: &str) -> String {
    format!("{project}/{name}")
}

/// What a client asks for when it creates an instance.
#[derive(Debug, Clone, Default)]
pub struct NewInstance {
    pub name: String,
    pub region: Option<String>,
    pub database_version: Option<String>,
    pub settings: InstanceSettings,
    pub root_password: Option<String>,
}

/// What an operation does; carried out by the controller. Passwords stay in memory.
#[derive(Clone, PartialEq)]
pub enum SqlAction {
    CreateInstance {
        root_password: Option<String>,
    },
    DeleteInstance,
    UpdateInstance,
    CreateDatabase {
        database: SqlDatabase,
    },
    DeleteDatabase {
        name: String,
    },
    CreateUser {
        user: SqlUser,
        password: Option<String>,
    },
    SetPassword {
        name: String,
        password: String,
    },
    DeleteUser {
        name: String,
    },
}

impl std::fmt::Debug for SqlAction {
    /// Never prints passwords.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.operation_type())
    }
}

impl SqlAction {
    /// Cloud SQL's `operationType`.
    pub fn operation_type(&self) -> &'static str {
        match self {
            Self::CreateInstance { .. } => "CREATE",
            Self::DeleteInstance => "DELETE",
            Self::UpdateInstance => "UPDATE",
            Self::CreateDatabase { .. } => "CREATE_DATABASE",
            Self::DeleteDatabase { .. } => "DELETE_DATABASE",
            Self::CreateUser { .. } => "CREATE_USER",
            Self::SetPassword { .. } => "UPDATE_USER",
            Self::DeleteUser { .. } => "DELETE_USER",
        }
    }
}

/// An operation's `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationStatus {
    Pending,
    Running,
    Done,
}

impl OperationStatus {
    /// The enum value as the API writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Running => "RUNNING",
            Self::Done => "DONE",
        }
    }
}

/// A failed operation's error: Cloud SQL's code (e.g. `INTERNAL_ERROR`) and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationError {
    pub code: String,
    pub message: String,
}

/// One Cloud SQL operation (`sql#operation`).
#[derive(Debug, Clone, PartialEq)]
pub struct SqlOperation {
    pub id: String,
    pub project: String,
    pub instance: String,
    pub action: SqlAction,
    pub status: OperationStatus,
    pub error: Option<OperationError>,
    pub insert_time: DateTime<Utc>,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
}

/// The operations of this process, newest last.
#[derive(Debug, Default)]
pub struct SqlOperations {
    inner: Mutex<(HashMap<String, SqlOperation>, VecDeque<String>)>,
}

impl SqlOperations {
    fn add(&self, operation: SqlOperation) {
        let mut inner = self.inner.lock();
        let (by_id, order) = &mut *inner;
        order.push_back(operation.id.clone());
        by_id.insert(operation.id.clone(), operation);
        while order.len() > KEPT_OPERATIONS {
            let Some(old) = order.pop_front() else { break };
            let done = by_id
                .get(&old)
                .is_some_and(|o| o.status == OperationStatus::Done);
            if done {
                by_id.remove(&old);
            } else {
                order.push_back(old);
                break;
            }
        }
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut SqlOperation)) -> Option<SqlOperation> {
        let mut inner = self.inner.lock();
        let operation = inner.0.get_mut(id)?;
        f(operation);
        Some(operation.clone())
    }

    fn get(&self, id: &str) -> Option<SqlOperation> {
        self.inner.lock().0.get(id).cloned()
    }

    fn matching(&self, keep: impl Fn(&SqlOperation) -> bool) -> Vec<SqlOperation> {
        let inner = self.inner.lock();
        inner
            .1
            .iter()
            .filter_map(|id| inner.0.get(id))
            .filter(|o| keep(o))
            .cloned()
            .collect()
    }
}

fn instance_missing() -> StateError {
    StateError::Missing("The Cloud SQL instance does not exist.".into())
}

fn validate_instance_name(name: &str) -> StateResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 98
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(StateError::invalid(format!(
            "Invalid request: instance name ({name}) is invalid: it must start with a lowercase \
             letter, contain only lowercase letters, digits and hyphens, and be at most 98 \
             characters."
        )))
    }
}

/// Postgres identifiers of roles and databases the API may create: at most 63 bytes, no NUL.
fn validate_identifier(what: &str, name: &str) -> StateResult<()> {
    if name.is_empty() || name.len() > 63 || name.contains('\0') {
        return Err(StateError::invalid(format!(
            "Invalid request: {what} name ({name}) is invalid: it must have 1 to 63 characters."
        )));
    }
    Ok(())
}

fn validate_settings(settings: &InstanceSettings) -> StateResult<()> {
    if settings.data_disk_size_gb != 0 && !(10..=65_536).contains(&settings.data_disk_size_gb) {
        return Err(StateError::invalid(format!(
            "Invalid request: Invalid data disk size: {} GB. It must be between 10 and 65536.",
            settings.data_disk_size_gb
        )));
    }
    if !matches!(
        settings.data_disk_type.as_str(),
        "" | "PD_SSD" | "PD_HDD" | "HYPERDISK_BALANCED"
    ) {
        return Err(StateError::invalid(format!(
            "Invalid request: Invalid data disk type: {}.",
            settings.data_disk_type
        )));
    }
    if !matches!(settings.activation_policy.as_str(), "" | "ALWAYS" | "NEVER") {
        return Err(StateError::invalid(format!(
            "Invalid request: activation policy {} is not supported by this emulator \
             (ALWAYS, NEVER).",
            settings.activation_policy
        )));
    }
    Ok(())
}

fn random_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

fn with_defaults(mut settings: InstanceSettings) -> InstanceSettings {
    if settings.tier.is_empty() {
        settings.tier = "db-custom-1-3840".into();
    }
    if settings.data_disk_size_gb == 0 {
        settings.data_disk_size_gb = 10;
    }
    if settings.data_disk_type.is_empty() {
        settings.data_disk_type = "PD_SSD".into();
    }
    if settings.availability_type.is_empty() {
        settings.availability_type = "ZONAL".into();
    }
    if settings.activation_policy.is_empty() {
        settings.activation_policy = "ALWAYS".into();
    }
    if settings.pricing_plan.is_empty() {
        settings.pricing_plan = "PER_USE".into();
    }
    settings
}

impl Store {
    /// Cloud SQL operations, which live in memory only.
    fn sql_operations(&self) -> &SqlOperations {
        &self.inner.sql_operations
    }

    fn new_sql_operation(&self, project: &str, instance: &str, action: SqlAction) -> SqlOperation {
        let operation = SqlOperation {
            id: new_id(),
            project: project.to_string(),
            instance: instance.to_string(),
            action,
            status: OperationStatus::Pending,
            error: None,
            insert_time: Utc::now(),
            start_time: None,
            end_time: None,
        };
        self.sql_operations().add(operation.clone());
        operation
    }

    /// Creates an instance in `PENDING_CREATE`; the returned operation starts its server.
    pub fn create_sql_instance(
        &self,
        project: &str,
        request: NewInstance,
    ) -> StateResult<SqlOperation> {
        let project = self.project(project)?;
        validate_instance_name(&request.name)?;
        let version = request.database_version.unwrap_or_default();
        if !SUPPORTED_VERSIONS.contains(&version.as_str()) {
            return Err(StateError::invalid(format!(
                "Invalid request: Invalid database version {}. This emulator runs {} (from the \
                 local images built by docker/build-images.sh).",
                if version.is_empty() {
                    "(none)"
                } else {
                    &version
                },
                SUPPORTED_VERSIONS.join(", ")
            )));
        }
        let region = request.region.unwrap_or_else(|| "us-central1".into());
        if !locations::is_region(&region) {
            return Err(StateError::invalid(format!(
                "Invalid request: region ({region}) is invalid."
            )));
        }
        validate_settings(&request.settings)?;
        let key = instance_key(&project.id, &request.name);
        let suffix = random_hex(3);
        let instance = SqlInstance {
            project: project.id.clone(),
            name: request.name.clone(),
            region,
            database_version: version,
            settings: with_defaults(request.settings),
            settings_version: 1,
            state: InstanceState::PendingCreate,
            create_time: Utc::now(),
            volume: format!("cre-sql-{}-{suffix}", request.name),
            admin_password: random_hex(16),
            host_port: None,
            databases: BTreeMap::new(),
            users: BTreeMap::new(),
        };
        self.commit(|data| {
            if data.sql_instances.contains_key(&key) {
                return Err(StateError::Conflict(
                    "The Cloud SQL instance already exists.".into(),
                ));
            }
            let mut records: Vec<Record> = data.remember(&project).into_iter().collect();
            records.push(Record::PutSqlInstance {
                instance: instance.clone(),
            });
            Ok(((), records))
        })?;
        Ok(self.new_sql_operation(
            &project.id,
            &request.name,
            SqlAction::CreateInstance {
                root_password: request.root_password,
            },
        ))
    }

    /// Reads an instance.
    pub fn get_sql_instance(&self, project: &str, name: &str) -> StateResult<SqlInstance> {
        let key = instance_key(project, name);
        self.read(|data| data.sql_instances.get(&key).cloned())
            .ok_or_else(instance_missing)
    }

    /// Reads an instance by its store key.
    pub fn sql_instance_by_key(&self, key: &str) -> Option<SqlInstance> {
        self.read(|data| data.sql_instances.get(key).cloned())
    }

    /// The instances of a project, by name.
    pub fn list_sql_instances(&self, project: &str) -> StateResult<Vec<SqlInstance>> {
        self.project(project)?;
        Ok(self.read(|data| {
            data.sql_instances
                .values()
                .filter(|i| i.project == project)
                .cloned()
                .collect()
        }))
    }

    /// Every stored instance, for the controller to start at boot.
    pub fn all_sql_instances(&self) -> Vec<SqlInstance> {
        self.read(|data| data.sql_instances.values().cloned().collect())
    }

    /// Applies the settings a patch names (`None` leaves a field alone).
    pub fn patch_sql_instance(
        &self,
        project: &str,
        name: &str,
        patch: SettingsPatch,
    ) -> StateResult<SqlOperation> {
        let key = instance_key(project, name);
        self.commit(|data| {
            let mut instance = data
                .sql_instances
                .get(&key)
                .cloned()
                .ok_or_else(instance_missing)?;
            if instance.state == InstanceState::PendingDelete {
                return Err(instance_missing());
            }
            if let Some(version) = &patch.database_version
                && version != &instance.database_version
            {
                return Err(StateError::invalid(format!(
                    "Invalid request: major version upgrades are not supported by this emulator \
                     ({} to {version}).",
                    instance.database_version
                )));
            }
            let s = &mut instance.settings;
            if let Some(tier) = patch.tier {
                s.tier = tier;
            }
            if let Some(size) = patch.data_disk_size_gb {
                if size < s.data_disk_size_gb {
                    return Err(StateError::invalid(
                        "Invalid request: The disk size cannot decrease.",
                    ));
                }
                s.data_disk_size_gb = size;
            }
            if let Some(kind) = patch.data_disk_type {
                s.data_disk_type = kind;
            }
            if let Some(policy) = patch.activation_policy {
                s.activation_policy = policy;
            }
            if let Some(availability) = patch.availability_type {
                s.availability_type = availability;
            }
            if let Some(enabled) = patch.backup_enabled {
                s.backup_enabled = enabled;
            }
            if let Some(protect) = patch.deletion_protection {
                s.deletion_protection = protect;
            }
            if let Some(labels) = patch.user_labels {
                s.user_labels = labels;
            }
            validate_settings(s)?;
            instance.settings_version += 1;
            Ok(((), vec![Record::PutSqlInstance { instance }]))
        })?;
        Ok(self.new_sql_operation(project, name, SqlAction::UpdateInstance))
    }

    /// Marks an instance `PENDING_DELETE`; the returned operation removes its server and data.
    pub fn delete_sql_instance(&self, project: &str, name: &str) -> StateResult<SqlOperation> {
        let key = instance_key(project, name);
        self.commit(|data| {
            let mut instance = data
                .sql_instances
                .get(&key)
                .cloned()
                .ok_or_else(instance_missing)?;
            if instance.settings.deletion_protection {
                return Err(StateError::precondition(
                    "The instance is protected from deletion. Disable deletion protection \
                     (gcloud sql instances patch --no-deletion-protection) first.",
                ));
            }
            if instance.state == InstanceState::PendingDelete {
                return Err(StateError::Conflict(
                    "Operation failed because another operation was already in progress.".into(),
                ));
            }
            instance.state = InstanceState::PendingDelete;
            Ok(((), vec![Record::PutSqlInstance { instance }]))
        })?;
        Ok(self.new_sql_operation(project, name, SqlAction::DeleteInstance))
    }

    /// Queues the creation of a database.
    pub fn create_sql_database(
        &self,
        project: &str,
        instance: &str,
        database: SqlDatabase,
    ) -> StateResult<SqlOperation> {
        validate_identifier("database", &database.name)?;
        let current = self.usable_instance(project, instance)?;
        if current
            .all_databases()
            .iter()
            .any(|d| d.name == database.name)
        {
            return Err(StateError::Conflict(format!(
                "Database \"{}\" already exists.",
                database.name
            )));
        }
        Ok(self.new_sql_operation(project, instance, SqlAction::CreateDatabase { database }))
    }

    /// Reads a database of an instance.
    pub fn get_sql_database(
        &self,
        project: &str,
        instance: &str,
        name: &str,
    ) -> StateResult<SqlDatabase> {
        self.get_sql_instance(project, instance)?
            .all_databases()
            .into_iter()
            .find(|d| d.name == name)
            .ok_or_else(|| StateError::Missing(format!("The database \"{name}\" does not exist.")))
    }

    /// Queues the deletion of a database.
    pub fn delete_sql_database(
        &self,
        project: &str,
        instance: &str,
        name: &str,
    ) -> StateResult<SqlOperation> {
        let current = self.usable_instance(project, instance)?;
        if name == DEFAULT_DATABASE {
            return Err(StateError::invalid(
                "Invalid request: the postgres database cannot be deleted.",
            ));
        }
        if !current.databases.contains_key(name) {
            return Err(StateError::Missing(format!(
                "The database \"{name}\" does not exist."
            )));
        }
        Ok(self.new_sql_operation(
            project,
            instance,
            SqlAction::DeleteDatabase { name: name.into() },
        ))
    }

    /// Queues the creation of a user (a login role with a password).
    pub fn create_sql_user(
        &self,
        project: &str,
        instance: &str,
        user: SqlUser,
        password: Option<String>,
    ) -> StateResult<SqlOperation> {
        validate_identifier("user", &user.name)?;
        if user.user_type != "BUILT_IN" {
            return Err(StateError::invalid(format!(
                "Invalid request: user type {} is not supported by this emulator (BUILT_IN).",
                user.user_type
            )));
        }
        if user.name.starts_with("cloudsql") || user.name.starts_with("pg_") {
            return Err(StateError::invalid(format!(
                "Invalid request: the user name {} is reserved.",
                user.name
            )));
        }
        let current = self.usable_instance(project, instance)?;
        if current.all_users().iter().any(|u| u.name == user.name) {
            return Err(StateError::Conflict(format!(
                "User \"{}\" already exists.",
                user.name
            )));
        }
        Ok(self.new_sql_operation(project, instance, SqlAction::CreateUser { user, password }))
    }

    /// Queues a password change (`users set-password`, or an update of the user).
    pub fn set_sql_user_password(
        &self,
        project: &str,
        instance: &str,
        name: &str,
        password: String,
    ) -> StateResult<SqlOperation> {
        let current = self.usable_instance(project, instance)?;
        if !current.all_users().iter().any(|u| u.name == name) {
            return Err(StateError::Missing(format!(
                "The user {name} does not exist."
            )));
        }
        Ok(self.new_sql_operation(
            project,
            instance,
            SqlAction::SetPassword {
                name: name.into(),
                password,
            },
        ))
    }

    /// Queues the deletion of a user.
    pub fn delete_sql_user(
        &self,
        project: &str,
        instance: &str,
        name: &str,
    ) -> StateResult<SqlOperation> {
        let current = self.usable_instance(project, instance)?;
        if name == DEFAULT_USER {
            return Err(StateError::invalid(
                "Invalid request: the postgres user cannot be deleted.",
            ));
        }
        if !current.users.contains_key(name) {
            return Err(StateError::Missing(format!(
                "The user {name} does not exist."
            )));
        }
        Ok(self.new_sql_operation(
            project,
            instance,
            SqlAction::DeleteUser { name: name.into() },
        ))
    }

    fn usable_instance(&self, project: &str, instance: &str) -> StateResult<SqlInstance> {
        let current = self.get_sql_instance(project, instance)?;
        match current.state {
            InstanceState::PendingDelete => Err(instance_missing()),
            InstanceState::Failed => Err(StateError::precondition(
                "Invalid request: the instance failed to start; delete it and create it again.",
            )),
            _ => Ok(current),
        }
    }

    /// An operation by id, within a project.
    pub fn get_sql_operation(&self, project: &str, id: &str) -> StateResult<SqlOperation> {
        self.sql_operations()
            .get(id)
            .filter(|o| o.project == project)
            .ok_or_else(|| {
                StateError::Missing(format!("The Cloud SQL operation {id} does not exist."))
            })
    }

    /// The operations of a project (optionally of one instance), newest first.
    pub fn list_sql_operations(&self, project: &str, instance: Option<&str>) -> Vec<SqlOperation> {
        let mut out = self
            .sql_operations()
            .matching(|o| o.project == project && instance.is_none_or(|i| o.instance == i));
        out.reverse();
        out
    }

    /// The operations of an instance still to run, oldest first (for the controller).
    pub fn pending_sql_operations(&self, key: &str) -> Vec<SqlOperation> {
        self.sql_operations().matching(|o| {
            o.status == OperationStatus::Pending && instance_key(&o.project, &o.instance) == key
        })
    }

    /// Marks an operation `RUNNING`.
    pub fn start_sql_operation(&self, id: &str) {
        self.sql_operations().update(id, |o| {
            o.status = OperationStatus::Running;
            o.start_time = Some(Utc::now());
        });
    }

    /// Marks an operation `DONE`, with its error if it failed.
    pub fn finish_sql_operation(&self, id: &str, error: Option<OperationError>) {
        self.sql_operations().update(id, |o| {
            o.status = OperationStatus::Done;
            o.start_time.get_or_insert_with(Utc::now);
            o.end_time = Some(Utc::now());
            o.error = error;
        });
    }

    /// Applies a change to a stored instance (state, port, databases, users) after the
    /// controller carried it out; a vanished instance is left alone.
    pub fn update_sql_instance(
        &self,
        key: &str,
        f: impl FnOnce(&mut SqlInstance),
    ) -> StateResult<Option<SqlInstance>> {
        self.commit(|data| {
            let Some(mut instance) = data.sql_instances.get(key).cloned() else {
                return Ok((None, Vec::new()));
            };
            f(&mut instance);
            if data.sql_instances.get(key) == Some(&instance) {
                return Ok((Some(instance), Vec::new()));
            }
            Ok((
                Some(instance.clone()),
                vec![Record::PutSqlInstance { instance }],
            ))
        })
    }

    /// Forgets an instance once its server and data are gone.
    pub fn remove_sql_instance(&self, key: &str) -> StateResult<()> {
        self.commit(|data| {
            if !data.sql_instances.contains_key(key) {
                return Ok(((), Vec::new()));
            }
            Ok(((), vec![Record::DeleteSqlInstance { key: key.into() }]))
        })
    }
}

/// The settings `instances patch` may change; `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct SettingsPatch {
    pub database_version: Option<String>,
    pub tier: Option<String>,
    pub data_disk_size_gb: Option<i64>,
    pub data_disk_type: Option<String>,
    pub activation_policy: Option<String>,
    pub availability_type: Option<String>,
    pub backup_enabled: Option<bool>,
    pub deletion_protection: Option<bool>,
    pub user_labels: Option<BTreeMap<String, String>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(store: &Store, name: &str, version: &str) -> StateResult<SqlOperation> {
        store.create_sql_instance(
            "demo-proj",
            NewInstance {
                name: name.into(),
                region: Some("us-central1".into()),
                database_version: Some(version.into()),
                ..Default::default()
            },
        )
    }

    #[test]
    fn an_instance_is_created_once_and_named_for_the_proxy() {
        let store = Store::in_memory();
        let operation = create(&store, "inst", "POSTGRES_15").expect("created");
        assert_eq!(operation.status, OperationStatus::Pending);
        let instance = store.get_sql_instance("demo-proj", "inst").expect("stored");
        assert_eq!(instance.connection_name(), "demo-proj:us-central1:inst");
        assert_eq!(instance.state, InstanceState::PendingCreate);
        let again = create(&store, "inst", "POSTGRES_15").expect_err("duplicate");
        assert_eq!(again.to_string(), "The Cloud SQL instance already exists.");
    }

    #[test]
    fn unsupported_versions_are_refused_by_name() {
        let store = Store::in_memory();
        let error = create(&store, "inst", "MYSQL_8_0").expect_err("refused");
        assert!(error.to_string().contains("POSTGRES_15"), "{error}");
        assert!(store.get_sql_instance("demo-proj", "inst").is_err());
    }

    #[test]
    fn passwords_never_reach_the_journal_or_debug_output() {
        let store = Store::in_memory();
        create(&store, "inst", "POSTGRES_15").expect("created");
        let operation = store
            .create_sql_user(
                "demo-proj",
                "inst",
                SqlUser {
                    name: "app".into(),
                    user_type: "BUILT_IN".into(),
                },
                Some("hunter2".into()),
            )
            .expect("queued");
        assert!(!format!("{operation:?}").contains("hunter2"));
        let instance = store.get_sql_instance("demo-proj", "inst").expect("stored");
        let record = serde_json::to_string(&instance).expect("serialises");
        assert!(!record.contains("hunter2"));
    }
}
