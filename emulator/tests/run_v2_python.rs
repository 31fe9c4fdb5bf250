//! Google's Python client for Cloud Run Admin API v2 (`google-cloud-run`, REST transport) against
//! the emulator, with gcloud's v1 calls on the same services: one state behind both APIs.
//!
//! Needs `python3`; `google-cloud-run` is installed from PyPI into the target directory when the
//! interpreter does not already have it.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use harness::Emulator;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

mod support;
use support::{REGION, revision_names, service_url};
/// The whole script: two deploys that start containers, an update, a failing deploy.
const SCRIPT_DEADLINE: Duration = Duration::from_secs(300);

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/run_v2_client.py")
}

/// Where the client library is installed when the interpreter lacks it.
fn python_deps() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("python")
}

/// Makes `google-cloud-run` importable (installing it under the target directory if needed) and
/// returns the `PYTHONPATH` the script needs; fails with the fix rather than skipping.
async fn require_python_client() -> String {
    let deps = python_deps().to_string_lossy().into_owned();
    let importable = |path: String| async move {
        Command::new("python3")
            .args(["-c", "import google.cloud.run_v2"])
            .env("PYTHONPATH", path)
            .output()
            .await
            .expect("python3 runs (is Python 3 installed?)")
            .status
            .success()
    };
    if importable(deps.clone()).await {
        return deps;
    }
    let install = Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--target",
            &deps,
            "google-cloud-run",
        ])
        .output()
        .await
        .expect("pip runs");
    assert!(
        install.status.success() && importable(deps.clone()).await,
        "the Python client for Cloud Run is missing and could not be installed: run \
         `python3 -m pip install google-cloud-run`\n{}",
        String::from_utf8_lossy(&install.stderr)
    );
    deps
}

