//! Container output: every line of every container, followed from its start and handed to the
//! caller's [`LogSink`] with the pod and container it came from.

use std::sync::Arc;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptionsBuilder;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use tokio::task::JoinHandle;

/// Which stream a line was written to (Cloud Run logs them as `stdout` and `stderr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    Stdout,
    Stderr,
}

/// One line a container wrote, with Docker's timestamp.
#[derive(Debug, Clone)]
pub struct LogLine {
    pub pod: String,
    pub container: String,
    pub stream: LogStream,
    pub time: DateTime<Utc>,
    pub text: String,
}

/// Receives every log line; called from runtime tasks, so it must be quick and never block.
pub type LogSink = Arc<dyn Fn(LogLine) + Send + Sync>;

/// Follows a started container's output until the container is gone, feeding `sink`.
pub(crate) fn follow(
    docker: Docker,
    sink: LogSink,
    pod: String,
    container: String,
    id: String,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let options = LogsOptionsBuilder::new()
            .follow(true)
            .stdout(true)
            .stderr(true)
            .timestamps(true)
            .build();
        let mut output = docker.logs(&id, Some(options));
        while let Some(item) = output.next().await {
            let (stream, message) = match item {
                Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => {
                    (LogStream::Stdout, message)
                }
                Ok(LogOutput::StdErr { message }) => (LogStream::Stderr, message),
                Ok(LogOutput::StdIn { .. }) => continue,
                Err(error) => {
                    tracing::debug!(pod, container, %error, "log stream ended");
                    break;
                }
            };
            let (time, text) = split_timestamp(&String::from_utf8_lossy(&message));
            sink(LogLine {
                pod: pod.clone(),
                container: container.clone(),
                stream,
                time,
                text,
            });
        }
    })
}

/// The last `lines` lines a container wrote (stdout and stderr), without timestamps.
pub(crate) async fn tail(docker: &Docker, id: &str, lines: usize) -> Vec<String> {
    let options = LogsOptionsBuilder::new()
        .stdout(true)
        .stderr(true)
        .tail(&lines.to_string())
        .build();
    let mut output = docker.logs(id, Some(options));
    let mut tail = Vec::new();
    while let Some(Ok(item)) = output.next().await {
        let text = String::from_utf8_lossy(&item.into_bytes()).into_owned();
        tail.extend(text.lines().map(str::to_owned));
    }
    let excess = tail.len().saturating_sub(lines);
    tail.drain(..excess);
    tail
}

/// Splits Docker's `2024-01-02T03:04:05.123456789Z text\n` into time and text; a line without
/// a parsable timestamp is stamped now.
fn split_timestamp(frame: &str) -> (DateTime<Utc>, String) {
    let frame = frame.strip_suffix('\n').unwrap_or(frame);
    let frame = frame.strip_suffix('\r').unwrap_or(frame);
    if let Some((stamp, text)) = frame.split_once(' ')
        && let Ok(time) = DateTime::parse_from_rfc3339(stamp)
    {
        return (time.with_timezone(&Utc), text.to_string());
    }
    (Utc::now(), frame.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_docker_timestamps() {
        let (time, text) = split_timestamp("2024-01-02T03:04:05.123456789Z hello world\n");
        assert_eq!(text, "hello world");
        assert_eq!(time.to_rfc3339(), "2024-01-02T03:04:05.123456789+00:00");
        let (_, text) = split_timestamp("no stamp here");
        assert_eq!(text, "no stamp here");
    }
}
