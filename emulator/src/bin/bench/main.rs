//! `bench`: measures the release `cloudrun-emulator` in one run, in two sections.
//!
//! **Secret Manager** (`--only secrets`): figures, each next to the same figure for the peer (an axum server answering `/healthz` and
//! one static JSON body the size of the emulator's access response), with the ratio between:
//! - start-to-ready: wall time from spawn until `GET /healthz` answers 200 (min and median);
//! - resident memory (VmRSS) when idle and after the load test;
//! - requests/s and p50/p90/p99/max latency of `versions/latest:access` under closed-loop load
//!   from keep-alive HTTP/1.1 connections on loopback.
//!
//! **Cloud Run** (`--only run`, see [`run`]): cold deploy of a four-container service to its first
//! 200 against the same containers started with the docker CLI, delete time, and the latency the
//! ingress adds in front of the instance.
//!
//! **Cloud SQL** (`--only sql`, see [`sql`]): instance create to first query against the same
//! Postgres image started with the docker CLI, revision start to first query through the Cloud
//! SQL Auth Proxy stand-in, and the latency the stand-in adds per query.
//!
//! Each section ends with PASS/MISS against its targets. Build and run with:
//!
//! ```text
//! cargo build --release -p emulator
//! target/release/bench [--only secrets|run|sql|all] [--duration-secs 5] [--connections 32]
//! ```

mod run;
mod sql;

use std::error::Error;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;

type Result<T, E = Box<dyn Error + Send + Sync>> = std::result::Result<T, E>;

const ACCESS_PATH: &str = "/v1/projects/bench-proj/secrets/bench/versions/latest:access";
const READY_DEADLINE: Duration = Duration::from_secs(10);
const TARGET_RPS: f64 = 20_000.0;
const TARGET_P99_MS: f64 = 5.0;
const TARGET_READY_MS: f64 = 50.0;
const TARGET_IDLE_MIB: f64 = 15.0;

/// Which sections of the bench to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Only {
    /// Secret Manager: startup, memory and access throughput against a minimal peer.
    Secrets,
    /// Cloud Run: deploy to first 200 against the docker CLI floor, delete, ingress overhead.
    Run,
    /// Cloud SQL: create to first query against the docker CLI floor, proxy overhead.
    Sql,
    /// Every section.
    All,
}

/// Measures the emulator's startup, memory and access throughput against a minimal peer, and
/// its Cloud Run deploys and ingress against the bare docker CLI.
#[derive(Debug, Parser)]
#[command(name = "bench")]
struct Args {
    /// Which sections to run.
    #[arg(long, value_enum, default_value_t = Only::All)]
    only: Only,
    /// Seconds of measured load per server (after one second of warmup).
    #[arg(long, default_value_t = 5)]
    duration_secs: u64,
    /// Concurrent keep-alive connections of the load generator.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// How many times to start each server to time start-to-ready.
    #[arg(long, default_value_t = 10)]
    startup_runs: usize,
    /// Worker threads of the load generator (default: one per CPU).
    #[arg(long)]
    client_threads: Option<usize>,
    /// Cloud Run: deploys (and floor runs) measured for each figure.
    #[arg(long, default_value_t = 3)]
    run_repeats: usize,
    /// Cloud Run: connections of the ingress load test.
    #[arg(long, default_value_t = 8)]
    run_connections: usize,
    /// Cloud Run: measured seconds of the ingress load test, per target.
    #[arg(long, default_value_t = 3)]
    run_duration_secs: u64,
    /// Run as the peer server instead (used by the bench itself).
    #[arg(long, hide = true)]
    serve_peer: bool,
    #[arg(long, hide = true)]
    listen: Option<SocketAddr>,
    #[arg(long, hide = true, default_value = "{}")]
    peer_body: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let outcome = if args.serve_peer {
        serve_peer(&args)
    } else {
        sections(&args)
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bench: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The peer: the same framework and runtime as the emulator, with no work behind the route.
fn serve_peer(args: &Args) -> Result<()> {
    let listen = args.listen.ok_or("--serve-peer needs --listen")?;
    let body = Bytes::from(args.peer_body.clone());
    let app = axum::Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .fallback(move || {
            let body = body.clone();
            async move { ([(hyper::header::CONTENT_TYPE, "application/json")], body) }
        });
    tokio::runtime::Runtime::new()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        axum::serve(listener, app).await?;
        Ok(())
    })
}

