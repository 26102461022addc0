//! A loopback HTTP proxy in front of moto: adds a fixed latency to every request (the round trip
//! a real AWS endpoint costs) and counts requests per operation (`X-Amz-Target`), so benchmarks
//! can run the real function binaries against "remote" Secrets Manager and count their calls.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::sync::Mutex;

#[derive(Debug)]
struct Inner {
    upstream: String,
    http: reqwest::Client,
    latency_us: AtomicU64,
    calls: Mutex<BTreeMap<String, u64>>,
    /// Time spent waiting for the upstream (its own processing), and sleeping (the injected
    /// latency as actually slept), in microseconds.
    upstream_us: AtomicU64,
    slept_us: AtomicU64,
    /// Fault rates, per mille of requests: answered `ThrottlingException` without forwarding;
    /// forwarded, then the connection cut before the reply (the call happened, the caller
    /// cannot know).
    throttle_per_mille: AtomicU64,
    reset_per_mille: AtomicU64,
    throttled: AtomicU64,
    resets: AtomicU64,
    /// Targeted faults: the next n calls of an operation get their connection cut after the
    /// upstream carried them out.
    cut_next: std::sync::Mutex<BTreeMap<String, u64>>,
    /// The next n `PutEvents` calls are answered as AWS answers a partial failure: 200, with
    /// the entry failed (`ThrottlingException`) and `FailedEntryCount` 1; not forwarded.
    fail_put_entries: AtomicU64,
    /// Answer as AWS does where moto is more lenient (`crate::strict`).
    strict: AtomicBool,
    /// What the strict layer remembers between calls.
    strict_state: crate::strict::State,
}

/// A running proxy; its `url` replaces the upstream's.
#[derive(Debug, Clone)]
pub struct LatencyProxy {
    pub url: String,
    inner: Arc<Inner>,
}

