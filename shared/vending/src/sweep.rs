//! The scheduled sweep (EventBridge Scheduler input; the execution id is the run's identity).
//!
//! It pages through the managed secrets with `ListSecrets` and a tag filter (one call per 100)
//! and decides from the tags alone what is due, so secrets that are not due cost nothing more:
//! - rotation, when the key's `orkv:rotate-at` has passed (started with a token derived from
//!   the secret and its generation, so concurrent sweeps and repeated deliveries share one
//!   rotation);
//! - retirement of superseded keys whose `orkv:retire:<hash>` time has passed: disable, delete,
//!   confirm by reading back (404), never a key `AWSCURRENT` or `AWSPENDING` references;
//! - warnings for keys near expiry that could not be rotated.
//!
//! Once every page has been seen it lists the known workspaces' keys to find orphans (keys
//! named by this product that no managed secret references, older than a minimum age,
//! confirmed by reading the secret they name) and keys low on remaining spend.
//! Work runs with bounded concurrency and stops cleanly before the Lambda deadline; the next
//! run picks up what is left, because the tags still say it is due. A dry run reports and
//! changes nothing. Memory holds one page plus 8 bytes per referenced key.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use orkv_openrouter::{ErrorKind, KeyPatch};
use orkv_store::SecretSummary;
use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tracing::{info, warn};

use crate::driver::RotationStart;
use crate::error::VendError;
use crate::provision::{Deps, tags};
use crate::record::{MANAGED_BY, RecordState, SecretRecord};
use crate::rotate::{AWSCURRENT, AWSPENDING, retire_tag, retiring, rotation_token};

/// Time kept back from the Lambda deadline.
const DEADLINE_MARGIN: Duration = Duration::from_secs(3);
/// Actions listed in the reply (counters are always complete).
const MAX_LISTED_ACTIONS: usize = 200;
/// CloudWatch namespace of the Embedded Metric Format line.
pub const METRIC_NAMESPACE: &str = "OpenRouterKeyVending";

/// The scheduler's input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepInput {
    pub run_id: String,
    pub dry_run: bool,
}

impl SweepInput {
    /// Parses `{"execution_id"?, "scheduled_time"?, "dry_run"?}` (or nothing), or an
    /// EventBridge `Scheduled Event` envelope.
    ///
    /// # Errors
    /// [`VendError::Invalid`] naming the field and the rule.
    pub fn parse(v: &Value) -> Result<Self, VendError> {
        let obj = match v {
            Value::Null => return Ok(Self::fresh(None, false)),
            Value::Object(o) => o,
            _ => {
                return Err(VendError::invalid(
                    "(input)",
                    "must be a JSON object (execution_id, scheduled_time, dry_run) or empty",
                ));
            }
        };
        if let Some(t) = obj.get("detail-type") {
            if t.as_str() != Some("Scheduled Event") {
                return Err(VendError::UnsupportedEvent {
                    detail_type: t.as_str().unwrap_or("").chars().take(128).collect(),
                });
            }
            let id = obj.get("id").and_then(Value::as_str).map(str::to_owned);
            return Ok(Self::fresh(id, false));
        }
        for key in obj.keys() {
            if !["execution_id", "scheduled_time", "dry_run"].contains(&key.as_str()) {
                return Err(VendError::invalid(
                    key.chars().take(64).collect::<String>(),
                    "is not a sweep input field (execution_id, scheduled_time, dry_run)",
                ));
            }
        }
        let run_id = match obj.get("execution_id") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if !s.is_empty() && s.len() <= 128 => Some(s.clone()),
            Some(_) => {
                return Err(VendError::invalid(
                    "execution_id",
                    "must be a string of 1-128 characters",
                ));
            }
        };
        match obj.get("scheduled_time") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if OffsetDateTime::parse(s, &Rfc3339).is_ok() => {}
            Some(_) => {
                return Err(VendError::invalid(
                    "scheduled_time",
                    "must be an RFC 3339 timestamp",
                ));
            }
        }
        let dry_run = match obj.get("dry_run") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(VendError::invalid("dry_run", "must be true or false")),
        };
        Ok(Self::fresh(run_id, dry_run))
    }

    fn fresh(run_id: Option<String>, dry_run: bool) -> Self {
        Self {
            run_id: run_id.unwrap_or_else(|| format!("run-{}", uuid::Uuid::new_v4())),
            dry_run,
        }
    }
}

