//! The on-demand action requests: rotate now (`reason`: manual or leak), revoke, and the
//! inventory of managed secrets.

use serde_json::Value;

use crate::domain::names::valid_secret_name;
use crate::domain::tags::Reason;
use crate::error::VendError;
use crate::input::fields;

/// A validated "rotate now" request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotateRequest {
    pub secret_name: String,
    pub reason: Reason,
}

/// A validated revoke request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokeRequest {
    pub secret_name: String,
    /// `None`: the configured default.
    pub delete_secret: Option<bool>,
}

fn known_fields(v: &Value, allowed: &[&str]) -> Result<(), VendError> {
    let map = fields::object(v, "(request)", "must be a JSON object")?;
    fields::reject_unknown(
        map,
        allowed,
        &format!("is not a known field (expected {})", allowed.join(", ")),
    )
}

/// The `secret_name` of an action: required, valid, under the managed prefix.
pub(crate) fn managed_name(v: &Value, prefix: &str) -> Result<String, VendError> {
    let name = fields::opt_str(v, "secret_name")?
        .ok_or_else(|| VendError::invalid("secret_name", "is required"))?;
    if !valid_secret_name(name) {
        return Err(VendError::invalid(
            "secret_name",
            "must be 1-256 characters of A-Z a-z 0-9 / _ + = . @ -",
        ));
    }
    if !name.starts_with(prefix) {
        return Err(VendError::policy(
            "secret_name",
            format!("must start with the managed prefix {prefix:?}"),
        ));
    }
    Ok(name.to_owned())
}

impl RotateRequest {
    /// Validates a "rotate now" body; `prefix` is the managed secret-name prefix.
    ///
    /// # Errors
    /// [`VendError::Invalid`] or [`VendError::Policy`] naming the field and the rule.
    pub fn parse(v: &Value, prefix: &str) -> Result<Self, VendError> {
        known_fields(v, &["secret_name", "reason", "idempotency_id"])?;
        let secret_name = managed_name(v, prefix)?;
        let reason = match fields::opt_str(v, "reason")? {
            None => Reason::Manual,
            Some(r) => match Reason::parse(r) {
                Some(reason @ (Reason::Manual | Reason::Leak)) => reason,
                _ => {
                    return Err(VendError::invalid(
                        "reason",
                        "must be \"leak\" or \"manual\"",
                    ));
                }
            },
        };
        Ok(Self {
            secret_name,
            reason,
        })
    }
}

impl RevokeRequest {
    /// Validates a revoke body; `prefix` is the managed secret-name prefix.
    ///
    /// # Errors
    /// [`VendError::Invalid`] or [`VendError::Policy`] naming the field and the rule.
    pub fn parse(v: &Value, prefix: &str) -> Result<Self, VendError> {
        known_fields(v, &["secret_name", "delete_secret", "idempotency_id"])?;
        Ok(Self {
            secret_name: managed_name(v, prefix)?,
            delete_secret: fields::opt_bool(v, "delete_secret", "must be true or false")?,
        })
    }
}

/// A validated inventory request: one page of the caller's managed secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryRequest {
    /// The `next_token` of the previous page; `None`: the first page.
    pub next_token: Option<String>,
}

/// The longest `next_token` accepted (Secrets Manager's own limit is 4,096 characters).
pub const MAX_NEXT_TOKEN: usize = 4096;

impl InventoryRequest {
    /// Validates an inventory body.
    ///
    /// # Errors
    /// [`VendError::Invalid`] naming the field and the rule.
    pub fn parse(v: &Value) -> Result<Self, VendError> {
        known_fields(v, &["next_token", "idempotency_id"])?;
        let next_token = fields::opt_str(v, "next_token")?;
        if let Some(t) = next_token
            && (t.is_empty() || t.len() > MAX_NEXT_TOKEN)
        {
            return Err(VendError::invalid(
                "next_token",
                format!(
                    "must be the next_token of a previous page (1-{MAX_NEXT_TOKEN} characters)"
                ),
            ));
        }
        Ok(Self {
            next_token: next_token.map(str::to_owned),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bad_action_fields_are_named() {
        for (v, field) in [
            (json!({"reason": "leak"}), "secret_name"),
            (json!({"secret_name": "other/x"}), "secret_name"),
            (
                json!({"secret_name": "openrouter/x", "reason": "changed"}),
                "reason",
            ),
            (json!({"secret_name": "openrouter/x", "bogus": 1}), "bogus"),
        ] {
            let err = RotateRequest::parse(&v, "openrouter/").expect_err("refused");
            assert!(err.to_string().contains(&format!("`{field}`")), "{err}");
        }
        let err = RevokeRequest::parse(
            &json!({"secret_name": "openrouter/x", "delete_secret": "y"}),
            "openrouter/",
        )
        .expect_err("refused");
        assert!(err.to_string().contains("`delete_secret`"), "{err}");
        let ok = RotateRequest::parse(&json!({"secret_name": "openrouter/x"}), "openrouter/")
            .expect("valid");
        assert_eq!(ok.reason, Reason::Manual);
    }

    #[test]
    fn bad_inventory_fields_are_named() {
        for (v, field) in [
            (json!({"next_token": ""}), "next_token"),
            (json!({"next_token": 5}), "next_token"),
            (
                json!({"next_token": "x".repeat(MAX_NEXT_TOKEN + 1)}),
                "next_token",
            ),
            (json!({"secret_name": "openrouter/x"}), "secret_name"),
        ] {
            let err = InventoryRequest::parse(&v).expect_err("refused");
            assert!(err.to_string().contains(&format!("`{field}`")), "{err}");
        }
        let ok = InventoryRequest::parse(&json!({"next_token": "abc"})).expect("valid");
        assert_eq!(ok.next_token.as_deref(), Some("abc"));
    }
}
