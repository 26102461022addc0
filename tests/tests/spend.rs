//! Spend visibility (issue 15, item 3): the sweep sums what each tenant's keys spent in their
//! caps' current periods per workspace, from the listing it already makes (no per-key call),
//! counts every live generation of a logical key, and warns on the logical key's remainder.

use orkv_tests::rotating::{deadline, deps, sweep};
use orkv_tests::unique;
use orkv_tests::world::World;
use serde_json::{Value, json};

async fn spend(w: &World, hash: &str, usd: f64) {
    let status = reqwest::Client::new()
        .post(format!("{}/_emulator/usage", w.emu.url()))
        .json(&json!({"hash": hash, "usage": usd}))
        .send()
        .await
        .expect("control")
        .status();
    assert!(status.is_success());
}

#[tokio::test]
async fn the_sweep_publishes_spend_per_workspace_counting_every_live_generation() {
    let w = World::start().await;
    let d = deps(&w);
    let prefix = unique("spend");
    let body = |k: &str, ws: &str, limit: f64| {
        json!({"workspace": ws, "key_name": format!("{prefix}-{k}"), "limit": limit,
               "limit_reset": "monthly", "ttl_seconds": 172_800, "rotate_before_seconds": 3600})
    };
    let a = d
        .handle(body("a", "checkout", 10.0), deadline())
        .await
        .expect("a");
    let b = d
        .handle(body("b", "checkout", 20.0), deadline())
        .await
        .expect("b");
    let c = d
        .handle(body("c", "search", 5.0), deadline())
        .await
        .expect("c");
    // `a` spent 6 of 10, then rotated: its successor spent 3.5 more. Each generation alone has
    // room (4, 6.5), the logical key has 0.5 left: below 10 % of its cap.
    spend(&w, &a.key_hash, 6.0).await;
    let rotated = d
        .handle_request(json!({"action": "rotate", "secret_name": a.secret_name, "idempotency_id": "spend-rot"}), deadline())
        .await
        .expect("rotated");
    spend(&w, rotated["key_hash"].as_str().expect("hash"), 3.5).await;
    spend(&w, &b.key_hash, 2.0).await;
    spend(&w, &c.key_hash, 1.0).await;

    w.control.reset_calls().await;
    let r = sweep(&d, &unique("spend")).await;
    let by_ws = |ws: &str| {
        r.spend
            .iter()
            .find(|s| s.workspace == ws)
            .cloned()
            .expect(ws)
    };
    let checkout = by_ws("checkout");
    assert_eq!(checkout.keys, 2);
    assert!((checkout.spend_usd - 11.5).abs() < 1e-9, "{checkout:?}");
    assert!((checkout.cap_usd - 30.0).abs() < 1e-9, "{checkout:?}");
    assert!(
        (checkout.headroom_usd - (0.5 + 18.0)).abs() < 1e-9,
        "{checkout:?}"
    );
    assert_eq!(checkout.keys_low_on_headroom, 1);
    let search = by_ws("search");
    assert!(
        (search.spend_usd - 1.0).abs() < 1e-9 && (search.headroom_usd - 4.0).abs() < 1e-9,
        "{search:?}"
    );
    assert_eq!(
        r.low_spend_keys, 1,
        "the logical key's remainder, not one generation's"
    );
    assert!(
        r.actions
            .iter()
            .any(|x| x.secret == a.secret_name && x.detail.contains("0.50 of 10")),
        "{:?}",
        r.actions
    );
    // No per-key call: the listing of each workspace is all the OpenRouter traffic.
    let calls = w.control.calls().await["calls"].clone();
    let per_key: u64 = ["get_key", "get_current_key", "update_key"]
        .iter()
        .filter_map(|c| calls[c].as_u64())
        .sum();
    assert_eq!(per_key, 0, "{calls}");
    // One EMF document per tenant and workspace, no per-key dimension.
    for s in &r.spend {
        let doc: Value = s.emf(d.clock().now());
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Tenant", "Workspace"]])
        );
        assert_eq!(doc["Workspace"], json!(s.workspace));
        assert!(doc.get("Secret").is_none() && doc.get("KeyHash").is_none());
    }
}
