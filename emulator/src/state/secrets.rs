//! Secret Manager's resources and rules: Secrets, SecretVersions, their states and aliases.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::filter::{Filter, Filterable};
use super::iam::{self, Policy, PolicyUpdate};
use super::locations;
use super::page::{Page, PageRequest, paginate};
use super::projects::Project;
use super::{Data, Record, StateError, StateResult, Store};

/// Largest payload Secret Manager stores: 64 KiB.
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;
/// Most aliases a secret may carry.
const MAX_ALIASES: usize = 50;
/// Most labels a resource may carry.
const MAX_LABELS: usize = 64;
/// Most bytes all annotations of a secret may take together.
const MAX_ANNOTATION_BYTES: usize = 16 * 1024;

/// A secret's full name; global (`projects/N/secrets/S`) or regional (`.../locations/L/...`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SecretName {
    /// Project number.
    pub project: String,
    pub location: Option<String>,
    pub secret_id: String,
}

impl fmt::Display for SecretName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Some(location) => write!(
                f,
                "projects/{}/locations/{location}/secrets/{}",
                self.project, self.secret_id
            ),
            None => write!(f, "projects/{}/secrets/{}", self.project, self.secret_id),
        }
    }
}

/// Where a secret's data is replicated; regional secrets have none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Replication {
    Automatic { kms_key_name: Option<String> },
    UserManaged { replicas: Vec<Replica> },
}

/// One location of a user-managed replication.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Replica {
    pub location: String,
    pub kms_key_name: Option<String>,
}

/// Rotation schedule; the emulator stores it and reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rotation {
    pub next_rotation_time: Option<DateTime<Utc>>,
    pub rotation_period: Option<Duration>,
}

/// When a secret expires: at a time, or after a TTL from now.
#[derive(Debug, Clone, PartialEq)]
pub enum Expiration {
    At(DateTime<Utc>),
    Ttl(Duration),
}

/// The fields of a Secret a client may set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SecretFields {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub replication: Option<Replication>,
    pub topics: Vec<String>,
    pub expiration: Option<Expiration>,
    pub rotation: Option<Rotation>,
    pub version_aliases: BTreeMap<String, i64>,
    pub version_destroy_ttl: Option<Duration>,
    pub customer_managed_encryption: Option<String>,
    pub tags: BTreeMap<String, String>,
    /// The etag the client read, for optimistic concurrency on update.
    pub etag: Option<String>,
}

/// A stored Secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Secret {
    pub name: SecretName,
    pub create_time: DateTime<Utc>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub replication: Option<Replication>,
    pub topics: Vec<String>,
    pub expire_time: Option<DateTime<Utc>>,
    pub rotation: Option<Rotation>,
    pub version_aliases: BTreeMap<String, i64>,
    pub version_destroy_ttl: Option<Duration>,
    pub customer_managed_encryption: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub etag: String,
}

/// A SecretVersion's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum VersionState {
    Enabled,
    Disabled,
    Destroyed,
}

impl VersionState {
    /// The name Google gives the state.
    pub fn as_str(self) -> &'static str {
        match self {
            VersionState::Enabled => "ENABLED",
            VersionState::Disabled => "DISABLED",
            VersionState::Destroyed => "DESTROYED",
        }
    }

    /// The protobuf enum number, for clients asking for `enum-encoding=int`.
    pub fn number(self) -> i32 {
        match self {
            VersionState::Enabled => 1,
            VersionState::Disabled => 2,
            VersionState::Destroyed => 3,
        }
    }
}

/// A stored SecretVersion; the payload is gone once destroyed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecretVersion {
    pub secret: SecretName,
    pub number: u64,
    pub create_time: DateTime<Utc>,
    pub state: VersionState,
    #[serde(with = "bytes_b64")]
    pub payload: Vec<u8>,
    pub client_specified_payload_checksum: bool,
    pub destroy_time: Option<DateTime<Utc>>,
    pub scheduled_destroy_time: Option<DateTime<Utc>>,
    pub etag: String,
}

impl SecretVersion {
    /// `projects/N/secrets/S/versions/V`.
    pub fn name(&self) -> String {
        format!("{}/versions/{}", self.secret, self.number)
    }

    /// The version as seen at `now`: a delayed destruction that is due has happened.
    fn at(&self, now: DateTime<Utc>) -> SecretVersion {
        match self.scheduled_destroy_time {
            Some(due) if due <= now && self.state != VersionState::Destroyed => self.destroyed(due),
            _ => self.clone(),
        }
    }

