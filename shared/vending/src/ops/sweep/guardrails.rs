//! Keys missing their guardrail: every working current key in a workspace whose policy entry
//! names a guardrail must carry it. Each guardrail's assignments are listed once per run (one
//! call per hundred keys assigned); a key without it is reported (`KeysMissingGuardrail`) and,
//! with `ORKV_DRIFT=repair`, assigned it and read back. Nothing runs when the policy names no
//! guardrail, so the sweep's calls are unchanged then.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use tracing::warn;

use crate::deps::Deps;
use crate::error::VendError;

use super::DEADLINE_MARGIN;
use super::report::{SweepAction, SweepReport};
use crate::ops::guardrail;

/// Checks the `working` current keys, (secret, key hash, workspace id) each.
pub(super) async fn check_guardrails(
    deps: &Deps,
    working: Vec<(String, String, String)>,
    dry_run: bool,
    deadline: Instant,
    report: &mut SweepReport,
) {
    let mut assigned: HashMap<String, HashSet<String>> = HashMap::new();
    for (secret, hash, ws) in working {
        if Instant::now() + DEADLINE_MARGIN >= deadline {
            return;
        }
        if let Err(e) =
            check_guardrail(deps, &secret, &hash, &ws, dry_run, &mut assigned, report).await
        {
            warn!(secret = %secret, error_type = e.kind(), error = %e, "could not check a key's guardrail; the next run repeats it");
        }
    }
}

async fn check_guardrail(
    deps: &Deps,
    secret: &str,
    hash: &str,
    ws: &str,
    dry_run: bool,
    assigned: &mut HashMap<String, HashSet<String>>,
    report: &mut SweepReport,
) -> Result<(), VendError> {
    let Some(guardrail) = guardrail::guardrail_for(deps, secret, ws).await? else {
        return Ok(());
    };
    if !assigned.contains_key(&guardrail) {
        let set = deps
            .openrouter()
            .await?
            .guardrail_key_hashes(&guardrail)
            .await?;
        assigned.insert(guardrail.clone(), set);
    }
    if assigned.get(&guardrail).is_some_and(|s| s.contains(hash)) {
        return Ok(());
    }
    report.keys_missing_guardrail += 1;
    warn!(event = "KeyMissingGuardrail", secret = %secret, key_hash = %hash, guardrail_id = %guardrail, "a current key does not carry its workspace's guardrail");
    report.note(SweepAction::GuardrailMissing, secret, guardrail.clone());
    if dry_run || !deps.cfg.repair_drift {
        return Ok(());
    }
    let client = deps.openrouter().await?;
    client.assign_keys(&guardrail, &[hash]).await?;
    // The claim "repaired" rests on reading the assignments back.
    let now = client.guardrail_key_hashes(&guardrail).await?;
    if now.contains(hash) {
        report.guardrails_repaired += 1;
        report.note(SweepAction::GuardrailRepaired, secret, guardrail.clone());
    }
    assigned.insert(guardrail, now);
    Ok(())
}
