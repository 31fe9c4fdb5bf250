//! Service Usage: which Google APIs a project has enabled.
//!
//! The emulator answers every API it emulates whether or not it is enabled (see the README); the
//! state exists so that deploy scripts that enable, list and check APIs behave as on Google Cloud.

use super::page::{Page, PageRequest, paginate};
use super::projects::Project;
use super::{Record, StateError, StateResult, Store};

/// Services a project knows, with their titles. Names outside this list are refused, as Google
/// refuses a mistyped service name.
pub const CATALOGUE: &[(&str, &str)] = &[
    ("aiplatform.googleapis.com", "Vertex AI API"),
    ("analyticshub.googleapis.com", "Analytics Hub API"),
    ("apigateway.googleapis.com", "API Gateway API"),
    ("appengine.googleapis.com", "App Engine Admin API"),
    ("artifactregistry.googleapis.com", "Artifact Registry API"),
    ("bigquery.googleapis.com", "BigQuery API"),
    ("bigquerystorage.googleapis.com", "BigQuery Storage API"),
    ("cloudapis.googleapis.com", "Google Cloud APIs"),
    ("cloudbuild.googleapis.com", "Cloud Build API"),
    ("cloudfunctions.googleapis.com", "Cloud Functions API"),
    (
        "cloudkms.googleapis.com",
        "Cloud Key Management Service (KMS) API",
    ),
    (
        "cloudresourcemanager.googleapis.com",
        "Cloud Resource Manager API",
    ),
    ("cloudscheduler.googleapis.com", "Cloud Scheduler API"),
    ("cloudtasks.googleapis.com", "Cloud Tasks API"),
    ("cloudtrace.googleapis.com", "Cloud Trace API"),
    ("compute.googleapis.com", "Compute Engine API"),
    ("container.googleapis.com", "Kubernetes Engine API"),
    ("containerregistry.googleapis.com", "Container Registry API"),
    ("datastore.googleapis.com", "Cloud Datastore API"),
    ("dns.googleapis.com", "Cloud DNS API"),
    ("eventarc.googleapis.com", "Eventarc API"),
    ("firestore.googleapis.com", "Cloud Firestore API"),
    (
        "iam.googleapis.com",
        "Identity and Access Management (IAM) API",
    ),
    (
        "iamcredentials.googleapis.com",
        "IAM Service Account Credentials API",
    ),
    ("logging.googleapis.com", "Cloud Logging API"),
    ("monitoring.googleapis.com", "Cloud Monitoring API"),
    ("oslogin.googleapis.com", "Cloud OS Login API"),
    ("pubsub.googleapis.com", "Cloud Pub/Sub API"),
    (
        "redis.googleapis.com",
        "Google Cloud Memorystore for Redis API",
    ),
    ("run.googleapis.com", "Cloud Run Admin API"),
    ("secretmanager.googleapis.com", "Secret Manager API"),
    ("servicemanagement.googleapis.com", "Service Management API"),
    ("servicenetworking.googleapis.com", "Service Networking API"),
    ("serviceusage.googleapis.com", "Service Usage API"),
    (
        "source.googleapis.com",
        "Legacy Cloud Source Repositories API",
    ),
    ("spanner.googleapis.com", "Cloud Spanner API"),
    ("sql-component.googleapis.com", "Cloud SQL"),
    ("sqladmin.googleapis.com", "Cloud SQL Admin API"),
    (
        "storage-api.googleapis.com",
        "Google Cloud Storage JSON API",
    ),
    ("storage-component.googleapis.com", "Cloud Storage"),
    ("storage.googleapis.com", "Cloud Storage API"),
    ("vpcaccess.googleapis.com", "Serverless VPC Access API"),
    ("workflows.googleapis.com", "Workflows API"),
];

/// Enabled in a new project: Google's defaults plus every API the emulator answers, so that
/// `gcloud run deploy` never stops to offer enabling Cloud Run.
pub const ENABLED_BY_DEFAULT: &[&str] = &[
    "artifactregistry.googleapis.com",
    "bigquery.googleapis.com",
    "bigquerystorage.googleapis.com",
    "cloudapis.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "cloudtrace.googleapis.com",
    "compute.googleapis.com",
    "datastore.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "servicemanagement.googleapis.com",
    "serviceusage.googleapis.com",
    "sql-component.googleapis.com",
    "sqladmin.googleapis.com",
    "storage-api.googleapis.com",
    "storage-component.googleapis.com",
    "storage.googleapis.com",
];

/// A service of a project and whether it is enabled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceState {
    pub project: Project,
    pub name: String,
    pub title: String,
    pub enabled: bool,
}

fn title(service: &str) -> StateResult<&'static str> {
    CATALOGUE
        .iter()
        .find(|(name, _)| *name == service)
        .map(|(_, title)| *title)
        .ok_or_else(|| {
            StateError::PermissionDenied(format!(
                "Not found or permission denied for service(s): {service}."
            ))
        })
}

impl Store {
    /// The state of one service in a project.
    pub fn service(&self, project: &str, service: &str) -> StateResult<ServiceState> {
        let title = title(service)?;
        self.read(|data| {
            let project = data.project(project)?;
            let enabled = data
                .services
                .get(&project.number)
                .and_then(|s| s.get(service).copied())
                .unwrap_or_else(|| ENABLED_BY_DEFAULT.contains(&service));
            Ok(ServiceState {
                project,
                name: service.to_string(),
                title: title.to_string(),
                enabled,
            })
        })
    }

    /// Enables or disables services; every name must be known, or nothing changes.
    pub fn set_services_enabled(
        &self,
        project: &str,
        services: &[String],
        enabled: bool,
    ) -> StateResult<Vec<ServiceState>> {
        if services.is_empty() {
            return Err(StateError::invalid("No service names were given."));
        }
        let unknown: Vec<&str> = services
            .iter()
            .map(String::as_str)
            .filter(|s| title(s).is_err())
            .collect();
        if !unknown.is_empty() {
            return Err(StateError::PermissionDenied(format!(
                "Not found or permission denied for service(s): {}.",
                unknown.join(", ")
            )));
        }
        self.commit(|data| {
            let project = data.project(project)?;
            let mut records: Vec<Record> = data.remember(&project).into_iter().collect();
            records.extend(services.iter().map(|service| Record::SetServiceState {
                project: project.number.clone(),
                service: service.clone(),
                enabled,
            }));
            Ok(((), records))
        })?;
        services.iter().map(|s| self.service(project, s)).collect()
    }

    /// Lists a project's services, optionally only those in one state.
    pub fn list_services(
        &self,
        project: &str,
        enabled: Option<bool>,
        page: &PageRequest,
    ) -> StateResult<Page<ServiceState>> {
        let mut items = Vec::new();
        for (name, _) in CATALOGUE {
            let state = self.service(project, name)?;
            if enabled.is_none_or(|e| e == state.enabled) {
                items.push((name.to_string(), state));
            }
        }
        paginate(items, page, 50, 200)
    }
}
