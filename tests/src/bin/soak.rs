//! `make soak`: the long chaos soak. Prints the figures and writes them as JSON (first
//! argument, default `docs/soak-results.json`). Exits 1 when an invariant is not zero.
//!
//! Environment: `ORKV_SOAK_OPERATIONS` (10000), `ORKV_SOAK_KILLS` (500), `ORKV_SOAK_SECRETS`
//! (100), `ORKV_SOAK_CONCURRENCY` (8), `ORKV_SOAK_BIN_DIR` (the release binaries).

use orkv_tests::soak::{SoakConfig, SoakRotation, run};

fn num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    let out = std::env::args().nth(1).map_or_else(
        || orkv_tests::workspace_root().join("docs/soak-results.json"),
        std::path::PathBuf::from,
    );
    let bin_dir = std::env::var("ORKV_SOAK_BIN_DIR").map_or_else(
        |_| {
            orkv_tests::runtime_api::binary("provision")
                .parent()
                .expect("target dir")
                .to_path_buf()
        },
        std::path::PathBuf::from,
    );
    let cfg = SoakConfig {
        operations: usize::try_from(num("ORKV_SOAK_OPERATIONS", 10_000)).unwrap_or(10_000),
        kills: usize::try_from(num("ORKV_SOAK_KILLS", 500)).unwrap_or(500),
        secrets: usize::try_from(num("ORKV_SOAK_SECRETS", 100)).unwrap_or(100),
        concurrency: usize::try_from(num("ORKV_SOAK_CONCURRENCY", 8)).unwrap_or(8),
        bin_dir,
        throttle_per_mille: num("ORKV_SOAK_THROTTLE_PER_MILLE", 30),
        reset_per_mille: num("ORKV_SOAK_RESET_PER_MILLE", 15),
        rotation: SoakRotation::LocalDriver,
    };
    let figures = run(&cfg).await;
    let text = serde_json::to_string_pretty(&figures).unwrap_or_default();
    println!("{text}");
    if let Some(dir) = out.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = std::fs::write(&out, &text);
    println!("written to {}", out.display());
    if figures.violations() > 0 {
        eprintln!("soak: {} invariant violations", figures.violations());
        std::process::exit(1);
    }
}
