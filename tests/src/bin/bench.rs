//! `make bench`: the release function binaries against moto (behind a latency-injecting,
//! call-counting proxy) and the OpenRouter emulator. Prints a table (median, min, max) and writes
//! the same figures as JSON (first argument, default `docs/bench-results.json`).
//!
//! Environment: `ORKV_BENCH_BIN_DIR` (release binaries), `ORKV_BENCH_PACKAGE_DIR` (zips),
//! `ORKV_BENCH_RUNS` (default 11), `ORKV_BENCH_LATENCY_MS` (default 20),
//! `ORKV_BENCH_SWEEP_SIZES` (default `1000,10000`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::types::Tag;
use orkv_openrouter_emulator::{Emulator, EmulatorConfig};
use orkv_tests::proxy::LatencyProxy;
use orkv_tests::runtime_api::{FunctionProcess, RuntimeApi};
use orkv_tests::{Control, MANAGEMENT_KEY, Moto, POLICY, secrets_client, unique};
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

const NONEXISTENT_ROTATION_LAMBDA: &str =
    "arn:aws:lambda:us-east-1:123456789012:function:orkv-bench-rotate";

#[derive(Debug, Clone, Copy)]
struct Stats {
    median: f64,
    min: f64,
    max: f64,
}

fn stats(mut v: Vec<f64>) -> Stats {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        f64::midpoint(v[n / 2 - 1], v[n / 2])
    };
    Stats {
        median,
        min: v.first().copied().unwrap_or(f64::NAN),
        max: v.last().copied().unwrap_or(f64::NAN),
    }
}

fn js(s: Stats) -> Value {
    json!({"median": s.median, "min": s.min, "max": s.max})
}

/// One line of the printed table.
struct Row {
    scenario: String,
    stats: Option<Stats>,
    unit: &'static str,
    target: String,
    met: Option<bool>,
}

struct Report {
    rows: Vec<Row>,
    json: serde_json::Map<String, Value>,
}

impl Report {
    fn row(
        &mut self,
        scenario: impl Into<String>,
        stats: Option<Stats>,
        unit: &'static str,
        target: impl Into<String>,
        met: Option<bool>,
    ) {
        let row = Row {
            scenario: scenario.into(),
            stats,
            unit,
            target: target.into(),
            met,
        };
        println!("{}", format_row(&row));
        self.rows.push(row);
    }
}

