//! On-demand actions against moto and the emulator, in process: rotate now (changed fixed
//! fields, leaks), unfinished rotations left by an earlier generation, and revoke.

use orkv_tests::rotating::*;
use orkv_tests::unique;
use orkv_tests::world::World;
use orkv_vending::domain::names::rotation_token;
use orkv_vending::input::rotation::Step;
use orkv_vending::ops::provision::Status;
use secrecy::ExposeSecret;
use serde_json::json;

#[tokio::test]
async fn a_rotation_left_pending_after_its_key_was_promoted_is_finished_by_the_next_request() {
    // finishSecret carried a cap update over (AWSCURRENT moved to a merged version) and died
    // before taking AWSPENDING off the token; then the cap changed again. The next rotation
    // (another generation's token) finishes the old one first instead of waiting for ever.
    let w = World::start().await;
    let d = deps(&w);
    let key_name = unique("stuck");
    let name = provision(&d, &key_name).await;
    let token = begin(&w, &d, &name).await;
    run_steps(&d, &name, &token, &UP_TO_TEST).await;
    let mut req = request(&key_name);
    req["limit"] = json!(75);
    orkv_tests::roles::ops::handle(&d, req.clone(), deadline())
        .await
        .expect("update");
    orkv_tests::roles::ops::run_step(&d, &step(&name, &token, Step::FinishSecret), deadline())
        .await
        .expect("finish");
    // The state of a finish that died right after the label move: AWSPENDING still on the token.
    d.store()
        .move_stage(&name, "AWSPENDING", None, Some(&token))
        .await
        .expect("label");
    req["limit"] = json!(80);
    assert_eq!(
        orkv_tests::roles::ops::handle(&d, req, deadline())
            .await
            .expect("update")
            .status,
        Status::Updated
    );
    let rotated = orkv_tests::roles::ops::handle_request(&d, json!({"action": "rotate", "secret_name": name, "reason": "leak", "idempotency_id": "after-stuck"}),
            deadline(),
        )
        .await
        .expect("the new rotation goes ahead");
    assert_eq!(rotated["status"], "rotated", "{rotated}");
    let (_, rec) = w.current(&name).await;
    assert_eq!(rec["generation"], 3);
    assert_eq!(rec["limit"], 80.0);
    assert!(w.works(rec["api_key"].as_str().expect("key")).await);
    assert!(
        w.stages(&name)
            .await
            .iter()
            .all(|(v, s)| v != &token || !s.contains(&"AWSPENDING".to_owned())),
        "the old token no longer holds AWSPENDING"
    );
    assert!(!w.pending_dangling(&name).await);
}

#[tokio::test]
async fn a_changed_lifetime_becomes_a_rotation_and_its_repeat_is_unchanged() {
    let w = World::start().await;
    let d = deps(&w);
    let key_name = unique("life");
    let name = provision(&d, &key_name).await;
    let mut req = request(&key_name);
    req["ttl_seconds"] = json!(14_400);
    let r = orkv_tests::roles::ops::handle(&d, req.clone(), deadline())
        .await
        .expect("rotated");
    assert_eq!(r.status, Status::Rotated);
    assert_eq!(r.generation, 2);
    let (_, rec) = w.current(&name).await;
    assert_eq!(rec["lifetime"], json!({"ttl_seconds": 14_400}));
    assert!(!w.tags(&name).await.iter().any(|(k, _)| k == "orkv:next"));
    assert_eq!(
        orkv_tests::roles::ops::handle(&d, req, deadline())
            .await
            .expect("repeat")
            .status,
        Status::Unchanged
    );
    assert_eq!(w.live_for(&name).await.len(), 2);
}

/// A changed workspace is a rotation into it; the tags the inventory and the sweep read
/// follow the key (issue 29: they kept the old workspace).
#[tokio::test]
async fn a_rehomed_key_takes_its_workspace_tags_along() {
    let w = World::start().await;
    let d = deps(&w);
    let key_name = unique("home");
    let name = provision(&d, &key_name).await;
    let mut req = request(&key_name);
    req["secret_name"] = json!(name);
    req["workspace"] = json!("search");
    req["limit"] = json!(15);
    let r = orkv_tests::roles::ops::handle(&d, req, deadline())
        .await
        .expect("re-homed");
    assert_eq!(r.status, Status::Rotated);
    let (_, rec) = w.current(&name).await;
    assert_eq!(rec["workspace_id"], json!(orkv_tests::SEARCH_WORKSPACE_ID));
    let tag_list = w.tags(&name).await;
    let tag = |k: &str| {
        tag_list
            .iter()
            .find(|(t, _)| t == k)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        tag("orkv:workspace").as_deref(),
        Some(orkv_tests::SEARCH_WORKSPACE_ID)
    );
    assert_eq!(tag("orkv:workspace-slug").as_deref(), Some("search"));
}

