//! Content moderation: every text a request would have synthesised is checked with a moderation
//! endpoint (OpenAI's `POST /moderations`, or any service with that API) after the request has
//! been validated and before any provider is called. A flagged text refuses the whole request
//! (`content_moderation_blocked`, `reason.type: "flagged"`); a moderation service that fails,
//! times out or answers nonsense refuses it too (`reason.type: "error_fail_closed"`) unless
//! `fail_open` is set, in which case the request goes through, logged and counted.
//!
//! The texts checked are those the providers would receive (pronunciation rules applied), all of
//! a request's in one call (in batches of [`MAX_INPUTS_PER_CALL`]). Texts are never logged.

mod wire;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use secrecy::{ExposeSecret, SecretString};

use super::ServiceError;
use crate::{config::ModerationConfig, domain::ApiKey, metrics::Metrics};

/// Most texts sent in one moderation call; a conversation with more turns is checked in several
/// calls at once.
const MAX_INPUTS_PER_CALL: usize = 32;
/// Largest answer read: room for every category and score of every input.
const BASE_ANSWER_BYTES: usize = 64 * 1024;
const ANSWER_BYTES_PER_INPUT: usize = 16 * 1024;

/// Why a request was refused by moderation.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Blocked {
    /// The moderation service flagged a text, for these categories (the first flagged text's).
    #[error("the text was refused by content moderation{}", listed(.categories))]
    Flagged { categories: Vec<String> },
    /// The moderation service could not give an answer, and the gateway fails closed.
    #[error("the text could not be checked by content moderation ({0}); nothing was synthesised, retry shortly")]
    FailedClosed(Failure),
}

fn listed(categories: &[String]) -> String {
    if categories.is_empty() {
        String::new()
    } else {
        format!(" (categories: {})", categories.join(", "))
    }
}

impl Blocked {
    /// Speechbase's `reason.type`.
    pub fn reason_type(&self) -> &'static str {
        match self {
            Blocked::Flagged { .. } => "flagged",
            Blocked::FailedClosed(_) => "error_fail_closed",
        }
    }
}

/// How a moderation call failed; also the `reason` label of its metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    #[error("the moderation service did not answer in time")]
    Timeout,
    #[error("the moderation service could not be reached")]
    Unreachable,
    #[error("the moderation service answered with an error status")]
    Status,
    #[error("the moderation service's answer was not valid")]
    Invalid,
}

impl Failure {
    pub fn as_str(self) -> &'static str {
        match self {
            Failure::Timeout => "timeout",
            Failure::Unreachable => "unreachable",
            Failure::Status => "status",
            Failure::Invalid => "invalid_answer",
        }
    }
}

/// The configured moderation endpoint.
pub struct Moderator {
    http: reqwest::Client,
    url: String,
    api_key: Option<SecretString>,
    model: String,
    timeout: Duration,
    fail_open: bool,
    metrics: Arc<Metrics>,
}

impl Moderator {
    /// The moderator `[moderation]` describes (validated with the rest of the configuration).
    pub fn new(
        config: &ModerationConfig,
        providers: &crate::config::ProvidersConfig,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let (url, api_key) =
            config.endpoint(providers).map_err(|(field, message)| anyhow::anyhow!("moderation.{field}: {message}"))?;
        let timeout = Duration::from_millis(config.timeout_ms);
        // No redirects: the key must not travel to another host.
        let http =
            reqwest::Client::builder().connect_timeout(timeout).redirect(reqwest::redirect::Policy::none()).build()?;
        Ok(Self { http, url, api_key, model: config.model.clone(), timeout, fail_open: config.fail_open, metrics })
    }

    /// Each text's judgement, in order, within the configured timeout.
    async fn judge(&self, texts: &[&str]) -> Result<Vec<wire::Judgement>, Failure> {
        let calls = texts.chunks(MAX_INPUTS_PER_CALL).map(|batch| self.call(batch));
        let all = futures::future::try_join_all(calls);
        let batches = tokio::time::timeout(self.timeout, all).await.map_err(|_| Failure::Timeout)??;
        Ok(batches.into_iter().flatten().collect())
    }

