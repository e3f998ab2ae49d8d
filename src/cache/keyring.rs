//! The keyring of the cache's AES-256-GCM encryption: every listed key decrypts, the current
//! one encrypts, so keys rotate without dropping the cache.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::settings::CacheSettings;

/// Bytes of an AES-256 key.
const KEY_BYTES: usize = 32;
/// Bytes of an AES-GCM nonce.
pub const NONCE_BYTES: usize = 12;

/// Why the keyring could not be built from the settings.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum KeyringError {
    #[error("key `{id}` is not standard base64: {reason}")]
    NotBase64 { id: String, reason: String },
    #[error("key `{id}` is {len} bytes; AES-256 needs {KEY_BYTES}")]
    WrongLength { id: String, len: usize },
    #[error("key id `{0}` must be 1 to 32 characters of [A-Za-z0-9._-]")]
    BadId(String),
    #[error("environment variable {var} is not `id=base64[,id=base64...]` near `{near}`")]
    BadEnvironment { var: String, near: String },
    #[error("no cache encryption key: set cache.encryption_keys and cache.current_key_id, or the {0} variable")]
    NoKeys(String),
    #[error("cache.current_key_id `{0}` names no configured key")]
    UnknownCurrent(String),
    #[error("several cache encryption keys are configured: set cache.current_key_id to the one that encrypts")]
    NoCurrent,
}

/// Encryption failed; only possible for absurd sizes (AES-GCM's limit is 64 GiB).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("AES-GCM refused to encrypt the value")]
pub struct EncryptError;

/// Decryption failed: unknown key id, or data that is not what the key sealed (tampered,
/// truncated, or sealed for another cache key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecryptError {
    #[error("sealed with a key id this keyring does not hold")]
    UnknownKey,
    #[error("authentication failed: tampered, truncated or wrong key")]
    Inauthentic,
}

/// AES-256-GCM keys by id, and which one encrypts.
#[derive(Clone)]
pub struct Keyring {
    ciphers: HashMap<String, Aes256Gcm>,
    current: String,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ids: Vec<&String> = self.ciphers.keys().collect();
        ids.sort();
        f.debug_struct("Keyring").field("ids", &ids).field("current", &self.current).finish()
    }
}

/// Checks one configured key: a valid id and 32 bytes of standard base64.
pub fn check_key(id: &str, base64_key: &str) -> Result<[u8; KEY_BYTES], KeyringError> {
    let id_ok = !id.is_empty()
        && id.len() <= 32
        && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !id_ok {
        return Err(KeyringError::BadId(id.to_string()));
    }
    let bytes = STANDARD
        .decode(base64_key.trim())
        .map_err(|e| KeyringError::NotBase64 { id: id.to_string(), reason: e.to_string() })?;
    <[u8; KEY_BYTES]>::try_from(bytes.as_slice())
        .map_err(|_| KeyringError::WrongLength { id: id.to_string(), len: bytes.len() })
}

impl Keyring {
    /// The keys of `settings` merged with those of its environment variable (which win).
    /// The current key is `current_key_id`, or the only key when there is exactly one.
    pub fn from_settings(settings: &CacheSettings) -> Result<Keyring, KeyringError> {
        let mut encoded: BTreeMap<String, String> = settings.encryption_keys.clone();
        if !settings.encryption_keys_env.is_empty()
            && let Ok(value) = std::env::var(&settings.encryption_keys_env)
        {
            encoded.extend(parse_env_keys(&settings.encryption_keys_env, &value)?);
        }
        if encoded.is_empty() {
            return Err(KeyringError::NoKeys(settings.encryption_keys_env.clone()));
        }
        let current = match settings.current_key_id.as_str() {
            "" if encoded.len() == 1 => encoded.keys().next().cloned().unwrap_or_default(),
            "" => return Err(KeyringError::NoCurrent),
            id => id.to_string(),
        };
        let mut keys = Vec::with_capacity(encoded.len());
        for (id, key) in &encoded {
            keys.push((id.clone(), check_key(id, key)?));
        }
        Keyring::new(keys, &current)
    }

