//! The four rotation steps against moto and the emulator, in process, with the local driver
//! playing Secrets Manager (moto cannot invoke a Lambda): each step repeats safely, survives
//! crashes and lost replies between any two calls, races itself, and refuses bad input.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use orkv_tests::rotating::*;
use orkv_tests::world::World;
use orkv_tests::{MANAGEMENT_KEY, unique};
use orkv_vending::domain::names::rotation_token;
use orkv_vending::input::invocation::Trigger;
use orkv_vending::input::rotation::Step;
use orkv_vending::ops::provision::Status;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_sees_no_authentication_failure_through_100_rotations() {
    let w = World::start().await;
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
        let reply = orkv_tests::roles::ops::rotate_now(
            &d,
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
            let t = w.tags(&name).await;
            let now = d.clock().now();
            let waiting: Vec<_> = orkv_vending::domain::tags::retiring(&t);
            assert!(
                waiting.iter().all(|(_, at)| *at > now),
                "overdue retirement left: {waiting:?}"
            );
            assert_eq!(w.live_for(&name).await.len(), 1 + waiting.len());
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
    let (_, last) = w.current(&name).await;
    assert_eq!(last["generation"], 101);
    let live = w.live_for(&name).await;
    assert_eq!(live.len(), 1);
    assert_eq!(live[0]["hash"], last["key_hash"]);
    // A repeated request is answered, not redone.
    let again = orkv_tests::roles::ops::rotate_now(
        &d,
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

#[tokio::test]
async fn a_dropped_create_reply_is_cleaned_up_and_the_retry_finishes_with_one_successor() {
    let w = World::start().await;
    let d = deps(&w);
    let name = provision(&d, &unique("drop")).await;
    w.control
        .fault(json!({"op": "create_key", "action": "drop_after_commit", "times": 1}))
        .await;
    let (_, rec) = w.current(&name).await;
    let start = orkv_tests::roles::ops::start_rotation(&d, &name, &rotation_token(&name, 1))
        .await
        .expect("driver retried");
    assert_eq!(start, orkv_vending::deps::RotationStart::Completed);
    assert_eq!(
        w.current(&name).await.1["generation"],
        rec["generation"].as_u64().expect("g") + 1
    );
    assert_clean_end(&w, &d, &name).await;
}

#[tokio::test]
async fn a_crash_after_openrouters_create_and_before_the_put_leaves_one_successor() {
    let w = World::start().await;
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
        orkv_tests::roles::ops::run_step(&d, &step(&name, &token, Step::CreateSecret), deadline()),
    )
    .await;
    assert!(crashed.is_err(), "the step was cut off");
    tokio::time::sleep(Duration::from_millis(900)).await; // let the held reply drain
    assert_eq!(
        w.live_for(&name).await.len(),
        2,
        "the lost successor exists"
    );
    // Secrets Manager's retry: the whole sequence with the same token.
    run_steps(&d, &name, &token, &ALL_STEPS).await;
    assert_eq!(
        w.live_for(&name).await.len(),
        2,
        "old (in grace) + one successor"
    );
    assert_clean_end(&w, &d, &name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_create_attempts_on_one_token_leave_one_working_successor() {
    // A Lambda retry overlapping a slow first run: both attempts mint before either stores
    // (each create's reply is held back), then both store under the same token.
    let w = World::start().await;
    let d = deps(&w);
    let name = provision(&d, &unique("twin")).await;
    let token = begin(&w, &d, &name).await;
    w.control
        .fault(json!({"op": "create_key", "action": "delay_after_commit", "ms": 300, "times": 2}))
        .await;
    let create = step(&name, &token, Step::CreateSecret);
    let (a, b) = tokio::join!(
        orkv_tests::roles::ops::run_step(&d, &create, deadline()),
        orkv_tests::roles::ops::run_step(&d, &create, deadline())
    );
    let (a, b) = (a.expect("first attempt"), b.expect("second attempt"));
    assert_ne!(a.key_hash, b.key_hash, "both attempts minted");
    let pending = w.version_record(&name, &token).await;
    assert!(
        [&a.key_hash, &b.key_hash]
            .iter()
            .any(|h| h.as_deref() == pending["key_hash"].as_str()),
        "the stored successor is one of the two"
    );
    assert!(
        w.works(pending["api_key"].as_str().expect("key")).await,
        "no attempt deleted the successor that is stored"
    );
    run_steps(&d, &name, &token, &AFTER_CREATE).await;
    let live = w.live_for(&name).await;
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
    let (w, proxy) = World::behind_proxy().await;
    let d = deps(&w);
    let name = provision(&d, &unique("lostput")).await;
    let token = begin(&w, &d, &name).await;
    // Every PutSecretValue is carried out by moto, and its reply is cut.
    proxy.cut_next("PutSecretValue", 1000);
    let reply =
        orkv_tests::roles::ops::run_step(&d, &step(&name, &token, Step::CreateSecret), deadline())
            .await
            .expect("the stored successor is recognised by reading it back");
    proxy.cut_next("PutSecretValue", 0);
    assert!(
        proxy.faults().1 >= 4,
        "every write's reply was lost: {:?}",
        proxy.faults()
    );
    let pending = w.version_record(&name, &token).await;
    assert_eq!(pending["key_hash"].as_str(), reply.key_hash.as_deref());
    assert!(
        w.works(pending["api_key"].as_str().expect("key")).await,
        "the stored key was not deleted"
    );
    run_steps(&d, &name, &token, &AFTER_CREATE).await;
    assert_clean_end(&w, &d, &name).await;
}

#[tokio::test]
async fn every_step_repeats_safely_and_a_crash_after_the_label_move_is_finished_by_the_retry() {
    let w = World::start().await;
    let d = deps(&w);
    let name = provision(&d, &unique("repeat")).await;
    let token = begin(&w, &d, &name).await;
    let create =
        orkv_tests::roles::ops::run_step(&d, &step(&name, &token, Step::CreateSecret), deadline())
            .await
            .expect("create");
    let again =
        orkv_tests::roles::ops::run_step(&d, &step(&name, &token, Step::CreateSecret), deadline())
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
    let err =
        orkv_tests::roles::ops::run_step(&d, &step(&name, &token, Step::TestSecret), deadline())
            .await
            .expect_err("test fails");
    assert_eq!(err.kind(), "RotationTestFailed");
    let _ = reqwest::Client::new()
        .delete(format!("{}/_emulator/faults", w.emu.url()))
        .send()
        .await;
    orkv_tests::roles::ops::run_step(&d, &step(&name, &token, Step::TestSecret), deadline())
        .await
        .expect("test passes");
    // Crash inside finishSecret right after AWSCURRENT moved (tail not run).
    let (cur, _) = w.current(&name).await;
    d.store()
        .move_stage(&name, "AWSCURRENT", Some(&cur), Some(&token))
        .await
        .expect("move");
    let fin =
        orkv_tests::roles::ops::run_step(&d, &step(&name, &token, Step::FinishSecret), deadline())
            .await
            .expect("finish retry");
    assert_eq!(
        fin.outcome,
        orkv_vending::ops::rotate::StepOutcome::AlreadyCurrent
    );
    assert!(
        w.tags(&name)
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
        orkv_tests::roles::ops::run_step(&d, &step(&name, &token, s), deadline())
            .await
            .expect("done");
    }
    // The old key had no retire tag (the crash skipped it): it is an orphan-free
    // AWSPREVIOUS key referenced by nothing, so the sweep reports and removes it.
    advance(&w, &d, 120).await;
    let r = sweep(&d, "after-crash").await;
    assert!(r.orphans_found <= 1, "{r:?}");
    assert_eq!(w.live_for(&name).await.len(), 1);
    assert!(!w.pending_dangling(&name).await);
}

#[tokio::test]
async fn a_start_after_a_finish_interrupted_past_the_label_move_completes_it() {
    let w = World::start().await;
    let d = deps(&w);
    let name = provision(&d, &unique("tail")).await;
    let token = begin(&w, &d, &name).await;
    run_steps(&d, &name, &token, &UP_TO_TEST).await;
    // finishSecret dies right after moving AWSCURRENT: AWSPENDING stays, the tags the sweep
    // reads still name the old key, so the sweep keeps asking for this token's rotation.
    let (cur, _) = w.current(&name).await;
    d.store()
        .move_stage(&name, "AWSCURRENT", Some(&cur), Some(&token))
        .await
        .expect("move");
    let start = orkv_tests::roles::ops::start_rotation(&d, &name, &token)
        .await
        .expect("start");
    assert_eq!(start, orkv_vending::deps::RotationStart::Completed);
    assert!(!w.pending_dangling(&name).await);
    assert!(
        w.stages(&name)
            .await
            .iter()
            .all(|(_, s)| !s.contains(&"AWSPENDING".to_owned())),
        "AWSPENDING removed"
    );
    assert!(
        w.tags(&name)
            .await
            .iter()
            .any(|(k, v)| k == "orkv:generation" && v == "2")
    );
    let again = orkv_tests::roles::ops::start_rotation(&d, &name, &token)
        .await
        .expect("again");
    assert_eq!(again, orkv_vending::deps::RotationStart::AlreadyCurrent);
    let (_, rec) = w.current(&name).await;
    assert!(w.works(rec["api_key"].as_str().expect("key")).await);
}

#[tokio::test]
async fn bad_rotation_input_fails_the_step_and_changes_nothing() {
    let w = World::start().await;
    let d = deps(&w);
    // Created where no rotation function is configured: rotation stays off (every other
    // creation configures it).
    let name = provision(&w.deps(&[]), &unique("bad")).await;
    // Every version, deprecated (label-less) ones included: DescribeSecret omits those.
    let all_versions = || async {
        d.store()
            .version_stages(&name, true)
            .await
            .expect("versions")
    };
    let before_versions = all_versions().await;
    let before_keys = w.control.state().await["keys"]
        .as_array()
        .map_or(0, Vec::len);
    let unknown_token = uuid::Uuid::new_v4().to_string();
    // Rotation not enabled on this secret yet.
    let err = orkv_tests::roles::ops::run_step(
        &d,
        &step(&name, &unknown_token, Step::CreateSecret),
        deadline(),
    )
    .await
    .expect_err("disabled");
    assert_eq!(err.kind(), "RotationDisabled");
    // Unknown step.
    let err = orkv_tests::roles::ops::rotation_step(
        &d,
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
    let enabled_versions = w.stages(&name).await;
    let enabled_all = all_versions().await;
    let err = orkv_tests::roles::ops::run_step(
        &d,
        &step(&name, &unknown_token, Step::CreateSecret),
        deadline(),
    )
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
    let err = orkv_tests::roles::ops::run_step(
        &d,
        &step(&name, &previous, Step::FinishSecret),
        deadline(),
    )
    .await
    .expect_err("not pending");
    assert_eq!(err.kind(), "VersionNotPending");
    // A secret this product does not manage, with rotation pointed at the function (by
    // someone else: the functions' roles may not touch an untagged secret, and under the
    // layer, as under IAM, every call on it is AccessDenied).
    let foreign = unique("foreign");
    w.sm.create_secret()
        .name(&foreign)
        .secret_string("{\"password\":\"x\"}")
        .send()
        .await
        .expect("foreign");
    let err = orkv_tests::roles::ops::run_step(
        &d,
        &step(&foreign, &unknown_token, Step::CreateSecret),
        deadline(),
    )
    .await
    .expect_err("foreign");
    // AccessDenied on a named secret is "none of ours" (docs/aws-fidelity.md): refused
    // before anything is written.
    assert_eq!(err.kind(), "SecretNotFound", "{err}");
    assert_eq!(w.stages(&name).await, enabled_versions);
    assert_eq!(
        before_versions.len() + 1,
        enabled_all.len(),
        "only the enabling call wrote"
    );
    assert_eq!(
        w.control.state().await["keys"]
            .as_array()
            .map_or(0, Vec::len),
        before_keys
    );
}

/// A cap update that arrives during a rotation. AWS abandons a rotation when a new version of
/// the secret is created while it runs (user guide, "Logging AWS Secrets Manager events with
/// AWS CloudTrail", `RotationAbandoned`); the strict layer does the same. The update therefore
/// writes no version: the key in use gets the cap at once, the change is kept in a tag, and
/// `finishSecret` gives it to the successor and writes the merged record once `AWSPENDING` is
/// gone.
#[tokio::test]
async fn a_cap_update_during_a_rotation_is_carried_to_the_successor() {
    let (w, proxy) = World::behind_proxy().await;
    proxy.set_strict(true);
    let d = deps(&w);
    let key_name = unique("race");
    let name = provision(&d, &key_name).await;
    let (_, before) = w.current(&name).await;
    let token = begin(&w, &d, &name).await;
    run_steps(&d, &name, &token, &UP_TO_TEST).await;
    let mut req = request(&key_name);
    req["limit"] = json!(75);
    let updated = orkv_tests::roles::ops::handle(&d, req.clone(), deadline())
        .await
        .expect("update");
    assert_eq!(updated.status, Status::Updated);
    assert!(
        w.stages(&name)
            .await
            .iter()
            .any(|(v, s)| v == &token && s.contains(&"AWSPENDING".to_owned())),
        "the rotation was not abandoned"
    );
    let in_use = w
        .live_for(&name)
        .await
        .into_iter()
        .find(|k| k["hash"] == before["key_hash"])
        .expect("old key live");
    // The outgoing key is held to its share of the cap (ADR 0010): half of 50 when the
    // successor was minted; a raise never raises it (a lower cap would lower it at once).
    assert_eq!(in_use["limit"], 25.0, "the key in use keeps its share");
    orkv_tests::roles::ops::run_step(&d, &step(&name, &token, Step::FinishSecret), deadline())
        .await
        .expect("finish");
    let (_, rec) = w.current(&name).await;
    assert_eq!(rec["generation"], 2);
    assert_eq!(rec["limit"], 75.0);
    let live = w.live_for(&name).await;
    let new = live
        .iter()
        .find(|k| k["hash"] == rec["key_hash"])
        .expect("new key live");
    assert_eq!(
        new["limit"], 50.0,
        "the successor gets the rest of the new cap"
    );
    // The same request again is answered unchanged: the same end state as one clean run.
    assert_eq!(
        orkv_tests::roles::ops::handle(&d, req, deadline())
            .await
            .expect("repeat")
            .status,
        Status::Unchanged
    );
    assert_clean_end(&w, &d, &name).await;
}

#[tokio::test]
async fn a_finish_that_died_after_carrying_a_cap_change_to_the_new_key_is_finished_by_the_retry() {
    let w = World::start().await;
    let d = deps(&w);
    let key_name = unique("carry");
    let name = provision(&d, &key_name).await;
    let token = begin(&w, &d, &name).await;
    let mut created = None;
    for s in [Step::CreateSecret, Step::SetSecret, Step::TestSecret] {
        let r = orkv_tests::roles::ops::run_step(&d, &step(&name, &token, s), deadline())
            .await
            .expect("step");
        created = created.or(r.key_hash);
    }
    let mut req = request(&key_name);
    req["limit"] = json!(75);
    orkv_tests::roles::ops::handle(&d, req, deadline())
        .await
        .expect("update");
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
    let (_, rec) = w.current(&name).await;
    assert_eq!(rec["generation"], 2);
    assert_eq!(rec["limit"], 75.0);
    assert_eq!(rec["key_hash"].as_str(), Some(hash.as_str()));
    assert!(w.works(rec["api_key"].as_str().expect("key")).await);
    assert_clean_end(&w, &d, &name).await;
}

/// `RotateSecret` with `RotateImmediately=false` (how a new secret's rotation is configured)
/// tests the configuration: Secrets Manager runs only `testSecret`, against a temporary
/// `AWSPENDING` version that may hold a copy of the current value, then removes it (API
/// reference, RotateSecret; moto's `rotate_secret` copies the value the same way). Neither moto
/// nor LocalStack can invoke the function then, so the test plays that version here: the step
/// passes, and nothing changes.
#[tokio::test]
async fn test_secret_passes_on_the_copy_a_configuration_test_makes() {
    let w = World::start().await;
    let d = deps(&w);
    let name = provision(&d, &unique("cfgtest")).await;
    let (v1, current) = w.current(&name).await;
    let token = uuid::Uuid::new_v4().to_string();
    w.sm.put_secret_value()
        .secret_id(&name)
        .client_request_token(&token)
        .secret_string(current.to_string())
        .version_stages("AWSPENDING")
        .send()
        .await
        .expect("the configuration test's version");
    let reply =
        orkv_tests::roles::ops::run_step(&d, &step(&name, &token, Step::TestSecret), deadline())
            .await;
    assert!(reply.is_ok(), "{reply:?}");
    w.sm.update_secret_version_stage()
        .secret_id(&name)
        .version_stage("AWSPENDING")
        .remove_from_version_id(&token)
        .send()
        .await
        .expect("removed, as Secrets Manager removes it");
    let (v2, after) = w.current(&name).await;
    assert_eq!((v1, &current), (v2, &after));
    assert_eq!(w.live_for(&name).await.len(), 1);
    assert!(w.works(after["api_key"].as_str().expect("key")).await);
}
