//! Making a written version current only if nothing else did meanwhile: the version is
//! written under its own label, then `AWSCURRENT` is moved to it with a compare-and-set
//! (`UpdateSecretVersionStage` removing the label from the version the writer read, which
//! fails if the label moved). A cap update and a revoke serialize on one secret this way:
//! whichever moves the label first wins, and the other learns it. (A provision's mint and its
//! claim writes keep one `PutSecretValue` each: a revoke fences them by holding their tokens,
//! see [`crate::ops::actions`].)
//!
//! `PutSecretValue` itself has no such condition: with `AWSCURRENT` among its stages it moves
//! the label unconditionally (API reference, *PutSecretValue*, `VersionStages`).

use orkv_store::{StoreErrorKind, Written};
use secrecy::SecretString;

use crate::deps::Deps;
use crate::domain::tags::stage::{AWSCURRENT, AWSPENDING};
use crate::error::VendError;

/// Attempts of the compare-and-set on a transient failure.
const MOVE_ATTEMPTS: u32 = 3;

/// How a promotion ended.
pub(crate) enum Promoted {
    /// `AWSCURRENT` is on the written version.
    Current(Written),
    /// `AWSCURRENT` had left the version the writer read: the written version is not current.
    Fenced,
}

/// Takes `AWSPENDING` off `version` of `arn`. Safe to repeat: a label already gone (an
/// earlier attempt, or the rotation's own `finishSecret`) is `InvalidRequest`, and done.
///
/// # Errors
/// Other store errors.
pub(crate) async fn drop_pending(deps: &Deps, arn: &str, version: &str) -> Result<(), VendError> {
    match deps
        .store
        .move_stage(arn, AWSPENDING, Some(version), None)
        .await
    {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == StoreErrorKind::InvalidRequest => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Moves `AWSCURRENT` from `from` to the written version, if it is still on `from`.
pub(crate) async fn promote(
    deps: &Deps,
    name: &str,
    written: Written,
    from: &str,
) -> Result<Promoted, VendError> {
    let mut attempt = 1;
    loop {
        match deps
            .store
            .move_stage(name, AWSCURRENT, Some(from), Some(&written.version_id))
            .await
        {
            Ok(()) => return Ok(Promoted::Current(written)),
            Err(e) if e.kind() == StoreErrorKind::InvalidRequest => {
                // The label is not on `from`: moved by someone else, or by an earlier
                // attempt of this move whose reply was lost.
                let now = deps.store.get(name, AWSCURRENT).await?;
                return Ok(match now {
                    Some(v) if v.version_id == written.version_id => Promoted::Current(written),
                    _ => Promoted::Fenced,
                });
            }
            Err(e) if e.is_transient() && attempt < MOVE_ATTEMPTS => attempt += 1,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Writes `value` under `token` with the label `label`, then promotes it from `from`.
pub(crate) async fn put_current(
    deps: &Deps,
    name: &str,
    value: &SecretString,
    token: &str,
    label: &str,
    from: &str,
) -> Result<Promoted, VendError> {
    let written = deps.store.put(name, value, token, &[label]).await?;
    promote(deps, name, written, from).await
}