    async fn call(&self, input: &[&str]) -> Result<Vec<wire::Judgement>, Failure> {
        let mut request = self.http.post(&self.url).json(&wire::Request { model: &self.model, input });
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key.expose_secret());
        }
        let response =
            request.send().await.map_err(|e| if e.is_timeout() { Failure::Timeout } else { Failure::Unreachable })?;
        if !response.status().is_success() {
            tracing::warn!(target: "speechgate::moderation", status = response.status().as_u16(), "the moderation service refused a check");
            return Err(Failure::Status);
        }
        let limit = BASE_ANSWER_BYTES + ANSWER_BYTES_PER_INPUT * input.len();
        let (body, complete) = crate::providers::read_bounded(response, limit, self.timeout).await;
        if !complete {
            tracing::warn!(target: "speechgate::moderation", limit, "the moderation answer was too large or broke off");
            return Err(Failure::Invalid);
        }
        wire::parse(&body, input.len()).map_err(|problem| {
            tracing::warn!(target: "speechgate::moderation", %problem, "the moderation answer was not valid");
            Failure::Invalid
        })
    }
}

/// Moderation as it applies to one caller: off, exempt, or the moderator. Cheap to clone.
#[derive(Clone, Default)]
pub struct Screen {
    moderator: Option<Arc<Moderator>>,
    exempt: bool,
}

impl Screen {
    /// The screen for requests of `key`.
    pub fn for_key(moderator: Option<&Arc<Moderator>>, key: &ApiKey) -> Self {
        Self { moderator: moderator.cloned(), exempt: key.moderation_exempt }
    }

    /// Checks the one text of a single clip.
    pub async fn admit(&self, text: &str) -> Result<(), ServiceError> {
        self.check(&[text]).await.map_err(|(_, blocked)| ServiceError::Moderation(blocked))
    }

    /// Checks every turn of a conversation in one go: one flagged turn refuses them all, and
    /// the error names the first flagged turn.
    pub async fn admit_turns(&self, texts: &[&str]) -> Result<(), ServiceError> {
        self.check(texts).await.map_err(|(index, blocked)| match index {
            Some(index) => ServiceError::in_turn(index, ServiceError::Moderation(blocked)),
            None => ServiceError::Moderation(blocked),
        })
    }

    /// `Err((index of the first flagged text, why))` when the texts may not be synthesised.
    async fn check(&self, texts: &[&str]) -> Result<(), (Option<usize>, Blocked)> {
        let Some(moderator) = &self.moderator else { return Ok(()) };
        let metrics = &moderator.metrics;
        if self.exempt {
            metrics.moderation("exempt");
            return Ok(());
        }
        if texts.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let judged = moderator.judge(texts).await;
        metrics.moderation_duration.observe(started.elapsed().as_secs_f64());
        match judged {
            Ok(judgements) => match judgements.into_iter().enumerate().find_map(|(i, j)| j.map(|c| (i, c))) {
                Some((index, categories)) => {
                    metrics.moderation("flagged");
                    Err((Some(index), Blocked::Flagged { categories }))
                }
                None => {
                    metrics.moderation("clean");
                    Ok(())
                }
            },
            Err(failure) => {
                metrics.moderation_error(failure.as_str());
                if moderator.fail_open {
                    metrics.moderation("failed_open");
                    tracing::warn!(
                        target: "speechgate::moderation",
                        reason = failure.as_str(),
                        texts = texts.len(),
                        "content moderation failed; the request goes through unchecked (fail_open)"
                    );
                    return Ok(());
                }
                metrics.moderation("failed_closed");
                Err((None, Blocked::FailedClosed(failure)))
            }
        }
    }
}
