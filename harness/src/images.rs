//! The images this repository's Dockerfiles build, made on demand and reused while unchanged.

use std::path::PathBuf;
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
