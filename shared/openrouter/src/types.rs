//! Wire types of the management API, as `management-openapi.yaml` describes them.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::secret::ApiKey;

/// When a key's spend cap resets (midnight UTC; weeks run Monday to Sunday).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LimitReset {
    Daily,
    Weekly,
    Monthly,
}

impl LimitReset {
    /// The wire spelling.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Daily => "daily",
            Self::Weekly => "weekly",
            Self::Monthly => "monthly",
        }
    }
}

/// A key's `limit_reset` as an open value, as OpenRouter's own SDKs decode their enums
/// (CONTRACT.md, "Enums are open"): a spelling this client does not know reads as no reset
/// (a warning names it) instead of failing the key, and with it a whole listing page.
fn open_limit_reset<'de, D>(d: D) -> Result<Option<LimitReset>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let raw: Option<String> = Option::deserialize(d)?;
    Ok(raw.and_then(|v| match v.as_str() {
        "daily" => Some(LimitReset::Daily),
        "weekly" => Some(LimitReset::Weekly),
        "monthly" => Some(LimitReset::Monthly),
        other => {
            tracing::warn!(limit_reset = %other, "a key's limit_reset is not one this client knows; read as none");
            None
        }
    }))
}

/// A key's spend cap: the three mutable cap settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Cap {
    /// USD.
    pub limit: f64,
    pub limit_reset: Option<LimitReset>,
    pub include_byok_in_limit: bool,
}

/// A key as the management API describes it (never the plaintext).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Key {
    pub hash: String,
    pub name: String,
    #[serde(default)]
    pub label: String,
    #[serde(default)]
    pub disabled: bool,
    pub limit: Option<f64>,
    #[serde(default)]
    pub limit_remaining: Option<f64>,
    /// Decoded as an open value ([`open_limit_reset`]).
    #[serde(default, deserialize_with = "open_limit_reset")]
    pub limit_reset: Option<LimitReset>,
    #[serde(default)]
    pub include_byok_in_limit: bool,
    #[serde(default)]
    pub usage: f64,
    /// Spend in the current UTC day, week (from Monday) and month; BYOK spend apart.
    #[serde(default)]
    pub usage_daily: Option<f64>,
    #[serde(default)]
    pub usage_weekly: Option<f64>,
    #[serde(default)]
    pub usage_monthly: Option<f64>,
    #[serde(default)]
    pub byok_usage: Option<f64>,
    #[serde(default)]
    pub byok_usage_daily: Option<f64>,
    #[serde(default)]
    pub byok_usage_weekly: Option<f64>,
    #[serde(default)]
    pub byok_usage_monthly: Option<f64>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub updated_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    #[serde(default)]
    pub creator_user_id: Option<String>,
    pub workspace_id: String,
    /// When the key was last used (OpenRouter's key audit cookbook; null also for a key last
    /// used before the field existed, end of 2025).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
}

impl Key {
    /// What the key spent in its cap's current period (the whole lifetime without a reset),
    /// BYOK spend included when the cap counts it.
    #[must_use]
    pub fn period_spend(&self) -> f64 {
        let (spend, byok) = match self.limit_reset {
            Some(LimitReset::Daily) => (self.usage_daily, self.byok_usage_daily),
            Some(LimitReset::Weekly) => (self.usage_weekly, self.byok_usage_weekly),
            Some(LimitReset::Monthly) => (self.usage_monthly, self.byok_usage_monthly),
            None => (Some(self.usage), self.byok_usage),
        };
        let byok = if self.include_byok_in_limit {
            byok.unwrap_or(0.0)
        } else {
            0.0
        };
        spend.unwrap_or(self.usage) + byok
    }

    /// The cap settings of this key, if it has a limit.
    #[must_use]
    pub fn cap(&self) -> Option<Cap> {
        self.limit.map(|limit| Cap {
            limit,
            limit_reset: self.limit_reset,
            include_byok_in_limit: self.include_byok_in_limit,
        })
    }
}

/// `GET /key`: what the calling key is.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CurrentKey {
    pub label: String,
    pub limit: Option<f64>,
    #[serde(default)]
    pub limit_remaining: Option<f64>,
    /// Decoded as an open value ([`open_limit_reset`]).
    #[serde(default, deserialize_with = "open_limit_reset")]
    pub limit_reset: Option<LimitReset>,
    #[serde(default)]
    pub include_byok_in_limit: bool,
    #[serde(default)]
    pub usage: f64,
    #[serde(default)]
    pub is_free_tier: bool,
    #[serde(default)]
    pub is_management_key: bool,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    #[serde(default)]
    pub creator_user_id: Option<String>,
}