/// Runs the sections `--only` asks for; a failed section does not stop the next.
fn sections(args: &Args) -> Result<()> {
    let emulator_exe = std::env::current_exe()?.with_file_name("cloudrun-emulator");
    if !emulator_exe.is_file() {
        return Err(format!(
            "{} not found; build it first with `cargo build --release -p emulator`",
            emulator_exe.display()
        )
        .into());
    }
    if cfg!(debug_assertions) {
        eprintln!("bench: warning: built without --release; figures are not representative");
    }
    let secrets =
        matches!(args.only, Only::Secrets | Only::All).then(|| bench_secrets(args, &emulator_exe));
    if secrets.is_some() && args.only == Only::All {
        println!();
    }
    let run = matches!(args.only, Only::Run | Only::All).then(|| {
        let options = run::Options {
            repeats: args.run_repeats.max(1),
            load: LoadPlan {
                connections: args.run_connections.max(1),
                warmup: Duration::from_secs(1),
                duration: Duration::from_secs(args.run_duration_secs.max(1)),
            },
        };
        run::bench(&options, &emulator_exe)
    });
    if args.only == Only::All {
        println!();
    }
    let sql = matches!(args.only, Only::Sql | Only::All).then(|| {
        let options = sql::Options {
            repeats: args.run_repeats.max(1),
        };
        sql::bench(&options, &emulator_exe)
    });
    let failures: Vec<String> = [
        ("Secret Manager", secrets),
        ("Cloud Run", run),
        ("Cloud SQL", sql),
    ]
    .into_iter()
    .filter_map(|(name, outcome)| Some(format!("{name} section: {}", outcome?.err()?)))
    .collect();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; ").into())
    }
}

fn bench_secrets(args: &Args, emulator_exe: &Path) -> Result<()> {
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = args.client_threads {
        runtime.worker_threads(threads);
    }
    let runtime = runtime.enable_all().build()?;
    let load = LoadPlan {
        connections: args.connections.max(1),
        warmup: Duration::from_secs(1),
        duration: Duration::from_secs(args.duration_secs.max(1)),
    };

    // The emulator that takes the load: seeded, and its access response becomes the peer's body.
    let emulator = Server::spawn(emulator_exe, &[])?;
    let emulator_idle = idle_rss(&emulator)?;
    let body = runtime.block_on(seed(emulator.addr))?;
    let peer_exe = std::env::current_exe()?;
    let body_text = String::from_utf8(body.to_vec())?;
    let peer_args = ["--serve-peer", "--peer-body", &body_text];
    let peer = Server::spawn(&peer_exe, &peer_args)?;
    let peer_idle = idle_rss(&peer)?;

    // Start-to-ready, alternating the two so that drift in the machine hits both alike.
    let (mut emulator_ready, mut peer_ready) = (Vec::new(), Vec::new());
    for _ in 0..args.startup_runs.max(1) {
        emulator_ready.push(Server::spawn(emulator_exe, &[])?.ready_after);
        peer_ready.push(Server::spawn(&peer_exe, &peer_args)?.ready_after);
    }

    let emulator_target = LoadTarget {
        addr: emulator.addr,
        path: ACCESS_PATH.into(),
        expected: body.clone(),
    };
    let emulator_load = runtime.block_on(run_load(&emulator_target, &load, emulator.pid()))?;
    let emulator = Figures {
        ready: Millis::of(&emulator_ready),
        idle_mib: emulator_idle,
        after_load_mib: rss_mib(emulator.pid())?,
        load: emulator_load,
    };
    let peer_target = LoadTarget {
        addr: peer.addr,
        ..emulator_target
    };
    let peer_load = runtime.block_on(run_load(&peer_target, &load, peer.pid()))?;
    let peer = Figures {
        ready: Millis::of(&peer_ready),
        idle_mib: peer_idle,
        after_load_mib: rss_mib(peer.pid())?,
        load: peer_load,
    };
    report(&load, body.len(), &emulator, &peer);
    Ok(())
}

/// Everything measured of one server.
#[derive(Debug)]
struct Figures {
    ready: Millis,
    idle_mib: f64,
    after_load_mib: f64,
    load: LoadResult,
}

