//! The provision request: its wire form, and validation that names the field and the rule.
//! Nothing here makes a remote call; a request that fails here creates nothing.

use std::collections::BTreeMap;

use orkv_openrouter::LimitReset;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::domain::lifetime::Lifetime;
use crate::domain::names::{MAX_SECRET_NAME, valid_secret_name};
use crate::domain::policy::{Bounds, Policy};
use crate::domain::tags;
use crate::error::VendError;
use crate::input::fields;

const MAX_WORKSPACE: usize = 128;
const MAX_KEY_NAME: usize = 64;
const MAX_DESCRIPTION: usize = 2048;
const MAX_KMS: usize = 2048;
const MAX_IDEMPOTENCY: usize = 128;
/// AWS allows 50 tags per secret; the product may write up to
/// [`crate::domain::tags::PRODUCT_MAX_TAGS`] (29) of its own, so requests may add 21.
pub const MAX_USER_TAGS: usize = crate::domain::tags::OTHER_TAGS_ROOM;

/// A validated request (not yet resolved against OpenRouter's workspaces).
#[derive(Debug, Clone, PartialEq)]
pub struct ProvisionRequest {
    pub workspace: String,
    pub key_name: String,
    pub limit: f64,
    pub limit_reset: Option<LimitReset>,
    pub include_byok_in_limit: bool,
    pub lifetime: Lifetime,
    /// The lifetime's length from `now`, and whether the request gave it (else the
    /// policy-wide default, which the workspace entry's own default replaces).
    pub lifetime_seconds: u64,
    pub lifetime_given: bool,
    pub rotate_before_seconds: u64,
    pub rotate_before_given: bool,
    /// `None`: `<prefix><workspace>/<key_name>` once the workspace is resolved.
    pub secret_name: Option<String>,
    pub description: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub kms_key_id: Option<String>,
    pub idempotency_id: Option<String>,
}

const FIELDS: &[&str] = &[
    "workspace",
    "key_name",
    "limit",
    "limit_reset",
    "include_byok_in_limit",
    "expires_at",
    "ttl_seconds",
    "rotate_before_seconds",
    "secret_name",
    "description",
    "tags",
    "kms_key_id",
    "idempotency_id",
];

fn valid_tag_text(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_alphanumeric() || c == ' ' || "_.:/=+-@".contains(c))
}

/// Parses `expires_at`: UTC with seconds (`2027-12-31T23:59:59Z`), as OpenRouter requires.
fn parse_expiry(text: &str) -> Result<OffsetDateTime, VendError> {
    let rule = "must be a UTC timestamp with seconds, e.g. 2027-12-31T23:59:59Z";
    let b = text.as_bytes();
    if b.len() != 20 || b.get(10) != Some(&b'T') || b.get(19) != Some(&b'Z') {
        return Err(VendError::invalid("expires_at", rule));
    }
    OffsetDateTime::parse(text, &Rfc3339).map_err(|_| VendError::invalid("expires_at", rule))
}

impl ProvisionRequest {
    /// Validates a request object against the shape and the policy's lifetime bounds.
    ///
    /// # Errors
    /// [`VendError::Invalid`] or [`VendError::Policy`] naming the field and the rule.
    pub fn parse(value: &Value, policy: &Policy, now: OffsetDateTime) -> Result<Self, VendError> {
        let map = fields::object(value, "(request)", "must be a JSON object")?;
        fields::reject_unknown(map, FIELDS, "is not a known field")?;
        let workspace =
            fields::bounded_string(map, "workspace", MAX_WORKSPACE, true)?.unwrap_or_default();
        let key_name = parse_key_name(map)?;
        let limit = parse_limit(map)?;
        let limit_reset = parse_limit_reset(map)?;
        let include_byok_in_limit =
            fields::opt_bool(value, "include_byok_in_limit", "must be a boolean")?.unwrap_or(false);
        let (lifetime, seconds, lifetime_given) = parse_lifetime(map, &policy.bounds, now)?;
        let rotate_before = fields::positive_seconds(map, "rotate_before_seconds")?;
        let rotate_before_seconds = rotate_before_within(rotate_before, seconds, &policy.bounds)?;
        Ok(Self {
            lifetime_seconds: seconds,
            lifetime_given,
            rotate_before_given: rotate_before.is_some(),
            workspace,
            key_name,
            limit,
            limit_reset,
            include_byok_in_limit,
            lifetime,
            rotate_before_seconds,
            secret_name: parse_secret_name(map)?,
            description: fields::bounded_string(map, "description", MAX_DESCRIPTION, false)?,
            tags: parse_tags(map.get("tags"))?,
            kms_key_id: fields::bounded_string(map, "kms_key_id", MAX_KMS, false)?,
            idempotency_id: fields::bounded_string(map, "idempotency_id", MAX_IDEMPOTENCY, false)?,
        })
    }
}

