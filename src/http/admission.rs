//! The admission of a synthesis: once a request is validated and resolved, and before any
//! provider is called, its characters are counted against its key's characters per minute and
//! monthly budgets ([`crate::auth::Gate`]). Every route that synthesises calls [`admit`] between
//! its `prepare` and its synthesis.

use super::problem::ApiError;
use crate::{
    auth::Charge,
    service::{
        conversation,
        speech::{self, timed::TimedPrepared},
        synthesis::Target,
        usage::UsageDetails,
    },
};

/// A prepared request: what each of its segments will make a provider voice.
pub trait Charges {
    fn targets(&self) -> &[Target];
}

impl Charges for speech::Prepared {
    fn targets(&self) -> &[Target] {
        std::slice::from_ref(&self.target)
    }
}

impl Charges for TimedPrepared {
    fn targets(&self) -> &[Target] {
        std::slice::from_ref(self.target())
    }
}

impl Charges for conversation::Prepared {
    fn targets(&self) -> &[Target] {
        conversation::Prepared::targets(self)
    }
}

/// Admits `prepared` against its key's limits and budgets (a 429 or 402 before any synthesis).
/// A request without a key, or whose key has no such limit, passes at no cost.
pub async fn admit(details: &UsageDetails, prepared: &impl Charges) -> Result<(), ApiError> {
    let Some(gate) = details.gate() else { return Ok(()) };
    let charges: Vec<Charge> = prepared
        .targets()
        .iter()
        .map(|target| Charge {
            provider: target.provider_id().to_owned(),
            model: target.resolved.model.id.clone(),
            characters: target.characters(),
        })
        .collect();
    Ok(gate.admit(&charges).await?)
}
