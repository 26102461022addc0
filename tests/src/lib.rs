//! Test harness: starts the real local stand-ins (moto server from the project's virtualenv,
//! the OpenRouter emulator) on free loopback ports, builds SDK clients that count their calls,
//! and serves a minimal Lambda Runtime API to drive the real function binaries.

pub mod events;
pub mod iam;
pub mod lambda_api;
pub mod proxy;
pub mod roles;
pub mod rotating;
pub mod runtime_api;
pub mod soak;
pub mod strict;
pub mod world;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_sdk_secretsmanager::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_secretsmanager::config::{ConfigBag, Intercept, RuntimeComponents};
use orkv_openrouter_emulator::{Emulator, EmulatorConfig};
use serde_json::{Value, json};

/// The management key the emulator accepts in tests.
pub const MANAGEMENT_KEY: &str = "sk-or-v1-test-management-key";
/// The secret holding the management key, named as the module names the one it creates
/// (`<name>-openrouter-management-key-` and Terraform's unique suffix), so the rendered
/// policies' `ReadTheManagementKey` statement covers it (`crate::iam`).
pub const MANAGEMENT_KEY_SECRET: &str = "orkv-openrouter-management-key-20261207000000000000000001";

/// The workspace root (`/work/main` or wherever the clone is).
#[must_use]
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), PathBuf::from)
}

/// A free loopback port (bound then released).
///
/// # Panics
/// When no port can be bound.
#[must_use]
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A moto server: the one `ORKV_MOTO_URL` names, or a fresh one from `.venv`.
#[derive(Debug)]
pub struct Moto {
    pub url: String,
    _child: Option<tokio::process::Child>,
}