#[tokio::test]
async fn a_leak_rotation_disables_the_old_key_at_once_and_revoke_removes_everything() {
    let w = World::start().await;
    let d = deps(&w);
    let name = provision(&d, &unique("leak")).await;
    let (_, before) = w.current(&name).await;
    let old = before["api_key"].as_str().expect("key").to_owned();
    let reply = orkv_tests::roles::ops::handle_request(&d, json!({"action": "rotate", "secret_name": name, "reason": "leak", "idempotency_id": "leak-1"}), deadline())
        .await
        .expect("rotated");
    assert_eq!(reply["status"], "rotated");
    assert!(!reply.to_string().contains("sk-or-v1"));
    assert!(!w.works(&old).await, "the leaked key is disabled at once");
    let (_, after) = w.current(&name).await;
    assert!(w.works(after["api_key"].as_str().expect("key")).await);
    let r = sweep(&d, "leak-sweep").await;
    assert_eq!(r.keys_retired, 1, "{r:?}");
    // Revoke: every key goes, the secret is marked revoked; repeating is harmless.
    let revoke = json!({"action": "revoke", "secret_name": name, "idempotency_id": "rev-1"});
    let reply = orkv_tests::roles::ops::handle_request(&d, revoke.clone(), deadline())
        .await
        .expect("revoked");
    assert_eq!(reply["status"], "revoked");
    assert!(!w.works(after["api_key"].as_str().expect("key")).await);
    assert!(w.live_for(&name).await.is_empty());
    orkv_tests::roles::ops::handle_request(&d, revoke, deadline())
        .await
        .expect("repeat");
    let (_, rec) = w.current(&name).await;
    assert_eq!(rec["state"], "revoked");
    assert!(rec.get("api_key").is_none());
    let err = orkv_tests::roles::ops::handle_request(
        &d,
        json!({"action": "rotate", "secret_name": name}),
        deadline(),
    )
    .await
    .expect_err("revoked");
    assert_eq!(err.kind(), "SecretRevoked");
    // Bad action input names the field and creates nothing.
    for (body, field) in [
        (json!({"action": "rotate"}), "secret_name"),
        (
            json!({"action": "rotate", "secret_name": name, "reason": "boredom"}),
            "reason",
        ),
        (
            json!({"action": "revoke", "secret_name": "other/x"}),
            "secret_name",
        ),
        (json!({"action": "explode", "secret_name": name}), "action"),
        (
            json!({"action": "revoke", "secret_name": name, "delete_secret": "yes"}),
            "delete_secret",
        ),
    ] {
        let err = orkv_tests::roles::ops::handle_request(&d, body, deadline())
            .await
            .expect_err("refused");
        assert!(err.to_string().contains(&format!("`{field}`")), "{err}");
    }
}

/// A revoked secret must not rotate again: AWS's `CancelRotateSecret` "turns off automatic
/// rotation" (API reference, *CancelRotateSecret*), and without it Secrets Manager's own
/// schedule starts a rotation on the revoked secret that `createSecret` refuses, leaving
/// `AWSPENDING` on an empty version and a failed rotation every period. After a revoke
/// (mark), `DescribeSecret` shows rotation off and no `AWSPENDING`; a repeat changes nothing.
#[tokio::test]
async fn a_revoked_secret_has_its_rotation_turned_off_and_no_pending_version() {
    let w = World::start().await;
    let d = deps(&w);
    let name = provision(&d, &unique("cancel")).await;
    orkv_tests::roles::ops::handle_request(
        &d,
        json!({"action": "rotate", "secret_name": name, "idempotency_id": "rot-1"}),
        deadline(),
    )
    .await
    .expect("rotated");
    assert_eq!(
        w.describe(&name).await.rotation_enabled(),
        Some(true),
        "a rotated secret has rotation configured"
    );
    let revoke = json!({"action": "revoke", "secret_name": name, "idempotency_id": "rev-c"});
    let reply = orkv_tests::roles::ops::handle_request(&d, revoke.clone(), deadline())
        .await
        .expect("revoked");
    assert_eq!(reply["status"], "revoked");
    let after = w.describe(&name).await;
    assert_ne!(after.rotation_enabled(), Some(true), "rotation still on");
    assert!(
        !w.stages(&name)
            .await
            .iter()
            .any(|(_, s)| s.iter().any(|l| l == "AWSPENDING")),
        "{:?}",
        w.stages(&name).await
    );
    orkv_tests::roles::ops::handle_request(&d, revoke, deadline())
        .await
        .expect("a repeat is harmless");
    assert_ne!(w.describe(&name).await.rotation_enabled(), Some(true));
}

