//! `make bench`: the release function binaries against moto (behind a latency-injecting,
//! call-counting proxy) and the OpenRouter emulator. Prints a table (median, min, max) and writes
//! the same figures as JSON (first argument, default `docs/bench-results.json`).
//!
//! Environment: `ORKV_BENCH_BIN_DIR` (the packaged release binaries),
//! `ORKV_BENCH_PACKAGE_DIR` (zips), `ORKV_BENCH_RUNS` (default 11), `ORKV_BENCH_LATENCY_MS`
//! (default 20), `ORKV_BENCH_SWEEP_SIZES` (default `1000,10000`).

mod adopt;
mod calls;
mod load;
mod report;
mod setup;

use std::path::PathBuf;
use std::time::Duration;

use orkv_tests::runtime_api::{FunctionProcess, RuntimeApi};
use orkv_tests::unique;

use report::Report;
use setup::{env_or, invoke, provision_request, target_dir, world};

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
    calls::cold_starts(&mut report, &bin_dir, runs).await;
    calls::package_sizes(&mut report, &package_dir);

    let w = world().await;
    let api = RuntimeApi::start(Duration::from_secs(30)).await;
    let env = w.env();
    let env_ref: Vec<(&str, String)> = env.iter().map(|(k, v)| (*k, v.clone())).collect();
    let provision = FunctionProcess::spawn(&bin_dir.join("provision"), &api, &env_ref);
    // Warm the container (reads the management key once).
    let warm = format!("openrouter/checkout/{}", unique("bench-warm"));
    invoke(&api, provision_request(&warm, 10.0)).await;
    let so_far = calls::provision_calls(&mut report, &w, &api).await;
    let rotation = calls::rotation_calls(&mut report, &w, &bin_dir, &env_ref, so_far).await;
    calls::guardrail_calls(&mut report, &w, &bin_dir, &env_ref).await;
    load::provision_latency(&mut report, &w, &api, runs, latency_ms, rotation).await;
    drop(provision);
    drop(w.moto);

    load::sweep_scale(&mut report, &bin_dir, runs, &sweep_sizes).await;
    load::start_rotations(&mut report, &bin_dir, runs, latency_ms).await;
    adopt::bulk(&mut report, &bin_dir).await;
    report.write(&out_path, runs);
}
