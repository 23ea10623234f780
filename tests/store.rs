//! Every store operation, on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]

mod common;

use chrono::{Duration, TimeZone, Utc};
use common::{test_store, Db};
use serde_json::json;
use speechgate::{
    domain::{
        Gender, KeyLimits, LogPage, NewApiKey, Project, Scope, TtsJob, UsageEvent, UsageFilter, UsageSegment, Voice,
        VoiceCursor, VoicePage, VoicePatch,
    },
    store::{Store, StoreError},
};

fn new_key(id: &str) -> NewApiKey {
    NewApiKey {
        id: id.to_owned(),
        name: format!("key {id}"),
        // Each test key has a project of the same id (see `insert_key`).
        project_id: id.to_owned(),
        scopes: vec![Scope::Speech, Scope::Admin],
        limits: KeyLimits {
            rate_limit_per_minute: Some(60),
            monthly_spend_limit_usd: Some(12.5),
            ..KeyLimits::default()
        },
        moderation_exempt: true,
        expires_at: Some(Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap()),
        secret_sha256: [7; 32],
        created_at: Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap(),
    }
}

fn project(id: &str) -> Project {
    Project {
        id: id.to_owned(),
        name: format!("project {id}"),
        created_at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
    }
}

/// Inserts key `id` and its project (of the same id), which owns the voices and jobs stored
/// under that id.
async fn insert_key(store: &dyn Store, id: &str) {
    store.insert_project(&project(id)).await.unwrap();
    store.insert_key(&new_key(id)).await.unwrap();
}

fn event(request_id: &str, key_id: Option<&str>, model: &str, at: chrono::DateTime<Utc>, status: u16) -> UsageEvent {
    UsageEvent {
        request_id: request_id.to_owned(),
        key_id: key_id.map(str::to_owned),
        project_id: key_id.map(str::to_owned),
        route: "/v1/audio/speech".into(),
        method: "POST".into(),
        provider: Some("openai".into()),
        model: Some(model.to_owned()),
        voice: Some("alloy".into()),
        characters: 10,
        audio_ms: 1500,
        spend_nanos: 0,
        input_tokens: 3,
        output_tokens: 40,
        bytes_out: 2048,
        status,
        error_code: (status >= 400).then(|| "validation_failed".to_owned()),
        latency_ms: 12,
        ttfb_ms: Some(5),
        created_at: at,
        segments: Vec::new(),
    }
}

async fn keys_round_trip(db: Db) {
    let (store, _db) = test_store(db).await;
    store.insert_project(&project("aaaaaaaaaaaa")).await.unwrap();
    let key = store.insert_key(&new_key("aaaaaaaaaaaa")).await.unwrap();
    assert_eq!(key.id, "aaaaaaaaaaaa");
    assert_eq!(key.project_id, "aaaaaaaaaaaa");
    assert_eq!(key.scopes, vec![Scope::Speech, Scope::Admin]);
    assert_eq!(key.limits.rate_limit_per_minute, Some(60));
    assert_eq!(key.limits.monthly_spend_limit_usd, Some(12.5));
    assert_eq!(key.limits.characters_per_minute, None);
    assert!(key.moderation_exempt, "the exemption is stored and read back");
    assert_eq!(key.created_at, Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap());
    assert!(key.revoked_at.is_none() && key.last_used_at.is_none());

    let credential = store.get_key_credential("aaaaaaaaaaaa").await.unwrap().unwrap();
    assert_eq!(credential.secret_sha256, vec![7; 32]);
    assert_eq!(*credential.key, key);
    assert!(store.get_key("missing").await.unwrap().is_none());

    let duplicate = store.insert_key(&new_key("aaaaaaaaaaaa")).await;
    assert!(matches!(duplicate, Err(StoreError::Conflict(_))), "{duplicate:?}");

    let mut later = new_key("bbbbbbbbbbbb");
    later.project_id = "aaaaaaaaaaaa".to_owned();
    later.created_at += Duration::hours(1);
    store.insert_key(&later).await.unwrap();
    let ids: Vec<_> = store.list_keys().await.unwrap().into_iter().map(|k| k.id).collect();
    assert_eq!(ids, ["bbbbbbbbbbbb", "aaaaaaaaaaaa"], "newest first");
    let in_project: Vec<_> = store.list_project_keys("aaaaaaaaaaaa").await.unwrap().into_iter().map(|k| k.id).collect();
    assert_eq!(in_project, ["bbbbbbbbbbbb", "aaaaaaaaaaaa"]);
    assert!(store.list_project_keys("bbbbbbbbbbbb").await.unwrap().is_empty());

    // A key for a project that does not exist is refused by the database itself.
    let mut orphan = new_key("cccccccccccc");
    orphan.project_id = "prj_missing".to_owned();
    assert!(store.insert_key(&orphan).await.is_err());
}

