//! The Secret Manager REST contract, checked over HTTP against every storage backend (memory and
//! a data directory): the rules clients rely on that gcloud does not exercise.

use harness::Emulator;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// An HTTP client of one emulator, speaking JSON.
struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    fn new(emulator: &Emulator) -> Api {
        Api {
            http: reqwest::Client::new(),
            base: emulator.url(),
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request is answered");
        let status = response.status();
        let text = response.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, body)
    }

    async fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, body) = self.call(method, path, body).await;
        assert_eq!(status, StatusCode::OK, "{method} {path}: {body}");
        body
    }

    async fn create(&self, secret: &str) -> Value {
        self.ok(
            "POST",
            &format!("/v1/projects/demo-proj/secrets?secretId={secret}"),
            Some(json!({"replication": {"automatic": {}}})),
        )
        .await
    }

    async fn add(&self, secret: &str, data: &[u8]) -> Value {
        use base64::Engine;
        let data = base64::engine::general_purpose::STANDARD.encode(data);
        self.ok(
            "POST",
            &format!("/v1/projects/demo-proj/secrets/{secret}:addVersion"),
            Some(json!({"payload": {"data": data}})),
        )
        .await
    }
}

/// Runs a contract check against each backend.
async fn on_every_backend<F, Fut>(check: F)
where
    F: Fn(Api) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let memory = Emulator::start().await.expect("in-memory emulator");
    check(Api::new(&memory)).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let disk = Emulator::builder()
        .data_dir(dir.path())
        .start()
        .await
        .expect("on-disk emulator");
    check(Api::new(&disk)).await;
}

