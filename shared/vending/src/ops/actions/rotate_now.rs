//! Rotate now: write the request's intent tags, then start the rotation every starter shares
//! for this generation. Repeating the same request after it completed answers `unchanged`.

use tracing::info;

use orkv_store::SecretDescription;

use crate::deps::{Deps, RotationStart};
use crate::domain::names::rotation_token;
use crate::domain::ownership::Owner;
use crate::domain::policy::Permission;
use crate::domain::record::SecretRecord;
use crate::domain::scope::Scope;
use crate::domain::tags::{self, NextSettings, Reason, stage::AWSPENDING};
use crate::error::VendError;
use crate::input::action::RotateRequest;
use crate::input::invocation::{Action, Trigger, request_digest};
use crate::ops::confirm::{self, Claim, Confirmation};

use super::{ActionReply, ActionStatus};
use crate::ops::actions::unfinished;
use crate::ops::read;
use crate::ops::retire;
use crate::ops::start;

/// Serves a validated "rotate now" request.
///
/// # Errors
/// As [`rotate_now`].
pub async fn rotate_request(
    deps: &Deps,
    req: &RotateRequest,
    scope: &Scope<'_>,
    request_id: &str,
    trigger: Trigger,
) -> Result<ActionReply, VendError> {
    let action = if req.reason == Reason::Leak {
        Permission::LeakRotate
    } else {
        Permission::Rotate
    };
    super::check_action_scope(deps, scope, &req.secret_name, action).await?;
    rotate_now(
        deps,
        &req.secret_name,
        req.reason,
        request_id,
        None,
        trigger,
    )
    .await
}

/// Rotates `name` now, applying `next` (settings fixed at creation that a provision
/// request changed).
///
/// # Errors
/// `SecretNotFound`, `SecretNotManaged`, `SecretRevoked`, `RotationInProgress`, and the
/// errors of the rotation itself.
pub async fn rotate_now(
    deps: &Deps,
    name: &str,
    reason: Reason,
    request_id: &str,
    next: Option<NextSettings<'_>>,
    trigger: Trigger,
) -> Result<ActionReply, VendError> {
    let mut desc = read::describe_managed(deps, name).await?;
    if desc.deleted || desc.tag(tags::REVOKED).is_some() {
        return Err(VendError::Revoked {
            secret_name: name.to_owned(),
        });
    }
    let (mut version, mut record) = read::current_record(deps, name).await?;
    // A rotation left unfinished is settled first, before this request's tags are
    // written: its finishSecret clears the request tags it served.
    let mut live = start::live_token(deps, &desc, record.generation).await?;
    if desc.version_with(AWSPENDING).is_some_and(|p| p != live) {
        let earlier = live.clone();
        if !unfinished::settle_earlier(deps, &desc, &earlier, reason == Reason::Leak).await? {
            return Err(VendError::RotationInProgress {
                secret_name: name.to_owned(),
            });
        }
        desc = read::describe_managed(deps, name).await?;
        (version, record) = read::current_record(deps, name).await?;
        live = start::live_token(deps, &desc, record.generation).await?;
    }
    let digest = request_digest(request_id);
    let mut reply = ActionReply::new(
        Action::Rotate,
        ActionStatus::Unchanged,
        &desc.arn,
        name,
        request_id,
        trigger,
    );
    reply.key_hash.clone_from(&record.key_hash);
    reply.generation = Some(record.generation);
    reply.reason = Some(reason);
    reply.facts = Some(record.facts());
    if record.rotation_request.as_deref() == Some(digest.as_str()) {
        if reason == Reason::Leak {
            disable_superseded(deps, name, &desc, &record).await?;
        }
        return Ok(reply);
    }
    let mut intent = vec![
        (tags::ROTATION_REQUEST.to_owned(), digest),
        (tags::ROTATION_REASON.to_owned(), reason.as_str().to_owned()),
    ];
    if let Some(n) = next {
        intent.push((tags::NEXT.to_owned(), n.tag_value()));
    }
    deps.store.tag(&desc.arn, &intent).await?;
    if live != rotation_token(name, record.generation) {
        unfinished::retire_abandoned(deps, &desc, &record.workspace_id, record.generation, &live)
            .await?;
    }
    let start = start::start_rotation(deps, name, &live).await?;
    info!(secret = %name, reason = reason.as_str(), start = ?start, from_version = %version, "rotation requested");
    answer(deps, name, &desc, &record, start, reply).await
}

/// The repeat of a leak rotation that finished: a superseded key left enabled (its
/// finishSecret died before disabling) is disabled now, never left live.
async fn disable_superseded(
    deps: &Deps,
    name: &str,
    desc: &SecretDescription,
    record: &SecretRecord,
) -> Result<(), VendError> {
    let mut older: Vec<String> = tags::retiring(&desc.tags)
        .into_iter()
        .map(|(h, _)| h)
        .collect();
    older.retain(|h| Some(h.as_str()) != record.key_hash.as_deref());
    retire::disable_now(deps, Owner::new(name, Some(record)), &older).await?;
    Ok(())
}

/// The reply to a rotation that `start` began: started, or (a local driver, or a rotation
/// that already happened) rotated, read back from `AWSCURRENT`.
async fn answer(
    deps: &Deps,
    name: &str,
    desc: &SecretDescription,
    record: &SecretRecord,
    start: RotationStart,
    mut reply: ActionReply,
) -> Result<ActionReply, VendError> {
    match start {
        RotationStart::Started => reply.status = ActionStatus::RotationStarted,
        RotationStart::Completed | RotationStart::AlreadyCurrent => {
            let any = Claim {
                key_hash: None,
                limit: None,
            };
            let Confirmation::Held { record: now, .. } =
                confirm::confirm_current(deps, name, &desc.arn, any).await?
            else {
                return Err(VendError::RotationInProgress {
                    secret_name: name.to_owned(),
                });
            };
            if start == RotationStart::Completed && now.key_hash == record.key_hash {
                return Err(VendError::NotConfirmed {
                    secret_name: name.to_owned(),
                    check: "AWSCURRENT still holds the key the rotation replaced".into(),
                });
            }
            reply.status = ActionStatus::Rotated;
            reply.key_hash.clone_from(&now.key_hash);
            reply.generation = Some(now.generation);
            reply.facts = Some(now.facts());
        }
        RotationStart::InProgress => {
            return Err(VendError::RotationInProgress {
                secret_name: name.to_owned(),
            });
        }
    }
    Ok(reply)
}
