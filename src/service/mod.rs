//! Use cases. Handlers and the CLI call these; these call the store and, later, providers.

pub mod keys;
pub mod usage;
pub mod voices;

use crate::{domain::FieldError, store::StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("the request is not valid")]
    Validation(Vec<FieldError>),
    #[error("{what} {id:?} was not found")]
    NotFound { what: &'static str, id: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}
