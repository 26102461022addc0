//! Which OpenRouter keys a managed secret may act on (disable, delete, re-cap): a decision
//! made from what the product wrote, never from a tag. Tags are an index for listing; anyone
//! able to tag a secret under the prefix can write `orkv:retire:<hash>` for any hash (key
//! hashes are not secret), so a hash read from a tag is acted on only once the key itself says
//! it is this secret's:
//!
//! - its OpenRouter name is `orkv:<this secret's name>:<attempt>` (ADR 0003): only the product
//!   names keys, and it names each for the secret it mints it for, so the name says which
//!   secret, and through the secret's prefix which tenant, the key belongs to; or
//! - it is the key this secret adopted (the record's `adopted_key_hash`, written by the
//!   adoption that checked it and carried by every later generation), and no other managed
//!   secret holds it (checked by the caller, `crate::ops::owned`: a record is a value, and a
//!   principal able to create a secret under the prefix can write one).

use orkv_openrouter::Key;

use crate::domain::names::KeyName;
use crate::domain::record::SecretRecord;

/// The secret whose keys are being acted on, as its record describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner<'a> {
    secret: &'a str,
    adopted: Option<&'a str>,
}

impl<'a> Owner<'a> {
    /// The secret `secret_name`, whose record (if readable) may name an adopted key.
    #[must_use]
    pub fn new(secret_name: &'a str, record: Option<&'a SecretRecord>) -> Self {
        Self {
            secret: secret_name,
            adopted: record.and_then(|r| r.adopted_key_hash.as_deref()),
        }
    }

    /// The secret's name.
    #[must_use]
    pub fn secret(&self) -> &'a str {
        self.secret
    }

    /// Why `key` may be this secret's.
    #[must_use]
    pub fn claim(&self, key: &Key) -> Claim {
        if KeyName::parse(&key.name).is_some_and(|n| n.secret() == self.secret) {
            Claim::Named
        } else if self.adopted == Some(key.hash.as_str()) {
            Claim::Adopted
        } else {
            Claim::None
        }
    }
}

/// What ties a key to a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Its OpenRouter name is the secret's: the product minted it for this secret.
    Named,
    /// It is the key the record says the secret adopted: the secret's once no other managed
    /// secret holds it.
    Adopted,
    /// Nothing: another secret's key, or no managed key at all.
    None,
}

/// Why a key was not acted on (what a report or a log line says).
pub const NOT_OWNED: &str = "not a key of this secret: its name is not the secret's and it is not the key the secret adopted (a tag the product did not write names it)";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::names::{KeyName, claim_nonce, rotation_token};

    fn key(hash: &str, name: &str) -> Key {
        serde_json::from_value(serde_json::json!({
            "hash": hash, "name": name, "limit": 10.0,
            "created_at": "2026-12-01T00:00:00Z", "workspace_id": "ws"
        }))
        .unwrap_or_else(|e| panic!("key: {e}"))
    }

    #[test]
    fn a_key_named_for_the_secret_is_its_own_and_one_named_for_another_is_not() {
        let owner = Owner::new("openrouter/team-a/api", None);
        let minted = KeyName::successor("openrouter/team-a/api", &rotation_token("x", 1));
        let first = KeyName::attempt("openrouter/team-a/api", &claim_nonce());
        assert_eq!(owner.claim(&key("h1", &minted)), Claim::Named);
        assert_eq!(owner.claim(&key("h2", &first)), Claim::Named);
        let other = KeyName::attempt("openrouter/team-b/api", &claim_nonce());
        assert_eq!(owner.claim(&key("h3", &other)), Claim::None);
        // A prefix of the name is not the name.
        let longer = KeyName::attempt("openrouter/team-a/api-2", &claim_nonce());
        assert_eq!(owner.claim(&key("h4", &longer)), Claim::None);
        assert_eq!(
            owner.claim(&key("h5", "prod key made in the dashboard")),
            Claim::None
        );
    }

    #[test]
    fn the_adopted_key_is_owned_by_hash_and_no_other_unnamed_key_is() {
        let mut record: SecretRecord = serde_json::from_value(serde_json::json!({
            "schema": 1, "managed_by": "openrouter-key-vending", "state": "active",
            "key_name": "k", "openrouter_key_name": "dashboard name", "workspace_id": "ws",
            "workspace_slug": "w", "limit": 5.0, "limit_reset": null,
            "include_byok_in_limit": false, "expires_at": "2027-01-01T00:00:00Z",
            "lifetime": {"ttl_seconds": 86400}, "rotate_before_seconds": 3600,
            "created_at": "2026-12-01T00:00:00Z", "generation": 3, "request_id": "r"
        }))
        .unwrap_or_else(|e| panic!("record: {e}"));
        record.adopted_key_hash = Some("adopted".into());
        let owner = Owner::new("openrouter/team-a/api", Some(&record));
        assert_eq!(
            owner.claim(&key("adopted", "dashboard name")),
            Claim::Adopted
        );
        assert_eq!(owner.claim(&key("another", "dashboard name")), Claim::None);
        assert_eq!(
            Owner::new("openrouter/team-a/api", None).claim(&key("adopted", "x")),
            Claim::None
        );
    }
}
