//! Failure scenarios a team rehearses before trusting a deploy: a rotated secret reaching the
//! next revision; a crashing sidecar that fails its revision while the last good one serves; a
//! sidecar dying under a serving instance, reported and replaced.

use std::process::Command;
use std::time::{Duration, Instant};

use harness::{HarnessError, RunningStack};
use scenarios::{echo_service, echo_stack};

async fn get(stack: &RunningStack, service: &str, path: &str) -> (u16, String) {
    let response = stack.get(service, path).await.expect("the service answers");
    let status = response.status().as_u16();
    (status, response.text().await.expect("a body"))
}

/// Docker containers of one revision (the emulator labels each with its revision).
fn containers_of(revision: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args(["ps", "-aq", "--filter"])
        .arg(format!("label=cloudrun-emulator.revision={revision}"))
        .output()
        .expect("docker ps runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

async fn until_no_containers(revision: &str, within: Duration) {
    let deadline = Instant::now() + within;
    while !containers_of(revision).is_empty() {
        assert!(
            Instant::now() < deadline,
            "revision {revision} still has containers after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_rotated_secret_reaches_the_next_revision_and_the_old_one_stops() {
    let mut stack = echo_stack("secret-rotation", "hello v1")
        .start()
        .await
        .expect("the echo stack starts");
    let first = stack.revision("secret-rotation").expect("deployed");
    assert_eq!(
        get(&stack, "secret-rotation", "/env/GREETING").await,
        (200, "hello v1".to_string())
    );

    stack
        .rotate_secret("greeting", "hello v2")
        .await
        .expect("a new secret version");
    assert_eq!(
        get(&stack, "secret-rotation", "/env/GREETING").await,
        (200, "hello v1".to_string()),
        "environment secrets are read when an instance starts, so the running one keeps v1"
    );

    let second = stack
        .redeploy("secret-rotation")
        .await
        .expect("the redeploy is ready");
    assert_ne!(first, second, "a redeploy makes a new revision");
    assert_eq!(
        get(&stack, "secret-rotation", "/env/GREETING").await,
        (200, "hello v2".to_string())
    );
    assert_eq!(
        get(&stack, "secret-rotation", "/").await,
        (200, format!("hello from {second}"))
    );
    until_no_containers(&first, Duration::from_secs(15)).await;
    assert_eq!(stack.secret_value("greeting").expect("known"), b"hello v2");
}

#[tokio::test]
async fn a_crashing_sidecar_fails_its_revision_and_the_last_good_one_keeps_serving() {
    let mut stack = echo_stack("sidecar-crash", "hi")
        .start()
        .await
        .expect("the echo stack starts");
    let good = stack.revision("sidecar-crash").expect("deployed");

    let crashing = echo_service(
        "sidecar-crash",
        &["exit", "3", "sidecar: cannot read /etc/sidecar.conf"],
    );
    let error = stack
        .deploy(crashing)
        .await
        .expect_err("a revision whose sidecar exits cannot become ready");
    let HarnessError::Deploy { message, .. } = &error else {
        panic!("expected a failed deploy, got {error}");
    };
    assert!(
        message.contains("Revision 'sidecar-crash-00002-")
            && message.contains("is not ready and cannot serve traffic."),
        "the service names the failed revision: {message}"
    );
    assert!(
        message.contains("Container \"sidecar\" exited with code 3")
            && message.contains("sidecar: cannot read /etc/sidecar.conf"),
        "the service says which container died and what it printed: {message}"
    );

    let gcloud = stack.emulator().gcloud();
    let described = gcloud
        .run([
            "run",
            "services",
            "describe",
            "sidecar-crash",
            "--region=us-central1",
            "--format=value(status.latestReadyRevisionName,status.latestCreatedRevisionName)",
        ])
        .ok()
        .await
        .expect("gcloud describes the service");
    let fields: Vec<&str> = described.stdout.split_whitespace().collect();
    assert_eq!(fields.first(), Some(&good.as_str()), "{}", described.stdout);
    assert!(
        fields
            .get(1)
            .is_some_and(|r| r.starts_with("sidecar-crash-00002-")),
        "{}",
        described.stdout
    );
    assert_eq!(
        get(&stack, "sidecar-crash", "/").await,
        (200, format!("hello from {good}")),
        "traffic stays on the last ready revision"
    );
    assert_eq!(
        get(&stack, "sidecar-crash", "/proxy/5000/healthz").await,
        (200, "ok".to_string()),
        "and its own sidecar still answers"
    );
}

/// The Docker id of one container of a revision's running instance, if there is one.
fn container_id(revision: &str, container: &str) -> Option<String> {
    let out = Command::new("docker")
        .args(["ps", "-q", "--filter"])
        .arg(format!("label=cloudrun-emulator.revision={revision}"))
        .arg("--filter")
        .arg(format!("label=cloudrun-emulator.container={container}"))
        .output()
        .expect("docker ps runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .map(str::to_string)
}

#[tokio::test]
async fn a_sidecar_dying_under_a_serving_instance_is_reported_and_the_instance_replaced() {
    let stack = echo_stack("sidecar-dies", "hi")
        .start()
        .await
        .expect("the echo stack starts");
    let revision = stack.revision("sidecar-dies").expect("deployed");
    let sidecar = container_id(&revision, "sidecar").expect("the sidecar runs");

    let killed = Command::new("docker")
        .args(["kill", &sidecar])
        .output()
        .expect("docker kill runs");
    assert!(killed.status.success(), "{killed:?}");

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let replaced = container_id(&revision, "sidecar").is_some_and(|id| id != sidecar);
        if replaced
            && get(&stack, "sidecar-dies", "/proxy/5000/healthz").await == (200, "ok".to_string())
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the instance was not replaced within 60 s:\n{}",
            stack.logs("sidecar-dies")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let logs = stack.logs("sidecar-dies");
    assert!(
        logs.contains("ERROR Container \"sidecar\" exited with code 137."),
        "the system log says which container died and how:\n{logs}"
    );
    assert_eq!(
        get(&stack, "sidecar-dies", "/").await,
        (200, format!("hello from {revision}")),
        "the same revision serves again"
    );
}
