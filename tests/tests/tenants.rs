//! Tenants: a team reaches only its own workspaces and secrets, and learns nothing of the
//! others'. Against moto and the emulator, in process, with the caller identified the way
//! Lambda identifies it (the invoked function ARN's alias); `lambda_binary.rs` does the same
//! through the real binary and the Runtime API.

use std::time::{Duration, Instant};

use orkv_tests::roles::ops;
use orkv_tests::runtime_api::function_arn;
use orkv_tests::unique;
use orkv_tests::world::{World, call_as};
use orkv_vending::{Deps, VendError};
use serde_json::{Value, json};

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

/// Two teams sharing the checkout workspace at different caps, one tenant that may only
/// provision, and the platform-admin alias; secrets under `prefix`.
fn policy(prefix: &str) -> String {
    json!({
        "tenants": {
            "checkout": {"workspaces": [{"workspace": "checkout", "max_limit": 100}],
                         "event_sources": ["com.example.checkout"]},
            "search": {"workspaces": [{"workspace": "search", "max_limit": 20},
                                      {"workspace": "checkout", "max_limit": 5}],
                       "event_sources": ["com.example.search"]},
            "readonly": {"workspaces": [{"workspace": "search", "max_limit": 1}],
                         "actions": ["provision"], "secret_prefix": format!("{prefix}ro/")}
        },
        "admin_alias": "platform-admin",
        "min_ttl_seconds": 3600, "max_ttl_seconds": 7_776_000
    })
    .to_string()
}

struct Tenants {
    w: World,
    d: Deps,
    prefix: String,
}

impl Tenants {
    async fn start() -> Self {
        let w = World::start().await;
        let prefix = format!("openrouter/{}/", unique("t"));
        let d = w.rotating_deps(&[
            ("ORKV_POLICY", &policy(&prefix)),
            ("ORKV_SECRET_PREFIX", &prefix),
        ]);
        Self { w, d, prefix }
    }

    async fn call(&self, alias: &str, payload: Value) -> Result<Value, VendError> {
        call_as(&self.d, alias, payload).await
    }

    fn name(&self, tenant: &str, rest: &str) -> String {
        format!("{}{tenant}/{rest}", self.prefix)
    }

    /// Every secret under the prefix (tags, version stages, current value) and every key.
    async fn snapshot(&self) -> Value {
        let mut secrets = Vec::new();
        let list = self
            .w
            .sm
            .list_secrets()
            .max_results(100)
            .send()
            .await
            .expect("list");
        let mut names: Vec<String> = list
            .secret_list()
            .iter()
            .filter_map(|s| s.name().map(str::to_owned))
            .filter(|n| n.starts_with(&self.prefix))
            .collect();
        names.sort();
        for name in names {
            let mut tags = self.w.tags(&name).await;
            tags.sort();
            let mut stages = self.w.stages(&name).await;
            stages.sort();
            let value = self.w.current(&name).await.1;
            secrets.push(json!({"name": name, "tags": tags, "stages": stages, "value": value}));
        }
        let state = self.w.control.state().await;
        json!({"secrets": secrets, "keys": state["keys"], "deleted": state["deleted"]})
    }
}

fn provision(workspace: &str, key_name: &str, limit: f64) -> Value {
    json!({"workspace": workspace, "key_name": key_name, "limit": limit, "ttl_seconds": 7200,
           "rotate_before_seconds": 3600})
}

fn event(source: &str, detail: Value) -> Value {
    json!({"version": "0", "id": unique("event"), "detail-type": "OpenRouter Key Requested",
           "source": source, "account": "123456789012", "time": "2026-12-02T10:00:00Z",
           "region": "us-east-1", "resources": [], "detail": detail})
}

/// A refusal: its kind, and a message that names none of `secrets` (ARN, hash, workspace,
/// expiry of what the caller does not own).
fn refused(r: Result<Value, VendError>, kind: &str, field: &str, secrets: &[&str]) -> String {
    let err = r.expect_err("refused");
    assert_eq!(err.kind(), kind, "{err}");
    let text = err.to_string();
    assert!(text.contains(&format!("`{field}`")), "{field}: {text}");
    for s in secrets {
        assert!(!s.is_empty() && !text.contains(s), "{text} reveals {s}");
    }
    text
}

