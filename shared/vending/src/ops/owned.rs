//! The keys a tag list names, sorted into this secret's own and the rest before anything
//! acts on them ([`crate::domain::ownership`]): one `GET /keys/{hash}` each, and for the
//! key a record says the secret adopted, whether another managed secret holds it
//! ([`held_elsewhere`]).

use orkv_openrouter::{ErrorKind, Key};
use tracing::warn;

use crate::deps::Deps;
use crate::domain::ownership::{Claim, NOT_OWNED, Owner};
use crate::domain::record::{MANAGED_BY, SecretRecord};
use crate::domain::tags::{self, stage};
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
        let ours = match client.get_key(hash).await {
            Ok(key) => match owner.claim(&key) {
                Claim::Named => true,
                Claim::Adopted => !held_elsewhere(deps, owner.secret(), &key).await?,
                Claim::None => false,
            },
            Err(e) if e.kind() == ErrorKind::NotFound => true,
            Err(e) => return Err(e.into()),
        };
        if ours {
            sorted.ours.push(hash.clone());
        } else {
            warn!(secret = %owner.secret(), key_hash = %hash, "{NOT_OWNED}: left alone");
            sorted.foreign.push(hash.clone());
        }
    }
    Ok(sorted)
}

/// The longest prefix of `value` a `ListSecrets` filter accepts: filter values match
/// `^\!?[a-zA-Z0-9 :_@\/\+\=\.\-\!]*$` and match tag values by prefix, case-sensitively
/// (API reference, *Filter*), while a tag value may hold any letter; a leading `!` negates.
/// Every page is filtered again for the exact value.
fn filter_prefix(value: &str) -> &str {
    let end = value
        .char_indices()
        .find(|(i, c)| {
            !(c.is_ascii_alphanumeric() || " :_@/+=.-".contains(*c) || (*c == '!' && *i > 0))
        })
        .map_or(value.len(), |(i, _)| i);
    value.get(..end).unwrap_or_default()
}

/// Whether a managed secret other than `secret_name` holds `key`: as its current key (its
/// `orkv:openrouter-key-name` tag names the key, and its record holds the hash: one
/// `ListSecrets` call per 100 such secrets, and one `GetSecretValue` per secret whose tag
/// matches) or in grace (an `orkv:retire:<hash>` tag: one `ListSecrets` call). Answers
/// yes or no, never which secret. `ListSecrets` may lag writes by minutes (API reference,
/// *ListSecrets*): a secret that took the key within that window is not seen.
pub(crate) async fn held_elsewhere(
    deps: &Deps,
    secret_name: &str,
    key: &Key,
) -> Result<bool, VendError> {
    let other = |s: &orkv_store::SecretSummary| {
        s.name != secret_name
            && s.tags
                .iter()
                .any(|(k, v)| k == tags::MANAGED_BY && v == MANAGED_BY)
    };
    let (retiring, _) = deps
        .store
        .list_tag_key_page(&tags::retire_tag(&key.hash), None)
        .await?;
    if retiring.iter().any(other) {
        return Ok(true);
    }
    let name_tag = tags::tag_safe(&key.name);
    let mut next = None;
    loop {
        let (named, token) = match filter_prefix(&name_tag) {
            // Nothing a filter can say (a name starting with a letter outside ASCII): every
            // secret with the tag, filtered here.
            "" => {
                deps.store
                    .list_tag_key_page(tags::OPENROUTER_KEY, next.take())
                    .await?
            }
            prefix => {
                deps.store
                    .list_tagged_page(tags::OPENROUTER_KEY, prefix, next.take())
                    .await?
            }
        };
        for s in named.iter().filter(|s| other(s)) {
            if s.tags
                .iter()
                .any(|(k, v)| k == tags::OPENROUTER_KEY && *v == name_tag)
                && let Some(v) = deps.store.get(&s.arn, stage::AWSCURRENT).await?
                && SecretRecord::hash_in(&v.value).as_deref() == Some(key.hash.as_str())
            {
                return Ok(true);
            }
        }
        match token {
            Some(t) => next = Some(t),
            None => return Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::filter_prefix;

    #[test]
    fn a_filter_value_is_the_longest_prefix_the_api_accepts() {
        assert_eq!(filter_prefix("checkout prod-1"), "checkout prod-1");
        assert_eq!(filter_prefix("café prod"), "caf");
        assert_eq!(filter_prefix("!negated"), "");
        assert_eq!(
            filter_prefix("orkv:openrouter/a:r0123"),
            "orkv:openrouter/a:r0123"
        );
    }
}
