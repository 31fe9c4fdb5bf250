//! Compute Engine's list filter as gcloud sends it: `field eq "RE2"` / `field ne "RE2"` terms,
//! optionally parenthesised and joined by `AND` or juxtaposition. A regex must match the whole
//! value.

use regex::Regex;
use serde_json::Value;

use crate::error::ApiError;

/// One `field eq|ne regex` term.
#[derive(Debug)]
struct Term {
    field: String,
    equal: bool,
    pattern: Regex,
}

/// A parsed Compute filter; empty matches everything.
#[derive(Debug, Default)]
pub struct ComputeFilter {
    terms: Vec<Term>,
}

impl ComputeFilter {
    /// Parses the `filter` parameter.
    pub fn parse(text: &str) -> Result<ComputeFilter, ApiError> {
        let invalid = |why: &str| {
            ApiError::invalid(format!("Invalid value for field 'filter': '{text}'. {why}"))
        };
        let mut terms = Vec::new();
        let mut rest = text.trim();
        while !rest.is_empty() {
            rest = rest.trim_start_matches('(').trim_start();
            let (field, after) = rest
                .split_once(char::is_whitespace)
                .ok_or_else(|| invalid("Expected 'field eq value'."))?;
            let after = after.trim_start();
            let (op, after) = after
                .split_once(char::is_whitespace)
                .ok_or_else(|| invalid("Expected an operator."))?;
            let equal = match op {
                "eq" => true,
                "ne" => false,
                _ => return Err(invalid("Only 'eq' and 'ne' are supported.")),
            };
            let after = after.trim_start();
            let (value, after) = if let Some(quoted) = after.strip_prefix('"') {
                let end = quoted
                    .find('"')
                    .ok_or_else(|| invalid("Unterminated string."))?;
                (&quoted[..end], &quoted[end + 1..])
            } else {
                let end = after
                    .find(|c: char| c.is_whitespace() || c == ')')
                    .unwrap_or(after.len());
                (&after[..end], &after[end..])
            };
            let pattern = Regex::new(&format!("^(?:{value})$"))
                .map_err(|e| invalid(&format!("Invalid regular expression: {e}")))?;
            terms.push(Term {
                field: field.to_string(),
                equal,
                pattern,
            });
            rest = after.trim_start().trim_start_matches(')').trim_start();
            if let Some(next) = rest.strip_prefix("AND ") {
                rest = next.trim_start();
            }
        }
        Ok(ComputeFilter { terms })
    }

    /// Whether a resource (as JSON) passes every term.
    pub fn matches(&self, item: &Value) -> bool {
        self.terms.iter().all(|term| {
            let value = term
                .field
                .split('.')
                .try_fold(item, |v, key| v.get(key))
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .unwrap_or_default();
            term.pattern.is_match(&value) == term.equal
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn gcloud_region_filter_matches_by_word() {
        let filter = ComputeFilter::parse(r#"region eq ".*\bus\-central1\b.*""#).expect("parses");
        assert!(
            filter
                .matches(&json!({"region": "http://h/compute/v1/projects/p/regions/us-central1"}))
        );
        assert!(
            !filter
                .matches(&json!({"region": "http://h/compute/v1/projects/p/regions/us-central2"}))
        );
        let both = ComputeFilter::parse(r#"(name eq "us-.*") (status ne "DOWN")"#).expect("parses");
        assert!(both.matches(&json!({"name": "us-east1", "status": "UP"})));
        assert!(ComputeFilter::parse("name ~ x").is_err());
    }
}
