//! A minimal Lambda Runtime API (`/2018-06-01/runtime/...`) on loopback, so tests can run the
//! real function binaries, invoke them, read their replies, and kill and restart them.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;
use tokio::io::AsyncReadExt;
use tokio::sync::{Mutex, mpsc, oneshot};

/// One queued invocation: request id, event body, invoked function ARN.
type Queued = (String, String, String);

/// The invoked function ARN of the test function, with `qualifier` when not empty (an alias:
/// what Lambda hands the function for an invocation through that alias).
#[must_use]
pub fn function_arn(qualifier: &str) -> String {
    let base = "arn:aws:lambda:us-east-1:123456789012:function:provision";
    if qualifier.is_empty() {
        base.to_owned()
    } else {
        format!("{base}:{qualifier}")
    }
}

type Waiters = Arc<Mutex<HashMap<String, oneshot::Sender<Result<Value, Value>>>>>;

#[derive(Clone)]
struct Shared {
    queue: Arc<Mutex<mpsc::Receiver<Queued>>>,
    waiters: Waiters,
    timeout: Duration,
}

/// A Runtime API server; invoke with [`RuntimeApi::invoke`].
#[derive(Debug)]
pub struct RuntimeApi {
    pub addr: std::net::SocketAddr,
    sender: mpsc::Sender<Queued>,
    waiters: Waiters,
    _task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Shared")
    }
}

impl RuntimeApi {
    /// Serves on a free loopback port. `timeout` becomes each invocation's deadline.
    ///
    /// # Panics
    /// When no port can be bound.
    pub async fn start(timeout: Duration) -> Self {
        let (sender, receiver) = mpsc::channel(64);
        let waiters: Waiters = Arc::default();
        let shared = Shared {
            queue: Arc::new(Mutex::new(receiver)),
            waiters: waiters.clone(),
            timeout,
        };
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(shared);
        // Lambda's Invoke API, as `cargo lambda watch` serves it: the local rotation driver
        // (ORKV_LOCAL_ROTATION_INVOKE_URL) calls the function binary through it.
        let invoker = Invoker {
            sender: sender.clone(),
            waiters: waiters.clone(),
        };
        let app = app.merge(
            Router::new()
                .route("/2015-03-31/functions/{name}/invocations", post(invoke_api))
                .with_state(invoker),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind runtime api");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            addr,
            sender,
            waiters,
            _task: task,
        }
    }

    /// Queues an invocation and waits for the function's reply: `Ok(reply)` or
    /// `Err({"errorType","errorMessage"})`. `None` if no reply came within `wait`.
    pub async fn invoke_within(
        &self,
        payload: Value,
        wait: Duration,
    ) -> Option<Result<Value, Value>> {
        self.invoke_raw(payload.to_string(), wait).await
    }

    /// Answers every invocation in flight with a `ProcessKilled` error (after its process was
    /// killed, as Lambda reports a crashed invocation). Returns how many there were.
    pub async fn fail_in_flight(&self) -> usize {
        let mut waiters = self.waiters.lock().await;
        let n = waiters.len();
        for (_, tx) in waiters.drain() {
            let _ = tx.send(Err(serde_json::json!({
                "errorType": "ProcessKilled",
                "errorMessage": "the function process was killed during the invocation"
            })));
        }
        n
    }

    /// Queues raw bytes as the event body (malformed JSON included).
    pub async fn invoke_raw(
        &self,
        payload: String,
        wait: Duration,
    ) -> Option<Result<Value, Value>> {
        self.invoke_raw_as("", payload, wait).await
    }

    /// As [`RuntimeApi::invoke_raw`], through the alias `qualifier` (the Runtime API hands
    /// the function the qualified ARN, as Lambda does).
    pub async fn invoke_raw_as(
        &self,
        qualifier: &str,
        payload: String,
        wait: Duration,
    ) -> Option<Result<Value, Value>> {
        let id = uuid::Uuid::new_v4().to_string();
        let (tx, rx) = oneshot::channel();
        self.waiters.lock().await.insert(id.clone(), tx);
        self.sender
            .send((id, payload, function_arn(qualifier)))
            .await
            .ok()?;
        tokio::time::timeout(wait, rx).await.ok()?.ok()
    }

    /// As [`RuntimeApi::invoke_within`] with 60 s.
    ///
    /// # Panics
    /// When the function does not answer within 60 s.
    pub async fn invoke(&self, payload: Value) -> Result<Value, Value> {
        self.invoke_within(payload, Duration::from_secs(60))
            .await
            .expect("the function answered within 60 s")
    }

    /// As [`RuntimeApi::invoke`], through the alias `qualifier`.
    ///
    /// # Panics
    /// When the function does not answer within 60 s.
    pub async fn invoke_as(&self, qualifier: &str, payload: Value) -> Result<Value, Value> {
        self.invoke_raw_as(qualifier, payload.to_string(), Duration::from_secs(60))
            .await
            .expect("the function answered within 60 s")
    }
}

#[derive(Clone)]
struct Invoker {
    sender: mpsc::Sender<Queued>,
    waiters: Waiters,
}

