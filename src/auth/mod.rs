//! Who is calling. Resolves the credential of a request to a [`Principal`]: a gateway API key
//! (looked up by its public id, cached briefly, secret compared by hash) or the admin token.

mod limits;
pub mod token;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use secrecy::SecretString;

pub use limits::RateLimiter;
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
    #[error("the admin API is disabled: set SPEECHGATE_ADMIN_TOKEN to enable it")]
    AdminDisabled,
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct Authenticator {
    store: Arc<dyn Store>,
    admin_token: Option<SecretString>,
    cache: KeyCache,
    limiter: RateLimiter,
}

impl Authenticator {
    pub fn new(store: Arc<dyn Store>, admin_token: Option<SecretString>, cache_ttl: Duration) -> Self {
        Self { store, admin_token, cache: KeyCache::new(cache_ttl), limiter: RateLimiter::default() }
    }

    pub fn admin_enabled(&self) -> bool {
        self.admin_token.is_some()
    }

    /// Resolves a presented credential. `admin_route` says whether the admin token is acceptable.
    pub async fn authenticate(&self, credential: Option<&str>, admin_route: bool) -> Result<Principal, AuthError> {
        if admin_route && !self.admin_enabled() {
            return Err(AuthError::AdminDisabled);
        }
        let credential = credential.ok_or(AuthError::Missing)?;
        if let (true, Some(admin)) = (admin_route, &self.admin_token) {
            if token::admin_token_matches(credential, admin) {
                return Ok(Principal::Admin);
            }
        }
        let presented = PresentedKey::parse(credential).ok_or(AuthError::Invalid)?;
        let stored = self.lookup(presented.id).await?.ok_or(AuthError::Invalid)?;
        if !presented.matches(&stored.secret_sha256) {
            return Err(AuthError::Invalid);
        }
        if stored.key.revoked_at.is_some() {
            return Err(AuthError::Revoked);
        }
        if stored.key.is_expired(chrono::Utc::now()) {
            return Err(AuthError::Expired);
        }
        Ok(Principal::Key(stored.key.clone()))
    }

    /// Applies the key's request rate limit; `Err` carries how long to wait.
    pub fn check_rate(&self, key: &ApiKey) -> Result<(), Duration> {
        match key.rate_limit_per_minute {
            Some(limit) => self.limiter.acquire(&key.id, limit, Instant::now()),
            None => Ok(()),
        }
    }

    /// Drops a cached key at once (this replica); other replicas notice within the cache TTL.
    pub fn forget(&self, key_id: &str) {
        self.cache.remove(key_id);
    }

    async fn lookup(&self, id: &str) -> Result<Option<Arc<KeyCredential>>, StoreError> {
        if let Some(hit) = self.cache.get(id, Instant::now()) {
            return Ok(Some(hit));
        }
        let Some(found) = self.store.get_key_credential(id).await? else {
            return Ok(None);
        };
        let found = Arc::new(found);
        self.cache.insert(id, found.clone(), Instant::now());
        Ok(Some(found))
    }
}

/// Key lookups by public id, each kept for a short TTL. Only found keys are cached, so a key
/// created on another replica works at once.
struct KeyCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, (Instant, Arc<KeyCredential>)>>,
}

impl KeyCache {
    const PRUNE_ABOVE: usize = 10_000;

    fn new(ttl: Duration) -> Self {
        Self { ttl, entries: Mutex::default() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, Arc<KeyCredential>)>> {
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn get(&self, id: &str, now: Instant) -> Option<Arc<KeyCredential>> {
        let entries = self.lock();
        let (stored_at, value) = entries.get(id)?;
        (now.saturating_duration_since(*stored_at) < self.ttl).then(|| value.clone())
    }

    fn insert(&self, id: &str, value: Arc<KeyCredential>, now: Instant) {
        let mut entries = self.lock();
        if entries.len() >= Self::PRUNE_ABOVE {
            let ttl = self.ttl;
            entries.retain(|_, (at, _)| now.saturating_duration_since(*at) < ttl);
        }
        entries.insert(id.to_owned(), (now, value));
    }

    fn remove(&self, id: &str) {
        self.lock().remove(id);
    }
}
