//! Cloud Logging as `gcloud logging read` and `gcloud logging write` see it: container lines and
//! request logs land in the emulator's log store, and the real gcloud CLI reads them back.

use chrono::{DateTime, Duration, Utc};
use emulator::ingress::{Access, Ingress, Target};
use emulator::state::logs::{RunResource, Stream, container_line};
use harness::{Emulator, GcloudOutput};
use serde_json::Value;

fn revision(service: &str) -> RunResource {
    RunResource {
        project_id: "demo-proj".into(),
        location: "us-central1".into(),
        service: service.into(),
        revision: format!("{service}-00001-abc"),
    }
}

/// Appends one container line per `(service, line)`, a second apart, the last one `now`.
fn print(emulator: &Emulator, lines: &[(&str, Stream, &str)]) {
    let start: DateTime<Utc> = Utc::now() - Duration::seconds(lines.len() as i64);
    for (i, (service, stream, line)) in lines.iter().enumerate() {
        let at = start + Duration::seconds(i as i64);
        emulator.store().logs().append(container_line(
            &revision(service),
            "00c527f6",
            *stream,
            line,
            at,
        ));
    }
}

fn lines(out: &GcloudOutput) -> Vec<&str> {
    out.stdout.lines().collect()
}

#[tokio::test]
async fn gcloud_reads_one_services_lines_newest_first() {
    let emulator = Emulator::start().await.expect("emulator starts");
    print(
        &emulator,
        &[
            ("web", Stream::Stdout, "listening on 8080"),
            ("api", Stream::Stdout, "api says hi"),
            ("web", Stream::Stderr, "warning: low memory"),
            ("web", Stream::Stdout, "GET / 200"),
        ],
    );

    let out = emulator
        .gcloud()
        .run([
            "logging",
            "read",
            "resource.type=cloud_run_revision AND resource.labels.service_name=web",
            "--format=value(textPayload)",
        ])
        .ok()
        .await
        .expect("logging read");
    assert_eq!(
        lines(&out),
        ["GET / 200", "warning: low memory", "listening on 8080"]
    );

    let stderr_only = emulator
        .gcloud()
        .run([
            "logging",
            "read",
            "logName=projects/demo-proj/logs/run.googleapis.com%2Fstderr",
            "--format=value(textPayload)",
        ])
        .ok()
        .await
        .expect("read stderr");
    assert_eq!(lines(&stderr_only), ["warning: low memory"]);

    let limited = emulator
        .gcloud()
        .run([
            "logging",
            "read",
            "resource.labels.service_name=web",
            "--limit=2",
            "--order=asc",
            "--format=value(textPayload)",
        ])
        .ok()
        .await
        .expect("read oldest two");
    assert_eq!(
        lines(&limited),
        ["listening on 8080", "warning: low memory"]
    );
}

#[tokio::test]
async fn structured_lines_are_json_payloads_with_their_severity() {
    let emulator = Emulator::start().await.expect("emulator starts");
    print(
        &emulator,
        &[
            (
                "web",
                Stream::Stdout,
                r#"{"severity":"INFO","message":"started"}"#,
            ),
            (
                "web",
                Stream::Stdout,
                r#"{"severity":"ERROR","message":"db down","logging.googleapis.com/labels":{"user":"ann"}}"#,
            ),
            ("web", Stream::Stdout, "plain, no severity"),
            (
                "web",
                Stream::Stderr,
                r#"{"severity":"CRITICAL","message":"panic"}"#,
            ),
        ],
    );

    let severe = emulator
        .gcloud()
        .run([
            "logging",
            "read",
            "resource.labels.service_name=web AND severity>=ERROR",
            "--format=value(severity,jsonPayload.message)",
        ])
        .ok()
        .await
        .expect("severity filter");
    assert_eq!(lines(&severe), ["CRITICAL\tpanic", "ERROR\tdb down"]);

    let out = emulator
        .gcloud()
        .run([
            "logging",
            "read",
            "jsonPayload.message=\"db down\"",
            "--format=json",
        ])
        .ok()
        .await
        .expect("read as json");
    let entries: Value = serde_json::from_str(&out.stdout).expect("gcloud prints JSON");
    let entry = &entries[0];
    assert_eq!(entries.as_array().map(Vec::len), Some(1));
    assert_eq!(entry["severity"], "ERROR");
    assert_eq!(
        entry["jsonPayload"],
        serde_json::json!({"message": "db down"})
    );
    assert_eq!(entry["labels"]["user"], "ann");
    assert_eq!(entry["labels"]["instanceId"], "00c527f6");
    assert_eq!(
        entry["logName"],
        "projects/demo-proj/logs/run.googleapis.com%2Fstdout"
    );
    assert_eq!(entry["resource"]["type"], "cloud_run_revision");
    assert_eq!(
        entry["resource"]["labels"]["revision_name"],
        "web-00001-abc"
    );
    assert!(entry["insertId"].as_str().is_some_and(|id| !id.is_empty()));
    assert!(entry["receiveTimestamp"].is_string());

    let plain = emulator
        .gcloud()
        .run([
            "logging",
            "read",
            "severity=DEFAULT",
            "--format=value(textPayload)",
        ])
        .ok()
        .await
        .expect("default severity");
    assert_eq!(lines(&plain), ["plain, no severity"]);
}

