//! `cloudrun-emulator test` as CI runs it: a progress display, a failure report that names the
//! step and shows the containers' logs, JUnit XML, and the exit code.

use std::process::Command;

const RUNNER: &str = env!("CARGO_BIN_EXE_cloudrun-emulator-test");

const FAILING: &str = r#"
name: a greeting that is not there
stack:
  images: [testapp]
  secrets: {greeting: hello}
  services:
    - file: service.yaml
      public: true
steps:
  - http: {service: greeter, path: /env/GREETING, body: hello}
  - http: {service: greeter, path: /env/GREETING, body: good morning}
  - http: {service: greeter, path: /never-run}
"#;

const SERVICE_YAML: &str = r#"
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: greeter
spec:
  template:
    spec:
      containers:
      - image: cloudrun-emulator/testapp:1
        env:
        - name: GREETING
          valueFrom:
            secretKeyRef: {name: greeting, key: latest}
"#;

#[test]
fn a_failing_scenario_is_reported_with_logs_and_junit_and_exits_1() {
    let dir = tempfile::tempdir().expect("a temp dir");
    std::fs::write(dir.path().join("failing.yaml"), FAILING).expect("written");
    std::fs::write(dir.path().join("service.yaml"), SERVICE_YAML).expect("written");
    let junit = dir.path().join("report.xml");

    let out = Command::new(RUNNER)
        .arg(dir.path().join("failing.yaml"))
        .arg("--junit")
        .arg(&junit)
        .output()
        .expect("the runner runs");
    let stdout = String::from_utf8_lossy(&out.stdout);

    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("✓ start the stack"), "{stdout}");
    assert!(
        stdout.contains("✓ GET greeter/env/GREETING → 200"),
        "{stdout}"
    );
    assert!(
        stdout.contains("expected the body \"good morning\", got 200: hello"),
        "the report says what was expected and what came: {stdout}"
    );
    assert!(
        stdout.contains("--- logs of service greeter ---") && stdout.contains("GET /env/GREETING"),
        "the report shows the service's logs: {stdout}"
    );
    assert!(
        !stdout.contains("never-run"),
        "steps after a failure do not run"
    );
    assert!(stdout.contains("0 passed, 1 failed"), "{stdout}");

    let xml = std::fs::read_to_string(&junit).expect("the JUnit report is written");
    assert!(
        xml.contains("<testsuite name=\"a greeting that is not there\""),
        "{xml}"
    );
    assert!(xml.contains("tests=\"3\" failures=\"1\""), "{xml}");
    assert!(
        xml.contains(
            "<failure message=\"expected the body &quot;good morning&quot;, got 200: hello\">"
        ),
        "{xml}"
    );
}

#[test]
fn a_malformed_scenario_file_is_refused_with_its_line_before_anything_starts() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("typo.yaml");
    std::fs::write(
        &path,
        "name: typo\nsteps:\n  - http: {service: a, path: /, stauts: 200}\n",
    )
    .expect("written");
    let out = Command::new(RUNNER).arg(&path).output().expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("unknown field `stauts`") && stderr.contains("line 3"),
        "{stderr}"
    );
}
