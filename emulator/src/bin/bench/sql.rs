//! The Cloud SQL section: a release emulator on a free port creates PostgreSQL instances, and
//! the same Postgres image is started with the docker CLI as the floor.
//!
//! Figures, in one run, alternating floor and emulator:
//! - create to first query: from `POST .../instances` until `SELECT 1` answers as `postgres`
//!   (its `rootPassword` set by the create) on the `emulatorAddress` the instance reports; the
//!   floor from its `docker run` until `SELECT 1` answers on the published port;
//! - container start to first query, from Docker's `StartedAt` (Postgres's own start-up);
//! - the instance `DELETE` until its operation is `DONE`;
//! - revision start to first query through the proxy stand-in: a Cloud Run service (sqlapp and
//!   the Cloud SQL Auth Proxy sidecar) from its `POST` until `GET /query` through the sidecar
//!   answers 200;
//! - what the stand-in adds per query: `SELECT 1` round trips over one connection through the
//!   sidecar's published port against the same over the instance's own published port (both
//!   cross one docker-proxy hop), in alternating rounds.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use super::run::{RunEmulator, call};
use super::{Millis, Result};

const PROJECT: &str = "bench-proj";
const REGION: &str = "us-central1";
const RUN_HOST: &str = "us-central1-run.emulator";
const POSTGRES_IMAGE: &str = "cloudrun-emulator/postgres15:1";
const BENCH_LABEL: &str = "cloudrun-emulator.bench=1";
const PASSWORD: &str = "benchpw";
const POLL_EVERY: Duration = Duration::from_millis(5);
const DEADLINE: Duration = Duration::from_secs(60);
/// Round trips per round of the latency test, and rounds per target.
const ROUND_QUERIES: usize = 500;
const ROUNDS: usize = 4;

const TARGET_CREATE_MS: f64 = 1500.0;
const TARGET_STARTED_TO_QUERY_MS: f64 = 1000.0;
const TARGET_ADDED_P50_MS: f64 = 0.2;

/// What the section is asked to do.
#[derive(Debug)]
pub(crate) struct Options {
    /// Instances created (and floor runs) per figure.
    pub repeats: usize,
}

/// One create (or floor run): total, and from the container's start.
#[derive(Debug, Clone, Copy)]
struct Sample {
    first_query: Duration,
    from_started: Duration,
}

#[derive(Debug, Default)]
struct Figures {
    floor: Vec<Sample>,
    create: Vec<Sample>,
    delete: Vec<Duration>,
    revision_to_query: Option<Duration>,
    direct: Vec<Duration>,
    proxied: Vec<Duration>,
}

/// Runs the section and prints its report; everything it started is gone when it returns.
pub(crate) fn bench(options: &Options, emulator_exe: &std::path::Path) -> Result<()> {
    build_images()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut emulator = RunEmulator::spawn(emulator_exe)?;
    let measured = runtime.block_on(measure(emulator.addr, options));
    let stopped = emulator.stop();
    drop(emulator);
    remove_floor();
    let figures = measured?;
    stopped?;
    report(&figures);
    Ok(())
}

async fn measure(emulator: SocketAddr, options: &Options) -> Result<Figures> {
    let mut figures = Figures::default();
    for round in 0..options.repeats.max(1) {
        figures.floor.push(floor_once().await?);
        let name = format!("bench-{round}");
        figures.create.push(create_once(emulator, &name).await?);
        figures.delete.push(delete_instance(emulator, &name).await?);
    }
    let instance = "bench-proxy";
    create_once(emulator, instance).await?;
    let direct_addr = emulator_address(emulator, instance).await?;
    let (revision_to_query, proxy_addr) = deploy_with_proxy(emulator, instance).await?;
    figures.revision_to_query = Some(revision_to_query);
    let mut direct = client(direct_addr).await?;
    let mut proxied = client(proxy_addr).await?;
    round_trips(&mut direct, ROUND_QUERIES).await?;
    round_trips(&mut proxied, ROUND_QUERIES).await?;
    for _ in 0..ROUNDS {
        figures
            .direct
            .extend(round_trips(&mut direct, ROUND_QUERIES).await?);
        figures
            .proxied
            .extend(round_trips(&mut proxied, ROUND_QUERIES).await?);
    }
    drop((direct, proxied));
    let service = format!(
        "/apis/serving.knative.dev/v1/namespaces/{PROJECT}/services/{}",
        "bench-sql"
    );
    let _ = call(emulator, Method::DELETE, &service, RUN_HOST, String::new()).await;
    delete_instance(emulator, instance).await?;
    Ok(figures)
}

