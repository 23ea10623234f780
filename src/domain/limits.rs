//! A key's limits and budgets, the changes `PATCH /admin/v1/keys/{id}` may make, and the price
//! table spend is computed from.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::FieldError;

/// What one key may use. Every member is optional: `null` means no limit of that kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyLimits {
    /// Requests per minute (a sliding window). Shared by every replica on PostgreSQL; per
    /// replica on SQLite.
    pub rate_limit_per_minute: Option<u32>,
    /// Characters of text to synthesise per minute (a sliding window), shared like the above.
    pub characters_per_minute: Option<u32>,
    /// Requests in progress at once, overriding `auth.max_concurrent_per_key`. Shared by every
    /// replica on PostgreSQL (leases that expire if a replica dies); per replica on SQLite.
    pub max_concurrent: Option<u32>,
    /// Characters per UTC calendar month; a request that would cross it is refused with 402.
    pub monthly_character_budget: Option<u64>,
    /// US dollars per UTC calendar month, priced by `[prices]`; a request whose estimated cost
    /// would cross it is refused with 402.
    pub monthly_spend_limit_usd: Option<f64>,
}

/// The largest values accepted: far above any real use, low enough that no arithmetic on them
/// overflows and no typo (a negative number read as unsigned, an extra six zeros) is stored.
pub const MAX_REQUESTS_PER_MINUTE: u64 = 1_000_000;
pub const MAX_CHARACTERS_PER_MINUTE: u64 = 1_000_000_000;
pub const MAX_CONCURRENT: u64 = 100_000;
pub const MAX_MONTHLY_CHARACTERS: u64 = 1_000_000_000_000_000;
pub const MAX_MONTHLY_SPEND_USD: f64 = 1_000_000_000.0;

impl KeyLimits {
    /// The problems of limits given at key creation, by field name.
    pub fn problems(&self) -> Vec<FieldError> {
        let mut problems = Vec::new();
        let count = |field: &str, value: Option<u64>, max: u64, problems: &mut Vec<FieldError>| {
            if let Some(problem) = value.and_then(|v| count_problem(v, max)) {
                problems.push(FieldError::new(field, problem));
            }
        };
        count("rateLimitPerMinute", self.rate_limit_per_minute.map(u64::from), MAX_REQUESTS_PER_MINUTE, &mut problems);
        count(
            "charactersPerMinute",
            self.characters_per_minute.map(u64::from),
            MAX_CHARACTERS_PER_MINUTE,
            &mut problems,
        );
        count("maxConcurrent", self.max_concurrent.map(u64::from), MAX_CONCURRENT, &mut problems);
        count("monthlyCharacterBudget", self.monthly_character_budget, MAX_MONTHLY_CHARACTERS, &mut problems);
        if let Some(problem) = self.monthly_spend_limit_usd.and_then(usd_problem) {
            problems.push(FieldError::new("monthlySpendLimitUsd", problem));
        }
        problems
    }

    /// Whether any limit that needs the request's characters is set.
    pub fn needs_admission(&self) -> bool {
        self.characters_per_minute.is_some()
            || self.monthly_character_budget.is_some()
            || self.monthly_spend_limit_usd.is_some()
    }
}

fn count_problem(value: u64, max: u64) -> Option<String> {
    (!(1..=max).contains(&value)).then(|| format!("must be 1 to {max}, or null for no limit"))
}

fn usd_problem(value: f64) -> Option<String> {
    (!(value.is_finite() && value > 0.0 && value <= MAX_MONTHLY_SPEND_USD))
        .then(|| format!("must be more than 0 and at most {MAX_MONTHLY_SPEND_USD}, or null for no limit"))
}

/// One change to one column of a key. `None` clears it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum KeyChange {
    Count(&'static str, Option<i64>),
    Usd(&'static str, Option<f64>),
    Flag(&'static str, bool),
}

/// The changes of a JSON merge patch (RFC 7396) to a key: members absent are left alone, a
/// member set to `null` clears that limit.
///
/// Adding a patchable member is one entry in [`KeyPatch::MEMBERS`]: its wire name, how its
/// value is read, and the column it sets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyPatch {
    pub changes: Vec<KeyChange>,
}

type ReadMember = fn(&Value) -> Result<KeyChange, String>;

impl KeyPatch {
    /// The members a patch may hold.
    pub const MEMBERS: &'static [(&'static str, ReadMember)] = &[
        ("rateLimitPerMinute", |v| {
            read_count(v, MAX_REQUESTS_PER_MINUTE).map(|n| KeyChange::Count("rate_limit_per_minute", n))
        }),
        ("charactersPerMinute", |v| {
            read_count(v, MAX_CHARACTERS_PER_MINUTE).map(|n| KeyChange::Count("characters_per_minute", n))
        }),
        ("maxConcurrent", |v| read_count(v, MAX_CONCURRENT).map(|n| KeyChange::Count("max_concurrent", n))),
        ("monthlyCharacterBudget", |v| {
            read_count(v, MAX_MONTHLY_CHARACTERS).map(|n| KeyChange::Count("monthly_character_budget", n))
        }),
        ("monthlySpendLimitUsd", |v| read_usd(v).map(|n| KeyChange::Usd("monthly_spend_limit_usd", n))),
        ("moderationExempt", |v| {
            v.as_bool()
                .map(|b| KeyChange::Flag("moderation_exempt", b))
                .ok_or_else(|| "must be true or false".to_owned())
        }),
    ];

    /// Reads a merge patch document; every problem is reported at once, each at its member.
    pub fn from_document(document: &Map<String, Value>) -> Result<Self, Vec<FieldError>> {
        let mut changes = Vec::new();
        let mut problems = Vec::new();
        for (name, value) in document {
            match Self::MEMBERS.iter().find(|(member, _)| member == name) {
                Some((_, read)) => match read(value) {
                    Ok(change) => changes.push(change),
                    Err(problem) => problems.push(FieldError::new(name, problem)),
                },
                None => {
                    let known: Vec<&str> = Self::MEMBERS.iter().map(|(member, _)| *member).collect();
                    let name: String = name.chars().filter(|c| !c.is_control()).take(64).collect();
                    problems.push(FieldError::new(
                        &name,
                        format!("is not a member a key's patch may set ({})", known.join(", ")),
                    ));
                }
            }
        }
        if problems.is_empty() {
            Ok(Self { changes })
        } else {
            Err(problems)
        }
    }
}

