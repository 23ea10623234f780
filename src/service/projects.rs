//! Projects: what owns keys, saved voices, PlayHT jobs and provider keys. A key acts for its
//! project; revoking it leaves the project's things to the project's other keys.

use chrono::Utc;
use rand::Rng;

use super::ServiceError;
use crate::{
    domain::{ApiKey, FieldError, Project},
    store::Store,
};

pub const MAX_NAME_LEN: usize = 200;

/// A new project id: `prj_` and 16 lowercase letters or digits.
fn new_id() -> String {
    let mut rng = rand::thread_rng();
    let id: String =
        (0..16).map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rng.gen_range(0..36)])).collect();
    format!("prj_{id}")
}

/// The problem with a name for people (a project's or a key's), if any.
pub fn name_problem(name: &str, max: usize) -> Option<String> {
    if name.is_empty() || name.chars().count() > max {
        Some(format!("must be 1 to {max} characters"))
    } else if name.chars().any(char::is_control) {
        // The CLI prints names to the operator's terminal: no escape sequences.
        Some("must not contain control characters".to_owned())
    } else {
        None
    }
}

pub async fn create(store: &dyn Store, name: &str) -> Result<Project, ServiceError> {
    let name = name.trim();
    if let Some(problem) = name_problem(name, MAX_NAME_LEN) {
        return Err(ServiceError::Validation(vec![FieldError::new("name", problem)]));
    }
    let project = Project { id: new_id(), name: name.to_owned(), created_at: Utc::now() };
    store.insert_project(&project).await?;
    Ok(project)
}

/// One project; `NotFound` for an id that names none (whatever its shape).
pub async fn get(store: &dyn Store, id: &str) -> Result<Project, ServiceError> {
    store.get_project(id).await?.ok_or_else(|| not_found(id))
}

pub async fn list(store: &dyn Store) -> Result<Vec<Project>, ServiceError> {
    Ok(store.list_projects().await?)
}

/// A project's keys, revoked ones included, newest first.
pub async fn keys(store: &dyn Store, id: &str) -> Result<Vec<ApiKey>, ServiceError> {
    get(store, id).await?;
    Ok(store.list_project_keys(id).await?)
}

fn not_found(id: &str) -> ServiceError {
    ServiceError::NotFound { what: "project", id: crate::domain::text::for_record(id.chars().take(64).collect()) }
}
