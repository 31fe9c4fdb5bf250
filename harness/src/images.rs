//! The images this repository's Dockerfiles build, made on demand and reused while unchanged.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use crate::error::HarnessError;

/// Names already built by this process.
static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// `docker/build-images.sh` of this repository.
fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("docker")
        .join("build-images.sh")
}

/// Builds `docker/images/<name>` as `cloudrun-emulator/<name>:1` unless it is up to date
/// (the script skips images whose inputs did not change), once per test process.
pub fn ensure_images(names: &[&str]) -> Result<(), HarnessError> {
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let missing: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| !built.iter().any(|b| b == n))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let output = Command::new("bash")
        .arg(script())
        .args(&missing)
        .output()
        .map_err(HarnessError::io("running docker/build-images.sh"))?;
    if !output.status.success() {
        return Err(HarnessError::Images {
            names: missing.join(" "),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        });
    }
    built.extend(missing.iter().map(|n| n.to_string()));
    Ok(())
}

/// The label holding the hash of an image's build inputs, as `docker/build-images.sh` sets it.
const LABEL_HASH: &str = "cloudrun-emulator.inputs-hash";

/// Builds the Dockerfile directory `dir` as `tag` unless an image of that tag was built from
/// the same files (their hash is kept in a label), so a second run costs one `docker inspect`.
/// The base `debian:bookworm-slim` is made offline first when missing.
pub fn build_image(tag: &str, dir: impl AsRef<Path>) -> Result<(), HarnessError> {
    let dir = dir.as_ref();
    let failed = |output: String| HarnessError::Images {
        names: tag.to_string(),
        output,
    };
    ensure_images(&["sandbox"])?;
    let hash = inputs_hash(dir).map_err(HarnessError::io(format!("reading {}", dir.display())))?;
    let current = Command::new("docker")
        .args(["image", "inspect", "--format"])
        .arg(format!("{{{{ index .Config.Labels \"{LABEL_HASH}\" }}}}"))
        .arg(tag)
        .output()
        .map_err(HarnessError::io("running docker image inspect"))?;
    if current.status.success() && String::from_utf8_lossy(&current.stdout).trim() == hash {
        return Ok(());
    }
    let output = Command::new("docker")
        .args([
            "build",
            "--force-rm",
            "--label",
            "cloudrun-emulator=true",
            "--label",
        ])
        .arg(format!("{LABEL_HASH}={hash}"))
        .args(["-t", tag])
        .arg(dir)
        .output()
        .map_err(HarnessError::io("running docker build"))?;
    if !output.status.success() {
        return Err(failed(format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    Ok(())
}

/// sha256 over every file of `dir` (relative path, mode and content), in path order.
fn inputs_hash(dir: &Path) -> std::io::Result<String> {
    use sha2::Digest;
    use std::os::unix::fs::PermissionsExt;
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                pending.push(entry.path());
            } else {
                files.push(entry.path());
            }
        }
    }
    files.sort();
    let mut hasher = sha2::Sha256::new();
    for file in files {
        let relative = file.strip_prefix(dir).unwrap_or(&file);
        let mode = std::fs::metadata(&file)?.permissions().mode();
        hasher.update(format!("{} {:o}\n", relative.display(), mode).as_bytes());
        hasher.update(std::fs::read(&file)?);
    }
    Ok(format!("sha256:{}", hex::encode(hasher.finalize())))
}