async fn client(addr: SocketAddr) -> Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::Config::new()
        .host(addr.ip().to_string())
        .port(addr.port())
        .user("postgres")
        .password(PASSWORD)
        .dbname("postgres")
        .connect_timeout(Duration::from_secs(2))
        .connect(tokio_postgres::NoTls)
        .await?;
    tokio::spawn(connection);
    Ok(client)
}

/// Connects as `user` and runs `SELECT 1`, retrying until it answers.
async fn first_query(addr: SocketAddr, user: &str, start: Instant) -> Result<()> {
    loop {
        let attempt = async {
            let (client, connection) = tokio_postgres::Config::new()
                .host(addr.ip().to_string())
                .port(addr.port())
                .user(user)
                .password(PASSWORD)
                .dbname("postgres")
                .connect(tokio_postgres::NoTls)
                .await?;
            tokio::spawn(connection);
            client.simple_query("SELECT 1").await?;
            Ok::<(), tokio_postgres::Error>(())
        };
        match attempt.await {
            Ok(()) => return Ok(()),
            Err(error) if start.elapsed() > DEADLINE => {
                return Err(format!("{addr} did not answer within {DEADLINE:?}: {error}").into());
            }
            Err(_) => tokio::time::sleep(POLL_EVERY).await,
        }
    }
}

async fn round_trips(client: &mut tokio_postgres::Client, n: usize) -> Result<Vec<Duration>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        client.simple_query("SELECT 1").await?;
        out.push(start.elapsed());
    }
    Ok(out)
}

/// The floor: the same image started by hand, queried on its published port.
async fn floor_once() -> Result<Sample> {
    let wall_start = SystemTime::now();
    let start = Instant::now();
    let env = format!("CLOUDSQL_ADMIN_PASSWORD={PASSWORD}");
    let id = docker(&[
        "run",
        "-d",
        "--label",
        BENCH_LABEL,
        "--label",
        "cloudrun-emulator=true",
        "-e",
        &env,
        "-p",
        "127.0.0.1::5432",
        POSTGRES_IMAGE,
    ])?;
    let port = docker(&["port", &id, "5432/tcp"])?;
    let addr: SocketAddr = port
        .lines()
        .next()
        .ok_or("docker port printed nothing")?
        .parse()?;
    first_query(addr, "cloudsqladmin", start).await?;
    let first_query_at = SystemTime::now();
    let total = start.elapsed();
    let started = started_at(&id)?;
    docker(&["rm", "-f", "-v", &id])?;
    Ok(Sample {
        first_query: total,
        from_started: since(started, first_query_at, wall_start)?,
    })
}

/// One instance create through the API, until `SELECT 1` answers as `postgres`.
async fn create_once(emulator: SocketAddr, name: &str) -> Result<Sample> {
    let start = Instant::now();
    let body = json!({
        "name": name,
        "databaseVersion": "POSTGRES_15",
        "region": REGION,
        "rootPassword": PASSWORD,
        "settings": {"tier": "db-f1-micro"},
    });
    let path = format!("/sql/v1beta4/projects/{PROJECT}/instances");
    let created = call(emulator, Method::POST, &path, "sql", body.to_string()).await?;
    if created.status != StatusCode::OK {
        return Err(format!("create {name}: {}", String::from_utf8_lossy(&created.body)).into());
    }
    let operation: Value = serde_json::from_slice(&created.body)?;
    let operation = operation["name"].as_str().ok_or("no operation name")?;
    // The root password is set by the operation: poll it, as gcloud does, but every 5 ms.
    wait_done(emulator, operation, start).await?;
    let addr = emulator_address(emulator, name).await?;
    first_query(addr, "postgres", start).await?;
    let first_query_at = SystemTime::now();
    let total = start.elapsed();
    let container = docker(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=cloudrun-emulator.sql-instance={PROJECT}:{REGION}:{name}"),
    ])?;
    let started = started_at(&container)?;
    let wall_start = first_query_at - total;
    Ok(Sample {
        first_query: total,
        from_started: since(started, first_query_at, wall_start)?,
    })
}

