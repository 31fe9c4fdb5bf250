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
                .user("app", WEB_DB_PASSWORD)
                .template_database("app"),
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

/// The microservices scenario's Cloud SQL users, one per backend, each with its own
/// `DB_CREDENTIALS` secret (`auth-db-credentials`, ...) holding `{user, password, database}`.
pub const MICRO_DB_USERS: [(&str, &str); 3] = [
    ("auth", "auth_svc"),
    ("product", "product_svc"),
    ("order", "order_svc"),
];

/// The tables of the microservices scenario and each backend's grants on them; three products,
/// the first (`id` 1) with 5 in stock.
const MICRO_SCHEMA: &str = "
CREATE TABLE users (id serial PRIMARY KEY, email text UNIQUE NOT NULL,
                    password_hash text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE products (id serial PRIMARY KEY, name text NOT NULL, price_cents int NOT NULL,
                       stock int NOT NULL CHECK (stock >= 0));
CREATE TABLE orders (id serial PRIMARY KEY, product_id int NOT NULL REFERENCES products,
                     quantity int NOT NULL, total_cents int NOT NULL,
                     created_at timestamptz NOT NULL DEFAULT now());
INSERT INTO products (name, price_cents, stock) VALUES
  ('Espresso cup', 1200, 5), ('Moka pot', 3500, 20), ('Grinder', 9900, 2);
GRANT SELECT, INSERT ON users TO auth_svc;
GRANT USAGE ON SEQUENCE users_id_seq TO auth_svc;
GRANT SELECT, UPDATE ON products TO product_svc;
GRANT SELECT, INSERT ON orders TO order_svc;
GRANT USAGE ON SEQUENCE orders_id_seq TO order_svc;
";

/// The microservices scenario before its services that need other services' URLs: a Cloud SQL
/// instance `shop` (database `shop`, owner `shop`, one user per backend), the JWT signing key
/// `jwt-signing-key`, a Redis `cache`, a Pub/Sub emulator, the image `cloudrun-emulator/micro:1`
/// and the private services `auth` and `product`. The test then deploys [`micro_service`]
/// `order` with `${PRODUCT_URL}` and `frontend` with every URL, as a user would from
/// `gcloud run services describe`.
pub fn micro_stack() -> Stack {
    let mut instance = SqlInstance::postgres("shop")
        .database("shop")
        .user("shop", "shop-owner-pw");
    let mut stack = Stack::new();
    for (service, user) in MICRO_DB_USERS {
        let password = format!("{user}-pw");
        instance = instance.user(user, &password);
        stack = stack.secret(
            format!("{service}-db-credentials"),
            format!(r#"{{"user":"{user}","password":"{password}","database":"shop"}}"#),
        );
    }
    stack
        .secret("jwt-signing-key", "micro-jwt-signing-key")
        .sql_instance(instance.fixture_sql(MICRO_SCHEMA))
        .redis("cache")
        .pubsub()
        .build_image("cloudrun-emulator/micro:1", app("micro"))
        .service(micro_service("auth"))
        .service(micro_service("product"))
}

/// One service of the microservices scenario (`apps/micro/NAME.yaml`), private, on instance
/// `shop`.
pub fn micro_service(name: &str) -> CloudRunService {
    CloudRunService::from_yaml(app(&format!("micro/{name}.yaml"))).var("INSTANCE", "shop")
}
