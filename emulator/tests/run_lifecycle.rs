//! The emulator process and Cloud Run's containers: SIGTERM removes every container it started,
//! a restart on the same `--data-dir` brings services back at the same URL, a kill -9's
//! leftovers are reaped by the next start, and `cloudrun-emulator logs` prints container output.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod support;
use support::{BIN, EmulatorProcess, containers_labelled, remove_service_containers};

const REGIONAL_HOST: &str = "us-central1-run.emulator";

async fn deploy(client: &reqwest::Client, emulator: &str, name: &str) {
    let service = json!({
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"template": {"spec": {"containers": [{"image": "cloudrun-emulator/testapp:1"}]}}},
    });
    let created = client
        .post(format!(
            "{emulator}/apis/serving.knative.dev/v1/namespaces/demo-proj/services"
        ))
        .header("host", REGIONAL_HOST)
        .json(&service)
        .send()
        .await
        .expect("create");
    assert_eq!(
        created.status(),
        200,
        "{}",
        created.text().await.unwrap_or_default()
    );
    let public = client
        .post(format!(
            "{emulator}/v1/projects/demo-proj/locations/us-central1/services/{name}:setIamPolicy"
        ))
        .json(&json!({"policy": {"bindings": [{"role": "roles/run.invoker", "members": ["allUsers"]}]}}))
        .send()
        .await
        .expect("set policy");
    assert_eq!(public.status(), 200);
}

/// Waits until the service is Ready and its URL answers `/`; returns the URL.
async fn serving_url(client: &reqwest::Client, emulator: &str, name: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let service: Value = client
            .get(format!(
                "{emulator}/apis/serving.knative.dev/v1/namespaces/demo-proj/services/{name}"
            ))
            .header("host", REGIONAL_HOST)
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        if let Some(url) = service["status"]["url"].as_str()
            && let Ok(response) = client.get(url).send().await
            && response.status() == 200
        {
            return url.to_string();
        }
        assert!(Instant::now() < deadline, "never served: {service}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn containers_follow_the_emulator_process_through_restarts_and_crashes() {
    harness::ensure_images(&["sandbox", "testapp"]).expect("images");
    let service = "lifecycle-probe";
    remove_service_containers(service);
    let dir = tempfile::tempdir().expect("tempdir");
    let client = reqwest::Client::new();

    let first = EmulatorProcess::on(dir.path());
    deploy(&client, &first.url, service).await;
    let url = serving_url(&client, &first.url, service).await;
    let body = client
        .get(format!("{url}/"))
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("text");
    assert!(
        body.starts_with(&format!("hello from {service}-00001-")),
        "{body}"
    );

    let logs = Command::new(BIN)
        .args([
            "logs",
            service,
            "--project",
            "demo-proj",
            "--emulator",
            &first.url,
        ])
        .output()
        .expect("logs command");
    let printed = String::from_utf8_lossy(&logs.stdout);
    assert!(
        logs.status.success(),
        "{}",
        String::from_utf8_lossy(&logs.stderr)
    );
    assert!(printed.contains("\"GET / HTTP/1.1\" 200"), "{printed}");

    assert_eq!(
        containers_labelled("service", service).len(),
        2,
        "a sandbox and the app"
    );
    first.terminate();
    assert_eq!(
        containers_labelled("service", service).len(),
        0,
        "SIGTERM removed every container"
    );

    let second = EmulatorProcess::on(dir.path());
    let again = serving_url(&client, &second.url, service).await;
    assert_eq!(again, url, "the service keeps its URL across restarts");
    second.kill_9();
    assert_eq!(
        containers_labelled("service", service).len(),
        2,
        "a kill -9 leaves the containers behind"
    );

    let third = EmulatorProcess::on(dir.path());
    serving_url(&client, &third.url, service).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while containers_labelled("service", service).len() != 2 {
        assert!(
            Instant::now() < deadline,
            "the crashed run's containers were not reaped"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    third.terminate();
    assert_eq!(containers_labelled("service", service).len(), 0);
}
