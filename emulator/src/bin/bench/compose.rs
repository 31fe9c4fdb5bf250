//! The Compose section (`--only compose`): `cloudrun-emulator compose up` of the shop fixture
//! (nginx, a frontend and a backend behind a healthcheck, a secret, an env file) to its first 200
//! through the proxy, against `docker-compose up -d` of the same file to the same first 200.
//!
//! Both sides have their images built before timing (the emulator's by one untimed `compose up
//! --build`, docker-compose's by `docker-compose build`), and runs alternate so drift in the
//! machine hits both alike. docker-compose's project is removed with `down -v` after each run.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::Result;

/// The route timed: proxy → backend, so every container is on the path.
const ROUTE: &str = "/api/hello";
/// How long one side may take to its first 200.
const DEADLINE: Duration = Duration::from_secs(120);
/// The Compose project name docker-compose runs the fixture under.
const COMPOSE_PROJECT: &str = "cloudrunemulatorbench";
/// The Cloud Run service the emulator runs it as.
const SERVICE: &str = "bench-shop";
/// Target: no slower than docker-compose.
const TARGET_RATIO: f64 = 1.0;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/compose/shop/compose.yaml")
}

/// Runs the section and prints its report.
pub(crate) fn bench(repeats: usize, emulator_exe: &Path) -> Result<()> {
    let file = fixture();
    if !file.is_file() {
        return Err(format!("{} is missing", file.display()).into());
    }
    let emulator = super::run::RunEmulator::spawn(emulator_exe)?;
    let url = format!("http://{}", emulator.addr);
    let port = free_port()?;
    let compose = DockerCompose { file: &file, port };
    let outcome = (|| -> Result<(Vec<Duration>, Vec<Duration>)> {
        eprintln!("bench: building both sides' images (untimed)");
        emulator_up(emulator_exe, &url, &file, true)?;
        emulator_down(emulator_exe, &url, &file)?;
        compose.run(&["build", "-q"])?;
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for round in 0..repeats {
            let start = Instant::now();
            let service_url = emulator_up(emulator_exe, &url, &file, false)?;
            wait_for_200(&service_url, start)?;
            ours.push(start.elapsed());
            emulator_down(emulator_exe, &url, &file)?;

            let start = Instant::now();
            compose.run(&["up", "-d", "--no-build"])?;
            let published = format!("http://127.0.0.1:{port}");
            let measured = wait_for_200(&published, start);
            theirs.push(start.elapsed());
            compose.run(&["down", "-v", "--remove-orphans"])?;
            measured?;
            eprintln!(
                "bench: round {}: compose up {:.0} ms, docker-compose up {:.0} ms",
                round + 1,
                ms(ours[round]),
                ms(theirs[round])
            );
        }
        Ok((ours, theirs))
    })();
    let _ = compose.run(&["down", "-v", "--remove-orphans"]);
    let _ = emulator_down(emulator_exe, &url, &file);
    drop(emulator);
    let (ours, theirs) = outcome?;
    report(&ours, &theirs);
    Ok(())
}

/// `docker-compose` on the fixture, publishing the proxy on `port`.
struct DockerCompose<'a> {
    file: &'a Path,
    port: u16,
}

impl DockerCompose<'_> {
    fn run(&self, args: &[&str]) -> Result<()> {
        let output = Command::new("docker-compose")
            .arg("-p")
            .arg(COMPOSE_PROJECT)
            .arg("-f")
            .arg(self.file)
            .args(args)
            .env("SHOP_PORT", self.port.to_string())
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run docker-compose: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "docker-compose {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr)
            )
            .into());
        }
        Ok(())
    }
}

/// `cloudrun-emulator compose up`, as a user runs it; returns the printed URL.
fn emulator_up(exe: &Path, emulator: &str, file: &Path, build: bool) -> Result<String> {
    let mut command = Command::new(exe);
    command
        .args(["compose", "up", "--service", SERVICE])
        .arg(file)
        .env("CLOUDRUN_EMULATOR_URL", emulator)
        .stdin(Stdio::null());
    if build {
        command.arg("--build");
    }
    let output = command.output()?;
    if !output.status.success() {
        return Err(format!(
            "compose up failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(String::from_utf8(output.stdout)?.trim().to_string())
}

fn emulator_down(exe: &Path, emulator: &str, file: &Path) -> Result<()> {
    let output = Command::new(exe)
        .args(["compose", "down", "--service", SERVICE])
        .arg(file)
        .env("CLOUDRUN_EMULATOR_URL", emulator)
        .stdin(Stdio::null())
        .output()?;
    if !output.status.success() {
        return Err(format!(
            "compose down failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(())
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Polls `base` + [`ROUTE`] until it answers 200.
fn wait_for_200(base: &str, start: Instant) -> Result<()> {
    let addr: SocketAddr = base
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .map_err(|e| format!("not a loopback URL {base}: {e}"))?;
    while start.elapsed() < DEADLINE {
        if status_ok(addr) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Err(format!("{base}{ROUTE} did not answer 200 within {DEADLINE:?}").into())
}

fn status_ok(addr: SocketAddr) -> bool {
    let attempt = || -> std::io::Result<bool> {
        let mut stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        let request = format!("GET {ROUTE} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes())?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response)?;
        Ok(response.starts_with(b"HTTP/1.1 200"))
    };
    attempt().unwrap_or(false)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(samples: &[Duration]) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}

fn report(ours: &[Duration], theirs: &[Duration]) {
    let (a, b) = (median(ours), median(theirs));
    let ratio = a.as_secs_f64() / b.as_secs_f64().max(1e-9);
    println!(
        "== Compose: up to first 200 of {ROUTE} (nginx + frontend + backend with healthcheck)"
    );
    println!(
        "cloudrun-emulator compose up   median {:>7.0} ms   runs {:?}",
        ms(a),
        ours.iter().map(|d| ms(*d).round()).collect::<Vec<_>>()
    );
    println!(
        "docker-compose up -d           median {:>7.0} ms   runs {:?}",
        ms(b),
        theirs.iter().map(|d| ms(*d).round()).collect::<Vec<_>>()
    );
    let verdict = if ratio <= TARGET_RATIO {
        "PASS"
    } else {
        "MISS"
    };
    println!(
        "{verdict}: compose up / docker-compose up = {ratio:.2}x (target <= {TARGET_RATIO:.1}x)"
    );
}