    fn destroyed(&self, at: DateTime<Utc>) -> SecretVersion {
        SecretVersion {
            state: VersionState::Destroyed,
            payload: Vec::new(),
            destroy_time: Some(at),
            scheduled_destroy_time: None,
            etag: etag_at(at),
            ..self.clone()
        }
    }

    /// CRC32C of the payload, as returned on access.
    pub fn payload_crc32c(&self) -> u32 {
        crc32c::crc32c(&self.payload)
    }
}

/// A secret with its versions, as held in the store.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SecretEntry {
    pub(crate) secret: Secret,
    pub(crate) versions: BTreeMap<u64, SecretVersion>,
}

impl SecretEntry {
    pub(crate) fn new(secret: Secret) -> Self {
        Self {
            secret,
            versions: BTreeMap::new(),
        }
    }
}

/// Where secrets are listed or created: a project, optionally a location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretParent<'a> {
    pub project: &'a str,
    pub location: Option<&'a str>,
}

/// A secret as named in a request: the project may be an id or a number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef<'a> {
    pub parent: SecretParent<'a>,
    pub secret_id: &'a str,
}

/// An update of a secret: the fields and which of them the mask names.
#[derive(Debug, Clone, Default)]
pub struct SecretUpdate {
    pub fields: SecretFields,
    pub update_mask: Vec<String>,
}

fn etag_at(time: DateTime<Utc>) -> String {
    format!("\"{:x}\"", time.timestamp_micros())
}

mod bytes_b64 {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

fn validate_secret_id(id: &str) -> StateResult<()> {
    let ok = !id.is_empty()
        && id.len() <= 255
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(StateError::invalid(format!(
            "Secret ID [{id}] is invalid: a secret ID must be 1 to 255 characters of letters, \
             digits, underscores (_) and hyphens (-)."
        )))
    }
}

fn validate_location(location: &str) -> StateResult<()> {
    if locations::is_region(location) {
        Ok(())
    } else {
        Err(StateError::invalid(format!(
            "Location [{location}] is not a valid Secret Manager location."
        )))
    }
}

fn validate_labels(labels: &BTreeMap<String, String>) -> StateResult<()> {
    if labels.len() > MAX_LABELS {
        return Err(StateError::invalid(format!(
            "A secret can have at most {MAX_LABELS} labels."
        )));
    }
    let label_char = |c: char| c.is_lowercase() || c.is_numeric() || c == '_' || c == '-';
    for (key, value) in labels {
        let key_ok = key.chars().count() <= 63
            && key.chars().next().is_some_and(char::is_lowercase)
            && key.chars().all(label_char);
        if !key_ok {
            return Err(StateError::invalid(format!(
                "Label key [{key}] is invalid: keys are 1 to 63 lowercase letters, digits, \
                 underscores and hyphens, starting with a lowercase letter."
            )));
        }
        if value.chars().count() > 63 || !value.chars().all(label_char) {
            return Err(StateError::invalid(format!(
                "Label value [{value}] of key [{key}] is invalid: values are up to 63 lowercase \
                 letters, digits, underscores and hyphens."
            )));
        }
    }
    Ok(())
}

fn validate_annotations(annotations: &BTreeMap<String, String>) -> StateResult<()> {
    let mut total = 0;
    for (key, value) in annotations {
        let key_ok = !key.is_empty()
            && key.len() <= 63
            && key.starts_with(|c: char| c.is_ascii_alphanumeric())
            && key.ends_with(|c: char| c.is_ascii_alphanumeric())
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !key_ok {
            return Err(StateError::invalid(format!(
                "Annotation key [{key}] is invalid: keys are 1 to 63 letters, digits, dashes, \
                 underscores and dots, beginning and ending with a letter or digit."
            )));
        }
        total += key.len() + value.len();
    }
    if total > MAX_ANNOTATION_BYTES {
        return Err(StateError::invalid(
            "The total size of annotation keys and values must be less than 16KiB.",
        ));
    }
    Ok(())
}