#[tokio::test]
async fn a_bad_filter_is_invalid_argument() {
    let emulator = Emulator::start().await.expect("emulator starts");
    for filter in ["resource.type=(", "severity>=LOUD", "textPayload=~\"a.*\""] {
        let out = emulator
            .gcloud()
            .run(["logging", "read", filter])
            .await
            .expect("gcloud runs");
        assert!(!out.success, "{filter} should fail");
        assert!(!out.crashed(), "gcloud crashed:\n{}", out.stderr);
        assert!(
            out.stderr.contains("INVALID_ARGUMENT: Invalid filter"),
            "{filter}: {}",
            out.stderr
        );
    }
}

#[tokio::test]
async fn gcloud_logging_write_entries_read_back() {
    let emulator = Emulator::start().await.expect("emulator starts");
    let gcloud = emulator.gcloud();
    gcloud
        .run([
            "logging",
            "write",
            "deploy-log",
            "deployed v2",
            "--severity=NOTICE",
        ])
        .ok()
        .await
        .expect("logging write");

    let out = gcloud
        .run([
            "logging",
            "read",
            "logName=projects/demo-proj/logs/deploy-log",
            "--format=value(severity,textPayload)",
        ])
        .ok()
        .await
        .expect("logging read");
    assert_eq!(lines(&out), ["NOTICE\tdeployed v2"]);
}

#[tokio::test]
async fn requests_through_the_ingress_are_in_the_request_log() {
    let emulator = Emulator::start().await.expect("emulator starts");
    let gcloud = emulator.gcloud();
    // Any call naming the project makes the emulator know its number, as deploying does.
    gcloud
        .run(["services", "enable", "run.googleapis.com"])
        .ok()
        .await
        .expect("enable run");
    let ingress = Ingress::new(emulator.store().clone());
    let number = emulator::state::projects::number_for("demo-proj");
    let key = format!("projects/{number}/locations/us-central1/services/web");
    let key = key.as_str();
    let url = ingress.expose(key, None).await.expect("expose");
    // Nothing listens on the target: the request is answered 503 and logged all the same.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    ingress.set_targets(
        key,
        vec![Target {
            revision: "web-00001-abc".into(),
            addr: dead,
            percent: 100,
        }],
    );
    ingress.set_access(key, Access::Public);

    let response = reqwest::get(format!("http://{url}/health?deep=1"))
        .await
        .expect("request");
    assert_eq!(response.status(), 503);
    drop(response);
    ingress.shutdown().await;

    let out = gcloud
        .run([
            "logging",
            "read",
            "logName=projects/demo-proj/logs/run.googleapis.com%2Frequests AND httpRequest.status>=500",
            "--format=value(severity,httpRequest.requestMethod,httpRequest.requestUrl)",
        ])
        .ok()
        .await
        .expect("read request logs");
    assert_eq!(
        lines(&out),
        [format!("ERROR\tGET\thttp://{url}/health?deep=1")]
    );
}
