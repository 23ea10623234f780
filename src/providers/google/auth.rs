//! A service account's credential: the JSON key file (`GOOGLE_APPLICATION_CREDENTIALS`), an
//! RS256-signed JWT assertion made from it, and the OAuth access token Google's token endpoint
//! exchanges it for (RFC 7523 `jwt-bearer` grant). The token is cached until shortly before it
//! expires; one refresh runs at a time and concurrent requests wait for it.
//!
//! Wire facts (Google's "Using OAuth 2.0 for Server to Server Applications" and the
//! `google-auth-library` sources): claims `iss` = `client_email`, `scope`, `aud` = `token_uri`,
//! `iat`, `exp` ≤ `iat` + 1 h; header `kid` = `private_key_id`; the exchange is a form POST of
//! `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<jwt>`, answered with
//! `{"access_token", "expires_in", "token_type": "Bearer"}` or `{"error", "error_description"}`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::SecretString;
use serde::Serialize;
use tokio::time::Instant;

use super::{wire, ID};
use crate::providers::{
    http::{self, Transport},
    ProviderError,
};

/// Where the token is exchanged when the key file names no `token_uri`.
pub const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// How long an assertion is valid (Google's maximum).
const ASSERTION_LIFETIME: Duration = Duration::from_secs(3600);
/// A token is refreshed this long before it expires (or at half its life, if shorter).
const REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// The longest a token is kept, whatever the endpoint says.
const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Largest key file read; a real one is about 2.3 KB.
const MAX_FILE: u64 = 1024 * 1024;
/// Largest token reply read.
const MAX_TOKEN_REPLY: usize = 64 * 1024;
/// Longest access token accepted (Google's are a few hundred bytes).
const MAX_TOKEN: usize = 8 * 1024;

pub struct ServiceAccount {
    client_email: String,
    key: EncodingKey,
    key_id: Option<String>,
    token_uri: reqwest::Url,
    cached: tokio::sync::Mutex<Option<Token>>,
}

struct Token {
    value: SecretString,
    refresh_at: Instant,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
}

