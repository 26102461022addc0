//! Minting and storing a key, shared by provisioning and rotation: the create request built
//! from a record, [`mint_key`] (the only place that sends `POST /keys`, and the guardrail
//! assignment that follows it), and [`keep_minted`] (the write of the new key with its
//! retries, read-back and clean-up).
//!
//! OpenRouter's `POST /keys` returns the plaintext once and has no idempotency key, so the
//! write that follows is the only copy: a transient failure is retried with the same token
//! (a no-op if an earlier write landed), then read back; a key whose fate is unknown is never
//! deleted (deleting a stored key would break its consumers); only a definite refusal deletes
//! it, because its plaintext is kept nowhere else.

use std::future::Future;
use std::time::Duration;

use orkv_openrouter::{CreateKeyRequest, CreatedKey, ErrorKind, format_expires_at};
use orkv_store::{SecretVersion, StoreError, Written};
use tracing::{info, warn};

use crate::deps::Deps;
use crate::domain::record::SecretRecord;
use crate::error::VendError;
use crate::ops::guardrail;

/// Writes of a new key after the first, on a transient failure.
const WRITE_RETRIES: u32 = 3;

/// The create request for the key a record describes, the first of its logical key (its limit
/// is the whole cap).
pub(crate) fn create_request(record: &SecretRecord) -> CreateKeyRequest {
    create_request_within(record, record.limit)
}

/// The create request for the key a record describes, with the limit `allowance`: what its
/// logical key's budget leaves it ([`crate::ops::budget`]).
pub(crate) fn create_request_within(record: &SecretRecord, allowance: f64) -> CreateKeyRequest {
    CreateKeyRequest {
        name: record.openrouter_key_name.clone(),
        limit: Some(allowance.min(record.limit)),
        limit_reset: record.limit_reset,
        include_byok_in_limit: Some(record.include_byok_in_limit),
        expires_at: Some(format_expires_at(record.expires_at)),
        workspace_id: Some(record.workspace_id.clone()),
    }
}

/// How `POST /keys`, and the guardrail assignment after it, ended.
pub(crate) enum Minted {
    /// The key exists and carries the guardrail it must carry.
    Ready(Box<CreatedKey>),
    /// The create's outcome is unknown: a key may exist under the request's name; it is
    /// never stored, and whoever owns that name deletes it.
    OutcomeUnknown(orkv_openrouter::Error),
    /// OpenRouter refused the create: no key exists.
    Refused(VendError),
    /// The key was minted but does not carry its guardrail: it was deleted (best effort: the
    /// sweep deletes what is left) and must never be stored.
    Unguarded(VendError),
}

/// The only place that sends `POST /keys`: mints the key `request` describes for secret
/// `secret_name`, then assigns it `guardrail` before anyone can store it.
///
/// # Errors
/// When the OpenRouter client cannot be built (nothing was sent).
pub(crate) async fn mint_key(
    deps: &Deps,
    secret_name: &str,
    request: &CreateKeyRequest,
    guardrail: Option<&str>,
) -> Result<Minted, VendError> {
    let client = deps.openrouter().await?;
    let created = match client.create_key_once(request).await {
        Ok(created) => created,
        Err(e) if e.kind() == ErrorKind::CreateOutcomeUnknown => {
            return Ok(Minted::OutcomeUnknown(e));
        }
        Err(e) => return Ok(Minted::Refused(e.into())),
    };
    if let Some(guardrail) = guardrail
        && let Err(e) =
            guardrail::assign_new_key(deps, secret_name, &created.data.hash, guardrail).await
    {
        return Ok(Minted::Unguarded(e));
    }
    Ok(Minted::Ready(Box::new(created)))
}

/// How the write of a freshly minted key ended.
pub(crate) enum Kept {
    /// The write succeeded.
    Stored(Written),
    /// Every write failed transiently; what the read-back under the token found (this key,
    /// another attempt's, nothing, or an unknown when the read failed too). Nothing deleted.
    Unknown {
        error: StoreError,
        found: Result<Option<SecretVersion>, StoreError>,
    },
    /// A definite refusal: the key was deleted (best effort: the sweep deletes what is left).
    Refused(StoreError),
}

/// Writes the new key `minted` holds with `write` (same token every time), retrying transient
/// failures, then reading back with `read_back`.
pub(crate) async fn keep_minted<W, WF, R, RF>(
    deps: &Deps,
    minted: &SecretRecord,
    mut write: W,
    read_back: R,
) -> Kept
where
    W: FnMut() -> WF,
    WF: Future<Output = Result<Written, StoreError>>,
    R: FnOnce() -> RF,
    RF: Future<Output = Result<Option<SecretVersion>, StoreError>>,
{
    let hash = minted.key_hash.as_deref().unwrap_or_default();
    let mut attempt = 0;
    let error = loop {
        match write().await {
            Ok(written) => return Kept::Stored(written),
            Err(e) if e.is_transient() && attempt < WRITE_RETRIES => {
                attempt += 1;
                warn!(key_hash = %hash, error = %e, attempt, "storing the new key failed: trying again");
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            }
            Err(e) if e.is_transient() => break e,
            Err(e) => {
                delete_unstored(deps, minted, hash).await;
                return Kept::Refused(e);
            }
        }
    };
    // An earlier write may have landed with its reply lost.
    let found = read_back().await;
    if !matches!(&found, Ok(Some(v)) if SecretRecord::hash_in(&v.value).as_deref() == Some(hash)) {
        // Not stored, or unknown: a timed-out write may still land. A retry, the
        // take-over of the record, `finishSecret` or the sweep deletes it if it never does.
        warn!(key_hash = %hash, error = %error, "could not store the new key, nor find it stored");
    }
    Kept::Unknown { error, found }
}

/// Deletes a key this attempt minted and could not store (best effort).
async fn delete_unstored(deps: &Deps, minted: &SecretRecord, hash: &str) {
    guardrail::release(
        deps,
        &minted.openrouter_key_name,
        &minted.workspace_id,
        hash,
    )
    .await;
    let result = match deps.openrouter().await {
        Ok(client) => client
            .delete_key(hash)
            .await
            .map(|_| ())
            .map_err(VendError::from),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => info!(key_hash = %hash, "deleted the new key this attempt could not store"),
        Err(e) => {
            warn!(key_hash = %hash, error = %e, "could not delete the unstored key; the next retry or the sweep will");
        }
    }
}
