//! Guardrails (issue 15, item 2; ADR 0011): the policy may name, per tenant and workspace, a guardrail
//! every key must carry. Each entry's guardrail is checked once per container before the first
//! key of that entry (it must exist and live in the entry's workspace: a configuration error naming the field
//! otherwise, before any side effect). A new key is assigned before it is stored as usable, an
//! assignment whose outcome is unknown is read back, and a key OpenRouter refuses to assign is
//! deleted, never stored. `testSecret` verifies the successor carries it; every key deleted
//! loses its assignment first ([`release`]); the sweep reports (and, with `ORKV_DRIFT=repair`, repairs) current
//! keys without it.

use orkv_openrouter::{ErrorKind, Guardrail};
use tracing::{info, warn};

use crate::deps::Deps;
use crate::domain::names::KeyName;
use crate::error::VendError;

/// Whether guardrail `g` can be assigned to the keys of workspace `workspace_id` (the
/// policy's `entry`), whose default guardrail is `default`, as OpenRouter decides it
/// (CONTRACT.md, "Assigning"): a guardrail of another workspace is refused; a workspace's
/// default guardrail cannot be assigned (it already applies to every key without one); a
/// legacy guardrail, predating workspaces, accepts keys of any workspace.
fn guardrail_fits(
    g: &Guardrail,
    entry: &str,
    workspace_id: &str,
    default: Option<&str>,
) -> Result<(), String> {
    if default == Some(g.id.as_str()) {
        return Err(format!(
            "guardrail {} is workspace {entry:?}'s default guardrail, which OpenRouter applies to every key without an assignment and refuses to assign; leave guardrail_id out to rely on it",
            g.id
        ));
    }
    match g.workspace_id.as_deref() {
        None => Ok(()),
        Some(w) if w == workspace_id => Ok(()),
        Some(w) => Err(format!(
            "guardrail {} is in workspace {w}, not {entry:?}; a key can only carry a guardrail of its own workspace",
            g.id
        )),
    }
}

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
    let default = deps
        .workspaces()
        .await?
        .iter()
        .find(|w| w.id == workspace_id)
        .and_then(|w| w.default_guardrail_id.clone());
    if let Err(why) = guardrail_fits(&g, entry, workspace_id, default.as_deref()) {
        return Err(VendError::Config(format!("ORKV_POLICY: {field}: {why}")));
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
        // A count OpenRouter was not expected to answer (it skips hashes it cannot see): the
        // assignment is read back before the key is given up.
        Ok(n) => match client.guardrail_key_hashes(guardrail).await {
            Ok(set) if set.contains(hash) => Ok(()),
            Ok(_) => Err(refused(format!(
                "OpenRouter assigned {n} keys, not 1, and the read-back does not show the key"
            ))),
            Err(read) => Err(read.into()),
        },
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
    if let Some(secret) = KeyName::parse(key_name).map(|k| k.secret().to_owned()) {
        release_for(deps, &secret, workspace_id, hash).await;
    }
}

/// As [`release`], for a key of secret `secret_name` whatever its name (an adopted key keeps
/// its own).
pub(crate) async fn release_for(deps: &Deps, secret_name: &str, workspace_id: &str, hash: &str) {
    match guardrail_for(deps, secret_name, workspace_id).await {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn g(id: &str, workspace: Option<&str>) -> Guardrail {
        serde_json::from_value(
            serde_json::json!({"id": id, "name": "g", "workspace_id": workspace}),
        )
        .expect("guardrail")
    }

    #[test]
    fn a_guardrail_fits_its_own_workspace_and_a_legacy_one_fits_any() {
        assert!(guardrail_fits(&g("a", Some("w1")), "checkout", "w1", Some("d")).is_ok());
        assert!(guardrail_fits(&g("a", None), "checkout", "w1", Some("d")).is_ok());
        let other = guardrail_fits(&g("a", Some("w2")), "checkout", "w1", None).expect_err("no");
        assert!(other.contains("is in workspace w2"), "{other}");
    }

    #[test]
    fn a_workspaces_default_guardrail_is_refused_by_name() {
        let why = guardrail_fits(&g("d", Some("w1")), "checkout", "w1", Some("d")).expect_err("no");
        assert!(why.contains("default guardrail"), "{why}");
    }
}
