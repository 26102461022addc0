//! Spend visibility (issue 15, item 3): the sweep sums what each tenant's keys spent in their
//! caps' current periods per workspace, from the listing it already makes (no per-key call),
//! counts every live generation of a logical key, and warns on the logical key's remainder.

use orkv_tests::roles::ops;
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
    let a = ops::handle(&d, body("a", "checkout", 10.0), deadline())
        .await
        .expect("a");
    let b = ops::handle(&d, body("b", "checkout", 20.0), deadline())
        .await
        .expect("b");
    let c = ops::handle(&d, body("c", "search", 5.0), deadline())
        .await
        .expect("c");
    // `a` spent 6 of 10, then rotated: its successor spent 3.5 more. Each generation alone has
    // room (4, 6.5), the logical key has 0.5 left: below 10 % of its cap.
    spend(&w, &a.key_hash, 6.0).await;
    let rotated = ops::handle_request(
        &d,
        json!({"action": "rotate", "secret_name": a.secret_name, "idempotency_id": "spend-rot"}),
        deadline(),
    )
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

/// Spends `usd` with `key` through the emulator, as an inference request would: (status,
/// message).
async fn spend_with(w: &World, key: &str, usd: f64) -> (u16, String) {
    let r = reqwest::Client::new()
        .post(format!("{}/_emulator/spend", w.emu.url()))
        .json(&json!({"key": key, "usd": usd}))
        .send()
        .await
        .expect("control");
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or_default();
    (
        status,
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

#[tokio::test]
async fn a_key_is_refused_past_its_cap_and_the_full_cap_returns_after_the_period_boundary() {
    // The emulator's spend control enforces the cap in its current period on its own clock,
    // as OpenRouter does: past the cap, 403 "Key limit exceeded" (the client's
    // `KeyLimitExceeded`, distinct from an account out of credits); after the month's
    // boundary the full cap is back, and the sweep's spend figures follow.
    let w = World::start().await;
    let d = deps(&w);
    let body = json!({"workspace": "checkout", "key_name": unique("capped"), "limit": 10,
                      "limit_reset": "monthly", "ttl_seconds": 7_000_000, "rotate_before_seconds": 3600});
    let name = ops::handle(&d, body, deadline())
        .await
        .expect("vended")
        .secret_name;
    let key = w.current(&name).await.1["api_key"]
        .as_str()
        .expect("key")
        .to_owned();
    assert_eq!(spend_with(&w, &key, 6.0).await.0, 200);
    let (status, message) = spend_with(&w, &key, 5.0).await;
    assert_eq!((status, message.as_str()), (403, "Key limit exceeded"));
    let r = sweep(&d, &unique("before")).await;
    let before = r
        .spend
        .iter()
        .find(|s| s.workspace == "checkout")
        .cloned()
        .expect("checkout");
    assert!((before.headroom_usd - 4.0).abs() < 1e-9, "{before:?}");

    // Into the next month on both clocks.
    let now = time::OffsetDateTime::now_utc();
    let next = (now.replace_day(1).expect("day") + time::Duration::days(32))
        .replace_day(1)
        .expect("day")
        .replace_time(time::Time::MIDNIGHT);
    let secs = (next - now).whole_seconds() + 60;
    orkv_tests::rotating::advance(&w, &d, secs).await;
    assert_eq!(
        spend_with(&w, &key, 9.0).await.0,
        200,
        "the full cap is back"
    );
    let listed = reqwest::Client::new()
        .get(format!("{}/key", w.emu.api_url()))
        .bearer_auth(&key)
        .send()
        .await
        .expect("GET /key")
        .json::<Value>()
        .await
        .expect("json");
    assert_eq!(listed["data"]["usage_monthly"], 9.0);
    assert_eq!(listed["data"]["usage"], 15.0, "the lifetime keeps counting");
    assert_eq!(listed["data"]["limit_remaining"], 1.0);
    let r = sweep(&d, &unique("after")).await;
    let after = r
        .spend
        .iter()
        .find(|s| s.workspace == "checkout")
        .cloned()
        .expect("checkout");
    assert!(
        (after.spend_usd - 9.0).abs() < 1e-9 && (after.headroom_usd - 1.0).abs() < 1e-9,
        "{after:?}"
    );
}

#[tokio::test]
async fn a_key_over_its_cap_is_key_limit_exceeded_distinct_from_an_account_out_of_credit_and_still_rotates()
 {
    // Issue 15, item 4: wherever a key is tested (testSecret, the read-back of every claim),
    // a key over its cap answers KeyLimitExceeded, an account out of credit CreditsExhausted;
    // neither is a broken key, so rotation goes on.
    let w = World::start().await;
    let d = deps(&w);
    let body = json!({"workspace": "checkout", "key_name": unique("spent"), "limit": 10,
                      "limit_reset": "monthly", "ttl_seconds": 7_000_000, "rotate_before_seconds": 3600});
    let name = ops::handle(&d, body, deadline())
        .await
        .expect("vended")
        .secret_name;
    let key = w.current(&name).await.1["api_key"]
        .as_str()
        .expect("key")
        .to_owned();
    assert_eq!(spend_with(&w, &key, 10.0).await.0, 200);
    let rotate = |id: &str| json!({"action": "rotate", "secret_name": name, "idempotency_id": id});
    // The whole cap is spent: the successor gets nothing more this month (limit 0), and is
    // promoted all the same; the old key has no room either.
    ops::handle_request(&d, rotate("spent-1"), deadline())
        .await
        .expect("rotated with the cap spent");
    let (_, rec) = w.current(&name).await;
    assert_eq!(rec["generation"], 2);
    let successor = rec["api_key"].as_str().expect("key").to_owned();
    assert_eq!(
        spend_with(&w, &successor, 0.01).await,
        (403, "Key limit exceeded".to_owned())
    );
    let client = w.management_client();
    let k = client
        .get_key(rec["key_hash"].as_str().expect("hash"))
        .await
        .expect("key");
    assert_eq!((k.limit, k.limit_remaining), (Some(0.0), Some(0.0)));

    // GET /key answering as for a key over its cap, then as for an account out of credit:
    // the client names each, and a rotation tests the key as valid through either.
    for (message, kind, id) in [
        (
            "Key limit exceeded",
            orkv_openrouter::ErrorKind::KeyLimitExceeded,
            "spent-2",
        ),
        (
            "Insufficient credits. Add more using https://openrouter.ai/credits",
            orkv_openrouter::ErrorKind::CreditsExhausted,
            "spent-3",
        ),
    ] {
        let status = if kind == orkv_openrouter::ErrorKind::CreditsExhausted {
            402
        } else {
            403
        };
        w.control
            .fault(
                json!({"op": "get_current_key", "action": "status", "status": status,
                          "message": message, "times": 1}),
            )
            .await;
        let seen = client
            .current_key_with(&orkv_openrouter::ApiKey::new(successor.clone()))
            .await
            .expect_err("refused");
        assert_eq!(seen.kind(), kind, "{message}");
        rotates_through(&w, &d, &name, (status, message), rotate(id)).await;
    }
}

/// A rotation goes through while `GET /key` answers `status` with `message` (the key's spend
/// refused, not the key): one generation more.
async fn rotates_through(
    w: &World,
    d: &orkv_vending::Deps,
    name: &str,
    (status, message): (u16, &str),
    request: Value,
) {
    w.control
        .fault(
            json!({"op": "get_current_key", "action": "status", "status": status,
                      "message": message, "times": 10}),
        )
        .await;
    let before = w.current(name).await.1["generation"].as_u64().expect("gen");
    ops::handle_request(d, request, deadline())
        .await
        .unwrap_or_else(|e| panic!("{message}: {e:?}"));
    w.control.clear_faults().await;
    assert_eq!(
        w.current(name).await.1["generation"].as_u64(),
        Some(before + 1),
        "{message}"
    );
}
