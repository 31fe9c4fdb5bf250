//! The Cloud Run section: a release emulator on a free port deploys a four-container service
//! (an ingress container and three sidecars of `cloudrun-emulator/testapp:1`, all started at
//! once), and the same containers are started by hand with the docker CLI as the floor.
//!
//! Figures, in one run, alternating floor and emulator so that drift hits both alike:
//! - deploy to first 200: from `POST .../services` (then `setIamPolicy` to `allUsers`, as part
//!   of the deploy) until `GET {status.url}/proxy/5001/healthz` answers 200, polled every 10 ms;
//!   the floor from its first `docker run` until the same request to the published port does;
//! - where that time went, from the containers' Docker timestamps;
//! - the `DELETE` call of each service, and what it left running;
//! - the ingress overhead: closed-loop load on `{status.url}/healthz` against the same request
//!   sent straight to the instance's published port.
//!
//! Everything started is removed at the end, also on errors: the emulator gets SIGTERM (it
//! removes its containers), then whatever is left with this bench's labels is `docker rm -f`ed.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::client::conn::http1;
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use super::{
    Cores, LoadPlan, LoadResult, LoadTarget, Millis, READY_DEADLINE, Result, connect, healthz_ok,
    run_load, send,
};

const PROJECT: &str = "bench-proj";
const REGION: &str = "us-central1";
/// The region is read from the host name's prefix, as gcloud sends it.
const RUN_HOST: &str = "us-central1-run.emulator";
const SANDBOX_IMAGE: &str = "cloudrun-emulator/sandbox:1";
const TESTAPP_IMAGE: &str = "cloudrun-emulator/testapp:1";
/// On every container the floor starts, so that cleanup finds them.
const BENCH_LABEL: &str = "cloudrun-emulator.bench=1";
/// Label names set by the emulator's controller and runtime.
const LABEL_SERVICE: &str = "cloudrun-emulator.service";
const LABEL_PROJECT: &str = "cloudrun-emulator.project";
const LABEL_KIND: &str = "cloudrun-emulator.kind";
const LABEL_OWNER: &str = "cloudrun-emulator.owner";
const INGRESS_PORT: u16 = 8000;
const SIDECAR_PORTS: [u16; 3] = [5001, 5002, 5003];
/// Answers 200 once the ingress container and the first sidecar both serve.
const READY_PATH: &str = "/proxy/5001/healthz";
/// The fastest startup probe the API accepts: whole seconds, and timeout < period.
const PROBE_TIMEOUT_SECS: u32 = 1;
const PROBE_PERIOD_SECS: u32 = 2;
const POLL_EVERY: Duration = Duration::from_millis(10);
const DEPLOY_DEADLINE: Duration = Duration::from_secs(60);
const STOP_DEADLINE: Duration = Duration::from_secs(30);
/// The ingress load test alternates direct and ingress in this many rounds.
const LOAD_ROUNDS: u32 = 3;

const TARGET_RATIO: f64 = 1.3;
const TARGET_DEPLOY_MS: f64 = 3000.0;
const TARGET_DELETE_MS: f64 = 1000.0;
const TARGET_ADDED_P50_MS: f64 = 0.5;

/// What the section is asked to do.
#[derive(Debug)]
pub(crate) struct Options {
    /// Deploys measured per figure (and as many floor runs).
    pub repeats: usize,
    /// The ingress load test, once per target.
    pub load: LoadPlan,
}

/// Runs the section and prints its report; everything it started is gone when it returns.
pub(crate) fn bench(options: &Options, emulator_exe: &Path) -> Result<()> {
    build_images()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // Dropped last: removes the floor's containers whatever happens.
    let floor_cleanup = FloorCleanup;
    let mut emulator = RunEmulator::spawn(emulator_exe)?;
    let emulator_pid = emulator.child.id();
    let measured = runtime.block_on(measure(&emulator, options));
    // Deleting what is still deployed (after an error) before SIGTERM: the emulator replaces an
    // instance whose containers its own shutdown removed, and such a replacement can outlive it.
    runtime.block_on(delete_all(emulator.addr));
    let stopped = emulator.stop();
    drop(emulator);
    drop(floor_cleanup);
    let left = leftovers(emulator_pid);
    let mut figures = measured?;
    figures.shutdown = Some(stopped?);
    figures.left_over = Some(left?);
    report(options, &figures);
    Ok(())
}

