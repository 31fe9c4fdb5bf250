//! Removing Docker objects by label: a failed start, a stopped pod, shutdown, and the reaping of
//! what a crashed emulator left behind all go through [`remove_labelled`].

use std::collections::{BTreeSet, HashMap};

use bollard::Docker;
use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListVolumesOptionsBuilder, RemoveContainerOptionsBuilder,
    RemoveVolumeOptionsBuilder,
};
use futures_util::future::join_all;

use super::RuntimeError;
use super::error::is_gone;
use super::labels::{Kind, LABEL_KIND, LABEL_OWNER, owner_alive};

/// Force-removes every container, then every volume, carrying all of `labels` (`key=value`);
/// returns how many objects were removed. Objects already gone count as removed by someone else.
pub(crate) async fn remove_labelled(
    docker: &Docker,
    labels: &[String],
) -> Result<usize, RuntimeError> {
    let filters = HashMap::from([("label".to_string(), labels.to_vec())]);
    let containers = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::new()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await
        .map_err(RuntimeError::docker("list containers"))?;
    // Members first, sandboxes last: a sandbox owns the network namespace its members joined.
    let is_sandbox = |c: &&bollard::models::ContainerSummary| {
        c.labels
            .as_ref()
            .and_then(|l| l.get(LABEL_KIND))
            .is_some_and(|k| k == Kind::Sandbox.as_str())
    };
    let (sandboxes, members): (Vec<_>, Vec<_>) = containers.iter().partition(is_sandbox);
    let mut removed = 0;
    for wave in [members, sandboxes] {
        let ids: Vec<&str> = wave.iter().filter_map(|c| c.id.as_deref()).collect();
        removed += remove_containers(docker, &ids).await?;
    }
    removed += remove_volumes(docker, labels).await?;
    Ok(removed)
}

/// Force-removes the given containers at once; returns how many it removed. Every removal is
/// tried before the first failure is returned.
pub(crate) async fn remove_containers(
    docker: &Docker,
    ids: &[&str],
) -> Result<usize, RuntimeError> {
    let remove = RemoveContainerOptionsBuilder::new()
        .force(true)
        .v(true)
        .build();
    let results = join_all(ids.iter().map(|id| {
        let remove = remove.clone();
        async move { docker.remove_container(id, Some(remove)).await }
    }))
    .await;
    let mut removed = 0;
    let mut failure = None;
    for result in results {
        match result {
            Ok(()) => removed += 1,
            Err(e) if is_gone(&e) => {}
            Err(e) => failure = failure.or(Some(e)),
        }
    }
    match failure {
        Some(e) => Err(RuntimeError::docker("remove a container")(e)),
        None => Ok(removed),
    }
}

/// Removes every volume carrying all of `labels`; returns how many.
pub(crate) async fn remove_volumes(
    docker: &Docker,
    labels: &[String],
) -> Result<usize, RuntimeError> {
    let filters = HashMap::from([("label".to_string(), labels.to_vec())]);
    let mut removed = 0;
    let volumes = docker
        .list_volumes(Some(
            ListVolumesOptionsBuilder::new().filters(&filters).build(),
        ))
        .await
        .map_err(RuntimeError::docker("list volumes"))?;
    let results = join_all(
        volumes
            .volumes
            .unwrap_or_default()
            .iter()
            .map(|v| async move {
                docker
                    .remove_volume(
                        &v.name,
                        Some(RemoveVolumeOptionsBuilder::new().force(true).build()),
                    )
                    .await
            }),
    )
    .await;
    for result in results {
        match result {
            Ok(()) => removed += 1,
            Err(e) if is_gone(&e) => {}
            Err(e) => return Err(RuntimeError::docker("remove a volume")(e)),
        }
    }
    Ok(removed)
}

/// Removes the pod objects of every owner other than `ours` whose process is gone.
pub(crate) async fn reap_orphans(docker: &Docker, ours: &str) -> Result<usize, RuntimeError> {
    let kinds: Vec<String> = Kind::ALL
        .iter()
        .map(|k| format!("{LABEL_KIND}={}", k.as_str()))
        .collect();
    let mut owners = BTreeSet::new();
    // Docker ANDs label filters, so ask once per kind.
    for kind in &kinds {
        let filters = HashMap::from([(
            "label".to_string(),
            vec![LABEL_OWNER.to_string(), kind.clone()],
        )]);
        let containers = docker
            .list_containers(Some(
                ListContainersOptionsBuilder::new()
                    .all(true)
                    .filters(&filters)
                    .build(),
            ))
            .await
            .map_err(RuntimeError::docker("list containers"))?;
        owners.extend(
            containers
                .into_iter()
                .filter_map(|c| c.labels?.remove(LABEL_OWNER)),
        );
        let volumes = docker
            .list_volumes(Some(
                ListVolumesOptionsBuilder::new().filters(&filters).build(),
            ))
            .await
            .map_err(RuntimeError::docker("list volumes"))?;
        owners.extend(
            volumes
                .volumes
                .unwrap_or_default()
                .into_iter()
                .filter_map(|mut v| v.labels.remove(LABEL_OWNER)),
        );
    }
    let mut removed = 0;
    for owner in owners {
        if owner == ours || owner_alive(&owner) {
            continue;
        }
        for kind in &kinds {
            let count =
                remove_labelled(docker, &[format!("{LABEL_OWNER}={owner}"), kind.clone()]).await?;
            removed += count;
        }
        tracing::info!(owner, "reaped Docker objects left by a stopped emulator");
    }
    Ok(removed)
}