/// The function ARN the Secrets Manager starter names (moto has no such function: its
/// `RotateSecret` labels the version and answers not found, as a rotation left to run would).
const ROTATE_ARN: &str = "arn:aws:lambda:us-east-1:000000000000:function:orkv-rotate";

/// AWS refuses `RotateSecret` while another token holds `AWSPENDING` on a version that is not
/// current, with "A previous rotation isn't complete. That rotation will be reattempted." (API
/// reference: RotateSecret; user guide: "Troubleshoot rotation"). moto's text differs and it
/// lets this case through; the strict layer answers as AWS does. Rotate now runs that
/// rotation's steps itself (each is idempotent per token, so racing Secrets Manager's own run
/// is harmless, and a stalled rotation never blocks the next request); while they cannot
/// finish, it answers `RotationInProgress`, decided from the labels, before it writes any tag.
#[tokio::test]
async fn rotate_now_behind_an_unfinished_rotation_finishes_it_or_answers_in_progress_writing_no_tag()
 {
    let (w, proxy) = World::behind_proxy().await;
    proxy.set_strict(true);
    let d = deps(&w);
    let name = provision(&d, &unique("inprog")).await;
    label_pending_for_another_rotation(&d, &name, ROTATE_ARN).await;
    let before = w.tags(&name).await;
    w.control
        .fault(json!({"op": "create_key", "action": "status", "status": 400, "times": 50}))
        .await;
    let rotate = || {
        orkv_tests::roles::ops::rotate_now(
            &d,
            &name,
            orkv_vending::domain::tags::Reason::Manual,
            "rotate-1",
            None,
            orkv_vending::input::invocation::Trigger::Direct,
        )
    };
    let err = rotate().await.expect_err("the rotation cannot finish yet");
    assert_eq!(err.kind(), "RotationInProgress", "{err}");
    assert_eq!(w.tags(&name).await, before, "no intent tag was written");
    w.control.clear_faults().await;
    let reply = rotate()
        .await
        .expect("the unfinished rotation is finished first");
    assert_eq!(
        reply.status,
        orkv_vending::ops::actions::ActionStatus::Rotated
    );
    assert_eq!(reply.generation, Some(3), "{reply:?}");
    assert_clean_end(&w, &d, &name).await;
}

/// A secret rotates only once rotation is configured with a function and rules (user guide:
/// "Rotation by Lambda function" and "Rotation schedules"; API reference: RotateSecret,
/// `RotationRules`). Every `RotateSecret` the product sends carries rules, the policy's longest
/// lifetime in days when `ORKV_ROTATION_SAFETY_DAYS` is unset.
#[tokio::test]
async fn every_rotate_secret_the_product_sends_configures_rotation_rules() {
    let w = World::start().await;
    let d = w.deps(&[("ORKV_ROTATION_LAMBDA_ARN", ROTATE_ARN)]);
    let name = provision(&d, &unique("rules")).await;
    // moto has no function of that ARN: it stores the settings, then answers not found.
    let _ = orkv_tests::roles::ops::start_rotation(&d, &name, &rotation_token(&name, 1)).await;
    let desc =
        w.sm.describe_secret()
            .secret_id(&name)
            .send()
            .await
            .expect("describe");
    let days = desc
        .rotation_rules()
        .and_then(aws_sdk_secretsmanager::types::RotationRulesType::automatically_after_days);
    assert_eq!(days, Some(90), "{desc:?}");
    assert_eq!(desc.rotation_lambda_arn(), Some(ROTATE_ARN));
}

