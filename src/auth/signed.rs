//! Short-lived signed URL tokens: a credential that can travel in a URL's query, for clients that
//! cannot send headers (browsers opening a WebSocket; PlayHT's SDK calling the inference URLs
//! it was handed). A token names a key and an expiry and is signed with HMAC-SHA256; it is not
//! the key and grants only what the key grants, on the routes that take tokens, until it expires
//! or the key is revoked.
//!
//! The form is `<key id, hex>.<expiry, unix seconds>.<signature, hex>`: hex only, so a token
//! never contains the word `stream` (PlayHT's SDK derives a URL by deleting that word).

use chrono::{DateTime, TimeZone, Utc};
use hmac::{Hmac, Mac};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// How long a token is valid.
pub const TOKEN_LIFETIME: chrono::Duration = chrono::Duration::hours(1);

/// Signs and checks tokens with one secret.
pub struct UrlSigner {
    secret: [u8; 32],
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not valid")]
    Invalid,
    #[error("the token has expired")]
    Expired,
}

impl UrlSigner {
    /// With the configured secret (`auth.url_signing_secret`): replicas that share it accept each
    /// other's tokens. Without one, a random secret: tokens work on this process only.
    pub fn new(secret: Option<&SecretString>) -> Self {
        let secret = match secret {
            Some(secret) => Sha256::digest(secret.expose_secret().as_bytes()).into(),
            None => {
                let mut random = [0u8; 32];
                rand::thread_rng().fill_bytes(&mut random);
                random
            }
        };
        Self { secret }
    }

    fn mac(&self, payload: &str) -> HmacSha256 {
        // HMAC takes keys of any length; 32 bytes cannot fail.
        let mut mac = HmacSha256::new_from_slice(&self.secret).unwrap_or_else(|_| unreachable!("any key length"));
        mac.update(b"speechgate-url-token-v1\0");
        mac.update(payload.as_bytes());
        mac
    }

    /// A token for `key_id`, valid until `expires`.
    pub fn sign(&self, key_id: &str, expires: DateTime<Utc>) -> String {
        let payload = format!("{}.{}", hex::encode(key_id), expires.timestamp());
        let signature = hex::encode(self.mac(&payload).finalize().into_bytes());
        format!("{payload}.{signature}")
    }

    /// The key id a token names, if its signature holds and it has not expired at `now`.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<String, TokenError> {
        let (payload, signature) = token.rsplit_once('.').ok_or(TokenError::Invalid)?;
        let signature = hex::decode(signature).map_err(|_| TokenError::Invalid)?;
        self.mac(payload).verify_slice(&signature).map_err(|_| TokenError::Invalid)?;
        let (key_id, expires) = payload.split_once('.').ok_or(TokenError::Invalid)?;
        let key_id = String::from_utf8(hex::decode(key_id).map_err(|_| TokenError::Invalid)?)
            .map_err(|_| TokenError::Invalid)?;
        let expires = expires.parse::<i64>().ok().and_then(|s| Utc.timestamp_opt(s, 0).single());
        match expires {
            Some(expires) if expires > now => Ok(key_id),
            Some(_) => Err(TokenError::Expired),
            None => Err(TokenError::Invalid),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_until_they_expire() {
        let signer = UrlSigner::new(None);
        let now = Utc::now();
        let token = signer.sign("abc123", now + TOKEN_LIFETIME);
        assert!(token.bytes().all(|b| b.is_ascii_hexdigit() || b == b'.'), "{token}");
        assert_eq!(signer.verify(&token, now), Ok("abc123".to_owned()));
        assert_eq!(signer.verify(&token, now + TOKEN_LIFETIME), Err(TokenError::Expired));
    }

    #[test]
    fn tampered_or_foreign_tokens_are_refused() {
        let signer = UrlSigner::new(Some(&SecretString::from("shared".to_owned())));
        let now = Utc::now();
        let token = signer.sign("abc123", now + TOKEN_LIFETIME);
        // Another key id, a later expiry, another signer, garbage.
        let other_key = token.replacen(&hex::encode("abc123"), &hex::encode("abc124"), 1);
        let (payload, signature) = token.rsplit_once('.').unwrap_or_default();
        let (key, _) = payload.split_once('.').unwrap_or_default();
        let later = format!("{key}.{}.{signature}", (now + TOKEN_LIFETIME * 2).timestamp());
        let foreign =
            UrlSigner::new(Some(&SecretString::from("other".to_owned()))).sign("abc123", now + TOKEN_LIFETIME);
        for bad in [other_key, later, foreign, String::new(), "..".into(), "zz.1.zz".into()] {
            assert_eq!(signer.verify(&bad, now), Err(TokenError::Invalid), "{bad:?}");
        }
        // Replicas with the same secret accept each other's tokens.
        let replica = UrlSigner::new(Some(&SecretString::from("shared".to_owned())));
        assert_eq!(replica.verify(&token, now), Ok("abc123".to_owned()));
    }
}
