//! The identity section (`--only identity`): what ID tokens cost at the ingress. A release
//! emulator runs two one-container services of `cloudrun-emulator/testapp:1`, one public
//! (`allUsers` may invoke) and one private (one service account may); the same closed-loop load
//! runs on `/healthz` through both URLs, alternating in rounds, the private one with an ID
//! token from the IAM Credentials API in every request. Also timed: minting a token
//! (`generateIdToken`, one request each) and the first request carrying a fresh token (the
//! ingress verifies its signature once, then remembers it).

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use hyper::Method;
use hyper::body::Bytes;
use serde_json::{Value, json};

use super::run::{
    self, DEPLOY_DEADLINE, LOAD_ROUNDS, POLL_EVERY, PROJECT, REGION, RUN_HOST, RunEmulator,
    TESTAPP_IMAGE,
};
use super::{LoadPlan, LoadResult, LoadTarget, Millis, Result, run_load};

const CALLER: &str = "bench-caller@bench-proj.iam.gserviceaccount.com";
/// Tokens minted to time `generateIdToken`.
const MINTS: usize = 50;
/// The target: the private service serves at least this share of the public one's requests/s.
const TARGET_SHARE: f64 = 0.9;

/// Runs the section and prints its report; everything it started is gone when it returns.
pub(crate) fn bench(plan: &LoadPlan, emulator_exe: &Path) -> Result<()> {
    run::build_images()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut emulator = RunEmulator::spawn(emulator_exe)?;
    let pid = emulator.child.id();
    let measured = runtime.block_on(measure(&emulator, plan));
    runtime.block_on(run::delete_all(emulator.addr));
    let stopped = emulator.stop();
    drop(emulator);
    let left = run::leftovers(pid)?;
    stopped?;
    let figures = measured?;
    report(plan, &figures, left);
    Ok(())
}

#[derive(Debug)]
struct Figures {
    mint: Millis,
    first_verified: Millis,
    public: LoadResult,
    private: LoadResult,
}

async fn measure(emulator: &RunEmulator, plan: &LoadPlan) -> Result<Figures> {
    let public = deploy(emulator.addr, "bench-public", "allUsers").await?;
    let private = deploy(
        emulator.addr,
        "bench-private",
        &format!("serviceAccount:{CALLER}"),
    )
    .await?;
    let audience = format!("http://{private}");

    let mut mint = Vec::with_capacity(MINTS);
    let mut first_verified = Vec::with_capacity(MINTS);
    let mut token = String::new();
    for _ in 0..MINTS {
        let started = Instant::now();
        token = generate_id_token(emulator.addr, &audience).await?;
        mint.push(started.elapsed());
        let authorization = format!("Bearer {token}");
        let started = Instant::now();
        let answer = super::connect(private).await?;
        let mut sender = answer;
        let answer = super::send(
            &mut sender,
            Method::GET,
            "/healthz",
            "127.0.0.1",
            Some(&authorization),
            Bytes::new(),
        )
        .await?;
        first_verified.push(started.elapsed());
        run::expect_ok("call the private service with a fresh token", &answer)?;
    }

    let target = |addr, authorization| LoadTarget {
        addr,
        path: "/healthz".into(),
        expected: Bytes::from_static(b"ok"),
        authorization,
    };
    let public_target = target(public, None);
    let private_target = target(private, Some(format!("Bearer {token}")));
    let round = LoadPlan {
        connections: plan.connections,
        warmup: Duration::from_millis(250),
        duration: plan.duration / LOAD_ROUNDS,
    };
    let pid = emulator.child.id();
    let (mut public_rounds, mut private_rounds) = (Vec::new(), Vec::new());
    for _ in 0..LOAD_ROUNDS {
        public_rounds.push(run_load(&public_target, &round, pid).await?);
        private_rounds.push(run_load(&private_target, &round, pid).await?);
    }
    Ok(Figures {
        mint: Millis::of(&mint),
        first_verified: Millis::of(&first_verified),
        public: run::merge(public_rounds, plan.duration),
        private: run::merge(private_rounds, plan.duration),
    })
}