/// The longest secret name the product accepts (237 characters) vends and rotates: its
/// successor's OpenRouter key name is exactly OpenRouter's 256.
#[tokio::test]
async fn the_longest_accepted_secret_name_vends_and_rotates() {
    let w = World::start().await;
    let d = deps(&w);
    let name = format!("openrouter/{}", "l".repeat(237 - "openrouter/".len()));
    let mut req = request(&unique("longest"));
    req["secret_name"] = json!(name);
    let created = orkv_tests::roles::ops::handle(&d, req, deadline())
        .await
        .expect("created");
    assert_eq!(created.status, Status::Created);
    let rotated = orkv_tests::roles::ops::rotate_now(
        &d,
        &name,
        orkv_vending::domain::tags::Reason::Manual,
        "longest-1",
        None,
        orkv_vending::input::invocation::Trigger::Direct,
    )
    .await
    .expect("rotated");
    assert_eq!(rotated.generation, Some(2));
    assert_clean_end(&w, &d, &name).await;
}

/// Under the tag-scoped roles a missing secret answers `AccessDenied` (strict layer; see
/// `docs/aws-fidelity.md`): rotate now and revoke still answer `SecretNotFound`, revealing
/// nothing about secrets that are not the product's.
#[tokio::test]
async fn actions_on_a_missing_secret_answer_not_found_under_the_tag_scoped_role() {
    let (w, proxy) = World::behind_proxy().await;
    proxy.set_strict(true);
    let d = deps(&w);
    let missing = format!("openrouter/checkout/{}", unique("missing"));
    let err = orkv_tests::roles::ops::rotate_now(
        &d,
        &missing,
        orkv_vending::domain::tags::Reason::Leak,
        "leak-1",
        None,
        orkv_vending::input::invocation::Trigger::Direct,
    )
    .await
    .expect_err("missing");
    assert_eq!(err.kind(), "SecretNotFound", "{err}");
    let err = orkv_tests::roles::ops::revoke(
        &d,
        &missing,
        false,
        "revoke-1",
        orkv_vending::input::invocation::Trigger::Direct,
    )
    .await
    .expect_err("missing");
    assert_eq!(err.kind(), "SecretNotFound", "{err}");
}

