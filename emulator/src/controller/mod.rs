//! The controller: makes the containers match the Cloud Run state. The API layer tells it what
//! changed; it starts and stops revision instances through the runtime, points the ingress at
//! them, and records each revision's outcome back in the state store. It also runs Cloud SQL
//! instances as Postgres servers (`sql`) and gives revisions the Cloud SQL Auth Proxy and
//! `/cloudsql` sockets that reach them (`cloudsql`).

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;

mod cloudsql;
mod docker;
mod links;
mod pods;
mod sql;

pub use docker::Controller;
pub use pods::HOST_ALIASES_ANNOTATION;
pub use sql::{LABEL_SQL_INSTANCE, POSTGRES_IMAGES, SqlController, quote_identifier};

use crate::state::Store;
use crate::state::run::{RevisionState, Service, ServiceName};

/// What the Cloud Run API asks of whatever runs revisions.
pub trait Reconcile: Send + Sync + Debug {
    /// A service's spec or IAM policy changed: bring its instances and routes up to date (returns
    /// at once; the work happens in the background).
    fn service_changed(&self, service: ServiceName);

    /// A service was deleted: resolves once its instances and its URL are gone.
    fn service_deleted(&self, service: Service) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;

    /// A Cloud SQL instance (`PROJECT/NAME`) has queued operations: carry them out (returns at
    /// once; the operations turn `DONE` when finished).
    fn sql_instance_changed(&self, instance: String);
}

/// The reconciler of an emulator without a container engine: revisions fail with the reason.
#[derive(Debug, Clone)]
pub struct Detached {
    store: Store,
    reason: String,
}

impl Detached {
    /// Fails every new revision of `store` with `reason` (why no engine is attached).
    pub fn new(store: Store, reason: impl Into<String>) -> Self {
        Self {
            store,
            reason: reason.into(),
        }
    }
}

impl Reconcile for Detached {
    fn service_changed(&self, service: ServiceName) {
        let Ok(revisions) =
            self.store
                .list_revisions(&service.project, Some(&service.region), Some(&service.name))
        else {
            return;
        };
        for revision in revisions
            .into_iter()
            .filter(|r| r.state == RevisionState::Pending)
        {
            let failed = RevisionState::Failed {
                reason: "ContainerRuntimeUnavailable".into(),
                message: format!(
                    "No container runtime is attached to this emulator: {}",
                    self.reason
                ),
            };
            if let Err(error) = self.store.set_revision_state(&revision.key(), failed) {
                tracing::warn!(%error, "recording a revision failure failed");
            }
        }
    }

    fn service_deleted(&self, _service: Service) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async {})
    }

    fn sql_instance_changed(&self, instance: String) {
        let error = crate::state::sql::OperationError {
            code: "INTERNAL_ERROR".into(),
            message: format!(
                "No container runtime is attached to this emulator: {}",
                self.reason
            ),
        };
        let deleting = self
            .store
            .sql_instance_by_key(&instance)
            .is_some_and(|i| i.state == crate::state::sql::InstanceState::PendingDelete);
        for operation in self.store.pending_sql_operations(&instance) {
            let deleted = deleting
                && operation.action == crate::state::sql::SqlAction::DeleteInstance
                && self.store.remove_sql_instance(&instance).is_ok();
            self.store
                .finish_sql_operation(&operation.id, (!deleted).then(|| error.clone()));
        }
        let failed = self.store.update_sql_instance(&instance, |i| {
            if i.state == crate::state::sql::InstanceState::PendingCreate {
                i.state = crate::state::sql::InstanceState::Failed;
            }
        });
        if let Err(error) = failed {
            tracing::warn!(%error, "recording an instance failure failed");
        }
    }
}

/// The reconciler for `store`: the Docker controller when an engine answers, else [`Detached`]
/// with the reason (the other APIs work either way). The controller is returned too, for shutdown.
/// With `strict_iam`, revisions may read only the secrets their service account was granted.
pub async fn connect(
    store: &Store,
    strict_iam: bool,
) -> (std::sync::Arc<dyn Reconcile>, Option<Controller>) {
    let ingress = crate::ingress::Ingress::new(store.clone());
    match Controller::start(store.clone(), ingress, strict_iam).await {
        Ok(controller) => (std::sync::Arc::new(controller.clone()), Some(controller)),
        Err(error) => {
            tracing::warn!(%error, "no Docker engine: Cloud Run revisions will fail to start");
            (
                std::sync::Arc::new(Detached::new(store.clone(), error.to_string())),
                None,
            )
        }
    }
}