fn report(plan: &LoadPlan, body_len: usize, e: &Figures, p: &Figures) {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    println!(
        "cloudrun-emulator bench, Secret Manager: {} connections, {:?} warmup + {:?} measured, {cpus} CPUs, \
         access body {body_len} bytes\n",
        plan.connections, plan.warmup, plan.duration,
    );
    println!(
        "{:<26}{:>14}{:>14}{:>16}",
        "", "emulator", "peer", "emulator/peer"
    );
    let row = |label: &str, unit: &str, value: &dyn Fn(&Figures) -> f64| {
        let (emulator, peer) = (value(e), value(p));
        let decimals = if unit.is_empty() { 0 } else { 2 };
        let emulator_text = format!("{emulator:.decimals$} {unit}");
        let peer_text = format!("{peer:.decimals$} {unit}");
        let ratio = emulator / peer;
        println!("{label:<26}{emulator_text:>14}{peer_text:>14}{ratio:>15.2}x");
    };
    row("start-to-ready min", "ms", &|f| f.ready.min);
    row("start-to-ready median", "ms", &|f| f.ready.median);
    row("RSS idle", "MiB", &|f| f.idle_mib);
    row("RSS after load", "MiB", &|f| f.after_load_mib);
    row("requests/s", "", &|f| f.load.rps);
    for (label, q) in [("p50", 0.50), ("p90", 0.90), ("p99", 0.99), ("max", 1.0)] {
        row(&format!("latency {label}"), "ms", &|f| {
            f.load.quantile_ms(q)
        });
    }
    // Where the CPU went while measuring: the server, this load generator, everything else.
    row("CPU: server", "cores", &|f| f.load.cores.server);
    row("CPU: load generator", "cores", &|f| f.load.cores.client);
    row("CPU: rest of machine", "cores", &|f| f.load.cores.other);
    row("requests measured", "", &|f| {
        f.load.latencies_us.len() as f64
    });

    println!("\ntargets (Secret Manager, emulator):");
    let p99 = e.load.quantile_ms(0.99);
    let targets = [
        (
            e.load.rps >= TARGET_RPS,
            format!("at least {TARGET_RPS} requests/s"),
            format!("{:.0}", e.load.rps),
        ),
        (
            p99 < TARGET_P99_MS,
            format!("p99 under {TARGET_P99_MS} ms"),
            format!("{p99:.2} ms"),
        ),
        (
            e.ready.median < TARGET_READY_MS,
            format!("ready in under {TARGET_READY_MS} ms (median)"),
            format!("{:.2} ms", e.ready.median),
        ),
        (
            e.idle_mib < TARGET_IDLE_MIB,
            format!("under {TARGET_IDLE_MIB} MiB resident when idle"),
            format!("{:.2} MiB", e.idle_mib),
        ),
    ];
    for (pass, target, got) in &targets {
        let verdict = if *pass { "PASS" } else { "MISS" };
        println!("  {verdict}  {target:<40} got {got}");
    }
    let met = targets.iter().filter(|(pass, ..)| *pass).count();
    println!("\n{met} of {} Secret Manager targets met", targets.len());
}

/// A running server process, killed and reaped when dropped (also on error paths).
#[derive(Debug)]
struct Server {
    child: Child,
    addr: SocketAddr,
    ready_after: Duration,
}

impl Server {
    /// Spawns `exe args --listen ADDR` on a free port and waits until `/healthz` answers 200.
    fn spawn(exe: &Path, args: &[&str]) -> Result<Self> {
        let addr = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let start = Instant::now();
        let child = Command::new(exe)
            .args(args)
            .arg("--listen")
            .arg(addr.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
        let mut server = Server {
            child,
            addr,
            ready_after: Duration::ZERO,
        };
        loop {
            if healthz_ok(addr) {
                server.ready_after = start.elapsed();
                return Ok(server);
            }
            if let Some(status) = server.child.try_wait()? {
                return Err(format!(
                    "{} exited ({status}) before answering /healthz; run it by hand to see why",
                    exe.display()
                )
                .into());
            }
            if start.elapsed() > READY_DEADLINE {
                return Err(format!(
                    "{} did not answer /healthz on {addr} within {READY_DEADLINE:?}",
                    exe.display()
                )
                .into());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One blocking `GET /healthz`; true on a 200.
fn healthz_ok(addr: SocketAddr) -> bool {
    let attempt = || -> std::io::Result<bool> {
        let mut stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(1)))?;
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response)?;
        Ok(response.starts_with(b"HTTP/1.1 200"))
    };
    attempt().unwrap_or(false)
}

/// VmRSS of a process, in MiB.
fn rss_mib(pid: u32) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("no VmRSS in /proc/{pid}/status"))?;
    Ok(kib / 1024.0)
}

/// VmRSS once the server has settled after becoming ready.
fn idle_rss(server: &Server) -> Result<f64> {
    std::thread::sleep(Duration::from_millis(300));
    rss_mib(server.pid())
}

