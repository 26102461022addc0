//! Read-back of every claim: a reply says `created`, `updated`, `rotated` or `completed` only
//! after `AWSCURRENT` was read back holding an active record with the claimed key, and that
//! key answered `GET /key` (with the claimed cap, where the claim is about a cap).
//!
//! Two calls, named in the bench: `GetSecretValue(AWSCURRENT)` and `GET /key` with the key
//! just read. `PutSecretValue`'s own answer is not enough: another writer may move the label
//! before the reply is sent, and a key the store holds may not be one OpenRouter honours.

use orkv_openrouter::{ApiKey, ErrorKind};
use secrecy::ExposeSecret;
use tracing::{info, warn};

use crate::deps::Deps;
use crate::domain::budget::EPSILON;
use crate::domain::record::{RecordState, SecretRecord};
use crate::domain::tags::stage::AWSCURRENT;
use crate::error::VendError;
use crate::ops::read;

/// What the read-back found.
pub(crate) enum Confirmation {
    /// `AWSCURRENT` holds an active record with the claimed key, which answered `GET /key`.
    Held { record: Box<SecretRecord> },
    /// `AWSCURRENT` holds another key: a rotation moved it since (the caller goes round again
    /// or reports the claim as not confirmed).
    Moved,
}

/// What a claim says about the current version.
#[derive(Clone, Copy)]
pub(crate) struct Claim<'a> {
    /// The key hash `AWSCURRENT` must hold; `None`: whichever it holds.
    pub(crate) key_hash: Option<&'a str>,
    /// The cap `GET /key` must show the key within; `None`: not part of the claim.
    pub(crate) limit: Option<f64>,
}

/// Reads `AWSCURRENT` of `id` and calls `GET /key` with the key it holds.
///
/// # Errors
/// `SecretRevoked` when the secret was revoked meanwhile, `ClaimNotConfirmed` when the
/// current version is missing, pending, holds no key, or its key is refused by OpenRouter
/// or shows another cap; store and transient OpenRouter errors as they come (the request
/// can be repeated: every operation is idempotent).
pub(crate) async fn confirm_current(
    deps: &Deps,
    name: &str,
    id: &str,
    claim: Claim<'_>,
) -> Result<Confirmation, VendError> {
    let fail = |check: String| VendError::NotConfirmed {
        secret_name: name.to_owned(),
        check,
    };
    let v = read::get_ours(deps, id, AWSCURRENT)
        .await?
        .ok_or_else(|| fail("AWSCURRENT could not be read back".into()))?;
    let record = SecretRecord::read(name, &v.value)?;
    match record.state {
        RecordState::Active => {}
        RecordState::Revoked => {
            return Err(VendError::Revoked {
                secret_name: name.to_owned(),
            });
        }
        RecordState::Pending => return Err(fail("AWSCURRENT holds a pending record".into())),
    }
    if let Some(expected) = claim.key_hash
        && record.key_hash.as_deref() != Some(expected)
    {
        info!(expected = %expected, found = record.key_hash.as_deref().unwrap_or(""), "AWSCURRENT moved to another key since");
        return Ok(Confirmation::Moved);
    }
    let plaintext = record
        .api_key
        .as_ref()
        .ok_or_else(|| fail("the current record holds no key".into()))?;
    let key = ApiKey::new(plaintext.expose_secret().to_owned());
    let seen = match deps.openrouter().await?.current_key_with(&key).await {
        Ok(seen) => seen,
        Err(e) if spent_but_valid(e.kind()) => {
            // The key answers; its spend is refused (its cap is spent for this period, or
            // the account is out of credit): the claim about the key holds.
            warn!(
                event = e.kind().as_str(),
                error_type = e.kind().as_str(),
                "the current key's spend is refused: reported, the key itself holds"
            );
            return Ok(Confirmation::Held {
                record: Box::new(record),
            });
        }
        Err(e) if refuses_the_key(e.kind()) => {
            warn!(
                error_type = e.kind().as_str(),
                "the current key does not answer GET /key"
            );
            // A 403 to a key just made with the management key is rarely about the key: the
            // organisation's IP allowlist answers 403 to every call from an unlisted address
            // (OpenRouter's security settings; CONTRACT.md). Said so, with OpenRouter's text.
            let hint = if e.kind() == ErrorKind::Forbidden {
                format!(
                    ": {e}; if the organisation has an IP allowlist, it must list this function's egress addresses"
                )
            } else {
                String::new()
            };
            return Err(fail(format!(
                "the current key does not answer GET /key ({}){hint}",
                e.kind().as_str()
            )));
        }
        Err(e) => return Err(e.into()),
    };
    // A key's limit is its share of its logical key's cap (ADR 0010): set, never above.
    if let Some(cap) = claim.limit
        && seen.limit.is_none_or(|l| l > cap + EPSILON)
    {
        return Err(fail(format!(
            "GET /key shows limit {:?}, the claim is a cap of {cap}",
            seen.limit
        )));
    }
    Ok(Confirmation::Held {
        record: Box::new(record),
    })
}

/// An answer that says the key itself is refused, as opposed to a transient failure.
fn refuses_the_key(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::Unauthorized | ErrorKind::Forbidden | ErrorKind::NotFound
    )
}

/// A refusal of a key's spend, not of the key: over its own cap, a guardrail's or the
/// workspace's budget, or the account out of credit. The key is valid; it is reported as
/// such wherever a key is tested.
pub(crate) fn spent_but_valid(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::KeyLimitExceeded
            | ErrorKind::CreditsExhausted
            | ErrorKind::GuardrailBudgetExceeded
            | ErrorKind::WorkspaceBudgetExceeded
    )
}
