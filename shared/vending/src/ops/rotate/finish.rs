//! `finishSecret`: tag the superseded key for retirement after the grace period, move
//! `AWSCURRENT` with a compare-and-set, remove `AWSPENDING`, delete other attempts' keys (the
//! token's value is final now) and rewrite the tags the sweep reads. A cap change that arrived
//! while the rotation ran (kept in a tag, never as a version: a version written during a
//! rotation makes Secrets Manager abandon it) is applied to the new key and written as a merged
//! record only once `AWSPENDING` is gone. For a leak, the old keys are disabled at once.

use orkv_openrouter::ErrorKind;
use orkv_store::SecretDescription;
use tracing::{info, warn};

use crate::deps::Deps;
use crate::domain::names::{self, KeyName};
use crate::domain::ownership::Owner;
use crate::domain::record::{RecordState, SecretRecord};
use crate::domain::tags::{
    self, Deferred, MAX_RETIRING, Reason, retire_tag, retiring,
    stage::{self, AWSCURRENT, AWSPENDING},
};
use crate::error::VendError;
use crate::ops::budget;
use crate::ops::confirm::{self, Claim, Confirmation};
use crate::ops::guardrail;
use crate::ops::promote::{self, Promoted};
use crate::ops::read;
use crate::ops::retire;
use crate::ops::rotate;

/// The change a request deferred into the running rotation, if any.
fn deferred_in(desc: &SecretDescription) -> Option<Deferred> {
    desc.tag(tags::DEFERRED).and_then(Deferred::from_tag_value)
}

pub(super) async fn finish_step(
    deps: &Deps,
    desc: &SecretDescription,
    token: &str,
) -> Result<SecretRecord, VendError> {
    let pending = rotate::read_version(deps, desc, token).await?;
    let current_id = desc
        .version_with(AWSCURRENT)
        .ok_or_else(|| VendError::SecretNotFound {
            secret_name: desc.name.clone(),
        })?
        .to_owned();
    let old = rotate::read_version(deps, desc, &current_id).await?;
    if old.state == RecordState::Revoked {
        return Err(refuse_revoked(deps, desc, token, &pending).await);
    }
    if old.key_hash == pending.key_hash {
        // A merged version carrying the successor is already current.
        return finish_tail(deps, desc, token, &old, None).await;
    }
    let changed_meanwhile = pending.parent_version.as_deref() != Some(current_id.as_str())
        && (old.cap() != pending.cap()
            || old.rotate_before_seconds != pending.rotate_before_seconds)
        && desc.tag(tags::NEXT).is_none();
    let mut deferred = deferred_in(desc);
    if changed_meanwhile {
        // A version written while the rotation ran (outside the product, or by an earlier
        // release): its change is carried over as a deferred one, kept in the tag first so
        // a retried finishSecret still carries it.
        let change = Deferred {
            cap: old.cap(),
            rotate_before_seconds: old.rotate_before_seconds,
        };
        deps.store
            .tag(
                &desc.arn,
                &[(tags::DEFERRED.to_owned(), change.tag_value())],
            )
            .await?;
        deferred = Some(change);
    }
    if let Some(change) = deferred
        && change.cap != pending.cap()
    {
        // The successor gets the change's cap before it becomes current, so a lowered cap
        // is never exceeded by the key consumers move to.
        patch_cap(deps, desc, &pending, change.cap, old.key_hash.as_deref()).await?;
    }
    if let Some(old_hash) = old.key_hash.as_deref() {
        schedule_retirement(deps, desc, old_hash).await?;
    }
    deps.store
        .move_stage(&desc.arn, AWSCURRENT, Some(&current_id), Some(token))
        .await?;
    info!(from = %current_id, to = %token, key_hash = pending.key_hash.as_deref().unwrap_or(""), "AWSCURRENT moved to the successor");
    finish_tail_with(
        deps,
        desc,
        token,
        &pending,
        old.key_hash.as_deref(),
        deferred,
    )
    .await
}

