//! Spend per logical key (one secret, every generation still listed), from the workspace
//! listings the scan already makes (no per-key call): what each tenant's keys spent in their
//! caps' current period, their caps, and the headroom left. Published as one EMF document per
//! tenant and workspace (custom metrics are billed per dimension set: no per-key dimension);
//! the top spenders go to the structured log. A low-headroom warning uses the logical key's
//! remainder (its cap less what every live generation spent), not one generation's.

use std::collections::{BTreeMap, HashMap};

use orkv_openrouter::Cap;
use tracing::{info, warn};

use crate::domain::budget::{Ledger, committed};

use super::report::{SweepAction, SweepReport, WorkspaceSpend};

/// Spenders logged per run.
const TOP: usize = 10;

/// One secret's generations, summed.
struct Logical {
    secret: Box<str>,
    label: u32,
    /// The logical key's cap, as its `orkv:cap` tag records it.
    cap: Option<Cap>,
    /// What retired generations spent this period (the ledger, ADR 0010).
    carried: f64,
    spent: f64,
    /// The current key as listed: hash and limit.
    current: Option<(Box<str>, Option<f64>)>,
    /// What the superseded keys listed have committed (their limits).
    others: f64,
    /// This run rotates or retires its keys (it changes the budget itself): no refill.
    busy: bool,
}

/// A secret as the spend book counts it.
pub(super) struct LogicalKey<'a, I> {
    pub secret: &'a str,
    /// The hash of its current key's name.
    pub current_name_h: u64,
    /// The hashes of its superseded keys' hashes.
    pub retiring_h: I,
    /// Its cap, as its `orkv:cap` tag records it.
    pub cap: Option<Cap>,
    /// What retired generations spent this period (the ledger).
    pub carried: f64,
    pub tenant: &'a str,
    pub workspace: &'a str,
}

/// A current key whose limit is below what its logical key's budget allows it (a period
/// boundary, or keys retired since): the sweep raises it.
#[derive(Debug, Clone)]
pub(super) struct Refill {
    pub secret: String,
    pub hash: String,
    pub listed: f64,
    pub allowance: f64,
}

/// A refill smaller than this is not worth a call.
const REFILL_MIN_USD: f64 = 0.01;

/// The logical keys of one run, indexed by the hash of their current key's name and of each
/// superseded key's hash.
#[derive(Default)]
pub(super) struct SpendBook {
    by_key: HashMap<u64, (u32, bool)>,
    logical: Vec<Logical>,
    labels: Vec<(String, String)>,
    label_index: HashMap<(String, String), u32>,
}

impl SpendBook {
    /// A secret of the listing, as one logical key.
    pub(super) fn secret(&mut self, s: LogicalKey<'_, impl Iterator<Item = u64>>) {
        let LogicalKey {
            secret,
            current_name_h,
            retiring_h,
            cap,
            carried,
            tenant,
            workspace,
        } = s;
        let label = (tenant.to_owned(), workspace.to_owned());
        let next = u32::try_from(self.labels.len()).unwrap_or(u32::MAX);
        let label = *self.label_index.entry(label.clone()).or_insert_with(|| {
            self.labels.push(label);
            next
        });
        let idx = u32::try_from(self.logical.len()).unwrap_or(u32::MAX);
        self.logical.push(Logical {
            secret: secret.into(),
            label,
            cap,
            carried,
            spent: 0.0,
            current: None,
            others: 0.0,
            busy: false,
        });
        self.by_key.insert(current_name_h, (idx, true));
        for h in retiring_h {
            self.by_key.insert(h, (idx, false));
        }
    }

    /// A listed key: counted to its logical key, if it is one's current key (by name hash) or
    /// superseded key (by hash hash).
    pub(super) fn listed(&mut self, name_h: u64, hash_h: u64, key: &orkv_openrouter::Key) {
        let found = self
            .by_key
            .get(&name_h)
            .filter(|(_, current)| *current)
            .or_else(|| self.by_key.get(&hash_h).filter(|(_, current)| !*current))
            .copied();
        let Some((idx, current)) = found else {
            return;
        };
        let Some(l) = self.logical.get_mut(idx as usize) else {
            return;
        };
        l.spent += key.period_spend();
        if current {
            l.current = Some((key.hash.clone().into_boxed_str(), key.limit));
        } else {
            l.others += committed(key);
        }
    }

    /// The secret added last has work this run (a rotation or a retirement, each of which
    /// fits the budget itself): it is not refilled from a listing taken around that work.
    pub(super) fn busy(&mut self) {
        if let Some(l) = self.logical.last_mut() {
            l.busy = true;
        }
    }

    /// Current keys below their allowance: the logical key's cap less what retired keys
    /// carried and what the superseded keys listed committed.
    fn refills(&self) -> Vec<Refill> {
        self.logical
            .iter()
            .filter(|l| !l.busy)
            .filter_map(|l| {
                let cap = l.cap?;
                let (hash, Some(listed)) = l.current.as_ref()? else {
                    return None;
                };
                let allowance = Ledger {
                    carried: l.carried,
                    ..Ledger::default()
                }
                .allowance(cap.limit, l.others);
                (allowance - listed >= REFILL_MIN_USD).then(|| Refill {
                    secret: l.secret.to_string(),
                    hash: hash.to_string(),
                    listed: *listed,
                    allowance,
                })
            })
            .collect()
    }

