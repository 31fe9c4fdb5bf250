//! Cloud Run with the real gcloud CLI and real Docker: a multi-container service deployed from a
//! service.yaml, image deploys with secrets, failing revisions, logs, IAM and deletion.

use std::process::Command;
use std::time::{Duration, Instant};

use harness::{Emulator, GcloudOutput};

mod support;
use support::{
    REGION, containers_labelled, get, revision_names, service_field, service_url, write,
};

async fn emulator() -> Emulator {
    harness::ensure_images(&["sandbox", "testapp"]).expect("test images build");
    Emulator::start().await.expect("emulator starts")
}

fn assert_failed(out: &GcloudOutput, words: &str) {
    assert!(!out.success, "expected the deploy to fail:\n{}", out.stderr);
    assert!(!out.crashed(), "gcloud crashed:\n{}", out.stderr);
    assert!(
        out.stderr.contains(words),
        "expected {words:?} in:\n{}",
        out.stderr
    );
}

const MULTI_CONTAINER: &str = r#"
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: shop
spec:
  template:
    metadata:
      annotations:
        run.googleapis.com/container-dependencies: '{"proxy":["catalog","billing"]}'
    spec:
      containers:
      - name: proxy
        image: cloudrun-emulator/testapp:1
        ports:
        - containerPort: 8000
      - name: catalog
        image: cloudrun-emulator/testapp:1
        args: ["serve", "--port", "5000"]
        env:
        - name: DB_PASSWORD
          valueFrom:
            secretKeyRef:
              name: db-password
              key: latest
        startupProbe:
          tcpSocket:
            port: 5000
          periodSeconds: 2
          failureThreshold: 15
        volumeMounts:
        - name: api-key
          mountPath: /secrets
      - name: billing
        image: cloudrun-emulator/testapp:1
        args: ["serve", "--port", "5001"]
        startupProbe:
          httpGet:
            path: /healthz
            port: 5001
          periodSeconds: 2
          failureThreshold: 15
        volumeMounts:
        - name: scratch
          mountPath: /scratch
      volumes:
      - name: api-key
        secret:
          secretName: api-key
          items:
          - key: latest
            path: key.txt
            mode: 256
      - name: scratch
        emptyDir:
          medium: Memory
"#;

