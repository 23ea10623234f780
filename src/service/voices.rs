//! Saved voices, each owned by a project (that of the API key that saved it), so that they
//! outlive the key. Every use case takes the owner (a project id), and a voice of another
//! owner is simply not found: its existence is never revealed. Input is validated whole before
//! anything is written, and each problem names its field.
//!
//! Whether the provider and model exist is left to the speech layer, which resolves a voice when
//! a request uses it: providers can be configured after a voice was saved.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::ServiceError;
use crate::{
    domain::{text, FieldError, Gender, PathSegment, Voice, VoiceCursor, VoicePage, VoicePatch},
    providers::Registry,
    store::Store,
};

pub const MAX_TITLE_CHARS: usize = 200;
pub const MAX_DESCRIPTION_CHARS: usize = 2000;
pub const MAX_TAGS: usize = 32;
pub const MAX_TAG_CHARS: usize = 64;
pub const MAX_PAGE: u32 = 200;
pub const DEFAULT_PAGE: u32 = 50;

/// A new voice as the client sent it (`providerOptions` unchecked).
#[derive(Debug, Clone, Default)]
pub struct CreateVoice {
    pub title: String,
    pub provider: String,
    pub model: Option<String>,
    pub voice_id: String,
    pub tags: Vec<String>,
    pub gender: Option<Gender>,
    pub description: Option<String>,
    /// Must be an object; `{}` when absent.
    pub provider_options: Option<Value>,
}

/// A partial update as the client sent it: `None` is an absent field, `Some(None)` a `null`.
/// `null` clears `model`, `gender` and `description`, empties `tags` and `providerOptions`, and
/// is refused for `title`, `provider` and `voiceId`.
#[derive(Debug, Clone, Default)]
pub struct UpdateVoice {
    pub title: Option<Option<String>>,
    pub provider: Option<Option<String>>,
    pub model: Option<Option<String>>,
    pub voice_id: Option<Option<String>>,
    pub tags: Option<Option<Vec<String>>>,
    pub gender: Option<Option<Gender>>,
    pub description: Option<Option<String>>,
    pub provider_options: Option<Option<Value>>,
}

/// One page of voices, newest first.
#[derive(Debug, Clone)]
pub struct VoiceListing {
    pub voices: Vec<Voice>,
    /// Where the next page starts; `None` on the last page.
    pub next_cursor: Option<String>,
    /// The page size used.
    pub limit: u32,
}

pub async fn create(
    store: &dyn Store,
    registry: &Registry,
    owner: &str,
    request: CreateVoice,
) -> Result<Voice, ServiceError> {
    let mut problems = Vec::new();
    let title = check(&mut problems, "title", title(&request.title));
    let provider = check(&mut problems, "provider", provider(&request.provider));
    let model = check(&mut problems, "model", model(request.model));
    let voice_id = check(&mut problems, "voiceId", voice_id(request.voice_id));
    let tags = tags(request.tags, &mut problems);
    let description = check(&mut problems, "description", description(request.description));
    let provider_options = check(&mut problems, "providerOptions", provider_options(request.provider_options));
    let (
        Some(title),
        Some(provider),
        Some(model),
        Some(voice_id),
        Some(tags),
        Some(description),
        Some(provider_options),
    ) = (title, provider, model, voice_id, tags, description, provider_options)
    else {
        return Err(ServiceError::Validation(problems));
    };
    check_options(registry, &provider, &provider_options)?;
    let now = Utc::now();
    let voice = Voice {
        id: uuid::Uuid::now_v7().to_string(),
        title,
        provider,
        model,
        voice_id,
        tags,
        gender: request.gender,
        description,
        provider_options,
        created_at: now,
        updated_at: now,
    };
    Ok(store.insert_voice(owner, &voice).await?)
}

/// One of `owner`'s voices. The speech layer resolves a request's `voiceId` with this.
pub async fn get(store: &dyn Store, owner: &str, id: &str) -> Result<Voice, ServiceError> {
    store.get_voice(owner, id).await?.ok_or_else(|| not_found(id))
}

