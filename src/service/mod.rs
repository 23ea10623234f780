//! Use cases. Handlers and the CLI call these; these call the store and, later, providers.

pub mod keys;
pub mod speech;
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
    /// A bug: something the service checked earlier failed later.
    #[error("{0}")]
    Internal(String),
}
