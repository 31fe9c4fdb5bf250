//! The `cloudrun-emulator` binary as users run it: flags, environment, health, signals, and the
//! durability of `--data-dir` across a kill -9.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

mod support;
use support::{BIN, EmulatorProcess};

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

#[tokio::test]
async fn serves_health_and_stops_cleanly_on_sigterm() {
    let emulator = EmulatorProcess::start(&[], &[("CLOUDRUN_EMULATOR_LISTEN", "127.0.0.1:0")]);
    let health = http()
        .get(format!("{}/healthz", emulator.url))
        .send()
        .await
        .expect("answered");
    assert_eq!(health.status(), 200);

    emulator.terminate();
}

#[test]
fn env_prints_exports_for_every_api() {
    let out = Command::new(BIN)
        .args(["env", "--listen", "127.0.0.1:7777", "--project", "my-proj"])
        .output()
        .expect("runs");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).expect("utf-8");
    for api in [
        "SECRETMANAGER",
        "SERVICEUSAGE",
        "ARTIFACTREGISTRY",
        "COMPUTE",
    ] {
        assert!(
            text.contains(&format!(
                "export CLOUDSDK_API_ENDPOINT_OVERRIDES_{api}=http://127.0.0.1:7777/\n"
            )),
            "{text}"
        );
    }
    assert!(text.contains("export CLOUDSDK_CORE_PROJECT=my-proj\n"));
    assert!(text.contains("export CLOUDSDK_AUTH_DISABLE_CREDENTIALS=true\n"));
}

#[test]
fn a_bad_listen_address_is_a_clear_error() {
    let out = Command::new(BIN)
        .args(["--listen", "not-an-address"])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--listen"), "{stderr}");
}

async fn create(client: &reqwest::Client, url: &str, id: &str, payload: &str) -> bool {
    use base64::Engine;
    let created = client
        .post(format!("{url}/v1/projects/demo-proj/secrets?secretId={id}"))
        .json(&json!({"replication": {"automatic": {}}, "labels": {"n": id}}))
        .send()
        .await;
    if !created.is_ok_and(|r| r.status() == 200) {
        return false;
    }
    let data = base64::engine::general_purpose::STANDARD.encode(payload);
    client
        .post(format!(
            "{url}/v1/projects/demo-proj/secrets/{id}:addVersion"
        ))
        .json(&json!({"payload": {"data": data}}))
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
}

async fn read(client: &reqwest::Client, url: &str, id: &str) -> Option<String> {
    use base64::Engine;
    let response = client
        .get(format!(
            "{url}/v1/projects/demo-proj/secrets/{id}/versions/latest:access"
        ))
        .send()
        .await
        .ok()?;
    let body: Value = response.json().await.ok()?;
    let data = body["payload"]["data"].as_str()?;
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .ok()?,
    )
    .ok()
}

#[tokio::test]
async fn kill_9_loses_nothing_that_was_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let client = http();

    let first = EmulatorProcess::on(dir.path());
    for i in 0..20 {
        assert!(
            create(
                &client,
                &first.url,
                &format!("calm-{i}"),
                &format!("value {i}")
            )
            .await
        );
    }
    let url = first.url.clone();
    let writer = {
        let client = client.clone();
        tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for i in 0.. {
                let id = format!("busy-{i}");
                if !create(&client, &url, &id, &format!("busy value {i}")).await {
                    break;
                }
                acknowledged.push(id);
            }
            acknowledged
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    first.kill_9();
    let acknowledged = writer.await.expect("writer finishes when the server dies");
    assert!(acknowledged.len() > 5, "the kill landed mid-stream");

    let second = EmulatorProcess::on(dir.path());
    for i in 0..20 {
        assert_eq!(
            read(&client, &second.url, &format!("calm-{i}"))
                .await
                .as_deref(),
            Some(format!("value {i}").as_str())
        );
    }
    for id in &acknowledged {
        let n = id.trim_start_matches("busy-");
        assert_eq!(
            read(&client, &second.url, id).await.as_deref(),
            Some(format!("busy value {n}").as_str()),
            "acknowledged write {id} survived"
        );
    }
    assert!(create(&client, &second.url, "after-restart", "fine").await);
    second.kill_9();

    let third = EmulatorProcess::on(dir.path());
    assert_eq!(
        read(&client, &third.url, "after-restart").await.as_deref(),
        Some("fine")
    );
}

#[tokio::test]
async fn one_data_dir_serves_one_emulator() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _first = EmulatorProcess::on(dir.path());
    let out = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("in use by another emulator"), "{stderr}");
}

/// The claims part of a JWT, decoded.
fn jwt_part(token: &str, index: usize) -> Value {
    use base64::Engine;
    let part = token.split('.').nth(index).expect("a JWT has three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON")
}

#[tokio::test]
async fn print_identity_token_prints_a_token_signed_by_the_served_key_kept_across_restarts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let emulator = EmulatorProcess::on(dir.path());
    let out = Command::new(BIN)
        .args([
            "print-identity-token",
            "alice@example.com",
            "--audiences=http://127.0.0.1:9",
            "--emulator",
            &emulator.url,
        ])
        .output()
        .expect("the CLI runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).expect("utf-8");
    let token = token.trim();
    let claims = jwt_part(token, 1);
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["aud"], "http://127.0.0.1:9");
    assert_eq!(claims["iss"], "https://accounts.google.com");
    let kid = jwt_part(token, 0)["kid"].clone();

    let certs = |url: String| async move {
        let jwks: Value = http()
            .get(format!("{url}/oauth2/v3/certs"))
            .send()
            .await
            .expect("certs")
            .json()
            .await
            .expect("JWKS");
        jwks["keys"][0]["kid"].clone()
    };
    assert_eq!(certs(emulator.url.clone()).await, kid);
    let discovery: Value = http()
        .get(format!("{}/.well-known/openid-configuration", emulator.url))
        .send()
        .await
        .expect("discovery")
        .json()
        .await
        .expect("JSON");
    assert_eq!(discovery["issuer"], "https://accounts.google.com");
    assert_eq!(
        discovery["jwks_uri"],
        format!("{}/oauth2/v3/certs", emulator.url)
    );

    emulator.kill_9();
    let restarted = EmulatorProcess::on(dir.path());
    assert_eq!(
        certs(restarted.url.clone()).await,
        kid,
        "the signing key lives in the data directory"
    );
}