/// CPU time used so far by the server, this process, and the whole machine, in USER_HZ ticks.
#[derive(Debug)]
struct CpuSample {
    server: u64,
    client: u64,
    machine: u64,
}

/// CPU use over an interval, in cores (1.0 is one CPU busy the whole time).
#[derive(Debug)]
struct Cores {
    server: f64,
    client: f64,
    other: f64,
}

impl CpuSample {
    fn take(server_pid: u32) -> Result<Self> {
        // utime and stime are the 12th and 13th fields after the parenthesised command name.
        let process = |path: String| -> Result<u64> {
            let stat = std::fs::read_to_string(path)?;
            let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
            let fields: Vec<&str> = after_name.split_whitespace().skip(11).take(2).collect();
            fields
                .iter()
                .try_fold(0, |sum, f| Ok(sum + f.parse::<u64>()?))
        };
        // The machine's first /proc/stat line: every busy column (not idle, not iowait).
        let stat = std::fs::read_to_string("/proc/stat")?;
        let columns: Vec<u64> = stat
            .lines()
            .next()
            .and_then(|line| line.strip_prefix("cpu "))
            .ok_or("no cpu line in /proc/stat")?
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()?;
        let idle: u64 = columns.iter().skip(3).take(2).sum();
        Ok(CpuSample {
            server: process(format!("/proc/{server_pid}/stat"))?,
            client: process("/proc/self/stat".to_string())?,
            machine: columns.iter().take(8).sum::<u64>() - idle,
        })
    }

    fn cores_since(&self, before: &CpuSample, seconds: f64) -> Cores {
        // USER_HZ is 100 on every Linux build that matters.
        let cores = |ticks: u64| ticks as f64 / 100.0 / seconds;
        let (server, client) = (self.server - before.server, self.client - before.client);
        let machine = self.machine - before.machine;
        Cores {
            server: cores(server),
            client: cores(client),
            other: cores(machine.saturating_sub(server + client)),
        }
    }
}

/// Creates the secret and one version, and returns the access response every request must match.
async fn seed(addr: SocketAddr) -> Result<Bytes> {
    let steps = [
        (
            Method::POST,
            "/v1/projects/bench-proj/secrets?secretId=bench",
            r#"{"replication":{"automatic":{}}}"#,
        ),
        (
            Method::POST,
            "/v1/projects/bench-proj/secrets/bench:addVersion",
            r#"{"payload":{"data":"YmVuY2gtc2VjcmV0LXBheWxvYWQtMzItYnl0ZXMtbG9uZyE="}}"#,
        ),
        (Method::GET, ACCESS_PATH, ""),
    ];
    let mut last = Bytes::new();
    for (method, path, body) in steps {
        let mut sender = connect(addr).await?;
        let answer = send(&mut sender, method.clone(), path, "127.0.0.1", body.into()).await?;
        if answer.status != StatusCode::OK {
            let text = String::from_utf8_lossy(&answer.body);
            let status = answer.status;
            return Err(format!("seeding: {method} {path} answered {status}: {text}").into());
        }
        last = answer.body;
    }
    Ok(last)
}

async fn connect(addr: SocketAddr) -> Result<http1::SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// A response, and whether its connection may carry another request.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    body: Bytes,
    /// False after an HTTP/1.0 answer or `Connection: close` (Python's `http.server`).
    reusable: bool,
}

async fn send(
    sender: &mut http1::SendRequest<Full<Bytes>>,
    method: Method,
    path: &str,
    host: &str,
    body: Bytes,
) -> Result<Answer> {
    sender.ready().await?;
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, host)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(body))?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let closes = response
        .headers()
        .get(hyper::header::CONNECTION)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
    let reusable = response.version() == hyper::Version::HTTP_11 && !closes;
    let body = response.into_body().collect().await?.to_bytes();
    Ok(Answer {
        status,
        body,
        reusable,
    })
}

/// Where the load generator sends `GET path`, and the body every answer must have.
#[derive(Debug, Clone)]
struct LoadTarget {
    addr: SocketAddr,
    path: String,
    expected: Bytes,
}

#[derive(Debug)]
struct LoadPlan {
    connections: usize,
    warmup: Duration,
    duration: Duration,
}

/// What one connection of the load generator saw.
#[derive(Debug, Default)]
struct ConnectionStats {
    latencies_us: Vec<u32>,
    /// TCP connections opened (one per request against servers that close after answering).
    connects: u64,
    errors: u64,
    first_error: Option<String>,
}

