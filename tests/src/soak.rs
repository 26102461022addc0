//! The chaos soak: the real function binaries (several provision and rotate processes, a sweep)
//! under a loopback Lambda Runtime API, moto behind a fault proxy (throttling, connections cut
//! after the call), the emulator injecting 429s with `Retry-After`, 5xx, slow replies and
//! replies dropped after a create, and processes killed at random and restarted. Clients
//! retry like EventBridge does. Afterwards: faults off, one converging pass, two sweeps, and
//! the invariants, each required to be zero.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use orkv_openrouter_emulator::{Emulator, EmulatorConfig};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::proxy::LatencyProxy;
use crate::runtime_api::{FunctionProcess, RuntimeApi};
use crate::{Control, MANAGEMENT_KEY, Moto, POLICY, secrets_client, unique};

/// How big and how hostile a run is.
#[derive(Debug, Clone)]
pub struct SoakConfig {
    /// Client operations (provision, duplicate, update, rotate, revoke, sweep).
    pub operations: usize,
    /// Process kills to inject (spread over the run).
    pub kills: usize,
    /// Distinct secrets the operations touch.
    pub secrets: usize,
    /// Operations in flight at once.
    pub concurrency: usize,
    /// Where the function binaries are.
    pub bin_dir: PathBuf,
    /// Fault rates at the Secrets Manager proxy, per mille.
    pub throttle_per_mille: u64,
    pub reset_per_mille: u64,
}

/// What a run did, and the invariants (all must be zero).
#[derive(Debug, Clone, Default, Serialize)]
pub struct SoakFigures {
    pub operations: u64,
    pub requests_served: u64,
    pub invocations: u64,
    pub retried_invocations: u64,
    pub definitive_refusals: u64,
    pub kills: u64,
    pub faults_secrets_manager_throttled: u64,
    pub faults_secrets_manager_cut_after_call: u64,
    pub faults_openrouter_injected: u64,
    pub seconds: f64,
    // Invariants.
    pub live_keys_without_a_referencing_secret: u64,
    pub secrets_whose_current_key_does_not_work: u64,
    pub duplicate_live_keys_for_one_secret: u64,
    pub superseded_keys_live_after_grace_and_a_sweep: u64,
    pub plaintexts_outside_secrets_manager: u64,
    pub unfinished_operations: u64,
    /// Secrets left with `AWSPENDING` on a version that is not current at the very end.
    pub rotations_left_pending: u64,
    /// Figures, not invariants: rotations a driver had given up on (its retries spent under
    /// the faults) that a request resumed and finished after the chaos, as Secrets Manager's
    /// own retries would.
    pub rotations_resumed_after_the_chaos: u64,
    /// What each violation was (the first few), for the one who has to fix it.
    pub details: Vec<String>,
}

impl SoakFigures {
    /// Sum of the invariants that must be zero.
    #[must_use]
    pub fn violations(&self) -> u64 {
        self.live_keys_without_a_referencing_secret
            + self.secrets_whose_current_key_does_not_work
            + self.duplicate_live_keys_for_one_secret
            + self.superseded_keys_live_after_grace_and_a_sweep
            + self.plaintexts_outside_secrets_manager
            + self.unfinished_operations
            + self.rotations_left_pending
    }
}

