//! Secret Manager v1 messages as JSON, and their mapping to the state layer's types.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::state::secrets::{
    Expiration, Replica, Replication, Rotation, Secret, SecretFields, SecretVersion,
};
use crate::wire::{self, Int64};

/// `Secret`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretJson {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication: Option<ReplicationJson>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_time: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topics: Vec<TopicJson>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expire_time: Option<String>,
    #[serde(default, skip_serializing)]
    pub ttl: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<RotationJson>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub version_aliases: BTreeMap<String, Int64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_destroy_ttl: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_managed_encryption: Option<KmsKeyJson>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

/// `Replication`: exactly one of its fields is set.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplicationJson {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automatic: Option<AutomaticJson>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_managed: Option<UserManagedJson>,
}

/// `Replication.Automatic`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AutomaticJson {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_managed_encryption: Option<KmsKeyJson>,
}

/// `Replication.UserManaged`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserManagedJson {
    #[serde(default)]
    pub replicas: Vec<ReplicaJson>,
}

/// `Replication.UserManaged.Replica`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplicaJson {
    #[serde(default)]
    pub location: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_managed_encryption: Option<KmsKeyJson>,
}

/// `CustomerManagedEncryption`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KmsKeyJson {
    #[serde(default)]
    pub kms_key_name: String,
}

/// `Topic`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TopicJson {
    #[serde(default)]
    pub name: String,
}

/// `Rotation`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RotationJson {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_rotation_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_period: Option<String>,
}

/// `SecretPayload`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PayloadJson {
    #[serde(default)]
    pub data: Option<String>,
    #[serde(default)]
    pub data_crc32c: Option<Int64>,
}

/// The body of `addVersion`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddVersionRequest {
    pub payload: Option<PayloadJson>,
    /// Echo of the path; the path decides.
    #[serde(default, rename = "parent")]
    _parent: Option<IgnoredAny>,
}

/// The body of `enable`, `disable` and `destroy`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VersionChangeRequest {
    #[serde(default)]
    pub etag: Option<String>,
    /// Echo of the path; the path decides.
    #[serde(default, rename = "name")]
    _name: Option<IgnoredAny>,
}

impl SecretJson {
    /// The fields a client sent, validated for form (the state layer checks the rules).
    pub fn into_fields(self) -> Result<SecretFields, ApiError> {
        let expiration = match (self.expire_time, self.ttl) {
            (Some(_), Some(_)) => {
                return Err(ApiError::invalid(
                    "Only one of Secret.expire_time and Secret.ttl may be set.",
                ));
            }
            (Some(at), None) => Some(Expiration::At(wire::parse_timestamp("expire_time", &at)?)),
            (None, Some(ttl)) => Some(Expiration::Ttl(wire::parse_duration("ttl", &ttl)?)),
            (None, None) => None,
        };
        let replication = match self.replication {
            None => None,
            Some(ReplicationJson {
                automatic: Some(_),
                user_managed: Some(_),
            }) => {
                return Err(ApiError::invalid(
                    "Only one of Replication.automatic and Replication.user_managed may be set.",
                ));
            }
            Some(ReplicationJson {
                automatic: Some(auto),
                ..
            }) => Some(Replication::Automatic {
                kms_key_name: auto.customer_managed_encryption.map(|k| k.kms_key_name),
            }),
            Some(ReplicationJson {
                user_managed: Some(user),
                ..
            }) => Some(Replication::UserManaged {
                replicas: user
                    .replicas
                    .into_iter()
                    .map(|r| Replica {
                        location: r.location,
                        kms_key_name: r.customer_managed_encryption.map(|k| k.kms_key_name),
                    })
                    .collect(),
            }),
            Some(_) => {
                return Err(ApiError::invalid(
                    "Secret.replication must set automatic or user_managed.",
                ));
            }
        };
        let rotation = self
            .rotation
            .map(|r| -> Result<Rotation, ApiError> {
                Ok(Rotation {
                    next_rotation_time: r
                        .next_rotation_time
                        .map(|t| wire::parse_timestamp("rotation.next_rotation_time", &t))
                        .transpose()?,
                    rotation_period: r
                        .rotation_period
                        .map(|p| wire::parse_duration("rotation.rotation_period", &p))
                        .transpose()?,
                })
            })
            .transpose()?;
        Ok(SecretFields {
            labels: self.labels,
            annotations: self.annotations,
            replication,
            topics: self.topics.into_iter().map(|t| t.name).collect(),
            expiration,
            rotation,
            version_aliases: self
                .version_aliases
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect(),
            version_destroy_ttl: self
                .version_destroy_ttl
                .map(|t| wire::parse_duration("version_destroy_ttl", &t))
                .transpose()?,
            customer_managed_encryption: self.customer_managed_encryption.map(|k| k.kms_key_name),
            tags: self.tags,
            etag: self.etag,
        })
    }
}

