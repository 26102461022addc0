//! Revoke: make the revoked record current (the fence every other writer respects), then
//! disable, delete and confirm (404) every key the secret references (current, pending,
//! awaiting retirement, and any unfinished attempt), then mark the secret revoked (with its
//! rotation turned off, so Secrets Manager's schedule never starts one on it) or delete it.
//! Safe to repeat.

use orkv_store::{SecretDescription, SecretVersion, StoreErrorKind};
use tracing::{info, warn};

use crate::deps::Deps;
use crate::domain::names::{KeyName, token};
use crate::domain::ownership::Owner;
use crate::domain::policy::Permission;
use crate::domain::record::{RecordState, SecretRecord};
use crate::domain::scope::Scope;
use crate::domain::tags::{
    self, retiring,
    stage::{self, AWSCURRENT, AWSPENDING},
};
use crate::error::VendError;
use crate::input::action::RevokeRequest;
use crate::input::invocation::{Action, Trigger};
use crate::ops::owned;
use crate::ops::promote::{self, Promoted};
use crate::ops::retire::{self, Retired};

use super::{ActionReply, ActionStatus};
use crate::ops::actions;
use crate::ops::read;

/// Rounds of read-and-fence before answering `ProvisionInProgress`.
const REVOKE_ROUNDS: usize = 4;

/// Whether the revoked record is current.
enum Fence {
    /// It is (written now, or earlier: `true`); the record's generation.
    Held(Option<u64>, bool),
    /// Another version became current meanwhile.
    Moved,
}

/// Serves a validated revoke request.
///
/// # Errors
/// As [`revoke`].
pub async fn revoke_request(
    deps: &Deps,
    req: &RevokeRequest,
    scope: &Scope<'_>,
    request_id: &str,
    trigger: Trigger,
) -> Result<ActionReply, VendError> {
    actions::check_action_scope(deps, scope, &req.secret_name, Permission::Revoke).await?;
    let delete = req.delete_secret.unwrap_or(deps.cfg.revoke_deletes_secret);
    revoke(deps, &req.secret_name, delete, request_id, trigger).await
}

/// Revokes every key of `name`, then deletes the secret or marks it revoked.
///
/// The revoked record is made current first, by compare-and-set: from then on no mint,
/// take-over, cap update or `finishSecret` can make another version current (each moves
/// `AWSCURRENT` the same way), and a mint in flight deletes its own key when its move
/// fails. Only then are the referenced keys retired.
///
/// # Errors
/// `SecretNotFound`, `SecretNotManaged`, `ProvisionInProgress` when the secret kept
/// changing, and OpenRouter or store errors (the action can be repeated).
pub async fn revoke(
    deps: &Deps,
    name: &str,
    delete_secret: bool,
    request_id: &str,
    trigger: Trigger,
) -> Result<ActionReply, VendError> {
    for _ in 0..REVOKE_ROUNDS {
        let desc = read::describe_managed(deps, name).await?;
        let mut reply = ActionReply::new(
            Action::Revoke,
            ActionStatus::Revoked,
            &desc.arn,
            name,
            request_id,
            trigger,
        );
        if desc.deleted {
            reply.repeat = true;
            return Ok(reply);
        }
        deps.openrouter().await?;
        let current = deps.store.get(&desc.arn, AWSCURRENT).await?;
        let pending = deps.store.get(&desc.arn, AWSPENDING).await?;
        let Fence::Held(generation, earlier) = fence(deps, &desc, current.as_ref()).await? else {
            continue;
        };
        reply.generation = generation;
        reply.repeat = earlier;
        // The revoked key's identity, from the record the fence read (a revoked record
        // keeps it, without the plaintext).
        reply.facts = current
            .as_ref()
            .and_then(|v| SecretRecord::from_secret(&v.value))
            .and_then(Result::ok)
            .filter(|r| r.state != RecordState::Pending)
            .map(|r| r.facts());
        reply.revoked_keys =
            retire_referenced(deps, &desc, current.as_ref(), pending.as_ref()).await?;
        if let Some(p) = desc.version_with(AWSPENDING)
            && !desc.has(p, AWSCURRENT)
        {
            promote::drop_pending(deps, &desc.arn, p).await?;
        }
        if delete_secret {
            deps.store
                .delete_after(&desc.arn, false, deps.cfg.recovery_window_days)
                .await?;
        } else {
            mark_revoked(deps, &desc).await?;
        }
        info!(secret = %name, keys = reply.revoked_keys.len(), deleted_secret = delete_secret, "revoked");
        return Ok(reply);
    }
    Err(VendError::InProgress {
        secret_name: name.to_owned(),
    })
}

/// Retires every key the secret references; answers their hashes.
async fn retire_referenced(
    deps: &Deps,
    desc: &SecretDescription,
    current: Option<&SecretVersion>,
    pending: Option<&SecretVersion>,
) -> Result<Vec<String>, VendError> {
    let hashes = referenced_keys(deps, desc, current, pending).await?;
    let mut revoked = Vec::with_capacity(hashes.len());
    for hash in hashes {
        match retire::retire_key(deps, &desc.name, &hash).await? {
            Retired::Gone { .. } => revoked.push(hash),
            Retired::StillListed => {
                warn!(key_hash = %hash, "key still listed after delete");
                return Err(VendError::InProgress {
                    secret_name: desc.name.clone(),
                });
            }
        }
    }
    Ok(revoked)
}

