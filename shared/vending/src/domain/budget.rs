//! Budget continuity (ADR 0010): one cap for a logical key (one secret, every generation) in
//! each reset period. OpenRouter caps each key alone, so the product keeps the sum of what its
//! generations may spend within the cap:
//!
//! `carried + Σ committed(superseded keys still live) + limit(current) ≤ cap`
//!
//! - `carried`: what retired generations spent in the current period (their spend is final),
//!   kept in one tag (`orkv:budget`) that only the sweep writes;
//! - `committed(k)`: what a live key may spend in the period, all told: its limit (or its
//!   spend, if a request landed past it), read from OpenRouter;
//! - the current key's limit: the rest, its allowance.

use orkv_openrouter::{Key, LimitReset};
use time::{Date, OffsetDateTime, Weekday};

/// A ledger's key hashes: this many hex digits (a secret holds at most a dozen keys at once).
const HASH_DIGITS: usize = 8;
/// Amounts are kept to the micro-dollar: held and carried amounts round up, allowances down,
/// so rounding never lets the sum pass the cap.
const SCALE: f64 = 1e6;
/// Below this, two amounts are the same.
pub const EPSILON: f64 = 1e-6;

/// The reset period `now` falls in, as the ledger names it: the UTC day, the week from
/// Monday, the calendar month (each by its first day), or `life` when the cap never resets.
#[must_use]
pub fn period_of(reset: Option<LimitReset>, now: OffsetDateTime) -> String {
    let day = now.to_offset(time::UtcOffset::UTC).date();
    let start: Date = match reset {
        None => return "life".to_owned(),
        Some(LimitReset::Daily) => day,
        Some(LimitReset::Weekly) => {
            day - time::Duration::days(i64::from(day.weekday().number_days_from_monday()))
        }
        Some(LimitReset::Monthly) => day.replace_day(1).unwrap_or(day),
    };
    debug_assert!(reset != Some(LimitReset::Weekly) || start.weekday() == Weekday::Monday);
    format!(
        "{:04}-{:02}-{:02}",
        start.year(),
        u8::from(start.month()),
        start.day()
    )
}

fn up(x: f64) -> f64 {
    (x * SCALE).ceil() / SCALE
}

fn down(x: f64) -> f64 {
    (x * SCALE).floor() / SCALE
}

fn amount(x: f64) -> String {
    let s = format!("{x:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() { "0".into() } else { s.into() }
}

fn short(hash: &str) -> &str {
    hash.get(..HASH_DIGITS).unwrap_or(hash)
}

/// What a live key may spend in its period, all told: its limit, or its spend when a request
/// landed past it (unlimited: infinite).
#[must_use]
pub fn committed(key: &Key) -> f64 {
    key.limit
        .map_or(f64::INFINITY, |l| l.max(key.period_spend()))
}

/// One logical key's ledger in one period.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Ledger {
    pub period: String,
    /// Spent in this period by generations already retired.
    pub carried: f64,
    /// Hash prefixes of the retired keys whose spend `carried` holds (so a retried
    /// retirement never carries twice); the latest few.
    pub keys: Vec<String>,
}

/// Retired keys a ledger remembers.
const REMEMBERED: usize = 12;

impl Ledger {
    /// The ledger a tag value holds, in `period`: spend carried in an earlier period is
    /// dropped. A missing or unreadable tag is an empty ledger.
    #[must_use]
    pub fn read(tag: Option<&str>, period: &str) -> Self {
        let mut ledger = Ledger {
            period: period.to_owned(),
            ..Ledger::default()
        };
        let Some(tag) = tag else {
            return ledger;
        };
        let mut parts = tag.split(' ');
        let (Some(p), Some(c)) = (parts.next(), parts.next()) else {
            return ledger;
        };
        if p == period {
            ledger.carried = c.parse::<f64>().unwrap_or(0.0).max(0.0);
            ledger.keys = parts.map(str::to_owned).collect();
        }
        ledger
    }

    /// The tag value: `<period> <carried> <hash> ...` (letters, digits, `- .` and spaces:
    /// at most 10 + 1 + 17 + 12 × 9 characters, within a tag's 256).
    #[must_use]
    pub fn tag_value(&self) -> String {
        let mut v = format!("{} {}", self.period, amount(self.carried));
        for h in &self.keys {
            v.push(' ');
            v.push_str(h);
        }
        v
    }

    /// The limit the current key may have under `cap`, besides `others` (what the superseded
    /// keys still live have committed): never below 0.
    #[must_use]
    pub fn allowance(&self, cap: f64, others: f64) -> f64 {
        down((cap - self.carried - others).max(0.0))
    }

    /// The superseded key `hash` is retired having spent `spent` this period. `false`
    /// (nothing changed) when its spend is carried already.
    pub fn carry(&mut self, hash: &str, spent: f64) -> bool {
        if self.keys.iter().any(|h| h == short(hash)) {
            return false;
        }
        self.carried = up(self.carried + spent.max(0.0));
        self.keys.push(short(hash).to_owned());
        if self.keys.len() > REMEMBERED {
            self.keys.remove(0);
        }
        true
    }
}

