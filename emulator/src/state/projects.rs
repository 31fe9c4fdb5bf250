//! Projects: any project id is accepted; its number is derived from the id so it is stable.
//!
//! Google names resources by project number in responses. A request may name a project by id or
//! by number; both resolve to the same [`Project`] once the id has been seen.

use super::{Data, Record, StateError, StateResult, Store};

/// A project as both of its names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    pub id: String,
    pub number: String,
}

/// The stable 12-digit number the emulator gives a project id.
pub fn number_for(id: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in id.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (100_000_000_000 + hash % 900_000_000_000).to_string()
}

fn is_valid_id(id: &str) -> bool {
    let plain = id.rsplit(':').next().unwrap_or(id);
    let mut chars = plain.chars();
    !plain.is_empty()
        && id.len() <= 63
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && plain
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !plain.ends_with('-')
}

impl Data {
    /// Resolves a project as written in a request path.
    pub(crate) fn project(&self, written: &str) -> StateResult<Project> {
        if !written.is_empty() && written.bytes().all(|b| b.is_ascii_digit()) {
            let id = self
                .projects
                .iter()
                .find(|(_, number)| number.as_str() == written)
                .map(|(id, _)| id.clone())
                .unwrap_or_else(|| written.to_string());
            return Ok(Project {
                id,
                number: written.to_string(),
            });
        }
        if !is_valid_id(written) {
            return Err(StateError::invalid(format!(
                "Invalid project id [{written}]: a project id has lowercase letters, digits and \
                 hyphens, and starts with a letter."
            )));
        }
        Ok(Project {
            id: written.to_string(),
            number: number_for(written),
        })
    }

    /// The record that remembers a project id, if it is new, so its number resolves back to it.
    pub(crate) fn remember(&self, project: &Project) -> Option<Record> {
        let known = self.projects.contains_key(&project.id) || project.id == project.number;
        (!known).then(|| Record::Project {
            id: project.id.clone(),
            number: project.number.clone(),
        })
    }
}

impl Store {
    /// Resolves a project id or number to both names.
    pub fn project(&self, written: &str) -> StateResult<Project> {
        self.read(|data| data.project(written))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_stable_and_twelve_digits() {
        assert_eq!(number_for("demo-proj"), number_for("demo-proj"));
        assert_ne!(number_for("demo-proj"), number_for("other-proj"));
        assert_eq!(number_for("demo-proj").len(), 12);
    }

    #[test]
    fn a_number_resolves_to_a_seen_id() {
        let mut data = Data::default();
        let project = data.project("demo-proj").expect("valid id");
        let record = data.remember(&project).expect("new project");
        data.apply(record);
        assert_eq!(data.project(&project.number).expect("number"), project);
    }

    #[test]
    fn bad_ids_are_refused() {
        let data = Data::default();
        assert!(data.project("Bad_Project").is_err());
        assert!(data.project("").is_err());
    }
}