#[tokio::test]
async fn a_multi_container_service_from_yaml_serves_through_its_proxy() {
    let emulator = emulator().await;
    let gcloud = emulator.gcloud();
    for (secret, value) in [("db-password", "s3cret"), ("api-key", "key-123")] {
        gcloud
            .run(["secrets", "create", secret, "--data-file=-"])
            .stdin(value)
            .ok()
            .await
            .expect("secret");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = write(&dir, "service.yaml", MULTI_CONTAINER);
    let started = Instant::now();
    gcloud
        .run(["run", "services", "replace", &yaml, REGION])
        .ok()
        .await
        .expect("replace becomes Ready");
    eprintln!("services replace took {:?}", started.elapsed());

    let conditions = gcloud
        .run([
            "run",
            "services",
            "describe",
            "shop",
            REGION,
            "--format=table[no-heading](status.conditions[].type,status.conditions[].status)",
        ])
        .ok()
        .await
        .expect("describe conditions");
    assert!(
        conditions.stdout.contains("True, True, True")
            || conditions.stdout.contains("['True', 'True', 'True']"),
        "{}",
        conditions.stdout
    );

    let url = service_url(&gcloud, "shop").await;
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let (status, body) = get(&url).await;
    assert_eq!(status, 403, "private until allUsers may invoke");
    assert!(
        body.contains("Your client does not have permission"),
        "{body}"
    );

    gcloud
        .run([
            "run",
            "services",
            "add-iam-policy-binding",
            "shop",
            REGION,
            "--member=allUsers",
            "--role=roles/run.invoker",
        ])
        .ok()
        .await
        .expect("make public");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = get(&format!("{url}/proxy/5000/env/DB_PASSWORD")).await;
        if status == 200 {
            assert_eq!(body, "s3cret", "the secretKeyRef arrived in the sidecar");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still {status} after the binding"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, key) = get(&format!("{url}/proxy/5000/file?path=/secrets/key.txt")).await;
    assert_eq!(key, "key-123", "the secret volume file arrived");
    let (_, port) = get(&format!("{url}/proxy/5001/env/PORT")).await;
    assert_eq!(port, "unset", "only the ingress container gets PORT");
    let (_, revision) = get(&format!("{url}/proxy/5001/env/K_REVISION")).await;
    assert!(revision.starts_with("shop-00001-"), "{revision}");

    let logs = gcloud
        .run([
            "logging",
            "read",
            "resource.type=cloud_run_revision AND resource.labels.service_name=shop",
            "--format=value(textPayload)",
            "--limit=200",
        ])
        .ok()
        .await
        .expect("logging read");
    assert!(
        logs.stdout.contains("GET /env/DB_PASSWORD"),
        "{}",
        logs.stdout
    );

    let started = Instant::now();
    gcloud
        .run(["run", "services", "delete", "shop", REGION, "--quiet"])
        .ok()
        .await
        .expect("delete");
    eprintln!("services delete took {:?}", started.elapsed());
    assert!(
        containers_labelled("service", "shop").is_empty(),
        "delete removed every container"
    );
}

#[tokio::test]
async fn deploys_make_revisions_and_failures_keep_the_last_good_one_serving() {
    let emulator = emulator().await;
    let gcloud = emulator.gcloud();
    let image = "us-central1-docker.pkg.dev/demo-proj/containers/testapp:1";
    let tagged = Command::new("docker")
        .args(["tag", "cloudrun-emulator/testapp:1", image])
        .status()
        .expect("docker tag");
    assert!(tagged.success());
    gcloud
        .run(["secrets", "create", "greeting", "--data-file=-"])
        .stdin("hi there")
        .ok()
        .await
        .expect("secret");

    let first = gcloud
        .run([
            "run",
            "deploy",
            "api",
            "--image",
            image,
            REGION,
            "--allow-unauthenticated",
            "--set-env-vars=MODE=first",
            "--update-secrets=GREETING=greeting:latest",
        ])
        .ok()
        .await
        .expect("first deploy");
    assert!(
        first
            .stderr
            .contains("has been deployed and is serving 100 percent of traffic"),
        "{}",
        first.stderr
    );
    let url = service_url(&gcloud, "api").await;
    assert_eq!(
        get(&format!("{url}/env/GREETING")).await,
        (200, "hi there".into())
    );
    assert_eq!(get(&format!("{url}/env/MODE")).await, (200, "first".into()));

    gcloud
        .run([
            "run",
            "deploy",
            "api",
            "--image",
            image,
            REGION,
            "--update-env-vars=MODE=second",
        ])
        .ok()
        .await
        .expect("second deploy");
    let names = revision_names(&gcloud, "api").await;
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names[0].starts_with("api-00002-") && names[1].starts_with("api-00001-"));
    assert_eq!(
        get(&format!("{url}/env/MODE")).await,
        (200, "second".into())
    );

    let exits = gcloud
        .run([
            "run",
            "deploy",
            "api",
            "--image",
            image,
            REGION,
            "--args=exit,3,boom",
        ])
        .await
        .expect("gcloud runs");
    assert_failed(&exits, "is not ready and cannot serve traffic");
    assert!(
        exits.stderr.contains("boom"),
        "the exit reason is shown:\n{}",
        exits.stderr
    );
    assert_eq!(
        get(&format!("{url}/env/MODE")).await,
        (200, "second".into()),
        "revision 2 still serves"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let never_healthy = format!(
        r#"
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: api
spec:
  template:
    spec:
      containers:
      - image: {image}
        args: ["serve"]
        startupProbe:
          httpGet:
            path: /nothing-here
          periodSeconds: 2
          failureThreshold: 2
"#
    );
    let yaml = write(&dir, "bad.yaml", &never_healthy);
    let probe = gcloud
        .run(["run", "services", "replace", &yaml, REGION])
        .await
        .expect("gcloud runs");
    assert_failed(&probe, "failed the configured startup probe checks");
    assert_eq!(
        get(&format!("{url}/env/MODE")).await,
        (200, "second".into()),
        "revision 2 still serves"
    );

    let ready = gcloud
        .run([
            "run",
            "services",
            "describe",
            "api",
            REGION,
            "--format=value(status.latestReadyRevisionName,status.conditions[0].status)",
        ])
        .ok()
        .await
        .expect("describe");
    assert!(
        ready.stdout.starts_with("api-00002-") && ready.stdout.contains("False"),
        "{}",
        ready.stdout
    );
    assert_eq!(
        containers_labelled("service", "api").len(),
        2,
        "failed deploys leave nothing behind: only revision 2's sandbox and app run"
    );
    let described = gcloud
        .run([
            "run",
            "revisions",
            "describe",
            ready.stdout.split_whitespace().next().expect("revision"),
            REGION,
            "--format=value(status.conditions[0].type,status.conditions[0].status)",
        ])
        .ok()
        .await
        .expect("revisions describe");
    assert_eq!(described.stdout.trim(), "Ready\tTrue");

    gcloud
        .run(["run", "services", "delete", "api", REGION, "--quiet"])
        .ok()
        .await
        .expect("delete");
    assert!(containers_labelled("service", "api").is_empty());
    let _ = Command::new("docker").args(["rmi", image]).output();
}

#[tokio::test]
async fn cloud_run_refuses_what_it_refuses_with_its_words() {
    let emulator = emulator().await;
    let gcloud = emulator.gcloud();
    let dir = tempfile::tempdir().expect("tempdir");
    let two_ingress = write(
        &dir,
        "two.yaml",
        r#"
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: twoports
spec:
  template:
    spec:
      containers:
      - name: a
        image: cloudrun-emulator/testapp:1
        ports: [{containerPort: 8080}]
      - name: b
        image: cloudrun-emulator/testapp:1
        ports: [{containerPort: 8081}]
"#,
    );
    let out = gcloud
        .run(["run", "services", "replace", &two_ingress, REGION])
        .await
        .expect("gcloud runs");
    assert_failed(
        &out,
        "Revision template should contain exactly one container with an exposed port",
    );

    let no_probe = write(
        &dir,
        "deps.yaml",
        r#"
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: deps
spec:
  template:
    metadata:
      annotations:
        run.googleapis.com/container-dependencies: "{app: [sidecar]}"
    spec:
      containers:
      - name: app
        image: cloudrun-emulator/testapp:1
        ports: [{containerPort: 8080}]
      - name: sidecar
        image: cloudrun-emulator/testapp:1
"#,
    );
    let out = gcloud
        .run(["run", "services", "replace", &no_probe, REGION])
        .await
        .expect("gcloud runs");
    assert_failed(
        &out,
        "Dependent container 'sidecar' must have startup probe specified",
    );

    let missing_image = gcloud
        .run([
            "run",
            "deploy",
            "ghost",
            "--image=gcr.io/demo-proj/nope:1",
            REGION,
        ])
        .await
        .expect("gcloud runs");
    assert_failed(&missing_image, "Image 'gcr.io/demo-proj/nope:1' not found.");

    let missing_secret = gcloud
        .run([
            "run",
            "deploy",
            "needs-secret",
            "--image=cloudrun-emulator/testapp:1",
            REGION,
            "--update-secrets=X=does-not-exist:latest",
        ])
        .await
        .expect("gcloud runs");
    assert_failed(
        &missing_secret,
        "does-not-exist/versions/latest was not found",
    );

    let unknown = gcloud
        .run(["run", "services", "describe", "nosuch", REGION])
        .await
        .expect("gcloud runs");
    assert_failed(&unknown, "Cannot find service [nosuch]");
    for service in ["ghost", "needs-secret"] {
        gcloud
            .run(["run", "services", "delete", service, REGION, "--quiet"])
            .ok()
            .await
            .expect("delete");
    }
}

#[tokio::test]
async fn strict_iam_refuses_secrets_the_revision_service_account_was_not_granted() {
    harness::ensure_images(&["sandbox", "testapp"]).expect("test images build");
    let emulator = Emulator::builder()
        .strict_iam()
        .start()
        .await
        .expect("emulator starts");
    let gcloud = emulator.gcloud();
    gcloud
        .run(["secrets", "create", "api-token", "--data-file=-"])
        .stdin("t0k3n")
        .ok()
        .await
        .expect("secret");
    let deploy = |account: Option<&str>| {
        let mut args = vec![
            "run".to_string(),
            "deploy".into(),
            "locked".into(),
            "--image=cloudrun-emulator/testapp:1".into(),
            REGION.into(),
            "--update-secrets=TOKEN=api-token:latest".into(),
        ];
        if let Some(account) = account {
            args.push(format!("--service-account={account}"));
        }
        gcloud.run(args)
    };

    let number = emulator
        .store()
        .project("demo-proj")
        .expect("project")
        .number;
    let compute = format!("{number}-compute@developer.gserviceaccount.com");
    let refused = deploy(None).await.expect("gcloud runs");
    assert_failed(&refused, "Permission denied on secret");
    assert!(refused.stderr.contains(&compute), "{}", refused.stderr);

    gcloud
        .run([
            "secrets",
            "add-iam-policy-binding",
            "api-token",
            &format!("--member=serviceAccount:{compute}"),
            "--role=roles/secretmanager.secretAccessor",
        ])
        .ok()
        .await
        .expect("grant the default compute account");
    let granted = deploy(None).await.expect("gcloud runs");
    assert!(granted.success, "granted now:\n{}", granted.stderr);

    let other = deploy(Some("api@demo-proj.iam.gserviceaccount.com"))
        .await
        .expect("gcloud runs");
    assert_failed(
        &other,
        "for Revision service account api@demo-proj.iam.gserviceaccount.com",
    );
    gcloud
        .run(["run", "services", "delete", "locked", REGION, "--quiet"])
        .ok()
        .await
        .expect("delete");
}

/// Where `greeter.yaml` keeps its greeting.
const GREETING_FIELD: &str = "spec.template.spec.containers[0].env[0].value";

/// A one-container service whose app greets with `greeting`.
fn greeter_yaml(greeting: &str) -> String {
    format!(
        r#"
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
          value: {greeting}
"#
    )
}

#[tokio::test]
async fn a_dry_run_validates_without_deploying_and_refuses_what_a_deploy_would() {
    let emulator = emulator().await;
    let gcloud = emulator.gcloud();
    let dir = tempfile::tempdir().expect("tempdir");
    let first = write(&dir, "first.yaml", &greeter_yaml("hello"));

    let out = gcloud
        .run(["run", "services", "replace", &first, REGION, "--dry-run"])
        .ok()
        .await
        .expect("a dry run of a new service passes");
    assert!(
        out.stderr.contains("New configuration has been validated"),
        "{}",
        out.stderr
    );
    let described = gcloud
        .run(["run", "services", "describe", "greeter", REGION])
        .await
        .expect("gcloud runs");
    assert!(!described.success, "a dry run creates nothing");
    assert!(containers_labelled("service", "greeter").is_empty());

    gcloud
        .run(["run", "services", "replace", &first, REGION])
        .ok()
        .await
        .expect("the real deploy");
    let changed = write(&dir, "changed.yaml", &greeter_yaml("bonjour"));
    gcloud
        .run(["run", "services", "replace", &changed, REGION, "--dry-run"])
        .ok()
        .await
        .expect("a dry run of a change passes");
    let revisions = revision_names(&gcloud, "greeter").await;
    assert_eq!(revisions.len(), 1, "{revisions:?}");
    assert_eq!(
        service_field(&gcloud, "greeter", GREETING_FIELD).await,
        "hello"
    );

    let reserved = write(
        &dir,
        "reserved.yaml",
        &greeter_yaml("hello").replace("GREETING", "PORT"),
    );
    let out = gcloud
        .run(["run", "services", "replace", &reserved, REGION, "--dry-run"])
        .await
        .expect("gcloud runs");
    assert_failed(&out, "The following reserved env names were provided: PORT");
    assert_eq!(
        service_field(&gcloud, "greeter", GREETING_FIELD).await,
        "hello"
    );
}
