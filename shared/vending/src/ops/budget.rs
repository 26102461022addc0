//! Budget continuity's calls (ADR 0010; the rule itself is [`crate::domain::budget`]): the hold
//! on the outgoing key before a successor is minted, the limit a current key is fitted to, and
//! the carry of a retired key's final spend. Each keeps `carried + Σ committed(superseded) +
//! limit(current) ≤ cap`: a limit is lowered before another is raised, and a retired key's
//! spend is carried before the key is deleted.

use orkv_openrouter::{Cap, ErrorKind, Key, KeyPatch};
use orkv_store::SecretDescription;
use tracing::{info, warn};

use crate::deps::Deps;
use crate::domain::budget::{EPSILON, Ledger, committed, outgoing_limit, period_of};
use crate::domain::ownership::Owner;
use crate::domain::record::{RecordState, SecretRecord};
use crate::domain::scope::check_key_terms;
use crate::domain::tags;
use crate::domain::tags::stage;
use crate::error::VendError;
use crate::ops::owned;
use crate::ops::read;

/// The ledger of a secret whose tags are `tag_list`, in the period `cap` is in now.
pub(crate) fn ledger(deps: &Deps, tag_list: &[(String, String)], cap: Cap) -> Ledger {
    let tag = tag_list
        .iter()
        .find(|(k, _)| k == tags::BUDGET)
        .map(|(_, v)| v.as_str());
    Ledger::read(tag, &period_of(cap.limit_reset, deps.clock.now()))
}