/// Everything the section measured.
#[derive(Debug, Default)]
struct Figures {
    floor: Vec<Sample>,
    deploy: Vec<Sample>,
    /// The same deploy with no startup probes on the sidecars (informational).
    unprobed: Vec<Sample>,
    delete: Vec<Duration>,
    /// Containers of a deleted service still present once its DELETE answered.
    left_after_delete: usize,
    /// (direct, ingress) under the asked load, then with one connection (informational).
    loaded: Option<(LoadResult, LoadResult)>,
    unloaded: Option<(LoadResult, LoadResult)>,
    /// SIGTERM to exit of the emulator, at the end.
    shutdown: Option<Duration>,
    /// Containers of this bench found after everything was stopped (and then removed).
    left_over: Option<usize>,
}

/// One deploy or floor run: when each step was reached, counted from its start.
#[derive(Debug, Clone, Default)]
struct Sample {
    first_200: Duration,
    /// The create call answered (emulator only).
    api_answered: Option<Duration>,
    /// `status.url` was first seen (emulator only).
    url_seen: Option<Duration>,
    docker: DockerTimes,
}

/// From Docker's own timestamps, counted from the start of the run.
#[derive(Debug, Clone, Default)]
struct DockerTimes {
    sandbox_created: Option<Duration>,
    sandbox_started: Option<Duration>,
    last_member_created: Option<Duration>,
    last_member_started: Option<Duration>,
}

async fn measure(emulator: &RunEmulator, options: &Options) -> Result<Figures> {
    let mut figures = Figures::default();
    // One unmeasured floor run, so that the first measured runs of both do not pay for a cold
    // page cache alone.
    floor_once().await?;
    for round in 1..=options.repeats {
        figures.floor.push(floor_once().await?);

        let name = format!("bench-run-{round}");
        figures
            .deploy
            .push(deploy_once(emulator.addr, &name, true).await?);
        if round == options.repeats {
            figures.loaded = Some(ingress_overhead(emulator, &name, &options.load).await?);
            let single = LoadPlan {
                connections: 1,
                ..options.load
            };
            figures.unloaded = Some(ingress_overhead(emulator, &name, &single).await?);
        }
        let (took, left) = delete(emulator.addr, &name).await?;
        figures.delete.push(took);
        figures.left_after_delete += left;

        let name = format!("bench-unprobed-{round}");
        figures
            .unprobed
            .push(deploy_once(emulator.addr, &name, false).await?);
        let (took, left) = delete(emulator.addr, &name).await?;
        figures.delete.push(took);
        figures.left_after_delete += left;
    }
    Ok(figures)
}

/// The Knative Service: `proxy` serves `$PORT` (8000), three sidecars serve 5001–5003, with no
/// container-dependencies annotation, so all four start at once.
fn service_json(name: &str, probed: bool) -> Value {
    let mut containers = vec![json!({
        "name": "proxy",
        "image": TESTAPP_IMAGE,
        "ports": [{"containerPort": INGRESS_PORT}],
    })];
    for port in SIDECAR_PORTS {
        let mut sidecar = json!({
            "name": format!("sidecar-{port}"),
            "image": TESTAPP_IMAGE,
            "args": ["serve", "--port", port.to_string()],
        });
        if probed {
            sidecar["startupProbe"] = json!({
                "tcpSocket": {"port": port},
                "timeoutSeconds": PROBE_TIMEOUT_SECS,
                "periodSeconds": PROBE_PERIOD_SECS,
                "failureThreshold": 30,
            });
        }
        containers.push(sidecar);
    }
    json!({
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": PROJECT},
        "spec": {"template": {"spec": {"containers": containers}}},
    })
}

fn services_path() -> String {
    format!("/apis/serving.knative.dev/v1/namespaces/{PROJECT}/services")
}