impl LatencyProxy {
    /// Serves on a free loopback port, forwarding to `upstream` (e.g. moto's URL).
    ///
    /// # Panics
    /// When no port can be bound.
    pub async fn start(upstream: &str, latency: Duration) -> Self {
        let inner = Arc::new(Inner {
            upstream: upstream.trim_end_matches('/').to_owned(),
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(256)
                .build()
                .expect("http client"),
            latency_us: AtomicU64::new(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX)),
            calls: Mutex::default(),
            upstream_us: AtomicU64::new(0),
            slept_us: AtomicU64::new(0),
            throttle_per_mille: AtomicU64::new(0),
            reset_per_mille: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
            resets: AtomicU64::new(0),
            cut_next: std::sync::Mutex::default(),
            fail_put_entries: AtomicU64::new(0),
            strict: AtomicBool::new(false),
            strict_state: crate::strict::State::default(),
        });
        let app = Router::new().fallback(forward).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, inner }
    }

    /// Changes the latency added to each request from now on.
    pub fn set_latency(&self, latency: Duration) {
        self.inner.latency_us.store(
            u64::try_from(latency.as_micros()).unwrap_or(u64::MAX),
            Ordering::SeqCst,
        );
    }

    /// Sets the fault rates (per mille): throttling answers, and connections cut after the
    /// upstream carried the request out.
    pub fn set_faults(&self, throttle_per_mille: u64, reset_per_mille: u64) {
        self.inner
            .throttle_per_mille
            .store(throttle_per_mille, Ordering::SeqCst);
        self.inner
            .reset_per_mille
            .store(reset_per_mille, Ordering::SeqCst);
    }

    /// Cuts the connection of the next `n` calls of `op` (e.g. `PutSecretValue`) after the
    /// upstream carried them out: the call happened, its reply is lost. `n = 0` clears it.
    pub fn cut_next(&self, op: &str, n: u64) {
        if let Ok(mut m) = self.inner.cut_next.lock() {
            m.insert(op.to_owned(), n);
        }
    }

    /// Answers the next `n` `PutEvents` calls with their entry failed (`ThrottlingException`),
    /// as AWS reports a partial failure: HTTP 200, `FailedEntryCount` 1. moto never does.
    pub fn fail_put_entries(&self, n: u64) {
        self.inner.fail_put_entries.store(n, Ordering::SeqCst);
    }

    /// Turns the AWS behaviour layer (`crate::strict`) on or off.
    pub fn set_strict(&self, on: bool) {
        self.inner.strict.store(on, Ordering::SeqCst);
    }

    /// The managed prefix of a deployment whose provision role may adopt: under it, a secret
    /// without the managed-by tag may be described, read, and tagged with it (the module's
    /// `ReadSecretsToAdopt` and `CreateManagedSecrets` statements). `None` (the default): no
    /// untagged secret is reachable.
    pub fn set_adoptable_prefix(&self, prefix: Option<&str>) {
        self.inner
            .strict_state
            .set_adoptable_prefix(prefix.map(str::to_owned));
    }

    /// How long a secret the layer saw created stays out of `ListSecrets` (AWS: the listing
    /// "might not reflect changes from the last five minutes"). Zero (the default): at once.
    pub fn set_list_lag(&self, lag: Duration) {
        self.inner.strict_state.set_list_lag(lag);
    }

    /// Faults injected so far: (throttled, connections cut after the call).
    #[must_use]
    pub fn faults(&self) -> (u64, u64) {
        (
            self.inner.throttled.load(Ordering::SeqCst),
            self.inner.resets.load(Ordering::SeqCst),
        )
    }

    /// Requests seen per operation (`secretsmanager.CreateSecret` → `CreateSecret`).
    pub async fn calls(&self) -> BTreeMap<String, u64> {
        self.inner.calls.lock().await.clone()
    }

    /// All requests seen.
    pub async fn total(&self) -> u64 {
        self.inner.calls.lock().await.values().sum()
    }

    pub async fn reset(&self) {
        self.inner.calls.lock().await.clear();
        self.inner.upstream_us.store(0, Ordering::SeqCst);
        self.inner.slept_us.store(0, Ordering::SeqCst);
    }

    /// Since the last reset: (time the upstream took, injected latency as slept).
    #[must_use]
    pub fn remote_time(&self) -> (Duration, Duration) {
        (
            Duration::from_micros(self.inner.upstream_us.load(Ordering::SeqCst)),
            Duration::from_micros(self.inner.slept_us.load(Ordering::SeqCst)),
        )
    }
}

/// The operation a request names: the AWS JSON target, else "METHOD /path" (long ids folded).
fn operation(parts: &axum::http::request::Parts) -> String {
    parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .map_or_else(
            || {
                let path: Vec<&str> = parts
                    .uri
                    .path()
                    .split('/')
                    .map(|seg| if seg.len() >= 32 { "{id}" } else { seg })
                    .collect();
                format!("{} {}", parts.method, path.join("/"))
            },
            |t| t.rsplit('.').next().unwrap_or(t).to_owned(),
        )
}

/// The reply Secrets Manager gives a throttled call.
fn throttled() -> Response {
    Response::builder()
        .status(StatusCode::BAD_REQUEST)
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amzn-errortype", "ThrottlingException")
        .body(Body::from(
            r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#,
        ))
        .unwrap_or_else(|_| StatusCode::BAD_REQUEST.into_response())
}

/// `PutEvents` with its one entry failed, as AWS answers a partial failure (API reference,
/// *PutEvents*: "FailedEntryCount", and each failed entry's "ErrorCode" and "ErrorMessage").
fn failed_entry() -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/x-amz-json-1.1")
        .body(Body::from(
            r#"{"FailedEntryCount":1,"Entries":[{"ErrorCode":"ThrottlingException","ErrorMessage":"Rate exceeded"}]}"#,
        ))
        .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
}

