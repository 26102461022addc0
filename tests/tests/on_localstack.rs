//! The production rotation path on a second AWS. `tests/localstack/run.sh` (part of `make
//! test`) runs this target against LocalStack, started with its Lambda execution layer bridged
//! to the test (`tests/localstack/launch.py`); a plain `cargo test` does not build it
//! (`test = false` in Cargo.toml), since moto cannot invoke a Lambda.
//!
//! Nothing here plays Secrets Manager's part: the product calls `RotateSecret` naming the rotate
//! function (the production starter, `ORKV_ROTATION_LAMBDA_ARN`), LocalStack checks the
//! function with its own Lambda API, labels the pending version and invokes the four steps,
//! and each step runs in the packaged rotate binary (`make package`: no local stand-in)
//! under the Lambda Runtime API. The strict layer and the deployed-role oracle stay in front.
//! LocalStack runs the steps inside `RotateSecret` (AWS starts them asynchronously) and does
//! not retry a failed rotation (AWS does): docs/aws-fidelity.md, "A second AWS".

use std::time::Duration;

use orkv_tests::events::ResultQueue;
use orkv_tests::lambda_api::{bridge_rotate_function, release_bin_dir};
use orkv_tests::rotating::{advance, deadline, request, sweep};
use orkv_tests::runtime_api::{FunctionProcess, RuntimeApi};
use orkv_tests::soak::{SoakConfig, SoakRotation, run};
use orkv_tests::world::World;
use orkv_tests::world::create_seed_secret;
use orkv_tests::{CHECKOUT_WORKSPACE_ID, secrets_client, unique};
use orkv_vending::Deps;
use orkv_vending::ops::announce::detail_type as dt;
use orkv_vending::ops::sweep::report::{SweepAction, SweepReport};
use serde_json::{Value, json};

/// The packaged rotate binary, two processes under one Runtime API, registered with
/// LocalStack's Lambda API as the module's rotate function.
struct RotateFunction {
    _api: RuntimeApi,
    _processes: Vec<FunctionProcess>,
    arn: String,
}

async fn rotate_function(w: &World) -> RotateFunction {
    rotate_function_with(w, &[]).await
}

