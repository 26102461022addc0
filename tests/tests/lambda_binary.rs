//! End to end: the built `provision` binary served through the Lambda Runtime API, against
//! moto server and the emulator. Includes the sentinel test (the plaintext reaches Secrets
//! Manager and nowhere else) and a real process kill between OpenRouter's create and the
//! secret write.

use std::time::Duration;

use orkv_tests::events::ResultQueue;
use orkv_tests::runtime_api::{FunctionProcess, RuntimeApi, binary};
use orkv_tests::world::{StrictMoto, current_of, function_env};
use orkv_tests::{Control, emulator, secrets_client_at, unique, workspace_root};
use orkv_vending::ops::announce::detail_type as dt;
use serde_json::{Value, json};

fn env(moto: &StrictMoto, api_url: &str) -> Vec<(&'static str, String)> {
    function_env(
        &moto.url,
        api_url,
        &[("ORKV_PENDING_LEASE_SECONDS", "2".into())],
    )
}

async fn current_value(sm: &aws_sdk_secretsmanager::Client, name: &str) -> Value {
    current_of(sm, name).await.1
}

fn sample(name: &str) -> Value {
    let text = std::fs::read_to_string(workspace_root().join("events").join(name)).expect("sample");
    serde_json::from_str(&text).expect("json")
}

#[tokio::test]
async fn the_binary_vends_from_both_triggers_and_the_plaintext_goes_only_to_the_secret() {
    let moto = StrictMoto::start().await;
    let emu = emulator().await;
    let control = Control::new(&emu);
    let (sm, _) = secrets_client_at(&moto.url).await;
    let api = RuntimeApi::start(Duration::from_secs(30)).await;
    // Result events go to a bus whose rule delivers them to a queue, read at the end.
    let results = ResultQueue::create(&moto.url).await;
    let mut vars = env(&moto, &emu.api_url());
    vars.push(("ORKV_EVENT_BUS", results.bus_name.clone()));
    let process = FunctionProcess::spawn(&binary("provision"), &api, &vars);

    let sentinel = format!("sk-or-v1-SENTINEL{}", uuid::Uuid::new_v4().simple());
    control.queue_plaintext(&sentinel).await;
    let key_name = unique("payments");
    let mut event = sample("eventbridge-key-requested.json");
    event["id"] = json!(unique("event"));
    event["detail"]["key_name"] = json!(key_name);
    let reply = api.invoke(event.clone()).await.expect("created");
    assert_eq!(reply["status"], json!("created"));
    assert_eq!(reply["trigger"], json!("event_bridge"));
    let secret_name = reply["secret_name"].as_str().expect("name").to_owned();
    let value = current_value(&sm, &secret_name).await;
    assert_eq!(
        value["api_key"],
        json!(sentinel),
        "the plaintext is in the secret"
    );
    assert_eq!(
        reply["key_hash"],
        json!(orkv_openrouter::key_hash(&sentinel))
    );

    // The same event again: unchanged, same key.
    let again = api.invoke(event).await.expect("repeat");
    assert_eq!(again["status"], json!("unchanged"));
    assert_eq!(again["key_hash"], reply["key_hash"]);

    // The pipeline payload (an explicit expiry two months out).
    let mut pipeline = sample("pipeline-provision.json");
    let expiry = time::OffsetDateTime::now_utc() + time::Duration::days(60);
    pipeline["expires_at"] = json!(orkv_openrouter::format_expires_at(expiry));
    pipeline["secret_name"] = json!(format!("openrouter/search/{}", unique("ranker")));
    let direct = api.invoke(pipeline).await.expect("pipeline");
    assert_eq!(direct["status"], json!("created"));
    assert_eq!(direct["trigger"], json!("direct"));

    // Errors are typed, name the field, and carry no plaintext.
    let err = api
        .invoke(json!({"workspace": "checkout", "key_name": key_name, "limit": -1}))
        .await
        .expect_err("refused");
    assert_eq!(err["errorType"], json!("InvalidRequest"));
    assert!(
        err["errorMessage"]
            .as_str()
            .unwrap_or_default()
            .contains("`limit`")
    );
    let mut changed = sample("eventbridge-key-requested.json");
    changed["detail"]["key_name"] = json!(key_name);
    changed["detail"]["ttl_seconds"] = json!(86_400 * 10);
    // A changed lifetime is a rotation; this function has no rotation function configured.
    let err = api.invoke(changed).await.expect_err("needs a rotation");
    assert_eq!(err["errorType"], json!("ConfigError"));
    assert!(
        err["errorMessage"]
            .as_str()
            .unwrap_or_default()
            .contains("ORKV_ROTATION_LAMBDA_ARN")
    );

    // Malformed JSON never reaches the handler: the runtime refuses it, and the process lives on.
    let before = control.total_calls().await;
    let malformed = api
        .invoke_raw(
            "{\"workspace\": \"checkout\", ".to_owned(),
            Duration::from_secs(30),
        )
        .await
        .expect("answered")
        .expect_err("refused");
    let error_type = malformed["errorType"].as_str().unwrap_or_default();
    assert!(error_type.contains("DeserializeError"), "{malformed}");
    let message = malformed["errorMessage"].as_str().unwrap_or_default();
    assert!(message.contains("EOF while parsing"), "{malformed}");
    assert_eq!(
        control.total_calls().await,
        before,
        "nothing was called, nothing created"
    );
    let mut same = sample("eventbridge-key-requested.json");
    same["detail"]["key_name"] = json!(key_name);
    let still = api.invoke(same).await.expect("the function still serves");
    assert_eq!(still["status"], json!("unchanged"));
    assert_eq!(still["key_hash"], reply["key_hash"]);

    let logs = process.output().await;
    assert!(
        logs.contains("request handled"),
        "the binary logged its work: {logs}"
    );
    // One event per outcome: created, its repeat, the pipeline's, two refusals, the last
    // repeat (the malformed payload never reached the handler). EventBridge to a standard
    // SQS queue does not keep their order (LocalStack reorders them, as AWS may; moto kept
    // it), so they are matched by content, not position.
    let events = results.drain().await;
    let mut kinds: Vec<&str> = events
        .iter()
        .map(|e| e["detail-type"].as_str().unwrap_or_default())
        .collect();
    kinds.sort_unstable();
    let mut want = [
        dt::PROVISIONED,
        dt::PROVISIONED,
        dt::PROVISIONED,
        dt::FAILED,
        dt::FAILED,
        dt::PROVISIONED,
    ];
    want.sort_unstable();
    assert_eq!(kinds, want, "{events:#?}");
    let detail = |e: &&Value| e["detail"].clone();
    let details: Vec<Value> = events.iter().map(|e| detail(&e)).collect();
    assert!(
        details
            .iter()
            .any(|d| d["repeat"] == json!(false) && d["key_hash"] == reply["key_hash"]),
        "the creation's event names its key: {details:#?}"
    );
    assert!(
        details.iter().any(|d| d["repeat"] == json!(true)),
        "a repeat's event says so: {details:#?}"
    );
    assert!(
        details
            .iter()
            .any(|d| d["error"]["type"] == json!("ConfigError")),
        "{details:#?}"
    );
    let events = serde_json::to_string(&events).expect("json");
    for (what, text) in [
        ("logs", logs.as_str()),
        ("events", events.as_str()),
        ("reply", &reply.to_string()),
        ("repeat", &again.to_string()),
        ("error", &err.to_string()),
    ] {
        assert!(
            !text.contains(&sentinel),
            "the plaintext leaked into the {what}"
        );
        assert!(
            !text.contains("SENTINEL"),
            "part of the plaintext leaked into the {what}"
        );
    }
}

