//! Rotations left pending. Secrets Manager retries a failed rotation, but a rotation can still
//! stall (its retries spent, an invocation lost): `AWSPENDING` then stays on a version that is
//! not current, and AWS refuses every later `RotateSecret`, the product's own token included,
//! so the key is never replaced and expires. A pending version older than
//! `ORKV_ROTATION_STALL_SECONDS` (longer than four steps at Lambda's longest timeout) has
//! stalled: the sweep reports it and runs its four steps again under its own token, as
//! Secrets Manager's retry would (the rotation function's steps are idempotent), then reads
//! back that it finished.

use tracing::info;

use crate::deps::Deps;
use crate::domain::tags::{self, stage::AWSCURRENT, stage::AWSPENDING};
use crate::error::VendError;
use crate::ops::read;

/// Resumes the rotation pending on `version` of `secret` if it has stalled.
/// `Ok(None)`: not stalled (or no longer pending); `Ok(Some(true))`: stalled, resumed and read
/// back finished; `Ok(Some(false))`: stalled and left (a dry run, or a starter that cannot run
/// steps).
///
/// # Errors
/// Store errors, or a step's failure.
pub(super) async fn resume_if_stalled(
    deps: &Deps,
    secret: &str,
    version: &str,
    dry_run: bool,
) -> Result<Option<bool>, VendError> {
    let Some(desc) = read::describe_ours(deps, secret).await? else {
        return Ok(None);
    };
    let still_pending = desc.has(version, AWSPENDING) && !desc.has(version, AWSCURRENT);
    if desc.deleted || desc.tag(tags::REVOKED).is_some() || !still_pending {
        return Ok(None);
    }
    let Some(created) = deps.store.version_created(&desc.arn, version).await? else {
        return Ok(None);
    };
    if !stalled(created, deps.clock.now(), deps.cfg.rotation_stall_after) {
        return Ok(None);
    }
    if dry_run || !deps.starter.resume(deps, secret, version).await? {
        return Ok(Some(false));
    }
    let finished = read::describe_ours(deps, secret).await?.is_some_and(|d| {
        d.has(version, AWSCURRENT)
            && d.version_with(AWSPENDING)
                .is_none_or(|p| d.has(p, AWSCURRENT))
    });
    if finished {
        info!(secret, token = version, "resumed a stalled rotation");
    }
    Ok(Some(finished))
}

/// Whether a pending version created at `created` has stalled by `now`.
fn stalled(
    created: time::OffsetDateTime,
    now: time::OffsetDateTime,
    after: std::time::Duration,
) -> bool {
    now - created >= after
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use time::macros::datetime;

    use super::stalled;

    #[test]
    fn a_pending_version_stalls_once_older_than_the_threshold() {
        let created = datetime!(2026-12-07 10:00:00 UTC);
        let hour = Duration::from_secs(3600);
        assert!(!stalled(created, datetime!(2026-12-07 10:59:59 UTC), hour));
        assert!(stalled(created, datetime!(2026-12-07 11:00:00 UTC), hour));
        // A clock behind the version's date is not a stall.
        assert!(!stalled(created, datetime!(2026-12-07 09:00:00 UTC), hour));
        assert!(stalled(created, created, Duration::ZERO));
    }
}