/// Deploys `name`, makes it public, and waits for the first 200 through its URL.
async fn deploy_once(emulator: SocketAddr, name: &str, probed: bool) -> Result<Sample> {
    let wall_start = SystemTime::now();
    let start = Instant::now();
    let body = service_json(name, probed).to_string();
    let created = call(emulator, Method::POST, &services_path(), RUN_HOST, body).await?;
    expect_ok("create the service", &created)?;
    let api_answered = start.elapsed();
    let iam_path =
        format!("/v1/projects/{PROJECT}/locations/{REGION}/services/{name}:setIamPolicy");
    let policy = json!({"policy": {"bindings": [
        {"role": "roles/run.invoker", "members": ["allUsers"]}
    ]}});
    let iam = call(
        emulator,
        Method::POST,
        &iam_path,
        RUN_HOST,
        policy.to_string(),
    )
    .await?;
    expect_ok("make the service public", &iam)?;

    let service_path = format!("{}/{name}", services_path());
    let url = loop {
        let answer = call(
            emulator,
            Method::GET,
            &service_path,
            RUN_HOST,
            String::new(),
        )
        .await?;
        expect_ok("read the service", &answer)?;
        let service: Value = serde_json::from_slice(&answer.body)?;
        if let Some(url) = service.pointer("/status/url").and_then(Value::as_str) {
            break url.to_string();
        }
        if start.elapsed() > DEPLOY_DEADLINE {
            return Err(format!("{name}: no status.url after {DEPLOY_DEADLINE:?}").into());
        }
        tokio::time::sleep(POLL_EVERY).await;
    };
    let url_seen = start.elapsed();
    let ingress: SocketAddr = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{name}: status.url {url} is not http://HOST:PORT"))?
        .trim_end_matches('/')
        .parse()?;
    if let Err(error) = wait_for_200(ingress, READY_PATH, start).await {
        let status = call(
            emulator,
            Method::GET,
            &service_path,
            RUN_HOST,
            String::new(),
        )
        .await
        .map(|a| String::from_utf8_lossy(&a.body).into_owned())
        .unwrap_or_default();
        return Err(format!("{name}: {error}; the service reads {status}").into());
    }
    let first_200 = start.elapsed();
    let docker = docker_times(
        &[
            format!("{LABEL_SERVICE}={name}"),
            format!("{LABEL_PROJECT}={PROJECT}"),
        ],
        wall_start,
    )
    .await?;
    Ok(Sample {
        first_200,
        api_answered: Some(api_answered),
        url_seen: Some(url_seen),
        docker,
    })
}

/// Deletes every service of the bench's project, ignoring errors (cleanup).
async fn delete_all(emulator: SocketAddr) {
    let Ok(answer) = call(
        emulator,
        Method::GET,
        &services_path(),
        RUN_HOST,
        String::new(),
    )
    .await
    else {
        return;
    };
    let list: Value = serde_json::from_slice(&answer.body).unwrap_or_default();
    let names = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item.pointer("/metadata/name").and_then(Value::as_str));
    for name in names {
        let path = format!("{}/{name}", services_path());
        let _ = call(emulator, Method::DELETE, &path, RUN_HOST, String::new()).await;
    }
}

/// Times `DELETE` of a service; also returns how many of its containers were still there.
async fn delete(emulator: SocketAddr, name: &str) -> Result<(Duration, usize)> {
    let path = format!("{}/{name}", services_path());
    let start = Instant::now();
    let answer = call(emulator, Method::DELETE, &path, RUN_HOST, String::new()).await?;
    let took = start.elapsed();
    expect_ok("delete the service", &answer)?;
    let left = docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label={LABEL_SERVICE}={name}"),
        "--filter",
        &format!("label={LABEL_PROJECT}={PROJECT}"),
    ])
    .await?;
    Ok((took, left.lines().count()))
}

