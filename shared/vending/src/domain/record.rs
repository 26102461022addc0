//! The managed secret's value: a JSON record holding `api_key` (the plaintext, for consumers)
//! with the key's identity, cap, lifetime and generation; or, while a key is being minted, a
//! pending record naming the key about to be created, so a retry can find it.

use orkv_openrouter::LimitReset;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::domain::lifetime::Lifetime;
use crate::error::VendError;

/// Value of the `orkv:managed-by` tag and the record's `managed_by` field.
pub const MANAGED_BY: &str = "openrouter-key-vending";
pub const SCHEMA: u32 = 1;

/// Whether the record holds a working key or marks one being minted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordState {
    Pending,
    Active,
    /// The keys were revoked on request; the record keeps the identity, no plaintext.
    Revoked,
}

fn expose<S: serde::Serializer>(v: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(secret) => s.serialize_str(secret.expose_secret()),
        None => s.serialize_none(),
    }
}

/// What every new record states, whatever made it (a provision's claim, a rotation's
/// successor, an adoption).
#[derive(Debug, Clone)]
pub struct RecordTerms {
    pub key_name: String,
    /// The name the OpenRouter key carries (or will carry).
    pub openrouter_key_name: String,
    pub workspace_id: String,
    pub workspace_slug: String,
    pub cap: orkv_openrouter::Cap,
    pub lifetime: Lifetime,
    pub expires_at: OffsetDateTime,
    pub rotate_before_seconds: u64,
    pub created_at: OffsetDateTime,
    pub generation: u64,
    pub tenant: Option<String>,
    pub request_id: String,
}

impl SecretRecord {
    /// The one constructor of a record: `state` with `terms`, and no key, request digest,
    /// parent or lease yet (each caller adds what its state carries).
    #[must_use]
    pub fn new(state: RecordState, terms: RecordTerms) -> Self {
        Self {
            schema: SCHEMA,
            managed_by: MANAGED_BY.into(),
            state,
            api_key: None,
            key_hash: None,
            key_name: terms.key_name,
            openrouter_key_name: terms.openrouter_key_name,
            workspace_id: terms.workspace_id,
            workspace_slug: terms.workspace_slug,
            limit: terms.cap.limit,
            limit_reset: terms.cap.limit_reset,
            include_byok_in_limit: terms.cap.include_byok_in_limit,
            expires_at: terms.expires_at,
            lifetime: terms.lifetime,
            rotate_before_seconds: terms.rotate_before_seconds,
            created_at: terms.created_at,
            generation: terms.generation,
            tenant: terms.tenant,
            request_id: terms.request_id,
            rotation_request: None,
            parent_version: None,
            lease_until: None,
            claim: None,
            adopted_key_hash: None,
        }
    }
}

/// The secret's JSON value.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecretRecord {
    pub schema: u32,
    pub managed_by: String,
    pub state: RecordState,
    /// The plaintext key (active records only).
    #[serde(
        default,
        serialize_with = "expose",
        skip_serializing_if = "Option::is_none"
    )]
    pub api_key: Option<SecretString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_hash: Option<String>,
    pub key_name: String,
    /// The name the OpenRouter key carries: unique per mint attempt.
    pub openrouter_key_name: String,
    pub workspace_id: String,
    pub workspace_slug: String,
    pub limit: f64,
    pub limit_reset: Option<LimitReset>,
    pub include_byok_in_limit: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    pub lifetime: Lifetime,
    pub rotate_before_seconds: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub generation: u64,
    /// The tenant that owns the secret (`None`: the single-policy form, or a secret made
    /// before tenants, owned by whoever's prefix it is under).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    pub request_id: String,
    /// Digest of the on-demand request (rotate now, or a provision that changed a fixed
    /// field) that produced this generation, so a repeated request is answered, not redone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_request: Option<String>,
    /// Rotations only: the `AWSCURRENT` version this one was derived from, so the last step
    /// can tell whether the record changed while the rotation ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_version: Option<String>,
    /// Pending records only: until when the minting invocation owns the record.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub lease_until: Option<OffsetDateTime>,
    /// Pending records only: a nonce that makes each claim's value unique.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<String>,
    /// The hash of the key an adoption took over, carried by every later generation: the
    /// one key of this secret whose OpenRouter name does not say so (every key the product
    /// mints is named for its secret, ADR 0003), so the one it may retire by hash alone
    /// ([`crate::domain::ownership`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adopted_key_hash: Option<String>,
}

