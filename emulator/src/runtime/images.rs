//! Image resolution: a reference names the local image of exactly that name; a missing one is
//! pulled once, briefly, and otherwise reported as Cloud Run reports it.

use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::CreateImageOptionsBuilder;
use futures_util::StreamExt;

use super::RuntimeError;

/// How long one pull may take; offline, a pull fails well within it.
const PULL_TIMEOUT: Duration = Duration::from_secs(20);

/// Whether the engine holds an image under this exact reference.
pub(crate) async fn is_present(docker: &Docker, reference: &str) -> Result<bool, RuntimeError> {
    match docker.inspect_image(reference).await {
        Ok(_) => Ok(true),
        // 400: the reference itself is malformed, so no image can have it.
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 400 | 404,
            ..
        }) => Ok(false),
        Err(e) => Err(RuntimeError::docker(format!("inspect image {reference}"))(
            e,
        )),
    }
}

/// Makes sure the image is local, pulling it once if it is not; `ImageNotFound` otherwise.
pub(crate) async fn ensure(docker: &Docker, reference: &str) -> Result<(), RuntimeError> {
    if is_present(docker, reference).await? {
        return Ok(());
    }
    pull(docker, reference).await;
    if is_present(docker, reference).await? {
        Ok(())
    } else {
        Err(RuntimeError::ImageNotFound {
            image: reference.to_string(),
        })
    }
}

/// One pull attempt within [`PULL_TIMEOUT`]; failures are only logged, the caller re-inspects.
async fn pull(docker: &Docker, reference: &str) {
    let options = CreateImageOptionsBuilder::new()
        .from_image(reference)
        .build();
    let attempt = async {
        let mut progress = docker.create_image(Some(options), None, None);
        while let Some(item) = progress.next().await {
            item?;
        }
        Ok::<(), bollard::errors::Error>(())
    };
    match tokio::time::timeout(PULL_TIMEOUT, attempt).await {
        Ok(Ok(())) => tracing::info!(image = reference, "pulled image"),
        Ok(Err(error)) => tracing::debug!(image = reference, %error, "image pull failed"),
        Err(_) => tracing::debug!(image = reference, "image pull timed out"),
    }
}
