//! The IAM policy messages (`getIamPolicy`, `setIamPolicy`, `testIamPermissions`) every API shares.

use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::state::iam::{self as rules, Binding, Condition, Policy, PolicyUpdate};

/// `google.iam.v1.Policy` as JSON.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyJson {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bindings: Vec<BindingJson>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audit_configs: Vec<serde_json::Value>,
}

/// `google.iam.v1.Binding` as JSON.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BindingJson {
    #[serde(default)]
    pub role: String,
    #[serde(default)]
    pub members: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<ExprJson>,
}

/// `google.type.Expr` as JSON.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExprJson {
    #[serde(default)]
    pub expression: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

/// The body of `setIamPolicy`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetIamPolicyRequest {
    pub policy: Option<PolicyJson>,
    #[serde(default)]
    pub update_mask: Option<String>,
}

/// The body of `testIamPermissions`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TestIamPermissionsRequest {
    #[serde(default)]
    pub permissions: Vec<String>,
}

/// The answer of `testIamPermissions`.
#[derive(Debug, Serialize)]
pub struct TestIamPermissionsResponse {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub permissions: Vec<String>,
}

impl From<Policy> for PolicyJson {
    fn from(policy: Policy) -> Self {
        PolicyJson {
            version: Some(policy.version),
            bindings: policy
                .bindings
                .into_iter()
                .map(|b| BindingJson {
                    role: b.role,
                    members: b.members,
                    condition: b.condition.map(|c| ExprJson {
                        expression: c.expression,
                        title: c.title,
                        description: c.description,
                        location: c.location,
                    }),
                })
                .collect(),
            etag: Some(rules::encode_etag(&policy.etag)),
            audit_configs: policy.audit_configs,
        }
    }
}

impl SetIamPolicyRequest {
    /// The state-layer update this request asks for.
    pub fn into_update(self) -> Result<PolicyUpdate, ApiError> {
        let policy = self.policy.ok_or_else(|| {
            ApiError::invalid("Request contains an invalid argument: policy is required.")
        })?;
        let etag = policy.etag.as_deref().map(rules::decode_etag).transpose()?;
        Ok(PolicyUpdate {
            etag_sent: etag.is_some(),
            policy: Policy {
                version: policy.version.unwrap_or(0),
                bindings: policy
                    .bindings
                    .into_iter()
                    .map(|b| Binding {
                        role: b.role,
                        members: b.members,
                        condition: b.condition.map(|c| Condition {
                            expression: c.expression,
                            title: c.title,
                            description: c.description,
                            location: c.location,
                        }),
                    })
                    .collect(),
                etag: etag.unwrap_or_default(),
                audit_configs: policy.audit_configs,
            },
            update_mask: super::split_mask(self.update_mask.as_deref()),
        })
    }
}
