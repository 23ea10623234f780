//! Use cases. Handlers and the CLI call these; these call the store and, later, providers.

pub mod conversation;
pub mod keys;
pub mod moderation;
pub mod projects;
pub mod provider_keys;
pub mod speech;
pub mod synthesis;
pub mod timestamps;
pub mod usage;
pub mod voices;

use crate::{domain::FieldError, providers::ProviderError, store::StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("the request is not valid")]
    Validation(Vec<FieldError>),
    #[error("{what} {id:?} was not found")]
    NotFound { what: &'static str, id: String },
    /// A request's `voiceId` names no saved voice of the caller's; the problem is at its path.
    #[error("{}", .0.message)]
    VoiceNotFound(FieldError),
    /// The `model` names no model this gateway serves; the message lists the known ones.
    #[error("{0}")]
    UnknownModel(String),
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Native word timing was required and the provider has none (or sent none).
    #[error("{0} reports no word timing")]
    TimestampsUnavailable(String),
    /// One turn of a conversation failed; `error` says how.
    #[error("turn {index}: {error}")]
    Turn { index: usize, error: Box<ServiceError> },
    /// Content moderation refused the request's text, or could not check it.
    #[error(transparent)]
    Moderation(#[from] moderation::Blocked),
    /// A feature this deployment has not enabled; the message says what the operator must set.
    #[error("{0}")]
    NotConfigured(&'static str),
    /// The project's own key for a vendor is stored but cannot be opened (another master key).
    #[error("{0}")]
    ProviderKeyUnusable(String),
    /// A bug: something the service checked earlier failed later.
    #[error("{0}")]
    Internal(String),
}

impl ServiceError {
    /// `error`, as the failure of turn `index`.
    pub fn in_turn(index: usize, error: ServiceError) -> Self {
        match error {
            // A turn's field problems are already located by their paths.
            ServiceError::Validation(_) | ServiceError::Turn { .. } => error,
            other => ServiceError::Turn { index, error: Box::new(other) },
        }
    }
}
