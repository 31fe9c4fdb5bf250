//! Cloud SQL's JSON messages (`sql#instance`, `sql#database`, `sql#user`, `sql#operation`), read
//! leniently (clients echo output fields back) and written with the `kind`s Google returns.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde_json::{Value, json};

use crate::error::ApiError;
use crate::state::sql::{
    InstanceSettings, NewInstance, OperationStatus, SettingsPatch, SqlDatabase, SqlInstance,
    SqlOperation, SqlUser,
};
use crate::wire;

fn text(body: &Value, field: &str) -> Result<Option<String>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(ApiError::invalid(format!(
            "Invalid JSON payload received. Invalid value at '{field}' (TYPE_STRING), {other}"
        ))),
    }
}

fn int64(body: &Value, field: &str) -> Result<Option<i64>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => serde_json::from_value::<wire::Int64>(value.clone())
            .map(|n| Some(n.0))
            .map_err(|_| {
                ApiError::invalid(format!(
                    "Invalid JSON payload received. Invalid value at '{field}' (TYPE_INT64), \
                     {value}"
                ))
            }),
    }
}

fn boolean(body: &Value, field: &str) -> Result<Option<bool>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(ApiError::invalid(format!(
            "Invalid JSON payload received. Invalid value at '{field}' (TYPE_BOOL), {other}"
        ))),
    }
}

fn object<'a>(body: &'a Value, field: &str) -> Result<Option<&'a Value>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(value @ Value::Object(_)) => Ok(Some(value)),
        Some(other) => Err(ApiError::invalid(format!(
            "Invalid JSON payload received. Invalid value at '{field}', {other} is not an object"
        ))),
    }
}

fn require_object(body: &Value) -> Result<(), ApiError> {
    if body.is_object() {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "Invalid JSON payload received. The request body must be a JSON object.",
        ))
    }
}

fn labels(settings: &Value) -> Result<Option<BTreeMap<String, String>>, ApiError> {
    match object(settings, "userLabels")? {
        None => Ok(None),
        Some(map) => serde_json::from_value(map.clone()).map(Some).map_err(|_| {
            ApiError::invalid(
                "Invalid JSON payload received. settings.userLabels values must be strings.",
            )
        }),
    }
}

/// The `settings` fields of a request, every one optional.
pub(super) fn settings_patch(body: &Value) -> Result<SettingsPatch, ApiError> {
    require_object(body)?;
    let mut patch = SettingsPatch {
        database_version: text(body, "databaseVersion")?,
        ..Default::default()
    };
    let Some(settings) = object(body, "settings")? else {
        return Ok(patch);
    };
    patch.tier = text(settings, "tier")?;
    patch.data_disk_size_gb = int64(settings, "dataDiskSizeGb")?;
    patch.data_disk_type = text(settings, "dataDiskType")?;
    patch.activation_policy = text(settings, "activationPolicy")?;
    patch.availability_type = text(settings, "availabilityType")?;
    patch.deletion_protection = boolean(settings, "deletionProtectionEnabled")?;
    patch.user_labels = labels(settings)?;
    if let Some(backup) = object(settings, "backupConfiguration")? {
        patch.backup_enabled = boolean(backup, "enabled")?;
    }
    Ok(patch)
}

/// Reads an `instances.insert` body.
pub(super) fn new_instance(body: &Value) -> Result<NewInstance, ApiError> {
    let patch = settings_patch(body)?;
    let name = text(body, "name")?
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::invalid("Invalid request: instance name is required."))?;
    Ok(NewInstance {
        name,
        region: text(body, "region")?,
        database_version: patch.database_version,
        root_password: text(body, "rootPassword")?,
        settings: InstanceSettings {
            tier: patch.tier.unwrap_or_default(),
            data_disk_size_gb: patch.data_disk_size_gb.unwrap_or_default(),
            data_disk_type: patch.data_disk_type.unwrap_or_default(),
            availability_type: patch.availability_type.unwrap_or_default(),
            activation_policy: patch.activation_policy.unwrap_or_default(),
            pricing_plan: String::new(),
            backup_enabled: patch.backup_enabled.unwrap_or(true),
            deletion_protection: patch.deletion_protection.unwrap_or(false),
            user_labels: patch.user_labels.unwrap_or_default(),
        },
    })
}

/// Reads a `databases.insert` body.
pub(super) fn new_database(body: &Value) -> Result<SqlDatabase, ApiError> {
    require_object(body)?;
    let name = text(body, "name")?
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::invalid("Invalid request: database name is required."))?;
    let charset = text(body, "charset")?.unwrap_or_else(|| "UTF8".into());
    if !charset.eq_ignore_ascii_case("UTF8") && !charset.eq_ignore_ascii_case("UTF-8") {
        return Err(ApiError::invalid(format!(
            "Invalid request: charset {charset} is not supported by this emulator (UTF8)."
        )));
    }
    Ok(SqlDatabase {
        name,
        charset: "UTF8".into(),
        collation: text(body, "collation")?.unwrap_or_else(|| "en_US.UTF8".into()),
    })
}

