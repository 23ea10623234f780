//! Bring-your-own provider keys: a project stores its own vendor key
//! (`PUT /v1/api-keys/{providerId}`), sealed under the operator's master key
//! ([`crate::auth::vault`]), and its requests to that vendor use it instead of the operator's.
//!
//! A request's project is its [`Owner`]. The project's sealed keys are read at most once per
//! request, and only when a vendor is about to be called; they are cached for
//! `auth.cache_ttl_secs`, so a key stored or deleted on another replica takes effect there
//! within that time (on the replica that handled it, for requests that start afterwards; one
//! whose read raced the change may cache the old answer for that long). Without a master key the
//! feature is off: nothing is read, and every request uses the operator's keys.

use std::{
    collections::HashMap,
    ops::Deref,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use chrono::Utc;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use utoipa::ToSchema;

use super::{moderation::Screen, ServiceError};
use crate::{
    auth::vault::{MasterKey, OpenError, Sealed},
    domain::{FieldError, SealedCredential},
    providers::{ProviderKey, Registry, SpeechProvider},
    store::{Store, StoreError},
};

/// Longest vendor key accepted. Vendors' keys are far shorter; this bounds what is sealed.
pub const MAX_KEY_LEN: usize = 512;
/// Keys at least this long are listed with their last four characters.
const SUFFIX_FROM_LEN: usize = 16;

type Entry = (Instant, Arc<Vec<SealedCredential>>);

/// The projects' sealed keys: the master key that opens them and a short-lived cache.
pub struct ProviderKeys {
    store: Arc<dyn Store>,
    master: Option<MasterKey>,
    ttl: Duration,
    cache: Mutex<HashMap<String, Entry>>,
}

/// A project's key for one vendor, as `GET /v1/api-keys` lists it: never the key itself.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderKeyInfo {
    pub provider_id: String,
    /// The key's last four characters (for keys of 16 characters or more), to tell keys apart.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_suffix: Option<String>,
    /// Whether this gateway can open the stored key; when not, `problem` says why and requests
    /// to the vendor fail until the key is stored again.
    pub usable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    pub created_at: chrono::DateTime<Utc>,
    pub updated_at: chrono::DateTime<Utc>,
}

impl ProviderKeys {
    const PRUNE_ABOVE: usize = 10_000;

    pub fn new(store: Arc<dyn Store>, master: Option<MasterKey>, ttl: Duration) -> Self {
        Self { store, master, ttl, cache: Mutex::default() }
    }

    /// The owner of a request made with a key of `project_id`, screened by `screen`.
    pub fn owner(self: &Arc<Self>, project_id: &str, screen: Screen) -> Owner {
        Owner { project_id: project_id.to_owned(), keys: self.clone(), loaded: Arc::default(), screen }
    }

    fn master(&self) -> Result<&MasterKey, ServiceError> {
        self.master.as_ref().ok_or(ServiceError::NotConfigured(
            "provider keys are not enabled on this gateway: the operator has not set SPEECHGATE_MASTER_KEY",
        ))
    }

    /// Stores (or replaces) `project_id`'s key for `provider_id`.
    pub async fn put(
        &self,
        registry: &Registry,
        project_id: &str,
        provider_id: &str,
        api_key: &SecretString,
    ) -> Result<(), ServiceError> {
        let master = self.master()?;
        check_provider(registry, provider_id)?;
        let key = api_key.expose_secret();
        // Never echo the value: it is a secret, and a wrong one is still someone's.
        let problem = if key.is_empty() || key.len() > MAX_KEY_LEN {
            Some(format!("must be 1 to {MAX_KEY_LEN} characters"))
        } else if !key.bytes().all(|b| b.is_ascii_graphic()) {
            Some("must be printable ASCII without spaces (it is sent in an HTTP header)".to_owned())
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(ServiceError::Validation(vec![FieldError::new("apiKey", problem)]));
        }
        let Sealed { nonce, ciphertext } =
            master.seal(project_id, provider_id, api_key).map_err(ServiceError::Internal)?;
        let now = Utc::now();
        let sealed = SealedCredential {
            provider: provider_id.to_owned(),
            nonce,
            ciphertext,
            master_key: master.fingerprint().to_owned(),
            created_at: now,
            updated_at: now,
        };
        self.store.put_credential(project_id, &sealed).await?;
        self.forget(project_id);
        Ok(())
    }

    /// Deletes `project_id`'s key for `provider_id`; `NotFound` when it has none.
    pub async fn delete(&self, registry: &Registry, project_id: &str, provider_id: &str) -> Result<(), ServiceError> {
        self.master()?;
        check_provider(registry, provider_id)?;
        let deleted = self.store.delete_credential(project_id, provider_id).await?;
        self.forget(project_id);
        if !deleted {
            return Err(ServiceError::NotFound { what: "provider key for", id: provider_id.to_owned() });
        }
        Ok(())
    }

    /// The ids of the providers `project_id` has stored a key for (none while the feature is
    /// off), whether or not this gateway can open them.
    pub async fn stored_providers(&self, project_id: &str) -> Result<Vec<String>, ServiceError> {
        if self.master.is_none() {
            return Ok(Vec::new());
        }
        Ok(self.sealed(project_id).await?.iter().map(|c| c.provider.clone()).collect())
    }

