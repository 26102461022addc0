//! What the key listing shows about keys in use, read without a call of its own (issue 26,
//! item 5): current keys nobody has used for `ORKV_IDLE_KEY_SECONDS`, current keys that never
//! expire, and workspaces whose I/O logging names keys by id, which every rotation replaces.

use std::time::Duration;

use time::OffsetDateTime;
use tracing::warn;

use crate::deps::Deps;
use crate::error::VendError;

use super::report::{SweepAction, SweepReport};

/// A current key last used at `last_used`: idle when that is `after` or longer before `now`.
/// A key never used, or last used before OpenRouter kept the field, reads `None`: not idle
/// (nothing says so).
#[must_use]
pub(super) fn is_idle(
    last_used: Option<OffsetDateTime>,
    now: OffsetDateTime,
    after: Option<Duration>,
) -> bool {
    match (
        last_used,
        after.and_then(|a| time::Duration::try_from(a).ok()),
    ) {
        (Some(at), Some(after)) => now - at >= after,
        _ => false,
    }
}

/// Reports idle current keys: (secret, key hash, last used).
pub(super) fn report_idle(idle: Vec<(String, String, OffsetDateTime)>, report: &mut SweepReport) {
    for (secret, hash, at) in idle {
        report.idle_keys += 1;
        warn!(event = "IdleKey", secret_name = %secret, key_hash = %hash, last_used_at = %at, "a current key nobody has used for ORKV_IDLE_KEY_SECONDS: revoke it if no service needs it");
        report.note(
            SweepAction::IdleKey,
            &secret,
            format!("{hash} last used {at}"),
        );
    }
}

/// Reports current keys that never expire (only an adopted key can: the product sets an
/// expiry on every key it mints): (secret, key hash). With the organisation's maximum key
/// lifetime set, OpenRouter rejects every request from such a key.
pub(super) fn report_without_expiry(
    keys: Vec<(String, String)>,
    org_max: Option<u64>,
    report: &mut SweepReport,
) {
    for (secret, hash) in keys {
        report.keys_without_expiry += 1;
        match org_max {
            Some(max) => {
                warn!(event = "KeyWithoutExpiry", secret_name = %secret, key_hash = %hash, org_max_key_lifetime_seconds = max, "a current key never expires, and the organisation's maximum key lifetime is set: OpenRouter rejects every request from it; rotate it");
            }
            None => {
                warn!(event = "KeyWithoutExpiry", secret_name = %secret, key_hash = %hash, "a current key never expires (an adopted key): rotate it to give it the policy's lifetime");
            }
        }
        report.note(SweepAction::KeyWithoutExpiry, &secret, hash);
    }
}

/// Reports each of `workspaces` (ids) whose `io_logging_api_key_ids` lists keys: OpenRouter
/// names them by an integer id the documented key object does not carry, so the product
/// cannot carry a listed key's logging to its successor, and that key's I/O logging stops
/// at its first rotation. From the cached workspace listing: no call of its own.
///
/// # Errors
/// When the workspace listing cannot be read.
pub(super) async fn report_logging_workspaces(
    deps: &Deps,
    workspaces: &[String],
    report: &mut SweepReport,
) -> Result<(), VendError> {
    for w in deps.workspaces().await? {
        let listed = w.io_logging_api_key_ids.as_ref().map_or(0, Vec::len);
        if listed == 0 || !workspaces.contains(&w.id) {
            continue;
        }
        report.workspaces_logging_keys_by_id += 1;
        warn!(event = "WorkspaceLogsKeysById", workspace_id = %w.id, listed, "the workspace logs the I/O of keys listed by id; rotation replaces keys, so a listed key's logging stops at its first rotation");
        report.note(
            SweepAction::WorkspaceLogsKeysById,
            &w.slug,
            format!("{listed} key ids in io_logging_api_key_ids"),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_idle_only_when_its_last_use_is_known_and_old_enough() {
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::days(100);
        let day = Some(Duration::from_secs(86_400));
        assert!(is_idle(Some(now - time::Duration::days(2)), now, day));
        assert!(is_idle(Some(now - time::Duration::days(1)), now, day));
        assert!(!is_idle(Some(now - time::Duration::hours(23)), now, day));
        assert!(
            !is_idle(None, now, day),
            "never used, or used before the field"
        );
        assert!(
            !is_idle(Some(now - time::Duration::days(90)), now, None),
            "off"
        );
    }
}
