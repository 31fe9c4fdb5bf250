//! Google's official Rust client for Secret Manager (REST, `enum-encoding=int`) against the
//! emulator: what a Rust service does with its secrets at start-up.

use google_cloud_gax::paginator::ItemPaginator;
use google_cloud_gax::retry_policy::NeverRetry;
use google_cloud_secretmanager_v1::client::SecretManagerService;
use google_cloud_secretmanager_v1::model::{
    Replication, Secret, SecretPayload, replication, secret_version,
};
use harness::Emulator;

async fn client(emulator: &Emulator) -> SecretManagerService {
    SecretManagerService::builder()
        .with_endpoint(emulator.url())
        .with_credentials(google_cloud_auth::credentials::anonymous::Builder::new().build())
        .with_retry_policy(NeverRetry)
        .build()
        .await
        .expect("client builds")
}

#[tokio::test]
async fn the_official_client_creates_reads_and_lists_secrets() {
    let emulator = Emulator::start().await.expect("emulator starts");
    let client = client(&emulator).await;
    let parent = "projects/demo-proj";

    for id in ["api-key", "db-password"] {
        let created = client
            .create_secret()
            .set_parent(parent)
            .set_secret_id(id)
            .set_secret(
                Secret::new()
                    .set_replication(
                        Replication::new().set_automatic(replication::Automatic::new()),
                    )
                    .set_labels([("app", "shop")]),
            )
            .send()
            .await
            .expect("create_secret");
        assert!(created.name.ends_with(&format!("/secrets/{id}")));
        assert_eq!(created.labels.get("app").map(String::as_str), Some("shop"));
    }

    let payload = bytes::Bytes::from_static(b"hunter2");
    let version = client
        .add_secret_version()
        .set_parent(format!("{parent}/secrets/db-password"))
        .set_payload(
            SecretPayload::new()
                .set_data(payload.clone())
                .set_data_crc32c(i64::from(crc32c::crc32c(&payload))),
        )
        .send()
        .await
        .expect("add_secret_version");
    assert_eq!(version.state, secret_version::State::Enabled);
    assert!(version.client_specified_payload_checksum);

    let accessed = client
        .access_secret_version()
        .set_name(format!("{parent}/secrets/db-password/versions/latest"))
        .send()
        .await
        .expect("access_secret_version");
    let accessed_payload = accessed.payload.expect("payload");
    assert_eq!(accessed_payload.data, payload);
    assert_eq!(
        accessed_payload.data_crc32c,
        Some(i64::from(crc32c::crc32c(&payload)))
    );

    let fetched = client
        .get_secret()
        .set_name(format!("{parent}/secrets/api-key"))
        .send()
        .await
        .expect("get_secret");
    assert!(fetched.create_time.is_some());

    let mut names = Vec::new();
    let mut items = client.list_secrets().set_parent(parent).by_item();
    while let Some(secret) = items.next().await {
        names.push(secret.expect("list item").name);
    }
    assert_eq!(names.len(), 2);
    assert!(names[0].ends_with("/secrets/api-key") && names[1].ends_with("/secrets/db-password"));

    let missing = client
        .access_secret_version()
        .set_name(format!("{parent}/secrets/nosuch/versions/latest"))
        .send()
        .await
        .expect_err("a missing secret is an error");
    let status = missing.status().expect("a service error with a status");
    assert_eq!(status.code, google_cloud_gax::error::rpc::Code::NotFound);
}
