//! The provision request: its wire form, and validation that names the field and the rule.
//! Nothing here makes a remote call; a request that fails here creates nothing.

use std::collections::BTreeMap;

use orkv_openrouter::LimitReset;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::VendError;
use crate::policy::Policy;

const MAX_WORKSPACE: usize = 128;
const MAX_KEY_NAME: usize = 64;
const MAX_SECRET_NAME: usize = 256;
const MAX_DESCRIPTION: usize = 2048;
const MAX_KMS: usize = 2048;
const MAX_IDEMPOTENCY: usize = 128;
/// AWS allows 50 tags per secret; the product uses up to 11 of its own plus one per key
/// awaiting retirement (at most 10), so requests may add 25.
pub const MAX_USER_TAGS: usize = 25;
/// Tags whose key starts with this are the product's own.
pub const RESERVED_TAG_PREFIX: &str = "orkv:";

/// How long the key lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lifetime {
    /// A fixed expiry.
    ExpiresAt(#[serde(with = "time::serde::rfc3339")] OffsetDateTime),
    /// A lifetime counted from each key's creation.
    TtlSeconds(u64),
}

impl Lifetime {
    /// The expiry of a key minted at `now`.
    #[must_use]
    pub fn expiry_from(self, now: OffsetDateTime) -> OffsetDateTime {
        match self {
            Self::ExpiresAt(at) => at,
            Self::TtlSeconds(s) => {
                now.replace_nanosecond(0).unwrap_or(now)
                    + time::Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX / 2))
            }
        }
    }

    /// The `orkv:lifetime` tag value: `ttl:<seconds>` or `at:<RFC 3339>`.
    #[must_use]
    pub fn tag_value(self) -> String {
        match self {
            Self::ExpiresAt(at) => format!("at:{}", orkv_openrouter::format_expires_at(at)),
            Self::TtlSeconds(s) => format!("ttl:{s}"),
        }
    }

    /// Parses [`Lifetime::tag_value`]'s form.
    #[must_use]
    pub fn from_tag_value(v: &str) -> Option<Self> {
        if let Some(s) = v.strip_prefix("ttl:") {
            return s.parse().ok().map(Self::TtlSeconds);
        }
        let at = v.strip_prefix("at:")?;
        OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
            .ok()
            .map(Self::ExpiresAt)
    }

    /// The request field this lifetime came from.
    #[must_use]
    pub fn field(self) -> &'static str {
        match self {
            Self::ExpiresAt(_) => "expires_at",
            Self::TtlSeconds(_) => "ttl_seconds",
        }
    }
}

/// A validated request (not yet resolved against OpenRouter's workspaces).
#[derive(Debug, Clone, PartialEq)]
pub struct ProvisionRequest {
    pub workspace: String,
    pub key_name: String,
    pub limit: f64,
    pub limit_reset: Option<LimitReset>,
    pub include_byok_in_limit: bool,
    pub lifetime: Lifetime,
    pub rotate_before_seconds: u64,
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

fn string(
    map: &Map<String, Value>,
    field: &str,
    max: usize,
    required: bool,
) -> Result<Option<String>, VendError> {
    match map.get(field) {
        None | Some(Value::Null) if required => Err(VendError::invalid(field, "is required")),
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => {
            Err(VendError::invalid(field, "must not be empty"))
        }
        Some(Value::String(s)) if s.chars().count() > max => Err(VendError::invalid(
            field,
            format!("must be at most {max} characters"),
        )),
        Some(Value::String(s)) if s.chars().any(char::is_control) => Err(VendError::invalid(
            field,
            "must not contain control characters",
        )),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(VendError::invalid(field, "must be a string")),
    }
}

fn whole(map: &Map<String, Value>, field: &str) -> Result<Option<u64>, VendError> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_u64().filter(|v| *v > 0).map(Some).ok_or_else(|| {
            VendError::invalid(field, "must be a whole number of seconds greater than 0")
        }),
        Some(_) => Err(VendError::invalid(field, "must be a number")),
    }
}