fn validate_replication(
    replication: &Option<Replication>,
    location: Option<&str>,
) -> StateResult<()> {
    match (replication, location) {
        (None, None) => Err(StateError::invalid("Secret.replication is required.")),
        (Some(_), Some(_)) => Err(StateError::invalid(
            "Secret.replication must not be set on a regional secret.",
        )),
        (None, Some(_)) | (Some(Replication::Automatic { .. }), None) => Ok(()),
        (Some(Replication::UserManaged { replicas }), None) => {
            if replicas.is_empty() {
                return Err(StateError::invalid(
                    "Replication.user_managed.replicas must have at least one replica.",
                ));
            }
            let mut seen = std::collections::BTreeSet::new();
            for replica in replicas {
                validate_location(&replica.location)?;
                if !seen.insert(replica.location.as_str()) {
                    return Err(StateError::invalid(format!(
                        "Replication.user_managed.replicas has location [{}] more than once.",
                        replica.location
                    )));
                }
            }
            Ok(())
        }
    }
}

fn validate_aliases(
    aliases: &BTreeMap<String, i64>,
    versions: &BTreeMap<u64, SecretVersion>,
) -> StateResult<()> {
    if aliases.len() > MAX_ALIASES {
        return Err(StateError::invalid(format!(
            "A secret can have at most {MAX_ALIASES} version aliases."
        )));
    }
    for (alias, number) in aliases {
        let alias_ok = !alias.is_empty()
            && alias.len() <= 63
            && alias.starts_with(|c: char| c.is_ascii_alphabetic())
            && alias
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            && alias != "latest";
        if !alias_ok {
            return Err(StateError::invalid(format!(
                "Version alias [{alias}] is invalid: aliases are 1 to 63 letters, digits, \
                 underscores and hyphens, start with a letter, and may not be 'latest'."
            )));
        }
        let version = u64::try_from(*number)
            .ok()
            .and_then(|n| versions.get(&n))
            .ok_or_else(|| {
                StateError::invalid(format!(
                    "Version alias [{alias}] names version [{number}], which does not exist."
                ))
            })?;
        if version.state == VersionState::Destroyed {
            return Err(StateError::invalid(format!(
                "Version alias [{alias}] cannot name destroyed version [{number}]."
            )));
        }
    }
    Ok(())
}

fn check_etag(sent: Option<&str>, current: &str) -> StateResult<()> {
    match sent {
        Some(etag) if !etag.is_empty() && etag.trim_matches('"') != current.trim_matches('"') => {
            Err(StateError::Aborted(format!(
                "The etag [{etag}] does not match the current etag of the resource [{current}]."
            )))
        }
        _ => Ok(()),
    }
}

impl Filterable for Secret {
    fn values(&self, path: &[&str]) -> Vec<String> {
        let map_keys = |m: &BTreeMap<String, String>| m.keys().cloned().collect();
        let map_value =
            |m: &BTreeMap<String, String>, k: &str| m.get(k).cloned().into_iter().collect();
        match path {
            ["name"] => vec![self.name.to_string(), self.name.secret_id.clone()],
            ["labels"] => map_keys(&self.labels),
            ["labels", key] => map_value(&self.labels, key),
            ["annotations"] => map_keys(&self.annotations),
            ["annotations", key] => map_value(&self.annotations, key),
            ["tags"] => map_keys(&self.tags),
            ["tags", key] => map_value(&self.tags, key),
            ["create_time"] => vec![format_time(self.create_time)],
            ["expire_time"] => self.expire_time.map(format_time).into_iter().collect(),
            ["topics"] | ["topics", "name"] => self.topics.clone(),
            ["version_aliases"] => self.version_aliases.keys().cloned().collect(),
            ["version_aliases", key] => self
                .version_aliases
                .get(*key)
                .map(|n| n.to_string())
                .into_iter()
                .collect(),
            ["replication"] => match &self.replication {
                Some(Replication::Automatic { .. }) => vec!["automatic".into()],
                Some(Replication::UserManaged { .. }) => vec!["user_managed".into()],
                None => vec![],
            },
            ["replication", "automatic"] => match &self.replication {
                Some(Replication::Automatic { .. }) => vec!["automatic".into()],
                _ => vec![],
            },
            ["replication", "user_managed", ..] => match &self.replication {
                Some(Replication::UserManaged { replicas }) => {
                    replicas.iter().map(|r| r.location.clone()).collect()
                }
                _ => vec![],
            },
            ["rotation", "next_rotation_time"] => self
                .rotation
                .as_ref()
                .and_then(|r| r.next_rotation_time)
                .map(format_time)
                .into_iter()
                .collect(),
            _ => vec![],
        }
    }
}

