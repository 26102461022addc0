//! Issue 13, item 10: every claim is read back. A reply says `created`, `updated`, `rotated`
//! or (for `finishSecret`) done only after `AWSCURRENT` was read back holding an active record
//! whose key answers `GET /key`; when the read-back does not see the claim, the reply is an
//! error (`ClaimNotConfirmed`, or `SecretRevoked`) and a repeat converges.

use std::sync::Arc;
use std::time::Duration;

use orkv_tests::rotating::*;
use orkv_tests::world::World;
use orkv_tests::{MANAGEMENT_KEY, unique};
use orkv_vending::input::rotation::Step;
use orkv_vending::ops::provision::Status;
use serde_json::json;

/// Deletes a key out of band, as someone in the dashboard would.
async fn delete_in_dashboard(w: &World, hash: &str) {
    let status = reqwest::Client::new()
        .delete(format!("{}/keys/{hash}", w.emu.api_url()))
        .bearer_auth(MANAGEMENT_KEY)
        .send()
        .await
        .expect("delete")
        .status();
    assert!(status.is_success(), "{status}");
}

#[tokio::test]
async fn a_new_key_openrouter_does_not_honour_is_not_answered_created_and_the_repeat_converges() {
    let w = World::start().await;
    let d = deps(&w);
    provision(&d, &unique("warm")).await;
    let key_name = unique("unhonoured");
    // The read-back's GET /key is refused once, as for a key OpenRouter does not accept.
    w.control
        .fault(json!({"op": "get_current_key", "action": "status", "status": 401, "times": 1}))
        .await;
    let err = orkv_tests::roles::ops::handle(&d, request(&key_name), deadline())
        .await
        .expect_err("not confirmed");
    assert_eq!(err.kind(), "ClaimNotConfirmed", "{err}");
    assert!(err.to_string().contains("GET /key"), "{err}");
    // The stored key stays the one key; the repeat reads it back and answers it.
    let again = orkv_tests::roles::ops::handle(&d, request(&key_name), deadline())
        .await
        .expect("repeat");
    assert_eq!(again.status, Status::Unchanged);
    let live = w.live_for(&again.secret_name).await;
    assert_eq!(live.len(), 1, "{live:?}");
    let (_, rec) = w.current(&again.secret_name).await;
    assert_eq!(rec["key_hash"], json!(again.key_hash));
    assert!(w.works(rec["api_key"].as_str().expect("key")).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoke_that_lands_between_the_store_and_the_reply_is_never_answered_created() {
    let w = World::start().await;
    let d = Arc::new(deps(&w));
    provision(&d, &unique("warm")).await;
    let key_name = unique("raced");
    let secret_name = format!("openrouter/checkout/{key_name}");
    // Hold the read-back's GET /key until the revoke below has run.
    w.control
        .fault(json!({"op": "get_current_key", "action": "delay", "ms": 3000, "times": 1}))
        .await;
    let minting = {
        let d = d.clone();
        let req = request(&key_name);
        tokio::spawn(async move { orkv_tests::roles::ops::handle(&d, req, deadline()).await })
    };
    // Wait (bounded) for the active record: the mint has stored its key and is reading back.
    let mut stored = false;
    for _ in 0..200 {
        if let Ok(v) = w.sm.get_secret_value().secret_id(&secret_name).send().await
            && v.secret_string().is_some_and(|s| s.contains("\"active\""))
        {
            stored = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(stored, "the mint stored its key");
    let revoke = json!({"action": "revoke", "secret_name": secret_name, "idempotency_id": "r-1"});
    let revoked = orkv_tests::roles::ops::handle_request(&d, revoke, deadline())
        .await
        .expect("revoked");
    assert_eq!(revoked["status"], "revoked");
    let outcome = minting.await.expect("join");
    let err = outcome.expect_err("the mint must not answer created");
    assert!(
        ["ClaimNotConfirmed", "SecretRevoked"].contains(&err.kind()),
        "{err}"
    );
    assert!(w.live_for(&secret_name).await.is_empty(), "no key is live");
}

#[tokio::test]
async fn a_successor_deleted_before_finish_is_not_reported_done_and_one_sweep_replaces_it() {
    let w = World::start().await;
    let d = deps(&w);
    let name = provision(&d, &unique("finish")).await;
    let token = begin(&w, &d, &name).await;
    run_steps(&d, &name, &token, &UP_TO_TEST).await;
    let successor = w.version_record(&name, &token).await;
    let hash = successor["key_hash"].as_str().expect("hash").to_owned();
    delete_in_dashboard(&w, &hash).await;
    let err =
        orkv_tests::roles::ops::run_step(&d, &step(&name, &token, Step::FinishSecret), deadline())
            .await
            .expect_err("finish must not answer done");
    assert_eq!(err.kind(), "ClaimNotConfirmed", "{err}");
    // The sweep's repair (issue 13 item 10's other half) replaces the broken current key.
    let r = sweep(&d, "repair").await;
    assert!(r.current_keys_broken >= 1, "{r:?}");
    let (_, rec) = w.current(&name).await;
    assert_ne!(rec["key_hash"], json!(hash));
    assert!(w.works(rec["api_key"].as_str().expect("key")).await);
}

#[tokio::test]
async fn a_cap_update_is_answered_updated_only_once_get_key_shows_the_new_cap() {
    let w = World::start().await;
    let d = deps(&w);
    let name = provision(&d, &unique("capped")).await;
    let key_name = name.rsplit('/').next().expect("key name").to_owned();
    let mut changed = request(&key_name);
    changed["limit"] = json!(20);
    w.control.reset_calls().await;
    let updated = orkv_tests::roles::ops::handle(&d, changed, deadline())
        .await
        .expect("updated");
    assert_eq!(updated.status, Status::Updated);
    // The reply rests on a GET /key made after the write.
    assert_eq!(
        w.control.calls().await["calls"]["get_current_key"],
        json!(1)
    );
    let (_, rec) = w.current(&name).await;
    let shown: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/key", w.emu.api_url()))
        .bearer_auth(rec["api_key"].as_str().expect("key"))
        .send()
        .await
        .expect("GET /key")
        .json()
        .await
        .expect("json");
    assert_eq!(shown["data"]["limit"], json!(20.0));
}
