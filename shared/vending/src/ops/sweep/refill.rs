//! Budget refills (ADR 0010): a current key whose limit is below what its logical key's cap
//! allows it now (a reset period began, or superseded keys were retired and their unspent
//! share came back) is raised to its allowance. Found from the listing (no per-key call for a
//! key that fits); each raise is `budget::raise_current`: one `DescribeSecret` (never during a
//! rotation: the running rotation holds the outgoing key's share for the successor), one
//! `GetSecretValue` (the record's cap, never the tag's), a `GET` per superseded key still
//! live, and one `PATCH`.

use std::time::Instant;

use tracing::{info, warn};

use crate::deps::Deps;
use crate::error::VendError;

use super::DEADLINE_MARGIN;
use super::report::{SweepAction, SweepReport};
use super::spend::Refill;
use crate::ops::budget;

/// Raises each key in `refills`; one that cannot be raised never stops the others (the
/// next run repeats it).
pub(super) async fn refill_budgets(
    deps: &Deps,
    refills: Vec<Refill>,
    dry_run: bool,
    deadline: Instant,
    report: &mut SweepReport,
) {
    for r in refills {
        if Instant::now() + DEADLINE_MARGIN >= deadline {
            return;
        }
        if dry_run {
            report.note(
                SweepAction::WouldRefill,
                &r.secret,
                format!("{:.2} to {:.2} USD", r.listed, r.allowance),
            );
            continue;
        }
        if let Err(e) = refill(deps, &r, report).await {
            warn!(secret = %r.secret, error_type = e.kind(), error = %e, "could not refill a key's budget; the next run repeats it");
        }
    }
}

async fn refill(deps: &Deps, r: &Refill, report: &mut SweepReport) -> Result<(), VendError> {
    // The cap is the record's, read now: the listing's `orkv:cap` tag found the candidate,
    // and anyone who may tag the secret can write it.
    let Some(key) = budget::raise_current(deps, &r.secret, &r.hash).await? else {
        return Ok(());
    };
    let limit = key.limit.unwrap_or_default();
    if limit > r.listed {
        report.budgets_refilled += 1;
        info!(event = "BudgetRefilled", secret = %r.secret, key_hash = %r.hash, from = r.listed, to = limit, "the key's limit is back to what its logical key's cap allows");
        report.note(
            SweepAction::BudgetRefilled,
            &r.secret,
            format!("{:.2} to {limit:.2} USD", r.listed),
        );
    }
    Ok(())
}
