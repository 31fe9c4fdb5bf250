//! The scenarios benchmark: the web stack end to end, split into its parts.
//!
//! ```sh
//! cargo run --release -p scenarios --bin scenario-bench -- [--runs N] [--only web-stack|echo]
//! ```
//!
//! Each run starts the web stack (images already built: a first, unmeasured run builds them),
//! reads the first 200 of `/api/data`, times one `CREATE DATABASE ... TEMPLATE` on an open
//! connection (the peer), plays eight short tests that each take a fresh database (a copy of
//! the template `app`), query it and read `/api/data`, and tears the stack down. Printed per
//! run and as medians: images (checking they are up to date), Cloud SQL ready (instance,
//! database, user), deploy (until the revision is ready), first 200, teardown, the end-to-end
//! total, and the harness's own share (emulator start, secrets and sequencing: the total less
//! images or Cloud SQL, whichever ran longer, deploy, first 200, the short tests and teardown).
//! Targets: end to end under 10 s, harness share under 10%, a fresh database under 100 ms (the
//! median wait for one; the slowest is printed too, beside the peer, what each test would wait
//! for without the copies made ahead). `--only echo` times the two-container echo stack
//! instead (no Cloud SQL), the floor of what the harness and a deploy cost.

use std::time::{Duration, Instant};

use scenarios::{echo_stack, web_stack};

/// Which stack a run starts.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Which {
    WebStack,
    Echo,
}

/// The parts of one run.
#[derive(Debug, Clone, Copy, Default)]
struct Run {
    images: Duration,
    sql: Duration,
    deploy: Duration,
    first_200: Duration,
    /// The median wait for a fresh database over the short tests.
    fresh_database: Duration,
    /// The longest of those waits.
    fresh_database_max: Duration,
    /// The short tests, waits included.
    tests: Duration,
    /// The `CREATE DATABASE ... TEMPLATE` alone, on a connection already open.
    template_copy: Duration,
    teardown: Duration,
    total: Duration,
}

impl Run {
    fn harness(&self) -> Duration {
        self.total
            .saturating_sub(self.images.max(self.sql))
            .saturating_sub(self.deploy)
            .saturating_sub(self.first_200)
            .saturating_sub(self.tests)
            .saturating_sub(self.template_copy)
            .saturating_sub(self.teardown)
    }
}

async fn one_run(which: Which) -> Result<Run, String> {
    let began = Instant::now();
    let (stack, service, path) = match which {
        Which::WebStack => (web_stack(), "web", "/api/data"),
        Which::Echo => (
            echo_stack("bench-echo", "hello"),
            "bench-echo",
            "/env/GREETING",
        ),
    };
    let stack = stack.start().await.map_err(|e| e.to_string())?;
    let timings = stack.timings();
    let asked = Instant::now();
    let response = stack.get(service, path).await.map_err(|e| e.to_string())?;
    if response.status() != 200 {
        return Err(format!("{path} answered {}", response.status()));
    }
    let first_200 = asked.elapsed();
    let mut template_copy = Duration::ZERO;
    if which == Which::WebStack {
        let client = stack
            .postgres("db", "postgres", "app")
            .await
            .map_err(|e| e.to_string())?;
        let copying = Instant::now();
        client
            .batch_execute("CREATE DATABASE bench_copy TEMPLATE app")
            .await
            .map_err(|e| e.to_string())?;
        template_copy = copying.elapsed();
    }
    let tests_began = Instant::now();
    let mut waits = Vec::new();
    if which == Which::WebStack {
        for _ in 0..SHORT_TESTS {
            waits.push(short_test(&stack).await?);
        }
    }
    let tests = tests_began.elapsed();
    waits.sort();
    let fresh_database = waits.get(waits.len() / 2).copied().unwrap_or_default();
    let fresh_database_max = waits.last().copied().unwrap_or_default();
    let stopping = Instant::now();
    drop(stack);
    let teardown = stopping.elapsed();
    Ok(Run {
        images: timings.images,
        sql: timings.sql,
        deploy: timings.deploy,
        first_200,
        fresh_database,
        fresh_database_max,
        tests,
        template_copy,
        teardown,
        total: began.elapsed(),
    })
}

/// How many short tests each run plays on the web stack.
const SHORT_TESTS: usize = 8;

