//! The scheduled sweep against moto and the emulator, in process: due rotations, retirement
//! after grace, orphans, low spend, dry runs, concurrency and scale.

use std::sync::Arc;

use orkv_tests::rotating::*;
use orkv_tests::unique;
use orkv_tests::world::{World, seed_secrets};
use orkv_vending::input::sweep::SweepInput;
use orkv_vending::ops;
use serde_json::json;

#[tokio::test]
async fn a_due_key_is_rotated_the_old_one_works_through_grace_then_is_retired() {
    let w = World::start().await;
    let d = deps(&w);
    let name = provision(&d, &unique("rot")).await;
    let (v1, before) = w.current(&name).await;
    let old_key = before["api_key"].as_str().expect("key").to_owned();
    let old_hash = before["key_hash"].as_str().expect("hash").to_owned();

    // Not due yet: the sweep does nothing to it.
    let r = sweep(&d, "run-early").await;
    assert_eq!(r.rotations_due, 0, "{r:?}");

    advance(&w, &d, 3601).await;
    w.sm_calls.reset();
    w.control.reset_calls().await;
    let r = sweep(&d, "run-1").await;
    assert_eq!((r.rotations_due, r.rotations_completed), (1, 1), "{r:?}");
    let (v2, after) = w.current(&name).await;
    assert_ne!(v1, v2);
    assert_eq!(after["generation"], 2);
    assert_ne!(after["key_hash"], before["key_hash"]);
    assert!(!w.pending_dangling(&name).await);
    let t = w.tags(&name).await;
    assert!(
        t.iter()
            .any(|(k, _)| k == &format!("orkv:retire:{old_hash}")),
        "{t:?}"
    );
    assert!(t.iter().any(|(k, v)| k == "orkv:generation" && v == "2"));
    // Both keys work during the grace period.
    assert!(w.works(&old_key).await);
    assert!(w.works(after["api_key"].as_str().expect("key")).await);
    assert_eq!(w.live_for(&name).await.len(), 2);

    // Within grace, a sweep keeps the old key.
    advance(&w, &d, GRACE - 60).await;
    let r = sweep(&d, "run-2").await;
    assert_eq!(r.keys_retired, 0, "{r:?}");
    assert!(w.works(&old_key).await);

    // After grace, the next sweep disables, deletes and confirms it.
    advance(&w, &d, 120).await;
    let r = sweep(&d, "run-3").await;
    assert_eq!(r.keys_retired, 1, "{r:?}");
    assert!(!w.works(&old_key).await);
    assert!(w.works(after["api_key"].as_str().expect("key")).await);
    assert_eq!(w.live_for(&name).await.len(), 1);
    assert!(
        !w.tags(&name)
            .await
            .iter()
            .any(|(k, _)| k.starts_with("orkv:retire:"))
    );
    // A repeated delivery of the same run changes nothing more.
    let r = sweep(&d, "run-3").await;
    assert_eq!((r.keys_retired, r.rotations_due), (0, 0), "{r:?}");
}

#[tokio::test]
async fn the_sweep_deletes_a_stray_key_carrying_a_referenced_name_and_keeps_the_stored_one() {
    // What an attempt whose key was never stored leaves if no step cleaned it up: a second
    // live key under the name the secret references.
    let w = World::start().await;
    let d = deps(&w);
    let name = provision(&d, &unique("stray")).await;
    let (_, rec) = w.current(&name).await;
    let (_, stray) = w
        .control
        .add_key(json!({"name": rec["openrouter_key_name"], "workspace_id": rec["workspace_id"], "limit": 50}))
        .await;
    let young = sweep(&d, &unique("young")).await;
    assert_eq!(
        young.orphans_found, 0,
        "younger than the minimum age: {young:?}"
    );
    advance(&w, &d, 120).await;
    let r = sweep(&d, &unique("stray")).await;
    assert_eq!((r.orphans_found, r.orphans_deleted), (1, 1), "{r:?}");
    let live = w.live_for(&name).await;
    assert_eq!(live.len(), 1, "{live:?}");
    assert_eq!(live[0]["hash"], rec["key_hash"]);
    assert_ne!(live[0]["hash"].as_str(), Some(stray.as_str()));
    assert!(w.works(rec["api_key"].as_str().expect("key")).await);
}

