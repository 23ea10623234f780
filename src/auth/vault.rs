//! Sealing the vendor keys projects bring (`PUT /v1/api-keys/{providerId}`): AES-256-GCM under
//! the operator's master key (`SPEECHGATE_MASTER_KEY`), a random 96-bit nonce per value, and the
//! project and provider ids as associated data, so that a sealed value moved to another row
//! does not open. Each sealed value records a fingerprint of the master key that sealed it, so
//! that a gateway started with another master key says so instead of failing obscurely.

use std::fmt;

use aes_gcm::{
    aead::{Aead, AeadCore, KeyInit, OsRng, Payload},
    Aes256Gcm, Key, Nonce,
};
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// Bytes in a master key.
pub const KEY_BYTES: usize = 32;
/// A random 32-byte key has about 30 distinct byte values; fewer than this is no random key
/// (a repeated character, a short password padded out).
const MIN_DISTINCT_BYTES: usize = 16;

/// The operator's master key, ready to seal and open. `Debug` shows only its fingerprint.
pub struct MasterKey {
    cipher: Aes256Gcm,
    fingerprint: String,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey").field("fingerprint", &self.fingerprint).finish_non_exhaustive()
    }
}

/// Why a sealed value did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("it was sealed with another master key (fingerprint {sealed_with}; this gateway's is {current})")]
    OtherMasterKey { sealed_with: String, current: String },
    #[error("it does not decrypt: the stored value was altered, or belongs to another project or provider")]
    Corrupt,
}

/// A sealed value: its nonce and its ciphertext (with the tag).
pub struct Sealed {
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

impl MasterKey {
    /// A key from its text: 32 bytes as 64 hex digits or as base64 (standard alphabet, padding
    /// optional). Refuses anything else, and keys that are visibly not random.
    pub fn parse(text: &SecretString) -> Result<Self, String> {
        let text = text.expose_secret().trim();
        let bytes = if text.len() == 2 * KEY_BYTES && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(text).ok()
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
                .ok()
        };
        let how = "must be 32 random bytes, as 64 hex digits or base64 (e.g. `openssl rand -base64 32`)";
        let Some(bytes) = bytes.filter(|b| b.len() == KEY_BYTES) else {
            return Err(how.to_owned());
        };
        let mut seen = [false; 256];
        bytes.iter().for_each(|b| seen[usize::from(*b)] = true);
        if seen.iter().filter(|s| **s).count() < MIN_DISTINCT_BYTES {
            return Err(format!("is not random enough: it {how}"));
        }
        let digest = Sha256::new_with_prefix(b"speechgate master key fingerprint\0").chain_update(&bytes).finalize();
        let fingerprint = hex::encode(&digest[..8]);
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&bytes));
        Ok(Self { cipher, fingerprint })
    }

    /// Names the key without revealing it; stored next to each value it seals.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    pub fn seal(&self, project_id: &str, provider: &str, secret: &SecretString) -> Result<Sealed, String> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let aad = associated_data(project_id, provider);
        let payload = Payload { msg: secret.expose_secret().as_bytes(), aad: &aad };
        let ciphertext = self.cipher.encrypt(&nonce, payload).map_err(|_| "encryption failed".to_owned())?;
        Ok(Sealed { nonce: nonce.to_vec(), ciphertext })
    }

    /// Opens a value sealed for `project_id` and `provider` by the master key `sealed_with`.
    pub fn open(
        &self,
        project_id: &str,
        provider: &str,
        sealed_with: &str,
        sealed: &Sealed,
    ) -> Result<SecretString, OpenError> {
        if sealed_with != self.fingerprint {
            return Err(OpenError::OtherMasterKey {
                sealed_with: crate::domain::text::for_record(sealed_with.chars().take(32).collect()),
                current: self.fingerprint.clone(),
            });
        }
        if sealed.nonce.len() != 12 {
            return Err(OpenError::Corrupt);
        }
        let aad = associated_data(project_id, provider);
        let payload = Payload { msg: &sealed.ciphertext, aad: &aad };
        let plain = self.cipher.decrypt(Nonce::from_slice(&sealed.nonce), payload).map_err(|_| OpenError::Corrupt)?;
        String::from_utf8(plain).map(SecretString::from).map_err(|_| OpenError::Corrupt)
    }
}

/// Binds a value to its row: a version tag, then both ids, each ended by a NUL (neither may hold
/// one), so no two (project, provider) pairs give the same bytes.
fn associated_data(project_id: &str, provider: &str) -> Vec<u8> {
    format!("speechgate/provider-key/v1\0{project_id}\0{provider}\0").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> Result<MasterKey, String> {
        MasterKey::parse(&SecretString::from(text.to_owned()))
    }

    const HEX: &str = "8f2c1e7a9b3d4f5061728394a5b6c7d8e9f00112233445566778899aabbccdde";

    #[test]
    fn parses_hex_and_base64_and_refuses_the_rest() {
        let from_hex = key(HEX).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(hex::decode(HEX).unwrap());
        assert_eq!(key(&b64).unwrap().fingerprint(), from_hex.fingerprint());
        assert_eq!(key(b64.trim_end_matches('=')).unwrap().fingerprint(), from_hex.fingerprint());
        for bad in ["", "short", &HEX[..62], &format!("{HEX}00"), &"a".repeat(64), &"AAAA".repeat(11)] {
            assert!(key(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(key(&"ab".repeat(32)).unwrap_err().contains("not random enough"));
    }

    #[test]
    fn seals_and_opens_only_for_the_same_row_and_key() {
        let master = key(HEX).unwrap();
        let secret = SecretString::from("sk-project-key-1234".to_owned());
        let sealed = master.seal("prj_a", "openai", &secret).unwrap();
        assert_eq!(sealed.nonce.len(), 12);
        assert!(!sealed.ciphertext.windows(8).any(|w| w == b"sk-proje"));
        let opened = master.open("prj_a", "openai", master.fingerprint(), &sealed).unwrap();
        assert_eq!(opened.expose_secret(), "sk-project-key-1234");
        // Another row, a tampered value, another master key: never garbage.
        assert_eq!(master.open("prj_b", "openai", master.fingerprint(), &sealed).unwrap_err(), OpenError::Corrupt);
        assert_eq!(master.open("prj_a", "cartesia", master.fingerprint(), &sealed).unwrap_err(), OpenError::Corrupt);
        let mut tampered = Sealed { nonce: sealed.nonce.clone(), ciphertext: sealed.ciphertext.clone() };
        tampered.ciphertext[0] ^= 1;
        assert_eq!(master.open("prj_a", "openai", master.fingerprint(), &tampered).unwrap_err(), OpenError::Corrupt);
        let other = key("0123456789abcdeffedcba98765432100f1e2d3c4b5a69788796a5b4c3d2e1f0").unwrap();
        assert!(matches!(
            other.open("prj_a", "openai", master.fingerprint(), &sealed),
            Err(OpenError::OtherMasterKey { .. })
        ));
        // Two seals of one value differ (a fresh nonce each time).
        let again = master.seal("prj_a", "openai", &secret).unwrap();
        assert_ne!(again.nonce, sealed.nonce);
        assert!(!format!("{master:?}").contains(HEX));
    }
}
