//! Short-lived signed URL tokens: a credential that can travel in a URL's query, for clients that
//! cannot send headers (browsers opening a WebSocket; PlayHT's SDK calling the inference URLs
//! it was handed). A token names a key and an expiry and is signed with HMAC-SHA256; it is not
//! the key and grants only what the key grants, on the routes that take tokens, until it expires
//! or the key is revoked.
//!
//! A token is also bound to a [`Purpose`]: one handed out for PlayHT's inference URLs does not
//! open the unified WebSocket, and the other way round.
//!
//! The form is `<purpose>.<key id, hex>.<expiry, unix seconds>.<signature, hex>`: digits and hex
//! only, so a token never contains the word `stream` (PlayHT's SDK derives a URL by deleting
//! that word).

use chrono::{DateTime, TimeZone, Utc};
use hmac::{Hmac, Mac};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// What a token may open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// PlayHT's inference URLs (`sdk-auth`, `websocket-auth`); valid an hour, as PlayHT's were
    /// (its SDK asks again when less than five minutes are left).
    PlayHt,
    /// The unified WebSocket (`/v1/websocket-auth`): to be opened at once.
    Socket,
}

impl Purpose {
    fn tag(self) -> char {
        match self {
            Purpose::PlayHt => '1',
            Purpose::Socket => '2',
        }
    }

    pub fn lifetime(self) -> chrono::Duration {
        match self {
            Purpose::PlayHt => chrono::Duration::hours(1),
            Purpose::Socket => chrono::Duration::minutes(5),
        }
    }
}

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

    /// A token for `key_id` and `purpose`, valid until `expires`.
    pub fn sign(&self, purpose: Purpose, key_id: &str, expires: DateTime<Utc>) -> String {
        let payload = format!("{}.{}.{}", purpose.tag(), hex::encode(key_id), expires.timestamp());
        let signature = hex::encode(self.mac(&payload).finalize().into_bytes());
        format!("{payload}.{signature}")
    }

    /// The key id a token names, if its signature holds, it is for `purpose` and it has not
    /// expired at `now`.
    pub fn verify(&self, purpose: Purpose, token: &str, now: DateTime<Utc>) -> Result<String, TokenError> {
        let (payload, signature) = token.rsplit_once('.').ok_or(TokenError::Invalid)?;
        let signature = hex::decode(signature).map_err(|_| TokenError::Invalid)?;
        self.mac(payload).verify_slice(&signature).map_err(|_| TokenError::Invalid)?;
        let (tag, payload) = payload.split_once('.').ok_or(TokenError::Invalid)?;
        if tag.chars().ne(std::iter::once(purpose.tag())) {
            return Err(TokenError::Invalid);
        }
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
        let lifetime = Purpose::PlayHt.lifetime();
        let token = signer.sign(Purpose::PlayHt, "abc123", now + lifetime);
        assert!(token.bytes().all(|b| b.is_ascii_hexdigit() || b == b'.'), "{token}");
        assert_eq!(signer.verify(Purpose::PlayHt, &token, now), Ok("abc123".to_owned()));
        assert_eq!(signer.verify(Purpose::PlayHt, &token, now + lifetime), Err(TokenError::Expired));
        // A token for one purpose opens nothing else.
        assert_eq!(signer.verify(Purpose::Socket, &token, now), Err(TokenError::Invalid));
    }

    #[test]
    fn tampered_or_foreign_tokens_are_refused() {
        let signer = UrlSigner::new(Some(&SecretString::from("shared".to_owned())));
        let now = Utc::now();
        let expires = now + Purpose::Socket.lifetime();
        let token = signer.sign(Purpose::Socket, "abc123", expires);
        // Another key id, a later expiry, another purpose, another signer, garbage.
        let other_key = token.replacen(&hex::encode("abc123"), &hex::encode("abc124"), 1);
        let (payload, signature) = token.rsplit_once('.').unwrap_or_default();
        let (head, _) = payload.rsplit_once('.').unwrap_or_default();
        let later = format!("{head}.{}.{signature}", (expires + chrono::Duration::hours(1)).timestamp());
        let other_purpose = format!("1{}", &token[1..]);
        let other_secret = UrlSigner::new(Some(&SecretString::from("other".to_owned())));
        let foreign = other_secret.sign(Purpose::Socket, "abc123", expires);
        for bad in [other_key, later, other_purpose, foreign, String::new(), "...".into(), "2.zz.1.zz".into()] {
            assert_eq!(signer.verify(Purpose::Socket, &bad, now), Err(TokenError::Invalid), "{bad:?}");
        }
        // Replicas with the same secret accept each other's tokens.
        let replica = UrlSigner::new(Some(&SecretString::from("shared".to_owned())));
        assert_eq!(replica.verify(Purpose::Socket, &token, now), Ok("abc123".to_owned()));
    }
}
