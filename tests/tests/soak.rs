//! The short chaos soak (the long one is `make soak`): the real function binaries under faults
//! and kills, then every invariant must be zero.

use orkv_tests::soak::{SoakConfig, SoakRotation, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_short_chaos_soak_keeps_every_promise() {
    let bin_dir = orkv_tests::runtime_api::binary("provision")
        .parent()
        .expect("target dir")
        .to_path_buf();
    let figures = run(&SoakConfig {
        operations: 300,
        kills: 25,
        secrets: 20,
        concurrency: 6,
        bin_dir,
        throttle_per_mille: 30,
        reset_per_mille: 15,
        rotation: SoakRotation::LocalDriver,
    })
    .await;
    println!(
        "soak: {}",
        serde_json::to_string_pretty(&figures).expect("figures")
    );
    assert!(figures.kills >= 10, "kills were injected: {figures:?}");
    assert!(
        figures.faults_secrets_manager_throttled + figures.faults_secrets_manager_cut_after_call
            > 0,
        "Secrets Manager faults were injected: {figures:?}"
    );
    assert!(figures.requests_served >= 300, "{figures:?}");
    assert!(
        figures.consumer_reads > 0,
        "the consumer read during the chaos: {figures:?}"
    );
    assert_eq!(figures.violations(), 0, "invariants: {figures:?}");
}
