//! `Deps`: the one holder of a container's clients, clock and caches (the management key's
//! client, the workspace list, the secrets it has seen), and the seam through which
//! rotations are started ([`RotationStarter`]; Secrets Manager's `RotateSecret` in production).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use orkv_openrouter::Workspace;
use orkv_store::{SecretStore, StoreErrorKind};
use secrecy::ExposeSecret;
use serde::Serialize;
use tokio::sync::OnceCell;

use crate::clock::Clock;
use crate::config::{Config, ManagementKeySource};
use crate::domain::scope::{WorkspaceMatch, match_workspace};
use crate::domain::tags::stage::{AWSCURRENT, AWSPENDING};
use crate::error::VendError;
use crate::input::rotation::Step;

/// Everything a container keeps between invocations.
#[derive(Debug)]
pub struct Deps {
    pub(crate) cfg: Config,
    pub(crate) store: SecretStore,
    openrouter: OnceCell<orkv_openrouter::Client>,
    workspaces: OnceCell<Vec<Workspace>>,
    /// The UUID each policy entry's identifier names (`None`: no such workspace).
    policy_workspaces: OnceCell<HashMap<String, Option<String>>>,
    /// The policy's guardrails already checked against OpenRouter (once per container each).
    pub(crate) checked_guardrails: Mutex<HashSet<String>>,
    known_secrets: Mutex<HashSet<String>>,
    pub(crate) clock: Clock,
    pub(crate) starter: Arc<dyn RotationStarter>,
    /// Where outcomes are announced (`ORKV_EVENT_BUS`); `None`: nowhere.
    pub(crate) events: Option<orkv_events::EventBus>,
}

/// How a start request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RotationStart {
    /// Secrets Manager accepted the rotation and runs the steps.
    Started,
    /// A local driver ran all four steps.
    Completed,
    /// The token's version is already current: this rotation happened.
    AlreadyCurrent,
    /// Another rotation (another token) holds `AWSPENDING`.
    InProgress,
}

/// Starts rotations. Production: [`SecretsManagerStarter`]. Local runs, where moto cannot
/// invoke a Lambda, plug in the driver of the `orkv-local-rotation` crate, which plays
/// Secrets Manager's part; it never ships in a release package.
pub trait RotationStarter: Send + Sync + std::fmt::Debug {
    /// Starts the rotation of `secret` under `token` ([`crate::domain::names::rotation_token`]).
    fn start<'a>(
        &'a self,
        deps: &'a Deps,
        secret: &'a str,
        token: &'a str,
    ) -> BoxFuture<'a, Result<RotationStart, VendError>>;

    /// Runs the four steps of the rotation that `token` left unfinished on `secret` again, in
    /// order, as Secrets Manager's retry of a failed rotation does (each step is idempotent).
    /// `Ok(false)`: this starter has no way to run them.
    fn resume<'a>(
        &'a self,
        deps: &'a Deps,
        secret: &'a str,
        token: &'a str,
    ) -> BoxFuture<'a, Result<bool, VendError>>;

    /// Turns rotation on for `secret` without starting one, so a new secret is compliant
    /// (rotation enabled, with its function and schedule) from its creation. `Ok(false)`: this
    /// starter has nothing to configure it with.
    fn configure<'a>(
        &'a self,
        deps: &'a Deps,
        secret: &'a str,
    ) -> BoxFuture<'a, Result<bool, VendError>>;
}

/// `RotateSecret` with the rotation function's ARN: Secrets Manager labels the new version
/// `AWSPENDING` and invokes the rotation function's four steps. With a Lambda client, a
/// rotation left unfinished is resumed by invoking the same function's steps directly.
#[derive(Debug, Clone, Default)]
pub struct SecretsManagerStarter {
    steps: Option<aws_sdk_lambda::Client>,
}

impl SecretsManagerStarter {
    /// A starter that can also resume an unfinished rotation, invoking the rotation function
    /// through `lambda` (the roles that start rotations may invoke it: `RotateSecret` needs
    /// that already).
    #[must_use]
    pub fn with_lambda(lambda: aws_sdk_lambda::Client) -> Self {
        Self {
            steps: Some(lambda),
        }
    }
}

/// The event Secrets Manager sends the rotation function for `step`.
fn step_event(step: Step, secret: &str, token: &str) -> serde_json::Value {
    serde_json::json!({"Step": step.as_str(), "SecretId": secret, "ClientRequestToken": token})
}

