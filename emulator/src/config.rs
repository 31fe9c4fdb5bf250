//! The command line, and the settings that point gcloud and client libraries at the emulator.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Where the emulator listens unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8089";

/// gcloud's `api_endpoint_overrides/<api>` properties for every API the emulator answers.
pub const ENDPOINT_OVERRIDES: &[&str] = &[
    "artifactregistry",
    "compute",
    "logging",
    "secretmanager",
    "serviceusage",
    "sql",
];

/// gcloud's Cloud Run endpoint: gcloud prefixes the host with the region (`us-central1-run.emulator`)
/// and sends every request through the emulator as its HTTP proxy, so the name never resolves.
pub const RUN_ENDPOINT: &str = "http://run.emulator/";

/// How much IAM the emulator enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IamMode {
    /// Quick starts just work: no access checks.
    Permissive,
    /// Deploy-time checks as on Google Cloud (Secret Manager access of revisions).
    Strict,
}

/// Google Cloud Run, Secret Manager and Cloud SQL on your machine, offline.
#[derive(Debug, Parser)]
#[command(name = "cloudrun-emulator", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Config,
}

/// What to do; serving is the default.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the APIs (the default).
    Serve,
    /// Print `export` lines that point gcloud and client libraries at the emulator.
    Env,
    /// Print what a Cloud Run service's containers wrote, oldest first (asks a running emulator).
    Logs(LogsArgs),
    /// Run a Docker Compose file as one Cloud Run multi-container service (asks a running
    /// emulator).
    Compose(ComposeArgs),
    /// Print an ID token for an account, signed as the emulator signs them (asks a running
    /// emulator), like `gcloud auth print-identity-token`.
    PrintIdentityToken(TokenArgs),
    /// Run scenario files (YAML stacks and steps), each on an emulator of its own; runs the
    /// `cloudrun-emulator-test` program of the harness crate.
    Test(TestArgs),
}

/// `cloudrun-emulator compose up|down`.
#[derive(Debug, Clone, Args)]
pub struct ComposeArgs {
    #[command(subcommand)]
    pub action: ComposeAction,
}

/// What `compose` does.
#[derive(Debug, Clone, Subcommand)]
pub enum ComposeAction {
    /// Build, deploy and wait until the service serves; prints its URL.
    Up(ComposeUpArgs),
    /// Delete the service and the secrets `up` stored for it.
    Down(ComposeTarget),
}

/// Which Compose file, as which service, on which emulator.
#[derive(Debug, Clone, Args)]
pub struct ComposeTarget {
    /// The Compose file (default: compose.yaml, compose.yml, docker-compose.yaml or
    /// docker-compose.yml in the current directory).
    pub file: Option<PathBuf>,
    /// The Cloud Run service name (default: the Compose project name).
    #[arg(long)]
    pub service: Option<String>,
    /// The emulator to deploy to (defaults to $CLOUDRUN_EMULATOR_URL, then --listen).
    #[arg(long, env = "CLOUDRUN_EMULATOR_URL")]
    pub emulator: Option<String>,
    /// The Cloud Run region.
    #[arg(long, env = "CLOUDSDK_RUN_REGION", default_value = "us-central1")]
    pub region: String,
}

/// How `compose up` deploys.
#[derive(Debug, Clone, Args)]
pub struct ComposeUpArgs {
    #[command(flatten)]
    pub target: ComposeTarget,
    /// Build every image with a `build:` section, even those already present.
    #[arg(long, conflicts_with = "no_build")]
    pub build: bool,
    /// Build nothing: every image must already exist.
    #[arg(long)]
    pub no_build: bool,
    /// Keep the service private (by default anyone may invoke it, as with
    /// `--allow-unauthenticated`).
    #[arg(long)]
    pub no_allow_unauthenticated: bool,
    /// Seconds to wait for the revision to become ready.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
    /// Only check and translate the file: print the Knative Service that would be deployed.
    #[arg(long)]
    pub dry_run: bool,
}

/// Whose token `cloudrun-emulator print-identity-token` prints, and for whom.
#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// The account: a service account's email (`serviceAccount:` member) or a user's (`user:`).
    pub account: String,
    /// The token's audience: the URL of the service to call.
    #[arg(long)]
    pub audiences: String,
    /// The emulator to ask (defaults to $CLOUDRUN_EMULATOR_URL, then --listen).
    #[arg(long, env = "CLOUDRUN_EMULATOR_URL")]
    pub emulator: Option<String>,
}

/// The scenario files `cloudrun-emulator test` runs.
#[derive(Debug, Clone, Args)]
pub struct TestArgs {
    /// Scenario files.
    #[arg(required = true)]
    pub files: Vec<std::path::PathBuf>,
    /// Also write a JUnit XML report to this path.
    #[arg(long)]
    pub junit: Option<std::path::PathBuf>,
}

