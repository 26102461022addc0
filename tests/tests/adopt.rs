//! Adopt (issue 16, item 1): keys the product did not mint, already in secrets (the Terraform
//! companion module's `{"api_key": "..."}`, a dashboard key pasted by hand, a bare key), taken
//! over while a consumer keeps reading `api_key`; and every refusal, each with Secrets Manager
//! and OpenRouter unchanged.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use orkv_tests::events::ResultQueue;
use orkv_tests::rotating::{deadline, deps, sweep};
use orkv_tests::unique;
use orkv_tests::world::{World, call_as, create_seed_secret};
use orkv_vending::ops::announce::detail_type as dt;
use serde_json::{Value, json};

use orkv_tests::{CHECKOUT_WORKSPACE_ID as CHECKOUT, SEARCH_WORKSPACE_ID as SEARCH};

/// Reads every secret in `names` without a stage, as applications do, and calls `GET /key`
/// with its `api_key`, until `stop`: (reads, failures).
fn consumer(
    w: &World,
    names: Vec<String>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<(u64, u64)> {
    let (url, api) = (w.sm_url.clone(), w.emu.api_url());
    tokio::spawn(async move {
        // Its own client: the world's counts the function's calls.
        let (sm, _) = orkv_tests::secrets_client_at(&url).await;
        let http = reqwest::Client::new();
        let (reads, failures) = (AtomicU64::new(0), AtomicU64::new(0));
        while !stop.load(Ordering::SeqCst) {
            for n in &names {
                let v = sm
                    .get_secret_value()
                    .secret_id(n)
                    .send()
                    .await
                    .expect("read");
                let key = serde_json::from_str::<Value>(v.secret_string().unwrap_or_default())
                    .ok()
                    .and_then(|j| j["api_key"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                let ok = http
                    .get(format!("{api}/key"))
                    .bearer_auth(&key)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                reads.fetch_add(1, Ordering::SeqCst);
                if !ok {
                    failures.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
        (reads.into_inner(), failures.into_inner())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adopting_a_companion_module_secret_and_a_dashboard_key_keeps_every_read_working() {
    let w = World::adoptable().await;
    let q = ResultQueue::create(&w.sm_url).await;
    let d = deps(&w).with_events(q.bus().await);
    // The companion module's secret: a key with a 20-day expiry, `{"api_key": ...}`.
    let (module_key, module_hash) = w
        .outside_key("checkout-api (terraform)", CHECKOUT, Some(40.0), Some(20))
        .await;
    let companion = format!("openrouter/checkout/{}", unique("companion"));
    create_seed_secret(
        &w.sm,
        &companion,
        &json!({"api_key": module_key}).to_string(),
        &[],
    )
    .await;
    // A dashboard key without an expiry, pasted by hand into a secret.
    let (pasted_key, pasted_hash) = w
        .outside_key("Payments prod!", CHECKOUT, Some(25.0), None)
        .await;
    let pasted = format!("openrouter/checkout/{}", unique("pasted"));
    create_seed_secret(
        &w.sm,
        &pasted,
        &json!({"api_key": pasted_key}).to_string(),
        &[],
    )
    .await;

    let stop = Arc::new(AtomicBool::new(false));
    let reader = consumer(&w, vec![companion.clone(), pasted.clone()], stop.clone());
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    // The companion secret: its key conforms (an expiry within the policy): adopted as is.
    let req = json!({"action": "adopt", "secret_name": companion, "workspace": "checkout", "idempotency_id": "adopt-companion"});
    let adopted = orkv_tests::roles::ops::handle_request(&d, req.clone(), deadline())
        .await
        .expect("adopted");

    assert_eq!(adopted["status"], "adopted", "{adopted}");
    assert_eq!(adopted["key_hash"], json!(module_hash));
    assert_eq!(adopted["generation"], 1);
    let (_, rec) = w.current(&companion).await;
    assert_eq!(
        rec["api_key"],
        json!(module_key),
        "the same key, byte for byte"
    );
    assert_eq!(rec["state"], "active");
    assert_eq!(rec["limit"], 40.0);
    assert_eq!(
        w.describe(&companion).await.rotation_enabled(),
        Some(true),
        "rotation configured at adoption, as at creation"
    );
    let tags = w.tags(&companion).await;
    assert!(tags.contains(&("orkv:managed-by".into(), "openrouter-key-vending".into())));
    assert!(
        !tags.iter().any(|(k, _)| k == "orkv:adopting"),
        "the adoption's marker is gone"
    );
    let (kind, e) = q.one().await;
    assert_eq!(
        (kind.as_str(), e["outcome"].clone(), e["key_hash"].clone()),
        (dt::ADOPTED, json!("adopted"), json!(module_hash))
    );
    // The sweep treats the adopted key as the secret's current key: not unmanaged (only the
    // pasted key, not adopted yet, is), not broken, not drifted, not an orphan.
    let r = sweep(&d, &unique("after-adopt")).await;
    assert_eq!(
        (
            r.unmanaged_keys,
            r.current_keys_broken,
            r.keys_drifted,
            r.orphans_found
        ),
        (1, 0, 0, 0),
        "{r:?}"
    );
    // The repeat: answered, nothing changed.
    let again = orkv_tests::roles::ops::handle_request(&d, req, deadline())
        .await
        .expect("repeat");
    assert_eq!(again["status"], "unchanged");
    assert_eq!(again["key_hash"], json!(module_hash));

    // The pasted key has no expiry: adopted, then rotated at once into a conforming successor;
    // the adopted key keeps working through its grace period.
    let adopted = orkv_tests::roles::ops::handle_request(
        &d,
        json!({"action": "adopt", "secret_name": pasted, "workspace": "checkout"}),
        deadline(),
    )
    .await
    .expect("adopted");
    assert_eq!(adopted["status"], "adopted");
    assert_eq!(adopted["generation"], 2, "{adopted}");
    assert_ne!(adopted["key_hash"], json!(pasted_hash));
    assert_eq!(adopted["reason"], "adopted");
    let (_, rec) = w.current(&pasted).await;
    assert!(rec["expires_at"].is_string());
    assert_eq!(rec["limit"], 25.0, "the successor keeps the adopted cap");
    assert!(
        w.works(&pasted_key).await,
        "the adopted key works through its grace"
    );

    // The first rotation after adoption.
    let rotated = orkv_tests::roles::ops::handle_request(
        &d,
        json!({"action": "rotate", "secret_name": companion, "idempotency_id": "after-adopt"}),
        deadline(),
    )
    .await
    .expect("rotated");
    assert_eq!(rotated["status"], "rotated");
    assert_eq!(rotated["generation"], 2);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    stop.store(true, Ordering::SeqCst);
    let (reads, failures) = reader.await.expect("consumer");
    assert!(reads >= 10, "{reads} reads");
    assert_eq!(failures, 0, "{failures} of {reads} reads failed");

    // A bare key adopts only with convert_to_json.
    let (bare_key, bare_hash) = w.outside_key("bare", CHECKOUT, Some(5.0), Some(30)).await;
    let bare = format!("openrouter/checkout/{}", unique("bare"));
    create_seed_secret(&w.sm, &bare, &bare_key, &[]).await;
    let body = json!({"action": "adopt", "secret_name": bare, "workspace": "checkout"});
    let err = orkv_tests::roles::ops::handle_request(&d, body.clone(), deadline())
        .await
        .expect_err("bare");
    assert!(err.to_string().contains("`convert_to_json`"), "{err}");
    let mut convert = body;
    convert["convert_to_json"] = json!(true);
    // Counted with the production starter, as deployed (the local driver's moto workarounds
    // for configuring rotation are not the product's calls).
    let counted = w
        .deps(&[(
            "ORKV_ROTATION_LAMBDA_ARN",
            "arn:aws:lambda:us-east-1:000000000000:function:orkv-rotate",
        )])
        .with_events(q.bus().await);
    w.sm_calls.reset();
    w.control.reset_calls().await;
    let adopted = orkv_tests::roles::ops::handle_request(&counted, convert, deadline())
        .await
        .expect("converted");
    // Describe, read, two listings (is the key held by another managed secret, as current
    // key or in grace: issue 29), tag, write, label move, untag, read-back, and the
    // RotateSecret configuring rotation (moto has no such function and refuses it; the
    // product's call is made all the same); GET /keys/{hash}, GET /key (the workspace listing
    // is once per container).
    assert_eq!(w.sm_calls.get(), 10, "Secrets Manager calls");
    let calls = w.control.calls().await["calls"].clone();
    assert_eq!(
        (calls["get_key"].clone(), calls["get_current_key"].clone()),
        (json!(1), json!(1)),
        "{calls}"
    );
    assert_eq!(adopted["key_hash"], json!(bare_hash));
    assert_eq!(w.current(&bare).await.1["api_key"], json!(bare_key));
    let events = serde_json::to_string(&q.drain().await).expect("json");
    for k in [&module_key, &pasted_key, &bare_key] {
        assert!(!events.contains(k.as_str()), "no plaintext in an event");
    }
}

#[tokio::test]
async fn every_refused_adoption_changes_nothing_and_names_the_field() {
    let w = World::adoptable().await;
    // With the organisation's maximum key lifetime set (90 days, the policy's own maximum).
    let policy = json!({
        "tenants": {
            "checkout": {"workspaces": [{"workspace": "checkout", "max_limit": 100}]},
            "search": {"workspaces": [{"workspace": "search", "max_limit": 20}]}
        },
        "org_max_key_lifetime_seconds": 7_776_000
    })
    .to_string();
    let d = w.rotating_deps(&[("ORKV_POLICY", &policy)]);
    let secret = |rest: &str| format!("openrouter/checkout/{}", unique(rest));
    let managed = call_as(
        &d,
        "checkout",
        json!({"workspace": "checkout", "key_name": unique("owned"), "limit": 5}),
    )
    .await
    .expect("provisioned")["secret_name"]
        .as_str()
        .expect("name")
        .to_owned();
    let (in_search, _) = w
        .outside_key("search key", SEARCH, Some(5.0), Some(30))
        .await;
    let (over_cap, _) = w.outside_key("big", CHECKOUT, Some(150.0), Some(30)).await;
    let (no_cap, _) = w.outside_key("uncapped", CHECKOUT, None, Some(30)).await;
    let (fine, _) = w.outside_key("fine", CHECKOUT, Some(5.0), Some(30)).await;
    // OpenRouter rejects every request from a key that never expires once an admin sets the
    // organisation's maximum key lifetime (issue 26, item 5; CONTRACT.md).
    let (forever, _) = w.outside_key("forever", CHECKOUT, Some(5.0), None).await;
    let cases: Vec<(String, String, &str, &str, &str)> = vec![
        // (secret, value, workspace, alias, the error's field)
        (
            secret("unknown"),
            json!({"api_key": "sk-or-v1-0000000000000000000000000000"}).to_string(),
            "checkout",
            "checkout",
            "`workspace`",
        ),
        (
            secret("elsewhere"),
            json!({"api_key": in_search}).to_string(),
            "checkout",
            "checkout",
            "`workspace`",
        ),
        (
            secret("overcap"),
            json!({"api_key": over_cap}).to_string(),
            "checkout",
            "checkout",
            "`limit`",
        ),
        (
            secret("nocap"),
            json!({"api_key": no_cap}).to_string(),
            "checkout",
            "checkout",
            "`limit`",
        ),
        (
            secret("notakey"),
            "hello".into(),
            "checkout",
            "checkout",
            "`secret_name`",
        ),
        (
            secret("extra"),
            json!({"api_key": fine, "base_url": "https://openrouter.ai"}).to_string(),
            "checkout",
            "checkout",
            "`secret_name`",
        ),
        (
            secret("forever"),
            json!({"api_key": forever}).to_string(),
            "checkout",
            "checkout",
            "org_max_key_lifetime_seconds",
        ),
        (
            secret("bare"),
            fine.clone(),
            "checkout",
            "checkout",
            "`convert_to_json`",
        ),
        (
            secret("theirs"),
            json!({"api_key": fine}).to_string(),
            "search",
            "checkout",
            "`workspace`",
        ),
        (
            format!("openrouter/search/{}", unique("prefix")),
            json!({"api_key": fine}).to_string(),
            "checkout",
            "checkout",
            "`secret_name`",
        ),
    ];
    for (name, value, _, _, _) in &cases {
        create_seed_secret(&w.sm, name, value, &[]).await;
    }
    // A secret carrying more tags of its own than the product's budget leaves room for.
    let crowded = secret("crowded");
    let own: Vec<(String, String)> = (0..25)
        .map(|i| (format!("team-tag-{i}"), "x".to_owned()))
        .collect();
    let own_refs: Vec<(&str, &str)> = own.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    create_seed_secret(
        &w.sm,
        &crowded,
        &json!({"api_key": fine}).to_string(),
        &own_refs,
    )
    .await;
    // A secret another function rotates, and one encrypted with a team's KMS key: made in moto
    // directly (set-up the product's roles could not do).
    let (direct, _) = orkv_tests::secrets_client(&w.moto).await;
    let rotated = secret("rotated");
    create_seed_secret(&w.sm, &rotated, &json!({"api_key": fine}).to_string(), &[]).await;
    let _ = direct
        .rotate_secret()
        .secret_id(&rotated)
        .rotation_lambda_arn("arn:aws:lambda:us-east-1:123456789012:function:team-rotator")
        .rotation_rules(
            aws_sdk_secretsmanager::types::RotationRulesType::builder()
                .automatically_after_days(30)
                .build(),
        )
        .rotate_immediately(false)
        .send()
        .await;
    assert!(
        w.describe(&rotated).await.rotation_lambda_arn().is_some(),
        "the seed secret names its rotation function"
    );
    let team_key = secret("teamkey");
    direct
        .create_secret()
        .name(&team_key)
        .secret_string(json!({"api_key": fine}).to_string())
        .kms_key_id("arn:aws:kms:us-east-1:123456789012:key/team-key")
        .send()
        .await
        .expect("seed with a team key");
    let mut all = cases.clone();
    all.push((
        rotated,
        String::new(),
        "checkout",
        "checkout",
        "another function",
    ));
    all.push((team_key, String::new(), "checkout", "checkout", "KMS key"));
    all.push((
        managed.clone(),
        String::new(),
        "checkout",
        "checkout",
        "`secret_name`",
    ));
    all.push((
        crowded,
        String::new(),
        "checkout",
        "checkout",
        "`secret_name`",
    ));
    for (name, _, workspace, alias, field) in all {
        let before = w.state_of(&name).await;
        let err = call_as(
            &d,
            alias,
            json!({"action": "adopt", "secret_name": name, "workspace": workspace}),
        )
        .await
        .expect_err("refused");
        assert!(err.to_string().contains(field), "{name}: {err}");
        assert!(!err.to_string().contains("sk-or-"), "{err}");
        assert_eq!(w.state_of(&name).await, before, "{name}: nothing changed");
    }
}

#[tokio::test]
async fn an_adoption_cut_off_after_any_write_is_finished_by_its_retry() {
    // Each write carried out and its reply lost on every attempt, as a crash right after it
    // would leave things: the same request again finishes the same adoption.
    let w = World::adoptable().await;
    let proxy = w.strict.clone().expect("strict");
    let d = deps(&w);
    for op in [
        "TagResource",
        "PutSecretValue",
        "UpdateSecretVersionStage",
        "UntagResource",
    ] {
        let (key, hash) = w.outside_key(op, CHECKOUT, Some(10.0), Some(20)).await;
        let name = format!("openrouter/checkout/{}", unique("cut"));
        create_seed_secret(&w.sm, &name, &json!({"api_key": key}).to_string(), &[]).await;
        let body = json!({"action": "adopt", "secret_name": name, "workspace": "checkout",
                          "idempotency_id": format!("adopt-{op}")});
        proxy.cut_next(op, u64::from(orkv_store::MAX_ATTEMPTS));
        let first = orkv_tests::roles::ops::handle_request(&d, body.clone(), deadline()).await;
        proxy.cut_next(op, 0);
        // The label move is read back by the compare-and-set itself, which may finish within
        // the first attempt; every other lost reply fails it.
        match &first {
            Ok(r) => assert_eq!(
                (op, r["status"].clone()),
                ("UpdateSecretVersionStage", json!("adopted"))
            ),
            Err(e) => assert!(e.kind() != "AdoptionRefused", "{op}: {e}"),
        }
        // The retry runs later (its clock reads differently from the first attempt's), as a
        // retry after a crash does.
        d.clock().advance(5);
        let done = orkv_tests::roles::ops::handle_request(&d, body, deadline())
            .await
            .unwrap_or_else(|e| panic!("{op}: {e}"));
        assert!(
            ["adopted", "unchanged"].contains(&done["status"].as_str().unwrap_or_default()),
            "{op}: {done}"
        );
        assert_eq!(done["key_hash"], json!(hash), "{op}");
        let (_, rec) = w.current(&name).await;
        assert_eq!(rec["api_key"], json!(key), "{op}");
        let tags = w.tags(&name).await;
        assert!(
            !tags.iter().any(|(k, _)| k == "orkv:adopting"),
            "{op}: {tags:?}"
        );
        assert!(w.works(&key).await, "{op}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_adoptions_racing_on_one_secret_leave_one_record_of_the_same_key() {
    let w = World::adoptable().await;
    let d = deps(&w);
    for same_request in [true, false] {
        let (key, hash) = w.outside_key("raced", CHECKOUT, Some(10.0), Some(20)).await;
        let name = format!("openrouter/checkout/{}", unique("race"));
        create_seed_secret(&w.sm, &name, &json!({"api_key": key}).to_string(), &[]).await;
        let body = |id: &str| json!({"action": "adopt", "secret_name": name, "workspace": "checkout", "idempotency_id": id});
        let (a, b) = if same_request {
            (body("one"), body("one"))
        } else {
            (body("one"), body("two"))
        };
        let (ra, rb) = tokio::join!(
            orkv_tests::roles::ops::handle_request(&d, a, deadline()),
            orkv_tests::roles::ops::handle_request(&d, b, deadline())
        );
        let ok: Vec<&Value> = [&ra, &rb]
            .into_iter()
            .filter_map(|r| r.as_ref().ok())
            .collect();
        assert!(!ok.is_empty(), "one of them adopts: {ra:?} {rb:?}");
        for r in &ok {
            assert_eq!(r["key_hash"], json!(hash));
        }
        for e in [&ra, &rb].into_iter().filter_map(|r| r.as_ref().err()) {
            assert!(!same_request || e.kind() == "ProvisionInProgress", "{e}");
            assert!(
                ["AdoptionRefused", "ProvisionInProgress"].contains(&e.kind()),
                "the loser is refused or told to retry: {e}"
            );
        }
        let (_, rec) = w.current(&name).await;
        assert_eq!(
            (rec["api_key"].clone(), rec["generation"].clone()),
            (json!(key), json!(1))
        );
        assert!(
            !w.tags(&name)
                .await
                .iter()
                .any(|(k, _)| k == "orkv:adopting")
        );
    }
}