fn read_count(value: &Value, max: u64) -> Result<Option<i64>, String> {
    if value.is_null() {
        return Ok(None);
    }
    let n = value.as_u64().ok_or_else(|| format!("must be a whole number from 1 to {max}, or null for no limit"))?;
    match count_problem(n, max) {
        Some(problem) => Err(problem),
        None => Ok(i64::try_from(n).ok()),
    }
}

fn read_usd(value: &Value) -> Result<Option<f64>, String> {
    if value.is_null() {
        return Ok(None);
    }
    let n = value.as_f64().ok_or_else(|| "must be a number of US dollars, or null for no limit".to_owned())?;
    match usd_problem(n) {
        Some(problem) => Err(problem),
        None => Ok(Some(n)),
    }
}

/// USD per million characters, by `provider/model` or by provider (`[prices]` in the config).
/// What no entry prices costs nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PriceTable {
    by_name: BTreeMap<String, f64>,
}

/// Money is counted in billionths of a US dollar: one character at $0.001 per million is
/// still one unit, and `i64` holds over nine billion dollars.
pub const NANOS_PER_USD: f64 = 1e9;

impl PriceTable {
    pub fn new(by_name: BTreeMap<String, f64>) -> Self {
        Self { by_name }
    }

    /// USD per million characters for `provider`'s `model`: its own price, else the provider's.
    pub fn per_million(&self, provider: &str, model: &str) -> Option<f64> {
        self.by_name.get(&format!("{provider}/{model}")).or_else(|| self.by_name.get(provider)).copied()
    }

    /// The cost of `characters` characters, in nano-USD (rounded to the nearest).
    pub fn nanos(&self, provider: &str, model: &str, characters: i64) -> i64 {
        let per_million = self.per_million(provider, model).unwrap_or(0.0);
        // USD per million characters × characters = micro-USD; × 1000 = nano-USD.
        let nanos = (per_million * characters as f64 * 1000.0).round();
        if nanos.is_finite() && nanos >= 0.0 {
            nanos.min(i64::MAX as f64) as i64
        } else {
            0
        }
    }
}

/// Nano-USD as the dollars the API shows.
pub fn usd(nanos: i64) -> f64 {
    nanos as f64 / NANOS_PER_USD
}

/// Serializes nano-USD as dollars.
pub fn serialize_usd<S: Serializer>(nanos: &i64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(usd(*nanos))
}

/// A key's use of the current UTC calendar month against its budgets.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MonthToDate {
    /// `YYYY-MM`, UTC.
    pub month: String,
    /// Characters synthesised this month (what the providers were asked to voice).
    pub characters: i64,
    /// Spend this month, priced by `[prices]`.
    #[serde(serialize_with = "serialize_usd")]
    #[schema(value_type = f64)]
    pub spend_usd: i64,
    pub monthly_character_budget: Option<u64>,
    pub monthly_spend_limit_usd: Option<f64>,
}

/// The UTC calendar month of `at` as `YYYY-MM`.
pub fn month_of(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m").to_string()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_patch_names_every_bad_member() {
        let doc = json!({"rateLimitPerMinute": 0, "maxConcurrent": -1, "monthlySpendLimitUsd": "5", "bogus": 1, "charactersPerMinute": null});
        let problems = KeyPatch::from_document(doc.as_object().unwrap()).unwrap_err();
        let fields: Vec<String> = problems.iter().map(|p| format!("{:?}", p.path)).collect();
        assert_eq!(problems.len(), 4, "{fields:?}");
        let ok = json!({"charactersPerMinute": null, "monthlySpendLimitUsd": 2.5});
        let patch = KeyPatch::from_document(ok.as_object().unwrap()).unwrap();
        assert_eq!(
            patch.changes,
            vec![KeyChange::Count("characters_per_minute", None), KeyChange::Usd("monthly_spend_limit_usd", Some(2.5))]
        );
    }

    #[test]
    fn prices_fall_back_to_the_provider_and_count_nanos() {
        let table =
            PriceTable::new(BTreeMap::from([("openai".to_owned(), 15.0), ("openai/tts-1-hd".to_owned(), 30.0)]));
        assert_eq!(table.nanos("openai", "tts-1", 100), 1_500_000);
        assert_eq!(table.nanos("openai", "tts-1-hd", 100), 3_000_000);
        assert_eq!(table.nanos("local", "espeak", 100), 0);
        assert!((usd(table.nanos("openai", "tts-1", 1_000_000)) - 15.0).abs() < 1e-9);
    }
}
