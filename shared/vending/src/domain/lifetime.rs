//! How long a key lives: a fixed expiry, or a lifetime counted from each key's creation.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

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

    /// A fixed expiry: a rotation cannot extend the key's life.
    #[must_use]
    pub fn is_fixed(self) -> bool {
        matches!(self, Self::ExpiresAt(_))
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
        OffsetDateTime::parse(at, &Rfc3339)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_round_trip_through_the_tag_value() {
        for l in [
            Lifetime::TtlSeconds(86_400),
            Lifetime::ExpiresAt(time::macros::datetime!(2027-12-31 23:59:59 UTC)),
        ] {
            assert_eq!(Lifetime::from_tag_value(&l.tag_value()), Some(l));
        }
        assert!(
            Lifetime::from_tag_value("at:2027-12-31T23:59:59Z").is_some_and(Lifetime::is_fixed)
        );
        assert!(!Lifetime::TtlSeconds(1).is_fixed());
        assert_eq!(Lifetime::from_tag_value("forever"), None);
    }
}
