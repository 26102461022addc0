//! End to end: the built `rotate` binary served through the Lambda Runtime API, playing
//! Secrets Manager's part with the sample step events. A real process kill between
//! OpenRouter's create and `PutSecretValue`, then the retry Secrets Manager would make with
//! the same token: one successor, no dangling `AWSPENDING`, and the sentinel plaintext only in
//! the secret.

use std::time::{Duration, Instant};

use orkv_store::SecretStore;
use orkv_tests::events::ResultQueue;
use orkv_tests::runtime_api::{FunctionProcess, RuntimeApi, binary};
use orkv_tests::world::{StrictMoto, config, function_env};
use orkv_tests::{Control, emulator, secrets_client_at, unique, workspace_root};
use orkv_vending::Deps;
use orkv_vending::domain::names::rotation_token;
use orkv_vending::ops::announce::detail_type as dt;
use serde_json::{Value, json};

fn env(moto: &StrictMoto, api_url: &str) -> Vec<(&'static str, String)> {
    function_env(&moto.url, api_url, &[])
}

fn step_event(step: &str, secret: &str, token: &str) -> Value {
    let path = workspace_root()
        .join("events")
        .join(format!("rotation-{step}.json"));
    let mut v: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("sample")).expect("json");
    v["SecretId"] = json!(secret);
    v["ClientRequestToken"] = json!(token);
    v
}

