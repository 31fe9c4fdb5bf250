//! What the emulator's integration tests share: the emulator as a separate process, files,
//! a service's URL as gcloud prints it, plain GETs, and the Docker objects a test must not
//! leave behind. Each test binary uses part of it, hence `dead_code` is allowed here.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use harness::Gcloud;

/// The `cloudrun-emulator` binary this test run built.
pub const BIN: &str = env!("CARGO_BIN_EXE_cloudrun-emulator");
/// The region every test deploys to, as a gcloud flag.
pub const REGION: &str = "--region=us-central1";

/// A `cloudrun-emulator` process; dropping it stops it as a user would (SIGTERM, which removes
/// its containers), and kills it if it has not exited within 20 s.
pub struct EmulatorProcess {
    child: Child,
    /// Where it listens, as it announced: `http://127.0.0.1:PORT`.
    pub url: String,
}

impl EmulatorProcess {
    /// Starts the binary with `args` and extra environment, and waits for its address.
    pub fn start(args: &[&str], envs: &[(&str, &str)]) -> EmulatorProcess {
        let mut child = Command::new(BIN)
            .args(args)
            .envs(envs.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the emulator binary starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let mut lines = BufReader::new(stderr).lines();
        let url = loop {
            let line = lines
                .next()
                .expect("the emulator announces its address before exiting")
                .expect("stderr is text");
            if let Some(url) = line.strip_prefix("cloudrun-emulator listening on ") {
                break url.to_string();
            }
        };
        std::thread::spawn(move || lines.for_each(drop));
        EmulatorProcess { child, url }
    }

    /// On a free loopback port, in memory.
    pub fn in_memory() -> EmulatorProcess {
        EmulatorProcess::start(&["--listen", "127.0.0.1:0"], &[])
    }

    /// On a free loopback port, keeping its state in `data_dir`.
    pub fn on(data_dir: &Path) -> EmulatorProcess {
        let dir = data_dir.to_str().expect("a UTF-8 data directory");
        EmulatorProcess::start(&["--listen", "127.0.0.1:0", "--data-dir", dir], &[])
    }

    /// SIGTERM, and the exit that follows must be clean.
    pub fn terminate(mut self) {
        let status = self.stop().expect("the emulator exits on SIGTERM");
        assert!(status.success(), "clean exit on SIGTERM: {status}");
    }

    /// SIGKILL: the process gets no chance to tidy or flush anything.
    pub fn kill_9(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }

    /// Sends SIGTERM and waits up to 20 s for the exit.
    fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for EmulatorProcess {
    fn drop(&mut self) {
        if self.stop().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Writes `text` to `name` in `dir`; the path, for a gcloud argument.
pub fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("the file is written");
    path.to_string_lossy().into_owned()
}

/// `gcloud run services describe SERVICE --format=value(status.url)`.
pub async fn service_url(gcloud: &Gcloud, service: &str) -> String {
    service_field(gcloud, service, "status.url").await
}

/// One field of `gcloud run services describe SERVICE`, e.g. `status.url`.
pub async fn service_field(gcloud: &Gcloud, service: &str, field: &str) -> String {
    let out = gcloud
        .run([
            "run",
            "services",
            "describe",
            service,
            REGION,
            &format!("--format=value({field})"),
        ])
        .ok()
        .await
        .expect("the service is described");
    out.stdout.trim().to_string()
}

/// `gcloud run revisions list --service=SERVICE`: the revisions' names, newest first.
pub async fn revision_names(gcloud: &Gcloud, service: &str) -> Vec<String> {
    let out = gcloud
        .run([
            "run",
            "revisions",
            "list",
            &format!("--service={service}"),
            REGION,
            "--format=value(metadata.name)",
        ])
        .ok()
        .await
        .expect("the revisions are listed");
    out.stdout.lines().map(str::to_string).collect()
}

/// A GET's status and body.
pub async fn get(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.expect("the URL answers");
    let status = response.status().as_u16();
    (status, response.text().await.expect("the body is text"))
}

/// `prefix` and six random letters or digits, so concurrent runs on one engine never collide.
pub fn unique_name(prefix: &str) -> String {
    let suffix: String = (0..6)
        .map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rand::random_range(0..36)]))
        .collect();
    format!("{prefix}-{suffix}")
}

/// The ids of the containers carrying the emulator's label `cloudrun-emulator.KEY=VALUE`
/// (`service`, `revision`, `sql-instance`...).
pub fn containers_labelled(key: &str, value: &str) -> Vec<String> {
    docker_ids(&["ps", "-aq"], &label(key, value))
}

/// The containers and volumes of a Cloud SQL instance, by connection name.
pub fn sql_instance_objects(connection_name: &str) -> Vec<String> {
    let label = label("sql-instance", connection_name);
    let mut objects = docker_ids(&["ps", "-aq"], &label);
    objects.extend(docker_ids(&["volume", "ls", "-q"], &label));
    objects
}

/// Removes what a Cloud SQL instance left, should the test fail before deleting it (the
/// volumes of an emulator on a data directory outlive it by design).
pub struct SqlLeftovers(pub String);

impl Drop for SqlLeftovers {
    fn drop(&mut self) {
        let label = label("sql-instance", &self.0);
        for id in docker_ids(&["ps", "-aq"], &label) {
            let _ = Command::new("docker").args(["rm", "-f", &id]).output();
        }
        for id in docker_ids(&["volume", "ls", "-q"], &label) {
            let _ = Command::new("docker").args(["volume", "rm", &id]).output();
        }
    }
}

/// Removes the containers (and their anonymous volumes) of a service a test may have left.
pub fn remove_service_containers(service: &str) {
    for id in containers_labelled("service", service) {
        let _ = Command::new("docker")
            .args(["rm", "-f", "-v", &id])
            .output();
    }
}

fn label(key: &str, value: &str) -> String {
    format!("label=cloudrun-emulator.{key}={value}")
}

/// The ids a docker listing prints for a label filter; none if docker cannot be run.
fn docker_ids(list: &[&str], label: &str) -> Vec<String> {
    Command::new("docker")
        .args(list)
        .args(["--filter", label])
        .output()
        .map(|out| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}