async fn rotate_function_with(w: &World, extra: &[(&'static str, String)]) -> RotateFunction {
    let api = RuntimeApi::start(Duration::from_secs(30)).await;
    let bin = release_bin_dir().join("rotate");
    let env = w.function_env(extra);
    let processes = (0..2)
        .map(|_| FunctionProcess::spawn(&bin, &api, &env))
        .collect();
    let arn = bridge_rotate_function(&w.moto.url, &format!("http://{}", api.addr)).await;
    RotateFunction {
        _api: api,
        _processes: processes,
        arn,
    }
}

/// In-process provision and sweep with the production starter (`Deps::new`'s), naming `arn`.
fn production_deps(w: &World, arn: &str) -> Deps {
    w.deps(&[
        ("ORKV_ROTATION_LAMBDA_ARN", arn),
        ("ORKV_RETIRE_GRACE_SECONDS", "0"),
        ("ORKV_ORPHAN_MIN_AGE_SECONDS", "60"),
    ])
}

async fn call(d: &Deps, payload: Value) -> Value {
    orkv_tests::roles::ops::handle_request(d, payload, deadline())
        .await
        .expect("the request succeeds")
}

async fn provision(d: &Deps, key_name: &str) -> String {
    let reply = call(d, request(key_name)).await;
    assert_eq!(reply["status"], "created", "{reply}");
    reply["secret_name"].as_str().expect("name").to_owned()
}

/// Secrets Manager's own `RotateSecret` (no token, no role), straight to LocalStack: its
/// scheduled rotation, or (on a rotation left pending) its retry, which LocalStack plays by
/// re-running the pending rotation. Nothing is left pending.
async fn secrets_managers_own_rotate_secret(w: &World, name: &str) {
    let (direct, _) = secrets_client(&w.moto).await;
    direct
        .rotate_secret()
        .secret_id(name)
        .send()
        .await
        .expect("Secrets Manager's RotateSecret");
    assert!(
        !w.pending_dangling(name).await,
        "{:?}",
        w.stages(name).await
    );
}

/// Rotation on, naming the rotate function `arn`, with a schedule.
async fn assert_configured(w: &World, name: &str, arn: &str) {
    let desc = w.describe(name).await;
    assert_eq!(desc.rotation_enabled(), Some(true), "{desc:?}");
    assert_eq!(desc.rotation_lambda_arn(), Some(arn), "{desc:?}");
    assert!(
        desc.rotation_rules()
            .and_then(|r| r.automatically_after_days())
            .is_some(),
        "{desc:?}"
    );
}

fn rotate(secret: &str, reason: &str, id: &str) -> Value {
    json!({"action": "rotate", "secret_name": secret, "reason": reason, "idempotency_id": id})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotate_now_a_repeat_a_leak_and_a_revoke_through_secrets_managers_own_invocations() {
    let w = World::start().await;
    let f = rotate_function(&w).await;
    let d = production_deps(&w, &f.arn);
    let name = provision(&d, &unique("lsrot")).await;
    // Configured at creation: rotation on, with the function and the schedule, and no
    // rotation run (AWS Config's secretsmanager-rotation-enabled-check passes from birth).
    assert_configured(&w, &name, &f.arn).await;
    assert!(!w.pending_dangling(&name).await);
    let (v1, first) = w.current(&name).await;
    assert_eq!(first["generation"], 1);
    let first_key = first["api_key"].as_str().expect("key").to_owned();

    let reply = call(&d, rotate(&name, "manual", "r-1")).await;
    assert!(
        !w.pending_dangling(&name).await,
        "{:?}",
        w.stages(&name).await
    );
    let (v2, second) = w.current(&name).await;
    assert_ne!(v1, v2, "{reply}");
    assert_eq!(second["generation"], 2, "{reply}");
    let second_key = second["api_key"].as_str().expect("key").to_owned();
    assert!(w.works(&second_key).await);
    assert!(
        w.works(&first_key).await,
        "a routine rotation keeps the old key"
    );
    // Still configured as the product asked: its function and its schedule.
    assert_configured(&w, &name, &f.arn).await;

    // The same request again: no third generation, no second successor.
    call(&d, rotate(&name, "manual", "r-1")).await;
    assert_eq!(w.current(&name).await.1["generation"], 2);
    assert_eq!(w.live_for(&name).await.len(), 2);

    // A leak: the leaked key stops working when the rotation ends.
    call(&d, rotate(&name, "leak", "r-2")).await;
    let (_, third) = w.current(&name).await;
    assert_eq!(third["generation"], 3);
    assert!(!w.works(&second_key).await, "the leaked key is disabled");
    assert!(w.works(third["api_key"].as_str().expect("key")).await);

    // The sweep retires what grace (0 here) no longer protects.
    let r = sweep(&d, "ls-retire").await;
    assert!(r.keys_retired >= 1, "{r:?}");
    assert!(!w.works(&first_key).await);
    assert_eq!(w.live_for(&name).await.len(), 1, "{r:?}");

    // Revoke: no live key, rotation off, nothing pending.
    let reply = call(
        &d,
        json!({"action": "revoke", "secret_name": name, "idempotency_id": "x-1"}),
    )
    .await;
    assert_eq!(reply["status"], "revoked", "{reply}");
    assert!(w.live_for(&name).await.is_empty());
    let desc = w.describe(&name).await;
    assert_ne!(desc.rotation_enabled(), Some(true), "{desc:?}");
    assert!(!w.pending_dangling(&name).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_step_leaves_the_rotation_pending_and_secrets_managers_retry_finishes_it() {
    let w = World::start().await;
    let f = rotate_function(&w).await;
    let d = production_deps(&w, &f.arn);
    let name = provision(&d, &unique("lsfail")).await;
    let (v1, _) = w.current(&name).await;

    // OpenRouter refuses every create: createSecret fails, LocalStack keeps AWSPENDING.
    w.control
        .fault(json!({"op": "create_key", "action": "status", "status": 400, "times": 50}))
        .await;
    let reply = call(&d, rotate(&name, "manual", "f-1")).await;
    assert!(w.pending_dangling(&name).await, "{reply}");
    assert_eq!(w.current(&name).await.0, v1, "the current key stays");

    // A second start meets the unfinished rotation: answered, not failed, and nothing new.
    let again = call(&d, rotate(&name, "manual", "f-2")).await;
    assert_eq!(w.current(&name).await.0, v1, "{again}");

    // Secrets Manager retries the rotation under its own token (LocalStack: RotateSecret
    // with no token re-runs the pending rotation).
    w.control.clear_faults().await;
    secrets_managers_own_rotate_secret(&w, &name).await;
    let (v2, after) = w.current(&name).await;
    assert_ne!(v1, v2);
    assert_eq!(after["generation"], 2);
    assert!(w.works(after["api_key"].as_str().expect("key")).await);
    assert_eq!(
        w.live_for(&name).await.len(),
        2,
        "one successor, the old key in grace"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_due_secret_is_rotated_by_the_sweep_through_secrets_manager() {
    let w = World::start().await;
    let f = rotate_function(&w).await;
    // LocalStack is shared by this target's tests: a budget that the others' secrets (which
    // this sweep sees too) cannot use up.
    let d = w.deps(&[
        ("ORKV_ROTATION_LAMBDA_ARN", f.arn.as_str()),
        ("ORKV_SWEEP_MAX_ROTATIONS", "500"),
    ]);
    let mut names = Vec::new();
    for i in 0..3 {
        names.push(provision(&d, &unique(&format!("lsdue{i}"))).await);
    }
    let before: Vec<String> = futures_util::future::join_all(names.iter().map(|n| w.current(n)))
        .await
        .into_iter()
        .map(|(v, _)| v)
        .collect();
    // Due: an hour before the two-hour lifetime ends (the in-process sweep's clock and
    // OpenRouter's move; the rotate binary keeps the real time, so its keys are an hour younger).
    advance(&w, &d, 3601).await;
    // Count this test's secrets only.
    let started = |r: &SweepReport| {
        r.actions
            .iter()
            .filter(|a| a.action == SweepAction::Rotate && names.contains(&a.secret))
            .count()
    };
    let r = sweep(&d, "ls-due").await;
    assert_eq!(started(&r), 3, "{r:?}");
    for (name, v1) in names.iter().zip(before) {
        assert!(!w.pending_dangling(name).await, "{name}: {r:?}");
        let (v2, now) = w.current(name).await;
        assert_ne!(v1, v2, "{name}: {r:?}");
        assert_eq!(now["generation"], 2, "{name}");
        assert!(w.works(now["api_key"].as_str().expect("key")).await);
    }
    // (A repeated delivery is not tried here: the successors' lifetimes run on the rotate
    // binary's real clock, an hour behind the sweep's, so they are due again at once. The
    // moto suites show it: sweep.rs, concurrent_sweeps_and_repeated_deliveries_rotate_each_secret_once.)
}

/// The chaos soak with the production path: the packaged provision, rotate and sweep binaries,
/// rotations started by `RotateSecret` and run by LocalStack, kills and faults.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_short_chaos_soak_on_the_production_rotation_path_keeps_every_promise() {
    let figures = run(&SoakConfig {
        operations: 200,
        kills: 15,
        secrets: 12,
        concurrency: 4,
        bin_dir: release_bin_dir(),
        throttle_per_mille: 30,
        reset_per_mille: 15,
        rotation: SoakRotation::SecretsManager,
    })
    .await;
    println!(
        "soak on LocalStack: {}",
        serde_json::to_string_pretty(&figures).expect("figures")
    );
    assert!(figures.kills >= 5, "kills were injected: {figures:?}");
    assert!(figures.requests_served >= 200, "{figures:?}");
    assert!(figures.consumer_reads > 0, "{figures:?}");
    assert_eq!(figures.violations(), 0, "invariants: {figures:?}");
}

/// A rotation that failed and stayed pending past `ORKV_ROTATION_STALL_SECONDS` (0 here) is
/// resumed by the packaged sweep binary, which invokes the rotate function's four steps
/// through LocalStack's Lambda API (`lambda:InvokeFunction`, which its role holds for
/// `RotateSecret`), and reports it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stalled_rotation_is_resumed_by_the_packaged_sweep_through_the_rotate_function() {
    let w = World::start().await;
    let f = rotate_function(&w).await;
    let d = production_deps(&w, &f.arn);
    let name = provision(&d, &unique("lsstall")).await;
    let (v1, _) = w.current(&name).await;
    w.control
        .fault(json!({"op": "create_key", "action": "status", "status": 400, "times": 50}))
        .await;
    call(&d, rotate(&name, "manual", "s-1")).await;
    assert!(w.pending_dangling(&name).await);
    w.control.clear_faults().await;

    let api = RuntimeApi::start(Duration::from_secs(60)).await;
    let env = w.function_env(&[
        ("ORKV_ROTATION_LAMBDA_ARN", f.arn.clone()),
        ("ORKV_ROTATION_STALL_SECONDS", "0".into()),
        ("ORKV_SWEEP_MAX_ROTATIONS", "500".into()),
        (
            "AWS_ACCESS_KEY_ID",
            format!("{}sweep", orkv_tests::iam::ROLE_KEY_PREFIX),
        ),
    ]);
    let _sweep = FunctionProcess::spawn(&release_bin_dir().join("sweep"), &api, &env);
    let report = api
        .invoke(json!({"execution_id": unique("ls-stall")}))
        .await
        .expect("the sweep answers");
    let ours = |action: &str| {
        report["actions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["action"] == action && a["secret"] == name.as_str())
            .count()
    };
    assert_eq!(
        (ours("rotation_stalled"), ours("rotation_resumed")),
        (1, 1),
        "{report}"
    );
    assert!(!w.pending_dangling(&name).await);
    let (v2, after) = w.current(&name).await;
    assert_ne!(v1, v2);
    assert_eq!(after["generation"], 2);
    assert!(w.works(after["api_key"].as_str().expect("key")).await);
}

/// An application reading the secret as applications do (`GetSecretValue` without a stage,
/// straight from LocalStack) through 20 rotations run by Secrets Manager's own invocations:
/// every read it makes holds a key that works.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_consumer_reading_through_20_production_rotations_never_holds_a_dead_key() {
    let w = World::start().await;
    let f = rotate_function(&w).await;
    let d = production_deps(&w, &f.arn);
    let name = provision(&d, &unique("lsread")).await;
    let (direct, _) = secrets_client(&w.moto).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let consumer = {
        let (stop, name) = (stop.clone(), name.clone());
        let key_url = format!("{}/key", w.emu.api_url());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let (mut reads, mut failures) = (0u64, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let Ok(v) = direct.get_secret_value().secret_id(&name).send().await else {
                    failures.push("read failed".to_owned());
                    continue;
                };
                let record: Value =
                    serde_json::from_str(v.secret_string().unwrap_or("{}")).unwrap_or_default();
                let key = record["api_key"].as_str().unwrap_or("").to_owned();
                reads += 1;
                let works = http
                    .get(&key_url)
                    .bearer_auth(&key)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if !works {
                    failures.push(format!("generation {}", record["generation"]));
                }
            }
            (reads, failures)
        })
    };
    for i in 0..20 {
        call(&d, rotate(&name, "manual", &format!("c-{i}"))).await;
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (reads, failures) = consumer.await.expect("consumer");
    assert_eq!(w.current(&name).await.1["generation"], 21);
    assert!(reads >= 20, "{reads} reads");
    assert!(
        failures.is_empty(),
        "{} of {reads}: {failures:?}",
        failures.len()
    );
}

/// An adopted secret on the production path: adoption (its key has no expiry, so it is
/// rotated at once through `RotateSecret`), the sweep configuring the rotation adoption left
/// off, Secrets Manager's own schedule firing (`RotateSecret` with no token and no role, as
/// the service starts a scheduled rotation), the rotate function's result event through
/// LocalStack's EventBridge, and the inventory.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_adopted_secret_rotates_on_secrets_managers_schedule_and_is_announced_and_listed() {
    let w = World::adoptable().await;
    let results = ResultQueue::create(&w.moto.url).await;
    let f = rotate_function_with(&w, &[("ORKV_EVENT_BUS", results.bus_name.clone())]).await;
    let d = w.deps(&[
        ("ORKV_ROTATION_LAMBDA_ARN", f.arn.as_str()),
        ("ORKV_SWEEP_MAX_ROTATIONS", "500"),
    ]);
    let (key, key_hash) = w
        .outside_key("lsadoptee", CHECKOUT_WORKSPACE_ID, Some(5.0), None)
        .await;
    let name = format!("openrouter/checkout/{}", unique("lsadopt"));
    create_seed_secret(&w.sm, &name, &key, &[]).await;
    let adopted = call(
        &d,
        json!({"action": "adopt", "secret_name": name, "workspace": "checkout",
               "convert_to_json": true, "idempotency_id": "a-1"}),
    )
    .await;
    // The reply claims what it read back: the adopted key (generation 1). The rotation it
    // started (the key has no expiry) is Secrets Manager's to run; LocalStack ran it inside
    // `RotateSecret`, so the successor is current already.
    assert_eq!(adopted["status"], "adopted", "{adopted}");
    assert_eq!(adopted["generation"], 1, "{adopted}");
    assert_eq!(adopted["key_hash"], json!(key_hash));
    assert_eq!(
        adopted["reason"], "adopted",
        "a rotation was started: {adopted}"
    );
    assert!(!w.pending_dangling(&name).await);
    assert_eq!(w.current(&name).await.1["generation"], 2);
    assert!(
        w.works(&key).await,
        "the adopted key works through its grace"
    );
    let _ = results.drain().await;

    // The sweep finds rotation configured by that rotation already, or configures it.
    let r = sweep(&d, &unique("ls-adopted")).await;
    assert!(
        !r.actions
            .iter()
            .any(|a| a.secret == name && a.action == SweepAction::RotationNotConfigured),
        "{r:?}"
    );
    let desc = w.describe(&name).await;
    assert_eq!(desc.rotation_enabled(), Some(true), "{desc:?}");
    assert_eq!(desc.rotation_lambda_arn(), Some(f.arn.as_str()));

    // Secrets Manager's schedule fires: the service's own RotateSecret, no token, no role.
    secrets_managers_own_rotate_secret(&w, &name).await;
    let (_, now) = w.current(&name).await;
    assert_eq!(now["generation"], 3);
    assert!(w.works(now["api_key"].as_str().expect("key")).await);
    let events = results.drain().await;
    assert!(
        events.iter().any(|e| e["detail-type"] == dt::ROTATED
            && e["detail"]["secret_name"] == name.as_str()
            && e["detail"]["generation"] == 3),
        "{events:#?}"
    );
    assert!(
        !events.iter().any(|e| e.to_string().contains("sk-or-")),
        "no plaintext in an event"
    );

    let listed = call(&d, json!({"action": "inventory"})).await;
    let entry = listed["secrets"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["secret_name"] == name.as_str())
        .cloned()
        .unwrap_or_default();
    assert_eq!(entry["generation"], 3, "{listed}");
    assert_eq!(entry["rotation_enabled"], true, "{entry}");
    assert_eq!(entry["state"], "active", "{entry}");
}
