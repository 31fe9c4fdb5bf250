//! Log entries of Cloud Run revisions, kept in memory for `gcloud logging read`.

/// The log entries the emulator keeps.
#[derive(Debug, Default)]
pub struct LogStore {}