#[tokio::test]
async fn concurrent_sweeps_and_repeated_deliveries_rotate_each_secret_once() {
    let w = World::start().await;
    let d = Arc::new(deps(&w));
    let mut names = Vec::new();
    for i in 0..5 {
        names.push(provision(&d, &unique(&format!("conc{i}"))).await);
    }
    advance(&w, &d, 3601).await;
    let (a, b) = tokio::join!(sweep(&d, "sched-1"), sweep(&d, "sched-2"));
    let c = sweep(&d, "sched-1").await;
    assert_eq!(a.rotations_due + b.rotations_due, 10);
    assert_eq!(c.rotations_due, 0, "{c:?}");
    for n in &names {
        let (_, rec) = w.current(n).await;
        assert_eq!(rec["generation"], 2, "{n}");
        assert_eq!(
            w.live_for(n).await.len(),
            2,
            "old in grace + one successor for {n}"
        );
        assert!(!w.pending_dangling(n).await);
    }
    advance(&w, &d, GRACE + 1).await;
    let (a, b) = tokio::join!(sweep(&d, "sched-3"), sweep(&d, "sched-4"));
    assert_eq!(a.keys_retired + b.keys_retired, 5, "{a:?} {b:?}");
    for n in &names {
        assert_eq!(w.live_for(n).await.len(), 1);
    }
}