pub(crate) fn parse_key_name(map: &Map<String, Value>) -> Result<String, VendError> {
    let key_name = fields::bounded_string(map, "key_name", MAX_KEY_NAME, true)?.unwrap_or_default();
    let first = key_name.bytes().next().unwrap_or(b'-');
    if !(first.is_ascii_lowercase() || first.is_ascii_digit())
        || !key_name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
    {
        return Err(VendError::invalid(
            "key_name",
            "must start with a-z or 0-9 and hold only a-z 0-9 - _ .",
        ));
    }
    Ok(key_name)
}

fn parse_limit(map: &Map<String, Value>) -> Result<f64, VendError> {
    let limit = match map.get("limit") {
        None | Some(Value::Null) => {
            return Err(VendError::policy(
                "limit",
                "is required: every key has a spend cap",
            ));
        }
        Some(Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
        Some(_) => return Err(VendError::invalid("limit", "must be a number (USD)")),
    };
    if !(limit.is_finite() && limit > 0.0) {
        return Err(VendError::invalid(
            "limit",
            "must be a number greater than 0 (USD)",
        ));
    }
    Ok(limit)
}

fn parse_limit_reset(map: &Map<String, Value>) -> Result<Option<LimitReset>, VendError> {
    let bad = || {
        VendError::invalid(
            "limit_reset",
            "must be one of daily, weekly, monthly or null",
        )
    };
    match map.get("limit_reset") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => match s.as_str() {
            "daily" => Ok(Some(LimitReset::Daily)),
            "weekly" => Ok(Some(LimitReset::Weekly)),
            "monthly" => Ok(Some(LimitReset::Monthly)),
            _ => Err(bad()),
        },
        Some(_) => Err(bad()),
    }
}

/// `rotate_before_seconds` (given, or the default for a lifetime of `seconds`), shorter than
/// the lifetime.
///
/// # Errors
/// [`VendError::Invalid`] on `rotate_before_seconds`.
pub fn rotate_before_within(
    given: Option<u64>,
    seconds: u64,
    bounds: &Bounds,
) -> Result<u64, VendError> {
    let rotate_before =
        given.unwrap_or_else(|| bounds.default_rotate_before_seconds.min(seconds / 2).max(1));
    if rotate_before >= seconds {
        return Err(VendError::invalid(
            "rotate_before_seconds",
            "must be shorter than the key's lifetime",
        ));
    }
    Ok(rotate_before)
}

/// The lifetime, its length in seconds, and whether the request gave it, within `bounds`.
fn parse_lifetime(
    map: &Map<String, Value>,
    bounds: &Bounds,
    now: OffsetDateTime,
) -> Result<(Lifetime, u64, bool), VendError> {
    let expires_at = fields::bounded_string(map, "expires_at", 20, false).map_err(|_| {
        VendError::invalid(
            "expires_at",
            "must be a UTC timestamp with seconds, e.g. 2027-12-31T23:59:59Z",
        )
    })?;
    let ttl = fields::positive_seconds(map, "ttl_seconds")?;
    let given = expires_at.is_some() || ttl.is_some();
    let (lifetime, seconds) = match (expires_at, ttl) {
        (Some(_), Some(_)) => {
            return Err(VendError::invalid(
                "ttl_seconds",
                "give either expires_at or ttl_seconds, not both",
            ));
        }
        (Some(text), None) => {
            let at = parse_expiry(&text)?;
            let secs = (at - now).whole_seconds();
            if secs <= 0 {
                return Err(VendError::invalid("expires_at", "must be in the future"));
            }
            (Lifetime::ExpiresAt(at), u64::try_from(secs).unwrap_or(0))
        }
        (None, Some(s)) => (Lifetime::TtlSeconds(s), s),
        (None, None) => (
            Lifetime::TtlSeconds(bounds.default_ttl_seconds),
            bounds.default_ttl_seconds,
        ),
    };
    lifetime_within(lifetime, seconds, bounds)?;
    Ok((lifetime, seconds, given))
}

