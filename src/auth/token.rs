//! The key string: `sg_<public id>_<secret>`. The public id is the key's database id and may be
//! shown anywhere; only the SHA-256 of the secret is stored, and it is compared in constant time.

use std::fmt;

use rand::{distributions::Alphanumeric, Rng};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub const PREFIX: &str = "sg_";
const ID_LEN: usize = 12;
const SECRET_LEN: usize = 40;

/// A freshly minted key. `token` is the only copy of the secret; it is shown to the user once.
pub struct MintedKey {
    pub id: String,
    pub token: SecretString,
    pub secret_sha256: [u8; 32],
}

impl fmt::Debug for MintedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MintedKey").field("id", &self.id).field("token", &"[redacted]").finish()
    }
}

pub fn mint() -> MintedKey {
    let mut rng = rand::thread_rng();
    let id: String =
        (0..ID_LEN).map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rng.gen_range(0..36)])).collect();
    let secret: String = (&mut rng).sample_iter(Alphanumeric).take(SECRET_LEN).map(char::from).collect();
    let secret_sha256 = hash(&secret);
    MintedKey { token: SecretString::from(format!("{PREFIX}{id}_{secret}")), id, secret_sha256 }
}

/// A presented key string split into its parts. `Debug` never shows the secret.
pub struct PresentedKey<'a> {
    pub id: &'a str,
    secret: &'a str,
}

impl fmt::Debug for PresentedKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PresentedKey").field("id", &self.id).finish_non_exhaustive()
    }
}

impl<'a> PresentedKey<'a> {
    /// Splits a key string; `None` when it is not shaped like one of ours.
    pub fn parse(token: &'a str) -> Option<Self> {
        let rest = token.strip_prefix(PREFIX)?;
        let (id, secret) = rest.split_once('_')?;
        let shaped = id.len() == ID_LEN
            && secret.len() == SECRET_LEN
            && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && secret.bytes().all(|b| b.is_ascii_alphanumeric());
        shaped.then_some(Self { id, secret })
    }

    /// Whether the secret hashes to `stored`, compared in constant time.
    pub fn matches(&self, stored_sha256: &[u8]) -> bool {
        hash(self.secret).ct_eq(stored_sha256).into()
    }
}

fn hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Compares a presented admin token with the configured one in constant time.
pub fn admin_token_matches(presented: &str, configured: &SecretString) -> bool {
    // Hash both so the comparison does not leak the configured length.
    hash(presented).ct_eq(&hash(configured.expose_secret())).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_keys_parse_and_match_only_their_own_hash() {
        let a = mint();
        let b = mint();
        let token = a.token.expose_secret().to_owned();
        assert!(token.starts_with("sg_"));
        let parsed = PresentedKey::parse(&token).expect("minted key parses");
        assert_eq!(parsed.id, a.id);
        assert!(parsed.matches(&a.secret_sha256));
        assert!(!parsed.matches(&b.secret_sha256));
        assert!(!format!("{parsed:?}{a:?}").contains(&token[16..]));
    }

    #[test]
    fn malformed_keys_do_not_parse() {
        for bad in ["", "sg_", "sk-abc", "sg_short_secret", "sg_ABCDEFGHIJKL_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"]
        {
            assert!(PresentedKey::parse(bad).is_none(), "{bad}");
        }
    }
}
