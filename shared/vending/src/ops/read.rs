//! Reads every operation shares: a secret's description (or "not found"), its current
//! record, and the OpenRouter keys carrying a name.

use orkv_openrouter::ErrorKind;
use orkv_store::{SecretDescription, SecretVersion, StoreError, StoreErrorKind};
use tracing::warn;

use crate::deps::Deps;
use crate::domain::record::{MANAGED_BY, RecordState, SecretRecord};
use crate::domain::tags::{self, stage::AWSCURRENT};
use crate::error::VendError;
use crate::ops::guardrail;

/// Under the functions' tag-scoped roles AWS answers AccessDenied, not "not found", for a
/// secret that is missing or not the product's: for a named secret, both mean "none of ours".
fn absent_if_denied<T>(read: Result<Option<T>, StoreError>) -> Result<Option<T>, StoreError> {
    match read {
        Err(e) if e.kind() == StoreErrorKind::AccessDenied => Ok(None),
        other => other,
    }
}

/// `DescribeSecret` of a secret that should be the product's; `None` when it is missing
/// or not readable as the product's.
pub(crate) async fn describe_ours(
    deps: &Deps,
    name: &str,
) -> Result<Option<SecretDescription>, VendError> {
    Ok(absent_if_denied(deps.store.describe(name).await)?)
}

/// `GetSecretValue` of `stage`, as [`describe_ours`] treats absence.
pub(crate) async fn get_ours(
    deps: &Deps,
    name: &str,
    stage: &str,
) -> Result<Option<SecretVersion>, VendError> {
    Ok(absent_if_denied(deps.store.get(name, stage).await)?)
}

/// `DescribeSecret`, with a missing secret as [`VendError::SecretNotFound`].
pub(crate) async fn describe_existing(
    deps: &Deps,
    name: &str,
) -> Result<SecretDescription, VendError> {
    describe_ours(deps, name)
        .await?
        .ok_or_else(|| VendError::SecretNotFound {
            secret_name: name.to_owned(),
        })
}

/// As [`describe_existing`], refusing a secret this product does not manage.
pub(crate) async fn describe_managed(
    deps: &Deps,
    name: &str,
) -> Result<SecretDescription, VendError> {
    let desc = describe_existing(deps, name).await?;
    if desc.tag(tags::MANAGED_BY) != Some(MANAGED_BY) {
        return Err(VendError::NotManaged {
            secret_name: name.to_owned(),
        });
    }
    Ok(desc)
}

/// The current version's id and record (must be an active record).
pub(crate) async fn current_record(
    deps: &Deps,
    name: &str,
) -> Result<(String, SecretRecord), VendError> {
    let v = get_ours(deps, name, AWSCURRENT)
        .await?
        .ok_or_else(|| VendError::SecretNotFound {
            secret_name: name.to_owned(),
        })?;
    let record = SecretRecord::read(name, &v.value)?;
    match record.state {
        RecordState::Active => Ok((v.version_id, record)),
        RecordState::Pending => Err(VendError::InProgress {
            secret_name: name.to_owned(),
        }),
        RecordState::Revoked => Err(VendError::Revoked {
            secret_name: name.to_owned(),
        }),
    }
}

/// The hashes of every key named `name` in `workspace_id` (disabled ones included).
pub(crate) async fn keys_named(
    deps: &Deps,
    workspace_id: &str,
    name: &str,
) -> Result<Vec<String>, VendError> {
    let mut found = Vec::new();
    deps.openrouter()
        .await?
        .for_each_key_page(Some(workspace_id), true, |page| {
            found.extend(page.into_iter().filter(|k| k.name == name).map(|k| k.hash));
            true
        })
        .await?;
    Ok(found)
}

/// Deletes every key named `name` in `workspace_id` (disabled ones included): the keys of
/// an unfinished attempt. Answers how many there were.
pub(crate) async fn delete_named(
    deps: &Deps,
    workspace_id: &str,
    name: &str,
) -> Result<usize, VendError> {
    let found = keys_named(deps, workspace_id, name).await?;
    let client = deps.openrouter().await?;
    for hash in &found {
        guardrail::release(deps, name, workspace_id, hash).await;
        match client.delete_key(hash).await {
            Ok(_) => warn!(key_hash = %hash, "deleted a key of an unfinished attempt"),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(found.len())
}