#[tokio::test]
async fn every_cross_tenant_operation_is_refused_changes_nothing_and_reveals_nothing() {
    let t = Tenants::start().await;
    let victim = t.name("checkout", "payments-api");
    let mut req = provision("checkout", "payments-api", 50.0);
    req["secret_name"] = json!(victim);
    let owned = t
        .call("checkout", req.clone())
        .await
        .expect("checkout vends");
    assert_eq!(owned["status"], "created");
    let mine = t
        .call("search", provision("search", "ranker", 10.0))
        .await
        .expect("search vends its own");
    assert_eq!(
        mine["secret_name"],
        json!(t.name("search", "search/ranker"))
    );
    let (arn, hash) = (
        owned["secret_arn"].as_str().expect("arn").to_owned(),
        owned["key_hash"].as_str().expect("hash").to_owned(),
    );
    let expiry = owned["expires_at"].as_str().expect("expiry").to_owned();
    let ws_id = owned["workspace_id"].as_str().expect("ws").to_owned();
    let hidden = [arn.as_str(), hash.as_str(), expiry.as_str(), ws_id.as_str()];
    let before = t.snapshot().await;

    // Provision under the other team's prefix, into a workspace it may not use, above its cap
    // in a shared workspace, and re-home its own secret into the shared workspace at the
    // other team's maximum.
    let mut under = provision("search", "payments-api", 1.0);
    under["secret_name"] = json!(victim);
    refused(
        t.call("search", under).await,
        "TenantScopeViolation",
        "secret_name",
        &hidden,
    );
    let outside = refused(
        t.call("search", provision("default", "x", 1.0)).await,
        "TenantScopeViolation",
        "workspace",
        &hidden,
    );
    let unknown = refused(
        t.call("search", provision("no-such-workspace", "x", 1.0))
            .await,
        "TenantScopeViolation",
        "workspace",
        &hidden,
    );
    assert_eq!(
        outside, unknown,
        "a foreign and a missing workspace look alike"
    );
    refused(
        t.call("search", provision("checkout", "big", 100.0)).await,
        "PolicyViolation",
        "limit",
        &hidden,
    );
    let mut rehome = provision("checkout", "ranker", 100.0);
    rehome["secret_name"] = mine["secret_name"].clone();
    refused(
        t.call("search", rehome).await,
        "PolicyViolation",
        "limit",
        &hidden,
    );
    // Change the other team's cap, rotate it, leak-rotate it, revoke it: each refused the
    // same way whether the secret exists or not.
    let absent = t.name("checkout", "absent");
    let mut cap = req.clone();
    cap["limit"] = json!(0.01);
    refused(
        t.call("search", cap).await,
        "TenantScopeViolation",
        "secret_name",
        &hidden,
    );
    for body in [
        json!({"action": "rotate"}),
        json!({"action": "rotate", "reason": "leak"}),
        json!({"action": "revoke", "delete_secret": true}),
    ] {
        let mut on_victim = body.clone();
        on_victim["secret_name"] = json!(victim);
        let mut on_absent = body;
        on_absent["secret_name"] = json!(absent);
        let a = refused(
            t.call("search", on_victim).await,
            "TenantScopeViolation",
            "secret_name",
            &hidden,
        );
        let b = refused(
            t.call("search", on_absent).await,
            "TenantScopeViolation",
            "secret_name",
            &hidden,
        );
        assert_eq!(a, b, "the same answer whether the foreign secret exists");
    }
    // The payload cannot choose the tenant; an event's source must be its rule's tenant's;
    // unqualified, version and unknown-alias invocations are no tenant.
    let mut named = req.clone();
    named["tenant"] = json!("checkout");
    refused(
        t.call("search", named).await,
        "TenantScopeViolation",
        "tenant",
        &hidden,
    );
    refused(
        t.call("checkout", event("com.example.search", req.clone()))
            .await,
        "TenantScopeViolation",
        "source",
        &hidden,
    );
    for alias in ["", "$LATEST", "3", "intruder"] {
        refused(
            t.call(alias, req.clone()).await,
            "TenantScopeViolation",
            "(invoked function)",
            &hidden,
        );
    }
    assert_eq!(t.snapshot().await, before, "nothing changed anywhere");
}

