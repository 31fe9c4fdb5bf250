//! The v2 enums the emulator reads and writes. Requests may carry an enum as its name or its
//! number (`$alt=json;enum-encoding=int` clients send numbers); answers use the encoding the
//! client asked for.

use serde_json::{Value, json};

use crate::error::ApiError;

/// One enum: its proto name (for messages) and its values, names with numbers.
#[derive(Debug)]
pub struct EnumType {
    pub name: &'static str,
    pub values: &'static [(&'static str, i64)],
}

/// `google.cloud.run.v2.IngressTraffic`.
pub const INGRESS: EnumType = EnumType {
    name: "IngressTraffic",
    values: &[
        ("INGRESS_TRAFFIC_UNSPECIFIED", 0),
        ("INGRESS_TRAFFIC_ALL", 1),
        ("INGRESS_TRAFFIC_INTERNAL_ONLY", 2),
        ("INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER", 3),
        ("INGRESS_TRAFFIC_NONE", 4),
    ],
};

/// `google.api.LaunchStage`.
pub const LAUNCH_STAGE: EnumType = EnumType {
    name: "LaunchStage",
    values: &[
        ("LAUNCH_STAGE_UNSPECIFIED", 0),
        ("EARLY_ACCESS", 1),
        ("ALPHA", 2),
        ("BETA", 3),
        ("GA", 4),
        ("DEPRECATED", 5),
        ("UNIMPLEMENTED", 6),
        ("PRELAUNCH", 7),
    ],
};

/// `google.cloud.run.v2.TrafficTargetAllocationType`.
pub const TRAFFIC_TYPE: EnumType = EnumType {
    name: "TrafficTargetAllocationType",
    values: &[
        ("TRAFFIC_TARGET_ALLOCATION_TYPE_UNSPECIFIED", 0),
        ("TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", 1),
        ("TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", 2),
    ],
};

/// `google.cloud.run.v2.ExecutionEnvironment`.
pub const EXECUTION_ENVIRONMENT: EnumType = EnumType {
    name: "ExecutionEnvironment",
    values: &[
        ("EXECUTION_ENVIRONMENT_UNSPECIFIED", 0),
        ("EXECUTION_ENVIRONMENT_GEN1", 1),
        ("EXECUTION_ENVIRONMENT_GEN2", 2),
    ],
};

/// `google.cloud.run.v2.EmptyDirVolumeSource.Medium`.
pub const MEDIUM: EnumType = EnumType {
    name: "EmptyDirVolumeSource.Medium",
    values: &[("MEDIUM_UNSPECIFIED", 0), ("MEMORY", 1)],
};

/// `google.cloud.run.v2.Condition.State`.
pub const CONDITION_STATE: EnumType = EnumType {
    name: "Condition.State",
    values: &[
        ("STATE_UNSPECIFIED", 0),
        ("CONDITION_PENDING", 1),
        ("CONDITION_RECONCILING", 2),
        ("CONDITION_FAILED", 3),
        ("CONDITION_SUCCEEDED", 4),
    ],
};

/// `google.cloud.run.v2.Condition.Severity`.
pub const SEVERITY: EnumType = EnumType {
    name: "Condition.Severity",
    values: &[
        ("SEVERITY_UNSPECIFIED", 0),
        ("ERROR", 1),
        ("WARNING", 2),
        ("INFO", 3),
    ],
};

