//! Cloud SQL from inside Cloud Run: a service deployed with `gcloud run services replace`
//! whose backend reads its database password from Secret Manager and queries a real Postgres
//! through the Cloud SQL Auth Proxy sidecar (v2 and v1 forms) and through the
//! `/cloudsql/PROJECT:REGION:INSTANCE` unix socket; an unknown instance fails the revision with
//! the proxy's own words.

use std::time::{Duration, Instant};

use harness::{Emulator, Gcloud};

mod support;
use support::{REGION, SqlLeftovers, get, service_url, unique_name, write};

const PROJECT: &str = "demo-proj";

/// A service whose `app` reaches the instance through a v2 proxy sidecar on 5432, a v1 proxy
/// sidecar on 5433, and the `/cloudsql` socket.
fn service_yaml(service: &str, connection_name: &str) -> String {
    format!(
        r#"
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: {service}
  annotations:
    run.googleapis.com/invoker-iam-disabled: 'true'
spec:
  template:
    metadata:
      annotations:
        run.googleapis.com/cloudsql-instances: {connection_name}
        run.googleapis.com/container-dependencies: '{{"app":["cloud-sql-proxy"]}}'
    spec:
      containers:
      - name: app
        image: cloudrun-emulator/sqlapp:1
        ports:
        - containerPort: 8080
        env:
        - name: DB_USER
          value: appuser
        - name: DB_NAME
          value: appdb
        - name: DB_PASS
          valueFrom:
            secretKeyRef:
              name: db-password
              key: latest
      - name: cloud-sql-proxy
        image: gcr.io/cloud-sql-connectors/cloud-sql-proxy:2.14.1
        args:
        - --structured-logs
        - --port=5432
        - --health-check
        - --http-address=0.0.0.0
        - {connection_name}
        startupProbe:
          httpGet:
            path: /startup
            port: 9090
          timeoutSeconds: 1
          periodSeconds: 2
          failureThreshold: 15
      - name: legacy-proxy
        image: gcr.io/cloudsql-docker/gce-proxy:1.33.2
        command: ["/cloud_sql_proxy", "-instances={connection_name}=tcp:5433"]
"#
    )
}

async fn create_instance(gcloud: &Gcloud, instance: &str) {
    gcloud
        .run([
            "sql",
            "instances",
            "create",
            instance,
            "--database-version=POSTGRES_15",
            "--tier=db-f1-micro",
            REGION,
        ])
        .ok()
        .await
        .expect("instances create");
}