/// A workspace (only the fields this product reads; others are ignored).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Workspace {
    pub id: String,
    pub name: String,
    pub slug: String,
    #[serde(default)]
    pub description: Option<String>,
    /// The guardrail OpenRouter applies to every key of the workspace without an assignment;
    /// it cannot be assigned (CONTRACT.md, "Assigning").
    #[serde(default)]
    pub default_guardrail_id: Option<String>,
    /// The keys whose I/O this workspace logs, by OpenRouter's integer key id (which the
    /// documented key object does not carry, so the product cannot map its keys to them).
    #[serde(default)]
    pub io_logging_api_key_ids: Option<Vec<serde_json::Value>>,
}

/// A guardrail, as far as the product reads one: its workspace (`None`: a legacy guardrail
/// predating workspaces) and its budget.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Guardrail {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub workspace_id: Option<String>,
    #[serde(default)]
    pub limit_usd: Option<f64>,
    #[serde(default)]
    pub reset_interval: Option<LimitReset>,
    #[serde(default)]
    pub include_byok_in_budgets: bool,
}

/// `POST /keys` body.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CreateKeyRequest {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<f64>,
    pub limit_reset: Option<LimitReset>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub include_byok_in_limit: Option<bool>,
    /// UTC with seconds, as [`format_expires_at`] writes it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<String>,
}

/// The `POST /keys` reply: the key's record and, once, its plaintext (top-level `key`).
#[derive(Debug, Deserialize)]
pub struct CreatedKey {
    pub data: Key,
    pub key: ApiKey,
}

/// A `PATCH /keys/{hash}` body: only the mutable fields; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyPatch {
    pub name: Option<String>,
    pub disabled: Option<bool>,
    pub cap: Option<Cap>,
}

impl KeyPatch {
    pub(crate) fn to_json(&self) -> serde_json::Value {
        let mut body = serde_json::Map::new();
        if let Some(name) = &self.name {
            body.insert("name".into(), name.clone().into());
        }
        if let Some(disabled) = self.disabled {
            body.insert("disabled".into(), disabled.into());
        }
        if let Some(cap) = &self.cap {
            body.insert("limit".into(), cap.limit.into());
            body.insert(
                "limit_reset".into(),
                cap.limit_reset
                    .map_or(serde_json::Value::Null, |r| r.as_str().into()),
            );
            body.insert(
                "include_byok_in_limit".into(),
                cap.include_byok_in_limit.into(),
            );
        }
        serde_json::Value::Object(body)
    }
}

/// Formats an expiry the way OpenRouter requires: UTC, whole seconds, `Z` suffix.
#[must_use]
pub fn format_expires_at(at: OffsetDateTime) -> String {
    let utc = at.to_offset(time::UtcOffset::UTC);
    let trimmed = utc.replace_nanosecond(0).unwrap_or(utc);
    trimmed
        .format(&Rfc3339)
        .unwrap_or_else(|_| trimmed.unix_timestamp().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_parses_both_timestamp_spellings_and_ignores_unknown_fields() {
        let json = r#"{"hash":"ab","name":"n","label":"l","disabled":false,"limit":5,
            "limit_remaining":5,"limit_reset":"monthly","include_byok_in_limit":true,"usage":0,
            "created_at":"2025-08-24T10:30:00.123+00:00","updated_at":null,
            "expires_at":"2027-12-31T23:59:59Z","creator_user_id":null,
            "workspace_id":"w","last_used_at":"2025-08-24T10:30:00Z","external_user":"x"}"#;
        let key: Key = serde_json::from_str(json).expect("parses");
        assert_eq!(key.limit_reset, Some(LimitReset::Monthly));
        // An enum value OpenRouter may add later reads as no reset, not as a broken key.
        let newer = json.replace("\"monthly\"", "\"yearly\"");
        let key: Key = serde_json::from_str(&newer).expect("an open value");
        assert_eq!(key.limit_reset, None);
        assert_eq!(key.expires_at.map(|t| t.year()), Some(2027));
        assert_eq!(key.cap().map(|c| c.limit), Some(5.0));
    }

    #[test]
    fn expiry_is_written_in_utc_with_whole_seconds() {
        let at = time::macros::datetime!(2026-12-31 23:59:59.75 +02:00);
        assert_eq!(format_expires_at(at), "2026-12-31T21:59:59Z");
    }

    #[test]
    fn patch_sends_only_what_it_changes_and_null_for_no_reset() {
        let patch = KeyPatch {
            cap: Some(Cap {
                limit: 10.0,
                limit_reset: None,
                include_byok_in_limit: false,
            }),
            ..KeyPatch::default()
        };
        assert_eq!(
            patch.to_json(),
            serde_json::json!({"limit":10.0,"limit_reset":null,"include_byok_in_limit":false})
        );
        assert_eq!(KeyPatch::default().to_json(), serde_json::json!({}));
    }
}
