//! harness: what a user's integration tests call to run the emulator and drive real clients at it.
//!
//! - [`Emulator`] starts the emulator in-process on a free loopback port (in memory, or on a data
//!   directory) and stops it when dropped, also when the test panics.
//! - [`Gcloud`] runs the real `gcloud` CLI with an isolated configuration pointed at an emulator,
//!   so tests never touch the user's own gcloud settings or credentials.
//! - [`Emulator::compose_up`] runs a Docker Compose file as a Cloud Run service on an emulator
//!   (as `cloudrun-emulator compose up` does) and hands back its URL in a [`ComposeService`].
//!
//! ```no_run
//! # async fn story() -> Result<(), harness::HarnessError> {
//! let emulator = harness::Emulator::start().await?;
//! let gcloud = emulator.gcloud();
//! gcloud.run(["secrets", "create", "db-password", "--data-file=-"]).stdin("s3cret").ok().await?;
//! let out = gcloud.run(["secrets", "versions", "access", "latest", "--secret=db-password"]).ok().await?;
//! assert_eq!(out.stdout, "s3cret");
//! # Ok(()) }
//! ```

mod compose;
mod emulator;
mod error;
mod gcloud;
mod images;

pub use compose::{ComposeService, ComposeUp};
pub use emulator::{Emulator, EmulatorBuilder};
pub use error::HarnessError;
pub use gcloud::{Gcloud, GcloudCommand, GcloudOutput};
pub use images::ensure_images;
