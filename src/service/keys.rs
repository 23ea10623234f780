//! API key lifecycle, shared by the admin API and the CLI.

use chrono::{DateTime, Utc};
use secrecy::SecretString;

use super::{projects, ServiceError};
use crate::{
    auth,
    domain::{ApiKey, FieldError, KeyLimits, KeyPatch, NewApiKey, Scope},
    store::Store,
};

pub struct CreateKey {
    pub name: String,
    /// The project the key acts for; a new project of its own (named after it) when absent,
    /// so that a key made without one sees only its own voices, as keys always have.
    pub project_id: Option<String>,
    pub scopes: Vec<Scope>,
    pub expires_at: Option<DateTime<Utc>>,
    pub limits: KeyLimits,
    /// Skip content moderation for this key's requests.
    pub moderation_exempt: bool,
}

/// A stored key and its full key string, which exists only here and is shown once.
pub struct CreatedKey {
    pub key: ApiKey,
    pub token: SecretString,
}

pub const MAX_NAME_LEN: usize = 200;

pub async fn create(store: &dyn Store, request: CreateKey) -> Result<CreatedKey, ServiceError> {
    let mut problems = Vec::new();
    let name = request.name.trim();
    if let Some(problem) = projects::name_problem(name, MAX_NAME_LEN) {
        problems.push(FieldError::new("name", problem));
    }
    if let Some(id) = &request.project_id {
        // Any string may arrive here: it is only ever compared with stored ids.
        if store.get_project(id).await?.is_none() {
            problems.push(FieldError::new("projectId", "names no project"));
        }
    }
    if request.scopes.is_empty() {
        problems.push(FieldError::new("scopes", "must name at least one scope"));
    }
    let now = Utc::now();
    if request.expires_at.is_some_and(|at| at <= now) {
        problems.push(FieldError::new("expiresAt", "must be in the future"));
    }
    problems.extend(request.limits.problems());
    if !problems.is_empty() {
        return Err(ServiceError::Validation(problems));
    }
    let mut scopes = request.scopes;
    scopes.sort_by_key(|s| s.as_str());
    scopes.dedup();
    let project_id = match request.project_id {
        Some(id) => id,
        None => projects::create(store, name).await?.id,
    };
    let minted = auth::mint();
    let key = store
        .insert_key(&NewApiKey {
            id: minted.id,
            name: name.to_owned(),
            project_id,
            scopes,
            limits: request.limits,
            moderation_exempt: request.moderation_exempt,
            expires_at: request.expires_at,
            secret_sha256: minted.secret_sha256,
            created_at: now,
        })
        .await?;
    Ok(CreatedKey { key, token: minted.token })
}

pub async fn get(store: &dyn Store, id: &str) -> Result<ApiKey, ServiceError> {
    store.get_key(id).await?.ok_or_else(|| ServiceError::NotFound { what: "API key", id: id.to_owned() })
}

/// Revokes a key; revoking twice is not an error and keeps the first revocation time.
pub async fn revoke(store: &dyn Store, id: &str) -> Result<ApiKey, ServiceError> {
    store.revoke_key(id, Utc::now()).await?.ok_or_else(|| ServiceError::NotFound { what: "API key", id: id.to_owned() })
}

/// Changes a key's limits (a JSON merge patch, already read). Replicas other than the caller's
/// see the change within the auth cache TTL.
pub async fn update(store: &dyn Store, id: &str, patch: &KeyPatch) -> Result<ApiKey, ServiceError> {
    store.update_key(id, patch).await?.ok_or_else(|| ServiceError::NotFound { what: "API key", id: id.to_owned() })
}
