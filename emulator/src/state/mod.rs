//! The state store: every resource the emulator holds and every rule about it.
//!
//! Nothing here knows HTTP or Docker. Reads take a shared lock on [`Data`]; writes go through
//! [`Store::commit`], which validates against the current state, journals the resulting
//! [`Record`]s durably (when a data directory is set) and only then applies them, so a refused or
//! failed write changes nothing.

mod error;
mod journal;

pub mod filter;
pub mod iam;
pub mod identity;
pub mod locations;
pub mod logs;
pub mod operations;
pub mod page;
pub mod projects;
pub mod repositories;
pub mod run;
pub mod secrets;
pub mod services;
pub mod sql;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

pub use error::{StateError, StateResult};
use journal::Journal;

/// Whether a write is carried out, or only checked against the state as Google's
/// `validateOnly` asks (nothing stored, nothing journaled, the same errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    Apply,
    ValidateOnly,
}

/// A cheap-to-clone handle on the emulator's state, in memory or backed by a data directory.
#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    data: RwLock<Data>,
    journal: Option<Mutex<Journal>>,
    operations: operations::Operations,
    logs: logs::LogStore,
    sql_operations: sql::SqlOperations,
    /// The token issuer, made on first use from the stored signing key.
    issuer: std::sync::OnceLock<Arc<identity::TokenIssuer>>,
    issuer_init: Mutex<()>,
}

/// Everything that is persisted, as one serialisable value (the snapshot).
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Data {
    /// Project ids seen, by project id, with their numbers.
    #[serde(default)]
    projects: BTreeMap<String, String>,
    #[serde(default)]
    secrets: BTreeMap<String, secrets::SecretEntry>,
    /// IAM policies by full resource name.
    #[serde(default)]
    policies: BTreeMap<String, iam::Policy>,
    /// Service Usage state by project number, then service name: `true` when enabled.
    #[serde(default)]
    services: BTreeMap<String, BTreeMap<String, bool>>,
    #[serde(default)]
    repositories: BTreeMap<String, repositories::Repository>,
    /// Cloud Run services by full name.
    #[serde(default)]
    services_run: BTreeMap<String, run::Service>,
    /// Cloud Run revisions by `projects/N/locations/R/revisions/NAME`.
    #[serde(default)]
    revisions: BTreeMap<String, run::Revision>,
    /// Cloud SQL instances by `PROJECT/NAME`.
    #[serde(default)]
    sql_instances: BTreeMap<String, sql::SqlInstance>,
    /// The token issuer's RSA key, PKCS#8 DER in base64.
    #[serde(default)]
    signing_key: Option<String>,
}

/// One durable change; a transaction is a list of them, journaled as one line.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum Record {
    Project {
        id: String,
        number: String,
    },
    PutSecret {
        secret: secrets::Secret,
    },
    DeleteSecret {
        name: String,
    },
    PutVersion {
        version: secrets::SecretVersion,
    },
    PutPolicy {
        resource: String,
        policy: iam::Policy,
    },
    SetServiceState {
        project: String,
        service: String,
        enabled: bool,
    },
    PutRepository {
        repository: repositories::Repository,
    },
    DeleteRepository {
        name: String,
    },
    PutService {
        service: run::Service,
    },
    DeleteService {
        name: String,
    },
    PutRevision {
        revision: run::Revision,
    },
    DeleteRevision {
        key: String,
    },
    PutSqlInstance {
        instance: sql::SqlInstance,
    },
    DeleteSqlInstance {
        key: String,
    },
    PutSigningKey {
        pkcs8: String,
    },
}

