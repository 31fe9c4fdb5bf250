//! Docker Compose files run as Cloud Run multi-container services: `cloudrun-emulator compose
//! up/down` as a user runs it against a running emulator, and the harness's `compose_up`, with
//! real Docker builds, the real gcloud CLI and the emulator's Secret Manager.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use harness::Emulator;

mod support;
use support::{BIN, EmulatorProcess, REGION, containers_labelled, get};

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/compose")
        .join(path)
}

async fn emulator() -> Emulator {
    harness::ensure_images(&["sandbox", "testapp"]).expect("test images build");
    Emulator::start().await.expect("emulator starts")
}

/// A Compose project written into a fresh directory.
fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).expect("write file");
    }
    dir
}

async fn body(url: &str) -> String {
    let (status, body) = get(url).await;
    assert_eq!(status, 200, "GET {url}: {body}");
    body
}

#[tokio::test]
async fn a_shop_behind_nginx_built_from_local_contexts_serves_its_routes() {
    let emulator = emulator().await;
    let started = Instant::now();
    let shop = emulator
        .compose_up(fixture("shop/compose.yaml"))
        .await
        .expect("compose up");
    eprintln!("compose up (with builds) took {:?}", started.elapsed());
    assert_eq!(shop.name(), "shop", "named after the project directory");

    let home = body(&format!("{}/", shop.url)).await;
    assert!(home.contains("Welcome to the shop"), "{home}");
    assert_eq!(
        body(&format!("{}/api/hello", shop.url)).await,
        "hi from Corner Shop, version 1.0",
        ".env interpolation, env_file and a build argument's default reached the backend"
    );
    assert_eq!(
        body(&format!("{}/api/key", shop.url)).await,
        "key-from-a-file"
    );
    assert!(
        shop.warnings
            .iter()
            .any(|w| w.contains("compose.yaml:33:") && w.contains("port 8000")),
        "the command healthcheck is probed on its port, with a warning: {:?}",
        shop.warnings
    );

    let gcloud = emulator.gcloud();
    let described = gcloud
        .run([
            "run",
            "services",
            "describe",
            "shop",
            REGION,
            "--format=value(status.url)",
        ])
        .ok()
        .await
        .expect("gcloud sees the service");
    assert_eq!(described.stdout.trim(), shop.url);
    let key = gcloud
        .run([
            "secrets",
            "versions",
            "access",
            "latest",
            "--secret=shop-api_key",
        ])
        .ok()
        .await
        .expect("the secret is in Secret Manager");
    assert_eq!(key.stdout, "key-from-a-file");

    let revision = shop.revision.clone();
    assert!(
        containers_labelled("revision", &revision).len() >= 4,
        "sandbox and three containers"
    );
    shop.down().await.expect("compose down");
    assert_eq!(
        containers_labelled("revision", &revision).len(),
        0,
        "down removes every container"
    );
    let gone = gcloud
        .run(["secrets", "describe", "shop-api_key"])
        .await
        .expect("gcloud runs");
    assert!(!gone.success, "down deletes the secrets up stored");
}

#[tokio::test]
async fn the_shop_backend_reaches_cloud_sql_through_the_proxy_service() {
    harness::ensure_images(&["sandbox", "postgres15", "cloudsql-proxy"]).expect("images build");
    let emulator = emulator().await;
    let gcloud = emulator.gcloud();
    let instance = format!("shopdb-{}", rand::random_range(10_000..99_999));
    for args in [
        vec![
            "sql",
            "instances",
            "create",
            &instance,
            "--database-version=POSTGRES_15",
            "--tier=db-f1-micro",
            REGION,
        ],
        vec![
            "sql",
            "databases",
            "create",
            "appdb",
            "--instance",
            &instance,
        ],
        vec![
            "sql",
            "users",
            "create",
            "appuser",
            "--instance",
            &instance,
            "--password=sh0p-pw",
        ],
    ] {
        gcloud
            .run(args)
            .ok()
            .await
            .expect("gcloud sets up Cloud SQL");
    }
    let connection_name = format!("{}:us-central1:{instance}", emulator.project());

    let shop = emulator
        .compose(fixture("shop-db/compose.yaml"))
        .env("INSTANCE_CONNECTION_NAME", &connection_name)
        .env("DB_PASS", "sh0p-pw")
        .up()
        .await
        .expect("compose up");
    let home = body(&format!("{}/", shop.url)).await;
    assert!(home.contains("Welcome to the shop"), "{home}");
    let db: serde_json::Value =
        serde_json::from_str(&body(&format!("{}/api/db", shop.url)).await).expect("JSON");
    assert!(
        db["version"]
            .as_str()
            .unwrap_or_default()
            .starts_with("PostgreSQL 15"),
        "the backend queried the real server through the proxy stand-in: {db}"
    );
    assert!(db["now"].as_str().is_some(), "{db}");
    shop.down().await.expect("compose down");
    gcloud
        .run(["sql", "instances", "delete", &instance, "--quiet"])
        .ok()
        .await
        .expect("instance deleted");
}

