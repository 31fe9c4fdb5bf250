//! `cloudrun-emulator print-identity-token ACCOUNT --audiences URL`: a client of a running
//! emulator's IAM Credentials API that prints an ID token for ACCOUNT (a service account or a
//! user), as `gcloud auth print-identity-token` prints one for an account on Google Cloud.

use serde_json::json;

use crate::cli_client::{emulator_base, post_json};
use crate::config::{Config, TokenArgs};

/// Asks the emulator for the token; returns it with a newline.
pub async fn fetch(config: &Config, args: &TokenArgs) -> Result<String, String> {
    let base = emulator_base(args.emulator.as_deref(), &config.listen.to_string());
    let path = format!(
        "/v1/projects/-/serviceAccounts/{}:generateIdToken",
        args.account
    );
    let body = json!({ "audience": args.audiences, "includeEmail": true });
    let answer = post_json(&base, &path, &body).await?;
    answer["token"]
        .as_str()
        .map(|token| format!("{token}\n"))
        .ok_or_else(|| "the emulator answered without a token".to_string())
}