impl From<&Secret> for SecretJson {
    fn from(secret: &Secret) -> Self {
        let kms =
            |key: &Option<String>| key.clone().map(|kms_key_name| KmsKeyJson { kms_key_name });
        SecretJson {
            name: Some(secret.name.to_string()),
            replication: secret.replication.as_ref().map(|r| match r {
                Replication::Automatic { kms_key_name } => ReplicationJson {
                    automatic: Some(AutomaticJson {
                        customer_managed_encryption: kms(kms_key_name),
                    }),
                    user_managed: None,
                },
                Replication::UserManaged { replicas } => ReplicationJson {
                    automatic: None,
                    user_managed: Some(UserManagedJson {
                        replicas: replicas
                            .iter()
                            .map(|r| ReplicaJson {
                                location: r.location.clone(),
                                customer_managed_encryption: kms(&r.kms_key_name),
                            })
                            .collect(),
                    }),
                },
            }),
            create_time: Some(wire::timestamp(secret.create_time)),
            labels: secret.labels.clone(),
            topics: secret
                .topics
                .iter()
                .map(|name| TopicJson { name: name.clone() })
                .collect(),
            expire_time: secret.expire_time.map(wire::timestamp),
            ttl: None,
            etag: Some(secret.etag.clone()),
            rotation: secret.rotation.as_ref().map(|r| RotationJson {
                next_rotation_time: r.next_rotation_time.map(wire::timestamp),
                rotation_period: r.rotation_period.map(wire::duration),
            }),
            version_aliases: secret
                .version_aliases
                .iter()
                .map(|(k, v)| (k.clone(), Int64(*v)))
                .collect(),
            annotations: secret.annotations.clone(),
            version_destroy_ttl: secret.version_destroy_ttl.map(wire::duration),
            customer_managed_encryption: kms(&secret.customer_managed_encryption),
            tags: secret.tags.clone(),
        }
    }
}

/// A `SecretVersion` as JSON; `enum_ints` writes the state as its number.
pub fn version_json(
    version: &SecretVersion,
    replication: Option<&Replication>,
    enum_ints: bool,
) -> Value {
    let mut out = json!({
        "name": version.name(),
        "createTime": wire::timestamp(version.create_time),
        "state": if enum_ints {
            json!(version.state.number())
        } else {
            json!(version.state.as_str())
        },
        "etag": version.etag,
        "clientSpecifiedPayloadChecksum": version.client_specified_payload_checksum,
    });
    if let Some(time) = version.destroy_time {
        out["destroyTime"] = json!(wire::timestamp(time));
    }
    if let Some(time) = version.scheduled_destroy_time {
        out["scheduledDestroyTime"] = json!(wire::timestamp(time));
    }
    match replication {
        Some(Replication::Automatic { .. }) => out["replicationStatus"] = json!({"automatic": {}}),
        Some(Replication::UserManaged { replicas }) => {
            out["replicationStatus"] = json!({"userManaged": {"replicas": replicas
                .iter()
                .map(|r| json!({"location": r.location}))
                .collect::<Vec<_>>()}});
        }
        None => {}
    }
    out
}

/// The answer of `access`: the payload, base64, with its CRC32C.
pub fn access_json(version: &SecretVersion) -> Value {
    json!({
        "name": version.name(),
        "payload": {
            "data": STANDARD.encode(&version.payload),
            "dataCrc32c": version.payload_crc32c().to_string(),
        }
    })
}

/// Decodes a payload's base64 `data`.
pub fn decode_payload(payload: PayloadJson) -> Result<(Vec<u8>, Option<i64>), ApiError> {
    let data = payload.data.unwrap_or_default();
    let bytes = STANDARD
        .decode(data.trim())
        .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(data.trim()))
        .map_err(|_| {
            ApiError::invalid(
                "Invalid value at 'payload.data' (TYPE_BYTES), Base64 decoding failed.",
            )
        })?;
    Ok((bytes, payload.data_crc32c.map(|c| c.0)))
}
