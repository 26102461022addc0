//! Guardrails (issue 15, items 2 and 5): the emulator serves guardrails and key assignments as
//! the OpenAPI document describes them and enforces a guardrail's budget; with a guardrail in
//! the policy, every key the product mints carries it before it is stored, through rotation,
//! and loses it at retirement; a guardrail that does not exist or lives in another workspace is
//! refused before any side effect, and an assignment OpenRouter refuses leaves no usable key.
//! Issue 26: budgets bind each key alone, and listings page past the rows of deleted keys.

use orkv_tests::roles::ops;
use orkv_tests::rotating::{GRACE, advance, deadline, deps_with, sweep};
use orkv_tests::world::World;
use orkv_tests::{CHECKOUT_WORKSPACE_ID, MANAGEMENT_KEY, SEARCH_WORKSPACE_ID, unique};
use serde_json::{Value, json};

async fn call(w: &World, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .request(method, format!("{}{path}", w.emu.api_url()))
        .bearer_auth(MANAGEMENT_KEY);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.expect("call");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}

async fn guardrail(w: &World, workspace: &str, limit: f64) -> String {
    w.control.create_guardrail(workspace, limit).await
}

/// No secret was made for `key_name` (the derived name in checkout).
async fn no_secret(w: &World, key_name: &str) -> bool {
    w.sm.describe_secret()
        .secret_id(format!("openrouter/checkout/{key_name}"))
        .send()
        .await
        .is_err()
}

async fn assigned(w: &World, id: &str) -> Vec<String> {
    let (status, body) = call(
        w,
        reqwest::Method::GET,
        &format!("/guardrails/{id}/assignments/keys?limit=100"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|a| a["key_hash"].as_str().expect("hash").to_owned())
        .collect()
}

async fn spend(w: &World, key: &str, usd: f64) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/_emulator/spend", w.emu.url()))
        .json(&json!({"key": key, "usd": usd}))
        .send()
        .await
        .expect("spend");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}

fn policy(checkout_guardrail: &str) -> String {
    orkv_tests::guarded_policy(checkout_guardrail)
}

fn body(key_name: &str) -> Value {
    json!({"workspace": "checkout", "key_name": key_name, "limit": 10, "limit_reset": "monthly",
           "ttl_seconds": 172_800, "rotate_before_seconds": 3600})
}

