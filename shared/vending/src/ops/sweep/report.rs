//! What a sweep run did: counters, a bounded list of actions, and the CloudWatch Embedded
//! Metric Format line the alarms read.

use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use tracing::warn;

use crate::deps::RotationStart;
use crate::error::VendError;
use crate::ops::inventory::InventorySummary;

/// Actions listed in the reply (counters are always complete).
const MAX_LISTED_ACTIONS: usize = 200;
/// CloudWatch namespace of the Embedded Metric Format line.
pub const METRIC_NAMESPACE: &str = "OpenRouterKeyVending";

/// What the sweep did or would do to one secret or key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SweepAction {
    /// A rotation was started (the detail says how it ended).
    Rotate,
    RotationFailed,
    Retired,
    RetirementBlocked,
    RetirementFailed,
    WouldRotate,
    WouldRetire,
    WarnNearExpiry,
    WarnLowSpend,
    OrphanReported,
    OrphanDeleted,
    /// The current key does not work (deleted, disabled or expired out of band).
    CurrentKeyBroken,
    /// ... and a rotation replaced it.
    CurrentKeyRepaired,
    /// A key in a known workspace the product did not name and no secret references.
    UnmanagedKey,
    /// A current key's cap is not its secret's (changed behind the product's back).
    CapDrift,
    /// ... changed too recently, or during a rotation: left for later.
    CapDriftRecent,
    /// ... and was put back (read back from OpenRouter).
    CapDriftRepaired,
    /// The secret's current value was replaced by something that is not the product's record:
    /// reported, never overwritten.
    SecretValueReplaced,
    /// A current key's limit was raised to what its logical key's budget allows (a period
    /// boundary, or superseded keys retired): ADR 0010.
    BudgetRefilled,
    WouldRefill,
    /// A current key does not carry the guardrail its workspace's policy names.
    GuardrailMissing,
    /// ... and was assigned it (`ORKV_DRIFT=repair`), read back.
    GuardrailRepaired,
    /// A current key nobody has used for `ORKV_IDLE_KEY_SECONDS`.
    IdleKey,
    /// A current key that never expires (an adopted one).
    KeyWithoutExpiry,
    /// An active secret without rotation configured (a crash between its creation and the
    /// configuration, or an adopted secret) ...
    RotationNotConfigured,
    /// ... and rotation was configured (`RotateSecret` without rotating, read back).
    RotationConfigured,
    /// A rotation's `AWSPENDING` version is older than `ORKV_ROTATION_STALL_SECONDS` ...
    RotationStalled,
    /// ... and its steps were run again and it finished (read back).
    RotationResumed,
    /// A workspace logs the I/O of keys it lists by id, which rotation replaces.
    WorkspaceLogsKeysById,
}

/// One thing the sweep did or would do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Action {
    pub action: SweepAction,
    pub secret: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// How one piece of work ended.
