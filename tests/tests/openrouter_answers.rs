//! Issue 26, items 4 and 5: the product reads OpenRouter's answers as OpenRouter documents them. A
//! 429 on `POST /keys` is a definite refusal, sent again after the wait OpenRouter asks for; a
//! key described in a spelling this client does not know (OpenRouter's SDKs decode enums as
//! open values) never stops a listing. Sources: docs/openrouter-fidelity.md.

use orkv_tests::roles::ops;
use orkv_tests::rotating::{deadline, deps_with, sweep};
use orkv_tests::world::World;
use orkv_tests::{CHECKOUT_WORKSPACE_ID, unique};
use orkv_vending::ops::sweep::report::SweepAction;
use serde_json::json;

fn body(key_name: &str) -> serde_json::Value {
    json!({"workspace": "checkout", "key_name": key_name, "limit": 10, "limit_reset": "monthly",
           "ttl_seconds": 172_800, "rotate_before_seconds": 3600})
}

/// Before, the 429 was answered as the provision's failure (`OpenRouterRateLimited`).
#[tokio::test]
async fn a_rate_limited_create_is_sent_again_after_its_wait_and_mints_one_key() {
    let w = World::start().await;
    let d = deps_with(&w, &[]);
    ops::handle(&d, body(&unique("warm")), deadline())
        .await
        .expect("warm");
    w.control.reset_calls().await;
    w.control
        .fault(json!({"op": "create_key", "action": "rate_limit", "retry_after": 0.3, "times": 1}))
        .await;
    let key_name = unique("limited");
    let vended = ops::handle(&d, body(&key_name), deadline())
        .await
        .expect("created after the wait");
    let calls = w.control.calls().await;
    assert_eq!(calls["calls"]["create_key"], json!(2), "{calls}");
    let live = w.live_for(&vended.secret_name).await;
    assert_eq!(live.len(), 1, "one key: {live:?}");
    assert_eq!(live[0]["hash"], json!(vended.key_hash));
}

/// Before, the page holding it failed to decode, and with it the sweep's scan of the
/// workspace: the key (and every other key on its page) went unseen.
#[tokio::test]
async fn a_key_in_a_spelling_this_client_does_not_know_never_stops_a_listing() {
    let w = World::start().await;
    let d = deps_with(&w, &[]);
    let (_, odd) = w
        .control
        .add_key(
            json!({"name": "made elsewhere", "workspace_id": CHECKOUT_WORKSPACE_ID,
                        "limit": 5, "limit_reset": "yearly"}),
        )
        .await;
    let vended = ops::handle(&d, body(&unique("listed")), deadline())
        .await
        .expect("vended");
    let r = sweep(&d, &unique("scan")).await;
    let reported: Vec<&str> = r
        .actions
        .iter()
        .filter(|a| a.action == SweepAction::UnmanagedKey)
        .map(|a| a.detail.as_str())
        .collect();
    assert!(reported.contains(&odd.as_str()), "{r:?}");
    assert_eq!(
        r.current_keys_broken, 0,
        "the product's key was seen: {r:?}"
    );
    assert_eq!(w.live_for(&vended.secret_name).await.len(), 1);
}

/// Issue 26, item 5. OpenRouter hides expired keys from `GET /keys` unless asked
/// (`include_expired`: CONTRACT.md, "Listing keys"), so an expired key the product named, whose
/// secret is gone, was never listed and never cleaned up.
#[tokio::test]
async fn an_expired_key_the_product_named_is_listed_and_cleaned_up_as_an_orphan() {
    let w = World::start().await;
    let d = deps_with(
        &w,
        &[
            ("ORKV_ORPHANS", "delete"),
            ("ORKV_ORPHAN_MIN_AGE_SECONDS", "0"),
        ],
    );
    let (_, expired) = w
        .control
        .add_key(
            json!({"name": format!("orkv:openrouter/checkout/{}:c0ffee", unique("gone")),
                        "workspace_id": CHECKOUT_WORKSPACE_ID, "limit": 5,
                        "expires_at": "2026-01-01T00:00:00Z"}),
        )
        .await;
    let r = sweep(&d, &unique("orphans")).await;
    assert!(
        r.actions
            .iter()
            .any(|a| a.action == SweepAction::OrphanDeleted && a.detail == expired),
        "{r:?}"
    );
    assert!(
        !w.control
            .all_keys()
            .await
            .iter()
            .any(|k| k["hash"] == json!(expired)),
        "deleted"
    );
}

/// Issue 26, item 5: a current key nobody has used for `ORKV_IDLE_KEY_SECONDS` is reported
/// from the listing's `last_used_at` (no call of its own); one never used says nothing.
#[tokio::test]
async fn a_current_key_nobody_has_used_for_a_while_is_reported_idle() {
    let w = World::start().await;
    let d = deps_with(&w, &[("ORKV_IDLE_KEY_SECONDS", "3600")]);
    let used = ops::handle(&d, body(&unique("used")), deadline())
        .await
        .expect("vended");
    let never = ops::handle(&d, body(&unique("never")), deadline())
        .await
        .expect("vended");
    let (_, record) = w.current(&used.secret_name).await;
    let plaintext = record["api_key"].as_str().expect("plaintext");
    let spent = reqwest::Client::new()
        .post(format!("{}/_emulator/spend", w.emu.url()))
        .json(&json!({"key": plaintext, "usd": 0.01}))
        .send()
        .await
        .expect("spend")
        .status();
    assert!(spent.is_success());
    let r = sweep(&d, &unique("fresh")).await;
    assert_eq!(r.idle_keys, 0, "just used: {r:?}");
    orkv_tests::rotating::advance(&w, &d, 7200).await;
    let r = sweep(&d, &unique("idle")).await;
    let idle: Vec<&str> = r
        .actions
        .iter()
        .filter(|a| a.action == SweepAction::IdleKey)
        .map(|a| a.secret.as_str())
        .collect();
    assert_eq!(idle, vec![used.secret_name.as_str()], "{r:?}");
    assert_eq!(r.idle_keys, 1);
    assert!(!idle.contains(&never.secret_name.as_str()));
}

/// Issue 26, item 5: a workspace's `io_logging_api_key_ids` names keys by an integer id the
/// documented key object does not carry, so rotation (which replaces keys) silently ends a
/// listed key's logging; the sweep says so, per workspace.
#[tokio::test]
async fn a_workspace_that_logs_keys_by_id_is_reported() {
    let w = World::start().await;
    let status = reqwest::Client::new()
        .post(format!("{}/_emulator/workspace-logging", w.emu.url()))
        .json(&json!({"id": CHECKOUT_WORKSPACE_ID, "io_logging_api_key_ids": [7, 9]}))
        .send()
        .await
        .expect("settings")
        .status();
    assert!(status.is_success());
    let d = deps_with(&w, &[]);
    let r = sweep(&d, &unique("logging")).await;
    assert_eq!(r.workspaces_logging_keys_by_id, 1, "{r:?}");
    assert!(
        r.actions
            .iter()
            .any(|a| a.action == SweepAction::WorkspaceLogsKeysById && a.secret == "checkout")
    );
}
