//! Watching a pod's containers: exits (during startup and after) and liveness probes, turned
//! into the pod's [`PodStatus`](super::PodStatus).

use bollard::Docker;
use bollard::query_parameters::WaitContainerOptionsBuilder;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// A container of the pod stopped running.
#[derive(Debug, Clone)]
pub(crate) struct Exit {
    pub container: String,
    /// The exit code, when Docker reported one.
    pub code: Option<i64>,
    /// What Docker said when it could not report a code.
    pub detail: String,
}

impl Exit {
    /// A sentence for the pod's failure reason.
    pub(crate) fn reason(&self) -> String {
        match self.code {
            Some(code) => format!("Container \"{}\" exited with code {code}.", self.container),
            None => format!(
                "Container \"{}\" stopped unexpectedly: {}",
                self.container, self.detail
            ),
        }
    }
}

/// Waits for the container to stop running and reports it on `exits`.
pub(crate) fn watch_exit(
    docker: Docker,
    container: String,
    id: String,
    exits: mpsc::UnboundedSender<Exit>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let options = WaitContainerOptionsBuilder::new()
            .condition("not-running")
            .build();
        let mut wait = docker.wait_container(&id, Some(options));
        let exit = match wait.next().await {
            Some(Ok(response)) => Exit {
                container,
                code: Some(response.status_code),
                detail: String::new(),
            },
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, error })) => Exit {
                container,
                code: Some(code),
                detail: error,
            },
            Some(Err(error)) => Exit {
                container,
                code: None,
                detail: error.to_string(),
            },
            None => Exit {
                container,
                code: None,
                detail: "Docker ended the wait without a status".into(),
            },
        };
        // The receiver is gone once the pod is being stopped or failed to start: nothing to say.
        let _ = exits.send(exit);
    })
}