impl Moto {
    /// Starts (or reuses) moto and waits until it answers.
    ///
    /// # Panics
    /// When moto is not installed (`make venv`) or does not come up in 30 s.
    pub async fn start() -> Self {
        if let Ok(url) = std::env::var("ORKV_MOTO_URL") {
            return Self { url, _child: None };
        }
        let bin = workspace_root().join(".venv/bin/moto_server");
        assert!(
            bin.exists(),
            "{} is missing: run `make venv` (or `make test`) first",
            bin.display()
        );
        let port = free_port();
        let child = tokio::process::Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("moto_server starts");
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        for _ in 0..300 {
            if http
                .get(format!("{url}/moto-api/"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Self {
                    url,
                    _child: Some(child),
                };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("moto did not answer on {url} within 30 s");
    }
}

/// Counts every request attempt the SDK transmits.
#[derive(Debug, Clone, Default)]
pub struct CallCounter(pub Arc<AtomicU64>);

impl CallCounter {
    #[must_use]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
    pub fn reset(&self) {
        self.0.store(0, Ordering::SeqCst);
    }
}

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "CallCounter"
    }

    fn read_before_transmit(
        &self,
        _ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_secretsmanager::error::BoxError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// A Secrets Manager client pointed at moto, with a call counter.
pub async fn secrets_client(moto: &Moto) -> (aws_sdk_secretsmanager::Client, CallCounter) {
    secrets_client_at(&moto.url).await
}

/// A Secrets Manager client pointed at `url` (moto, or a proxy in front of it).
pub async fn secrets_client_at(url: &str) -> (aws_sdk_secretsmanager::Client, CallCounter) {
    let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(url)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
            "test", "test", None, None, "static",
        ))
        .load()
        .await;
    let counter = CallCounter::default();
    // The functions' own client settings (timeouts, bounded retries), plus the counter.
    let conf = orkv_store::client_config(&shared)
        .interceptor(counter.clone())
        .interceptor(roles::CallerHeader)
        .build();
    (aws_sdk_secretsmanager::Client::from_conf(conf), counter)
}

/// Starts an in-process emulator with the test management key.
pub async fn emulator() -> Emulator {
    Emulator::start(EmulatorConfig {
        management_key: MANAGEMENT_KEY.to_owned(),
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator binds")
}

/// A small client for the emulator's control API.
#[derive(Debug, Clone)]
pub struct Control {
    base: String,
    http: reqwest::Client,
}

impl Control {
    #[must_use]
    pub fn new(emulator: &Emulator) -> Self {
        Self {
            base: emulator.url(),
            http: reqwest::Client::new(),
        }
    }

    /// A guardrail in workspace `workspace_id` with a monthly budget of `limit_usd`, made
    /// through the management API as a Terraform user would: its id.
    pub async fn create_guardrail(&self, workspace_id: &str, limit_usd: f64) -> String {
        let resp = self
            .http
            .post(format!("{}/api/v1/guardrails", self.base))
            .bearer_auth(MANAGEMENT_KEY)
            .json(
                &json!({"name": unique("guardrail"), "workspace_id": workspace_id,
                          "limit_usd": limit_usd, "reset_interval": "monthly"}),
            )
            .send()
            .await
            .expect("create guardrail");
        assert_eq!(resp.status().as_u16(), 201, "create guardrail");
        let body: Value = resp.json().await.expect("guardrail");
        body["data"]["id"]
            .as_str()
            .expect("guardrail id")
            .to_owned()
    }

    /// `n` keys of `workspace_id` assigned guardrail `guardrail` and then deleted through the
    /// management API, as a dashboard user would (no unassign): `n` dead assignment rows,
    /// which OpenRouter keeps, ahead of any later assignment (CONTRACT.md).
    ///
    /// # Panics
    /// When the emulator refuses a step.
    pub async fn leave_dead_assignment_rows(&self, guardrail: &str, workspace_id: &str, n: usize) {
        let mut hashes = Vec::with_capacity(n);
        for i in 0..n {
            let (_, h) = self
                .add_key(json!({"name": format!("dashboard-{i}"), "workspace_id": workspace_id}))
                .await;
            hashes.push(h);
        }
        let api = format!("{}/api/v1", self.base);
        let resp = self
            .http
            .post(format!("{api}/guardrails/{guardrail}/assignments/keys"))
            .bearer_auth(MANAGEMENT_KEY)
            .json(&json!({ "key_hashes": hashes }))
            .send()
            .await
            .expect("assign");
        assert!(resp.status().is_success(), "assign: {}", resp.status());
        let body: Value = resp.json().await.expect("assigned");
        assert_eq!(body["assigned_count"], json!(n), "{body}");
        for h in &hashes {
            let status = self
                .http
                .delete(format!("{api}/keys/{h}"))
                .bearer_auth(MANAGEMENT_KEY)
                .send()
                .await
                .expect("delete")
                .status();
            assert!(status.is_success(), "delete: {status}");
        }
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .expect("control call");
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        resp.json().await.unwrap_or(Value::Null)
    }

    /// The emulator's state: keys (no plaintext), deleted hashes, workspaces.
    pub async fn state(&self) -> Value {
        self.http
            .get(format!("{}/_emulator/state", self.base))
            .send()
            .await
            .expect("state")
            .json()
            .await
            .expect("state json")
    }

    /// Every key the emulator holds, disabled and expired ones included.
    ///
    /// # Panics
    /// When the state lists no keys array.
    pub async fn all_keys(&self) -> Vec<Value> {
        self.state().await["keys"]
            .as_array()
            .cloned()
            .expect("the emulator's state lists its keys")
    }

    /// Live (not disabled, not expired) keys, optionally only those whose name contains `part`.
    pub async fn live_keys(&self, part: &str) -> Vec<Value> {
        self.all_keys()
            .await
            .into_iter()
            .filter(|k| k["disabled"] == json!(false) && k["expired"] == json!(false))
            .filter(|k| k["name"].as_str().is_some_and(|n| n.contains(part)))
            .collect()
    }

    /// Calls per operation and in total.
    pub async fn calls(&self) -> Value {
        self.http
            .get(format!("{}/_emulator/calls", self.base))
            .send()
            .await
            .expect("calls")
            .json()
            .await
            .expect("calls json")
    }

    pub async fn total_calls(&self) -> u64 {
        self.calls().await["total"].as_u64().unwrap_or(0)
    }

    pub async fn reset_calls(&self) {
        self.http
            .delete(format!("{}/_emulator/calls", self.base))
            .send()
            .await
            .expect("reset calls");
    }

    pub async fn fault(&self, fault: Value) {
        self.post("/_emulator/faults", fault).await;
    }

    /// Drops every queued fault.
    pub async fn clear_faults(&self) {
        self.http
            .delete(format!("{}/_emulator/faults", self.base))
            .send()
            .await
            .expect("clear faults");
    }

    pub async fn queue_plaintext(&self, key: &str) {
        self.post("/_emulator/plaintexts", json!({"keys": [key]}))
            .await;
    }

    /// Adds a workspace `{"id","name","slug"}`.
    ///
    /// # Panics
    /// When the emulator refuses it.
    pub async fn add_workspace(&self, id: &str, slug: &str, name: &str) {
        let status = self
            .http
            .post(format!("{}/_emulator/workspaces", self.base))
            .json(&serde_json::json!({"id": id, "slug": slug, "name": name}))
            .send()
            .await
            .expect("control")
            .status();
        assert!(status.is_success(), "add workspace: {status}");
    }

    /// Adds a key directly; answers `(plaintext, hash)`.
    pub async fn add_key(&self, body: Value) -> (String, String) {
        let v = self.post("/_emulator/keys", body).await;
        (
            v["key"].as_str().unwrap_or_default().to_owned(),
            v["hash"].as_str().unwrap_or_default().to_owned(),
        )
    }

    /// Adds `ms` milliseconds to every OpenRouter call from now on (0: none).
    pub async fn set_latency(&self, ms: u64) {
        self.post("/_emulator/latency", json!({"ms": ms})).await;
    }

    pub async fn advance_clock(&self, seconds: i64) {
        self.post("/_emulator/clock", json!({"advance_seconds": seconds}))
            .await;
    }
}

/// The emulator's checkout and search workspaces (`SeedWorkspace::defaults`).
pub const CHECKOUT_WORKSPACE_ID: &str = "5b1e0c52-8f0a-4c8e-9d61-2f3a7c1e9a01";
pub const SEARCH_WORKSPACE_ID: &str = "9d4f7a10-3b2c-4e5d-8f60-7a8b9c0d1e02";

/// The policy the tests and the demo use.
pub const POLICY: &str = r#"{"workspaces":[{"workspace":"checkout","max_limit":100},{"workspace":"search","max_limit":20}],"min_ttl_seconds":3600,"max_ttl_seconds":7776000,"default_ttl_seconds":2592000,"default_rotate_before_seconds":604800}"#;

/// [`POLICY`] with `guardrail` on its checkout workspace.
#[must_use]
pub fn guarded_policy(guardrail: &str) -> String {
    let mut p: Value = serde_json::from_str(POLICY).expect("policy");
    p["workspaces"][0]["guardrail_id"] = json!(guardrail);
    p.to_string()
}

/// A unique suffix for names, so tests sharing one moto never collide.
#[must_use]
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    )
}
