//! Cloud Run services declared from a Knative `service.yaml`, with `${VAR}` substitution.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::HarnessError;

/// The region services are deployed to unless their YAML names one.
pub(crate) const DEFAULT_REGION: &str = "us-central1";

/// A Cloud Run service to deploy from a `service.yaml`, as `gcloud run services replace` would.
///
/// `${NAME}` in the file is replaced by the value given with [`CloudRunService::var`], or by
/// the stack's `${PROJECT}` and `${REGION}`; a name with no value is an error, never an empty
/// string.
#[derive(Debug, Clone)]
pub struct CloudRunService {
    path: PathBuf,
    vars: BTreeMap<String, String>,
    public: bool,
}

impl CloudRunService {
    /// The service described by the Knative YAML file at `path`.
    pub fn from_yaml(path: impl AsRef<Path>) -> CloudRunService {
        CloudRunService {
            path: path.as_ref().to_path_buf(),
            vars: BTreeMap::new(),
            public: false,
        }
    }

    /// Gives `${name}` in the file a value.
    pub fn var(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.vars.insert(name.into(), value.into());
        self
    }

    /// Lets anyone invoke it (`roles/run.invoker` for `allUsers`, `--allow-unauthenticated`);
    /// without it the service is private, as on Cloud Run, and anonymous requests get 403.
    pub fn allow_unauthenticated(mut self) -> Self {
        self.public = true;
        self
    }

    pub(crate) fn is_public(&self) -> bool {
        self.public
    }

    /// The file as JSON, every `${VAR}` replaced; `defaults` fill names the test did not set.
    pub(crate) fn render(
        &self,
        defaults: &BTreeMap<String, String>,
    ) -> Result<Value, HarnessError> {
        let path = self.path.display().to_string();
        let error = |message: String| HarnessError::ServiceYaml {
            path: path.clone(),
            message,
        };
        let text = std::fs::read_to_string(&self.path)
            .map_err(|e| error(format!("cannot read it: {e}")))?;
        let text = substitute(&text, |name| {
            self.vars.get(name).or_else(|| defaults.get(name)).cloned()
        })
        .map_err(error)?;
        let service: Value =
            serde_yaml::from_str(&text).map_err(|e| error(format!("invalid YAML: {e}")))?;
        if service["metadata"]["name"]
            .as_str()
            .is_none_or(str::is_empty)
        {
            return Err(error("metadata.name is missing".into()));
        }
        Ok(service)
    }
}

/// The service's name and region in its rendered YAML.
pub(crate) fn name_and_region(service: &Value) -> (String, String) {
    let name = service["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let region = service["metadata"]["labels"]["cloud.googleapis.com/location"]
        .as_str()
        .unwrap_or(DEFAULT_REGION)
        .to_string();
    (name, region)
}

/// Replaces each `${NAME}` (letters, digits, `_`) with `value(NAME)`; `$$` is a literal `$`.
fn substitute(text: &str, value: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| format!("unclosed ${{ in {:?}", line_of(text, at)))?;
            let name = &body[..end];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("${{{name}}} is not a variable name"));
            }
            let value = value(name).ok_or_else(|| {
                format!("${{{name}}} has no value: give it one with CloudRunService::var(\"{name}\", ..)")
            })?;
            out.push_str(&value);
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn line_of(text: &str, at: usize) -> &str {
    let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let end = text[at..].find('\n').map_or(text.len(), |i| at + i);
    text[start..end].trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(name: &str) -> Option<String> {
        (name == "PROJECT").then(|| "demo".to_string())
    }

    #[test]
    fn variables_are_replaced_and_dollars_escaped() {
        assert_eq!(
            substitute("image: gcr.io/${PROJECT}/app # costs $$5, $HOME", values),
            Ok("image: gcr.io/demo/app # costs $5, $HOME".to_string())
        );
    }

    #[test]
    fn a_variable_without_a_value_is_an_error_naming_it() {
        let error = substitute("name: ${SECRET_NAME}", values).expect_err("refused");
        assert!(error.contains("${SECRET_NAME} has no value"), "{error}");
        assert!(substitute("a: ${oops", values).is_err());
        assert!(substitute("a: ${not-a-name}", values).is_err());
    }
}
