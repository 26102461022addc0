//! Key vending core: the provision request and its validation, the deploy-time policy, the
//! secret record, and the crash-safe, idempotent provision logic the Lambda binary wires up.

pub mod actions;
pub mod clock;
pub mod config;
pub mod driver;
pub mod error;
pub mod invocation;
pub mod policy;
pub mod provision;
pub mod record;
pub mod request;
pub mod rotate;
pub mod sweep;

pub use config::Config;
pub use error::VendError;
pub use provision::{Deps, ProvisionReply, Status};

/// Exits cleanly (status 0) on SIGTERM or SIGINT. Lambda sends SIGTERM only in its Shutdown
/// phase, when no invocation runs; locally (`cargo lambda watch`, containers) it can arrive at
/// any time, and every operation is built to be finished by its retry after a crash at any
/// point (tested with SIGKILL), so exiting at once is safe. Call from inside the runtime.
pub fn exit_on_shutdown_signal() {
    #[cfg(unix)]
    tokio::spawn(async {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return;
        };
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "shutting down");
        std::process::exit(0);
    });
}
