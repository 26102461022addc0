//! Result events (issue 17, item 1): every outcome puts exactly one event on the bus, read
//! back as a consumer reads it (moto's EventBridge delivering to an SQS queue); a refusal or
//! failure puts one failure event naming the error; no event holds a plaintext; a bus that
//! refuses every put never fails the key operation it announces.

use orkv_tests::events::ResultQueue;
use orkv_tests::rotating::{deadline, deps, request};
use orkv_tests::world::{World, call_as};
use orkv_tests::{unique, world};
use orkv_vending::Deps;
use orkv_vending::input::rotation::{RotationEvent, Step};
use orkv_vending::ops::announce::detail_type as dt;
use serde_json::{Value, json};

struct Setup {
    w: World,
    d: Deps,
    q: ResultQueue,
    /// Every plaintext the test saw in a secret: none may appear in any event.
    plaintexts: Vec<String>,
    /// Every event delivered, as text.
    seen: Vec<String>,
}

impl Setup {
    async fn start() -> Self {
        let w = World::start().await;
        let q = ResultQueue::create(&w.sm_url).await;
        let d = deps(&w).with_events(q.bus().await);
        Self {
            w,
            d,
            q,
            plaintexts: Vec::new(),
            seen: Vec::new(),
        }
    }

    async fn call(&self, payload: Value) -> Value {
        orkv_tests::roles::ops::handle_request(&self.d, payload, deadline())
            .await
            .expect("served")
    }

    /// The events delivered since the last look, by detail-type.
    async fn events(&mut self) -> Vec<(String, Value)> {
        let events = self.q.drain().await;
        self.seen.extend(events.iter().map(Value::to_string));
        events
            .into_iter()
            .map(|e| {
                assert_eq!(e["source"], "orkv.key-vending");
                (
                    e["detail-type"].as_str().expect("detail-type").to_owned(),
                    e["detail"].clone(),
                )
            })
            .collect()
    }

    async fn one(&mut self) -> (String, Value) {
        let mut events = self.events().await;
        assert_eq!(events.len(), 1, "exactly one event: {events:#?}");
        events.remove(0)
    }

    async fn remember_plaintext(&mut self, name: &str) {
        let (_, rec) = self.w.current(name).await;
        if let Some(k) = rec["api_key"].as_str() {
            self.plaintexts.push(k.to_owned());
        }
    }

    fn assert_no_plaintext(&self) {
        assert!(!self.plaintexts.is_empty());
        for text in &self.seen {
            assert!(!text.contains("sk-or-"), "an event holds a key: {text}");
            for p in &self.plaintexts {
                assert!(!text.contains(p.as_str()), "an event holds a plaintext");
            }
        }
    }
}

/// The event of each kind among `events`, asserting each kind came exactly once.
fn by_type(events: &[(String, Value)], kinds: &[&str]) -> Vec<Value> {
    assert_eq!(events.len(), kinds.len(), "{events:#?}");
    kinds
        .iter()
        .map(|k| {
            let of_kind: Vec<&Value> = events
                .iter()
                .filter(|(t, _)| t == k)
                .map(|(_, d)| d)
                .collect();
            assert_eq!(of_kind.len(), 1, "one {k}: {events:#?}");
            of_kind[0].clone()
        })
        .collect()
}

