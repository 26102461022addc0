//! Property-based fuzzing of every input parser: EventBridge envelopes and details, pipeline
//! payloads, rotation events, scheduler input, the secret JSON read back, and OpenRouter
//! responses. Inputs are arbitrary JSON, and byte-level mutations of the samples in `events/`
//! (the seed corpus). Every parser must return (never panic), and every rejection must be a
//! clear error: non-empty, and never echoing a key.
//!
//! `make test` runs a short pass (PROPTEST_CASES, default 256 per target); `make fuzz` runs
//! millions of cases in release mode and prints the executions per target.

use std::sync::atomic::{AtomicU64, Ordering};

use orkv_vending::domain::policy::Policy;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use secrecy::SecretString;
use serde_json::Value;

const SECRET_SENTINEL: &str = "sk-or-v1-fuzz-sentinel-0123456789abcdef";

fn policy() -> Policy {
    Policy::from_json(orkv_tests::POLICY).expect("policy")
}

fn seeds() -> Vec<Vec<u8>> {
    let dir = orkv_tests::workspace_root().join("events");
    let mut out: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .expect("events/")
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| std::fs::read(e.path()).ok())
        .collect();
    out.sort();
    assert!(out.len() >= 10, "the seed corpus is events/*.json");
    out
}

/// Arbitrary JSON, biased towards the field names the parsers look for.
fn json_value() -> impl Strategy<Value = Value> {
    let names = prop::sample::select(vec![
        "workspace",
        "key_name",
        "limit",
        "limit_reset",
        "include_byok_in_limit",
        "expires_at",
        "ttl_seconds",
        "rotate_before_seconds",
        "secret_name",
        "description",
        "tags",
        "kms_key_id",
        "idempotency_id",
        "action",
        "reason",
        "detail",
        "detail-type",
        "source",
        "id",
        "time",
        "Step",
        "SecretId",
        "ClientRequestToken",
        "RotationToken",
        "execution_id",
        "scheduled_time",
        "dry_run",
        "managed_by",
        "state",
        "api_key",
        "key_hash",
        "schema",
        "generation",
        "data",
        "key",
        "hash",
        "name",
        "disabled",
        "limit_remaining",
        "x",
    ])
    .prop_map(str::to_owned);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop::sample::select(vec![
            "checkout",
            "search",
            "monthly",
            "daily",
            "leak",
            "createSecret",
            "finishSecret",
            "OpenRouter Key Requested",
            "OpenRouter Key Rotation Requested",
            "OpenRouter Key Revocation Requested",
            "openrouter-key-vending",
            "active",
            "pending",
            "2026-12-01T00:00:00Z",
            "openrouter/checkout/x",
            SECRET_SENTINEL,
            "",
            "\u{0}",
            "../../etc",
            "rotate",
            "revoke",
            "provision",
        ])
        .prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(names.clone(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A seed from events/ with byte edits applied (flip, insert, delete, splice).
fn mutated_seed() -> impl Strategy<Value = Vec<u8>> {
    let corpus = seeds();
    (
        prop::sample::select(corpus),
        prop::collection::vec(
            (any::<u8>(), any::<prop::sample::Index>(), any::<u8>()),
            0..8,
        ),
    )
        .prop_map(|(mut bytes, edits)| {
            for (op, at, b) in edits {
                if bytes.is_empty() {
                    bytes.push(b);
                    continue;
                }
                let i = at.index(bytes.len());
                match op % 4 {
                    0 => bytes[i] ^= b | 1,
                    1 => bytes.insert(i, b),
                    2 => {
                        bytes.remove(i);
                    }
                    _ => bytes.truncate(i),
                }
            }
            bytes
        })
}

fn check_error(what: &str, message: &str) {
    assert!(!message.trim().is_empty(), "{what}: an empty error message");
    assert!(
        !message.contains(SECRET_SENTINEL),
        "{what}: the error echoes a key: {message}"
    );
}

/// Every parser over one JSON value. Answers how many parsers ran.
fn every_parser(v: &Value) -> u64 {
    let policy = policy();
    let now = time::OffsetDateTime::now_utc();
    // EventBridge envelope / pipeline payload, then the request itself.
    match orkv_vending::input::invocation::parse(v.clone()) {
        Ok(inv) => {
            if let Err(e) =
                orkv_vending::input::provision::ProvisionRequest::parse(&inv.request, &policy, now)
            {
                check_error("request", &e.to_string());
            }
        }
        Err(e) => check_error("invocation", &e.to_string()),
    }
    if let Err(e) = orkv_vending::input::provision::ProvisionRequest::parse(v, &policy, now) {
        check_error("request", &e.to_string());
    }
    if let Err(e) = orkv_vending::input::rotation::RotationEvent::parse(v) {
        check_error("rotation event", &e.to_string());
    }
    if let Err(e) = orkv_vending::input::sweep::SweepInput::parse(v) {
        check_error("sweep input", &e.to_string());
    }
    // The secret JSON read back.
    let text = v.to_string();
    if let Some(Err(e)) =
        orkv_vending::domain::record::SecretRecord::from_secret(&SecretString::from(text.clone()))
    {
        check_error("secret record", &e);
    }
    // OpenRouter responses.
    if let Ok(created) = serde_json::from_str::<orkv_openrouter::CreatedKey>(&text) {
        assert!(
            !format!("{created:?}").contains(SECRET_SENTINEL),
            "Debug of a created key shows its plaintext"
        );
    }
    let _ = serde_json::from_str::<orkv_openrouter::Key>(&text);
    let _ = serde_json::from_str::<orkv_openrouter::CurrentKey>(&text);
    let _ = serde_json::from_str::<orkv_openrouter::Workspace>(&text);
    7
}

fn runner() -> TestRunner {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

#[test]
fn arbitrary_json_never_panics_a_parser_and_every_rejection_is_clear() {
    let runs = AtomicU64::new(0);
    let inputs = AtomicU64::new(0);
    runner()
        .run(&json_value(), |v| {
            inputs.fetch_add(1, Ordering::Relaxed);
            runs.fetch_add(every_parser(&v), Ordering::Relaxed);
            Ok(())
        })
        .expect("no parser panicked");
    println!(
        "fuzz arbitrary_json: {} inputs, {} parser executions",
        inputs.load(Ordering::Relaxed),
        runs.load(Ordering::Relaxed)
    );
    assert!(runs.load(Ordering::Relaxed) > 0);
}

#[test]
fn mutated_sample_events_never_panic_a_parser() {
    let runs = AtomicU64::new(0);
    let inputs = AtomicU64::new(0);
    runner()
        .run(&mutated_seed(), |bytes| {
            inputs.fetch_add(1, Ordering::Relaxed);
            // Raw bytes as the Runtime API would hand them over: not always JSON.
            if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
                runs.fetch_add(every_parser(&v), Ordering::Relaxed);
            } else {
                let text = String::from_utf8_lossy(&bytes).into_owned();
                let _ = orkv_vending::domain::record::SecretRecord::from_secret(
                    &SecretString::from(text.clone()),
                );
                let _ = serde_json::from_str::<orkv_openrouter::CreatedKey>(&text);
                runs.fetch_add(2, Ordering::Relaxed);
            }
            Ok(())
        })
        .expect("no parser panicked");
    println!(
        "fuzz mutated_events: {} inputs, {} parser executions",
        inputs.load(Ordering::Relaxed),
        runs.load(Ordering::Relaxed)
    );
    assert!(runs.load(Ordering::Relaxed) > 0);
}

#[test]
fn the_unmutated_seed_corpus_parses() {
    // The seeds themselves are valid inputs for at least one parser each.
    for bytes in seeds() {
        let v: Value = serde_json::from_slice(&bytes).expect("events/ holds JSON");
        let ok = orkv_vending::input::invocation::parse(v.clone()).is_ok()
            || orkv_vending::input::rotation::RotationEvent::parse(&v).is_ok()
            || orkv_vending::input::sweep::SweepInput::parse(&v).is_ok();
        assert!(ok, "no parser accepts {v}");
    }
}
