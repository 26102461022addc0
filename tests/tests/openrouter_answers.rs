//! Issue 26, item 4: the product reads OpenRouter's answers as OpenRouter documents them. A
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
