//! IAM policies on resources: validation, etags and read-modify-write rules shared by every API.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use serde::{Deserialize, Serialize};

use super::{Data, Record, StateError, StateResult};

/// A resource's IAM policy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    pub version: i32,
    pub bindings: Vec<Binding>,
    /// Opaque bytes; clients send them back to detect concurrent changes.
    pub etag: Vec<u8>,
    #[serde(default)]
    pub audit_configs: Vec<serde_json::Value>,
}

/// One role granted to a list of members, optionally under a condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Binding {
    pub role: String,
    pub members: Vec<String>,
    pub condition: Option<Condition>,
}

/// A CEL condition on a binding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    pub expression: String,
    pub title: Option<String>,
    pub description: Option<String>,
    pub location: Option<String>,
}

/// What `setIamPolicy` asks for.
#[derive(Debug, Clone, Default)]
pub struct PolicyUpdate {
    pub policy: Policy,
    /// Whether the client sent an etag (an empty one is still "sent").
    pub etag_sent: bool,
    /// `updateMask` paths; empty means `bindings,etag`.
    pub update_mask: Vec<String>,
}

/// The etag Google returns for a resource that never had a policy.
const EMPTY_POLICY_ETAG: &[u8] = &[0x00, 0x20, 0x01];

/// Decodes an etag as clients send it back: standard or URL-safe base64.
pub fn decode_etag(text: &str) -> StateResult<Vec<u8>> {
    STANDARD
        .decode(text)
        .or_else(|_| URL_SAFE.decode(text))
        .map_err(|_| StateError::invalid(format!("Invalid value at 'policy.etag' ({text}).")))
}

