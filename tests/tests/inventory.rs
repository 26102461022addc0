//! The inventory (`{"action": "inventory"}`): every managed secret the caller owns, from
//! `ListSecrets` alone (no secret read, no OpenRouter call), paginated, tenant-scoped; the
//! platform-admin alias sees every tenant's.

use orkv_tests::roles::ops;
use orkv_tests::unique;
use orkv_tests::world::{World, call_as, seed_secrets};
use orkv_vending::{Deps, VendError};
use serde_json::{Value, json};

fn policy() -> String {
    json!({
        "tenants": {
            "checkout": {"workspaces": [{"workspace": "checkout", "max_limit": 100}]},
            "search": {"workspaces": [{"workspace": "search", "max_limit": 20}]}
        },
        "admin_alias": "platform-admin",
        "min_ttl_seconds": 3600, "max_ttl_seconds": 7_776_000
    })
    .to_string()
}

struct Inv {
    w: World,
    d: Deps,
    prefix: String,
}

impl Inv {
    async fn start() -> Self {
        let w = World::start().await;
        let prefix = format!("openrouter/{}/", unique("inv"));
        let d = w.rotating_deps(&[("ORKV_POLICY", &policy()), ("ORKV_SECRET_PREFIX", &prefix)]);
        Self { w, d, prefix }
    }

    async fn call(&self, alias: &str, payload: Value) -> Result<Value, VendError> {
        call_as(&self.d, alias, payload).await
    }

    async fn provision(&self, tenant: &str, workspace: &str, key: &str, limit: f64) -> Value {
        let body = json!({"workspace": workspace, "key_name": key, "limit": limit,
                          "limit_reset": "monthly", "ttl_seconds": 86400,
                          "rotate_before_seconds": 3600});
        self.call(tenant, body).await.expect("provisioned")
    }

    /// Every page of `alias`'s inventory: the entries and the `ListSecrets` calls made.
    async fn all_pages(&self, alias: &str, extra: Value) -> (Vec<Value>, u64) {
        let mut entries = Vec::new();
        let mut calls = 0;
        let mut next: Option<String> = None;
        loop {
            let mut body = json!({"action": "inventory"});
            if let Some(t) = &next {
                body["next_token"] = json!(t);
            }
            if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
                b.extend(e.clone());
            }
            let page = self.call(alias, body).await.expect("inventory");
            assert_eq!(page["status"], "listed");
            calls += page["list_calls"].as_u64().expect("list_calls");
            let secrets = page["secrets"].as_array().expect("secrets").clone();
            assert_eq!(page["count"].as_u64(), Some(secrets.len() as u64));
            entries.extend(secrets);
            match page["next_token"].as_str() {
                Some(t) => next = Some(t.to_owned()),
                None => return (entries, calls),
            }
        }
    }
}

fn names(entries: &[Value]) -> Vec<String> {
    let mut n: Vec<String> = entries
        .iter()
        .map(|e| e["secret_name"].as_str().expect("name").to_owned())
        .collect();
    n.sort();
    n
}

