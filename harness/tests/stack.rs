//! The stack builder's promises: a service file's variables are checked before anything is
//! deployed, and every container goes away with the stack, also when the test panics.

use std::process::Command;

use harness::{CloudRunService, HarnessError, Stack};

const SERVICE_YAML: &str = r#"
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: ${NAME}
spec:
  template:
    spec:
      containers:
      - image: cloudrun-emulator/testapp:1
        env:
        - name: GREETING
          valueFrom:
            secretKeyRef:
              name: greeting
              key: latest
        - name: WHERE
          value: ${PROJECT}/${REGION}
"#;

fn service_file() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temp dir");
    std::fs::write(dir.path().join("service.yaml"), SERVICE_YAML).expect("written");
    dir
}

fn stack(dir: &tempfile::TempDir, name: &str) -> Stack {
    Stack::new()
        .project("harness-proj")
        .image("testapp")
        .secret("greeting", "hello")
        .service(
            CloudRunService::from_yaml(dir.path().join("service.yaml"))
                .var("NAME", name)
                .allow_unauthenticated(),
        )
}

fn containers_of(revision: &str) -> usize {
    let out = Command::new("docker")
        .args(["ps", "-aq", "--filter"])
        .arg(format!("label=cloudrun-emulator.revision={revision}"))
        .output()
        .expect("docker ps runs");
    String::from_utf8_lossy(&out.stdout).lines().count()
}

#[tokio::test]
async fn a_stack_serves_its_services_and_is_removed_when_dropped() {
    let dir = service_file();
    let stack = stack(&dir, "teardown").start().await.expect("starts");
    let revision = stack.revision("teardown").expect("deployed");
    let greeting = stack
        .get("teardown", "/env/GREETING")
        .await
        .expect("answers");
    assert_eq!(greeting.text().await.expect("body"), "hello");
    let place = stack.get("teardown", "/env/WHERE").await.expect("answers");
    assert_eq!(
        place.text().await.expect("body"),
        "harness-proj/us-central1",
        "${{PROJECT}} and ${{REGION}} are always defined"
    );
    assert_eq!(stack.secret_value("greeting").expect("declared"), b"hello");
    assert!(stack.logs("teardown").contains("GET /env/GREETING"));
    assert!(containers_of(&revision) > 0);

    drop(stack);
    assert_eq!(containers_of(&revision), 0, "nothing outlives the stack");
}

#[tokio::test]
async fn a_panicking_test_leaves_no_container_behind() {
    let dir = service_file();
    let stack = stack(&dir, "panics").start().await.expect("starts");
    let revision = stack.revision("panics").expect("deployed");
    let test = tokio::spawn(async move {
        let _stack = stack;
        panic!("the test's assertion fails");
    });
    let outcome = test.await;
    assert!(outcome.is_err_and(|e| e.is_panic()));
    assert_eq!(
        containers_of(&revision),
        0,
        "the unwinding test removed its stack"
    );
}

#[tokio::test]
async fn a_service_file_variable_without_a_value_is_refused_by_name() {
    let dir = service_file();
    let error = Stack::new()
        .service(CloudRunService::from_yaml(dir.path().join("service.yaml")))
        .start()
        .await
        .expect_err("${NAME} has no value");
    let HarnessError::ServiceYaml { message, .. } = &error else {
        panic!("expected a service file error, got {error}");
    };
    assert!(message.contains("${NAME} has no value"), "{message}");
}

#[tokio::test]
async fn containers_reach_a_stubbed_third_party_api_at_its_host_name() {
    use harness::wiremock::matchers::{method, path};
    use harness::wiremock::{Mock, ResponseTemplate};

    let dir = tempfile::tempdir().expect("a temp dir");
    std::fs::write(
        dir.path().join("service.yaml"),
        r#"
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: payments-client
spec:
  template:
    spec:
      containers:
      - image: cloudrun-emulator/testapp:1
        env:
        - name: PAYMENTS_URL
          value: ${STUB_API_PAYMENTS_EXAMPLE}
"#,
    )
    .expect("written");
    let stack = Stack::new()
        .image("testapp")
        .http_stub("api.payments.example")
        .service(
            CloudRunService::from_yaml(dir.path().join("service.yaml")).allow_unauthenticated(),
        )
        .start()
        .await
        .expect("starts");
    Mock::given(method("GET"))
        .and(path("/v1/balance"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{\"available\":42}"))
        .expect(1)
        .mount(stack.stub("api.payments.example").expect("declared"))
        .await;

    let configured = stack
        .get("payments-client", "/env/PAYMENTS_URL")
        .await
        .expect("answers")
        .text()
        .await
        .expect("body");
    let port = stack
        .stub("api.payments.example")
        .expect("declared")
        .address()
        .port();
    assert_eq!(configured, format!("http://api.payments.example:{port}"));

    let target = configured.trim_start_matches("http://");
    let answer = stack
        .get("payments-client", &format!("/proxy/{target}/v1/balance"))
        .await
        .expect("answers");
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().await.expect("body"), "{\"available\":42}");
}

