//! An active record exists: answer unchanged, update the cap in place, rotate for a changed
//! fixed field, or refuse a change to a field that can never change.

use orkv_store::SecretVersion;
use tracing::info;

use crate::deps::Deps;
use crate::domain::names::token;
use crate::domain::ownership::Owner;
use crate::domain::record::SecretRecord;
use crate::domain::tags::{self, NextSettings, Reason, stage};
use crate::error::VendError;
use crate::ops::actions::ActionStatus;
use crate::ops::confirm::{self, Claim, Confirmation};
use crate::ops::promote::{self, Promoted};

use super::{Desired, ProvisionReply, Status, reply};
use crate::ops::actions;
use crate::ops::budget;
use crate::ops::read;

/// `None`: the secret changed meanwhile; go round again.
pub(super) async fn converge(
    deps: &Deps,
    d: &Desired,
    version: SecretVersion,
    record: SecretRecord,
) -> Result<Option<ProvisionReply>, VendError> {
    if record.key_name != d.key_name {
        return Err(VendError::ImmutableField {
            field: "key_name",
            secret_arn: version.arn,
            key_hash: record.key_hash.unwrap_or_default(),
            workspace_id: record.workspace_id,
            expires_at: tags::time_value(record.expires_at),
        });
    }
    let fixed_changed = record.workspace_id != d.workspace.id || record.lifetime != d.lifetime;
    let same_cap = record.cap() == d.cap;
    if !fixed_changed && same_cap && record.rotate_before_seconds == d.rotate_before_seconds {
        return Ok(Some(reply(Status::Unchanged, version.arn, d, &record)));
    }
    if !d.may_update {
        return Err(VendError::scope(
            "action",
            format!(
                "tenant {} may not update an existing key (its policy's actions)",
                d.tenant_label
            ),
        ));
    }
    if fixed_changed {
        return rotate_for_change(deps, d).await.map(Some);
    }
    update_in_place(deps, d, version, record, same_cap).await
}

/// The request changed a field fixed at creation (workspace, lifetime): replace the key by
/// rotation with the new settings. The old key stays valid for the grace period.
async fn rotate_for_change(deps: &Deps, d: &Desired) -> Result<ProvisionReply, VendError> {
    let next = NextSettings {
        workspace_id: &d.workspace.id,
        lifetime: d.lifetime,
        cap: d.cap,
        rotate_before_seconds: d.rotate_before_seconds,
    };
    let action = Box::pin(actions::rotate_now(
        deps,
        &d.secret_name,
        Reason::Changed,
        &d.request_id,
        Some(next),
        d.trigger,
    ))
    .await?;
    let (_, record) = read::current_record(deps, &d.secret_name).await?;
    let status = match action.status {
        ActionStatus::RotationStarted => Status::RotationStarted,
        ActionStatus::Unchanged => Status::Unchanged,
        _ => Status::Rotated,
    };
    Ok(reply(status, action.secret_arn, d, &record))
}

/// Patches the key's cap (when it changed) and writes the updated record: under its own
/// label, then made current with a compare-and-set on `AWSCURRENT`, so a rotation that
/// finished meanwhile is never overwritten.
async fn update_in_place(
    deps: &Deps,
    d: &Desired,
    version: SecretVersion,
    record: SecretRecord,
    same_cap: bool,
) -> Result<Option<ProvisionReply>, VendError> {
    let hash = record.key_hash.clone().unwrap_or_default();
    // A rotation in progress: writing a version now would make Secrets Manager abandon it
    // (user guide, "Logging AWS Secrets Manager events with AWS CloudTrail",
    // RotationAbandoned). The change goes into that rotation instead.
    let desc = deps.store.describe(&d.secret_name).await?;
    let rotating = desc.as_ref().is_some_and(rotation_running);
    let stale_deferral = desc
        .as_ref()
        .is_some_and(|d| d.tag(tags::DEFERRED).is_some());
    let mut updated = record.clone();
    updated.set_cap(d.cap);
    let rotate_changed = updated.rotate_before_seconds != d.rotate_before_seconds;
    updated.rotate_before_seconds = d.rotate_before_seconds;
    if !rotating && (rotate_changed || !same_cap) {
        // The tags the sweep and the inventory read (rotate-at and the cap), written before
        // the key is patched: a sweep raising this key meanwhile sees the cap change coming
        // and fits the key to it (`budget::raise_current`), so neither `PATCH` can leave the
        // key above the new cap, whichever lands last.
        deps.store
            .tag(&d.secret_name, &tags::record_tags(&updated))
            .await?;
    }
    if !same_cap {
        apply_cap(deps, desc.as_ref(), &record, &hash, d.cap, rotating).await?;
    }
    if rotating {
        return defer_into_rotation(deps, d, version, record).await;
    }
    // The same change from concurrent duplicates writes the same version (same token).
    let fingerprint = format!(
        "update:{}:{:?}:{}:{}",
        d.cap.limit, d.cap.limit_reset, d.cap.include_byok_in_limit, d.rotate_before_seconds
    );
    let written = match promote::put_current(
        deps,
        &d.secret_name,
        &updated.to_secret(),
        &token(&version.version_id, &fingerprint),
        stage::UPDATE,
        &version.version_id,
    )
    .await?
    {
        // Made current, by this call or by a concurrent duplicate (same token, same version).
        Promoted::Current(written) => written,
        Promoted::Fenced => {
            // AWSCURRENT moved (a rotation finished, a revoke, another update).
            info!("the secret changed while updating: going round again");
            return Ok(None);
        }
    };
    if stale_deferral {
        // A change deferred into a rotation that finished without it: this write applied
        // the request's change; the next rotation must not apply the older one.
        deps.store
            .untag(&d.secret_name, &[tags::DEFERRED.to_owned()])
            .await?;
    }
    info!(key_hash = %hash, "key cap updated in place");
    let arn = if written.arn.is_empty() {
        version.arn
    } else {
        written.arn
    };
    if !still_holds(deps, d, &arn, &hash).await? {
        return Ok(None);
    }
    Ok(Some(reply(Status::Updated, arn, d, &updated)))
}

