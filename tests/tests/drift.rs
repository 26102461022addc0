//! Cap drift (issue 16, item 3): a current key's cap changed behind the product's back is
//! found by one sweep from the listing it already makes, and put back (`ORKV_DRIFT=repair`) or
//! reported; a change too recent to tell from a cap update in flight waits for a later run; a
//! change a running rotation carries is not drift. (Keys deleted, disabled or expired out of
//! band: `sweep.rs`, `a_current_key_deleted_disabled_or_expired_out_of_band_...`.)

use orkv_openrouter::{Cap, Key, KeyPatch, LimitReset};
use orkv_tests::rotating::{
    ALL_STEPS, advance, begin, deadline, deps, deps_with, run_steps, sweep,
};
use orkv_tests::unique;
use orkv_tests::world::World;
use orkv_vending::ops::sweep::report::SweepAction;
use serde_json::json;

fn client(w: &World) -> orkv_openrouter::Client {
    w.management_client()
}

async fn key_of(w: &World, name: &str) -> Key {
    let hash = w.current(name).await.1["key_hash"]
        .as_str()
        .expect("hash")
        .to_owned();
    client(w).get_key(&hash).await.expect("key")
}

fn patch(cap: Cap) -> KeyPatch {
    KeyPatch {
        cap: Some(cap),
        ..KeyPatch::default()
    }
}

/// A request for a key capped at [`RECORDED`], living two days.
fn capped(key_name: &str) -> serde_json::Value {
    json!({"workspace": "checkout", "key_name": key_name, "limit": 50,
           "limit_reset": "monthly", "ttl_seconds": 172_800, "rotate_before_seconds": 3600})
}

const RECORDED: Cap = Cap {
    limit: 50.0,
    limit_reset: Some(LimitReset::Monthly),
    include_byok_in_limit: false,
};

#[tokio::test]
async fn a_cap_changed_in_the_dashboard_is_found_by_one_sweep_and_put_back_or_reported() {
    let w = World::start().await;
    let d = deps(&w);
    let prefix = unique("capdrift");
    let mut names = Vec::new();
    for k in ["raised", "reset", "healthy"] {
        let body = capped(&format!("{prefix}-{k}"));
        names.push(
            orkv_tests::roles::ops::handle(&d, body, deadline())
                .await
                .expect("vended")
                .secret_name,
        );
    }
    let or = client(&w);
    // In the dashboard: one key's limit raised tenfold, another's reset and BYOK flag changed.
    let raised = Cap {
        limit: 500.0,
        ..RECORDED
    };
    let other = Cap {
        limit_reset: Some(LimitReset::Daily),
        include_byok_in_limit: true,
        ..RECORDED
    };
    or.update_key(&key_of(&w, &names[0]).await.hash, &patch(raised))
        .await
        .expect("raise");
    or.update_key(&key_of(&w, &names[1]).await.hash, &patch(other))
        .await
        .expect("reset");

    // At once: found, but a change this recent may be a cap update in flight (patched, record
    // not yet written): reported, left for a later run.
    let r = sweep(&d, &unique("recent")).await;
    assert_eq!((r.keys_drifted, r.keys_drift_repaired), (2, 0), "{r:?}");
    assert_eq!(
        r.actions
            .iter()
            .filter(|a| a.action == SweepAction::CapDriftRecent)
            .count(),
        2
    );
    assert_eq!(key_of(&w, &names[0]).await.cap(), Some(raised));

    // Past the pending lease: a report-only sweep finds both and changes nothing.
    advance(&w, &d, 600).await;
    let report_only = deps_with(&w, &[("ORKV_DRIFT", "report")]);
    report_only.clock().advance(600);
    let r = sweep(&report_only, &unique("report")).await;
    assert_eq!((r.keys_drifted, r.keys_drift_repaired), (2, 0), "{r:?}");
    assert_eq!(key_of(&w, &names[0]).await.cap(), Some(raised));
    assert_eq!(key_of(&w, &names[1]).await.cap(), Some(other));

    // The repairing sweep puts both back to what the secrets record, and reads them back.
    let r = sweep(&d, &unique("repair")).await;
    assert_eq!((r.keys_drifted, r.keys_drift_repaired), (2, 2), "{r:?}");
    for n in &names {
        assert_eq!(key_of(&w, n).await.cap(), Some(RECORDED), "{n}");
        assert_eq!(w.current(n).await.1["generation"], 1, "no rotation: {n}");
    }
    let metrics = r.emf(d.clock().now());
    assert_eq!(
        (
            metrics["KeysDrifted"].clone(),
            metrics["KeysDriftRepaired"].clone()
        ),
        (json!(2), json!(2))
    );
    let r = sweep(&d, &unique("after")).await;
    assert_eq!(r.keys_drifted, 0, "{r:?}");
}

