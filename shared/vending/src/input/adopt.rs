//! The adopt request: take over a key the product did not mint, already stored in a secret
//! (the Terraform companion module's `{"api_key": "..."}`, a bare key, a key pasted by hand).

use serde_json::{Map, Value};

use crate::error::VendError;
use crate::input::fields;
use crate::input::provision::parse_key_name;

/// The key name a secret's name gives: its last segment, when that is a valid key name.
///
/// # Errors
/// [`VendError::Invalid`] naming `key_name`.
pub fn key_name_of(secret_name: &str) -> Result<String, VendError> {
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
    })
}

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

/// A validated bulk adoption: every unmanaged secret under `secret_prefix` (and carrying
/// `tag`, when given), planned (`dry_run`) or adopted, resumable with `next_token`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkAdoptRequest {
    pub secret_prefix: String,
    pub tag: Option<(String, String)>,
    /// The terms every secret is adopted on (`secret_name` and `key_name` per secret).
    pub terms: AdoptRequest,
    pub dry_run: bool,
    pub next_token: Option<String>,
    /// Stop after the page on which this many secrets were seen (`None`: as many as the
    /// invocation's time allows).
    pub max_secrets: Option<u64>,
}

/// An adopt request: one secret, or every secret under a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdoptInput {
    One(AdoptRequest),
    Bulk(BulkAdoptRequest),
}

const BULK_FIELDS: &[&str] = &[
    "secret_prefix",
    "tag",
    "workspace",
    "ttl_seconds",
    "rotate_before_seconds",
    "rotate_non_conforming",
    "convert_to_json",
    "dry_run",
    "next_token",
    "max_secrets",
    "idempotency_id",
];

impl AdoptInput {
    /// One secret (`secret_name`) or a bulk adoption (`secret_prefix`).
    ///
    /// # Errors
    /// As [`AdoptRequest::parse`] and [`BulkAdoptRequest::parse`].
    pub fn parse(v: &Value, prefix: &str) -> Result<Self, VendError> {
        if v.get("secret_prefix").is_some() {
            BulkAdoptRequest::parse(v, prefix).map(Self::Bulk)
        } else {
            AdoptRequest::parse(v, prefix).map(Self::One)
        }
    }
}

impl BulkAdoptRequest {
    /// Validates a bulk adoption body; `prefix` is the managed secret-name prefix.
    ///
    /// # Errors
    /// [`VendError::Invalid`] or [`VendError::Policy`] naming the field and the rule.
    pub fn parse(v: &Value, prefix: &str) -> Result<Self, VendError> {
        let map = fields::object(v, "(request)", "must be a JSON object")?;
        fields::reject_unknown(
            map,
            BULK_FIELDS,
            &format!("is not a known field (expected {})", BULK_FIELDS.join(", ")),
        )?;
        let secret_prefix =
            fields::bounded_string(map, "secret_prefix", 256, true)?.unwrap_or_default();
        if !crate::domain::names::valid_secret_name(&secret_prefix)
            || !secret_prefix.starts_with(prefix)
        {
            return Err(VendError::policy(
                "secret_prefix",
                format!(
                    "must be a secret-name prefix (A-Z a-z 0-9 / _ + = . @ -) under the managed prefix {prefix:?}"
                ),
            ));
        }
        let tag = tag_filter(map.get("tag"))?;
        let next_token = fields::opt_str(v, "next_token")?;
        if next_token.is_some_and(|t| t.is_empty() || t.len() > 4096) {
            return Err(VendError::invalid(
                "next_token",
                "must be the next_token of a previous reply",
            ));
        }
        let terms = bulk_terms(v, &secret_prefix, prefix)?;
        let max_secrets =
            match map.get("max_secrets") {
                None | Some(Value::Null) => None,
                Some(n) => Some(n.as_u64().filter(|n| (1..=10_000).contains(n)).ok_or_else(
                    || VendError::invalid("max_secrets", "must be a whole number within 1-10000"),
                )?),
            };
        Ok(Self {
            max_secrets,
            secret_prefix,
            tag,
            terms,
            dry_run: fields::opt_bool(v, "dry_run", "must be true or false")?.unwrap_or(false),
            next_token: next_token.map(str::to_owned),
        })
    }
}

/// The `tag` filter of a bulk adoption: `{"key": <1-128 characters>, "value": <at most 256>}`.
fn tag_filter(v: Option<&Value>) -> Result<Option<(String, String)>, VendError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(t)) => {
            let k = t
                .get("key")
                .and_then(Value::as_str)
                .filter(|k| !k.is_empty() && k.len() <= 128);
            let val = t
                .get("value")
                .and_then(Value::as_str)
                .filter(|x| x.len() <= 256);
            match (k, val, t.len()) {
                (Some(k), Some(val), 2) => Ok(Some((k.to_owned(), val.to_owned()))),
                _ => Err(VendError::invalid(
                    "tag",
                    "must be {\"key\": <1-128 characters>, \"value\": <at most 256>}",
                )),
            }
        }
        Some(_) => Err(VendError::invalid(
            "tag",
            "must be an object with key and value",
        )),
    }
}

