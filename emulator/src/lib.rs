//! An emulator of OpenRouter's management API (`/api/v1/keys`, `/key`, `/workspaces`) with
//! latency and fault injection, and a control API under `/_emulator/` for tests.
//!
//! It follows `management-openapi.yaml` and the contract notes: the plaintext only at top-level
//! `key` on create, `hash` = SHA-256 of the key, fixed 100-item pages per workspace,
//! `include_disabled`, immutable fields, UTC-with-seconds `expires_at`, 401 for unknown or
//! expired keys, 403 for an inference key on admin paths, `GET /key` for any key.

mod api;
mod control;
mod guardrails;
mod parse;
mod reply;
mod state;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{Mutex, Notify, watch};

pub use state::{Fault, FaultAction, SeedWorkspace};

/// How to start an emulator.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// The plaintext of the management key it accepts.
    pub management_key: String,
    /// Workspaces besides the default one.
    pub workspaces: Vec<SeedWorkspace>,
    /// Latency added to every API call.
    pub latency_ms: u64,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            port: 0,
            management_key: "sk-or-v1-emulator-management-key".to_owned(),
            workspaces: SeedWorkspace::defaults(),
            latency_ms: 0,
        }
    }
}

/// A running emulator; stops when dropped or on [`Emulator::shutdown`].
#[derive(Debug)]
pub struct Emulator {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Emulator {
    /// Binds 127.0.0.1 and serves in the background.
    ///
    /// # Errors
    /// When the port cannot be bound.
    pub async fn start(cfg: EmulatorConfig) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", cfg.port)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Mutex::new(state::State::new(&cfg)));
        let app = api::router(shared.clone())
            .merge(guardrails::router(shared.clone()))
            .merge(control::router(shared));
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(serve(listener, app, stop_rx));
        Ok(Self {
            addr,
            stop,
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:PORT`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The management API root: `http://127.0.0.1:PORT/api/v1`.
    #[must_use]
    pub fn api_url(&self) -> String {
        format!("http://{}/api/v1", self.addr)
    }

    /// The bound address.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and waits for the accept loop to end.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Per-connection handle a handler uses to drop its connection without answering.
#[derive(Clone, Debug)]
pub(crate) struct ConnKill(pub Arc<Notify>);

async fn serve(listener: TcpListener, app: axum::Router, mut stop: watch::Receiver<bool>) {
    use hyper_util::rt::TokioIo;
    use tower::ServiceExt;
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(_) => continue,
            },
            _ = stop.changed() => return,
        };
        let app = app.clone();
        let mut stop_conn = stop.clone();
        tokio::spawn(async move {
            let kill = Arc::new(Notify::new());
            let handle = ConnKill(kill.clone());
            let svc = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(handle.clone());
                    app.clone().oneshot(req.map(axum::body::Body::new))
                },
            );
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc);
            // Dropping the connection future closes the socket with no reply.
            tokio::select! {
                _ = conn => {}
                () = kill.notified() => {}
                _ = stop_conn.changed() => {}
            }
        });
    }
}
