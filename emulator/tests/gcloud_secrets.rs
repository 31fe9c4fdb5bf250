//! The real gcloud CLI against the emulator's Secret Manager: the commands a user types, and the
//! errors they see when something is wrong.

use harness::{Emulator, GcloudOutput};

fn assert_refused(out: &GcloudOutput, status: &str, words: &str) {
    assert!(!out.success, "expected failure, got stdout {}", out.stdout);
    assert!(!out.crashed(), "gcloud crashed:\n{}", out.stderr);
    assert!(
        out.stderr.contains(status) && out.stderr.contains(words),
        "expected {status} with {words:?}, got:\n{}",
        out.stderr
    );
}

#[tokio::test]
async fn a_secret_lives_through_its_whole_lifecycle() {
    let emulator = Emulator::start().await.expect("emulator starts");
    let gcloud = emulator.gcloud();

    let created = gcloud
        .run(["secrets", "create", "db-password", "--data-file=-"])
        .stdin("pw1")
        .ok()
        .await
        .expect("create from stdin");
    assert!(
        created
            .stderr
            .contains("Created version [1] of the secret [db-password].")
    );

    gcloud
        .run(["secrets", "versions", "add", "db-password", "--data-file=-"])
        .stdin("pw2")
        .ok()
        .await
        .expect("add a version");
    let latest = gcloud
        .run([
            "secrets",
            "versions",
            "access",
            "latest",
            "--secret=db-password",
        ])
        .ok()
        .await
        .expect("access latest");
    assert_eq!(
        latest.stdout, "pw2",
        "latest is the newest version, no newline added"
    );
    let first = gcloud
        .run(["secrets", "versions", "access", "1", "--secret=db-password"])
        .ok()
        .await
        .expect("access version 1");
    assert_eq!(first.stdout, "pw1");

    gcloud
        .run([
            "secrets",
            "versions",
            "disable",
            "2",
            "--secret=db-password",
        ])
        .ok()
        .await
        .expect("disable");
    let disabled = gcloud
        .run([
            "secrets",
            "versions",
            "access",
            "latest",
            "--secret=db-password",
        ])
        .await
        .expect("gcloud runs");
    assert_refused(&disabled, "FAILED_PRECONDITION", "is in DISABLED state");

    gcloud
        .run(["secrets", "versions", "enable", "2", "--secret=db-password"])
        .ok()
        .await
        .expect("enable");
    gcloud
        .run([
            "secrets",
            "versions",
            "destroy",
            "1",
            "--secret=db-password",
        ])
        .ok()
        .await
        .expect("destroy");
    let destroyed = gcloud
        .run(["secrets", "versions", "access", "1", "--secret=db-password"])
        .await
        .expect("gcloud runs");
    assert_refused(&destroyed, "FAILED_PRECONDITION", "is in DESTROYED state");
    let re_enable = gcloud
        .run(["secrets", "versions", "enable", "1", "--secret=db-password"])
        .await
        .expect("gcloud runs");
    assert_refused(&re_enable, "FAILED_PRECONDITION", "DESTROYED");

    let states = gcloud
        .run([
            "secrets",
            "versions",
            "list",
            "db-password",
            "--format=value(name.basename(),state)",
        ])
        .ok()
        .await
        .expect("list versions");
    assert_eq!(states.stdout, "2\tenabled\n1\tdestroyed\n");

    let described = gcloud
        .run(["secrets", "describe", "db-password", "--format=json"])
        .ok()
        .await
        .expect("describe");
    let described: serde_json::Value = serde_json::from_str(&described.stdout).expect("json");
    let number = emulator
        .store()
        .project("demo-proj")
        .expect("project")
        .number;
    assert_eq!(
        described["name"],
        format!("projects/{number}/secrets/db-password")
    );
    assert_eq!(
        described["replication"],
        serde_json::json!({"automatic": {}})
    );

    let deleted = gcloud
        .run(["secrets", "delete", "db-password", "--quiet"])
        .ok()
        .await
        .expect("delete");
    assert!(deleted.stderr.contains("Deleted secret [db-password]."));
    let gone = gcloud
        .run(["secrets", "describe", "db-password"])
        .await
        .expect("gcloud runs");
    assert_refused(&gone, "NOT_FOUND", "not found");
}

