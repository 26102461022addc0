//! The tag schema (see `docs/adr/0002-tag-schema.md`): every tag key the product sets on a
//! managed secret, the version labels it writes, and a typed codec for each tag value. The
//! sweep decides from tags alone, so every value here has one writer and one parser.

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::domain::lifetime::Lifetime;
use crate::domain::record::SecretRecord;

/// Every tag key the product sets starts with this; requests may not use it.
pub const RESERVED_PREFIX: &str = "orkv:";

pub const MANAGED_BY: &str = "orkv:managed-by";
pub const WORKSPACE: &str = "orkv:workspace";
/// The owning tenant (tenant form only): fixed at creation, as the record's `tenant`.
pub const TENANT: &str = "orkv:tenant";
pub const WORKSPACE_SLUG: &str = "orkv:workspace-slug";
pub const KEY_NAME: &str = "orkv:key-name";
pub const OPENROUTER_KEY: &str = "orkv:openrouter-key-name";
pub const EXPIRES_AT: &str = "orkv:expires-at";
pub const ROTATE_AT: &str = "orkv:rotate-at";
pub const GENERATION: &str = "orkv:generation";
/// `ttl:<seconds>` or `at:<RFC 3339>` ([`Lifetime::tag_value`]).
pub const LIFETIME: &str = "orkv:lifetime";
/// The current key's cap ([`cap_tag_value`]): what the inventory shows without a secret read.
pub const CAP: &str = "orkv:cap";
/// One per superseded key awaiting retirement: `orkv:retire:<hash>` = when (RFC 3339).
pub const RETIRE_PREFIX: &str = "orkv:retire:";
/// Settings the next rotation applies ([`NextSettings::tag_value`]).
pub const NEXT: &str = "orkv:next";
/// Digest of the on-demand request the next rotation serves.
pub const ROTATION_REQUEST: &str = "orkv:rotation-request";
/// Why the next rotation was asked for ([`Reason`]).
pub const ROTATION_REASON: &str = "orkv:rotation-reason";
/// Set when the secret's keys were revoked (the sweep leaves it alone).
pub const REVOKED: &str = "orkv:revoked";
/// The tags an on-demand rotation request writes and its `finishSecret` clears.
pub const REQUEST_TAGS: [&str; 3] = [NEXT, ROTATION_REQUEST, ROTATION_REASON];
/// A cap change that arrived while a rotation ran ([`Deferred`]): the rotation carries it to
/// the successor, because writing a version during a rotation makes Secrets Manager abandon it.
pub const DEFERRED: &str = "orkv:deferred-change";
/// The logical key's budget ledger ([`crate::domain::budget::Ledger`]).
pub const BUDGET: &str = "orkv:budget";
/// An adoption in progress: the digest of its request (the secret is tagged before its value
/// becomes a record; a retry of the same request finishes it).
pub const ADOPTING: &str = "orkv:adopting";
/// The digest of the request that adopted the secret (kept: a resumed bulk adoption skips what
/// it adopted from the listing alone).
pub const ADOPTED: &str = "orkv:adopted";
/// Superseded keys awaiting retirement per secret (each takes one tag).
pub const MAX_RETIRING: usize = 10;

/// AWS's limit of tags per secret (API reference, *TagResource*: "Maximum number of tags per
/// secret: 50"; `aws:` tags do not count).
pub const AWS_MAX_TAGS: usize = 50;
/// The tags every managed secret carries.
pub const ALWAYS: [&str; 11] = [
    MANAGED_BY,
    WORKSPACE,
    WORKSPACE_SLUG,
    KEY_NAME,
    TENANT,
    OPENROUTER_KEY,
    EXPIRES_AT,
    ROTATE_AT,
    GENERATION,
    LIFETIME,
    CAP,
];
/// The tags a secret keeps once they are written.
pub const KEPT: [&str; 2] = [BUDGET, ADOPTED];
/// The tags a request, a rotation or a revocation holds while it runs (counted as if all could
/// meet, which is the bound, not the usual case).
pub const TRANSIENT: [&str; 6] = [
    NEXT,
    ROTATION_REQUEST,
    ROTATION_REASON,
    DEFERRED,
    ADOPTING,
    REVOKED,
];
/// The most tags the product itself puts on one secret: every tag above and one per key
/// awaiting retirement.
pub const PRODUCT_MAX_TAGS: usize = ALWAYS.len() + KEPT.len() + TRANSIENT.len() + MAX_RETIRING;
/// What is left of AWS's 50 for a request's own tags, or for an adopted secret's tags: 21.
pub const OTHER_TAGS_ROOM: usize = AWS_MAX_TAGS - PRODUCT_MAX_TAGS;

