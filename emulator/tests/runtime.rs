//! The runtime against the real Docker engine: pods start in order, their containers talk over
//! localhost and share volumes and secrets, failures are reported the way Cloud Run words them,
//! and nothing a test creates outlives it.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::query_parameters::{ListContainersOptionsBuilder, ListVolumesOptionsBuilder};
use emulator::runtime::{
    ContainerSpec, FileSpec, LABEL_OWNER, LogLine, LogStream, Pod, PodSpec, PodStatus, Probe,
    ProbeAction, Runtime, RuntimeError, new_owner,
};
use tokio::sync::mpsc;

const TESTAPP: &str = "cloudrun-emulator/testapp:1";
/// How long a test waits for something asynchronous (a log line, a status) before failing.
const WAIT: Duration = Duration::from_secs(20);

/// Builds the images the tests run, once per test binary.
fn build_images() {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docker/build-images.sh");
        let output = Command::new(script)
            .args(["sandbox", "testapp"])
            .output()
            .map_err(|e| format!("cannot run build-images.sh: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    });
    if let Err(error) = built {
        panic!("building the test images failed:\n{error}");
    }
}

/// A runtime with its own owner, whose objects are removed when the test ends, even by panic.
struct Fixture {
    runtime: Runtime,
    owner: String,
    logs: mpsc::UnboundedReceiver<LogLine>,
    _cleanup: RemoveOwnerOnDrop,
}

impl Fixture {
    async fn new() -> Fixture {
        Fixture::with_owner(new_owner("runtime-test")).await
    }

    async fn with_owner(owner: String) -> Fixture {
        build_images();
        let (sink, logs) = mpsc::unbounded_channel();
        let runtime = Runtime::connect(
            &owner,
            Arc::new(move |line| {
                let _ = sink.send(line);
            }),
        )
        .await
        .expect("the Docker engine is reachable");
        Fixture {
            runtime,
            _cleanup: RemoveOwnerOnDrop(owner.clone()),
            owner,
            logs,
        }
    }

    /// Waits for a log line matching `want`, returning it.
    async fn log_line(&mut self, want: impl Fn(&LogLine) -> bool) -> LogLine {
        let wait = async {
            while let Some(line) = self.logs.recv().await {
                if want(&line) {
                    return line;
                }
            }
            panic!("the log sink closed");
        };
        tokio::time::timeout(WAIT, wait)
            .await
            .expect("the log line arrived in time")
    }

    /// How many containers and volumes still carry this fixture's owner label.
    async fn remaining(&self) -> usize {
        remaining(&self.owner).await
    }
}

/// Removes every object of an owner on drop, from a thread with its own Tokio runtime so it
/// also works while a test's runtime is unwinding.
struct RemoveOwnerOnDrop(String);

impl Drop for RemoveOwnerOnDrop {
    fn drop(&mut self) {
        let owner = self.0.clone();
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a cleanup runtime");
            runtime.block_on(async {
                let docker = Runtime::connect(&owner, Arc::new(|_| {})).await?;
                docker.remove_all().await
            })
        });
        if let Ok(Err(error)) = cleanup.join() {
            eprintln!("cleanup of {} failed: {error}", self.0);
        }
    }
}

async fn remaining(owner: &str) -> usize {
    let docker = Docker::connect_with_local_defaults().expect("docker");
    let filters = HashMap::from([("label", vec![format!("{LABEL_OWNER}={owner}")])]);
    let containers = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::new()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await
        .expect("containers listed");
    let volumes = docker
        .list_volumes(Some(
            ListVolumesOptionsBuilder::new().filters(&filters).build(),
        ))
        .await
        .expect("volumes listed");
    containers.len() + volumes.volumes.unwrap_or_default().len()
}

/// A pod name as the controller makes them: unique per test run.
fn pod_name(prefix: &str) -> String {
    let owner = new_owner(prefix);
    owner.replace(&format!("-{}-", std::process::id()), "-")
}

