//! Identity on Cloud Run, with real Docker and the real gcloud CLI: a public storefront calls a
//! private product service at the URL `describe` prints, with an ID token from the metadata
//! server of its own instance; the product service admits only principals holding
//! `roles/run.invoker`, and verifies the token itself against the emulator's JWKS.

use std::time::{Duration, Instant};

use harness::{Emulator, Gcloud};
use serde_json::Value;

mod support;
use support::{REGION, service_url};

const IMAGE: &str = "cloudrun-emulator/testapp:1";
const STOREFRONT_ACCOUNT: &str = "storefront@demo-proj.iam.gserviceaccount.com";

async fn get(url: &str, token: Option<&str>) -> (u16, String) {
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("the URL answers");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

/// GETs `url` until it answers `status` (IAM changes reach the ingress in the background).
async fn eventually(url: &str, token: Option<&str>, status: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (got, body) = get(url, token).await;
        if got == status {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{url} still answers {got} instead of {status}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn grant_invoker(gcloud: &Gcloud, service: &str, member: &str) {
    gcloud
        .run([
            "run",
            "services",
            "add-iam-policy-binding",
            service,
            REGION,
            &format!("--member={member}"),
            "--role=roles/run.invoker",
        ])
        .ok()
        .await
        .expect("grant the invoker role");
}

#[tokio::test]
async fn a_service_calls_a_private_service_with_the_identity_token_of_its_instance() {
    harness::ensure_images(&["sandbox", "testapp"]).expect("test images build");
    let emulator = Emulator::start().await.expect("emulator starts");
    let gcloud = emulator.gcloud();

    gcloud
        .run([
            "run",
            "deploy",
            "products",
            "--image",
            IMAGE,
            REGION,
            "--no-allow-unauthenticated",
        ])
        .ok()
        .await
        .expect("deploy the private product service");
    let products = service_url(&gcloud, "products").await;
    gcloud
        .run([
            "run",
            "deploy",
            "storefront",
            "--image",
            IMAGE,
            REGION,
            "--allow-unauthenticated",
            &format!("--service-account={STOREFRONT_ACCOUNT}"),
            &format!("--set-env-vars=PRODUCT_SERVICE_URL={products}"),
        ])
        .ok()
        .await
        .expect("deploy the public storefront, configured with the product service's URL");
    let storefront = service_url(&gcloud, "storefront").await;

    // The storefront's instance has a metadata server that knows who it is.
    let metadata = |path: &str| format!("{storefront}/metadata/{path}");
    assert_eq!(
        get(&metadata("instance/service-accounts/default/email"), None).await,
        (200, STOREFRONT_ACCOUNT.to_string())
    );
    assert_eq!(
        get(&metadata("project/project-id"), None).await,
        (200, "demo-proj".to_string())
    );
    assert!(
        get(&metadata("instance/region"), None)
            .await
            .1
            .ends_with("/regions/us-central1")
    );
    let (status, body) = get(
        &format!("{storefront}/metadata-unflavored/project/project-id"),
        None,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("Missing Metadata-Flavor:Google header."),
        "{body}"
    );

    // Anonymous calls to the private service are refused, as are calls with the storefront's
    // token while it holds no invoker role.
    let call =
        |auth: &str| format!("{storefront}/call?url_env=PRODUCT_SERVICE_URL&path=/verify{auth}");
    let (status, body) = get(&call("&auth=none"), None).await;
    assert_eq!(status, 403, "anonymous: {body}");
    assert!(
        body.contains("Your client does not have permission"),
        "{body}"
    );
    let (status, body) = get(&call(""), None).await;
    assert_eq!(status, 403, "no invoker role yet: {body}");

    grant_invoker(
        &gcloud,
        "products",
        &format!("serviceAccount:{STOREFRONT_ACCOUNT}"),
    )
    .await;
    let claims: Value =
        serde_json::from_str(&eventually(&call(""), None, 200).await).expect("claims JSON");
    assert_eq!(claims["email"], STOREFRONT_ACCOUNT);
    assert_eq!(claims["aud"], products.as_str());
    assert_eq!(claims["iss"], "https://accounts.google.com");
    let (status, _) = get(&call("&auth=none"), None).await;
    assert_eq!(status, 403, "still no anonymous access");

    // From the host: a user's token, refused until the user is granted the role; a token that
    // is not the emulator's is not verified at all.
    let alice = emulator
        .identity_token("alice@example.com", &products)
        .expect("a token for alice");
    let (status, _) = get(&format!("{products}/verify"), Some(&alice)).await;
    assert_eq!(status, 403, "alice holds no role");
    let (status, body) = get(&format!("{products}/verify"), Some("not-a-jwt")).await;
    assert_eq!(status, 401, "{body}");
    let generated: Value = reqwest::Client::new()
        .post(format!(
            "{}/v1/projects/-/serviceAccounts/alice@example.com:generateIdToken",
            emulator.url()
        ))
        .json(&serde_json::json!({ "audience": storefront }))
        .send()
        .await
        .expect("IAM Credentials generateIdToken")
        .json()
        .await
        .expect("JSON");
    let elsewhere = generated["token"].as_str().expect("a token");
    let (status, _) = get(&format!("{products}/verify"), Some(elsewhere)).await;
    assert_eq!(status, 401, "a token for another service");
    grant_invoker(&gcloud, "products", "user:alice@example.com").await;
    let claims: Value =
        serde_json::from_str(&eventually(&format!("{products}/verify"), Some(&alice), 200).await)
            .expect("claims JSON");
    assert_eq!(claims["email"], "alice@example.com");

    // A service created after the storefront's instance started is reachable too.
    gcloud
        .run([
            "run",
            "deploy",
            "reviews",
            "--image",
            IMAGE,
            REGION,
            "--allow-unauthenticated",
        ])
        .ok()
        .await
        .expect("deploy a public review service");
    let reviews = service_url(&gcloud, "reviews").await;
    let body = eventually(
        &format!("{storefront}/call?url={reviews}&auth=none"),
        None,
        200,
    )
    .await;
    assert!(body.starts_with("hello from reviews-"), "{body}");

    emulator.stop().await;
}
