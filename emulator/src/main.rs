//! `cloudrun-emulator`: serve the APIs, or print the settings that point clients at them.

use std::process::ExitCode;

use clap::Parser;
use emulator::config::{Cli, Command};
use emulator::{AppState, Store};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Some(Command::Env) => {
            print!("{}", cli.config.export_lines(cli.config.listen));
            ExitCode::SUCCESS
        }
        Some(Command::Logs(args)) => match emulator::logs_cli::fetch(&cli.config, &args).await {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("cloudrun-emulator logs: {error}");
                ExitCode::FAILURE
            }
        },
        Some(Command::Compose(args)) => emulator::compose::cli::run(&cli.config, args).await,
        Some(Command::PrintIdentityToken(args)) => {
            match emulator::token_cli::fetch(&cli.config, &args).await {
                Ok(token) => {
                    print!("{token}");
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("cloudrun-emulator print-identity-token: {error}");
                    ExitCode::FAILURE
                }
            }
        }
        Some(Command::Test(args)) => run_scenarios(&args),
        Some(Command::Serve) | None => match serve(cli.config).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                tracing::error!(%error, "the emulator stopped");
                eprintln!("cloudrun-emulator: {error}");
                ExitCode::FAILURE
            }
        },
    }
}

async fn serve(config: emulator::Config) -> std::io::Result<()> {
    let store = match &config.data_dir {
        Some(dir) => Store::open(dir)?,
        None => Store::in_memory(),
    };
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    eprintln!("cloudrun-emulator listening on http://{addr}");
    tracing::info!(
        %addr,
        data_dir = ?config.data_dir,
        persistent = store.is_persistent(),
        "cloudrun-emulator serving"
    );
    eprintln!(
        "\nPoint gcloud at this emulator with:\n\n  eval \"$(cloudrun-emulator env --listen {addr})\"\n\nor in a gcloud configuration:\n\n{}",
        indent(&config.gcloud_commands(addr))
    );
    let strict = config.iam == emulator::config::IamMode::Strict;
    let (reconciler, controller) = emulator::controller::connect(&store, strict).await;
    let served = emulator::run(
        listener,
        AppState::new(store, addr, reconciler),
        shutdown_signal(),
    )
    .await;
    if let Some(controller) = controller {
        controller.shutdown().await;
    }
    served?;
    tracing::info!("cloudrun-emulator stopped");
    Ok(())
}

/// The scenario runner: `cloudrun-emulator-test` beside this program, else on `PATH`.
const SCENARIO_RUNNER: &str = "cloudrun-emulator-test";

/// Hands `test` to the scenario runner (built from the harness crate) and exits as it does.
fn run_scenarios(args: &emulator::config::TestArgs) -> ExitCode {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join(SCENARIO_RUNNER)))
        .filter(|path| path.is_file());
    let program = beside.unwrap_or_else(|| SCENARIO_RUNNER.into());
    let mut command = std::process::Command::new(&program);
    command.args(&args.files);
    if let Some(junit) = &args.junit {
        command.arg("--junit").arg(junit);
    }
    match command.status() {
        Ok(status) => match status.code() {
            Some(0) => ExitCode::SUCCESS,
            Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
            None => ExitCode::FAILURE,
        },
        Err(error) => {
            eprintln!(
                "cloudrun-emulator test: cannot run {}: {error} (build it with `cargo build -p harness`)",
                program.display()
            );
            ExitCode::FAILURE
        }
    }
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(error) => {
                    tracing::warn!(%error, "cannot watch SIGTERM; only SIGINT stops the emulator");
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {},
            _ = terminate.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
    tracing::info!("shutting down");
}