/// What the superseded keys still live (the retire tags, and `extra`: a key superseded
/// since `desc` was read) besides `except` have committed: one `GET /keys/{hash}` each
/// (none in the common case: no key in grace).
pub(crate) async fn committed_by_superseded(
    deps: &Deps,
    desc: &SecretDescription,
    except: &[&str],
    extra: Option<&str>,
) -> Result<f64, VendError> {
    let mut hashes: Vec<String> = tags::retiring(&desc.tags)
        .into_iter()
        .map(|(h, _)| h)
        .collect();
    hashes.extend(extra.map(str::to_owned));
    hashes.sort();
    hashes.dedup();
    let mut sum = 0.0;
    for hash in hashes {
        if except.contains(&hash.as_str()) {
            continue;
        }
        match deps.openrouter().await?.get_key(&hash).await {
            Ok(key) => sum += committed(&key),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(sum)
}

/// Before a successor is minted under `cap`: the outgoing key `parent` is lowered to its
/// spend plus half of what the logical key has left, or to its spend alone for a suspected
/// leak (`leaked`: `finishSecret` disables it) or a key already expired (one `GET /keys/{hash}`, and a `PATCH` when
/// that changes its limit: a retry finds it lowered and changes nothing). Answers the
/// successor's allowance: the rest.
pub(crate) async fn hold_for_successor(
    deps: &Deps,
    desc: &SecretDescription,
    parent: Option<&str>,
    cap: Cap,
    leaked: bool,
) -> Result<f64, VendError> {
    let ledger = ledger(deps, &desc.tags, cap);
    let except: Vec<&str> = parent.into_iter().collect();
    let others = committed_by_superseded(deps, desc, &except, None).await?;
    let mut held = 0.0;
    if let Some(parent) = parent {
        let client = deps.openrouter().await?;
        match client.get_key(parent).await {
            Ok(key) => {
                let remaining = cap.limit - ledger.carried - others - key.period_spend();
                let target = outgoing_limit(remaining, &key, leaked, deps.clock.now());
                held = if key.limit.is_some_and(|l| (l - target).abs() < EPSILON) {
                    committed(&key)
                } else {
                    // What it may still spend is read from the patch's reply (a request
                    // may have landed between the read and the patch).
                    let patched = client
                        .update_key(parent, &limit_patch(&key, target))
                        .await?;
                    committed(&patched)
                };
                info!(key_hash = %parent, held, "outgoing key held to its share of the cap");
            }
            // Gone already: it can spend nothing more.
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(ledger.allowance(cap.limit, others + held))
}

/// Gives the current key `hash` of `desc` the cap `cap`, with the limit its budget allows
/// besides the superseded keys still live (and `superseded`, one superseded since `desc`
/// was read) ([`fit_within`]).
pub(crate) async fn fit_current(
    deps: &Deps,
    desc: &SecretDescription,
    hash: &str,
    cap: Cap,
    superseded: Option<&str>,
) -> Result<Key, VendError> {
    let others = committed_by_superseded(deps, desc, &[hash], superseded).await?;
    let allowance = ledger(deps, &desc.tags, cap).allowance(cap.limit, others);
    fit_within(deps, hash, cap, allowance).await
}

/// A raise the sweep makes to the current key `hash` of secret `name` (a retirement's
/// give-back, a refill, a drift repair), decided from what the secret says *now*, never from
/// the run's earlier reads: one `DescribeSecret` and one `GetSecretValue` right before the
/// `PATCH`. Nothing is raised while a rotation runs (it holds the outgoing key's share for
/// the successor), a cap change waits in `orkv:deferred-change` or is on its way (the
/// `orkv:cap` tag, which a cap update writes before it patches the key, is not the record's
/// cap), when the current key is no longer `hash`, or when the record's cap is outside its
/// prefix owner's policy (a limit the product sets is checked against the policy when it is
/// set). The cap is the record's, never a tag's. After the `PATCH` the secret is described
/// again ([`undo_if_raced`]). Answers the key as patched, or `None` when nothing was raised.
pub(crate) async fn raise_current(
    deps: &Deps,
    name: &str,
    hash: &str,
) -> Result<Option<Key>, VendError> {
    let Some(desc) = read::describe_ours(deps, name).await? else {
        return Ok(None);
    };
    if busy(&desc) {
        return Ok(None);
    }
    let Some(record) = read::get_ours(deps, name, stage::AWSCURRENT)
        .await?
        .and_then(|v| SecretRecord::from_secret(&v.value))
        .and_then(Result::ok)
        .filter(|r| r.state == RecordState::Active && r.key_hash.as_deref() == Some(hash))
    else {
        return Ok(None);
    };
    let cap = record.cap();
    if tag_cap(&desc).is_some_and(|t| t != cap) {
        return Ok(None);
    }
    check_key_terms(
        &deps.cfg.policy,
        deps.policy_workspaces().await?,
        name,
        record.tenant.as_deref(),
        &record.workspace_id,
        cap.limit,
    )?;
    let raised = fit_current(deps, &desc, hash, cap, None).await?;
    undo_if_raced(deps, &desc, hash, cap, raised)
        .await
        .map(Some)
}

/// Whether a rotation runs, a change is deferred into one, or the secret was revoked.
fn busy(desc: &SecretDescription) -> bool {
    let rotating = desc
        .version_with(stage::AWSPENDING)
        .is_some_and(|p| !desc.has(p, stage::AWSCURRENT));
    rotating || desc.tag(tags::DEFERRED).is_some() || desc.tag(tags::REVOKED).is_some()
}

/// The cap the `orkv:cap` tag states, if it parses.
fn tag_cap(desc: &SecretDescription) -> Option<Cap> {
    desc.tag(tags::CAP).and_then(tags::parse_cap_tag)
}

/// After a raise: one more `DescribeSecret`. OpenRouter has no conditional update, so a
/// writer that lowered the key between the sweep's read and its `PATCH` may have been raised
/// over. Every lowering writer shows itself first (a rotation's `AWSPENDING` exists before
/// `createSecret` holds the outgoing key; a cap update writes the `orkv:cap` tag before it
/// patches), so whatever changed since `desc` is seen here, and answered by one more `PATCH`:
/// - a new cap: the key is fitted to it again (the cap update's own rule, so either `PATCH`
///   may land last);
/// - a rotation running: the rotation's hold is made again ([`hold_for_successor`], its own
///   rule on the same figures);
/// - the key superseded meanwhile (one `GetSecretValue` tells): it is fitted as a key in
///   grace, to what the cap leaves besides the new current key and the other keys in grace;
/// - anything else (the same key, the same cap: a change of `rotate_before_seconds`): the
///   raise stands.
async fn undo_if_raced(
    deps: &Deps,
    desc: &SecretDescription,
    hash: &str,
    cap: Cap,
    raised: Key,
) -> Result<Key, VendError> {
    let Some(now) = read::describe_ours(deps, &desc.name).await? else {
        return Ok(raised);
    };
    let current = |d: &SecretDescription| d.version_with(stage::AWSCURRENT).map(str::to_owned);
    let new_cap = tag_cap(&now).filter(|t| *t != cap);
    let moved = current(&now) != current(desc);
    if !busy(&now) && !moved && new_cap.is_none() {
        return Ok(raised);
    }
    if let (Some(new_cap), false) = (new_cap, busy(&now)) {
        warn!(key_hash = %hash, "the cap changed while the sweep raised the key: fitted to the new cap");
        return fit_current(deps, &now, hash, new_cap, None).await;
    }
    let rotating = now
        .version_with(stage::AWSPENDING)
        .is_some_and(|p| !now.has(p, stage::AWSCURRENT));
    if rotating {
        warn!(key_hash = %hash, "a rotation began while the sweep raised the key: its hold is made again");
        let leaked = tags::Reason::is_leak(now.tag(tags::ROTATION_REASON));
        hold_for_successor(deps, &now, Some(hash), cap, leaked).await?;
        return Ok(deps.openrouter().await?.get_key(hash).await?);
    }
    let successor = read::get_ours(deps, &desc.name, stage::AWSCURRENT)
        .await?
        .and_then(|v| SecretRecord::hash_in(&v.value));
    let Some(successor) = successor.filter(|h| h != hash) else {
        return Ok(raised);
    };
    warn!(key_hash = %hash, "the key was superseded while the sweep raised it: fitted as a key in grace");
    let others = committed_by_superseded(deps, &now, &[hash], Some(&successor)).await?;
    let allowance = ledger(deps, &now.tags, cap).allowance(cap.limit, others);
    fit_within(deps, hash, cap, allowance).await
}

/// Gives key `hash` the cap `cap` with the limit `allowance` (one `PATCH`; a second when
/// the key already spent more than that, so its limit is its spend: never negative, never
/// unlimited). Answers the key as patched.
pub(crate) async fn fit_within(
    deps: &Deps,
    hash: &str,
    cap: Cap,
    allowance: f64,
) -> Result<Key, VendError> {
    let client = deps.openrouter().await?;
    let patch = |limit: f64| KeyPatch {
        cap: Some(Cap { limit, ..cap }),
        ..KeyPatch::default()
    };
    let key = client.update_key(hash, &patch(allowance)).await?;
    let spent = key.period_spend();
    if spent > allowance + EPSILON {
        warn!(key_hash = %hash, spent, allowance, "the key spent more than the cap now allows: its limit is its spend");
        return Ok(client.update_key(hash, &patch(spent)).await?);
    }
    Ok(key)
}

/// A cap lowered below what the superseded keys still live have committed: each of
/// `owner`'s own is lowered to what it spent (one `GET` and one `PATCH` each), so the
/// lowered cap holds for the logical key, not only its current key. Nothing when they fit.
pub(crate) async fn squeeze_superseded(
    deps: &Deps,
    desc: &SecretDescription,
    owner: Owner<'_>,
    current: &str,
    cap: Cap,
) -> Result<(), VendError> {
    let ledger = ledger(deps, &desc.tags, cap);
    let retiring = tags::retiring(&desc.tags);
    if retiring.is_empty() {
        return Ok(());
    }
    let others = committed_by_superseded(deps, desc, &[current], None).await?;
    if ledger.carried + others <= cap.limit + EPSILON {
        return Ok(());
    }
    // A retire tag the product did not write may name another secret's key: only this
    // logical key's own are lowered (`owned`: one more `GET` each, on this rare path).
    let tagged: Vec<String> = retiring
        .into_iter()
        .map(|(h, _)| h)
        .filter(|h| h != current)
        .collect();
    let ours = owned::sort_owned(deps, owner, &tagged).await?.ours;
    let client = deps.openrouter().await?;
    for hash in ours {
        match client.get_key(&hash).await {
            Ok(key) => {
                client
                    .update_key(&hash, &limit_patch(&key, key.period_spend()))
                    .await?;
                info!(key_hash = %hash, "superseded key held to its spend: the cap was lowered");
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The superseded key `hash` is about to be deleted: disabled first (its spend is final
/// then: one `PATCH`), its spend this period carried into the ledger, and the ledger
/// written (one `TagResource`) before the delete, so a retry never loses or doubles it.
/// A key already gone carries nothing (it was deleted outside the product: ADR 0010).
pub(crate) async fn carry_retiring(
    deps: &Deps,
    arn: &str,
    ledger: &mut Ledger,
    hash: &str,
) -> Result<(), VendError> {
    let disable = KeyPatch {
        disabled: Some(true),
        ..KeyPatch::default()
    };
    let spent = match deps.openrouter().await?.update_key(hash, &disable).await {
        Ok(key) => key.period_spend(),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            warn!(key_hash = %hash, "a superseded key was deleted outside the product: its spend cannot be carried");
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    if ledger.carry(hash, spent) {
        deps.store
            .tag(arn, &[(tags::BUDGET.to_owned(), ledger.tag_value())])
            .await?;
        info!(key_hash = %hash, spent, carried = ledger.carried, "retiring key's spend carried into the logical key's budget");
    }
    Ok(())
}

/// A patch of `key`'s limit alone (its reset and BYOK flag as they are).
fn limit_patch(key: &Key, limit: f64) -> KeyPatch {
    KeyPatch {
        cap: Some(Cap {
            limit,
            limit_reset: key.limit_reset,
            include_byok_in_limit: key.include_byok_in_limit,
        }),
        ..KeyPatch::default()
    }
}