pub(super) enum Done {
    Rotation(String, Result<RotationStart, VendError>, bool),
    Retired {
        name: String,
        retired: Vec<String>,
        blocked: Vec<(String, String)>,
        error: Option<VendError>,
    },
    WouldRotate(String),
    WouldRetire(String, Vec<String>),
    /// Listed as due; `DescribeSecret` showed it rotated, revoked or gone since.
    NoLongerDue(String),
    OutOfTime,
    /// A value check: why `AWSCURRENT` is not the product's record, if it is not.
    ValueChecked(String, Option<&'static str>),
    /// A rotation left pending: `Ok(None)` still within its time (or gone), `Ok(Some(true))`
    /// stalled and resumed (read back), `Ok(Some(false))` stalled and left (this starter cannot
    /// run steps, or a dry run).
    Pending(String, Result<Option<bool>, VendError>),
    /// Rotation was not configured: whether it is now (`Ok(false)`: left alone, a dry run or
    /// no function to configure it with).
    Configured(String, Result<bool, VendError>),
}

/// What a run did. Never holds a plaintext.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SweepReport {
    pub run_id: String,
    pub dry_run: bool,
    /// Every page was listed and every due item visited within the run's time, so the key
    /// scan ran. A secret whose work failed does not make the run incomplete: it is counted
    /// (`rotation_failures`, `retirements_blocked`) and every other secret's work goes on.
    pub complete: bool,
    pub secrets_scanned: u64,
    pub list_calls: u32,
    pub rotations_due: u64,
    /// Due, but beyond this run's budget (`ORKV_SWEEP_MAX_ROTATIONS`): left to later runs.
    pub rotations_deferred: u64,
    /// Due when listed, no longer due when described (rotated meanwhile; `ListSecrets` lags).
    pub rotations_no_longer_due: u64,
    pub rotations_started: u64,
    pub rotations_completed: u64,
    pub rotations_already_done: u64,
    pub rotations_in_progress: u64,
    pub rotation_failures: u64,
    /// Active secrets listed without rotation configured, and those configured by this run.
    pub rotations_not_configured: u64,
    pub rotations_configured: u64,
    /// Rotations left pending past `ORKV_ROTATION_STALL_SECONDS`, and those this run resumed.
    pub rotations_stalled: u64,
    pub rotations_resumed: u64,
    pub retirements_due: u64,
    pub keys_retired: u64,
    pub retirements_blocked: u64,
    pub orphans_found: u64,
    pub orphans_deleted: u64,
    /// Secrets whose current key no longer works (deleted, disabled or expired out of band),
    /// confirmed by reading the secret and the key.
    pub current_keys_broken: u64,
    /// Of those, the ones a rotation started now replaced.
    pub current_keys_repaired: u64,
    /// Keys in known workspaces that no managed secret references and that do not carry the
    /// product's naming (made in the dashboard or by another tool): reported, never deleted.
    pub unmanaged_keys: u64,
    /// Current keys whose cap (limit, reset, BYOK) is not their secret's, confirmed by
    /// reading the record.
    pub keys_drifted: u64,
    /// Of those, the ones put back (`ORKV_DRIFT=repair`).
    pub keys_drift_repaired: u64,
    /// Managed secrets whose current value is not the product's record (written by hand or by
    /// another tool): reported, never overwritten.
    pub secret_values_replaced: u64,
    pub keys_near_expiry: u64,
    pub low_spend_keys: u64,
    /// Current keys whose limit was raised back to their budget's allowance (ADR 0010).
    pub budgets_refilled: u64,
    /// Current keys without the guardrail the policy names, and those assigned it.
    pub keys_missing_guardrail: u64,
    pub guardrails_repaired: u64,
    /// Current keys whose `last_used_at` is older than `ORKV_IDLE_KEY_SECONDS`.
    pub idle_keys: u64,
    /// Current keys without an expiry (only adopted keys can be).
    pub keys_without_expiry: u64,
    /// Workspaces whose I/O logging lists keys by id (each listed key's logging stops at its
    /// first rotation).
    pub workspaces_logging_keys_by_id: u64,
    /// Per tenant: what the listing shows it owns (the inventory action's fields, summed).
    pub inventory: InventorySummary,
    /// Per tenant and workspace: spend in the caps' current periods, caps, headroom.
    pub spend: Vec<WorkspaceSpend>,
    pub actions: Vec<Action>,
}

/// What one tenant's keys in one workspace spent, as the EMF line and the report tell it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkspaceSpend {
    pub tenant: String,
    pub workspace: String,
    /// Logical keys (secrets).
    pub keys: u64,
    /// Spent in each cap's current period, every generation included.
    pub spend_usd: f64,
    /// Sum of the current generations' caps.
    pub cap_usd: f64,
    /// Sum over the logical keys of what their caps leave (never below zero).
    pub headroom_usd: f64,
    /// Logical keys whose remainder is below the low-spend fraction of their cap.
    pub keys_low_on_headroom: u64,
}

