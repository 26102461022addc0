//! Starting a rotation. In production that is `RotateSecret`: Secrets Manager labels the new
//! version `AWSPENDING` and invokes the rotation function's four steps (recorded in
//! CloudTrail). Locally, where moto cannot invoke a Lambda, a driver plays Secrets Manager's
//! part: it labels the pending version, then calls the four steps in order with one token,
//! retrying the whole sequence on failure as Secrets Manager does.

use std::time::{Duration, Instant};

use orkv_store::StoreErrorKind;
use serde::Serialize;
use serde_json::json;
use tracing::{info, warn};

use crate::config::RotationMode;
use crate::error::VendError;
use crate::provision::Deps;
use crate::rotate::{AWSCURRENT, AWSPENDING, RotationEvent, Step};

/// A rotation function ARN moto does not know: its `RotateSecret` then labels the pending
/// version and stops, which is the state Secrets Manager would invoke the function in.
const DRIVER_LAMBDA_ARN: &str =
    "arn:aws:lambda:us-east-1:000000000000:function:orkv-local-rotation-driver";
/// Serialises the local driver's label writes (moto quirks; see the functions using it).
static LOCAL_LABELS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
/// Attempts at the whole four-step sequence before the driver gives up (the rotation stays
/// pending, as it would in Secrets Manager, and the next start resumes it).
const DRIVER_ATTEMPTS: u32 = 3;

/// How a start request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RotationStart {
    /// Secrets Manager accepted the rotation and runs the steps.
    Started,
    /// The local driver ran all four steps.
    Completed,
    /// The token's version is already current: this rotation happened.
    AlreadyCurrent,
    /// Another rotation (another token) holds `AWSPENDING`.
    InProgress,
}

impl Deps {
    /// Starts the rotation of `secret` under `token` (see [`crate::rotate::rotation_token`]).
    ///
    /// # Errors
    /// Store errors, or the last step error when the local driver gave up.
    pub async fn start_rotation(
        &self,
        secret: &str,
        token: &str,
    ) -> Result<RotationStart, VendError> {
        match &self.cfg.rotation {
            RotationMode::SecretsManager {
                lambda_arn,
                after_days,
            } => {
                let Some(lambda_arn) = lambda_arn.as_deref() else {
                    return Err(VendError::Config(
                        "ORKV_ROTATION_LAMBDA_ARN is not set: a rotation cannot be started".into(),
                    ));
                };
                match self
                    .store
                    .rotate(secret, token, Some(lambda_arn), *after_days, true)
                    .await
                {
                    Ok(()) => Ok(RotationStart::Started),
                    Err(e)
                        if e.kind() == StoreErrorKind::InvalidRequest
                            && e.message.to_ascii_lowercase().contains("in progress") =>
                    {
                        Ok(RotationStart::InProgress)
                    }
                    Err(e) => Err(e.into()),
                }
            }
            RotationMode::LocalInvoke(_) | RotationMode::InProcess => {
                self.drive(secret, token).await
            }
        }
    }

    async fn drive(&self, secret: &str, token: &str) -> Result<RotationStart, VendError> {
        self.drive_once(secret, token, true).await
    }

