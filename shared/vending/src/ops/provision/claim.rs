//! Pending records: the claim a provision writes before it mints, the take-over of a claim
//! whose invocation died, and the mint that turns a claim into an active record.

use secrecy::SecretString;
use tracing::{info, warn};

use crate::deps::Deps;
use crate::domain::names::{KeyName, claim_nonce, token};
use crate::domain::record::{RecordState, RecordTerms, SecretRecord};
use crate::domain::tags::{self, stage};
use crate::error::VendError;
use crate::ops::confirm::{self, Claim, Confirmation};
use crate::ops::mint::{self, Kept, Minted, create_request};
use crate::ops::retire::{self, Retired};
use orkv_store::{SecretVersion, StoreErrorKind, Written};

use super::{Desired, ProvisionReply, Status, reply};
use crate::ops::read;

/// A pending record this invocation owns (it wrote it).
pub(super) struct Owned {
    pub(super) record: SecretRecord,
    pub(super) version_id: String,
    pub(super) arn: String,
}

/// How a mint attempt ended when it did not fail.
pub(super) enum MintOutcome {
    Done(ProvisionReply),
    /// The create was ambiguous, the attempt was cleaned up and released: go round again.
    Again(orkv_openrouter::Error),
}

/// A fresh pending record for generation `generation` of the desired secret, leased to
/// this invocation, naming the key it is about to mint.
pub(super) fn pending_record(deps: &Deps, d: &Desired, generation: u64) -> SecretRecord {
    let created = deps.clock.now();
    let claim = claim_nonce();
    let terms = RecordTerms {
        key_name: d.key_name.clone(),
        openrouter_key_name: KeyName::attempt(&d.secret_name, &claim),
        workspace_id: d.workspace.id.clone(),
        workspace_slug: d.workspace.slug.clone(),
        cap: d.cap,
        lifetime: d.lifetime,
        expires_at: d.lifetime.expiry_from(created),
        rotate_before_seconds: d.rotate_before_seconds,
        created_at: created,
        generation,
        tenant: d.tenant.clone(),
        request_id: d.request_id.clone(),
    };
    SecretRecord {
        lease_until: Some(
            created
                + time::Duration::try_from(deps.cfg.pending_lease)
                    .unwrap_or(time::Duration::MINUTE),
        ),
        claim: Some(claim),
        ..SecretRecord::new(RecordState::Pending, terms)
    }
}

