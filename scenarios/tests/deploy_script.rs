//! A team's deploy script, written for Google Cloud, runs unmodified against the emulator: the
//! project preparation half (APIs, registry, secrets, IAM) that precedes `gcloud run deploy`.

use std::process::Command;

use harness::Emulator;

#[tokio::test]
async fn the_project_preparation_script_runs_unmodified_and_is_idempotent() {
    let emulator = Emulator::start().await.expect("emulator starts");
    let gcloud = emulator.gcloud();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/prepare-project.sh");

    for run in 1..=2 {
        let out = tokio::task::spawn_blocking({
            let gcloud = gcloud.clone();
            move || {
                let mut command = Command::new("bash");
                command.arg(script);
                gcloud.configure(&mut command);
                command.output()
            }
        })
        .await
        .expect("joined")
        .expect("bash runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "run {run} failed:\n{stderr}");
        assert!(
            stdout.contains("IMAGE_BASE=us-central1-docker.pkg.dev/demo-proj/containers"),
            "{stdout}"
        );
    }

    let password = gcloud
        .run([
            "secrets",
            "versions",
            "access",
            "latest",
            "--secret=db-password",
        ])
        .ok()
        .await
        .expect("access");
    assert_eq!(password.stdout, "rotated-password");
    let versions = gcloud
        .run([
            "secrets",
            "versions",
            "list",
            "db-password",
            "--format=value(name.basename())",
        ])
        .ok()
        .await
        .expect("versions");
    assert_eq!(versions.stdout, "3\n2\n1\n", "each run added one rotation");
    let policy = gcloud
        .run([
            "secrets",
            "get-iam-policy",
            "stripe-api-key",
            "--format=json",
        ])
        .ok()
        .await
        .expect("policy");
    let policy: serde_json::Value = serde_json::from_str(&policy.stdout).expect("json");
    assert_eq!(
        policy["bindings"][0]["members"],
        serde_json::json!(["serviceAccount:backend@demo-proj.iam.gserviceaccount.com"])
    );
    let region = gcloud
        .run(["config", "get-value", "compute/region"])
        .ok()
        .await
        .expect("region");
    assert_eq!(region.stdout.trim(), "us-central1");
}
