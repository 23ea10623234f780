//! Persistence. One [`Store`] trait with a SQLite implementation (the embedded default) and a
//! PostgreSQL one (production, shared by many replicas). Both use runtime-checked sqlx queries;
//! the statements they share live in `sql.rs`, the dialect-specific ones in each backend module.

mod postgres;
mod sql;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::{
    ApiKey, KeyCredential, KeyPatch, LogPage, NewApiKey, Project, SealedCredential, UsageEvent, UsageFilter,
    UsageRecord, UsageReport, Voice, VoicePage, VoicePatch,
};

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("a row with this {0} already exists")]
    Conflict(&'static str),
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// Whether the data itself was refused, so that writing it again can never succeed: a
    /// constraint, or a value the database cannot hold. Everything else — the database is
    /// unreachable, busy, read-only after a failover, refusing our credentials — may pass later
    /// and is retried, because usage people bill from must not be discarded for an outage.
    pub fn is_data_error(&self) -> bool {
        let StoreError::Database(error) = self else {
            return false;
        };
        match error {
            sqlx::Error::Encode(_) | sqlx::Error::Decode(_) | sqlx::Error::TypeNotFound { .. } => true,
            sqlx::Error::Database(db) => {
                let code = db.code().unwrap_or_default();
                if db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>().is_some() {
                    // SQLSTATE classes 22 (data exception: a NUL byte, a value out of range)
                    // and 23 (integrity constraint violation).
                    code.starts_with("22") || code.starts_with("23")
                } else {
                    // SQLite primary result codes: TOOBIG (18), CONSTRAINT (19), MISMATCH (20),
                    // RANGE (25); extended codes keep the primary code in their low byte.
                    code.parse::<u32>().is_ok_and(|c| matches!(c & 0xff, 18 | 19 | 20 | 25))
                }
            }
            _ => false,
        }
    }
}