/// Gives the key in use the new cap within its logical key's budget (ADR 0010). With a
/// rotation running, the key in use is the outgoing one, held for the successor: a lower
/// cap lowers it, a higher one never raises it (the successor is fitted when
/// `finishSecret` carries the change).
async fn apply_cap(
    deps: &Deps,
    desc: Option<&orkv_store::SecretDescription>,
    record: &SecretRecord,
    hash: &str,
    cap: orkv_openrouter::Cap,
    rotating: bool,
) -> Result<(), VendError> {
    let Some(desc) = desc else {
        return budget::fit_within(deps, hash, cap, cap.limit)
            .await
            .map(|_| ());
    };
    if rotating {
        let key = deps.openrouter().await?.get_key(hash).await?;
        let limit = key.limit.map_or(cap.limit, |l| l.min(cap.limit));
        return budget::fit_within(deps, hash, cap, limit).await.map(|_| ());
    }
    let owner = Owner::new(&desc.name, Some(record));
    budget::squeeze_superseded(deps, desc, owner, hash, cap).await?;
    budget::fit_current(deps, desc, hash, cap, None)
        .await
        .map(|_| ())
}

/// The cap change of a request that arrived during a rotation: the key in use already has
/// the new cap (patched above); the change is kept in a tag (no version is written), and
/// the rotation mints the successor with it or carries it over in `finishSecret`.
async fn defer_into_rotation(
    deps: &Deps,
    d: &Desired,
    version: SecretVersion,
    record: SecretRecord,
) -> Result<Option<ProvisionReply>, VendError> {
    let change = tags::Deferred {
        cap: d.cap,
        rotate_before_seconds: d.rotate_before_seconds,
    };
    deps.store
        .tag(
            &d.secret_name,
            &[(tags::DEFERRED.to_owned(), change.tag_value())],
        )
        .await?;
    // The rotation may have finished between the check and the tag: then nothing carries
    // the change, and the next round applies it to the new current key.
    let still = deps
        .store
        .describe(&d.secret_name)
        .await?
        .is_some_and(|desc| rotation_running(&desc));
    if !still {
        info!("the rotation finished meanwhile: going round again");
        return Ok(None);
    }
    let hash = record.key_hash.clone().unwrap_or_default();
    if !still_holds(deps, d, &version.arn, &hash).await? {
        return Ok(None);
    }
    info!("a rotation is running: the change is carried into it");
    let mut updated = record;
    updated.set_cap(d.cap);
    updated.rotate_before_seconds = d.rotate_before_seconds;
    Ok(Some(reply(Status::Updated, version.arn, d, &updated)))
}

/// The read-back of an update: `AWSCURRENT` still holds key `hash`, which shows the
/// requested cap on `GET /key`. `false`: a rotation moved `AWSCURRENT` since; go round again.
async fn still_holds(deps: &Deps, d: &Desired, arn: &str, hash: &str) -> Result<bool, VendError> {
    let claim = Claim {
        key_hash: Some(hash),
        limit: Some(d.cap.limit),
    };
    Ok(matches!(
        confirm::confirm_current(deps, &d.secret_name, arn, claim).await?,
        Confirmation::Held { .. }
    ))
}

/// Another version holds `AWSPENDING`: a rotation is running.
fn rotation_running(desc: &orkv_store::SecretDescription) -> bool {
    desc.version_with(stage::AWSPENDING)
        .is_some_and(|p| !desc.has(p, stage::AWSCURRENT))
}
