//! Placing files (mounted secrets) into a created container before it starts, as a tar archive
//! extracted at `/`; Docker creates missing parent directories (root, 0755) on the way.

use bollard::Docker;
use bollard::query_parameters::UploadToContainerOptionsBuilder;

use super::{FileSpec, RuntimeError};

/// Writes every file into the (created, not yet started) container, owned by root.
pub(crate) async fn place(
    docker: &Docker,
    container_id: &str,
    files: &[FileSpec],
) -> Result<(), RuntimeError> {
    if files.is_empty() {
        return Ok(());
    }
    let archive = archive(files).map_err(|e| RuntimeError::Docker {
        action: "build the archive of secret files".into(),
        source: e.into(),
    })?;
    docker
        .upload_to_container(
            container_id,
            Some(UploadToContainerOptionsBuilder::new().path("/").build()),
            bollard::body_full(archive.into()),
        )
        .await
        .map_err(RuntimeError::docker("copy secret files into a container"))
}

/// A tar of the files at their paths relative to `/`, with their modes.
fn archive(files: &[FileSpec]) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for file in files {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(file.contents.len() as u64);
        header.set_mode(file.mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(now);
        builder.append_data(
            &mut header,
            file.path.trim_start_matches('/'),
            file.contents.as_slice(),
        )?;
    }
    builder.into_inner()
}
