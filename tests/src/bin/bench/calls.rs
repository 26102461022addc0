//! Scenarios 1-3: cold start and peak memory of each binary, package sizes, and the remote
//! calls of each operation (provision: new key, repeat, cap update; a full rotation).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use orkv_tests::runtime_api::{FunctionProcess, RuntimeApi};
use orkv_tests::unique;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

use crate::report::{Report, Stats, js, stats};
use crate::setup::{World, function_env, invoke, or_total, provision_request, rss_kb, total};
use orkv_vending::ops;

/// Scenario 1: exec → first `GET /runtime/invocation/next`, and peak RSS at that moment.
pub(crate) async fn cold_start(bin: &Path, runs: usize) -> (Stats, Stats) {
    let mut times = Vec::new();
    let mut peaks = Vec::new();
    for _ in 0..runs {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut cmd = std::process::Command::new(bin);
        cmd.env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", "bench")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_REGION", "us-east-1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        for (k, v) in function_env(
            "http://127.0.0.1:9",
            "http://127.0.0.1:9",
            "orkv-bench-results",
        ) {
            cmd.env(k, v);
        }
        let start = Instant::now();
        let mut child = cmd.spawn().expect("spawn function");
        let (mut sock, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
            .await
            .expect("first poll within 10 s")
            .expect("accept");
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = sock.read(&mut chunk).await.expect("read poll");
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let elapsed = start.elapsed();
        assert!(
            String::from_utf8_lossy(&buf).contains("/runtime/invocation/next"),
            "the first request is the poll"
        );
        let (peak, _) = rss_kb(child.id());
        let _ = child.kill();
        let _ = child.wait();
        times.push(elapsed.as_secs_f64() * 1000.0);
        peaks.push(peak as f64 / 1024.0);
    }
    (stats(times), stats(peaks))
}

/// Scenario 1 for every function.
pub(crate) async fn cold_starts(report: &mut Report, bin_dir: &Path, runs: usize) {
    // 1. Cold start.
    let mut cold = serde_json::Map::new();
    for f in ["provision", "rotate", "sweep"] {
        let (t, rss) = cold_start(&bin_dir.join(f), runs).await;
        report.row(
            format!("cold start to first poll: {f}"),
            Some(t),
            "ms",
            "≤ 30 ms",
            Some(t.median <= 30.0),
        );
        report.row(
            format!("peak RSS at first poll: {f}"),
            Some(rss),
            "MB",
            "≤ 16 MB",
            Some(rss.max <= 16.0),
        );
        cold.insert(
            f.into(),
            json!({"first_poll_ms": js(t), "peak_rss_mb": js(rss)}),
        );
    }
    report.json.insert("cold_start".into(), Value::Object(cold));
}

/// Scenario 2: the size of each release package.
pub(crate) fn package_sizes(report: &mut Report, package_dir: &Path) {
    // 2. Package size.
    let mut sizes = serde_json::Map::new();
    for f in ["provision", "rotate", "sweep"] {
        let bytes = std::fs::metadata(package_dir.join(f).join("bootstrap.zip"))
            .map(|m| m.len())
            .unwrap_or(0);
        let mb = bytes as f64 / 1_000_000.0;
        let s = Stats {
            median: mb,
            min: mb,
            max: mb,
        };
        report.row(
            format!("bootstrap.zip: {f}"),
            Some(s),
            "MB",
            "≤ 5 MB",
            Some(bytes > 0 && mb <= 5.0),
        );
        sizes.insert(f.into(), json!(bytes));
    }
    report
        .json
        .insert("package_bytes".into(), Value::Object(sizes));
}

/// Scenario 3: remote calls per provision operation (the provision process at `api` is warm).
/// Answers the figures so far and the secret (provisioned, cap updated) the rotation uses.
pub(crate) async fn provision_calls(
    report: &mut Report,
    w: &World,
    api: &RuntimeApi,
) -> (serde_json::Map<String, Value>, String) {
    let mut calls = serde_json::Map::new();
    let secret = format!("openrouter/checkout/{}", unique("bench-calls"));
    w.reset_counts().await;
    invoke(api, provision_request(&secret, 10.0)).await;
    let (sm, or) = w.counts().await;
    let new_key = total(&sm) + or_total(&or);
    // Three writes (CreateSecret, POST /keys, PutSecretValue) and the read-back the reply's
    // `created` rests on (GetSecretValue(AWSCURRENT), GET /key): issue 13, item 10. Then
    // the RotateSecret (RotateImmediately=false) that configures rotation at creation: issue 25.
    measure_calls(
        report,
        &mut calls,
        "new key",
        sm,
        or,
        "≤ 7 (3 writes + 2 read-backs + RotateSecret configuring rotation + 1 PutEvents)",
        new_key <= 7,
    );
    report.row(
        "OpenRouter calls: new key".to_owned(),
        Some(Report::count(
            or_total(&calls["new key"]["openrouter"]) as f64
        )),
        "calls",
        "≤ 3 (POST /keys, GET /key)",
        Some(or_total(&calls["new key"]["openrouter"]) <= 3),
    );
    w.reset_counts().await;
    invoke(api, provision_request(&secret, 10.0)).await;
    let (sm, or) = w.counts().await;
    let repeat = total(&sm) + or_total(&or);
    measure_calls(
        report,
        &mut calls,
        "repeated request",
        sm,
        or,
        "≤ 2 (1 read + 1 PutEvents, marked a repeat)",
        repeat <= 2,
    );
    w.reset_counts().await;
    invoke(api, provision_request(&secret, 12.0)).await;
    let (sm, or) = w.counts().await;
    measure_calls(
        report,
        &mut calls,
        "cap update",
        sm,
        or,
        "9 (read, describe: a rotation running defers the change, cap tag before the PATCH (a sweep raising the key meanwhile sees the change coming), PATCH, write, label move, read-back: GetSecretValue, GET /key; PutEvents)",
        true,
    );

    (calls, secret)
}