/// A page of `owner`'s voices, newest first. `cursor` is a `next_cursor` this returned before.
pub async fn list(
    store: &dyn Store,
    owner: &str,
    cursor: Option<&str>,
    limit: Option<u32>,
) -> Result<VoiceListing, ServiceError> {
    let mut problems = Vec::new();
    let limit = limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        problems.push(FieldError::new("limit", format!("must be between 1 and {MAX_PAGE}")));
    }
    let after = cursor.map(decode_cursor);
    if let Some(None) = after {
        problems.push(FieldError::new("cursor", "is not a cursor this API returned"));
    }
    if !problems.is_empty() {
        return Err(ServiceError::Validation(problems));
    }
    // One extra row tells whether another page follows.
    let page = VoicePage { after: after.flatten(), limit: limit + 1 };
    let mut voices = store.list_voices(owner, &page).await?;
    let next_cursor = if voices.len() > limit as usize {
        voices.truncate(limit as usize);
        voices.last().map(|v| encode_cursor(v.created_at, &v.id))
    } else {
        None
    };
    Ok(VoiceListing { voices, next_cursor, limit })
}

/// Options are checked against the provider's passable options when the provider is configured
/// now; otherwise when the voice is used (providers may be configured after voices are saved).
fn check_options(registry: &Registry, provider: &str, options: &Map<String, Value>) -> Result<(), ServiceError> {
    let problems = registry.get(provider).map(|p| p.capabilities().check_options(options)).unwrap_or_default();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ServiceError::Validation(problems))
    }
}

/// Applies a partial update and stamps `updatedAt`.
pub async fn update(
    store: &dyn Store,
    registry: &Registry,
    owner: &str,
    id: &str,
    request: UpdateVoice,
) -> Result<Voice, ServiceError> {
    let mut problems = Vec::new();
    let patch = VoicePatch {
        title: request.title.and_then(|v| check(&mut problems, "title", required(v).and_then(|v| title(&v)))),
        provider: request
            .provider
            .and_then(|v| check(&mut problems, "provider", required(v).and_then(|v| provider(&v)))),
        model: request.model.and_then(|v| check(&mut problems, "model", model(v))),
        voice_id: request.voice_id.and_then(|v| check(&mut problems, "voiceId", required(v).and_then(voice_id))),
        tags: request.tags.and_then(|v| tags(v.unwrap_or_default(), &mut problems)),
        gender: request.gender,
        description: request.description.and_then(|v| check(&mut problems, "description", description(v))),
        provider_options: request
            .provider_options
            .and_then(|v| check(&mut problems, "providerOptions", provider_options(v))),
    };
    if !problems.is_empty() {
        return Err(ServiceError::Validation(problems));
    }
    if let Some(options) = &patch.provider_options {
        let provider = match &patch.provider {
            Some(provider) => provider.clone(),
            None => get(store, owner, id).await?.provider,
        };
        check_options(registry, &provider, options)?;
    }
    store.update_voice(owner, id, &patch, Utc::now()).await?.ok_or_else(|| not_found(id))
}

pub async fn delete(store: &dyn Store, owner: &str, id: &str) -> Result<(), ServiceError> {
    if store.delete_voice(owner, id).await? {
        Ok(())
    } else {
        Err(not_found(id))
    }
}

fn not_found(id: &str) -> ServiceError {
    ServiceError::NotFound { what: "voice", id: id.to_owned() }
}

/// Records a failed check against `field`; the value when it passed.
fn check<T>(problems: &mut Vec<FieldError>, field: &str, checked: Result<T, String>) -> Option<T> {
    checked.map_err(|message| problems.push(FieldError::new(field, message))).ok()
}

fn required<T>(value: Option<T>) -> Result<T, String> {
    value.ok_or_else(|| "may not be null".to_owned())
}

fn chars_between(value: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&value.chars().count())
}

fn title(value: &str) -> Result<String, String> {
    let title = value.trim();
    if chars_between(title, 1, MAX_TITLE_CHARS) {
        Ok(title.to_owned())
    } else {
        Err(format!("must be 1 to {MAX_TITLE_CHARS} characters, not counting surrounding whitespace"))
    }
}

fn provider(value: &str) -> Result<String, String> {
    if text::is_provider_id(value) {
        Ok(value.to_owned())
    } else {
        Err(format!(
            "must be a provider id: a lowercase letter or digit, then up to {} lowercase letters, digits, `-` or `_`",
            text::MAX_PROVIDER_ID_CHARS - 1
        ))
    }
}

fn model(value: Option<String>) -> Result<Option<String>, String> {
    match value.as_deref().and_then(text::identifier_problem) {
        Some(problem) => Err(format!("{problem}, or null for the provider's default")),
        None => Ok(value),
    }
}

