//! Secrets at rest: AES-256-GCM with keys from configuration. The first key encrypts; every
//! configured key decrypts, so keys can be rotated by prepending a new one. Ciphertext layout:
//! `[key fingerprint: 4 bytes][nonce: 12 bytes][ciphertext + tag]`.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("encryption key #{0} is not 32 bytes of base64")]
    BadKey(usize),
    #[error("no encryption key is configured")]
    NoKey,
    #[error("the secret was encrypted with a key that is no longer configured")]
    UnknownKey,
    #[error("the secret cannot be decrypted (corrupt or tampered)")]
    Corrupt,
}

struct Key {
    fingerprint: [u8; 4],
    cipher: Aes256Gcm,
}

/// Encrypts and decrypts secrets stored in the database.
pub struct Vault {
    keys: Vec<Key>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Vault({} key(s))", self.keys.len())
    }
}

impl Vault {
    /// Keys as base64 strings of 32 bytes, newest first.
    pub fn from_base64_keys(keys: &[String]) -> Result<Self, CryptoError> {
        if keys.is_empty() {
            return Err(CryptoError::NoKey);
        }
        let keys = keys
            .iter()
            .enumerate()
            .map(|(i, text)| {
                let bytes = STANDARD
                    .decode(text.trim())
                    .map_err(|_| CryptoError::BadKey(i))?;
                if bytes.len() != 32 {
                    return Err(CryptoError::BadKey(i));
                }
                let digest = Sha256::digest(&bytes);
                let cipher =
                    Aes256Gcm::new_from_slice(&bytes).map_err(|_| CryptoError::BadKey(i))?;
                Ok(Key {
                    fingerprint: [digest[0], digest[1], digest[2], digest[3]],
                    cipher,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { keys })
    }

    /// A fresh random key, base64.
    pub fn generate_key() -> String {
        let mut bytes = [0_u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        STANDARD.encode(bytes)
    }

    pub fn encrypt(&self, plaintext: &[u8]) -> Vec<u8> {
        let key = &self.keys[0];
        let mut nonce = [0_u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        // AES-GCM encryption cannot fail for inputs below 64 GiB.
        let sealed = key
            .cipher
            .encrypt(Nonce::from_slice(&nonce), plaintext)
            .unwrap_or_default();
        let mut out = Vec::with_capacity(4 + 12 + sealed.len());
        out.extend_from_slice(&key.fingerprint);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    pub fn encrypt_str(&self, plaintext: &str) -> Vec<u8> {
        self.encrypt(plaintext.as_bytes())
    }

    pub fn decrypt(&self, data: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if data.len() < 16 {
            return Err(CryptoError::Corrupt);
        }
        let (fingerprint, rest) = data.split_at(4);
        let (nonce, sealed) = rest.split_at(12);
        let key = self
            .keys
            .iter()
            .find(|k| k.fingerprint == fingerprint)
            .ok_or(CryptoError::UnknownKey)?;
        key.cipher
            .decrypt(Nonce::from_slice(nonce), sealed)
            .map_err(|_| CryptoError::Corrupt)
    }

    pub fn decrypt_string(&self, data: &[u8]) -> Result<String, CryptoError> {
        String::from_utf8(self.decrypt(data)?).map_err(|_| CryptoError::Corrupt)
    }

    /// Re-encrypts with the newest key (after a rotation).
    pub fn reencrypt(&self, data: &[u8]) -> Result<Vec<u8>, CryptoError> {
        Ok(self.encrypt(&self.decrypt(data)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_round_trips_and_the_ciphertext_does_not_contain_it() {
        let vault = Vault::from_base64_keys(&[Vault::generate_key()]).unwrap();
        let sealed = vault.encrypt_str("v1u:secret-access-token");
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(
            vault.decrypt_string(&sealed).unwrap(),
            "v1u:secret-access-token"
        );
    }

    #[test]
    fn an_old_key_still_decrypts_after_rotation_and_reencrypt_moves_to_the_new_key() {
        let old_key = Vault::generate_key();
        let old = Vault::from_base64_keys(std::slice::from_ref(&old_key)).unwrap();
        let sealed = old.encrypt_str("token");
        let rotated = Vault::from_base64_keys(&[Vault::generate_key(), old_key]).unwrap();
        assert_eq!(rotated.decrypt_string(&sealed).unwrap(), "token");
        let resealed = rotated.reencrypt(&sealed).unwrap();
        assert_eq!(old.decrypt(&resealed), Err(CryptoError::UnknownKey));
    }

    #[test]
    fn a_tampered_ciphertext_is_refused() {
        let vault = Vault::from_base64_keys(&[Vault::generate_key()]).unwrap();
        let mut sealed = vault.encrypt_str("token");
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert_eq!(vault.decrypt(&sealed), Err(CryptoError::Corrupt));
    }

    #[test]
    fn a_key_of_the_wrong_length_is_refused_naming_its_position() {
        let error = Vault::from_base64_keys(&[Vault::generate_key(), STANDARD.encode([1_u8; 16])])
            .unwrap_err();
        assert_eq!(error, CryptoError::BadKey(1));
    }
}