#[tokio::test]
async fn every_outcome_puts_exactly_one_event_naming_the_request_and_the_key() {
    let mut s = Setup::start().await;
    let key_name = unique("announced");
    let mut req = request(&key_name);
    req["idempotency_id"] = json!("req-provision");

    // Created.
    let created = s.call(req.clone()).await;
    assert_eq!(created["status"], "created");
    let name = created["secret_name"].as_str().expect("name").to_owned();
    s.remember_plaintext(&name).await;
    let (kind, e) = s.one().await;
    assert_eq!(kind, dt::PROVISIONED);
    assert_eq!(e["version"], 1);
    assert_eq!(e["action"], "provision");
    assert_eq!(e["outcome"], "created");
    assert_eq!(e["repeat"], false);
    assert_eq!(e["request_id"], "req-provision");
    assert_eq!(e["trigger"], "direct");
    for field in [
        "secret_name",
        "secret_arn",
        "key_hash",
        "expires_at",
        "generation",
    ] {
        assert_eq!(e[field], created[field], "{field}");
    }
    assert_eq!(e["workspace"], "checkout");
    assert_eq!(e["cap"]["limit"], 50.0);
    assert_eq!(e["cap"]["limit_reset"], "monthly");
    assert_eq!(e["error"], Value::Null);

    // The duplicate delivery: the same request id, marked as a repeat.
    let again = s.call(req.clone()).await;
    assert_eq!(again["status"], "unchanged");
    let (kind, e) = s.one().await;
    assert_eq!(kind, dt::PROVISIONED);
    assert_eq!(
        (e["repeat"].clone(), e["request_id"].clone()),
        (json!(true), json!("req-provision"))
    );

    // A cap update.
    let mut update = req.clone();
    update["limit"] = json!(75);
    update["idempotency_id"] = json!("req-update");
    assert_eq!(s.call(update).await["status"], "updated");
    let (kind, e) = s.one().await;
    assert_eq!(kind, dt::UPDATED);
    assert_eq!(
        (e["outcome"].clone(), e["cap"]["limit"].clone()),
        (json!("updated"), json!(75.0))
    );

    // Rotate now: the request's acceptance, and finishSecret's completion (the local driver
    // runs the four steps before the reply).
    let rotate = json!({"action": "rotate", "secret_name": name, "idempotency_id": "req-rotate"});
    let rotated = s.call(rotate.clone()).await;
    assert_eq!(rotated["status"], "rotated");
    s.remember_plaintext(&name).await;
    let events = s.events().await;
    let [accepted, done] = &by_type(&events, &[dt::ROTATION_ACCEPTED, dt::ROTATED])[..] else {
        unreachable!()
    };
    assert_eq!(accepted["action"], "rotate");
    assert_eq!(accepted["reason"], "manual");
    assert_eq!(accepted["request_id"], "req-rotate");
    assert_eq!(accepted["key_hash"], rotated["key_hash"], "the successor");
    assert_eq!(accepted["workspace"], "checkout");
    assert_eq!(accepted["cap"]["limit"], 75.0);
    assert_eq!(accepted["expires_at"], done["expires_at"]);
    assert_eq!(done["action"], "rotation");
    assert_eq!(done["step"], "finishSecret");
    assert_eq!(done["trigger"], "secrets_manager");
    assert_eq!(done["reason"], "manual");
    assert_eq!(done["generation"], 2);
    assert_eq!(done["key_hash"], rotated["key_hash"]);
    assert_eq!(done["secret_name"], json!(name));
    assert_eq!(done["cap"]["limit"], 75.0, "the successor's cap");
    assert!(
        done["request_id"].as_str().is_some_and(|t| !t.is_empty()),
        "the token"
    );
    assert!(done["expires_at"].is_string());

    // The repeated rotate request: one acceptance, a repeat; no second rotation.
    s.call(rotate).await;
    let (kind, e) = s.one().await;
    assert_eq!(
        (kind.as_str(), e["repeat"].clone()),
        (dt::ROTATION_ACCEPTED, json!(true))
    );

    // A leak rotation.
    let leak = json!({"action": "rotate", "secret_name": name, "reason": "leak", "idempotency_id": "req-leak"});
    assert_eq!(s.call(leak).await["status"], "rotated");
    s.remember_plaintext(&name).await;
    let events = s.events().await;
    let [accepted, done] = &by_type(&events, &[dt::ROTATION_ACCEPTED, dt::ROTATED])[..] else {
        unreachable!()
    };
    assert_eq!(
        (accepted["reason"].clone(), done["reason"].clone()),
        (json!("leak"), json!("leak"))
    );
    assert_eq!(done["generation"], 3);

    // Revoke, and its repeat.
    let revoke = json!({"action": "revoke", "secret_name": name, "idempotency_id": "req-revoke"});
    assert_eq!(s.call(revoke.clone()).await["status"], "revoked");
    let (kind, e) = s.one().await;
    assert_eq!(kind, dt::REVOKED);
    assert_eq!(e["repeat"], false);
    assert_eq!(e["workspace"], "checkout");
    assert_eq!(e["generation"], 3);
    assert!(e["key_hash"].is_string(), "the revoked key: {e}");
    assert!(!e["revoked_keys"].as_array().expect("keys").is_empty());
    s.call(revoke).await;
    let (kind, e) = s.one().await;
    assert_eq!(
        (kind.as_str(), e["repeat"].clone()),
        (dt::REVOKED, json!(true))
    );

    s.assert_no_plaintext();
}

