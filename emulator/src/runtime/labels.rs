//! The labels that mark every Docker object the runtime creates, and what an owner label says
//! about the process that set it.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Set to `true` on every object the emulator creates (images built by `docker/` carry it too).
pub const LABEL_MANAGED: &str = "cloudrun-emulator";
/// Names the emulator process that created the object: `<prefix>-<pid>-<random>`.
pub const LABEL_OWNER: &str = "cloudrun-emulator.owner";
/// Names the pod the object belongs to.
pub const LABEL_POD: &str = "cloudrun-emulator.pod";
/// What the object is: `sandbox`, `pod-member`, `volume`, `database` (a Cloud SQL server) or
/// `database-volume` (its data, kept across emulator runs).
pub const LABEL_KIND: &str = "cloudrun-emulator.kind";
/// On pod members: the container name from the spec.
pub const LABEL_CONTAINER: &str = "cloudrun-emulator.container";

/// The kinds of object a pod is made of; only these are ever reaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Sandbox,
    PodMember,
    Volume,
    Database,
}

impl Kind {
    pub(crate) const ALL: [Kind; 4] =
        [Kind::Sandbox, Kind::PodMember, Kind::Volume, Kind::Database];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Sandbox => "sandbox",
            Kind::PodMember => "pod-member",
            Kind::Volume => "volume",
            Kind::Database => "database",
        }
    }
}

/// The full label set of one object: the pod's extra labels, then ours (which win).
pub(crate) fn object_labels(
    owner: &str,
    pod: &str,
    kind: Kind,
    extra: &BTreeMap<String, String>,
) -> HashMap<String, String> {
    let mut labels: HashMap<String, String> =
        extra.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    labels.insert(LABEL_MANAGED.into(), "true".into());
    labels.insert(LABEL_OWNER.into(), owner.into());
    labels.insert(LABEL_POD.into(), pod.into());
    labels.insert(LABEL_KIND.into(), kind.as_str().into());
    labels
}

/// A fresh owner label value for this process: `<prefix>-<pid>-<6 random [a-z0-9]>`.
pub fn new_owner(prefix: &str) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let suffix: String = (0..6)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect();
    format!("{prefix}-{}-{suffix}", std::process::id())
}

/// The pid inside an owner label (`<prefix>-<pid>-<random>`), if it has one.
pub(crate) fn owner_pid(owner: &str) -> Option<u32> {
    let mut parts = owner.rsplit('-');
    parts.next()?;
    parts.next()?.parse().ok()
}

/// Whether the process named by an owner label may still be running. Owners without a pid are
/// treated as alive: never remove what we cannot prove is abandoned.
pub(crate) fn owner_alive(owner: &str) -> bool {
    owner_pid(owner).is_none_or(|pid| Path::new(&format!("/proc/{pid}")).exists())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_pid_is_the_second_to_last_part() {
        assert_eq!(owner_pid("emulator-1234-ab12cd"), Some(1234));
        assert_eq!(owner_pid("test-run-77-x"), Some(77));
        assert_eq!(owner_pid("emulator"), None);
        assert_eq!(owner_pid("emulator-abc-def"), None);
    }

    #[test]
    fn new_owner_names_this_process() {
        let owner = new_owner("emulator");
        assert_eq!(owner_pid(&owner), Some(std::process::id()));
        assert!(owner_alive(&owner));
    }
}