#[tokio::test]
async fn the_sweep_finds_orphans_warns_on_low_spend_and_a_dry_run_changes_nothing() {
    let w = World::start().await;
    let d = deps(&w);
    let name = provision(&d, &unique("orph")).await;
    let checkout = "5b1e0c52-8f0a-4c8e-9d61-2f3a7c1e9a01";
    let (_, orphan) = w.control.add_key(json!({"name": format!("orkv:{name}:deadbeef0000"), "workspace_id": checkout, "limit": 5})).await;
    let (_, foreign) = w
        .control
        .add_key(json!({"name": "hand-made", "workspace_id": checkout}))
        .await;
    // Too young to call an orphan.
    let r = sweep(&d, "young").await;
    assert_eq!(r.orphans_found, 0, "{r:?}");
    advance(&w, &d, 120).await;
    let dry = orkv_tests::roles::ops::sweep(
        &d,
        &SweepInput::parse(&json!({"dry_run": true})).expect("input"),
        deadline(),
    )
    .await
    .expect("dry");
    assert_eq!(dry.orphans_found, 1);
    assert_eq!(dry.orphans_deleted, 0);
    let r = sweep(&d, "old").await;
    assert_eq!((r.orphans_found, r.orphans_deleted), (1, 1), "{r:?}");
    let state = w.control.state().await;
    let hashes: Vec<&str> = state["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(|k| k["hash"].as_str())
        .collect();
    assert!(!hashes.contains(&orphan.as_str()));
    assert!(
        hashes.contains(&foreign.as_str()),
        "keys without the product's naming are never touched"
    );
    // ... but listed as unmanaged, so operators can adopt or remove them.
    assert_eq!(r.unmanaged_keys, 1, "{r:?}");
    assert!(r.actions.iter().any(|a| {
        a.action == ops::sweep::report::SweepAction::UnmanagedKey && a.detail == foreign
    }));
    assert_eq!(r.emf(d.clock().now())["UnmanagedKeys"], 1);
    let (_, rec) = w.current(&name).await;
    assert!(hashes.contains(&rec["key_hash"].as_str().expect("hash")));
    // Dry run over a due rotation: reported, nothing written.
    advance(&w, &d, 3600).await;
    let versions = w.stages(&name).await;
    let dry = orkv_tests::roles::ops::sweep(
        &d,
        &SweepInput::parse(&json!({"dry_run": true})).expect("input"),
        deadline(),
    )
    .await
    .expect("dry");
    assert_eq!(dry.rotations_due, 1);
    assert!(
        dry.actions
            .iter()
            .any(|a| a.action == ops::sweep::report::SweepAction::WouldRotate)
    );
    assert_eq!(w.stages(&name).await, versions);
    // Low remaining spend: the current key has used 48 of its 50 USD.
    reqwest::Client::new()
        .post(format!("{}/_emulator/usage", w.emu.url()))
        .json(&json!({"hash": rec["key_hash"], "usage": 48.0}))
        .send()
        .await
        .expect("usage");
    let low = sweep(&d, "low").await;
    assert_eq!(low.low_spend_keys, 1, "{low:?}");
    assert_eq!(low.emf(d.clock().now())["LowSpendKeys"], 1);
}

#[tokio::test]
async fn a_sweep_over_10000_secrets_lists_each_page_once_and_reads_only_due_ones() {
    let w = World::start().await;
    // A budget that lets one run start all 100 rotations.
    let d = Arc::new(deps_with(&w, &[("ORKV_SWEEP_MAX_ROTATIONS", "100")]));
    // 100 real managed secrets that will be due, 9,900 managed secrets that are not.
    let prefix = unique("scale");
    let mut due = Vec::new();
    for i in 0..100 {
        due.push(provision(&d, &format!("{prefix}-due{i}")).await);
    }
    let far = orkv_openrouter::format_expires_at(d.clock().now() + time::Duration::days(30));
    let idle = (0..9900)
        .map(|i| format!("openrouter/checkout/{prefix}-idle{i}"))
        .collect();
    seed_secrets(
        &w.sm,
        idle,
        "{}",
        &[
            ("orkv:managed-by", "openrouter-key-vending"),
            ("orkv:rotate-at", &far),
            ("orkv:expires-at", &far),
            ("orkv:generation", "1"),
            ("orkv:lifetime", "ttl:2592000"),
        ],
    )
    .await;
    advance(&w, &d, 3601).await;
    w.sm_calls.reset();
    // The time a scheduled sweep has (the module's 900 s timeout is the bound), not the
    // 60 s of a request: 100 full rotations driven locally, on a machine running other
    // tests at once, can take most of a minute, and a run that stops short leaves the rest
    // due for the next one, which is not what this test is about.
    let r = orkv_tests::roles::ops::sweep(
        &d,
        &SweepInput::parse(&json!({"execution_id": "scale"})).expect("input"),
        std::time::Instant::now() + std::time::Duration::from_secs(600),
    )
    .await
    .expect("sweep");
    let calls = w.sm_calls.get();
    assert!(r.complete, "the run finished within its time: {r:?}");
    assert!(r.secrets_scanned >= 10_000, "{}", r.secrets_scanned);
    assert_eq!(
        r.list_calls,
        u32::try_from(r.secrets_scanned.div_ceil(100)).expect("fits")
    );
    assert_eq!(
        (r.rotations_due, r.rotations_completed),
        (100, 100),
        "started {}, in progress {}, failed {}, deferred {}: {:?}",
        r.rotations_started,
        r.rotations_in_progress,
        r.rotation_failures,
        r.rotations_deferred,
        r.actions.iter().find(|a| a.detail != "completed")
    );
    // The due ones: the sweep's DescribeSecret before each start (ListSecrets may lag) and its
    // ListSecretVersionIds (an attempt Secrets Manager abandoned is a deprecated version
    // DescribeSecret leaves out), the rotation function's own calls (4 + 1 + 2 + 9 for the
    // four steps: finishSecret looks at the tags again once AWSPENDING is gone, so a cap
    // change deferred meanwhile is carried, and reads AWSCURRENT back before answering done)
    // plus the local driver's part of Secrets Manager (label and, once per secret on moto,
    // enable). In AWS the sweep itself makes three calls per due secret: DescribeSecret,
    // ListSecretVersionIds and RotateSecret.
    let per_due = (calls - u64::from(r.list_calls)) as f64 / 100.0;
    println!(
        "sweep over {} secrets: {} list calls, {calls} Secrets Manager calls, {per_due} per due secret",
        r.secrets_scanned, r.list_calls
    );
    assert!(calls <= u64::from(r.list_calls) + 100 * 25, "{calls}");
}

/// A function ARN moto does not have (see `actions.rs`).
const ROTATE_ARN: &str = "arn:aws:lambda:us-east-1:000000000000:function:orkv-rotate";

/// As in `actions.rs`: under AWS's wording of the refusal (strict layer), a due secret whose
/// previous rotation is unfinished counts as in progress, not as a failure, and the run stays
/// complete (API reference: RotateSecret; user guide: "Troubleshoot rotation").
#[tokio::test]
async fn a_due_secret_behind_an_unfinished_rotation_is_in_progress_not_a_failure() {
    let (w, proxy) = World::behind_proxy().await;
    proxy.set_strict(true);
    let d = w.deps(&[
        ("ORKV_ROTATION_LAMBDA_ARN", ROTATE_ARN),
        ("ORKV_ORPHAN_MIN_AGE_SECONDS", "60"),
    ]);
    let name = provision(&d, &unique("inprogsweep")).await;
    label_pending_for_another_rotation(&d, &name, ROTATE_ARN).await;
    advance(&w, &d, 3601).await;
    let r = sweep(&d, &unique("inprog")).await;
    assert_eq!(r.rotations_due, 1, "{r:?}");
    assert_eq!(
        (r.rotations_in_progress, r.rotation_failures),
        (1, 0),
        "{r:?}"
    );
    assert!(r.complete, "{r:?}");
}

/// Under the functions' tag-scoped roles, AWS answers `AccessDenied` for a secret that is
/// missing or not the product's (IAM user guide, "Policy evaluation logic"; Secrets Manager
/// user guide, "Control access to secrets using tags"); the strict layer does the same. A
/// product-named key whose secret is gone is then an orphan, and its check never stops the
/// sweep's key scan.
#[tokio::test]
async fn a_stray_key_whose_secret_is_gone_is_an_orphan_under_the_tag_scoped_role() {
    let (w, proxy) = World::behind_proxy().await;
    proxy.set_strict(true);
    let d = deps(&w);
    let kept = provision(&d, &unique("kept")).await;
    let client = d.openrouter().await.expect("client");
    let workspace = client
        .list_workspaces()
        .await
        .expect("workspaces")
        .into_iter()
        .find(|ws| ws.slug == "checkout")
        .expect("checkout");
    let gone = format!("openrouter/checkout/{}", unique("gone"));
    let stray = client
        .create_key_once(&orkv_openrouter::CreateKeyRequest {
            name: format!("orkv:{gone}:0123456789ab"),
            limit: Some(1.0),
            limit_reset: None,
            include_byok_in_limit: Some(false),
            expires_at: None,
            workspace_id: Some(workspace.id),
        })
        .await
        .expect("stray key");
    advance(&w, &d, 120).await;
    let r = sweep(&d, &unique("stray")).await;
    assert!(r.complete, "{r:?}");
    assert_eq!((r.orphans_found, r.orphans_deleted), (1, 1), "{r:?}");
    assert!(w.live_for(&gone).await.is_empty());
    assert_eq!(w.live_for(&kept).await.len(), 1, "the managed key stays");
    let _ = stray;
}

/// Pacing: `RotateSecret` starts an asynchronous rotation that the rotate function runs within
/// its reserved concurrency, and the steps share Secrets Manager's write quota, so one run
/// starts at most `ORKV_SWEEP_MAX_ROTATIONS` rotations and leaves the rest due for later runs.
#[tokio::test]
async fn a_sweep_starts_at_most_its_rotation_budget_and_leaves_the_rest_to_later_runs() {
    let w = World::start().await;
    let d = deps_with(&w, &[("ORKV_SWEEP_MAX_ROTATIONS", "2")]);
    let mut names = Vec::new();
    for i in 0..5 {
        names.push(provision(&d, &unique(&format!("paced{i}"))).await);
    }
    advance(&w, &d, 3601).await;
    for (run, due, deferred, completed) in [
        ("paced-1", 5, 3, 2),
        ("paced-2", 3, 1, 2),
        ("paced-3", 1, 0, 1),
    ] {
        let r = sweep(&d, run).await;
        assert_eq!(
            (r.rotations_due, r.rotations_deferred, r.rotations_completed),
            (due, deferred, completed),
            "{r:?}"
        );
        assert!(r.complete, "{r:?}");
    }
    for name in &names {
        assert_eq!(w.current(name).await.1["generation"], 2, "{name}");
    }
}

#[tokio::test]
async fn a_secret_the_listing_does_not_show_yet_keeps_its_key_and_rotates_once_it_is_listed() {
    // ListSecrets may not show a secret created in the last minutes (the layer's listing lag).
    // The sweep then neither rotates it nor calls its key an orphan (it reads the secret the
    // key names before judging); once listed, the next sweep rotates it.
    let (w, proxy) = World::behind_proxy().await;
    proxy.set_strict(true);
    proxy.set_list_lag(std::time::Duration::from_secs(3600));
    let d = deps(&w);
    let name = provision(&d, &unique("unlisted")).await;
    advance(&w, &d, 3700).await;
    let r = sweep(&d, &unique("lagging")).await;
    assert_eq!(r.rotations_due, 0, "not listed yet: {r:?}");
    assert_eq!(r.orphans_found, 0, "its key is not an orphan: {r:?}");
    let (_, rec) = w.current(&name).await;
    assert!(w.works(rec["api_key"].as_str().expect("key")).await);
    proxy.set_list_lag(std::time::Duration::ZERO);
    let r = sweep(&d, &unique("listed")).await;
    assert_eq!(r.rotations_completed, 1, "{r:?}");
    assert_eq!(w.current(&name).await.1["generation"], 2);
}

#[tokio::test]
async fn a_current_key_deleted_disabled_or_expired_out_of_band_is_found_and_replaced_by_one_sweep()
{
    // Someone deletes one secret's key in the dashboard and disables another's; a third, with
    // a fixed expires_at, expired unrotated: each secret's current record then holds a key that
    // fails. One sweep finds all three from the listing it already makes and confirms each; it
    // rotates the first two at once (a fixed expiry cannot be extended: reported only). A
    // report-only sweep changes nothing.
    let w = World::start().await;
    let d = deps(&w);
    let prefix = unique("drift");
    let long = |k: &str| {
        json!({"workspace": "checkout", "key_name": format!("{prefix}-{k}"), "limit": 5,
               "ttl_seconds": 172_800, "rotate_before_seconds": 3600})
    };
    let at = orkv_openrouter::format_expires_at(d.clock().now() + time::Duration::seconds(3700));
    let fixed = json!({"workspace": "checkout", "key_name": format!("{prefix}-expired"),
                       "limit": 5, "expires_at": at});
    let mut names = Vec::new();
    for body in [long("deleted"), long("disabled"), fixed, long("healthy")] {
        names.push(
            orkv_tests::roles::ops::handle(&d, body, deadline())
                .await
                .expect("vended")
                .secret_name,
        );
    }
    let client = w.management_client();
    let hash_of = |v: serde_json::Value| v["key_hash"].as_str().expect("hash").to_owned();
    let deleted = hash_of(w.current(&names[0]).await.1);
    client.delete_key(&deleted).await.expect("delete");
    let off = orkv_openrouter::KeyPatch {
        disabled: Some(true),
        ..orkv_openrouter::KeyPatch::default()
    };
    client
        .update_key(&hash_of(w.current(&names[1]).await.1), &off)
        .await
        .expect("disable");
    advance(&w, &d, 3800).await;

    let report_only = deps_with(&w, &[("ORKV_DRIFT", "report")]);
    report_only.clock().advance(3800);
    let r = sweep(&report_only, &unique("report")).await;
    assert_eq!(r.current_keys_broken, 3, "{r:?}");
    assert_eq!(r.current_keys_repaired, 0, "{r:?}");
    for n in &names {
        assert_eq!(
            w.current(n).await.1["generation"],
            1,
            "report changes nothing"
        );
    }

    let r = sweep(&d, &unique("repair")).await;
    assert_eq!(r.current_keys_broken, 3, "{r:?}");
    assert_eq!(r.current_keys_repaired, 2, "{r:?}");
    for (n, generation, works) in [
        (&names[0], 2, true),
        (&names[1], 2, true),
        (&names[2], 1, false),
        (&names[3], 1, true),
    ] {
        let (_, rec) = w.current(n).await;
        assert_eq!(rec["generation"], generation, "{n}");
        assert_eq!(
            w.works(rec["api_key"].as_str().expect("key")).await,
            works,
            "{n}"
        );
    }
    let r = sweep(&d, &unique("after")).await;
    assert_eq!(
        r.current_keys_broken, 1,
        "only the fixed expiry is left: {r:?}"
    );
}

/// Rotation is configured when a secret is created, so AWS Config's
/// `secretsmanager-rotation-enabled-check` (Security Hub SecretsManager.1) passes from the
/// start; an active secret found without it (a crash between the creation and the
/// configuration, or a container with no rotation function to name) is configured by the next
/// sweep, and a revoked one is left off.
#[tokio::test]
async fn a_new_secret_has_rotation_configured_and_the_sweep_configures_one_that_missed_it() {
    let w = World::start().await;
    let d = deps(&w);
    let name = provision(&d, &unique("cfg")).await;
    assert_eq!(w.describe(&name).await.rotation_enabled(), Some(true));

    let bare = w.deps(&[]);
    let missed = provision(&bare, &unique("cfgmiss")).await;
    assert_ne!(w.describe(&missed).await.rotation_enabled(), Some(true));
    let (v1, before) = w.current(&missed).await;
    let revoked = provision(&bare, &unique("cfgrev")).await;
    orkv_tests::roles::ops::handle_request(
        &d,
        json!({"action": "revoke", "secret_name": revoked, "idempotency_id": "x"}),
        deadline(),
    )
    .await
    .expect("revoked");

    let dry = sweep_input(&unique("cfgdry"), true);
    let r = orkv_tests::roles::ops::sweep(&d, &dry, deadline())
        .await
        .expect("dry run");
    assert_eq!(
        (r.rotations_not_configured, r.rotations_configured),
        (1, 0),
        "{r:?}"
    );
    assert_ne!(w.describe(&missed).await.rotation_enabled(), Some(true));

    let r = sweep(&d, &unique("cfg")).await;
    assert_eq!(
        (r.rotations_not_configured, r.rotations_configured),
        (1, 1),
        "{r:?}"
    );
    assert_eq!(w.describe(&missed).await.rotation_enabled(), Some(true));
    assert_ne!(w.describe(&revoked).await.rotation_enabled(), Some(true));
    // Configuring rotated nothing: the same version and key are current, and it works.
    let (v2, after) = w.current(&missed).await;
    assert_eq!((v1, &before["key_hash"]), (v2, &after["key_hash"]));
    assert!(w.works(after["api_key"].as_str().expect("key")).await);
    assert!(!w.pending_dangling(&missed).await);
    let r = sweep(&d, &unique("cfg-again")).await;
    assert_eq!(r.rotations_not_configured, 0, "{r:?}");
}

fn sweep_input(run: &str, dry_run: bool) -> SweepInput {
    SweepInput::parse(&json!({"execution_id": run, "dry_run": dry_run})).expect("input")
}

/// A rotation left pending (its steps never ran: Secrets Manager's retries spent, an
/// invocation lost) blocks every later `RotateSecret`, the product's own token included (API
/// reference, RotateSecret), so the key would expire. Past `ORKV_ROTATION_STALL_SECONDS` the
/// sweep reports it and runs its four steps again under its own token, as Secrets Manager's
/// retry would; within it, or in a dry run, it only looks.
#[tokio::test]
async fn a_rotation_left_pending_past_its_time_is_reported_and_resumed_by_the_sweep() {
    let w = World::start().await;
    let patient = deps(&w);
    let name = provision(&patient, &unique("stall")).await;
    let (v1, _) = w.current(&name).await;
    let token = begin(&w, &patient, &name).await;

    // Within its time (moto dates every version at the moment it is listed): nothing.
    let r = sweep(&patient, &unique("stall-early")).await;
    assert_eq!((r.rotations_stalled, r.rotations_resumed), (0, 0), "{r:?}");
    assert!(w.pending_dangling(&name).await);

    let d = deps_with(&w, &[("ORKV_ROTATION_STALL_SECONDS", "0")]);
    let dry = SweepInput::parse(&json!({"execution_id": unique("stall-dry"), "dry_run": true}))
        .expect("input");
    let r = orkv_tests::roles::ops::sweep(&d, &dry, deadline())
        .await
        .expect("dry run");
    assert_eq!((r.rotations_stalled, r.rotations_resumed), (1, 0), "{r:?}");
    assert!(w.pending_dangling(&name).await);

    let r = sweep(&d, &unique("stall")).await;
    assert_eq!((r.rotations_stalled, r.rotations_resumed), (1, 1), "{r:?}");
    let (v2, after) = w.current(&name).await;
    assert_ne!(v1, v2);
    assert_eq!(v2, token, "finished under its own token");
    assert_eq!(after["generation"], 2);
    assert_clean_end(&w, &d, &name).await;
}