#[tokio::test]
async fn two_stacks_with_the_same_names_run_side_by_side_without_seeing_each_other() {
    let dir = service_file();
    let (first, second) = tokio::join!(
        Stack::new()
            .image("testapp")
            .secret("greeting", "from the first")
            .service(
                CloudRunService::from_yaml(dir.path().join("service.yaml"))
                    .var("NAME", "twin")
                    .allow_unauthenticated()
            )
            .start(),
        Stack::new()
            .image("testapp")
            .secret("greeting", "from the second")
            .service(
                CloudRunService::from_yaml(dir.path().join("service.yaml"))
                    .var("NAME", "twin")
                    .allow_unauthenticated()
            )
            .start(),
    );
    let (first, second) = (first.expect("first starts"), second.expect("second starts"));
    assert_ne!(
        first.url("twin").expect("url"),
        second.url("twin").expect("url")
    );
    for (stack, greeting) in [(&first, "from the first"), (&second, "from the second")] {
        let answer = stack.get("twin", "/env/GREETING").await.expect("answers");
        assert_eq!(answer.text().await.expect("body"), greeting);
    }
    let second_revision = second.revision("twin").expect("deployed");
    drop(first);
    let answer = second.get("twin", "/").await.expect("answers");
    assert_eq!(
        answer.text().await.expect("body"),
        format!("hello from {second_revision}"),
        "removing one stack leaves the other running"
    );
}

#[tokio::test]
async fn containers_reach_the_stack_s_pub_sub_emulator_through_pubsub_emulator_host() {
    let dir = tempfile::tempdir().expect("a temp dir");
    std::fs::write(
        dir.path().join("service.yaml"),
        r#"
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: publisher
spec:
  template:
    spec:
      containers:
      - image: cloudrun-emulator/testapp:1
"#,
    )
    .expect("written");
    let stack = Stack::new()
        .project("events-proj")
        .image("testapp")
        .pubsub()
        .service(
            CloudRunService::from_yaml(dir.path().join("service.yaml")).allow_unauthenticated(),
        )
        .start()
        .await
        .expect("starts");
    let host = stack.pubsub_host().expect("declared");
    let created = stack
        .http()
        .put(format!(
            "http://{host}/v1/projects/events-proj/topics/orders"
        ))
        .send()
        .await
        .expect("the test reaches the emulator");
    assert_eq!(created.status(), 200);

    let seen = stack
        .get("publisher", "/env/PUBSUB_EMULATOR_HOST")
        .await
        .expect("answers")
        .text()
        .await
        .expect("body");
    assert_eq!(seen, host, "every container is told where the emulator is");
    let topics = stack
        .get(
            "publisher",
            &format!("/proxy/{host}/v1/projects/events-proj/topics"),
        )
        .await
        .expect("answers")
        .text()
        .await
        .expect("body");
    assert!(
        topics.contains("projects/events-proj/topics/orders"),
        "the container reaches the same emulator: {topics}"
    );
}

#[tokio::test]
async fn a_stack_s_redis_answers_the_test_and_its_address_reaches_the_services() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let dir = tempfile::tempdir().expect("a temp dir");
    std::fs::write(
        dir.path().join("service.yaml"),
        r#"
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: cached
spec:
  template:
    spec:
      containers:
      - image: cloudrun-emulator/testapp:1
        env:
        - name: REDIS_ADDR
          value: ${REDIS_SESSION_CACHE_HOST}:${REDIS_SESSION_CACHE_PORT}
"#,
    )
    .expect("written");
    let stack = Stack::new()
        .image("testapp")
        .redis("session-cache")
        .service(
            CloudRunService::from_yaml(dir.path().join("service.yaml")).allow_unauthenticated(),
        )
        .start()
        .await
        .expect("starts");

    let url = stack.redis_url("session-cache").expect("declared");
    let mut redis = tokio::net::TcpStream::connect(url.trim_start_matches("redis://"))
        .await
        .expect("the test reaches Redis");
    redis.write_all(b"PING\r\n").await.expect("sent");
    let mut answer = [0u8; 7];
    redis.read_exact(&mut answer).await.expect("answered");
    assert_eq!(&answer, b"+PONG\r\n");

    let configured = stack
        .get("cached", "/env/REDIS_ADDR")
        .await
        .expect("answers")
        .text()
        .await
        .expect("body");
    assert!(
        configured.ends_with(":6379") && !configured.starts_with("127."),
        "the service is given Redis's address on the Docker network: {configured}"
    );
}
