//! `runtime-api BINARY`: serves the Lambda Runtime API (`orkv_tests::runtime_api`) on a free
//! loopback port, runs the function `BINARY` against it with this process's environment, and
//! prints the URL of its Lambda Invoke API on its first line; it serves until killed.
//!
//! Unlike `cargo lambda watch` (which hands every invocation the ARN `function-arn`), an
//! invocation of `functions/provision:<alias>` (or `?Qualifier=<alias>`) reaches the function
//! with the qualified invoked function ARN, as Lambda delivers an invocation through an alias:
//! `make demo` passes each team's tenant this way. A local stand-in: never part of a release
//! package.

use std::time::Duration;

use orkv_tests::runtime_api::{FunctionProcess, RuntimeApi};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let Some(binary) = std::env::args().nth(1) else {
        eprintln!("usage: runtime-api FUNCTION_BINARY");
        std::process::exit(2);
    };
    let api = RuntimeApi::start(Duration::from_secs(60)).await;
    let vars: Vec<(String, String)> = std::env::vars().collect();
    let env: Vec<(&str, String)> = vars.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let mut process = FunctionProcess::spawn(std::path::Path::new(&binary), &api, &env);
    println!("http://{}", api.addr);
    // Until SIGINT or SIGTERM, then the function process goes too.
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
    process.kill().await;
}