/// Makes the revoked record (no plaintext) current with a compare-and-set on the version
/// read. `Moved`: something else became current meanwhile; read again.
async fn fence(
    deps: &Deps,
    desc: &SecretDescription,
    current: Option<&SecretVersion>,
) -> Result<Fence, VendError> {
    let Some((v, mut r)) = current.and_then(|v| {
        SecretRecord::from_secret(&v.value)
            .and_then(Result::ok)
            .map(|r| (v, r))
    }) else {
        return Ok(Fence::Held(None, false));
    };
    if r.state == RecordState::Revoked {
        return Ok(Fence::Held(Some(r.generation), true));
    }
    let pending = r.state == RecordState::Pending;
    r.state = RecordState::Revoked;
    r.api_key = None;
    r.lease_until = None;
    r.claim = None;
    let value = r.to_secret();
    // A pending claim's writers derive their tokens from its version: the take-over
    // (`claim`), the release after an ambiguous create (`release`) and the mint storing its
    // key (`active`). Holding them first makes each of those writes fail as a conflict
    // (`PutSecretValue` never changes a version's value), so none can overwrite the revoke.
    let squats: &[&str] = if pending {
        &["claim", "release", "active"]
    } else {
        &["revoke"]
    };
    let mut last = None;
    for purpose in squats {
        match deps
            .store
            .put(
                &desc.arn,
                &value,
                &token(&v.version_id, purpose),
                &[stage::REVOKE],
            )
            .await
        {
            Ok(w) => last = Some(w),
            // That writer stored first: read again (and revoke what it stored).
            Err(e) if e.kind() == StoreErrorKind::VersionConflict => return Ok(Fence::Moved),
            Err(e) => return Err(e.into()),
        }
    }
    let Some(written) = last else {
        return Ok(Fence::Moved);
    };
    Ok(
        match promote::promote(deps, &desc.arn, written, &v.version_id).await? {
            Promoted::Current(_) => Fence::Held(Some(r.generation), false),
            Promoted::Fenced => Fence::Moved,
        },
    )
}

/// Every key hash the secret references (sorted, once each): the records' own, and of the
/// keys its retire tags name, only the secret's own (`owned`: a tag is not the product's
/// word, one `GET` each). Keys of unfinished attempts, which no record names by hash, are
/// deleted by name here.
async fn referenced_keys(
    deps: &Deps,
    desc: &SecretDescription,
    current: Option<&SecretVersion>,
    pending: Option<&SecretVersion>,
) -> Result<Vec<String>, VendError> {
    let mut tagged: Vec<String> = retiring(&desc.tags).into_iter().map(|(h, _)| h).collect();
    let mut hashes = Vec::new();
    let mut current_record = None;
    for (stage, v) in [(AWSCURRENT, current), (AWSPENDING, pending)] {
        let Some(v) = v else { continue };
        let Some(Ok(r)) = SecretRecord::from_secret(&v.value) else {
            continue;
        };
        if let Some(h) = &r.key_hash {
            hashes.push(h.clone());
        }
        if r.key_hash.is_none() {
            // An unfinished provision (pending, or fenced by an earlier revoke): its key,
            // if any, carries the attempt's name.
            read::delete_named(deps, &r.workspace_id, &r.openrouter_key_name).await?;
        }
        if stage == AWSCURRENT {
            current_record = Some(r);
        }
    }
    if let (Some(r), Some(p)) = (&current_record, desc.version_with(AWSPENDING)) {
        // An unfinished rotation: its successor carries the token's name.
        read::delete_named(deps, &r.workspace_id, &KeyName::successor(&desc.name, p)).await?;
    }
    tagged.retain(|h| !hashes.contains(h));
    let owner = Owner::new(&desc.name, current_record.as_ref());
    hashes.extend(owned::sort_owned(deps, owner, &tagged).await?.ours);
    hashes.sort();
    hashes.dedup();
    Ok(hashes)
}

/// Writes the revoked tag and clears the tags the sweep would act on.
async fn mark_revoked(deps: &Deps, desc: &SecretDescription) -> Result<(), VendError> {
    // Stale tags go first, so the revoked tag always fits within the 50-tag limit.
    let stale: Vec<String> = desc
        .tags
        .iter()
        .map(|(k, _)| k.clone())
        .filter(|k| {
            k.starts_with(tags::RETIRE_PREFIX)
                || tags::REQUEST_TAGS.contains(&k.as_str())
                || k == tags::BUDGET
        })
        .collect();
    deps.store.untag(&desc.arn, &stale).await?;
    deps.store
        .tag(
            &desc.arn,
            &[(tags::REVOKED.to_owned(), tags::time_value(deps.clock.now()))],
        )
        .await?;
    // A revoked secret must not rotate: Secrets Manager's schedule would start a rotation
    // that createSecret refuses, leaving AWSPENDING on an empty version and an alarm every
    // period. A repeat finds rotation off already and makes no call.
    if desc.rotation_enabled {
        match deps.store.cancel_rotation(&desc.arn).await {
            Ok(()) => {}
            // AWS refuses CancelRotateSecret for a secret with no rotation function configured
            // (API reference, *CancelRotateSecret*): nothing can rotate it, nothing to cancel.
            Err(e) if e.kind() == StoreErrorKind::InvalidRequest => {
                info!(secret = %desc.name, error = %e, "no rotation function configured: no rotation to cancel");
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