impl RotationStarter for SecretsManagerStarter {
    fn resume<'a>(
        &'a self,
        deps: &'a Deps,
        secret: &'a str,
        token: &'a str,
    ) -> BoxFuture<'a, Result<bool, VendError>> {
        Box::pin(async move {
            let (Some(lambda), Some(arn)) =
                (self.steps.as_ref(), deps.cfg.rotation_lambda_arn.as_deref())
            else {
                return Ok(false);
            };
            for step in Step::ALL {
                let payload = step_event(step, secret, token).to_string();
                let out = lambda
                    .invoke()
                    .function_name(arn)
                    .payload(aws_sdk_lambda::primitives::Blob::new(payload))
                    .send()
                    .await
                    .map_err(|e| VendError::RotationTestFailed {
                        secret_name: secret.to_owned(),
                        check: format!(
                            "{} could not be invoked: {}",
                            step.as_str(),
                            aws_sdk_lambda::error::DisplayErrorContext(&e)
                        ),
                    })?;
                if let Some(kind) = out.function_error() {
                    let body = out
                        .payload()
                        .map(|b| String::from_utf8_lossy(b.as_ref()).into_owned())
                        .unwrap_or_default();
                    let error_type = serde_json::from_str::<serde_json::Value>(&body)
                        .ok()
                        .and_then(|v| {
                            v.get("errorType")
                                .and_then(|t| t.as_str())
                                .map(str::to_owned)
                        })
                        .unwrap_or_else(|| kind.to_owned());
                    return Err(VendError::RotationTestFailed {
                        secret_name: secret.to_owned(),
                        check: format!("{} failed: {error_type}", step.as_str()),
                    });
                }
            }
            Ok(true)
        })
    }

    fn configure<'a>(
        &'a self,
        deps: &'a Deps,
        secret: &'a str,
    ) -> BoxFuture<'a, Result<bool, VendError>> {
        Box::pin(async move {
            let Some(lambda_arn) = deps.cfg.rotation_lambda_arn.as_deref() else {
                return Ok(false);
            };
            deps.store
                .configure_rotation(secret, lambda_arn, deps.cfg.rotation_after_days)
                .await?;
            Ok(true)
        })
    }

    fn start<'a>(
        &'a self,
        deps: &'a Deps,
        secret: &'a str,
        token: &'a str,
    ) -> BoxFuture<'a, Result<RotationStart, VendError>> {
        Box::pin(async move {
            let Some(lambda_arn) = deps.cfg.rotation_lambda_arn.as_deref() else {
                return Err(VendError::Config(
                    "ORKV_ROTATION_LAMBDA_ARN is not set: a rotation cannot be started".into(),
                ));
            };
            let after_days = Some(deps.cfg.rotation_after_days);
            match deps
                .store
                .rotate(secret, token, Some(lambda_arn), after_days, true)
                .await
            {
                Ok(()) => Ok(RotationStart::Started),
                // Decided from the labels, not the message (AWS's text is not moto's): another
                // token holds AWSPENDING on a version that is not current.
                Err(e) if e.kind() == StoreErrorKind::InvalidRequest => {
                    let desc = deps.store.describe(secret).await?;
                    let pending = desc.as_ref().and_then(|d| {
                        d.version_with(AWSPENDING)
                            .filter(|p| !d.has(p, AWSCURRENT))
                            .map(|p| p == token)
                    });
                    match pending {
                        // Secrets Manager is running this very rotation.
                        Some(true) => Ok(RotationStart::Started),
                        Some(false) => Ok(RotationStart::InProgress),
                        None => Err(e.into()),
                    }
                }
                Err(e) => Err(e.into()),
            }
        })
    }
}

/// The starter of a release build: Secrets Manager's. Refuses a configuration that asks for
/// the local driver, which a release build does not contain.
///
/// # Errors
/// [`VendError::Config`] naming `ORKV_LOCAL_ROTATION_INVOKE_URL` when it is set.
pub fn production_starter(
    cfg: &Config,
    aws: Option<&aws_types::SdkConfig>,
) -> Result<Arc<dyn RotationStarter>, VendError> {
    if cfg.local_rotation_invoke_url.is_some() {
        return Err(VendError::Config(
            "ORKV_LOCAL_ROTATION_INVOKE_URL is set, but this build has no local rotation driver: release packages rotate only through Secrets Manager (unset the variable, or build with the local-rotation feature for local runs)".into(),
        ));
    }
    Ok(Arc::new(
        aws.map_or_else(SecretsManagerStarter::default, |aws| {
            SecretsManagerStarter::with_lambda(aws_sdk_lambda::Client::new(aws))
        }),
    ))
}

impl Deps {
    /// Wires the dependencies (no remote call), starting rotations through Secrets Manager.
    #[must_use]
    pub fn new(cfg: Config, store: SecretStore) -> Self {
        Self {
            cfg,
            store,
            openrouter: OnceCell::new(),
            workspaces: OnceCell::new(),
            policy_workspaces: OnceCell::new(),
            checked_guardrails: Mutex::new(HashSet::new()),
            known_secrets: Mutex::new(HashSet::new()),
            clock: Clock::default(),
            starter: Arc::new(SecretsManagerStarter::default()),
            events: None,
        }
    }

    /// Announces every outcome on `bus` (see [`crate::ops::announce`]).
    #[must_use]
    pub fn with_events(mut self, bus: orkv_events::EventBus) -> Self {
        self.events = Some(bus);
        self
    }