fn num(x: f64) -> String {
    if x.is_nan() {
        "–".into()
    } else if (x.fract() == 0.0 && x.abs() < 1e9) || x.abs() >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

fn format_row(r: &Row) -> String {
    let (med, min, max) = r.stats.map_or(("–".into(), "–".into(), "–".into()), |s| {
        (num(s.median), num(s.min), num(s.max))
    });
    let met = match r.met {
        Some(true) => "met",
        Some(false) => "MISSED",
        None => "",
    };
    format!(
        "| {} | {med} | {min} | {max} | {} | {} | {met} |",
        r.scenario, r.unit, r.target
    )
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn target_dir() -> PathBuf {
    std::env::var("CARGO_TARGET_DIR").map_or_else(
        |_| orkv_tests::workspace_root().join("target"),
        PathBuf::from,
    )
}

/// Peak and current RSS (kB) of a process, from /proc.
fn rss_kb(pid: u32) -> (u64, u64) {
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

fn function_env(sm_url: &str, openrouter_url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", sm_url.to_owned()),
        ("AWS_ACCESS_KEY_ID", "bench".into()),
        ("AWS_SECRET_ACCESS_KEY", "bench".into()),
        ("OPENROUTER_BASE_URL", format!("{openrouter_url}/api/v1")),
        (
            "OPENROUTER_MANAGEMENT_KEY_SECRET_ID",
            "openrouter/management-key".into(),
        ),
        ("ORKV_POLICY", POLICY.into()),
        (
            "ORKV_ROTATION_LAMBDA_ARN",
            NONEXISTENT_ROTATION_LAMBDA.into(),
        ),
        ("ORKV_RETIRE_GRACE_SECONDS", "0".into()),
        ("RUST_LOG", "warn".into()),
    ]
}

/// Scenario 1: exec → first `GET /runtime/invocation/next`, and peak RSS at that moment.
async fn cold_start(bin: &Path, runs: usize) -> (Stats, Stats) {
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
        for (k, v) in function_env("http://127.0.0.1:9", "http://127.0.0.1:9") {
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

struct World {
    moto: Moto,
    proxy: LatencyProxy,
    /// In front of the emulator: the same latency model as for moto.
    or_proxy: LatencyProxy,
    emulator: Emulator,
    control: Control,
    sm: aws_sdk_secretsmanager::Client,
}

async fn world() -> World {
    let moto = Moto::start().await;
    let proxy = LatencyProxy::start(&moto.url, Duration::ZERO).await;
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
        .name("openrouter/management-key")
        .secret_string(json!({ "management_key": MANAGEMENT_KEY }).to_string())
        .send()
        .await;
    World {
        moto,
        proxy,
        or_proxy,
        emulator,
        control,
        sm,
    }
}

impl World {
    fn set_latency(&self, ms: u64) {
        self.proxy.set_latency(Duration::from_millis(ms));
        self.or_proxy.set_latency(Duration::from_millis(ms));
    }

    async fn reset_counts(&self) {
        self.proxy.reset().await;
        self.or_proxy.reset().await;
        self.control.reset_calls().await;
    }

    /// Since the last reset, in ms: (time moto and the emulator took, injected latency slept).
    fn remote_ms(&self) -> (f64, f64) {
        let (u1, s1) = self.proxy.remote_time();
        let (u2, s2) = self.or_proxy.remote_time();
        (
            (u1 + u2).as_secs_f64() * 1000.0,
            (s1 + s2).as_secs_f64() * 1000.0,
        )
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        function_env(&self.proxy.url, &self.or_proxy.url)
    }

    /// (Secrets Manager calls by operation, OpenRouter calls by operation).
    async fn counts(&self) -> (BTreeMap<String, u64>, Value) {
        (
            self.proxy.calls().await,
            self.control.calls().await["calls"].clone(),
        )
    }
}

fn provision_request(secret: &str, limit: f64) -> Value {
    json!({
        "workspace": "checkout",
        "key_name": secret.rsplit('/').next().unwrap_or(secret),
        "limit": limit,
        "limit_reset": "monthly",
        "ttl_seconds": 2_592_000,
        "secret_name": secret,
    })
}

fn total(m: &BTreeMap<String, u64>) -> u64 {
    m.values().sum()
}

fn or_total(v: &Value) -> u64 {
    v.as_object()
        .map_or(0, |m| m.values().filter_map(Value::as_u64).sum())
}

async fn invoke(api: &RuntimeApi, payload: Value) -> (Duration, Value) {
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
async fn seed(sm: &aws_sdk_secretsmanager::Client, prefix: &str, n: usize, due: usize) {
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
                let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build();
                let is_due = i % (n / due.max(1)).max(1) == 0 && i / (n / due.max(1)).max(1) < due;
                sm.create_secret()
                    .name(format!("openrouter/checkout/{prefix}-{i}"))
                    .secret_string("{}")
                    .tags(tag("orkv:managed-by", "openrouter-key-vending"))
                    .tags(tag("orkv:rotate-at", if is_due { &past } else { &far }))
                    .tags(tag("orkv:expires-at", &far))
                    .tags(tag("orkv:generation", "1"))
                    .tags(tag("orkv:lifetime", "ttl:2592000"))
                    .tags(tag(
                        "orkv:openrouter-key-name",
                        &format!("orkv:openrouter/checkout/{prefix}-{i}:bench"),
                    ))
                    .send()
                    .await
                    .expect("seed secret");
                i += lanes;
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.expect("seed task");
    }
}

#[allow(clippy::too_many_lines)]
#[tokio::main]
async fn main() {
    let out_path = std::env::args().nth(1).map_or_else(
        || orkv_tests::workspace_root().join("docs/bench-results.json"),
        PathBuf::from,
    );
    let runs: usize = env_or("ORKV_BENCH_RUNS", "11").parse().unwrap_or(11);
    let latency_ms: u64 = env_or("ORKV_BENCH_LATENCY_MS", "20").parse().unwrap_or(20);
    let bin_dir = std::env::var("ORKV_BENCH_BIN_DIR").map_or_else(
        |_| target_dir().join("x86_64-unknown-linux-gnu/release"),
        PathBuf::from,
    );
    let package_dir = std::env::var("ORKV_BENCH_PACKAGE_DIR")
        .map_or_else(|_| target_dir().join("lambda"), PathBuf::from);
    let sweep_sizes: Vec<usize> = env_or("ORKV_BENCH_SWEEP_SIZES", "1000,10000")
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let mut report = Report {
        rows: Vec::new(),
        json: serde_json::Map::new(),
    };
    println!("| scenario | median | min | max | unit | target | |\n|---|---|---|---|---|---|---|");

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

    // 3. Calls per operation, and 4. provision latency.
    let w = world().await;
    let api = RuntimeApi::start(Duration::from_secs(30)).await;
    let env = w.env();
    let env_ref: Vec<(&str, String)> = env.iter().map(|(k, v)| (*k, v.clone())).collect();
    let provision = FunctionProcess::spawn(&bin_dir.join("provision"), &api, &env_ref);
    // Warm the container (reads the management key once).
    let warm = format!("openrouter/checkout/{}", unique("bench-warm"));
    invoke(&api, provision_request(&warm, 10.0)).await;

    let mut calls = serde_json::Map::new();
    let mut measure_calls =
        |name: &str, sm: BTreeMap<String, u64>, or: Value, target: &str, ok: bool| {
            let n = total(&sm) + or_total(&or);
            let s = Stats {
                median: n as f64,
                min: n as f64,
                max: n as f64,
            };
            report.row(
                format!("remote calls: {name}"),
                Some(s),
                "calls",
                target,
                Some(ok),
            );
            calls.insert(
                name.into(),
                json!({"total": n, "secrets_manager": sm, "openrouter": or}),
            );
        };
    let secret = format!("openrouter/checkout/{}", unique("bench-calls"));
    w.reset_counts().await;
    invoke(&api, provision_request(&secret, 10.0)).await;
    let (sm, or) = w.counts().await;
    let new_key = total(&sm) + or_total(&or);
    measure_calls("new key", sm, or, "≤ 3", new_key <= 3);
    w.reset_counts().await;
    invoke(&api, provision_request(&secret, 10.0)).await;
    let (sm, or) = w.counts().await;
    let repeat = total(&sm) + or_total(&or);
    measure_calls("repeated request", sm, or, "≤ 1", repeat <= 1);
    w.reset_counts().await;
    invoke(&api, provision_request(&secret, 12.0)).await;
    let (sm, or) = w.counts().await;
    measure_calls(
        "cap update",
        sm,
        or,
        "4 (read, PATCH, write, label move)",
        true,
    );

    // A full rotation: the rotate binary through the Invoke API, Secrets Manager's part played
    // by the local driver (its own client, not counted: in AWS that part is Secrets Manager's).
    let rotate_api = RuntimeApi::start(Duration::from_secs(60)).await;
    let rotate = FunctionProcess::spawn(&bin_dir.join("rotate"), &rotate_api, &env_ref);
    let driver_cfg = orkv_vending::Config::from_lookup(|k| match k {
        "OPENROUTER_BASE_URL" => Some(format!("{}/api/v1", w.emulator.url())),
        "OPENROUTER_MANAGEMENT_KEY" => Some(MANAGEMENT_KEY.to_owned()),
        "ORKV_POLICY" => Some(POLICY.to_owned()),
        "ORKV_LOCAL_ROTATION_INVOKE_URL" => Some(format!(
            "http://{}/2015-03-31/functions/rotate/invocations",
            rotate_api.addr
        )),
        _ => None,
    })
    .expect("driver config");
    let starter = orkv_local_rotation::starter(&driver_cfg).expect("driver");
    let driver = orkv_vending::Deps::new(driver_cfg, orkv_store::SecretStore::new(w.sm.clone()))
        .with_starter(starter);
    orkv_local_rotation::enable_rotation(&driver, &secret)
        .await
        .expect("enable rotation");
    // Warm the rotate container with a first rotation, then count the second.
    let token = uuid::Uuid::new_v4().to_string();
    driver
        .start_rotation(&secret, &token)
        .await
        .expect("warm rotation");
    w.reset_counts().await;
    let token = uuid::Uuid::new_v4().to_string();
    driver
        .start_rotation(&secret, &token)
        .await
        .expect("rotation");
    let (mut sm, or) = w.counts().await;
    *sm.entry("RotateSecret (the caller, in AWS)".into())
        .or_default() += 1;
    let rotation_calls = total(&sm) + or_total(&or);
    measure_calls(
        "full rotation",
        sm,
        or,
        "protocol minimum (see README)",
        true,
    );
    report.json.insert("calls".into(), Value::Object(calls));

    // 4. Provision latency at injected latency L on every call.
    w.set_latency(latency_ms);
    let l = latency_ms as f64;
    let mut lat_new = Vec::new();
    let mut lat_repeat = Vec::new();
    let mut floor_new = 0.0;
    let mut floor_repeat = 0.0;
    let mut own_new = Vec::new();
    let mut moto_new = Vec::new();
    let mut slop_new = Vec::new();
    for _ in 0..runs {
        let s = format!("openrouter/checkout/{}", unique("bench-lat"));
        w.reset_counts().await;
        let (t, _) = invoke(&api, provision_request(&s, 10.0)).await;
        let (sm, or) = w.counts().await;
        floor_new = (total(&sm) + or_total(&or)) as f64 * l;
        let wall = t.as_secs_f64() * 1000.0;
        let (upstream, slept) = w.remote_ms();
        lat_new.push(wall);
        own_new.push(wall - upstream - slept);
        moto_new.push(upstream);
        slop_new.push(slept - floor_new);
        w.reset_counts().await;
        let (t, _) = invoke(&api, provision_request(&s, 10.0)).await;
        let (sm, or) = w.counts().await;
        floor_repeat = (total(&sm) + or_total(&or)) as f64 * l;
        lat_repeat.push(t.as_secs_f64() * 1000.0);
    }
    let (ln, lr) = (stats(lat_new), stats(lat_repeat));
    let (own, upstream, slop) = (stats(own_new), stats(moto_new), stats(slop_new));
    report.row(
        format!("provision latency, new key, L = {latency_ms} ms (floor {floor_new:.0} ms)"),
        Some(ln),
        "ms",
        format!("≤ floor + 5 = {:.0} ms", floor_new + 5.0),
        Some(ln.median <= floor_new + 5.0),
    );
    report.row(
        format!("provision latency, repeat, L = {latency_ms} ms (floor {floor_repeat:.0} ms)"),
        Some(lr),
        "ms",
        format!("≤ floor + 5 = {:.0} ms", floor_repeat + 5.0),
        Some(lr.median <= floor_repeat + 5.0),
    );
    report.row(
        "  of which: moto + emulator processing (upstream time)",
        Some(upstream),
        "ms",
        "",
        None,
    );
    report.row(
        "  of which: timer overshoot of the injected sleeps",
        Some(slop),
        "ms",
        "",
        None,
    );
    report.row(
        "  of which: the function itself (wall − remote time − injected)",
        Some(own),
        "ms",
        "≤ 5 ms",
        Some(own.median <= 5.0),
    );
    // The same at L = 0: what moto, the emulator and the function cost on their own.
    w.set_latency(0);
    let mut lat0 = Vec::new();
    for _ in 0..runs {
        let s = format!("openrouter/checkout/{}", unique("bench-lat0"));
        let (t, _) = invoke(&api, provision_request(&s, 10.0)).await;
        lat0.push(t.as_secs_f64() * 1000.0);
    }
    let l0 = stats(lat0);
    report.row(
        "provision latency, new key, L = 0 (local processing only)",
        Some(l0),
        "ms",
        "",
        None,
    );
    report.json.insert(
        "provision_latency".into(),
        json!({
            "latency_ms": latency_ms,
            "new_key_ms": js(ln), "new_key_floor_ms": floor_new,
            "repeat_ms": js(lr), "repeat_floor_ms": floor_repeat,
            "new_key_at_zero_latency_ms": js(l0),
            "new_key_upstream_ms": js(upstream),
            "new_key_sleep_overshoot_ms": js(slop),
            "new_key_own_ms": js(own),
            "rotation_calls": rotation_calls,
        }),
    );
    drop(provision);
    drop(rotate);

    // 5. Sweep scale: N managed secrets, 1% due, L = 0; peak RSS of the sweep process.
    let mut scale = serde_json::Map::new();
    drop(w.moto);
    let w = world().await;
    let env = w.env();
    let env_ref: Vec<(&str, String)> = env.iter().map(|(k, v)| (*k, v.clone())).collect();
    let prefix = unique("bench-sweep");
    let mut seeded = 0;
    let mut peak_by_size = BTreeMap::new();
    for &n in &sweep_sizes {
        seed(
            &w.sm,
            &format!("{prefix}-{n}"),
            n - seeded,
            (n - seeded) / 100,
        )
        .await;
        seeded = n;
        let sweep_runs = runs.min(3);
        let mut walls = Vec::new();
        let mut peaks = Vec::new();
        let mut lists = 0;
        let mut rotate_calls = 0;
        let mut scanned = 0;
        for r in 0..sweep_runs {
            let api = RuntimeApi::start(Duration::from_secs(900)).await;
            let sweep = FunctionProcess::spawn(&bin_dir.join("sweep"), &api, &env_ref);
            w.reset_counts().await;
            let (t, reply) = invoke(
                &api,
                json!({"execution_id": format!("bench-{n}-{r}"), "scheduled_time": "2026-11-22T00:00:00Z"}),
            )
            .await;
            let (peak, _) = sweep.pid().map_or((0, 0), rss_kb);
            let (sm, _) = w.counts().await;
            lists = sm.get("ListSecrets").copied().unwrap_or(0);
            rotate_calls = sm.get("RotateSecret").copied().unwrap_or(0);
            scanned = reply["secrets_scanned"].as_u64().unwrap_or(0);
            assert!(scanned >= n as u64, "the sweep saw every secret: {reply}");
            walls.push(t.as_secs_f64() * 1000.0);
            peaks.push(peak as f64 / 1024.0);
        }
        let (wall, peak) = (stats(walls), stats(peaks));
        peak_by_size.insert(n, peak.max);
        report.row(
            format!("sweep over {n} secrets (1% due): wall"),
            Some(wall),
            "ms",
            "",
            None,
        );
        report.row(
            format!("sweep over {n} secrets: ListSecrets calls"),
            Some(Stats {
                median: lists as f64,
                min: lists as f64,
                max: lists as f64,
            }),
            "calls",
            format!("≤ ceil({scanned} / 100) = {}", scanned.div_ceil(100)),
            Some(lists <= scanned.div_ceil(100)),
        );
        let base = peak_by_size.values().next().copied().unwrap_or(peak.max);
        report.row(
            format!("sweep over {n} secrets: peak RSS"),
            Some(peak),
            "MB",
            "within 4 MB of the smallest run",
            Some(peak.max - base <= 4.0),
        );
        scale.insert(
            n.to_string(),
            json!({"wall_ms": js(wall), "list_calls": lists, "secrets_scanned": scanned, "rotate_secret_calls": rotate_calls, "peak_rss_mb": js(peak)}),
        );
    }
    report
        .json
        .insert("sweep_scale".into(), Value::Object(scale));

    // 5b. Starting 1,000 rotations at latency L with concurrency C: a fresh moto, all due.
    let w2 = world().await;
    let c: usize = 8;
    seed(&w2.sm, &unique("bench-due"), 1000, 1000).await;
    w2.set_latency(latency_ms);
    let mut walls = Vec::new();
    let mut started = 0;
    let mut moto_ms = Vec::new();
    for r in 0..runs.min(3) {
        let api = RuntimeApi::start(Duration::from_secs(900)).await;
        let env = w2.env();
        let mut env_ref: Vec<(&str, String)> = env.iter().map(|(k, v)| (*k, v.clone())).collect();
        env_ref.push(("ORKV_SWEEP_CONCURRENCY", c.to_string()));
        let _sweep = FunctionProcess::spawn(&bin_dir.join("sweep"), &api, &env_ref);
        w2.reset_counts().await;
        let (t, _) = invoke(&api, json!({"execution_id": format!("bench-due-{r}")})).await;
        let (sm, _) = w2.counts().await;
        started = sm.get("RotateSecret").copied().unwrap_or(0);
        walls.push(t.as_secs_f64() * 1000.0);
        moto_ms.push(w2.remote_ms().0);
    }
    let floor = (1000.0 / c as f64).ceil() * latency_ms as f64;
    let wall = stats(walls);
    report.row(
        format!("start 1000 rotations, C = {c}, L = {latency_ms} ms (floor {floor:.0} ms; {started} RotateSecret)"),
        Some(wall),
        "ms",
        format!("≤ 1.25 × floor = {:.0} ms", 1.25 * floor),
        Some(wall.median <= 1.25 * floor),
    );
    let moto = stats(moto_ms);
    report.row(
        "  moto's own processing, summed over all calls",
        Some(moto),
        "ms",
        "",
        None,
    );
    report.json.insert(
        "start_1000_rotations".into(),
        json!({"concurrency": c, "latency_ms": latency_ms, "floor_ms": floor, "wall_ms": js(wall), "rotate_secret_calls": started, "moto_processing_ms": js(moto)}),
    );
    drop(w2.moto);
    drop(w.moto);

    let mut md = String::from(
        "| scenario | median | min | max | unit | target | |\n|---|---|---|---|---|---|---|\n",
    );
    for r in &report.rows {
        let _ = writeln!(md, "{}", format_row(r));
    }
    report.json.insert(
        "machine".into(),
        json!({"cores": std::thread::available_parallelism().map(std::num::NonZero::get).unwrap_or(1), "runs": runs}),
    );
    report
        .json
        .insert("table_markdown".into(), Value::String(md));
    if let Some(dir) = out_path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    std::fs::write(
        &out_path,
        serde_json::to_string_pretty(&Value::Object(report.json)).unwrap_or_default(),
    )
    .expect("write results");
    println!("\nwritten to {}", out_path.display());
}