#[tokio::test]
async fn list_filters_and_replication_policies() {
    let emulator = Emulator::start().await.expect("emulator starts");
    let gcloud = emulator.gcloud();
    for (name, policy) in [
        ("db-user", "--replication-policy=automatic"),
        ("db-host", "--replication-policy=automatic"),
        ("api-key", "--replication-policy=automatic"),
    ] {
        gcloud
            .run(["secrets", "create", name, policy, "--data-file=-"])
            .stdin(format!("value of {name}"))
            .ok()
            .await
            .expect("create");
    }
    gcloud
        .run([
            "secrets",
            "create",
            "regional-copy",
            "--replication-policy=user-managed",
            "--locations=us-central1,europe-west1",
            "--labels=env=prod,team=web",
        ])
        .ok()
        .await
        .expect("create user-managed");

    let filtered = gcloud
        .run([
            "secrets",
            "list",
            "--filter=name:db-",
            "--format=value(name.basename())",
        ])
        .ok()
        .await
        .expect("list");
    assert_eq!(filtered.stdout, "db-host\ndb-user\n");

    let labelled = gcloud
        .run([
            "secrets",
            "list",
            "--filter=labels.env=prod",
            "--format=value(name.basename(),replication.userManaged.replicas[].location)",
        ])
        .ok()
        .await
        .expect("list by label");
    assert_eq!(labelled.stdout, "regional-copy\tus-central1;europe-west1\n");

    let table = gcloud
        .run(["secrets", "list"])
        .ok()
        .await
        .expect("default table");
    assert!(!table.stdout.contains("ERROR"), "{}", table.stdout);
    assert!(table.stdout.contains("api-key") && table.stdout.contains("automatic"));
}

#[tokio::test]
async fn iam_bindings_round_trip_through_gcloud() {
    let emulator = Emulator::start().await.expect("emulator starts");
    let gcloud = emulator.gcloud();
    gcloud
        .run(["secrets", "create", "my-secret", "--data-file=-"])
        .stdin("v")
        .ok()
        .await
        .expect("create");
    let member = "serviceAccount:runner@demo-proj.iam.gserviceaccount.com";
    for _ in 0..2 {
        gcloud
            .run([
                "secrets",
                "add-iam-policy-binding",
                "my-secret",
                &format!("--member={member}"),
                "--role=roles/secretmanager.secretAccessor",
            ])
            .ok()
            .await
            .expect("add binding (twice: the etag from the first write is sent back)");
    }
    let policy = gcloud
        .run([
            "secrets",
            "get-iam-policy",
            "my-secret",
            "--format=value(bindings[0].role,bindings[0].members[0])",
        ])
        .ok()
        .await
        .expect("get policy");
    assert_eq!(
        policy.stdout,
        format!("roles/secretmanager.secretAccessor\t{member}\n")
    );
    let bad_member = gcloud
        .run([
            "secrets",
            "add-iam-policy-binding",
            "my-secret",
            "--member=serviceAccount:not-an-email",
            "--role=roles/secretmanager.secretAccessor",
        ])
        .await
        .expect("gcloud runs");
    assert_refused(&bad_member, "Status code: 400", "not-an-email");
    gcloud
        .run([
            "secrets",
            "remove-iam-policy-binding",
            "my-secret",
            &format!("--member={member}"),
            "--role=roles/secretmanager.secretAccessor",
        ])
        .ok()
        .await
        .expect("remove binding");
}

#[tokio::test]
async fn mistakes_get_google_errors_not_crashes() {
    let emulator = Emulator::start().await.expect("emulator starts");
    let gcloud = emulator.gcloud();
    gcloud
        .run(["secrets", "create", "taken", "--data-file=-"])
        .stdin("v1")
        .ok()
        .await
        .expect("create");

    let duplicate = gcloud
        .run(["secrets", "create", "taken"])
        .await
        .expect("gcloud runs");
    assert_refused(&duplicate, "is the subject of a conflict", "already exists");

    let missing = gcloud
        .run(["secrets", "versions", "access", "latest", "--secret=nosuch"])
        .await
        .expect("gcloud runs");
    assert_refused(&missing, "NOT_FOUND", "nosuch");

    let missing_version = gcloud
        .run(["secrets", "versions", "access", "7", "--secret=taken"])
        .await
        .expect("gcloud runs");
    assert_refused(&missing_version, "NOT_FOUND", "versions/7");

    let bad_id = gcloud
        .run(["secrets", "create", "bad.id"])
        .await
        .expect("gcloud runs");
    assert_refused(&bad_id, "INVALID_ARGUMENT", "bad.id");

    let largest = gcloud
        .run(["secrets", "versions", "add", "taken", "--data-file=-"])
        .stdin(vec![b'x'; 64 * 1024])
        .await
        .expect("gcloud runs");
    assert!(largest.success, "64 KiB is allowed: {}", largest.stderr);
    gcloud
        .run(["secrets", "versions", "disable", "2", "--secret=taken"])
        .ok()
        .await
        .expect("disable the big one");

    let still_there = gcloud
        .run(["secrets", "versions", "access", "1", "--secret=taken"])
        .ok()
        .await
        .expect("the failures lost nothing");
    assert_eq!(still_there.stdout, "v1");

    let add_to_missing = gcloud
        .run(["secrets", "versions", "add", "nosuch", "--data-file=-"])
        .stdin("x")
        .await
        .expect("gcloud runs");
    assert_refused(&add_to_missing, "NOT_FOUND", "nosuch");
}
