//! One test world for every suite, the soak and the bench: moto, the emulator and a counting
//! Secrets Manager client; builders for the functions' configuration (in process) and
//! environment (real binaries); and the read helpers that check what a test claims.

use std::sync::Arc;
use std::time::{Duration, Instant};

use orkv_openrouter_emulator::Emulator;
use orkv_store::SecretStore;
use orkv_vending::{Config, Deps};
use serde_json::Value;

use crate::proxy::LatencyProxy;
use crate::{CallCounter, Control, MANAGEMENT_KEY, Moto, POLICY, emulator, secrets_client_at};

/// moto behind the AWS behaviour layer, the emulator and a Secrets Manager client that counts
/// its calls.
#[derive(Debug)]
pub struct World {
    pub moto: Moto,
    pub emu: Emulator,
    pub control: Control,
    pub sm: aws_sdk_secretsmanager::Client,
    pub sm_calls: CallCounter,
    /// The strict layer every client of [`World::start`] goes through (the functions' binaries
    /// too, via [`World::function_env`]); `None` for [`World::behind_proxy`], whose caller
    /// holds the proxy and sets it as the test needs.
    pub strict: Option<LatencyProxy>,
    /// Where the functions reach Secrets Manager.
    pub sm_url: String,
}

/// moto behind the AWS behaviour layer, for the end-to-end suites that build their own world
/// around the real binaries: `url` is where clients and binaries reach Secrets Manager.
#[derive(Debug)]
pub struct StrictMoto {
    pub moto: Moto,
    pub proxy: LatencyProxy,
    pub url: String,
}

impl StrictMoto {
    /// A fresh moto (or the one `ORKV_MOTO_URL` names) behind a strict proxy.
    pub async fn start() -> Self {
        let moto = Moto::start().await;
        let proxy = LatencyProxy::start(&moto.url, Duration::ZERO).await;
        proxy.set_strict(true);
        let url = proxy.url.clone();
        Self { moto, proxy, url }
    }
}

/// A deadline `seconds` from now.
#[must_use]
pub fn deadline_in(seconds: u64) -> Instant {
    Instant::now() + Duration::from_secs(seconds)
}

