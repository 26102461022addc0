//! `testSecret`: calls `GET /key` with the pending key itself and checks cap and expiry, then
//! reads the key back with the management key to check its workspace and that it is enabled.

use orkv_openrouter::{ApiKey, CurrentKey, ErrorKind, format_expires_at};
use orkv_store::SecretDescription;
use secrecy::ExposeSecret;
use tracing::{info, warn};

use crate::deps::Deps;
use crate::domain::budget::EPSILON;
use crate::domain::record::SecretRecord;
use crate::domain::tags::{self, stage::AWSCURRENT};
use crate::error::VendError;
use crate::ops::confirm::spent_but_valid;
use crate::ops::guardrail;
use crate::ops::rotate;

pub(super) async fn test_step(
    deps: &Deps,
    desc: &SecretDescription,
    token: &str,
) -> Result<SecretRecord, VendError> {
    match test_pending(deps, desc, token).await {
        Err(VendError::RotationTestFailed { secret_name, check }) => {
            // A finishSecret that carried a change over already promoted this key (in a
            // merged version, whose cap may have changed since): nothing left to test.
            let (Some(pending), Some(current)) = (
                rotate::pending_value(deps, desc, token).await?,
                deps.store.get(&desc.arn, AWSCURRENT).await?,
            ) else {
                return Err(VendError::RotationTestFailed { secret_name, check });
            };
            let Ok(current) = SecretRecord::read(&desc.name, &current.value) else {
                return Err(VendError::RotationTestFailed { secret_name, check });
            };
            if current.key_hash.is_some() && current.key_hash == pending.key_hash {
                info!("the pending key is already current: nothing to test");
                return Ok(pending);
            }
            // A finishSecret that died after giving the pending key the cap of a change
            // made meanwhile (it does so before promoting): the key carries the current
            // record's cap, which the retried finishSecret applies again.
            let deferred = desc
                .tag(tags::DEFERRED)
                .and_then(tags::Deferred::from_tag_value)
                .map(|c| c.cap);
            for cap in [Some(current.cap()), deferred].into_iter().flatten() {
                if cap == pending.cap() {
                    continue;
                }
                let mut carried = pending.clone();
                carried.set_cap(cap);
                if check_key(deps, desc, &carried).await.is_ok() {
                    info!(
                        "the pending key already carries the cap of a change made during the rotation"
                    );
                    return Ok(pending);
                }
            }
            Err(VendError::RotationTestFailed { secret_name, check })
        }
        other => other,
    }
}

async fn test_pending(
    deps: &Deps,
    desc: &SecretDescription,
    token: &str,
) -> Result<SecretRecord, VendError> {
    let record = rotate::pending_value(deps, desc, token)
        .await?
        .ok_or_else(|| VendError::RotationTestFailed {
            secret_name: desc.name.clone(),
            check: "no value is stored under the token (createSecret has not run)".into(),
        })?;
    check_key(deps, desc, &record).await?;
    Ok(record)
}

/// How the key OpenRouter shows differs from what its record says, if it does. Its limit is
/// its share of the logical key's cap (ADR 0010): set, and never above the cap; reset, BYOK
/// flag and expiry exactly the record's.
fn settings_mismatch(seen: &CurrentKey, record: &SecretRecord) -> Option<String> {
    if seen.limit.is_none_or(|l| l > record.limit + EPSILON) {
        return Some(format!(
            "limit is {:?}, expected at most {}",
            seen.limit, record.limit
        ));
    }
    if seen.limit_reset != record.limit_reset {
        return Some(format!(
            "limit_reset is {:?}, expected {:?}",
            seen.limit_reset, record.limit_reset
        ));
    }
    if seen.include_byok_in_limit != record.include_byok_in_limit {
        return Some("include_byok_in_limit differs".into());
    }
    if seen.expires_at != Some(record.expires_at) {
        return Some(format!(
            "expires_at is {:?}, expected {}",
            seen.expires_at.map(format_expires_at),
            format_expires_at(record.expires_at)
        ));
    }
    None
}