async fn revoking_is_idempotent(db: Db) {
    let (store, _db) = test_store(db).await;
    insert_key(store.as_ref(), "aaaaaaaaaaaa").await;
    let first = Utc.with_ymd_and_hms(2026, 5, 1, 0, 0, 0).unwrap();
    let revoked = store.revoke_key("aaaaaaaaaaaa", first).await.unwrap().unwrap();
    assert_eq!(revoked.revoked_at, Some(first));
    let again = store.revoke_key("aaaaaaaaaaaa", first + Duration::days(1)).await.unwrap().unwrap();
    assert_eq!(again.revoked_at, Some(first), "the first revocation time is kept");
    assert!(store.revoke_key("nope", first).await.unwrap().is_none());
}

async fn usage_is_written_summed_and_paged(db: Db) {
    let (store, _db) = test_store(db).await;
    insert_key(store.as_ref(), "aaaaaaaaaaaa").await;
    insert_key(store.as_ref(), "bbbbbbbbbbbb").await;
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
    let buckets = store.usage_summary(&filter).await.unwrap().buckets;
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
    let total: i64 = store.usage_summary(&everyone).await.unwrap().totals.requests;
    assert_eq!(total, 6);
    let only_day2 = UsageFilter { from: day2, ..everyone };
    let total: i64 = store.usage_summary(&only_day2).await.unwrap().totals.requests;
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

fn segment(index: u32, provider: &str, model: &str, characters: i64, audio_ms: i64) -> UsageSegment {
    UsageSegment {
        index,
        provider: provider.to_owned(),
        model: model.to_owned(),
        voice: format!("voice {index}"),
        characters,
        audio_ms,
        spend_nanos: 0,
        input_tokens: i64::from(index),
        output_tokens: 10 * i64::from(index),
        error_code: None,
    }
}

/// A request of several provider calls, as the meter reports it: totals, and the names only
/// when every call shares them.
fn conversation(request_id: &str, key_id: &str, at: chrono::DateTime<Utc>, segments: Vec<UsageSegment>) -> UsageEvent {
    let shared = |field: fn(&UsageSegment) -> &String| {
        let first = field(&segments[0]);
        segments.iter().all(|s| field(s) == first).then(|| first.clone())
    };
    UsageEvent {
        route: "/v1/audio/conversation".into(),
        provider: shared(|s| &s.provider),
        model: shared(|s| &s.model),
        voice: shared(|s| &s.voice),
        characters: segments.iter().map(|s| s.characters).sum(),
        audio_ms: segments.iter().map(|s| s.audio_ms).sum(),
        input_tokens: segments.iter().map(|s| s.input_tokens).sum(),
        output_tokens: segments.iter().map(|s| s.output_tokens).sum(),
        bytes_out: 9000,
        segments,
        ..event(request_id, Some(key_id), "unused", at, 200)
    }
}

/// A batch longer than one insert statement takes (256 rows), with an event with segments in
/// the middle: every event is written once, in the order given, the segmented one with its
/// segments.
async fn a_long_batch_is_written_whole_and_in_order(db: Db) {
    let (store, _db) = test_store(db).await;
    insert_key(store.as_ref(), "aaaaaaaaaaaa").await;
    let at = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
    let mut events: Vec<UsageEvent> =
        (0..600).map(|i| event(&format!("r{i}"), Some("aaaaaaaaaaaa"), "tts-1", at, 200)).collect();
    events[300] = conversation(
        "r300",
        "aaaaaaaaaaaa",
        at,
        vec![segment(0, "openai", "tts-1", 3, 300), segment(1, "openai", "tts-1", 4, 400)],
    );
    store.insert_usage(&events).await.unwrap();
    let records = store.list_usage(Some("aaaaaaaaaaaa"), LogPage { before: None, limit: 1000 }).await.unwrap();
    let written: Vec<_> = records.iter().rev().map(|r| r.event.request_id.clone()).collect();
    let sent: Vec<_> = events.iter().map(|e| e.request_id.clone()).collect();
    assert_eq!(written, sent, "every event once, oldest first in the order given");
    let segmented = records.iter().find(|r| r.event.request_id == "r300").unwrap();
    assert_eq!(segmented.event.segments.len(), 2, "{segmented:?}");
}

async fn usage_segments_are_stored_listed_and_summed(db: Db) {
    let (store, _db) = test_store(db).await;
    insert_key(store.as_ref(), "aaaaaaaaaaaa").await;
    insert_key(store.as_ref(), "bbbbbbbbbbbb").await;
    let day1 = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
    let day2 = day1 + Duration::days(1);
    let mut failed_turn = segment(1, "elevenlabs", "eleven_v3", 12, 2000);
    failed_turn.error_code = Some("upstream_failed".into());
    let turns = vec![segment(0, "openai", "tts-1", 10, 1500), failed_turn, segment(2, "openai", "tts-1", 8, 1000)];
    let c1 = conversation("c1", "aaaaaaaaaaaa", day1, turns);
    let d1 = conversation(
        "d1",
        "bbbbbbbbbbbb",
        day1,
        vec![segment(0, "openai", "tts-1", 1, 1), segment(1, "openai", "tts-1", 1, 1)],
    );
    let r1 = event("r1", Some("aaaaaaaaaaaa"), "tts-1", day1, 200);
    // A failed request: its two calls share a provider and model, so it is one request, one error.
    let mut c2 = conversation(
        "c2",
        "aaaaaaaaaaaa",
        day2,
        vec![segment(0, "openai", "tts-1", 5, 700), segment(1, "openai", "tts-1", 6, 800)],
    );
    (c2.status, c2.error_code) = (502, Some("upstream_failed".into()));
    // Lines are read back in index order, whatever order they were written in.
    let mut c1_shuffled = c1.clone();
    c1_shuffled.segments.reverse();
    store.insert_usage(&[c1_shuffled, d1.clone(), r1.clone()]).await.unwrap();
    store.insert_usage(std::slice::from_ref(&c2)).await.unwrap();
    assert_eq!(store.get_key("aaaaaaaaaaaa").await.unwrap().unwrap().last_used_at, Some(day2));

    // The page's lines come with it; d1's, written between c1 and r1, stay with d1.
    let page = store.list_usage(Some("aaaaaaaaaaaa"), LogPage { before: None, limit: 10 }).await.unwrap();
    let events: Vec<_> = page.into_iter().map(|r| r.event).collect();
    assert_eq!(events, [c2.clone(), r1, c1]);
    let everyone = store.list_usage(None, LogPage { before: None, limit: 10 }).await.unwrap();
    assert_eq!(everyone[2].event, d1);
    let only_c2 = store.list_usage(None, LogPage { before: None, limit: 1 }).await.unwrap();
    assert_eq!(only_c2[0].event, c2);

    let filter = UsageFilter {
        key_id: Some("aaaaaaaaaaaa".into()),
        from: day1 - Duration::days(1),
        to: day2 + Duration::days(1),
    };
    let report = store.usage_summary(&filter).await.unwrap();
    let rows: Vec<_> = report
        .buckets
        .iter()
        .map(|b| {
            let (provider, model) = (b.provider.as_deref().unwrap(), b.model.as_deref().unwrap());
            (b.day.to_string(), provider, model, b.requests, b.errors, b.characters, b.audio_ms, b.bytes_out)
        })
        .collect();
    let day = |d: chrono::DateTime<Utc>| d.date_naive().to_string();
    assert_eq!(
        rows,
        [
            // c1's failed call.
            (day(day1), "elevenlabs", "eleven_v3", 1, 1, 12, 2000, 0),
            // c1's other two calls and r1: c1 counts once, and its bytes once.
            (day(day1), "openai", "tts-1", 2, 0, 10 + 8 + 10, 1500 + 1000 + 1500, 9000 + 2048),
            (day(day2), "openai", "tts-1", 1, 1, 11, 1500, 9000),
        ]
    );
    // The totals count each request once, though c1 appears under two providers; a request is an
    // error there by its own status (c1 answered 200 although one of its calls failed).
    assert_eq!((report.totals.requests, report.totals.errors), (3, 1));
    assert_eq!(report.totals.bytes_out, 9000 + 2048 + 9000);
    // Tokens: each call's under its provider, and each request's once in the totals. A segment
    // numbered i reports (i, 10 i) tokens; r1 reports (3, 40).
    let tokens: Vec<_> = report.buckets.iter().map(|b| (b.input_tokens, b.output_tokens)).collect();
    assert_eq!(tokens, [(1, 10), (2 + 3, 20 + 40), (1, 10)]);
    assert_eq!((report.totals.input_tokens, report.totals.output_tokens), (3 + 3 + 1, 30 + 40 + 10));
}

/// A conversation whose turn 0 never reached its provider still has its bytes counted once,
/// with its first line.
async fn bytes_count_with_the_first_line_present(db: Db) {
    let (store, _db) = test_store(db).await;
    insert_key(store.as_ref(), "aaaaaaaaaaaa").await;
    let at = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
    let lines = vec![segment(1, "openai", "tts-1", 5, 100), segment(2, "openai", "tts-1", 5, 100)];
    store.insert_usage(&[conversation("c1", "aaaaaaaaaaaa", at, lines)]).await.unwrap();
    let filter = UsageFilter { key_id: None, from: at - Duration::days(1), to: at + Duration::days(1) };
    let report = store.usage_summary(&filter).await.unwrap();
    let bytes: Vec<i64> = report.buckets.iter().map(|b| b.bytes_out).collect();
    assert_eq!((bytes.as_slice(), report.totals.bytes_out), (&[9000][..], 9000));
}

/// An event and its lines are written together or not at all, so a refused line sets the whole
/// event aside (the writer then stores the rest of its batch).
async fn a_refused_segment_refuses_its_event(db: Db) {
    let (store, _db) = test_store(db).await;
    insert_key(store.as_ref(), "aaaaaaaaaaaa").await;
    let at = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
    let twice = vec![segment(0, "openai", "tts-1", 1, 1), segment(0, "openai", "tts-1", 1, 1)];
    let refused = store.insert_usage(&[conversation("c1", "aaaaaaaaaaaa", at, twice)]).await.unwrap_err();
    assert!(refused.is_data_error(), "{refused:?}");
    assert!(store.list_usage(None, LogPage { before: None, limit: 10 }).await.unwrap().is_empty());
}

fn voice(id: &str, title: &str, at: chrono::DateTime<Utc>) -> Voice {
    Voice {
        id: id.to_owned(),
        title: title.to_owned(),
        provider: "openai".into(),
        model: Some("gpt-4o-mini-tts".into()),
        voice_id: "alloy".into(),
        tags: vec!["warm".into(), "narration".into()],
        gender: Some(Gender::Female),
        description: Some("Calm, for audiobooks".into()),
        provider_options: json!({"instructions": "speak slowly", "nested": {"n": [1, 2.5, null, true]}, "ü": "ß"})
            .as_object()
            .unwrap()
            .clone(),
        created_at: at,
        updated_at: at,
    }
}

async fn voices_store(db: Db) -> (std::sync::Arc<dyn Store>, common::TestDb) {
    let (store, test_db) = test_store(db).await;
    insert_key(store.as_ref(), "aaaaaaaaaaaa").await;
    insert_key(store.as_ref(), "bbbbbbbbbbbb").await;
    (store, test_db)
}

async fn voices_round_trip_and_stay_with_their_owner(db: Db) {
    let (store, _db) = voices_store(db).await;
    let at = Utc.with_ymd_and_hms(2026, 4, 1, 12, 0, 0).unwrap() + Duration::milliseconds(123);
    let saved = store.insert_voice("aaaaaaaaaaaa", &voice("v1", "Narrator", at)).await.unwrap();
    assert_eq!(saved, voice("v1", "Narrator", at), "what is stored is what was given, JSON options included");
    assert_eq!(store.get_voice("aaaaaaaaaaaa", "v1").await.unwrap(), Some(saved.clone()));

    let mut bare = voice("v2", "Bare", at);
    (bare.model, bare.gender, bare.description) = (None, None, None);
    bare.tags.clear();
    bare.provider_options.clear();
    assert_eq!(store.insert_voice("aaaaaaaaaaaa", &bare).await.unwrap(), bare);

    assert_eq!(store.get_voice("bbbbbbbbbbbb", "v1").await.unwrap(), None, "another owner never sees it");
    assert_eq!(store.get_voice("aaaaaaaaaaaa", "missing").await.unwrap(), None);
    let page = VoicePage { after: None, limit: 10 };
    assert!(store.list_voices("bbbbbbbbbbbb", &page).await.unwrap().is_empty());
    assert!(store.update_voice("bbbbbbbbbbbb", "v1", &VoicePatch::default(), at).await.unwrap().is_none());
    assert!(!store.delete_voice("bbbbbbbbbbbb", "v1").await.unwrap());
    assert_eq!(store.get_voice("aaaaaaaaaaaa", "v1").await.unwrap(), Some(saved));

    assert!(store.delete_voice("aaaaaaaaaaaa", "v1").await.unwrap());
    assert!(!store.delete_voice("aaaaaaaaaaaa", "v1").await.unwrap(), "deleting twice finds nothing");
    assert_eq!(store.get_voice("aaaaaaaaaaaa", "v1").await.unwrap(), None);
}

async fn voice_titles_are_unique_per_owner(db: Db) {
    let (store, _db) = voices_store(db).await;
    let at = Utc.with_ymd_and_hms(2026, 4, 1, 12, 0, 0).unwrap();
    store.insert_voice("aaaaaaaaaaaa", &voice("v1", "Narrator", at)).await.unwrap();
    let duplicate = store.insert_voice("aaaaaaaaaaaa", &voice("v2", "Narrator", at)).await;
    assert!(matches!(duplicate, Err(StoreError::Conflict("title"))), "{duplicate:?}");
    store.insert_voice("bbbbbbbbbbbb", &voice("v3", "Narrator", at)).await.unwrap();

    store.insert_voice("aaaaaaaaaaaa", &voice("v4", "Host", at)).await.unwrap();
    let rename = VoicePatch { title: Some("Narrator".into()), ..VoicePatch::default() };
    let taken = store.update_voice("aaaaaaaaaaaa", "v4", &rename, at).await;
    assert!(matches!(taken, Err(StoreError::Conflict("title"))), "{taken:?}");
    assert_eq!(store.get_voice("aaaaaaaaaaaa", "v4").await.unwrap().unwrap().title, "Host", "unchanged");
    let own_title = VoicePatch { title: Some("Narrator".into()), ..VoicePatch::default() };
    assert!(store.update_voice("aaaaaaaaaaaa", "v1", &own_title, at).await.unwrap().is_some(), "keeping a title");
}

async fn voices_page_newest_first(db: Db) {
    let (store, _db) = voices_store(db).await;
    let base = Utc.with_ymd_and_hms(2026, 4, 1, 12, 0, 0).unwrap();
    // Two voices share a creation time: the id breaks the tie, so no page repeats or skips one.
    let times = [("v1", 0), ("v2", 1), ("v3", 2), ("v4", 2), ("v5", 3)];
    for (id, offset) in times {
        let at = base + Duration::milliseconds(offset);
        store.insert_voice("aaaaaaaaaaaa", &voice(id, &format!("title {id}"), at)).await.unwrap();
    }
    store.insert_voice("bbbbbbbbbbbb", &voice("other", "title other", base + Duration::days(1))).await.unwrap();

    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store.list_voices("aaaaaaaaaaaa", &VoicePage { after: after.clone(), limit: 2 }).await.unwrap();
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        after = Some(VoiceCursor { created_at: last.created_at, id: last.id.clone() });
        seen.extend(page.into_iter().map(|v| v.id));
    }
    assert_eq!(seen, ["v5", "v4", "v3", "v2", "v1"], "newest first, ties by id, another owner's voice absent");
}