#[tokio::test]
async fn the_binary_reads_the_tenant_from_the_alias_the_runtime_api_hands_it() {
    // Two teams; the Runtime API carries the invoked function ARN with the alias, as Lambda
    // does for an invocation through `provision:<tenant>`.
    let moto = StrictMoto::start().await;
    let emu = emulator().await;
    let (sm, _) = secrets_client_at(&moto.url).await;
    let api = RuntimeApi::start(Duration::from_secs(30)).await;
    let policy = json!({"tenants": {
        "checkout": {"workspaces": [{"workspace": "checkout", "max_limit": 100}],
                     "event_sources": ["com.example.checkout"]},
        "search": {"workspaces": [{"workspace": "search", "max_limit": 20}],
                   "event_sources": ["com.example.search"]}}});
    let mut vars = env(&moto, &emu.api_url());
    vars.push(("ORKV_POLICY", policy.to_string()));
    let _process = FunctionProcess::spawn(&binary("provision"), &api, &vars);

    let key_name = unique("ranker");
    let request =
        json!({"workspace": "search", "key_name": key_name, "limit": 5, "ttl_seconds": 7200});
    let reply = api
        .invoke_as("search", request.clone())
        .await
        .expect("search vends through its alias");
    assert_eq!(reply["status"], json!("created"));
    let name = reply["secret_name"].as_str().expect("name");
    assert_eq!(name, format!("openrouter/search/search/{key_name}"));
    assert_eq!(current_value(&sm, name).await["tenant"], json!("search"));
    // The same payload unqualified, through the other team's alias, and as an event from
    // the other team's source: each refused, nothing created.
    for (alias, payload) in [
        ("", request.clone()),
        ("checkout", request.clone()),
        (
            "checkout",
            json!({"version": "0", "id": unique("event"), "detail-type": "OpenRouter Key Requested",
                   "source": "com.example.search", "account": "123456789012",
                   "time": "2026-12-02T10:00:00Z", "region": "us-east-1", "resources": [],
                   "detail": {"workspace": "checkout", "key_name": unique("x"), "limit": 1}}),
        ),
    ] {
        let err = api.invoke_as(alias, payload).await.expect_err("refused");
        assert_eq!(
            err["errorType"],
            json!("TenantScopeViolation"),
            "{alias}: {err}"
        );
    }
    let keys = Control::new(&emu).live_keys("").await;
    assert_eq!(keys.len(), 1, "only search's key exists: {keys:?}");
}

