//! The key scan after every page was seen: each known workspace's keys, for orphans (keys
//! this product named that no managed secret references), keys low on remaining spend,
//! current keys that no longer work ([`super::broken`]), caps changed behind the product's
//! back ([`super::drift`]) and keys the product never saw
//! (unmanaged: reported, never touched).

use std::collections::HashSet;
use std::time::Instant;

use time::OffsetDateTime;
use tracing::{info, warn};

use crate::deps::Deps;
use crate::domain::names::{KeyName, is_product_key_name};
use crate::domain::record::{RecordState, SecretRecord};
use crate::domain::tags::{
    self, retiring,
    stage::{AWSCURRENT, AWSPENDING},
};
use crate::error::VendError;

use super::broken::Suspect;
use super::drift::{Drifted, within_cap};
use super::hygiene;
use super::report::{SweepAction, SweepReport};
use super::spend::SpendBook;
use super::{Current, DEADLINE_MARGIN, Listed, h64};
use crate::ops::guardrail;
use crate::ops::read;
use crate::ops::sweep::guardrails;
use crate::ops::sweep::refill;

/// What one workspace's listing found.
#[derive(Default)]
struct Found {
    /// (key name, hash) of keys that may be orphans.
    candidates: Vec<(String, String)>,
    /// Current keys listed disabled or expired.
    broken: Vec<Suspect>,
    /// Current keys whose listed cap is not their secret's cap tag.
    drifted: Vec<Drifted>,
    /// (key name, hash) of keys without the product's naming that no secret references.
    unmanaged: Vec<(String, String)>,
    /// (secret, hash) of current keys that work, when the policy names guardrails.
    working: Vec<(String, String)>,
    /// (secret, hash, last used) of current keys unused for `ORKV_IDLE_KEY_SECONDS`.
    idle: Vec<(String, String, OffsetDateTime)>,
    /// (secret, hash) of current keys that never expire.
    without_expiry: Vec<(String, String)>,
}

/// Lists the known workspaces' keys: orphans, low remaining spend, and current keys that
/// no longer work (`current` holds every secret's current key; what the listing does not
/// show, or shows disabled or expired, is a suspect).
pub(super) async fn scan_keys(
    deps: &Deps,
    listed: Listed,
    now: OffsetDateTime,
    dry_run: bool,
    deadline: Instant,
    report: &mut SweepReport,
) -> Result<(), VendError> {
    let Listed {
        referenced,
        mut current,
        mut book,
    } = listed;
    let referenced = &referenced;
    let mut workspaces: Vec<String> = deps
        .policy_workspaces()
        .await?
        .values()
        .flatten()
        .cloned()
        .collect();
    workspaces.sort();
    workspaces.dedup();
    let listed: HashSet<u64> = workspaces.iter().map(|w| h64(w)).collect();
    hygiene::report_logging_workspaces(deps, &workspaces, report).await?;
    let mut suspects = Vec::new();
    let mut drifted = Vec::new();
    let mut working = Vec::new();
    for ws in workspaces {
        let found = list_workspace(deps, &ws, referenced, &mut current, &mut book, now).await?;
        suspects.extend(found.broken);
        drifted.extend(found.drifted);
        working.extend(found.working.into_iter().map(|(s, h)| (s, h, ws.clone())));
        hygiene::report_idle(found.idle, report);
        hygiene::report_without_expiry(
            found.without_expiry,
            deps.cfg.policy.org_max_key_lifetime_seconds,
            report,
        );
        for (name, hash) in found.unmanaged {
            report.unmanaged_keys += 1;
            info!(event = "UnmanagedKey", workspace_id = %ws, key_hash = %hash, key_name = %name, "a key in a known workspace that no managed secret references and the product did not name (report only)");
            report.note(SweepAction::UnmanagedKey, &name, hash);
        }
        for (name, hash) in found.candidates {
            if Instant::now() + DEADLINE_MARGIN >= deadline {
                return Ok(());
            }
            // One candidate that cannot be checked never stops the scan.
            if let Err(e) = handle_candidate(deps, &ws, &name, hash, dry_run, report).await {
                warn!(openrouter_key_name = %name, error_type = e.kind(), error = %e, "could not check a candidate orphan; the next run repeats it");
            }
        }
    }
    // A current key no listing of its workspace showed: deleted, or not minted yet.
    suspects.extend(
        current
            .into_iter()
            .filter(|(_, (_, ws, _))| listed.contains(ws))
            .map(|(name_h, (secret, _, _))| Suspect {
                secret: secret.into_string(),
                name_h,
                listed: None,
            }),
    );
    super::broken::check_suspects(deps, suspects, now, dry_run, deadline, report).await;
    super::drift::check_drifted(deps, drifted, now, dry_run, deadline, report).await;
    guardrails::check_guardrails(deps, working, dry_run, deadline, report).await;
    let refills = book.finish(deps.cfg.low_spend_fraction, report);
    refill::refill_budgets(deps, refills, dry_run, deadline, report).await;
    Ok(())
}