/// The secret was revoked while this rotation ran (its successor was minted after the
/// revoke looked): the successor is retired and `AWSPENDING` removed, never promoted.
async fn refuse_revoked(
    deps: &Deps,
    desc: &SecretDescription,
    token: &str,
    pending: &SecretRecord,
) -> VendError {
    warn!("the secret was revoked during the rotation: retiring the successor");
    if let Some(hash) = pending.key_hash.as_deref()
        && let Err(e) = retire::retire_key(deps, &desc.name, hash).await
    {
        return e;
    }
    if let Err(e) = promote::drop_pending(deps, &desc.arn, token).await {
        return e;
    }
    VendError::Revoked {
        secret_name: desc.name.clone(),
    }
}

/// A change deferred into this rotation, applied once `AWSPENDING` is gone (writing a
/// version earlier would make Secrets Manager abandon the rotation): the successor key gets
/// the cap, and the merged record is made current with a compare-and-set from the token's
/// version. Answers the record now current.
async fn carry_deferred(
    deps: &Deps,
    desc: &SecretDescription,
    token: &str,
    promoted: &SecretRecord,
    deferred: Option<Deferred>,
    old_hash: Option<&str>,
) -> Result<SecretRecord, VendError> {
    let Some(change) = deferred else {
        return Ok(promoted.clone());
    };
    if promoted.cap() == change.cap
        && promoted.rotate_before_seconds == change.rotate_before_seconds
    {
        return Ok(promoted.clone());
    }
    if promoted.cap() != change.cap {
        patch_cap(deps, desc, promoted, change.cap, old_hash).await?;
    }
    let mut merged = promoted.clone();
    merged.set_cap(change.cap);
    merged.rotate_before_seconds = change.rotate_before_seconds;
    match promote::put_current(
        deps,
        &desc.arn,
        &merged.to_secret(),
        &names::token(token, "merge"),
        stage::MERGE,
        token,
    )
    .await?
    {
        Promoted::Current(_) => {
            info!("carried a change made during the rotation over to the successor");
        }
        Promoted::Fenced => {
            warn!("AWSCURRENT left the successor before its merge: the newer version stands");
        }
    }
    Ok(merged)
}

/// Gives `record`'s key the cap `cap`, with the limit its logical key's budget leaves it
/// besides the superseded keys, `old` among them (idempotent).
async fn patch_cap(
    deps: &Deps,
    desc: &SecretDescription,
    record: &SecretRecord,
    cap: orkv_openrouter::Cap,
    old: Option<&str>,
) -> Result<(), VendError> {
    let hash = record.key_hash.clone().unwrap_or_default();
    budget::fit_current(deps, desc, &hash, cap, old).await?;
    Ok(())
}

/// Tags the superseded key for retirement: after the grace period, or now for a leak.
/// With too many keys in grace at once, the oldest is retired at the next sweep.
async fn schedule_retirement(
    deps: &Deps,
    desc: &SecretDescription,
    old_hash: &str,
) -> Result<(), VendError> {
    let now = deps.clock.now();
    let at = if Reason::is_leak(desc.tag(tags::ROTATION_REASON)) {
        now
    } else {
        now + time::Duration::try_from(deps.cfg.retire_grace).unwrap_or(time::Duration::HOUR)
    };
    let mut retire = vec![(retire_tag(old_hash), tags::time_value(at))];
    let mut waiting = retiring(&desc.tags);
    waiting.retain(|(h, _)| h != old_hash);
    if waiting.len() >= MAX_RETIRING {
        waiting.sort_by_key(|(_, at)| *at);
        if let Some((h, _)) = waiting.first() {
            retire.push((retire_tag(h), tags::time_value(now)));
        }
    }
    deps.store.tag(&desc.arn, &retire).await?;
    Ok(())
}

/// The end of `finishSecret`, repeated safely: drop `AWSPENDING`, point the sweep's tags
/// at the new key, clear the request's tags, and for a leak disable the old key now.
pub(super) async fn finish_tail(
    deps: &Deps,
    desc: &SecretDescription,
    token: &str,
    promoted: &SecretRecord,
    old_hash: Option<&str>,
) -> Result<SecretRecord, VendError> {
    finish_tail_with(deps, desc, token, promoted, old_hash, deferred_in(desc)).await
}