fn assert_error(status: StatusCode, body: &Value, code: u16, name: &str) {
    assert_eq!(status.as_u16(), code, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert_eq!(body["error"]["status"], name, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
}

#[tokio::test]
async fn payload_checksums_are_verified_and_returned() {
    on_every_backend(|api| async move {
        api.create("s").await;
        let (status, body) = api
            .call(
                "POST",
                "/v1/projects/demo-proj/secrets/s:addVersion",
                Some(json!({"payload": {"data": "cHc=", "dataCrc32c": "1"}})),
            )
            .await;
        assert_error(status, &body, 400, "INVALID_ARGUMENT");
        let version = api
            .ok(
                "POST",
                "/v1/projects/demo-proj/secrets/s:addVersion",
                Some(json!({"payload": {"data": "cHc=", "dataCrc32c": "3949630387"}})),
            )
            .await;
        assert_eq!(version["clientSpecifiedPayloadChecksum"], true);
        assert_eq!(version["state"], "ENABLED");
        let access = api
            .ok(
                "GET",
                "/v1/projects/demo-proj/secrets/s/versions/latest:access",
                None,
            )
            .await;
        assert_eq!(access["payload"]["data"], "cHc=");
        assert_eq!(access["payload"]["dataCrc32c"], "3949630387");
        assert!(
            access["name"]
                .as_str()
                .expect("name")
                .ends_with("/secrets/s/versions/1")
        );

        let (status, body) = api
            .call(
                "POST",
                "/v1/projects/demo-proj/secrets/s:addVersion",
                Some(json!({"payload": {"data": "not base64!"}})),
            )
            .await;
        assert_error(status, &body, 400, "INVALID_ARGUMENT");
        let (status, body) = api
            .call(
                "POST",
                "/v1/projects/demo-proj/secrets/s:addVersion",
                Some(json!({"payload": {"data": base64_of(&vec![0u8; 65537])}})),
            )
            .await;
        assert_error(status, &body, 400, "INVALID_ARGUMENT");
    })
    .await;
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
async fn project_ids_numbers_and_regions_name_the_same_secrets() {
    on_every_backend(|api| async move {
        let created = api.create("shared").await;
        let name = created["name"].as_str().expect("name").to_string();
        let number = name.split('/').nth(1).expect("number").to_string();
        assert!(number.chars().all(|c| c.is_ascii_digit()), "{name}");
        api.add("shared", b"one").await;
        let by_number = api
            .ok("GET", &format!("/v1/projects/{number}/secrets/shared/versions/1:access"), None)
            .await;
        assert_eq!(by_number["payload"]["data"], base64_of(b"one"));

        let regional = api
            .ok(
                "POST",
                "/v1/projects/demo-proj/locations/us-central1/secrets?secretId=shared",
                Some(json!({})),
            )
            .await;
        assert_eq!(
            regional["name"],
            format!("projects/{number}/locations/us-central1/secrets/shared")
        );
        assert!(regional.get("replication").is_none());
        let (status, body) = api
            .call(
                "GET",
                "/v1/projects/demo-proj/locations/us-central1/secrets/shared/versions/latest:access",
                None,
            )
            .await;
        assert_error(status, &body, 404, "NOT_FOUND");
        assert!(body["error"]["message"].as_str().expect("msg").contains("has no versions"));
        let (status, body) = api
            .call(
                "POST",
                "/v1/projects/demo-proj/locations/mars-north1/secrets?secretId=x",
                Some(json!({})),
            )
            .await;
        assert_error(status, &body, 400, "INVALID_ARGUMENT");
        let global = api.ok("GET", "/v1/projects/demo-proj/secrets", None).await;
        assert_eq!(global["secrets"].as_array().expect("one global").len(), 1);
    })
    .await;
}

#[tokio::test]
async fn lists_page_and_filter() {
    on_every_backend(|api| async move {
        for i in 0..7 {
            let id = format!("s{i}");
            api.ok(
                "POST",
                &format!("/v1/projects/demo-proj/secrets?secretId={id}"),
                Some(json!({
                    "replication": {"automatic": {}},
                    "labels": {"parity": if i % 2 == 0 { "even" } else { "odd" }},
                })),
            )
            .await;
        }
        let mut seen = Vec::new();
        let mut token = String::new();
        loop {
            let page = api
                .ok(
                    "GET",
                    &format!("/v1/projects/demo-proj/secrets?pageSize=3&pageToken={token}"),
                    None,
                )
                .await;
            assert_eq!(page["totalSize"], 7);
            for secret in page["secrets"].as_array().expect("page") {
                seen.push(
                    secret["name"]
                        .as_str()
                        .expect("name")
                        .rsplit('/')
                        .next()
                        .expect("id")
                        .to_string(),
                );
            }
            match page["nextPageToken"].as_str() {
                Some(next) => token = next.to_string(),
                None => break,
            }
        }
        assert_eq!(seen, ["s0", "s1", "s2", "s3", "s4", "s5", "s6"]);

        let even = api
            .ok(
                "GET",
                "/v1/projects/demo-proj/secrets?filter=labels.parity%3Deven",
                None,
            )
            .await;
        assert_eq!(even["secrets"].as_array().expect("even").len(), 4);
        let (status, body) = api
            .call(
                "GET",
                "/v1/projects/demo-proj/secrets?filter=labels.parity%3D",
                None,
            )
            .await;
        assert_error(status, &body, 400, "INVALID_ARGUMENT");
        let (status, body) = api
            .call(
                "GET",
                "/v1/projects/demo-proj/secrets?pageToken=%21%21",
                None,
            )
            .await;
        assert_error(status, &body, 400, "INVALID_ARGUMENT");

        for _ in 0..3 {
            api.add("s0", b"x").await;
        }
        api.ok(
            "POST",
            "/v1/projects/demo-proj/secrets/s0/versions/2:disable",
            Some(json!({})),
        )
        .await;
        let versions = api
            .ok(
                "GET",
                "/v1/projects/demo-proj/secrets/s0/versions?filter=state%3ADISABLED",
                None,
            )
            .await;
        let names: Vec<&str> = versions["versions"]
            .as_array()
            .expect("versions")
            .iter()
            .map(|v| v["name"].as_str().expect("name"))
            .collect();
        assert_eq!(names.len(), 1);
        assert!(names[0].ends_with("/versions/2"));
        let all = api
            .ok("GET", "/v1/projects/demo-proj/secrets/s0/versions", None)
            .await;
        let newest = all["versions"][0]["name"].as_str().expect("name");
        assert!(newest.ends_with("/versions/3"), "newest first: {all}");
    })
    .await;
}

#[tokio::test]
async fn patch_follows_the_update_mask_and_etags_guard_writes() {
    on_every_backend(|api| async move {
        let created = api.create("cfg").await;
        api.add("cfg", b"v1").await;
        api.add("cfg", b"v2").await;
        let patched = api
            .ok(
                "PATCH",
                "/v1/projects/demo-proj/secrets/cfg?updateMask=labels,versionAliases",
                Some(json!({
                    "labels": {"env": "prod"},
                    "annotations": {"ignored": "not in mask"},
                    "versionAliases": {"stable": "1"},
                })),
            )
            .await;
        assert_eq!(patched["labels"], json!({"env": "prod"}));
        assert!(patched.get("annotations").is_none());
        assert_eq!(patched["versionAliases"], json!({"stable": "1"}));
        assert_ne!(patched["etag"], created["etag"]);
        let stable = api
            .ok(
                "GET",
                "/v1/projects/demo-proj/secrets/cfg/versions/stable:access",
                None,
            )
            .await;
        assert_eq!(stable["payload"]["data"], base64_of(b"v1"));

        let (status, body) = api
            .call(
                "PATCH",
                "/v1/projects/demo-proj/secrets/cfg?updateMask=labels",
                Some(json!({"labels": {"Bad Key": "x"}})),
            )
            .await;
        assert_error(status, &body, 400, "INVALID_ARGUMENT");
        let (status, body) = api
            .call(
                "PATCH",
                "/v1/projects/demo-proj/secrets/cfg?updateMask=replication",
                Some(json!({"replication": {"automatic": {}}})),
            )
            .await;
        assert_error(status, &body, 400, "INVALID_ARGUMENT");
        let (status, body) = api
            .call(
                "PATCH",
                "/v1/projects/demo-proj/secrets/cfg",
                Some(json!({"labels": {}})),
            )
            .await;
        assert_error(status, &body, 400, "INVALID_ARGUMENT");
        let (status, body) = api
            .call(
                "PATCH",
                "/v1/projects/demo-proj/secrets/cfg?updateMask=versionAliases",
                Some(json!({"versionAliases": {"gone": "9"}})),
            )
            .await;
        assert_error(status, &body, 400, "INVALID_ARGUMENT");

        let stale = created["etag"].as_str().expect("etag");
        let (status, body) = api
            .call(
                "DELETE",
                &format!(
                    "/v1/projects/demo-proj/secrets/cfg?etag={}",
                    urlencode(stale)
                ),
                None,
            )
            .await;
        assert_error(status, &body, 409, "ABORTED");
        let current = patched["etag"].as_str().expect("etag");
        api.ok(
            "DELETE",
            &format!(
                "/v1/projects/demo-proj/secrets/cfg?etag={}",
                urlencode(current)
            ),
            None,
        )
        .await;
        let (status, body) = api
            .call("GET", "/v1/projects/demo-proj/secrets/cfg", None)
            .await;
        assert_error(status, &body, 404, "NOT_FOUND");
    })
    .await;
}

fn urlencode(text: &str) -> String {
    text.bytes().map(|b| format!("%{b:02X}")).collect()
}

#[tokio::test]
async fn version_states_follow_secret_manager_rules() {
    on_every_backend(|api| async move {
        api.create("rotating").await;
        let v1 = api.add("rotating", b"old").await;
        api.add("rotating", b"new").await;
        let base = "/v1/projects/demo-proj/secrets/rotating/versions";
        let stale_etag = v1["etag"].clone();
        api.ok("POST", &format!("{base}/1:disable"), Some(json!({})))
            .await;
        let (status, body) = api
            .call(
                "POST",
                &format!("{base}/1:enable"),
                Some(json!({"etag": stale_etag})),
            )
            .await;
        assert_error(status, &body, 409, "ABORTED");
        api.ok("POST", &format!("{base}/1:enable"), Some(json!({})))
            .await;
        let destroyed = api
            .ok("POST", &format!("{base}/1:destroy"), Some(json!({})))
            .await;
        assert_eq!(destroyed["state"], "DESTROYED");
        assert!(destroyed["destroyTime"].is_string());
        let (status, body) = api.call("GET", &format!("{base}/1:access"), None).await;
        assert_error(status, &body, 400, "FAILED_PRECONDITION");
        let (status, body) = api
            .call("POST", &format!("{base}/1:disable"), Some(json!({})))
            .await;
        assert_error(status, &body, 400, "FAILED_PRECONDITION");
        let (status, body) = api
            .call("POST", &format!("{base}/1:destroy"), Some(json!({})))
            .await;
        assert_error(status, &body, 400, "FAILED_PRECONDITION");

        let as_ints = api
            .ok(
                "GET",
                &format!("{base}/1?%24alt=json%3Benum-encoding%3Dint"),
                None,
            )
            .await;
        assert_eq!(as_ints["state"], 3);

        api.ok("POST", &format!("{base}/2:disable"), Some(json!({})))
            .await;
        let (status, body) = api
            .call("GET", &format!("{base}/latest:access"), None)
            .await;
        assert_error(status, &body, 400, "FAILED_PRECONDITION");
        assert!(
            body["error"]["message"]
                .as_str()
                .expect("msg")
                .contains("DISABLED")
        );
    })
    .await;
}

#[tokio::test]
async fn expiry_and_delayed_destruction_take_effect_on_time() {
    on_every_backend(|api| async move {
        api.ok(
            "POST",
            "/v1/projects/demo-proj/secrets?secretId=brief",
            Some(json!({"replication": {"automatic": {}}, "ttl": "1s"})),
        )
        .await;
        let (status, body) = api
            .call(
                "POST",
                "/v1/projects/demo-proj/secrets?secretId=both",
                Some(json!({"replication": {"automatic": {}}, "ttl": "5s",
                            "expireTime": "2999-01-01T00:00:00Z"})),
            )
            .await;
        assert_error(status, &body, 400, "INVALID_ARGUMENT");
        api.ok(
            "POST",
            "/v1/projects/demo-proj/secrets?secretId=careful",
            Some(json!({"replication": {"automatic": {}}, "versionDestroyTtl": "1s"})),
        )
        .await;
        api.add("careful", b"keep a moment").await;
        let scheduled = api
            .ok(
                "POST",
                "/v1/projects/demo-proj/secrets/careful/versions/1:destroy",
                Some(json!({})),
            )
            .await;
        assert_eq!(scheduled["state"], "DISABLED");
        assert!(scheduled["scheduledDestroyTime"].is_string());

        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let (brief, _) = api
                .call("GET", "/v1/projects/demo-proj/secrets/brief", None)
                .await;
            let version = api
                .ok(
                    "GET",
                    "/v1/projects/demo-proj/secrets/careful/versions/1",
                    None,
                )
                .await;
            if brief == StatusCode::NOT_FOUND && version["state"] == "DESTROYED" {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "expiry never happened"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn iam_policies_use_etags_and_permissions() {
    on_every_backend(|api| async move {
        api.create("guarded").await;
        let empty = api
            .ok(
                "GET",
                "/v1/projects/demo-proj/secrets/guarded:getIamPolicy",
                None,
            )
            .await;
        assert_eq!(empty["etag"], "ACAB");
        let set = api
            .ok(
                "POST",
                "/v1/projects/demo-proj/secrets/guarded:setIamPolicy",
                Some(
                    json!({"policy": {"bindings": [{"role": "roles/secretmanager.secretAccessor",
                    "members": ["user:a@example.com"]}], "etag": "ACAB"}}),
                ),
            )
            .await;
        let (status, body) = api
            .call(
                "POST",
                "/v1/projects/demo-proj/secrets/guarded:setIamPolicy",
                Some(json!({"policy": {"bindings": [], "etag": "ACAB"}})),
            )
            .await;
        assert_error(status, &body, 409, "ABORTED");
        let read = api
            .ok(
                "POST",
                "/v1/projects/demo-proj/secrets/guarded:getIamPolicy",
                Some(json!({})),
            )
            .await;
        assert_eq!(read, set);
        let tested = api
            .ok(
                "POST",
                "/v1/projects/demo-proj/secrets/guarded:testIamPermissions",
                Some(json!({"permissions": ["secretmanager.versions.access", "run.services.get"]})),
            )
            .await;
        assert_eq!(
            tested["permissions"],
            json!(["secretmanager.versions.access"])
        );
        let (status, body) = api
            .call(
                "POST",
                "/v1/projects/demo-proj/secrets/missing:setIamPolicy",
                Some(json!({"policy": {}})),
            )
            .await;
        assert_error(status, &body, 404, "NOT_FOUND");
    })
    .await;
}

#[tokio::test]
async fn bad_requests_are_refused_without_losing_data() {
    on_every_backend(|api| async move {
        api.create("precious").await;
        api.add("precious", b"keep me").await;
        let long_id = format!(
            "/v1/projects/demo-proj/secrets?secretId={}",
            "a".repeat(256)
        );
        let cases: Vec<(&str, &str, Option<&str>, u16, &str)> = vec![
            (
                "POST",
                "/v1/projects/demo-proj/secrets?secretId=precious",
                Some(r#"{"replication":{"automatic":{}}}"#),
                409,
                "ALREADY_EXISTS",
            ),
            (
                "POST",
                "/v1/projects/demo-proj/secrets?secretId=x",
                Some("{not json"),
                400,
                "INVALID_ARGUMENT",
            ),
            (
                "POST",
                "/v1/projects/demo-proj/secrets?secretId=x",
                Some(r#"{"replication":"auto"}"#),
                400,
                "INVALID_ARGUMENT",
            ),
            (
                "POST",
                "/v1/projects/demo-proj/secrets?secretId=x",
                Some(r#"{"bogus":1}"#),
                400,
                "INVALID_ARGUMENT",
            ),
            (
                "POST",
                "/v1/projects/demo-proj/secrets?secretId=x",
                Some("{}"),
                400,
                "INVALID_ARGUMENT",
            ),
            (
                "POST",
                "/v1/projects/demo-proj/secrets",
                Some(r#"{"replication":{"automatic":{}}}"#),
                400,
                "INVALID_ARGUMENT",
            ),
            (
                "POST",
                &long_id,
                Some(r#"{"replication":{"automatic":{}}}"#),
                400,
                "INVALID_ARGUMENT",
            ),
            (
                "POST",
                "/v1/projects/demo-proj/secrets?secretId=x",
                Some(r#"{"replication":{"userManaged":{"replicas":[]}}}"#),
                400,
                "INVALID_ARGUMENT",
            ),
            (
                "POST",
                "/v1/projects/demo-proj/secrets?secretId=x",
                Some(r#"{"replication":{"automatic":{}},"expireTime":"yesterday"}"#),
                400,
                "INVALID_ARGUMENT",
            ),
            (
                "POST",
                "/v1/projects/demo-proj/secrets?secretId=x",
                Some(r#"{"replication":{"automatic":{}},"expireTime":"2001-01-01T00:00:00Z"}"#),
                400,
                "INVALID_ARGUMENT",
            ),
            (
                "POST",
                "/v1/projects/Bad_Project/secrets?secretId=x",
                Some(r#"{"replication":{"automatic":{}}}"#),
                400,
                "INVALID_ARGUMENT",
            ),
            (
                "POST",
                "/v1/projects/demo-proj/secrets/precious:addVersion",
                Some(r#"{}"#),
                400,
                "INVALID_ARGUMENT",
            ),
            (
                "POST",
                "/v1/projects/demo-proj/secrets/precious:frobnicate",
                Some(r#"{}"#),
                404,
                "NOT_FOUND",
            ),
            (
                "GET",
                "/v1/projects/demo-proj/secrets/precious/versions/-1",
                None,
                400,
                "INVALID_ARGUMENT",
            ),
            (
                "GET",
                "/v1/projects/demo-proj/secrets/precious/versions/99",
                None,
                404,
                "NOT_FOUND",
            ),
            (
                "GET",
                "/v1/projects/demo-proj/secrets?pageSize=-1",
                None,
                400,
                "INVALID_ARGUMENT",
            ),
            (
                "GET",
                "/v1/projects/demo-proj/secrets?pageSize=ten",
                None,
                400,
                "INVALID_ARGUMENT",
            ),
            ("GET", "/v1/nowhere", None, 404, "NOT_FOUND"),
        ];
        for (method, path, body, code, name) in cases {
            let mut request = api.http.request(
                reqwest::Method::from_bytes(method.as_bytes()).expect("method"),
                format!("{}{path}", api.base),
            );
            if let Some(body) = body {
                request = request
                    .header("content-type", "application/json")
                    .body(body.to_string());
            }
            let response = request.send().await.expect("answered");
            let status = response.status();
            let body: Value = response.json().await.expect("Google's JSON error");
            assert_eq!(status.as_u16(), code, "{method} {path}: {body}");
            assert_eq!(body["error"]["status"], name, "{method} {path}: {body}");
        }
        let access = api
            .ok(
                "GET",
                "/v1/projects/demo-proj/secrets/precious/versions/latest:access",
                None,
            )
            .await;
        assert_eq!(access["payload"]["data"], base64_of(b"keep me"));
        let list = api.ok("GET", "/v1/projects/demo-proj/secrets", None).await;
        assert_eq!(list["secrets"].as_array().expect("one").len(), 1);
    })
    .await;
}
