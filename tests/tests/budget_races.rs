//! Issue 29: the sweep's give-back never overwrites a hold or a fit that landed while it
//! worked. A retirement reads the secret, then makes five OpenRouter calls (disable, carry,
//! unassign, delete, read back) before it hands the retired key's unspent share to the current
//! key. The delete is held here (the emulator's delay fault) while a rotation runs or the cap
//! is lowered, so each race happens every run, not now and then. Judged from OpenRouter's side
//! alone: what was spent plus what every live key may still spend stays within the cap.

use orkv_tests::rotating::{GRACE, advance, deadline, deps, request};
use orkv_tests::unique;
use orkv_tests::world::World;
use orkv_vending::Deps;
use orkv_vending::input::sweep::SweepInput;
use orkv_vending::ops::provision::Status;
use serde_json::{Value, json};

/// What the secret's live keys may still spend (OpenRouter's `limit_remaining`).
async fn may_spend(w: &World, name: &str) -> f64 {
    w.live_for(name)
        .await
        .iter()
        .map(|k| k["limit_remaining"].as_f64().unwrap_or(f64::INFINITY))
        .sum()
}

async fn spend(w: &World, key: &str, usd: f64) {
    let status = reqwest::Client::new()
        .post(format!("{}/_emulator/spend", w.emu.url()))
        .json(&json!({"key": key, "usd": usd}))
        .send()
        .await
        .expect("spend")
        .status();
    assert!(status.is_success(), "spend {usd}: {status}");
}

/// A secret capped at $10 a month, rotated once; its first key spent $1 and its grace is
/// over, so the next sweep retires it and gives the current key what it left. Answers the
/// secret's name and its request.
async fn retirement_due(w: &World, d: &Deps) -> (String, Value) {
    let key_name = unique("race");
    let mut req = request(&key_name);
    req["limit"] = json!(10);
    let name = orkv_tests::roles::ops::handle(d, req.clone(), deadline())
        .await
        .expect("provisioned")
        .secret_name;
    let first = w.current(&name).await.1["api_key"]
        .as_str()
        .expect("key")
        .to_owned();
    rotate(d, &name, "first").await;
    spend(w, &first, 1.0).await;
    advance(w, d, GRACE + 60).await;
    (name, req)
}

async fn rotate(d: &Deps, name: &str, id: &str) {
    Box::pin(orkv_tests::roles::ops::handle_request(
        d,
        json!({"action": "rotate", "secret_name": name, "reason": "manual",
               "idempotency_id": unique(id)}),
        deadline(),
    ))
    .await
    .expect("rotated");
}

/// Runs the sweep with the retirement's delete held, and `meanwhile` once the delete has
/// been asked for (the emulator counts a call when it arrives).
async fn sweep_racing<F: std::future::Future<Output = ()>>(w: &World, d: &Deps, meanwhile: F) {
    let deletes = |c: Value| c["calls"]["delete_key"].as_u64().unwrap_or(0);
    let before = deletes(w.control.calls().await);
    w.control
        .fault(json!({"op": "delete_key", "action": "delay", "ms": 1200}))
        .await;
    let input = SweepInput::parse(&json!({"execution_id": unique("race")})).expect("input");
    // Boxed: the in-process functions' futures are large for a test thread's stack.
    let sweep = Box::pin(orkv_tests::roles::ops::sweep(d, &input, deadline()));
    let meanwhile = Box::pin(meanwhile);
    let race = Box::pin(async {
        // Waits for an event (the delete has arrived), bounded: not a sleep to pass.
        for _ in 0..400 {
            if deletes(w.control.calls().await) > before {
                meanwhile.await;
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the sweep never asked to delete the retired key");
    });
    let (report, ()) = tokio::join!(sweep, race);
    let report = report.expect("sweep");
    assert_eq!(report.keys_retired, 1, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_started_during_a_retirement_keeps_the_logical_key_within_its_cap() {
    let w = World::start().await;
    let d = deps(&w);
    let (name, _) = retirement_due(&w, &d).await;
    sweep_racing(&w, &d, rotate(&d, &name, "meanwhile")).await;
    let may = may_spend(&w, &name).await;
    assert!(
        1.0 + may <= 10.0 + 1e-6,
        "spent 1 + may spend {may} > the $10 cap: the give-back raised a key the rotation held"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cap_lowered_during_a_retirement_is_never_raised_back() {
    let w = World::start().await;
    let d = deps(&w);
    let (name, mut req) = retirement_due(&w, &d).await;
    req["limit"] = json!(4);
    let lower = async {
        let reply = Box::pin(orkv_tests::roles::ops::handle(&d, req.clone(), deadline()))
            .await
            .expect("cap lowered");
        assert_eq!(reply.status, Status::Updated);
    };
    sweep_racing(&w, &d, lower).await;
    let may = may_spend(&w, &name).await;
    assert!(
        1.0 + may <= 4.0 + 1e-6,
        "spent 1 + may spend {may} > the $4 cap: the give-back used the cap it read first"
    );
    assert_eq!(w.current(&name).await.1["limit"], json!(4.0));
}

/// The narrower race: the cap update lands while the give-back's own `PATCH` is in flight
/// (after the sweep read the secret, before its raise arrives). The raise is held this time;
/// the sweep must see the cap change the update announced (its `orkv:cap` tag goes first)
/// and fit the key again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cap_lowered_while_the_give_back_patch_is_in_flight_is_fitted_again() {
    let w = World::start().await;
    let d = deps(&w);
    let (name, mut req) = retirement_due(&w, &d).await;
    let calls = |c: Value, op: &str| c["calls"][op].as_u64().unwrap_or(0);
    let deletes = calls(w.control.calls().await, "delete_key");
    w.control
        .fault(json!({"op": "delete_key", "action": "delay", "ms": 1200}))
        .await;
    let input = SweepInput::parse(&json!({"execution_id": unique("race")})).expect("input");
    let sweep = Box::pin(orkv_tests::roles::ops::sweep(&d, &input, deadline()));
    req["limit"] = json!(4);
    let race = Box::pin(async {
        // Waits for events (the delete, then the raise, have arrived), bounded.
        let mut patches = None;
        for _ in 0..800 {
            let c = w.control.calls().await;
            match patches {
                None if calls(c.clone(), "delete_key") > deletes => {
                    // The retirement's next PATCH is the give-back: hold it.
                    w.control
                        .fault(json!({"op": "update_key", "action": "delay", "ms": 1200}))
                        .await;
                    patches = Some(calls(c, "update_key"));
                }
                Some(before) if calls(c, "update_key") > before => {
                    let reply =
                        Box::pin(orkv_tests::roles::ops::handle(&d, req.clone(), deadline()))
                            .await
                            .expect("cap lowered");
                    assert_eq!(reply.status, Status::Updated);
                    return;
                }
                _ => {}
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the sweep's give-back never arrived");
    });
    let (report, ()) = tokio::join!(sweep, race);
    let report = report.expect("sweep");
    assert_eq!(report.keys_retired, 1, "{report:?}");
    let may = may_spend(&w, &name).await;
    assert!(
        1.0 + may <= 4.0 + 1e-6,
        "spent 1 + may spend {may} > the $4 cap: the raise landed over the cap update"
    );
}
