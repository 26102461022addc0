//! **Local stand-in, never in a release package.** Plays Secrets Manager's part of a rotation
//! where moto cannot invoke a Lambda: it labels the pending version as `RotateSecret` would,
//! then calls the four steps in order with one token (through a Lambda Invoke endpoint such
//! as `cargo lambda watch`'s, or in this process), retrying the whole sequence on failure as
//! Secrets Manager does. The function binaries link it only with their `local-rotation`
//! feature, which `make demo`, `make test`, the soak and the bench enable and `make package`
//! does not; a release binary given `ORKV_LOCAL_ROTATION_INVOKE_URL` refuses to start.
//!
//! It works around moto quirks that real Secrets Manager does not have: a rotation function
//! ARN moto does not know (its `RotateSecret` then labels and stops), a process-wide lock on
//! label writes (moto's `RotateSecret` overwrites a same-id version), and the copy of the
//! creation value that moto's rules-only `RotateSecret` makes current.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use orkv_store::StoreErrorKind;
use orkv_vending::config::Config;
use orkv_vending::deps::{Deps, RotationStart, RotationStarter, production_starter};
use orkv_vending::domain::tags::stage::{AWSCURRENT, AWSPENDING};
use orkv_vending::error::VendError;
use orkv_vending::input::rotation::{RotationEvent, Step};
use orkv_vending::ops;
use serde_json::json;
use tracing::{info, warn};

/// A rotation function ARN moto does not know: its `RotateSecret` then labels the pending
/// version and stops, which is the state Secrets Manager would invoke the function in.
const DRIVER_LAMBDA_ARN: &str =
    "arn:aws:lambda:us-east-1:000000000000:function:orkv-local-rotation-driver";
/// Serialises the driver's label writes (moto quirks; see the functions using it).
static LOCAL_LABELS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
/// Attempts at the whole four-step sequence before the driver gives up (the rotation stays
/// pending, as it would in Secrets Manager, and the next start resumes it).
const DRIVER_ATTEMPTS: u32 = 3;
/// The four steps, in order.
const ALL_STEPS: [Step; 4] = [
    Step::CreateSecret,
    Step::SetSecret,
    Step::TestSecret,
    Step::FinishSecret,
];

/// Who makes a Secrets Manager call the driver makes, for a test harness that evaluates each call
/// against the policy of the party AWS would evaluate it for ([`party`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    /// Secrets Manager itself (its bookkeeping around a rotation; no role's policy applies).
    SecretsManager,
    /// The rotation function, which Secrets Manager invokes under the rotate role.
    RotateFunction,
}

tokio::task_local! {
    static PARTY: Party;
}

/// The party the current task's Secrets Manager call is made for, when the driver says; `None`
/// outside the driver (the caller's own calls, `RotateSecret` included).
#[must_use]
pub fn party() -> Option<Party> {
    PARTY.try_with(|p| *p).ok()
}

/// Runs `f` as Secrets Manager's own work.
async fn as_service<T>(f: impl std::future::Future<Output = T>) -> T {
    PARTY.scope(Party::SecretsManager, f).await
}

/// The starter factory of a build with the `local-rotation` feature: the driver when
/// `ORKV_LOCAL_ROTATION_INVOKE_URL` is set, Secrets Manager otherwise.
///
/// # Errors
/// A [`VendError::Config`] when the client cannot be built.
pub fn starter(
    cfg: &Config,
    aws: Option<&aws_types::SdkConfig>,
) -> Result<Arc<dyn RotationStarter>, VendError> {
    match &cfg.local_rotation_invoke_url {
        Some(url) => Ok(Arc::new(LocalDriver::invoke(url)?)),
        None => production_starter(cfg, aws),
    }
}

/// How the driver runs a step.
#[derive(Debug)]
enum Runner {
    /// Through a Lambda Invoke endpoint (one client for every call).
    Invoke {
        url: String,
        client: reqwest::Client,
    },
    /// With this process's own rotation handler (tests).
    InProcess,
}

/// Plays Secrets Manager's part of a rotation against moto.
#[derive(Debug)]
pub struct LocalDriver {
    runner: Runner,
}

impl LocalDriver {
    /// Calls the steps through the Invoke endpoint `url`.
    ///
    /// # Errors
    /// [`VendError::Config`] naming `ORKV_LOCAL_ROTATION_INVOKE_URL` when no client can be built.
    pub fn invoke(url: &str) -> Result<Self, VendError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| VendError::Config(format!("ORKV_LOCAL_ROTATION_INVOKE_URL: {e}")))?;
        Ok(Self {
            runner: Runner::Invoke {
                url: url.to_owned(),
                client,
            },
        })
    }

    /// Runs the steps in this process.
    #[must_use]
    pub fn in_process() -> Self {
        Self {
            runner: Runner::InProcess,
        }
    }
}

