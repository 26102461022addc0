//! Retiring one secret's due superseded keys: only the secret's own (`owned`), never one a
//! label still references; each key's
//! spend carried into the budget before it is deleted (ADR 0010), its guardrail assignment
//! removed, and the current key given back what the retired keys left unspent.

use orkv_store::SecretVersion;
use tracing::info;

use crate::deps::Deps;
use crate::domain::budget::Ledger;
use crate::domain::ownership::{NOT_OWNED, Owner};
use crate::domain::record::{RecordState, SecretRecord};
use crate::domain::tags::{
    retire_tag,
    stage::{AWSCURRENT, AWSPENDING},
};
use crate::error::VendError;
use crate::ops::budget;
use crate::ops::owned;
use crate::ops::retire::{self, Retired};

/// What a retirement needs of the secret besides its labels.
struct Context {
    /// The active current record, if any.
    current: Option<SecretRecord>,
    ledger: Option<Ledger>,
}

/// Retires the due superseded keys of one secret, never one a label still references.
pub(super) async fn retire_due(
    deps: &Deps,
    name: &str,
    arn: &str,
    hashes: &[String],
    retired: &mut Vec<String>,
    blocked: &mut Vec<(String, String)>,
) -> Result<(), VendError> {
    let current = deps.store.get(arn, AWSCURRENT).await?;
    let pending = deps.store.get(arn, AWSPENDING).await?;
    let hash_of =
        |v: &Option<SecretVersion>| v.as_ref().and_then(|v| SecretRecord::hash_in(&v.value));
    let protected: Vec<String> = [hash_of(&current), hash_of(&pending)]
        .into_iter()
        .flatten()
        .collect();
    let in_progress = match (&current, &pending) {
        (Some(c), Some(p)) => c.version_id != p.version_id,
        (None, Some(_)) => true,
        _ => false,
    };
    deps.openrouter().await?;
    // Only the secret's own keys: a retire tag is not the product's word (`owned`).
    let record = current
        .as_ref()
        .and_then(|v| SecretRecord::from_secret(&v.value))
        .and_then(Result::ok);
    let sorted = owned::sort_owned(deps, Owner::new(name, record.as_ref()), hashes).await?;
    for hash in sorted.foreign {
        blocked.push((hash, NOT_OWNED.into()));
    }
    let mut ctx = retiring_context(deps, arn, current.as_ref()).await?;
    let mut carried = false;
    for hash in &sorted.ours {
        if protected.contains(hash) {
            if in_progress {
                blocked.push((hash.clone(), "referenced by AWSPENDING".into()));
            } else {
                // A stale tag (the key is current again after a failed finish): drop it.
                blocked.push((hash.clone(), "referenced by AWSCURRENT".into()));
                deps.store.untag(arn, &[retire_tag(hash)]).await?;
            }
            continue;
        }
        if let Some(ledger) = ctx.ledger.as_mut() {
            budget::carry_retiring(deps, arn, ledger, hash).await?;
            carried = true;
        }
        match retire::retire_key(deps, name, hash).await? {
            Retired::StillListed => {
                blocked.push((hash.clone(), "still listed after delete".into()));
            }
            Retired::Gone { deleted } => {
                deps.store.untag(arn, &[retire_tag(hash)]).await?;
                if deleted {
                    info!(key_hash = %hash, "superseded key retired (disabled, deleted, confirmed 404)");
                    retired.push(hash.clone());
                }
            }
        }
    }
    if carried && !in_progress {
        return_unspent(deps, name, ctx).await?;
    }
    Ok(())
}

/// The current record, and with it the budget's ledger (one `DescribeSecret`).
async fn retiring_context(
    deps: &Deps,
    arn: &str,
    current: Option<&SecretVersion>,
) -> Result<Context, VendError> {
    let current = current
        .and_then(|v| SecretRecord::from_secret(&v.value))
        .and_then(Result::ok)
        .filter(|r| r.state == RecordState::Active);
    let Some(record) = &current else {
        return Ok(Context {
            current: None,
            ledger: None,
        });
    };
    let desc = deps.store.describe(arn).await?;
    let ledger = desc
        .as_ref()
        .map(|d| budget::ledger(deps, &d.tags, record.cap()));
    Ok(Context { current, ledger })
}

/// The current key gets what the retired keys left unspent, decided from the secret as it
/// is now (`budget::raise_current`): the record and `AWSPENDING` are read again after the
/// five OpenRouter calls of the retirement, so a rotation started or a cap lowered meanwhile
/// is never overwritten by a raise computed from the run's first read (issue 29: $12 spent
/// against a $10 cap, and a cap lowered to $4 raised back to 7).
async fn return_unspent(deps: &Deps, name: &str, ctx: Context) -> Result<(), VendError> {
    let Some(record) = ctx.current else {
        return Ok(());
    };
    let Some(hash) = record.key_hash.as_deref() else {
        return Ok(());
    };
    budget::raise_current(deps, name, hash).await?;
    Ok(())
}