/// The floor: the same sandbox and four containers with the docker CLI, members started
/// concurrently, timed from the first command to the first 200.
async fn floor_once() -> Result<Sample> {
    let wall_start = SystemTime::now();
    let start = Instant::now();
    let labels = ["--label", "cloudrun-emulator=true", "--label", BENCH_LABEL];
    let mut sandbox_args = vec!["run", "-d", "--init"];
    sandbox_args.extend(labels);
    sandbox_args.extend(["-p", "127.0.0.1::8000", SANDBOX_IMAGE]);
    let sandbox = docker(&sandbox_args).await?;
    let network = format!("container:{sandbox}");
    let port_args: Vec<Vec<String>> = std::iter::once(Vec::new())
        .chain(
            SIDECAR_PORTS
                .iter()
                .map(|p| vec!["serve".into(), "--port".into(), p.to_string()]),
        )
        .collect();
    let members = port_args.iter().map(|extra| {
        let mut args = vec!["run", "-d", "--init"];
        args.extend(labels);
        args.extend(["--network", &network, "-e", "PORT=8000", TESTAPP_IMAGE]);
        args.extend(extra.iter().map(String::as_str));
        async move { docker(&args).await }
    });
    let port_query = ["port", sandbox.as_str(), "8000"];
    let published = docker(&port_query);
    let (members, published) = tokio::join!(futures_util::future::join_all(members), published);
    for member in members {
        member?;
    }
    let addr: SocketAddr = published?
        .lines()
        .find_map(|line| line.trim().parse().ok())
        .ok_or("docker port printed no 127.0.0.1 address for port 8000")?;
    wait_for_200(addr, READY_PATH, start).await?;
    let first_200 = start.elapsed();
    let docker_times = docker_times(&[BENCH_LABEL.to_string()], wall_start).await?;
    remove_bench_containers()?;
    Ok(Sample {
        first_200,
        docker: docker_times,
        ..Sample::default()
    })
}

/// Closed-loop load on `/healthz` straight at the instance's published port, then through the
/// service URL; returns (direct, ingress).
async fn ingress_overhead(
    emulator: &RunEmulator,
    name: &str,
    plan: &LoadPlan,
) -> Result<(LoadResult, LoadResult)> {
    let service_path = format!("{}/{name}", services_path());
    let answer = call(
        emulator.addr,
        Method::GET,
        &service_path,
        RUN_HOST,
        String::new(),
    )
    .await?;
    let service: Value = serde_json::from_slice(&answer.body)?;
    let url = service
        .pointer("/status/url")
        .and_then(Value::as_str)
        .ok_or("the service has no status.url")?;
    let ingress: SocketAddr = url.trim_start_matches("http://").parse()?;
    let sandbox = docker(&[
        "ps",
        "-q",
        "--filter",
        &format!("label={LABEL_SERVICE}={name}"),
        "--filter",
        &format!("label={LABEL_PROJECT}={PROJECT}"),
        "--filter",
        &format!("label={LABEL_KIND}=sandbox"),
    ])
    .await?;
    let sandbox = sandbox
        .lines()
        .next()
        .ok_or("no sandbox container found for the deployed service")?;
    let direct: SocketAddr = docker(&["port", sandbox, &INGRESS_PORT.to_string()])
        .await?
        .lines()
        .find_map(|line| line.trim().parse().ok())
        .ok_or("docker port printed no address for the instance's port 8000")?;
    let target = |addr| LoadTarget {
        addr,
        path: "/healthz".into(),
        expected: Bytes::from_static(b"ok"),
    };
    // Alternating short rounds, so that the machine's drift (other work on it) hits both alike.
    let round = LoadPlan {
        connections: plan.connections,
        warmup: Duration::from_millis(250),
        duration: plan.duration / LOAD_ROUNDS,
    };
    let pid = emulator.child.id();
    let (target_direct, target_ingress) = (target(direct), target(ingress));
    run_load(
        &target_direct,
        &LoadPlan {
            duration: Duration::from_millis(500),
            ..round
        },
        pid,
    )
    .await?;
    run_load(
        &target_ingress,
        &LoadPlan {
            duration: Duration::from_millis(500),
            ..round
        },
        pid,
    )
    .await?;
    let (mut direct, mut ingress) = (Vec::new(), Vec::new());
    for _ in 0..LOAD_ROUNDS {
        direct.push(run_load(&target_direct, &round, pid).await?);
        ingress.push(run_load(&target_ingress, &round, pid).await?);
    }
    Ok((merge(direct, plan.duration), merge(ingress, plan.duration)))
}

