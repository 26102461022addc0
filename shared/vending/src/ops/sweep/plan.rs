//! Reading one page of managed secrets: counts, warnings, and the work it holds, from the
//! tags alone.

use std::collections::HashSet;

use orkv_store::SecretSummary;
use time::OffsetDateTime;
use tracing::warn;

use crate::deps::Deps;
use crate::domain::budget::{Ledger, period_of};
use crate::domain::lifetime::Lifetime;
use crate::domain::names::rotation_token;
use crate::domain::record::MANAGED_BY;
use crate::domain::tags::{self, retiring};
use crate::ops::inventory::InventoryEntry;

use super::report::{SweepAction, SweepReport};
use super::spend::SpendBook;
use super::{Current, Work, h64};

fn tag_time(s: &SecretSummary, key: &str) -> Option<OffsetDateTime> {
    s.tag(key).and_then(tags::parse_time)
}

/// The work one page holds; every key name and superseded hash goes into `referenced`,
/// and each secret's current key name into `current` (for the key scan's check that it
/// still works).
pub(super) fn plan_page(
    deps: &Deps,
    report: &mut SweepReport,
    page: &[SecretSummary],
    now: OffsetDateTime,
    referenced: &mut HashSet<u64>,
    (current, book): (&mut Current, &mut SpendBook),
) -> Vec<Work> {
    report.list_calls += 1;
    let mut work = Vec::new();
    for s in page {
        report.secrets_scanned += 1;
        if s.tag(tags::MANAGED_BY) != Some(MANAGED_BY) {
            continue;
        }
        report.inventory.count(&InventoryEntry::of(s));
        if s.tag(tags::REVOKED).is_some() {
            continue;
        }
        let mut in_book = false;
        if let Some(n) = s.tag(tags::OPENROUTER_KEY) {
            referenced.insert(h64(n));
            if let Some(ws) = s.tag(tags::WORKSPACE) {
                let cap = s.tag(tags::CAP).and_then(tags::parse_cap_tag);
                current.insert(h64(n), (s.name.clone().into_boxed_str(), h64(ws), cap));
                let carried = cap.map_or(0.0, |c| {
                    Ledger::read(s.tag(tags::BUDGET), &period_of(c.limit_reset, now)).carried
                });
                in_book = true;
                book.secret(
                    &s.name,
                    (h64(n), retiring(&s.tags).iter().map(|(h, _)| h64(h))),
                    (cap, carried),
                    s.tag(tags::TENANT).unwrap_or("(default)"),
                    s.tag(tags::WORKSPACE_SLUG).unwrap_or(ws),
                );
            }
        }
        let mut due_hashes = Vec::new();
        for (hash, at) in retiring(&s.tags) {
            referenced.insert(h64(&hash));
            if at <= now {
                due_hashes.push(hash);
            }
        }
        if !due_hashes.is_empty() {
            if in_book {
                book.busy();
            }
            report.retirements_due += due_hashes.len() as u64;
            work.push(Work::Retire {
                name: s.name.clone(),
                arn: s.arn.clone(),
                hashes: due_hashes,
            });
        }
        if s.current_version
            .as_deref()
            .is_some_and(|v| !crate::domain::names::is_product_token(v))
        {
            work.push(Work::CheckValue {
                name: s.name.clone(),
            });
        }
        if let Some(rotate) = plan_rotation(deps, report, s, now) {
            if in_book {
                book.busy();
            }
            work.push(rotate);
        }
    }
    work
}

/// A rotation when the key is due, or a warning when a fixed expiry is near.
fn plan_rotation(
    deps: &Deps,
    report: &mut SweepReport,
    s: &SecretSummary,
    now: OffsetDateTime,
) -> Option<Work> {
    let warning = time::Duration::try_from(deps.cfg.expiry_warning).unwrap_or(time::Duration::DAY);
    let near_expiry = tag_time(s, tags::EXPIRES_AT).is_some_and(|e| e <= now + warning);
    let fixed = s
        .tag(tags::LIFETIME)
        .and_then(Lifetime::from_tag_value)
        .is_some_and(Lifetime::is_fixed);
    if fixed {
        if near_expiry {
            report.keys_near_expiry += 1;
            warn!(event = "KeyNearExpiry", secret = %s.name, expires_at = s.tag(tags::EXPIRES_AT).unwrap_or(""), reason = "fixed expires_at: a rotation cannot extend it", "key close to expiry");
            report.note(
                SweepAction::WarnNearExpiry,
                &s.name,
                "fixed expires_at".into(),
            );
        }
        return None;
    }
    if tag_time(s, tags::ROTATE_AT).is_none_or(|r| r > now) {
        return None;
    }
    let generation = s
        .tag(tags::GENERATION)
        .and_then(|g| g.parse::<u64>().ok())
        .unwrap_or(1);
    report.rotations_due += 1;
    if report.rotations_due - report.rotations_deferred > deps.cfg.sweep_max_rotations as u64 {
        report.rotations_deferred += 1;
        if near_expiry {
            warn!(event = "RotationDeferred", secret = %s.name, "due and near expiry, beyond this run's rotation budget");
        }
        return None;
    }
    Some(Work::Rotate {
        name: s.name.clone(),
        token: rotation_token(&s.name, generation),
        near_expiry,
    })
}