    async fn drive_once(
        &self,
        secret: &str,
        token: &str,
        may_resume: bool,
    ) -> Result<RotationStart, VendError> {
        let desc = self
            .store
            .describe(secret)
            .await?
            .ok_or_else(|| VendError::SecretNotFound {
                secret_name: secret.to_owned(),
            })?;
        if desc.has(token, AWSCURRENT) {
            if desc.has(token, AWSPENDING) {
                // finishSecret moved AWSCURRENT and stopped before its end (the sweep's tags
                // still name the old key): run it again, as Secrets Manager's retry would.
                self.run_steps(secret, token, &[Step::FinishSecret]).await?;
                info!(secret, token, "finished an interrupted finishSecret");
                return Ok(RotationStart::Completed);
            }
            return Ok(RotationStart::AlreadyCurrent);
        }
        if let Some(p) = desc.version_with(AWSPENDING)
            && p != token
            && !desc.has(p, AWSCURRENT)
        {
            if !may_resume || !self.settle_unfinished(secret, token).await? {
                return Ok(RotationStart::InProgress);
            }
            return Box::pin(self.drive_once(secret, token, false)).await;
        }
        if !desc.rotation_enabled {
            self.enable_rotation_locally(secret).await?;
        }
        if desc.versions.contains_key(token) {
            // Labelled already (an earlier start): resume the steps.
        } else if !self.label_pending_locally(secret, token).await? {
            return Ok(RotationStart::InProgress);
        }
        let mut last = None;
        for attempt in 0..DRIVER_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
            }
            match self.drive_steps(secret, token).await {
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

    /// Local runs: finishes a rotation that another token (an earlier generation's) left
    /// holding `AWSPENDING`: its driver gave up or died, possibly after its key was promoted
    /// (a change carried over moves `AWSCURRENT` to another version). Secrets Manager would
    /// retry it; here its steps run again under its own token (each is idempotent, so racing
    /// a driver still alive is harmless). `Ok(true)`: nothing unfinished is left (or Secrets
    /// Manager runs the rotations); `Ok(false)`: it could not be finished now.
    ///
    /// # Errors
    /// Store errors.
    pub(crate) async fn settle_unfinished(
        &self,
        secret: &str,
        token: &str,
    ) -> Result<bool, VendError> {
        if matches!(self.cfg.rotation, RotationMode::SecretsManager { .. }) {
            return Ok(true);
        }
        let Some(desc) = self.store.describe(secret).await? else {
            return Ok(true);
        };
        let Some(p) = desc.version_with(AWSPENDING) else {
            return Ok(true);
        };
        if p == token || desc.has(p, AWSCURRENT) {
            return Ok(true);
        }
        let pending = p.to_owned();
        match self.drive_steps(secret, &pending).await {
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

    /// Marks rotation enabled on a moto secret. moto's only way is a rules-only,
    /// non-immediate `RotateSecret`, which copies the value the secret was *created* with into
    /// a new current version; `AWSCURRENT` is moved straight back to the version that held it.
    /// Local runs only: in AWS, `RotateSecret` with the function's ARN enables rotation.
    ///
    /// # Errors
    /// Store errors.
    pub async fn enable_rotation_locally(&self, secret: &str) -> Result<(), VendError> {
        let _one_at_a_time = LOCAL_LABELS.lock().await;
        let Some(desc) = self.store.describe(secret).await? else {
            return Ok(());
        };
        if desc.rotation_enabled {
            return Ok(());
        }
        let before = desc.version_with(AWSCURRENT).map(str::to_owned);
        self.store
            .rotate(
                secret,
                &uuid::Uuid::new_v4().to_string(),
                None,
                Some(1000),
                false,
            )
            .await?;
        let after = self
            .store
            .describe(secret)
            .await?
            .and_then(|d| d.version_with(AWSCURRENT).map(str::to_owned));
        if let (Some(before), Some(after)) = (before, after)
            && before != after
        {
            self.store
                .move_stage(secret, AWSCURRENT, Some(&after), Some(&before))
                .await?;
        }
        Ok(())
    }

    /// Labels `token` `AWSPENDING` as `RotateSecret` would (moto labels it, then fails to find
    /// the Lambda). Serialised, because moto's `RotateSecret` overwrites an existing version of
    /// the same id. `false`: another rotation holds `AWSPENDING`.
    async fn label_pending_locally(&self, secret: &str, token: &str) -> Result<bool, VendError> {
        let _one_at_a_time = LOCAL_LABELS.lock().await;
        let Some(desc) = self.store.describe(secret).await? else {
            return Err(VendError::SecretNotFound {
                secret_name: secret.to_owned(),
            });
        };
        if desc.versions.contains_key(token) {
            return Ok(true);
        }
        if let Some(p) = desc.version_with(AWSPENDING)
            && !desc.has(p, AWSCURRENT)
        {
            return Ok(false);
        }
        match self
            .store
            .rotate(secret, token, Some(DRIVER_LAMBDA_ARN), None, true)
            .await
        {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == StoreErrorKind::NotFound => Ok(true),
            Err(e) if e.kind() == StoreErrorKind::InvalidRequest => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    async fn drive_steps(&self, secret: &str, token: &str) -> Result<(), VendError> {
        self.run_steps(
            secret,
            token,
            &[
                Step::CreateSecret,
                Step::SetSecret,
                Step::TestSecret,
                Step::FinishSecret,
            ],
        )
        .await
    }

    async fn run_steps(&self, secret: &str, token: &str, steps: &[Step]) -> Result<(), VendError> {
        for &step in steps {
            let event = RotationEvent {
                step,
                secret_id: secret.to_owned(),
                token: token.to_owned(),
                rotation_token: None,
            };
            match &self.cfg.rotation {
                RotationMode::LocalInvoke(url) => invoke(url, &event).await?,
                _ => {
                    let deadline = Instant::now() + Duration::from_secs(60);
                    Box::pin(self.run_step(&event, deadline)).await?;
                }
            }
        }
        Ok(())
    }
}

/// Calls a Lambda Invoke endpoint (`cargo lambda watch`'s, or the Runtime API harness's).
async fn invoke(url: &str, event: &RotationEvent) -> Result<(), VendError> {
    let body = json!({
        "Step": event.step.as_str(),
        "SecretId": event.secret_id,
        "ClientRequestToken": event.token,
    });
    let failed = |rule: String| VendError::RotationTestFailed {
        secret_name: event.secret_id.clone(),
        check: format!("{} via {url}: {rule}", event.step.as_str()),
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .map_err(|e| VendError::Config(format!("ORKV_LOCAL_ROTATION_INVOKE_URL: {e}")))?;
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