#[tokio::test]
async fn a_refusal_or_a_failed_step_puts_one_failure_event_naming_the_error() {
    let mut s = Setup::start().await;
    let key_name = unique("refused");

    // Bad input: refused, nothing created, one failure event naming the field.
    let mut bad = request(&key_name);
    bad["limit"] = json!(-1);
    bad["idempotency_id"] = json!("req-bad");
    let err = orkv_tests::roles::ops::handle_request(&s.d, bad, deadline())
        .await
        .expect_err("refused");
    assert_eq!(err.kind(), "InvalidRequest");
    let (kind, e) = s.one().await;
    assert_eq!(kind, dt::FAILED);
    assert_eq!(e["outcome"], "failed");
    assert_eq!(e["action"], "provision");
    assert_eq!(e["request_id"], "req-bad");
    assert_eq!(e["error"]["type"], "InvalidRequest");
    assert!(
        e["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("`limit`")),
        "{e}"
    );
    assert!(
        s.w.control.live_keys(&key_name).await.is_empty(),
        "nothing was created"
    );

    // An EventBridge event of a type the function does not serve.
    let unsupported = json!({"version": "0", "id": "evt-unknown", "source": "com.example.checkout",
        "detail-type": "Something Else", "account": "123456789012", "time": "2026-12-02T00:00:00Z",
        "region": "us-east-1", "resources": [], "detail": {}});
    let err = orkv_tests::roles::ops::handle_request(&s.d, unsupported, deadline())
        .await
        .expect_err("unsupported");
    let (kind, e) = s.one().await;
    assert_eq!(kind, dt::FAILED);
    assert_eq!(e["error"]["type"], err.kind());
    assert_eq!(
        (e["trigger"].clone(), e["request_id"].clone()),
        (json!("event_bridge"), json!("evt-unknown"))
    );

    // A rotation step Secrets Manager invokes with a token the secret does not know.
    let created = s.call(request(&key_name)).await;
    let name = created["secret_name"].as_str().expect("name").to_owned();
    s.remember_plaintext(&name).await;
    assert_eq!(s.one().await.0, dt::PROVISIONED);
    let event = RotationEvent::parse(
        &json!({"Step": "createSecret", "SecretId": created["secret_arn"],
        "ClientRequestToken": "00000000-0000-4000-8000-000000000000"}),
    )
    .expect("event");
    let err = orkv_tests::roles::ops::run_step(&s.d, &event, deadline())
        .await
        .expect_err("unknown token");
    let (kind, e) = s.one().await;
    assert_eq!(kind, dt::FAILED);
    assert_eq!(e["action"], "rotation");
    assert_eq!(e["step"], Step::CreateSecret.as_str());
    assert_eq!(e["error"]["type"], err.kind());
    assert_eq!(e["secret_arn"], created["secret_arn"]);
    assert_eq!(e["secret_name"], json!(name));
    assert_eq!(e["request_id"], "00000000-0000-4000-8000-000000000000");

    s.assert_no_plaintext();
}

#[tokio::test]
async fn a_tenants_events_name_the_tenant_and_a_refusal_reveals_nothing_it_does_not_own() {
    let w = World::start().await;
    let q = ResultQueue::create(&w.sm_url).await;
    let prefix = format!("openrouter/{}/", unique("ev"));
    let policy = json!({
        "tenants": {
            "checkout": {"workspaces": [{"workspace": "checkout", "max_limit": 100}]},
            "search": {"workspaces": [{"workspace": "search", "max_limit": 20}]}
        },
        "admin_alias": "platform-admin"
    })
    .to_string();
    let d = w
        .rotating_deps(&[("ORKV_POLICY", &policy), ("ORKV_SECRET_PREFIX", &prefix)])
        .with_events(q.bus().await);
    let mut req = request(&unique("team"));
    req["idempotency_id"] = json!("req-team");
    let created = call_as(&d, "checkout", req).await.expect("created");
    let (kind, e) = q.one().await;
    assert_eq!(
        (kind.as_str(), e["tenant"].clone()),
        (dt::PROVISIONED, json!("checkout"))
    );

    // A rotation step that fails on that secret (Secrets Manager names it by ARN): its failure
    // event names the secret and the tenant, so the tenant's subscription sees it.
    let event = RotationEvent::parse(&json!({"Step": "testSecret",
        "SecretId": created["secret_arn"], "ClientRequestToken": "00000000-0000-4000-8000-00000000f00d"}))
    .expect("event");
    orkv_tests::roles::ops::run_step(&d, &event, deadline())
        .await
        .expect_err("unknown token");
    let (kind, e) = q.one().await;
    assert_eq!(kind, dt::FAILED);
    assert_eq!(
        (
            e["action"].clone(),
            e["tenant"].clone(),
            e["secret_name"].clone(),
            e["secret_arn"].clone()
        ),
        (
            json!("rotation"),
            json!("checkout"),
            created["secret_name"].clone(),
            created["secret_arn"].clone()
        )
    );

    // Another tenant names that secret: refused; its failure event names the caller only,
    // and says no more than its reply.
    let err = call_as(
        &d,
        "search",
        json!({"action": "revoke", "secret_name": created["secret_name"], "idempotency_id": "req-steal"}),
    )
    .await
    .expect_err("out of scope");
    let (kind, e) = q.one().await;
    assert_eq!(kind, dt::FAILED);
    assert_eq!(e["tenant"], "search");
    assert_eq!(e["error"]["type"], err.kind());
    assert_eq!(e["error"]["message"], err.to_string());
    for field in ["secret_arn", "key_hash", "workspace", "generation", "cap"] {
        assert_eq!(
            e[field],
            Value::Null,
            "{field} of a secret the caller does not own"
        );
    }
    // An inventory changes nothing and announces nothing.
    call_as(&d, "checkout", json!({"action": "inventory"}))
        .await
        .expect("inventory");
    assert!(q.drain().await.is_empty());
}

#[tokio::test]
async fn a_bus_that_refuses_every_put_never_fails_the_key_operation() {
    let w = World::start().await;
    // An endpoint nothing listens on: every put fails after its retries.
    let dead = format!("http://127.0.0.1:{}", orkv_tests::free_port());
    let bus = orkv_events::EventBus::from_shared_config(
        &aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&dead)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
                "test", "test", None, None, "static",
            ))
            .load()
            .await,
        "orkv-results",
        "orkv.key-vending",
    );
    let put = bus
        .put(&orkv_events::Event {
            detail_type: dt::PROVISIONED.into(),
            detail: json!({}),
            resources: vec![],
        })
        .await;
    assert!(put.is_err(), "the bus refuses");
    let d = deps(&w).with_events(bus);
    let created =
        orkv_tests::roles::ops::handle_request(&d, request(&unique("unheard")), deadline())
            .await
            .expect("the operation succeeds without its event");
    assert_eq!(created["status"], "created");
    let name = created["secret_name"].as_str().expect("name");
    let (_, rec) = world::current_of(&w.sm, name).await;
    assert!(w.works(rec["api_key"].as_str().expect("key")).await);
}

