//! The vendor drop-ins' wire and its translation to the core: each vendor's request shapes and
//! what they mean (`openai`, `elevenlabs`, `playht`), and what they share — how a vendor's voice
//! id finds the provider and voice that will speak it, and the voices a facade lists. Code
//! written for one vendor names that vendor's voices; the gateway can serve them from any
//! provider. The HTTP handlers (`http::handlers`) stay thin: extract, translate here, call the
//! service, answer.
//!
//! A facade's voice id resolves, in order, to
//! 1. a saved voice of the caller's with that id (`/v1/voices`);
//! 2. `provider:voice` or `provider/model:voice`, when the part before the first `:` names a
//!    provider or model this gateway serves (`local:en-us`, `openai/gpt-4o-mini-tts:onyx`);
//! 3. the facade's configured mapping, `[facades.<vendor>.voices]`, whose values take the same
//!    `model:voice` form;
//! 4. the request's model (or the facade's `default_model`), with the id passed through.

pub mod elevenlabs;
pub mod openai;
pub mod playht;

use crate::service::{synthesis::SegmentInput, ServiceError};
use crate::{
    config::{split_target, FacadeConfig},
    domain::FieldError,
    providers::Registry,
    store::Store,
};

/// Who speaks a facade request's voice, as a segment's addressing fields: `voice_id` for a saved
/// voice, else `model` and `voice`. `model` is the model the request named, if any; `field` is
/// where the voice id came from, for the error when nothing serves it.
pub async fn route_voice(
    registry: &Registry,
    store: &dyn Store,
    owner: &str,
    facade: &FacadeConfig,
    voice: &str,
    model: Option<&str>,
    field: &str,
) -> Result<SegmentInput, ServiceError> {
    claim_voice(registry, store, owner, facade, voice, model).await?.ok_or_else(|| {
        // The id as the caller sent it, but never more of it than a person reads.
        let shown: String = voice.chars().take(64).collect();
        let message = format!(
            "no provider serves voice {shown:?}: name one as \"provider:voice\", or map it in this facade's \
             [facades] voices or default_model"
        );
        ServiceError::Validation(vec![FieldError::new(field, message)])
    })
}

/// [`route_voice`], or `None` when nothing claims the voice and there is no model to pass it to.
pub async fn claim_voice(
    registry: &Registry,
    store: &dyn Store,
    owner: &str,
    facade: &FacadeConfig,
    voice: &str,
    model: Option<&str>,
) -> Result<Option<SegmentInput>, ServiceError> {
    let inline = |model: &str, voice: &str| SegmentInput {
        model: Some(model.to_owned()),
        voice: Some(voice.to_owned()),
        ..SegmentInput::default()
    };
    // Saved voices have UUIDs; other ids never cost a lookup.
    if uuid::Uuid::try_parse(voice).is_ok() && store.get_voice(owner, voice).await?.is_some() {
        return Ok(Some(SegmentInput { voice_id: Some(voice.to_owned()), ..SegmentInput::default() }));
    }
    if let Some((target_model, target_voice)) = split_target(voice) {
        if registry.serves(target_model) {
            return Ok(Some(inline(target_model, target_voice)));
        }
    }
    if let Some((target_model, target_voice)) = facade.voices.get(voice).and_then(|t| split_target(t)) {
        return Ok(Some(inline(target_model, target_voice)));
    }
    Ok(model.or(facade.default_model.as_deref()).map(|model| inline(model, voice)))
}

/// A voice a facade can route, for its voice list.
#[derive(Debug, Clone)]
pub struct FacadeVoice {
    /// What the facade's requests name it by.
    pub id: String,
    pub name: String,
    /// The provider that speaks it (for a mapping: as the mapping names it).
    pub provider: String,
    pub origin: VoiceOrigin,
    pub description: Option<String>,
    pub gender: Option<String>,
    pub language: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoiceOrigin {
    /// `[facades.<vendor>.voices]`.
    Mapped,
    /// One of the caller's saved voices.
    Saved,
    /// A provider's own catalogue.
    Catalogue,
}

/// At most this many pages of saved voices are listed.
const MAX_SAVED_PAGES: usize = 25;

/// Every voice a facade routes, each id once: its mappings, the caller's saved voices, then every
/// provider catalogue as `provider:voice` — except the facade's own vendor's (`native`), whose
/// ids need no prefix. A catalogue that cannot be read now is left out (and logged): the list is
/// what can be known, not an error.
pub async fn voices(
    registry: &Registry,
    store: &dyn Store,
    owner: &str,
    facade: &FacadeConfig,
    native: Option<&str>,
) -> Result<Vec<FacadeVoice>, ServiceError> {
    let entry = |id: String, name: String, provider: &str, origin| FacadeVoice {
        id,
        name,
        provider: provider.to_owned(),
        origin,
        description: None,
        gender: None,
        language: None,
    };
    let mut all = Vec::new();
    for (voice, target) in &facade.voices {
        let provider = target.split([':', '/']).next().unwrap_or_default();
        let mapped = entry(voice.clone(), voice.clone(), provider, VoiceOrigin::Mapped);
        all.push(FacadeVoice { description: Some(format!("mapped to {target}")), ..mapped });
    }
    let mut cursor = None;
    for _ in 0..MAX_SAVED_PAGES {
        let page =
            crate::service::voices::list(store, owner, cursor.as_deref(), Some(crate::service::voices::MAX_PAGE))
                .await?;
        for saved in page.voices {
            let voice = entry(saved.id, saved.title, &saved.provider, VoiceOrigin::Saved);
            all.push(FacadeVoice { description: saved.description, ..voice });
        }
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    for provider in registry.providers().filter(|p| p.capabilities().voices_listable) {
        let id = provider.id();
        let catalogue = match registry.voices(id).await {
            Ok(catalogue) => catalogue,
            Err(error) => {
                tracing::warn!(provider = id, %error, "a voice catalogue is left out of a facade's voice list");
                continue;
            }
        };
        for voice in catalogue.iter() {
            let routed_as = if Some(id) == native { voice.id.clone() } else { format!("{id}:{}", voice.id) };
            all.push(FacadeVoice {
                description: voice.description.clone(),
                gender: voice.gender.clone(),
                language: voice.language.clone(),
                ..entry(routed_as, voice.name.clone(), id, VoiceOrigin::Catalogue)
            });
        }
    }
    let mut seen = std::collections::HashSet::new();
    all.retain(|v| seen.insert(v.id.clone()));
    Ok(all)
}