#[tokio::test]
async fn the_emulator_serves_guardrails_and_key_assignments_and_enforces_the_budget() {
    let w = World::start().await;
    let post = reqwest::Method::POST;
    // limit_usd and reset_interval come together (CONTRACT.md).
    let (status, _) = call(
        &w,
        post.clone(),
        "/guardrails",
        Some(json!({"name": "half", "limit_usd": 5})),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = call(&w, post.clone(), "/guardrails", Some(json!({}))).await;
    assert_eq!(status, 400, "name is required");
    let id = guardrail(&w, CHECKOUT_WORKSPACE_ID, 5.0).await;
    let (status, got) = call(&w, reqwest::Method::GET, &format!("/guardrails/{id}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(got["data"]["workspace_id"], CHECKOUT_WORKSPACE_ID);
    assert_eq!(got["data"]["limit_usd"], 5.0);
    let (status, list) = call(
        &w,
        reqwest::Method::GET,
        &format!("/guardrails?workspace_id={CHECKOUT_WORKSPACE_ID}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(list["total_count"].as_u64().expect("total") >= 1);

    let (key_a, a) = w
        .control
        .add_key(json!({"name": unique("a"), "workspace_id": CHECKOUT_WORKSPACE_ID}))
        .await;
    let (key_b, b) = w
        .control
        .add_key(json!({"name": unique("b"), "workspace_id": CHECKOUT_WORKSPACE_ID}))
        .await;
    let (_, elsewhere) = w
        .control
        .add_key(json!({"name": unique("c"), "workspace_id": SEARCH_WORKSPACE_ID}))
        .await;
    let path = format!("/guardrails/{id}/assignments/keys");
    // Same workspace only, all or nothing.
    let (status, _) = call(
        &w,
        post.clone(),
        &path,
        Some(json!({"key_hashes": [a, elsewhere]})),
    )
    .await;
    assert_eq!(status, 400);
    assert!(assigned(&w, &id).await.is_empty());
    let (status, r) = call(&w, post.clone(), &path, Some(json!({"key_hashes": [a, b]}))).await;
    assert_eq!((status, r["assigned_count"].clone()), (200, json!(2)));
    let mut both = assigned(&w, &id).await;
    both.sort();
    let mut want = vec![a.clone(), b.clone()];
    want.sort();
    assert_eq!(both, want);

    // The budget binds each key alone ("enforced per-user and per-key, not shared across all
    // users with that guardrail": OpenRouter's guardrails guide; CONTRACT.md): 3 + 2 + 0.5
    // across two keys passes a budget of 5, which pooled spend would refuse; a key's own
    // spend past 5 is refused.
    assert_eq!(spend(&w, &key_a, 3.0).await.0, 200);
    assert_eq!(spend(&w, &key_b, 2.0).await.0, 200);
    assert_eq!(spend(&w, &key_b, 0.5).await.0, 200, "per key, not pooled");
    let (status, refused) = spend(&w, &key_a, 2.5).await;
    assert_eq!(status, 403, "key a alone would reach 5.5");
    assert_eq!(refused["error"]["message"], "Budget limit exceeded");
    assert_eq!(
        refused["error"]["metadata"]["limit_source"],
        "openrouter_guardrail_budget"
    );
    assert_eq!(
        spend(&w, &key_b, 2.5).await.0,
        200,
        "key b reaches 5.0 exactly"
    );
    let (status, _) = spend(&w, &key_b, 0.5).await;
    assert_eq!(status, 403);

    // A hash that names no key is skipped, not refused: 200 with the count of the rest.
    let (status, r) = call(
        &w,
        post.clone(),
        &path,
        Some(json!({"key_hashes": [a, "0".repeat(64)]})),
    )
    .await;
    assert_eq!((status, r["assigned_count"].clone()), (200, json!(1)));

    // Unassigned, a key is no longer bound by it.
    let (status, r) = call(
        &w,
        post,
        &format!("{path}/remove"),
        Some(json!({"key_hashes": [b]})),
    )
    .await;
    assert_eq!((status, r["unassigned_count"].clone()), (200, json!(1)));
    assert_eq!(assigned(&w, &id).await, vec![a]);
    assert_eq!(spend(&w, &key_b, 0.5).await.0, 200);
}

async fn dead_row_count(w: &World) -> u64 {
    w.control.state().await["dead_assignment_rows"]
        .as_u64()
        .expect("dead_assignment_rows")
}

/// Issue 26, item 1. OpenRouter keeps the assignment rows of deleted keys and drops them after
/// it cuts each page, so a guardrail whose first page is all dead rows answers an empty page
/// with `total_count` past it (CONTRACT.md; OpenRouter's Terraform provider steps by the page
/// size asked for and stops only at `total_count`, with its own test of 120 dead rows ahead of
/// the key it looks for). Stepping by the rows returned and stopping at an empty page, the
/// product read "no key carries it": `testSecret` refused every successor, a read-back after a
/// lost assign reply deleted a guarded key, and the sweep reported every key. And the product
/// deletes no guarded key without removing its assignment first.
#[tokio::test]
async fn guardrail_listings_page_past_the_rows_of_deleted_keys() {
    let w = World::start().await;
    let id = guardrail(&w, CHECKOUT_WORKSPACE_ID, 1000.0).await;
    w.control
        .leave_dead_assignment_rows(&id, CHECKOUT_WORKSPACE_ID, 120)
        .await;
    let policy = policy(&id);
    let d = deps_with(
        &w,
        &[("ORKV_POLICY", policy.as_str()), ("ORKV_DRIFT", "report")],
    );
    let vended = ops::handle(&d, body(&unique("past")), deadline())
        .await
        .expect("vended");
    // What OpenRouter answers: the first page is empty, and the listing is not over.
    let (status, first) = call(
        &w,
        reqwest::Method::GET,
        &format!("/guardrails/{id}/assignments/keys?offset=0&limit=100"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(first["data"], json!([]), "all dead rows");
    assert_eq!(first["total_count"], json!(121));
    assert_eq!(dead_row_count(&w).await, 120);

    // testSecret finds the successor past the dead rows: the rotation completes.
    let rotated = ops::handle_request(
        &d,
        json!({"action": "rotate", "secret_name": vended.secret_name, "idempotency_id": unique("r")}),
        deadline(),
    )
    .await
    .expect("rotated past dead rows");
    assert_eq!(rotated["status"], "rotated", "{rotated}");
    // The sweep sees both live keys carry it.
    let r = sweep(&d, &unique("check")).await;
    assert_eq!(r.keys_missing_guardrail, 0, "{r:?}");

    // An assignment whose replies are all lost is read back, past the dead rows, and kept.
    w.control
        .fault(json!({"op": "assign_guardrail_keys", "action": "error_after_commit", "times": 20}))
        .await;
    let kept = ops::handle(&d, body(&unique("readback")), deadline()).await;
    w.control.clear_faults().await;
    let kept = kept.expect("the read-back finds the key past the dead rows");
    assert_eq!(w.live_for(&kept.secret_name).await.len(), 1);

    // Retirement and revoke remove each key's assignment before deleting it: no new dead row.
    advance(&w, &d, GRACE + 60).await;
    assert_eq!(sweep(&d, &unique("retire")).await.keys_retired, 1);
    for name in [&vended.secret_name, &kept.secret_name] {
        ops::handle_request(
            &d,
            json!({"action": "revoke", "secret_name": name, "idempotency_id": unique("v")}),
            deadline(),
        )
        .await
        .expect("revoked");
    }
    assert_eq!(
        dead_row_count(&w).await,
        120,
        "the product left no dead row"
    );
}

#[tokio::test]
async fn every_key_carries_the_policys_guardrail_from_birth_through_rotation_to_retirement() {
    let w = World::start().await;
    let id = guardrail(&w, CHECKOUT_WORKSPACE_ID, 1000.0).await;
    let policy = policy(&id);
    let d = deps_with(
        &w,
        &[("ORKV_POLICY", policy.as_str()), ("ORKV_DRIFT", "report")],
    );
    // A first key warms the container (the workspaces and the guardrail are read once).
    ops::handle(&d, body(&unique("warm")), deadline())
        .await
        .expect("warm");
    w.control.reset_calls().await;
    let vended = ops::handle(&d, body(&unique("guarded")), deadline())
        .await
        .expect("vended");
    let calls = w.control.calls().await;
    assert_eq!(
        calls["total"],
        json!(3),
        "create, assign, GET /key: {calls}"
    );
    assert_eq!(calls["calls"]["assign_guardrail_keys"], json!(1));
    assert!(assigned(&w, &id).await.contains(&vended.key_hash));

    // Rotation: testSecret checks the successor carries it before promotion.
    let name = vended.secret_name.clone();
    let rotated = ops::handle_request(
        &d,
        json!({"action": "rotate", "secret_name": name, "idempotency_id": unique("r")}),
        deadline(),
    )
    .await
    .expect("rotated");
    let new_hash = rotated["key_hash"].as_str().expect("hash").to_owned();
    let now = assigned(&w, &id).await;
    assert!(
        now.contains(&new_hash) && now.contains(&vended.key_hash),
        "both live keys carry it"
    );
    let r = sweep(&d, &unique("check")).await;
    assert_eq!(r.keys_missing_guardrail, 0, "{r:?}");

    // Retirement removes the old key's assignment.
    advance(&w, &d, GRACE + 60).await;
    let r = sweep(&d, &unique("retire")).await;
    assert_eq!(r.keys_retired, 1);
    let now = assigned(&w, &id).await;
    assert!(!now.contains(&vended.key_hash) && now.contains(&new_hash));

    // A key that lost it (by hand) is reported; the repairing sweep assigns it, read back.
    let (status, _) = call(
        &w,
        reqwest::Method::POST,
        &format!("/guardrails/{id}/assignments/keys/remove"),
        Some(json!({"key_hashes": [new_hash]})),
    )
    .await;
    assert_eq!(status, 200);
    let r = sweep(&d, &unique("report")).await;
    assert_eq!((r.keys_missing_guardrail, r.guardrails_repaired), (1, 0));
    assert!(!assigned(&w, &id).await.contains(&new_hash), "report only");
    let repair = deps_with(
        &w,
        &[("ORKV_POLICY", policy.as_str()), ("ORKV_DRIFT", "repair")],
    );
    let r = sweep(&repair, &unique("repair")).await;
    assert_eq!((r.keys_missing_guardrail, r.guardrails_repaired), (1, 1));
    assert!(assigned(&w, &id).await.contains(&new_hash));
    assert_eq!(sweep(&d, &unique("after")).await.keys_missing_guardrail, 0);
}

#[tokio::test]
async fn a_guardrail_that_does_not_exist_or_lives_elsewhere_is_refused_before_anything_is_made() {
    let w = World::start().await;
    let elsewhere = guardrail(&w, SEARCH_WORKSPACE_ID, 10.0).await;
    let missing = uuid::Uuid::new_v4().to_string();
    // The workspace's default guardrail cannot be assigned (CONTRACT.md; issue 26, item 3):
    // refused when the policy is checked, not by deleting every new key at assignment.
    let (_, workspace) = call(
        &w,
        reqwest::Method::GET,
        &format!("/workspaces/{CHECKOUT_WORKSPACE_ID}"),
        None,
    )
    .await;
    let default = workspace["data"]["default_guardrail_id"]
        .as_str()
        .expect("default guardrail")
        .to_owned();
    for (id, says) in [
        (missing, "no guardrail"),
        (elsewhere, "is in workspace"),
        (default, "default guardrail"),
    ] {
        let policy = policy(&id);
        let d = deps_with(&w, &[("ORKV_POLICY", policy.as_str())]);
        let key_name = unique("refused");
        let err = ops::handle(&d, body(&key_name), deadline())
            .await
            .expect_err("refused");
        let text = err.to_string();
        assert_eq!(err.kind(), "ConfigError");
        assert!(
            text.contains("workspaces[0].guardrail_id") && text.contains(says),
            "{text}"
        );
        assert!(
            !w.control
                .all_keys()
                .await
                .iter()
                .any(|k| k["name"].as_str().is_some_and(|n| n.contains(&key_name))),
            "no key"
        );
        assert!(no_secret(&w, &key_name).await, "no secret");
    }
    // The search workspace, which names no guardrail, still vends.
    let d = deps_with(
        &w,
        &[(
            "ORKV_POLICY",
            policy(&uuid::Uuid::new_v4().to_string()).as_str(),
        )],
    );
    let mut search = body(&unique("search"));
    search["workspace"] = json!("search");
    ops::handle(&d, search, deadline())
        .await
        .expect("search vends");
}

#[tokio::test]
async fn an_assignment_openrouter_refuses_leaves_no_usable_key() {
    let w = World::start().await;
    let id = guardrail(&w, CHECKOUT_WORKSPACE_ID, 1000.0).await;
    let policy = policy(&id);
    let d = deps_with(&w, &[("ORKV_POLICY", policy.as_str())]);
    // Refused outright, and failing until the client gives up (then read back: not there).
    for fault in [
        json!({"op": "assign_guardrail_keys", "action": "status", "status": 400, "times": 1}),
        json!({"op": "assign_guardrail_keys", "action": "status", "status": 500, "times": 20}),
    ] {
        w.control.clear_faults().await;
        w.control.fault(fault).await;
        let key_name = unique("unassigned");
        let err = ops::handle(&d, body(&key_name), deadline())
            .await
            .expect_err("refused");
        assert_eq!(err.kind(), "GuardrailNotAssigned", "{err}");
        assert!(
            w.control.live_keys(&key_name).await.is_empty(),
            "the minted key was deleted"
        );
        assert!(no_secret(&w, &key_name).await, "nothing stored");
    }
    w.control.clear_faults().await;

    // In a rotation: createSecret fails, nothing is pending, the key in use is untouched.
    let vended = ops::handle(&d, body(&unique("rot")), deadline())
        .await
        .expect("vended");
    w.control
        .fault(
            json!({"op": "assign_guardrail_keys", "action": "status", "status": 400, "times": 50}),
        )
        .await;
    let refused = ops::handle_request(&d, json!({"action": "rotate", "secret_name": vended.secret_name, "idempotency_id": unique("r")}),
            deadline(),
        )
        .await;
    assert!(refused.is_err(), "{refused:?}");
    let (_, rec) = w.current(&vended.secret_name).await;
    assert_eq!(rec["key_hash"].as_str(), Some(vended.key_hash.as_str()));
    let live = w.live_for(&vended.secret_name).await;
    assert_eq!(live.len(), 1, "only the key in use: {live:?}");
    assert!(assigned(&w, &id).await.contains(&vended.key_hash));
}

#[tokio::test]
async fn an_adopted_key_is_given_the_workspaces_guardrail_before_the_product_owns_it() {
    let w = World::adoptable().await;
    let id = guardrail(&w, CHECKOUT_WORKSPACE_ID, 1000.0).await;
    let policy = policy(&id);
    let d = deps_with(&w, &[("ORKV_POLICY", policy.as_str())]);
    let (key, hash) = w
        .outside_key("Payments prod", CHECKOUT_WORKSPACE_ID, Some(25.0), Some(30))
        .await;
    let name = format!("openrouter/checkout/{}", unique("adopt"));
    orkv_tests::world::create_seed_secret(&w.sm, &name, &json!({"api_key": key}).to_string(), &[])
        .await;
    // Refused by OpenRouter: nothing of the secret changes, and the key stays as it was.
    w.control
        .fault(
            json!({"op": "assign_guardrail_keys", "action": "status", "status": 400, "times": 1}),
        )
        .await;
    let req = json!({"action": "adopt", "secret_name": name, "workspace": "checkout",
                     "idempotency_id": unique("adopt")});
    let err = ops::handle_request(&d, req.clone(), deadline())
        .await
        .expect_err("refused");
    assert_eq!(err.kind(), "GuardrailNotAssigned", "{err}");
    let tags =
        w.sm.describe_secret()
            .secret_id(&name)
            .send()
            .await
            .expect("describe");
    assert!(tags.tags().is_empty(), "not managed: {:?}", tags.tags());
    assert!(w.works(&key).await, "the key in use is untouched");
    // Then adopted: the key carries the guardrail.
    let adopted = ops::handle_request(&d, req, deadline())
        .await
        .expect("adopted");
    assert_eq!(adopted["status"], "adopted", "{adopted}");
    assert!(assigned(&w, &id).await.contains(&hash));
}
