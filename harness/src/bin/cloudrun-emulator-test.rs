//! `cloudrun-emulator test FILE... [--junit PATH]`: runs scenario files, each on an emulator and
//! stack of its own, with a progress display, a failure report with the containers' logs, and
//! JUnit XML for CI. Exits 1 when a scenario fails, 2 on bad usage.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use harness::{Progress, Scenario, junit_xml};

const USAGE: &str = "usage: cloudrun-emulator test FILE... [--junit PATH]";

#[tokio::main]
async fn main() -> ExitCode {
    let mut files = Vec::new();
    let mut junit: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--junit" => match args.next() {
                Some(path) => junit = Some(path.into()),
                None => return usage("--junit needs a path"),
            },
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            flag if flag.starts_with('-') => return usage(&format!("unknown option {flag}")),
            file => files.push(PathBuf::from(file)),
        }
    }
    if files.is_empty() {
        return usage("no scenario file given");
    }
    let mut scenarios = Vec::new();
    for file in &files {
        match Scenario::load(file) {
            Ok(scenario) => scenarios.push(scenario),
            Err(error) => {
                eprintln!("{error}");
                return ExitCode::from(2);
            }
        }
    }
    let mut reports = Vec::new();
    for scenario in &scenarios {
        println!("▶ {}", scenario.name());
        let report = scenario
            .run(|progress| match progress {
                Progress::Started(step) => {
                    print!("  … {step}");
                    let _ = std::io::stdout().flush();
                }
                Progress::Finished(step) => {
                    let mark = if step.failure.is_some() { "✗" } else { "✓" };
                    println!(
                        "\r  {mark} {} ({:.0} ms)",
                        step.name,
                        step.elapsed.as_secs_f64() * 1000.0
                    );
                }
            })
            .await;
        if let Some(failure) = report.failure_report() {
            println!("\n{failure}");
        }
        println!(
            "{} {} in {:.1} s\n",
            if report.passed() { "PASS" } else { "FAIL" },
            report.name,
            report.elapsed.as_secs_f64()
        );
        reports.push(report);
    }
    let failed = reports.iter().filter(|r| !r.passed()).count();
    println!("{} passed, {failed} failed", reports.len() - failed);
    if let Some(path) = junit
        && let Err(error) = std::fs::write(&path, junit_xml(&reports))
    {
        eprintln!("cannot write {}: {error}", path.display());
        return ExitCode::FAILURE;
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn usage(problem: &str) -> ExitCode {
    eprintln!("cloudrun-emulator test: {problem}\n{USAGE}");
    ExitCode::from(2)
}
