//! The keys a tag list names, sorted into this secret's own and the rest before anything
//! acts on them ([`crate::domain::ownership`]): one `GET /keys/{hash}` each.

use orkv_openrouter::ErrorKind;
use tracing::warn;

use crate::deps::Deps;
use crate::domain::ownership::{NOT_OWNED, Owner};
use crate::error::VendError;

/// `hashes` sorted: the secret's own (a key already gone counts as its own: nothing is
/// left to act on) and the rest, which nothing may disable, delete or re-cap.
#[derive(Debug, Default)]
pub(crate) struct Sorted {
    pub ours: Vec<String>,
    pub foreign: Vec<String>,
}

/// Reads each key in `hashes` and keeps `owner`'s own.
pub(crate) async fn sort_owned(
    deps: &Deps,
    owner: Owner<'_>,
    hashes: &[String],
) -> Result<Sorted, VendError> {
    let mut sorted = Sorted::default();
    if hashes.is_empty() {
        return Ok(sorted);
    }
    let client = deps.openrouter().await?;
    for hash in hashes {
        match client.get_key(hash).await {
            Ok(key) if owner.owns(&key) => sorted.ours.push(hash.clone()),
            Ok(_) => {
                warn!(secret = %owner.secret(), key_hash = %hash, "{NOT_OWNED}: left alone");
                sorted.foreign.push(hash.clone());
            }
            Err(e) if e.kind() == ErrorKind::NotFound => sorted.ours.push(hash.clone()),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(sorted)
}