/// Which logs `cloudrun-emulator logs` prints.
#[derive(Debug, Clone, Args)]
pub struct LogsArgs {
    /// The Cloud Run service.
    pub service: String,
    /// Only this revision.
    #[arg(long)]
    pub revision: Option<String>,
    /// At most this many lines (the newest).
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    /// The emulator to ask (defaults to $CLOUDRUN_EMULATOR_URL, then --listen).
    #[arg(long, env = "CLOUDRUN_EMULATOR_URL")]
    pub emulator: Option<String>,
}

/// How the emulator runs.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address and port to serve on.
    #[arg(long, env = "CLOUDRUN_EMULATOR_LISTEN", default_value = DEFAULT_LISTEN, global = true)]
    pub listen: SocketAddr,
    /// Persist state in this directory (crash-safe); without it state lives in memory.
    #[arg(long, env = "CLOUDRUN_EMULATOR_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// `strict`: a revision may read only the secrets its service account holds
    /// `roles/secretmanager.secretAccessor` on, as on Google Cloud. `permissive` skips the check.
    #[arg(
        long,
        value_enum,
        env = "CLOUDRUN_EMULATOR_IAM",
        default_value = "permissive",
        global = true
    )]
    pub iam: IamMode,
    /// Project that `env` sets as gcloud's default project.
    #[arg(
        long,
        env = "CLOUDRUN_EMULATOR_PROJECT",
        default_value = "demo-project",
        global = true
    )]
    pub project: String,
}

impl Config {
    /// The environment a shell needs so that gcloud and clients talk to an emulator at `addr`.
    pub fn client_env(&self, addr: SocketAddr) -> Vec<(String, String)> {
        let mut env = vec![
            (
                "CLOUDRUN_EMULATOR_URL".to_string(),
                format!("http://{addr}"),
            ),
            (
                "CLOUDRUN_EMULATOR_PROJECT".to_string(),
                self.project.clone(),
            ),
        ];
        env.extend(gcloud_env(addr, &self.project));
        env
    }

    /// `client_env` as shell `export` lines, for `eval "$(cloudrun-emulator env)"`.
    pub fn export_lines(&self, addr: SocketAddr) -> String {
        self.client_env(addr)
            .into_iter()
            .map(|(key, value)| format!("export {key}={value}\n"))
            .collect()
    }

    /// The same settings as `gcloud config set` commands, for a named configuration.
    pub fn gcloud_commands(&self, addr: SocketAddr) -> String {
        let url = format!("http://{addr}/");
        let mut out = format!(
            "gcloud config set auth/disable_credentials true\ngcloud config set project {}\n",
            self.project
        );
        for api in ENDPOINT_OVERRIDES {
            out.push_str(&format!(
                "gcloud config set api_endpoint_overrides/{api} {url}\n"
            ));
        }
        out.push_str(&format!(
            "gcloud config set api_endpoint_overrides/run {RUN_ENDPOINT}\n\
             gcloud config set proxy/type http\n\
             gcloud config set proxy/address {}\n\
             gcloud config set proxy/port {}\n",
            addr.ip(),
            addr.port()
        ));
        out
    }
}

/// gcloud's settings, as `CLOUDSDK_*` variables, for an emulator at `addr`.
pub fn gcloud_env(addr: SocketAddr, project: &str) -> Vec<(String, String)> {
    let url = format!("http://{addr}/");
    let mut env: Vec<(String, String)> = vec![
        ("CLOUDSDK_CORE_PROJECT".into(), project.to_string()),
        ("CLOUDSDK_AUTH_DISABLE_CREDENTIALS".into(), "true".into()),
    ];
    env.extend(ENDPOINT_OVERRIDES.iter().map(|api| {
        (
            format!("CLOUDSDK_API_ENDPOINT_OVERRIDES_{}", api.to_uppercase()),
            url.clone(),
        )
    }));
    env.extend([
        (
            "CLOUDSDK_API_ENDPOINT_OVERRIDES_RUN".into(),
            RUN_ENDPOINT.into(),
        ),
        ("CLOUDSDK_PROXY_TYPE".into(), "http".into()),
        ("CLOUDSDK_PROXY_ADDRESS".into(), addr.ip().to_string()),
        ("CLOUDSDK_PROXY_PORT".into(), addr.port().to_string()),
    ]);
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_points_every_api_at_the_emulator() {
        let cli = Cli::parse_from(["cloudrun-emulator", "env", "--listen", "127.0.0.1:9999"]);
        let lines = cli.config.export_lines(cli.config.listen);
        assert!(lines.contains(
            "export CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER=http://127.0.0.1:9999/\n"
        ));
        assert!(lines.contains("export CLOUDSDK_AUTH_DISABLE_CREDENTIALS=true\n"));
        assert!(matches!(cli.command, Some(Command::Env)));
    }
}
