//! The scheduled sweep (EventBridge Scheduler input; the execution id is the run's identity).
//!
//! It pages through the managed secrets with `ListSecrets` and a tag filter (one call per 100)
//! and decides from the tags alone ([`plan`]) what is due, so secrets that are not due cost
//! nothing more:
//! - rotation, when the key's `orkv:rotate-at` has passed (started with a token derived from
//!   the secret and its generation, so concurrent sweeps and repeated deliveries share one
//!   rotation);
//! - retirement of superseded keys whose `orkv:retire:<hash>` time has passed: disable, delete,
//!   confirm by reading back (404), never a key `AWSCURRENT` or `AWSPENDING` references;
//! - warnings for keys near expiry that could not be rotated.
//!
//! Once every page has been seen it lists the known workspaces' keys ([`keys`]) to find
//! orphans (keys named by this product that no managed secret references, older than a
//! minimum age, confirmed by reading the secret they name), keys low on remaining spend, and
//! current keys that no longer work ([`broken`]: deleted, disabled or expired behind the
//! product's back; confirmed, then rotated at once).
//! Work runs with bounded concurrency and stops cleanly before the Lambda deadline; the next
//! run picks up what is left, because the tags still say it is due. A dry run reports and
//! changes nothing. Memory holds one page, 8 bytes per referenced key and about 60 per
//! secret (its current key's name hash and the secret's name).

mod broken;
mod drift;
mod guardrails;
mod hygiene;
mod keys;
mod plan;
mod refill;
pub mod report;
mod retiring;
mod spend;
mod stalled;

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::deps::Deps;
use crate::domain::record::{MANAGED_BY, SecretRecord};
use crate::domain::tags::{self, stage::AWSCURRENT};
use crate::error::VendError;
use crate::input::sweep::SweepInput;

use crate::ops::read;
use crate::ops::start;
use report::{Done, SweepReport};

/// Time kept back from the Lambda deadline.
const DEADLINE_MARGIN: Duration = Duration::from_secs(3);

/// The report and whether the run is still complete, shared by the lister and the workers.
type Shared = Mutex<(SweepReport, bool)>;

/// One piece of work a page holds.
#[derive(Debug, PartialEq)]
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
    /// `AWSCURRENT` is on a version the product did not write: read it (never overwrite).
    CheckValue { name: String },
    /// Rotation is not configured on an active secret: configure it.
    Configure { name: String },
    /// A rotation is pending on `version`: resume it if it has stalled.
    CheckPending { name: String, version: String },
}

/// Every secret's current key, by the hash of its name: (secret, workspace hash, the cap its
/// `orkv:cap` tag records).
type Current = std::collections::HashMap<u64, (Box<str>, u64, Option<orkv_openrouter::Cap>)>;

/// What the listing of every managed secret gathered for the key scan.
#[derive(Default)]
struct Listed {
    /// Hashes of every key name and superseded key hash the secrets reference.
    referenced: HashSet<u64>,
    current: Current,
    book: spend::SpendBook,
}

fn h64(s: &str) -> u64 {
    let mut h = DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

/// One sweep run.
///
/// # Errors
/// Only when the scan itself cannot start (configuration, first page); later failures are
/// counted in the report and retried by the next run.
pub async fn sweep(
    deps: &Deps,
    input: &SweepInput,
    deadline: Instant,
) -> Result<SweepReport, VendError> {
    let now = deps.clock.now();
    let report = SweepReport {
        run_id: input.run_id.clone(),
        dry_run: input.dry_run,
        ..SweepReport::default()
    };
    // Pages are listed by a producer and their work handed to a pool of
    // `sweep_concurrency` workers through a small bounded queue: the next page is listed
    // while the current one's rotations run, and no page waits for the slowest item of the
    // one before it.
    let shared: Shared = Mutex::new((report, true));
    let (tx, rx) = mpsc::channel::<Work>(deps.cfg.sweep_concurrency * 2);
    let producer = list_pages(deps, tx, &shared, now, deadline);
    let consumer =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|w| (w, rx)) })
            .map(|w| do_work(deps, w, input.dry_run, deadline))
            .buffer_unordered(deps.cfg.sweep_concurrency)
            .for_each(|done| {
                if let Ok(mut g) = shared.lock() {
                    let (report, complete) = &mut *g;
                    report.tally(done, complete);
                }
                futures_util::future::ready(())
            });
    let (produced, ()) = futures_util::future::join(producer, consumer).await;
    let listed = produced?;
    let (mut report, mut complete) = shared
        .into_inner()
        .map_err(|_| VendError::Config("sweep state poisoned".into()))?;
    if complete
        && let Err(e) =
            keys::scan_keys(deps, listed, now, input.dry_run, deadline, &mut report).await
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
    for (tenant, t) in &report.inventory.0 {
        info!(
            run_id = %report.run_id,
            tenant = %tenant,
            summary = %serde_json::to_string(t).unwrap_or_default(),
            "sweep inventory"
        );
    }
    Ok(report)
}