impl RotationStarter for LocalDriver {
    fn resume<'a>(
        &'a self,
        deps: &'a Deps,
        secret: &'a str,
        token: &'a str,
    ) -> BoxFuture<'a, Result<bool, VendError>> {
        Box::pin(async move {
            self.run_steps(deps, secret, token, &ALL_STEPS).await?;
            Ok(true)
        })
    }

    fn configure<'a>(
        &'a self,
        deps: &'a Deps,
        secret: &'a str,
    ) -> BoxFuture<'a, Result<bool, VendError>> {
        Box::pin(async move {
            enable_rotation(deps, secret).await?;
            Ok(true)
        })
    }

    fn start<'a>(
        &'a self,
        deps: &'a Deps,
        secret: &'a str,
        token: &'a str,
    ) -> BoxFuture<'a, Result<RotationStart, VendError>> {
        Box::pin(self.drive_once(deps, secret, token, true))
    }
}

impl LocalDriver {
    async fn drive_once(
        &self,
        deps: &Deps,
        secret: &str,
        token: &str,
        may_resume: bool,
    ) -> Result<RotationStart, VendError> {
        let desc = as_service(deps.store().describe(secret))
            .await?
            .ok_or_else(|| VendError::SecretNotFound {
                secret_name: secret.to_owned(),
            })?;
        if desc.has(token, AWSCURRENT) {
            if desc.has(token, AWSPENDING) {
                // finishSecret moved AWSCURRENT and stopped before its end (the sweep's tags
                // still name the old key): run it again, as Secrets Manager's retry would.
                self.run_steps(deps, secret, token, &[Step::FinishSecret])
                    .await?;
                info!(secret, token, "finished an interrupted finishSecret");
                return Ok(RotationStart::Completed);
            }
            return Ok(RotationStart::AlreadyCurrent);
        }
        if let Some(p) = desc.version_with(AWSPENDING)
            && p != token
            && !desc.has(p, AWSCURRENT)
        {
            if !may_resume || !self.settle(deps, secret, token).await? {
                return Ok(RotationStart::InProgress);
            }
            return Box::pin(self.drive_once(deps, secret, token, false)).await;
        }
        if !desc.rotation_enabled {
            enable_rotation(deps, secret).await?;
        }
        if !desc.versions.contains_key(token) && !label_pending(deps, secret, token).await? {
            return Ok(RotationStart::InProgress);
        }
        self.drive_with_retries(deps, secret, token).await
    }

    async fn drive_with_retries(
        &self,
        deps: &Deps,
        secret: &str,
        token: &str,
    ) -> Result<RotationStart, VendError> {
        let mut last = None;
        for attempt in 0..DRIVER_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
            }
            match self.run_steps(deps, secret, token, &ALL_STEPS).await {
                Ok(()) => {
                    info!(secret, token, "rotation completed by the local driver");
                    return Ok(RotationStart::Completed);
                }
                Err(e) => {
                    warn!(secret, token, attempt, error_type = e.kind(), error = %e, "rotation attempt failed");
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or(VendError::RotationInProgress {
            secret_name: secret.to_owned(),
        }))
    }

    /// Finishes a rotation that another token (an earlier generation's) left holding
    /// `AWSPENDING`: its driver gave up or died, possibly after its key was promoted (a change
    /// carried over moves `AWSCURRENT` to another version). Secrets Manager would retry it;
    /// here its steps run again under its own token (each is idempotent, so racing a driver
    /// still alive is harmless). `Ok(false)`: it could not be finished now.
    async fn settle(&self, deps: &Deps, secret: &str, token: &str) -> Result<bool, VendError> {
        let Some(desc) = as_service(deps.store().describe(secret)).await? else {
            return Ok(true);
        };
        let Some(p) = desc.version_with(AWSPENDING) else {
            return Ok(true);
        };
        if p == token || desc.has(p, AWSCURRENT) {
            return Ok(true);
        }
        let pending = p.to_owned();
        match self.run_steps(deps, secret, &pending, &ALL_STEPS).await {
            Ok(()) => {
                info!(secret, token = %pending, "resumed and finished an unfinished rotation");
                Ok(true)
            }
            Err(e) => {
                warn!(secret, token = %pending, error_type = e.kind(), error = %e, "an unfinished rotation could not be resumed yet");
                Ok(false)
            }
        }
    }

    async fn run_steps(
        &self,
        deps: &Deps,
        secret: &str,
        token: &str,
        steps: &[Step],
    ) -> Result<(), VendError> {
        for &step in steps {
            let event = RotationEvent {
                step,
                secret_id: secret.to_owned(),
                token: token.to_owned(),
                rotation_token: None,
            };
            match &self.runner {
                Runner::Invoke { url, client } => invoke(client, url, &event).await?,
                Runner::InProcess => {
                    let deadline = Instant::now() + Duration::from_secs(60);
                    PARTY
                        .scope(
                            Party::RotateFunction,
                            Box::pin(ops::run_step(deps, &event, deadline)),
                        )
                        .await?;
                }
            }
        }
        Ok(())
    }
}

