//! The helper APIs a deploy script touches before it deploys, driven by the real gcloud CLI:
//! Service Usage, Artifact Registry repositories and Compute region look-ups.

use harness::Emulator;

#[tokio::test]
async fn a_deploy_script_enables_apis() {
    let emulator = Emulator::start().await.expect("emulator starts");
    let gcloud = emulator.gcloud();

    gcloud
        .run(["services", "enable", "cloudbuild.googleapis.com"])
        .ok()
        .await
        .expect("enable one service");
    gcloud
        .run([
            "services",
            "enable",
            "run.googleapis.com",
            "vpcaccess.googleapis.com",
            "secretmanager.googleapis.com",
        ])
        .ok()
        .await
        .expect("enable several (batchEnable)");
    let enabled = gcloud
        .run([
            "services",
            "list",
            "--enabled",
            "--format=value(config.name)",
        ])
        .ok()
        .await
        .expect("list enabled");
    for service in [
        "cloudbuild.googleapis.com",
        "vpcaccess.googleapis.com",
        "run.googleapis.com",
    ] {
        assert!(
            enabled.stdout.lines().any(|l| l == service),
            "{service} in\n{}",
            enabled.stdout
        );
    }

    gcloud
        .run(["services", "disable", "vpcaccess.googleapis.com", "--force"])
        .ok()
        .await
        .expect("disable");
    let after = gcloud
        .run([
            "services",
            "list",
            "--enabled",
            "--format=value(config.name)",
        ])
        .ok()
        .await
        .expect("list again");
    assert!(!after.stdout.contains("vpcaccess.googleapis.com"));
    let available = gcloud
        .run([
            "services",
            "list",
            "--available",
            "--format=value(config.name)",
        ])
        .ok()
        .await
        .expect("list available");
    assert!(available.stdout.contains("vpcaccess.googleapis.com"));

    let typo = gcloud
        .run(["services", "enable", "secretmanger.googleapis.com"])
        .await
        .expect("gcloud runs");
    assert!(!typo.success && !typo.stderr.contains("crashed"));
    assert!(
        typo.stderr
            .contains("Not found or permission denied for service(s): secretmanger.googleapis.com"),
        "{}",
        typo.stderr
    );
}

#[tokio::test]
async fn a_deploy_script_creates_a_docker_repository() {
    let emulator = Emulator::start().await.expect("emulator starts");
    let gcloud = emulator.gcloud();

    gcloud
        .run([
            "artifacts",
            "repositories",
            "create",
            "containers",
            "--repository-format=docker",
            "--location=us-central1",
            "--description=App images",
        ])
        .ok()
        .await
        .expect("create");
    let described = gcloud
        .run([
            "artifacts",
            "repositories",
            "describe",
            "containers",
            "--location=us-central1",
            "--format=value(format,description,registryUri)",
        ])
        .ok()
        .await
        .expect("describe");
    assert_eq!(
        described.stdout,
        "DOCKER\tApp images\tus-central1-docker.pkg.dev/demo-proj/containers\n"
    );
    let listed = gcloud
        .run([
            "artifacts",
            "repositories",
            "list",
            "--location=us-central1",
            "--format=value(name)",
        ])
        .ok()
        .await
        .expect("list");
    assert_eq!(listed.stdout.trim(), "containers");

    let duplicate = gcloud
        .run([
            "artifacts",
            "repositories",
            "create",
            "containers",
            "--repository-format=docker",
            "--location=us-central1",
        ])
        .await
        .expect("gcloud runs");
    assert!(!duplicate.success && !duplicate.stderr.contains("crashed"));
    assert!(
        duplicate.stderr.contains("already exists"),
        "{}",
        duplicate.stderr
    );

    gcloud
        .run([
            "artifacts",
            "repositories",
            "delete",
            "containers",
            "--location=us-central1",
            "--quiet",
        ])
        .ok()
        .await
        .expect("delete");
    let gone = gcloud
        .run([
            "artifacts",
            "repositories",
            "describe",
            "containers",
            "--location=us-central1",
        ])
        .await
        .expect("gcloud runs");
    assert!(
        !gone.success && gone.stderr.contains("NOT_FOUND"),
        "{}",
        gone.stderr
    );
}

#[tokio::test]
async fn compute_region_and_zone_are_checked() {
    let emulator = Emulator::start().await.expect("emulator starts");
    let gcloud = emulator.gcloud();

    let region = gcloud
        .run(["config", "set", "compute/region", "europe-west1"])
        .ok()
        .await
        .expect("set region");
    assert!(!region.stderr.contains("WARNING"), "{}", region.stderr);
    let zone = gcloud
        .run(["config", "set", "compute/zone", "us-central1-f"])
        .ok()
        .await
        .expect("set zone");
    assert!(!zone.stderr.contains("WARNING"), "{}", zone.stderr);
    let bad = gcloud
        .run(["config", "set", "compute/region", "mars-north1"])
        .ok()
        .await
        .expect("gcloud still sets it, with a warning");
    assert!(
        bad.stderr.contains("mars-north1 is not a valid region"),
        "{}",
        bad.stderr
    );

    let zones = gcloud
        .run([
            "compute",
            "zones",
            "list",
            "--filter=region:us-central1",
            "--format=value(name)",
        ])
        .ok()
        .await
        .expect("list zones");
    assert_eq!(
        zones.stdout,
        "us-central1-a\nus-central1-b\nus-central1-c\nus-central1-f\n"
    );
}
