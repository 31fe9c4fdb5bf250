//! Cloud SQL for PostgreSQL with the real gcloud CLI, real Docker and a real Postgres server:
//! an instance, a database and a user made with gcloud, used with tokio-postgres from the host,
//! surviving an emulator restart, and gone without a trace once deleted.

use harness::{Emulator, Gcloud, GcloudOutput};
use serde_json::Value;

mod support;
use support::{SqlLeftovers, sql_instance_objects, unique_name};

const PROJECT: &str = "demo-proj";

async fn describe(gcloud: &Gcloud, instance: &str) -> Value {
    let out = gcloud
        .run(["sql", "instances", "describe", instance, "--format=json"])
        .ok()
        .await
        .expect("describe");
    serde_json::from_str(&out.stdout).expect("describe prints JSON")
}

async fn connect(
    address: &str,
    user: &str,
    password: &str,
    database: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (host, port) = address.rsplit_once(':').expect("HOST:PORT");
    let (client, connection) = tokio_postgres::Config::new()
        .host(host)
        .port(port.parse().expect("port"))
        .user(user)
        .password(password)
        .dbname(database)
        .connect(tokio_postgres::NoTls)
        .await?;
    tokio::spawn(connection);
    Ok(client)
}

/// What Postgres said, not just `db error`.
fn said(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => db.message().to_string(),
        None => error.to_string(),
    }
}

