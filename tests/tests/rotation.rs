//! Rotation, sweep and on-demand actions against moto and the emulator, in process, with the
//! local driver playing Secrets Manager (moto cannot invoke a Lambda).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use orkv_openrouter_emulator::Emulator;
use orkv_store::SecretStore;
use orkv_tests::proxy::LatencyProxy;
use orkv_tests::{
    CallCounter, Control, MANAGEMENT_KEY, Moto, POLICY, emulator, secrets_client,
    secrets_client_at, unique,
};
use orkv_vending::domain::names::rotation_token;
use orkv_vending::input::invocation::Trigger;
use orkv_vending::input::rotation::{RotationEvent, Step};
use orkv_vending::{Config, Deps, ops::provision::Status};
use orkv_vending::{input::sweep::SweepInput, ops::sweep::report::SweepReport};
use serde_json::{Value, json};

struct World {
    _moto: Moto,
    emu: Emulator,
    control: Control,
    sm: aws_sdk_secretsmanager::Client,
    sm_calls: CallCounter,
}

async fn world() -> World {
    let moto = Moto::start().await;
    let emu = emulator().await;
    let control = Control::new(&emu);
    let (sm, sm_calls) = secrets_client(&moto).await;
    World {
        _moto: moto,
        emu,
        control,
        sm,
        sm_calls,
    }
}

/// A world whose Secrets Manager client goes through a fault proxy in front of moto.
async fn proxied_world() -> (World, LatencyProxy) {
    let moto = Moto::start().await;
    let proxy = LatencyProxy::start(&moto.url, Duration::ZERO).await;
    let emu = emulator().await;
    let control = Control::new(&emu);
    let (sm, sm_calls) = secrets_client_at(&proxy.url).await;
    (
        World {
            _moto: moto,
            emu,
            control,
            sm,
            sm_calls,
        },
        proxy,
    )
}

/// The record a version holds, read by version id.
async fn version_record(w: &World, name: &str, version: &str) -> Value {
    let out =
        w.sm.get_secret_value()
            .secret_id(name)
            .version_id(version)
            .send()
            .await
            .expect("version");
    serde_json::from_str(out.secret_string().unwrap_or_default()).expect("json")
}

const GRACE: i64 = 1800;

fn deps_with(w: &World, extra: &[(&str, &str)]) -> Deps {
    let api = w.emu.api_url();
    let grace = GRACE.to_string();
    let extra: Vec<(String, String)> = extra
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let cfg = Config::from_lookup(|name| {
        if let Some((_, v)) = extra.iter().find(|(k, _)| k == name) {
            return Some(v.clone());
        }
        match name {
            "OPENROUTER_BASE_URL" => Some(api.clone()),
            "OPENROUTER_MANAGEMENT_KEY" => Some(MANAGEMENT_KEY.to_owned()),
            "ORKV_POLICY" => Some(POLICY.to_owned()),
            "ORKV_HTTP_TIMEOUT_MS" => Some("2000".to_owned()),
            "ORKV_RETIRE_GRACE_SECONDS" => Some(grace.clone()),
            "ORKV_ORPHAN_MIN_AGE_SECONDS" => Some("60".to_owned()),
            _ => None,
        }
    })
    .expect("config");
    Deps::new(cfg, SecretStore::new(w.sm.clone())).with_starter(std::sync::Arc::new(
        orkv_local_rotation::LocalDriver::in_process(),
    ))
}

fn deps(w: &World) -> Deps {
    deps_with(w, &[])
}

