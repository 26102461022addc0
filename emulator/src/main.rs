//! `openrouter-emulator`: serves the emulated management API on 127.0.0.1.
//!
//! Options: `--port N` (0 = any free port), `--management-key K` (or `OPENROUTER_EMULATOR_KEY`),
//! `--workspaces FILE` (JSON list of `{"id","name","slug"}`), `--latency-ms N`.
//! Prints one line `{"listening":"127.0.0.1:PORT","api":"http://.../api/v1"}` once ready,
//! and stops on SIGTERM or Ctrl-C.

use orkv_openrouter_emulator::{Emulator, EmulatorConfig, SeedWorkspace};

fn usage(msg: &str) -> ! {
    eprintln!("openrouter-emulator: {msg}");
    eprintln!(
        "usage: openrouter-emulator [--port N] [--management-key K] [--workspaces FILE] [--latency-ms N]"
    );
    std::process::exit(2)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut cfg = EmulatorConfig::default();
    if let Ok(key) = std::env::var("OPENROUTER_EMULATOR_KEY") {
        cfg.management_key = key;
    }
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| usage(&format!("{arg} needs a value")))
        };
        match arg.as_str() {
            "--port" => {
                cfg.port = value()
                    .parse()
                    .unwrap_or_else(|_| usage("--port: not a port number"))
            }
            "--management-key" => cfg.management_key = value(),
            "--latency-ms" => {
                cfg.latency_ms = value()
                    .parse()
                    .unwrap_or_else(|_| usage("--latency-ms: not a number"));
            }
            "--workspaces" => {
                let path = value();
                let text = std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| usage(&format!("--workspaces {path}: {e}")));
                cfg.workspaces = serde_json::from_str::<Vec<SeedWorkspace>>(&text)
                    .unwrap_or_else(|e| usage(&format!("--workspaces {path}: {e}")));
            }
            "-h" | "--help" => usage("help"),
            other => usage(&format!("unknown argument {other:?}")),
        }
    }
    let emulator = match Emulator::start(cfg).await {
        Ok(e) => e,
        Err(e) => usage(&format!("cannot bind: {e}")),
    };
    println!(
        "{}",
        serde_json::json!({"listening": emulator.addr().to_string(), "api": emulator.api_url()})
    );
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => usage(&format!("signal handler: {e}")),
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    emulator.shutdown().await;
}