/// One thing the sweep did or would do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Action {
    pub action: &'static str,
    pub secret: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// What a run did. Never holds a plaintext.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SweepReport {
    pub run_id: String,
    pub dry_run: bool,
    /// Every page was scanned and every due item handled.
    pub complete: bool,
    pub secrets_scanned: u64,
    pub list_calls: u32,
    pub rotations_due: u64,
    pub rotations_started: u64,
    pub rotations_completed: u64,
    pub rotations_already_done: u64,
    pub rotations_in_progress: u64,
    pub rotation_failures: u64,
    pub retirements_due: u64,
    pub keys_retired: u64,
    pub retirements_blocked: u64,
    pub orphans_found: u64,
    pub orphans_deleted: u64,
    pub keys_near_expiry: u64,
    pub low_spend_keys: u64,
    pub actions: Vec<Action>,
}

impl SweepReport {
    fn note(&mut self, action: &'static str, secret: &str, detail: String) {
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
            ("RotationFailures", self.rotation_failures),
            ("KeysRetired", self.keys_retired),
            ("RetirementsBlocked", self.retirements_blocked),
            ("OrphansFound", self.orphans_found),
            ("OrphansDeleted", self.orphans_deleted),
            ("KeysNearExpiry", self.keys_near_expiry),
            ("LowSpendKeys", self.low_spend_keys),
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
}

fn h64(s: &str) -> u64 {
    let mut h = DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

fn tag_time(s: &SecretSummary, key: &str) -> Option<OffsetDateTime> {
    s.tag(key)
        .and_then(|v| OffsetDateTime::parse(v, &Rfc3339).ok())
}

enum Work {
    Rotate {
        name: String,
        token: String,
        near_expiry: bool,
    },
    Retire {
        name: String,
        arn: String,
        hashes: Vec<String>,
    },
}

enum Done {
    Rotation(String, Result<RotationStart, VendError>, bool),
    Retired {
        name: String,
        retired: Vec<String>,
        blocked: Vec<(String, String)>,
        error: Option<VendError>,
    },
    WouldRotate(String),
    WouldRetire(String, Vec<String>),
    OutOfTime,
}

impl Deps {
    /// One sweep run.
    ///
    /// # Errors
    /// Only when the scan itself cannot start (configuration, first page); later failures are
    /// counted in the report and retried by the next run.
    pub async fn sweep(
        &self,
        input: &SweepInput,
        deadline: Instant,
    ) -> Result<SweepReport, VendError> {
        let now = self.clock.now();
        let report = SweepReport {
            run_id: input.run_id.clone(),
            dry_run: input.dry_run,
            ..SweepReport::default()
        };
        // Pages are listed by a producer and their work handed to a pool of
        // `sweep_concurrency` workers through a small bounded queue: the next page is listed
        // while the current one's rotations run, and no page waits for the slowest item of the
        // one before it.
        let shared = std::sync::Mutex::new((report, true));
        let (tx, rx) = tokio::sync::mpsc::channel::<Work>(self.cfg.sweep_concurrency * 2);
        let producer = async {
            let tx = tx;
            let mut referenced: HashSet<u64> = HashSet::new();
            let mut next: Option<String> = None;
            loop {
                if Instant::now() + DEADLINE_MARGIN >= deadline {
                    if let Ok(mut g) = shared.lock() {
                        g.1 = false;
                    }
                    break;
                }
                let (page, token) = self
                    .store
                    .list_tagged_page(tags::MANAGED_BY, MANAGED_BY, next.take())
                    .await?;
                let work = match shared.lock() {
                    Ok(mut g) => self.plan_page(&mut g.0, &page, now, &mut referenced),
                    Err(_) => Vec::new(),
                };
                drop(page);
                for w in work {
                    if tx.send(w).await.is_err() {
                        break;
                    }
                }
                match token {
                    Some(t) => next = Some(t),
                    None => break,
                }
            }
            Ok::<_, VendError>(referenced)
        };
        let consumer =
            futures_util::stream::unfold(
                rx,
                |mut rx| async move { rx.recv().await.map(|w| (w, rx)) },
            )
            .map(|w| self.do_work(w, input.dry_run, deadline))
            .buffer_unordered(self.cfg.sweep_concurrency)
            .for_each(|done| {
                if let Ok(mut g) = shared.lock() {
                    let (report, complete) = &mut *g;
                    self.tally(report, done, complete);
                }
                futures_util::future::ready(())
            });
        let (produced, ()) = futures_util::future::join(producer, consumer).await;
        let referenced = produced?;
        let (mut report, mut complete) = shared
            .into_inner()
            .map_err(|_| VendError::Config("sweep state poisoned".into()))?;
        if complete
            && let Err(e) = self
                .scan_keys(&referenced, now, input.dry_run, deadline, &mut report)
                .await
        {
            warn!(error_type = e.kind(), error = %e, "key scan failed; the next run repeats it");
            complete = false;
        }
        report.complete = complete;
        info!(
            run_id = %report.run_id,
            dry_run = report.dry_run,
            complete = report.complete,
            scanned = report.secrets_scanned,
            list_calls = report.list_calls,
            rotations_due = report.rotations_due,
            retired = report.keys_retired,
            orphans = report.orphans_found,
            "sweep finished"
        );
        Ok(report)
    }

    /// Reads one page of managed secrets: counts, warnings, and the work it holds (tags only).
    fn plan_page(
        &self,
        report: &mut SweepReport,
        page: &[SecretSummary],
        now: OffsetDateTime,
        referenced: &mut HashSet<u64>,
    ) -> Vec<Work> {
        report.list_calls += 1;
        let mut work = Vec::new();
        for s in page {
            report.secrets_scanned += 1;
            if s.tag(tags::MANAGED_BY) != Some(MANAGED_BY) || s.tag(tags::REVOKED).is_some() {
                continue;
            }
            if let Some(n) = s.tag(tags::OPENROUTER_KEY) {
                referenced.insert(h64(n));
            }
            let mut due_hashes = Vec::new();
            for (hash, at) in retiring(&s.tags) {
                referenced.insert(h64(&hash));
                if at <= now {
                    due_hashes.push(hash);
                }
            }
            if !due_hashes.is_empty() {
                report.retirements_due += due_hashes.len() as u64;
                work.push(Work::Retire {
                    name: s.name.clone(),
                    arn: s.arn.clone(),
                    hashes: due_hashes,
                });
            }
            let expires_at = tag_time(s, tags::EXPIRES_AT);
            let near_expiry = expires_at.is_some_and(|e| {
                e <= now
                    + time::Duration::try_from(self.cfg.expiry_warning)
                        .unwrap_or(time::Duration::DAY)
            });
            let fixed = s.tag(tags::LIFETIME).is_some_and(|l| l.starts_with("at:"));
            let due = tag_time(s, tags::ROTATE_AT).is_some_and(|r| r <= now);
            if fixed {
                if near_expiry {
                    report.keys_near_expiry += 1;
                    warn!(event = "KeyNearExpiry", secret = %s.name, expires_at = s.tag(tags::EXPIRES_AT).unwrap_or(""), reason = "fixed expires_at: a rotation cannot extend it", "key close to expiry");
                    report.note("warn_near_expiry", &s.name, "fixed expires_at".into());
                }
                continue;
            }
            if due {
                let generation = s
                    .tag(tags::GENERATION)
                    .and_then(|g| g.parse::<u64>().ok())
                    .unwrap_or(1);
                report.rotations_due += 1;
                work.push(Work::Rotate {
                    name: s.name.clone(),
                    token: rotation_token(&s.name, generation),
                    near_expiry,
                });
            }
        }
        work
    }

    fn tally(&self, report: &mut SweepReport, r: Done, complete: &mut bool) {
        match r {
            Done::Rotation(name, Ok(start), _) => {
                match start {
                    RotationStart::Started => report.rotations_started += 1,
                    RotationStart::Completed => report.rotations_completed += 1,
                    RotationStart::AlreadyCurrent => report.rotations_already_done += 1,
                    RotationStart::InProgress => report.rotations_in_progress += 1,
                }
                report.note("rotate", &name, format!("{start:?}").to_lowercase());
            }
            Done::Rotation(name, Err(e), near_expiry) => {
                report.rotation_failures += 1;
                warn!(event = "RotationFailed", secret = %name, error_type = e.kind(), error = %e, "rotation could not be started");
                if near_expiry {
                    report.keys_near_expiry += 1;
                    warn!(event = "KeyNearExpiry", secret = %name, reason = "rotation failed", "key close to expiry");
                }
                report.note("rotation_failed", &name, e.kind().to_owned());
                *complete = false;
            }
            Done::Retired {
                name,
                retired,
                blocked,
                error,
            } => {
                for h in retired {
                    report.keys_retired += 1;
                    report.note("retired", &name, h);
                }
                for (h, why) in blocked {
                    report.retirements_blocked += 1;
                    report.note("retirement_blocked", &name, format!("{h}: {why}"));
                }
                if let Some(e) = error {
                    warn!(event = "RetirementFailed", secret = %name, error_type = e.kind(), error = %e, "retirement failed; the next run retries");
                    report.note("retirement_failed", &name, e.kind().to_owned());
                    *complete = false;
                }
            }
            Done::WouldRotate(name) => report.note("would_rotate", &name, String::new()),
            Done::WouldRetire(name, hashes) => {
                for h in hashes {
                    report.note("would_retire", &name, h);
                }
            }
            Done::OutOfTime => *complete = false,
        }
    }

    async fn do_work(&self, w: Work, dry_run: bool, deadline: Instant) -> Done {
        if Instant::now() + DEADLINE_MARGIN >= deadline {
            return Done::OutOfTime;
        }
        match w {
            Work::Rotate {
                name,
                token,
                near_expiry,
            } => {
                if dry_run {
                    return Done::WouldRotate(name);
                }
                let r = self.start_rotation(&name, &token).await;
                Done::Rotation(name, r, near_expiry)
            }
            Work::Retire { name, arn, hashes } => {
                if dry_run {
                    return Done::WouldRetire(name, hashes);
                }
                let mut retired = Vec::new();
                let mut blocked = Vec::new();
                let error = self
                    .retire(&arn, &hashes, &mut retired, &mut blocked)
                    .await
                    .err();
                Done::Retired {
                    name,
                    retired,
                    blocked,
                    error,
                }
            }
        }
    }

    /// Retires the due superseded keys of one secret.
    async fn retire(
        &self,
        arn: &str,
        hashes: &[String],
        retired: &mut Vec<String>,
        blocked: &mut Vec<(String, String)>,
    ) -> Result<(), VendError> {
        let current = self.store.get(arn, AWSCURRENT).await?;
        let pending = self.store.get(arn, AWSPENDING).await?;
        let hash_of = |v: &Option<orkv_store::SecretVersion>| {
            v.as_ref()
                .and_then(|v| SecretRecord::from_secret(&v.value))
                .and_then(Result::ok)
                .and_then(|r| r.key_hash)
        };
        let protected: Vec<String> = [hash_of(&current), hash_of(&pending)]
            .into_iter()
            .flatten()
            .collect();
        let in_progress = match (&current, &pending) {
            (Some(c), Some(p)) => c.version_id != p.version_id,
            (None, Some(_)) => true,
            _ => false,
        };
        let client = self.openrouter().await?;
        for hash in hashes {
            if protected.contains(hash) {
                if in_progress {
                    blocked.push((hash.clone(), "referenced by AWSPENDING".into()));
                } else {
                    // A stale tag (the key is current again after a failed finish): drop it.
                    blocked.push((hash.clone(), "referenced by AWSCURRENT".into()));
                    self.store.untag(arn, &[retire_tag(hash)]).await?;
                }
                continue;
            }
            let disable = KeyPatch {
                disabled: Some(true),
                ..KeyPatch::default()
            };
            match client.update_key(hash, &disable).await {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
            let deleted = client.delete_key(hash).await?;
            match client.get_key(hash).await {
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Ok(_) => {
                    blocked.push((hash.clone(), "still listed after delete".into()));
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
            self.store.untag(arn, &[retire_tag(hash)]).await?;
            if deleted {
                info!(key_hash = %hash, "superseded key retired (disabled, deleted, confirmed 404)");
                retired.push(hash.clone());
            }
        }
        Ok(())
    }

    /// Lists the known workspaces' keys: orphans and low remaining spend.
    async fn scan_keys(
        &self,
        referenced: &HashSet<u64>,
        now: OffsetDateTime,
        dry_run: bool,
        deadline: Instant,
        report: &mut SweepReport,
    ) -> Result<(), VendError> {
        let workspaces: Vec<String> = self
            .workspaces()
            .await?
            .iter()
            .filter(|w| self.cfg.policy.entry_for(&w.id, &w.slug, &w.name).is_some())
            .map(|w| w.id.clone())
            .collect();
        let client = self.openrouter().await?;
        let min_age =
            time::Duration::try_from(self.cfg.orphan_min_age).unwrap_or(time::Duration::MINUTE);
        let fraction = self.cfg.low_spend_fraction;
        for ws in workspaces {
            let mut candidates = Vec::new();
            let mut low = Vec::new();
            // Names a secret references that more than one key carries: an attempt whose
            // key was never stored (its plaintext is lost) left one behind.
            let mut seen_names: HashSet<u64> = HashSet::new();
            let mut dup_names: HashSet<u64> = HashSet::new();
            client
                .for_each_key_page(Some(&ws), true, |page| {
                    for k in page {
                        if !k.name.starts_with("orkv:") {
                            continue;
                        }
                        let name_h = h64(&k.name);
                        if referenced.contains(&name_h) {
                            if !seen_names.insert(name_h) {
                                dup_names.insert(name_h);
                            }
                            if let (Some(limit), Some(left)) = (k.limit, k.limit_remaining)
                                && limit > 0.0
                                && left < limit * fraction
                                && !k.disabled
                            {
                                low.push((k.name.clone(), k.hash.clone(), left, limit));
                            }
                        } else if !referenced.contains(&h64(&k.hash))
                            && now - k.created_at >= min_age
                        {
                            candidates.push((k.name, k.hash));
                        }
                    }
                    true
                })
                .await?;
            if !dup_names.is_empty() {
                // Rare: list this workspace again for those names (each key is then checked
                // against the secret's versions by hash before anything is deleted).
                client
                    .for_each_key_page(Some(&ws), true, |page| {
                        candidates.extend(
                            page.into_iter()
                                .filter(|k| {
                                    dup_names.contains(&h64(&k.name))
                                        && now - k.created_at >= min_age
                                })
                                .map(|k| (k.name, k.hash)),
                        );
                        true
                    })
                    .await?;
            }
            for (name, hash, left, limit) in low {
                report.low_spend_keys += 1;
                warn!(event = "LowRemainingSpend", key_hash = %hash, openrouter_key_name = %name, limit_remaining = left, limit, "key close to its spend cap");
                report.note(
                    "warn_low_spend",
                    &name,
                    format!("{left} of {limit} USD left"),
                );
            }
            for (name, hash) in candidates {
                if Instant::now() + DEADLINE_MARGIN >= deadline {
                    return Ok(());
                }
                if self.still_referenced(&name, &hash).await? {
                    continue;
                }
                report.orphans_found += 1;
                warn!(event = "OrphanKey", key_hash = %hash, openrouter_key_name = %name, "key named by this product that no managed secret references");
                if dry_run || !self.cfg.delete_orphans {
                    report.note("orphan_reported", &name, hash);
                    continue;
                }
                match client.delete_key(&hash).await {
                    Ok(_) => {
                        report.orphans_deleted += 1;
                        report.note("orphan_deleted", &name, hash);
                    }
                    Err(e) => warn!(key_hash = %hash, error = %e, "could not delete an orphan"),
                }
            }
        }
        Ok(())
    }

    /// Reads the secret a product key name points at: does its current or pending version
    /// (or a retirement tag) reference the key?
    async fn still_referenced(&self, key_name: &str, hash: &str) -> Result<bool, VendError> {
        let Some(secret) = key_name
            .strip_prefix("orkv:")
            .and_then(|rest| rest.rsplit_once(':'))
            .map(|(s, _)| s)
        else {
            return Ok(false);
        };
        let Some(desc) = self.store.describe(secret).await? else {
            return Ok(false);
        };
        if desc.deleted || desc.tag(tags::REVOKED).is_some() {
            return Ok(false);
        }
        if retiring(&desc.tags).iter().any(|(h, _)| h == hash) {
            return Ok(true);
        }
        for stage in [AWSCURRENT, AWSPENDING] {
            if let Some(v) = self.store.get(&desc.arn, stage).await?
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
}

/// The sweep Lambda handler: prints the EMF metrics line and answers the report.
///
/// # Errors
/// A `Diagnostic` whose `error_type` is the [`VendError`] kind.
pub async fn handle_lambda(
    deps: &Deps,
    event: lambda_runtime::LambdaEvent<Value>,
) -> Result<Value, lambda_runtime::Diagnostic> {
    let deadline = crate::provision::lambda_deadline(event.context.deadline);
    let input = SweepInput::parse(&event.payload).map_err(lambda_runtime::Diagnostic::from)?;
    match Box::pin(deps.sweep(&input, deadline)).await {
        Ok(report) => {
            println!("{}", report.emf(deps.clock().now()));
            serde_json::to_value(&report).map_err(|e| lambda_runtime::Diagnostic {
                error_type: "ReplyEncoding".into(),
                error_message: e.to_string(),
            })
        }
        Err(e) => {
            warn!(error_type = e.kind(), error = %e, "sweep failed");
            Err(e.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduler_input_is_checked_field_by_field() {
        let ok = SweepInput::parse(&json!({"execution_id": "e-1", "scheduled_time": "2026-11-22T10:00:00Z", "dry_run": true})).expect("valid");
        assert_eq!(ok.run_id, "e-1");
        assert!(ok.dry_run);
        assert!(
            SweepInput::parse(&Value::Null)
                .expect("empty")
                .run_id
                .starts_with("run-")
        );
        for (v, field) in [
            (json!({"dry_run": "yes"}), "dry_run"),
            (json!({"execution_id": 3}), "execution_id"),
            (json!({"scheduled_time": "tomorrow"}), "scheduled_time"),
            (json!({"dryrun": true}), "dryrun"),
            (json!([1]), "(input)"),
        ] {
            let err = SweepInput::parse(&v).expect_err("refused");
            assert!(err.to_string().contains(&format!("`{field}`")), "{err}");
        }
        let env = SweepInput::parse(&json!({"id": "ev-9", "detail-type": "Scheduled Event", "source": "aws.scheduler", "detail": {}})).expect("envelope");
        assert_eq!(env.run_id, "ev-9");
    }

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