#[tokio::test]
async fn a_cap_change_a_running_rotation_carries_is_not_drift() {
    // A cap update during a rotation patches the key in use and defers the record's change to
    // finishSecret: key and record differ until then, and the sweep must not undo it.
    let w = World::start().await;
    let d = deps(&w);
    let key_name = unique("deferred");
    let body = capped(&key_name);
    let name = orkv_tests::roles::ops::handle(&d, body.clone(), deadline())
        .await
        .expect("vended")
        .secret_name;
    let token = begin(&w, &d, &name).await;
    let mut update = body.clone();
    update["limit"] = json!(75);
    orkv_tests::roles::ops::handle(&d, update, deadline())
        .await
        .expect("deferred update");
    // A raise never raises the key a running rotation holds (ADR 0010): the rotation gives
    // the successor the rest of the new cap.
    let old = key_of(&w, &name).await;
    assert_eq!(old.limit, Some(50.0), "the key in use is not raised");
    advance(&w, &d, 600).await;
    let r = sweep(&d, &unique("during")).await;
    assert_eq!(r.keys_drifted, 0, "{r:?}");
    assert_eq!(key_of(&w, &name).await.limit, Some(50.0), "not touched");
    run_steps(&d, &name, &token, &ALL_STEPS).await;
    assert_eq!(w.current(&name).await.1["limit"], 75.0);
    let new = key_of(&w, &name).await;
    let held = client(&w)
        .get_key(&old.hash)
        .await
        .expect("old key in grace");
    assert_eq!(
        held.limit.unwrap_or(f64::INFINITY) + new.limit.unwrap_or(f64::INFINITY),
        75.0,
        "both live generations share the new cap"
    );
    let r = sweep(&d, &unique("after")).await;
    assert_eq!(r.keys_drifted, 0, "{r:?}");
}

#[tokio::test]
async fn a_secret_value_replaced_by_hand_is_reported_and_never_overwritten() {
    // Someone puts another value into a managed secret (console, CLI: a random version token).
    // One sweep finds it from the listing (AWSCURRENT on a version the product did not write),
    // reads it, reports it, and writes nothing. A version Secrets Manager made with its own
    // token but holding the product's record (its scheduled rotation) is not drift.
    let w = World::start().await;
    let d = deps(&w);
    // Created without configuring rotation: after moto's only way to turn it on (the local
    // driver's `enable_rotation`), moto lists `AWSCURRENT` on the product's version as well
    // as on a version written by hand afterwards. AWS moves the label.
    let bare = w.deps(&[]);
    let prefix = unique("replaced");
    let mut names = Vec::new();
    for k in ["by-hand", "own-record"] {
        let body = capped(&format!("{prefix}-{k}"));
        names.push(
            orkv_tests::roles::ops::handle(&bare, body, deadline())
                .await
                .expect("vended")
                .secret_name,
        );
    }
    let foreign = json!({"api_key": "sk-or-v1-pasted-by-someone"}).to_string();
    w.sm.put_secret_value()
        .secret_id(&names[0])
        .secret_string(&foreign)
        .send()
        .await
        .expect("put by hand");
    let (_, own) = w.current(&names[1]).await;
    w.sm.put_secret_value()
        .secret_id(&names[1])
        .secret_string(own.to_string())
        .send()
        .await
        .expect("same record, random token");
    let r = sweep(&d, &unique("value")).await;
    assert_eq!(r.secret_values_replaced, 1, "{r:?}");
    assert!(
        r.actions
            .iter()
            .any(|a| a.action == SweepAction::SecretValueReplaced && a.secret == names[0])
    );
    let v =
        w.sm.get_secret_value()
            .secret_id(&names[0])
            .send()
            .await
            .expect("read");
    assert_eq!(
        v.secret_string(),
        Some(foreign.as_str()),
        "never overwritten"
    );
    assert_eq!(r.emf(d.clock().now())["SecretValuesReplaced"], 1);
}
