//! Who is calling. Resolves the credential of a request to a [`Principal`]: a gateway API key
//! (looked up by its public id, cached briefly, secret compared by hash) or the admin token.

mod limits;
pub mod quota;
pub mod signed;
pub mod token;
pub mod vault;

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use secrecy::SecretString;

pub use limits::{InFlightSlot, RateLimiter};
pub use quota::{Charge, Gate, Limits, Quota, Refusal, Slot};
pub use signed::Purpose;
use signed::{TokenError, UrlSigner};
pub use token::{mint, MintedKey, PresentedKey};

use crate::{
    domain::{ApiKey, KeyCredential, Scope},
    store::{Store, StoreError},
};

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub enum Principal {
    /// The operator, holding `SPEECHGATE_ADMIN_TOKEN`; valid on `/admin/v1` only.
    Admin,
    Key(Arc<ApiKey>),
}

impl Principal {
    pub fn key_id(&self) -> Option<&str> {
        match self {
            Principal::Admin => None,
            Principal::Key(key) => Some(&key.id),
        }
    }

    pub fn project_id(&self) -> Option<&str> {
        match self {
            Principal::Admin => None,
            Principal::Key(key) => Some(&key.project_id),
        }
    }

    pub fn has_scope(&self, scope: Scope) -> bool {
        match self {
            Principal::Admin => scope == Scope::Admin,
            Principal::Key(key) => key.has_scope(scope),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no API key was sent: use `Authorization: Bearer <key>`")]
    Missing,
    #[error("the API key is not valid")]
    Invalid,
    #[error("the API key has been revoked")]
    Revoked,
    #[error("the API key has expired")]
    Expired,
    #[error("the URL token has expired; ask for a new one")]
    TokenExpired,
    #[error("the admin API is disabled: set SPEECHGATE_ADMIN_TOKEN to enable it")]
    AdminDisabled,
    #[error("too many failed authentications from this address")]
    Throttled(Duration),
    /// The database cannot be reached and the key is not one this replica may serve from its
    /// cache ([`AuthLimits::outage_grace`]).
    #[error("the database is unreachable and this key is not in this replica's cache")]
    Unavailable,
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct Authenticator {
    store: Arc<dyn Store>,
    admin_token: Option<SecretString>,
    cache: KeyCache,
    /// Failed authentications by client address (see `http::client::throttle_key`).
    failures: RateLimiter<IpAddr>,
    limits: AuthLimits,
    signer: UrlSigner,
    outage: Outage,
}

/// The limits the authenticator applies (from `[auth]`).
#[derive(Debug, Clone, Copy)]
pub struct AuthLimits {
    pub cache_ttl: Duration,
    /// Failed authentications per client address per minute before it is throttled.
    pub max_failures_per_minute: u32,
    /// While the database cannot be reached, a key it confirmed within this long (beyond
    /// `cache_ttl`) is still accepted from the cache; other keys get 503. Zero: no grace.
    pub outage_grace: Duration,
}

impl Authenticator {
    pub fn new(
        store: Arc<dyn Store>,
        admin_token: Option<SecretString>,
        limits: AuthLimits,
        url_signing_secret: Option<&SecretString>,
    ) -> Self {
        Self {
            signer: UrlSigner::new(url_signing_secret),
            store,
            admin_token,
            cache: KeyCache::new(limits.cache_ttl, limits.outage_grace),
            failures: RateLimiter::default(),
            limits,
            outage: Outage::default(),
        }
    }

    pub fn admin_enabled(&self) -> bool {
        self.admin_token.is_some()
    }

    /// Resolves a presented credential for a request from `client` (its address, when known).
    /// `admin_route` says whether the admin token is acceptable.
    ///
    /// A client that has failed too often is throttled: until its bucket refills, only keys in
    /// this replica's cache (looked up in the last `cache_ttl_secs`) are accepted from it, with
    /// no database lookup, and the admin API refuses it, so guessing keys or the admin token
    /// costs the guesser and not the database.
    ///
    /// Failures are counted when they happen, so attempts already in flight when the bucket
    /// empties still finish: a burst of guesses can overshoot the limit by the number of
    /// requests in progress (bounded by `server.max_concurrent_requests`). Taking a token before
    /// each attempt would close that gap but would also refuse a legitimate client's cold-cache
    /// burst of requests with a valid key, which matters more.
    pub async fn authenticate(
        &self,
        credential: Option<&str>,
        admin_route: bool,
        client: Option<IpAddr>,
    ) -> Result<Principal, AuthError> {
        let per_minute = self.limits.max_failures_per_minute;
        let throttled = client.and_then(|c| self.failures.check(&c, per_minute, Instant::now()).err());
        let result = self.resolve(credential, admin_route, throttled).await;
        self.count_failure(client, &result);
        result
    }

    /// Counts a failed authentication against `client` when `result` is one (a wrong, revoked or
    /// expired credential; not a database that could not be asked).
    fn count_failure(&self, client: Option<IpAddr>, result: &Result<Principal, AuthError>) {
        let failed = matches!(
            result,
            Err(AuthError::Invalid | AuthError::Revoked | AuthError::Expired | AuthError::TokenExpired)
        );
        if let (Some(client), true) = (client, failed) {
            // The bucket may already be empty; the next check reports the wait.
            let _ = self.failures.acquire(&client, self.limits.max_failures_per_minute, Instant::now());
        }
    }

    /// The key a stored credential holds, unless it has been revoked or has expired.
    fn usable(stored: &KeyCredential) -> Result<Principal, AuthError> {
        if stored.key.revoked_at.is_some() {
            return Err(AuthError::Revoked);
        }
        if stored.key.is_expired(chrono::Utc::now()) {
            return Err(AuthError::Expired);
        }
        Ok(Principal::Key(stored.key.clone()))
    }

    async fn resolve(
        &self,
        credential: Option<&str>,
        admin_route: bool,
        throttled: Option<Duration>,
    ) -> Result<Principal, AuthError> {
        if admin_route && !self.admin_enabled() {
            return Err(AuthError::AdminDisabled);
        }
        let credential = credential.ok_or(AuthError::Missing)?;
        // The admin API has no cache to fall back on, and answering a throttled address's
        // guesses at the admin token would let it guess at full speed: it waits.
        if let (Some(wait), true) = (throttled, admin_route) {
            return Err(AuthError::Throttled(wait));
        }
        if let (true, Some(admin)) = (admin_route, &self.admin_token) {
            if token::admin_token_matches(credential, admin) {
                return Ok(Principal::Admin);
            }
        }
        let presented = match (PresentedKey::parse(credential), throttled) {
            (Some(presented), _) => presented,
            (None, Some(wait)) => return Err(AuthError::Throttled(wait)),
            (None, None) => return Err(AuthError::Invalid),
        };
        let stored = match throttled {
            Some(wait) => self.cache.get(presented.id, Instant::now()).flatten().ok_or(AuthError::Throttled(wait))?,
            None => self.lookup(presented.id).await?.ok_or(AuthError::Invalid)?,
        };
        if !presented.matches(&stored.secret_sha256) {
            return Err(AuthError::Invalid);
        }
        Self::usable(&stored)
    }

    /// A URL token for `key` and `purpose` ([`signed`]), and when it expires (never after the key).
    pub fn url_token(&self, key: &ApiKey, purpose: Purpose) -> (String, chrono::DateTime<chrono::Utc>) {
        let mut expires = chrono::Utc::now() + purpose.lifetime();
        if let Some(key_expires) = key.expires_at {
            expires = expires.min(key_expires);
        }
        (self.signer.sign(purpose, &key.id, expires), expires)
    }

    /// Resolves a URL token from `client` like a key: its signature and expiry, then the key it
    /// names, which must still be valid. Failures count towards the client's throttle.
    pub async fn authenticate_token(
        &self,
        purpose: Purpose,
        token: &str,
        client: Option<IpAddr>,
    ) -> Result<Principal, AuthError> {
        let per_minute = self.limits.max_failures_per_minute;
        if let Some(wait) = client.and_then(|c| self.failures.check(&c, per_minute, Instant::now()).err()) {
            return Err(AuthError::Throttled(wait));
        }
        let result = match self.signer.verify(purpose, token, chrono::Utc::now()) {
            Ok(key_id) => self.current_key(&key_id).await,
            Err(TokenError::Expired) => Err(AuthError::TokenExpired),
            Err(TokenError::Invalid) => Err(AuthError::Invalid),
        };
        self.count_failure(client, &result);
        result
    }

    /// The key with this id if it is still usable (not revoked, not expired), as this replica
    /// knows it: a revocation elsewhere is seen within the cache TTL.
    pub async fn current_key(&self, key_id: &str) -> Result<Principal, AuthError> {
        let stored = self.lookup(key_id).await?.ok_or(AuthError::Invalid)?;
        Self::usable(&stored)
    }

    /// Drops a cached key at once (this replica); other replicas notice within the cache TTL.
    /// A lookup already in flight cannot put the old key back (see [`KeyCache`]).
    pub fn forget(&self, key_id: &str) {
        self.cache.remove(key_id);
    }

    /// The key with this id: from the cache while fresh, else from the database. While the
    /// database is unreachable, a key it confirmed within the outage grace is served from the
    /// cache, and the database is asked again (probed) at most once per [`Outage::PROBE`]; any
    /// other id fails with `Unavailable` (503: the key may well be valid).
    async fn lookup(&self, id: &str) -> Result<Option<Arc<KeyCredential>>, AuthError> {
        let now = Instant::now();
        if let Some(hit) = self.cache.get(id, now) {
            return Ok(hit);
        }
        let stale = self.cache.get_stale(id, now);
        if self.outage.known(now) {
            return stale.map(Some).ok_or(AuthError::Unavailable);
        }
        let generation = self.cache.generation();
        match self.store.get_key_credential(id).await {
            Ok(found) => {
                self.outage.ended();
                let found = found.map(Arc::new);
                self.cache.insert(id, found.clone(), generation, Instant::now());
                Ok(found)
            }
            Err(err) if err.is_unavailable() => {
                self.outage.observed(Instant::now(), &err);
                match stale {
                    Some(stale) => Ok(Some(stale)),
                    None => Err(AuthError::Store(err)),
                }
            }
            Err(err) => Err(AuthError::Store(err)),
        }
    }
}

/// When the database was last found unreachable by a key lookup.
#[derive(Default)]
struct Outage(Mutex<Option<Instant>>);

impl Outage {
    /// How long after a failed lookup the next one asks the database again.
    const PROBE: Duration = Duration::from_secs(1);
    /// A failure this long after the last one is logged as a new outage.
    const QUIET: Duration = Duration::from_secs(60);

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether a lookup failed for want of the database within the last [`Self::PROBE`].
    fn known(&self, now: Instant) -> bool {
        self.lock().is_some_and(|at| now.saturating_duration_since(at) < Self::PROBE)
    }

    fn observed(&self, now: Instant, error: &StoreError) {
        let previous = self.lock().replace(now);
        if previous.is_none_or(|at| now.saturating_duration_since(at) > Self::QUIET) {
            tracing::warn!(
                target: "speechgate::auth",
                %error,
                "the database is unreachable; keys confirmed within auth.outage_grace_secs are served from the cache, others get 503"
            );
        }
    }

    fn ended(&self) {
        if self.lock().take().is_some() {
            tracing::info!(target: "speechgate::auth", "the database is reachable again");
        }
    }
}

/// What a lookup found: the key, or that no key has this id (cached too, briefly, so that
/// made-up ids do not cost a database query each).
type Lookup = Option<Arc<KeyCredential>>;

/// Key lookups by public id, each kept for a short TTL (unknown ids for at most
/// [`KeyCache::NEGATIVE_TTL`], so a key created on another replica works within a second).
///
/// Every removal advances a generation number. A lookup notes the generation before it reads
/// the database and stores its result only if no removal happened meanwhile: a lookup that
/// read a key just before it was revoked cannot put it back into the cache just after.
struct KeyCache {
    ttl: Duration,
    /// How long past `ttl` a found key may still be served while the database is unreachable.
    grace: Duration,
    entries: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    generation: u64,
    keys: HashMap<String, (Instant, Lookup)>,
    /// The size at which expired entries are next swept (twice the size after the last sweep).
    prune_at: usize,
}

impl KeyCache {
    const PRUNE_ABOVE: usize = 10_000;
    const NEGATIVE_TTL: Duration = Duration::from_secs(1);

    fn new(ttl: Duration, grace: Duration) -> Self {
        Self { ttl, grace, entries: Mutex::default() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn ttl_of(&self, lookup: &Lookup) -> Duration {
        match lookup {
            Some(_) => self.ttl,
            None => self.ttl.min(Self::NEGATIVE_TTL),
        }
    }

    /// `Some(lookup)` on a fresh hit.
    fn get(&self, id: &str, now: Instant) -> Option<Lookup> {
        let entries = self.lock();
        let (stored_at, value) = entries.keys.get(id)?;
        (now.saturating_duration_since(*stored_at) < self.ttl_of(value)).then(|| value.clone())
    }

    /// A found key stored within `ttl + grace`, for when the database cannot be asked.
    fn get_stale(&self, id: &str, now: Instant) -> Option<Arc<KeyCredential>> {
        let entries = self.lock();
        let (stored_at, value) = entries.keys.get(id)?;
        let value = value.as_ref()?;
        (now.saturating_duration_since(*stored_at) < self.ttl + self.grace).then(|| value.clone())
    }

    /// How long an entry is kept: found keys for their grace too.
    fn kept_for(&self, lookup: &Lookup) -> Duration {
        match lookup {
            Some(_) => self.ttl + self.grace,
            None => self.ttl_of(lookup),
        }
    }

    fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Stores a lookup begun at `generation`, unless something was removed since.
    fn insert(&self, id: &str, value: Lookup, generation: u64, now: Instant) {
        let mut entries = self.lock();
        if entries.generation != generation {
            return;
        }
        if entries.keys.len() >= entries.prune_at.max(Self::PRUNE_ABOVE) {
            entries.keys.retain(|_, (at, value)| now.saturating_duration_since(*at) < self.kept_for(value));
            entries.prune_at = entries.keys.len() * 2;
        }
        entries.keys.insert(id.to_owned(), (now, value));
    }

    fn remove(&self, id: &str) {
        let mut entries = self.lock();
        entries.generation += 1;
        entries.keys.remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credential(revoked: bool) -> Lookup {
        let key = ApiKey {
            id: "k".into(),
            name: "n".into(),
            project_id: "prj_k".into(),
            scopes: vec![Scope::Speech],
            limits: crate::domain::KeyLimits::default(),
            moderation_exempt: false,
            created_at: chrono::Utc::now(),
            expires_at: None,
            revoked_at: revoked.then(chrono::Utc::now),
            last_used_at: None,
        };
        Some(Arc::new(KeyCredential { key: Arc::new(key), secret_sha256: vec![0; 32] }))
    }

    #[test]
    fn a_lookup_that_began_before_a_revocation_is_not_cached() {
        let cache = KeyCache::new(Duration::from_secs(5), Duration::ZERO);
        let now = Instant::now();
        let began = cache.generation();
        // The key is revoked (and forgotten) while the lookup reads the old row.
        cache.remove("k");
        cache.insert("k", credential(false), began, now);
        assert!(cache.get("k", now).is_none(), "the stale key went back into the cache");
        // A lookup that begins after the revocation is cached as usual.
        cache.insert("k", credential(true), cache.generation(), now);
        assert!(cache.get("k", now).flatten().is_some_and(|c| c.key.revoked_at.is_some()));
    }

    #[test]
    fn found_keys_outlive_their_ttl_only_as_a_grace_for_outages() {
        let cache = KeyCache::new(Duration::from_secs(5), Duration::from_secs(60));
        let now = Instant::now();
        cache.insert("k", credential(false), cache.generation(), now);
        cache.insert("nobody", None, cache.generation(), now);
        let later = now + Duration::from_secs(30);
        assert!(cache.get("k", later).is_none(), "past its TTL the database is asked again");
        assert!(cache.get_stale("k", later).is_some(), "but within the grace it can stand in");
        assert!(cache.get_stale("k", now + Duration::from_secs(66)).is_none(), "not beyond it");
        assert!(cache.get_stale("nobody", now).is_none(), "an unknown id is never vouched for");
        cache.remove("k");
        assert!(cache.get_stale("k", later).is_none(), "a forgotten (revoked) key has no grace");
    }

    #[test]
    fn unknown_ids_are_cached_briefly() {
        let cache = KeyCache::new(Duration::from_secs(5), Duration::ZERO);
        let now = Instant::now();
        cache.insert("nobody", None, cache.generation(), now);
        assert!(matches!(cache.get("nobody", now + Duration::from_millis(500)), Some(None)));
        assert!(cache.get("nobody", now + Duration::from_secs(2)).is_none(), "a negative entry lives 1 s");
    }
}
