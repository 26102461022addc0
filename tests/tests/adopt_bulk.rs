//! Bulk adoption (issue 16, item 2): every unmanaged secret under a prefix, planned first
//! (`dry_run`: what would be adopted, what refused and why, nothing written), then adopted,
//! resumable across invocations, each secret announced.

use std::time::{Duration, Instant};

use orkv_tests::events::ResultQueue;
use orkv_tests::rotating::deps;
use orkv_tests::unique;
use orkv_tests::world::{World, create_seed_secret};
use orkv_vending::ops::announce::detail_type as dt;
use serde_json::{Value, json};

use orkv_tests::{CHECKOUT_WORKSPACE_ID as CHECKOUT, SEARCH_WORKSPACE_ID as SEARCH};

/// A key made outside the product, capped at 10 USD, expiring in 20 days.
async fn key(w: &World, workspace: &str) -> (String, String) {
    w.outside_key("legacy", workspace, Some(10.0), Some(20))
        .await
}

fn managed(tags: &[(String, String)]) -> bool {
    tags.iter().any(|(k, _)| k == "orkv:managed-by")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_adoption_plans_then_adopts_every_secret_under_a_prefix_once() {
    let w = World::adoptable().await;
    let q = ResultQueue::create(&w.sm_url).await;
    let d = deps(&w).with_events(q.bus().await);
    let prefix = format!("openrouter/checkout/{}/", unique("legacy"));
    let mut good = Vec::new();
    for i in 0..24 {
        let (k, hash) = key(&w, CHECKOUT).await;
        let name = format!("{prefix}svc-{i}");
        create_seed_secret(&w.sm, &name, &json!({"api_key": k}).to_string(), &[]).await;
        good.push((name, hash));
    }
    let (elsewhere, _) = key(&w, SEARCH).await;
    create_seed_secret(
        &w.sm,
        &format!("{prefix}in-search"),
        &json!({"api_key": elsewhere}).to_string(),
        &[],
    )
    .await;
    create_seed_secret(&w.sm, &format!("{prefix}not-a-key"), "hello", &[]).await;
    let (outside, _) = key(&w, CHECKOUT).await;
    let untouched = format!("openrouter/checkout/{}", unique("outside"));
    create_seed_secret(
        &w.sm,
        &untouched,
        &json!({"api_key": outside}).to_string(),
        &[],
    )
    .await;
    let body = json!({"action": "adopt", "secret_prefix": prefix, "workspace": "checkout",
                      "idempotency_id": "bulk-1"});

    // The plan: 24 would be adopted, 2 refused with the reason; nothing written.
    let mut plan = body.clone();
    plan["dry_run"] = json!(true);
    let planned = orkv_tests::roles::ops::handle_request(&d, plan, far())
        .await
        .expect("plan");
    assert_eq!(planned["status"], "planned");
    assert_eq!(
        planned["counts"],
        json!({"would_adopt": 24, "refused": 2}),
        "{planned}"
    );
    let refused: Vec<&Value> = planned["secrets"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["outcome"] == "refused")
        .collect();
    assert!(refused.iter().any(|e| {
        e["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("`workspace`"))
    }));
    assert!(refused.iter().any(|e| {
        e["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("not an OpenRouter key"))
    }));
    for (name, hash) in &good {
        assert!(!managed(&w.tags(name).await), "a plan writes nothing");
        let e = planned["secrets"]
            .as_array()
            .expect("entries")
            .iter()
            .find(|e| e["secret_name"] == json!(name))
            .expect("planned");
        assert_eq!(
            (e["key_hash"].clone(), e["conforming"].clone()),
            (json!(hash), json!(true))
        );
    }
    assert!(q.drain().await.is_empty(), "a plan announces nothing");

    // An invocation with no time left starts nothing and says where to resume.
    let cut = orkv_tests::roles::ops::handle_request(
        &d,
        body.clone(),
        Instant::now() + Duration::from_millis(500),
    )
    .await
    .expect("partial");
    assert_eq!(
        (cut["status"].clone(), cut["list_calls"].clone()),
        (json!("partial"), json!(0))
    );

    // The run, resumed until it is done: every secret adopted once, each announced.
    let mut adopted = 0;
    let mut next: Option<Value> = None;
    for _ in 0..10 {
        let mut run = body.clone();
        if let Some(t) = &next {
            run["next_token"] = t.clone();
        }
        let r = orkv_tests::roles::ops::handle_request(&d, run, far())
            .await
            .expect("run");
        adopted += r["counts"]["adopted"].as_u64().unwrap_or(0);
        assert_eq!(r["counts"]["refused"], 2, "{r}");
        if r["status"] != "partial" {
            assert_eq!(r["status"], "adopted");
            break;
        }
        next = Some(r["next_token"].clone());
    }
    assert_eq!(adopted, 24);
    for (name, hash) in &good {
        let (_, rec) = w.current(name).await;
        assert_eq!(rec["key_hash"], json!(hash), "{name}");
        assert_eq!(rec["generation"], 1, "{name}");
    }
    assert!(
        !managed(&w.tags(&untouched).await),
        "outside the prefix: untouched"
    );
    let events = q.drain().await;
    let adopted_events = events
        .iter()
        .filter(|e| e["detail-type"] == dt::ADOPTED)
        .count();
    let failed_events = events
        .iter()
        .filter(|e| e["detail-type"] == dt::FAILED)
        .count();
    assert_eq!((adopted_events, failed_events), (24, 2));

    // The same request again: everything it adopted answers unchanged.
    let again = orkv_tests::roles::ops::handle_request(&d, body, far())
        .await
        .expect("repeat");
    assert_eq!(
        again["counts"],
        json!({"unchanged": 24, "refused": 2}),
        "{again}"
    );
}

fn far() -> Instant {
    Instant::now() + Duration::from_secs(120)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_adoption_across_pages_resumes_where_the_last_run_stopped() {
    // 130 secrets: two pages. A run of at most 100 stops after the first page and answers the
    // second's token; the run resumed with it adopts the rest; no secret is adopted twice.
    let w = World::adoptable().await;
    let d = deps(&w);
    let prefix = format!("openrouter/checkout/{}/", unique("paged"));
    let mut names = Vec::new();
    for i in 0..130 {
        let (k, _) = key(&w, CHECKOUT).await;
        let name = format!("{prefix}s{i:03}");
        create_seed_secret(&w.sm, &name, &json!({"api_key": k}).to_string(), &[]).await;
        names.push(name);
    }
    let body = json!({"action": "adopt", "secret_prefix": prefix, "workspace": "checkout",
                      "max_secrets": 100, "idempotency_id": "bulk-paged"});
    plan_cut_then_resumed(&w, &d, &body, &names).await;
    let first = orkv_tests::roles::ops::handle_request(&d, body.clone(), far())
        .await
        .expect("first");
    assert_eq!(
        (first["status"].clone(), first["list_calls"].clone()),
        (json!("partial"), json!(1)),
        "{}",
        first["counts"]
    );
    assert_eq!(first["counts"], json!({"adopted": 100}));
    let token = first["next_token"].clone();
    assert!(token.is_string());
    let mut rest = body;
    rest["next_token"] = token;
    let second = orkv_tests::roles::ops::handle_request(&d, rest, far())
        .await
        .expect("second");
    assert_eq!(second["status"], "adopted");
    assert_eq!(
        second["counts"],
        json!({"adopted": 30}),
        "{}",
        second["counts"]
    );
    let seen: std::collections::BTreeSet<String> = [&first, &second]
        .iter()
        .flat_map(|r| r["secrets"].as_array().cloned().unwrap_or_default())
        .filter_map(|e| e["secret_name"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(seen.len(), 130, "each secret once");
    for n in &names {
        assert!(managed(&w.tags(n).await), "{n}");
    }
}

/// A plan cut by the deadline inside a page (OpenRouter answering each look after a second;
/// the page needs at least 100 / 8 of them, the invocation has 5 s), then resumed until it
/// ends: the unfinished page is planned again whole, so across the replies every secret is
/// planned exactly once.
async fn plan_cut_then_resumed(w: &World, d: &orkv_vending::Deps, body: &Value, names: &[String]) {
    let mut plan = body.clone();
    plan["dry_run"] = json!(true);
    w.control.set_latency(1000).await;
    let cut = orkv_tests::roles::ops::handle_request(
        d,
        plan.clone(),
        Instant::now() + Duration::from_secs(8),
    )
    .await
    .expect("plan");
    w.control.set_latency(0).await;
    assert_eq!(
        (&cut["status"], &cut["list_calls"], &cut["next_token"]),
        (&json!("partial"), &json!(1), &Value::Null),
        "cut inside its first page: {}",
        cut["counts"]
    );
    let mut planned: Vec<String> = Vec::new();
    let mut reply = cut;
    for _ in 0..5 {
        planned.extend(
            reply["secrets"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .filter_map(|e| e["secret_name"].as_str().map(str::to_owned)),
        );
        if reply["status"] != "partial" {
            break;
        }
        let mut next = plan.clone();
        next["next_token"] = reply["next_token"].clone();
        reply = orkv_tests::roles::ops::handle_request(d, next, far())
            .await
            .expect("plan resumed");
    }
    assert_eq!(reply["status"], "planned", "{}", reply["counts"]);
    planned.sort();
    let mut expected = names.to_vec();
    expected.sort();
    assert_eq!(planned, expected, "every secret planned exactly once");
    for n in names {
        assert!(!managed(&w.tags(n).await), "a plan writes nothing: {n}");
    }
}
