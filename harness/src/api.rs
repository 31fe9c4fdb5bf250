//! A small REST client of the in-process emulator: the Google API calls a stack is set up with
//! (Secret Manager, Cloud Run's Knative API, Cloud SQL Admin), errors kept in Google's words.

use std::time::Duration;

use base64::Engine as _;
use reqwest::Method;
use serde_json::{Value, json};

use crate::error::HarnessError;

/// How often operations and service status are polled; local calls answer in microseconds.
pub(crate) const POLL: Duration = Duration::from_millis(25);
/// How long one Cloud SQL operation may run (gcloud allows 10 minutes; local ones take seconds).
const SQL_OPERATION_TIMEOUT: Duration = Duration::from_secs(120);

/// The emulator's APIs for one project; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Api {
    http: reqwest::Client,
    base: String,
    pub(crate) project: String,
}

impl Api {
    pub(crate) fn new(base: String, project: String) -> Api {
        Api {
            http: reqwest::Client::new(),
            base,
            project,
        }
    }

    /// One call; a non-2xx answer becomes [`HarnessError::Api`] with Google's message.
    async fn call(
        &self,
        method: Method,
        path: &str,
        host: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Value, HarnessError> {
        let what = format!("{method} {path}");
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(host) = host {
            request = request.header(reqwest::header::HOST, host);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|source| HarnessError::Http {
            call: what.clone(),
            source,
        })?;
        let status = response.status();
        let answer: Value = response.json().await.map_err(|source| HarnessError::Http {
            call: what.clone(),
            source,
        })?;
        if !status.is_success() {
            return Err(HarnessError::Api {
                call: what,
                status: status.as_u16(),
                message: answer["error"]["message"]
                    .as_str()
                    .map_or_else(|| answer.to_string(), str::to_string),
            });
        }
        Ok(answer)
    }

    /// Creates a secret (automatic replication) holding `value` as version 1.
    pub(crate) async fn create_secret(&self, id: &str, value: &[u8]) -> Result<(), HarnessError> {
        let path = format!("/v1/projects/{}/secrets?secretId={id}", self.project);
        let body = json!({"replication": {"automatic": {}}});
        self.call(Method::POST, &path, None, Some(&body)).await?;
        self.add_secret_version(id, value).await
    }

    /// Adds a version, which `latest` then names.
    pub(crate) async fn add_secret_version(
        &self,
        id: &str,
        value: &[u8],
    ) -> Result<(), HarnessError> {
        let path = format!("/v1/projects/{}/secrets/{id}:addVersion", self.project);
        let data = base64::engine::general_purpose::STANDARD.encode(value);
        let body = json!({"payload": {"data": data}});
        self.call(Method::POST, &path, None, Some(&body)).await?;
        Ok(())
    }

    fn knative(&self, rest: &str) -> String {
        format!(
            "/apis/serving.knative.dev/v1/namespaces/{}/services{rest}",
            self.project
        )
    }

    /// `gcloud run services replace`: creates the service, or replaces the one of that name.
    pub(crate) async fn replace_service(
        &self,
        region: &str,
        service: &Value,
    ) -> Result<Value, HarnessError> {
        let host = regional_host(region);
        let name = service["metadata"]["name"].as_str().unwrap_or_default();
        match self
            .call(
                Method::GET,
                &self.knative(&format!("/{name}")),
                Some(&host),
                None,
            )
            .await
        {
            Ok(existing) => {
                let mut service = service.clone();
                service["metadata"]["resourceVersion"] =
                    existing["metadata"]["resourceVersion"].clone();
                self.call(
                    Method::PUT,
                    &self.knative(&format!("/{name}")),
                    Some(&host),
                    Some(&service),
                )
                .await
            }
            Err(HarnessError::Api { status: 404, .. }) => {
                self.call(Method::POST, &self.knative(""), Some(&host), Some(service))
                    .await
            }
            Err(error) => Err(error),
        }
    }

    /// The service as the Knative API returns it.
    pub(crate) async fn get_service(
        &self,
        region: &str,
        name: &str,
    ) -> Result<Value, HarnessError> {
        self.call(
            Method::GET,
            &self.knative(&format!("/{name}")),
            Some(&regional_host(region)),
            None,
        )
        .await
    }

    /// Grants `roles/run.invoker` to `allUsers`, as `--allow-unauthenticated` does.
    pub(crate) async fn allow_unauthenticated(
        &self,
        region: &str,
        name: &str,
    ) -> Result<(), HarnessError> {
        let path = format!(
            "/v1/projects/{}/locations/{region}/services/{name}:setIamPolicy",
            self.project
        );
        let body = json!({"policy": {"bindings": [
            {"role": "roles/run.invoker", "members": ["allUsers"]}
        ]}});
        self.call(Method::POST, &path, None, Some(&body)).await?;
        Ok(())
    }

    fn sql(&self, rest: &str) -> String {
        format!("/sql/v1beta4/projects/{}{rest}", self.project)
    }

    /// Runs a Cloud SQL write and polls its operation until `DONE`, as gcloud does.
    async fn sql_write(&self, what: &str, path: &str, body: &Value) -> Result<(), HarnessError> {
        let operation = self
            .call(Method::POST, &self.sql(path), None, Some(body))
            .await?;
        self.wait_sql_operation(what, operation).await
    }

    /// Polls a Cloud SQL operation until `DONE`; its error, if any, becomes ours.
    async fn wait_sql_operation(&self, what: &str, operation: Value) -> Result<(), HarnessError> {
        let name = operation["name"].as_str().unwrap_or_default().to_string();
        let deadline = tokio::time::Instant::now() + SQL_OPERATION_TIMEOUT;
        loop {
            let operation = self
                .call(
                    Method::GET,
                    &self.sql(&format!("/operations/{name}")),
                    None,
                    None,
                )
                .await?;
            if operation["status"] == "DONE" {
                if let Some(error) = operation["error"]["errors"].get(0) {
                    return Err(HarnessError::Sql {
                        what: what.to_string(),
                        message: format!("[{}] {}", error["code"], error["message"]),
                    });
                }
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(HarnessError::Timeout {
                    what: format!("waiting for Cloud SQL {what} (operation {name})"),
                    after: SQL_OPERATION_TIMEOUT,
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// `gcloud sql instances create NAME --database-version=VERSION --region=REGION`.
    pub(crate) async fn create_sql_instance(
        &self,
        name: &str,
        version: &str,
        region: &str,
    ) -> Result<(), HarnessError> {
        let body = json!({
            "name": name, "databaseVersion": version, "region": region,
            "settings": {"tier": "db-f1-micro"},
        });
        self.sql_write(&format!("instances create {name}"), "/instances", &body)
            .await
    }

    /// The instance as `gcloud sql instances describe` reads it.
    pub(crate) async fn get_sql_instance(&self, name: &str) -> Result<Value, HarnessError> {
        self.call(
            Method::GET,
            &self.sql(&format!("/instances/{name}")),
            None,
            None,
        )
        .await
    }

    /// `gcloud sql databases create DB --instance=INSTANCE`.
    pub(crate) async fn create_database(
        &self,
        instance: &str,
        database: &str,
    ) -> Result<(), HarnessError> {
        let body = json!({"name": database, "instance": instance});
        let path = format!("/instances/{instance}/databases");
        self.sql_write(&format!("databases create {database}"), &path, &body)
            .await
    }

    /// `gcloud sql users create USER --instance=INSTANCE --password=PASSWORD`.
    pub(crate) async fn create_user(
        &self,
        instance: &str,
        user: &str,
        password: &str,
    ) -> Result<(), HarnessError> {
        let body = json!({"name": user, "password": password, "instance": instance});
        let path = format!("/instances/{instance}/users");
        self.sql_write(&format!("users create {user}"), &path, &body)
            .await
    }
}

/// The host name that carries the region to the Knative API.
fn regional_host(region: &str) -> String {
    format!("{region}-run.googleapis.com")
}
