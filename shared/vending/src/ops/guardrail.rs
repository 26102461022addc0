//! Guardrails (issue 15, item 2; ADR 0011): the policy may name, per tenant and workspace, a guardrail
//! every key must carry. Each entry's guardrail is checked once per container before the first
//! key of that entry (it must exist and live in the entry's workspace: a configuration error naming the field
//! otherwise, before any side effect). A new key is assigned before it is stored as usable, an
//! assignment whose outcome is unknown is read back, and a key OpenRouter refuses to assign is
//! deleted, never stored. `testSecret` verifies the successor carries it; every key deleted
//! loses its assignment first ([`release`]); the sweep reports (and, with `ORKV_DRIFT=repair`, repairs) current
//! keys without it.

use orkv_openrouter::ErrorKind;
use tracing::{info, warn};

use crate::deps::Deps;
use crate::domain::names::KeyName;
use crate::error::VendError;

/// Checks the guardrail `id` an entry of `tenant` for workspace `w` (resolved to
/// `workspace_id`) names, once per container.
///
/// # Errors
/// [`VendError::Config`] naming `tenants.<t>.workspaces[i].guardrail_id` for a guardrail
/// that does not exist or lives in another workspace.
async fn check_guardrail_entry(
    deps: &Deps,
    field: &str,
    id: &str,
    entry: &str,
    workspace_id: &str,
) -> Result<(), VendError> {
    if deps.checked_guardrails.lock().is_ok_and(|c| c.contains(id)) {
        return Ok(());
    }
    let g = match deps.openrouter().await?.get_guardrail(id).await {
        Ok(g) => g,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(VendError::Config(format!(
                "ORKV_POLICY: {field}: no guardrail {id} exists"
            )));
        }
        Err(e) => return Err(e.into()),
    };
    if g.workspace_id.as_deref() != Some(workspace_id) {
        return Err(VendError::Config(format!(
            "ORKV_POLICY: {field}: guardrail {id} is in workspace {}, not {entry:?}; a key can only carry a guardrail of its own workspace",
            g.workspace_id.as_deref().unwrap_or("(none)"),
        )));
    }
    if let Ok(mut c) = deps.checked_guardrails.lock() {
        c.insert(id.to_owned());
    }
    Ok(())
}

/// The guardrail a key of secret `secret_name` in workspace `workspace_id` must carry
/// (its owner's entry for that workspace), once the policy's guardrails are checked.
///
/// # Errors
/// As [`check_policy_guardrails`].
pub(crate) async fn guardrail_for(
    deps: &Deps,
    secret_name: &str,
    workspace_id: &str,
) -> Result<Option<String>, VendError> {
    let Some(tenant) = deps.cfg.policy.owner_of_name(secret_name) else {
        return Ok(None);
    };
    if tenant.workspaces.iter().all(|w| w.guardrail_id.is_none()) {
        return Ok(None);
    }
    let resolved = deps.policy_workspaces().await?;
    let found = tenant.workspaces.iter().enumerate().find(|(_, w)| {
        resolved.get(&w.workspace).cloned().flatten().as_deref() == Some(workspace_id)
    });
    let Some((i, w)) = found else {
        return Ok(None);
    };
    let Some(id) = &w.guardrail_id else {
        return Ok(None);
    };
    let field = match &tenant.name {
        Some(n) => format!("tenants.{n}.workspaces[{i}].guardrail_id"),
        None => format!("workspaces[{i}].guardrail_id"),
    };
    check_guardrail_entry(deps, &field, id, &w.workspace, workspace_id).await?;
    Ok(Some(id.clone()))
}