/// Version labels (staging labels).
pub mod stage {
    /// The version consumers read.
    pub const AWSCURRENT: &str = "AWSCURRENT";
    /// The version a rotation is building.
    pub const AWSPENDING: &str = "AWSPENDING";
    /// A version written by a cap update before it is made current.
    pub const UPDATE: &str = "ORKV_UPDATE";
    /// A version written to carry a change made while a rotation ran.
    pub const MERGE: &str = "ORKV_MERGE";
    /// The revoked record before it is made current.
    pub const REVOKE: &str = "ORKV_REVOKE";
    /// The label of an adoption's first record until it is made current.
    pub const ADOPT: &str = "ORKV_ADOPT";
}

/// Formats a tag time (UTC, seconds).
#[must_use]
pub fn time_value(t: OffsetDateTime) -> String {
    orkv_openrouter::format_expires_at(t)
}

/// Parses a tag time.
#[must_use]
pub fn parse_time(v: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(v, &Rfc3339).ok()
}

/// A retire tag's key for `hash`.
#[must_use]
pub fn retire_tag(hash: &str) -> String {
    format!("{RETIRE_PREFIX}{hash}")
}

/// The keys awaiting retirement a secret's tags list: (hash, when). An unreadable time is
/// due at once.
#[must_use]
pub fn retiring(tag_list: &[(String, String)]) -> Vec<(String, OffsetDateTime)> {
    tag_list
        .iter()
        .filter_map(|(k, v)| {
            let hash = k.strip_prefix(RETIRE_PREFIX)?;
            Some((
                hash.to_owned(),
                parse_time(v).unwrap_or(OffsetDateTime::UNIX_EPOCH),
            ))
        })
        .collect()
}

/// `v` as a tag value: itself when Secrets Manager accepts it (at most 256 letters, numbers,
/// spaces and `+ - = . _ : / @`: every name the product gives a key), else `h:` and a digest of
/// it (a name made in the dashboard may hold any character). The sweep matches listed key
/// names through the same function.
#[must_use]
pub fn tag_safe(v: &str) -> String {
    let allowed = |c: char| c.is_alphanumeric() || c == ' ' || "+-=._:/@".contains(c);
    if !v.is_empty() && v.chars().count() <= 256 && v.chars().all(allowed) {
        return v.to_owned();
    }
    use sha2::Digest;
    let hex = hex::encode(sha2::Sha256::digest(v.as_bytes()));
    format!("h:{}", hex.get(..40).unwrap_or(&hex))
}

/// The tags that describe a record's key (the sweep reads these), its workspace included:
/// every write of a new key rewrites them, so a rotation that re-homed the key moves them.
#[must_use]
pub fn record_tags(record: &SecretRecord) -> Vec<(String, String)> {
    let mut tags = vec![
        (WORKSPACE.into(), record.workspace_id.clone()),
        (WORKSPACE_SLUG.into(), record.workspace_slug.clone()),
        (OPENROUTER_KEY.into(), tag_safe(&record.openrouter_key_name)),
        (EXPIRES_AT.into(), time_value(record.expires_at)),
        (ROTATE_AT.into(), time_value(record.rotate_at())),
        (GENERATION.into(), record.generation.to_string()),
        (LIFETIME.into(), record.lifetime.tag_value()),
        (CAP.into(), cap_tag_value(record.cap())),
    ];
    if let Some(t) = &record.tenant {
        tags.push((TENANT.into(), t.clone()));
    }
    tags
}

/// Why a rotation was asked for (the `orkv:rotation-reason` tag).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// A suspected leak: the old key is disabled as soon as the successor is current.
    Leak,
    /// Routine, on request.
    Manual,
    /// A provision request changed a field fixed at creation.
    Changed,
    /// An adopted key whose expiry is missing or outside the policy.
    Adopted,
}

impl Reason {
    /// The tag value.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Leak => "leak",
            Self::Manual => "manual",
            Self::Changed => "changed",
            Self::Adopted => "adopted",
        }
    }

    /// Parses [`Reason::as_str`]'s form.
    #[must_use]
    pub fn parse(v: &str) -> Option<Self> {
        match v {
            "leak" => Some(Self::Leak),
            "manual" => Some(Self::Manual),
            "changed" => Some(Self::Changed),
            "adopted" => Some(Self::Adopted),
            _ => None,
        }
    }

    /// Whether the reason tag value says "leak".
    #[must_use]
    pub fn is_leak(tag: Option<&str>) -> bool {
        tag.and_then(Self::parse) == Some(Self::Leak)
    }
}

