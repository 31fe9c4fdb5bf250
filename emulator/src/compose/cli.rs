//! `cloudrun-emulator compose up|down` as a user runs it: warnings and progress on stderr, the
//! service URL alone on stdout.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use super::{BuildPolicy, ComposeError, Target};
use crate::config::{ComposeAction, ComposeArgs, ComposeTarget, Config};

/// Runs the subcommand and reports the outcome as an exit code.
pub async fn run(config: &Config, args: ComposeArgs) -> ExitCode {
    let outcome = match args.action {
        ComposeAction::Up(up) => {
            let policy = if up.build {
                BuildPolicy::Always
            } else if up.no_build {
                BuildPolicy::Never
            } else {
                BuildPolicy::Missing
            };
            if up.dry_run {
                dry_run(&up.target)
            } else {
                run_up(
                    config,
                    &up.target,
                    policy,
                    !up.no_allow_unauthenticated,
                    Duration::from_secs(up.timeout),
                )
                .await
            }
        }
        ComposeAction::Down(target) => run_down(config, &target).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ERROR: {error}");
            ExitCode::FAILURE
        }
    }
}

fn target(config: &Config, args: &ComposeTarget) -> Target {
    Target {
        emulator: args
            .emulator
            .clone()
            .unwrap_or_else(|| format!("http://{}", config.listen)),
        project: config.project.clone(),
        region: args.region.clone(),
    }
}

fn plan(args: &ComposeTarget) -> Result<super::Plan, ComposeError> {
    let dir = std::env::current_dir().map_err(|source| ComposeError::Read {
        path: ".".into(),
        source,
    })?;
    let file = super::find_file(args.file.as_deref(), &dir)?;
    let env: HashMap<String, String> = std::env::vars().collect();
    super::plan(&file, args.service.as_deref(), &env)
}

/// Prints the Knative Service the file translates to (stdout) and what `up` would build and
/// store (stderr), without deploying anything.
fn dry_run(args: &ComposeTarget) -> Result<(), ComposeError> {
    let plan = plan(args)?;
    for warning in &plan.warnings {
        eprintln!("WARNING: {warning}");
    }
    for (service, tag, build) in &plan.builds {
        eprintln!(
            "Would build [{tag}] for service [{service}] from {}",
            build.context.display()
        );
    }
    for (id, _) in &plan.secrets {
        eprintln!("Would store secret [{id}]");
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&plan.knative).unwrap_or_default()
    );
    Ok(())
}

async fn run_up(
    config: &Config,
    args: &ComposeTarget,
    policy: BuildPolicy,
    public: bool,
    timeout: Duration,
) -> Result<(), ComposeError> {
    let started = Instant::now();
    let plan = plan(args)?;
    for warning in &plan.warnings {
        eprintln!("WARNING: {warning}");
    }
    let target = target(config, args);
    eprintln!(
        "Deploying Compose project as Cloud Run service [{}] in project [{}] region [{}]...",
        plan.service, target.project, target.region
    );
    let deployment = super::deploy(&plan, &target, policy, public, timeout).await?;
    eprintln!(
        "Service [{}] revision [{}] is serving 100 percent of traffic ({:.1}s).",
        deployment.service,
        deployment.revision,
        started.elapsed().as_secs_f64()
    );
    eprintln!("Service URL: {}", deployment.url);
    println!("{}", deployment.url);
    Ok(())
}

async fn run_down(config: &Config, args: &ComposeTarget) -> Result<(), ComposeError> {
    let target = target(config, args);
    let plan = match (plan(args), &args.service) {
        (Ok(plan), _) => plan,
        (Err(ComposeError::NoFile), Some(service)) => super::Plan {
            service: service.clone(),
            knative: serde_json::Value::Null,
            secrets: Vec::new(),
            builds: Vec::new(),
            warnings: Vec::new(),
        },
        (Err(error), _) => return Err(error),
    };
    if super::down(&plan, &target).await? {
        eprintln!("Deleted service [{}].", plan.service);
    } else {
        eprintln!("Service [{}] did not exist.", plan.service);
    }
    Ok(())
}