/// Secret names: 1-256 of `A-Z a-z 0-9 / _ + = . @ -`, as Secrets Manager allows.
#[must_use]
pub fn valid_secret_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_SECRET_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_+=.@-".contains(&b))
}

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
        let Value::Object(map) = value else {
            return Err(VendError::invalid("(request)", "must be a JSON object"));
        };
        if let Some(unknown) = map.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(VendError::invalid(unknown.as_str(), "is not a known field"));
        }
        let workspace = string(map, "workspace", MAX_WORKSPACE, true)?.unwrap_or_default();
        let key_name = string(map, "key_name", MAX_KEY_NAME, true)?.unwrap_or_default();
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
        let limit_reset = match map.get("limit_reset") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(match s.as_str() {
                "daily" => LimitReset::Daily,
                "weekly" => LimitReset::Weekly,
                "monthly" => LimitReset::Monthly,
                _ => {
                    return Err(VendError::invalid(
                        "limit_reset",
                        "must be one of daily, weekly, monthly or null",
                    ));
                }
            }),
            Some(_) => {
                return Err(VendError::invalid(
                    "limit_reset",
                    "must be one of daily, weekly, monthly or null",
                ));
            }
        };
        let include_byok_in_limit = match map.get("include_byok_in_limit") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(VendError::invalid(
                    "include_byok_in_limit",
                    "must be a boolean",
                ));
            }
        };
        let expires_at = string(map, "expires_at", 20, false).map_err(|_| {
            VendError::invalid(
                "expires_at",
                "must be a UTC timestamp with seconds, e.g. 2027-12-31T23:59:59Z",
            )
        })?;
        let ttl = whole(map, "ttl_seconds")?;
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
                Lifetime::TtlSeconds(policy.default_ttl_seconds),
                policy.default_ttl_seconds,
            ),
        };
        let field = lifetime.field();
        if seconds < policy.min_ttl_seconds {
            return Err(VendError::policy(
                field,
                format!(
                    "the key must live at least {} seconds",
                    policy.min_ttl_seconds
                ),
            ));
        }
        if seconds > policy.max_ttl_seconds {
            return Err(VendError::policy(
                field,
                format!(
                    "the key may live at most {} seconds",
                    policy.max_ttl_seconds
                ),
            ));
        }
        let rotate_before_seconds = whole(map, "rotate_before_seconds")?
            .unwrap_or_else(|| policy.default_rotate_before_seconds.min(seconds / 2).max(1));
        if rotate_before_seconds >= seconds {
            return Err(VendError::invalid(
                "rotate_before_seconds",
                "must be shorter than the key's lifetime",
            ));
        }
        let secret_name = string(map, "secret_name", MAX_SECRET_NAME, false)?;
        if let Some(name) = &secret_name
            && (!valid_secret_name(name) || name.starts_with('/') || name.contains("//"))
        {
            return Err(VendError::invalid(
                "secret_name",
                "must be 1-256 characters of A-Z a-z 0-9 / _ + = . @ - without empty path segments",
            ));
        }
        let description = string(map, "description", MAX_DESCRIPTION, false)?;
        let kms_key_id = string(map, "kms_key_id", MAX_KMS, false)?;
        let idempotency_id = string(map, "idempotency_id", MAX_IDEMPOTENCY, false)?;
        let tags = parse_tags(map.get("tags"))?;
        Ok(Self {
            workspace,
            key_name,
            limit,
            limit_reset,
            include_byok_in_limit,
            lifetime,
            rotate_before_seconds,
            secret_name,
            description,
            tags,
            kms_key_id,
            idempotency_id,
        })
    }
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
        if k.to_ascii_lowercase().starts_with("aws:") || k.starts_with(RESERVED_TAG_PREFIX) {
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
    fn every_bad_field_is_named_with_its_rule() {
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
