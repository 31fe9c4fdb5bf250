//! Artifact Registry repositories. The emulator keeps the repository records deploy scripts
//! create; images themselves live in the local Docker engine.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::locations;
use super::page::{Page, PageRequest, paginate};
use super::{Record, StateError, StateResult, Store};

/// The package formats Artifact Registry hosts.
pub const FORMATS: &[&str] = &[
    "DOCKER", "MAVEN", "NPM", "APT", "YUM", "PYTHON", "KFP", "GO", "GENERIC",
];

/// `projects/N/locations/L/repositories/R`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepositoryName {
    /// Project number.
    pub project: String,
    pub location: String,
    pub repository_id: String,
}

impl fmt::Display for RepositoryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "projects/{}/locations/{}/repositories/{}",
            self.project, self.location, self.repository_id
        )
    }
}

/// The fields a client sets on a repository.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RepositoryFields {
    pub format: String,
    pub mode: String,
    pub description: String,
    pub labels: BTreeMap<String, String>,
    pub kms_key_name: Option<String>,
    pub immutable_tags: bool,
}

/// A stored repository.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Repository {
    pub name: RepositoryName,
    /// The project id it was created under, for the registry host path users push to.
    pub project_id: String,
    pub format: String,
    pub mode: String,
    pub description: String,
    pub labels: BTreeMap<String, String>,
    pub kms_key_name: Option<String>,
    pub immutable_tags: bool,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
}

impl Repository {
    /// Where images of a Docker repository are pushed: `LOCATION-docker.pkg.dev/PROJECT/REPO`.
    pub fn registry_uri(&self) -> String {
        let kind = self.format.to_lowercase();
        format!(
            "{}-{kind}.pkg.dev/{}/{}",
            self.name.location, self.project_id, self.name.repository_id
        )
    }
}

fn validate_id(id: &str) -> StateResult<()> {
    let ok = !id.is_empty()
        && id.len() <= 63
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && !id.ends_with('-')
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(StateError::invalid(format!(
            "Invalid repository ID [{id}]: it must start with a lowercase letter, contain only \
             lowercase letters, digits and hyphens, not end with a hyphen, and be at most 63 \
             characters."
        )))
    }
}

fn validate_location(location: &str) -> StateResult<()> {
    if locations::is_region(location) || locations::MULTI_REGIONS.contains(&location) {
        Ok(())
    } else {
        Err(StateError::invalid(format!(
            "Invalid location [{location}]: it is not an Artifact Registry location."
        )))
    }
}

fn normalise(fields: &mut RepositoryFields) -> StateResult<()> {
    fields.format = fields.format.to_uppercase();
    if fields.format.is_empty() || fields.format == "FORMAT_UNSPECIFIED" {
        return Err(StateError::invalid("Repository format must be specified."));
    }
    if !FORMATS.contains(&fields.format.as_str()) {
        return Err(StateError::invalid(format!(
            "Invalid repository format [{}].",
            fields.format
        )));
    }
    if fields.mode.is_empty() || fields.mode == "MODE_UNSPECIFIED" {
        fields.mode = "STANDARD_REPOSITORY".into();
    }
    if !matches!(
        fields.mode.as_str(),
        "STANDARD_REPOSITORY" | "VIRTUAL_REPOSITORY" | "REMOTE_REPOSITORY"
    ) {
        return Err(StateError::invalid(format!(
            "Invalid repository mode [{}].",
            fields.mode
        )));
    }
    Ok(())
}

impl Store {
    fn repository_name(
        &self,
        project: &str,
        location: &str,
        id: &str,
    ) -> StateResult<(super::projects::Project, RepositoryName)> {
        validate_location(location)?;
        let project = self.project(project)?;
        let name = RepositoryName {
            project: project.number.clone(),
            location: location.to_string(),
            repository_id: id.to_string(),
        };
        Ok((project, name))
    }