/// Encodes an etag for the wire.
pub fn encode_etag(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

fn valid_member(member: &str) -> bool {
    if member == "allUsers" || member == "allAuthenticatedUsers" {
        return true;
    }
    let Some((kind, rest)) = member.split_once(':') else {
        return false;
    };
    let rest = rest.split("?uid=").next().unwrap_or(rest);
    match kind {
        "user" | "serviceAccount" | "group" => rest
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.')),
        "domain" => rest.contains('.'),
        "principal" | "principalSet" => rest.starts_with("//"),
        "deleted" => rest.contains(':'),
        "projectOwner" | "projectEditor" | "projectViewer" => !rest.is_empty(),
        _ => false,
    }
}

fn valid_role(role: &str) -> bool {
    let custom = |prefix: &str| {
        role.strip_prefix(prefix)
            .and_then(|rest| rest.split_once("/roles/"))
            .is_some_and(|(owner, name)| !owner.is_empty() && !name.is_empty())
    };
    role.strip_prefix("roles/").is_some_and(|r| !r.is_empty())
        || custom("projects/")
        || custom("organizations/")
}

/// Checks a policy as Google does and returns it normalised (members deduplicated and sorted).
fn validate(mut policy: Policy) -> StateResult<Policy> {
    if !matches!(policy.version, 0 | 1 | 3) {
        return Err(StateError::invalid(format!(
            "Invalid policy version {}: only 1 and 3 are valid.",
            policy.version
        )));
    }
    let mut bindings: Vec<Binding> = Vec::new();
    for mut binding in policy.bindings {
        if !valid_role(&binding.role) {
            return Err(StateError::invalid(format!(
                "Role ({}) does not exist in the resource's hierarchy.",
                binding.role
            )));
        }
        if let Some(bad) = binding.members.iter().find(|m| !valid_member(m)) {
            return Err(StateError::invalid(format!(
                "Invalid member type or format in member '{bad}'"
            )));
        }
        if binding
            .condition
            .as_ref()
            .is_some_and(|c| c.expression.trim().is_empty())
        {
            return Err(StateError::invalid(
                "Condition expression must not be empty.",
            ));
        }
        binding.members.sort();
        binding.members.dedup();
        if binding.members.is_empty() {
            continue;
        }
        match bindings
            .iter_mut()
            .find(|b| b.role == binding.role && b.condition == binding.condition)
        {
            Some(existing) => {
                existing.members.extend(binding.members);
                existing.members.sort();
                existing.members.dedup();
            }
            None => bindings.push(binding),
        }
    }
    let conditional = bindings.iter().any(|b| b.condition.is_some());
    if conditional && policy.version != 3 {
        return Err(StateError::invalid(
            "Conditional role bindings require policy version 3.",
        ));
    }
    policy.version = if conditional { 3 } else { 1 };
    policy.bindings = bindings;
    Ok(policy)
}

impl Data {
    /// The stored policy of a resource, or the empty policy Google returns for it.
    pub(crate) fn policy(&self, resource: &str) -> Policy {
        self.policies.get(resource).cloned().unwrap_or(Policy {
            version: 1,
            etag: EMPTY_POLICY_ETAG.to_vec(),
            ..Policy::default()
        })
    }

    /// Validates a `setIamPolicy` against the stored policy; returns the new policy and its record.
    pub(crate) fn set_policy(
        &self,
        resource: &str,
        update: PolicyUpdate,
    ) -> StateResult<(Policy, Vec<Record>)> {
        let current = self.policy(resource);
        if update.etag_sent && update.policy.etag != current.etag {
            return Err(StateError::Aborted(
                "There were concurrent policy changes. Please retry the whole read-modify-write \
                 with exponential backoff."
                    .into(),
            ));
        }
        let mut next = current.clone();
        let mask: Vec<&str> = if update.update_mask.is_empty() {
            vec!["bindings", "etag"]
        } else {
            update.update_mask.iter().map(String::as_str).collect()
        };
        for path in mask {
            match path {
                "bindings" => {
                    next.bindings = update.policy.bindings.clone();
                    next.version = update.policy.version;
                }
                "etag" | "version" => {}
                "audit_configs" | "auditConfigs" => {
                    next.audit_configs = update.policy.audit_configs.clone()
                }
                other => {
                    return Err(StateError::invalid(format!(
                        "Invalid update_mask path [{other}]: policies update bindings, etag and \
                         audit_configs."
                    )));
                }
            }
        }
        let mut next = validate(next)?;
        next.etag = rand::random::<[u8; 8]>().to_vec();
        Ok((
            next.clone(),
            vec![Record::PutPolicy {
                resource: resource.to_string(),
                policy: next,
            }],
        ))
    }
}

/// The permissions of `requested` that exist on a resource of the given services (`secretmanager`).
pub fn known_permissions(requested: &[String], services: &[&str]) -> StateResult<Vec<String>> {
    for permission in requested {
        let parts: Vec<&str> = permission.split('.').collect();
        let well_formed = parts.len() == 3
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric()));
        if !well_formed {
            return Err(StateError::invalid(format!(
                "Permission {permission} is not valid."
            )));
        }
    }
    Ok(requested
        .iter()
        .filter(|p| services.iter().any(|s| p.split('.').next() == Some(*s)))
        .cloned()
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(role: &str, members: &[&str]) -> Binding {
        Binding {
            role: role.into(),
            members: members.iter().map(|m| m.to_string()).collect(),
            condition: None,
        }
    }

    fn update(bindings: Vec<Binding>, etag: Option<Vec<u8>>) -> PolicyUpdate {
        PolicyUpdate {
            etag_sent: etag.is_some(),
            policy: Policy {
                version: 3,
                bindings,
                etag: etag.unwrap_or_default(),
                audit_configs: vec![],
            },
            update_mask: vec![],
        }
    }

    #[test]
    fn read_modify_write_with_a_stale_etag_is_aborted() {
        let mut data = Data::default();
        let first = data.policy("r");
        let (policy, records) = data
            .set_policy(
                "r",
                update(
                    vec![binding("roles/viewer", &["allUsers"])],
                    Some(first.etag.clone()),
                ),
            )
            .expect("first write");
        records.into_iter().for_each(|r| data.apply(r));
        assert_eq!(data.policy("r"), policy);
        let stale = data.set_policy("r", update(vec![], Some(first.etag)));
        assert!(matches!(stale, Err(StateError::Aborted(_))));
    }

    #[test]
    fn members_are_validated_and_merged() {
        let data = Data::default();
        let bad = data.set_policy("r", update(vec![binding("roles/x", &["bob"])], None));
        assert!(matches!(bad, Err(StateError::InvalidArgument(_))));
        let (policy, _) = data
            .set_policy(
                "r",
                update(
                    vec![
                        binding("roles/x", &["user:b@example.com", "user:a@example.com"]),
                        binding("roles/x", &["user:a@example.com"]),
                    ],
                    None,
                ),
            )
            .expect("valid");
        assert_eq!(policy.bindings.len(), 1);
        assert_eq!(
            policy.bindings[0].members,
            vec!["user:a@example.com", "user:b@example.com"]
        );
    }

    #[test]
    fn etags_round_trip_in_either_base64_alphabet() {
        let bytes = vec![0x06, 0x4f, 0x43, 0x1b, 0x94, 0x43, 0x2b, 0xfb];
        assert_eq!(decode_etag(&encode_etag(&bytes)).expect("standard"), bytes);
        assert_eq!(decode_etag("Bk9DG5RDK_s=").expect("url-safe"), bytes);
    }
}