/// A revoke that lands while a provision's `POST /keys` is in flight (before the key exists,
/// and after it exists with the reply still on its way): revoke and mint serialize on the
/// secret by compare-and-set on `AWSCURRENT`, so the revoke wins, the mint deletes its own key
/// and answers `SecretRevoked`, and no key is left live.
#[tokio::test]
async fn a_revoke_during_a_provisions_create_wins_and_leaves_no_live_key() {
    let w = World::start().await;
    let minting = deps(&w);
    let revoking = deps(&w);
    for action in ["delay", "delay_after_commit"] {
        let key_name = unique("race");
        let name = format!("openrouter/checkout/{key_name}");
        w.control
            .fault(json!({"op": "create_key", "action": action, "ms": 1500, "times": 1}))
            .await;
        let revoke = json!({"action": "revoke", "secret_name": name, "idempotency_id": "race-rev"});
        let revoke_once_pending = async {
            // Waits for the provision's pending record (a condition, not a fixed sleep).
            loop {
                if let Ok(Some(v)) = revoking.store().get(&name, "AWSCURRENT").await
                    && v.value.expose_secret().contains("\"pending\"")
                {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            orkv_tests::roles::ops::handle_request(&revoking, revoke.clone(), deadline()).await
        };
        let (minted, revoked) = tokio::join!(
            orkv_tests::roles::ops::handle(&minting, request(&key_name), deadline()),
            revoke_once_pending
        );
        let revoked = revoked.expect("revoke answers");
        assert_eq!(revoked["status"], "revoked", "{action}");
        let err = minted.expect_err("the mint loses to the revoke");
        assert_eq!(err.kind(), "SecretRevoked", "{action}: {err}");
        assert!(
            w.live_for(&name).await.is_empty(),
            "{action}: no key live after the revoke"
        );
        let (_, rec) = w.current(&name).await;
        assert_eq!(rec["state"], "revoked", "{action}");
        assert!(rec.get("api_key").is_none());
        // A repeat, and a new provision of the name, change nothing.
        orkv_tests::roles::ops::handle_request(&revoking, revoke, deadline())
            .await
            .expect("repeat");
        let again = orkv_tests::roles::ops::handle(&minting, request(&key_name), deadline())
            .await
            .expect_err("revoked");
        assert_eq!(again.kind(), "SecretRevoked");
        assert!(w.live_for(&name).await.is_empty(), "{action}");
    }
}

/// A leak rotation disables every superseded key still in grace (any of them may be the
/// leaked one), not only the one it replaces; the repeat of a leak request that finished
/// disables any superseded key found enabled before answering `unchanged`.
#[tokio::test]
async fn a_leak_rotation_disables_every_key_in_grace_and_its_repeat_leaves_none_live() {
    let w = World::start().await;
    let d = deps(&w);
    let name = provision(&d, &unique("leak-all")).await;
    let (_, first) = w.current(&name).await;
    orkv_tests::roles::ops::handle_request(
        &d,
        json!({"action": "rotate", "secret_name": name, "idempotency_id": "routine"}),
        deadline(),
    )
    .await
    .expect("rotated");
    let (_, second) = w.current(&name).await;
    let first_key = first["api_key"].as_str().expect("key");
    assert!(
        w.works(first_key).await,
        "in grace after a routine rotation"
    );
    let leak = json!({"action": "rotate", "secret_name": name, "reason": "leak", "idempotency_id": "leak-all"});
    let reply = orkv_tests::roles::ops::handle_request(&d, leak.clone(), deadline())
        .await
        .expect("leak");
    assert_eq!(reply["status"], "rotated");
    let (_, third) = w.current(&name).await;
    assert!(
        !w.works(first_key).await,
        "the older key in grace is disabled too"
    );
    assert!(!w.works(second["api_key"].as_str().expect("key")).await);
    assert!(w.works(third["api_key"].as_str().expect("key")).await);
    assert_eq!(w.live_for(&name).await.len(), 1, "only the new key lives");
    // A finishSecret that died before disabling: a superseded key is enabled again.
    let hash = first["key_hash"].as_str().expect("hash");
    d.openrouter()
        .await
        .expect("client")
        .update_key(
            hash,
            &orkv_openrouter::KeyPatch {
                disabled: Some(false),
                ..orkv_openrouter::KeyPatch::default()
            },
        )
        .await
        .expect("re-enabled");
    assert!(w.works(first_key).await);
    let repeat = orkv_tests::roles::ops::handle_request(&d, leak, deadline())
        .await
        .expect("repeat");
    assert_eq!(repeat["status"], "unchanged");
    assert!(!w.works(first_key).await, "the repeat disabled it");
    assert_eq!(w.live_for(&name).await.len(), 1);
}

/// A leak rotation whose `finishSecret` died right after moving `AWSCURRENT` (the function
/// was killed): `AWSPENDING` stays on the current version, the old key is still enabled and
/// the leak's tags are still on the secret. AWS's `RotateSecret` proceeds in that state (it
/// refuses only for `AWSPENDING` on another version: API reference, *RotateSecret*); moto
/// refuses, and nothing ever ran that finish's end, so every later rotate request answered
/// `RotationInProgress` (the stall of the harsher soak). The next request finishes the
/// interrupted end first (the leaked key is disabled), then rotates.
#[tokio::test]
async fn a_finish_killed_after_promoting_is_completed_by_the_next_request() {
    use orkv_vending::domain::tags;
    let w = World::start().await;
    let d = deps(&w);
    let name = provision(&d, &unique("killed-finish")).await;
    let (old_version, old) = w.current(&name).await;
    let old_key = old["api_key"].as_str().expect("key").to_owned();
    let token = begin(&w, &d, &name).await;
    run_steps(&d, &name, &token, &UP_TO_TEST).await;
    // What finishSecret does before it is killed: the leak's tags (written by rotate now),
    // the old key's retirement tag, then the move of AWSCURRENT.
    let now = d.clock().now();
    d.store()
        .tag(
            &name,
            &[
                (tags::ROTATION_REASON.to_owned(), "leak".to_owned()),
                (
                    tags::retire_tag(old["key_hash"].as_str().expect("hash")),
                    tags::time_value(now),
                ),
            ],
        )
        .await
        .expect("tags");
    d.store()
        .move_stage(&name, "AWSCURRENT", Some(&old_version), Some(&token))
        .await
        .expect("moved");
    assert!(w.works(&old_key).await, "the leaked key is still enabled");
    let reply = orkv_tests::roles::ops::handle_request(
        &d,
        json!({"action": "rotate", "secret_name": name, "idempotency_id": "after-kill"}),
        deadline(),
    )
    .await
    .expect("the next request is not blocked");
    assert_eq!(reply["status"], "rotated", "{reply}");
    assert_eq!(reply["generation"], 3, "{reply}");
    assert!(
        !w.works(&old_key).await,
        "the interrupted leak's end disabled the key"
    );
    assert_clean_end(&w, &d, &name).await;
}

/// A leak never waits behind an unfinished rotation: when that rotation's steps cannot run now,
/// the leak abandons it (its successor retired, `AWSPENDING` removed) and rotates at once,
/// disabling the old key.
#[tokio::test]
async fn a_leak_abandons_an_unfinished_rotation_it_cannot_finish() {
    let (w, proxy) = World::behind_proxy().await;
    proxy.set_strict(true);
    let d = deps(&w);
    let name = provision(&d, &unique("leak-stall")).await;
    let (_, old) = w.current(&name).await;
    label_pending_for_another_rotation(&d, &name, ROTATE_ARN).await;
    // The unfinished rotation's createSecret is refused once; the leak's own succeeds.
    w.control
        .fault(json!({"op": "create_key", "action": "status", "status": 400, "times": 1}))
        .await;
    let reply = orkv_tests::roles::ops::handle_request(&d, json!({"action": "rotate", "secret_name": name, "reason": "leak", "idempotency_id": "leak-stall"}),
            deadline(),
        )
        .await
        .expect("the leak does not wait");
    assert_eq!(reply["status"], "rotated", "{reply}");
    assert!(!w.works(old["api_key"].as_str().expect("key")).await);
    assert_clean_end(&w, &d, &name).await;
}

/// A revoke racing the take-over of a dead invocation's pending record (its lease over, its
/// key minted and never stored): the take-over's claim and mint, and the revoke, serialize on
/// the secret whichever goes first. A revoke answered `revoked` leaves no live key behind, and
/// the secret stays revoked.
#[tokio::test]
async fn a_revoke_racing_the_take_over_of_a_dead_mint_leaves_no_live_key() {
    let w = World::start().await;
    let lease = [("ORKV_PENDING_LEASE_SECONDS", "2")];
    let dying = deps_with(&w, &lease);
    let taking_over = deps_with(&w, &lease);
    let revoking = deps_with(&w, &lease);
    let key_name = unique("takeover");
    let name = format!("openrouter/checkout/{key_name}");
    // The first invocation dies with OpenRouter's reply in flight: a pending record and a key
    // no secret holds.
    w.control
        .fault(json!({"op": "create_key", "action": "delay_after_commit", "ms": 60000, "times": 1}))
        .await;
    let died = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        orkv_tests::roles::ops::handle(&dying, request(&key_name), deadline()),
    )
    .await;
    assert!(died.is_err(), "the first invocation was still waiting");
    drop(dying);
    assert_eq!(w.current(&name).await.1["state"], "pending");
    for d in [&taking_over, &revoking] {
        d.clock().advance(5);
    }
    let revoke = json!({"action": "revoke", "secret_name": name, "idempotency_id": "takeover-rev"});
    let (minted, revoked) = tokio::join!(
        orkv_tests::roles::ops::handle(&taking_over, request(&key_name), deadline()),
        orkv_tests::roles::ops::handle_request(&revoking, revoke, deadline())
    );
    assert_eq!(revoked.expect("revoke answers")["status"], "revoked");
    if let Err(e) = &minted {
        assert_eq!(e.kind(), "SecretRevoked", "{e}");
    }
    assert!(
        w.live_for(&name).await.is_empty(),
        "no key live after the revoke"
    );
    assert_eq!(w.current(&name).await.1["state"], "revoked");
    let again = orkv_tests::roles::ops::handle(&taking_over, request(&key_name), deadline())
        .await
        .expect_err("revoked");
    assert_eq!(again.kind(), "SecretRevoked");
}

/// A rotation Secrets Manager abandoned (a version was written while it ran: it removes
/// `AWSPENDING` and logs `RotationAbandoned`) leaves the generation's token naming a version
/// with no label, for good. The next start derives a fresh attempt's token instead of driving
/// the abandoned one for ever (the stall the long soak met on one secret).
#[tokio::test]
async fn a_rotation_abandoned_by_secrets_manager_is_replaced_by_a_fresh_attempt() {
    let w = World::start().await;
    let d = deps(&w);
    let name = provision(&d, &unique("abandoned")).await;
    let token = begin(&w, &d, &name).await;
    run_steps(&d, &name, &token, &[Step::CreateSecret]).await;
    d.store()
        .move_stage(&name, "AWSPENDING", Some(&token), None)
        .await
        .expect("abandoned");
    let reply = orkv_tests::roles::ops::handle_request(
        &d,
        json!({"action": "rotate", "secret_name": name, "idempotency_id": "after-abandon"}),
        deadline(),
    )
    .await
    .expect("a fresh attempt rotates");
    assert_eq!(reply["status"], "rotated", "{reply}");
    assert_eq!(reply["generation"], 2, "{reply}");
    let (current, _) = w.current(&name).await;
    assert_eq!(
        current,
        orkv_vending::domain::names::rotation_attempt_token(&name, 1, 1)
    );
    assert_clean_end(&w, &d, &name).await;
}

#[tokio::test]
async fn an_abandoned_attempt_describe_leaves_out_is_found_among_deprecated_versions() {
    // AWS leaves a version with no label out of DescribeSecret (and out of
    // ListSecretVersionIds without IncludeDeprecated); the layer does too. The abandoned
    // attempt is then visible only with IncludeDeprecated, and a start under its token would
    // drive a version Secrets Manager gave up on.
    // World::start goes through the AWS behaviour layer.
    let w = World::start().await;
    let d = deps(&w);
    let name = provision(&d, &unique("deprecated")).await;
    let token = begin(&w, &d, &name).await;
    run_steps(&d, &name, &token, &[Step::CreateSecret]).await;
    d.store()
        .move_stage(&name, "AWSPENDING", Some(&token), None)
        .await
        .expect("abandoned");
    assert!(
        w.stages(&name).await.iter().all(|(v, _)| v != &token),
        "DescribeSecret does not show the deprecated version"
    );
    let listed = d.store().version_stages(&name, false).await.expect("list");
    assert!(!listed.contains_key(&token), "nor does a plain listing");
    let all = d.store().version_stages(&name, true).await.expect("list");
    assert_eq!(
        all.get(&token),
        Some(&Vec::new()),
        "IncludeDeprecated shows it"
    );
    let reply = orkv_tests::roles::ops::handle_request(
        &d,
        json!({"action": "rotate", "secret_name": name, "idempotency_id": "after-deprecated"}),
        deadline(),
    )
    .await
    .expect("a fresh attempt rotates");
    assert_eq!(reply["status"], "rotated", "{reply}");
    let (current, rec) = w.current(&name).await;
    assert_eq!(
        current,
        orkv_vending::domain::names::rotation_attempt_token(&name, 1, 1)
    );
    assert_eq!(rec["generation"], 2);
    assert_clean_end(&w, &d, &name).await;
}

#[tokio::test]
async fn a_secret_with_every_user_tag_keeps_rotating_within_the_tag_limit() {
    // MAX_USER_TAGS user tags (the most a request may add), then rotation after rotation inside the grace
    // period: the product's own tags, one retirement tag per key in grace and the request tags
    // stay within AWS's 50 (the layer refuses a 51st, as AWS does).
    // World::start goes through the AWS behaviour layer.
    let w = World::start().await;
    let d = deps(&w);
    let mut req = request(&unique("tagged"));
    let user: serde_json::Map<String, serde_json::Value> = (0
        ..orkv_vending::input::provision::MAX_USER_TAGS)
        .map(|i| (format!("team-tag-{i:02}"), json!("x".repeat(200))))
        .collect();
    req["tags"] = serde_json::Value::Object(user);
    let name = orkv_tests::roles::ops::handle(&d, req, deadline())
        .await
        .expect("vended")
        .secret_name;
    let mut most = 0;
    for i in 0..(orkv_vending::domain::tags::MAX_RETIRING + 3) {
        let reply = orkv_tests::roles::ops::handle_request(
            &d,
            json!({"action": "rotate", "secret_name": name, "idempotency_id": format!("tags-{i}")}),
            deadline(),
        )
        .await
        .expect("rotated within the limit");
        assert_eq!(reply["status"], "rotated", "{reply}");
        most = most.max(w.tags(&name).await.len());
    }
    assert!(
        most <= orkv_tests::strict::MAX_TAGS,
        "at most 50 tags: {most}"
    );
    let (_, rec) = w.current(&name).await;
    assert_eq!(rec["generation"], 14);
    assert!(w.works(rec["api_key"].as_str().expect("key")).await);
}
