//! Issue 29: state others can write is never the product's word. Two tenants; a principal of
//! one (or anyone allowed to create a tagged secret under the prefix) writes the product's
//! tags, or a whole record, by hand. Tags naming another tenant's key make no path act on that
//! key; a forged `orkv:next` or `orkv:deferred-change` mints nothing outside the owner's
//! policy; an adoption inherits none of it. Each attack changed the other tenant's key (deleted,
//! disabled, cut to 0) or minted above the policy before the fix.

use orkv_openrouter::{Cap, Key};
use orkv_tests::rotating::{GRACE, advance, begin, deadline, deps_with, step, sweep};
use orkv_tests::unique;
use orkv_tests::world::{World, call_as, create_seed_secret};
use orkv_tests::{CHECKOUT_WORKSPACE_ID as CHECKOUT, SEARCH_WORKSPACE_ID as SEARCH};
use orkv_vending::Deps;
use orkv_vending::domain::lifetime::Lifetime;
use orkv_vending::domain::tags::{self, Deferred, NextSettings};
use orkv_vending::input::rotation::Step;
use serde_json::{Value, json};

const POLICY: &str = r#"{"tenants": {
    "checkout": {"workspaces": [{"workspace": "checkout", "max_limit": 100}]},
    "search": {"workspaces": [{"workspace": "search", "max_limit": 20}]}}}"#;

/// A time long past: a forged retire tag is due at once.
const PAST: &str = "2026-01-01T00:00:00Z";

async fn two_tenants() -> (World, Deps) {
    let w = World::adoptable().await;
    let d = deps_with(&w, &[("ORKV_POLICY", POLICY)]);
    (w, d)
}

/// A key vended through `tenant`'s alias: (secret name, key hash, plaintext).
async fn vend(w: &World, d: &Deps, tenant: &str, limit: f64) -> (String, String, String) {
    let reply = call_as(
        d,
        tenant,
        json!({"workspace": tenant, "key_name": unique("k"), "limit": limit,
               "ttl_seconds": 7200, "rotate_before_seconds": 3600}),
    )
    .await
    .expect("vended");
    let name = reply["secret_name"].as_str().expect("name").to_owned();
    let (_, rec) = w.current(&name).await;
    (
        name,
        rec["key_hash"].as_str().expect("hash").to_owned(),
        rec["api_key"].as_str().expect("key").to_owned(),
    )
}

/// What the victim's key is now, as OpenRouter lists it (`None`: gone).
async fn key(w: &World, hash: &str) -> Option<Key> {
    w.management_client().get_key(hash).await.ok()
}

/// Tags `name` as a principal of its tenant may (its own role, not the product's).
async fn forge(w: &World, name: &str, tag_list: &[(String, String)]) {
    let mut req = w.sm.tag_resource().secret_id(name);
    for (k, v) in tag_list {
        req = req.tags(
            aws_sdk_secretsmanager::types::Tag::builder()
                .key(k)
                .value(v)
                .build(),
        );
    }
    req.send().await.expect("tag");
}

