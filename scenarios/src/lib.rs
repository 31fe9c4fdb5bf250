//! Realistic stacks declared once, for the scenario tests in `tests/` and the `bench` binary.
//!
//! Each function returns a [`Stack`] ready to start: the example apps of `apps/` (their
//! Dockerfiles build offline) wired together as a team would deploy them to Cloud Run.

use std::path::PathBuf;

use harness::{CloudRunService, SqlInstance, Stack};

/// The database password of the web stack, stored in Secret Manager as `db-password`.
pub const WEB_DB_PASSWORD: &str = "web-stack-s3cret";

/// A path under this crate's `apps/` directory.
pub fn app(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("apps")
        .join(path)
}

/// The web stack: one service `web` of four containers sharing localhost (nginx on 8000,
/// frontend, backend, Cloud SQL Auth Proxy), a Cloud SQL instance `db` with database and user
/// `app`, and the user's password in the secret `db-password` the backend reads.
pub fn web_stack() -> Stack {
    Stack::new()
        .secret("db-password", WEB_DB_PASSWORD)
        .sql_instance(
            SqlInstance::postgres("db")
                .database("app")
                .user("app", WEB_DB_PASSWORD),
        )
        .build_image("cloudrun-emulator/web-proxy:1", app("web/proxy"))
        .build_image("cloudrun-emulator/web-frontend:1", app("web/frontend"))
        .build_image("cloudrun-emulator/web-backend:1", app("web/backend"))
        .service(web_service())
}

/// The web stack's `service.yaml`, public, pointed at instance `db` and secret `db-password`.
pub fn web_service() -> CloudRunService {
    CloudRunService::from_yaml(app("web/service.yaml"))
        .var("INSTANCE", "db")
        .var("DB_PASSWORD_SECRET", "db-password")
        .allow_unauthenticated()
}

/// The echo service of the failure scenarios (`apps/echo/service.yaml`): the test app as
/// ingress with `GREETING` from the secret `greeting`, and a sidecar run with `sidecar_args`.
pub fn echo_service(name: &str, sidecar_args: &[&str]) -> CloudRunService {
    let args = sidecar_args
        .iter()
        .map(|a| format!("{a:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    CloudRunService::from_yaml(app("echo/service.yaml"))
        .var("SERVICE", name)
        .var("SIDECAR_ARGS", format!("[{args}]"))
        .allow_unauthenticated()
}

/// A sidecar that serves on localhost:5000.
pub const HEALTHY_SIDECAR: &[&str] = &["serve", "--port", "5000"];

/// The echo stack: the test app image and a `greeting` secret holding `greeting`.
pub fn echo_stack(name: &str, greeting: &str) -> Stack {
    Stack::new()
        .image("testapp")
        .secret("greeting", greeting)
        .service(echo_service(name, HEALTHY_SIDECAR))
}