/// `GET /key` with the record's key, then `GET /keys/{hash}`: cap, expiry, workspace and
/// enabled as the record says.
async fn check_key(
    deps: &Deps,
    desc: &SecretDescription,
    record: &SecretRecord,
) -> Result<(), VendError> {
    let fail = |check: String| VendError::RotationTestFailed {
        secret_name: desc.name.clone(),
        check,
    };
    let plaintext = record
        .api_key
        .as_ref()
        .ok_or_else(|| fail("the pending record holds no key".into()))?;
    let key = ApiKey::new(plaintext.expose_secret().to_owned());
    let client = deps.openrouter().await?;
    let hash = record.key_hash.clone().unwrap_or_default();
    let seen = match client.current_key_with(&key).await {
        Ok(seen) => seen,
        // The key is known and answers, but its cap (or the account's credit) is spent:
        // reported, and its settings read with the management key instead.
        Err(e) if spent_but_valid(e.kind()) => {
            warn!(event = e.kind().as_str(), error_type = e.kind().as_str(), key_hash = %hash, "GET /key with the pending key: its spend is refused, not the key");
            let k = client
                .get_key(&hash)
                .await
                .map_err(|e| fail(format!("GET /keys/{hash} failed ({})", e.kind().as_str())))?;
            CurrentKey {
                label: k.label.clone(),
                limit: k.limit,
                limit_remaining: k.limit_remaining,
                limit_reset: k.limit_reset,
                include_byok_in_limit: k.include_byok_in_limit,
                usage: k.usage,
                is_free_tier: false,
                is_management_key: false,
                expires_at: k.expires_at,
                creator_user_id: k.creator_user_id.clone(),
            }
        }
        Err(e) => {
            return Err(fail(format!(
                "GET /key with the pending key failed ({})",
                e.kind().as_str()
            )));
        }
    };
    if let Some(mismatch) = settings_mismatch(&seen, record) {
        return Err(fail(mismatch));
    }
    if seen.limit_remaining.is_some_and(|r| r <= EPSILON) {
        // The key works; its cap is spent for this period (the logical key spent it all
        // before the rotation). Promoted all the same: the old key has no room either, and
        // the full cap comes back at the period boundary.
        warn!(
            event = "KeyLimitExceeded",
            error_type = ErrorKind::KeyLimitExceeded.as_str(),
            key_hash = record.key_hash.as_deref().unwrap_or(""),
            "the successor has no spend left in this period"
        );
    }
    let described = client
        .get_key(&hash)
        .await
        .map_err(|e| fail(format!("GET /keys/{hash} failed ({})", e.kind().as_str())))?;
    if described.workspace_id != record.workspace_id {
        return Err(fail(format!(
            "workspace is {}, expected {}",
            described.workspace_id, record.workspace_id
        )));
    }
    if described.disabled {
        return Err(fail("the key is disabled".into()));
    }
    if let Some(guardrail) =
        guardrail::guardrail_for(deps, &desc.name, &record.workspace_id).await?
        && !guardrail::carries(deps, &hash, &guardrail).await?
    {
        return Err(fail(format!(
            "the key does not carry guardrail {guardrail}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use orkv_openrouter::LimitReset;
    use time::macros::datetime;

    use super::*;
    use crate::domain::lifetime::Lifetime;
    use crate::domain::record::{RecordState, RecordTerms};

    const EXPIRES: time::OffsetDateTime = datetime!(2027-01-01 00:00 UTC);

    fn record() -> SecretRecord {
        SecretRecord::new(
            RecordState::Active,
            RecordTerms {
                key_name: "k".into(),
                openrouter_key_name: "orkv:s:t".into(),
                workspace_id: "w".into(),
                workspace_slug: "checkout".into(),
                cap: orkv_openrouter::Cap {
                    limit: 10.0,
                    limit_reset: Some(LimitReset::Monthly),
                    include_byok_in_limit: false,
                },
                lifetime: Lifetime::TtlSeconds(86_400),
                expires_at: EXPIRES,
                rotate_before_seconds: 600,
                created_at: EXPIRES - time::Duration::DAY,
                generation: 2,
                tenant: None,
                request_id: "r".into(),
            },
        )
    }

    fn seen(limit: Option<f64>) -> CurrentKey {
        CurrentKey {
            label: "sk-or-v1-abc...xyz".into(),
            limit,
            limit_remaining: limit,
            limit_reset: Some(LimitReset::Monthly),
            include_byok_in_limit: false,
            usage: 0.0,
            is_free_tier: false,
            is_management_key: false,
            expires_at: Some(EXPIRES),
            creator_user_id: None,
        }
    }

    #[test]
    fn a_successor_holding_its_share_of_the_cap_passes() {
        assert_eq!(settings_mismatch(&seen(Some(4.5)), &record()), None);
        assert_eq!(settings_mismatch(&seen(Some(10.0)), &record()), None);
        assert_eq!(settings_mismatch(&seen(Some(0.0)), &record()), None);
    }

    #[test]
    fn a_successor_above_its_cap_or_without_a_limit_fails() {
        let above = settings_mismatch(&seen(Some(10.5)), &record());
        assert!(above.is_some_and(|m| m.contains("expected at most 10")));
        assert!(settings_mismatch(&seen(None), &record()).is_some());
    }

    #[test]
    fn another_reset_byok_flag_or_expiry_fails_naming_it() {
        let mut s = seen(Some(5.0));
        s.limit_reset = Some(LimitReset::Daily);
        assert!(settings_mismatch(&s, &record()).is_some_and(|m| m.starts_with("limit_reset")));
        let mut s = seen(Some(5.0));
        s.include_byok_in_limit = true;
        assert!(settings_mismatch(&s, &record()).is_some_and(|m| m.contains("include_byok")));
        let mut s = seen(Some(5.0));
        s.expires_at = None;
        assert!(settings_mismatch(&s, &record()).is_some_and(|m| m.starts_with("expires_at")));
    }
}