fn request(key_name: &str) -> Value {
    json!({"workspace": "checkout", "key_name": key_name, "limit": 50, "limit_reset": "monthly",
           "ttl_seconds": 7200, "rotate_before_seconds": 3600})
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

/// Moves both clocks (the functions' and the emulator's) forward.
async fn advance(w: &World, d: &Deps, seconds: i64) {
    d.clock().advance(seconds);
    w.control.advance_clock(seconds).await;
}

async fn current(w: &World, name: &str) -> (String, Value) {
    let out =
        w.sm.get_secret_value()
            .secret_id(name)
            .version_stage("AWSCURRENT")
            .send()
            .await
            .expect("current");
    (
        out.version_id().unwrap_or_default().to_owned(),
        serde_json::from_str(out.secret_string().unwrap_or_default()).expect("json"),
    )
}

async fn stages(w: &World, name: &str) -> Vec<(String, Vec<String>)> {
    let d =
        w.sm.describe_secret()
            .secret_id(name)
            .send()
            .await
            .expect("describe");
    let mut v: Vec<(String, Vec<String>)> = d
        .version_ids_to_stages()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    v.sort();
    v
}

async fn pending_dangling(w: &World, name: &str) -> bool {
    stages(w, name)
        .await
        .iter()
        .any(|(_, s)| s.iter().any(|l| l == "AWSPENDING") && !s.iter().any(|l| l == "AWSCURRENT"))
}

async fn tags(w: &World, name: &str) -> Vec<(String, String)> {
    let d =
        w.sm.describe_secret()
            .secret_id(name)
            .send()
            .await
            .expect("describe");
    d.tags()
        .iter()
        .map(|t| {
            (
                t.key().unwrap_or_default().to_owned(),
                t.value().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// `GET /key` with a plaintext: the consumer's view.
async fn works(w: &World, plaintext: &str) -> bool {
    reqwest::Client::new()
        .get(format!("{}/key", w.emu.api_url()))
        .bearer_auth(plaintext)
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

async fn sweep(d: &Deps, run: &str) -> SweepReport {
    d.sweep(
        &SweepInput::parse(&json!({"execution_id": run})).expect("input"),
        deadline(),
    )
    .await
    .expect("sweep")
}

/// Live keys the product named for `secret`.
async fn live_for(w: &World, secret: &str) -> Vec<Value> {
    w.control.live_keys(&format!("orkv:{secret}:")).await
}

async fn provision(d: &Deps, key_name: &str) -> String {
    let reply = d
        .handle(request(key_name), deadline())
        .await
        .expect("provisioned");
    assert_eq!(reply.status, Status::Created);
    reply.secret_name
}

#[tokio::test]
async fn a_due_key_is_rotated_the_old_one_works_through_grace_then_is_retired() {
    let w = world().await;
    let d = deps(&w);
    let name = provision(&d, &unique("rot")).await;
    let (v1, before) = current(&w, &name).await;
    let old_key = before["api_key"].as_str().expect("key").to_owned();
    let old_hash = before["key_hash"].as_str().expect("hash").to_owned();

    // Not due yet: the sweep does nothing to it.
    let r = sweep(&d, "run-early").await;
    assert_eq!(r.rotations_due, 0, "{r:?}");

    advance(&w, &d, 3601).await;
    w.sm_calls.reset();
    w.control.reset_calls().await;
    let r = sweep(&d, "run-1").await;
    assert_eq!((r.rotations_due, r.rotations_completed), (1, 1), "{r:?}");
    let (v2, after) = current(&w, &name).await;
    assert_ne!(v1, v2);
    assert_eq!(after["generation"], 2);
    assert_ne!(after["key_hash"], before["key_hash"]);
    assert!(!pending_dangling(&w, &name).await);
    let t = tags(&w, &name).await;
    assert!(
        t.iter()
            .any(|(k, _)| k == &format!("orkv:retire:{old_hash}")),
        "{t:?}"
    );
    assert!(t.iter().any(|(k, v)| k == "orkv:generation" && v == "2"));
    // Both keys work during the grace period.
    assert!(works(&w, &old_key).await);
    assert!(works(&w, after["api_key"].as_str().expect("key")).await);
    assert_eq!(live_for(&w, &name).await.len(), 2);

    // Within grace, a sweep keeps the old key.
    advance(&w, &d, GRACE - 60).await;
    let r = sweep(&d, "run-2").await;
    assert_eq!(r.keys_retired, 0, "{r:?}");
    assert!(works(&w, &old_key).await);

    // After grace, the next sweep disables, deletes and confirms it.
    advance(&w, &d, 120).await;
    let r = sweep(&d, "run-3").await;
    assert_eq!(r.keys_retired, 1, "{r:?}");
    assert!(!works(&w, &old_key).await);
    assert!(works(&w, after["api_key"].as_str().expect("key")).await);
    assert_eq!(live_for(&w, &name).await.len(), 1);
    assert!(
        !tags(&w, &name)
            .await
            .iter()
            .any(|(k, _)| k.starts_with("orkv:retire:"))
    );
    // A repeated delivery of the same run changes nothing more.
    let r = sweep(&d, "run-3").await;
    assert_eq!((r.keys_retired, r.rotations_due), (0, 0), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_sees_no_authentication_failure_through_100_rotations() {
    let w = world().await;
    let d = Arc::new(deps(&w));
    let name = provision(&d, &unique("consumer")).await;
    // Rotation is configured before consumers start, as Terraform or Secrets Manager would
    // have it; moto's way of enabling it briefly makes a copy of the first value current.
    orkv_local_rotation::enable_rotation(&d, &name)
        .await
        .expect("enable");
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let consumer = {
        let (sm, api, name) = (w.sm.clone(), w.emu.api_url(), name.clone());
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            while !stop.load(Ordering::SeqCst) {
                let out = sm
                    .get_secret_value()
                    .secret_id(&name)
                    .version_stage("AWSCURRENT")
                    .send()
                    .await
                    .expect("read");
                let v: Value =
                    serde_json::from_str(out.secret_string().unwrap_or_default()).expect("json");
                let key = v["api_key"].as_str().unwrap_or_default().to_owned();
                let status = http
                    .get(format!("{api}/key"))
                    .bearer_auth(&key)
                    .send()
                    .await
                    .map(|r| r.status());
                if status.as_ref().is_ok_and(|s| s.is_success()) {
                    ok.fetch_add(1, Ordering::SeqCst);
                } else {
                    failed.fetch_add(1, Ordering::SeqCst);
                    eprintln!(
                        "consumer failure: {status:?} generation {} version {:?}",
                        v["generation"],
                        out.version_id()
                    );
                }
            }
        })
    };
    let mut retired = 0;
    for i in 0..100u64 {
        let reply = d
            .rotate_now(
                &name,
                orkv_vending::domain::tags::Reason::Manual,
                &format!("consumer-{i}"),
                None,
                Trigger::Direct,
            )
            .await
            .expect("rotated");
        assert_eq!(reply.generation, Some(i + 2));
        if i % 4 == 3 {
            // One sweep interval of 1000 s per 4 rotations; grace is 1800 s, so at most 8
            // superseded keys wait at once (the product keeps at most 10 per secret).
            advance(&w, &d, 1000).await;
            let r = sweep(&d, &format!("consumer-sweep-{i}")).await;
            retired += r.keys_retired;
            // Every key superseded more than grace ago is gone; the others are in grace.
            let t = tags(&w, &name).await;
            let now = d.clock().now();
            let waiting: Vec<_> = orkv_vending::domain::tags::retiring(&t);
            assert!(
                waiting.iter().all(|(_, at)| *at > now),
                "overdue retirement left: {waiting:?}"
            );
            assert_eq!(live_for(&w, &name).await.len(), 1 + waiting.len());
        }
    }
    advance(&w, &d, GRACE + 1).await;
    retired += sweep(&d, "consumer-final").await.keys_retired;
    stop.store(true, Ordering::SeqCst);
    consumer.await.expect("consumer");
    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "authentication failures seen by the consumer"
    );
    assert!(ok.load(Ordering::SeqCst) > 100, "the consumer kept calling");
    assert_eq!(retired, 100);
    let (_, last) = current(&w, &name).await;
    assert_eq!(last["generation"], 101);
    let live = live_for(&w, &name).await;
    assert_eq!(live.len(), 1);
    assert_eq!(live[0]["hash"], last["key_hash"]);
    // A repeated request is answered, not redone.
    let again = d
        .rotate_now(
            &name,
            orkv_vending::domain::tags::Reason::Manual,
            "consumer-99",
            None,
            Trigger::Direct,
        )
        .await
        .expect("repeat");
    assert_eq!(
        again.status,
        orkv_vending::ops::actions::ActionStatus::Unchanged
    );
}

fn step(name: &str, token: &str, step: Step) -> RotationEvent {
    RotationEvent {
        step,
        secret_id: name.to_owned(),
        token: token.to_owned(),
        rotation_token: None,
    }
}

const ALL_STEPS: [Step; 4] = [
    Step::CreateSecret,
    Step::SetSecret,
    Step::TestSecret,
    Step::FinishSecret,
];
const UP_TO_TEST: [Step; 3] = [Step::CreateSecret, Step::SetSecret, Step::TestSecret];
const AFTER_CREATE: [Step; 3] = [Step::SetSecret, Step::TestSecret, Step::FinishSecret];

/// Runs `steps` of the rotation under `token`, each expected to succeed.
async fn run_steps(d: &Deps, name: &str, token: &str, steps: &[Step]) {
    for &s in steps {
        d.run_step(&step(name, token, s), deadline())
            .await
            .unwrap_or_else(|e| panic!("{}: {e:?}", s.as_str()));
    }
}

/// Labels the pending version as Secrets Manager would, via the driver's first half: a
/// rotation started and abandoned before any step.
async fn begin(w: &World, d: &Deps, name: &str) -> String {
    let (_, rec) = current(w, name).await;
    let token = rotation_token(name, rec["generation"].as_u64().expect("gen"));
    let store = d.store();
    orkv_local_rotation::enable_rotation(d, name)
        .await
        .expect("enable");
    let _ = store
        .rotate(
            name,
            &token,
            Some("arn:aws:lambda:us-east-1:000000000000:function:none"),
            None,
            true,
        )
        .await;
    assert!(
        stages(w, name)
            .await
            .iter()
            .any(|(v, s)| v == &token && s.contains(&"AWSPENDING".to_owned()))
    );
    token
}

async fn assert_clean_end(w: &World, d: &Deps, name: &str) {
    let (_, rec) = current(w, name).await;
    assert!(
        works(w, rec["api_key"].as_str().expect("key")).await,
        "current key works"
    );
    assert!(!pending_dangling(w, name).await, "no dangling AWSPENDING");
    advance(w, d, 120).await;
    let r = sweep(d, &unique("after")).await;
    assert_eq!(r.orphans_found, 0, "{r:?}");
    let live = live_for(w, name).await;
    let waiting = orkv_vending::domain::tags::retiring(&tags(w, name).await);
    assert_eq!(
        live.len(),
        1 + waiting.len(),
        "only the current key and keys in grace live: {live:?}"
    );
    assert!(live.iter().any(|k| k["hash"] == rec["key_hash"]));
}

#[tokio::test]
async fn a_dropped_create_reply_is_cleaned_up_and_the_retry_finishes_with_one_successor() {
    let w = world().await;
    let d = deps(&w);
    let name = provision(&d, &unique("drop")).await;
    w.control
        .fault(json!({"op": "create_key", "action": "drop_after_commit", "times": 1}))
        .await;
    let (_, rec) = current(&w, &name).await;
    let start = d
        .start_rotation(&name, &rotation_token(&name, 1))
        .await
        .expect("driver retried");
    assert_eq!(start, orkv_vending::deps::RotationStart::Completed);
    assert_eq!(
        current(&w, &name).await.1["generation"],
        rec["generation"].as_u64().expect("g") + 1
    );
    assert_clean_end(&w, &d, &name).await;
}

#[tokio::test]
async fn a_crash_after_openrouters_create_and_before_the_put_leaves_one_successor() {
    let w = world().await;
    let d = deps(&w);
    let name = provision(&d, &unique("crash")).await;
    let token = begin(&w, &d, &name).await;
    // The create commits, then its reply is held back; the step is dropped mid-flight
    // (the process died) before PutSecretValue.
    w.control
        .fault(json!({"op": "create_key", "action": "delay_after_commit", "ms": 1500, "times": 1}))
        .await;
    let crashed = tokio::time::timeout(
        Duration::from_millis(700),
        d.run_step(&step(&name, &token, Step::CreateSecret), deadline()),
    )
    .await;
    assert!(crashed.is_err(), "the step was cut off");
    tokio::time::sleep(Duration::from_millis(900)).await; // let the held reply drain
    assert_eq!(
        live_for(&w, &name).await.len(),
        2,
        "the lost successor exists"
    );
    // Secrets Manager's retry: the whole sequence with the same token.
    run_steps(&d, &name, &token, &ALL_STEPS).await;
    assert_eq!(
        live_for(&w, &name).await.len(),
        2,
        "old (in grace) + one successor"
    );
    assert_clean_end(&w, &d, &name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_create_attempts_on_one_token_leave_one_working_successor() {
    // A Lambda retry overlapping a slow first run: both attempts mint before either stores
    // (each create's reply is held back), then both store under the same token.
    let w = world().await;
    let d = deps(&w);
    let name = provision(&d, &unique("twin")).await;
    let token = begin(&w, &d, &name).await;
    w.control
        .fault(json!({"op": "create_key", "action": "delay_after_commit", "ms": 300, "times": 2}))
        .await;
    let create = step(&name, &token, Step::CreateSecret);
    let (a, b) = tokio::join!(
        d.run_step(&create, deadline()),
        d.run_step(&create, deadline())
    );
    let (a, b) = (a.expect("first attempt"), b.expect("second attempt"));
    assert_ne!(a.key_hash, b.key_hash, "both attempts minted");
    let pending = version_record(&w, &name, &token).await;
    assert!(
        [&a.key_hash, &b.key_hash]
            .iter()
            .any(|h| h.as_deref() == pending["key_hash"].as_str()),
        "the stored successor is one of the two"
    );
    assert!(
        works(&w, pending["api_key"].as_str().expect("key")).await,
        "no attempt deleted the successor that is stored"
    );
    run_steps(&d, &name, &token, &AFTER_CREATE).await;
    let live = live_for(&w, &name).await;
    assert_eq!(
        live.len(),
        2,
        "finishSecret deleted the other attempt's key: the old key (in grace) and one successor remain: {live:?}"
    );
    assert!(live.iter().any(|k| k["hash"] == pending["key_hash"]));
    assert_clean_end(&w, &d, &name).await;
}

#[tokio::test]
async fn a_lost_put_reply_in_create_secret_keeps_the_stored_successor() {
    let (w, proxy) = proxied_world().await;
    let d = deps(&w);
    let name = provision(&d, &unique("lostput")).await;
    let token = begin(&w, &d, &name).await;
    // Every PutSecretValue is carried out by moto, and its reply is cut.
    proxy.cut_next("PutSecretValue", 1000);
    let reply = d
        .run_step(&step(&name, &token, Step::CreateSecret), deadline())
        .await
        .expect("the stored successor is recognised by reading it back");
    proxy.cut_next("PutSecretValue", 0);
    assert!(
        proxy.faults().1 >= 4,
        "every write's reply was lost: {:?}",
        proxy.faults()
    );
    let pending = version_record(&w, &name, &token).await;
    assert_eq!(pending["key_hash"].as_str(), reply.key_hash.as_deref());
    assert!(
        works(&w, pending["api_key"].as_str().expect("key")).await,
        "the stored key was not deleted"
    );
    run_steps(&d, &name, &token, &AFTER_CREATE).await;
    assert_clean_end(&w, &d, &name).await;
}

#[tokio::test]
async fn a_lost_put_reply_in_provision_keeps_the_stored_key() {
    let (w, proxy) = proxied_world().await;
    let d = deps(&w);
    proxy.cut_next("PutSecretValue", 1000);
    let reply = d
        .handle(request(&unique("lostprov")), deadline())
        .await
        .expect("the stored key is recognised by reading it back");
    proxy.cut_next("PutSecretValue", 0);
    assert_eq!(reply.status, Status::Created);
    assert!(proxy.faults().1 >= 4, "{:?}", proxy.faults());
    let (_, rec) = current(&w, &reply.secret_name).await;
    assert_eq!(rec["key_hash"].as_str(), Some(reply.key_hash.as_str()));
    assert!(works(&w, rec["api_key"].as_str().expect("key")).await);
    assert_eq!(live_for(&w, &reply.secret_name).await.len(), 1);
    // A repeat of the request reads it and changes nothing.
    let again = d
        .handle(request(&reply.key_name), deadline())
        .await
        .expect("repeat");
    assert_eq!(again.status, Status::Unchanged);
    assert_eq!(again.key_hash, reply.key_hash);
}

#[tokio::test]
async fn the_sweep_deletes_a_stray_key_carrying_a_referenced_name_and_keeps_the_stored_one() {
    // What an attempt whose key was never stored leaves if no step cleaned it up: a second
    // live key under the name the secret references.
    let w = world().await;
    let d = deps(&w);
    let name = provision(&d, &unique("stray")).await;
    let (_, rec) = current(&w, &name).await;
    let (_, stray) = w
        .control
        .add_key(json!({"name": rec["openrouter_key_name"], "workspace_id": rec["workspace_id"], "limit": 50}))
        .await;
    let young = sweep(&d, &unique("young")).await;
    assert_eq!(
        young.orphans_found, 0,
        "younger than the minimum age: {young:?}"
    );
    advance(&w, &d, 120).await;
    let r = sweep(&d, &unique("stray")).await;
    assert_eq!((r.orphans_found, r.orphans_deleted), (1, 1), "{r:?}");
    let live = live_for(&w, &name).await;
    assert_eq!(live.len(), 1, "{live:?}");
    assert_eq!(live[0]["hash"], rec["key_hash"]);
    assert_ne!(live[0]["hash"].as_str(), Some(stray.as_str()));
    assert!(works(&w, rec["api_key"].as_str().expect("key")).await);
}

#[tokio::test]
async fn every_step_repeats_safely_and_a_crash_after_the_label_move_is_finished_by_the_retry() {
    let w = world().await;
    let d = deps(&w);
    let name = provision(&d, &unique("repeat")).await;
    let token = begin(&w, &d, &name).await;
    let create = d
        .run_step(&step(&name, &token, Step::CreateSecret), deadline())
        .await
        .expect("create");
    let again = d
        .run_step(&step(&name, &token, Step::CreateSecret), deadline())
        .await
        .expect("create again");
    assert_eq!(
        again.outcome,
        orkv_vending::ops::rotate::StepOutcome::AlreadyDone
    );
    assert_eq!(create.key_hash, again.key_hash);
    // testSecret fails while OpenRouter errors, and passes on the retry.
    w.control
        .fault(json!({"op": "get_current_key", "action": "status", "status": 500, "times": 10}))
        .await;
    let err = d
        .run_step(&step(&name, &token, Step::TestSecret), deadline())
        .await
        .expect_err("test fails");
    assert_eq!(err.kind(), "RotationTestFailed");
    let _ = reqwest::Client::new()
        .delete(format!("{}/_emulator/faults", w.emu.url()))
        .send()
        .await;
    d.run_step(&step(&name, &token, Step::TestSecret), deadline())
        .await
        .expect("test passes");
    // Crash inside finishSecret right after AWSCURRENT moved (tail not run).
    let (cur, _) = current(&w, &name).await;
    d.store()
        .move_stage(&name, "AWSCURRENT", Some(&cur), Some(&token))
        .await
        .expect("move");
    let fin = d
        .run_step(&step(&name, &token, Step::FinishSecret), deadline())
        .await
        .expect("finish retry");
    assert_eq!(
        fin.outcome,
        orkv_vending::ops::rotate::StepOutcome::AlreadyCurrent
    );
    assert!(
        tags(&w, &name)
            .await
            .iter()
            .any(|(k, v)| k == "orkv:generation" && v == "2")
    );
    // Once current, every step answers done and changes nothing.
    for s in [
        Step::CreateSecret,
        Step::SetSecret,
        Step::TestSecret,
        Step::FinishSecret,
    ] {
        d.run_step(&step(&name, &token, s), deadline())
            .await
            .expect("done");
    }
    // The old key had no retire tag (the crash skipped it): it is an orphan-free
    // AWSPREVIOUS key referenced by nothing, so the sweep reports and removes it.
    advance(&w, &d, 120).await;
    let r = sweep(&d, "after-crash").await;
    assert!(r.orphans_found <= 1, "{r:?}");
    assert_eq!(live_for(&w, &name).await.len(), 1);
    assert!(!pending_dangling(&w, &name).await);
}

#[tokio::test]
async fn a_start_after_a_finish_interrupted_past_the_label_move_completes_it() {
    let w = world().await;
    let d = deps(&w);
    let name = provision(&d, &unique("tail")).await;
    let token = begin(&w, &d, &name).await;
    run_steps(&d, &name, &token, &UP_TO_TEST).await;
    // finishSecret dies right after moving AWSCURRENT: AWSPENDING stays, the tags the sweep
    // reads still name the old key, so the sweep keeps asking for this token's rotation.
    let (cur, _) = current(&w, &name).await;
    d.store()
        .move_stage(&name, "AWSCURRENT", Some(&cur), Some(&token))
        .await
        .expect("move");
    let start = d.start_rotation(&name, &token).await.expect("start");
    assert_eq!(start, orkv_vending::deps::RotationStart::Completed);
    assert!(!pending_dangling(&w, &name).await);
    assert!(
        stages(&w, &name)
            .await
            .iter()
            .all(|(_, s)| !s.contains(&"AWSPENDING".to_owned())),
        "AWSPENDING removed"
    );
    assert!(
        tags(&w, &name)
            .await
            .iter()
            .any(|(k, v)| k == "orkv:generation" && v == "2")
    );
    let again = d.start_rotation(&name, &token).await.expect("again");
    assert_eq!(again, orkv_vending::deps::RotationStart::AlreadyCurrent);
    let (_, rec) = current(&w, &name).await;
    assert!(works(&w, rec["api_key"].as_str().expect("key")).await);
}

#[tokio::test]
async fn bad_rotation_input_fails_the_step_and_changes_nothing() {
    let w = world().await;
    let d = deps(&w);
    let name = provision(&d, &unique("bad")).await;
    let before_versions = stages(&w, &name).await;
    let before_keys = w.control.state().await["keys"]
        .as_array()
        .map_or(0, Vec::len);
    let unknown_token = uuid::Uuid::new_v4().to_string();
    // Rotation not enabled on this secret yet.
    let err = d
        .run_step(&step(&name, &unknown_token, Step::CreateSecret), deadline())
        .await
        .expect_err("disabled");
    assert_eq!(err.kind(), "RotationDisabled");
    // Unknown step.
    let err = d
        .rotation_step(
            &json!({"Step": "rotate", "SecretId": name, "ClientRequestToken": unknown_token}),
            deadline(),
        )
        .await
        .expect_err("unknown step");
    assert_eq!(err.kind(), "InvalidRotationEvent");
    assert!(err.to_string().contains("`Step`"));
    // Enabled, but the token is not a version.
    orkv_local_rotation::enable_rotation(&d, &name)
        .await
        .expect("enable");
    let enabled_versions = stages(&w, &name).await;
    let err = d
        .run_step(&step(&name, &unknown_token, Step::CreateSecret), deadline())
        .await
        .expect_err("unknown token");
    assert_eq!(err.kind(), "UnknownRotationToken");
    assert!(err.to_string().contains("ClientRequestToken"));
    // A version that is neither pending nor current (AWSPREVIOUS).
    let previous = enabled_versions
        .iter()
        .find(|(_, s)| s.contains(&"AWSPREVIOUS".to_owned()))
        .map(|(v, _)| v.clone())
        .expect("previous");
    let err = d
        .run_step(&step(&name, &previous, Step::FinishSecret), deadline())
        .await
        .expect_err("not pending");
    assert_eq!(err.kind(), "VersionNotPending");
    // A secret this product does not manage.
    let foreign = unique("foreign");
    w.sm.create_secret()
        .name(&foreign)
        .secret_string("{\"password\":\"x\"}")
        .send()
        .await
        .expect("foreign");
    orkv_local_rotation::enable_rotation(&d, &foreign)
        .await
        .expect("enable");
    let err = d
        .run_step(
            &step(&foreign, &unknown_token, Step::CreateSecret),
            deadline(),
        )
        .await
        .expect_err("foreign");
    assert_eq!(err.kind(), "SecretNotManaged");
    assert_eq!(stages(&w, &name).await, enabled_versions);
    assert_eq!(
        before_versions.len() + 1,
        enabled_versions.len(),
        "only the enabling call wrote"
    );
    assert_eq!(
        w.control.state().await["keys"]
            .as_array()
            .map_or(0, Vec::len),
        before_keys
    );
}

#[tokio::test]
async fn concurrent_sweeps_and_repeated_deliveries_rotate_each_secret_once() {
    let w = world().await;
    let d = Arc::new(deps(&w));
    let mut names = Vec::new();
    for i in 0..5 {
        names.push(provision(&d, &unique(&format!("conc{i}"))).await);
    }
    advance(&w, &d, 3601).await;
    let (a, b) = tokio::join!(sweep(&d, "sched-1"), sweep(&d, "sched-2"));
    let c = sweep(&d, "sched-1").await;
    assert_eq!(a.rotations_due + b.rotations_due, 10);
    assert_eq!(c.rotations_due, 0, "{c:?}");
    for n in &names {
        let (_, rec) = current(&w, n).await;
        assert_eq!(rec["generation"], 2, "{n}");
        assert_eq!(
            live_for(&w, n).await.len(),
            2,
            "old in grace + one successor for {n}"
        );
        assert!(!pending_dangling(&w, n).await);
    }
    advance(&w, &d, GRACE + 1).await;
    let (a, b) = tokio::join!(sweep(&d, "sched-3"), sweep(&d, "sched-4"));
    assert_eq!(a.keys_retired + b.keys_retired, 5, "{a:?} {b:?}");
    for n in &names {
        assert_eq!(live_for(&w, n).await.len(), 1);
    }
}

#[tokio::test]
async fn a_cap_update_during_a_rotation_is_carried_to_the_successor() {
    let w = world().await;
    let d = deps(&w);
    let key_name = unique("race");
    let name = provision(&d, &key_name).await;
    let token = begin(&w, &d, &name).await;
    run_steps(&d, &name, &token, &UP_TO_TEST).await;
    let mut req = request(&key_name);
    req["limit"] = json!(75);
    let updated = d.handle(req.clone(), deadline()).await.expect("update");
    assert_eq!(updated.status, Status::Updated);
    d.run_step(&step(&name, &token, Step::FinishSecret), deadline())
        .await
        .expect("finish");
    let (_, rec) = current(&w, &name).await;
    assert_eq!(rec["generation"], 2);
    assert_eq!(rec["limit"], 75.0);
    let live = live_for(&w, &name).await;
    let new = live
        .iter()
        .find(|k| k["hash"] == rec["key_hash"])
        .expect("new key live");
    assert_eq!(new["limit"], 75.0);
    // The same request again is answered unchanged: the same end state as one clean run.
    assert_eq!(
        d.handle(req, deadline()).await.expect("repeat").status,
        Status::Unchanged
    );
    assert_clean_end(&w, &d, &name).await;
}

#[tokio::test]
async fn a_rotation_left_pending_after_its_key_was_promoted_is_finished_by_the_next_request() {
    // finishSecret carried a cap update over (AWSCURRENT moved to a merged version) and died
    // before taking AWSPENDING off the token; then the cap changed again. The next rotation
    // (another generation's token) finishes the old one first instead of waiting for ever.
    let w = world().await;
    let d = deps(&w);
    let key_name = unique("stuck");
    let name = provision(&d, &key_name).await;
    let token = begin(&w, &d, &name).await;
    run_steps(&d, &name, &token, &UP_TO_TEST).await;
    let mut req = request(&key_name);
    req["limit"] = json!(75);
    d.handle(req.clone(), deadline()).await.expect("update");
    d.run_step(&step(&name, &token, Step::FinishSecret), deadline())
        .await
        .expect("finish");
    // The state of a finish that died right after the label move: AWSPENDING still on the token.
    d.store()
        .move_stage(&name, "AWSPENDING", None, Some(&token))
        .await
        .expect("label");
    req["limit"] = json!(80);
    assert_eq!(
        d.handle(req, deadline()).await.expect("update").status,
        Status::Updated
    );
    let rotated = d
        .handle_request(
            json!({"action": "rotate", "secret_name": name, "reason": "leak", "idempotency_id": "after-stuck"}),
            deadline(),
        )
        .await
        .expect("the new rotation goes ahead");
    assert_eq!(rotated["status"], "rotated", "{rotated}");
    let (_, rec) = current(&w, &name).await;
    assert_eq!(rec["generation"], 3);
    assert_eq!(rec["limit"], 80.0);
    assert!(works(&w, rec["api_key"].as_str().expect("key")).await);
    assert!(
        stages(&w, &name)
            .await
            .iter()
            .all(|(v, s)| v != &token || !s.contains(&"AWSPENDING".to_owned())),
        "the old token no longer holds AWSPENDING"
    );
    assert!(!pending_dangling(&w, &name).await);
}

#[tokio::test]
async fn a_finish_that_died_after_carrying_a_cap_change_to_the_new_key_is_finished_by_the_retry() {
    let w = world().await;
    let d = deps(&w);
    let key_name = unique("carry");
    let name = provision(&d, &key_name).await;
    let token = begin(&w, &d, &name).await;
    let mut created = None;
    for s in [Step::CreateSecret, Step::SetSecret, Step::TestSecret] {
        let r = d
            .run_step(&step(&name, &token, s), deadline())
            .await
            .expect("step");
        created = created.or(r.key_hash);
    }
    let mut req = request(&key_name);
    req["limit"] = json!(75);
    d.handle(req, deadline()).await.expect("update");
    // finishSecret's first act for a change made meanwhile: the new key gets the new cap.
    // The step dies right after it.
    let hash = created.expect("successor hash");
    let patched = reqwest::Client::new()
        .patch(format!("{}/keys/{hash}", w.emu.api_url()))
        .bearer_auth(MANAGEMENT_KEY)
        .json(&json!({"limit": 75}))
        .send()
        .await
        .expect("patch");
    assert!(patched.status().is_success());
    // Secrets Manager's retry runs the whole sequence again: testSecret must not fail for
    // ever on the cap the interrupted finish already applied.
    run_steps(&d, &name, &token, &ALL_STEPS).await;
    let (_, rec) = current(&w, &name).await;
    assert_eq!(rec["generation"], 2);
    assert_eq!(rec["limit"], 75.0);
    assert_eq!(rec["key_hash"].as_str(), Some(hash.as_str()));
    assert!(works(&w, rec["api_key"].as_str().expect("key")).await);
    assert_clean_end(&w, &d, &name).await;
}

#[tokio::test]
async fn a_changed_lifetime_becomes_a_rotation_and_its_repeat_is_unchanged() {
    let w = world().await;
    let d = deps(&w);
    let key_name = unique("life");
    let name = provision(&d, &key_name).await;
    let mut req = request(&key_name);
    req["ttl_seconds"] = json!(14_400);
    let r = d.handle(req.clone(), deadline()).await.expect("rotated");
    assert_eq!(r.status, Status::Rotated);
    assert_eq!(r.generation, 2);
    let (_, rec) = current(&w, &name).await;
    assert_eq!(rec["lifetime"], json!({"ttl_seconds": 14_400}));
    assert!(!tags(&w, &name).await.iter().any(|(k, _)| k == "orkv:next"));
    assert_eq!(
        d.handle(req, deadline()).await.expect("repeat").status,
        Status::Unchanged
    );
    assert_eq!(live_for(&w, &name).await.len(), 2);
}

#[tokio::test]
async fn a_leak_rotation_disables_the_old_key_at_once_and_revoke_removes_everything() {
    let w = world().await;
    let d = deps(&w);
    let name = provision(&d, &unique("leak")).await;
    let (_, before) = current(&w, &name).await;
    let old = before["api_key"].as_str().expect("key").to_owned();
    let reply = d
        .handle_request(json!({"action": "rotate", "secret_name": name, "reason": "leak", "idempotency_id": "leak-1"}), deadline())
        .await
        .expect("rotated");
    assert_eq!(reply["status"], "rotated");
    assert!(!reply.to_string().contains("sk-or-v1"));
    assert!(!works(&w, &old).await, "the leaked key is disabled at once");
    let (_, after) = current(&w, &name).await;
    assert!(works(&w, after["api_key"].as_str().expect("key")).await);
    let r = sweep(&d, "leak-sweep").await;
    assert_eq!(r.keys_retired, 1, "{r:?}");
    // Revoke: every key goes, the secret is marked revoked; repeating is harmless.
    let revoke = json!({"action": "revoke", "secret_name": name, "idempotency_id": "rev-1"});
    let reply = d
        .handle_request(revoke.clone(), deadline())
        .await
        .expect("revoked");
    assert_eq!(reply["status"], "revoked");
    assert!(!works(&w, after["api_key"].as_str().expect("key")).await);
    assert!(live_for(&w, &name).await.is_empty());
    d.handle_request(revoke, deadline()).await.expect("repeat");
    let (_, rec) = current(&w, &name).await;
    assert_eq!(rec["state"], "revoked");
    assert!(rec.get("api_key").is_none());
    let err = d
        .handle_request(json!({"action": "rotate", "secret_name": name}), deadline())
        .await
        .expect_err("revoked");
    assert_eq!(err.kind(), "SecretRevoked");
    // Bad action input names the field and creates nothing.
    for (body, field) in [
        (json!({"action": "rotate"}), "secret_name"),
        (
            json!({"action": "rotate", "secret_name": name, "reason": "boredom"}),
            "reason",
        ),
        (
            json!({"action": "revoke", "secret_name": "other/x"}),
            "secret_name",
        ),
        (json!({"action": "explode", "secret_name": name}), "action"),
        (
            json!({"action": "revoke", "secret_name": name, "delete_secret": "yes"}),
            "delete_secret",
        ),
    ] {
        let err = d
            .handle_request(body, deadline())
            .await
            .expect_err("refused");
        assert!(err.to_string().contains(&format!("`{field}`")), "{err}");
    }
}

#[tokio::test]
async fn the_sweep_finds_orphans_warns_on_low_spend_and_a_dry_run_changes_nothing() {
    let w = world().await;
    let d = deps(&w);
    let name = provision(&d, &unique("orph")).await;
    let checkout = "5b1e0c52-8f0a-4c8e-9d61-2f3a7c1e9a01";
    let (_, orphan) = w.control.add_key(json!({"name": format!("orkv:{name}:deadbeef0000"), "workspace_id": checkout, "limit": 5})).await;
    let (_, foreign) = w
        .control
        .add_key(json!({"name": "hand-made", "workspace_id": checkout}))
        .await;
    // Too young to call an orphan.
    let r = sweep(&d, "young").await;
    assert_eq!(r.orphans_found, 0, "{r:?}");
    advance(&w, &d, 120).await;
    let dry = d
        .sweep(
            &SweepInput::parse(&json!({"dry_run": true})).expect("input"),
            deadline(),
        )
        .await
        .expect("dry");
    assert_eq!(dry.orphans_found, 1);
    assert_eq!(dry.orphans_deleted, 0);
    let r = sweep(&d, "old").await;
    assert_eq!((r.orphans_found, r.orphans_deleted), (1, 1), "{r:?}");
    let state = w.control.state().await;
    let hashes: Vec<&str> = state["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(|k| k["hash"].as_str())
        .collect();
    assert!(!hashes.contains(&orphan.as_str()));
    assert!(
        hashes.contains(&foreign.as_str()),
        "keys without the product's naming are never touched"
    );
    let (_, rec) = current(&w, &name).await;
    assert!(hashes.contains(&rec["key_hash"].as_str().expect("hash")));
    // Dry run over a due rotation: reported, nothing written.
    advance(&w, &d, 3600).await;
    let versions = stages(&w, &name).await;
    let dry = d
        .sweep(
            &SweepInput::parse(&json!({"dry_run": true})).expect("input"),
            deadline(),
        )
        .await
        .expect("dry");
    assert_eq!(dry.rotations_due, 1);
    assert!(
        dry.actions
            .iter()
            .any(|a| a.action == orkv_vending::ops::sweep::report::SweepAction::WouldRotate)
    );
    assert_eq!(stages(&w, &name).await, versions);
    // Low remaining spend: the current key has used 48 of its 50 USD.
    reqwest::Client::new()
        .post(format!("{}/_emulator/usage", w.emu.url()))
        .json(&json!({"hash": rec["key_hash"], "usage": 48.0}))
        .send()
        .await
        .expect("usage");
    let low = sweep(&d, "low").await;
    assert_eq!(low.low_spend_keys, 1, "{low:?}");
    assert_eq!(low.emf(d.clock().now())["LowSpendKeys"], 1);
}

#[tokio::test]
async fn a_sweep_over_10000_secrets_lists_each_page_once_and_reads_only_due_ones() {
    let w = world().await;
    let d = Arc::new(deps(&w));
    // 100 real managed secrets that will be due, 9,900 managed secrets that are not.
    let prefix = unique("scale");
    let mut due = Vec::new();
    for i in 0..100 {
        due.push(provision(&d, &format!("{prefix}-due{i}")).await);
    }
    let far = orkv_openrouter::format_expires_at(d.clock().now() + time::Duration::days(30));
    let sm = w.sm.clone();
    let mut set = tokio::task::JoinSet::new();
    for chunk in 0..16 {
        let (sm, far, prefix) = (sm.clone(), far.clone(), prefix.clone());
        set.spawn(async move {
            let mut i = chunk;
            while i < 9900 {
                let tag = |k: &str, v: &str| {
                    aws_sdk_secretsmanager::types::Tag::builder()
                        .key(k)
                        .value(v)
                        .build()
                };
                // Seeding only: moto's threaded server now and then answers a burst of
                // concurrent creates with an internal 500 (an HTML page). Repeat such a create;
                // "already exists" means the first one landed.
                let mut tries = 0;
                loop {
                    let created = sm
                        .create_secret()
                        .name(format!("openrouter/checkout/{prefix}-idle{i}"))
                        .secret_string("{}")
                        .tags(tag("orkv:managed-by", "openrouter-key-vending"))
                        .tags(tag("orkv:rotate-at", &far))
                        .tags(tag("orkv:expires-at", &far))
                        .tags(tag("orkv:generation", "1"))
                        .tags(tag("orkv:lifetime", "ttl:2592000"))
                        .send()
                        .await;
                    match created {
                        Ok(_) => break,
                        Err(e)
                            if e.as_service_error()
                                .is_some_and(|s| s.is_resource_exists_exception()) =>
                        {
                            break;
                        }
                        Err(e)
                            if tries < 5
                                && e.raw_response().is_some_and(|r| r.status().as_u16() >= 500) =>
                        {
                            tries += 1;
                        }
                        Err(e) => panic!("create: {e:?}"),
                    }
                }
                i += 16;
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.expect("task");
    }
    advance(&w, &d, 3601).await;
    w.sm_calls.reset();
    let r = sweep(&d, "scale").await;
    let calls = w.sm_calls.get();
    assert!(r.secrets_scanned >= 10_000, "{}", r.secrets_scanned);
    assert_eq!(
        r.list_calls,
        u32::try_from(r.secrets_scanned.div_ceil(100)).expect("fits")
    );
    assert_eq!(
        (r.rotations_due, r.rotations_completed),
        (100, 100),
        "{:?}",
        r.actions.first()
    );
    // The due ones: the rotation function's own calls (4 + 1 + 2 + 7 for the four steps) plus
    // the local driver's part of Secrets Manager (label and, once per secret on moto, enable).
    // In AWS the sweep itself makes one call per due secret: RotateSecret.
    let per_due = (calls - u64::from(r.list_calls)) as f64 / 100.0;
    println!(
        "sweep over {} secrets: {} list calls, {calls} Secrets Manager calls, {per_due} per due secret",
        r.secrets_scanned, r.list_calls
    );
    assert!(calls <= u64::from(r.list_calls) + 100 * 21, "{calls}");
}