async fn voice_patches_change_only_what_they_name(db: Db) {
    let (store, _db) = voices_store(db).await;
    let at = Utc.with_ymd_and_hms(2026, 4, 1, 12, 0, 0).unwrap();
    let original = store.insert_voice("aaaaaaaaaaaa", &voice("v1", "Narrator", at)).await.unwrap();
    let later = at + Duration::minutes(5);

    let untouched = store.update_voice("aaaaaaaaaaaa", "v1", &VoicePatch::default(), later).await.unwrap().unwrap();
    assert_eq!(untouched, Voice { updated_at: later, ..original.clone() });

    let options = json!({"speed": 1.2}).as_object().unwrap().clone();
    let patch = VoicePatch {
        title: Some("Host".into()),
        model: Some(None),
        tags: Some(vec!["bright".into()]),
        gender: Some(Some(Gender::Neutral)),
        description: Some(None),
        provider_options: Some(options.clone()),
        ..VoicePatch::default()
    };
    let patched = store.update_voice("aaaaaaaaaaaa", "v1", &patch, later).await.unwrap().unwrap();
    let expected = Voice {
        title: "Host".into(),
        model: None,
        tags: vec!["bright".into()],
        gender: Some(Gender::Neutral),
        description: None,
        provider_options: options,
        updated_at: later,
        ..original.clone()
    };
    assert_eq!(patched, expected);
    assert_eq!(store.get_voice("aaaaaaaaaaaa", "v1").await.unwrap().unwrap(), expected);

    let patch = VoicePatch {
        provider: Some("elevenlabs".into()),
        voice_id: Some("21m00Tcm4TlvDq8ikWAM".into()),
        model: Some(Some("eleven_v3".into())),
        gender: Some(None),
        ..VoicePatch::default()
    };
    let patched = store.update_voice("aaaaaaaaaaaa", "v1", &patch, later).await.unwrap().unwrap();
    assert_eq!(
        (patched.provider.as_str(), patched.voice_id.as_str(), patched.model.as_deref(), patched.gender),
        ("elevenlabs", "21m00Tcm4TlvDq8ikWAM", Some("eleven_v3"), None)
    );
    assert_eq!((patched.title.as_str(), patched.created_at), ("Host", original.created_at));
    assert!(store.update_voice("aaaaaaaaaaaa", "nope", &patch, later).await.unwrap().is_none());
}