/// A testapp container running `args`.
fn testapp(name: &str, args: &[&str]) -> ContainerSpec {
    ContainerSpec {
        name: name.into(),
        image: TESTAPP.into(),
        args: args.iter().map(|a| a.to_string()).collect(),
        ..ContainerSpec::default()
    }
}

/// A testapp HTTP server on `port`.
fn server(name: &str, port: u16) -> ContainerSpec {
    ContainerSpec {
        ports: vec![port],
        ..testapp(name, &["serve", "--port", &port.to_string()])
    }
}

/// An HTTP probe every 200 ms, patient enough (10 s) for a loaded machine.
fn http_probe(port: u16, path: &str) -> Probe {
    Probe {
        action: ProbeAction::Http {
            port,
            path: path.into(),
            headers: vec![("X-Probe".into(), "startup".into())],
        },
        initial_delay: Duration::ZERO,
        timeout: Duration::from_millis(500),
        period: Duration::from_millis(200),
        failure_threshold: 50,
        is_default: false,
    }
}

/// An HTTP probe that gives up after 3 failures.
fn impatient_http_probe(port: u16, path: &str) -> Probe {
    Probe {
        failure_threshold: 3,
        ..http_probe(port, path)
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

async fn get(pod: &Pod, port: u16, path: &str) -> (u16, String) {
    let addr = pod.addr(port).expect("the port is published");
    let response = http()
        .get(format!("http://{addr}{path}"))
        .send()
        .await
        .expect("the pod answers");
    let status = response.status().as_u16();
    (status, response.text().await.expect("a text body"))
}

fn docker_exec(pod: &Pod, container: &str, command: &[&str]) -> String {
    let id = pod.container_id(container).expect("the container exists");
    let output = Command::new("docker")
        .arg("exec")
        .arg(id)
        .args(command)
        .output()
        .expect("docker exec runs");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

fn inspect(pod: &Pod, container: &str, format: &str) -> String {
    let id = pod.container_id(container).expect("the container exists");
    let output = Command::new("docker")
        .args(["inspect", "-f", format, id])
        .output()
        .expect("docker inspect runs");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

#[tokio::test]
async fn three_containers_share_localhost_a_volume_and_secrets() {
    let mut fixture = Fixture::new().await;
    let proxy = ContainerSpec {
        env: vec![("K_REVISION".into(), "svc-00001-abc".into())],
        mounts: vec![("shared".into(), "/shared".into())],
        startup_probe: Some(Probe::default_startup(8000)),
        cpu: Some(8.0),
        ..server("proxy", 8000)
    };
    let writer = ContainerSpec {
        name: "sidecar-a".into(),
        image: TESTAPP.into(),
        command: vec![
            "sh".into(),
            "-c".into(),
            "echo written-by-a > /data/note && exec python3 -u /app/testapp.py serve --port 5000"
                .into(),
        ],
        env: vec![("X".into(), "value of x".into())],
        mounts: vec![("shared".into(), "/data".into())],
        startup_probe: Some(http_probe(5000, "/healthz")),
        cpu: Some(0.5),
        memory_bytes: Some(256 << 20),
        ..ContainerSpec::default()
    };
    let secrets = ContainerSpec {
        files: vec![FileSpec {
            path: "/secrets/db/password".into(),
            contents: b"s3cret".to_vec(),
            mode: 0o400,
        }],
        startup_probe: Some(http_probe(5001, "/healthz")),
        ..server("sidecar-b", 5001)
    };
    let spec = PodSpec {
        name: pod_name("three"),
        labels: BTreeMap::from([("cloudrun-emulator.service".into(), "svc".into())]),
        containers: vec![proxy, writer, secrets],
        volumes: vec!["shared".into()],
        volume_size_limits: BTreeMap::from([("shared".into(), 16 << 20)]),
        ..PodSpec::default()
    };

    let started = Instant::now();
    let pod = fixture
        .runtime
        .start_pod(spec)
        .await
        .expect("the pod starts");
    eprintln!("3-container pod started in {:?}", started.elapsed());

    assert_eq!(
        pod.ports.keys().copied().collect::<Vec<_>>(),
        [5000, 5001, 8000]
    );
    assert_eq!(
        get(&pod, 8000, "/").await,
        (200, "hello from svc-00001-abc".into())
    );
    assert_eq!(
        get(&pod, 8000, "/proxy/5000/env/X").await,
        (200, "value of x".into())
    );
    assert_eq!(
        get(&pod, 8000, "/proxy/5001/file?path=/secrets/db/password").await,
        (200, "s3cret".into())
    );
    assert_eq!(
        get(&pod, 8000, "/proxy/sidecar-a:5000/env/X").await,
        (200, "value of x".into()),
        "container names resolve to localhost in every member"
    );
    assert_eq!(
        get(&pod, 8000, "/file?path=/shared/note").await,
        (200, "written-by-a\n".into()),
        "the emptyDir volume is shared"
    );
    assert_eq!(
        docker_exec(
            &pod,
            "sidecar-b",
            &["stat", "-c", "%a %U", "/secrets/db/password"]
        ),
        "400 root"
    );
    assert_eq!(
        docker_exec(&pod, "sidecar-a", &["sh", "-c", "df -k /data | tail -1"])
            .split_whitespace()
            .nth(1),
        Some("16384"),
        "the volume is a tmpfs of the requested size"
    );

    assert_eq!(
        inspect(
            &pod,
            "sidecar-a",
            "{{.HostConfig.NanoCpus}} {{.HostConfig.Memory}}"
        ),
        "500000000 268435456"
    );
    assert_ne!(
        inspect(&pod, "proxy", "{{.HostConfig.NanoCpus}}"),
        "8000000000",
        "a CPU limit above the host's is capped, not refused"
    );

    let line = fixture
        .log_line(|l| l.container == "proxy" && l.text.contains("GET /proxy/5000/env/X"))
        .await;
    assert_eq!(line.pod, pod.name);
    assert_eq!(line.stream, LogStream::Stdout);
    assert!(line.time <= chrono::Utc::now());

    let mut status = pod.status();
    assert_eq!(*status.borrow(), PodStatus::Ready);
    let stopping = Instant::now();
    fixture.runtime.stop_pod(&pod).await.expect("the pod stops");
    eprintln!(
        "3-container pod stopped and removed in {:?}",
        stopping.elapsed()
    );
    assert!(stopping.elapsed() < Duration::from_secs(3));
    assert_eq!(*status.borrow_and_update(), PodStatus::Stopped);
    assert_eq!(fixture.remaining().await, 0);
}

#[tokio::test]
async fn a_container_starts_only_after_its_dependency_passed_its_startup_probe() {
    let mut fixture = Fixture::new().await;
    let db = ContainerSpec {
        name: "db".into(),
        image: TESTAPP.into(),
        command: vec![
            "sh".into(),
            "-c".into(),
            "sleep 1 && exec python3 -u /app/testapp.py serve --port 5000".into(),
        ],
        startup_probe: Some(http_probe(5000, "/healthz")),
        ..ContainerSpec::default()
    };
    let app = ContainerSpec {
        depends_on: vec!["db".into()],
        env: vec![("PORT".into(), "8080".into())],
        startup_probe: Some(Probe::default_startup(8080)),
        ports: vec![8080],
        ..testapp("app", &["serve"])
    };
    let spec = PodSpec {
        name: pod_name("deps"),
        containers: vec![app, db],
        ..PodSpec::default()
    };

    let pod = fixture
        .runtime
        .start_pod(spec)
        .await
        .expect("the pod starts");

    let db_listening = fixture
        .log_line(|l| l.container == "db" && l.text.contains("listening on port 5000"))
        .await;
    let started_at =
        chrono::DateTime::parse_from_rfc3339(&inspect(&pod, "app", "{{.State.StartedAt}}"))
            .expect("a timestamp");
    assert!(
        started_at > db_listening.time,
        "app started at {started_at}, before db listened at {}",
        db_listening.time
    );
    assert_eq!(get(&pod, 8080, "/healthz").await.0, 200);
    fixture.runtime.stop_pod(&pod).await.expect("the pod stops");
    assert_eq!(fixture.remaining().await, 0);
}

#[tokio::test]
async fn a_container_that_exits_fails_the_start_with_its_code_and_logs() {
    let fixture = Fixture::new().await;
    let spec = PodSpec {
        name: pod_name("exits"),
        containers: vec![ContainerSpec {
            ports: vec![8080],
            startup_probe: Some(Probe::default_startup(8080)),
            ..testapp("app", &["exit", "3", "boom: DATABASE_URL is not set"])
        }],
        ..PodSpec::default()
    };

    let error = fixture
        .runtime
        .start_pod(spec)
        .await
        .expect_err("the start fails");

    match &error {
        RuntimeError::ContainerExited {
            container,
            code,
            last_logs,
        } => {
            assert_eq!(container, "app");
            assert_eq!(*code, 3);
            assert_eq!(last_logs, &["boom: DATABASE_URL is not set"]);
        }
        other => panic!("expected ContainerExited, got {other:?}"),
    }
    assert!(error.to_string().contains("exited with code 3"), "{error}");
    assert_eq!(fixture.remaining().await, 0);
}

#[tokio::test]
async fn a_failing_startup_probe_fails_the_start() {
    let fixture = Fixture::new().await;
    let spec = PodSpec {
        name: pod_name("probe"),
        containers: vec![ContainerSpec {
            startup_probe: Some(impatient_http_probe(8080, "/missing")),
            ..server("api", 8080)
        }],
        ..PodSpec::default()
    };

    let error = fixture
        .runtime
        .start_pod(spec)
        .await
        .expect_err("the start fails");

    match &error {
        RuntimeError::ProbeFailed {
            container,
            description,
            default,
            ..
        } => {
            assert_eq!(container, "api");
            assert_eq!(
                description,
                "STARTUP HTTP probe failed 3 times consecutively for container \"api\" on port \
                 8080 path \"/missing\""
            );
            assert!(!default);
        }
        other => panic!("expected ProbeFailed, got {other:?}"),
    }
    assert_eq!(fixture.remaining().await, 0);
}

#[tokio::test]
async fn a_missing_image_is_reported_as_cloud_run_does() {
    let fixture = Fixture::new().await;
    let image = "us-central1-docker.pkg.dev/demo-project/repo/absent:1";
    assert!(!fixture.runtime.has_image(image).await.expect("inspected"));
    assert!(fixture.runtime.has_image(TESTAPP).await.expect("inspected"));
    let spec = PodSpec {
        name: pod_name("image"),
        containers: vec![ContainerSpec {
            image: image.into(),
            ..server("app", 8080)
        }],
        ..PodSpec::default()
    };

    let started = Instant::now();
    let error = fixture
        .runtime
        .start_pod(spec)
        .await
        .expect_err("the start fails");

    assert!(
        matches!(error, RuntimeError::ImageNotFound { .. }),
        "{error:?}"
    );
    assert_eq!(error.to_string(), format!("Image '{image}' not found."));
    assert!(started.elapsed() < Duration::from_secs(25));
    assert_eq!(fixture.remaining().await, 0);
}

#[tokio::test]
async fn a_ready_pod_fails_when_a_container_exits_or_fails_liveness() {
    let fixture = Fixture::new().await;
    let exits_later = PodSpec {
        name: pod_name("later"),
        containers: vec![
            ContainerSpec {
                startup_probe: Some(Probe::default_startup(8080)),
                ..server("app", 8080)
            },
            ContainerSpec {
                name: "worker".into(),
                image: TESTAPP.into(),
                command: vec!["sh".into(), "-c".into(), "sleep 3; exit 4".into()],
                ..ContainerSpec::default()
            },
        ],
        ..PodSpec::default()
    };
    let unhealthy = PodSpec {
        name: pod_name("liveness"),
        containers: vec![ContainerSpec {
            startup_probe: Some(http_probe(8080, "/healthz")),
            liveness_probe: Some(impatient_http_probe(8080, "/missing")),
            ..server("api", 8080)
        }],
        ..PodSpec::default()
    };
    let (first, second) = tokio::join!(
        fixture.runtime.start_pod(exits_later),
        fixture.runtime.start_pod(unhealthy)
    );
    let (first, second) = (first.expect("starts"), second.expect("starts"));

    for (pod, want) in [
        (&first, "Container \"worker\" exited with code 4."),
        (
            &second,
            "LIVENESS HTTP probe failed 3 times consecutively for container \"api\" on port 8080 \
             path \"/missing\". The instance has been shut down.",
        ),
    ] {
        let mut status = pod.status();
        let failed = tokio::time::timeout(
            WAIT,
            status.wait_for(|s| matches!(s, PodStatus::Failed { .. })),
        )
        .await
        .expect("the failure is seen in time")
        .expect("the pod is tracked")
        .clone();
        let PodStatus::Failed { reason } = failed else {
            unreachable!()
        };
        assert!(reason.starts_with(want), "{reason}");
        fixture.runtime.stop_pod(pod).await.expect("the pod stops");
    }
    assert_eq!(fixture.remaining().await, 0);
}

#[tokio::test]
async fn orphans_of_a_dead_emulator_are_reaped_and_live_ones_kept() {
    let mut exited = Command::new("true").spawn().expect("true runs");
    let dead_pid = exited.id();
    exited.wait().expect("true exits");
    let dead_owner = format!("runtime-test-{dead_pid}-crashd");
    let crashed = Fixture::with_owner(dead_owner.clone()).await;
    let live = Fixture::new().await;
    let sleeper = |pod: &str| PodSpec {
        name: pod_name(pod),
        containers: vec![ContainerSpec {
            mounts: vec![("scratch".into(), "/scratch".into())],
            ..testapp("app", &["sleep"])
        }],
        volumes: vec!["scratch".into()],
        ..PodSpec::default()
    };
    let _abandoned = crashed
        .runtime
        .start_pod(sleeper("abandoned"))
        .await
        .expect("starts");
    let kept = live
        .runtime
        .start_pod(sleeper("kept"))
        .await
        .expect("starts");

    let reaped = live.runtime.reap_orphans().await.expect("reaped");

    assert!(
        reaped >= 3,
        "sandbox, container and volume reaped, got {reaped}"
    );
    assert_eq!(remaining(&dead_owner).await, 0);
    assert_eq!(
        live.remaining().await,
        3,
        "the live owner's pod is untouched"
    );
    live.runtime.stop_pod(&kept).await.expect("stops");
    live.runtime.remove_all().await.expect("removed");
    assert_eq!(live.remaining().await, 0);
}

#[tokio::test]
async fn an_inconsistent_spec_is_refused_before_anything_is_created() {
    let fixture = Fixture::new().await;
    let spec = PodSpec {
        name: pod_name("cycle"),
        containers: vec![
            ContainerSpec {
                depends_on: vec!["b".into()],
                ..testapp("a", &["sleep"])
            },
            ContainerSpec {
                depends_on: vec!["a".into()],
                ..testapp("b", &["sleep"])
            },
        ],
        ..PodSpec::default()
    };
    let error = fixture.runtime.start_pod(spec).await.expect_err("refused");
    assert!(matches!(error, RuntimeError::InvalidSpec(_)), "{error:?}");
    assert_eq!(fixture.remaining().await, 0);
}