#[tokio::test]
async fn variables_come_from_the_shell_then_dot_env_with_defaults() {
    let emulator = emulator().await;
    let dir = project(&[
        (
            "compose.yaml",
            r#"
services:
  web:
    image: cloudrun-emulator/testapp:${TESTAPP_TAG}
    ports: ["${WEB_PORT:-8080}:${WEB_PORT:-8080}"]
    command: serve --port ${WEB_PORT:-8080}
    environment:
      FROM_SHELL: ${FROM_SHELL}
      FROM_DOT_ENV: ${FROM_DOT_ENV}
      DEFAULTED: ${NOT_SET_ANYWHERE:-the default}
      LITERAL: $${NOT_INTERPOLATED}
"#,
        ),
        (
            ".env",
            "TESTAPP_TAG=1\nFROM_DOT_ENV=dot env\nFROM_SHELL=loses\n",
        ),
    ]);
    let web = emulator
        .compose(dir.path().join("compose.yaml"))
        .env("FROM_SHELL", "shell wins")
        .env("WEB_PORT", "9000")
        .service("vars")
        .up()
        .await
        .expect("compose up");
    for (var, expected) in [
        ("FROM_SHELL", "shell wins"),
        ("FROM_DOT_ENV", "dot env"),
        ("DEFAULTED", "the default"),
        ("LITERAL", "${NOT_INTERPOLATED}"),
        ("PORT", "9000"),
    ] {
        assert_eq!(
            body(&format!("{}/env/{var}", web.url)).await,
            expected,
            "{var}"
        );
    }
}

#[tokio::test]
async fn env_files_merge_under_environment() {
    let emulator = emulator().await;
    let dir = project(&[
        (
            "compose.yaml",
            r#"
services:
  web:
    image: cloudrun-emulator/testapp:1
    ports: ["8080:8080"]
    env_file:
      - common.env
      - path: local.env
        required: false
    environment:
      - OVERRIDDEN=by environment
"#,
        ),
        (
            "common.env",
            "# shared settings\nexport MODE=production\nOVERRIDDEN=by common.env\nQUOTED=\"two\\nlines\"\n",
        ),
    ]);
    let web = emulator
        .compose_up(dir.path().join("compose.yaml"))
        .await
        .expect("compose up without the optional env file");
    assert_eq!(body(&format!("{}/env/MODE", web.url)).await, "production");
    assert_eq!(
        body(&format!("{}/env/OVERRIDDEN", web.url)).await,
        "by environment"
    );
    assert_eq!(body(&format!("{}/env/QUOTED", web.url)).await, "two\nlines");
}

#[tokio::test]
async fn a_dependent_starts_only_once_its_dependency_is_healthy() {
    let emulator = emulator().await;
    // `api` listens two seconds after it starts; `web` calls it the moment it starts and keeps
    // what it got in /tmp/at-start, which the test reads through web's /file route.
    let dir = project(&[(
        "compose.yaml",
        r#"
services:
  web:
    image: cloudrun-emulator/testapp:1
    ports: ["8080:8080"]
    entrypoint:
      - sh
      - -c
      - >-
        python3 -c "import urllib.request; print(urllib.request.urlopen('http://api:5001/healthz').read().decode())"
        > /tmp/at-start 2>&1; exec python3 -u /app/testapp.py serve
    depends_on:
      api:
        condition: service_healthy
  api:
    image: cloudrun-emulator/testapp:1
    entrypoint: ["sh", "-c", "sleep 2; exec python3 -u /app/testapp.py serve --port 5001"]
    expose: ["5001"]
    healthcheck:
      test: ["CMD-SHELL", "curl -fsS http://localhost:5001/healthz"]
      interval: 1s
      retries: 20
"#,
    )]);
    let web = emulator
        .compose(dir.path().join("compose.yaml"))
        .service("ordered")
        .up()
        .await
        .expect("compose up");
    let at_start = body(&format!("{}/file?path=/tmp/at-start", web.url)).await;
    assert_eq!(
        at_start.trim(),
        "ok",
        "web found api healthy when it started"
    );
}

