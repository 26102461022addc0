//! Secret types for OpenRouter keys: redacted `Debug`, no `Display`, wiped on drop.

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// The lowercase hex SHA-256 of a plaintext key: OpenRouter's public id for the key.
#[must_use]
pub fn key_hash(plaintext: &str) -> String {
    hex::encode(Sha256::digest(plaintext.as_bytes()))
}

/// A minted OpenRouter API key (inference key). Exposed at one call site per use.
#[derive(Clone)]
pub struct ApiKey(SecretString);

impl ApiKey {
    /// Wraps a plaintext key. The `String` is moved in and wiped when the key drops.
    #[must_use]
    pub fn new(plaintext: String) -> Self {
        Self(SecretString::from(plaintext))
    }

    /// The plaintext. Call only to write it to Secrets Manager or to send it as a bearer token.
    #[must_use]
    pub fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }

    /// OpenRouter's id for this key: SHA-256 of the plaintext, lowercase hex.
    #[must_use]
    pub fn hash(&self) -> String {
        key_hash(self.0.expose_secret())
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey([redacted])")
    }
}

impl<'de> serde::Deserialize<'de> for ApiKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        SecretString::deserialize(d).map(Self)
    }
}

/// The management (provisioning) key this product administers OpenRouter with.
#[derive(Clone)]
pub struct ManagementKey(SecretString);

impl ManagementKey {
    /// Wraps a plaintext management key.
    #[must_use]
    pub fn new(plaintext: String) -> Self {
        Self(SecretString::from(plaintext))
    }

    /// The plaintext, for the `Authorization` header only.
    #[must_use]
    pub fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for ManagementKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ManagementKey([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_plaintext() {
        let key = ApiKey::new("sk-or-v1-sentinel-debug".to_owned());
        let shown = format!("{key:?} {:?}", Some(&key));
        assert!(!shown.contains("sentinel"), "{shown}");
        let mgmt = ManagementKey::new("sk-or-v1-mgmt-sentinel".to_owned());
        assert!(!format!("{mgmt:?}").contains("sentinel"));
    }

    #[test]
    fn hash_is_lowercase_hex_sha256_of_the_plaintext() {
        // sha256("abc")
        assert_eq!(
            key_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(ApiKey::new("abc".into()).hash(), key_hash("abc"));
    }
}
