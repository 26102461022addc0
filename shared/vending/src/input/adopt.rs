//! The adopt request: take over a key the product did not mint, already stored in a secret
//! (the Terraform companion module's `{"api_key": "..."}`, a bare key, a key pasted by hand).

use serde_json::{Map, Value};

use crate::error::VendError;
use crate::input::fields;
use crate::input::provision::parse_key_name;

/// What to do when the adopted key's expiry is missing or outside the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonConforming {
    /// Rotate into a conforming successor as part of the adoption (the default).
    RotateNow,
    /// Leave it to the next sweep (the adopted key is due at once).
    NextSweep,
}

/// A validated adopt request (the workspace is resolved later, against the caller's scope).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdoptRequest {
    pub secret_name: String,
    pub workspace: String,
    pub key_name: String,
    /// Successors' lifetime; `None`: the policy's default.
    pub ttl_seconds: Option<u64>,
    pub rotate_before_seconds: Option<u64>,
    pub non_conforming: NonConforming,
    /// A bare-string secret may become a JSON record only when the request says so.
    pub convert_to_json: bool,
}

const FIELDS: &[&str] = &[
    "secret_name",
    "workspace",
    "key_name",
    "ttl_seconds",
    "rotate_before_seconds",
    "rotate_non_conforming",
    "convert_to_json",
    "idempotency_id",
];

impl AdoptRequest {
    /// Validates an adopt body; `prefix` is the managed secret-name prefix.
    ///
    /// # Errors
    /// [`VendError::Invalid`] or [`VendError::Policy`] naming the field and the rule.
    pub fn parse(v: &Value, prefix: &str) -> Result<Self, VendError> {
        let map = fields::object(v, "(request)", "must be a JSON object")?;
        fields::reject_unknown(
            map,
            FIELDS,
            &format!("is not a known field (expected {})", FIELDS.join(", ")),
        )?;
        let secret_name = super::action::managed_name(v, prefix)?;
        let workspace = fields::bounded_string(map, "workspace", 128, true)?.unwrap_or_default();
        let key_name = if map.get("key_name").is_some() {
            parse_key_name(map)?
        } else {
            let last = secret_name
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_owned();
            let mut derived = Map::new();
            derived.insert("key_name".into(), Value::String(last));
            parse_key_name(&derived).map_err(|_| {
                VendError::invalid(
                    "key_name",
                    "is required: the secret name's last segment is not a valid key name (a-z 0-9 - _ .)",
                )
            })?
        };
        let non_conforming = match fields::opt_str(v, "rotate_non_conforming")? {
            None | Some("now") => NonConforming::RotateNow,
            Some("next_sweep") => NonConforming::NextSweep,
            Some(_) => {
                return Err(VendError::invalid(
                    "rotate_non_conforming",
                    "must be \"now\" or \"next_sweep\"",
                ));
            }
        };
        Ok(Self {
            secret_name,
            workspace,
            key_name,
            ttl_seconds: fields::positive_seconds(map, "ttl_seconds")?,
            rotate_before_seconds: fields::positive_seconds(map, "rotate_before_seconds")?,
            non_conforming,
            convert_to_json: fields::opt_bool(v, "convert_to_json", "must be true or false")?
                .unwrap_or(false),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_adopt_request_names_each_bad_field() {
        let ok = json!({"secret_name": "openrouter/search/ranker", "workspace": "search"});
        let req = AdoptRequest::parse(&ok, "openrouter/").expect("valid");
        assert_eq!(req.key_name, "ranker");
        assert_eq!(req.non_conforming, NonConforming::RotateNow);
        assert!(!req.convert_to_json);
        for (v, field) in [
            (json!({"workspace": "search"}), "secret_name"),
            (
                json!({"secret_name": "elsewhere/x", "workspace": "search"}),
                "secret_name",
            ),
            (
                json!({"secret_name": "openrouter/search/ranker"}),
                "workspace",
            ),
            (
                json!({"secret_name": "openrouter/search/Ranker!", "workspace": "search"}),
                "secret_name",
            ),
            (
                json!({"secret_name": "openrouter/search/Ranker", "workspace": "search"}),
                "key_name",
            ),
            (
                json!({"secret_name": "openrouter/s/r", "workspace": "s", "ttl_seconds": 0}),
                "ttl_seconds",
            ),
            (
                json!({"secret_name": "openrouter/s/r", "workspace": "s", "rotate_non_conforming": "later"}),
                "rotate_non_conforming",
            ),
            (
                json!({"secret_name": "openrouter/s/r", "workspace": "s", "convert_to_json": "yes"}),
                "convert_to_json",
            ),
            (
                json!({"secret_name": "openrouter/s/r", "workspace": "s", "limit": 5}),
                "limit",
            ),
        ] {
            let err = AdoptRequest::parse(&v, "openrouter/").expect_err(field);
            assert!(
                err.to_string().contains(&format!("`{field}`")),
                "{field}: {err}"
            );
        }
    }
}