#[tokio::test]
async fn the_python_client_drives_the_v2_api_over_the_state_v1_sees() {
    harness::ensure_images(&["sandbox", "testapp"]).expect("test images build");
    let python_path = require_python_client().await;
    let emulator = Emulator::start().await.expect("emulator starts");
    let gcloud = emulator.gcloud();

    // A service created through v1, which the script reads through v2.
    gcloud
        .run([
            "run",
            "deploy",
            "v1svc",
            "--image=cloudrun-emulator/testapp:1",
            REGION,
        ])
        .ok()
        .await
        .expect("gcloud run deploy");

    let mut child = Command::new("python3")
        .env("PYTHONPATH", &python_path)
        .arg(script())
        .args([&emulator.url(), emulator.project(), "v1svc"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the script starts");
    let mut stdin = child.stdin.take().expect("stdin piped");
    let stdout = child.stdout.take().expect("stdout piped");
    let mut stderr = child.stderr.take().expect("stderr piped");
    let stderr_text = tokio::spawn(async move {
        let mut text = String::new();
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut text).await;
        text
    });

    let story = async {
        let mut lines = BufReader::new(stdout).lines();
        let mut printed = Vec::new();
        let mut v1_url = None;
        while let Some(line) = lines.next_line().await.expect("read the script's output") {
            println!("script: {line}");
            if let Some(uri) = line.strip_prefix("PAUSE ") {
                // The service exists, created and updated through v2: v1 sees it.
                let url = service_url(&gcloud, "v2svc").await;
                assert_eq!(url, uri, "v1 and v2 report the same URL");
                let revisions = revision_names(&gcloud, "v2svc").await;
                assert_eq!(revisions.len(), 2, "{revisions:?}");
                v1_url = Some(url);
                stdin
                    .write_all(b"go on\n")
                    .await
                    .expect("resume the script");
            }
            printed.push(line);
        }
        (printed, v1_url)
    };
    let (printed, v1_url) = tokio::time::timeout(SCRIPT_DEADLINE, story)
        .await
        .unwrap_or_else(|_| panic!("the script did not finish within {SCRIPT_DEADLINE:?}"));
    let status = child.wait().await.expect("the script exits");
    let stderr = stderr_text.await.expect("stderr read");
    assert!(
        status.success(),
        "the script failed ({status}):\n{stderr}\n{}",
        printed.join("\n")
    );
    assert_eq!(printed.last().map(String::as_str), Some("PASS"), "{stderr}");
    assert!(v1_url.is_some(), "the script paused for the v1 check");

    let gone = gcloud
        .run(["run", "services", "describe", "v2svc", REGION])
        .await
        .expect("gcloud runs");
    assert!(!gone.success, "v1 no longer sees the deleted service");
    assert!(!gone.crashed(), "{}", gone.stderr);
}

const V2_PATHS: &[&str] = &[
    "/v2/projects/demo-proj/locations/us-central1/services",
    "/v2/projects/demo-proj/locations/-/services",
    "/v2/projects/demo-proj/locations/nowhere/services",
    "/v2/projects/demo-proj/locations/us-central1/services/web",
    "/v2/projects/demo-proj/locations/us-central1/services/web:getIamPolicy",
    "/v2/projects/demo-proj/locations/us-central1/services/web:setIamPolicy",
    "/v2/projects/demo-proj/locations/us-central1/services/web:testIamPermissions",
    "/v2/projects/demo-proj/locations/us-central1/services/web:bogus",
    "/v2/projects/demo-proj/locations/us-central1/services/web/revisions",
    "/v2/projects/demo-proj/locations/us-central1/services/web/revisions/web-00001-abc",
    "/v2/projects/demo-proj/locations/us-central1/operations",
    "/v2/projects/demo-proj/locations/us-central1/operations/nope",
    "/v2/projects/demo-proj/locations/us-central1/operations/nope:wait",
];
const V2_QUERIES: &[&str] = &[
    "",
    "?serviceId=web",
    "?serviceId=Bad_Name",
    "?serviceId=web&%24alt=json%3Benum-encoding%3Dint",
    "?pageSize=-1",
    "?pageSize=abc&pageToken=%%%",
    "?pageToken=bm9wZQ",
    "?updateMask=template.containers,labels&allowMissing=true",
    "?allowMissing=maybe",
    "?validateOnly=true",
    "?validateOnly=True&serviceId=web",
    "?validate_only=nope",
    "?etag=stale",
];
const V2_BODIES: &[&str] = &[
    "",
    "{",
    "[]",
    "null",
    r#"{"template": {}}"#,
    r#"{"template": {"containers": "x"}}"#,
    r#"{"template": {"containers": [{"image": ""}]}}"#,
    r#"{"template": {"annotations": {"run.googleapis.com/x": "y"}, "containers": [{}]}}"#,
    r#"{"ingress": "NOPE", "template": {"containers": [{}]}}"#,
    r#"{"traffic": [{"type": 7}], "template": {"containers": [{}]}}"#,
    r#"{"template": {"timeout": "forever", "containers": [{}]}}"#,
    r#"{"template": {"volumes": [{"name": "v", "gcs": {}}], "containers": [{}]}}"#,
    r#"{"template": {"containers": [{"ports": [{"containerPort": 70000}]}]}}"#,
    r#"{"policy": {"bindings": [{"role": 1}]}}"#,
    r#"{"timeout": "-1s"}"#,
];

#[tokio::test]
async fn malformed_v2_requests_get_google_errors_never_a_5xx() {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    let emulator = Emulator::start().await.expect("emulator");
    let http = reqwest::Client::new();
    let mut rng = StdRng::seed_from_u64(0x2a);
    let methods = ["GET", "POST", "PATCH", "DELETE", "PUT"];
    for _ in 0..400 {
        let path = V2_PATHS[rng.random_range(0..V2_PATHS.len())];
        let query = V2_QUERIES[rng.random_range(0..V2_QUERIES.len())];
        let body = V2_BODIES[rng.random_range(0..V2_BODIES.len())];
        let method = methods[rng.random_range(0..methods.len())];
        let response = http
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).expect("method"),
                format!("{}{path}{query}", emulator.url()),
            )
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("answered");
        let status = response.status();
        let text = response.text().await.expect("body");
        assert!(
            !status.is_server_error(),
            "{method} {path}{query} with {body} gave {status}: {text}"
        );
        if !status.is_success() {
            let error: serde_json::Value = serde_json::from_str(&text)
                .unwrap_or_else(|_| panic!("{method} {path}{query}: not JSON: {text}"));
            assert_eq!(error["error"]["code"], status.as_u16(), "{text}");
            assert!(error["error"]["status"].is_string(), "{text}");
        }
    }
}