    /// Starts rotations through `starter` instead.
    #[must_use]
    pub fn with_starter(mut self, starter: Arc<dyn RotationStarter>) -> Self {
        self.starter = starter;
        self
    }

    /// The clock every operation reads.
    #[must_use]
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The Secrets Manager adapter.
    #[must_use]
    pub fn store(&self) -> &SecretStore {
        &self.store
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The OpenRouter client, built on first use with the management key (read from
    /// Secrets Manager once per container).
    ///
    /// # Errors
    /// When the management key cannot be read or the client cannot be built.
    pub async fn openrouter(&self) -> Result<&orkv_openrouter::Client, VendError> {
        self.openrouter
            .get_or_try_init(|| async {
                let key = match &self.cfg.management_key {
                    ManagementKeySource::Direct(key) => key.clone(),
                    ManagementKeySource::Secret(id) => self.read_management_key(id).await?,
                };
                let cfg = orkv_openrouter::ClientConfig {
                    base_url: self.cfg.openrouter_base_url.clone(),
                    timeout: self.cfg.http_timeout,
                    max_retries: self.cfg.max_retries,
                    ..orkv_openrouter::ClientConfig::default()
                };
                Ok(orkv_openrouter::Client::new(cfg, key)?)
            })
            .await
    }

    async fn read_management_key(
        &self,
        id: &str,
    ) -> Result<orkv_openrouter::ManagementKey, VendError> {
        let version = self.store.get(id, AWSCURRENT).await?.ok_or_else(|| {
            VendError::Config(format!(
                "OPENROUTER_MANAGEMENT_KEY_SECRET_ID: secret {id} does not exist"
            ))
        })?;
        let text = version.value.expose_secret().trim();
        let from_json = serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .and_then(|v| {
                ["management_key", "api_key"]
                    .iter()
                    .find_map(|f| v.get(*f).and_then(|s| s.as_str()).map(str::to_owned))
            });
        let key = from_json.unwrap_or_else(|| text.to_owned());
        if key.is_empty() {
            return Err(VendError::Config(format!(
                "OPENROUTER_MANAGEMENT_KEY_SECRET_ID: secret {id} is empty"
            )));
        }
        Ok(orkv_openrouter::ManagementKey::new(key))
    }

    pub(crate) async fn workspaces(&self) -> Result<&[Workspace], VendError> {
        let list = self
            .workspaces
            .get_or_try_init(|| async {
                Ok::<_, VendError>(self.openrouter().await?.list_workspaces().await?)
            })
            .await?;
        Ok(list)
    }

    /// The UUID every policy entry names, resolved once per container against the listing.
    /// An entry naming a workspace by display name, or an identifier several workspaces
    /// carry, is a configuration error (never resolved by list order); one naming no
    /// workspace resolves to nothing (logged), so a deleted workspace stops only its keys.
    ///
    /// # Errors
    /// [`VendError::Config`] naming the entry; OpenRouter errors of the listing.
    pub(crate) async fn policy_workspaces(
        &self,
    ) -> Result<&HashMap<String, Option<String>>, VendError> {
        self.policy_workspaces
            .get_or_try_init(|| async {
                let all = self.workspaces().await?;
                let mut resolved = HashMap::new();
                for t in &self.cfg.policy.tenants {
                    for w in &t.workspaces {
                        let id = match match_workspace(all, &w.workspace) {
                            WorkspaceMatch::One {
                                workspace,
                                by_name: false,
                            } => Some(workspace.id.clone()),
                            WorkspaceMatch::One { by_name: true, .. } => {
                                return Err(VendError::Config(format!(
                                    "ORKV_POLICY: tenant {}: workspace {:?} is a display name; name it by its slug or UUID",
                                    t.label(),
                                    w.workspace
                                )));
                            }
                            WorkspaceMatch::Ambiguous(n) => {
                                return Err(VendError::Config(format!(
                                    "ORKV_POLICY: tenant {}: workspace {:?} matches {n} workspaces by UUID, slug or name; name it by its UUID",
                                    t.label(),
                                    w.workspace
                                )));
                            }
                            WorkspaceMatch::None => {
                                tracing::warn!(tenant = t.label(), workspace = %w.workspace, "a policy entry names no workspace of this account");
                                None
                            }
                        };
                        resolved.insert(w.workspace.clone(), id);
                    }
                }
                Ok(resolved)
            })
            .await
    }

    pub(crate) fn knows(&self, name: &str) -> bool {
        self.known_secrets
            .lock()
            .map(|s| s.contains(name))
            .unwrap_or(false)
    }

    pub(crate) fn remember(&self, name: &str, exists: bool) {
        if let Ok(mut set) = self.known_secrets.lock() {
            if exists {
                set.insert(name.to_owned());
            } else {
                set.remove(name);
            }
        }
    }
}
