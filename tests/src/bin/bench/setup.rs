//! The bench's world (moto and the emulator, each behind a latency proxy), the functions'
//! environment, and seeding.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use orkv_openrouter_emulator::{Emulator, EmulatorConfig};
use orkv_tests::events::ResultQueue;
use orkv_tests::proxy::LatencyProxy;
use orkv_tests::runtime_api::RuntimeApi;
use orkv_tests::world::{create_seed_secret, deployed_env, named_request};
use orkv_tests::{Control, MANAGEMENT_KEY, Moto, secrets_client};
use serde_json::{Value, json};

pub(crate) const NONEXISTENT_ROTATION_LAMBDA: &str =
    "arn:aws:lambda:us-east-1:123456789012:function:orkv-bench-rotate";

pub(crate) fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

pub(crate) fn target_dir() -> PathBuf {
    std::env::var("CARGO_TARGET_DIR").map_or_else(
        |_| orkv_tests::workspace_root().join("target"),
        PathBuf::from,
    )
}

/// Peak and current RSS (kB) of a process, from /proc.
pub(crate) fn rss_kb(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// The functions' environment as the module renders it, result events on `bus` included.
pub(crate) fn function_env(
    sm_url: &str,
    openrouter_url: &str,
    bus: &str,
) -> Vec<(&'static str, String)> {
    deployed_env(
        sm_url,
        openrouter_url,
        vec![
            ("ORKV_EVENT_BUS", bus.into()),
            (
                "ORKV_ROTATION_LAMBDA_ARN",
                NONEXISTENT_ROTATION_LAMBDA.into(),
            ),
            ("ORKV_RETIRE_GRACE_SECONDS", "0".into()),
            ("RUST_LOG", "warn".into()),
        ],
    )
}

pub(crate) struct World {
    pub(crate) moto: Moto,
    pub(crate) proxy: LatencyProxy,
    /// In front of the emulator: the same latency model as for moto.
    pub(crate) or_proxy: LatencyProxy,
    pub(crate) emulator: Emulator,
    pub(crate) control: Control,
    pub(crate) sm: aws_sdk_secretsmanager::Client,
    /// Where the functions put their result events (a rule delivers them to a queue).
    pub(crate) results: ResultQueue,
}

pub(crate) async fn world() -> World {
    let moto = Moto::start().await;
    let proxy = LatencyProxy::start(&moto.url, Duration::ZERO).await;
    // The functions meet Secrets Manager as AWS behaves (the strict layer, docs/aws-fidelity.md);
    // the layer's own look-ups count as upstream time, not the function's.
    proxy.set_strict(true);
    let emulator = Emulator::start(EmulatorConfig {
        management_key: MANAGEMENT_KEY.to_owned(),
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator");
    let control = Control::new(&emulator);
    let or_proxy = LatencyProxy::start(&emulator.url(), Duration::ZERO).await;
    let (sm, _) = secrets_client(&moto).await;
    let _ = sm
        .create_secret()
        .name(orkv_tests::MANAGEMENT_KEY_SECRET)
        .secret_string(json!({ "management_key": MANAGEMENT_KEY }).to_string())
        .send()
        .await;
    let results = ResultQueue::create(&moto.url).await;
    World {
        moto,
        proxy,
        or_proxy,
        emulator,
        control,
        sm,
        results,
    }
}

impl World {
    pub(crate) fn set_latency(&self, ms: u64) {
        self.proxy.set_latency(Duration::from_millis(ms));
        self.or_proxy.set_latency(Duration::from_millis(ms));
    }

    pub(crate) async fn reset_counts(&self) {
        self.proxy.reset().await;
        self.or_proxy.reset().await;
        self.control.reset_calls().await;
    }

    /// Since the last reset, in ms: (time moto and the emulator took, injected latency slept).
    pub(crate) fn remote_ms(&self) -> (f64, f64) {
        let (u1, s1) = self.proxy.remote_time();
        let (u2, s2) = self.or_proxy.remote_time();
        (
            (u1 + u2).as_secs_f64() * 1000.0,
            (s1 + s2).as_secs_f64() * 1000.0,
        )
    }

    pub(crate) fn env(&self) -> Vec<(&'static str, String)> {
        function_env(&self.proxy.url, &self.or_proxy.url, &self.results.bus_name)
    }

    /// (AWS calls by operation: Secrets Manager's and EventBridge's `PutEvents`; OpenRouter
    /// calls by operation).
    pub(crate) async fn counts(&self) -> (BTreeMap<String, u64>, Value) {
        (
            self.proxy.calls().await,
            self.control.calls().await["calls"].clone(),
        )
    }
}

pub(crate) fn provision_request(secret: &str, limit: f64) -> Value {
    named_request(secret, limit)
}

pub(crate) fn total(m: &BTreeMap<String, u64>) -> u64 {
    m.values().sum()
}

pub(crate) fn or_total(v: &Value) -> u64 {
    v.as_object()
        .map_or(0, |m| m.values().filter_map(Value::as_u64).sum())
}

pub(crate) async fn invoke(api: &RuntimeApi, payload: Value) -> (Duration, Value) {
    let start = Instant::now();
    let reply = api
        .invoke_within(payload, Duration::from_secs(900))
        .await
        .expect("the function answered");
    let elapsed = start.elapsed();
    match reply {
        Ok(v) => (elapsed, v),
        Err(e) => panic!("the function failed: {e}"),
    }
}

/// Creates `n` managed secrets (tags as the provision function writes them); `due` of them have
/// a rotate-at in the past.
pub(crate) async fn seed(sm: &aws_sdk_secretsmanager::Client, prefix: &str, n: usize, due: usize) {
    let far = orkv_openrouter::format_expires_at(
        time::OffsetDateTime::now_utc() + time::Duration::days(30),
    );
    let past = orkv_openrouter::format_expires_at(
        time::OffsetDateTime::now_utc() - time::Duration::hours(1),
    );
    let mut set = tokio::task::JoinSet::new();
    let lanes = 16;
    for lane in 0..lanes {
        let (sm, far, past, prefix) = (sm.clone(), far.clone(), past.clone(), prefix.to_owned());
        set.spawn(async move {
            let mut i = lane;
            while i < n {
                let is_due = i % (n / due.max(1)).max(1) == 0 && i / (n / due.max(1)).max(1) < due;
                let name = format!("openrouter/checkout/{prefix}-{i}");
                let key_name = format!("orkv:{name}:bench");
                create_seed_secret(
                    &sm,
                    &name,
                    "{}",
                    &[
                        ("orkv:managed-by", "openrouter-key-vending"),
                        ("orkv:rotate-at", if is_due { &past } else { &far }),
                        ("orkv:expires-at", &far),
                        ("orkv:generation", "1"),
                        ("orkv:lifetime", "ttl:2592000"),
                        ("orkv:openrouter-key-name", &key_name),
                    ],
                )
                .await;
                i += lanes;
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.expect("seed task");
    }
}
