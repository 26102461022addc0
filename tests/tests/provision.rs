//! The provision logic against moto server and the emulator, in process so that every remote
//! call is counted (emulator counters + an SDK interceptor).

use std::time::{Duration, Instant};

use orkv_tests::world::World;
use orkv_tests::{MANAGEMENT_KEY, unique};
use orkv_vending::{Deps, ops::provision::Status};
use serde_json::{Value, json};

/// In-process dependencies with a pending lease of `lease_secs` and management key `key`.
fn deps(w: &World, lease_secs: u64, key: &str) -> Deps {
    let lease = lease_secs.to_string();
    w.deps(&[
        ("ORKV_PENDING_LEASE_SECONDS", lease.as_str()),
        ("OPENROUTER_MANAGEMENT_KEY", key),
    ])
}

fn request(key_name: &str) -> Value {
    json!({"workspace": "checkout", "key_name": key_name, "limit": 50, "limit_reset": "monthly",
           "ttl_seconds": 86400, "rotate_before_seconds": 3600, "tags": {"team": "payments"}})
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

async fn secret_value(w: &World, name: &str) -> Value {
    w.current(name).await.1
}

async fn secret_exists(w: &World, name: &str) -> bool {
    w.sm.describe_secret().secret_id(name).send().await.is_ok()
}

#[tokio::test]
async fn a_new_key_is_minted_stored_at_once_and_answered_without_its_plaintext() {
    let w = World::start().await;
    let d = deps(&w, 30, MANAGEMENT_KEY);
    let name = unique("svc");
    let reply = orkv_tests::roles::ops::handle(&d, request(&name), deadline())
        .await
        .expect("created");
    assert_eq!(reply.status, Status::Created);
    assert_eq!(reply.generation, 1);
    assert_eq!(reply.secret_name, format!("openrouter/checkout/{name}"));
    let value = secret_value(&w, &reply.secret_name).await;
    let plaintext = value["api_key"].as_str().expect("api_key");
    assert_eq!(orkv_openrouter::key_hash(plaintext), reply.key_hash);
    assert_eq!(value["key_hash"], json!(reply.key_hash));
    assert_eq!(value["state"], json!("active"));
    assert_eq!(value["limit"], json!(50.0));
    assert!(
        !serde_json::to_string(&reply)
            .expect("json")
            .contains(plaintext)
    );
    // The live key carries the cap and expiry that were asked for.
    let live = w.control.live_keys(&reply.secret_name).await;
    assert_eq!(live.len(), 1);
    assert_eq!(live[0]["hash"], json!(reply.key_hash));
    assert_eq!(live[0]["limit"], json!(50.0));
    assert_eq!(live[0]["expires_at"], json!(reply.expires_at));
    // Tags carry what a sweep needs without reading the value.
    let described =
        w.sm.describe_secret()
            .secret_id(&reply.secret_name)
            .send()
            .await
            .expect("describe");
    let tags: std::collections::HashMap<_, _> = described
        .tags()
        .iter()
        .map(|t| {
            (
                t.key().unwrap_or_default().to_owned(),
                t.value().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(tags["orkv:managed-by"], "openrouter-key-vending");
    assert_eq!(tags["orkv:workspace"], reply.workspace_id);
    assert_eq!(tags["orkv:expires-at"], reply.expires_at);
    assert_eq!(
        tags["orkv:openrouter-key-name"],
        live[0]["name"].as_str().unwrap_or_default()
    );
    assert_eq!(tags["team"], "payments");
}

#[tokio::test]
async fn warm_path_costs_three_writes_and_two_read_backs_for_a_new_key_and_one_for_a_repeat() {
    let w = World::start().await;
    let d = deps(&w, 30, MANAGEMENT_KEY);
    // Warm the container: management key and workspace lookups are cached from here on.
    orkv_tests::roles::ops::handle(&d, request(&unique("warm")), deadline())
        .await
        .expect("warm-up");
    let name = unique("counted");
    w.control.reset_calls().await;
    w.sm_calls.reset();
    let created = orkv_tests::roles::ops::handle(&d, request(&name), deadline())
        .await
        .expect("created");
    assert_eq!(created.status, Status::Created);
    // CreateSecret (the claim), POST /keys, PutSecretValue (the active record), then the
    // read-back the reply's `created` rests on: GetSecretValue(AWSCURRENT) and GET /key with
    // the key read.
    let calls = w.control.calls().await;
    assert_eq!(calls["calls"]["create_key"], json!(1));
    assert_eq!(calls["calls"]["get_current_key"], json!(1));
    let openrouter = w.control.total_calls().await;
    let aws = w.sm_calls.get();
    assert_eq!(
        (openrouter, aws),
        (2, 3),
        "new key: {openrouter} OpenRouter + {aws} Secrets Manager calls"
    );
    w.control.reset_calls().await;
    w.sm_calls.reset();
    let again = orkv_tests::roles::ops::handle(&d, request(&name), deadline())
        .await
        .expect("repeat");
    assert_eq!(again.status, Status::Unchanged);
    assert_eq!(again.key_hash, created.key_hash);
    assert_eq!(again.secret_arn, created.secret_arn);
    let total = w.control.total_calls().await + w.sm_calls.get();
    assert!(total <= 1, "repeat: {total} calls");
    // A changed cap is a DescribeSecret (a rotation running would take the change instead:
    // writing a version during it makes Secrets Manager abandon it), a PATCH in place, and the
    // record update: the new version under its own label, then AWSCURRENT moved to it with a
    // compare-and-set (so a rotation that finished meanwhile is never overwritten), the cap
    // tag the inventory reads; then the read-back: GetSecretValue(AWSCURRENT) and GET /key
    // showing the new cap.
    let mut changed = request(&name);
    changed["limit"] = json!(75);
    w.control.reset_calls().await;
    w.sm_calls.reset();
    let updated = orkv_tests::roles::ops::handle(&d, changed, deadline())
        .await
        .expect("updated");
    assert_eq!(updated.status, Status::Updated);
    assert_eq!(updated.key_hash, created.key_hash);
    assert_eq!(w.control.total_calls().await + w.sm_calls.get(), 8);
    let live = w.control.live_keys(&created.secret_name).await;
    assert_eq!(live.len(), 1);
    assert_eq!(live[0]["limit"], json!(75.0));
    assert_eq!(
        secret_value(&w, &created.secret_name).await["limit"],
        json!(75.0)
    );
}

#[tokio::test]
async fn ten_deliveries_five_of_them_concurrent_make_one_key_and_one_secret() {
    let w = World::start().await;
    let d = deps(&w, 30, MANAGEMENT_KEY);
    let name = unique("dup");
    let event = json!({"version": "0", "id": unique("event"), "detail-type": "OpenRouter Key Requested",
        "source": "com.example.platform", "account": "123456789012", "time": "2026-11-22T10:00:00Z",
        "region": "us-east-1", "resources": [], "detail": request(&name)});
    let concurrent = futures_join(&d, &event, 5).await;
    let mut hashes: Vec<String> = Vec::new();
    for result in concurrent {
        hashes.push(result.expect("each concurrent delivery answers").key_hash);
    }
    for _ in 0..5 {
        hashes.push(
            orkv_tests::roles::ops::handle(&d, event.clone(), deadline())
                .await
                .expect("repeat")
                .key_hash,
        );
    }
    hashes.dedup();
    assert_eq!(hashes.len(), 1, "every delivery names the same key");
    let secret_name = format!("openrouter/checkout/{name}");
    assert_eq!(w.control.live_keys(&secret_name).await.len(), 1);
    let created = w.control.calls().await["calls"]["create_key"]
        .as_u64()
        .unwrap_or(0);
    assert_eq!(created, 1, "exactly one POST /keys");
    let listed =
        w.sm.list_secrets()
            .filters(
                aws_sdk_secretsmanager::types::Filter::builder()
                    .key(aws_sdk_secretsmanager::types::FilterNameStringType::Name)
                    .values(&secret_name)
                    .build(),
            )
            .send()
            .await
            .expect("list");
    assert_eq!(listed.secret_list().len(), 1);
}

/// Runs `n` deliveries of `event` concurrently on this task.
async fn futures_join(
    d: &Deps,
    event: &Value,
    n: usize,
) -> Vec<Result<orkv_vending::ops::provision::ProvisionReply, orkv_vending::VendError>> {
    join_all(
        (0..n)
            .map(|_| Box::pin(orkv_tests::roles::ops::handle(d, event.clone(), deadline())))
            .collect(),
    )
    .await
}

async fn join_all<F: std::future::Future>(futs: Vec<std::pin::Pin<Box<F>>>) -> Vec<F::Output> {
    // A tiny join_all: poll all futures concurrently on this task.
    let mut futs: Vec<Option<std::pin::Pin<Box<F>>>> = futs.into_iter().map(Some).collect();
    let mut results: Vec<Option<F::Output>> = (0..futs.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, slot) in futs.iter_mut().enumerate() {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        results[i] = Some(v);
                        *slot = None;
                    }
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    results.into_iter().flatten().collect()
}

#[tokio::test]
async fn a_dropped_create_response_is_reconciled_to_exactly_one_referenced_key() {
    let w = World::start().await;
    let d = deps(&w, 30, MANAGEMENT_KEY);
    orkv_tests::roles::ops::handle(&d, request(&unique("warm")), deadline())
        .await
        .expect("warm-up");
    w.control
        .fault(json!({"op": "create_key", "action": "drop_after_commit"}))
        .await;
    let name = unique("dropped");
    let reply = orkv_tests::roles::ops::handle(&d, request(&name), deadline())
        .await
        .expect("created after reconciling");
    assert_eq!(reply.status, Status::Created);
    let live = w.control.live_keys(&reply.secret_name).await;
    assert_eq!(live.len(), 1, "the orphan of the dropped reply was deleted");
    assert_eq!(live[0]["hash"], json!(reply.key_hash));
    let deleted = w.control.state().await["deleted"]
        .as_array()
        .map_or(0, Vec::len);
    assert_eq!(deleted, 1);
    let value = secret_value(&w, &reply.secret_name).await;
    assert_eq!(value["key_hash"], json!(reply.key_hash));
}

#[tokio::test]
async fn a_crash_between_create_and_store_is_cleaned_up_by_the_retry() {
    let w = World::start().await;
    let name = unique("crash");
    // The first invocation dies (its future is dropped) while OpenRouter's reply is in flight:
    // the key exists, its plaintext is lost, the secret holds only the pending record.
    let first = deps(&w, 2, MANAGEMENT_KEY);
    orkv_tests::roles::ops::handle(&first, request(&unique("warm")), deadline())
        .await
        .expect("warm-up");
    w.control
        .fault(json!({"op": "create_key", "action": "delay_after_commit", "ms": 60000}))
        .await;
    let secret_name = format!("openrouter/checkout/{name}");
    let crashed = tokio::time::timeout(Duration::from_secs(20), async {
        let attempt = orkv_tests::roles::ops::handle(&first, request(&name), deadline());
        tokio::pin!(attempt);
        loop {
            tokio::select! {
                _ = &mut attempt => panic!("the first attempt should still be waiting"),
                () = tokio::time::sleep(Duration::from_millis(20)) => {
                    if !w.control.live_keys(&secret_name).await.is_empty() { break; }
                }
            }
        }
    })
    .await;
    assert!(
        crashed.is_ok(),
        "the key was created while the caller waited"
    );
    drop(first);
    assert_eq!(
        w.control.live_keys(&secret_name).await.len(),
        1,
        "an orphan exists now"
    );
    assert_eq!(
        secret_value(&w, &secret_name).await["state"],
        json!("pending")
    );
    // A fresh container retries: it waits out the lease, deletes the orphan, mints again.
    let retry = deps(&w, 2, MANAGEMENT_KEY);
    let reply = orkv_tests::roles::ops::handle(&retry, request(&name), deadline())
        .await
        .expect("retry succeeds");
    assert_eq!(reply.status, Status::Created);
    let live = w.control.live_keys(&secret_name).await;
    assert_eq!(live.len(), 1, "exactly one live key");
    assert_eq!(live[0]["hash"], json!(reply.key_hash));
    let value = secret_value(&w, &secret_name).await;
    assert_eq!(value["key_hash"], json!(reply.key_hash));
    assert_eq!(
        orkv_openrouter::key_hash(value["api_key"].as_str().unwrap_or_default()),
        reply.key_hash
    );
}

#[tokio::test]
async fn bad_input_is_refused_by_field_and_creates_nothing() {
    let w = World::start().await;
    let d = deps(&w, 30, MANAGEMENT_KEY);
    let name = unique("bad");
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!({"workspace": "marketing"}),
            "UnknownWorkspace",
            "`workspace`",
        ),
        (
            json!({"workspace": "default"}),
            "UnknownWorkspace",
            "`workspace`",
        ),
        (
            json!({"limit": null}),
            "PolicyViolation",
            "`limit`: is required",
        ),
        (json!({"limit": -5}), "InvalidRequest", "`limit`"),
        (
            json!({"limit": 500}),
            "PolicyViolation",
            "maximum cap of 100",
        ),
        (
            json!({"limit_reset": "yearly"}),
            "InvalidRequest",
            "`limit_reset`",
        ),
        (
            json!({"ttl_seconds": null, "expires_at": "2001-01-01T00:00:00Z"}),
            "InvalidRequest",
            "`expires_at`: must be in the future",
        ),
        (
            json!({"ttl_seconds": 900000000}),
            "PolicyViolation",
            "`ttl_seconds`: the key may live at most",
        ),
        (
            json!({"key_name": 42}),
            "InvalidRequest",
            "`key_name`: must be a string",
        ),
        (
            json!({"description": "x".repeat(5000)}),
            "InvalidRequest",
            "`description`: must be at most",
        ),
        (
            json!({"secret_name": "elsewhere/key"}),
            "PolicyViolation",
            "`secret_name`: must start with",
        ),
    ];
    for (patch, kind, text) in cases {
        let mut req = request(&name);
        if let (Some(obj), Value::Object(p)) = (req.as_object_mut(), patch.clone()) {
            obj.extend(p);
        }
        let err = orkv_tests::roles::ops::handle(&d, req, deadline())
            .await
            .expect_err("refused");
        assert_eq!(err.kind(), kind, "{patch}: {err}");
        assert!(err.to_string().contains(text), "{patch}: {err}");
    }
    let err = orkv_tests::roles::ops::handle(
        &d,
        json!({"id": "e", "detail-type": "Something Else", "source": "s", "detail": {}}),
        deadline(),
    )
    .await
    .expect_err("unsupported");
    assert_eq!(err.kind(), "UnsupportedEvent");
    let err = orkv_tests::roles::ops::handle(&d, json!("not an object"), deadline())
        .await
        .expect_err("shape");
    assert_eq!(err.kind(), "InvalidRequest");
    assert_eq!(
        w.control.calls().await["calls"]["create_key"],
        Value::Null,
        "no key was created"
    );
    assert!(!secret_exists(&w, &format!("openrouter/checkout/{name}")).await);
}

#[tokio::test]
async fn fixed_field_changes_need_a_rotation_and_a_key_name_change_is_refused() {
    let w = World::start().await;
    let d = deps(&w, 30, MANAGEMENT_KEY);
    let name = unique("fixed");
    let created = orkv_tests::roles::ops::handle(&d, request(&name), deadline())
        .await
        .expect("created");
    // A changed lifetime becomes a rotation (covered in tests/rotation.rs); with no rotation
    // function configured it is refused by name and nothing changes.
    let mut longer = request(&name);
    longer["ttl_seconds"] = json!(172_800);
    let err = orkv_tests::roles::ops::handle(&d, longer, deadline())
        .await
        .expect_err("no rotation function");
    assert_eq!(err.kind(), "ConfigError");
    assert!(
        err.to_string().contains("ORKV_ROTATION_LAMBDA_ARN"),
        "{err}"
    );
    assert_eq!(
        secret_value(&w, &created.secret_name).await["key_hash"],
        json!(created.key_hash)
    );
    // Another key_name for an existing secret_name is refused with the secret's identity.
    let mut renamed = request(&unique("other"));
    renamed["secret_name"] = json!(created.secret_name);
    let err = orkv_tests::roles::ops::handle(&d, renamed, deadline())
        .await
        .expect_err("immutable");
    assert_eq!(err.kind(), "ImmutableFieldChanged");
    let text = err.to_string();
    assert!(
        text.contains("`key_name`")
            && text.contains(&created.secret_arn)
            && text.contains(&created.key_hash),
        "{text}"
    );
    assert_eq!(w.control.live_keys(&created.secret_name).await.len(), 1);
}

#[tokio::test]
async fn openrouter_refusals_surface_typed_and_leave_nothing() {
    let w = World::start().await;
    // A wrong management key: 401.
    let wrong = deps(&w, 30, "sk-or-v1-wrong");
    let err = orkv_tests::roles::ops::handle(&wrong, request(&unique("x")), deadline())
        .await
        .expect_err("401");
    assert_eq!(err.kind(), "OpenRouterUnauthorized");
    // An inference key used as the management key: 403.
    let (inference, _) = w.control.add_key(json!({"name": "not-management"})).await;
    let forbidden = deps(&w, 30, &inference);
    let err = orkv_tests::roles::ops::handle(&forbidden, request(&unique("x")), deadline())
        .await
        .expect_err("403");
    assert_eq!(err.kind(), "OpenRouterForbidden");
    // 429 and 500 on create, with a working key.
    let d = deps(&w, 30, MANAGEMENT_KEY);
    orkv_tests::roles::ops::handle(&d, request(&unique("warm")), deadline())
        .await
        .expect("warm-up");
    let name = unique("limited");
    // A wait longer than the client waits (OpenRouter's documentation shows 60 s): refused,
    // the wait named. A short one is waited and the create sent again
    // (`openrouter_answers.rs::a_rate_limited_create_is_sent_again_after_its_wait_and_mints_one_key`).
    w.control
        .fault(json!({"op": "create_key", "action": "rate_limit", "retry_after": 60}))
        .await;
    let err = orkv_tests::roles::ops::handle(&d, request(&name), deadline())
        .await
        .expect_err("429");
    assert_eq!(err.kind(), "OpenRouterRateLimited");
    assert!(err.to_string().contains("retry after 60 s"), "{err}");
    assert!(
        !secret_exists(&w, &format!("openrouter/checkout/{name}")).await,
        "no secret left"
    );
    w.control
        .fault(json!({"op": "create_key", "action": "status", "status": 500, "times": 2}))
        .await;
    let name = unique("failing");
    let err = orkv_tests::roles::ops::handle(&d, request(&name), deadline())
        .await
        .expect_err("500");
    assert_eq!(err.kind(), "OpenRouterCreateOutcomeUnknown");
    assert!(err.to_string().contains("500"), "{err}");
    assert!(w.control.live_keys(&name).await.is_empty(), "no key left");
    // Both injected 500s were met (one invocation tolerates two ambiguous creates, each
    // cleaned up); the next delivery finishes the job cleanly.
    let reply = orkv_tests::roles::ops::handle(&d, request(&name), deadline())
        .await
        .expect("created on the retry");
    assert_eq!(reply.status, Status::Created);
    assert_eq!(w.control.live_keys(&reply.secret_name).await.len(), 1);
}

#[tokio::test]
async fn the_management_key_is_read_from_secrets_manager_once_per_container() {
    let w = World::start().await;
    // The name the module's resource policy opens to the functions' roles (the layer lets them
    // read it untagged, as IAM would).
    let secret_id = orkv_tests::MANAGEMENT_KEY_SECRET.to_owned();
    w.sm.create_secret()
        .name(&secret_id)
        .secret_string(json!({"management_key": MANAGEMENT_KEY}).to_string())
        .send()
        .await
        .expect("management secret");
    let d = w.deps(&[("OPENROUTER_MANAGEMENT_KEY_SECRET_ID", secret_id.as_str())]);
    orkv_tests::roles::ops::handle(&d, request(&unique("a")), deadline())
        .await
        .expect("first");
    w.sm_calls.reset();
    orkv_tests::roles::ops::handle(&d, request(&unique("b")), deadline())
        .await
        .expect("second");
    // CreateSecret, PutSecretValue and the read-back GetSecretValue: no management key read.
    assert_eq!(w.sm_calls.get(), 3, "no re-read of the management key");
    let key = d.openrouter().await.expect("client");
    assert!(!format!("{key:?}").contains(MANAGEMENT_KEY));
}

#[tokio::test]
async fn a_lost_put_reply_in_provision_keeps_the_stored_key() {
    let (w, proxy) = World::behind_proxy().await;
    let d = orkv_tests::rotating::deps(&w);
    proxy.cut_next("PutSecretValue", 1000);
    let reply = orkv_tests::roles::ops::handle(
        &d,
        orkv_tests::rotating::request(&unique("lostprov")),
        deadline(),
    )
    .await
    .expect("the stored key is recognised by reading it back");
    proxy.cut_next("PutSecretValue", 0);
    assert_eq!(reply.status, Status::Created);
    assert!(proxy.faults().1 >= 4, "{:?}", proxy.faults());
    let (_, rec) = w.current(&reply.secret_name).await;
    assert_eq!(rec["key_hash"].as_str(), Some(reply.key_hash.as_str()));
    assert!(w.works(rec["api_key"].as_str().expect("key")).await);
    assert_eq!(w.live_for(&reply.secret_name).await.len(), 1);
    // A repeat of the request reads it and changes nothing.
    let again = orkv_tests::roles::ops::handle(
        &d,
        orkv_tests::rotating::request(&reply.key_name),
        deadline(),
    )
    .await
    .expect("repeat");
    assert_eq!(again.status, Status::Unchanged);
    assert_eq!(again.key_hash, reply.key_hash);
}

/// Every generation's OpenRouter key name (`orkv:<secret>:r<12 hex>`) must fit OpenRouter's 256
/// characters, or a secret vends today and can never rotate: a longer secret name is refused
/// up front, naming the field, and creates nothing.
#[tokio::test]
async fn a_secret_name_too_long_for_its_successors_key_name_is_refused_and_creates_nothing() {
    let w = World::start().await;
    let d = deps(&w, 30, MANAGEMENT_KEY);
    let name = format!("openrouter/{}", "n".repeat(238 - "openrouter/".len()));
    let mut req = request(&unique("long"));
    req["secret_name"] = json!(name);
    let err = orkv_tests::roles::ops::handle(&d, req, deadline())
        .await
        .expect_err("too long");
    assert_eq!(err.kind(), "InvalidRequest");
    assert!(err.to_string().contains("`secret_name`"), "{err}");
    assert!(err.to_string().contains("237"), "{err}");
    assert!(!secret_exists(&w, &name).await);
    assert_eq!(w.control.calls().await["calls"]["create_key"], json!(null));
}

/// Under the tag-scoped role a secret that is not the product's cannot be read at all
/// (AccessDenied, strict layer): a request naming it is refused as not managed, after a
/// bounded number of tries, and changes nothing.
#[tokio::test]
async fn a_foreign_secret_the_role_cannot_read_is_refused_as_not_managed() {
    let (w, proxy) = World::behind_proxy().await;
    proxy.set_strict(true);
    let d = deps(&w, 30, MANAGEMENT_KEY);
    let name = format!("openrouter/checkout/{}", unique("foreign"));
    let (direct, _) = orkv_tests::secrets_client(&w.moto).await;
    direct
        .create_secret()
        .name(&name)
        .secret_string("someone else's")
        .send()
        .await
        .expect("foreign secret");
    let mut req = request(&unique("foreign"));
    req["secret_name"] = json!(name);
    let err = orkv_tests::roles::ops::handle(&d, req, deadline())
        .await
        .expect_err("not ours");
    assert_eq!(err.kind(), "SecretNotManaged", "{err}");
    assert_eq!(secret_value_raw(&w, &name).await, "someone else's");
    assert_eq!(w.control.calls().await["calls"]["create_key"], json!(null));
}

/// Read straight from moto, past the strict layer.
async fn secret_value_raw(w: &World, name: &str) -> String {
    let (direct, _) = orkv_tests::secrets_client(&w.moto).await;
    direct
        .get_secret_value()
        .secret_id(name)
        .send()
        .await
        .expect("value")
        .secret_string()
        .unwrap_or_default()
        .to_owned()
}

/// A forced delete finishes asynchronously: right after it, AWS refuses to create the name
/// again ("already scheduled for deletion") and asks callers to back off and retry (API
/// reference, *DeleteSecret*). The strict layer keeps the name taken for a moment; a request
/// retried right after a refused first mint (which deletes its secret) waits it out.
#[tokio::test]
async fn a_retry_right_after_a_refused_first_mint_waits_out_the_asynchronous_delete() {
    let (w, proxy) = World::behind_proxy().await;
    proxy.set_strict(true);
    let d = deps(&w, 30, MANAGEMENT_KEY);
    w.control
        .fault(json!({"op": "create_key", "action": "status", "status": 400, "times": 1}))
        .await;
    let name = unique("redo");
    orkv_tests::roles::ops::handle(&d, request(&name), deadline())
        .await
        .expect_err("the first mint is refused");
    let secret = format!("openrouter/checkout/{name}");
    assert!(
        !secret_exists(&w, &secret).await,
        "the refused request left nothing"
    );
    let reply = orkv_tests::roles::ops::handle(&d, request(&name), deadline())
        .await
        .expect("created once the delete finished");
    assert_eq!(reply.status, Status::Created);
    assert_eq!(w.control.live_keys(&secret).await.len(), 1);
}
