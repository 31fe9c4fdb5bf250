//! The Cloud Run Knative contract over HTTP, for what gcloud checks on the client before the
//! server would: API versions, names, stale writes, the regional host, and deletions refused.

use harness::Emulator;
use reqwest::StatusCode;
use serde_json::{Value, json};

mod support;
use support::containers_labelled;

const BASE: &str = "/apis/serving.knative.dev/v1/namespaces/demo-proj";

struct Knative {
    http: reqwest::Client,
    base: String,
}

impl Knative {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        host: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(host) = host {
            request = request.header("host", host);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("answered");
        let status = response.status();
        (status, response.json().await.expect("JSON"))
    }

    async fn regional(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.call(method, path, Some("us-central1-run.googleapis.com"), body)
            .await
    }
}

fn service(name: &str, image: &str) -> Value {
    json!({
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"template": {"spec": {"containers": [{"image": image}]}}},
    })
}

fn assert_error(status: StatusCode, body: &Value, code: u16, words: &str) {
    assert_eq!(status.as_u16(), code, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(words), "expected {words:?} in {body}");
}

#[tokio::test]
async fn knative_requests_are_validated_like_cloud_run() {
    let emulator = Emulator::start().await.expect("emulator");
    let api = Knative {
        http: reqwest::Client::new(),
        base: emulator.url(),
    };
    use reqwest::Method;

    let mut wrong_version = service("web", "img");
    wrong_version["apiVersion"] = json!("serving.knative.dev/v2");
    let (status, body) = api
        .regional(
            Method::POST,
            &format!("{BASE}/services"),
            Some(wrong_version),
        )
        .await;
    assert_error(status, &body, 400, "Unsupported API version");

    let (status, body) = api
        .regional(
            Method::POST,
            &format!("{BASE}/services"),
            Some(service("Bad_Name", "img")),
        )
        .await;
    assert_error(status, &body, 400, "Invalid service name");

    let (status, body) = api
        .regional(
            Method::POST,
            &format!("{BASE}/services?dryRun=everything"),
            Some(service("web", "img")),
        )
        .await;
    assert_error(status, &body, 400, "Supported values: all");
    let (status, body) = api
        .regional(
            Method::POST,
            &format!("{BASE}/services?dryRun=all"),
            Some(service("web", "img")),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["metadata"]["name"], "web", "{body}");
    let (status, body) = api
        .regional(
            Method::DELETE,
            &format!("{BASE}/services/web?dryRun=all"),
            None,
        )
        .await;
    assert_error(status, &body, 404, "web");

    let (status, body) = api
        .call(
            Method::POST,
            &format!("{BASE}/services"),
            Some("127.0.0.1"),
            Some(service("web", "img")),
        )
        .await;
    assert_error(status, &body, 400, "regional endpoint");

    let (status, created) = api
        .regional(
            Method::POST,
            &format!("{BASE}/services"),
            Some(service("web", "cloudrun-emulator/none:1")),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["metadata"]["generation"], 1);
    assert_eq!(
        created["metadata"]["labels"]["cloud.googleapis.com/location"],
        "us-central1"
    );
    let number = created["metadata"]["namespace"]
        .as_str()
        .expect("namespace")
        .to_string();
    assert!(
        number.chars().all(|c| c.is_ascii_digit()),
        "namespace is the project number"
    );

    let (status, body) = api
        .regional(
            Method::POST,
            &format!("{BASE}/services"),
            Some(service("web", "img")),
        )
        .await;
    assert_error(status, &body, 409, "already exists");

    let mut stale = created.clone();
    stale["spec"]["template"]["spec"]["containers"][0]["image"] = json!("other");
    let (status, updated) = api
        .regional(
            Method::PUT,
            &format!("{BASE}/services/web"),
            Some(stale.clone()),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["metadata"]["generation"], 2);
    let (status, body) = api
        .regional(Method::PUT, &format!("{BASE}/services/web"), Some(stale))
        .await;
    assert_error(status, &body, 409, "the object has been modified");

    let (status, body) = api
        .regional(
            Method::PUT,
            &format!("{BASE}/services/other"),
            Some(updated.clone()),
        )
        .await;
    assert_error(status, &body, 400, "does not match");

    let (_, revisions) = api
        .regional(
            Method::GET,
            &format!("{BASE}/revisions?labelSelector=serving.knative.dev/service%3Dweb"),
            None,
        )
        .await;
    let items = revisions["items"].as_array().expect("items");
    assert_eq!(items.len(), 2);
    let latest = items[0]["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_string();
    let (status, body) = api
        .regional(Method::DELETE, &format!("{BASE}/revisions/{latest}"), None)
        .await;
    assert_error(status, &body, 400, "cannot be deleted");

    let (status, config) = api
        .regional(Method::GET, &format!("{BASE}/configurations/web"), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(config["status"]["latestCreatedRevisionName"], latest);
    let (status, route) = api
        .regional(Method::GET, &format!("{BASE}/routes/web"), None)
        .await;
    assert_eq!(status, 200, "{route}");

    let (status, all) = api
        .call(
            Method::GET,
            &format!("{BASE}/services"),
            Some("run.googleapis.com"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        all["items"].as_array().expect("items").len(),
        1,
        "a global list spans regions"
    );

    let (status, _) = api
        .regional(Method::DELETE, &format!("{BASE}/services/web"), None)
        .await;
    assert_eq!(status, 200);
    let (status, body) = api
        .regional(Method::GET, &format!("{BASE}/services/web"), None)
        .await;
    assert_error(status, &body, 404, "web");
    let (status, body) = api
        .regional(Method::DELETE, &format!("{BASE}/services/web"), None)
        .await;
    assert_error(status, &body, 404, "web");
}

#[tokio::test]
async fn deleting_a_service_does_not_wait_for_a_start_that_hangs() {
    harness::ensure_images(&["sandbox", "testapp"]).expect("images");
    let emulator = Emulator::start().await.expect("emulator");
    let api = Knative {
        http: reqwest::Client::new(),
        base: emulator.url(),
    };
    let mut never_listens = service("sleeper", "cloudrun-emulator/testapp:1");
    never_listens["spec"]["template"]["spec"]["containers"][0]["args"] = json!(["sleep"]);
    let (status, body) = api
        .regional(
            reqwest::Method::POST,
            &format!("{BASE}/services"),
            Some(never_listens),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while containers_labelled("service", "sleeper").len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the instance never started"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let started = std::time::Instant::now();
    let (status, _) = api
        .regional(
            reqwest::Method::DELETE,
            &format!("{BASE}/services/sleeper"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "the delete waited {:?} for the 240 s default probe",
        started.elapsed()
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while !containers_labelled("service", "sleeper").is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the half-started instance stayed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