    /// The providers `project_id` has a key for.
    pub async fn list(&self, project_id: &str) -> Result<Vec<ProviderKeyInfo>, ServiceError> {
        let master = self.master()?;
        let stored = self.store.list_credentials(project_id).await?;
        Ok(stored
            .into_iter()
            .map(|c| {
                let opened = open(master, project_id, &c);
                let key_suffix = opened.as_ref().ok().and_then(|k| {
                    let k = k.expose_secret();
                    (k.len() >= SUFFIX_FROM_LEN).then(|| k[k.len() - 4..].to_owned())
                });
                ProviderKeyInfo {
                    key_suffix,
                    usable: opened.is_ok(),
                    problem: opened.err().map(|e| format!("the stored key cannot be used: {e}; store it again")),
                    provider_id: c.provider,
                    created_at: c.created_at,
                    updated_at: c.updated_at,
                }
            })
            .collect())
    }

    /// The project's sealed keys: from the cache while fresh, else from the store. When the
    /// store fails, a stale entry is better than none (the database may be briefly away).
    async fn sealed(&self, project_id: &str) -> Result<Arc<Vec<SealedCredential>>, StoreError> {
        let cached = self.lock().get(project_id).cloned();
        if let Some((at, sealed)) = &cached {
            if at.elapsed() < self.ttl {
                return Ok(sealed.clone());
            }
        }
        match self.store.list_credentials(project_id).await {
            Ok(found) => {
                let found = Arc::new(found);
                let mut cache = self.lock();
                if cache.len() >= Self::PRUNE_ABOVE {
                    cache.retain(|_, (at, _)| at.elapsed() < self.ttl);
                }
                cache.insert(project_id.to_owned(), (Instant::now(), found.clone()));
                Ok(found)
            }
            Err(error) => cached.map(|(_, sealed)| sealed).ok_or(error),
        }
    }

    fn forget(&self, project_id: &str) {
        self.lock().remove(project_id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn open(master: &MasterKey, project_id: &str, sealed: &SealedCredential) -> Result<SecretString, OpenError> {
    let value = Sealed { nonce: sealed.nonce.clone(), ciphertext: sealed.ciphertext.clone() };
    master.open(project_id, &sealed.provider, &sealed.master_key, &value)
}

/// `provider_id` must name a provider this gateway serves that takes an API key.
fn check_provider(registry: &Registry, provider_id: &str) -> Result<(), ServiceError> {
    let not_found = || ServiceError::NotFound {
        what: "provider",
        id: crate::domain::text::for_record(provider_id.chars().take(64).collect()),
    };
    let provider = registry.get(provider_id).ok_or_else(not_found)?;
    if !provider.capabilities().takes_api_key {
        let message = format!("{provider_id} runs inside the gateway and takes no API key");
        return Err(ServiceError::Validation(vec![FieldError::new("providerId", message)]));
    }
    Ok(())
}

/// Whose request this is: its project, and that project's own vendor keys, read when first
/// needed and then kept for the rest of the request. Dereferences to the project id, which
/// owns saved voices and jobs.
#[derive(Clone)]
pub struct Owner {
    project_id: String,
    keys: Arc<ProviderKeys>,
    loaded: Arc<tokio::sync::OnceCell<Arc<Vec<SealedCredential>>>>,
    /// The content moderation the request's key is subject to.
    screen: Screen,
}

impl Deref for Owner {
    type Target = str;

    fn deref(&self) -> &str {
        &self.project_id
    }
}

impl Owner {
    /// The same project for another request (a socket's next command): its provider keys are
    /// read again, through the cache, rather than kept for the socket's whole life.
    pub fn renewed(&self) -> Owner {
        self.keys.owner(&self.project_id, self.screen.clone())
    }

    /// The content moderation the request's key is subject to.
    pub fn screen(&self) -> &Screen {
        &self.screen
    }

    /// The project's own key for `provider_id`, if it stored one; `None` means the operator's
    /// key is used. A stored key this gateway cannot open is an error, never a fallback to the
    /// operator's key nor garbage sent to the vendor.
    /// Providers that take no key (`local`) cost no lookup.
    pub async fn credential(&self, provider: &dyn SpeechProvider) -> Result<Option<ProviderKey>, ServiceError> {
        let (Some(master), true) = (&self.keys.master, provider.capabilities().takes_api_key) else {
            return Ok(None);
        };
        let provider_id = provider.id();
        let sealed = self.loaded.get_or_try_init(|| self.keys.sealed(&self.project_id)).await?;
        let Some(stored) = sealed.iter().find(|c| c.provider == provider_id) else {
            return Ok(None);
        };
        match open(master, &self.project_id, stored) {
            Ok(key) => Ok(Some(ProviderKey::new(key))),
            Err(error) => {
                tracing::warn!(project = %self.project_id, provider = provider_id, %error, "a stored provider key cannot be opened");
                Err(ServiceError::ProviderKeyUnusable(format!(
                    "this project's own {provider_id} key cannot be used: {error}. Store it again with PUT /v1/api-keys/{provider_id}"
                )))
            }
        }
    }
}