/// The terms of a bulk adoption, checked as a single adoption's (a placeholder name stands
/// for each secret).
fn bulk_terms(v: &Value, secret_prefix: &str, prefix: &str) -> Result<AdoptRequest, VendError> {
    let mut one = v.clone();
    if let Some(o) = one.as_object_mut() {
        for f in [
            "secret_prefix",
            "tag",
            "dry_run",
            "next_token",
            "max_secrets",
        ] {
            o.remove(f);
        }
        o.insert(
            "secret_name".into(),
            Value::String(format!("{secret_prefix}x")),
        );
        o.insert("key_name".into(), Value::String("x".into()));
    }
    // The placeholder's name is the prefix's: a refusal of it is one of `secret_prefix`.
    AdoptRequest::parse(&one, prefix)
        .map_err(|e| e.with_field_renamed("secret_name", "secret_prefix"))
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

/// A secret adopted must be one the product could have created: its every generation's key
/// name (`orkv:<secret name>:r<12 hex digits>`) must fit OpenRouter's, or it could never rotate.
///
/// # Errors
/// `AdoptionRefused` naming `secret_name`.
pub fn adoptable_name(secret_name: &str) -> Result<(), VendError> {
    use crate::domain::names::{MAX_KEY_NAME, MAX_MANAGED_SECRET_NAME};
    if secret_name.len() > MAX_MANAGED_SECRET_NAME {
        return Err(VendError::adoption(
            "secret_name",
            format!(
                "is {} characters: at most {MAX_MANAGED_SECRET_NAME}, as provision allows, so that every generation's OpenRouter key name fits {MAX_KEY_NAME}",
                secret_name.len()
            ),
        ));
    }
    Ok(())
}

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
            key_name_of(&secret_name)?
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
    fn a_bulk_prefix_too_long_for_any_name_is_refused_as_the_prefix() {
        let long = format!("openrouter/{}", "p".repeat(256 - "openrouter/".len()));
        let err = BulkAdoptRequest::parse(
            &json!({"secret_prefix": long, "workspace": "search"}),
            "openrouter/",
        )
        .expect_err("refused");
        assert!(err.to_string().contains("`secret_prefix`"), "{err}");
    }

    #[test]
    fn a_name_provision_would_refuse_cannot_be_adopted() {
        let longest = format!("openrouter/{}", "s".repeat(237 - "openrouter/".len()));
        assert!(adoptable_name(&longest).is_ok());
        match adoptable_name(&format!("{longest}x")) {
            Err(VendError::AdoptionRefused { field, rule }) => {
                assert_eq!(field, "secret_name");
                assert!(rule.contains("at most 237"), "{rule}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_bulk_adoption_names_each_bad_field() {
        let ok = json!({"secret_prefix": "openrouter/search/", "workspace": "search", "dry_run": true,
                        "tag": {"key": "team", "value": "search"}});
        let AdoptInput::Bulk(req) = AdoptInput::parse(&ok, "openrouter/").expect("valid") else {
            panic!("bulk");
        };
        assert!(req.dry_run);
        assert_eq!(req.tag, Some(("team".into(), "search".into())));
        for (v, field) in [
            (
                json!({"secret_prefix": "elsewhere/", "workspace": "s"}),
                "secret_prefix",
            ),
            (
                json!({"secret_prefix": "openrouter/s/", "workspace": "s", "tag": "team"}),
                "tag",
            ),
            (
                json!({"secret_prefix": "openrouter/s/", "workspace": "s", "tag": {"key": "team"}}),
                "tag",
            ),
            (
                json!({"secret_prefix": "openrouter/s/", "workspace": "s", "dry_run": 1}),
                "dry_run",
            ),
            (
                json!({"secret_prefix": "openrouter/s/", "workspace": "s", "next_token": ""}),
                "next_token",
            ),
            (
                json!({"secret_prefix": "openrouter/s/", "workspace": "s", "secret_name": "openrouter/s/x"}),
                "secret_name",
            ),
            (json!({"secret_prefix": "openrouter/s/"}), "workspace"),
            (
                json!({"secret_prefix": "openrouter/s/", "workspace": "s", "max_secrets": 0}),
                "max_secrets",
            ),
        ] {
            let err = AdoptInput::parse(&v, "openrouter/").expect_err(field);
            assert!(
                err.to_string().contains(&format!("`{field}`")),
                "{field}: {err}"
            );
        }
    }

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