/// Processes of one function, each with its own Runtime API (a killed process's pending poll
/// can then never swallow an invocation meant for a live one). Invocations go round robin.
struct Pool {
    binary: PathBuf,
    env: Vec<(&'static str, String)>,
    slots: Mutex<Vec<(Arc<RuntimeApi>, FunctionProcess)>>,
    next: AtomicU64,
    /// Output of processes already killed.
    dead_output: Mutex<String>,
}

impl Pool {
    async fn start(binary: PathBuf, n: usize, env: Vec<(&'static str, String)>) -> Arc<Self> {
        let pool = Arc::new(Self {
            binary,
            env,
            slots: Mutex::new(Vec::new()),
            next: AtomicU64::new(0),
            dead_output: Mutex::new(String::new()),
        });
        for _ in 0..n {
            let slot = pool.spawn().await;
            pool.slots.lock().await.push(slot);
        }
        pool
    }

    async fn spawn(&self) -> (Arc<RuntimeApi>, FunctionProcess) {
        // The invocation deadline (the function timeout); the pending lease outlives it.
        let api = Arc::new(RuntimeApi::start(Duration::from_secs(10)).await);
        let env: Vec<(&str, String)> = self.env.iter().map(|(k, v)| (*k, v.clone())).collect();
        let process = FunctionProcess::spawn(&self.binary, &api, &env);
        (api, process)
    }

    /// One invocation on the next process; `None` when no answer came within `wait`.
    async fn invoke(&self, payload: Value, wait: Duration) -> Option<Result<Value, Value>> {
        let api = {
            let slots = self.slots.lock().await;
            let i = usize::try_from(self.next.fetch_add(1, Ordering::Relaxed)).unwrap_or(0)
                % slots.len().max(1);
            slots.get(i).map(|(api, _)| api.clone())?
        };
        api.invoke_within(payload, wait).await
    }

    /// SIGKILLs one process, fails what was in flight on it, starts a replacement.
    async fn kill_one(&self, which: usize) {
        let fresh = self.spawn().await;
        let mut slots = self.slots.lock().await;
        if slots.is_empty() {
            return;
        }
        let i = which % slots.len();
        let (old_api, mut old) = std::mem::replace(&mut slots[i], fresh);
        drop(slots);
        old.kill().await;
        let out = old.output().await;
        self.dead_output.lock().await.push_str(&out);
        old_api.fail_in_flight().await;
    }

    async fn all_output(&self) -> String {
        let mut all = self.dead_output.lock().await.clone();
        for (_, p) in self.slots.lock().await.iter() {
            all.push_str(&p.output().await);
        }
        all
    }
}

/// Lambda's Invoke API in front of a pool, so the local rotation driver has one stable URL.
async fn invoke_front(pool: Arc<Pool>) -> String {
    use axum::extract::State;
    use axum::http::{HeaderMap, HeaderValue, StatusCode};
    use axum::response::IntoResponse;
    async fn handle(
        State(pool): State<Arc<Pool>>,
        body: axum::body::Bytes,
    ) -> axum::response::Response {
        let payload: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        match pool.invoke(payload, Duration::from_secs(30)).await {
            Some(Ok(v)) => (StatusCode::OK, v.to_string()).into_response(),
            Some(Err(e)) => {
                let mut h = HeaderMap::new();
                h.insert(
                    "x-amz-function-error",
                    HeaderValue::from_static("Unhandled"),
                );
                (StatusCode::OK, h, e.to_string()).into_response()
            }
            None => StatusCode::GATEWAY_TIMEOUT.into_response(),
        }
    }
    let app = axum::Router::new()
        .route(
            "/2015-03-31/functions/{name}/invocations",
            axum::routing::post(handle),
        )
        .with_state(pool);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind invoke front");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}/2015-03-31/functions/rotate/invocations")
}

#[derive(Default)]
struct Counters {
    last_errors: Mutex<Vec<String>>,
    invocations: AtomicU64,
    retried: AtomicU64,
    served: AtomicU64,
    refusals: AtomicU64,
    unfinished: AtomicU64,
}

/// Errors a client retries (as EventBridge's retry policy would); anything else is a
/// definitive answer.
fn retryable(error_type: &str) -> bool {
    !matches!(
        error_type,
        "InvalidRequest"
            | "PolicyViolation"
            | "UnknownWorkspace"
            | "SecretRevoked"
            | "ImmutableFieldChanged"
            | "UnsupportedEvent"
            | "SecretNotFound"
    )
}

/// Invokes until a definitive answer; replies and errors are kept for the plaintext scan.
async fn call(pool: &Pool, payload: Value, c: &Counters, seen: &Mutex<String>, tries: u32) -> bool {
    for attempt in 0..tries {
        c.invocations.fetch_add(1, Ordering::Relaxed);
        if attempt > 0 {
            c.retried.fetch_add(1, Ordering::Relaxed);
        }
        let reply = pool.invoke(payload.clone(), Duration::from_secs(20)).await;
        match reply {
            Some(Ok(v)) => {
                seen.lock().await.push_str(&v.to_string());
                c.served.fetch_add(1, Ordering::Relaxed);
                return true;
            }
            Some(Err(ref e)) => {
                seen.lock().await.push_str(&e.to_string());
                let t = e["errorType"].as_str().unwrap_or("");
                if !retryable(t) {
                    c.served.fetch_add(1, Ordering::Relaxed);
                    c.refusals.fetch_add(1, Ordering::Relaxed);
                    return true;
                }
            }
            None => {}
        }
        if attempt + 1 == tries {
            let mut last = c.last_errors.lock().await;
            if last.len() < 20 {
                last.push(format!(
                    "gave up on {payload}: {:?}",
                    reply.map(|r| r.err())
                ));
            }
        }
        tokio::time::sleep(Duration::from_millis(
            (25 * u64::from(attempt)).min(500) + 10,
        ))
        .await;
    }
    false
}

/// Whether a version holds `AWSPENDING` without `AWSCURRENT` (a rotation not finished).
async fn dangling_pending(sm: &aws_sdk_secretsmanager::Client, secret: &str) -> bool {
    sm.describe_secret()
        .secret_id(secret)
        .send()
        .await
        .ok()
        .and_then(|d| d.version_ids_to_stages().cloned())
        .is_some_and(|m| {
            m.values().any(|stages| {
                stages.iter().any(|s| s == "AWSPENDING")
                    && !stages.iter().any(|s| s == "AWSCURRENT")
            })
        })
}

fn secret_name(prefix: &str, i: usize) -> String {
    format!("openrouter/checkout/{prefix}-{i}")
}

fn provision_payload(secret: &str, limit: u32, id: &str) -> Value {
    json!({
        "workspace": "checkout",
        "key_name": secret.rsplit('/').next().unwrap_or(secret),
        "limit": limit,
        "limit_reset": "monthly",
        "ttl_seconds": 2_592_000,
        "secret_name": secret,
        "idempotency_id": id,
    })
}

/// Runs the soak and checks the invariants.
///
/// # Panics
/// When moto or the binaries cannot be started.
#[allow(clippy::too_many_lines)]
pub async fn run(cfg: &SoakConfig) -> SoakFigures {
    let started = Instant::now();
    let moto = Moto::start().await;
    let proxy = LatencyProxy::start(&moto.url, Duration::ZERO).await;
    let emulator = Emulator::start(EmulatorConfig {
        management_key: MANAGEMENT_KEY.to_owned(),
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator");
    let control = Control::new(&emulator);
    let (sm, _) = secrets_client(&moto).await;
    let _ = sm
        .create_secret()
        .name("openrouter/management-key")
        .secret_string(json!({ "management_key": MANAGEMENT_KEY }).to_string())
        .send()
        .await;

    let base_env = |extra: Vec<(&'static str, String)>| {
        let mut env = vec![
            ("AWS_ENDPOINT_URL", proxy.url.clone()),
            ("AWS_ACCESS_KEY_ID", "soak".into()),
            ("AWS_SECRET_ACCESS_KEY", "soak".into()),
            ("OPENROUTER_BASE_URL", format!("{}/api/v1", emulator.url())),
            (
                "OPENROUTER_MANAGEMENT_KEY_SECRET_ID",
                "openrouter/management-key".into(),
            ),
            ("ORKV_POLICY", POLICY.into()),
            ("ORKV_RETIRE_GRACE_SECONDS", "0".into()),
            // Longer than any invocation, as in production (900 s by default): a key minted a
            // moment ago may belong to a step still running. The final sweeps see the
            // emulator's clock moved past it.
            ("ORKV_ORPHAN_MIN_AGE_SECONDS", "120".into()),
            ("ORKV_HTTP_TIMEOUT_MS", "3000".into()),
            // Must exceed the function timeout (10 s here), as the README requires: a lease
            // that ends while its owner still runs lets a second writer in.
            ("ORKV_PENDING_LEASE_SECONDS", "12".into()),
            ("RUST_LOG", "debug".into()),
        ];
        env.extend(extra);
        env
    };
    let rotate = Pool::start(cfg.bin_dir.join("rotate"), 2, base_env(vec![])).await;
    let invoke_url = invoke_front(rotate.clone()).await;
    let provision = Pool::start(
        cfg.bin_dir.join("provision"),
        3,
        base_env(vec![("ORKV_LOCAL_ROTATION_INVOKE_URL", invoke_url.clone())]),
    )
    .await;
    let sweep = Pool::start(
        cfg.bin_dir.join("sweep"),
        1,
        base_env(vec![("ORKV_LOCAL_ROTATION_INVOKE_URL", invoke_url.clone())]),
    )
    .await;

    let prefix = unique("soak");
    let counters = Arc::new(Counters::default());
    let seen = Arc::new(Mutex::new(String::new()));
    let revoked: Arc<Mutex<std::collections::BTreeSet<usize>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let kills = Arc::new(AtomicU64::new(0));
    let or_faults = Arc::new(AtomicU64::new(0));

    // Every secret exists with rotation enabled before the chaos starts, as Terraform and a
    // first provisioning would leave them. (On moto, enabling rotation is the local driver's
    // two-step workaround, a rules-only RotateSecret and a label move back, which is not
    // atomic; in AWS it is part of RotateSecret. It is not what the soak is about.)
    let driver_cfg = orkv_vending::Config::from_lookup(|k| match k {
        "OPENROUTER_BASE_URL" => Some(format!("{}/api/v1", emulator.url())),
        "OPENROUTER_MANAGEMENT_KEY" => Some(MANAGEMENT_KEY.to_owned()),
        "ORKV_POLICY" => Some(POLICY.to_owned()),
        "ORKV_LOCAL_ROTATION_INVOKE_URL" => Some("http://127.0.0.1:9/unused".to_owned()),
        _ => None,
    })
    .expect("driver config");
    let driver = orkv_vending::Deps::new(driver_cfg, orkv_store::SecretStore::new(sm.clone()));
    for i in 0..cfg.secrets {
        let secret = secret_name(&prefix, i);
        if call(
            &provision,
            provision_payload(&secret, 10, &format!("p-{i}")),
            &counters,
            &seen,
            60,
        )
        .await
        {
            let _ = orkv_local_rotation::enable_rotation(&driver, &secret).await;
        }
    }

    // Chaos: faults at both services, and kills.
    proxy.set_faults(cfg.throttle_per_mille, cfg.reset_per_mille);
    // Faults and kills are paced by the workload's progress (one OpenRouter fault every few
    // operations, the kills spread evenly over the operations), so a slow run is not simply
    // drowned in faults.
    let done_ops = Arc::new(AtomicU64::new(0));
    let chaos = {
        let (stop, kills, or_faults, done_ops) = (
            stop.clone(),
            kills.clone(),
            or_faults.clone(),
            done_ops.clone(),
        );
        let (provision, rotate, sweep) = (provision.clone(), rotate.clone(), sweep.clone());
        let control = control.clone();
        let target_kills = cfg.kills as u64;
        let ops = cfg.operations as u64;
        tokio::spawn(async move {
            let faults = [
                json!({"op": "*", "action": "rate_limit", "retry_after": 0.05, "times": 1}),
                json!({"op": "*", "action": "status", "status": 503, "times": 1}),
                json!({"op": "*", "action": "delay", "ms": 150, "times": 1}),
                json!({"op": "create_key", "action": "drop_after_commit", "times": 1}),
                json!({"op": "*", "action": "status", "status": 502, "times": 1}),
                json!({"op": "create_key", "action": "error_after_commit", "times": 1}),
            ];
            let mut i: usize = 0;
            let mut faults_at = 0;
            while !stop.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let done = done_ops.load(Ordering::SeqCst);
                if done >= faults_at {
                    let f = &faults[i % faults.len()];
                    control.fault(f.clone()).await;
                    or_faults.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                    faults_at = done + 3;
                }
                let k = kills.load(Ordering::SeqCst);
                if k < target_kills && done * target_kills >= k * ops {
                    match rand::random_range(0..10) {
                        0..=5 => provision.kill_one(rand::random_range(0..8)).await,
                        6..=8 => rotate.kill_one(rand::random_range(0..8)).await,
                        _ => sweep.kill_one(0).await,
                    }
                    kills.fetch_add(1, Ordering::SeqCst);
                }
            }
        })
    };

    // The workload.
    let next_op = Arc::new(AtomicU64::new(0));
    let monitor = {
        let (stop, next_op, counters, kills) = (
            stop.clone(),
            next_op.clone(),
            counters.clone(),
            kills.clone(),
        );
        let pools = [provision.clone(), rotate.clone(), sweep.clone()];
        tokio::spawn(async move {
            let t0 = Instant::now();
            let mut ticks = 0u64;
            while !stop.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_secs(5)).await;
                ticks += 1;
                // The logs so far, each minute (they grow large; the run's end writes them too).
                if let Ok(dir) = std::env::var("ORKV_SOAK_DUMP")
                    && ticks.is_multiple_of(12)
                {
                    for (n, pool) in pools.iter().enumerate() {
                        let _ =
                            std::fs::write(format!("{dir}/pool{n}.log"), pool.all_output().await);
                    }
                }
                eprintln!(
                    "soak {:>5.0}s: op {} started, {} invocations ({} retries), {} served, {} kills",
                    t0.elapsed().as_secs_f64(),
                    next_op.load(Ordering::SeqCst),
                    counters.invocations.load(Ordering::Relaxed),
                    counters.retried.load(Ordering::Relaxed),
                    counters.served.load(Ordering::Relaxed),
                    kills.load(Ordering::SeqCst)
                );
            }
        })
    };
    let mut workers = Vec::new();
    for _ in 0..cfg.concurrency {
        let done_ops = done_ops.clone();
        let (provision, sweep, counters, seen, revoked, next_op) = (
            provision.clone(),
            sweep.clone(),
            counters.clone(),
            seen.clone(),
            revoked.clone(),
            next_op.clone(),
        );
        let (prefix, total, secrets) = (prefix.clone(), cfg.operations as u64, cfg.secrets);
        workers.push(tokio::spawn(async move {
            loop {
                let n = next_op.fetch_add(1, Ordering::SeqCst);
                if n >= total {
                    break;
                }
                let i = rand::random_range(0..secrets);
                let secret = secret_name(&prefix, i);
                let done = match rand::random_range(0..100) {
                    // Provision (the first request for a secret, or a repeat).
                    0..=39 => {
                        call(&provision, provision_payload(&secret, 10, &format!("p-{i}")), &counters, &seen, 60).await
                    }
                    // A duplicate delivery, concurrently.
                    40..=54 => {
                        let p = provision_payload(&secret, 10, &format!("p-{i}"));
                        let (a, b) = tokio::join!(
                            call(&provision, p.clone(), &counters, &seen, 60),
                            call(&provision, p, &counters, &seen, 60)
                        );
                        a && b
                    }
                    // A cap update.
                    55..=69 => {
                        let limit = [10, 12, 15][rand::random_range(0..3)];
                        call(&provision, provision_payload(&secret, limit, &format!("u-{n}")), &counters, &seen, 60).await
                    }
                    // Rotate now (a leak disables the old key at once).
                    70..=84 => {
                        let reason = if n % 3 == 0 { "leak" } else { "manual" };
                        call(&provision, json!({"action": "rotate", "secret_name": secret, "reason": reason, "idempotency_id": format!("r-{n}")}), &counters, &seen, 60).await
                    }
                    // Revoke (one secret in ten is revoked at some point).
                    85..=89 if i % 10 == 9 => {
                        revoked.lock().await.insert(i);
                        call(&provision, json!({"action": "revoke", "secret_name": secret, "idempotency_id": format!("x-{i}")}), &counters, &seen, 60).await
                    }
                    // A sweep.
                    _ => {
                        call(&sweep, json!({"execution_id": format!("soak-{n}")}), &counters, &seen, 10).await
                    }
                };
                if !done {
                    counters.unfinished.fetch_add(1, Ordering::Relaxed);
                }
                done_ops.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    for w in workers {
        let _ = w.await;
    }
    stop.store(true, Ordering::SeqCst);
    let _ = chaos.await;
    monitor.abort();

    // Converge: faults off, every secret provisioned (or revoked) once more, two sweeps.
    proxy.set_faults(0, 0);
    reqwest::Client::new()
        .delete(format!("{}/_emulator/faults", emulator.url()))
        .send()
        .await
        .expect("clear faults");
    let revoked = revoked.lock().await.clone();
    let mut converge_failures = 0;
    for i in 0..cfg.secrets {
        let secret = secret_name(&prefix, i);
        let payload = if revoked.contains(&i) {
            json!({"action": "revoke", "secret_name": secret, "idempotency_id": format!("x-{i}")})
        } else {
            provision_payload(&secret, 10, &format!("final-{i}"))
        };
        if !call(&provision, payload, &counters, &seen, 60).await {
            converge_failures += 1;
        }
    }
    // Rotations whose driver gave up (AWSPENDING left on a version that is not current):
    // Secrets Manager retries those itself; here a rotate request resumes each.
    let mut resumed = 0;
    for i in 0..cfg.secrets {
        if revoked.contains(&i) {
            continue;
        }
        let secret = secret_name(&prefix, i);
        if !dangling_pending(&sm, &secret).await {
            continue;
        }
        resumed += 1;
        let payload = json!({"action": "rotate", "secret_name": secret, "reason": "manual",
            "idempotency_id": format!("resume-{i}")});
        if !call(&provision, payload, &counters, &seen, 60).await {
            converge_failures += 1;
        }
    }
    // The final sweeps: every operation has ended, so no step is in flight and the orphan
    // minimum age (which spares keys a running step may still store; 120 s during the chaos,
    // 900 s in production) has nothing left to protect. They run as a sweep process started
    // with it at 0, as the sweep that runs once that age has passed would.
    let final_sweep = Pool::start(
        cfg.bin_dir.join("sweep"),
        1,
        base_env(vec![
            ("ORKV_LOCAL_ROTATION_INVOKE_URL", invoke_url.clone()),
            ("ORKV_ORPHAN_MIN_AGE_SECONDS", "0".into()),
        ]),
    )
    .await;
    for run in 0..2 {
        if !call(
            &final_sweep,
            json!({"execution_id": format!("final-{run}")}),
            &counters,
            &seen,
            10,
        )
        .await
        {
            converge_failures += 1;
        }
    }

    // Invariants.
    let mut figures = SoakFigures {
        operations: cfg.operations as u64,
        kills: kills.load(Ordering::SeqCst),
        faults_openrouter_injected: or_faults.load(Ordering::SeqCst),
        unfinished_operations: converge_failures,
        rotations_resumed_after_the_chaos: resumed,
        ..SoakFigures::default()
    };
    for i in 0..cfg.secrets {
        let secret = secret_name(&prefix, i);
        if !revoked.contains(&i) && dangling_pending(&sm, &secret).await {
            figures.rotations_left_pending += 1;
            figures
                .details
                .push(format!("{secret}: a rotation is left pending"));
        }
    }
    let (throttled, cut) = proxy.faults();
    figures.faults_secrets_manager_throttled = throttled;
    figures.faults_secrets_manager_cut_after_call = cut;
    let state = control.state().await;
    let live: Vec<Value> = state["keys"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|k| k["disabled"] == json!(false) && k["expired"] == json!(false))
        .filter(|k| k["name"].as_str().is_some_and(|n| n.contains(&prefix)))
        .collect();
    let http = reqwest::Client::new();
    let mut current_hashes = std::collections::HashSet::new();
    let mut existing = std::collections::HashSet::new();
    for i in 0..cfg.secrets {
        let secret = secret_name(&prefix, i);
        let value = sm
            .get_secret_value()
            .secret_id(&secret)
            .version_stage("AWSCURRENT")
            .send()
            .await;
        let Ok(value) = value else { continue };
        existing.insert(secret.clone());
        let record: Value =
            serde_json::from_str(value.secret_string().unwrap_or("{}")).unwrap_or(Value::Null);
        if revoked.contains(&i) || record["state"] != json!("active") {
            continue;
        }
        let key = record["api_key"].as_str().unwrap_or_default();
        if let Some(h) = record["key_hash"].as_str() {
            current_hashes.insert(h.to_owned());
        }
        let works = http
            .get(format!("{}/api/v1/key", emulator.url()))
            .bearer_auth(key)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if !works {
            figures.secrets_whose_current_key_does_not_work += 1;
            figures.details.push(format!(
                "current key of {secret} does not work: generation {}, hash {}",
                record["generation"], record["key_hash"]
            ));
        }
        let mine = live
            .iter()
            .filter(|k| {
                k["name"]
                    .as_str()
                    .is_some_and(|n| n.contains(&format!("{secret}:")))
            })
            .count() as u64;
        figures.duplicate_live_keys_for_one_secret += mine.saturating_sub(1);
        if mine > 1 {
            let versions = sm
                .list_secret_version_ids()
                .secret_id(&secret)
                .send()
                .await
                .map(|v| {
                    v.versions()
                        .iter()
                        .map(|x| {
                            format!(
                                "{}:{:?}",
                                x.version_id().unwrap_or("").get(..8).unwrap_or(""),
                                x.version_stages()
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
            figures.details.push(format!(
                "{secret}: {mine} live keys; AWSCURRENT names {} (gen {}, state {}); versions {versions}",
                record["openrouter_key_name"], record["generation"], record["state"]
            ));
        }
    }
    for k in &live {
        let hash = k["hash"].as_str().unwrap_or_default();
        if current_hashes.contains(hash) {
            continue;
        }
        // Not current. A key of a secret that exists was superseded (a rotation's predecessor,
        // a revoked secret's key, an abandoned attempt); one whose secret never came to exist
        // is an orphan.
        let name = k["name"].as_str().unwrap_or_default();
        let secret = name
            .strip_prefix("orkv:")
            .and_then(|rest| rest.rsplit_once(':'))
            .map_or("", |(s, _)| s);
        if existing.contains(secret) {
            figures.superseded_keys_live_after_grace_and_a_sweep += 1;
            if figures.details.len() < 40 {
                let tags = sm
                    .describe_secret()
                    .secret_id(secret)
                    .send()
                    .await
                    .map(|d| {
                        d.tags()
                            .iter()
                            .filter(|t| {
                                t.key().is_some_and(|k| {
                                    k.starts_with("orkv:retire")
                                        || k == "orkv:openrouter-key-name"
                                        || k == "orkv:revoked"
                                })
                            })
                            .map(|t| {
                                format!("{}={}", t.key().unwrap_or(""), t.value().unwrap_or(""))
                            })
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .unwrap_or_default();
                figures.details.push(format!(
                    "superseded key still live: {name} ({hash}); secret tags: {tags}"
                ));
            }
        } else {
            figures.live_keys_without_a_referencing_secret += 1;
        }
    }
    let mut everything = seen.lock().await.clone();
    for pool in [&provision, &rotate, &sweep, &final_sweep] {
        everything.push_str(&pool.all_output().await);
    }
    figures.plaintexts_outside_secrets_manager = everything.matches("sk-or-").count() as u64;
    figures.invocations = counters.invocations.load(Ordering::Relaxed);
    figures.retried_invocations = counters.retried.load(Ordering::Relaxed);
    figures.requests_served = counters.served.load(Ordering::Relaxed);
    figures.definitive_refusals = counters.refusals.load(Ordering::Relaxed);
    figures.unfinished_operations += counters.unfinished.load(Ordering::Relaxed);
    figures
        .details
        .extend(counters.last_errors.lock().await.iter().cloned());
    figures.seconds = started.elapsed().as_secs_f64();
    if let Ok(dir) = std::env::var("ORKV_SOAK_DUMP") {
        for (n, pool) in [&provision, &rotate, &sweep, &final_sweep]
            .iter()
            .enumerate()
        {
            let _ = std::fs::write(format!("{dir}/pool{n}.log"), pool.all_output().await);
        }
    }
    drop(moto);
    figures
}