/// The victim key is as it was: listed, enabled, its limit unchanged, and it still works.
async fn untouched(w: &World, hash: &str, plaintext: &str, limit: f64, after: &str) {
    let k = key(w, hash)
        .await
        .unwrap_or_else(|| panic!("{after}: the other tenant's key was deleted"));
    assert!(!k.disabled, "{after}: the other tenant's key was disabled");
    assert_eq!(
        k.limit,
        Some(limit),
        "{after}: the other tenant's cap changed"
    );
    assert!(
        w.works(plaintext).await,
        "{after}: the other tenant's key stopped working"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retire_tags_naming_another_tenants_key_make_no_path_act_on_it() {
    let (w, d) = two_tenants().await;
    let (_, victim, victim_key) = vend(&w, &d, "search", 5.0).await;
    let (mine, _, _) = vend(&w, &d, "checkout", 50.0).await;
    // Checkout's own principal tags its own secret: the other tenant's key "awaits
    // retirement" here, and the next rotation is "a leak".
    forge(
        &w,
        &mine,
        &[
            (tags::retire_tag(&victim), PAST.to_owned()),
            (tags::ROTATION_REASON.to_owned(), "leak".to_owned()),
        ],
    )
    .await;

    // A cap lowered below what the "superseded" keys committed squeezes each of them.
    let (_, rec) = w.current(&mine).await;
    let lowered = call_as(
        &d,
        "checkout",
        json!({"workspace": "checkout", "key_name": rec["key_name"], "limit": 1,
               "ttl_seconds": 7200, "rotate_before_seconds": 3600}),
    )
    .await
    .expect("cap lowered");
    assert_eq!(lowered["status"], "updated", "{lowered}");
    untouched(&w, &victim, &victim_key, 5.0, "a cap update").await;

    // A leak rotation disables the old key and every key in grace.
    let leak = call_as(
        &d,
        "checkout",
        json!({"action": "rotate", "secret_name": mine, "reason": "leak"}),
    )
    .await
    .expect("leak rotation");
    assert_eq!(leak["status"], "rotated", "{leak}");
    untouched(&w, &victim, &victim_key, 5.0, "a leak rotation").await;

    // The sweep retires every due key the tags list.
    let r = sweep(&d, &unique("forged")).await;
    assert!(
        r.retirements_blocked >= 1,
        "the forged retirement is reported: {r:?}"
    );
    assert!(r.complete, "{r:?}");
    untouched(&w, &victim, &victim_key, 5.0, "the sweep").await;

    // Revoke retires every key the secret references.
    let revoked = call_as(
        &d,
        "checkout",
        json!({"action": "revoke", "secret_name": mine}),
    )
    .await
    .expect("revoked");
    assert!(
        !revoked.to_string().contains(&victim),
        "the reply names no key of the other tenant: {revoked}"
    );
    untouched(&w, &victim, &victim_key, 5.0, "a revoke").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_made_with_the_managed_tag_and_a_forged_record_reaches_no_other_key() {
    let (w, d) = two_tenants().await;
    // The victims: a key the product minted for search, and one search adopted (its name is
    // the dashboard's, so only its hash ties it to the secret).
    let (_, minted, minted_key) = vend(&w, &d, "search", 5.0).await;
    let (adopted_key, adopted) = w
        .outside_key("search prod", SEARCH, Some(4.0), Some(30))
        .await;
    let adopted_secret = format!("openrouter/search/{}", unique("adopted"));
    create_seed_secret(
        &w.sm,
        &adopted_secret,
        &json!({"api_key": adopted_key}).to_string(),
        &[],
    )
    .await;
    call_as(
        &d,
        "search",
        json!({"action": "adopt", "secret_name": adopted_secret, "workspace": "search"}),
    )
    .await
    .expect("adopted");
    // Without any request to the product: a secret under checkout's prefix, created with the
    // managed tag, two due retire tags, and a record (copied from checkout's own) that says it
    // adopted the other tenant's key.
    let (own, _, _) = vend(&w, &d, "checkout", 10.0).await;
    let (_, mut record) = w.current(&own).await;
    record["adopted_key_hash"] = json!(adopted);
    let forged = format!("openrouter/checkout/{}", unique("forged"));
    let retire_minted = tags::retire_tag(&minted);
    let retire_adopted = tags::retire_tag(&adopted);
    create_seed_secret(
        &w.sm,
        &forged,
        &record.to_string(),
        &[
            (tags::MANAGED_BY, "openrouter-key-vending"),
            (tags::TENANT, "checkout"),
            (retire_minted.as_str(), PAST),
            (retire_adopted.as_str(), PAST),
        ],
    )
    .await;
    let r = sweep(&d, &unique("forged-record")).await;
    assert!(r.retirements_blocked >= 2, "both are reported: {r:?}");
    untouched(&w, &minted, &minted_key, 5.0, "the sweep (minted key)").await;
    untouched(&w, &adopted, &adopted_key, 4.0, "the sweep (adopted key)").await;
}

/// Answers the error `createSecret` fails with under `token`.
async fn create_fails(d: &Deps, name: &str, token: &str) -> String {
    orkv_tests::roles::ops::run_step(d, &step(name, token, Step::CreateSecret), deadline())
        .await
        .expect_err("createSecret refuses")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_next_settings_mint_nothing_outside_the_owners_policy() {
    let (w, d) = two_tenants().await;
    let (mine, _, _) = vend(&w, &d, "checkout", 50.0).await;
    let huge = Cap {
        limit: 99_990.0,
        limit_reset: None,
        include_byok_in_limit: false,
    };
    // `orkv:next` naming the other tenant's workspace at a cap far above any maximum.
    let next = NextSettings {
        workspace_id: SEARCH,
        lifetime: Lifetime::TtlSeconds(7200),
        cap: huge,
        rotate_before_seconds: 3600,
    };
    forge(&w, &mine, &[(tags::NEXT.to_owned(), next.tag_value())]).await;
    let token = begin(&w, &d, &mine).await;
    let before = w.control.state().await["keys"].clone();
    let e = create_fails(&d, &mine, &token).await;
    assert!(e.contains("`workspace`"), "{e}");
    // In its own workspace, still far above its maximum.
    let own_ws = NextSettings {
        workspace_id: CHECKOUT,
        ..next
    };
    forge(&w, &mine, &[(tags::NEXT.to_owned(), own_ws.tag_value())]).await;
    let e = create_fails(&d, &mine, &token).await;
    assert!(e.contains("`limit`") && e.contains("100"), "{e}");
    // A deferred cap change, with no `orkv:next`.
    w.sm.untag_resource()
        .secret_id(&mine)
        .tag_keys(tags::NEXT)
        .send()
        .await
        .expect("untag");
    let deferred = Deferred {
        cap: huge,
        rotate_before_seconds: 3600,
    };
    forge(
        &w,
        &mine,
        &[(tags::DEFERRED.to_owned(), deferred.tag_value())],
    )
    .await;
    let e = create_fails(&d, &mine, &token).await;
    assert!(e.contains("`limit`"), "{e}");
    assert!(!e.contains("sk-or-"), "{e}");
    assert_eq!(
        w.control.state().await["keys"],
        before,
        "no key was minted, none changed"
    );
    let minted: Vec<Value> = w.live_for(&mine).await;
    assert_eq!(minted.len(), 1, "only the current key lives: {minted:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adoption_starts_clean_or_changes_nothing() {
    let (w, d) = two_tenants().await;
    let (_, victim, _) = vend(&w, &d, "search", 5.0).await;
    let (_, _, own_minted) = vend(&w, &d, "checkout", 10.0).await;
    let secret = |rest: &str| format!("openrouter/checkout/{}", unique(rest));
    let api = |k: &str| json!({"api_key": k}).to_string();
    // A key adopted once: a second secret holding it is refused.
    let (shared, _) = w
        .outside_key("checkout prod", CHECKOUT, Some(5.0), Some(30))
        .await;
    let first = secret("first");
    create_seed_secret(&w.sm, &first, &api(&shared), &[]).await;
    call_as(
        &d,
        "checkout",
        json!({"action": "adopt", "secret_name": first, "workspace": "checkout"}),
    )
    .await
    .expect("the first adoption");
    let (fresh, _) = w
        .outside_key("checkout fresh", CHECKOUT, Some(5.0), Some(30))
        .await;
    let (expired, _) = w
        .outside_key("checkout old", CHECKOUT, Some(5.0), Some(-1))
        .await;
    let retire = tags::retire_tag(&victim);
    let tagged = secret("tagged");
    create_seed_secret(&w.sm, &tagged, &api(&fresh), &[(retire.as_str(), PAST)]).await;
    let next = secret("next");
    create_seed_secret(
        &w.sm,
        &next,
        &api(&fresh),
        &[(
            tags::DEFERRED,
            "limit=99990 reset=none byok=false before=3600",
        )],
    )
    .await;
    let second = secret("second");
    create_seed_secret(&w.sm, &second, &api(&shared), &[]).await;
    let minted = secret("minted");
    create_seed_secret(&w.sm, &minted, &api(&own_minted), &[]).await;
    let old = secret("expired");
    create_seed_secret(&w.sm, &old, &api(&expired), &[]).await;
    // 238 characters: one more than provision allows.
    let long = format!("openrouter/checkout/{}/api", "l".repeat(238 - 24));
    assert_eq!(long.len(), 238);
    create_seed_secret(&w.sm, &long, &api(&fresh), &[]).await;
    for (name, rule) in [
        (&tagged, "reserved for the product"),
        (&next, "orkv:deferred-change"),
        (&second, "held by another managed secret"),
        (&minted, "minted by this product"),
        (&old, "expired at"),
        (&long, "at most 237"),
    ] {
        let before = w.state_of(name).await;
        let err = call_as(
            &d,
            "checkout",
            json!({"action": "adopt", "secret_name": name, "workspace": "checkout"}),
        )
        .await
        .expect_err("refused")
        .to_string();
        assert!(
            err.contains("`secret_name`") && err.contains(rule),
            "{name}: {err}"
        );
        assert!(!err.contains("sk-or-") && !err.contains(&first), "{err}");
        assert_eq!(w.state_of(name).await, before, "{name}: nothing changed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_a_secret_adopted_stays_its_own_to_disable_and_retire() {
    let (w, d) = two_tenants().await;
    let (plaintext, adopted) = w
        .outside_key("checkout legacy", CHECKOUT, Some(5.0), Some(30))
        .await;
    let name = format!("openrouter/checkout/{}", unique("legacy"));
    create_seed_secret(
        &w.sm,
        &name,
        &json!({"api_key": plaintext}).to_string(),
        &[],
    )
    .await;
    call_as(
        &d,
        "checkout",
        json!({"action": "adopt", "secret_name": name, "workspace": "checkout"}),
    )
    .await
    .expect("adopted");
    // A routine rotation: the adopted key goes into grace and keeps working.
    call_as(
        &d,
        "checkout",
        json!({"action": "rotate", "secret_name": name}),
    )
    .await
    .expect("rotated");
    assert!(w.works(&plaintext).await, "in grace, the adopted key works");
    assert_eq!(
        w.current(&name).await.1["adopted_key_hash"],
        json!(adopted),
        "every generation's record names the key the secret adopted"
    );
    // A leak rotation disables every key in grace, the adopted one included (the rotate
    // function asks whether another managed secret holds it first).
    call_as(
        &d,
        "checkout",
        json!({"action": "rotate", "secret_name": name, "reason": "leak"}),
    )
    .await
    .expect("leak rotation");
    assert!(
        !w.works(&plaintext).await,
        "the adopted key is disabled at once"
    );
    // And the sweep deletes it once its grace is over.
    advance(&w, &d, GRACE + 60).await;
    let r = sweep(&d, &unique("legacy")).await;
    assert_eq!(r.retirements_blocked, 0, "{r:?}");
    assert!(
        key(&w, &adopted).await.is_none(),
        "the adopted key is deleted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_cap_tag_never_raises_a_key_past_its_record() {
    let (w, d) = two_tenants().await;
    let (mine, hash, _) = vend(&w, &d, "checkout", 10.0).await;
    // The listing's `orkv:cap` tag is what the sweep's refill finds candidates by.
    let huge = Cap {
        limit: 99_990.0,
        limit_reset: None,
        include_byok_in_limit: false,
    };
    forge(
        &w,
        &mine,
        &[(tags::CAP.to_owned(), tags::cap_tag_value(huge))],
    )
    .await;
    let r = sweep(&d, &unique("cap-tag")).await;
    assert_eq!(r.budgets_refilled, 0, "{r:?}");
    let k = key(&w, &hash).await.expect("listed");
    assert!(
        k.limit.is_some_and(|l| l <= 10.0),
        "the key's limit follows its record, not a tag: {:?}",
        k.limit
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_adoption_refusal_names_the_field_the_request_sent() {
    let (_w, d) = two_tenants().await;
    let err = call_as(
        &d,
        "checkout",
        json!({"action": "adopt", "secret_prefix": "openrouter/search/legacy/",
               "workspace": "checkout"}),
    )
    .await
    .expect_err("another tenant's prefix")
    .to_string();
    assert!(err.contains("`secret_prefix`"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_secret_that_cannot_rotate_leaves_every_other_tenants_checks_running() {
    let (w, d) = two_tenants().await;
    // Checkout's secret comes due, and its rotation cannot succeed (a forged `orkv:next`
    // outside its policy makes createSecret refuse).
    let (stuck, _, _) = vend(&w, &d, "checkout", 10.0).await;
    advance(&w, &d, 3660).await;
    let next = NextSettings {
        workspace_id: SEARCH,
        lifetime: Lifetime::TtlSeconds(7200),
        cap: Cap {
            limit: 5.0,
            limit_reset: None,
            include_byok_in_limit: false,
        },
        rotate_before_seconds: 3600,
    };
    forge(&w, &stuck, &[(tags::NEXT.to_owned(), next.tag_value())]).await;
    // Search's current key, not due, is deleted behind the product's back.
    let (theirs, hash, _) = vend(&w, &d, "search", 5.0).await;
    w.management_client()
        .delete_key(&hash)
        .await
        .expect("deleted in the dashboard");
    let r = sweep(&d, &unique("isolated")).await;
    assert!(
        r.rotation_failures >= 1,
        "the stuck secret is reported: {r:?}"
    );
    assert!(
        r.complete,
        "one secret's failure does not make the run incomplete: {r:?}"
    );
    assert_eq!(
        (r.current_keys_broken, r.current_keys_repaired),
        (1, 1),
        "the other tenant's broken key is found and replaced in the same run: {r:?}"
    );
    let (_, rec) = w.current(&theirs).await;
    assert!(w.works(rec["api_key"].as_str().expect("key")).await);
}
