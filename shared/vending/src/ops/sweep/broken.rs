//! Current keys that no longer work: a secret's current key deleted, disabled or expired
//! behind the product's back, so its consumers hold a key that fails. Found from the key
//! listing the scan already makes (no per-key call for a healthy key), confirmed by reading the
//! secret's current record (and, for a key the listing did not show, `GET /keys/{hash}`),
//! reported (`CurrentKeyBroken`, the `CurrentKeysBroken` metric) and, with `ORKV_DRIFT=repair`
//! (the default), replaced at once by a rotation, whatever the key's `orkv:rotate-at` says.
//! A key with a fixed `expires_at` that has passed is only reported: a rotation cannot extend it.

use std::time::Instant;

use orkv_openrouter::ErrorKind;
use time::OffsetDateTime;
use tracing::warn;

use crate::deps::{Deps, RotationStart};
use crate::domain::record::{RecordState, SecretRecord};
use crate::domain::tags::stage::{AWSCURRENT, AWSPENDING};
use crate::error::VendError;

use super::report::{SweepAction, SweepReport};
use super::{DEADLINE_MARGIN, h64};
use crate::ops::read;
use crate::ops::start;

/// A secret whose current key may not work.
pub(super) struct Suspect {
    pub secret: String,
    /// Hash of the current key's name, as the secret's tags give it.
    pub name_h: u64,
    /// What the listing showed: (the key's hash, why it fails); `None`: not listed at all.
    pub listed: Option<(String, &'static str)>,
}

/// Confirms each suspect and repairs or reports it; one that cannot be checked never
/// stops the others (the next run repeats it).
pub(super) async fn check_suspects(
    deps: &Deps,
    suspects: Vec<Suspect>,
    now: OffsetDateTime,
    dry_run: bool,
    deadline: Instant,
    report: &mut SweepReport,
) {
    for s in suspects {
        if Instant::now() + DEADLINE_MARGIN >= deadline {
            return;
        }
        let secret = s.secret.clone();
        if let Err(e) = check_suspect(deps, s, now, dry_run, report).await {
            warn!(secret = %secret, error_type = e.kind(), error = %e, "could not check a current key; the next run repeats it");
        }
    }
}

async fn check_suspect(
    deps: &Deps,
    s: Suspect,
    now: OffsetDateTime,
    dry_run: bool,
    report: &mut SweepReport,
) -> Result<(), VendError> {
    let Some((record, why)) = confirm(deps, &s, now).await? else {
        return Ok(());
    };
    let hash = record.key_hash.clone().unwrap_or_default();
    report.current_keys_broken += 1;
    warn!(event = "CurrentKeyBroken", secret = %s.secret, key_hash = %hash, why, "the current key does not work");
    report.note(SweepAction::CurrentKeyBroken, &s.secret, why.to_owned());
    if dry_run || !deps.cfg.repair_drift || (why == "expired" && record.lifetime.is_fixed()) {
        return Ok(());
    }
    let Some(desc) = read::describe_ours(deps, &s.secret).await? else {
        return Ok(());
    };
    if desc
        .version_with(AWSPENDING)
        .is_some_and(|p| !desc.has(p, AWSCURRENT))
    {
        // A rotation is already replacing it.
        return Ok(());
    }
    let token = start::live_token(deps, &desc, record.generation).await?;
    match start::start_rotation(deps, &s.secret, &token).await? {
        RotationStart::InProgress => {}
        start => {
            report.current_keys_repaired += 1;
            warn!(event = "CurrentKeyRepaired", secret = %s.secret, start = ?start, "a rotation replaces the broken current key");
            report.note(
                SweepAction::CurrentKeyRepaired,
                &s.secret,
                format!("{start:?}"),
            );
        }
    }
    Ok(())
}

/// The current record and why its key fails, when it does: the record is active, its key
/// is the one the tags named, and the key is gone, disabled or expired.
async fn confirm(
    deps: &Deps,
    s: &Suspect,
    now: OffsetDateTime,
) -> Result<Option<(SecretRecord, &'static str)>, VendError> {
    let Some(version) = read::get_ours(deps, &s.secret, AWSCURRENT).await? else {
        return Ok(None);
    };
    // A pending record's key may not be minted yet; a revoked one has none.
    let Some(Ok(record)) = SecretRecord::from_secret(&version.value) else {
        return Ok(None);
    };
    if record.state != RecordState::Active || h64(&record.openrouter_key_name) != s.name_h {
        return Ok(None);
    }
    let Some(hash) = record.key_hash.as_deref() else {
        return Ok(None);
    };
    if let Some((listed, why)) = &s.listed {
        return Ok((listed == hash).then_some((record, *why)));
    }
    let why = match deps.openrouter().await?.get_key(hash).await {
        Ok(k) if k.disabled => "disabled",
        Ok(k) if k.expires_at.is_some_and(|e| e <= now) => "expired",
        // Listed meanwhile (the listing lagged): it works.
        Ok(_) => return Ok(None),
        Err(e) if e.kind() == ErrorKind::NotFound => "deleted",
        Err(e) => return Err(e.into()),
    };
    Ok(Some((record, why)))
}