impl Data {
    fn apply(&mut self, record: Record) {
        match record {
            Record::Project { id, number } => {
                self.projects.insert(id, number);
            }
            Record::PutSecret { secret } => {
                let key = secret.name.to_string();
                match self.secrets.get_mut(&key) {
                    Some(entry) => entry.secret = secret,
                    None => {
                        self.secrets.insert(key, secrets::SecretEntry::new(secret));
                    }
                }
            }
            Record::DeleteSecret { name } => {
                self.secrets.remove(&name);
                self.policies.remove(&name);
            }
            Record::PutVersion { version } => {
                if let Some(entry) = self.secrets.get_mut(&version.secret.to_string()) {
                    entry.versions.insert(version.number, version);
                }
            }
            Record::PutPolicy { resource, policy } => {
                self.policies.insert(resource, policy);
            }
            Record::SetServiceState {
                project,
                service,
                enabled,
            } => {
                self.services
                    .entry(project)
                    .or_default()
                    .insert(service, enabled);
            }
            Record::PutRepository { repository } => {
                self.repositories
                    .insert(repository.name.to_string(), repository);
            }
            Record::DeleteRepository { name } => {
                self.repositories.remove(&name);
                self.policies.remove(&name);
            }
            Record::PutService { service } => {
                self.services_run.insert(service.name.to_string(), service);
            }
            Record::DeleteService { name } => {
                if let Some(service) = self.services_run.remove(&name) {
                    self.revisions.retain(|_, r| r.service != service.name);
                }
                self.policies.remove(&name);
            }
            Record::PutRevision { revision } => {
                self.revisions.insert(revision.key(), revision);
            }
            Record::DeleteRevision { key } => {
                self.revisions.remove(&key);
            }
            Record::PutSqlInstance { instance } => {
                self.sql_instances.insert(instance.key(), instance);
            }
            Record::DeleteSqlInstance { key } => {
                self.sql_instances.remove(&key);
            }
            Record::PutSigningKey { pkcs8 } => {
                self.signing_key = Some(pkcs8);
            }
        }
    }
}

impl Store {
    /// A store that lives only as long as the process.
    pub fn in_memory() -> Self {
        Self::with(Data::default(), None)
    }

    /// A store persisted in `dir`: everything acknowledged survives a restart or a kill -9.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        let (data, journal) = Journal::open(dir)?;
        Ok(Self::with(data, Some(journal)))
    }

    fn with(data: Data, journal: Option<Journal>) -> Self {
        Self {
            inner: Arc::new(Inner {
                data: RwLock::new(data),
                journal: journal.map(Mutex::new),
                operations: operations::Operations::default(),
                logs: logs::LogStore::default(),
                sql_operations: sql::SqlOperations::default(),
                issuer: std::sync::OnceLock::new(),
                issuer_init: Mutex::new(()),
            }),
        }
    }

    /// Whether writes are journaled to disk.
    pub fn is_persistent(&self) -> bool {
        self.inner.journal.is_some()
    }

    /// Long-running operations, which live in memory only: they all complete at once.
    pub fn operations(&self) -> &operations::Operations {
        &self.inner.operations
    }

    /// Log entries of running revisions, which live in memory only.
    pub fn logs(&self) -> &logs::LogStore {
        &self.inner.logs
    }

    pub(crate) fn read<T>(&self, f: impl FnOnce(&Data) -> T) -> T {
        f(&self.inner.data.read())
    }

    /// [`Store::commit`], or with [`WriteMode::ValidateOnly`] the same checks and result with
    /// the records dropped.
    pub(crate) fn write<T>(
        &self,
        mode: WriteMode,
        f: impl FnOnce(&Data) -> StateResult<(T, Vec<Record>)>,
    ) -> StateResult<T> {
        match mode {
            WriteMode::Apply => self.commit(f),
            WriteMode::ValidateOnly => self.read(|data| f(data).map(|(out, _)| out)),
        }
    }

    /// Validates against the current state, journals the records `f` returns, then applies them.
    pub(crate) fn commit<T>(
        &self,
        f: impl FnOnce(&Data) -> StateResult<(T, Vec<Record>)>,
    ) -> StateResult<T> {
        let mut data = self.inner.data.write();
        let (out, records) = f(&data)?;
        if records.is_empty() {
            return Ok(out);
        }
        if let Some(journal) = &self.inner.journal {
            let mut journal = journal.lock();
            journal.append(&records)?;
            for record in records {
                data.apply(record);
            }
            if journal.wants_compaction() {
                journal.compact(&data)?;
            }
        } else {
            for record in records {
                data.apply(record);
            }
        }
        Ok(out)
    }
}