impl Found {
    /// Sorts the listed current key `k` of `secret` (its cap tag `cap`): broken (disabled or
    /// expired), or working, and then also idle, never expiring, or off its cap. `guarded`:
    /// the policy names guardrails; `idle_after`: `ORKV_IDLE_KEY_SECONDS`.
    fn current(
        &mut self,
        secret: Box<str>,
        cap: Option<orkv_openrouter::Cap>,
        k: &orkv_openrouter::Key,
        name_h: u64,
        now: OffsetDateTime,
        (guarded, idle_after): (bool, Option<std::time::Duration>),
    ) {
        let why = if k.disabled {
            Some("disabled")
        } else if k.expires_at.is_some_and(|e| e <= now) {
            Some("expired")
        } else {
            None
        };
        if let Some(why) = why {
            self.broken.push(Suspect {
                secret: secret.into_string(),
                name_h,
                listed: Some((k.hash.clone(), why)),
            });
            return;
        }
        if guarded {
            self.working.push((secret.to_string(), k.hash.clone()));
        }
        if let Some(at) = k.last_used_at
            && hygiene::is_idle(Some(at), now, idle_after)
        {
            self.idle.push((secret.to_string(), k.hash.clone(), at));
        }
        if k.expires_at.is_none() {
            self.without_expiry
                .push((secret.to_string(), k.hash.clone()));
        }
        if let Some(tagged) = cap
            && !within_cap(k.cap(), tagged)
        {
            self.drifted.push(Drifted {
                secret: secret.into_string(),
                hash: k.hash.clone(),
                listed: k.cap(),
                updated_at: k.updated_at,
            });
        }
    }
}

/// One listing of a workspace's keys (two, rarely, when a referenced name is carried by
/// more than one key: an attempt whose key was never stored left one behind).
async fn list_workspace(
    deps: &Deps,
    ws: &str,
    referenced: &HashSet<u64>,
    current: &mut Current,
    book: &mut SpendBook,
    now: OffsetDateTime,
) -> Result<Found, VendError> {
    let client = deps.openrouter().await?;
    let min_age =
        time::Duration::try_from(deps.cfg.orphan_min_age).unwrap_or(time::Duration::MINUTE);
    let mut found = Found::default();
    let mut seen_names: HashSet<u64> = HashSet::new();
    let mut dup_names: HashSet<u64> = HashSet::new();
    let guarded = deps.cfg.policy.has_guardrails();
    let idle_after = deps.cfg.idle_key_after;
    client
        .for_each_key_page(Some(ws), true, |page| {
            for k in page {
                // The name as the secrets' tags carry it (a dashboard name may not fit a
                // tag as it is: `tags::tag_safe`).
                let name_h = h64(&tags::tag_safe(&k.name));
                book.listed(name_h, h64(&k.hash), &k);
                // An adopted key keeps its own name: a current key is checked whatever
                // it is called.
                if let Some((secret, _, cap)) = current.remove(&name_h) {
                    found.current(secret, cap, &k, name_h, now, (guarded, idle_after));
                }
                if !is_product_key_name(&k.name) {
                    // A key the product never saw (the dashboard's, another tool's):
                    // reported, never touched; one a secret adopted is referenced by name.
                    if !referenced.contains(&h64(&k.hash)) && !referenced.contains(&name_h) {
                        found.unmanaged.push((k.name, k.hash));
                    }
                    continue;
                }
                if referenced.contains(&name_h) {
                    if !seen_names.insert(name_h) {
                        dup_names.insert(name_h);
                    }
                } else if !referenced.contains(&h64(&k.hash)) && now - k.created_at >= min_age {
                    found.candidates.push((k.name, k.hash));
                }
            }
            true
        })
        .await?;
    if !dup_names.is_empty() {
        // Each key is then checked against the secret's versions by hash before anything
        // is deleted.
        client
            .for_each_key_page(Some(ws), true, |page| {
                found.candidates.extend(
                    page.into_iter()
                        .filter(|k| {
                            dup_names.contains(&h64(&k.name)) && now - k.created_at >= min_age
                        })
                        .map(|k| (k.name, k.hash)),
                );
                true
            })
            .await?;
    }
    Ok(found)
}

/// Confirms an orphan by reading the secret it names, then reports or deletes it.
async fn handle_candidate(
    deps: &Deps,
    workspace_id: &str,
    name: &str,
    hash: String,
    dry_run: bool,
    report: &mut SweepReport,
) -> Result<(), VendError> {
    if still_referenced(deps, name, &hash).await? {
        return Ok(());
    }
    report.orphans_found += 1;
    warn!(event = "OrphanKey", key_hash = %hash, openrouter_key_name = %name, "key named by this product that no managed secret references");
    if dry_run || !deps.cfg.delete_orphans {
        report.note(SweepAction::OrphanReported, name, hash);
        return Ok(());
    }
    guardrail::release(deps, name, workspace_id, &hash).await;
    match deps.openrouter().await?.delete_key(&hash).await {
        Ok(_) => {
            report.orphans_deleted += 1;
            report.note(SweepAction::OrphanDeleted, name, hash);
        }
        Err(e) => warn!(key_hash = %hash, error = %e, "could not delete an orphan"),
    }
    Ok(())
}

/// Reads the secret a product key name points at: does its current or pending version
/// (or a retirement tag) reference the key?
async fn still_referenced(deps: &Deps, key_name: &str, hash: &str) -> Result<bool, VendError> {
    let Some(secret) = KeyName::parse(key_name).map(|k| k.secret()) else {
        return Ok(false);
    };
    let Some(desc) = read::describe_ours(deps, secret).await? else {
        return Ok(false);
    };
    if desc.deleted || desc.tag(tags::REVOKED).is_some() {
        return Ok(false);
    }
    if retiring(&desc.tags).iter().any(|(h, _)| h == hash) {
        return Ok(true);
    }
    for stage in [AWSCURRENT, AWSPENDING] {
        if let Some(v) = deps.store.get(&desc.arn, stage).await?
            && let Some(Ok(r)) = SecretRecord::from_secret(&v.value)
        {
            let names_it = r.openrouter_key_name == key_name
                && (r.state == RecordState::Pending || r.key_hash.as_deref() == Some(hash));
            if names_it || r.key_hash.as_deref() == Some(hash) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}
