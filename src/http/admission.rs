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

/// A prepared request: who each of its segments will be voiced by first (a route's first
/// target: the estimate a budget is checked against).
pub trait Charges {
    fn targets(&self) -> Vec<&Target>;
}

impl Charges for speech::Prepared {
    fn targets(&self) -> Vec<&Target> {
        vec![self.candidates.first()]
    }
}

impl Charges for TimedPrepared {
    fn targets(&self) -> Vec<&Target> {
        vec![self.first_target()]
    }
}

impl Charges for conversation::Prepared {
    fn targets(&self) -> Vec<&Target> {
        conversation::Prepared::targets(self)
    }
}

/// Admits `prepared` against its key's limits and budgets (a 429 or 402 before any synthesis).
/// A request without a key, or whose key has no such limit, passes at no cost.
pub async fn admit(details: &UsageDetails, prepared: &impl Charges) -> Result<(), ApiError> {
    let Some(gate) = details.gate() else { return Ok(()) };
    let charges: Vec<Charge> = prepared
        .targets()
        .into_iter()
        .map(|target| Charge {
            provider: target.provider_id().to_owned(),
            model: target.resolved.model.id.clone(),
            characters: target.characters(),
        })
        .collect();
    Ok(gate.admit(&charges).await?)
}