impl Filterable for SecretVersion {
    fn values(&self, path: &[&str]) -> Vec<String> {
        match path {
            ["name"] => vec![self.name(), self.number.to_string()],
            ["state"] => vec![self.state.as_str().to_string()],
            ["create_time"] => vec![format_time(self.create_time)],
            ["destroy_time"] => self.destroy_time.map(format_time).into_iter().collect(),
            _ => vec![],
        }
    }
}

fn format_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

impl Data {
    fn secret_name(
        &self,
        parent: &SecretParent<'_>,
        secret_id: &str,
    ) -> StateResult<(Project, SecretName)> {
        let project = self.project(parent.project)?;
        if let Some(location) = parent.location {
            validate_location(location)?;
        }
        let name = SecretName {
            project: project.number.clone(),
            location: parent.location.map(str::to_string),
            secret_id: secret_id.to_string(),
        };
        Ok((project, name))
    }

    /// The live entry of a secret: expired secrets are gone even before the sweeper removes them.
    fn secret_entry(
        &self,
        secret: &SecretRef<'_>,
        now: DateTime<Utc>,
    ) -> StateResult<&SecretEntry> {
        let (_, name) = self.secret_name(&secret.parent, secret.secret_id)?;
        self.secrets
            .get(&name.to_string())
            .filter(|entry| entry.secret.expire_time.is_none_or(|t| t > now))
            .ok_or_else(|| StateError::NotFound {
                kind: "Secret",
                name: name.to_string(),
            })
    }

    fn resolve_version<'e>(
        entry: &'e SecretEntry,
        version: &str,
    ) -> StateResult<&'e SecretVersion> {
        let not_found = || StateError::NotFound {
            kind: "Secret Version",
            name: format!("{}/versions/{version}", entry.secret.name),
        };
        let number = if version == "latest" {
            return entry
                .versions
                .values()
                .next_back()
                .ok_or_else(|| StateError::NoVersions {
                    name: entry.secret.name.to_string(),
                });
        } else if let Ok(n) = version.parse::<u64>() {
            n
        } else if let Some(n) = entry.secret.version_aliases.get(version) {
            u64::try_from(*n).map_err(|_| not_found())?
        } else if version.starts_with(|c: char| c.is_ascii_alphabetic())
            && version
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(not_found());
        } else {
            return Err(StateError::invalid(format!(
                "Secret Version [{version}] is not a version number, 'latest' or an alias."
            )));
        };
        entry.versions.get(&number).ok_or_else(not_found)
    }
}

impl Store {
    /// Creates a secret; its id must be new in its project and location.
    pub fn create_secret(
        &self,
        parent: &SecretParent<'_>,
        secret_id: &str,
        fields: SecretFields,
    ) -> StateResult<Secret> {
        let now = Utc::now();
        self.commit(|data| {
            let (project, name) = data.secret_name(parent, secret_id)?;
            validate_secret_id(secret_id)?;
            validate_labels(&fields.labels)?;
            validate_annotations(&fields.annotations)?;
            validate_replication(&fields.replication, parent.location)?;
            if !fields.version_aliases.is_empty() {
                validate_aliases(&fields.version_aliases, &BTreeMap::new())?;
            }
            if let Some(existing) = data.secrets.get(&name.to_string())
                && existing.secret.expire_time.is_none_or(|t| t > now)
            {
                return Err(StateError::AlreadyExists {
                    kind: "Secret",
                    name: name.to_string(),
                });
            }
            let secret = Secret {
                name: name.clone(),
                create_time: now,
                labels: fields.labels,
                annotations: fields.annotations,
                replication: fields.replication,
                topics: fields.topics,
                expire_time: expire_time(fields.expiration, now)?,
                rotation: fields.rotation,
                version_aliases: BTreeMap::new(),
                version_destroy_ttl: fields.version_destroy_ttl,
                customer_managed_encryption: fields.customer_managed_encryption,
                tags: fields.tags,
                etag: etag_at(now),
            };
            let mut records: Vec<Record> = data.remember(&project).into_iter().collect();
            if data.secrets.contains_key(&name.to_string()) {
                records.push(Record::DeleteSecret {
                    name: name.to_string(),
                });
            }
            records.push(Record::PutSecret {
                secret: secret.clone(),
            });
            Ok((secret, records))
        })
    }

