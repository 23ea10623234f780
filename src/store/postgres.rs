//! The production backend: one PostgreSQL database shared by every replica. Migrations take
//! sqlx's advisory lock, so replicas starting together apply them once.

use std::time::Duration;

use sqlx::{migrate::Migrator, postgres::PgPoolOptions, PgPool};

use super::{sql, Backend, StoreError};

static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

const USAGE_SUMMARY: &str =
    sql::usage_summary_sql!("to_char(to_timestamp(created_at / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD')");

pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Whether sqlx's migration bookkeeping table exists (a boolean), in the connection's schema.
    const MIGRATIONS_TABLE_EXISTS: &str = "SELECT to_regclass('_sqlx_migrations') IS NOT NULL";

    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await?;
        Ok(Self { pool })
    }
}

sql::impl_store!(PostgresStore, Backend::Postgres, MIGRATOR, USAGE_SUMMARY);