#[tokio::test]
async fn a_tenant_vends_through_its_alias_and_events_at_six_calls_and_one_for_a_repeat() {
    let t = Tenants::start().await;
    // The production starter, counted as deployed (the local driver's moto workarounds for
    // configuring rotation are not the product's calls).
    let policy = policy(&t.prefix);
    let d = t.w.deps(&[
        ("ORKV_POLICY", &policy),
        ("ORKV_SECRET_PREFIX", &t.prefix),
        (
            "ORKV_ROTATION_LAMBDA_ARN",
            "arn:aws:lambda:us-east-1:000000000000:function:orkv-rotate",
        ),
    ]);
    // Warm the container (management key, workspace listing).
    call_as(&d, "search", provision("search", &unique("warm"), 1.0))
        .await
        .expect("warm-up");
    let key = unique("ranker");
    t.w.control.reset_calls().await;
    t.w.sm_calls.reset();
    let body = provision("search", &key, 10.0);
    let created = call_as(&d, "search", event("com.example.search", body.clone()))
        .await
        .expect("created");
    assert_eq!(created["status"], "created");
    // Three writes, the two read-backs of `created` (GetSecretValue, GET /key), and the
    // RotateSecret configuring rotation (moto has no such function and refuses it; the
    // product's call is made all the same).
    assert_eq!(
        t.w.control.total_calls().await + t.w.sm_calls.get(),
        6,
        "a new key"
    );
    t.w.control.reset_calls().await;
    t.w.sm_calls.reset();
    let again = call_as(&d, "search", body).await.expect("repeat");
    assert_eq!(again["status"], "unchanged");
    assert_eq!(
        t.w.control.total_calls().await + t.w.sm_calls.get(),
        1,
        "a repeat"
    );
    let name = created["secret_name"].as_str().expect("name");
    let (_, record) = t.w.current(name).await;
    assert_eq!(record["tenant"], "search");
    assert!(
        t.w.tags(name)
            .await
            .contains(&("orkv:tenant".to_owned(), "search".to_owned()))
    );
}

#[tokio::test]
async fn a_tenant_takes_only_its_actions_and_the_admin_alias_acts_for_the_owner() {
    let t = Tenants::start().await;
    let ro = t
        .call("readonly", provision("search", &unique("ro"), 1.0))
        .await
        .expect("readonly may provision");
    let ro_name = ro["secret_name"].as_str().expect("name").to_owned();
    assert!(
        ro_name.starts_with(&format!("{}ro/", t.prefix)),
        "{ro_name}"
    );
    let before = t.snapshot().await;
    let mut cap = provision("search", "x", 0.5);
    cap["key_name"] = json!(ro_name.rsplit('/').next());
    cap["secret_name"] = json!(ro_name);
    refused(
        t.call("readonly", cap).await,
        "TenantScopeViolation",
        "action",
        &[],
    );
    for body in [
        json!({"action": "rotate", "secret_name": ro_name}),
        json!({"action": "revoke", "secret_name": ro_name}),
    ] {
        refused(
            t.call("readonly", body).await,
            "TenantScopeViolation",
            "action",
            &[],
        );
    }
    assert_eq!(t.snapshot().await, before);

    // The platform-admin alias: a provision names its tenant; an action on a secret acts
    // for the tenant whose prefix it is under.
    refused(
        t.call("platform-admin", provision("checkout", "ops", 1.0))
            .await,
        "TenantScopeViolation",
        "tenant",
        &[],
    );
    let mut for_checkout = provision("checkout", &unique("ops"), 1.0);
    for_checkout["tenant"] = json!("checkout");
    let made = t
        .call("platform-admin", for_checkout)
        .await
        .expect("admin vends for checkout");
    let name = made["secret_name"].as_str().expect("name").to_owned();
    assert!(name.starts_with(&t.name("checkout", "")), "{name}");
    assert_eq!(t.w.current(&name).await.1["tenant"], "checkout");
    let rotated = t
        .call(
            "platform-admin",
            json!({"action": "rotate", "secret_name": name, "reason": "leak"}),
        )
        .await
        .expect("admin rotates");
    assert_eq!(rotated["status"], "rotated", "{rotated}");
    let (_, record) = t.w.current(&name).await;
    assert_eq!(record["generation"], 2);
    assert_eq!(
        record["tenant"], "checkout",
        "the successor keeps the tenant"
    );
}