/// The environment of a function binary run against `moto_url` and the emulator at
/// `api_url`, with `extra` variables added (or replacing the defaults).
#[must_use]
pub fn function_env(
    moto_url: &str,
    api_url: &str,
    extra: &[(&'static str, String)],
) -> Vec<(&'static str, String)> {
    let mut env: Vec<(&'static str, String)> = vec![
        ("AWS_ENDPOINT_URL", moto_url.to_owned()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("OPENROUTER_BASE_URL", api_url.to_owned()),
        ("OPENROUTER_MANAGEMENT_KEY", MANAGEMENT_KEY.into()),
        ("ORKV_POLICY", POLICY.into()),
        ("AWS_LAMBDA_LOG_LEVEL", "DEBUG".into()),
        ("RUST_LOG", "debug".into()),
    ];
    for (k, v) in extra {
        env.retain(|(name, _)| name != k);
        env.push((k, v.clone()));
    }
    env
}

/// The environment of a function deployed as the module deploys it: moto (or a proxy) at
/// `sm_url`, the emulator at `emulator_url`, the management key read from its secret
/// ([`crate::MANAGEMENT_KEY_SECRET`]), and `extra` added (or replacing the defaults).
#[must_use]
pub fn deployed_env(
    sm_url: &str,
    emulator_url: &str,
    extra: Vec<(&'static str, String)>,
) -> Vec<(&'static str, String)> {
    let mut env: Vec<(&'static str, String)> = vec![
        ("AWS_ENDPOINT_URL", sm_url.to_owned()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("OPENROUTER_BASE_URL", format!("{emulator_url}/api/v1")),
        (
            "OPENROUTER_MANAGEMENT_KEY_SECRET_ID",
            crate::MANAGEMENT_KEY_SECRET.into(),
        ),
        ("ORKV_POLICY", POLICY.into()),
    ];
    for (k, v) in extra {
        env.retain(|(name, _)| *name != k);
        env.push((k, v));
    }
    env
}

/// A provision request that names its secret (the key name is the secret's last segment),
/// with a monthly cap of `limit` USD and a 30-day lifetime.
#[must_use]
pub fn named_request(secret: &str, limit: f64) -> Value {
    serde_json::json!({
        "workspace": "checkout",
        "key_name": secret.rsplit('/').next().unwrap_or(secret),
        "limit": limit,
        "limit_reset": "monthly",
        "ttl_seconds": 2_592_000,
        "secret_name": secret,
    })
}

/// The functions' configuration for the emulator at `api_url`: the test policy, the test
/// management key, a 2 s OpenRouter timeout, and `extra` on top.
///
/// # Panics
/// When the configuration is invalid.
#[must_use]
pub fn config(api_url: &str, extra: &[(&str, &str)]) -> Config {
    Config::from_lookup(|name| {
        if let Some((_, v)) = extra.iter().find(|(k, _)| *k == name) {
            return Some((*v).to_owned());
        }
        match name {
            "OPENROUTER_BASE_URL" => Some(api_url.to_owned()),
            "OPENROUTER_MANAGEMENT_KEY" => Some(MANAGEMENT_KEY.to_owned()),
            "ORKV_POLICY" => Some(POLICY.to_owned()),
            "ORKV_HTTP_TIMEOUT_MS" => Some("2000".to_owned()),
            _ => None,
        }
    })
    .expect("config")
}

impl World {
    /// A fresh moto (or the one `ORKV_MOTO_URL` names) and emulator.
    pub async fn start() -> Self {
        let moto = Moto::start().await;
        let strict = LatencyProxy::start(&moto.url, Duration::ZERO).await;
        strict.set_strict(true);
        let url = strict.url.clone();
        let mut w = Self::with_secrets_manager_at(moto, &url).await;
        w.strict = Some(strict);
        w
    }

    /// As [`World::start`], for adoption: the strict layer lets the provision role read and
    /// tag unmanaged secrets under `openrouter/` (the module's `ReadSecretsToAdopt`).
    pub async fn adoptable() -> Self {
        let w = Self::start().await;
        if let Some(strict) = &w.strict {
            strict.set_adoptable_prefix(Some("openrouter/"));
        }
        w
    }

    /// A key made outside the product (as the dashboard or another tool makes one) in the
    /// workspace with UUID `workspace_id`: (plaintext, hash).
    pub async fn outside_key(
        &self,
        name: &str,
        workspace_id: &str,
        limit: Option<f64>,
        expires_in_days: Option<i64>,
    ) -> (String, String) {
        let expires = expires_in_days.map(|d| {
            orkv_openrouter::format_expires_at(
                time::OffsetDateTime::now_utc() + time::Duration::days(d),
            )
        });
        self.control
            .add_key(
                serde_json::json!({"name": name, "workspace_id": workspace_id,
                                        "limit": limit, "expires_at": expires}),
            )
            .await
    }

    /// A management client on the emulator (what an operator's dashboard does, in tests).
    ///
    /// # Panics
    /// When the client cannot be built.
    #[must_use]
    pub fn management_client(&self) -> orkv_openrouter::Client {
        orkv_openrouter::Client::new(
            orkv_openrouter::ClientConfig {
                base_url: self.emu.api_url(),
                ..orkv_openrouter::ClientConfig::default()
            },
            orkv_openrouter::ManagementKey::new(MANAGEMENT_KEY.to_owned()),
        )
        .expect("client")
    }

    /// A world whose Secrets Manager client goes through a fault proxy in front of moto.
    pub async fn behind_proxy() -> (Self, LatencyProxy) {
        let moto = Moto::start().await;
        let proxy = LatencyProxy::start(&moto.url, Duration::ZERO).await;
        (Self::with_secrets_manager_at(moto, &proxy.url).await, proxy)
    }

    async fn with_secrets_manager_at(moto: Moto, url: &str) -> Self {
        let emu = emulator().await;
        let control = Control::new(&emu);
        let (sm, sm_calls) = secrets_client_at(url).await;
        Self {
            moto,
            emu,
            control,
            sm,
            sm_calls,
            strict: None,
            sm_url: url.to_owned(),
        }
    }

    /// The functions' configuration against this world (see [`config`]).
    #[must_use]
    pub fn config(&self, extra: &[(&str, &str)]) -> Config {
        config(&self.emu.api_url(), extra)
    }

    /// In-process dependencies that start rotations through Secrets Manager.
    #[must_use]
    pub fn deps(&self, extra: &[(&str, &str)]) -> Deps {
        Deps::new(self.config(extra), SecretStore::new(self.sm.clone()))
    }

    /// In-process dependencies whose rotations the local driver runs in this process.
    #[must_use]
    pub fn rotating_deps(&self, extra: &[(&str, &str)]) -> Deps {
        self.deps(extra)
            .with_starter(Arc::new(orkv_local_rotation::LocalDriver::in_process()))
    }

    /// The environment of a function binary against this world.
    #[must_use]
    pub fn function_env(&self, extra: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
        function_env(&self.sm_url, &self.emu.api_url(), extra)
    }

    /// The current version's id and JSON value.
    ///
    /// # Panics
    /// When the secret has no current JSON value.
    pub async fn current(&self, name: &str) -> (String, Value) {
        current_of(&self.sm, name).await
    }

    /// The JSON value of one version, by id.
    ///
    /// # Panics
    /// When the version holds no JSON value.
    pub async fn version_record(&self, name: &str, version: &str) -> Value {
        let out = self
            .sm
            .get_secret_value()
            .secret_id(name)
            .version_id(version)
            .send()
            .await
            .expect("version");
        serde_json::from_str(out.secret_string().unwrap_or_default()).expect("json")
    }

    /// `DescribeSecret` through the world's client.
    ///
    /// # Panics
    /// When the secret cannot be described.
    pub async fn describe(
        &self,
        name: &str,
    ) -> aws_sdk_secretsmanager::operation::describe_secret::DescribeSecretOutput {
        self.sm
            .describe_secret()
            .secret_id(name)
            .send()
            .await
            .expect("describe")
    }

    /// Every version's labels, sorted by version id.
    ///
    /// # Panics
    /// When the secret cannot be described.
    pub async fn stages(&self, name: &str) -> Vec<(String, Vec<String>)> {
        let d = self.describe(name).await;
        let mut v: Vec<(String, Vec<String>)> = d
            .version_ids_to_stages()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Whether a version holds `AWSPENDING` without `AWSCURRENT` (a rotation in progress).
    pub async fn pending_dangling(&self, name: &str) -> bool {
        self.stages(name).await.iter().any(|(_, s)| {
            s.iter().any(|l| l == "AWSPENDING") && !s.iter().any(|l| l == "AWSCURRENT")
        })
    }

    /// The secret's tags.
    ///
    /// # Panics
    /// When the secret cannot be described.
    pub async fn tags(&self, name: &str) -> Vec<(String, String)> {
        let d = self.describe(name).await;
        d.tags()
            .iter()
            .map(|t| {
                (
                    t.key().unwrap_or_default().to_owned(),
                    t.value().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    /// `GET /key` with a plaintext: the consumer's view.
    pub async fn works(&self, plaintext: &str) -> bool {
        reqwest::Client::new()
            .get(format!("{}/key", self.emu.api_url()))
            .bearer_auth(plaintext)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    }

    /// What a refusal must leave as it was: the secret's current version id, value and
    /// tags, and every key the emulator holds.
    ///
    /// # Panics
    /// When the secret cannot be read.
    pub async fn state_of(
        &self,
        name: &str,
    ) -> (
        String,
        serde_json::Value,
        Vec<(String, String)>,
        serde_json::Value,
    ) {
        let v = self
            .sm
            .get_secret_value()
            .secret_id(name)
            .send()
            .await
            .expect("read");
        (
            v.version_id().unwrap_or_default().to_owned(),
            serde_json::json!(v.secret_string()),
            self.tags(name).await,
            self.control.state().await["keys"].clone(),
        )
    }

    /// Live keys the product named for `secret`.
    pub async fn live_for(&self, secret: &str) -> Vec<Value> {
        self.control.live_keys(&format!("orkv:{secret}:")).await
    }
}

/// The current version's id and JSON value, through any client.
///
/// # Panics
/// When the secret has no current JSON value.
pub async fn current_of(sm: &aws_sdk_secretsmanager::Client, name: &str) -> (String, Value) {
    let out = sm
        .get_secret_value()
        .secret_id(name)
        .version_stage("AWSCURRENT")
        .send()
        .await
        .expect("current");
    (
        out.version_id().unwrap_or_default().to_owned(),
        serde_json::from_str(out.secret_string().unwrap_or_default()).expect("json"),
    )
}

/// Seeding only: creates a secret with `tags`, repeating a create that moto's threaded server
/// answers with an internal error (now and then, under a burst of concurrent creates, an HTML
/// 500); "already exists" means an earlier try landed.
///
/// # Panics
/// On any other error, or after five internal errors in a row.
pub async fn create_seed_secret(
    sm: &aws_sdk_secretsmanager::Client,
    name: &str,
    value: &str,
    tags: &[(&str, &str)],
) {
    let mut tries = 0;
    loop {
        // A version token like the product's (UUID v5): a seeded managed secret looks as if
        // the product wrote it (the sweep reads a value whose version it did not write).
        let mut req = sm
            .create_secret()
            .name(name)
            .secret_string(value)
            .client_request_token(orkv_vending::domain::names::token(name, "seed"));
        for (k, v) in tags {
            req = req.tags(
                aws_sdk_secretsmanager::types::Tag::builder()
                    .key(*k)
                    .value(*v)
                    .build(),
            );
        }
        match req.send().await {
            Ok(_) => return,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_exists_exception()) =>
            {
                return;
            }
            Err(e) if tries < 5 && e.raw_response().is_some_and(|r| r.status().as_u16() >= 500) => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(50 * tries)).await;
            }
            Err(e) => panic!("create {name}: {e:?}"),
        }
    }
}

/// Handles `payload` in process as an invocation of the provision function through `alias`
/// (the tenant suites' caller identity), with a minute's deadline.
///
/// # Errors
/// The function's error.
pub async fn call_as(
    d: &orkv_vending::Deps,
    alias: &str,
    payload: serde_json::Value,
) -> Result<serde_json::Value, orkv_vending::VendError> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    Box::pin(crate::roles::ops::handle_invocation(
        d,
        payload,
        &crate::runtime_api::function_arn(alias),
        deadline,
    ))
    .await
}

/// Creates the secrets `names` (each with `value` and `tags`) in moto, 16 at a time.
///
/// # Panics
/// As [`create_seed_secret`].
pub async fn seed_secrets(
    sm: &aws_sdk_secretsmanager::Client,
    names: Vec<String>,
    value: &str,
    tags: &[(&str, &str)],
) {
    let tags: Arc<Vec<(String, String)>> = Arc::new(
        tags.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    );
    let names = Arc::new(names);
    let mut set = tokio::task::JoinSet::new();
    for chunk in 0..16 {
        let (sm, names, tags, value) = (sm.clone(), names.clone(), tags.clone(), value.to_owned());
        set.spawn(async move {
            let pairs: Vec<(&str, &str)> =
                tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            for name in names.iter().skip(chunk).step_by(16) {
                create_seed_secret(&sm, name, &value, &pairs).await;
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.expect("seeding task");
    }
}