    /// Reads a secret.
    pub fn get_secret(&self, secret: &SecretRef<'_>) -> StateResult<Secret> {
        let now = Utc::now();
        self.read(|data| Ok(data.secret_entry(secret, now)?.secret.clone()))
    }

    /// Lists the secrets of a project (and location), in name order.
    pub fn list_secrets(
        &self,
        parent: &SecretParent<'_>,
        filter: &Filter,
        page: &PageRequest,
    ) -> StateResult<Page<Secret>> {
        let now = Utc::now();
        let items = self.read(|data| -> StateResult<Vec<(String, Secret)>> {
            let (_, first) = data.secret_name(parent, "")?;
            let prefix = first.to_string();
            Ok(data
                .secrets
                .range(prefix.clone()..)
                .take_while(|(key, _)| key.starts_with(&prefix))
                .map(|(_, entry)| &entry.secret)
                .filter(|s| s.expire_time.is_none_or(|t| t > now) && filter.matches(*s))
                .map(|s| (s.name.to_string(), s.clone()))
                .collect())
        })?;
        paginate(items, page, 25_000, 25_000)
    }

    /// Updates the fields named in the mask.
    pub fn update_secret(
        &self,
        secret: &SecretRef<'_>,
        update: SecretUpdate,
    ) -> StateResult<Secret> {
        let now = Utc::now();
        self.commit(|data| {
            let entry = data.secret_entry(secret, now)?;
            check_etag(update.fields.etag.as_deref(), &entry.secret.etag)?;
            if update.update_mask.is_empty() {
                return Err(StateError::invalid("update_mask is required."));
            }
            let mut next = entry.secret.clone();
            let fields = update.fields;
            for path in &update.update_mask {
                match path.as_str() {
                    "labels" => next.labels = fields.labels.clone(),
                    "annotations" => next.annotations = fields.annotations.clone(),
                    "topics" => next.topics = fields.topics.clone(),
                    "rotation" => next.rotation = fields.rotation.clone(),
                    "version_aliases" | "versionAliases" => {
                        next.version_aliases = fields.version_aliases.clone()
                    }
                    "version_destroy_ttl" | "versionDestroyTtl" => {
                        next.version_destroy_ttl = fields.version_destroy_ttl
                    }
                    "expire_time" | "expireTime" | "ttl" => {
                        next.expire_time = expire_time(fields.expiration.clone(), now)?
                    }
                    "customer_managed_encryption" | "customerManagedEncryption" => {
                        next.customer_managed_encryption =
                            fields.customer_managed_encryption.clone()
                    }
                    "replication" => {
                        return Err(StateError::invalid(
                            "Secret.replication cannot be updated after the secret is created.",
                        ));
                    }
                    other => {
                        return Err(StateError::invalid(format!(
                            "The update_mask path [{other}] is not a field of Secret that can \
                             be updated."
                        )));
                    }
                }
            }
            validate_labels(&next.labels)?;
            validate_annotations(&next.annotations)?;
            validate_aliases(&next.version_aliases, &entry.versions)?;
            next.etag = etag_at(now);
            Ok((next.clone(), vec![Record::PutSecret { secret: next }]))
        })
    }

    /// Deletes a secret and all its versions; `etag`, when sent, must be current.
    pub fn delete_secret(&self, secret: &SecretRef<'_>, etag: Option<&str>) -> StateResult<()> {
        let now = Utc::now();
        self.commit(|data| {
            let entry = data.secret_entry(secret, now)?;
            check_etag(etag, &entry.secret.etag)?;
            Ok((
                (),
                vec![Record::DeleteSecret {
                    name: entry.secret.name.to_string(),
                }],
            ))
        })
    }

    /// Adds a version holding `payload`; `crc32c`, when sent, must match it.
    pub fn add_version(
        &self,
        secret: &SecretRef<'_>,
        payload: Vec<u8>,
        crc32c: Option<i64>,
    ) -> StateResult<SecretVersion> {
        if payload.len() > MAX_PAYLOAD_BYTES {
            return Err(StateError::invalid(format!(
                "Secret payload is {} bytes; a SecretVersion payload must be at most 65536 \
                 bytes (64 KiB).",
                payload.len()
            )));
        }
        if let Some(sent) = crc32c
            && sent != i64::from(crc32c::crc32c(&payload))
        {
            return Err(StateError::invalid(
                "Checksum mismatch: the data_crc32c sent does not match the CRC32C of the \
                 payload data. The data may have been corrupted in transit.",
            ));
        }
        let now = Utc::now();
        self.commit(|data| {
            let entry = data.secret_entry(secret, now)?;
            let number = entry.versions.keys().next_back().map_or(1, |n| n + 1);
            let version = SecretVersion {
                secret: entry.secret.name.clone(),
                number,
                create_time: now,
                state: VersionState::Enabled,
                payload,
                client_specified_payload_checksum: crc32c.is_some(),
                destroy_time: None,
                scheduled_destroy_time: None,
                etag: etag_at(now),
            };
            Ok((version.clone(), vec![Record::PutVersion { version }]))
        })
    }