/// Settings a requested rotation applies (the `orkv:next` tag), for fields fixed at creation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NextSettings<'a> {
    pub workspace_id: &'a str,
    pub lifetime: Lifetime,
    pub cap: orkv_openrouter::Cap,
    pub rotate_before_seconds: u64,
}

/// Owned form of [`NextSettings`], as parsed from the tag.
#[derive(Debug, Clone, PartialEq)]
pub struct Next {
    pub workspace_id: String,
    pub lifetime: Lifetime,
    pub cap: orkv_openrouter::Cap,
    pub rotate_before_seconds: u64,
}

impl NextSettings<'_> {
    /// The tag value (tag values allow letters, digits, spaces and `_.:/=+-@`).
    #[must_use]
    pub fn tag_value(&self) -> String {
        format!(
            "workspace={} lifetime={} {}",
            self.workspace_id,
            self.lifetime.tag_value(),
            cap_value(self.cap, self.rotate_before_seconds)
        )
    }
}

impl Next {
    /// Parses [`NextSettings::tag_value`]'s form.
    #[must_use]
    pub fn from_tag_value(v: &str) -> Option<Self> {
        let fields = pairs(v)?;
        let (cap, rotate_before_seconds) = parse_cap(&fields)?;
        Some(Self {
            workspace_id: (*fields.get("workspace")?).to_owned(),
            lifetime: Lifetime::from_tag_value(fields.get("lifetime")?)?,
            cap,
            rotate_before_seconds,
        })
    }
}

/// A cap change deferred into the rotation running when it arrived (the [`DEFERRED`] tag).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Deferred {
    pub cap: orkv_openrouter::Cap,
    pub rotate_before_seconds: u64,
}

impl Deferred {
    /// The tag value (same alphabet as [`NextSettings::tag_value`], at most about 90 characters).
    #[must_use]
    pub fn tag_value(&self) -> String {
        cap_value(self.cap, self.rotate_before_seconds)
    }

    /// Parses [`Deferred::tag_value`]'s form.
    #[must_use]
    pub fn from_tag_value(v: &str) -> Option<Self> {
        let (cap, rotate_before_seconds) = parse_cap(&pairs(v)?)?;
        Some(Self {
            cap,
            rotate_before_seconds,
        })
    }
}

/// The cap settings and the rotation lead, as both settings tags write them.
fn cap_value(cap: orkv_openrouter::Cap, rotate_before_seconds: u64) -> String {
    format!(
        "limit={} reset={} byok={} rotate_before={}",
        cap.limit,
        cap.limit_reset.map_or("none", |r| r.as_str()),
        cap.include_byok_in_limit,
        rotate_before_seconds
    )
}

/// The [`CAP`] tag's value: `limit=<USD> reset=<period|none> byok=<bool>`.
#[must_use]
pub fn cap_tag_value(cap: orkv_openrouter::Cap) -> String {
    format!(
        "limit={} reset={} byok={}",
        cap.limit,
        cap.limit_reset.map_or("none", |r| r.as_str()),
        cap.include_byok_in_limit
    )
}

/// Parses [`cap_tag_value`]'s form.
#[must_use]
pub fn parse_cap_tag(v: &str) -> Option<orkv_openrouter::Cap> {
    let fields = pairs(v)?;
    Some(orkv_openrouter::Cap {
        limit: fields.get("limit")?.parse::<f64>().ok()?,
        limit_reset: parse_reset(fields.get("reset")?)?,
        include_byok_in_limit: fields.get("byok")?.parse::<bool>().ok()?,
    })
}

/// A settings tag's `key=value` fields, space-separated; `None` when one has no `=`.
fn pairs(v: &str) -> Option<std::collections::HashMap<&str, &str>> {
    v.split(' ').map(|part| part.split_once('=')).collect()
}

/// [`cap_value`]'s fields among `fields`.
fn parse_cap(
    fields: &std::collections::HashMap<&str, &str>,
) -> Option<(orkv_openrouter::Cap, u64)> {
    Some((
        orkv_openrouter::Cap {
            limit: fields.get("limit")?.parse::<f64>().ok()?,
            limit_reset: parse_reset(fields.get("reset")?)?,
            include_byok_in_limit: fields.get("byok")?.parse::<bool>().ok()?,
        },
        fields.get("rotate_before")?.parse::<u64>().ok()?,
    ))
}