/// PlayHT jobs: audio bytes come back exactly, only to their owner, and age out.
async fn jobs_round_trip_stay_with_their_owner_and_expire(db: Db) {
    let (store, _db) = voices_store(db).await;
    let at = Utc.with_ymd_and_hms(2026, 4, 1, 12, 0, 0).unwrap() + Duration::milliseconds(7);
    let job = TtsJob {
        id: "job-1".into(),
        request: r#"{"text":"hi"}"#.into(),
        media_type: "audio/mpeg".into(),
        duration_ms: 1234,
        size: 70_000,
        audio: Some((0..=255u8).cycle().take(70_000).collect()),
        created_at: at,
    };
    store.insert_job("aaaaaaaaaaaa", &job).await.unwrap();
    let other = TtsJob { id: "job-2".into(), request: "{}".into(), audio: Some(vec![1, 2, 3]), size: 3, ..job.clone() };
    store.insert_job("aaaaaaaaaaaa", &other).await.unwrap();
    assert!(store.get_job("aaaaaaaaaaaa", "job-3", true).await.unwrap().is_none(), "an unknown id");
    assert_eq!(store.get_job("aaaaaaaaaaaa", "job-2", true).await.unwrap().unwrap().audio, Some(vec![1, 2, 3]));
    let read = store.get_job("aaaaaaaaaaaa", "job-1", true).await.unwrap().unwrap();
    assert_eq!((read.audio, read.request, read.duration_ms, read.created_at), (job.audio, job.request, 1234, at));
    // Without the audio: its size only.
    let meta = store.get_job("aaaaaaaaaaaa", "job-1", false).await.unwrap().unwrap();
    assert_eq!((meta.audio, meta.size), (None, 70_000));
    assert!(store.get_job("bbbbbbbbbbbb", "job-1", true).await.unwrap().is_none(), "another key's job");
    assert_eq!(store.count_jobs_since("aaaaaaaaaaaa", at).await.unwrap(), 2);
    assert_eq!(store.count_jobs_since("aaaaaaaaaaaa", at + Duration::milliseconds(1)).await.unwrap(), 0);
    assert_eq!(store.count_jobs_since("bbbbbbbbbbbb", at).await.unwrap(), 0);
    assert_eq!(store.delete_jobs_before(at).await.unwrap(), 0);
    assert_eq!(store.delete_jobs_before(at + Duration::milliseconds(1)).await.unwrap(), 2);
    assert!(store.get_job("aaaaaaaaaaaa", "job-1", false).await.unwrap().is_none());
}