#[tokio::test]
async fn secrets_from_files_the_environment_and_secret_manager_are_mounted() {
    let emulator = emulator().await;
    let gcloud = emulator.gcloud();
    gcloud
        .run(["secrets", "create", "shared-token", "--data-file=-"])
        .stdin("made with gcloud")
        .ok()
        .await
        .expect("an existing Secret Manager secret");
    let dir = project(&[
        (
            "compose.yaml",
            r#"
services:
  web:
    image: cloudrun-emulator/testapp:1
    ports: ["8080:8080"]
    secrets:
      - db_password
      - source: api_token
        target: /etc/app/token
      - shared
secrets:
  db_password:
    file: ./db_password.txt
  api_token:
    environment: API_TOKEN
  shared:
    external: true
    name: shared-token
"#,
        ),
        ("db_password.txt", "s3cret"),
    ]);
    let web = emulator
        .compose(dir.path().join("compose.yaml"))
        .env("API_TOKEN", "tok-123")
        .service("vault")
        .up()
        .await
        .expect("compose up");
    let file = |path: &str| format!("{}/file?path={path}", web.url);
    assert_eq!(body(&file("/run/secrets/db_password")).await, "s3cret");
    assert_eq!(body(&file("/etc/app/token")).await, "tok-123");
    assert_eq!(body(&file("/run/secrets/shared")).await, "made with gcloud");
    let stored = gcloud
        .run([
            "secrets",
            "versions",
            "access",
            "latest",
            "--secret=vault-db_password",
        ])
        .ok()
        .await
        .expect("file secrets are stored in Secret Manager");
    assert_eq!(stored.stdout, "s3cret");
}

/// `cloudrun-emulator compose ARGS` in `dir`, pointed at `emulator` by its environment.
fn compose(emulator: &EmulatorProcess, dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("compose")
        .args(args)
        .current_dir(dir)
        .env("CLOUDRUN_EMULATOR_URL", &emulator.url)
        .env("CLOUDRUN_EMULATOR_PROJECT", "demo-proj")
        .env("GREETING", "hello from the shell")
        .output()
        .expect("compose runs")
}

#[tokio::test]
async fn the_cli_brings_a_compose_file_up_and_down_on_a_running_emulator() {
    harness::ensure_images(&["sandbox", "testapp"]).expect("test images build");
    let emulator = EmulatorProcess::in_memory();
    let dir = project(&[
        (
            "compose.yaml",
            "services:\n  web:\n    image: cloudrun-emulator/testapp:1\n    ports: [\"8080:8080\"]\n    environment: [GREETING]\n    privileged: true\n    networks: [front]\n  cache:\n    image: cloudrun-emulator/testapp:1\n    command: serve --port 6379\n    ports: [\"6379:6379\"]\nnetworks:\n  front:\n",
        ),
        (
            "broken.yaml",
            "services:\n  web:\n    image: cloudrun-emulator/testapp:1\n    ports: 8080\n",
        ),
    ]);

    let dry = compose(
        &emulator,
        dir.path(),
        &["up", "--dry-run", "--service", "cli-web"],
    );
    assert!(
        dry.status.success(),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    let knative: serde_json::Value =
        serde_json::from_slice(&dry.stdout).expect("--dry-run prints the Knative Service");
    assert_eq!(knative["metadata"]["name"], "cli-web");
    let ports = &knative["spec"]["template"]["spec"]["containers"][0]["ports"];
    assert_eq!(ports, &serde_json::json!([{"containerPort": 8080}]));
    assert_eq!(
        containers_labelled("service", "cli-web").len(),
        0,
        "nothing deployed"
    );

    let up = compose(&emulator, dir.path(), &["up", "--service", "cli-web"]);
    let stderr = String::from_utf8_lossy(&up.stderr);
    assert!(up.status.success(), "compose up failed:\n{stderr}");
    let url = String::from_utf8_lossy(&up.stdout).trim().to_string();
    assert!(
        url.starts_with("http://127.0.0.1:"),
        "stdout is the URL: {url:?}\n{stderr}"
    );
    assert!(
        stderr.contains(
            "WARNING: compose.yaml:6: services.web: `privileged` has no Cloud Run equivalent"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("WARNING: compose.yaml:7:") && stderr.contains("networks"),
        "{stderr}"
    );
    assert!(
        stderr.contains("WARNING: compose.yaml:11: service \"cache\" publishes port 6379"),
        "{stderr}"
    );
    assert_eq!(
        body(&format!("{url}/env/GREETING")).await,
        "hello from the shell"
    );
    assert_eq!(
        body(&format!("{url}/proxy/6379/healthz")).await,
        "ok",
        "the sidecar is reachable on localhost inside the service"
    );

    let broken = compose(&emulator, dir.path(), &["up", "broken.yaml"]);
    assert!(!broken.status.success());
    let stderr = String::from_utf8_lossy(&broken.stderr);
    assert!(
        stderr.contains("ERROR: broken.yaml:4: services.web.ports must be a list"),
        "{stderr}"
    );

    let down = compose(&emulator, dir.path(), &["down", "--service", "cli-web"]);
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    assert_eq!(
        containers_labelled("service", "cli-web").len(),
        0,
        "down removes the containers"
    );
    let after = reqwest::get(&url).await;
    assert!(
        after.map(|r| r.status() != 200).unwrap_or(true),
        "the URL no longer serves"
    );
}
