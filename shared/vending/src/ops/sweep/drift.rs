//! Cap drift: a current key whose cap (reset, BYOK flag, or a limit above the cap) is not
//! within the one its secret records, changed behind the product's back (the dashboard, another tool). Found from the
//! key listing the scan already makes, compared with the secret's `orkv:cap` tag (no per-key
//! call for a key that matches), confirmed by reading the secret's current record (the source
//! of truth), reported (`KeyDrift`, the `KeysDrifted` metric) and, with `ORKV_DRIFT=repair`,
//! put back (`PATCH`, then read back with `GET /keys/{hash}`).
//!
//! A cap update in flight has patched the key before it writes the record, and a change
//! deferred into a running rotation lives in a tag until `finishSecret`: both look like drift
//! for a moment. So a secret with a rotation running or a deferred change is not drift (the
//! rotation records the change), and a key changed within the pending lease (longer than any
//! invocation) is reported and left for a later run.

use std::time::Instant;

use orkv_openrouter::Cap;
use time::OffsetDateTime;
use tracing::{debug, warn};

use crate::deps::Deps;
use crate::domain::record::{RecordState, SecretRecord};
use crate::domain::tags::{
    self,
    stage::{AWSCURRENT, AWSPENDING},
};
use crate::error::VendError;

use super::DEADLINE_MARGIN;
use super::report::{SweepAction, SweepReport};
use crate::ops::budget;
use crate::ops::read;

/// A current key whose listed cap is not its secret's cap tag.
pub(super) struct Drifted {
    pub secret: String,
    pub hash: String,
    /// The cap the listing shows (`None`: no limit at all).
    pub listed: Option<Cap>,
    /// When the key was last changed, as the listing shows it.
    pub updated_at: Option<OffsetDateTime>,
}

/// A listed cap is within the recorded one: the same reset and BYOK flag, and a limit no
/// higher (a key's limit is its share of its logical key's cap, ADR 0010; a cap tag's limit
/// is a decimal rendering of the record's).
pub(super) fn within_cap(a: Option<Cap>, b: Cap) -> bool {
    a.is_some_and(|a| {
        a.limit <= b.limit + 1e-9
            && a.limit_reset == b.limit_reset
            && a.include_byok_in_limit == b.include_byok_in_limit
    })
}

fn show(cap: Option<Cap>) -> String {
    cap.map_or_else(
        || "no limit".to_owned(),
        |c| tags::cap_tag_value(c).replace(' ', ", "),
    )
}

/// Confirms each drifted key and repairs or reports it; one that cannot be checked never
/// stops the others (the next run repeats it).
pub(super) async fn check_drifted(
    deps: &Deps,
    drifted: Vec<Drifted>,
    now: OffsetDateTime,
    dry_run: bool,
    deadline: Instant,
    report: &mut SweepReport,
) {
    for d in drifted {
        if Instant::now() + DEADLINE_MARGIN >= deadline {
            return;
        }
        let secret = d.secret.clone();
        if let Err(e) = check_drift(deps, d, now, dry_run, report).await {
            warn!(secret = %secret, error_type = e.kind(), error = %e, "could not check a drifted cap; the next run repeats it");
        }
    }
}

async fn check_drift(
    deps: &Deps,
    d: Drifted,
    now: OffsetDateTime,
    dry_run: bool,
    report: &mut SweepReport,
) -> Result<(), VendError> {
    let Some(version) = read::get_ours(deps, &d.secret, AWSCURRENT).await? else {
        return Ok(());
    };
    let Some(Ok(record)) = SecretRecord::from_secret(&version.value) else {
        return Ok(());
    };
    if record.state != RecordState::Active || record.key_hash.as_deref() != Some(&d.hash) {
        return Ok(());
    }
    let want = record.cap();
    if within_cap(d.listed, want) {
        // Only the tag is behind (a write between the listing and now).
        return Ok(());
    }
    let Some(desc) = read::describe_ours(deps, &d.secret).await? else {
        return Ok(());
    };
    let rotating = desc
        .version_with(AWSPENDING)
        .is_some_and(|p| !desc.has(p, AWSCURRENT));
    if rotating || desc.tag(tags::DEFERRED).is_some() {
        // A cap update deferred into the running rotation patched the key in use; the
        // rotation records the change in `finishSecret`. Not drift.
        debug!(secret = %d.secret, "the key's cap differs while a rotation carries a change");
        return Ok(());
    }
    let (listed, recorded) = (show(d.listed), show(Some(want)));
    report.keys_drifted += 1;
    warn!(event = "KeyDrift", field = "cap", secret = %d.secret, key_hash = %d.hash, listed = %listed, recorded = %recorded, "a key's cap was changed behind the product's back");
    report.note(
        SweepAction::CapDrift,
        &d.secret,
        format!("listed {listed}; recorded {recorded}"),
    );
    if dry_run || !deps.cfg.repair_drift {
        return Ok(());
    }
    let lease = time::Duration::try_from(deps.cfg.pending_lease).unwrap_or(time::Duration::MINUTE);
    if d.updated_at.is_some_and(|at| now - at < lease) {
        report.note(
            SweepAction::CapDriftRecent,
            &d.secret,
            "changed within the pending lease: a cap update may be in flight; a later run repairs it".into(),
        );
        return Ok(());
    }
    // Put back within the budget: the recorded reset and BYOK flag, and the limit the
    // logical key's cap leaves the current key (never the whole cap when a superseded key
    // is still live), from the record as it is now.
    if budget::raise_current(deps, &d.secret, &d.hash)
        .await?
        .is_none()
    {
        return Ok(());
    }
    // The claim "repaired" rests on reading the key back.
    let now_key = deps.openrouter().await?.get_key(&d.hash).await?;
    if within_cap(now_key.cap(), want) {
        report.keys_drift_repaired += 1;
        warn!(event = "KeyDriftRepaired", field = "cap", secret = %d.secret, key_hash = %d.hash, recorded = %recorded, "the key's cap was put back");
        report.note(SweepAction::CapDriftRepaired, &d.secret, recorded);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use orkv_openrouter::LimitReset;

    use super::*;

    const CAP: Cap = crate::domain::budget::TEST_CAP;

    #[test]
    fn a_share_of_the_cap_is_within_it_and_the_cap_itself_too() {
        assert!(within_cap(Some(CAP), CAP));
        assert!(within_cap(Some(Cap { limit: 2.5, ..CAP }), CAP));
        assert!(within_cap(Some(Cap { limit: 0.0, ..CAP }), CAP));
    }

    #[test]
    fn a_higher_limit_or_no_limit_at_all_is_drift() {
        assert!(!within_cap(
            Some(Cap {
                limit: 10.01,
                ..CAP
            }),
            CAP
        ));
        assert!(!within_cap(None, CAP));
    }

    #[test]
    fn another_reset_or_byok_flag_is_drift_whatever_the_limit() {
        assert!(!within_cap(
            Some(Cap {
                limit_reset: Some(LimitReset::Daily),
                limit: 1.0,
                ..CAP
            }),
            CAP
        ));
        assert!(!within_cap(
            Some(Cap {
                limit_reset: None,
                ..CAP
            }),
            CAP
        ));
        assert!(!within_cap(
            Some(Cap {
                include_byok_in_limit: true,
                ..CAP
            }),
            CAP
        ));
    }
}