/// `google.cloud.run.v2.Condition.CommonReason`.
pub const COMMON_REASON: EnumType = EnumType {
    name: "Condition.CommonReason",
    values: &[
        ("COMMON_REASON_UNDEFINED", 0),
        ("UNKNOWN", 1),
        ("REVISION_FAILED", 3),
        ("PROGRESS_DEADLINE_EXCEEDED", 4),
        ("CONTAINER_MISSING", 6),
        ("CONTAINER_PERMISSION_DENIED", 7),
        ("CONTAINER_IMAGE_UNAUTHORIZED", 8),
        ("CONTAINER_IMAGE_AUTHORIZATION_CHECK_FAILED", 9),
        ("ENCRYPTION_KEY_PERMISSION_DENIED", 10),
        ("ENCRYPTION_KEY_CHECK_FAILED", 11),
        ("SECRETS_ACCESS_CHECK_FAILED", 12),
        ("WAITING_FOR_OPERATION", 13),
        ("IMMEDIATE_RETRY", 14),
        ("POSTPONED_RETRY", 15),
        ("INTERNAL", 16),
        ("VPC_NETWORK_NOT_FOUND", 17),
    ],
};

/// `google.cloud.run.v2.Condition.RevisionReason`.
pub const REVISION_REASON: EnumType = EnumType {
    name: "Condition.RevisionReason",
    values: &[
        ("REVISION_REASON_UNDEFINED", 0),
        ("PENDING", 1),
        ("RESERVE", 2),
        ("RETIRED", 3),
        ("RETIRING", 4),
        ("RECREATING", 5),
        ("HEALTH_CHECK_CONTAINER_ERROR", 6),
        ("CUSTOMIZED_PATH_RESPONSE_PENDING", 7),
        ("MIN_INSTANCES_NOT_PROVISIONED", 8),
        ("ACTIVE_REVISION_LIMIT_REACHED", 9),
        ("NO_DEPLOYMENT", 10),
        ("HEALTH_CHECK_SKIPPED", 11),
        ("MIN_INSTANCES_WARMING", 12),
    ],
};

impl EnumType {
    /// Reads an enum field sent as a name or a number; `None` when absent. Unknown values are
    /// refused, as Google's JSON parser refuses them.
    pub fn parse(
        &self,
        field: &str,
        value: Option<&Value>,
    ) -> Result<Option<&'static str>, ApiError> {
        let found = match value {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::String(name)) => self.values.iter().find(|(n, _)| n == name),
            Some(Value::Number(number)) => self
                .values
                .iter()
                .find(|(_, v)| number.as_i64() == Some(*v)),
            Some(_) => None,
        };
        found.map(|(name, _)| Some(*name)).ok_or_else(|| {
            ApiError::invalid(format!(
                "Invalid value at '{field}' (type.googleapis.com/google.cloud.run.v2.{}), {}",
                self.name,
                value.map(Value::to_string).unwrap_or_default()
            ))
        })
    }
}

/// How the client wants enums written: names (the default) or numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoding {
    pub ints: bool,
}

impl Encoding {
    /// A value of `kind` named `name`, in this encoding (a name not of `kind` is written as is).
    pub fn write(self, kind: &EnumType, name: &str) -> Value {
        match kind.values.iter().find(|(n, _)| *n == name) {
            Some((_, number)) if self.ints => json!(number),
            _ => json!(name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_are_read_and_unknowns_refused() {
        assert_eq!(
            INGRESS.parse("ingress", Some(&json!(1))).expect("number"),
            Some("INGRESS_TRAFFIC_ALL")
        );
        assert_eq!(
            INGRESS
                .parse("ingress", Some(&json!("INGRESS_TRAFFIC_NONE")))
                .expect("name"),
            Some("INGRESS_TRAFFIC_NONE")
        );
        assert!(INGRESS.parse("ingress", Some(&json!("ALL"))).is_err());
        assert!(INGRESS.parse("ingress", Some(&json!(99))).is_err());
        assert_eq!(INGRESS.parse("ingress", None).expect("absent"), None);
        assert_eq!(
            Encoding { ints: true }.write(&CONDITION_STATE, "CONDITION_SUCCEEDED"),
            json!(4)
        );
        assert_eq!(
            Encoding { ints: false }.write(&CONDITION_STATE, "CONDITION_SUCCEEDED"),
            json!("CONDITION_SUCCEEDED")
        );
    }
}
