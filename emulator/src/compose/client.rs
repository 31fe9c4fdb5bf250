//! The HTTP client `compose up` and `down` use to drive a running emulator through the same
//! Google APIs gcloud calls: Secret Manager v1, the Cloud Run Knative API (regional: the region
//! travels in the Host header, as gcloud sends it) and the service IAM policy.

use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

use super::ComposeError;

/// A client of one emulator, for one project and region.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    project: String,
    region: String,
    http: HyperClient<HttpConnector, Full<bytes::Bytes>>,
}

/// An answer: status and JSON body (`Null` when empty or not JSON).
struct Answer {
    status: u16,
    body: Value,
}

impl Answer {
    fn message(&self) -> String {
        self.body["error"]["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| format!("HTTP {} {}", self.status, self.body))
    }
}

impl Client {
    /// A client of the emulator at `base` (`http://127.0.0.1:8089`).
    pub fn new(base: &str, project: &str, region: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_string(),
            project: project.to_string(),
            region: region.to_string(),
            http: HyperClient::builder(TokioExecutor::new()).build_http(),
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        regional: bool,
        body: Option<&Value>,
    ) -> Result<Answer, ComposeError> {
        let url = format!("{}{path}", self.base);
        let mut request = Request::builder().method(method).uri(&url);
        if regional {
            request = request.header("host", format!("{}-run.emulator", self.region));
        }
        let payload = body.map(Value::to_string).unwrap_or_default();
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let request = request
            .body(Full::new(bytes::Bytes::from(payload)))
            .map_err(|e| ComposeError::Unreachable {
                url: self.base.clone(),
                message: e.to_string(),
            })?;
        let response = self
            .http
            .request(request)
            .await
            .map_err(|e| ComposeError::Unreachable {
                url: self.base.clone(),
                message: format!("{e:?}"),
            })?;
        let status = response.status().as_u16();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| ComposeError::Unreachable {
                url: self.base.clone(),
                message: e.to_string(),
            })?
            .to_bytes();
        Ok(Answer {
            status,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        })
    }

    fn refused(action: &str, answer: &Answer) -> ComposeError {
        ComposeError::Refused {
            action: action.to_string(),
            message: answer.message(),
        }
    }

    /// Creates the secret if it does not exist and adds `value` as its newest version.
    pub async fn put_secret(&self, id: &str, value: &[u8]) -> Result<(), ComposeError> {
        let project = &self.project;
        let created = self
            .call(
                Method::POST,
                &format!("/v1/projects/{project}/secrets?secretId={id}"),
                false,
                Some(&json!({"replication": {"automatic": {}}})),
            )
            .await?;
        if created.status != 200 && created.status != 409 {
            return Err(Self::refused(&format!("creating secret {id}"), &created));
        }
        let data = base64::engine::general_purpose::STANDARD.encode(value);
        let added = self
            .call(
                Method::POST,
                &format!("/v1/projects/{project}/secrets/{id}:addVersion"),
                false,
                Some(&json!({"payload": {"data": data}})),
            )
            .await?;
        if added.status != 200 {
            return Err(Self::refused(
                &format!("adding a version to secret {id}"),
                &added,
            ));
        }
        Ok(())
    }

    /// Deletes a secret; one already gone is fine.
    pub async fn delete_secret(&self, id: &str) -> Result<(), ComposeError> {
        let answer = self
            .call(
                Method::DELETE,
                &format!("/v1/projects/{}/secrets/{id}", self.project),
                false,
                None,
            )
            .await?;
        match answer.status {
            200 | 404 => Ok(()),
            _ => Err(Self::refused(&format!("deleting secret {id}"), &answer)),
        }
    }

    fn service_path(&self, name: Option<&str>) -> String {
        let base = format!(
            "/apis/serving.knative.dev/v1/namespaces/{}/services",
            self.project
        );
        match name {
            Some(name) => format!("{base}/{name}"),
            None => base,
        }
    }

    /// The service as the Knative API shows it, `None` when it does not exist.
    pub async fn get_service(&self, name: &str) -> Result<Option<Value>, ComposeError> {
        let answer = self
            .call(Method::GET, &self.service_path(Some(name)), true, None)
            .await?;
        match answer.status {
            200 => Ok(Some(answer.body)),
            404 => Ok(None),
            _ => Err(Self::refused(&format!("reading service {name}"), &answer)),
        }
    }

    /// Creates or replaces the service, as `gcloud run services replace` does; returns the
    /// service as stored, whose `status.latestCreatedRevisionName` is the new revision.
    pub async fn apply_service(&self, service: &Value) -> Result<Value, ComposeError> {
        let name = service["metadata"]["name"].as_str().unwrap_or_default();
        let answer = match self.get_service(name).await? {
            None => {
                self.call(Method::POST, &self.service_path(None), true, Some(service))
                    .await?
            }
            Some(_) => {
                self.call(
                    Method::PUT,
                    &self.service_path(Some(name)),
                    true,
                    Some(service),
                )
                .await?
            }
        };
        if answer.status != 200 {
            return Err(Self::refused(&format!("deploying service {name}"), &answer));
        }
        Ok(answer.body)
    }

    /// Lets anyone invoke the service (`--allow-unauthenticated`).
    pub async fn allow_unauthenticated(&self, name: &str) -> Result<(), ComposeError> {
        let body = json!({"policy": {"bindings": [
            {"role": "roles/run.invoker", "members": ["allUsers"]}
        ]}});
        let answer = self
            .call(
                Method::POST,
                &format!(
                    "/v1/projects/{}/locations/{}/services/{name}:setIamPolicy",
                    self.project, self.region
                ),
                false,
                Some(&body),
            )
            .await?;
        if answer.status != 200 {
            return Err(Self::refused(
                &format!("opening service {name} to all users"),
                &answer,
            ));
        }
        Ok(())
    }

    /// Deletes the service; `false` when there was none.
    pub async fn delete_service(&self, name: &str) -> Result<bool, ComposeError> {
        let answer = self
            .call(Method::DELETE, &self.service_path(Some(name)), true, None)
            .await?;
        match answer.status {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(Self::refused(&format!("deleting service {name}"), &answer)),
        }
    }

    /// An HTTP GET of `url`, for the status only (waiting until the URL admits requests).
    pub async fn status_of(&self, url: &str) -> Option<u16> {
        let request = Request::get(url)
            .body(Full::new(bytes::Bytes::new()))
            .ok()?;
        let response = self.http.request(request).await.ok()?;
        Some(response.status().as_u16())
    }
}