    /// Reads a version's metadata; `version` is a number, `latest` or an alias.
    pub fn get_version(&self, secret: &SecretRef<'_>, version: &str) -> StateResult<SecretVersion> {
        let now = Utc::now();
        self.read(|data| {
            let entry = data.secret_entry(secret, now)?;
            Ok(Data::resolve_version(entry, version)?.at(now))
        })
    }

    /// Reads a version with its payload; only an ENABLED version may be accessed.
    pub fn access_version(
        &self,
        secret: &SecretRef<'_>,
        version: &str,
    ) -> StateResult<SecretVersion> {
        let version = self.get_version(secret, version)?;
        match version.state {
            VersionState::Enabled => Ok(version),
            state => Err(StateError::precondition(format!(
                "Secret Version [{}] is in {} state.",
                version.name(),
                state.as_str()
            ))),
        }
    }

    /// Lists a secret's versions, newest first.
    pub fn list_versions(
        &self,
        secret: &SecretRef<'_>,
        filter: &Filter,
        page: &PageRequest,
    ) -> StateResult<Page<SecretVersion>> {
        let now = Utc::now();
        let items = self.read(|data| -> StateResult<Vec<(String, SecretVersion)>> {
            let entry = data.secret_entry(secret, now)?;
            Ok(entry
                .versions
                .values()
                .rev()
                .map(|v| v.at(now))
                .filter(|v| filter.matches(v))
                .map(|v| (v.number.to_string(), v))
                .collect())
        })?;
        paginate(items, page, 25_000, 25_000)
    }

    /// Enables a DISABLED version; a destroyed one cannot come back.
    pub fn enable_version(
        &self,
        secret: &SecretRef<'_>,
        version: &str,
        etag: Option<&str>,
    ) -> StateResult<SecretVersion> {
        self.change_version(secret, version, etag, |v, _, now| {
            if v.state == VersionState::Destroyed {
                return Err(destroyed(&v));
            }
            Ok(SecretVersion {
                state: VersionState::Enabled,
                scheduled_destroy_time: None,
                etag: etag_at(now),
                ..v
            })
        })
    }

    /// Disables a version: it keeps its payload but cannot be accessed.
    pub fn disable_version(
        &self,
        secret: &SecretRef<'_>,
        version: &str,
        etag: Option<&str>,
    ) -> StateResult<SecretVersion> {
        self.change_version(secret, version, etag, |v, _, now| {
            if v.state == VersionState::Destroyed {
                return Err(destroyed(&v));
            }
            Ok(SecretVersion {
                state: VersionState::Disabled,
                etag: etag_at(now),
                ..v
            })
        })
    }

    /// Destroys a version's payload for good, or schedules it when the secret has a destroy TTL.
    pub fn destroy_version(
        &self,
        secret: &SecretRef<'_>,
        version: &str,
        etag: Option<&str>,
    ) -> StateResult<SecretVersion> {
        self.change_version(secret, version, etag, |v, parent, now| {
            if v.state == VersionState::Destroyed {
                return Err(destroyed(&v));
            }
            match parent
                .version_destroy_ttl
                .and_then(|ttl| chrono::Duration::from_std(ttl).ok())
            {
                Some(ttl) if !ttl.is_zero() => Ok(SecretVersion {
                    state: VersionState::Disabled,
                    scheduled_destroy_time: Some(now + ttl),
                    etag: etag_at(now),
                    ..v
                }),
                _ => Ok(v.destroyed(now)),
            }
        })
    }