#[tokio::test]
async fn a_process_killed_after_the_create_leaves_one_referenced_key_after_the_retry() {
    let moto = StrictMoto::start().await;
    let emu = emulator().await;
    let control = Control::new(&emu);
    let (sm, _) = secrets_client_at(&moto.url).await;
    let api = RuntimeApi::start(Duration::from_secs(30)).await;
    let vars = env(&moto, &emu.api_url());
    let mut first = FunctionProcess::spawn(&binary("provision"), &api, &vars);

    let key_name = unique("killed");
    let request = json!({"workspace": "checkout", "key_name": key_name, "limit": 5, "ttl_seconds": 7200,
                         "idempotency_id": unique("deploy")});
    let secret_name = format!("openrouter/checkout/{key_name}");
    control
        .fault(json!({"op": "create_key", "action": "delay_after_commit", "ms": 60000}))
        .await;
    // The first invocation never answers: the process is killed once the key exists.
    let pending = {
        let api = &api;
        let request = request.clone();
        async move { api.invoke_within(request, Duration::from_secs(20)).await }
    };
    tokio::pin!(pending);
    let killed = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            tokio::select! {
                _ = &mut pending => panic!("the first invocation should not answer"),
                () = tokio::time::sleep(Duration::from_millis(20)) => {
                    if !control.live_keys(&secret_name).await.is_empty() { break; }
                }
            }
        }
    })
    .await;
    assert!(killed.is_ok(), "the key was created");
    first.kill().await;
    assert_eq!(
        control.live_keys(&secret_name).await.len(),
        1,
        "an orphan exists"
    );

    // The retry, as Lambda would deliver it, reaches a new process.
    let _second = FunctionProcess::spawn(&binary("provision"), &api, &vars);
    let reply = api.invoke(request).await.expect("the retry succeeds");
    assert_eq!(reply["status"], json!("created"));
    let live = control.live_keys(&secret_name).await;
    assert_eq!(live.len(), 1, "exactly one live key: {live:?}");
    assert_eq!(live[0]["hash"], reply["key_hash"]);
    let value = current_value(&sm, &secret_name).await;
    assert_eq!(value["key_hash"], reply["key_hash"]);
}

#[tokio::test]
async fn each_function_exits_cleanly_on_sigterm() {
    // Not needed for a correct answer (every step survives SIGKILL), but a clean exit keeps
    // logs whole and the exit status honest when a local runner or container stops it.
    let moto = StrictMoto::start().await;
    let emu = emulator().await;
    for name in ["provision", "rotate", "sweep"] {
        let api = RuntimeApi::start(Duration::from_secs(30)).await;
        let mut process = FunctionProcess::spawn(&binary(name), &api, &env(&moto, &emu.api_url()));
        // Serve one invocation first, so the process is past its init and idle, as Lambda's
        // Shutdown phase finds it.
        let reply = api
            .invoke_within(json!({"not": "an event"}), Duration::from_secs(30))
            .await
            .expect("an answer");
        assert!(reply.is_err(), "{name}: a bad event is refused");
        let status = process
            .signal_and_wait("TERM", Duration::from_secs(5))
            .await
            .expect("exited within 5 s");
        assert!(status.success(), "{name}: exit status {status:?}");
        // The exited process's pipes drain into the capture shortly after.
        let mut out = process.output().await;
        for _ in 0..100 {
            if out.contains("shutting down") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            out = process.output().await;
        }
        assert!(out.contains("shutting down"), "{name}: {out}");
    }
}
