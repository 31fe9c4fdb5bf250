//! The scenario files of `files/` pass, run as `cloudrun-emulator test` runs them.

use harness::Scenario;

async fn passes(file: &str) {
    let path = format!("{}/files/{file}", env!("CARGO_MANIFEST_DIR"));
    let scenario = Scenario::load(&path).expect("the file is valid");
    let report = scenario.run(|_| {}).await;
    assert!(
        report.passed(),
        "{}",
        report.failure_report().unwrap_or_default()
    );
}

#[tokio::test]
async fn the_secret_rotation_file_passes() {
    passes("secret-rotation.yaml").await;
}

#[tokio::test]
async fn the_web_stack_file_passes() {
    passes("web-stack.yaml").await;
}
