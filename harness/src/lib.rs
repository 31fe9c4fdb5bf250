//! harness: what a user's integration tests call to run the emulator and drive real clients at it.
//!
//! - [`Stack`] declares a whole stack (secrets, Cloud SQL instances with databases, users and
//!   fixtures, images, Cloud Run services from a `service.yaml`) and [`Stack::start`] brings it
//!   up on an emulator of its own; the [`RunningStack`] hands back each service's URL, an HTTP
//!   client, Postgres clients, secret values and logs, and removes everything when dropped,
//!   printing the logs first when the test panicked. Third-party HTTP APIs are wiremock servers
//!   ([`Stack::http_stub`]) that the containers reach at the host name the app is configured with.
//! - [`Scenario`] runs a scenario file (a stack and HTTP, SQL and fault steps in YAML), as
//!   `cloudrun-emulator test` does, with a [`ScenarioReport`] and [`junit_xml`] for CI.
//! - [`Emulator`] starts the emulator in-process on a free loopback port (in memory, or on a data
//!   directory) and stops it when dropped, also when the test panics.
//! - [`Gcloud`] runs the real `gcloud` CLI with an isolated configuration pointed at an emulator,
//!   so tests never touch the user's own gcloud settings or credentials.
//! - [`Emulator::compose_up`] runs a Docker Compose file as a Cloud Run service on an emulator
//!   (as `cloudrun-emulator compose up` does) and hands back its URL in a [`ComposeService`].
//!
//! ```no_run
//! # async fn story() -> Result<(), harness::HarnessError> {
//! use harness::{CloudRunService, SqlInstance, Stack};
//!
//! let stack = Stack::new()
//!     .secret("db-password", "s3cret")
//!     .sql_instance(SqlInstance::postgres("db").database("app").user("app", "s3cret"))
//!     .build_image("cloudrun-emulator/web-backend:1", "apps/web/backend")
//!     .service(CloudRunService::from_yaml("apps/web/service.yaml").allow_unauthenticated())
//!     .start()
//!     .await?;
//! let data = stack.get("web", "/api/data").await?;
//! assert_eq!(data.status(), 200);
//! let db = stack.postgres("db", "app", "app").await?;
//!
//! let emulator = harness::Emulator::start().await?;
//! let gcloud = emulator.gcloud();
//! gcloud.run(["secrets", "create", "db-password", "--data-file=-"]).stdin("s3cret").ok().await?;
//! let out = gcloud.run(["secrets", "versions", "access", "latest", "--secret=db-password"]).ok().await?;
//! assert_eq!(out.stdout, "s3cret");
//! # Ok(()) }
//! ```

mod api;
mod compose;
mod emulator;
mod error;
mod gcloud;
mod images;
mod junit;
mod logs;
mod pubsub;
mod redis;
mod scenario;
mod service;
mod sql;
mod stack;
mod stubs;
mod template_copies;

pub use compose::{ComposeService, ComposeUp};
pub use emulator::{Emulator, EmulatorBuilder};
pub use error::HarnessError;
pub use gcloud::{Gcloud, GcloudCommand, GcloudOutput};
pub use images::{build_image, ensure_images};
pub use junit::junit_xml;
pub use scenario::{Progress, Scenario, ScenarioReport, StepReport};
pub use service::CloudRunService;
pub use sql::SqlInstance;
pub use stack::{RunningStack, Stack, Timings};
/// The wiremock version [`RunningStack::stub`] servers speak, for mounting mocks on them.
pub use wiremock;
