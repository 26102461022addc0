//! Pools of function processes under their own Runtime APIs, killed and replaced at will, and
//! the Invoke API in front of the rotate pool that the local rotation driver calls.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::Mutex;

use crate::runtime_api::{FunctionProcess, RuntimeApi};

/// Processes of one function, each with its own Runtime API (a killed process's pending poll
/// can then never swallow an invocation meant for a live one). Invocations go round robin.
pub(super) struct Pool {
    binary: PathBuf,
    env: Vec<(&'static str, String)>,
    slots: Mutex<Vec<(Arc<RuntimeApi>, FunctionProcess)>>,
    next: AtomicU64,
    /// Output of processes already killed.
    dead_output: Mutex<String>,
}

impl Pool {
    pub(super) async fn start(
        binary: PathBuf,
        n: usize,
        env: Vec<(&'static str, String)>,
    ) -> Arc<Self> {
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

    pub(super) async fn spawn(&self) -> (Arc<RuntimeApi>, FunctionProcess) {
        // The invocation deadline (the function timeout); the pending lease outlives it.
        let api = Arc::new(RuntimeApi::start(Duration::from_secs(10)).await);
        let env: Vec<(&str, String)> = self.env.iter().map(|(k, v)| (*k, v.clone())).collect();
        let process = FunctionProcess::spawn(&self.binary, &api, &env);
        (api, process)
    }

    /// One invocation on the next process; `None` when no answer came within `wait`.
    pub(super) async fn invoke(
        &self,
        payload: Value,
        wait: Duration,
    ) -> Option<Result<Value, Value>> {
        let api = {
            let slots = self.slots.lock().await;
            let i = usize::try_from(self.next.fetch_add(1, Ordering::Relaxed)).unwrap_or(0)
                % slots.len().max(1);
            slots.get(i).map(|(api, _)| api.clone())?
        };
        api.invoke_within(payload, wait).await
    }

    /// SIGKILLs one process, fails what was in flight on it, starts a replacement.
    pub(super) async fn kill_one(&self, which: usize) {
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

    pub(super) async fn all_output(&self) -> String {
        let mut all = self.dead_output.lock().await.clone();
        for (_, p) in self.slots.lock().await.iter() {
            all.push_str(&p.output().await);
        }
        all
    }
}

/// Lambda's Invoke API in front of a pool, so the local rotation driver has one stable URL.
pub(super) async fn invoke_front(pool: Arc<Pool>) -> String {
    use axum::extract::State;
    use axum::http::{HeaderMap, HeaderValue, StatusCode};
    use axum::response::IntoResponse;
    pub(super) async fn handle(
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