/// A reply cut mid-body: the upstream carried the call out, the caller never learns it.
fn cut_reply() -> Response {
    let broken = futures_util::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::from(std::io::ErrorKind::ConnectionReset))
    });
    Response::builder()
        .status(StatusCode::OK)
        .body(Body::from_stream(broken))
        .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
}

async fn forward(State(inner): State<Arc<Inner>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let op = operation(&parts);
    let targeted = inner.cut_next.lock().ok().is_some_and(|mut m| {
        m.get_mut(&op).is_some_and(|n| {
            let hit = *n > 0;
            *n = n.saturating_sub(1);
            hit
        })
    });
    *inner.calls.lock().await.entry(op.clone()).or_default() += 1;
    let latency = inner.latency_us.load(Ordering::SeqCst);
    if latency > 0 {
        let slept = std::time::Instant::now();
        tokio::time::sleep(Duration::from_micros(latency)).await;
        inner.slept_us.fetch_add(
            u64::try_from(slept.elapsed().as_micros()).unwrap_or(0),
            Ordering::SeqCst,
        );
    }
    if op == "PutEvents"
        && inner
            .fail_put_entries
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    {
        return failed_entry();
    }
    let throttle = inner.throttle_per_mille.load(Ordering::SeqCst);
    if throttle > 0 && rand::random_range(0..1000) < throttle {
        inner.throttled.fetch_add(1, Ordering::SeqCst);
        return throttled();
    }
    let reset = inner.reset_per_mille.load(Ordering::SeqCst);
    let cut = targeted || (reset > 0 && rand::random_range(0..1000) < reset);
    let upstream_started = std::time::Instant::now();
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024 * 1024).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let strict = inner.strict.load(Ordering::SeqCst);
    if strict
        && let Some(resp) = crate::strict::before(
            &inner.http,
            &inner.upstream,
            &op,
            &parts.headers,
            &bytes,
            inner.strict_state.adoptable().as_deref(),
        )
        .await
    {
        return resp;
    }
    if strict && let Some(resp) = inner.strict_state.before(&op, &bytes) {
        return resp;
    }
    let abandons = if strict {
        crate::strict::abandoned_by(&inner.http, &inner.upstream, &op, &parts.headers, &bytes).await
    } else {
        None
    };
    let bytes = if strict {
        crate::strict::rewrite(&op, bytes)
    } else {
        bytes
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut headers = HeaderMap::new();
    for (k, v) in &parts.headers {
        if k != "host" && k != "content-length" {
            headers.append(k, v.clone());
        }
    }
    let sent_body = bytes.clone();
    let sent = inner
        .http
        .request(parts.method, format!("{}{path}", inner.upstream))
        .headers(headers)
        .body(bytes)
        .send()
        .await;
    let Ok(resp) = sent else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let status = resp.status();
    if status.is_success()
        && let Some(rotation) = &abandons
    {
        crate::strict::abandon(&inner.http, &inner.upstream, &parts.headers, rotation).await;
    }
    if strict && !status.is_success() && op == "RotateSecret" {
        crate::strict::undo_refused_rotation(
            &inner.http,
            &inner.upstream,
            &parts.headers,
            &sent_body,
        )
        .await;
    }
    if strict && status.is_success() {
        inner.strict_state.after(&op, &sent_body);
    }
    let headers = resp.headers().clone();
    let body: Bytes = resp.bytes().await.unwrap_or_default();
    let body = if strict {
        inner
            .strict_state
            .listed(&op, crate::strict::after(&op, status, &sent_body, body))
    } else {
        body
    };
    inner.upstream_us.fetch_add(
        u64::try_from(upstream_started.elapsed().as_micros()).unwrap_or(0),
        Ordering::SeqCst,
    );
    if cut {
        inner.resets.fetch_add(1, Ordering::SeqCst);
        return cut_reply();
    }
    let mut out = Response::builder().status(status);
    for (k, v) in &headers {
        if k != "content-length" && k != "transfer-encoding" && k != "connection" {
            out = out.header(k, v);
        }
    }
    out.body(Body::from(body))
        .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
}
