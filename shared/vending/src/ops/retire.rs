//! Retiring one key, shared by revoke and the sweep: disable it (so it stops working at once
//! even if the delete is slow to apply), delete it, and confirm by reading it back (404).

use orkv_openrouter::{ErrorKind, KeyPatch};
use tracing::warn;

use crate::deps::Deps;
use crate::domain::ownership::Owner;
use crate::error::VendError;
use crate::ops::{guardrail, owned};

/// How a retirement ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retired {
    /// Gone (404 on read-back). `deleted`: this call deleted it (else it was already gone).
    Gone { deleted: bool },
    /// OpenRouter still lists the key after the delete.
    StillListed,
}

/// Disables every key in `hashes` that is `owner`'s own at once (a suspected leak): each
/// stops working now and is deleted by the sweep when its retirement is due. A key already
/// gone is skipped, and so is one that is not the secret's (one `GET` each first).
/// Answers the keys it disabled, each read back as disabled from the PATCH reply.
pub(crate) async fn disable_now(
    deps: &Deps,
    owner: Owner<'_>,
    hashes: &[String],
) -> Result<Vec<String>, VendError> {
    let secret_name = owner.secret();
    let ours = owned::sort_owned(deps, owner, hashes).await?.ours;
    let client = deps.openrouter().await?;
    let disable = KeyPatch {
        disabled: Some(true),
        ..KeyPatch::default()
    };
    let mut disabled = Vec::new();
    for hash in &ours {
        match client.update_key(hash, &disable).await {
            Ok(k) if k.disabled => {
                warn!(key_hash = %hash, "suspected leaked key disabled");
                disabled.push(hash.clone());
            }
            Ok(_) => {
                warn!(key_hash = %hash, "key still enabled after disabling");
                return Err(VendError::InProgress {
                    secret_name: secret_name.to_owned(),
                });
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(disabled)
}

/// Disables the key `hash` of secret `secret_name`, removes its guardrail assignment
/// ([`guardrail::release_for`]), deletes it and reads it back. Safe to repeat.
pub(crate) async fn retire_key(
    deps: &Deps,
    secret_name: &str,
    hash: &str,
) -> Result<Retired, VendError> {
    let client = deps.openrouter().await?;
    let disable = KeyPatch {
        disabled: Some(true),
        ..KeyPatch::default()
    };
    match client.update_key(hash, &disable).await {
        Ok(key) => guardrail::release_for(deps, secret_name, &key.workspace_id, hash).await,
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    let deleted = client.delete_key(hash).await?;
    match client.get_key(hash).await {
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Retired::Gone { deleted }),
        Ok(_) => Ok(Retired::StillListed),
        Err(e) => Err(e.into()),
    }
}
