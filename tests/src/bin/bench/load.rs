//! Scenarios 4-5: provision latency under injected latency, the sweep at scale (calls and
//! peak memory), and starting 1,000 rotations with bounded concurrency.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use orkv_tests::runtime_api::{FunctionProcess, RuntimeApi};
use orkv_tests::unique;
use serde_json::{Value, json};

use crate::report::{Report, Stats, js, stats};
use crate::setup::{World, invoke, or_total, provision_request, rss_kb, seed, total, world};

/// Scenario 4 against the warm provision process at `api`.
pub(crate) async fn provision_latency(
    report: &mut Report,
    w: &World,
    api: &RuntimeApi,
    runs: usize,
    latency_ms: u64,
    rotation_calls: u64,
) {
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
        let (t, _) = invoke(api, provision_request(&s, 10.0)).await;
        let (sm, or) = w.counts().await;
        floor_new = (total(&sm) + or_total(&or)) as f64 * l;
        let wall = t.as_secs_f64() * 1000.0;
        let (upstream, slept) = w.remote_ms();
        lat_new.push(wall);
        own_new.push(wall - upstream - slept);
        moto_new.push(upstream);
        slop_new.push(slept - floor_new);
        w.reset_counts().await;
        let (t, _) = invoke(api, provision_request(&s, 10.0)).await;
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
    breakdown_rows(report, upstream, slop, own);
    let l0 = latency_at_zero(report, w, api, runs).await;
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
}

/// Where a new key's latency goes.
fn breakdown_rows(report: &mut Report, upstream: Stats, slop: Stats, own: Stats) {
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
}

/// The same at L = 0: what moto, the emulator and the function cost on their own.
async fn latency_at_zero(report: &mut Report, w: &World, api: &RuntimeApi, runs: usize) -> Stats {
    w.set_latency(0);
    let mut lat0 = Vec::new();
    for _ in 0..runs {
        let s = format!("openrouter/checkout/{}", unique("bench-lat0"));
        let (t, _) = invoke(api, provision_request(&s, 10.0)).await;
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
    l0
}

/// Scenario 5: a fresh moto seeded with each size in turn.
pub(crate) async fn sweep_scale(
    report: &mut Report,
    bin_dir: &Path,
    runs: usize,
    sweep_sizes: &[usize],
) {
    // 5. Sweep scale: N managed secrets, 1% due, L = 0; peak RSS of the sweep process.
    let mut scale = serde_json::Map::new();
    let w = world().await;
    let env = w.env();
    let env_ref: Vec<(&str, String)> = env.iter().map(|(k, v)| (*k, v.clone())).collect();
    let prefix = unique("bench-sweep");
    let mut seeded = 0;
    let mut peak_by_size = BTreeMap::new();
    for &n in sweep_sizes {
        seed(
            &w.sm,
            &format!("{prefix}-{n}"),
            n - seeded,
            (n - seeded) / 100,
        )
        .await;
        seeded = n;
        let m = measure_sweep(&w, bin_dir, &env_ref, n, runs.min(3)).await;
        let (wall, peak, lists, rotate_calls, scanned) =
            (m.wall, m.peak, m.lists, m.rotate_calls, m.scanned);
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

    drop(w.moto);
}

/// What the runs of one sweep size measured.
struct SweepRuns {
    wall: Stats,
    peak: Stats,
    lists: u64,
    rotate_calls: u64,
    scanned: u64,
}

/// `sweep_runs` sweeps over the `n` secrets seeded so far, each by a fresh sweep process.
async fn measure_sweep(
    w: &World,
    bin_dir: &Path,
    env_ref: &[(&str, String)],
    n: usize,
    sweep_runs: usize,
) -> SweepRuns {
    let mut walls = Vec::new();
    let mut peaks = Vec::new();
    let mut lists = 0;
    let mut rotate_calls = 0;
    let mut scanned = 0;
    for r in 0..sweep_runs {
        let api = RuntimeApi::start(Duration::from_secs(900)).await;
        let sweep = FunctionProcess::spawn(&bin_dir.join("sweep"), &api, env_ref);
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
    SweepRuns {
        wall: stats(walls),
        peak: stats(peaks),
        lists,
        rotate_calls,
        scanned,
    }
}

/// Scenario 5b.
pub(crate) async fn start_rotations(
    report: &mut Report,
    bin_dir: &Path,
    runs: usize,
    latency_ms: u64,
) {
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
        // One run starts all 1,000 (the default budget, the rotate function's reserved
        // concurrency, would leave 990 to later runs).
        env_ref.push(("ORKV_SWEEP_MAX_ROTATIONS", "1000".to_owned()));
        let _sweep = FunctionProcess::spawn(&bin_dir.join("sweep"), &api, &env_ref);
        w2.reset_counts().await;
        let (t, _) = invoke(&api, json!({"execution_id": format!("bench-due-{r}")})).await;
        let (sm, _) = w2.counts().await;
        started = sm.get("RotateSecret").copied().unwrap_or(0);
        walls.push(t.as_secs_f64() * 1000.0);
        moto_ms.push(w2.remote_ms().0);
    }
    // Each start is three calls in a row: DescribeSecret (the listing may lag),
    // ListSecretVersionIds (an abandoned attempt is a deprecated version) and RotateSecret.
    let floor = (1000.0 / c as f64).ceil() * 3.0 * latency_ms as f64;
    let wall = stats(walls);
    report.row(
        format!("start 1000 rotations, C = {c}, L = {latency_ms} ms (floor {floor:.0} ms: 3 calls per start; {started} RotateSecret)"),
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
}