impl ServiceAccount {
    /// Reads and checks the key file. Errors name the file and its problem, never its contents.
    pub fn from_file(path: &str) -> Result<Self, String> {
        let problem = |what: &str| format!("credentials_file {path:?}: {what}");
        let meta = std::fs::metadata(path).map_err(|e| problem(&format!("cannot be read ({})", e.kind())))?;
        if meta.len() > MAX_FILE {
            return Err(problem("is too large to be a service account key"));
        }
        let bytes = std::fs::read(path).map_err(|e| problem(&format!("cannot be read ({})", e.kind())))?;
        // Only the error's position: serde's messages may quote the file's values.
        let file: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| problem(&format!("is not JSON (syntax error at line {}, column {})", e.line(), e.column())))?;
        Self::from_json(&file).map_err(|what| problem(&what))
    }

    fn from_json(file: &serde_json::Value) -> Result<Self, String> {
        let field = |name: &str| file.get(name).and_then(|v| v.as_str()).filter(|v| !v.is_empty());
        if let Some(kind) = field("type").filter(|t| *t != "service_account") {
            let kind = if kind.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') { kind } else { "?" };
            return Err(format!("holds a credential of type {kind:?}, not a service account key"));
        }
        let client_email = field("client_email").ok_or("has no `client_email`")?;
        if client_email.len() > 320 || client_email.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err("has a `client_email` that is not an email address".to_owned());
        }
        let pem = field("private_key").ok_or("has no `private_key`")?;
        let key = EncodingKey::from_rsa_pem(pem.as_bytes())
            .map_err(|_| "has a `private_key` that is not an RSA private key in PEM form".to_owned())?;
        let token_uri = match field("token_uri") {
            None => DEFAULT_TOKEN_URI,
            Some(uri) => uri,
        };
        let token_uri = reqwest::Url::parse(token_uri)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
            .ok_or("has a `token_uri` that is not an http(s) URL")?;
        let key_id = field("private_key_id")
            .filter(|id| id.len() <= 128 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .map(str::to_owned);
        let account = Self {
            client_email: client_email.to_owned(),
            key,
            key_id,
            token_uri,
            cached: tokio::sync::Mutex::new(None),
        };
        // The PEM parses before the key inside it is read: sign once to know it works.
        account.assertion(0).map_err(|_| "has a `private_key` that cannot sign (not a usable RSA key)".to_owned())?;
        Ok(account)
    }

    /// The signed assertion, issued at `iat` (seconds since the epoch).
    fn assertion(&self, iat: u64) -> Result<String, jsonwebtoken::errors::Error> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = self.key_id.clone();
        let claims = Claims {
            iss: &self.client_email,
            scope: SCOPE,
            aud: self.token_uri.as_str(),
            iat,
            exp: iat + ASSERTION_LIFETIME.as_secs(),
        };
        jsonwebtoken::encode(&header, &claims, &self.key)
    }

    /// A valid access token: the cached one, or a fresh one when it is about to expire.
    pub async fn token(&self, transport: &Transport) -> Result<SecretString, ProviderError> {
        let mut cached = self.cached.lock().await;
        if let Some(token) = cached.as_ref().filter(|t| Instant::now() < t.refresh_at) {
            return Ok(token.value.clone());
        }
        let token = self.fetch(transport).await?;
        let value = token.value.clone();
        *cached = Some(token);
        Ok(value)
    }

    /// Drops the cached token (Google refused it), so that the next request fetches another.
    pub async fn forget(&self) {
        *self.cached.lock().await = None;
    }

    async fn fetch(&self, transport: &Transport) -> Result<Token, ProviderError> {
        let invalid = |detail: &str| ProviderError::Invalid {
            provider: ID.to_owned(),
            detail: format!("Google's token endpoint {detail}"),
        };
        let iat = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let assertion = self.assertion(iat).map_err(|_| ProviderError::Unauthorized {
            provider: ID.to_owned(),
            status: 401,
            code: None,
            detail: "the service account's key could not sign an assertion".to_owned(),
        })?;
        let form = serde_urlencoded::to_string([("grant_type", GRANT_TYPE), ("assertion", assertion.as_str())])
            .unwrap_or_default();
        let request = transport
            .http
            .post(self.token_uri.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(reqwest::header::ACCEPT, "application/json")
            .body(form);
        let sent = http::send(ID, request, transport.timeouts, wire::parse_oauth_error, &[assertion.as_str()]).await;
        let response = sent.map_err(token_failure)?;
        let (body, complete) = http::read_bounded(response, MAX_TOKEN_REPLY, transport.timeouts.first_byte).await;
        if !complete {
            return Err(invalid("sent a reply that was not read in full"));
        }
        let reply: serde_json::Value =
            serde_json::from_slice(&body).map_err(|_| invalid("sent a reply that is not JSON"))?;
        let value = reply["access_token"]
            .as_str()
            .filter(|t| !t.is_empty() && t.len() <= MAX_TOKEN && t.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or_else(|| invalid("sent no usable access_token"))?;
        if reply["token_type"].as_str().is_some_and(|t| !t.eq_ignore_ascii_case("bearer")) {
            return Err(invalid("sent a token that is not a bearer token"));
        }
        let lifetime = match reply["expires_in"].as_f64() {
            Some(secs) if secs.is_finite() && secs >= 0.0 => {
                Duration::from_secs_f64(secs.min(MAX_TOKEN_LIFETIME.as_secs_f64()))
            }
            Some(_) => return Err(invalid("sent an invalid expires_in")),
            None => ASSERTION_LIFETIME,
        };
        let margin = REFRESH_MARGIN.min(lifetime / 2);
        Ok(Token { value: SecretString::from(value.to_owned()), refresh_at: Instant::now() + lifetime - margin })
    }
}

/// The token endpoint refusing the assertion is the operator's credential failing, whatever
/// its status (Google answers a bad assertion with 400 `invalid_grant`): never the caller's
/// request.
fn token_failure(error: ProviderError) -> ProviderError {
    match error {
        ProviderError::Rejected { provider, status, code, detail } => ProviderError::Unauthorized {
            provider,
            status,
            code,
            detail: format!("Google's token endpoint refused the service account: {detail}"),
        },
        ProviderError::Unauthorized { provider, status, code, .. } => ProviderError::Unauthorized {
            provider,
            status,
            code,
            detail: "Google's token endpoint refused the service account".to_owned(),
        },
        other => other,
    }
}

impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccount").field("client_email", &self.client_email).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(extra: serde_json::Value) -> serde_json::Value {
        let mut file = serde_json::json!({
            "type": "service_account",
            "client_email": "tts@example.iam.gserviceaccount.com",
            "private_key": include_str!("../../../tests/fixtures/google_test_key.pem"),
            "private_key_id": "abc123",
        });
        if let (Some(file), Some(extra)) = (file.as_object_mut(), extra.as_object()) {
            file.extend(extra.clone());
        }
        file
    }

    #[test]
    fn a_good_file_signs_and_bad_ones_name_their_problem() {
        let account = ServiceAccount::from_json(&file(serde_json::json!({}))).unwrap();
        assert_eq!(account.token_uri.as_str(), DEFAULT_TOKEN_URI);
        let secret_looking = "-----BEGIN PRIVATE KEY-----\nTOPSECRETMATERIAL\n-----END PRIVATE KEY-----\n";
        let cases = [
            (serde_json::json!({"private_key": secret_looking}), "private_key"),
            (serde_json::json!({"client_email": null}), "client_email"),
            (serde_json::json!({"token_uri": "file:///etc/passwd"}), "token_uri"),
            (serde_json::json!({"token_uri": "javascript:alert(1)"}), "token_uri"),
            (serde_json::json!({"type": "authorized_user"}), "authorized_user"),
        ];
        for (extra, named) in cases {
            let err = ServiceAccount::from_json(&file(extra)).unwrap_err();
            assert!(err.contains(named), "{err}");
            assert!(!err.contains("TOPSECRET") && !err.contains("BEGIN"), "{err}");
        }
    }

    #[test]
    fn unreadable_files_are_named_without_their_contents() {
        let dir = std::env::temp_dir().join(format!("sg-google-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("key.json");
        std::fs::write(&path, "{\"private_key\": \"TOPSECRET\" oops}").unwrap();
        let path = path.to_str().unwrap();
        let err = ServiceAccount::from_file(path).unwrap_err();
        assert!(err.contains("not JSON") && err.contains(path) && !err.contains("TOPSECRET"), "{err}");
        let err = ServiceAccount::from_file("/nonexistent/key.json").unwrap_err();
        assert!(err.contains("cannot be read"), "{err}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