/// Deploys a one-container service whose invoker is `member`; returns its URL's address once
/// it answers 200 (to an anonymous request if public, else just listening).
async fn deploy(emulator: SocketAddr, name: &str, member: &str) -> Result<SocketAddr> {
    let start = Instant::now();
    let service = json!({
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": PROJECT},
        "spec": {"template": {"spec": {"containers": [{"image": TESTAPP_IMAGE}]}}},
    });
    let created = run::call(
        emulator,
        Method::POST,
        &run::services_path(),
        RUN_HOST,
        service.to_string(),
    )
    .await?;
    run::expect_ok("create a service", &created)?;
    let policy = json!({"policy": {"bindings": [
        {"role": "roles/run.invoker", "members": [member]}
    ]}});
    let iam = run::call(
        emulator,
        Method::POST,
        &format!("/v1/projects/{PROJECT}/locations/{REGION}/services/{name}:setIamPolicy"),
        RUN_HOST,
        policy.to_string(),
    )
    .await?;
    run::expect_ok("set the service's invokers", &iam)?;
    let path = format!("{}/{name}", run::services_path());
    loop {
        let answer = run::call(emulator, Method::GET, &path, RUN_HOST, String::new()).await?;
        run::expect_ok("read the service", &answer)?;
        let service: Value = serde_json::from_slice(&answer.body)?;
        let ready = service
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            });
        if let (true, Some(url)) = (
            ready,
            service.pointer("/status/url").and_then(Value::as_str),
        ) {
            let addr: SocketAddr = url.trim_start_matches("http://").parse()?;
            if member == "allUsers" {
                run::wait_for_200(addr, "/healthz", start).await?;
            }
            return Ok(addr);
        }
        if start.elapsed() > DEPLOY_DEADLINE {
            return Err(format!("{name} was not ready after {DEPLOY_DEADLINE:?}").into());
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

async fn generate_id_token(emulator: SocketAddr, audience: &str) -> Result<String> {
    let answer = run::call(
        emulator,
        Method::POST,
        &format!("/v1/projects/-/serviceAccounts/{CALLER}:generateIdToken"),
        "127.0.0.1",
        json!({"audience": audience}).to_string(),
    )
    .await?;
    run::expect_ok("generate an ID token", &answer)?;
    let body: Value = serde_json::from_slice(&answer.body)?;
    body["token"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| "generateIdToken answered no token".into())
}

fn report(plan: &LoadPlan, f: &Figures, left: usize) {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    println!(
        "cloudrun-emulator bench, identity: one-container services of {TESTAPP_IMAGE}, \
         {} connections, {LOAD_ROUNDS} alternating rounds, {:?} measured per service, {cpus} CPUs\n",
        plan.connections, plan.duration
    );
    println!("{:<44}{:>12}{:>12}", "", "min", "median");
    println!(
        "{:<44}{:>9.2} ms{:>9.2} ms",
        "mint an ID token (generateIdToken)", f.mint.min, f.mint.median
    );
    println!(
        "{:<44}{:>9.2} ms{:>9.2} ms\n",
        "first request with a fresh token (new conn)",
        f.first_verified.min,
        f.first_verified.median
    );
    println!(
        "{:<44}{:>12}{:>12}",
        "through the ingress", "public", "private"
    );
    println!(
        "{:<44}{:>12.0}{:>12.0}",
        "requests/s", f.public.rps, f.private.rps
    );
    for (label, q) in [("p50", 0.50), ("p99", 0.99)] {
        println!(
            "{:<44}{:>9.2} ms{:>9.2} ms",
            format!("latency {label}"),
            f.public.quantile_ms(q),
            f.private.quantile_ms(q)
        );
    }
    println!(
        "{:<44}{:>12.2}{:>12.2}",
        "CPU: emulator (cores)", f.public.cores.server, f.private.cores.server
    );
    // The backend (Python) bounds requests/s; the emulator's CPU time per request shows what
    // the token check itself costs.
    let per_request = |r: &LoadResult| r.cores.server / r.rps * 1e6;
    println!(
        "{:<44}{:>9.0} us{:>9.0} us",
        "emulator CPU per request",
        per_request(&f.public),
        per_request(&f.private)
    );
    println!("containers left after shutdown: {left}");
    let share = f.private.rps / f.public.rps;
    let verdict = if share >= TARGET_SHARE {
        "PASS"
    } else {
        "MISS"
    };
    println!(
        "\ntargets (identity):\n  {verdict}  private at most {:.0}% slower than public     got {:.1}% {}",
        (1.0 - TARGET_SHARE) * 100.0,
        (1.0 - share).abs() * 100.0,
        if share >= 1.0 { "faster" } else { "slower" }
    );
}
