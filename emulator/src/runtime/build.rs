//! Building an image from a local directory (Compose's `build:`), as `docker build` would: the
//! context is sent as a tar archive, the result tagged and labelled as the emulator's.

use std::collections::HashMap;
use std::path::PathBuf;

use bollard::Docker;
use bollard::query_parameters::BuildImageOptionsBuilder;
use futures_util::StreamExt;

use super::RuntimeError;
use super::labels::LABEL_MANAGED;

/// An image to build from a directory on this machine.
#[derive(Debug, Clone, Default)]
pub struct ImageBuild {
    /// The build context directory.
    pub context: PathBuf,
    /// The Dockerfile's path inside the context (`Dockerfile` when `None`).
    pub dockerfile: Option<String>,
    /// `--build-arg` values.
    pub args: Vec<(String, String)>,
    /// The stage to build (`--target`).
    pub target: Option<String>,
    /// The tag the image gets.
    pub tag: String,
}

/// How many lines of builder output a failure quotes.
const QUOTED_LINES: usize = 15;

/// Builds `request` and returns once the image is tagged; a failure quotes the builder's output.
pub(crate) async fn build(docker: &Docker, request: &ImageBuild) -> Result<(), RuntimeError> {
    let failed = |message: String| RuntimeError::BuildFailed {
        image: request.tag.clone(),
        message,
    };
    let context = request.context.clone();
    let archive = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
        let mut tar = tar::Builder::new(Vec::new());
        tar.follow_symlinks(false);
        tar.append_dir_all(".", &context)?;
        tar.into_inner()
    })
    .await
    .map_err(|e| failed(format!("packing the context failed: {e}")))?
    .map_err(|e| {
        failed(format!(
            "cannot read the build context {}: {e}",
            request.context.display()
        ))
    })?;
    let args: HashMap<String, String> = request.args.iter().cloned().collect();
    let labels = HashMap::from([(LABEL_MANAGED.to_string(), "true".to_string())]);
    let mut options = BuildImageOptionsBuilder::new()
        .dockerfile(request.dockerfile.as_deref().unwrap_or("Dockerfile"))
        .t(&request.tag)
        .rm(true)
        .forcerm(true)
        .buildargs(&args)
        .labels(&labels);
    if let Some(target) = &request.target {
        options = options.target(target);
    }
    let mut output: Vec<String> = Vec::new();
    let mut progress = docker.build_image(
        options.build(),
        None,
        Some(bollard::body_full(archive.into())),
    );
    while let Some(item) = progress.next().await {
        let info = match item {
            Ok(info) => info,
            Err(bollard::errors::Error::DockerStreamError { error }) => {
                return Err(failed(quote(&output, &error)));
            }
            Err(e) => return Err(RuntimeError::docker(format!("build {}", request.tag))(e)),
        };
        if let Some(detail) = info.error_detail {
            let message = detail.message.unwrap_or_else(|| "the build failed".into());
            return Err(failed(quote(&output, &message)));
        }
        if let Some(text) = info.stream {
            output.extend(
                text.lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(str::to_string),
            );
            if output.len() > QUOTED_LINES {
                output.drain(..output.len() - QUOTED_LINES);
            }
        }
    }
    Ok(())
}

fn quote(output: &[String], error: &str) -> String {
    let mut message = error.trim().to_string();
    for line in output {
        message.push_str("\n  ");
        message.push_str(line);
    }
    message
}
