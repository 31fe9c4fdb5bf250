//! The long-running operations v2 answers writes with. A create or update is done once the
//! service's latest revision is Ready (with the URL assigned) or Failed; a pending operation
//! only remembers its service and reads the state when polled, then keeps its final outcome.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::{Value, json};

use super::enums::Encoding;
use super::service::{Names, ready_condition, revision_json, service_json};
use crate::state::Store;
use crate::state::operations::new_id;
use crate::state::run::{ConditionStatus, Revision, Service, ServiceName, ServiceView};

/// How many operations are remembered for polling.
const KEPT: usize = 4096;
const SERVICE_TYPE: &str = "type.googleapis.com/google.cloud.run.v2.Service";
const REVISION_TYPE: &str = "type.googleapis.com/google.cloud.run.v2.Revision";
/// `google.rpc.Code` values operations fail with.
const INVALID_ARGUMENT: i64 = 3;
const FAILED_PRECONDITION: i64 = 9;
const ABORTED: i64 = 10;

/// Where an operation is.
#[derive(Debug, Clone)]
enum Outcome {
    /// Waiting for this service to settle.
    Pending(ServiceName),
    /// Finished with the service as it settled, and the error if its revision failed.
    Service(Box<ServiceView>, Option<(i64, String)>),
    /// A revision deleted.
    Revision(Box<(Revision, Service)>),
    /// The service vanished before settling.
    Gone(String),
}

#[derive(Debug, Clone)]
struct Entry {
    project: String,
    location: String,
    outcome: Outcome,
}

/// Operations by name, and their names oldest first (to forget the oldest).
#[derive(Debug, Default)]
struct Kept {
    by_name: HashMap<String, Entry>,
    order: VecDeque<String>,
}

/// The v2 operations of one server: cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Operations {
    inner: Arc<Mutex<Kept>>,
}

impl Operations {
    fn insert(&self, names: Names<'_>, outcome: Outcome) -> String {
        let name = format!(
            "projects/{}/locations/{}/operations/{}",
            names.project,
            names.location,
            new_id()
        );
        let entry = Entry {
            project: names.project.to_string(),
            location: names.location.to_string(),
            outcome,
        };
        let mut inner = self.inner.lock();
        let Kept { by_name, order } = &mut *inner;
        by_name.insert(name.clone(), entry);
        order.push_back(name.clone());
        while order.len() > KEPT {
            if let Some(old) = order.pop_front() {
                by_name.remove(&old);
            }
        }
        name
    }

    /// An operation that finishes when `service` settles.
    pub fn watch(&self, names: Names<'_>, service: &ServiceName) -> String {
        self.insert(names, Outcome::Pending(service.clone()))
    }

    /// An operation already finished with `view` (a delete, or a write only validated).
    pub fn finished(&self, names: Names<'_>, view: ServiceView) -> String {
        self.insert(names, Outcome::Service(Box::new(view), None))
    }

    /// An operation already finished with a deleted revision.
    pub fn revision_deleted(
        &self,
        names: Names<'_>,
        revision: Revision,
        service: Service,
    ) -> String {
        self.insert(names, Outcome::Revision(Box::new((revision, service))))
    }

    /// Forgets an operation; false when it was unknown.
    pub fn delete(&self, name: &str) -> bool {
        let mut inner = self.inner.lock();
        let Kept { by_name, order } = &mut *inner;
        order.retain(|n| n != name);
        by_name.remove(name).is_some()
    }

    /// Names of the operations under `prefix` (`projects/P/locations/L/operations/`), oldest first.
    pub fn names_under(&self, prefix: &str) -> Vec<String> {
        self.inner
            .lock()
            .order
            .iter()
            .filter(|n| n.starts_with(prefix))
            .cloned()
            .collect()
    }

    /// The operation as JSON, settling a pending one against the state; `None` when unknown.
    pub fn get(&self, name: &str, store: &Store, host: &str, enums: Encoding) -> Option<Value> {
        let entry = self.inner.lock().by_name.get(name).cloned()?;
        let outcome = match &entry.outcome {
            Outcome::Pending(service) => match settle(store, service) {
                Some(done) => {
                    if let Some(kept) = self.inner.lock().by_name.get_mut(name) {
                        kept.outcome = done.clone();
                    }
                    done
                }
                None => entry.outcome.clone(),
            },
            done => done.clone(),
        };
        let names = Names {
            project: &entry.project,
            location: &entry.location,
        };
        Some(render(name, names, &outcome, store, host, enums))
    }
}

/// The final outcome of a pending operation on `service`, if it has settled.
fn settle(store: &Store, service: &ServiceName) -> Option<Outcome> {
    let Some(view) = store.service_by_name(service) else {
        return Some(Outcome::Gone(format!(
            "Service '{}' was deleted before the operation finished.",
            service.name
        )));
    };
    let ready = ready_condition(&view);
    match ready.status {
        ConditionStatus::Unknown => None,
        ConditionStatus::True => Some(Outcome::Service(Box::new(view), None)),
        ConditionStatus::False => {
            let code = match view.status.configurations_ready.reason.as_deref() {
                Some("ContainerMissing") => INVALID_ARGUMENT,
                _ => FAILED_PRECONDITION,
            };
            let message = ready
                .message
                .unwrap_or_else(|| "The revision failed.".into());
            Some(Outcome::Service(Box::new(view), Some((code, message))))
        }
    }
}

fn typed(kind: &str, value: Value) -> Value {
    let mut out = json!({ "@type": kind });
    if let (Some(out), Value::Object(fields)) = (out.as_object_mut(), value) {
        out.extend(fields);
    }
    out
}

fn render(
    name: &str,
    names: Names<'_>,
    outcome: &Outcome,
    store: &Store,
    host: &str,
    enums: Encoding,
) -> Value {
    match outcome {
        Outcome::Pending(service) => {
            let mut out = json!({ "name": name, "done": false });
            if let Some(view) = store.service_by_name(service) {
                out["metadata"] = typed(SERVICE_TYPE, service_json(&view, names, host, enums));
            }
            out
        }
        Outcome::Service(view, error) => {
            let service = typed(SERVICE_TYPE, service_json(view, names, host, enums));
            let mut out = json!({ "name": name, "done": true, "metadata": service });
            match error {
                Some((code, message)) => out["error"] = json!({"code": code, "message": message}),
                None => out["response"] = out["metadata"].clone(),
            }
            out
        }
        Outcome::Revision(pair) => {
            let (revision, service) = &**pair;
            let json = typed(
                REVISION_TYPE,
                revision_json(revision, service, names, false, enums),
            );
            json!({ "name": name, "done": true, "metadata": json, "response": json })
        }
        Outcome::Gone(message) => json!({
            "name": name,
            "done": true,
            "error": {"code": ABORTED, "message": message},
        }),
    }
}