#[tokio::test]
async fn each_tenant_sees_only_its_own_secrets_from_tags_alone_and_the_admin_sees_all() {
    let t = Inv::start().await;
    let a = t.provision("checkout", "checkout", "payments", 10.0).await;
    let b = t.provision("checkout", "checkout", "refunds", 12.0).await;
    let c = t.provision("search", "search", "ranker", 5.0).await;
    // A cap update rewrites the cap tag the inventory shows.
    let mut changed = json!({"workspace": "checkout", "key_name": "refunds", "limit": 15.0,
                             "limit_reset": "monthly", "ttl_seconds": 86400,
                             "rotate_before_seconds": 3600});
    changed["idempotency_id"] = json!("cap-change");
    let updated = t.call("checkout", changed).await.expect("updated");
    assert_eq!(updated["status"], "updated");
    t.w.control.reset_calls().await;
    t.w.sm_calls.reset();
    let (mine, calls) = t.all_pages("checkout", json!({})).await;
    // Only ListSecrets: no secret read, no OpenRouter call.
    assert_eq!(t.w.sm_calls.get(), calls, "only list calls");
    assert_eq!(t.w.control.total_calls().await, 0, "no OpenRouter call");
    let want = |v: &[&Value]| {
        let mut n: Vec<String> = v
            .iter()
            .map(|r| r["secret_name"].as_str().expect("name").to_owned())
            .collect();
        n.sort();
        n
    };
    assert_eq!(names(&mine), want(&[&a, &b]));
    let refunds = mine
        .iter()
        .find(|e| e["secret_name"] == b["secret_name"])
        .expect("refunds");
    assert_eq!(refunds["secret_arn"], b["secret_arn"]);
    assert_eq!(refunds["tenant"], "checkout");
    assert_eq!(refunds["workspace"], "checkout");
    assert_eq!(refunds["workspace_id"], b["workspace_id"]);
    assert_eq!(refunds["generation"], 1);
    assert_eq!(refunds["expires_at"], b["expires_at"]);
    assert_eq!(refunds["rotate_at"], b["rotate_at"]);
    assert_eq!(refunds["cap"]["limit"], 15.0);
    assert_eq!(refunds["cap"]["limit_reset"], "monthly");
    assert_eq!(refunds["keys_waiting_for_retirement"], 0);
    assert_eq!(refunds["state"], "active");
    let text = serde_json::to_string(&mine).expect("json");
    assert!(!text.contains("sk-or-"), "no plaintext in an inventory");
    let (theirs, _) = t.all_pages("search", json!({})).await;
    assert_eq!(names(&theirs), want(&[&c]));
    // The admin alias: every tenant's, or the one it names.
    let (all, _) = t.all_pages("platform-admin", json!({})).await;
    assert_eq!(names(&all), want(&[&a, &b, &c]));
    let (one, _) = t
        .all_pages("platform-admin", json!({"tenant": "search"}))
        .await;
    assert_eq!(names(&one), want(&[&c]));
    // A tenant may not ask for another's inventory; bad input names the field.
    let err = t
        .call(
            "checkout",
            json!({"action": "inventory", "tenant": "search"}),
        )
        .await
        .expect_err("refused");
    assert_eq!(err.kind(), "TenantScopeViolation", "{err}");
    for (body, field) in [
        (
            json!({"action": "inventory", "next_token": ""}),
            "next_token",
        ),
        (
            json!({"action": "inventory", "secret_name": "x"}),
            "secret_name",
        ),
    ] {
        let err = t.call("checkout", body).await.expect_err("refused");
        assert!(err.to_string().contains(&format!("`{field}`")), "{err}");
    }
    // A revoked secret shows as revoked.
    let revoke = json!({"action": "revoke", "secret_name": a["secret_name"],
                        "idempotency_id": "rev", "delete_secret": false});
    t.call("checkout", revoke).await.expect("revoked");
    let (after, _) = t.all_pages("checkout", json!({})).await;
    let revoked = after
        .iter()
        .find(|e| e["secret_name"] == a["secret_name"])
        .expect("still listed");
    assert_eq!(revoked["state"], "revoked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inventory_of_1000_managed_secrets_takes_at_most_10_list_calls_and_no_reads() {
    let t = Inv::start().await;
    let far = "2027-01-01T00:00:00Z";
    let seeded = (0..1000)
        .map(|i| format!("{}checkout/k{i}", t.prefix))
        .collect();
    seed_secrets(
        &t.w.sm,
        seeded,
        "{}",
        &[
            ("orkv:managed-by", "openrouter-key-vending"),
            ("orkv:tenant", "checkout"),
            ("orkv:rotate-at", far),
            ("orkv:expires-at", far),
            ("orkv:generation", "1"),
            ("orkv:cap", "limit=5 reset=monthly byok=false"),
        ],
    )
    .await;
    t.w.sm_calls.reset();
    let (entries, calls) = t.all_pages("checkout", json!({})).await;
    assert_eq!(entries.len(), 1000);
    assert_eq!(
        names(&entries).windows(2).filter(|w| w[0] == w[1]).count(),
        0
    );
    assert!(calls <= 10, "{calls} list calls");
    assert_eq!(t.w.sm_calls.get(), calls, "no secret was read");
    assert!(entries.iter().all(|e| e["cap"]["limit"] == 5.0));
    // Another tenant sees none of them, at the same cost.
    t.w.sm_calls.reset();
    let (none, calls) = t.all_pages("search", json!({})).await;
    assert!(none.is_empty());
    assert!(calls <= 10, "{calls} list calls");

    // The sweep logs the same summary per run, from the listing it already makes.
    let run = orkv_vending::input::sweep::SweepInput::parse(
        &json!({"execution_id": "inventory-summary", "dry_run": true}),
    )
    .expect("input");
    let report = ops::sweep(
        &t.d,
        &run,
        std::time::Instant::now() + std::time::Duration::from_secs(120),
    )
    .await
    .expect("sweep");
    let summary = serde_json::to_value(&report.inventory).expect("json");
    let checkout = &summary["checkout"];
    assert_eq!(checkout["secrets"], 1000, "{summary}");
    assert_eq!(checkout["active"], 1000);
    assert_eq!(checkout["revoked"], 0);
    assert_eq!(checkout["capped_usd"], 5000.0);
    assert_eq!(checkout["without_cap_tag"], 0);
    assert_eq!(checkout["next_expiry"], far);
    assert_eq!(
        summary.get("search"),
        None,
        "a tenant with nothing shows nothing"
    );
    assert_eq!(report.list_calls, 10);
}