/// A pending record whose lease has ended: its minting invocation died. Deletes whatever
/// key that attempt may have minted, then claims the record with a compare-and-set on the
/// version token. `None`: another invocation claimed it first; go round again.
pub(super) async fn take_over(
    deps: &Deps,
    d: &Desired,
    version: SecretVersion,
    stale: SecretRecord,
) -> Result<Option<MintOutcome>, VendError> {
    warn!(openrouter_key_name = %stale.openrouter_key_name, "pending record's lease ended: cleaning up its attempt");
    read::delete_named(deps, &stale.workspace_id, &stale.openrouter_key_name).await?;
    let record = pending_record(deps, d, stale.generation);
    // A revoke holds this token first when it fenced the stale record (see
    // [`crate::ops::actions`]): the write then fails as a conflict, as a concurrent
    // take-over's does.
    let put = deps
        .store
        .put(
            &d.secret_name,
            &record.to_secret(),
            &token(&version.version_id, "claim"),
            &[stage::AWSCURRENT],
        )
        .await;
    let written = match put {
        Ok(w) => w,
        Err(e) if e.kind() == StoreErrorKind::VersionConflict => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    deps.store
        .tag(&d.secret_name, &tags::record_tags(&record))
        .await?;
    let owned = Owned {
        record,
        version_id: written.version_id,
        arn: version.arn,
    };
    Ok(Some(mint(deps, d, owned).await?))
}

/// Mints the key a pending record names and stores it at once.
pub(super) async fn mint(deps: &Deps, d: &Desired, owned: Owned) -> Result<MintOutcome, VendError> {
    let pending = owned.record;
    let request = create_request(&pending);
    let minted = mint::mint_key(deps, &d.secret_name, &request, d.guardrail.as_deref()).await?;
    let created = match minted {
        Minted::Ready(created) => created,
        Minted::OutcomeUnknown(e) => {
            warn!(error = %e, "key creation outcome unknown: reconciling");
            release(deps, d, &owned.version_id, &pending).await?;
            return Ok(MintOutcome::Again(e));
        }
        Minted::Refused(e) => {
            // A definite refusal: no key exists. A first-generation secret only ever held
            // this pending record, so it goes too and the failed request leaves nothing.
            if pending.generation == 1 {
                deps.store.delete(&d.secret_name, true).await?;
                deps.remember(&d.secret_name, false);
            }
            return Err(e);
        }
        Minted::Unguarded(e) => {
            // The key was deleted: it never becomes usable. As for a refused create, a
            // first-generation secret only ever held this pending record, so it goes too.
            if pending.generation == 1 {
                deps.store.delete(&d.secret_name, true).await?;
                deps.remember(&d.secret_name, false);
            } else {
                release(deps, d, &owned.version_id, &pending).await?;
            }
            return Err(e);
        }
    };
    let hash = created.data.hash.clone();
    let mut active = pending;
    active.state = RecordState::Active;
    active.api_key = Some(SecretString::from(created.key.expose_secret().to_owned()));
    active.key_hash = Some(hash.clone());
    active.lease_until = None;
    active.claim = None;
    if let Some(at) = created.data.expires_at {
        active.expires_at = at;
    }
    let written = match store_active(deps, &d.secret_name, &owned.version_id, &active).await? {
        Stored::Current(written) => written,
        Stored::Fenced => return discard_fenced(deps, d, &hash).await,
    };
    info!(key_hash = %hash, generation = active.generation, "key minted and stored");
    let arn = if written.arn.is_empty() {
        owned.arn
    } else {
        written.arn
    };
    let claim = Claim {
        key_hash: Some(&hash),
        limit: Some(active.limit),
    };
    if let Confirmation::Moved = confirm::confirm_current(deps, &d.secret_name, &arn, claim).await?
    {
        return Err(VendError::NotConfirmed {
            secret_name: d.secret_name.clone(),
            check: "AWSCURRENT holds another key than the one just stored".into(),
        });
    }
    Ok(MintOutcome::Done(reply(Status::Created, arn, d, &active)))
}

/// A revoke took the claim's active-record token while this attempt minted: the new
/// key can never be stored, so it is retired at once and the revoke is answered as such.
async fn discard_fenced(deps: &Deps, d: &Desired, hash: &str) -> Result<MintOutcome, VendError> {
    warn!(key_hash = %hash, "the secret was revoked while minting: deleting the new key");
    if retire::retire_key(deps, &d.secret_name, hash).await? == Retired::StillListed {
        warn!(key_hash = %hash, "key still listed after delete; the sweep deletes it");
    }
    Err(VendError::Revoked {
        secret_name: d.secret_name.clone(),
    })
}

/// Deletes whatever an ambiguous create minted and releases the claim, so the next round
/// (or a retry) can mint at once.
async fn release(
    deps: &Deps,
    d: &Desired,
    version_id: &str,
    pending: &SecretRecord,
) -> Result<(), VendError> {
    read::delete_named(deps, &pending.workspace_id, &pending.openrouter_key_name).await?;
    let mut released = pending.clone();
    released.lease_until = Some(deps.clock.now() - time::Duration::SECOND);
    // A conflict: a revoke fenced the claim; the next round observes it.
    match deps
        .store
        .put(
            &d.secret_name,
            &released.to_secret(),
            &token(version_id, "release"),
            &[stage::AWSCURRENT],
        )
        .await
    {
        Ok(_) => {}
        Err(e) if e.kind() == StoreErrorKind::VersionConflict => {}
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

/// Writes the active record over the claim (see [`crate::ops::mint`]) under the token
/// `token(claim, "active")`. A revoke fences a claim by writing its revoked record under
/// that same token first ([`crate::ops::actions`]): the write then fails as a version
/// conflict (`PutSecretValue` never changes a version's value), so a mint never overwrites
/// a revoke at no extra call. A key whose fate is unknown is not deleted here: the lease
/// ends after the function's timeout, and the invocation that takes the record over
/// deletes it (it carries the claim's name) unless it was stored.
async fn store_active(
    deps: &Deps,
    name: &str,
    claim_version: &str,
    active: &SecretRecord,
) -> Result<Stored, VendError> {
    let value = active.to_secret();
    let put_token = token(claim_version, "active");
    let hash = active.key_hash.clone().unwrap_or_default();
    let kept = mint::keep_minted(
        deps,
        active,
        || {
            deps.store
                .put(name, &value, &put_token, &[stage::AWSCURRENT])
        },
        || deps.store.get_version(name, Some(&put_token), None),
    )
    .await;
    match kept {
        Kept::Stored(written) => Ok(Stored::Current(written)),
        Kept::Unknown {
            found: Ok(Some(v)), ..
        } if SecretRecord::hash_in(&v.value).as_deref() == Some(hash.as_str()) => {
            Ok(Stored::Current(Written {
                arn: v.arn,
                name: name.to_owned(),
                version_id: v.version_id,
            }))
        }
        // Another value holds the token: this write can never land.
        Kept::Unknown {
            found: Ok(Some(_)), ..
        } => Ok(Stored::Fenced),
        Kept::Refused(e) if e.kind() == StoreErrorKind::VersionConflict => Ok(Stored::Fenced),
        Kept::Unknown { error, .. } | Kept::Refused(error) => Err(error.into()),
    }
}

/// Where the active record went.
enum Stored {
    /// Written and current.
    Current(Written),
    /// A revoke holds the token: nothing written.
    Fenced,
}
