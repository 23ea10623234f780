//! What the vendor drop-in routes share: how a vendor's voice id finds the provider and voice
//! that will speak it. Code written for one vendor names that vendor's voices; the gateway can
//! serve them from any provider.
//!
//! A facade's voice id resolves, in order, to
//! 1. a saved voice of the caller's with that id (`/v1/voices`);
//! 2. `provider:voice` or `provider/model:voice`, when the part before the first `:` names a
//!    provider or model this gateway serves (`local:en-us`, `openai/gpt-4o-mini-tts:onyx`);
//! 3. the facade's configured mapping, `[facades.<vendor>.voices]`, whose values take the same
//!    `model:voice` form;
//! 4. the request's model (or the facade's `default_model`), with the id passed through.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{synthesis::SegmentInput, ServiceError};
use crate::{domain::FieldError, providers::Registry, store::Store};

/// `[facades]`: per-vendor voice mappings of the drop-in routes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FacadesConfig {
    pub openai: FacadeConfig,
    pub elevenlabs: FacadeConfig,
    pub playht: FacadeConfig,
}

/// `[facades.<vendor>]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FacadeConfig {
    /// The model (`provider`, `provider/model` or an alias) for voice ids that nothing else
    /// claims and requests that name no model of their own.
    pub default_model: Option<String>,
    /// Vendor voice ids mapped to `model:voice`, e.g. `alloy = "cartesia:a0e99841-..."` or
    /// `JBFqnCBsd6RMkjVDRZzb = "local:en-gb"`.
    pub voices: BTreeMap<String, String>,
}

impl FacadeConfig {
    /// The mapping values that do not have the `model:voice` form, as `(voice, message)`.
    pub fn problems(&self) -> Vec<(String, String)> {
        self.voices
            .iter()
            .filter(|(_, target)| split_target(target).is_none())
            .map(|(voice, target)| (voice.clone(), format!("{target:?} is not of the form \"model:voice\"")))
            .collect()
    }
}

/// `model:voice`, split at the first `:` (model names have none; voice ids may).
fn split_target(target: &str) -> Option<(&str, &str)> {
    target.split_once(':').filter(|(model, voice)| !model.is_empty() && !voice.is_empty())
}

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
        let message = format!(
            "no provider serves voice {voice:?}: name one as \"provider:voice\", or map it in this facade's \
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
        if registry.resolve(target_model).is_ok() {
            return Ok(Some(inline(target_model, target_voice)));
        }
    }
    if let Some((target_model, target_voice)) = facade.voices.get(voice).and_then(|t| split_target(t)) {
        return Ok(Some(inline(target_model, target_voice)));
    }
    Ok(model.or(facade.default_model.as_deref()).map(|model| inline(model, voice)))
}