/// The database `appdb` and the user `appuser` (with `password`) on `instance`, made with gcloud.
async fn create_appdb_and_appuser(gcloud: &Gcloud, instance: &str, password: &str) {
    gcloud
        .run([
            "sql",
            "databases",
            "create",
            "appdb",
            "--instance",
            instance,
        ])
        .ok()
        .await
        .expect("databases create");
    let password = format!("--password={password}");
    gcloud
        .run([
            "sql",
            "users",
            "create",
            "appuser",
            "--instance",
            instance,
            &password,
        ])
        .ok()
        .await
        .expect("users create");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backend_queries_cloud_sql_through_the_proxy_sidecar_and_the_unix_socket() {
    harness::ensure_images(&["sandbox", "postgres15", "cloudsql-proxy", "sqlapp"])
        .expect("images build");
    let instance = unique_name("orders");
    let connection_name = format!("{PROJECT}:us-central1:{instance}");
    let _leftovers = SqlLeftovers(connection_name.clone());
    let emulator = Emulator::start().await.expect("emulator starts");
    let gcloud = emulator.gcloud();

    gcloud
        .run(["secrets", "create", "db-password", "--data-file=-"])
        .stdin("s3cret-pw")
        .ok()
        .await
        .expect("secret");
    create_instance(&gcloud, &instance).await;
    create_appdb_and_appuser(&gcloud, &instance, "s3cret-pw").await;

    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = write(
        &dir,
        "service.yaml",
        &service_yaml("orders", &connection_name),
    );
    let started = Instant::now();
    gcloud
        .run(["run", "services", "replace", &yaml, REGION])
        .ok()
        .await
        .expect("the service becomes Ready");
    eprintln!("services replace took {:?}", started.elapsed());
    let url = service_url(&gcloud, "orders").await;

    // Through the v2 proxy sidecar on localhost:5432.
    let (status, body) = get(&format!("{url}/query?host=127.0.0.1&port=5432")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("PostgreSQL 15"), "{body}");
    // Through the v1 proxy sidecar on localhost:5433.
    let (status, body) = get(&format!(
        "{url}/query?host=127.0.0.1&port=5433&sql=SELECT%20current_user"
    ))
    .await;
    assert_eq!((status, body.as_str()), (200, "appuser"));
    // Through the unix socket Cloud Run mounts at /cloudsql.
    let socket_dir = format!("/cloudsql/{connection_name}");
    let (status, body) = get(&format!(
        "{url}/query?host={socket_dir}&sql=SELECT%20current_database()"
    ))
    .await;
    assert_eq!((status, body.as_str()), (200, "appdb"));

    // The proxy printed the real proxy's lines, as structured logs.
    let logs = gcloud
        .run([
            "logging",
            "read",
            "resource.type=cloud_run_revision AND resource.labels.service_name=orders",
            "--format=value(jsonPayload.message,textPayload)",
        ])
        .ok()
        .await
        .expect("logging read");
    assert!(
        logs.stdout
            .contains(&format!("[{connection_name}] Listening on 127.0.0.1:5432")),
        "{}",
        logs.stdout
    );
    assert!(
        logs.stdout
            .contains("The proxy has started successfully and is ready for new connections!"),
        "{}",
        logs.stdout
    );

    gcloud
        .run(["run", "services", "delete", "orders", REGION, "--quiet"])
        .ok()
        .await
        .expect("services delete");
    gcloud
        .run(["sql", "instances", "delete", &instance, "--quiet"])
        .ok()
        .await
        .expect("instances delete");
    emulator.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_password_and_an_unknown_instance_fail_clearly() {
    harness::ensure_images(&["sandbox", "postgres15", "cloudsql-proxy", "sqlapp"])
        .expect("images build");
    let instance = unique_name("ledger");
    let connection_name = format!("{PROJECT}:us-central1:{instance}");
    let _leftovers = SqlLeftovers(connection_name.clone());
    let emulator = Emulator::start().await.expect("emulator starts");
    let gcloud = emulator.gcloud();
    gcloud
        .run(["secrets", "create", "db-password", "--data-file=-"])
        .stdin("not-the-password")
        .ok()
        .await
        .expect("secret");
    create_instance(&gcloud, &instance).await;
    create_appdb_and_appuser(&gcloud, &instance, "the-password").await;
    let dir = tempfile::tempdir().expect("tempdir");

    // The secret holds the wrong password: the revision serves, the query is refused.
    let yaml = write(
        &dir,
        "ledger.yaml",
        &service_yaml("ledger", &connection_name),
    );
    gcloud
        .run(["run", "services", "replace", &yaml, REGION])
        .ok()
        .await
        .expect("the service becomes Ready");
    let url = service_url(&gcloud, "ledger").await;
    let (status, body) = get(&format!("{url}/query?host=127.0.0.1&port=5432")).await;
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("password authentication failed"), "{body}");

    // A proxy naming an instance that does not exist fails the revision with its own words.
    let unknown = format!("{PROJECT}:us-central1:nosuch-{instance}");
    let yaml = write(
        &dir,
        "ghost.yaml",
        &service_yaml("ghost", &connection_name)
            .replace(&format!("- {connection_name}\n"), &format!("- {unknown}\n")),
    );
    let deploy = Instant::now();
    let failed = gcloud
        .run(["run", "services", "replace", &yaml, REGION])
        .await
        .expect("gcloud runs");
    assert!(
        !failed.success,
        "the revision must fail:\n{}",
        failed.stderr
    );
    assert!(!failed.crashed(), "{}", failed.stderr);
    assert!(
        failed.stderr.contains("instanceDoesNotExist")
            && failed
                .stderr
                .contains(&format!("[{unknown}] Unable to mount socket")),
        "{}",
        failed.stderr
    );
    assert!(deploy.elapsed() < Duration::from_secs(60));

    // Nothing else broke: the first service still answers.
    let (status, _) = get(&format!("{url}/")).await;
    assert_eq!(status, 200);
    gcloud
        .run(["sql", "instances", "delete", &instance, "--quiet"])
        .ok()
        .await
        .expect("instances delete");
    emulator.stop().await;
}
