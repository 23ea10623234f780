//! One clip of speech: the one-segment case of the synthesis pipeline (`service::synthesis`).
//!
//! Planning: when the provider produces the requested format and rate itself, its bytes pass
//! through untouched. Otherwise the provider is asked for PCM and the gateway transcodes chunk by
//! chunk as audio arrives, never holding the whole clip — except for `volumeDbfs`, which needs
//! the clip's peak and therefore the whole clip.

mod body;
pub mod timed;

use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;

pub(crate) use body::body;

use super::{
    synthesis::{self, Candidates, OutputRequest, Plan, SegmentInput},
    usage::UsageDetails,
    ServiceError,
};
use crate::{
    domain::{
        audio::{AudioFormat, AudioSpec},
        pronounce::Pronunciations,
        FieldError,
    },
    metrics::Metrics,
    providers::Registry,
    store::Store,
};

/// A speech request after the HTTP dialect (Speechbase or OpenAI) has been read.
#[derive(Debug, Clone, Default)]
pub struct SpeechInput {
    pub segment: SegmentInput,
    pub output: OutputRequest,
    pub volume_dbfs: Option<f32>,
    pub pronunciations: Pronunciations,
    /// The provider's own stream only (`/v1/audio/speech/stream`): no conversion, no
    /// normalisation; formats default to the provider's native mp3, else its PCM.
    pub native_only: bool,
}

/// Everything resolved and checked; nothing has been sent upstream yet.
pub struct Prepared {
    /// The targets to try, each with its plan.
    pub candidates: Candidates<Plan>,
}

/// Validates and resolves a request, and has its text moderated. Fails before any provider is
/// called.
pub async fn prepare(
    registry: &Registry,
    store: &dyn Store,
    owner: &super::provider_keys::Owner,
    input: SpeechInput,
) -> Result<Prepared, ServiceError> {
    // Rules are checked before they run on the text.
    let rules = input.pronunciations.check();
    if !rules.is_empty() {
        return Err(ServiceError::Validation(rules));
    }
    let mut problems: Vec<FieldError> = synthesis::check_volume(input.volume_dbfs).into_iter().collect();
    if input.native_only && input.volume_dbfs.is_some() {
        problems.push(FieldError::new("volumeDbfs", "needs the whole clip; use /v1/audio/speech"));
    }
    let resolved = synthesis::resolve(registry, store, owner, input.segment, &input.pronunciations).await;
    let candidates = synthesis::with_problems(resolved, problems)?;
    // Each target of a route gets its own plan: what one makes natively another may not.
    let candidates = candidates.plan(|target, ()| {
        let caps = target.capabilities();
        let mut output = input.output.clone();
        if input.native_only && output.format.is_none() {
            output.format =
                Some(if caps.rates(AudioFormat::Mp3).is_empty() { AudioFormat::Pcm } else { AudioFormat::Mp3 });
        }
        let plan = match synthesis::plan(caps, &output, input.volume_dbfs) {
            Ok(Plan::Transcode { output, .. }) if input.native_only => Err(FieldError::new(
                input.output.field,
                format!(
                    "{} at {} Hz is not a native format of this provider, and this endpoint does not convert; \
                     use /v1/audio/speech",
                    output.format.as_str(),
                    output.sample_rate
                ),
            )),
            other => other,
        };
        plan.map_err(|problem| ServiceError::Validation(vec![problem]))
    })?;
    owner.screen().admit(&candidates.first().spoken.text).await?;
    Ok(Prepared { candidates })
}

/// A synthesis under way: the head is decided, the body streams.
pub struct SpeechOutput {
    pub output: AudioSpec,
    pub provider: String,
    pub model: String,
    pub characters: usize,
    pub body: BoxStream<'static, Result<Bytes, std::io::Error>>,
}

/// Calls the provider and waits for its first event, so a provider that fails at once yields a
/// proper error status instead of a broken 200.
pub async fn synthesize(
    prepared: Prepared,
    details: &UsageDetails,
    metrics: &Arc<Metrics>,
) -> Result<SpeechOutput, ServiceError> {
    let upstream = |plan: &Plan| match *plan {
        Plan::PassThrough { output } => output,
        Plan::Transcode { from, .. } | Plan::Normalize { from, .. } => AudioSpec::pcm(from),
    };
    let (target, &plan, events) = prepared.candidates.call(0, false, details, metrics, upstream).await?;
    let body = body(events, plan, details.clone(), 0)?;
    Ok(SpeechOutput {
        output: plan.output(),
        provider: target.provider_id().to_owned(),
        model: target.resolved.model.id.clone(),
        characters: target.characters(),
        body,
    })
}