async fn wait_done(emulator: SocketAddr, operation: &str, start: Instant) -> Result<()> {
    let path = format!("/sql/v1beta4/projects/{PROJECT}/operations/{operation}");
    loop {
        let answer = call(emulator, Method::GET, &path, "sql", String::new()).await?;
        let body: Value = serde_json::from_slice(&answer.body)?;
        if body["status"] == "DONE" {
            if let Some(error) = body.get("error") {
                return Err(format!("operation {operation} failed: {error}").into());
            }
            return Ok(());
        }
        if start.elapsed() > DEADLINE {
            return Err(format!("operation {operation} not DONE after {DEADLINE:?}").into());
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

async fn emulator_address(emulator: SocketAddr, name: &str) -> Result<SocketAddr> {
    let path = format!("/sql/v1beta4/projects/{PROJECT}/instances/{name}");
    let answer = call(emulator, Method::GET, &path, "sql", String::new()).await?;
    let instance: Value = serde_json::from_slice(&answer.body)?;
    Ok(instance["emulatorAddress"]
        .as_str()
        .ok_or_else(|| format!("{name} reports no emulatorAddress: {instance}"))?
        .parse()?)
}

async fn delete_instance(emulator: SocketAddr, name: &str) -> Result<Duration> {
    let start = Instant::now();
    let path = format!("/sql/v1beta4/projects/{PROJECT}/instances/{name}");
    let answer = call(emulator, Method::DELETE, &path, "sql", String::new()).await?;
    let operation: Value = serde_json::from_slice(&answer.body)?;
    let operation = operation["name"].as_str().ok_or("no operation name")?;
    wait_done(emulator, operation, start).await?;
    Ok(start.elapsed())
}

/// Deploys sqlapp with the proxy sidecar (its port also published, through a TCP startup
/// probe); returns the time to the first query answered through the sidecar, and where the
/// sidecar is reachable from the host.
async fn deploy_with_proxy(emulator: SocketAddr, instance: &str) -> Result<(Duration, SocketAddr)> {
    let name = "bench-sql";
    let connection_name = format!("{PROJECT}:{REGION}:{instance}");
    let service = json!({
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": PROJECT,
            "annotations": {"run.googleapis.com/invoker-iam-disabled": "true"},
        },
        "spec": {"template": {"spec": {"containers": [
            {
                "name": "app",
                "image": "cloudrun-emulator/sqlapp:1",
                "ports": [{"containerPort": 8080}],
                "env": [
                    {"name": "DB_USER", "value": "postgres"},
                    {"name": "DB_PASS", "value": PASSWORD},
                ],
            },
            {
                "name": "cloud-sql-proxy",
                "image": "gcr.io/cloud-sql-connectors/cloud-sql-proxy:2.14.1",
                "args": ["--address=0.0.0.0", "--port=5432", connection_name],
                "startupProbe": {
                    "tcpSocket": {"port": 5432},
                    "timeoutSeconds": 1,
                    "periodSeconds": 2,
                    "failureThreshold": 30,
                },
            },
        ]}}},
    });
    let start = Instant::now();
    let path = format!("/apis/serving.knative.dev/v1/namespaces/{PROJECT}/services");
    let created = call(emulator, Method::POST, &path, RUN_HOST, service.to_string()).await?;
    if created.status != StatusCode::OK {
        return Err(format!("deploy: {}", String::from_utf8_lossy(&created.body)).into());
    }
    let service_path = format!("{path}/{name}");
    let ingress: SocketAddr = loop {
        let answer = call(
            emulator,
            Method::GET,
            &service_path,
            RUN_HOST,
            String::new(),
        )
        .await?;
        let service: Value = serde_json::from_slice(&answer.body)?;
        if let Some(url) = service.pointer("/status/url").and_then(Value::as_str) {
            break url
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .parse()?;
        }
        if start.elapsed() > DEADLINE {
            return Err(format!("{name}: no status.url after {DEADLINE:?}").into());
        }
        tokio::time::sleep(POLL_EVERY).await;
    };
    let query = "/query?host=127.0.0.1&port=5432&sql=SELECT%201";
    loop {
        if let Ok(answer) = call(ingress, Method::GET, query, "bench", String::new()).await
            && answer.status == StatusCode::OK
        {
            break;
        }
        if start.elapsed() > DEADLINE {
            return Err(format!("{name}: no query answered after {DEADLINE:?}").into());
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
    let elapsed = start.elapsed();
    let sandbox = docker(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=cloudrun-emulator.service={name}"),
        "--filter",
        "label=cloudrun-emulator.kind=sandbox",
    ])?;
    let published = docker(&["port", &sandbox, "5432/tcp"])?;
    let addr = published
        .lines()
        .next()
        .ok_or("the sidecar's port is not published")?
        .parse()?;
    Ok((elapsed, addr))
}

fn docker(args: &[&str]) -> Result<String> {
    let output = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()?;
    if !output.status.success() {
        return Err(format!(
            "docker {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        )
        .into());
    }
    Ok(String::from_utf8(output.stdout)?.trim().to_string())
}

fn started_at(id: &str) -> Result<DateTime<Utc>> {
    let text = docker(&["inspect", "-f", "{{.State.StartedAt}}", id])?;
    Ok(DateTime::parse_from_rfc3339(&text)?.with_timezone(&Utc))
}

/// From the container's start to the first query, checked against the run's own start.
fn since(started: DateTime<Utc>, answered: SystemTime, run_start: SystemTime) -> Result<Duration> {
    let answered: DateTime<Utc> = answered.into();
    let run_start: DateTime<Utc> = run_start.into();
    if started < run_start - chrono::Duration::seconds(1) {
        return Err("the container started before the run: clocks disagree".into());
    }
    Ok((answered - started).to_std().unwrap_or_default())
}

fn remove_floor() {
    if let Ok(ids) = docker(&["ps", "-aq", "--filter", &format!("label={BENCH_LABEL}")]) {
        for id in ids.lines() {
            let _ = docker(&["rm", "-f", "-v", id]);
        }
    }
}

fn build_images() -> Result<()> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../docker/build-images.sh");
    let images = ["sandbox", "postgres15", "cloudsql-proxy", "sqlapp"];
    let output = Command::new(script)
        .args(images)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {script}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "{script} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(())
}

fn quantile_ms(samples: &[Duration], q: f64) -> f64 {
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    let index = ((ms.len() as f64 - 1.0) * q).round() as usize;
    ms.get(index).copied().unwrap_or(f64::NAN)
}

fn verdict(pass: bool) -> &'static str {
    if pass { "PASS" } else { "MISS" }
}

fn report(f: &Figures) {
    let ms = |samples: &[Sample], pick: fn(&Sample) -> Duration| {
        Millis::of(&samples.iter().map(pick).collect::<Vec<_>>())
    };
    let create = ms(&f.create, |s| s.first_query);
    let floor = ms(&f.floor, |s| s.first_query);
    let create_started = ms(&f.create, |s| s.from_started);
    let floor_started = ms(&f.floor, |s| s.from_started);
    let delete = Millis::of(&f.delete);
    println!(
        "cloudrun-emulator bench, Cloud SQL: {} creates, {} x {ROUND_QUERIES} round trips per path\n",
        f.create.len(),
        ROUNDS
    );
    println!("{:<44}{:>12}{:>12}", "", "median ms", "min ms");
    let row = |label: &str, m: &Millis| println!("{label:<44}{:>12.1}{:>12.1}", m.median, m.min);
    row("instances create -> first query", &create);
    row("  docker run -> first query (floor)", &floor);
    row("  container started -> first query", &create_started);
    row("  container started -> first query (floor)", &floor_started);
    row("instances delete -> operation DONE", &delete);
    if let Some(revision) = f.revision_to_query {
        println!(
            "{:<44}{:>12.1}",
            "revision deploy -> first query via proxy",
            revision.as_secs_f64() * 1000.0
        );
    }
    let (d50, p50) = (quantile_ms(&f.direct, 0.5), quantile_ms(&f.proxied, 0.5));
    let (d99, p99) = (quantile_ms(&f.direct, 0.99), quantile_ms(&f.proxied, 0.99));
    println!("\nSELECT 1 round trip     direct ms   via proxy ms   added ms");
    println!(
        "  p50              {d50:>14.3}{p50:>15.3}{:>11.3}",
        p50 - d50
    );
    println!(
        "  p99              {d99:>14.3}{p99:>15.3}{:>11.3}",
        p99 - d99
    );
    println!();
    println!(
        "{} create to first query < {TARGET_CREATE_MS} ms (median {:.0} ms, {:.2}x the floor)",
        verdict(create.median < TARGET_CREATE_MS),
        create.median,
        create.median / floor.median
    );
    println!(
        "{} container start to first query < {TARGET_STARTED_TO_QUERY_MS} ms (median {:.0} ms)",
        verdict(create_started.median < TARGET_STARTED_TO_QUERY_MS),
        create_started.median
    );
    println!(
        "{} proxy adds < {TARGET_ADDED_P50_MS} ms at p50 ({:.3} ms)",
        verdict(p50 - d50 < TARGET_ADDED_P50_MS),
        p50 - d50
    );
}