#[tokio::test]
async fn an_entry_aws_answers_as_failed_is_put_again_and_delivered_once() {
    // AWS may answer PutEvents 200 with the entry failed (throttled); moto never does.
    let mut s = Setup::start().await;
    let proxy = s.w.strict.clone().expect("the strict layer");
    proxy.fail_put_entries(2);
    proxy.reset().await;
    let created = s.call(request(&unique("retried"))).await;
    assert_eq!(created["status"], "created");
    s.remember_plaintext(created["secret_name"].as_str().expect("name"))
        .await;
    let (kind, e) = s.one().await;
    assert_eq!(
        (kind.as_str(), e["key_hash"].clone()),
        (dt::PROVISIONED, created["key_hash"].clone())
    );
    assert_eq!(
        proxy.calls().await.get("PutEvents"),
        Some(&3),
        "two failed rounds, then the put"
    );

    // Failed every time: the rounds are bounded, and the operation still answers.
    proxy.fail_put_entries(u64::MAX);
    proxy.reset().await;
    let created = s.call(request(&unique("unannounced"))).await;
    assert_eq!(created["status"], "created");
    assert_eq!(
        proxy.calls().await.get("PutEvents"),
        Some(&u64::from(orkv_events::FAILED_ENTRY_ROUNDS))
    );
    assert!(s.events().await.is_empty());
    proxy.fail_put_entries(0);
    s.assert_no_plaintext();
}
