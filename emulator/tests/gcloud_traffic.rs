//! Traffic between revisions with the real gcloud CLI: a canary split lands on its weights, a
//! traffic-only change mints no revision, and revisions without traffic stop their containers.

use std::process::Command;
use std::time::{Duration, Instant};

use harness::Emulator;

mod support;
use support::{REGION, revision_names};

fn running(revision: &str) -> usize {
    let out = Command::new("docker")
        .args([
            "ps",
            "-q",
            "--filter",
            &format!("label=cloudrun-emulator.revision={revision}"),
        ])
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&out.stdout).lines().count()
}

async fn modes(url: &str, requests: usize) -> (usize, usize) {
    let client = reqwest::Client::new();
    let (mut one, mut two) = (0, 0);
    for _ in 0..requests {
        let body = client
            .get(format!("{url}/env/MODE"))
            .send()
            .await
            .expect("answered")
            .text()
            .await
            .expect("body");
        match body.as_str() {
            "one" => one += 1,
            "two" => two += 1,
            other => panic!("unexpected answer {other}"),
        }
    }
    (one, two)
}

#[tokio::test]
async fn a_canary_split_lands_on_its_weights_and_to_latest_retires_the_old_revision() {
    harness::ensure_images(&["sandbox", "testapp"]).expect("images");
    let emulator = Emulator::start().await.expect("emulator starts");
    let gcloud = emulator.gcloud();
    let image = "--image=cloudrun-emulator/testapp:1";
    gcloud
        .run([
            "run",
            "deploy",
            "canary",
            image,
            REGION,
            "--allow-unauthenticated",
            "--set-env-vars=MODE=one",
        ])
        .ok()
        .await
        .expect("first deploy");
    gcloud
        .run([
            "run",
            "deploy",
            "canary",
            image,
            REGION,
            "--set-env-vars=MODE=two",
        ])
        .ok()
        .await
        .expect("second deploy");
    let names = revision_names(&gcloud, "canary").await;
    let (new, old) = (names[0].clone(), names[1].clone());
    assert_eq!(
        running(&old),
        0,
        "a revision without traffic stops its containers"
    );

    let split = gcloud
        .run([
            "run",
            "services",
            "update-traffic",
            "canary",
            REGION,
            &format!("--to-revisions={old}=80,{new}=20"),
        ])
        .ok()
        .await
        .expect("update-traffic");
    assert!(
        split.stdout.contains("80%") || split.stderr.contains("80%"),
        "{}{}",
        split.stdout,
        split.stderr
    );
    let url = gcloud
        .run([
            "run",
            "services",
            "describe",
            "canary",
            REGION,
            "--format=value(status.url)",
        ])
        .ok()
        .await
        .expect("describe")
        .stdout
        .trim()
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    while running(&old) == 0 {
        assert!(
            Instant::now() < deadline,
            "the old revision never came back for its 80%"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    loop {
        let (one, _) = modes(&url, 20).await;
        if one > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the old revision never received traffic"
        );
    }
    // With 1000 requests, 0.72-0.88 lies six standard deviations from 0.8.
    let (one, two) = modes(&url, 1000).await;
    let share = one as f64 / 1000.0;
    assert!(
        (0.72..=0.88).contains(&share),
        "80/20 split landed {one}/{two}"
    );

    let revisions = revision_names(&gcloud, "canary").await;
    assert_eq!(revisions.len(), 2, "a traffic change mints no revision");

    gcloud
        .run([
            "run",
            "services",
            "update-traffic",
            "canary",
            REGION,
            "--to-latest",
        ])
        .ok()
        .await
        .expect("to latest");
    let deadline = Instant::now() + Duration::from_secs(30);
    while running(&old) != 0 {
        assert!(
            Instant::now() < deadline,
            "the retired revision kept running"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(modes(&url, 50).await, (0, 50));

    let tagged = gcloud
        .run([
            "run",
            "deploy",
            "canary",
            image,
            REGION,
            "--no-traffic",
            "--tag=green",
            "--set-env-vars=MODE=three",
        ])
        .ok()
        .await
        .expect("deploy a tagged revision without traffic");
    assert!(
        tagged.stderr.contains("is serving 0 percent of traffic"),
        "{}",
        tagged.stderr
    );
    let tag_url = tagged
        .stderr
        .lines()
        .find_map(|l| l.split("The revision can be reached directly at ").nth(1))
        .expect("gcloud prints the tag URL")
        .trim()
        .to_string();
    assert_ne!(tag_url, url);
    let client = reqwest::Client::new();
    let direct = client
        .get(format!("{tag_url}/env/MODE"))
        .send()
        .await
        .expect("tag URL")
        .text()
        .await
        .expect("body");
    assert_eq!(direct, "three", "the tag URL reaches the tagged revision");
    assert_eq!(
        modes(&url, 30).await,
        (0, 30),
        "the service URL still serves the old latest"
    );

    gcloud
        .run([
            "run",
            "services",
            "update-traffic",
            "canary",
            REGION,
            "--to-tags=green=100",
        ])
        .ok()
        .await
        .expect("promote the tag");
    let promoted = client
        .get(format!("{url}/env/MODE"))
        .send()
        .await
        .expect("url")
        .text()
        .await
        .expect("body");
    assert_eq!(
        promoted, "three",
        "--to-tags moved all traffic to the tagged revision"
    );
    gcloud
        .run(["run", "services", "delete", "canary", REGION, "--quiet"])
        .ok()
        .await
        .expect("delete");
}