impl StoreError {
    /// Whether the database could not be reached or could not serve at all (connection refused
    /// or lost, pool exhausted or closed, server shutting down or out of connections), as
    /// opposed to a query that failed: the same call may succeed once the database is back.
    pub fn is_unavailable(&self) -> bool {
        let StoreError::Database(error) = self else {
            return false;
        };
        match error {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(db) if db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>().is_some() => {
                // SQLSTATE 08 (connection exception), 53 (insufficient resources: too many
                // connections) and 57P (operator intervention: shutdown, restart).
                let code = db.code().unwrap_or_default();
                code.starts_with("08") || code.starts_with("53") || code.starts_with("57P")
            }
            _ => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    fn backend(&self) -> Backend;
    /// Applies pending migrations for this backend.
    async fn migrate(&self) -> Result<(), StoreError>;
    /// The migrations this build has that the database has not applied (successfully), as
    /// `<version> <description>`, oldest first. Reads only: a replica that must not migrate asks.
    async fn pending_migrations(&self) -> Result<Vec<String>, StoreError>;
    /// A cheap round trip, for readiness checks.
    async fn ping(&self) -> Result<(), StoreError>;
    async fn close(&self);

    async fn insert_key(&self, key: &NewApiKey) -> Result<ApiKey, StoreError>;
    async fn get_key(&self, id: &str) -> Result<Option<ApiKey>, StoreError>;
    async fn get_key_credential(&self, id: &str) -> Result<Option<KeyCredential>, StoreError>;
    /// All keys, newest first.
    async fn list_keys(&self) -> Result<Vec<ApiKey>, StoreError>;
    /// A project's keys, newest first.
    async fn list_project_keys(&self, project_id: &str) -> Result<Vec<ApiKey>, StoreError>;
    /// Marks a key revoked. Returns `None` when no such key exists.
    async fn revoke_key(&self, id: &str, at: DateTime<Utc>) -> Result<Option<ApiKey>, StoreError>;

    async fn insert_project(&self, project: &Project) -> Result<(), StoreError>;
    async fn get_project(&self, id: &str) -> Result<Option<Project>, StoreError>;
    /// All projects, newest first.
    async fn list_projects(&self) -> Result<Vec<Project>, StoreError>;

    /// Stores `project_id`'s sealed key for `credential.provider`, replacing one it had.
    async fn put_credential(&self, project_id: &str, credential: &SealedCredential) -> Result<(), StoreError>;
    /// A project's sealed vendor keys, by provider id.
    async fn list_credentials(&self, project_id: &str) -> Result<Vec<SealedCredential>, StoreError>;
    /// Deletes a project's key for `provider`; `false` when it had none.
    async fn delete_credential(&self, project_id: &str, provider: &str) -> Result<bool, StoreError>;

    /// Applies a patch to a key's limits in one statement. `None` when no such key exists.
    async fn update_key(&self, id: &str, patch: &KeyPatch) -> Result<Option<ApiKey>, StoreError>;
    /// What a key has billed in a UTC month (`YYYY-MM`): characters and nano-USD.
    async fn month_usage(&self, key_id: &str, month: &str) -> Result<(i64, i64), StoreError>;
    /// Counters every replica on this database shares (PostgreSQL); `None` when the database
    /// belongs to one process (SQLite), whose limits are then kept in its memory.
    fn shared_counters(&self) -> Option<Arc<dyn SharedCounters>>;

    /// Writes a batch of usage events in one transaction, advances the keys' `last_used_at`,
    /// and adds what they billed to their keys' months.
    async fn insert_usage(&self, events: &[UsageEvent]) -> Result<(), StoreError>;
    /// Sums usage per UTC day, key, provider and model, and in all.
    async fn usage_summary(&self, filter: &UsageFilter) -> Result<UsageReport, StoreError>;
    /// Usage events newest first, optionally for one key.
    async fn list_usage(&self, key_id: Option<&str>, page: LogPage) -> Result<Vec<UsageRecord>, StoreError>;

    // Saved voices and jobs belong to a project: `owner` below is a project id.

    /// Saves a new voice for `owner`. A title the owner already uses is `Conflict("title")`.
    async fn insert_voice(&self, owner: &str, voice: &Voice) -> Result<Voice, StoreError>;
    /// One of `owner`'s voices; `None` when there is no such voice or it belongs to another project.
    async fn get_voice(&self, owner: &str, id: &str) -> Result<Option<Voice>, StoreError>;
    /// `owner`'s voices, newest first (by creation time, then id).
    async fn list_voices(&self, owner: &str, page: &VoicePage) -> Result<Vec<Voice>, StoreError>;
    /// Applies `patch` in one statement and sets `updated_at`. `None` when `owner` has no such
    /// voice; a title the owner already uses is `Conflict("title")`.
    async fn update_voice(
        &self,
        owner: &str,
        id: &str,
        patch: &VoicePatch,
        at: DateTime<Utc>,
    ) -> Result<Option<Voice>, StoreError>;
    /// Deletes one of `owner`'s voices; `false` when there was none.
    async fn delete_voice(&self, owner: &str, id: &str) -> Result<bool, StoreError>;

    /// Saves a finished job of `owner`'s (its `audio` must be set).
    async fn insert_job(&self, owner: &str, job: &crate::domain::TtsJob) -> Result<(), StoreError>;
    /// One of `owner`'s jobs, with its audio or only the audio's size; `None` when there is none
    /// or it belongs to another project.
    async fn get_job(&self, owner: &str, id: &str, audio: bool) -> Result<Option<crate::domain::TtsJob>, StoreError>;
    /// How many of `owner`'s jobs were created at or after `at`.
    async fn count_jobs_since(&self, owner: &str, at: DateTime<Utc>) -> Result<u64, StoreError>;
    /// Deletes every job created before `at`; returns how many.
    async fn delete_jobs_before(&self, at: DateTime<Utc>) -> Result<u64, StoreError>;
}

/// Rate-limit windows and concurrency leases in a database shared by replicas. Each method is
/// one statement, atomic on its own.
#[async_trait]
pub trait SharedCounters: Send + Sync + 'static {
    /// Adds `amount` to what the key used of `kind` in the minute starting at `window_start`
    /// (Unix ms); returns the window's total after adding, and the previous minute's total.
    async fn add_to_window(
        &self,
        key_id: &str,
        kind: &str,
        window_start: i64,
        amount: i64,
    ) -> Result<(i64, i64), StoreError>;
    /// Takes `amount` back out of a window (a refused request's).
    async fn take_from_window(
        &self,
        key_id: &str,
        kind: &str,
        window_start: i64,
        amount: i64,
    ) -> Result<(), StoreError>;
    /// Deletes windows that started before `before` (Unix ms); returns how many.
    async fn prune_windows(&self, before: i64) -> Result<u64, StoreError>;
    /// Takes lease `lease_id`, lapsing at `expires` (Unix ms), unless the key already holds
    /// `max` leases that lapse after `now`. Returns how many it holds with the new one.
    async fn acquire_lease(
        &self,
        key_id: &str,
        lease_id: &str,
        now: i64,
        expires: i64,
        max: i64,
    ) -> Result<Option<i64>, StoreError>;
    /// Moves a held lease's lapse to `expires`.
    async fn renew_lease(&self, key_id: &str, lease_id: &str, expires: i64) -> Result<(), StoreError>;
    async fn release_lease(&self, key_id: &str, lease_id: &str) -> Result<(), StoreError>;
}

/// Opens the store a database URL names: `sqlite:` (file created if missing) or `postgres:`.
pub async fn connect(url: &str, max_connections: u32) -> Result<Arc<dyn Store>, StoreError> {
    match backend_of(url) {
        Some(Backend::Sqlite) => Ok(Arc::new(SqliteStore::connect(url, max_connections).await?)),
        Some(Backend::Postgres) => Ok(Arc::new(PostgresStore::connect(url, max_connections).await?)),
        None => Err(StoreError::Database(sqlx::Error::Configuration(
            "database url must start with sqlite: or postgres:".into(),
        ))),
    }
}

pub fn backend_of(url: &str) -> Option<Backend> {
    if url.starts_with("sqlite:") {
        Some(Backend::Sqlite)
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Some(Backend::Postgres)
    } else {
        None
    }
}
