//! The embedded default: one SQLite file, created on first start, in WAL mode so readers never
//! wait for the usage writer.

use std::{str::FromStr, time::Duration};

use sqlx::{
    migrate::Migrator,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
    SqlitePool,
};

use super::{sql, Backend, StoreError};

static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

const USAGE_SUMMARY: &str = sql::usage_summary_sql!("strftime('%Y-%m-%d', created_at / 1000, 'unixepoch')");

pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Whether sqlx's migration bookkeeping table exists (a boolean).
    const MIGRATIONS_TABLE_EXISTS: &str =
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations')";

    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await?;
        Ok(Self { pool })
    }
}

impl SqliteStore {
    /// One process owns the file: its limits live in its memory.
    fn counters(&self) -> Option<std::sync::Arc<dyn super::SharedCounters>> {
        None
    }
}

sql::impl_store!(SqliteStore, Backend::Sqlite, MIGRATOR, USAGE_SUMMARY);