async fn migrations_are_idempotent_and_ping_works(db: Db) {
    let (store, _db) = test_store(db).await;
    store.migrate().await.unwrap();
    store.ping().await.unwrap();
}

/// A patch sets and clears only what it names; a key's month counts what its events billed —
/// served requests, and the segments that did not fail — and sums their spend.
async fn key_patches_and_billed_months(db: Db) {
    use speechgate::domain::{limits::KeyChange, KeyPatch};
    let (store, _db) = test_store(db).await;
    insert_key(store.as_ref(), "aaaaaaaaaaaa").await;
    let patch = KeyPatch {
        changes: vec![
            KeyChange::Count("rate_limit_per_minute", None),
            KeyChange::Count("max_concurrent", Some(4)),
            KeyChange::Usd("monthly_spend_limit_usd", Some(3.25)),
        ],
    };
    let key = store.update_key("aaaaaaaaaaaa", &patch).await.unwrap().unwrap();
    assert_eq!(
        key.limits,
        KeyLimits { max_concurrent: Some(4), monthly_spend_limit_usd: Some(3.25), ..KeyLimits::default() }
    );
    assert!(store.update_key("nosuchkey000", &patch).await.unwrap().is_none());
    assert_eq!(store.update_key("aaaaaaaaaaaa", &KeyPatch::default()).await.unwrap().unwrap(), key);

    let march = Utc.with_ymd_and_hms(2026, 3, 31, 23, 59, 0).unwrap();
    let april = Utc.with_ymd_and_hms(2026, 4, 1, 0, 0, 1).unwrap();
    let priced = |e: UsageEvent, nanos: i64| UsageEvent { spend_nanos: nanos, ..e };
    let mut failed_turn = segment(1, "openai", "tts-1", 7, 0);
    failed_turn.error_code = Some("provider_unavailable".into());
    let mut served_turn = segment(0, "openai", "tts-1", 4, 900);
    served_turn.spend_nanos = 60_000;
    store
        .insert_usage(&[
            priced(event("r1", Some("aaaaaaaaaaaa"), "tts-1", march, 200), 150_000),
            priced(event("r2", Some("aaaaaaaaaaaa"), "tts-1", april, 200), 150_000),
            event("r3", Some("aaaaaaaaaaaa"), "tts-1", april, 502),
            priced(conversation("r4", "aaaaaaaaaaaa", april, vec![served_turn, failed_turn]), 60_000),
        ])
        .await
        .unwrap();
    assert_eq!(store.month_usage("aaaaaaaaaaaa", "2026-03").await.unwrap(), (10, 150_000));
    assert_eq!(store.month_usage("aaaaaaaaaaaa", "2026-04").await.unwrap(), (14, 210_000), "10 + the 4 served");
    assert_eq!(store.month_usage("aaaaaaaaaaaa", "2026-05").await.unwrap(), (0, 0));
    let filter = UsageFilter { key_id: None, from: march - Duration::days(1), to: april + Duration::days(1) };
    let report = store.usage_summary(&filter).await.unwrap();
    assert_eq!(report.totals.spend_nanos, 360_000);
    let april_tts: i64 =
        report.buckets.iter().filter(|b| b.day.to_string() == "2026-04-01").map(|b| b.spend_nanos).sum();
    assert_eq!(april_tts, 210_000, "segments carry their own spend");
}

both_databases!(
    key_patches_and_billed_months,
    keys_round_trip,
    revoking_is_idempotent,
    usage_is_written_summed_and_paged,
    a_long_batch_is_written_whole_and_in_order,
    usage_segments_are_stored_listed_and_summed,
    a_refused_segment_refuses_its_event,
    bytes_count_with_the_first_line_present,
    migrations_are_idempotent_and_ping_works,
    voices_round_trip_and_stay_with_their_owner,
    voice_titles_are_unique_per_owner,
    voices_page_newest_first,
    voice_patches_change_only_what_they_name,
    jobs_round_trip_stay_with_their_owner_and_expire,
);