/// Lists every page of managed secrets and sends their work; answers the hashes of every
/// key name and key hash the secrets reference.
async fn list_pages(
    deps: &Deps,
    tx: mpsc::Sender<Work>,
    shared: &Shared,
    now: OffsetDateTime,
    deadline: Instant,
) -> Result<Listed, VendError> {
    let mut listed = Listed::default();
    let mut next: Option<String> = None;
    loop {
        if Instant::now() + DEADLINE_MARGIN >= deadline {
            if let Ok(mut g) = shared.lock() {
                g.1 = false;
            }
            break;
        }
        let (page, token) = deps
            .store
            .list_tagged_page(tags::MANAGED_BY, MANAGED_BY, next.take())
            .await?;
        let work = match shared.lock() {
            Ok(mut g) => plan::plan_page(
                plan::PlanLimits::of(&deps.cfg),
                &mut g.0,
                &page,
                now,
                &mut listed,
            ),
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
    Ok(listed)
}

async fn do_work(deps: &Deps, w: Work, dry_run: bool, deadline: Instant) -> Done {
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
            let r = match still_due(deps, &name, &token).await {
                Ok(Some(live)) => start::start_rotation(deps, &name, &live).await,
                Ok(None) => return Done::NoLongerDue(name),
                Err(e) => Err(e),
            };
            Done::Rotation(name, r, near_expiry)
        }
        Work::CheckValue { name } => match value_replaced(deps, &name).await {
            Ok(why) => Done::ValueChecked(name, why),
            Err(e) => {
                warn!(secret = %name, error_type = e.kind(), error = %e, "could not read a secret's current value; the next run repeats it");
                Done::ValueChecked(name, None)
            }
        },
        Work::CheckPending { name, version } => {
            let r = stalled::resume_if_stalled(deps, &name, &version, dry_run).await;
            Done::Pending(name, r)
        }
        Work::Configure { name } => {
            if dry_run {
                return Done::Configured(name, Ok(false));
            }
            let r = start::configure_if_needed(deps, &name).await;
            Done::Configured(name, r)
        }
        Work::Retire { name, arn, hashes } => {
            if dry_run {
                return Done::WouldRetire(name, hashes);
            }
            let mut retired = Vec::new();
            let mut blocked = Vec::new();
            let error =
                retiring::retire_due(deps, &name, &arn, &hashes, &mut retired, &mut blocked)
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

/// `DescribeSecret` before `RotateSecret`: `ListSecrets` may lag by minutes, so a secret
/// listed as due may have rotated (its generation moved on, or this token is current), been
/// revoked or deleted since. Answers the token to start with (a fresh attempt's when the
/// generation's rotation was abandoned), or `None` when it is no longer due.
async fn still_due(deps: &Deps, name: &str, token: &str) -> Result<Option<String>, VendError> {
    let Some(desc) = read::describe_ours(deps, name).await? else {
        return Ok(None);
    };
    if desc.deleted || desc.tag(tags::REVOKED).is_some() {
        return Ok(None);
    }
    let generation = desc
        .tag(tags::GENERATION)
        .and_then(|g| g.parse::<u64>().ok())
        .unwrap_or(1);
    if crate::domain::names::rotation_token(name, generation) != token {
        return Ok(None);
    }
    let live = start::live_token(deps, &desc, generation).await?;
    Ok((!desc.has(&live, AWSCURRENT)).then_some(live))
}

/// Why the current value of `name` is not the product's record (`None`: it is).
async fn value_replaced(deps: &Deps, name: &str) -> Result<Option<&'static str>, VendError> {
    let Some(v) = read::get_ours(deps, name, AWSCURRENT).await? else {
        return Ok(None);
    };
    Ok(match SecretRecord::from_secret(&v.value) {
        Some(Ok(_)) => None,
        Some(Err(_)) => Some("a record this version cannot read"),
        None => Some("not a record of this product"),
    })
}