    /// Sums the book per tenant and workspace into `report`, warns on logical keys low on
    /// headroom, and logs the top spenders.
    pub(super) fn finish(self, fraction: f64, report: &mut SweepReport) -> Vec<Refill> {
        let refills = self.refills();
        let mut by_label: BTreeMap<u32, WorkspaceSpend> = BTreeMap::new();
        for l in &self.logical {
            let (tenant, workspace) = &self.labels[l.label as usize];
            let w = by_label.entry(l.label).or_insert_with(|| WorkspaceSpend {
                tenant: tenant.clone(),
                workspace: workspace.clone(),
                keys: 0,
                spend_usd: 0.0,
                cap_usd: 0.0,
                headroom_usd: 0.0,
                keys_low_on_headroom: 0,
            });
            w.keys += 1;
            w.spend_usd += l.spent;
            let Some(cap) = l.cap.map(|c| c.limit).filter(|c| *c > 0.0) else {
                continue;
            };
            w.cap_usd += cap;
            let left = (cap - l.spent).max(0.0);
            w.headroom_usd += left;
            if left < cap * fraction {
                w.keys_low_on_headroom += 1;
                report.low_spend_keys += 1;
                warn!(event = "LowRemainingSpend", secret = %l.secret, spent = l.spent, cap, remaining = left, "a key is close to its spend cap (every live generation counted)");
                report.note(
                    SweepAction::WarnLowSpend,
                    &l.secret,
                    format!("{left:.2} of {cap} USD left"),
                );
            }
        }
        let mut top: Vec<&Logical> = self.logical.iter().filter(|l| l.spent > 0.0).collect();
        top.sort_by(|a, b| b.spent.total_cmp(&a.spent));
        for (rank, l) in top.iter().take(TOP).enumerate() {
            let (tenant, workspace) = &self.labels[l.label as usize];
            info!(event = "TopSpend", rank = rank + 1, secret = %l.secret, tenant = %tenant, workspace = %workspace, spent = l.spent, cap = l.cap.map_or(0.0, |c| c.limit), "top spender");
        }
        report.spend = by_label.into_values().collect();
        refills
    }
}

#[cfg(test)]
mod tests {
    use orkv_openrouter::Key;

    use super::*;

    const CAP: Cap = crate::domain::budget::TEST_CAP;

    fn key(hash: &str, limit: f64, spent_this_month: f64) -> Key {
        serde_json::from_value(serde_json::json!({
            "hash": hash,
            "name": format!("name-{hash}"),
            "limit": limit,
            "limit_reset": "monthly",
            "usage": spent_this_month + 100.0,
            "usage_monthly": spent_this_month,
            "created_at": "2026-12-01T00:00:00Z",
            "workspace_id": "ws-1"
        }))
        .expect("a key as the listing shows it")
    }

    /// A book of one secret `s` (current key named `cur`, superseded `old`), with `carried`.
    fn book(carried: f64) -> SpendBook {
        let mut b = SpendBook::default();
        b.secret(LogicalKey {
            secret: "s",
            current_name_h: 1,
            retiring_h: [2].into_iter(),
            cap: Some(CAP),
            carried,
            tenant: "checkout",
            workspace: "prod",
        });
        b
    }

    #[test]
    fn a_current_key_below_what_the_cap_leaves_it_is_refilled_to_it() {
        let mut b = book(3.0);
        b.listed(1, 11, &key("cur", 4.0, 1.0));
        let refills = b.refills();
        assert_eq!(refills.len(), 1);
        assert_eq!(refills[0].hash, "cur");
        assert!(
            (refills[0].allowance - 7.0).abs() < 1e-9,
            "{}",
            refills[0].allowance
        );
        assert!((refills[0].listed - 4.0).abs() < 1e-9);
    }

    #[test]
    fn a_superseded_key_still_live_keeps_what_it_committed() {
        let mut b = book(0.0);
        b.listed(1, 11, &key("cur", 4.0, 0.0));
        // The old key: limit 5, but it has spent 6 (a request in flight overshot).
        b.listed(99, 2, &key("old", 5.0, 6.0));
        let refills = b.refills();
        assert_eq!(
            refills.len(),
            0,
            "10 - 6 committed leaves exactly the 4 listed"
        );
    }

    #[test]
    fn a_secret_this_run_rotates_or_retires_is_not_refilled() {
        let mut b = book(0.0);
        b.busy();
        b.listed(1, 11, &key("cur", 1.0, 0.0));
        assert!(b.refills().is_empty());
    }

    #[test]
    fn a_shortfall_under_a_cent_is_not_worth_a_call() {
        let mut b = book(0.0);
        b.listed(1, 11, &key("cur", 9.995, 0.0));
        assert!(b.refills().is_empty());
    }

    #[test]
    fn a_key_the_book_does_not_know_changes_nothing() {
        let mut b = book(0.0);
        b.listed(77, 78, &key("stranger", 0.0, 50.0));
        assert!(b.refills().is_empty());
        let mut report = SweepReport::default();
        let _ = b.finish(0.1, &mut report);
        assert_eq!(report.spend.len(), 1);
        assert!(report.spend[0].spend_usd.abs() < 1e-9);
    }

    #[test]
    fn spend_and_headroom_sum_every_live_generation_per_tenant_and_workspace() {
        let mut b = book(0.0);
        b.listed(1, 11, &key("cur", 5.0, 4.0));
        b.listed(99, 2, &key("old", 5.0, 5.5));
        let mut report = SweepReport::default();
        let _ = b.finish(0.1, &mut report);
        let w = &report.spend[0];
        assert_eq!(
            (w.tenant.as_str(), w.workspace.as_str(), w.keys),
            ("checkout", "prod", 1)
        );
        assert!((w.spend_usd - 9.5).abs() < 1e-9);
        assert!((w.cap_usd - 10.0).abs() < 1e-9);
        assert!((w.headroom_usd - 0.5).abs() < 1e-9);
        assert_eq!(w.keys_low_on_headroom, 1);
        assert_eq!(report.low_spend_keys, 1);
    }
}