impl WorkspaceSpend {
    /// The EMF document of this tenant and workspace (dimensions `Tenant`, `Workspace`).
    #[must_use]
    pub fn emf(&self, at: OffsetDateTime) -> Value {
        json!({
            "_aws": {
                "Timestamp": at.unix_timestamp() * 1000,
                "CloudWatchMetrics": [{
                    "Namespace": METRIC_NAMESPACE,
                    "Dimensions": [["Tenant", "Workspace"]],
                    "Metrics": [
                        {"Name": "SpendUsd", "Unit": "None"},
                        {"Name": "CapUsd", "Unit": "None"},
                        {"Name": "HeadroomUsd", "Unit": "None"},
                        {"Name": "KeysLowOnHeadroom", "Unit": "Count"},
                    ],
                }],
            },
            "Tenant": self.tenant,
            "Workspace": self.workspace,
            "SpendUsd": self.spend_usd,
            "CapUsd": self.cap_usd,
            "HeadroomUsd": self.headroom_usd,
            "KeysLowOnHeadroom": self.keys_low_on_headroom,
        })
    }
}

impl SweepReport {
    pub(super) fn note(&mut self, action: SweepAction, secret: &str, detail: String) {
        if self.actions.len() < MAX_LISTED_ACTIONS {
            self.actions.push(Action {
                action,
                secret: secret.to_owned(),
                detail,
            });
        }
    }

    /// The CloudWatch Embedded Metric Format document for this run.
    #[must_use]
    pub fn emf(&self, at: OffsetDateTime) -> Value {
        let metrics = [
            ("SecretsScanned", self.secrets_scanned),
            ("RotationsDue", self.rotations_due),
            (
                "RotationsStarted",
                self.rotations_started + self.rotations_completed,
            ),
            ("RotationsDeferred", self.rotations_deferred),
            ("RotationFailures", self.rotation_failures),
            ("RotationsNotConfigured", self.rotations_not_configured),
            ("RotationsStalled", self.rotations_stalled),
            ("KeysRetired", self.keys_retired),
            ("RetirementsBlocked", self.retirements_blocked),
            ("OrphansFound", self.orphans_found),
            ("OrphansDeleted", self.orphans_deleted),
            ("CurrentKeysBroken", self.current_keys_broken),
            ("CurrentKeysRepaired", self.current_keys_repaired),
            ("UnmanagedKeys", self.unmanaged_keys),
            ("KeysDrifted", self.keys_drifted),
            ("KeysDriftRepaired", self.keys_drift_repaired),
            ("SecretValuesReplaced", self.secret_values_replaced),
            ("KeysNearExpiry", self.keys_near_expiry),
            ("BudgetsRefilled", self.budgets_refilled),
            ("KeysMissingGuardrail", self.keys_missing_guardrail),
            ("GuardrailsRepaired", self.guardrails_repaired),
            ("LowSpendKeys", self.low_spend_keys),
            ("IdleKeys", self.idle_keys),
            ("KeysWithoutExpiry", self.keys_without_expiry),
            (
                "WorkspacesLoggingKeysById",
                self.workspaces_logging_keys_by_id,
            ),
            ("SweepIncomplete", u64::from(!self.complete)),
        ];
        let mut doc = json!({
            "_aws": {
                "Timestamp": at.unix_timestamp() * 1000,
                "CloudWatchMetrics": [{
                    "Namespace": METRIC_NAMESPACE,
                    "Dimensions": [["Function"]],
                    "Metrics": metrics.iter().map(|(n, _)| json!({"Name": n, "Unit": "Count"})).collect::<Vec<_>>(),
                }],
            },
            "Function": "sweep",
            "run_id": self.run_id,
            "dry_run": self.dry_run,
        });
        if let Some(o) = doc.as_object_mut() {
            for (n, v) in metrics {
                o.insert(n.to_owned(), json!(v));
            }
        }
        doc
    }