/// Marks rotation enabled on a moto secret. moto's only way is a rules-only, non-immediate
/// `RotateSecret`, which copies the secret's *first* value into a new version labelled
/// `AWSCURRENT`, and relabels `AWSPREVIOUS` the version moto last made current by a write,
/// which after a label move (a cap update) is not the current one: two versions then hold
/// `AWSCURRENT`. Every holder but the version that was current loses the label here, and that
/// version gets it back if it lost it. Local runs only: in AWS, `RotateSecret` with the
/// function's ARN enables rotation.
///
/// # Errors
/// Store errors.
pub async fn enable_rotation(deps: &Deps, secret: &str) -> Result<(), VendError> {
    let _one_at_a_time = LOCAL_LABELS.lock().await;
    let store = deps.store();
    let Some(desc) = as_service(store.describe(secret)).await? else {
        return Ok(());
    };
    if desc.rotation_enabled {
        return Ok(());
    }
    let Some(before) = desc.version_with(AWSCURRENT).map(str::to_owned) else {
        return Ok(());
    };
    store
        .rotate(
            secret,
            &uuid::Uuid::new_v4().to_string(),
            None,
            Some(1000),
            false,
        )
        .await?;
    let Some(after) = as_service(store.describe(secret)).await? else {
        return Ok(());
    };
    let copies: Vec<&String> = after
        .versions
        .keys()
        .filter(|id| **id != before && after.has(id, AWSCURRENT))
        .collect();
    let mut give_back = (!after.has(&before, AWSCURRENT)).then_some(before.as_str());
    for copy in copies {
        as_service(store.move_stage(secret, AWSCURRENT, Some(copy), give_back.take())).await?;
    }
    Ok(())
}

/// Labels `token` `AWSPENDING` as `RotateSecret` would (moto labels it, then fails to find
/// the Lambda). Serialised, because moto's `RotateSecret` overwrites an existing version of
/// the same id. `false`: another rotation holds `AWSPENDING`.
async fn label_pending(deps: &Deps, secret: &str, token: &str) -> Result<bool, VendError> {
    let _one_at_a_time = LOCAL_LABELS.lock().await;
    let Some(desc) = as_service(deps.store().describe(secret)).await? else {
        return Err(VendError::SecretNotFound {
            secret_name: secret.to_owned(),
        });
    };
    if desc.versions.contains_key(token) {
        return Ok(true);
    }
    if let Some(p) = desc.version_with(AWSPENDING) {
        if !desc.has(p, AWSCURRENT) {
            return Ok(false);
        }
        // A finishSecret that died after promoting left AWSPENDING on the current version.
        // AWS's RotateSecret proceeds then (its refusal is only for AWSPENDING on another
        // version: API reference, RotateSecret); moto refuses, so the label goes first.
        as_service(deps.store().move_stage(secret, AWSPENDING, Some(p), None)).await?;
    }
    match deps
        .store()
        .rotate(secret, token, Some(DRIVER_LAMBDA_ARN), None, true)
        .await
    {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == StoreErrorKind::NotFound => Ok(true),
        Err(e) if e.kind() == StoreErrorKind::InvalidRequest => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Calls a Lambda Invoke endpoint (`cargo lambda watch`'s, or the Runtime API harness's).
async fn invoke(
    client: &reqwest::Client,
    url: &str,
    event: &RotationEvent,
) -> Result<(), VendError> {
    let body = json!({
        "Step": event.step.as_str(),
        "SecretId": event.secret_id,
        "ClientRequestToken": event.token,
    });
    let failed = |rule: String| VendError::RotationTestFailed {
        secret_name: event.secret_id.clone(),
        check: format!("{} via {url}: {rule}", event.step.as_str()),
    };
    let resp = client
        .post(url)
        .json(&body)
        .send()
        .await
        .map_err(|e| failed(format!("not delivered: {e}")))?;
    let status = resp.status();
    let function_error = resp.headers().contains_key("x-amz-function-error");
    let reply: serde_json::Value = resp.json().await.unwrap_or(serde_json::Value::Null);
    let error_type = reply.get("errorType").and_then(|v| v.as_str());
    if !status.is_success() || function_error || error_type.is_some() {
        return Err(failed(format!(
            "{} {}",
            error_type.unwrap_or("FunctionError"),
            reply
                .get("errorMessage")
                .and_then(|v| v.as_str())
                .unwrap_or("")
        )));
    }
    Ok(())
}