/// # Errors
/// [`VendError::Policy`] on the lifetime's field when `seconds` is outside `bounds`.
pub fn lifetime_within(lifetime: Lifetime, seconds: u64, bounds: &Bounds) -> Result<(), VendError> {
    let field = lifetime.field();
    if seconds < bounds.min_ttl_seconds {
        return Err(VendError::policy(
            field,
            format!(
                "the key must live at least {} seconds",
                bounds.min_ttl_seconds
            ),
        ));
    }
    if seconds > bounds.max_ttl_seconds {
        return Err(VendError::policy(
            field,
            format!(
                "the key may live at most {} seconds",
                bounds.max_ttl_seconds
            ),
        ));
    }
    Ok(())
}

fn parse_secret_name(map: &Map<String, Value>) -> Result<Option<String>, VendError> {
    let secret_name = fields::bounded_string(map, "secret_name", MAX_SECRET_NAME, false)?;
    if let Some(name) = &secret_name
        && (!valid_secret_name(name) || name.starts_with('/') || name.contains("//"))
    {
        return Err(VendError::invalid(
            "secret_name",
            "must be 1-256 characters of A-Z a-z 0-9 / _ + = . @ - without empty path segments",
        ));
    }
    Ok(secret_name)
}

fn parse_tags(value: Option<&Value>) -> Result<BTreeMap<String, String>, VendError> {
    let map = match value {
        None | Some(Value::Null) => return Ok(BTreeMap::new()),
        Some(Value::Object(m)) => m,
        Some(_) => {
            return Err(VendError::invalid(
                "tags",
                "must be an object of string values",
            ));
        }
    };
    if map.len() > MAX_USER_TAGS {
        return Err(VendError::invalid(
            "tags",
            format!("at most {MAX_USER_TAGS} tags"),
        ));
    }
    let mut tags = BTreeMap::new();
    for (k, v) in map {
        let field = format!("tags.{k}");
        if k.is_empty() || k.chars().count() > 127 || !valid_tag_text(k) {
            return Err(VendError::invalid(
                field,
                "tag keys are 1-127 letters, digits, spaces or _ . : / = + - @",
            ));
        }
        if k.to_ascii_lowercase().starts_with("aws:") || k.starts_with(tags::RESERVED_PREFIX) {
            return Err(VendError::invalid(
                field,
                "tag keys starting with aws: or orkv: are reserved",
            ));
        }
        let Value::String(v) = v else {
            return Err(VendError::invalid(field, "must be a string"));
        };
        if v.chars().count() > 255 || !valid_tag_text(v) {
            return Err(VendError::invalid(
                field,
                "tag values are 0-255 letters, digits, spaces or _ . : / = + - @",
            ));
        }
        tags.insert(k.clone(), v.clone());
    }
    Ok(tags)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy() -> Policy {
        Policy::from_json(
            r#"{"workspaces":[{"workspace":"checkout","max_limit":100}],
            "min_ttl_seconds":3600,"max_ttl_seconds":7776000}"#,
        )
        .expect("policy")
    }

    fn now() -> OffsetDateTime {
        time::macros::datetime!(2026-11-22 12:00:00 UTC)
    }

    fn base() -> Value {
        json!({"workspace":"checkout","key_name":"payments-api","limit":50,"limit_reset":"monthly"})
    }

    fn err_of(patch: Value) -> String {
        let mut req = base();
        if let (Some(obj), Value::Object(p)) = (req.as_object_mut(), patch) {
            for (k, v) in p {
                if v == json!("__remove__") {
                    obj.remove(&k);
                } else {
                    obj.insert(k, v);
                }
            }
        }
        ProvisionRequest::parse(&req, &policy(), now())
            .expect_err("must be rejected")
            .to_string()
    }

    #[test]
    fn a_minimal_request_gets_the_policy_defaults() {
        let req = ProvisionRequest::parse(&base(), &policy(), now()).expect("valid");
        assert_eq!(req.lifetime, Lifetime::TtlSeconds(30 * 86_400));
        assert_eq!(req.rotate_before_seconds, 7 * 86_400);
        assert_eq!(req.limit_reset, Some(LimitReset::Monthly));
        assert!(!req.include_byok_in_limit);
    }

    #[test]
    fn every_bad_cap_workspace_or_key_name_is_named_with_its_rule() {
        let cases = [
            (json!({"limit": "__remove__"}), "field `limit`: is required"),
            (
                json!({"limit": -1}),
                "field `limit`: must be a number greater than 0",
            ),
            (json!({"limit": "50"}), "field `limit`: must be a number"),
            (
                json!({"limit_reset": "hourly"}),
                "field `limit_reset`: must be one of",
            ),
            (
                json!({"workspace": 7}),
                "field `workspace`: must be a string",
            ),
            (
                json!({"workspace": "__remove__"}),
                "field `workspace`: is required",
            ),
            (
                json!({"key_name": "Payments API"}),
                "field `key_name`: must start",
            ),
            (
                json!({"key_name": "x".repeat(65)}),
                "field `key_name`: must be at most 64",
            ),
        ];
        assert_each_named(cases);
    }

    #[test]
    fn every_bad_lifetime_secret_or_tag_field_is_named_with_its_rule() {
        let cases = [
            (
                json!({"expires_at": "2020-01-01T00:00:00Z"}),
                "field `expires_at`: must be in the future",
            ),
            (
                json!({"expires_at": "2027-01-01T00:00+00:00"}),
                "field `expires_at`: must be a UTC timestamp",
            ),
            (
                json!({"expires_at": "2030-01-01T00:00:00Z"}),
                "field `expires_at`: the key may live at most",
            ),
            (
                json!({"ttl_seconds": 60}),
                "field `ttl_seconds`: the key must live at least",
            ),
            (
                json!({"ttl_seconds": -5}),
                "field `ttl_seconds`: must be a whole number",
            ),
            (
                json!({"ttl_seconds": 7200, "expires_at": "2027-01-01T00:00:00Z"}),
                "not both",
            ),
            (
                json!({"ttl_seconds": 7200, "rotate_before_seconds": 7200}),
                "field `rotate_before_seconds`",
            ),
            (json!({"secret_name": "bad name!"}), "field `secret_name`"),
            (
                json!({"description": "d".repeat(2049)}),
                "field `description`: must be at most 2048",
            ),
            (
                json!({"tags": {"aws:owner": "x"}}),
                "field `tags.aws:owner`: tag keys starting with aws:",
            ),
            (
                json!({"tags": {"team": 5}}),
                "field `tags.team`: must be a string",
            ),
            (json!({"tags": ["team"]}), "field `tags`: must be an object"),
            (
                json!({"colour": "blue"}),
                "field `colour`: is not a known field",
            ),
            (
                json!({"include_byok_in_limit": "yes"}),
                "field `include_byok_in_limit`: must be a boolean",
            ),
        ];
        assert_each_named(cases);
    }

    fn assert_each_named<const N: usize>(cases: [(serde_json::Value, &str); N]) {
        for (patch, expected) in cases {
            let shown = patch.to_string();
            let err = err_of(patch);
            assert!(err.contains(expected), "{shown}: {err}");
        }
    }

    #[test]
    fn a_request_must_be_an_object() {
        let err = ProvisionRequest::parse(&json!([1]), &policy(), now()).expect_err("array");
        assert!(err.to_string().contains("must be a JSON object"));
    }

    #[test]
    fn an_explicit_expiry_is_kept_exactly() {
        let mut req = base();
        req["expires_at"] = json!("2027-01-01T00:00:00Z");
        let req = ProvisionRequest::parse(&req, &policy(), now()).expect("valid");
        assert_eq!(
            req.lifetime,
            Lifetime::ExpiresAt(time::macros::datetime!(2027-01-01 00:00:00 UTC))
        );
    }
}