#[tokio::test]
async fn the_rotate_binary_survives_a_kill_after_the_create_and_the_plaintext_stays_in_the_secret()
{
    let moto = StrictMoto::start().await;
    let emu = emulator().await;
    let control = Control::new(&emu);
    let (sm, _) = secrets_client_at(&moto.url).await;
    let api_url = emu.api_url();
    let deps = Deps::new(config(&api_url, &[]), SecretStore::new(sm.clone()));
    let key_name = unique("rotbin");
    let reply = orkv_tests::roles::ops::handle(
        &deps,
        json!({"workspace": "checkout", "key_name": key_name, "limit": 5, "ttl_seconds": 7200}),
        Instant::now() + Duration::from_secs(30),
    )
    .await
    .expect("provisioned");
    let secret = reply.secret_name.clone();
    // What RotateSecret does before invoking the function: rotation on, AWSPENDING labelled.
    orkv_local_rotation::enable_rotation(&deps, &secret)
        .await
        .expect("enable");
    let token = rotation_token(&secret, 1);
    let _ = deps
        .store()
        .rotate(
            &secret,
            &token,
            Some("arn:aws:lambda:us-east-1:000000000000:function:rotate"),
            None,
            true,
        )
        .await;

    let api = RuntimeApi::start(Duration::from_secs(30)).await;
    let results = ResultQueue::create(&moto.url).await;
    let mut vars = env(&moto, &emu.api_url());
    vars.push(("ORKV_EVENT_BUS", results.bus_name.clone()));
    let mut first = FunctionProcess::spawn(&binary("rotate"), &api, &vars);
    control
        .fault(json!({"op": "create_key", "action": "delay_after_commit", "ms": 60000}))
        .await;
    let create = step_event("createSecret", &secret, &token);
    let pending = {
        let (api, create) = (&api, create.clone());
        async move { api.invoke_within(create, Duration::from_secs(20)).await }
    };
    tokio::pin!(pending);
    let prefix = format!("orkv:{secret}:");
    let minted = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            tokio::select! {
                _ = &mut pending => panic!("the held create should not answer"),
                () = tokio::time::sleep(Duration::from_millis(20)) => {
                    if control.live_keys(&prefix).await.len() == 2 { break; }
                }
            }
        }
    })
    .await;
    assert!(minted.is_ok(), "the successor was created");
    first.kill().await;
    let _ = reqwest::Client::new()
        .delete(format!("{}/_emulator/faults", emu.url()))
        .send()
        .await;

    // Secrets Manager's retry, same token, a fresh process; its successor is the sentinel.
    let second = FunctionProcess::spawn(&binary("rotate"), &api, &vars);
    let sentinel = format!("sk-or-v1-ROTSENTINEL{}", uuid::Uuid::new_v4().simple());
    control.queue_plaintext(&sentinel).await;
    let mut replies = Vec::new();
    for step in ["createSecret", "setSecret", "testSecret", "finishSecret"] {
        let r = api
            .invoke(step_event(step, &secret, &token))
            .await
            .unwrap_or_else(|e| panic!("{step}: {e}"));
        replies.push(r);
    }
    assert_eq!(replies[0]["outcome"], "done");
    assert_eq!(replies[3]["generation"], 2);
    let current = sm
        .get_secret_value()
        .secret_id(&secret)
        .version_stage("AWSCURRENT")
        .send()
        .await
        .expect("current");
    assert_eq!(current.version_id(), Some(token.as_str()));
    let record: Value =
        serde_json::from_str(current.secret_string().unwrap_or_default()).expect("json");
    assert_eq!(record["api_key"], json!(sentinel));
    let live = control.live_keys(&prefix).await;
    assert_eq!(
        live.len(),
        2,
        "the old key (in grace) and exactly one successor: {live:?}"
    );
    let desc = sm
        .describe_secret()
        .secret_id(&secret)
        .send()
        .await
        .expect("describe");
    let dangling = desc.version_ids_to_stages().is_some_and(|m| {
        m.values()
            .any(|s| s.iter().any(|l| l == "AWSPENDING") && !s.iter().any(|l| l == "AWSCURRENT"))
    });
    assert!(!dangling, "no dangling AWSPENDING");
    // A repeated step after the end is answered and changes nothing.
    let again = api
        .invoke(step_event("finishSecret", &secret, &token))
        .await
        .expect("repeat");
    assert_eq!(again["outcome"], "already_current");
    // Bad input through the runtime: a clear error naming the field.
    let err = api
        .invoke(json!({"Step": "rotateSecret", "SecretId": secret, "ClientRequestToken": token}))
        .await
        .expect_err("refused");
    assert_eq!(err["errorType"], "InvalidRotationEvent");
    assert!(
        err["errorMessage"]
            .as_str()
            .unwrap_or_default()
            .contains("`Step`")
    );
    let logs = format!("{}{}", first.output().await, second.output().await);
    assert!(
        logs.contains("rotation step"),
        "the binaries logged at DEBUG"
    );
    // The dashboard's metrics: one completion (the finish), one step failure (the bad event).
    assert_eq!(
        logs.matches(r#""RotationsCompleted":1"#).count(),
        1,
        "{logs}"
    );
    assert_eq!(
        logs.matches(r#""RotationStepFailures":1"#).count(),
        1,
        "{logs}"
    );
    assert!(
        !logs.contains(&sentinel),
        "the plaintext is not in the logs"
    );
    for r in replies {
        assert!(!r.to_string().contains(&sentinel));
    }
    // finishSecret announced the rotation once, its repeat as a repeat, the bad event as a
    // failure; the killed attempt announced nothing.
    let events = results.drain().await;
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["detail-type"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(kinds, [dt::ROTATED, dt::ROTATED, dt::FAILED], "{events:#?}");
    let done = &events[0]["detail"];
    assert_eq!(
        done["key_hash"],
        json!(orkv_openrouter::key_hash(&sentinel))
    );
    assert_eq!(done["generation"], 2);
    assert_eq!(done["request_id"], json!(token));
    assert_eq!(done["repeat"], false);
    assert_eq!(events[1]["detail"]["repeat"], true);
    assert_eq!(events[2]["detail"]["error"]["type"], "InvalidRotationEvent");
    let text = serde_json::to_string(&events).expect("json");
    assert!(
        !text.contains(&sentinel) && !text.contains("ROTSENTINEL"),
        "no plaintext in an event"
    );
}