    pub(super) fn tally(&mut self, r: Done, complete: &mut bool) {
        match r {
            Done::Rotation(name, Ok(start), _) => {
                match start {
                    RotationStart::Started => self.rotations_started += 1,
                    RotationStart::Completed => self.rotations_completed += 1,
                    RotationStart::AlreadyCurrent => self.rotations_already_done += 1,
                    RotationStart::InProgress => self.rotations_in_progress += 1,
                }
                self.note(
                    SweepAction::Rotate,
                    &name,
                    format!("{start:?}").to_lowercase(),
                );
            }
            Done::Rotation(name, Err(e), near_expiry) => {
                self.rotation_failures += 1;
                warn!(event = "RotationFailed", secret = %name, error_type = e.kind(), error = %e, "rotation could not be started");
                if near_expiry {
                    self.keys_near_expiry += 1;
                    warn!(event = "KeyNearExpiry", secret = %name, reason = "rotation failed", "key close to expiry");
                }
                // One secret's failure is its own: it is reported (and alarmed), and every
                // other secret's work and the key scan still run.
                self.note(SweepAction::RotationFailed, &name, e.kind().to_owned());
            }
            Done::Retired {
                name,
                retired,
                blocked,
                error,
            } => {
                for h in retired {
                    self.keys_retired += 1;
                    self.note(SweepAction::Retired, &name, h);
                }
                for (h, why) in blocked {
                    self.retirements_blocked += 1;
                    self.note(SweepAction::RetirementBlocked, &name, format!("{h}: {why}"));
                }
                if let Some(e) = error {
                    warn!(event = "RetirementFailed", secret = %name, error_type = e.kind(), error = %e, "retirement failed; the next run retries");
                    self.retirements_blocked += 1;
                    self.note(SweepAction::RetirementFailed, &name, e.kind().to_owned());
                }
            }
            Done::WouldRotate(name) => self.note(SweepAction::WouldRotate, &name, String::new()),
            Done::NoLongerDue(name) => {
                self.rotations_no_longer_due += 1;
                self.note(SweepAction::Rotate, &name, "no longer due".into());
            }
            Done::WouldRetire(name, hashes) => {
                for h in hashes {
                    self.note(SweepAction::WouldRetire, &name, h);
                }
            }
            Done::OutOfTime => *complete = false,
            Done::ValueChecked(_, None) => {}
            Done::ValueChecked(name, Some(why)) => {
                self.secret_values_replaced += 1;
                warn!(event = "SecretValueReplaced", secret = %name, why, "a managed secret's current value is not the product's record; it is never overwritten");
                self.note(SweepAction::SecretValueReplaced, &name, why.to_owned());
            }
            Done::Pending(name, r) => self.tally_pending(name, r),
            Done::Configured(name, r) => self.tally_configured(name, r),
        }
    }

    fn tally_pending(&mut self, name: String, r: Result<Option<bool>, VendError>) {
        match r {
            Ok(None) => {}
            Ok(Some(resumed)) => {
                self.rotations_stalled += 1;
                warn!(event = "RotationStalled", secret = %name, resumed, "a rotation stayed pending past ORKV_ROTATION_STALL_SECONDS");
                self.note(SweepAction::RotationStalled, &name, String::new());
                if resumed {
                    self.rotations_resumed += 1;
                    self.note(SweepAction::RotationResumed, &name, String::new());
                }
            }
            Err(e) => {
                self.rotations_stalled += 1;
                warn!(event = "RotationStalled", secret = %name, error_type = e.kind(), error = %e, "a stalled rotation could not be resumed; the next run tries again");
                self.note(SweepAction::RotationStalled, &name, e.kind().to_owned());
            }
        }
    }

    fn tally_configured(&mut self, name: String, r: Result<bool, VendError>) {
        match r {
            Ok(true) => {
                self.rotations_configured += 1;
                self.note(SweepAction::RotationConfigured, &name, String::new());
            }
            Ok(false) => self.note(SweepAction::RotationNotConfigured, &name, String::new()),
            Err(e) => {
                warn!(event = "RotationNotConfigured", secret = %name, error_type = e.kind(), error = %e, "rotation could not be configured; the next run repeats it");
                self.note(
                    SweepAction::RotationNotConfigured,
                    &name,
                    e.kind().to_owned(),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_metrics_line_is_embedded_metric_format() {
        let r = SweepReport {
            run_id: "r".into(),
            keys_retired: 2,
            complete: true,
            ..SweepReport::default()
        };
        let doc = r.emf(time::macros::datetime!(2026-11-22 10:00:00 UTC));
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            METRIC_NAMESPACE
        );
        assert_eq!(doc["KeysRetired"], 2);
        assert_eq!(doc["SweepIncomplete"], 0);
        assert_eq!(doc["_aws"]["Timestamp"], 1_795_341_600_000_i64);
    }
}