/// A key's public facts, never its plaintext: what replies and result events tell of it.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyFacts {
    pub tenant: Option<String>,
    pub key_hash: Option<String>,
    pub key_name: String,
    pub workspace_id: String,
    pub workspace_slug: String,
    pub generation: u64,
    pub expires_at: OffsetDateTime,
    pub limit: f64,
    pub limit_reset: Option<LimitReset>,
    pub include_byok_in_limit: bool,
}

impl SecretRecord {
    /// The record's public facts.
    #[must_use]
    pub fn facts(&self) -> KeyFacts {
        KeyFacts {
            tenant: self.tenant.clone(),
            key_hash: self.key_hash.clone(),
            key_name: self.key_name.clone(),
            workspace_id: self.workspace_id.clone(),
            workspace_slug: self.workspace_slug.clone(),
            generation: self.generation,
            expires_at: self.expires_at,
            limit: self.limit,
            limit_reset: self.limit_reset,
            include_byok_in_limit: self.include_byok_in_limit,
        }
    }

    /// The JSON value, as a secret (it holds the plaintext when active).
    ///
    /// # Panics
    /// Never: the record always serialises.
    #[must_use]
    pub fn to_secret(&self) -> SecretString {
        SecretString::from(serde_json::to_string(self).unwrap_or_default())
    }

    /// Parses a secret value; `None` when it is not a record of this product.
    #[must_use]
    pub fn from_secret(value: &SecretString) -> Option<Result<Self, String>> {
        let json: serde_json::Value = serde_json::from_str(value.expose_secret()).ok()?;
        if json.get("managed_by").and_then(|v| v.as_str()) != Some(MANAGED_BY) {
            return None;
        }
        // The serde error text could quote the value, so only the schema is reported.
        Some(
            serde_json::from_value(json)
                .map_err(|_| format!("not a schema-{SCHEMA} record of {MANAGED_BY}")),
        )
    }

    /// Parses the value of secret `name`, which must be a record of this product.
    ///
    /// # Errors
    /// [`VendError::NotManaged`] for a foreign value, [`VendError::CorruptRecord`] for one
    /// this version cannot read.
    pub fn read(name: &str, value: &SecretString) -> Result<Self, VendError> {
        match Self::from_secret(value) {
            None => Err(VendError::NotManaged {
                secret_name: name.to_owned(),
            }),
            Some(Err(reason)) => Err(VendError::CorruptRecord {
                secret_name: name.to_owned(),
                reason,
            }),
            Some(Ok(r)) => Ok(r),
        }
    }

    /// The key hash a secret value's record names, if it is a readable record with a key.
    #[must_use]
    pub fn hash_in(value: &SecretString) -> Option<String> {
        Self::from_secret(value)
            .and_then(Result::ok)
            .and_then(|r| r.key_hash)
    }

    /// Sets the cap settings.
    pub fn set_cap(&mut self, cap: orkv_openrouter::Cap) {
        self.limit = cap.limit;
        self.limit_reset = cap.limit_reset;
        self.include_byok_in_limit = cap.include_byok_in_limit;
    }

    /// The cap settings.
    #[must_use]
    pub fn cap(&self) -> orkv_openrouter::Cap {
        orkv_openrouter::Cap {
            limit: self.limit,
            limit_reset: self.limit_reset,
            include_byok_in_limit: self.include_byok_in_limit,
        }
    }