/// One result from the rounds of one target, measured `total` in all.
fn merge(rounds: Vec<LoadResult>, total: Duration) -> LoadResult {
    let count = rounds.len().max(1) as f64;
    let mut merged = LoadResult {
        latencies_us: Vec::new(),
        rps: 0.0,
        cores: Cores {
            server: 0.0,
            client: 0.0,
            other: 0.0,
        },
        connects: 0,
    };
    for round in rounds {
        merged.latencies_us.extend(round.latencies_us);
        merged.cores.server += round.cores.server / count;
        merged.cores.client += round.cores.client / count;
        merged.cores.other += round.cores.other / count;
        merged.connects += round.connects;
    }
    merged.latencies_us.sort_unstable();
    merged.rps = merged.latencies_us.len() as f64 / total.as_secs_f64();
    merged
}

/// Polls `GET path` every [`POLL_EVERY`] until it answers 200, for at most [`DEPLOY_DEADLINE`]
/// after `start`.
async fn wait_for_200(addr: SocketAddr, path: &str, start: Instant) -> Result<()> {
    loop {
        let attempt = tokio::time::timeout(
            Duration::from_secs(2),
            call(addr, Method::GET, path, "127.0.0.1", String::new()),
        )
        .await;
        let last = match attempt {
            Ok(Ok(answer)) if answer.status == StatusCode::OK => return Ok(()),
            Ok(Ok(answer)) => {
                let text = String::from_utf8_lossy(&answer.body);
                format!("{}: {text}", answer.status)
            }
            Ok(Err(error)) => error.to_string(),
            Err(_) => "no answer within 2 s".into(),
        };
        if start.elapsed() > DEPLOY_DEADLINE {
            return Err(format!(
                "http://{addr}{path} did not answer 200 within {DEPLOY_DEADLINE:?}; last: {last}"
            )
            .into());
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// One request on a fresh connection.
pub(super) async fn call(
    addr: SocketAddr,
    method: Method,
    path: &str,
    host: &str,
    body: String,
) -> Result<super::Answer> {
    let mut sender: http1::SendRequest<Full<Bytes>> = connect(addr).await?;
    send(&mut sender, method, path, host, Bytes::from(body)).await
}

fn expect_ok(what: &str, answer: &super::Answer) -> Result<()> {
    if answer.status == StatusCode::OK {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&answer.body);
    Err(format!("could not {what}: {} {text}", answer.status).into())
}

/// Runs the docker CLI; returns its trimmed stdout, or an error with its stderr.
async fn docker(args: &[&str]) -> Result<String> {
    let output = tokio::process::Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| format!("cannot run docker: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "docker {} failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )
        .into());
    }
    Ok(String::from_utf8(output.stdout)?.trim().to_string())
}

/// Creation and start times of the containers matching every label filter, from Docker.
async fn docker_times(labels: &[String], wall_start: SystemTime) -> Result<DockerTimes> {
    let filters: Vec<String> = labels.iter().map(|l| format!("label={l}")).collect();
    let mut args = vec!["ps", "-aq"];
    for filter in &filters {
        args.extend(["--filter", filter.as_str()]);
    }
    let ids = docker(&args).await?;
    let mut inspect = vec![
        "inspect",
        "--format",
        "{{.Config.Image}} {{.Created}} {{.State.StartedAt}}",
    ];
    inspect.extend(ids.lines());
    let lines = docker(&inspect).await?;
    let start: DateTime<Utc> = wall_start.into();
    let offset = |text: &str| -> Option<Duration> {
        let at = DateTime::parse_from_rfc3339(text).ok()?.with_timezone(&Utc);
        (at - start).to_std().ok()
    };
    let mut times = DockerTimes::default();
    for line in lines.lines() {
        let mut fields = line.split_whitespace();
        let (Some(image), Some(created), Some(started)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let (created, started) = (offset(created), offset(started));
        if image == SANDBOX_IMAGE {
            times.sandbox_created = created;
            times.sandbox_started = started;
        } else {
            times.last_member_created = times.last_member_created.max(created);
            times.last_member_started = times.last_member_started.max(started);
        }
    }
    Ok(times)
}

/// Builds (or finds up to date) the images the section runs.
fn build_images() -> Result<()> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../docker/build-images.sh");
    let output = Command::new(script)
        .args(["sandbox", "testapp"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {script}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "{script} sandbox testapp failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(())
}

/// `docker rm -f` every container with [`BENCH_LABEL`].
fn remove_bench_containers() -> Result<usize> {
    remove_where(&[format!("label={BENCH_LABEL}")], |_| true)
}

/// Removes the containers matching the filters whose `cloudrun-emulator.owner` label passes
/// `keep`; returns how many it removed.
fn remove_where(filters: &[String], keep: impl Fn(&str) -> bool) -> Result<usize> {
    let mut ps = Command::new("docker");
    ps.args(["ps", "-a", "--format"])
        .arg(format!("{{{{.ID}}}} {{{{.Label \"{LABEL_OWNER}\"}}}}"));
    for filter in filters {
        ps.args(["--filter", filter]);
    }
    let output = ps.stdin(Stdio::null()).output()?;
    if !output.status.success() {
        return Err(format!(
            "docker ps failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )
        .into());
    }
    let listed = String::from_utf8(output.stdout)?;
    let ids: Vec<&str> = listed
        .lines()
        .filter_map(|line| {
            let (id, owner) = line.split_once(' ').unwrap_or((line, ""));
            keep(owner).then_some(id)
        })
        .filter(|id| !id.is_empty())
        .collect();
    if ids.is_empty() {
        return Ok(0);
    }
    let status = Command::new("docker")
        .args(["rm", "-f"])
        .args(&ids)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        return Err(format!("docker rm -f {} failed ({status})", ids.join(" ")).into());
    }
    Ok(ids.len())
}

/// Removes what is left of this bench once everything was stopped: the floor's containers and
/// any container the emulator (by its pid in the owner label) did not remove on SIGTERM.
fn leftovers(emulator_pid: u32) -> Result<usize> {
    let floor = remove_bench_containers()?;
    let ours = |owner: &str| {
        let mut parts = owner.rsplit('-');
        parts.next();
        parts.next().and_then(|pid| pid.parse::<u32>().ok()) == Some(emulator_pid)
    };
    let emulator = remove_where(&[format!("label={LABEL_PROJECT}={PROJECT}")], ours)?;
    // Verify, after a moment for creations still in flight at exit: nothing of ours remains.
    std::thread::sleep(Duration::from_millis(500));
    let again = remove_bench_containers()?
        + remove_where(&[format!("label={LABEL_PROJECT}={PROJECT}")], ours)?;
    if again > 0 {
        return Err(format!("{again} containers of this bench survived docker rm -f").into());
    }
    Ok(floor + emulator)
}

/// Removes the floor's containers when dropped, also on error paths.
#[derive(Debug)]
struct FloorCleanup;

impl Drop for FloorCleanup {
    fn drop(&mut self) {
        if let Err(error) = remove_bench_containers() {
            eprintln!("bench: could not remove the floor's containers: {error}");
        }
    }
}

/// The release emulator serving Cloud Run, stopped with SIGTERM (so that it removes its
/// containers) when dropped.
#[derive(Debug)]
pub(super) struct RunEmulator {
    child: Child,
    pub(super) addr: SocketAddr,
    log: PathBuf,
}

impl RunEmulator {
    pub(super) fn spawn(exe: &Path) -> Result<Self> {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let log =
            std::env::temp_dir().join(format!("bench-run-emulator-{}.log", std::process::id()));
        let out = File::create(&log)?;
        let child = Command::new(exe)
            .arg("--listen")
            .arg(addr.to_string())
            .env("RUST_LOG", "info,emulator::runtime=debug")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
        let mut emulator = RunEmulator { child, addr, log };
        let start = Instant::now();
        while !healthz_ok(addr) {
            if let Some(status) = emulator.child.try_wait()? {
                return Err(format!(
                    "{} exited ({status}) before answering /healthz; see {}",
                    exe.display(),
                    emulator.log.display()
                )
                .into());
            }
            if start.elapsed() > READY_DEADLINE {
                return Err(format!("{} did not answer /healthz on {addr}", exe.display()).into());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(emulator)
    }

    /// SIGTERM, then waits for the exit (SIGKILL after [`STOP_DEADLINE`]); returns how long the
    /// emulator took to exit.
    pub(super) fn stop(&mut self) -> Result<Duration> {
        if self.child.try_wait()?.is_some() {
            return Ok(Duration::ZERO);
        }
        let start = Instant::now();
        let pid = self.child.id().to_string();
        let signalled = Command::new("kill").args(["-TERM", &pid]).status()?;
        if !signalled.success() {
            return Err(format!("kill -TERM {pid} failed ({signalled})").into());
        }
        loop {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    eprintln!(
                        "bench: the emulator exited with {status} on SIGTERM; see {}",
                        self.log.display()
                    );
                }
                return Ok(start.elapsed());
            }
            if start.elapsed() > STOP_DEADLINE {
                self.child.kill()?;
                self.child.wait()?;
                return Err(format!(
                    "the emulator did not exit within {STOP_DEADLINE:?} of SIGTERM; killed it"
                )
                .into());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for RunEmulator {
    fn drop(&mut self) {
        if let Err(error) = self.stop() {
            eprintln!("bench: stopping the emulator: {error}");
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn report(options: &Options, f: &Figures) {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    println!(
        "cloudrun-emulator bench, Cloud Run: 4-container service (ingress + 3 sidecars of {TESTAPP_IMAGE}), \
         {} deploys and floor runs, {cpus} CPUs",
        options.repeats
    );
    println!(
        "sidecar startupProbe: tcpSocket, timeoutSeconds {PROBE_TIMEOUT_SECS}, periodSeconds \
         {PROBE_PERIOD_SECS} (the fastest the API accepts)\n"
    );
    let first_200 = |s: &[Sample]| Millis::of(&s.iter().map(|x| x.first_200).collect::<Vec<_>>());
    let floor = first_200(&f.floor);
    let deploy = first_200(&f.deploy);
    let unprobed = first_200(&f.unprobed);
    let delete = Millis::of(&f.delete);
    let delete_max = f.delete.iter().copied().max().map_or(f64::NAN, ms);

    println!(
        "{:<36}{:>12}{:>12}{:>16}",
        "", "emulator", "floor", "emulator/floor"
    );
    let row = |label: &str, e: f64, fl: f64| {
        let (e_text, f_text) = (format!("{e:.0} ms"), format!("{fl:.0} ms"));
        println!("{label:<36}{e_text:>12}{f_text:>12}{:>15.2}x", e / fl);
    };
    row("deploy to first 200 min", deploy.min, floor.min);
    row("deploy to first 200 median", deploy.median, floor.median);
    row(
        "  without sidecar probes, median",
        unprobed.median,
        floor.median,
    );
    println!(
        "{:<36}{:>12}",
        "delete service min / median / max",
        format!(
            "{:.0} / {:.0} / {delete_max:.0} ms",
            delete.min, delete.median
        )
    );
    println!(
        "{:<36}{:>12}",
        "containers left when DELETE answered", f.left_after_delete
    );
    if let Some(shutdown) = f.shutdown {
        println!(
            "{:<36}{:>12}",
            "emulator exit after SIGTERM",
            format!("{:.0} ms", ms(shutdown))
        );
    }

    println!("\nwhere the time went (ms from the start of each run; Docker's timestamps):");
    println!(
        "  {:<18}{:>9}{:>9}{:>10}{:>10}{:>10}{:>10}{:>10}",
        "run", "API", "url", "sbx made", "sbx up", "last made", "last up", "first 200"
    );
    let opt = |d: Option<Duration>| d.map_or("-".to_string(), |d| format!("{:.0}", ms(d)));
    let runs = [
        ("floor", &f.floor),
        ("emulator", &f.deploy),
        ("emulator unprobed", &f.unprobed),
    ];
    for (label, samples) in runs {
        for (i, s) in samples.iter().enumerate() {
            println!(
                "  {:<18}{:>9}{:>9}{:>10}{:>10}{:>10}{:>10}{:>10.0}",
                format!("{label} {}", i + 1),
                opt(s.api_answered),
                opt(s.url_seen),
                opt(s.docker.sandbox_created),
                opt(s.docker.sandbox_started),
                opt(s.docker.last_member_created),
                opt(s.docker.last_member_started),
                ms(s.first_200),
            );
        }
    }

    let mut added_p50 = f64::NAN;
    let overheads = [(&f.loaded, options.load.connections), (&f.unloaded, 1)];
    for (figures, connections) in overheads {
        let Some((direct, ingress)) = figures else {
            continue;
        };
        println!(
            "\ningress overhead: GET /healthz, {connections} connection(s), {:?} measured each, \
             in {LOAD_ROUNDS} alternating rounds after a warmup",
            options.load.duration
        );
        println!("{:<36}{:>12}{:>12}{:>16}", "", "ingress", "direct", "added");
        let lrow = |label: &str, i: f64, d: f64, unit: &str, decimals: usize| {
            let texts = [i, d, i - d].map(|v| format!("{v:.decimals$} {unit}"));
            println!(
                "{label:<36}{:>12}{:>12}{:>16}",
                texts[0], texts[1], texts[2]
            );
        };
        for (label, q) in [("latency p50", 0.5), ("latency p99", 0.99)] {
            lrow(
                label,
                ingress.quantile_ms(q),
                direct.quantile_ms(q),
                "ms",
                3,
            );
        }
        lrow("requests/s", ingress.rps, direct.rps, "", 0);
        lrow(
            "emulator CPU",
            ingress.cores.server,
            direct.cores.server,
            "cores",
            2,
        );
        lrow(
            "CPU: rest of machine",
            ingress.cores.other,
            direct.cores.other,
            "cores",
            2,
        );
        lrow(
            "client TCP connections opened",
            ingress.connects as f64,
            direct.connects as f64,
            "",
            0,
        );
        if connections == options.load.connections {
            added_p50 = ingress.quantile_ms(0.5) - direct.quantile_ms(0.5);
        }
    }
    if f.loaded.is_some() {
        println!(
            "  (direct: a connection per request, as the testapp answers HTTP/1.0; the ingress \
             keeps its clients' connections open)"
        );
    }
    if let Some(left) = f.left_over {
        println!("\ncontainers of this bench left after shutdown (then removed): {left}");
    }

    println!("\ntargets (Cloud Run, emulator):");
    let ratio = deploy.median / floor.median;
    let targets = [
        (
            ratio <= TARGET_RATIO,
            format!("deploy to 200 at most {TARGET_RATIO}x the floor"),
            format!("{ratio:.2}x (median)"),
        ),
        (
            deploy.median < TARGET_DEPLOY_MS,
            format!("deploy to 200 under {TARGET_DEPLOY_MS:.0} ms (median)"),
            format!("{:.0} ms", deploy.median),
        ),
        (
            delete_max < TARGET_DELETE_MS,
            format!("every delete under {TARGET_DELETE_MS:.0} ms"),
            format!("{delete_max:.0} ms (max)"),
        ),
        (
            added_p50 < TARGET_ADDED_P50_MS,
            format!("ingress adds under {TARGET_ADDED_P50_MS} ms at p50"),
            format!("{added_p50:.3} ms"),
        ),
    ];
    for (pass, target, got) in &targets {
        let verdict = if *pass { "PASS" } else { "MISS" };
        println!("  {verdict}  {target:<40} got {got}");
    }
    let met = targets.iter().filter(|(pass, ..)| *pass).count();
    println!("\n{met} of {} Cloud Run targets met", targets.len());
}