/// The limit the outgoing key keeps when a successor is minted at `now`: what it spent this
/// period plus half of what the logical key has left; never above its limit now, never below
/// its spend. A key no consumer can use keeps only its spend: a disabled key, a suspected
/// leak's (which `finishSecret` disables), and an expired key (OpenRouter refuses it; a
/// cached authorisation may honour it briefly, and the hold bounds that too). The successor
/// gets the rest.
#[must_use]
pub fn outgoing_limit(remaining: f64, key: &Key, leaked: bool, now: OffsetDateTime) -> f64 {
    let spent = key.period_spend();
    let expired = key.expires_at.is_some_and(|at| at <= now);
    let share = if key.disabled || leaked || expired {
        0.0
    } else {
        remaining.max(0.0) / 2.0
    };
    let target = up(spent + share);
    let target = key.limit.map_or(target, |l| target.min(l));
    target.max(spent)
}

/// The unit tests' usual cap: $10 a month, BYOK spend apart.
#[cfg(test)]
pub(crate) const TEST_CAP: orkv_openrouter::Cap = orkv_openrouter::Cap {
    limit: 10.0,
    limit_reset: Some(LimitReset::Monthly),
    include_byok_in_limit: false,
};

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn periods_start_on_the_day_monday_and_the_first() {
        let t = datetime!(2026-12-02 17:00 UTC); // a Wednesday
        assert_eq!(period_of(Some(LimitReset::Daily), t), "2026-12-02");
        assert_eq!(period_of(Some(LimitReset::Weekly), t), "2026-11-30");
        assert_eq!(period_of(Some(LimitReset::Monthly), t), "2026-12-01");
        assert_eq!(period_of(None, t), "life");
    }

    #[test]
    fn the_ledger_round_trips_and_drops_spend_carried_in_an_earlier_period() {
        let mut l = Ledger::read(None, "2026-12-01");
        assert!(l.carry("abcdef0123456789", 1.25));
        assert!(!l.carry("abcdef0123456789", 1.25), "carried once");
        assert!(l.carry("1234567890abcdef", 0.5));
        let v = l.tag_value();
        assert_eq!(v, "2026-12-01 1.75 abcdef01 12345678");
        assert_eq!(Ledger::read(Some(&v), "2026-12-01"), l);
        let next = Ledger::read(Some(&v), "2027-01-01");
        assert_eq!((next.carried, next.keys.len()), (0.0, 0));
        assert_eq!(l.allowance(10.0, 4.0), 4.25);
        assert_eq!(l.allowance(5.0, 4.0), 0.0, "never below 0");
        assert_eq!(
            l.allowance(5.0, f64::INFINITY),
            0.0,
            "an unlimited key leaves nothing"
        );
        for i in 0..20 {
            l.carry(&format!("{i:016x}"), 0.0);
        }
        assert!(l.tag_value().len() <= 256);
    }

    #[test]
    fn the_outgoing_key_keeps_its_spend_and_half_the_rest() {
        let now = datetime!(2026-12-10 00:00 UTC);
        let key = |limit: Option<f64>, spent: f64, disabled: bool| Key {
            limit,
            usage: spent,
            usage_monthly: Some(spent),
            limit_reset: Some(LimitReset::Monthly),
            disabled,
            ..serde_json::from_value(serde_json::json!({"hash": "h", "name": "n",
                "created_at": "2026-12-01T00:00:00Z", "workspace_id": "w"}))
            .expect("key")
        };
        assert_eq!(
            outgoing_limit(1.0, &key(Some(10.0), 9.0, false), false, now),
            9.5
        );
        assert_eq!(
            outgoing_limit(4.0, &key(Some(5.0), 4.0, false), false, now),
            5.0,
            "never raised"
        );
        assert_eq!(
            outgoing_limit(6.0, &key(Some(10.0), 4.0, true), false, now),
            4.0
        );
        // A suspected leak's key keeps only its spend: the successor gets all the room.
        assert_eq!(
            outgoing_limit(6.0, &key(Some(10.0), 4.0, false), true, now),
            4.0
        );
        assert_eq!(
            outgoing_limit(0.0, &key(Some(3.0), 7.0, false), false, now),
            7.0,
            "never below spend"
        );
        assert_eq!(
            outgoing_limit(8.0, &key(None, 2.0, false), false, now),
            6.0,
            "an unlimited key gets one"
        );
        // An expired key keeps only its spend (the boundary case of a key rotated as it
        // expires): the successor gets all the room.
        let expired = |at: OffsetDateTime| Key {
            expires_at: Some(at),
            ..key(Some(10.0), 4.0, false)
        };
        assert_eq!(outgoing_limit(6.0, &expired(now), false, now), 4.0);
        assert_eq!(
            outgoing_limit(6.0, &expired(now + time::Duration::seconds(1)), false, now),
            7.0,
            "a key not yet expired keeps half the rest"
        );
    }
}