    /// When the key should be rotated.
    #[must_use]
    pub fn rotate_at(&self) -> OffsetDateTime {
        self.expires_at
            - time::Duration::seconds(i64::try_from(self.rotate_before_seconds).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_constructor_states_the_terms_and_nothing_else() {
        let at = time::macros::datetime!(2026-12-07 00:00 UTC);
        let r = SecretRecord::new(
            RecordState::Pending,
            RecordTerms {
                key_name: "k".into(),
                openrouter_key_name: "orkv:s:claim".into(),
                workspace_id: "w".into(),
                workspace_slug: "checkout".into(),
                cap: orkv_openrouter::Cap {
                    limit: 5.0,
                    limit_reset: Some(LimitReset::Daily),
                    include_byok_in_limit: true,
                },
                lifetime: Lifetime::TtlSeconds(3_600),
                expires_at: at + time::Duration::HOUR,
                rotate_before_seconds: 600,
                created_at: at,
                generation: 2,
                tenant: Some("checkout".into()),
                request_id: "req".into(),
            },
        );
        assert_eq!((r.schema, r.managed_by.as_str()), (SCHEMA, MANAGED_BY));
        assert_eq!(r.state, RecordState::Pending);
        assert!(r.api_key.is_none() && r.key_hash.is_none());
        assert!(r.rotation_request.is_none() && r.parent_version.is_none());
        assert!(r.lease_until.is_none() && r.claim.is_none());
        assert_eq!(r.cap().limit_reset, Some(LimitReset::Daily));
        assert!(r.include_byok_in_limit);
        assert_eq!(r.rotate_at(), at + time::Duration::minutes(50));
    }

    fn record() -> SecretRecord {
        SecretRecord {
            schema: SCHEMA,
            managed_by: MANAGED_BY.into(),
            state: RecordState::Active,
            api_key: Some(SecretString::from("sk-or-v1-record-sentinel".to_owned())),
            key_hash: Some("h".into()),
            key_name: "k".into(),
            openrouter_key_name: "orkv:s:1".into(),
            workspace_id: "w".into(),
            workspace_slug: "checkout".into(),
            limit: 5.0,
            limit_reset: None,
            include_byok_in_limit: false,
            expires_at: time::macros::datetime!(2027-01-01 00:00:00 UTC),
            lifetime: Lifetime::TtlSeconds(86_400),
            rotate_before_seconds: 3_600,
            created_at: time::macros::datetime!(2026-12-31 00:00:00 UTC),
            generation: 1,
            tenant: None,
            request_id: "r".into(),
            rotation_request: None,
            parent_version: None,
            lease_until: None,
            claim: None,
            adopted_key_hash: None,
        }
    }

    #[test]
    fn the_value_holds_api_key_but_debug_does_not() {
        let r = record();
        let value = r.to_secret();
        assert!(
            value
                .expose_secret()
                .contains("\"api_key\":\"sk-or-v1-record-sentinel\"")
        );
        assert!(!format!("{r:?}").contains("sentinel"));
        let back = SecretRecord::from_secret(&value)
            .expect("ours")
            .expect("parses");
        assert_eq!(back.generation, 1);
        assert_eq!(
            back.rotate_at(),
            time::macros::datetime!(2026-12-31 23:00:00 UTC)
        );
    }

    #[test]
    fn foreign_values_are_not_records() {
        assert!(SecretRecord::from_secret(&SecretString::from("plain".to_owned())).is_none());
        assert!(
            SecretRecord::from_secret(&SecretString::from("{\"api_key\":\"x\"}".to_owned()))
                .is_none()
        );
        let broken = SecretString::from(format!(
            "{{\"managed_by\":\"{MANAGED_BY}\",\"api_key\":\"sk-or-v1-leak\"}}"
        ));
        let err = SecretRecord::from_secret(&broken)
            .expect("ours")
            .expect_err("broken");
        assert!(!err.contains("leak"));
    }
}
