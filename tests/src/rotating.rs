//! Helpers shared by the rotation suites (steps, sweep, actions): in-process dependencies with
//! the local driver, the steps, a started-and-abandoned rotation, and the clean-end check.

use std::time::{Duration, Instant};

use orkv_vending::Deps;
use orkv_vending::domain::names::rotation_token;
use orkv_vending::input::rotation::{RotationEvent, Step};
use orkv_vending::input::sweep::SweepInput;
use orkv_vending::ops::provision::Status;
use orkv_vending::ops::sweep::report::SweepReport;
use serde_json::{Value, json};

use crate::unique;
use crate::world::World;

/// The grace period superseded keys get in these suites.
pub const GRACE: i64 = 1800;

/// The four steps, in order.
pub const ALL_STEPS: [Step; 4] = [
    Step::CreateSecret,
    Step::SetSecret,
    Step::TestSecret,
    Step::FinishSecret,
];
/// Every step before `finishSecret`.
pub const UP_TO_TEST: [Step; 3] = [Step::CreateSecret, Step::SetSecret, Step::TestSecret];
/// Every step after `createSecret`.
pub const AFTER_CREATE: [Step; 3] = [Step::SetSecret, Step::TestSecret, Step::FinishSecret];

/// Dependencies with the local driver, the suites' grace and a 60 s orphan minimum age, and
/// `extra` on top.
#[must_use]
pub fn deps_with(w: &World, extra: &[(&str, &str)]) -> Deps {
    let grace = GRACE.to_string();
    let mut vars: Vec<(&str, &str)> = vec![
        ("ORKV_RETIRE_GRACE_SECONDS", grace.as_str()),
        ("ORKV_ORPHAN_MIN_AGE_SECONDS", "60"),
    ];
    vars.extend_from_slice(extra);
    // Later entries win: `config` takes the first match, so put `extra` first.
    vars.reverse();
    w.rotating_deps(&vars)
}

/// As [`deps_with`], nothing extra.
#[must_use]
pub fn deps(w: &World) -> Deps {
    deps_with(w, &[])
}

/// A provision request with a two-hour lifetime that rotates an hour before expiry.
#[must_use]
pub fn request(key_name: &str) -> Value {
    json!({"workspace": "checkout", "key_name": key_name, "limit": 50, "limit_reset": "monthly",
           "ttl_seconds": 7200, "rotate_before_seconds": 3600})
}

/// A minute from now.
#[must_use]
pub fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

/// Moves both clocks (the functions' and the emulator's) forward.
pub async fn advance(w: &World, d: &Deps, seconds: i64) {
    d.clock().advance(seconds);
    w.control.advance_clock(seconds).await;
}

/// One sweep run named `run`.
///
/// # Panics
/// When the sweep fails.
pub async fn sweep(d: &Deps, run: &str) -> SweepReport {
    crate::roles::ops::sweep(
        d,
        &SweepInput::parse(&json!({"execution_id": run})).expect("input"),
        deadline(),
    )
    .await
    .expect("sweep")
}

/// Provisions [`request`] for `key_name` and answers the secret's name.
///
/// # Panics
/// When the key is not created.
pub async fn provision(d: &Deps, key_name: &str) -> String {
    let reply = crate::roles::ops::handle(d, request(key_name), deadline())
        .await
        .expect("provisioned");
    assert_eq!(reply.status, Status::Created);
    reply.secret_name
}

/// The event of step `step` for `name` under `token`.
#[must_use]
pub fn step(name: &str, token: &str, step: Step) -> RotationEvent {
    RotationEvent {
        step,
        secret_id: name.to_owned(),
        token: token.to_owned(),
        rotation_token: None,
    }
}

/// Runs `steps` of the rotation under `token`, each expected to succeed.
///
/// # Panics
/// When a step fails.
pub async fn run_steps(d: &Deps, name: &str, token: &str, steps: &[Step]) {
    for &s in steps {
        crate::roles::ops::run_step(d, &step(name, token, s), deadline())
            .await
            .unwrap_or_else(|e| panic!("{}: {e:?}", s.as_str()));
    }
}

/// Labels the pending version as Secrets Manager would, via the driver's first half: a
/// rotation started and abandoned before any step.
///
/// # Panics
/// When the version is not labelled.
pub async fn begin(w: &World, d: &Deps, name: &str) -> String {
    let (_, rec) = w.current(name).await;
    let token = rotation_token(name, rec["generation"].as_u64().expect("gen"));
    orkv_local_rotation::enable_rotation(d, name)
        .await
        .expect("enable");
    let _ = d
        .store()
        .rotate(
            name,
            &token,
            Some("arn:aws:lambda:us-east-1:000000000000:function:none"),
            None,
            true,
        )
        .await;
    assert!(
        w.stages(name)
            .await
            .iter()
            .any(|(v, s)| v == &token && s.contains(&"AWSPENDING".to_owned()))
    );
    token
}

/// The end state every rotation must reach: the current key works, no `AWSPENDING` dangles,
/// a sweep finds no orphan, and only the current key and keys in grace live.
///
/// # Panics
/// When any of those does not hold.
pub async fn assert_clean_end(w: &World, d: &Deps, name: &str) {
    let (_, rec) = w.current(name).await;
    assert!(
        w.works(rec["api_key"].as_str().expect("key")).await,
        "current key works"
    );
    assert!(!w.pending_dangling(name).await, "no dangling AWSPENDING");
    advance(w, d, 120).await;
    let r = sweep(d, &unique("after")).await;
    assert_eq!(r.orphans_found, 0, "{r:?}");
    let live = w.live_for(name).await;
    let waiting = orkv_vending::domain::tags::retiring(&w.tags(name).await);
    assert_eq!(
        live.len(),
        1 + waiting.len(),
        "only the current key and keys in grace live: {live:?}"
    );
    assert!(live.iter().any(|k| k["hash"] == rec["key_hash"]));
}

/// A rotation another starter began (another token) and Secrets Manager has not finished:
/// `AWSPENDING` on a version that is not current, labelled by `RotateSecret` naming
/// `lambda_arn` (a function moto does not have).
///
/// # Panics
/// When the version is not labelled so.
pub async fn label_pending_for_another_rotation(d: &Deps, name: &str, lambda_arn: &str) {
    orkv_local_rotation::enable_rotation(d, name)
        .await
        .expect("enable");
    let other = uuid::Uuid::new_v4().to_string();
    let _ = d
        .store()
        .rotate(name, &other, Some(lambda_arn), None, true)
        .await;
    let desc = d
        .store()
        .describe(name)
        .await
        .expect("describe")
        .expect("exists");
    assert!(desc.has(&other, "AWSPENDING") && !desc.has(&other, "AWSCURRENT"));
}