    /// Creates a repository.
    pub fn create_repository(
        &self,
        project: &str,
        location: &str,
        id: &str,
        mut fields: RepositoryFields,
    ) -> StateResult<Repository> {
        validate_id(id)?;
        normalise(&mut fields)?;
        let (project, name) = self.repository_name(project, location, id)?;
        let now = Utc::now();
        self.commit(|data| {
            if data.repositories.contains_key(&name.to_string()) {
                return Err(StateError::AlreadyExists {
                    kind: "Repository",
                    name: name.to_string(),
                });
            }
            let repository = Repository {
                name: name.clone(),
                project_id: project.id.clone(),
                format: fields.format,
                mode: fields.mode,
                description: fields.description,
                labels: fields.labels,
                kms_key_name: fields.kms_key_name,
                immutable_tags: fields.immutable_tags,
                create_time: now,
                update_time: now,
            };
            let mut records: Vec<Record> = data.remember(&project).into_iter().collect();
            records.push(Record::PutRepository {
                repository: repository.clone(),
            });
            Ok((repository, records))
        })
    }

    /// Reads a repository.
    pub fn get_repository(
        &self,
        project: &str,
        location: &str,
        id: &str,
    ) -> StateResult<Repository> {
        let (_, name) = self.repository_name(project, location, id)?;
        self.read(|data| {
            data.repositories
                .get(&name.to_string())
                .cloned()
                .ok_or_else(|| StateError::NotFound {
                    kind: "Repository",
                    name: name.to_string(),
                })
        })
    }

    /// Lists the repositories of a location (`-` for all locations).
    pub fn list_repositories(
        &self,
        project: &str,
        location: &str,
        page: &PageRequest,
    ) -> StateResult<Page<Repository>> {
        if location != "-" {
            validate_location(location)?;
        }
        let project = self.project(project)?;
        let items = self.read(|data| {
            data.repositories
                .values()
                .filter(|r| {
                    r.name.project == project.number
                        && (location == "-" || r.name.location == location)
                })
                .map(|r| (r.name.to_string(), r.clone()))
                .collect()
        });
        paginate(items, page, 1000, 1000)
    }

    /// Updates the fields the mask names.
    pub fn update_repository(
        &self,
        project: &str,
        location: &str,
        id: &str,
        fields: RepositoryFields,
        update_mask: &[String],
    ) -> StateResult<Repository> {
        let (_, name) = self.repository_name(project, location, id)?;
        let now = Utc::now();
        self.commit(|data| {
            let mut next = data
                .repositories
                .get(&name.to_string())
                .cloned()
                .ok_or_else(|| StateError::NotFound {
                    kind: "Repository",
                    name: name.to_string(),
                })?;
            for path in update_mask {
                match path.as_str() {
                    "description" => next.description = fields.description.clone(),
                    "labels" => next.labels = fields.labels.clone(),
                    "docker_config.immutable_tags"
                    | "dockerConfig.immutableTags"
                    | "docker_config"
                    | "dockerConfig" => next.immutable_tags = fields.immutable_tags,
                    other => {
                        return Err(StateError::invalid(format!(
                            "The update_mask path [{other}] cannot be updated."
                        )));
                    }
                }
            }
            next.update_time = now;
            Ok((
                next.clone(),
                vec![Record::PutRepository { repository: next }],
            ))
        })
    }

    /// Deletes a repository.
    pub fn delete_repository(&self, project: &str, location: &str, id: &str) -> StateResult<()> {
        let (_, name) = self.repository_name(project, location, id)?;
        self.commit(|data| {
            if !data.repositories.contains_key(&name.to_string()) {
                return Err(StateError::NotFound {
                    kind: "Repository",
                    name: name.to_string(),
                });
            }
            Ok((
                (),
                vec![Record::DeleteRepository {
                    name: name.to_string(),
                }],
            ))
        })
    }
}

impl Store {
    /// The IAM policy of a repository.
    pub fn repository_policy(
        &self,
        project: &str,
        location: &str,
        id: &str,
    ) -> StateResult<super::iam::Policy> {
        let repository = self.get_repository(project, location, id)?;
        Ok(self.read(|data| data.policy(&repository.name.to_string())))
    }

    /// Replaces the IAM policy of a repository.
    pub fn set_repository_policy(
        &self,
        project: &str,
        location: &str,
        id: &str,
        update: super::iam::PolicyUpdate,
    ) -> StateResult<super::iam::Policy> {
        let (_, name) = self.repository_name(project, location, id)?;
        let key = name.to_string();
        self.commit(|data| {
            if !data.repositories.contains_key(&key) {
                return Err(StateError::NotFound {
                    kind: "Repository",
                    name: key.clone(),
                });
            }
            data.set_policy(&key, update)
        })
    }
}
