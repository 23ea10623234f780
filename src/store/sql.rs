//! What the two SQL backends share: row types, the statements that read the same in both
//! dialects (sqlx binds `$N` parameters on SQLite too), and the one body of the `Store`
//! methods, stamped out for each backend's pool type by [`impl_store!`].

mod voices;

use chrono::{DateTime, NaiveDate, Utc};

pub(super) use self::voices::{
    options_json, tags_json, VoiceRow, DELETE_VOICE, GET_VOICE, INSERT_VOICE, LIST_VOICES, UPDATE_VOICE,
};
use super::StoreError;
use crate::domain::{
    limits::KeyChange, ApiKey, KeyCredential, KeyLimits, Scope, UsageBucket, UsageEvent, UsageFilter, UsageRecord,
    UsageReport, UsageSegment, UsageTotals,
};

pub(super) const INSERT_JOB: &str = "INSERT INTO tts_jobs (id, project_id, request, media_type, duration_ms, audio, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// `$3`: whether to read the audio (else NULL, and only its length).
pub(super) const GET_JOB: &str = "SELECT id, request, media_type, duration_ms, CAST(length(audio) AS BIGINT) AS size, CASE WHEN $3 THEN audio END AS audio, created_at FROM tts_jobs WHERE project_id = $1 AND id = $2";

pub(super) const COUNT_JOBS_SINCE: &str = "SELECT COUNT(*) FROM tts_jobs WHERE project_id = $1 AND created_at >= $2";

/// The versions of the migrations applied successfully (sqlx's bookkeeping table).
pub(super) const APPLIED_MIGRATIONS: &str = "SELECT version FROM _sqlx_migrations WHERE success";

pub(super) const DELETE_JOBS_BEFORE: &str = "DELETE FROM tts_jobs WHERE created_at < $1";

#[derive(sqlx::FromRow)]
pub(super) struct JobRow {
    id: String,
    request: String,
    media_type: String,
    duration_ms: i64,
    size: i64,
    audio: Option<Vec<u8>>,
    created_at: i64,
}

impl JobRow {
    pub(super) fn into_job(self) -> Result<crate::domain::TtsJob, StoreError> {
        Ok(crate::domain::TtsJob {
            created_at: from_ms(self.created_at)?,
            id: self.id,
            request: self.request,
            media_type: self.media_type,
            duration_ms: self.duration_ms,
            size: self.size,
            audio: self.audio,
        })
    }
}

pub(super) const KEY_COLUMNS: &str = "id, name, project_id, scopes, secret_sha256, rate_limit_per_minute, characters_per_minute, max_concurrent, monthly_character_budget, monthly_spend_limit_usd, moderation_exempt, created_at, expires_at, revoked_at, last_used_at";

pub(super) const INSERT_KEY: &str = "INSERT INTO api_keys (id, name, project_id, scopes, secret_sha256, rate_limit_per_minute, characters_per_minute, max_concurrent, monthly_character_budget, monthly_spend_limit_usd, created_at, expires_at, moderation_exempt) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";

/// `UPDATE api_keys SET <each change's column> = $2, ... WHERE id = $1 RETURNING <the key>`.
/// The column names come from [`KeyPatch::MEMBERS`](crate::domain::KeyPatch), never from a caller.
pub(super) fn update_key_sql(changes: &[KeyChange]) -> String {
    let sets: Vec<String> = changes
        .iter()
        .enumerate()
        .map(|(i, change)| {
            let column = match change {
                KeyChange::Count(column, _) | KeyChange::Usd(column, _) | KeyChange::Flag(column, _) => column,
            };
            format!("{column} = ${}", i + 2)
        })
        .collect();
    format!("UPDATE api_keys SET {} WHERE id = $1 RETURNING {KEY_COLUMNS}", sets.join(", "))
}

/// Advances a key's month by what an event billed.
pub(super) const ADD_TO_MONTH: &str = "INSERT INTO key_months (key_id, month, characters, spend_nanos) VALUES ($1, $2, $3, $4) ON CONFLICT (key_id, month) DO UPDATE SET characters = key_months.characters + EXCLUDED.characters, spend_nanos = key_months.spend_nanos + EXCLUDED.spend_nanos";

pub(super) const MONTH_USAGE: &str = "SELECT characters, spend_nanos FROM key_months WHERE key_id = $1 AND month = $2";

pub(super) const INSERT_PROJECT: &str = "INSERT INTO projects (id, name, created_at) VALUES ($1, $2, $3)";

pub(super) const GET_PROJECT: &str = "SELECT id, name, created_at FROM projects WHERE id = $1";

pub(super) const LIST_PROJECTS: &str = "SELECT id, name, created_at FROM projects ORDER BY created_at DESC, id";

/// A project's vendor key, inserted or replaced (keeping its creation time).
pub(super) const PUT_CREDENTIAL: &str = "INSERT INTO provider_credentials (project_id, provider, nonce, ciphertext, master_key, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (project_id, provider) DO UPDATE SET nonce = excluded.nonce, ciphertext = excluded.ciphertext, master_key = excluded.master_key, updated_at = excluded.updated_at";