#[tokio::test]
async fn a_secret_made_before_tenants_belongs_to_its_prefix_owner_and_gets_its_tenant_at_rotation()
{
    let w = World::start().await;
    let prefix = format!("openrouter/{}/", unique("m"));
    // Single-policy form first: the default secret name is <prefix><workspace>/<key_name>,
    // under the checkout tenant's default prefix once tenants are configured.
    let single = w.rotating_deps(&[("ORKV_SECRET_PREFIX", &prefix)]);
    let key = unique("legacy");
    let made = Box::pin(ops::handle_request(
        &single,
        provision("checkout", &key, 10.0),
        deadline(),
    ))
    .await
    .expect("single-policy vend");
    let name = made["secret_name"].as_str().expect("name").to_owned();
    assert!(w.current(&name).await.1.get("tenant").is_none());

    let d = w.rotating_deps(&[
        ("ORKV_POLICY", &policy(&prefix)),
        ("ORKV_SECRET_PREFIX", &prefix),
    ]);
    let err = Box::pin(ops::handle_invocation(
        &d,
        json!({"action": "rotate", "secret_name": name}),
        &function_arn("search"),
        deadline(),
    ))
    .await
    .expect_err("not search's");
    assert_eq!(err.kind(), "TenantScopeViolation");
    let mut raise = provision("checkout", &key, 20.0);
    raise["secret_name"] = json!(name);
    let updated = Box::pin(ops::handle_invocation(
        &d,
        raise,
        &function_arn("checkout"),
        deadline(),
    ))
    .await
    .expect("the prefix owner updates it");
    assert_eq!(updated["status"], "updated");
    let rotated = Box::pin(ops::handle_invocation(
        &d,
        json!({"action": "rotate", "secret_name": name}),
        &function_arn("checkout"),
        deadline(),
    ))
    .await
    .expect("rotated");
    assert_eq!(rotated["status"], "rotated");
    assert_eq!(w.current(&name).await.1["tenant"], "checkout");
    assert!(
        w.tags(&name)
            .await
            .contains(&("orkv:tenant".to_owned(), "checkout".to_owned()))
    );
}

#[tokio::test]
async fn ambiguous_workspaces_are_refused_never_resolved_by_list_order() {
    let w = World::start().await;
    // Listed after the real one, a workspace *named* checkout (slug shadow), and two
    // workspaces sharing a name.
    w.control
        .add_workspace("7e57a000-0000-4000-8000-000000000001", "shadow", "checkout")
        .await;
    w.control
        .add_workspace("7e57a000-0000-4000-8000-000000000002", "team-a", "Shared")
        .await;
    w.control
        .add_workspace("7e57a000-0000-4000-8000-000000000003", "team-b", "Shared")
        .await;
    let single = w.deps(&[(
        "ORKV_POLICY",
        r#"{"workspaces":[{"workspace":"search","max_limit":20},{"workspace":"team-a","max_limit":5}]}"#,
    )]);
    for ident in ["checkout", "Shared"] {
        let err = Box::pin(ops::handle(
            &single,
            provision(ident, &unique("amb"), 1.0),
            deadline(),
        ))
        .await
        .expect_err(ident);
        assert_eq!(err.kind(), "AmbiguousWorkspace", "{err}");
        assert!(err.to_string().contains("`workspace`"), "{err}");
    }
    // By UUID or an unshared slug it resolves, and the record holds the UUID.
    let ok = Box::pin(ops::handle(
        &single,
        provision("7e57a000-0000-4000-8000-000000000002", &unique("a"), 1.0),
        deadline(),
    ))
    .await
    .expect("by uuid");
    assert_eq!(ok.workspace_id, "7e57a000-0000-4000-8000-000000000002");
    // A policy entry whose identifier is ambiguous, or a display name, is a configuration
    // error: every request is refused until the policy names the workspace exactly.
    for entry in ["checkout", "Search Team"] {
        let policy = format!(r#"{{"workspaces":[{{"workspace":"{entry}","max_limit":5}}]}}"#);
        let d = w.deps(&[("ORKV_POLICY", &policy)]);
        let err = Box::pin(ops::handle(
            &d,
            provision("search", &unique("cfg"), 1.0),
            deadline(),
        ))
        .await
        .expect_err(entry);
        assert_eq!(err.kind(), "ConfigError", "{err}");
        assert!(err.to_string().contains(entry), "{err}");
    }
    assert!(
        w.control.live_keys("").await.len() == 1,
        "only the UUID request minted"
    );
}
