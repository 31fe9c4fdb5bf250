//! Whatever a client sends, the emulator answers with Google's error shape and never a 5xx:
//! a seeded stream of malformed paths, verbs, query strings and bodies against every API.

use harness::Emulator;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

const PATHS: &[&str] = &[
    "/v1/projects/demo-proj/secrets",
    "/v1/projects/demo-proj/secrets/s",
    "/v1/projects/demo-proj/secrets/s:addVersion",
    "/v1/projects/demo-proj/secrets/s/versions/latest:access",
    "/v1/projects/demo-proj/secrets/s/versions/1:destroy",
    "/v1/projects/demo-proj/secrets/s:setIamPolicy",
    "/v1/projects/demo-proj/locations/us-central1/secrets",
    "/v1/projects/demo-proj/services/run.googleapis.com:enable",
    "/v1/projects/demo-proj/services:batchEnable",
    "/v1/projects/demo-proj/locations/us-central1/repositories",
    "/v1/projects/demo-proj/locations/us-central1/repositories/r",
    "/compute/v1/projects/demo-proj/zones",
    "/apis/serving.knative.dev/v1/namespaces/demo-proj/services",
    "/apis/serving.knative.dev/v1/namespaces/demo-proj/services/web",
    "/apis/serving.knative.dev/v1/namespaces/demo-proj/revisions",
    "/v1/projects/demo-proj/locations/us-central1/services/web:setIamPolicy",
    "/v2/entries:list",
    "/v2/projects/demo-proj/locations/us-central1/services",
    "/v2/projects/demo-proj/locations/us-central1/services/web",
    "/v2/projects/demo-proj/locations/us-central1/services/web/revisions",
    "/v2/projects/demo-proj/locations/us-central1/operations/x",
    "/v2/entries:write",
    "/sql/v1beta4/projects/demo-proj/instances",
    "/sql/v1beta4/projects/demo-proj/instances/inst",
    "/sql/v1beta4/projects/demo-proj/instances/inst/databases",
    "/sql/v1beta4/projects/demo-proj/instances/inst/users",
    "/sql/v1beta4/projects/demo-proj/operations/x",
    "/v1/projects/demo-proj/instances/inst/users",
];

const BODIES: &[&str] = &[
    "",
    "{",
    "[]",
    "null",
    "42",
    "\"text\"",
    r#"{"replication":{"automatic":{},"userManaged":{}}}"#,
    r#"{"payload":{"data":12}}"#,
    r#"{"payload":{"data":"cHc=","dataCrc32c":"not a number"}}"#,
    r#"{"policy":{"bindings":[{"role":"","members":[""]}],"etag":"%%%"}}"#,
    r#"{"apiVersion":"serving.knative.dev/v1","kind":"Service","metadata":{"name":"web"},"spec":{"template":{"spec":{"containers":[]}}}}"#,
    r#"{"apiVersion":"serving.knative.dev/v1","metadata":{"name":"web"},"spec":{"template":{"spec":{"containers":[{"image":"x","ports":[{"containerPort":99999}]}]}},"traffic":[{"percent":-5}]}}"#,
    r#"{"metadata":{"name":"web","annotations":{"run.googleapis.com/container-dependencies":"{{{"}},"spec":{"template":{"spec":{"containers":[{"image":"x"}]}}}}"#,
    r#"{"filter":"((((","pageSize":-3}"#,
    r#"{"entries":[{"logName":"bad"}]}"#,
    r#"{"serviceIds":["a","b"]}"#,
];

const QUERIES: &[&str] = &[
    "",
    "?secretId=",
    "?secretId=s",
    "?pageSize=-1",
    "?pageToken=%FF",
    "?filter=labels.%3D%3D",
    "?updateMask=nonsense",
    "?etag=%22x%22",
    "?repositoryId=UPPER",
    "?labelSelector=%3D%3D%3D",
    "?%24alt=json%3Benum-encoding%3Dint",
    "?dryRun=all",
    "?dryRun=everything",
];

#[tokio::test]
async fn malformed_requests_get_google_errors_never_a_5xx() {
    let emulator = Emulator::start().await.expect("emulator");
    let http = reqwest::Client::new();
    let mut rng = StdRng::seed_from_u64(0x5eed);
    let methods = ["GET", "POST", "PUT", "PATCH", "DELETE"];
    for _ in 0..600 {
        let path = PATHS[rng.random_range(0..PATHS.len())];
        let query = QUERIES[rng.random_range(0..QUERIES.len())];
        let body = BODIES[rng.random_range(0..BODIES.len())];
        let method = methods[rng.random_range(0..methods.len())];
        let response = http
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).expect("method"),
                format!("{}{path}{query}", emulator.url()),
            )
            .header("host", "us-central1-run.googleapis.com")
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
        if status.is_client_error() {
            let error: Value = serde_json::from_str(&text)
                .unwrap_or_else(|_| panic!("{method} {path}{query}: not JSON: {text}"));
            assert_eq!(error["error"]["code"], status.as_u16(), "{text}");
            assert!(error["error"]["status"].is_string(), "{text}");
        }
    }
}