async fn invoke_api(
    State(inv): State<Invoker>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    // `name:qualifier` or `?Qualifier=`, as Lambda's Invoke API takes either.
    let qualifier = query
        .get("Qualifier")
        .cloned()
        .or_else(|| name.split_once(':').map(|(_, q)| q.to_owned()))
        .unwrap_or_default();
    let id = uuid::Uuid::new_v4().to_string();
    let (tx, rx) = oneshot::channel();
    inv.waiters.lock().await.insert(id.clone(), tx);
    if inv
        .sender
        .send((
            id,
            String::from_utf8_lossy(&body).into_owned(),
            function_arn(&qualifier),
        ))
        .await
        .is_err()
    {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    match rx.await {
        Ok(Ok(v)) => (StatusCode::OK, v.to_string()).into_response(),
        Ok(Err(e)) => {
            let mut headers = HeaderMap::new();
            headers.insert(
                "x-amz-function-error",
                HeaderValue::from_static("Unhandled"),
            );
            (StatusCode::OK, headers, e.to_string()).into_response()
        }
        Err(_) => StatusCode::BAD_GATEWAY.into_response(),
    }
}

async fn next(State(s): State<Shared>) -> Response {
    let item = s.queue.lock().await.recv().await;
    let Some((id, payload, arn)) = item else {
        return StatusCode::GONE.into_response();
    };
    let deadline = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
        + s.timeout.as_millis();
    let mut headers = HeaderMap::new();
    let mut put = |k: &'static str, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            headers.insert(k, v);
        }
    };
    put("lambda-runtime-aws-request-id", id);
    put("lambda-runtime-deadline-ms", deadline.to_string());
    put("lambda-runtime-invoked-function-arn", arn);
    put(
        "lambda-runtime-trace-id",
        "Root=1-00000000-000000000000000000000000".into(),
    );
    (StatusCode::OK, headers, payload).into_response()
}

async fn response(State(s): State<Shared>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if let Some(tx) = s.waiters.lock().await.remove(&id) {
        let _ = tx.send(Ok(value));
    }
    StatusCode::ACCEPTED
}

async fn error(State(s): State<Shared>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if let Some(tx) = s.waiters.lock().await.remove(&id) {
        let _ = tx.send(Err(value));
    }
    StatusCode::ACCEPTED
}

async fn init_error(body: Bytes) -> StatusCode {
    eprintln!("function init error: {}", String::from_utf8_lossy(&body));
    StatusCode::ACCEPTED
}

/// A function binary running against a [`RuntimeApi`], its output captured.
#[derive(Debug)]
pub struct FunctionProcess {
    child: tokio::process::Child,
    output: Arc<Mutex<Vec<u8>>>,
}

/// The path of a built binary in the cargo target dir.
#[must_use]
pub fn binary(name: &str) -> std::path::PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| crate::workspace_root().join("target"));
    target.join("debug").join(name)
}

impl FunctionProcess {
    /// Starts `binary` with the Runtime API address and `env`.
    ///
    /// # Panics
    /// When the binary is missing (build the workspace first).
    pub fn spawn(binary: &std::path::Path, api: &RuntimeApi, env: &[(&str, String)]) -> Self {
        assert!(binary.exists(), "{} is not built", binary.display());
        let mut cmd = tokio::process::Command::new(binary);
        cmd.env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", api.addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", "provision")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
            .env("AWS_REGION", "us-east-1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        // The provision and rotate functions sign as their roles, so the deployed-role oracle
        // evaluates their calls against their own policies (`crate::iam`). The sweep binary
        // runs the local driver, whose own calls are Secrets Manager's work, not the role's.
        let name = binary.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let test_key = env
            .iter()
            .all(|(k, v)| *k != "AWS_ACCESS_KEY_ID" || v == "test");
        if test_key && matches!(name, "provision" | "rotate") {
            cmd.env(
                "AWS_ACCESS_KEY_ID",
                format!("{}{name}", crate::iam::ROLE_KEY_PREFIX),
            );
        }
        let mut child = cmd.spawn().expect("function starts");
        let output = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let sink = output.clone();
            tokio::spawn(async move {
                let mut stream = stream;
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    sink.lock().await.extend_from_slice(&buf[..n]);
                }
            });
        }
        Self { child, output }
    }

    /// The process id (None once it has been reaped).
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Sends `signal` (e.g. "TERM") with kill(1) and waits up to `wait` for the process to exit.
    pub async fn signal_and_wait(
        &mut self,
        signal: &str,
        wait: Duration,
    ) -> Option<std::process::ExitStatus> {
        let pid = self.child.id()?;
        let _ = tokio::process::Command::new("kill")
            .args([format!("-{signal}"), pid.to_string()])
            .status()
            .await;
        tokio::time::timeout(wait, self.child.wait())
            .await
            .ok()?
            .ok()
    }

    /// Kills the process at once (SIGKILL) and waits for it.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }

    /// Everything the process printed so far.
    pub async fn output(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().await).into_owned()
    }
}
