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

impl PostgresStore {
    fn counters(&self) -> Option<std::sync::Arc<dyn super::SharedCounters>> {
        Some(std::sync::Arc::new(PgCounters { pool: self.pool.clone() }))
    }
}

/// The shared rate-limit windows and concurrency leases (tables `rate_windows`, `key_leases`).
struct PgCounters {
    pool: PgPool,
}

const ADD_TO_WINDOW: &str = "WITH cur AS (INSERT INTO rate_windows (key_id, kind, window_start, used) VALUES ($1, $2, $3, $4) ON CONFLICT (key_id, kind, window_start) DO UPDATE SET used = rate_windows.used + EXCLUDED.used RETURNING used) SELECT cur.used, COALESCE((SELECT p.used FROM rate_windows p WHERE p.key_id = $1 AND p.kind = $2 AND p.window_start = $3 - 60000), 0) FROM cur";

const TAKE_FROM_WINDOW: &str =
    "UPDATE rate_windows SET used = used - $4 WHERE key_id = $1 AND kind = $2 AND window_start = $3";

/// The upsert locks the key's row, and PostgreSQL evaluates the `WHERE` of `ON CONFLICT DO
/// UPDATE` on the locked, latest version: two replicas cannot both take the last slot. Lapsed
/// leases are dropped on the way.
const ACQUIRE_LEASE: &str = "INSERT INTO key_leases (key_id, leases) VALUES ($1, jsonb_build_object($2::text, $4::bigint)) ON CONFLICT (key_id) DO UPDATE SET leases = (SELECT COALESCE(jsonb_object_agg(l.key, l.value::bigint), '{}'::jsonb) FROM jsonb_each_text(key_leases.leases) l WHERE l.value::bigint > $3) || jsonb_build_object($2::text, $4::bigint) WHERE (SELECT count(*) FROM jsonb_each_text(key_leases.leases) l WHERE l.value::bigint > $3) < $5 RETURNING (SELECT count(*) FROM jsonb_each(key_leases.leases))";

const RENEW_LEASE: &str = "UPDATE key_leases SET leases = jsonb_set(leases, ARRAY[$2::text], to_jsonb($3::bigint)) WHERE key_id = $1 AND leases ->> $2::text IS NOT NULL";

const RELEASE_LEASE: &str = "UPDATE key_leases SET leases = leases - $2::text WHERE key_id = $1";

#[async_trait::async_trait]
impl super::SharedCounters for PgCounters {
    async fn add_to_window(
        &self,
        key_id: &str,
        kind: &str,
        window_start: i64,
        amount: i64,
    ) -> Result<(i64, i64), StoreError> {
        Ok(sqlx::query_as(ADD_TO_WINDOW)
            .bind(key_id)
            .bind(kind)
            .bind(window_start)
            .bind(amount)
            .fetch_one(&self.pool)
            .await?)
    }

    async fn take_from_window(
        &self,
        key_id: &str,
        kind: &str,
        window_start: i64,
        amount: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(TAKE_FROM_WINDOW)
            .bind(key_id)
            .bind(kind)
            .bind(window_start)
            .bind(amount)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn prune_windows(&self, before: i64) -> Result<u64, StoreError> {
        let done =
            sqlx::query("DELETE FROM rate_windows WHERE window_start < $1").bind(before).execute(&self.pool).await?;
        Ok(done.rows_affected())
    }

    async fn acquire_lease(
        &self,
        key_id: &str,
        lease_id: &str,
        now: i64,
        expires: i64,
        max: i64,
    ) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar(ACQUIRE_LEASE)
            .bind(key_id)
            .bind(lease_id)
            .bind(now)
            .bind(expires)
            .bind(max)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn renew_lease(&self, key_id: &str, lease_id: &str, expires: i64) -> Result<(), StoreError> {
        sqlx::query(RENEW_LEASE).bind(key_id).bind(lease_id).bind(expires).execute(&self.pool).await?;
        Ok(())
    }

    async fn release_lease(&self, key_id: &str, lease_id: &str) -> Result<(), StoreError> {
        sqlx::query(RELEASE_LEASE).bind(key_id).bind(lease_id).execute(&self.pool).await?;
        Ok(())
    }
}