fn parse_reset(val: &str) -> Option<Option<orkv_openrouter::LimitReset>> {
    match val {
        "none" => Some(None),
        other => serde_json::from_value(Value::String(other.to_owned()))
            .ok()
            .map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cap_round_trips_through_its_tag_value() {
        let cap = orkv_openrouter::Cap {
            limit: 12.5,
            limit_reset: Some(orkv_openrouter::LimitReset::Monthly),
            include_byok_in_limit: true,
        };
        let v = cap_tag_value(cap);
        assert!(v.len() <= 256, "{v}");
        assert_eq!(parse_cap_tag(&v), Some(cap));
        assert_eq!(parse_cap_tag("limit=x reset=none byok=false"), None);
    }

    #[test]
    fn a_deferred_change_round_trips_through_a_tag_value() {
        let d = Deferred {
            cap: orkv_openrouter::Cap {
                limit: 7.25,
                limit_reset: None,
                include_byok_in_limit: false,
            },
            rotate_before_seconds: 600,
        };
        let v = d.tag_value();
        assert!(v.len() <= 255);
        assert_eq!(Deferred::from_tag_value(&v), Some(d));
        assert_eq!(Deferred::from_tag_value("limit=x"), None);
    }

    #[test]
    fn next_settings_round_trip_through_a_tag_value() {
        let n = NextSettings {
            workspace_id: "5b1e0c52-8f0a-4c8e-9d61-2f3a7c1e9a01",
            lifetime: Lifetime::TtlSeconds(86_400),
            cap: orkv_openrouter::Cap {
                limit: 12.5,
                limit_reset: Some(orkv_openrouter::LimitReset::Monthly),
                include_byok_in_limit: true,
            },
            rotate_before_seconds: 3600,
        };
        let v = n.tag_value();
        assert!(v.len() <= 255);
        assert!(
            v.chars()
                .all(|c| c.is_ascii_alphanumeric() || " _.:/=+-@".contains(c))
        );
        let back = Next::from_tag_value(&v).expect("parses");
        assert_eq!(back.workspace_id, n.workspace_id);
        assert_eq!(back.lifetime, n.lifetime);
        assert_eq!(back.cap, n.cap);
        assert_eq!(back.rotate_before_seconds, 3600);
    }

    #[test]
    fn reasons_round_trip_and_only_leak_is_a_leak() {
        for r in [
            Reason::Leak,
            Reason::Manual,
            Reason::Changed,
            Reason::Adopted,
        ] {
            assert_eq!(Reason::parse(r.as_str()), Some(r));
        }
        assert!(Reason::is_leak(Some("leak")));
        assert!(!Reason::is_leak(Some("manual")));
        assert!(!Reason::is_leak(None));
    }

    #[test]
    fn retire_tags_list_their_hash_and_time() {
        let tags = vec![
            (retire_tag("abc"), "2026-11-22T10:00:00Z".to_owned()),
            (retire_tag("def"), "garbage".to_owned()),
            (MANAGED_BY.to_owned(), "x".to_owned()),
        ];
        let list = retiring(&tags);
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].0, "abc");
        assert_eq!(list[1].1, OffsetDateTime::UNIX_EPOCH);
    }

    #[test]
    fn the_tag_budget_counts_every_tag_the_product_writes() {
        // Every `orkv:` tag constant of this file is in exactly one of the counted sets (the
        // two prefixes excepted: the retirement tags are counted by MAX_RETIRING).
        let source = include_str!("tags.rs");
        let counted: Vec<&str> = ALWAYS
            .iter()
            .chain(&KEPT)
            .chain(&TRANSIENT)
            .copied()
            .collect();
        let mut seen = 0;
        for line in source.lines() {
            let Some(rest) = line.strip_prefix("pub const ") else {
                continue;
            };
            let Some(value) = rest.split('"').nth(1).filter(|v| v.starts_with("orkv:")) else {
                continue;
            };
            if value == RESERVED_PREFIX || value == RETIRE_PREFIX {
                continue;
            }
            seen += 1;
            assert_eq!(
                counted.iter().filter(|c| **c == value).count(),
                1,
                "{value} must be counted once in ALWAYS, KEPT or TRANSIENT"
            );
        }
        assert_eq!(seen, counted.len(), "a counted tag is not a constant here");
        assert_eq!(PRODUCT_MAX_TAGS, 29);
        assert_eq!(OTHER_TAGS_ROOM + PRODUCT_MAX_TAGS, AWS_MAX_TAGS);
    }
}
