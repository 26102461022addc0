//! An earlier rotation found unfinished by rotate now, settled before a new one starts:
//!
//! - `AWSPENDING` on the current version: its `finishSecret` moved `AWSCURRENT` and died
//!   before its end (the sweep's tags, the request tags and, for a leak, the old key's
//!   disabling). That end runs here, in process.
//! - `AWSPENDING` on another version: another rotation is running or stalled. Its steps run
//!   here, in process: each is idempotent per token, so racing Secrets Manager's own
//!   invocation of them is harmless, and a stalled one is finished by the next request instead
//!   of blocking it. If they fail, a leak abandons that rotation (its successor key retired,
//!   `AWSPENDING` removed) rather than wait behind it; any other request answers
//!   `RotationInProgress` and changes nothing.

use orkv_store::SecretDescription;
use std::time::{Duration, Instant};
use tracing::{info, warn};

use crate::deps::Deps;
use crate::domain::names::KeyName;
use crate::domain::record::SecretRecord;
use crate::domain::tags::stage::{AWSCURRENT, AWSPENDING};
use crate::error::VendError;
use crate::input::rotation::{RotationEvent, Step};
use crate::ops::promote;
use crate::ops::read;
use crate::ops::retire;
use crate::ops::rotate;

/// Time each in-process step may take.
const STEP_DEADLINE: Duration = Duration::from_secs(30);

/// Settles a rotation other than `token`'s that holds `AWSPENDING`. `Ok(true)`: none is
/// left (the caller reads the secret again); `Ok(false)`: one is still running.
pub(super) async fn settle_earlier(
    deps: &Deps,
    desc: &SecretDescription,
    token: &str,
    leak: bool,
) -> Result<bool, VendError> {
    let Some(p) = desc.version_with(AWSPENDING).map(str::to_owned) else {
        return Ok(true);
    };
    if p == token {
        return Ok(true);
    }
    if desc.has(&p, AWSCURRENT) {
        step_here(deps, &desc.name, &p, Step::FinishSecret).await?;
        info!(token = %p, "finished the end of an interrupted finishSecret");
        return Ok(true);
    }
    let mut failure = None;
    for step in [
        Step::CreateSecret,
        Step::SetSecret,
        Step::TestSecret,
        Step::FinishSecret,
    ] {
        if let Err(e) = step_here(deps, &desc.name, &p, step).await {
            failure = Some(e);
            break;
        }
    }
    let Some(e) = failure else {
        info!(token = %p, "finished an unfinished rotation in process");
        return Ok(true);
    };
    if !leak {
        warn!(token = %p, error_type = e.kind(), error = %e, "an unfinished rotation could not be finished yet");
        return Ok(false);
    }
    warn!(token = %p, error_type = e.kind(), error = %e, "a leak does not wait behind an unfinished rotation: abandoning it");
    abandon(deps, desc, &p).await?;
    Ok(true)
}

async fn step_here(deps: &Deps, secret: &str, token: &str, step: Step) -> Result<(), VendError> {
    let event = RotationEvent {
        step,
        secret_id: secret.to_owned(),
        token: token.to_owned(),
        rotation_token: None,
    };
    Box::pin(rotate::run_step(
        deps,
        &event,
        Instant::now() + STEP_DEADLINE,
    ))
    .await?;
    Ok(())
}

/// Retires the successor an abandoned rotation minted (the one its version holds, and any
/// other attempt carrying its name) and removes `AWSPENDING` from its version.
async fn abandon(deps: &Deps, desc: &SecretDescription, token: &str) -> Result<(), VendError> {
    let (_, current) = read::current_record(deps, &desc.name).await?;
    if let Some(v) = deps.store.get_version(&desc.arn, Some(token), None).await?
        && let Some(hash) = SecretRecord::hash_in(&v.value)
        && Some(hash.as_str()) != current.key_hash.as_deref()
    {
        retire::retire_key(deps, &desc.name, &hash).await?;
    }
    let successor = KeyName::successor(&desc.name, token);
    if current.openrouter_key_name != successor {
        read::delete_named(deps, &current.workspace_id, &successor).await?;
    }
    promote::drop_pending(deps, &desc.arn, token).await
}

/// Deletes the successor keys of the generation's abandoned attempts (their versions lost
/// `AWSPENDING` for good) before a fresh attempt starts; the sweep's orphan scan is the net
/// for any left.
pub(super) async fn retire_abandoned(
    deps: &Deps,
    desc: &SecretDescription,
    workspace_id: &str,
    generation: u64,
    live: &str,
) -> Result<(), VendError> {
    for attempt in 0..64 {
        let token = crate::domain::names::rotation_attempt_token(&desc.name, generation, attempt);
        if token == live {
            break;
        }
        read::delete_named(deps, workspace_id, &KeyName::successor(&desc.name, &token)).await?;
    }
    Ok(())
}