fn assert_refused(out: &GcloudOutput, words: &str) {
    assert!(!out.success, "expected gcloud to fail:\n{}", out.stderr);
    assert!(!out.crashed(), "gcloud crashed:\n{}", out.stderr);
    assert!(
        out.stderr.contains(words),
        "expected {words:?} in:\n{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_made_with_gcloud_is_a_real_postgres_that_survives_restarts() {
    harness::ensure_images(&["postgres15"]).expect("the Postgres image builds");
    let data = tempfile::tempdir().expect("temp dir");
    let instance = unique_name("shop");
    let connection_name = format!("{PROJECT}:us-central1:{instance}");
    let _leftovers = SqlLeftovers(connection_name.clone());
    let emulator = Emulator::builder()
        .data_dir(data.path())
        .start()
        .await
        .expect("emulator starts");
    let gcloud = emulator.gcloud();

    // A developer creates an instance, a database and a user, as against Google Cloud.
    let created = gcloud
        .run([
            "sql",
            "instances",
            "create",
            &instance,
            "--database-version=POSTGRES_15",
            "--tier=db-f1-micro",
            "--region=us-central1",
            "--storage-type=SSD",
            "--storage-size=10GB",
            "--backup",
        ])
        .ok()
        .await
        .expect("instances create");
    assert!(created.stdout.contains("RUNNABLE"), "{}", created.stdout);
    gcloud
        .run([
            "sql",
            "databases",
            "create",
            "appdb",
            "--instance",
            &instance,
        ])
        .ok()
        .await
        .expect("databases create");
    gcloud
        .run([
            "sql",
            "users",
            "create",
            "appuser",
            "--instance",
            &instance,
            "--password=s3cret",
        ])
        .ok()
        .await
        .expect("users create");

    let described = describe(&gcloud, &instance).await;
    assert_eq!(described["state"], "RUNNABLE");
    assert_eq!(described["connectionName"], connection_name.as_str());
    assert_eq!(described["databaseVersion"], "POSTGRES_15");
    assert_eq!(described["settings"]["tier"], "db-f1-micro");
    assert_eq!(described["ipAddresses"][0]["ipAddress"], "127.0.0.1");
    let address = described["dnsName"]
        .as_str()
        .expect("the emulator reports where the server listens")
        .to_string();
    let databases = gcloud
        .run(["sql", "databases", "list", "--instance", &instance])
        .ok()
        .await
        .expect("databases list");
    assert!(databases.stdout.contains("appdb") && databases.stdout.contains("postgres"));
    let users = gcloud
        .run(["sql", "users", "list", "--instance", &instance])
        .ok()
        .await
        .expect("users list");
    assert!(users.stdout.contains("appuser"), "{}", users.stdout);

    // The user is a real role: it writes to its database with its password.
    let client = connect(&address, "appuser", "s3cret", "appdb")
        .await
        .expect("appuser connects to appdb");
    client
        .batch_execute(
            "CREATE TABLE orders (id int PRIMARY KEY, item text); \
             INSERT INTO orders VALUES (1, 'coffee')",
        )
        .await
        .expect("appuser writes");
    drop(client);

    // A wrong password and an unknown database are refused by Postgres itself.
    let wrong = connect(&address, "appuser", "guess", "appdb")
        .await
        .expect_err("a wrong password is refused");
    assert!(
        said(&wrong).contains("password authentication failed"),
        "{wrong}"
    );
    let missing = connect(&address, "appuser", "s3cret", "nosuch")
        .await
        .expect_err("an unknown database is refused");
    assert!(
        said(&missing).contains("\"nosuch\" does not exist"),
        "{missing}"
    );

    // set-password changes the real password.
    gcloud
        .run([
            "sql",
            "users",
            "set-password",
            "appuser",
            "--instance",
            &instance,
            "--password=n3w",
        ])
        .ok()
        .await
        .expect("users set-password");
    assert!(
        connect(&address, "appuser", "s3cret", "appdb")
            .await
            .is_err()
    );

    // The data survives an emulator restart on the same data directory.
    emulator.stop().await;
    let emulator = Emulator::builder()
        .data_dir(data.path())
        .start()
        .await
        .expect("emulator restarts");
    let gcloud = emulator.gcloud();
    let address = wait_runnable(&gcloud, &instance).await;
    let client = connect(&address, "appuser", "n3w", "appdb")
        .await
        .expect("appuser connects after the restart with its new password");
    let row = client
        .query_one("SELECT item FROM orders WHERE id = 1", &[])
        .await
        .expect("the row is still there");
    assert_eq!(row.get::<_, String>(0), "coffee");
    drop(client);

    // Deleting the instance removes its server and its data.
    assert!(!sql_instance_objects(&connection_name).is_empty());
    gcloud
        .run(["sql", "instances", "delete", &instance, "--quiet"])
        .ok()
        .await
        .expect("instances delete");
    assert_eq!(sql_instance_objects(&connection_name), Vec::<String>::new());
    let gone = gcloud
        .run(["sql", "instances", "describe", &instance])
        .await
        .expect("gcloud runs");
    assert_refused(&gone, "does not exist");
    emulator.stop().await;
}

/// Polls describe until the restarted server answers (the emulator starts it in the background).
async fn wait_runnable(gcloud: &Gcloud, instance: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let described = describe(gcloud, instance).await;
        if let Some(address) = described["dnsName"].as_str()
            && described["state"] == "RUNNABLE"
            && connect(address, "cloudsql-probe", "x", "postgres")
                .await
                .err()
                .is_some_and(|e| said(&e).contains("password authentication failed"))
        {
            return address.to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the instance did not come back: {described}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn mistakes_get_cloud_sql_errors_and_break_nothing() {
    harness::ensure_images(&["postgres15"]).expect("the Postgres image builds");
    let instance = unique_name("errs");
    let _leftovers = SqlLeftovers(format!("{PROJECT}:us-central1:{instance}"));
    let emulator = Emulator::start().await.expect("emulator starts");
    let gcloud = emulator.gcloud();

    let mysql = gcloud
        .run([
            "sql",
            "instances",
            "create",
            &instance,
            "--database-version=MYSQL_8_0",
            "--tier=db-f1-micro",
            "--region=us-central1",
        ])
        .await
        .expect("gcloud runs");
    assert_refused(&mysql, "POSTGRES_15");

    let unknown = gcloud
        .run(["sql", "instances", "describe", "nosuch"])
        .await
        .expect("gcloud runs");
    assert_refused(&unknown, "The Cloud SQL instance does not exist.");
    let no_instance = gcloud
        .run(["sql", "databases", "create", "appdb", "--instance=nosuch"])
        .await
        .expect("gcloud runs");
    assert_refused(&no_instance, "does not exist");

    gcloud
        .run([
            "sql",
            "instances",
            "create",
            &instance,
            "--database-version=POSTGRES_15",
            "--tier=db-f1-micro",
            "--region=us-central1",
        ])
        .ok()
        .await
        .expect("instances create");
    let again = gcloud
        .run([
            "sql",
            "instances",
            "create",
            &instance,
            "--database-version=POSTGRES_15",
            "--tier=db-f1-micro",
            "--region=us-central1",
        ])
        .await
        .expect("gcloud runs");
    assert_refused(&again, "The Cloud SQL instance already exists.");
    gcloud
        .run([
            "sql",
            "users",
            "create",
            "app",
            "--instance",
            &instance,
            "--password=pw",
        ])
        .ok()
        .await
        .expect("users create");
    let twice = gcloud
        .run([
            "sql",
            "users",
            "create",
            "app",
            "--instance",
            &instance,
            "--password=pw",
        ])
        .await
        .expect("gcloud runs");
    assert_refused(&twice, "already exists");
    let nobody = gcloud
        .run([
            "sql",
            "users",
            "set-password",
            "nobody",
            "--instance",
            &instance,
            "--password=x",
        ])
        .await
        .expect("gcloud runs");
    assert_refused(&nobody, "does not exist");

    // After all that the instance still works.
    let described = describe(&gcloud, &instance).await;
    assert_eq!(described["state"], "RUNNABLE");
    let address = described["dnsName"].as_str().expect("address");
    connect(address, "app", "pw", "postgres")
        .await
        .expect("the user made before the mistakes connects");
    gcloud
        .run([
            "sql",
            "instances",
            "patch",
            &instance,
            "--tier=db-custom-2-7680",
            "--quiet",
        ])
        .ok()
        .await
        .expect("instances patch");
    let patched = describe(&gcloud, &instance).await;
    assert_eq!(patched["settings"]["tier"], "db-custom-2-7680");
    assert_eq!(patched["state"], "RUNNABLE");
    let listed = gcloud
        .run(["sql", "instances", "list"])
        .ok()
        .await
        .expect("instances list");
    assert!(listed.stdout.contains(&instance), "{}", listed.stdout);
    gcloud
        .run(["sql", "instances", "delete", &instance, "--quiet"])
        .ok()
        .await
        .expect("instances delete");
    emulator.stop().await;
}