/// Assigns guardrail `guardrail` to the new key `hash` ([`assign`]). A key that does
/// not end up carrying it is deleted, because it must never be stored as usable.
///
/// # Errors
/// As [`assign`].
pub(crate) async fn assign_new_key(
    deps: &Deps,
    secret_name: &str,
    hash: &str,
    guardrail: &str,
) -> Result<(), VendError> {
    match assign(deps, secret_name, hash, guardrail).await {
        Ok(()) => {
            info!(key_hash = %hash, guardrail_id = %guardrail, "guardrail assigned to the new key");
            Ok(())
        }
        Err(e) => {
            warn!(key_hash = %hash, guardrail_id = %guardrail, error = %e, "the new key does not carry its guardrail: deleted, never stored");
            // An assignment whose outcome was unknown may have landed.
            unassign(deps, hash, guardrail).await;
            let deleted = match deps.openrouter().await {
                Ok(c) => c.delete_key(hash).await.map_err(VendError::from),
                Err(e) => Err(e),
            };
            if let Err(d) = deleted {
                warn!(key_hash = %hash, error = %d, "could not delete it; the sweep deletes it as an orphan");
            }
            Err(e)
        }
    }
}

/// Assigns guardrail `guardrail` to key `hash` (one call; a transient failure is retried
/// by the client, and an outcome still unknown is read back from the guardrail's
/// assignments, never assumed).
///
/// # Errors
/// [`VendError::GuardrailNotAssigned`] when OpenRouter refused or the read-back does not
/// show the key; transient errors when nothing could be learned.
pub(crate) async fn assign(
    deps: &Deps,
    secret_name: &str,
    hash: &str,
    guardrail: &str,
) -> Result<(), VendError> {
    let client = deps.openrouter().await?;
    let refused = |why: String| VendError::GuardrailNotAssigned {
        secret_name: secret_name.to_owned(),
        guardrail_id: guardrail.to_owned(),
        why,
    };
    match client.assign_keys(guardrail, &[hash]).await {
        Ok(1) => Ok(()),
        Ok(n) => Err(refused(format!("OpenRouter assigned {n} keys, not 1"))),
        Err(e) if e.is_transient() => match client.guardrail_key_hashes(guardrail).await {
            Ok(set) if set.contains(hash) => Ok(()),
            Ok(_) => Err(refused("the read-back does not show the key".into())),
            Err(read) => Err(read.into()),
        },
        Err(e) => Err(refused(format!(
            "OpenRouter refused ({})",
            e.kind().as_str()
        ))),
    }
}

/// Whether key `hash` carries guardrail `guardrail` (its assignments listed: one call per
/// hundred keys assigned).
pub(crate) async fn carries(deps: &Deps, hash: &str, guardrail: &str) -> Result<bool, VendError> {
    Ok(deps
        .openrouter()
        .await?
        .guardrail_key_hashes(guardrail)
        .await?
        .contains(hash))
}

/// Before key `hash` (named `key_name`, in `workspace_id`) is deleted: removes its
/// assignment to the guardrail its owner's policy names for that workspace, if any (one
/// `POST /guardrails/{id}/assignments/keys/remove`; none without a guardrail). OpenRouter
/// keeps the assignment row of a deleted key (CONTRACT.md, "Guardrail assignment listings page
/// past deleted keys"), so every delete of a guarded key goes through here. Best effort: a
/// row left behind is skipped by the listing ([`orkv_openrouter::Client::guardrail_key_hashes`]).
pub(crate) async fn release(deps: &Deps, key_name: &str, workspace_id: &str, hash: &str) {
    let Some(secret) = KeyName::parse(key_name).map(|k| k.secret().to_owned()) else {
        return;
    };
    match guardrail_for(deps, &secret, workspace_id).await {
        Ok(Some(g)) => unassign(deps, hash, &g).await,
        Ok(None) => {}
        Err(e) => {
            warn!(key_hash = %hash, error = %e, "could not tell which guardrail the key carries; deleting it without removing the assignment");
        }
    }
}

/// Removes key `hash`'s assignment to `guardrail` (best effort: logged when it fails).
pub(crate) async fn unassign(deps: &Deps, hash: &str, guardrail: &str) {
    let result = match deps.openrouter().await {
        Ok(c) => c
            .unassign_keys(guardrail, &[hash])
            .await
            .map_err(VendError::from),
        Err(e) => Err(e),
    };
    if let Err(e) = result
        && !matches!(&e, VendError::OpenRouter(o) if o.kind() == ErrorKind::NotFound)
    {
        warn!(key_hash = %hash, guardrail_id = %guardrail, error = %e, "could not remove the key's guardrail assignment");
    }
}
