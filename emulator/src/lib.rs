//! cloudrun-emulator: Google Cloud Run, Secret Manager and Cloud SQL on a laptop, offline.
//!
//! The crate is laid out the way a request travels:
//! - [`server`] owns the listener and merges one router per Google API surface:
//!   [`secretmanager`], [`run`] (v1 Knative), [`run_v2`], [`logging`], [`serviceusage`],
//!   [`artifactregistry`], [`compute`], [`sqladmin`] (Cloud SQL), [`iamcredentials`] (ID tokens
//!   for any principal, the issuer's keys). Those modules are the wire: routes, JSON messages, and
//!   the mapping of input to state calls. [`metadata`] is the metadata server each Cloud Run
//!   instance reaches.
//! - [`state`] holds every resource and every rule (validation, revisions, state transitions,
//!   etags, IAM), in memory or journaled to a data directory; it knows nothing of HTTP or Docker.
//! - [`controller`] makes the containers match the Cloud Run state, through [`runtime`] (the only
//!   code that talks to Docker) and [`ingress`] (the only code that proxies requests).
//! - [`error`] is the one place a failure becomes Google's JSON error.
//! - [`config`] is the command line and the client settings printed for users; [`logs_cli`] is
//!   `cloudrun-emulator logs`, [`token_cli`] `cloudrun-emulator print-identity-token`; [`compose`]
//!   is `cloudrun-emulator compose up|down`, a client that deploys a Docker Compose file as a
//!   Cloud Run service through the APIs above.

pub mod artifactregistry;
pub mod cli_client;
pub mod compose;
pub mod compute;
pub mod config;
pub mod controller;
pub mod error;
pub mod iamcredentials;
pub mod ingress;
pub mod logging;
pub mod logs_cli;
pub mod metadata;
pub mod run;
pub mod run_v2;
pub mod runtime;
pub mod secretmanager;
pub mod server;
pub mod serviceusage;
pub mod sqladmin;
pub mod state;
pub mod token_cli;
pub mod wire;

pub use config::{Config, DEFAULT_LISTEN};
pub use server::{AppState, router, run};
pub use state::Store;