/// Reads a `users.insert` body: the user and its password.
pub(super) fn new_user(body: &Value) -> Result<(SqlUser, Option<String>), ApiError> {
    require_object(body)?;
    let name = text(body, "name")?
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::invalid("Invalid request: user name is required."))?;
    let user_type = text(body, "type")?
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "BUILT_IN".into());
    Ok((SqlUser { name, user_type }, text(body, "password")?))
}

fn self_link(addr: &SocketAddr, path: &str) -> String {
    format!("http://{addr}/sql/v1beta4/{path}")
}

/// An instance as `sql#instance`; `dnsName` and the emulator-only `emulatorAddress` say where
/// its server is published (`127.0.0.1:PORT`).
pub(super) fn instance(addr: &SocketAddr, instance: &SqlInstance) -> Value {
    let path = format!("projects/{}/instances/{}", instance.project, instance.name);
    let s = &instance.settings;
    let mut settings = json!({
        "kind": "sql#settings",
        "tier": s.tier,
        "dataDiskSizeGb": s.data_disk_size_gb.to_string(),
        "dataDiskType": s.data_disk_type,
        "availabilityType": s.availability_type,
        "activationPolicy": s.activation_policy,
        "pricingPlan": s.pricing_plan,
        "replicationType": "SYNCHRONOUS",
        "settingsVersion": instance.settings_version.to_string(),
        "storageAutoResize": true,
        "deletionProtectionEnabled": s.deletion_protection,
        "backupConfiguration": {
            "kind": "sql#backupConfiguration",
            "enabled": s.backup_enabled,
            "startTime": "00:00",
        },
        "ipConfiguration": {"ipv4Enabled": true, "sslMode": "ALLOW_UNENCRYPTED_AND_ENCRYPTED"},
        "locationPreference": {"kind": "sql#locationPreference", "zone": instance.zone()},
    });
    if !s.user_labels.is_empty() {
        settings["userLabels"] = json!(s.user_labels);
    }
    let mut out = json!({
        "kind": "sql#instance",
        "name": instance.name,
        "project": instance.project,
        "region": instance.region,
        "gceZone": instance.zone(),
        "connectionName": instance.connection_name(),
        "databaseVersion": instance.database_version,
        "databaseInstalledVersion": instance.database_version,
        "state": instance.state.as_str(),
        "backendType": "SECOND_GEN",
        "instanceType": "CLOUD_SQL_INSTANCE",
        "createTime": wire::timestamp(instance.create_time),
        "etag": format!("{:x}", instance.settings_version),
        "selfLink": self_link(addr, &path),
        "serviceAccountEmailAddress": format!(
            "p{}-emulator@gcp-sa-cloud-sql.iam.gserviceaccount.com",
            crate::state::projects::number_for(&instance.project)
        ),
        "settings": settings,
        "ipAddresses": [{"type": "PRIMARY", "ipAddress": "127.0.0.1"}],
    });
    if let Some(port) = instance.host_port {
        // gcloud keeps only the fields it knows: `dnsName` carries the address for it.
        out["emulatorAddress"] = json!(format!("127.0.0.1:{port}"));
        out["dnsName"] = json!(format!("127.0.0.1:{port}"));
    }
    out
}

/// A database as `sql#database`.
pub(super) fn database(instance: &SqlInstance, database: &SqlDatabase) -> Value {
    json!({
        "kind": "sql#database",
        "name": database.name,
        "charset": database.charset,
        "collation": database.collation,
        "instance": instance.name,
        "project": instance.project,
        "etag": format!("{:x}", instance.settings_version),
        "selfLink": format!(
            "projects/{}/instances/{}/databases/{}",
            instance.project, instance.name, database.name
        ),
    })
}

/// A user as `sql#user` (never with its password).
pub(super) fn user(instance: &SqlInstance, user: &SqlUser) -> Value {
    json!({
        "kind": "sql#user",
        "name": user.name,
        "host": "",
        "type": user.user_type,
        "instance": instance.name,
        "project": instance.project,
        "etag": "",
    })
}

/// An operation as `sql#operation`.
pub(super) fn operation(addr: &SocketAddr, operation: &SqlOperation) -> Value {
    let mut out = json!({
        "kind": "sql#operation",
        "name": operation.id,
        "operationType": operation.action.operation_type(),
        "status": operation.status.as_str(),
        "targetId": operation.instance,
        "targetProject": operation.project,
        "targetLink": self_link(
            addr,
            &format!("projects/{}/instances/{}", operation.project, operation.instance)
        ),
        "selfLink": self_link(
            addr,
            &format!("projects/{}/operations/{}", operation.project, operation.id)
        ),
        "user": "emulator@cloudrun-emulator.local",
        "insertTime": wire::timestamp(operation.insert_time),
    });
    if let Some(start) = operation.start_time {
        out["startTime"] = json!(wire::timestamp(start));
    }
    if let Some(end) = operation.end_time {
        out["endTime"] = json!(wire::timestamp(end));
    }
    if let Some(error) = &operation.error
        && operation.status == OperationStatus::Done
    {
        out["error"] = json!({
            "kind": "sql#operationErrors",
            "errors": [{"kind": "sql#operationError", "code": error.code, "message": error.message}],
        });
    }
    out
}