pub(super) const LIST_CREDENTIALS: &str = "SELECT provider, nonce, ciphertext, master_key, created_at, updated_at FROM provider_credentials WHERE project_id = $1 ORDER BY provider";

pub(super) const DELETE_CREDENTIAL: &str = "DELETE FROM provider_credentials WHERE project_id = $1 AND provider = $2";

#[derive(sqlx::FromRow)]
pub(super) struct ProjectRow {
    id: String,
    name: String,
    created_at: i64,
}

impl ProjectRow {
    pub(super) fn into_project(self) -> Result<crate::domain::Project, StoreError> {
        Ok(crate::domain::Project { id: self.id, name: self.name, created_at: from_ms(self.created_at)? })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct CredentialRow {
    provider: String,
    nonce: Vec<u8>,
    ciphertext: Vec<u8>,
    master_key: String,
    created_at: i64,
    updated_at: i64,
}

impl CredentialRow {
    pub(super) fn into_sealed(self) -> Result<crate::domain::SealedCredential, StoreError> {
        Ok(crate::domain::SealedCredential {
            provider: self.provider,
            nonce: self.nonce,
            ciphertext: self.ciphertext,
            master_key: self.master_key,
            created_at: from_ms(self.created_at)?,
            updated_at: from_ms(self.updated_at)?,
        })
    }
}

pub(super) const TOUCH_KEY: &str =
    "UPDATE api_keys SET last_used_at = $2 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)";

/// The event insert, up to its `VALUES`: a `QueryBuilder` adds one row per event.
pub(super) const INSERT_USAGE_INTO: &str = "INSERT INTO usage_events (request_id, key_id, route, method, provider, model, voice, characters, audio_ms, bytes_out, status, error_code, latency_ms, ttfb_ms, created_at, spend_nanos, project_id, input_tokens, output_tokens) ";

/// Events per insert statement: 19 parameters each, well under either database's limit on a
/// statement's parameters (SQLite's default is 32,766; PostgreSQL's 65,535).
pub(super) const USAGE_ROWS_PER_INSERT: usize = 256;

pub(super) const INSERT_SEGMENT: &str = "INSERT INTO usage_segments (event_seq, idx, provider, model, voice, characters, audio_ms, error_code, spend_nanos, input_tokens, output_tokens) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";

pub(super) const LIST_USAGE: &str = "SELECT seq, request_id, key_id, project_id, route, method, provider, model, voice, characters, audio_ms, spend_nanos, input_tokens, output_tokens, bytes_out, status, error_code, latency_ms, ttfb_ms, created_at FROM usage_events WHERE ($1 IS NULL OR key_id = $1) AND ($2 IS NULL OR seq < $2) ORDER BY seq DESC LIMIT $3";

/// The segments of the events with sequence numbers in `[$1, $2]`: one query for a whole page of
/// the log, which may also return lines of events not on the page (another key's), to be skipped.
/// The segments of a log page: its range of events, filtered by key like the page itself, so a
/// page of one key never reads another's lines.
pub(super) const LIST_SEGMENTS: &str = "SELECT s.event_seq, s.idx, s.provider, s.model, s.voice, s.characters, s.audio_ms, s.spend_nanos, s.input_tokens, s.output_tokens, s.error_code FROM usage_segments s JOIN usage_events e ON e.seq = s.event_seq WHERE s.event_seq >= $1 AND s.event_seq <= $2 AND ($3 IS NULL OR e.key_id = $3) ORDER BY s.event_seq, s.idx";

/// The usage aggregate; only the expression that turns a millisecond time into a UTC
/// `YYYY-MM-DD` day differs between dialects (it reads `created_at`, a column only
/// `usage_events` has).
///
/// A request with segments counts once per segment, under the segment's provider and model,
/// with the segment's characters and audio; one without counts once, as its event. `requests`
/// and `errors` count distinct events, so a request whose segments share a provider and model
/// is still one request (and one error when the request or any of those segments failed).
/// `bytes_out` belongs to the whole response, so it is counted once: with its first segment
/// (the lowest index present: turn 0's call may never have started).
macro_rules! usage_summary_sql {
    ($day:literal) => {
        concat!(
            "SELECT ",
            $day,
            " AS day, e.key_id, COALESCE(s.provider, e.provider) AS provider, COALESCE(s.model, e.model) AS model, ",
            "COUNT(DISTINCT e.seq) AS requests, ",
            "COUNT(DISTINCT CASE WHEN e.status >= 400 OR e.error_code IS NOT NULL OR s.error_code IS NOT NULL THEN e.seq END) AS errors, ",
            "CAST(SUM(COALESCE(s.characters, e.characters)) AS BIGINT) AS characters, ",
            "CAST(SUM(COALESCE(s.audio_ms, e.audio_ms)) AS BIGINT) AS audio_ms, ",
            "CAST(SUM(COALESCE(s.spend_nanos, e.spend_nanos)) AS BIGINT) AS spend_nanos, ",
            "CAST(SUM(COALESCE(s.input_tokens, e.input_tokens)) AS BIGINT) AS input_tokens, ",
            "CAST(SUM(COALESCE(s.output_tokens, e.output_tokens)) AS BIGINT) AS output_tokens, ",
            "CAST(SUM(CASE WHEN s.idx IS NULL OR s.idx = ",
            "(SELECT MIN(f.idx) FROM usage_segments f WHERE f.event_seq = e.seq) THEN e.bytes_out ELSE 0 END) AS BIGINT) AS bytes_out ",
            "FROM usage_events e LEFT JOIN usage_segments s ON s.event_seq = e.seq ",
            "WHERE e.created_at >= $1 AND e.created_at < $2 AND ($3 IS NULL OR e.key_id = $3) ",
            "GROUP BY 1, 2, 3, 4 ",
            // The totals, in the same statement so that they see the same rows: each request
            // once, whatever number of providers served it (summing the buckets would count it
            // once per provider). Its `day` is NULL.
            "UNION ALL SELECT NULL, NULL, NULL, NULL, COUNT(*), ",
            "CAST(COALESCE(SUM(CASE WHEN status >= 400 OR error_code IS NOT NULL THEN 1 ELSE 0 END), 0) AS BIGINT), ",
            "CAST(COALESCE(SUM(characters), 0) AS BIGINT), CAST(COALESCE(SUM(audio_ms), 0) AS BIGINT), ",
            "CAST(COALESCE(SUM(spend_nanos), 0) AS BIGINT), ",
            "CAST(COALESCE(SUM(input_tokens), 0) AS BIGINT), CAST(COALESCE(SUM(output_tokens), 0) AS BIGINT), ",
            "CAST(COALESCE(SUM(bytes_out), 0) AS BIGINT) ",
            "FROM usage_events WHERE created_at >= $1 AND created_at < $2 AND ($3 IS NULL OR key_id = $3) ",
            "ORDER BY 1, 2, 3, 4"
        )
    };
}
pub(super) use usage_summary_sql;

pub(super) fn to_ms(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

fn from_ms(ms: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| StoreError::Corrupt(format!("timestamp {ms} out of range")))
}

fn opt_from_ms(ms: Option<i64>) -> Result<Option<DateTime<Utc>>, StoreError> {
    ms.map(from_ms).transpose()
}

pub(super) fn join_scopes(scopes: &[Scope]) -> String {
    scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")
}

#[derive(sqlx::FromRow)]
pub(super) struct KeyRow {
    id: String,
    name: String,
    project_id: String,
    scopes: String,
    secret_sha256: Vec<u8>,
    rate_limit_per_minute: Option<i64>,
    moderation_exempt: bool,
    characters_per_minute: Option<i64>,
    max_concurrent: Option<i64>,
    monthly_character_budget: Option<i64>,
    monthly_spend_limit_usd: Option<f64>,
    created_at: i64,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
    last_used_at: Option<i64>,
}

impl KeyRow {
    pub(super) fn into_credential(self) -> Result<KeyCredential, StoreError> {
        let scopes = self
            .scopes
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| Scope::parse(s).ok_or_else(|| StoreError::Corrupt(format!("unknown scope {s:?}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let small = |n: Option<i64>| {
            n.map(u32::try_from).transpose().map_err(|_| StoreError::Corrupt("key limit out of range".into()))
        };
        let limits = KeyLimits {
            rate_limit_per_minute: small(self.rate_limit_per_minute)?,
            characters_per_minute: small(self.characters_per_minute)?,
            max_concurrent: small(self.max_concurrent)?,
            monthly_character_budget: self
                .monthly_character_budget
                .map(u64::try_from)
                .transpose()
                .map_err(|_| StoreError::Corrupt("key budget out of range".into()))?,
            monthly_spend_limit_usd: self.monthly_spend_limit_usd,
        };
        Ok(KeyCredential {
            key: std::sync::Arc::new(ApiKey {
                id: self.id,
                name: self.name,
                project_id: self.project_id,
                scopes,
                limits,
                moderation_exempt: self.moderation_exempt,
                created_at: from_ms(self.created_at)?,
                expires_at: opt_from_ms(self.expires_at)?,
                revoked_at: opt_from_ms(self.revoked_at)?,
                last_used_at: opt_from_ms(self.last_used_at)?,
            }),
            secret_sha256: self.secret_sha256,
        })
    }

    pub(super) fn into_key(self) -> Result<ApiKey, StoreError> {
        self.into_credential().map(|c| std::sync::Arc::unwrap_or_clone(c.key))
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct UsageRow {
    seq: i64,
    request_id: String,
    key_id: Option<String>,
    project_id: Option<String>,
    route: String,
    method: String,
    provider: Option<String>,
    model: Option<String>,
    voice: Option<String>,
    characters: i64,
    audio_ms: i64,
    spend_nanos: i64,
    input_tokens: i64,
    output_tokens: i64,
    bytes_out: i64,
    status: i64,
    error_code: Option<String>,
    latency_ms: i64,
    ttfb_ms: Option<i64>,
    created_at: i64,
}

impl UsageRow {
    pub(super) fn into_record(self) -> Result<UsageRecord, StoreError> {
        Ok(UsageRecord {
            seq: self.seq,
            event: UsageEvent {
                request_id: self.request_id,
                key_id: self.key_id,
                project_id: self.project_id,
                route: self.route,
                method: self.method,
                provider: self.provider,
                model: self.model,
                voice: self.voice,
                characters: self.characters,
                audio_ms: self.audio_ms,
                spend_nanos: self.spend_nanos,
                input_tokens: self.input_tokens,
                output_tokens: self.output_tokens,
                bytes_out: self.bytes_out,
                status: u16::try_from(self.status).map_err(|_| StoreError::Corrupt("status out of range".into()))?,
                error_code: self.error_code,
                latency_ms: self.latency_ms,
                ttfb_ms: self.ttfb_ms,
                created_at: from_ms(self.created_at)?,
                // Read separately, for a whole page at once: see `attach_segments`.
                segments: Vec::new(),
            },
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct SegmentRow {
    event_seq: i64,
    idx: i64,
    provider: String,
    model: String,
    voice: String,
    characters: i64,
    audio_ms: i64,
    spend_nanos: i64,
    input_tokens: i64,
    output_tokens: i64,
    error_code: Option<String>,
}

impl SegmentRow {
    fn into_segment(self) -> Result<UsageSegment, StoreError> {
        Ok(UsageSegment {
            index: u32::try_from(self.idx).map_err(|_| StoreError::Corrupt("segment index out of range".into()))?,
            provider: self.provider,
            model: self.model,
            voice: self.voice,
            characters: self.characters,
            audio_ms: self.audio_ms,
            spend_nanos: self.spend_nanos,
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            error_code: self.error_code,
        })
    }
}

/// Gives each record its segments from `rows` (ordered by event, then index), skipping the lines
/// of events that are not among `records`.
pub(super) fn attach_segments(records: &mut [UsageRecord], rows: Vec<SegmentRow>) -> Result<(), StoreError> {
    let by_seq: std::collections::HashMap<i64, usize> = records.iter().enumerate().map(|(i, r)| (r.seq, i)).collect();
    for row in rows {
        if let Some(&i) = by_seq.get(&row.event_seq) {
            records[i].event.segments.push(row.into_segment()?);
        }
    }
    Ok(())
}

#[derive(sqlx::FromRow)]
pub(super) struct BucketRow {
    /// NULL on the totals row.
    day: Option<String>,
    key_id: Option<String>,
    provider: Option<String>,
    model: Option<String>,
    requests: i64,
    errors: i64,
    characters: i64,
    audio_ms: i64,
    spend_nanos: i64,
    input_tokens: i64,
    output_tokens: i64,
    bytes_out: i64,
}

impl BucketRow {
    /// The buckets and the totals row of the summary statement.
    pub(super) fn into_report(rows: Vec<BucketRow>, filter: &UsageFilter) -> Result<UsageReport, StoreError> {
        let mut totals = None;
        let mut buckets = Vec::with_capacity(rows.len().saturating_sub(1));
        for row in rows {
            match &row.day {
                Some(day) => buckets.push(row.bucket(day)?),
                None => {
                    totals = Some(UsageTotals {
                        requests: row.requests,
                        errors: row.errors,
                        characters: row.characters,
                        audio_ms: row.audio_ms,
                        spend_nanos: row.spend_nanos,
                        input_tokens: row.input_tokens,
                        output_tokens: row.output_tokens,
                        bytes_out: row.bytes_out,
                    })
                }
            }
        }
        let totals = totals.ok_or_else(|| StoreError::Corrupt("the usage summary has no totals row".into()))?;
        Ok(UsageReport { from: filter.from, to: filter.to, totals, buckets, month: None })
    }

    fn bucket(&self, day: &str) -> Result<UsageBucket, StoreError> {
        Ok(UsageBucket {
            day: NaiveDate::parse_from_str(day, "%Y-%m-%d")
                .map_err(|e| StoreError::Corrupt(format!("day {day:?}: {e}")))?,
            key_id: self.key_id.clone(),
            provider: self.provider.clone(),
            model: self.model.clone(),
            requests: self.requests,
            errors: self.errors,
            characters: self.characters,
            audio_ms: self.audio_ms,
            spend_nanos: self.spend_nanos,
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            bytes_out: self.bytes_out,
        })
    }
}

pub(super) fn map_unique(err: sqlx::Error, what: &'static str) -> StoreError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what),
        _ => StoreError::Database(err),
    }
}

/// The `Store` methods, identical for both backends but for the pool type, the migrator and the
/// aggregate statement. A macro rather than a generic so that each backend keeps its concrete,
/// readable sqlx types.
macro_rules! impl_store {
    ($store:ty, $backend:expr, $migrator:expr, $summary_sql:expr) => {
        #[async_trait::async_trait]
        impl $crate::store::Store for $store {
            fn backend(&self) -> $crate::store::Backend {
                $backend
            }

            async fn migrate(&self) -> Result<(), $crate::store::StoreError> {
                $migrator.run(&self.pool).await?;
                Ok(())
            }

            async fn pending_migrations(&self) -> Result<Vec<String>, $crate::store::StoreError> {
                // Before the first migration there is no bookkeeping table to read.
                let bookkept: bool = sqlx::query_scalar(Self::MIGRATIONS_TABLE_EXISTS).fetch_one(&self.pool).await?;
                let applied: Vec<i64> = if bookkept {
                    sqlx::query_scalar($crate::store::sql::APPLIED_MIGRATIONS).fetch_all(&self.pool).await?
                } else {
                    Vec::new()
                };
                Ok($migrator
                    .iter()
                    .filter(|m| !m.migration_type.is_down_migration() && !applied.contains(&m.version))
                    .map(|m| format!("{} {}", m.version, m.description))
                    .collect())
            }

            async fn ping(&self) -> Result<(), $crate::store::StoreError> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn close(&self) {
                self.pool.close().await;
            }

            async fn insert_key(
                &self,
                key: &$crate::domain::NewApiKey,
            ) -> Result<$crate::domain::ApiKey, $crate::store::StoreError> {
                use $crate::store::sql;
                sqlx::query(sql::INSERT_KEY)
                    .bind(&key.id)
                    .bind(&key.name)
                    .bind(&key.project_id)
                    .bind(sql::join_scopes(&key.scopes))
                    .bind(key.secret_sha256.as_slice())
                    .bind(key.limits.rate_limit_per_minute.map(i64::from))
                    .bind(key.limits.characters_per_minute.map(i64::from))
                    .bind(key.limits.max_concurrent.map(i64::from))
                    .bind(key.limits.monthly_character_budget.and_then(|n| i64::try_from(n).ok()))
                    .bind(key.limits.monthly_spend_limit_usd)
                    .bind(sql::to_ms(key.created_at))
                    .bind(key.expires_at.map(sql::to_ms))
                    .bind(key.moderation_exempt)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| sql::map_unique(e, "key id"))?;
                self.get_key(&key.id)
                    .await?
                    .ok_or_else(|| $crate::store::StoreError::Corrupt("inserted key not found".into()))
            }

            async fn get_key(&self, id: &str) -> Result<Option<$crate::domain::ApiKey>, $crate::store::StoreError> {
                Ok(self.get_key_credential(id).await?.map(|c| std::sync::Arc::unwrap_or_clone(c.key)))
            }

            async fn get_key_credential(
                &self,
                id: &str,
            ) -> Result<Option<$crate::domain::KeyCredential>, $crate::store::StoreError> {
                use $crate::store::sql;
                let query = format!("SELECT {} FROM api_keys WHERE id = $1", sql::KEY_COLUMNS);
                sqlx::query_as::<_, sql::KeyRow>(&query)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?
                    .map(sql::KeyRow::into_credential)
                    .transpose()
            }

            async fn list_keys(&self) -> Result<Vec<$crate::domain::ApiKey>, $crate::store::StoreError> {
                use $crate::store::sql;
                let query = format!("SELECT {} FROM api_keys ORDER BY created_at DESC, id", sql::KEY_COLUMNS);
                sqlx::query_as::<_, sql::KeyRow>(&query)
                    .fetch_all(&self.pool)
                    .await?
                    .into_iter()
                    .map(sql::KeyRow::into_key)
                    .collect()
            }

            async fn list_project_keys(
                &self,
                project_id: &str,
            ) -> Result<Vec<$crate::domain::ApiKey>, $crate::store::StoreError> {
                use $crate::store::sql;
                let query = format!(
                    "SELECT {} FROM api_keys WHERE project_id = $1 ORDER BY created_at DESC, id",
                    sql::KEY_COLUMNS
                );
                sqlx::query_as::<_, sql::KeyRow>(&query)
                    .bind(project_id)
                    .fetch_all(&self.pool)
                    .await?
                    .into_iter()
                    .map(sql::KeyRow::into_key)
                    .collect()
            }

            async fn insert_project(&self, project: &$crate::domain::Project) -> Result<(), $crate::store::StoreError> {
                use $crate::store::sql;
                sqlx::query(sql::INSERT_PROJECT)
                    .bind(&project.id)
                    .bind(&project.name)
                    .bind(sql::to_ms(project.created_at))
                    .execute(&self.pool)
                    .await
                    .map_err(|e| sql::map_unique(e, "project id"))?;
                Ok(())
            }

            async fn get_project(
                &self,
                id: &str,
            ) -> Result<Option<$crate::domain::Project>, $crate::store::StoreError> {
                use $crate::store::sql;
                sqlx::query_as::<_, sql::ProjectRow>(sql::GET_PROJECT)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?
                    .map(sql::ProjectRow::into_project)
                    .transpose()
            }

            async fn list_projects(&self) -> Result<Vec<$crate::domain::Project>, $crate::store::StoreError> {
                use $crate::store::sql;
                sqlx::query_as::<_, sql::ProjectRow>(sql::LIST_PROJECTS)
                    .fetch_all(&self.pool)
                    .await?
                    .into_iter()
                    .map(sql::ProjectRow::into_project)
                    .collect()
            }

            async fn put_credential(
                &self,
                project_id: &str,
                credential: &$crate::domain::SealedCredential,
            ) -> Result<(), $crate::store::StoreError> {
                use $crate::store::sql;
                sqlx::query(sql::PUT_CREDENTIAL)
                    .bind(project_id)
                    .bind(&credential.provider)
                    .bind(credential.nonce.as_slice())
                    .bind(credential.ciphertext.as_slice())
                    .bind(&credential.master_key)
                    .bind(sql::to_ms(credential.updated_at))
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn list_credentials(
                &self,
                project_id: &str,
            ) -> Result<Vec<$crate::domain::SealedCredential>, $crate::store::StoreError> {
                use $crate::store::sql;
                sqlx::query_as::<_, sql::CredentialRow>(sql::LIST_CREDENTIALS)
                    .bind(project_id)
                    .fetch_all(&self.pool)
                    .await?
                    .into_iter()
                    .map(sql::CredentialRow::into_sealed)
                    .collect()
            }

            async fn delete_credential(
                &self,
                project_id: &str,
                provider: &str,
            ) -> Result<bool, $crate::store::StoreError> {
                use $crate::store::sql;
                let done =
                    sqlx::query(sql::DELETE_CREDENTIAL).bind(project_id).bind(provider).execute(&self.pool).await?;
                Ok(done.rows_affected() > 0)
            }

            async fn revoke_key(
                &self,
                id: &str,
                at: chrono::DateTime<chrono::Utc>,
            ) -> Result<Option<$crate::domain::ApiKey>, $crate::store::StoreError> {
                use $crate::store::sql;
                let query = format!(
                    "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1 RETURNING {}",
                    sql::KEY_COLUMNS
                );
                sqlx::query_as::<_, sql::KeyRow>(&query)
                    .bind(id)
                    .bind(sql::to_ms(at))
                    .fetch_optional(&self.pool)
                    .await?
                    .map(sql::KeyRow::into_key)
                    .transpose()
            }

            async fn update_key(
                &self,
                id: &str,
                patch: &$crate::domain::KeyPatch,
            ) -> Result<Option<$crate::domain::ApiKey>, $crate::store::StoreError> {
                use $crate::{domain::limits::KeyChange, store::sql};
                if patch.changes.is_empty() {
                    return self.get_key(id).await;
                }
                let statement = sql::update_key_sql(&patch.changes);
                let mut query = sqlx::query_as::<_, sql::KeyRow>(&statement).bind(id);
                for change in &patch.changes {
                    query = match *change {
                        KeyChange::Count(_, value) => query.bind(value),
                        KeyChange::Usd(_, value) => query.bind(value),
                        KeyChange::Flag(_, value) => query.bind(value),
                    };
                }
                query.fetch_optional(&self.pool).await?.map(sql::KeyRow::into_key).transpose()
            }

            async fn month_usage(&self, key_id: &str, month: &str) -> Result<(i64, i64), $crate::store::StoreError> {
                use $crate::store::sql;
                let row: Option<(i64, i64)> =
                    sqlx::query_as(sql::MONTH_USAGE).bind(key_id).bind(month).fetch_optional(&self.pool).await?;
                Ok(row.unwrap_or((0, 0)))
            }

            fn shared_counters(&self) -> Option<std::sync::Arc<dyn $crate::store::SharedCounters>> {
                self.counters()
            }

            async fn insert_usage(
                &self,
                events: &[$crate::domain::UsageEvent],
            ) -> Result<(), $crate::store::StoreError> {
                use $crate::store::sql;
                let mut last_used = std::collections::HashMap::<&str, i64>::new();
                // What each key's events billed per month, added once per key and month.
                let mut months = std::collections::BTreeMap::<(&str, String), (i64, i64)>::new();
                let mut tx = self.pool.begin().await?;
                // One statement per run of events without segments (a batch costs a few round
                // trips, not one per event); an event with segments goes alone, since they need
                // its sequence number.
                let mut rest = events;
                while let Some(first) = rest.first() {
                    let run = if first.segments.is_empty() {
                        rest.iter().take(sql::USAGE_ROWS_PER_INSERT).take_while(|e| e.segments.is_empty()).count()
                    } else {
                        1
                    };
                    let (these, after) = rest.split_at(run);
                    rest = after;
                    let mut insert = sqlx::QueryBuilder::new(sql::INSERT_USAGE_INTO);
                    insert.push_values(these, |mut row, e| {
                        row.push_bind(&e.request_id)
                            .push_bind(e.key_id.as_deref())
                            .push_bind(&e.route)
                            .push_bind(&e.method)
                            .push_bind(e.provider.as_deref())
                            .push_bind(e.model.as_deref())
                            .push_bind(e.voice.as_deref())
                            .push_bind(e.characters)
                            .push_bind(e.audio_ms)
                            .push_bind(e.bytes_out)
                            .push_bind(i64::from(e.status))
                            .push_bind(e.error_code.as_deref())
                            .push_bind(e.latency_ms)
                            .push_bind(e.ttfb_ms)
                            .push_bind(sql::to_ms(e.created_at))
                            .push_bind(e.spend_nanos)
                            .push_bind(e.project_id.as_deref())
                            .push_bind(e.input_tokens)
                            .push_bind(e.output_tokens);
                    });
                    if first.segments.is_empty() {
                        insert.build().execute(&mut *tx).await?;
                    } else {
                        insert.push(" RETURNING seq");
                        let seq: i64 = sqlx::Row::try_get(&insert.build().fetch_one(&mut *tx).await?, 0)?;
                        for s in &first.segments {
                            sqlx::query(sql::INSERT_SEGMENT)
                                .bind(seq)
                                .bind(i64::from(s.index))
                                .bind(&s.provider)
                                .bind(&s.model)
                                .bind(&s.voice)
                                .bind(s.characters)
                                .bind(s.audio_ms)
                                .bind(s.error_code.as_deref())
                                .bind(s.spend_nanos)
                                .bind(s.input_tokens)
                                .bind(s.output_tokens)
                                .execute(&mut *tx)
                                .await?;
                        }
                    }
                    for e in these {
                        let Some(key_id) = e.key_id.as_deref() else { continue };
                        let created_at = sql::to_ms(e.created_at);
                        let at = last_used.entry(key_id).or_insert(created_at);
                        *at = (*at).max(created_at);
                        let billed = (e.billed_characters(), e.spend_nanos);
                        if billed != (0, 0) {
                            let month =
                                months.entry((key_id, $crate::domain::limits::month_of(e.created_at))).or_default();
                            *month = (month.0.saturating_add(billed.0), month.1.saturating_add(billed.1));
                        }
                    }
                }
                for (key_id, at) in last_used {
                    sqlx::query(sql::TOUCH_KEY).bind(key_id).bind(at).execute(&mut *tx).await?;
                }
                for ((key_id, month), (characters, spend)) in months {
                    sqlx::query(sql::ADD_TO_MONTH)
                        .bind(key_id)
                        .bind(month)
                        .bind(characters)
                        .bind(spend)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn usage_summary(
                &self,
                filter: &$crate::domain::UsageFilter,
            ) -> Result<$crate::domain::UsageReport, $crate::store::StoreError> {
                use $crate::store::sql;
                let rows = sqlx::query_as::<_, sql::BucketRow>($summary_sql)
                    .bind(sql::to_ms(filter.from))
                    .bind(sql::to_ms(filter.to))
                    .bind(filter.key_id.as_deref())
                    .fetch_all(&self.pool)
                    .await?;
                sql::BucketRow::into_report(rows, filter)
            }

            async fn list_usage(
                &self,
                key_id: Option<&str>,
                page: $crate::domain::LogPage,
            ) -> Result<Vec<$crate::domain::UsageRecord>, $crate::store::StoreError> {
                use $crate::store::sql;
                let mut records = sqlx::query_as::<_, sql::UsageRow>(sql::LIST_USAGE)
                    .bind(key_id)
                    .bind(page.before)
                    .bind(i64::from(page.limit))
                    .fetch_all(&self.pool)
                    .await?
                    .into_iter()
                    .map(sql::UsageRow::into_record)
                    .collect::<Result<Vec<_>, _>>()?;
                // Newest first, so the page's sequence numbers run from the last record to the first.
                if let (Some(newest), Some(oldest)) = (records.first(), records.last()) {
                    let segments = sqlx::query_as::<_, sql::SegmentRow>(sql::LIST_SEGMENTS)
                        .bind(oldest.seq)
                        .bind(newest.seq)
                        .bind(key_id)
                        .fetch_all(&self.pool)
                        .await?;
                    sql::attach_segments(&mut records, segments)?;
                }
                Ok(records)
            }

            async fn insert_voice(
                &self,
                owner: &str,
                voice: &$crate::domain::Voice,
            ) -> Result<$crate::domain::Voice, $crate::store::StoreError> {
                use $crate::store::sql;
                sqlx::query_as::<_, sql::VoiceRow>(sql::INSERT_VOICE)
                    .bind(&voice.id)
                    .bind(owner)
                    .bind(&voice.title)
                    .bind(&voice.provider)
                    .bind(voice.model.as_deref())
                    .bind(&voice.voice_id)
                    .bind(sql::tags_json(&voice.tags))
                    .bind(voice.gender.map(|g| g.as_str()))
                    .bind(voice.description.as_deref())
                    .bind(sql::options_json(&voice.provider_options))
                    .bind(sql::to_ms(voice.created_at))
                    .bind(sql::to_ms(voice.updated_at))
                    .fetch_one(&self.pool)
                    .await
                    .map_err(|e| sql::map_unique(e, "title"))?
                    .into_voice()
            }

            async fn get_voice(
                &self,
                owner: &str,
                id: &str,
            ) -> Result<Option<$crate::domain::Voice>, $crate::store::StoreError> {
                use $crate::store::sql;
                sqlx::query_as::<_, sql::VoiceRow>(sql::GET_VOICE)
                    .bind(owner)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?
                    .map(sql::VoiceRow::into_voice)
                    .transpose()
            }

            async fn list_voices(
                &self,
                owner: &str,
                page: &$crate::domain::VoicePage,
            ) -> Result<Vec<$crate::domain::Voice>, $crate::store::StoreError> {
                use $crate::store::sql;
                sqlx::query_as::<_, sql::VoiceRow>(sql::LIST_VOICES)
                    .bind(owner)
                    .bind(page.after.as_ref().map(|c| sql::to_ms(c.created_at)))
                    .bind(page.after.as_ref().map(|c| c.id.as_str()))
                    .bind(i64::from(page.limit))
                    .fetch_all(&self.pool)
                    .await?
                    .into_iter()
                    .map(sql::VoiceRow::into_voice)
                    .collect()
            }

            async fn update_voice(
                &self,
                owner: &str,
                id: &str,
                patch: &$crate::domain::VoicePatch,
                at: chrono::DateTime<chrono::Utc>,
            ) -> Result<Option<$crate::domain::Voice>, $crate::store::StoreError> {
                use $crate::store::sql;
                sqlx::query_as::<_, sql::VoiceRow>(sql::UPDATE_VOICE)
                    .bind(owner)
                    .bind(id)
                    .bind(patch.title.as_deref())
                    .bind(patch.provider.as_deref())
                    .bind(patch.model.is_some())
                    .bind(patch.model.as_ref().and_then(Option::as_deref))
                    .bind(patch.voice_id.as_deref())
                    .bind(patch.tags.as_deref().map(sql::tags_json))
                    .bind(patch.gender.is_some())
                    .bind(patch.gender.flatten().map(|g| g.as_str()))
                    .bind(patch.description.is_some())
                    .bind(patch.description.as_ref().and_then(Option::as_deref))
                    .bind(patch.provider_options.as_ref().map(sql::options_json))
                    .bind(sql::to_ms(at))
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(|e| sql::map_unique(e, "title"))?
                    .map(sql::VoiceRow::into_voice)
                    .transpose()
            }

            async fn delete_voice(&self, owner: &str, id: &str) -> Result<bool, $crate::store::StoreError> {
                use $crate::store::sql;
                let done = sqlx::query(sql::DELETE_VOICE).bind(owner).bind(id).execute(&self.pool).await?;
                Ok(done.rows_affected() > 0)
            }

            async fn insert_job(
                &self,
                owner: &str,
                job: &$crate::domain::TtsJob,
            ) -> Result<(), $crate::store::StoreError> {
                use $crate::store::sql;
                sqlx::query(sql::INSERT_JOB)
                    .bind(&job.id)
                    .bind(owner)
                    .bind(&job.request)
                    .bind(&job.media_type)
                    .bind(job.duration_ms)
                    .bind(job.audio.as_deref().unwrap_or_default())
                    .bind(sql::to_ms(job.created_at))
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn get_job(
                &self,
                owner: &str,
                id: &str,
                audio: bool,
            ) -> Result<Option<$crate::domain::TtsJob>, $crate::store::StoreError> {
                use $crate::store::sql;
                sqlx::query_as::<_, sql::JobRow>(sql::GET_JOB)
                    .bind(owner)
                    .bind(id)
                    .bind(audio)
                    .fetch_optional(&self.pool)
                    .await?
                    .map(sql::JobRow::into_job)
                    .transpose()
            }

            async fn count_jobs_since(
                &self,
                owner: &str,
                at: chrono::DateTime<chrono::Utc>,
            ) -> Result<u64, $crate::store::StoreError> {
                use $crate::store::sql;
                let count: i64 = sqlx::query_scalar(sql::COUNT_JOBS_SINCE)
                    .bind(owner)
                    .bind(sql::to_ms(at))
                    .fetch_one(&self.pool)
                    .await?;
                Ok(u64::try_from(count).unwrap_or(0))
            }

            async fn delete_jobs_before(
                &self,
                at: chrono::DateTime<chrono::Utc>,
            ) -> Result<u64, $crate::store::StoreError> {
                use $crate::store::sql;
                let done = sqlx::query(sql::DELETE_JOBS_BEFORE).bind(sql::to_ms(at)).execute(&self.pool).await?;
                Ok(done.rows_affected())
            }
        }
    };
}
pub(super) use impl_store;