    fn change_version(
        &self,
        secret: &SecretRef<'_>,
        version: &str,
        etag: Option<&str>,
        change: impl FnOnce(SecretVersion, &Secret, DateTime<Utc>) -> StateResult<SecretVersion>,
    ) -> StateResult<SecretVersion> {
        let now = Utc::now();
        self.commit(|data| {
            let entry = data.secret_entry(secret, now)?;
            let current = Data::resolve_version(entry, version)?.at(now);
            check_etag(etag, &current.etag)?;
            let next = change(current, &entry.secret, now)?;
            let mut records = vec![Record::PutVersion {
                version: next.clone(),
            }];
            if next.state == VersionState::Destroyed
                && entry
                    .secret
                    .version_aliases
                    .values()
                    .any(|n| *n == next.number as i64)
            {
                let mut secret = entry.secret.clone();
                secret
                    .version_aliases
                    .retain(|_, n| *n != next.number as i64);
                records.push(Record::PutSecret { secret });
            }
            Ok((next, records))
        })
    }

    /// The IAM policy of a secret.
    pub fn secret_policy(&self, secret: &SecretRef<'_>) -> StateResult<Policy> {
        let now = Utc::now();
        self.read(|data| {
            let entry = data.secret_entry(secret, now)?;
            Ok(data.policy(&entry.secret.name.to_string()))
        })
    }

    /// Replaces the IAM policy of a secret.
    pub fn set_secret_policy(
        &self,
        secret: &SecretRef<'_>,
        update: PolicyUpdate,
    ) -> StateResult<Policy> {
        let now = Utc::now();
        self.commit(|data| {
            let entry = data.secret_entry(secret, now)?;
            data.set_policy(&entry.secret.name.to_string(), update)
        })
    }

    /// Whether `member` (e.g. `serviceAccount:x@p.iam.gserviceaccount.com`) may read the
    /// secret's versions: it holds the Secret Accessor role, or one that includes it, on the
    /// secret. (The emulator keeps no project-level policies.)
    pub fn may_access_secret(&self, secret: &SecretRef<'_>, member: &str) -> StateResult<bool> {
        const GRANTING: &[&str] = &[
            "roles/secretmanager.secretAccessor",
            "roles/secretmanager.admin",
            "roles/owner",
        ];
        let policy = self.secret_policy(secret)?;
        Ok(policy.bindings.iter().any(|b| {
            b.condition.is_none()
                && GRANTING.contains(&b.role.as_str())
                && b.members.iter().any(|m| m == member || m == "allUsers")
        }))
    }

    /// The permissions of `requested` the caller holds on a secret (all of them: no caller identity).
    pub fn test_secret_permissions(
        &self,
        secret: &SecretRef<'_>,
        requested: &[String],
    ) -> StateResult<Vec<String>> {
        self.get_secret(secret)?;
        iam::known_permissions(requested, &["secretmanager"])
    }

    /// Removes secrets whose expiry passed and destroys versions whose scheduled time came.
    pub fn sweep_secrets(&self) -> StateResult<usize> {
        let now = Utc::now();
        let due = self.read(|data| {
            data.secrets.values().any(|e| {
                e.secret.expire_time.is_some_and(|t| t <= now)
                    || e.versions.values().any(|v| {
                        v.state != VersionState::Destroyed
                            && v.scheduled_destroy_time.is_some_and(|t| t <= now)
                    })
            })
        });
        if !due {
            return Ok(0);
        }
        self.commit(|data| {
            let mut records = Vec::new();
            for entry in data.secrets.values() {
                if entry.secret.expire_time.is_some_and(|t| t <= now) {
                    records.push(Record::DeleteSecret {
                        name: entry.secret.name.to_string(),
                    });
                    continue;
                }
                for version in entry.versions.values() {
                    let current = version.at(now);
                    if current.state != version.state {
                        records.push(Record::PutVersion { version: current });
                    }
                }
            }
            Ok((records.len(), records))
        })
    }
}

fn destroyed(version: &SecretVersion) -> StateError {
    StateError::precondition(format!(
        "Secret Version [{}] is in DESTROYED state.",
        version.name()
    ))
}

fn expire_time(
    expiration: Option<Expiration>,
    now: DateTime<Utc>,
) -> StateResult<Option<DateTime<Utc>>> {
    let at = match expiration {
        None => return Ok(None),
        Some(Expiration::At(at)) => at,
        Some(Expiration::Ttl(ttl)) => {
            now + chrono::Duration::from_std(ttl)
                .map_err(|_| StateError::invalid("Secret.ttl is too large."))?
        }
    };
    if at <= now {
        return Err(StateError::invalid(
            "Secret.expire_time must be in the future.",
        ));
    }
    Ok(Some(at))
}