    /// A keyring of raw keys; `current` must be one of them.
    pub fn new(keys: Vec<(String, [u8; KEY_BYTES])>, current: &str) -> Result<Keyring, KeyringError> {
        let mut ciphers = HashMap::with_capacity(keys.len());
        for (id, key) in keys {
            if id.is_empty() || id.len() > 32 {
                return Err(KeyringError::BadId(id));
            }
            // A 32-byte key always fits Aes256Gcm; new_from_slice only fails on other lengths.
            let cipher = Aes256Gcm::new_from_slice(&key)
                .map_err(|_| KeyringError::WrongLength { id: id.clone(), len: key.len() })?;
            ciphers.insert(id, cipher);
        }
        if !ciphers.contains_key(current) {
            return Err(KeyringError::UnknownCurrent(current.to_string()));
        }
        Ok(Keyring { ciphers, current: current.to_string() })
    }

    /// Id of the key that encrypts.
    pub fn current_id(&self) -> &str {
        &self.current
    }

    /// Encrypts `plaintext` with the current key under a fresh random nonce, authenticating
    /// `associated` too. Returns the nonce and the ciphertext (with its tag).
    pub fn encrypt(&self, associated: &[u8], plaintext: &[u8]) -> Result<([u8; NONCE_BYTES], Vec<u8>), EncryptError> {
        let cipher = self.ciphers.get(&self.current).ok_or(EncryptError)?;
        // rand's thread RNG is a CSPRNG reseeded from the OS; 96-bit random nonces are safe
        // for far more messages than one key will see before rotation.
        let nonce_bytes: [u8; NONCE_BYTES] = rand::random();
        let nonce = Nonce::from(nonce_bytes);
        let ciphertext =
            cipher.encrypt(&nonce, Payload { msg: plaintext, aad: associated }).map_err(|_| EncryptError)?;
        Ok((nonce_bytes, ciphertext))
    }

    /// Decrypts what [`Keyring::encrypt`] produced under key `key_id`.
    pub fn decrypt(
        &self,
        key_id: &str,
        nonce: &[u8; NONCE_BYTES],
        associated: &[u8],
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, DecryptError> {
        let cipher = self.ciphers.get(key_id).ok_or(DecryptError::UnknownKey)?;
        let nonce = Nonce::from(*nonce);
        cipher.decrypt(&nonce, Payload { msg: ciphertext, aad: associated }).map_err(|_| DecryptError::Inauthentic)
    }
}

/// Parses `id=base64[,id=base64...]`.
fn parse_env_keys(var: &str, value: &str) -> Result<BTreeMap<String, String>, KeyringError> {
    let mut keys = BTreeMap::new();
    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, key) = part.split_once('=').ok_or_else(|| KeyringError::BadEnvironment {
            var: var.to_string(),
            // Never echo key material: only the id side, if any.
            near: part.chars().take(8).collect::<String>() + "...",
        })?;
        keys.insert(id.trim().to_string(), key.trim().to_string());
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(bytes: [u8; 32]) -> String {
        STANDARD.encode(bytes)
    }

    #[test]
    fn env_keys_merge_over_config() {
        let var = format!("FRONTIER_TEST_CACHE_KEYS_{}", std::process::id());
        let mut settings =
            CacheSettings { encryption_keys_env: var.clone(), current_key_id: "k2".into(), ..Default::default() };
        settings.encryption_keys.insert("k1".into(), b64([1; 32]));
        // SAFETY: this test owns a variable no other code reads.
        unsafe { std::env::set_var(&var, format!("k2={}", b64([2; 32]))) };
        let ring = Keyring::from_settings(&settings).unwrap();
        assert_eq!(ring.current_id(), "k2");
        unsafe { std::env::remove_var(&var) };
    }

    #[test]
    fn bad_keys_are_rejected_with_their_id() {
        assert!(check_key("k1", "not base64!").unwrap_err().to_string().contains("k1"));
        assert!(matches!(check_key("k1", &STANDARD.encode([0u8; 16])), Err(KeyringError::WrongLength { len: 16, .. })));
        assert!(matches!(check_key("bad id", &b64([0; 32])), Err(KeyringError::BadId(_))));
        let settings = CacheSettings { encryption_keys_env: String::new(), ..Default::default() };
        assert!(matches!(Keyring::from_settings(&settings), Err(KeyringError::NoKeys(_))));
    }

    #[test]
    fn debug_shows_ids_only() {
        let ring = Keyring::new(vec![("k1".into(), [7; 32])], "k1").unwrap();
        assert_eq!(format!("{ring:?}"), "Keyring { ids: [\"k1\"], current: \"k1\" }");
    }
}