impl ConnectionStats {
    fn fail(&mut self, error: String) {
        self.errors += 1;
        self.first_error.get_or_insert(error);
    }
}

#[derive(Debug)]
struct LoadResult {
    /// Sorted latencies of the requests that started and finished inside the measured window.
    latencies_us: Vec<u32>,
    rps: f64,
    cores: Cores,
    /// TCP connections the generator opened, warmup included.
    connects: u64,
}

impl LoadResult {
    fn quantile_ms(&self, q: f64) -> f64 {
        let n = self.latencies_us.len();
        let rank = ((q * n as f64).ceil() as usize).clamp(1, n.max(1)) - 1;
        self.latencies_us
            .get(rank)
            .map_or(f64::NAN, |&us| f64::from(us) / 1000.0)
    }
}

/// Closed-loop load: each connection sends its next request as soon as the last one is answered.
/// A server that closes after answering gets a new connection for the next request, and the
/// connect counts in that request's latency.
async fn run_load(target: &LoadTarget, plan: &LoadPlan, pid: u32) -> Result<LoadResult> {
    let start = Instant::now();
    let measure_from = start + plan.warmup;
    let end = measure_from + plan.duration;
    let mut tasks = Vec::with_capacity(plan.connections);
    for _ in 0..plan.connections {
        let target = target.clone();
        tasks.push(tokio::spawn(async move {
            let mut stats = ConnectionStats::default();
            let mut open = None;
            while Instant::now() < end {
                let sent = Instant::now();
                let sender = match open.as_mut() {
                    Some(sender) => sender,
                    None => match connect(target.addr).await {
                        Ok(sender) => {
                            stats.connects += 1;
                            open.insert(sender)
                        }
                        Err(error) => {
                            stats.fail(format!("connect: {error}"));
                            break;
                        }
                    },
                };
                let answer = match send(
                    sender,
                    Method::GET,
                    &target.path,
                    "127.0.0.1",
                    Bytes::new(),
                )
                .await
                {
                    Ok(answer) => answer,
                    Err(error) => {
                        // The connection is unusable after a transport error.
                        stats.fail(error.to_string());
                        break;
                    }
                };
                let done = Instant::now();
                if !answer.reusable {
                    open = None;
                }
                if answer.status != StatusCode::OK || answer.body != target.expected {
                    let text = String::from_utf8_lossy(&answer.body);
                    stats.fail(format!("{}: {text}", answer.status));
                } else if sent >= measure_from && done <= end {
                    let micros = (done - sent).as_micros();
                    stats
                        .latencies_us
                        .push(u32::try_from(micros).unwrap_or(u32::MAX));
                }
            }
            stats
        }));
    }
    // CPU use is sampled over the measured window only.
    tokio::time::sleep_until(measure_from.into()).await;
    let cpu_before = CpuSample::take(pid)?;
    tokio::time::sleep_until(end.into()).await;
    let cpu_after = CpuSample::take(pid)?;

    let mut total = ConnectionStats::default();
    for task in tasks {
        let stats = task.await?;
        total.latencies_us.extend(stats.latencies_us);
        total.connects += stats.connects;
        total.errors += stats.errors;
        total.first_error = total.first_error.or(stats.first_error);
    }
    if let Some(first) = total.first_error {
        return Err(format!(
            "{} requests to {}{} failed or answered wrongly; first: {first}",
            total.errors, target.addr, target.path
        )
        .into());
    }
    let mut latencies_us = total.latencies_us;
    latencies_us.sort_unstable();
    let seconds = plan.duration.as_secs_f64();
    Ok(LoadResult {
        rps: latencies_us.len() as f64 / seconds,
        latencies_us,
        cores: cpu_after.cores_since(&cpu_before, seconds),
        connects: total.connects,
    })
}

/// Min and median of a set of durations, in milliseconds.
#[derive(Debug)]
struct Millis {
    min: f64,
    median: f64,
}

impl Millis {
    fn of(samples: &[Duration]) -> Self {
        let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
        ms.sort_by(f64::total_cmp);
        let middle = ms.len() / 2;
        let median = match (ms.len() % 2, ms.get(middle)) {
            (0, Some(upper)) => (ms[middle - 1] + upper) / 2.0,
            (_, Some(only)) => *only,
            (_, None) => f64::NAN,
        };
        Millis {
            min: ms.first().copied().unwrap_or(f64::NAN),
            median,
        }
    }
}