/// [`finish_tail`], carrying `deferred`.
async fn finish_tail_with(
    deps: &Deps,
    desc: &SecretDescription,
    token: &str,
    promoted: &SecretRecord,
    old_hash: Option<&str>,
    deferred: Option<Deferred>,
) -> Result<SecretRecord, VendError> {
    if desc.has(token, AWSPENDING) {
        promote::drop_pending(deps, &desc.arn, token).await?;
    }
    // A change deferred after this step read the secret (the request saw AWSPENDING still
    // on the token): read the tag again now that AWSPENDING is gone, so none is missed.
    let late = deps
        .store
        .describe(&desc.arn)
        .await?
        .and_then(|now| deferred_in(&now));
    let deferred = late.or(deferred);
    let carried = deferred.is_some();
    let promoted = &carry_deferred(deps, desc, token, promoted, deferred, old_hash).await?;
    if let Err(e) = delete_other_attempts(deps, desc, token, promoted).await {
        warn!(error = %e, "could not delete keys of other attempts; the sweep will");
    }
    deps.store
        .tag(&desc.arn, &tags::record_tags(promoted))
        .await?;
    let mut request_tags: Vec<String> = tags::REQUEST_TAGS
        .iter()
        .filter(|k| desc.tag(k).is_some())
        .map(|k| (*k).to_owned())
        .collect();
    if carried {
        request_tags.push(tags::DEFERRED.to_owned());
    }
    if Reason::is_leak(desc.tag(tags::ROTATION_REASON)) {
        disable_suspects(deps, desc, promoted, old_hash).await?;
    }
    deps.store.untag(&desc.arn, &request_tags).await?;
    // The step answers done only once AWSCURRENT is read back holding the successor and
    // its key answers GET /key.
    let claim = Claim {
        key_hash: promoted.key_hash.as_deref(),
        limit: Some(promoted.limit),
    };
    if let Confirmation::Moved =
        confirm::confirm_current(deps, &desc.name, &desc.arn, claim).await?
    {
        // A later rotation finished already: this step's work is done and superseded.
        info!("AWSCURRENT moved past the successor: a later rotation finished");
    }
    Ok(promoted.clone())
}

/// A leak: disables the old key and every other key still in grace, at once (any of
/// them may be the leaked one).
async fn disable_suspects(
    deps: &Deps,
    desc: &SecretDescription,
    promoted: &SecretRecord,
    old_hash: Option<&str>,
) -> Result<(), VendError> {
    let mut suspects: Vec<String> = old_hash.map(str::to_owned).into_iter().collect();
    suspects.extend(retiring(&desc.tags).into_iter().map(|(h, _)| h));
    suspects.retain(|h| Some(h.as_str()) != promoted.key_hash.as_deref());
    suspects.sort();
    suspects.dedup();
    retire::disable_now(deps, Owner::new(&desc.name, Some(promoted)), &suspects).await?;
    Ok(())
}

/// After `finishSecret` took `AWSPENDING` off the token's version, no other value can be
/// stored under the token: keys other attempts minted under its successor name go.
async fn delete_other_attempts(
    deps: &Deps,
    desc: &SecretDescription,
    token: &str,
    promoted: &SecretRecord,
) -> Result<(), VendError> {
    let name = &promoted.openrouter_key_name;
    if *name != KeyName::successor(&desc.name, token) {
        return Ok(());
    }
    let mut others = read::keys_named(deps, &promoted.workspace_id, name).await?;
    others.retain(|h| Some(h.as_str()) != promoted.key_hash.as_deref());
    if others.is_empty() {
        return Ok(());
    }
    // What the token's version holds now, not what was read before the labels moved (a
    // store that lets a pending version be overwritten may hold another attempt's key).
    let Some(stored) = deps
        .store
        .get_version(&desc.arn, Some(token), None)
        .await?
        .and_then(|v| SecretRecord::hash_in(&v.value))
    else {
        return Ok(());
    };
    let client = deps.openrouter().await?;
    for hash in others.iter().filter(|h| **h != stored) {
        guardrail::release(deps, name.as_str(), &promoted.workspace_id, hash).await;
        match client.delete_key(hash).await {
            Ok(_) => {
                warn!(key_hash = %hash, "deleted a key another attempt of this rotation minted");
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