fn voice_id(value: String) -> Result<String, String> {
    match text::identifier_problem(&value) {
        None => Ok(value),
        Some(problem) => Err(problem),
    }
}

fn description(value: Option<String>) -> Result<Option<String>, String> {
    match value {
        Some(text) if !chars_between(&text, 0, MAX_DESCRIPTION_CHARS) => {
            Err(format!("must be at most {MAX_DESCRIPTION_CHARS} characters"))
        }
        text => Ok(text),
    }
}

/// Trims each tag; each bad tag is its own problem, at `["tags", index]`.
fn tags(values: Vec<String>, problems: &mut Vec<FieldError>) -> Option<Vec<String>> {
    let before = problems.len();
    if values.len() > MAX_TAGS {
        problems.push(FieldError::new("tags", format!("may hold at most {MAX_TAGS} tags")));
    }
    let tags: Vec<String> = values.iter().map(|tag| tag.trim().to_owned()).collect();
    for (index, tag) in tags.iter().enumerate() {
        if !chars_between(tag, 1, MAX_TAG_CHARS) {
            problems.push(FieldError {
                path: vec![PathSegment::Field("tags".to_owned()), PathSegment::Index(index)],
                message: format!("must be 1 to {MAX_TAG_CHARS} characters, not counting surrounding whitespace"),
            });
        }
    }
    (problems.len() == before).then_some(tags)
}

fn provider_options(value: Option<Value>) -> Result<Map<String, Value>, String> {
    match value {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(options)) => Ok(options),
        Some(_) => Err("must be a JSON object".to_owned()),
    }
}

fn encode_cursor(created_at: DateTime<Utc>, id: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("v{}:{id}", created_at.timestamp_millis()))
}

fn decode_cursor(cursor: &str) -> Option<VoiceCursor> {
    use base64::Engine;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cursor).ok()?;
    let (millis, id) = std::str::from_utf8(&raw).ok()?.strip_prefix('v')?.split_once(':')?;
    let created_at = DateTime::from_timestamp_millis(millis.parse().ok()?)?;
    (!id.is_empty()).then(|| VoiceCursor { created_at, id: id.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let at = DateTime::from_timestamp_millis(1_767_225_600_123).unwrap();
        let id = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
        assert_eq!(decode_cursor(&encode_cursor(at, id)), Some(VoiceCursor { created_at: at, id: id.to_owned() }));
        assert_eq!(decode_cursor("not-a-cursor"), None);
        assert_eq!(decode_cursor(""), None);
        use base64::Engine;
        let encode = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        assert_eq!(decode_cursor(&encode("v12:")), None, "an id is required");
        assert_eq!(decode_cursor(&encode("u12")), None, "a usage cursor is not a voice cursor");
    }

    #[test]
    fn provider_ids_are_slugs() {
        for ok in ["openai", "a", "0", "azure-tts", "play_ht2", &"a".repeat(64)] {
            assert!(provider(ok).is_ok(), "{ok}");
        }
        for bad in ["", "OpenAI", "-x", "_x", "a b", "a/b", "ünï", &"a".repeat(65)] {
            assert!(provider(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lengths_count_characters_not_bytes() {
        assert!(title(&"é".repeat(MAX_TITLE_CHARS)).is_ok());
        assert!(title(&"é".repeat(MAX_TITLE_CHARS + 1)).is_err());
        assert_eq!(title("  Narrator \n").as_deref(), Ok("Narrator"));
        assert!(title("   ").is_err());
        assert!(voice_id(" ".into()).is_err());
        assert_eq!(description(Some(String::new())), Ok(Some(String::new())));
        assert!(model(Some(String::new())).is_err());
    }

    #[test]
    fn tag_problems_name_their_index() {
        let mut problems = Vec::new();
        assert_eq!(tags(vec![" a ".into(), "b".into()], &mut problems), Some(vec!["a".into(), "b".into()]));
        assert!(tags(vec!["a".into(), " ".into(), "x".repeat(65)], &mut problems).is_none());
        let paths: Vec<_> = problems.iter().map(|p| p.path.clone()).collect();
        let at = |i| vec![PathSegment::Field("tags".into()), PathSegment::Index(i)];
        assert_eq!(paths, [at(1), at(2)]);
    }
}