/// One short test: a fresh database, a query on it, a read of `/api/data`. Returns how long
/// the fresh database took to arrive.
async fn short_test(stack: &harness::RunningStack) -> Result<Duration, String> {
    let asked = Instant::now();
    let name = stack
        .fresh_database("db", "app", "app")
        .await
        .map_err(|e| e.to_string())?;
    let waited = asked.elapsed();
    let client = stack
        .postgres("db", &name, "app")
        .await
        .map_err(|e| e.to_string())?;
    client
        .batch_execute("CREATE TABLE t (n int); INSERT INTO t VALUES (1)")
        .await
        .map_err(|e| e.to_string())?;
    let response = stack
        .get("web", "/api/data")
        .await
        .map_err(|e| e.to_string())?;
    if response.status() != 200 {
        return Err(format!("/api/data answered {}", response.status()));
    }
    Ok(waited)
}

fn ms(d: Duration) -> String {
    let millis = d.as_secs_f64() * 1000.0;
    if millis < 10.0 {
        format!("{millis:.2} ms")
    } else {
        format!("{millis:.0} ms")
    }
}

fn median(runs: &[Run], part: impl Fn(&Run) -> Duration) -> Duration {
    let mut values: Vec<Duration> = runs.iter().map(part).collect();
    values.sort();
    values.get(values.len() / 2).copied().unwrap_or_default()
}

fn verdict(pass: bool) -> &'static str {
    if pass { "PASS" } else { "MISS" }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let mut runs = 3usize;
    let mut which = Which::WebStack;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--runs" => {
                runs = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| *n > 0)
                    .unwrap_or_else(|| {
                        eprintln!("--runs needs a positive number");
                        std::process::exit(2)
                    })
            }
            "--only" => {
                which = match args.next().as_deref() {
                    Some("web-stack") => Which::WebStack,
                    Some("echo") => Which::Echo,
                    _ => {
                        eprintln!("--only takes web-stack or echo");
                        std::process::exit(2)
                    }
                }
            }
            other => {
                eprintln!(
                    "unknown argument {other}; usage: bench [--runs N] [--only web-stack|echo]"
                );
                std::process::exit(2);
            }
        }
    }
    println!("{which:?}: warming up (builds the images if needed)");
    if let Err(error) = one_run(which).await {
        eprintln!("the web stack did not start: {error}");
        std::process::exit(1);
    }
    let mut measured = Vec::new();
    for i in 1..=runs {
        match one_run(which).await {
            Ok(run) => {
                println!(
                    "run {i}: images {}, Cloud SQL ready {}, deploy {}, first 200 {}, {SHORT_TESTS} short tests {}: fresh database {} (slowest {}, copy alone {}), teardown {}, total {} (harness {})",
                    ms(run.images),
                    ms(run.sql),
                    ms(run.deploy),
                    ms(run.first_200),
                    ms(run.tests),
                    ms(run.fresh_database),
                    ms(run.fresh_database_max),
                    ms(run.template_copy),
                    ms(run.teardown),
                    ms(run.total),
                    ms(run.harness()),
                );
                measured.push(run);
            }
            Err(error) => {
                eprintln!("run {i} failed: {error}");
                std::process::exit(1);
            }
        }
    }
    let total = median(&measured, |r| r.total);
    let harness = median(&measured, Run::harness);
    let fresh = median(&measured, |r| r.fresh_database);
    let fresh_max = median(&measured, |r| r.fresh_database_max);
    let copy = median(&measured, |r| r.template_copy);
    println!(
        "median of {runs}: images {}, Cloud SQL ready {}, deploy {}, first 200 {}, teardown {}",
        ms(median(&measured, |r| r.images)),
        ms(median(&measured, |r| r.sql)),
        ms(median(&measured, |r| r.deploy)),
        ms(median(&measured, |r| r.first_200)),
        ms(median(&measured, |r| r.teardown)),
    );
    let share = harness.as_secs_f64() / total.as_secs_f64().max(f64::EPSILON);
    println!(
        "{} end to end {} (target < 10 s)",
        verdict(total < Duration::from_secs(10)),
        ms(total)
    );
    println!(
        "{} harness share {} = {:.1}% (target < 10%)",
        verdict(share < 0.10),
        ms(harness),
        share * 100.0
    );
    if which == Which::WebStack {
        println!(
            "{} fresh database from a template {} (target < 100 ms), slowest {}; peer: the copy alone {} ({:.3}x)",
            verdict(fresh < Duration::from_millis(100)),
            ms(fresh),
            ms(fresh_max),
            ms(copy),
            fresh.as_secs_f64() / copy.as_secs_f64().max(f64::EPSILON)
        );
    }
}