/// Scenario 3, guardrails (issue 15): a new key in a workspace whose policy names a guardrail,
/// from a warm provision process of its own; OpenRouter's calls only.
pub(crate) async fn guardrail_calls(
    report: &mut Report,
    w: &World,
    bin_dir: &Path,
    env_ref: &[(&str, String)],
) {
    let id = w
        .control
        .create_guardrail(orkv_tests::CHECKOUT_WORKSPACE_ID, 1000.0)
        .await;
    let policy = orkv_tests::guarded_policy(&id);
    let mut env: Vec<(&str, String)> = env_ref
        .iter()
        .filter(|(k, _)| *k != "ORKV_POLICY")
        .cloned()
        .collect();
    env.push(("ORKV_POLICY", policy));
    let api = RuntimeApi::start(Duration::from_secs(30)).await;
    let _provision = FunctionProcess::spawn(&bin_dir.join("provision"), &api, &env);
    invoke(
        &api,
        provision_request(
            &format!("openrouter/checkout/{}", unique("bench-gr-warm")),
            10.0,
        ),
    )
    .await;
    w.reset_counts().await;
    let secret = format!("openrouter/checkout/{}", unique("bench-gr"));
    invoke(&api, provision_request(&secret, 10.0)).await;
    let (_, or) = w.counts().await;
    let n = or_total(&or);
    report.row(
        "OpenRouter calls: new key with a guardrail".to_owned(),
        Some(Report::count(n as f64)),
        "calls",
        "≤ 4 (POST /keys, assignment, GET /key)",
        Some(n <= 4),
    );
    report
        .json
        .insert("guardrail_new_key_openrouter_calls".into(), json!(or));
    // Its revoke: OpenRouter keeps a deleted key's assignment row, so every delete of a
    // guarded key removes the assignment first (issue 26): one call more than without one.
    w.reset_counts().await;
    invoke(
        &api,
        json!({"action": "revoke", "secret_name": secret, "idempotency_id": unique("bench-rv")}),
    )
    .await;
    let (_, or) = w.counts().await;
    let n = or_total(&or);
    report.row(
        "OpenRouter calls: revoke of a key with a guardrail".to_owned(),
        Some(Report::count(n as f64)),
        "calls",
        "4 (PATCH disabled, assignment removed, DELETE, GET read-back)",
        Some(n <= 4),
    );
    report
        .json
        .insert("guardrail_revoke_openrouter_calls".into(), json!(or));
}

/// Scenario 3, rotation: a full rotation's calls; answers their number.
pub(crate) async fn rotation_calls(
    report: &mut Report,
    w: &World,
    bin_dir: &Path,
    env_ref: &[(&str, String)],
    (mut calls, secret): (serde_json::Map<String, Value>, String),
) -> u64 {
    // A full rotation: the rotate binary through the Invoke API, Secrets Manager's part played
    // by the local driver (its own client, not counted: in AWS that part is Secrets Manager's).
    let rotate_api = RuntimeApi::start(Duration::from_secs(60)).await;
    let rotate = FunctionProcess::spawn(&bin_dir.join("rotate"), &rotate_api, env_ref);
    let invoke_url = format!(
        "http://{}/2015-03-31/functions/rotate/invocations",
        rotate_api.addr
    );
    let driver_cfg = orkv_tests::world::config(
        &format!("{}/api/v1", w.emulator.url()),
        &[("ORKV_LOCAL_ROTATION_INVOKE_URL", invoke_url.as_str())],
    );
    let starter = orkv_local_rotation::starter(&driver_cfg, None).expect("driver");
    let driver = orkv_vending::Deps::new(driver_cfg, orkv_store::SecretStore::new(w.sm.clone()))
        .with_starter(starter);
    orkv_local_rotation::enable_rotation(&driver, &secret)
        .await
        .expect("enable rotation");
    // Warm the rotate container with a first rotation, then count the second.
    let token = uuid::Uuid::new_v4().to_string();
    ops::start_rotation(&driver, &secret, &token)
        .await
        .expect("warm rotation");
    w.reset_counts().await;
    let token = uuid::Uuid::new_v4().to_string();
    ops::start_rotation(&driver, &secret, &token)
        .await
        .expect("rotation");
    let (mut sm, or) = w.counts().await;
    *sm.entry("RotateSecret (the caller, in AWS)".into())
        .or_default() += 1;
    let rotation_calls = total(&sm) + or_total(&or);
    measure_calls(
        report,
        &mut calls,
        "full rotation",
        sm,
        or,
        "protocol minimum (docs/performance.md)",
        true,
    );
    report.json.insert("calls".into(), Value::Object(calls));

    drop(rotate);
    rotation_calls
}

/// One row and one JSON entry for an operation's calls.
fn measure_calls(
    report: &mut Report,
    calls: &mut serde_json::Map<String, Value>,
    name: &str,
    sm: BTreeMap<String, u64>,
    or: Value,
    target: &str,
    ok: bool,
) {
    let n = total(&sm) + or_total(&or);
    let mut sm = sm;
    let events: BTreeMap<String, u64> = sm.remove_entry("PutEvents").into_iter().collect();
    report.row(
        format!("remote calls: {name}"),
        Some(Report::count(n as f64)),
        "calls",
        target,
        Some(ok),
    );
    calls.insert(
        name.into(),
        json!({"total": n, "secrets_manager": sm, "eventbridge": events, "openrouter": or}),
    );
}
