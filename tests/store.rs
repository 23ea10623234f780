//! Every store operation, on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]

mod common;

use chrono::{Duration, TimeZone, Utc};
use common::{test_store, Db};
use speechgate::{
    domain::{LogPage, NewApiKey, Scope, UsageEvent, UsageFilter},
    store::StoreError,
};

fn new_key(id: &str) -> NewApiKey {
    NewApiKey {
        id: id.to_owned(),
        name: format!("key {id}"),
        scopes: vec![Scope::Speech, Scope::Admin],
        rate_limit_per_minute: Some(60),
        expires_at: Some(Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap()),
        secret_sha256: [7; 32],
        created_at: Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap(),
    }
}

fn event(request_id: &str, key_id: Option<&str>, model: &str, at: chrono::DateTime<Utc>, status: u16) -> UsageEvent {
    UsageEvent {
        request_id: request_id.to_owned(),
        key_id: key_id.map(str::to_owned),
        route: "/v1/audio/speech".into(),
        method: "POST".into(),
        provider: Some("openai".into()),
        model: Some(model.to_owned()),
        voice: Some("alloy".into()),
        characters: 10,
        audio_ms: 1500,
        bytes_out: 2048,
        status,
        error_code: (status >= 400).then(|| "validation_failed".to_owned()),
        latency_ms: 12,
        ttfb_ms: Some(5),
        created_at: at,
    }
}

async fn keys_round_trip(db: Db) {
    let (store, _db) = test_store(db).await;
    let key = store.insert_key(&new_key("aaaaaaaaaaaa")).await.unwrap();
    assert_eq!(key.id, "aaaaaaaaaaaa");
    assert_eq!(key.scopes, vec![Scope::Speech, Scope::Admin]);
    assert_eq!(key.rate_limit_per_minute, Some(60));
    assert_eq!(key.created_at, Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap());
    assert!(key.revoked_at.is_none() && key.last_used_at.is_none());

    let credential = store.get_key_credential("aaaaaaaaaaaa").await.unwrap().unwrap();
    assert_eq!(credential.secret_sha256, vec![7; 32]);
    assert_eq!(credential.key, key);
    assert!(store.get_key("missing").await.unwrap().is_none());

    let duplicate = store.insert_key(&new_key("aaaaaaaaaaaa")).await;
    assert!(matches!(duplicate, Err(StoreError::Conflict(_))), "{duplicate:?}");

    let mut later = new_key("bbbbbbbbbbbb");
    later.created_at += Duration::hours(1);
    store.insert_key(&later).await.unwrap();
    let ids: Vec<_> = store.list_keys().await.unwrap().into_iter().map(|k| k.id).collect();
    assert_eq!(ids, ["bbbbbbbbbbbb", "aaaaaaaaaaaa"], "newest first");
}

async fn revoking_is_idempotent(db: Db) {
    let (store, _db) = test_store(db).await;
    store.insert_key(&new_key("aaaaaaaaaaaa")).await.unwrap();
    let first = Utc.with_ymd_and_hms(2026, 5, 1, 0, 0, 0).unwrap();
    let revoked = store.revoke_key("aaaaaaaaaaaa", first).await.unwrap().unwrap();
    assert_eq!(revoked.revoked_at, Some(first));
    let again = store.revoke_key("aaaaaaaaaaaa", first + Duration::days(1)).await.unwrap().unwrap();
    assert_eq!(again.revoked_at, Some(first), "the first revocation time is kept");
    assert!(store.revoke_key("nope", first).await.unwrap().is_none());
}

async fn usage_is_written_summed_and_paged(db: Db) {
    let (store, _db) = test_store(db).await;
    store.insert_key(&new_key("aaaaaaaaaaaa")).await.unwrap();
    store.insert_key(&new_key("bbbbbbbbbbbb")).await.unwrap();
    let day1 = Utc.with_ymd_and_hms(2026, 3, 1, 23, 59, 0).unwrap();
    let day2 = Utc.with_ymd_and_hms(2026, 3, 2, 0, 1, 0).unwrap();
    let events = [
        event("r1", Some("aaaaaaaaaaaa"), "tts-1", day1, 200),
        event("r2", Some("aaaaaaaaaaaa"), "tts-1", day1, 422),
        event("r3", Some("aaaaaaaaaaaa"), "tts-1-hd", day2, 200),
        event("r4", Some("bbbbbbbbbbbb"), "tts-1", day2, 200),
        event("r5", None, "tts-1", day2, 200),
        // A propagated request id may repeat; every request still gets its own event.
        event("r5", Some("bbbbbbbbbbbb"), "tts-1", day2, 200),
    ];
    store.insert_usage(&events[..2]).await.unwrap();
    store.insert_usage(&events[2..]).await.unwrap();

    let key = store.get_key("aaaaaaaaaaaa").await.unwrap().unwrap();
    assert_eq!(key.last_used_at, Some(day2), "last_used_at advances to the newest event");

    let filter = UsageFilter {
        key_id: Some("aaaaaaaaaaaa".into()),
        from: day1 - Duration::days(1),
        to: day2 + Duration::days(1),
    };
    let buckets = store.usage_summary(&filter).await.unwrap();
    let rows: Vec<_> =
        buckets.iter().map(|b| (b.day.to_string(), b.model.clone().unwrap(), b.requests, b.errors)).collect();
    assert_eq!(
        rows,
        [("2026-03-01".to_owned(), "tts-1".to_owned(), 2, 1), ("2026-03-02".to_owned(), "tts-1-hd".to_owned(), 1, 0)]
    );
    assert_eq!(buckets[0].characters, 20);
    assert_eq!(buckets[0].audio_ms, 3000);
    assert_eq!(buckets[0].bytes_out, 4096);

    let everyone = UsageFilter { key_id: None, ..filter.clone() };
    let total: i64 = store.usage_summary(&everyone).await.unwrap().iter().map(|b| b.requests).sum();
    assert_eq!(total, 6);
    let only_day2 = UsageFilter { from: day2, ..everyone };
    let total: i64 = store.usage_summary(&only_day2).await.unwrap().iter().map(|b| b.requests).sum();
    assert_eq!(total, 4, "from is inclusive");

    let page = store.list_usage(Some("aaaaaaaaaaaa"), LogPage { before: None, limit: 2 }).await.unwrap();
    let ids: Vec<_> = page.iter().map(|r| r.event.request_id.as_str()).collect();
    assert_eq!(ids, ["r3", "r2"], "newest first");
    assert_eq!(page[0].event, events[2]);
    let rest = store.list_usage(Some("aaaaaaaaaaaa"), LogPage { before: Some(page[1].seq), limit: 2 }).await.unwrap();
    let ids: Vec<_> = rest.iter().map(|r| r.event.request_id.as_str()).collect();
    assert_eq!(ids, ["r1"]);
    assert_eq!(store.list_usage(None, LogPage { before: None, limit: 100 }).await.unwrap().len(), 6);
}

async fn migrations_are_idempotent_and_ping_works(db: Db) {
    let (store, _db) = test_store(db).await;
    store.migrate().await.unwrap();
    store.ping().await.unwrap();
}

both_databases!(
    keys_round_trip,
    revoking_is_idempotent,
    usage_is_written_summed_and_paged,
    migrations_are_idempotent_and_ping_works
);
