//! Secrets Manager adapter: create a secret with its value, description, tags and optional
//! KMS key; read and update it; find the managed secrets (`list.rs`: by tag, tag key or name
//! prefix). Values are handled as [`SecretString`] and never logged.

mod error;
mod list;
mod types;

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::types::Tag;
use secrecy::SecretString;
use time::OffsetDateTime;

pub use error::{StoreError, StoreErrorKind};
pub use types::{NewSecret, SecretDescription, SecretSummary, SecretVersion, Written};

/// The Secrets Manager side of the product.
#[derive(Debug, Clone)]
pub struct SecretStore {
    client: Client,
}

fn tag_list(tags: &[(String, String)]) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

fn to_time(dt: Option<&aws_smithy_types::DateTime>) -> Option<OffsetDateTime> {
    dt.and_then(|d| OffsetDateTime::from_unix_timestamp(d.secs()).ok())
}

/// Time one Secrets Manager request may take before it is abandoned and retried.
pub const ATTEMPT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);
/// Time one Secrets Manager call may take, retries included: below the shortest function
/// timeout the module allows (10 s), so a hung endpoint fails the call while the function can
/// still answer.
pub const OPERATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(8);
/// Attempts per call (the SDK's standard retry mode: throttling, 5xx and transport errors).
pub const MAX_ATTEMPTS: u32 = 3;

/// The SDK client configuration every function uses: `shared` (region, credentials, endpoint)
/// plus bounded timeouts and retries (the SDK sets no read or operation timeout by default).
#[must_use]
pub fn client_config(shared: &aws_types::SdkConfig) -> aws_sdk_secretsmanager::config::Builder {
    use aws_sdk_secretsmanager::config::retry::RetryConfig;
    use aws_sdk_secretsmanager::config::timeout::TimeoutConfig;
    aws_sdk_secretsmanager::config::Builder::from(shared)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(std::time::Duration::from_secs(2))
                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                .operation_timeout(OPERATION_TIMEOUT)
                .build(),
        )
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(MAX_ATTEMPTS)
                .with_initial_backoff(std::time::Duration::from_millis(100))
                .with_max_backoff(std::time::Duration::from_secs(2)),
        )
}

impl SecretStore {
    /// Wraps an SDK client (build it once per container).
    #[must_use]
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// A store on a client built from `shared` with [`client_config`].
    #[must_use]
    pub fn from_shared_config(shared: &aws_types::SdkConfig) -> Self {
        Self::new(Client::from_conf(client_config(shared).build()))
    }

    /// Creates the secret with its first version (`AWSCURRENT`). The SDK fills a random
    /// `ClientRequestToken`, so two concurrent creators never both succeed.
    ///
    /// # Errors
    /// `AlreadyExists` when the name is taken; other [`StoreError`]s.
    pub async fn create(&self, new: &NewSecret<'_>) -> Result<Written, StoreError> {
        use secrecy::ExposeSecret;
        let out = self
            .client
            .create_secret()
            .name(new.name)
            .secret_string(new.value.expose_secret())
            .set_description(new.description.map(str::to_owned))
            .set_kms_key_id(new.kms_key_id.map(str::to_owned))
            .set_tags(Some(tag_list(new.tags)))
            .send()
            .await
            .map_err(|e| StoreError::from_sdk("CreateSecret", e))?;
        Ok(Written {
            arn: out.arn.unwrap_or_default(),
            name: out.name.unwrap_or_else(|| new.name.to_owned()),
            version_id: out.version_id.unwrap_or_default(),
        })
    }

    /// Reads the version holding `stage` (e.g. `AWSCURRENT`); `None` when the secret does
    /// not exist (or has no such version).
    ///
    /// # Errors
    /// [`StoreError`]s other than not-found.
    pub async fn get(&self, id: &str, stage: &str) -> Result<Option<SecretVersion>, StoreError> {
        self.get_version(id, None, Some(stage)).await
    }

    /// Reads a version by id and/or stage; `None` when absent.
    ///
    /// # Errors
    /// [`StoreError`]s other than not-found.
    pub async fn get_version(
        &self,
        id: &str,
        version_id: Option<&str>,
        stage: Option<&str>,
    ) -> Result<Option<SecretVersion>, StoreError> {
        let result = self
            .client
            .get_secret_value()
            .secret_id(id)
            .set_version_id(version_id.map(str::to_owned))
            .set_version_stage(stage.map(str::to_owned))
            .send()
            .await;
        match result {
            Ok(out) => Ok(Some(SecretVersion {
                arn: out.arn.unwrap_or_default(),
                name: out.name.unwrap_or_default(),
                version_id: out.version_id.unwrap_or_default(),
                value: SecretString::from(out.secret_string.unwrap_or_default()),
                stages: out.version_stages.unwrap_or_default(),
                created_date: to_time(out.created_date.as_ref()),
            })),
            Err(e) => {
                let err = StoreError::from_sdk("GetSecretValue", e);
                if err.kind == StoreErrorKind::NotFound {
                    Ok(None)
                } else {
                    Err(err)
                }
            }
        }
    }

    /// Writes a new version with `token` as its id and `stages` as its labels. Repeating the
    /// call with the same token and value is a no-op; the same token with another value
    /// fails as `VersionConflict` (a compare-and-set on the token).
    ///
    /// # Errors
    /// `NotFound`, `VersionConflict` and other [`StoreError`]s.
    pub async fn put(
        &self,
        id: &str,
        value: &SecretString,
        token: &str,
        stages: &[&str],
    ) -> Result<Written, StoreError> {
        self.put_rotation(id, value, token, stages, None).await
    }

    /// As [`SecretStore::put`], passing back the rotation's `RotationToken` when present.
    ///
    /// # Errors
    /// As [`SecretStore::put`].
    pub async fn put_rotation(
        &self,
        id: &str,
        value: &SecretString,
        token: &str,
        stages: &[&str],
        rotation_token: Option<&str>,
    ) -> Result<Written, StoreError> {
        use secrecy::ExposeSecret;
        let out = self
            .client
            .put_secret_value()
            .secret_id(id)
            .secret_string(value.expose_secret())
            .client_request_token(token)
            .set_version_stages(Some(stages.iter().map(|s| (*s).to_owned()).collect()))
            .set_rotation_token(rotation_token.map(str::to_owned))
            .send()
            .await
            .map_err(|e| StoreError::from_sdk("PutSecretValue", e))?;
        Ok(Written {
            arn: out.arn.unwrap_or_default(),
            name: out.name.unwrap_or_default(),
            version_id: out.version_id.unwrap_or_default(),
        })
    }

    /// Every version of the secret and its labels, including (with `include_deprecated`) the
    /// versions that carry none, which `DescribeSecret` leaves out (AWS calls them deprecated).
    ///
    /// # Errors
    /// [`StoreError`]s, not-found included.
    pub async fn version_stages(
        &self,
        id: &str,
        include_deprecated: bool,
    ) -> Result<std::collections::BTreeMap<String, Vec<String>>, StoreError> {
        Ok(self
            .versions(id, include_deprecated)
            .await?
            .into_iter()
            .filter_map(|v| {
                let stages = v.version_stages().to_vec();
                v.version_id.map(|id| (id, stages))
            })
            .collect())
    }

    /// When version `version` of the secret was created (`ListSecretVersionIds`'s
    /// `CreatedDate`); `None` when the secret has no such version or the date is missing.
    ///
    /// # Errors
    /// [`StoreError`]s, not-found included.
    pub async fn version_created(
        &self,
        id: &str,
        version: &str,
    ) -> Result<Option<time::OffsetDateTime>, StoreError> {
        Ok(self
            .versions(id, false)
            .await?
            .iter()
            .find(|v| v.version_id() == Some(version))
            .and_then(|v| v.created_date())
            .and_then(|d| time::OffsetDateTime::from_unix_timestamp(d.secs()).ok()))
    }

    /// Every page of `ListSecretVersionIds` for the secret.
    async fn versions(
        &self,
        id: &str,
        include_deprecated: bool,
    ) -> Result<Vec<aws_sdk_secretsmanager::types::SecretVersionsListEntry>, StoreError> {
        let mut versions = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let out = self
                .client
                .list_secret_version_ids()
                .secret_id(id)
                .include_deprecated(include_deprecated)
                .max_results(100)
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| StoreError::from_sdk("ListSecretVersionIds", e))?;
            let token = out
                .next_token()
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            versions.extend(out.versions.unwrap_or_default());
            match token {
                Some(t) => next = Some(t),
                None => return Ok(versions),
            }
        }
    }

    /// The secret's metadata: rotation settings, tags and which version holds which label.
    /// `None` when it does not exist.
    ///
    /// # Errors
    /// [`StoreError`]s other than not-found.
    pub async fn describe(&self, id: &str) -> Result<Option<SecretDescription>, StoreError> {
        match self.client.describe_secret().secret_id(id).send().await {
            Ok(out) => {
                let versions = out
                    .version_ids_to_stages
                    .unwrap_or_default()
                    .into_iter()
                    .collect();
                Ok(Some(SecretDescription {
                    arn: out.arn.unwrap_or_default(),
                    name: out.name.unwrap_or_default(),
                    rotation_enabled: out.rotation_enabled.unwrap_or(false),
                    rotation_lambda_arn: out.rotation_lambda_arn,
                    kms_key_id: out.kms_key_id,
                    deleted: out.deleted_date.is_some(),
                    tags: out
                        .tags
                        .unwrap_or_default()
                        .into_iter()
                        .map(|t| (t.key.unwrap_or_default(), t.value.unwrap_or_default()))
                        .collect(),
                    versions,
                }))
            }
            Err(e) => {
                let err = StoreError::from_sdk("DescribeSecret", e);
                if err.kind == StoreErrorKind::NotFound {
                    Ok(None)
                } else {
                    Err(err)
                }
            }
        }
    }

    /// Moves `stage` to `to` (if given), removing it from `from` (if given). Removing from a
    /// version that no longer holds the label fails: a compare-and-set on the label.
    ///
    /// # Errors
    /// `InvalidRequest` when `from` does not hold the label; other [`StoreError`]s.
    pub async fn move_stage(
        &self,
        id: &str,
        stage: &str,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<(), StoreError> {
        self.client
            .update_secret_version_stage()
            .secret_id(id)
            .version_stage(stage)
            .set_remove_from_version_id(from.map(str::to_owned))
            .set_move_to_version_id(to.map(str::to_owned))
            .send()
            .await
            .map_err(|e| StoreError::from_sdk("UpdateSecretVersionStage", e))?;
        Ok(())
    }

    /// Starts a rotation (`RotateSecret`): Secrets Manager labels a new version `AWSPENDING`
    /// under `token` and invokes the rotation function's four steps.
    ///
    /// # Errors
    /// [`StoreError`]s; a rotation already in progress is `InvalidRequest`.
    pub async fn rotate(
        &self,
        id: &str,
        token: &str,
        lambda_arn: Option<&str>,
        rotate_after_days: Option<i64>,
        immediately: bool,
    ) -> Result<(), StoreError> {
        let rules = rotate_after_days.map(|d| {
            aws_sdk_secretsmanager::types::RotationRulesType::builder()
                .automatically_after_days(d)
                .build()
        });
        self.client
            .rotate_secret()
            .secret_id(id)
            .client_request_token(token)
            .set_rotation_lambda_arn(lambda_arn.map(str::to_owned))
            .set_rotation_rules(rules)
            .rotate_immediately(immediately)
            .send()
            .await
            .map_err(|e| StoreError::from_sdk("RotateSecret", e))?;
        Ok(())
    }

    /// Configures rotation without starting one (`RotateSecret` with `RotateImmediately=false`
    /// and no token): Secrets Manager records the function and the schedule, and tests the
    /// configuration by running the function's `testSecret` step against a temporary
    /// `AWSPENDING` version, which it then removes (API reference, RotateSecret,
    /// `RotateImmediately`).
    ///
    /// # Errors
    /// [`StoreError`]s; a rotation in progress is `InvalidRequest`.
    pub async fn configure_rotation(
        &self,
        id: &str,
        lambda_arn: &str,
        rotate_after_days: i64,
    ) -> Result<(), StoreError> {
        self.client
            .rotate_secret()
            .secret_id(id)
            .rotation_lambda_arn(lambda_arn)
            .rotation_rules(
                aws_sdk_secretsmanager::types::RotationRulesType::builder()
                    .automatically_after_days(rotate_after_days)
                    .build(),
            )
            .rotate_immediately(false)
            .send()
            .await
            .map_err(|e| StoreError::from_sdk("RotateSecret", e))?;
        Ok(())
    }

    /// Turns rotation off (`CancelRotateSecret`): Secrets Manager's own schedule no longer
    /// starts rotations of the secret. AWS refuses it for a secret with no rotation function
    /// configured, so call it only when `DescribeSecret` shows rotation enabled with one.
    ///
    /// # Errors
    /// [`StoreError`]s.
    pub async fn cancel_rotation(&self, id: &str) -> Result<(), StoreError> {
        self.client
            .cancel_rotate_secret()
            .secret_id(id)
            .send()
            .await
            .map_err(|e| StoreError::from_sdk("CancelRotateSecret", e))?;
        Ok(())
    }

    /// Removes tags (absent keys are ignored).
    ///
    /// # Errors
    /// [`StoreError`]s.
    pub async fn untag(&self, id: &str, keys: &[String]) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        self.client
            .untag_resource()
            .secret_id(id)
            .set_tag_keys(Some(keys.to_vec()))
            .send()
            .await
            .map_err(|e| StoreError::from_sdk("UntagResource", e))?;
        Ok(())
    }

    /// Adds or overwrites tags.
    ///
    /// # Errors
    /// [`StoreError`]s.
    pub async fn tag(&self, id: &str, tags: &[(String, String)]) -> Result<(), StoreError> {
        self.client
            .tag_resource()
            .secret_id(id)
            .set_tags(Some(tag_list(tags)))
            .send()
            .await
            .map_err(|e| StoreError::from_sdk("TagResource", e))?;
        Ok(())
    }

    /// Deletes a secret (with no recovery window when `force`).
    ///
    /// # Errors
    /// [`StoreError`]s; a missing secret is not an error.
    pub async fn delete(&self, id: &str, force: bool) -> Result<(), StoreError> {
        self.delete_after(id, force, None).await
    }

    /// Deletes a secret: at once when `force`, else after `recovery_days` (7-30; Secrets
    /// Manager's default of 30 when `None`).
    ///
    /// # Errors
    /// [`StoreError`]s; a missing secret is not an error.
    pub async fn delete_after(
        &self,
        id: &str,
        force: bool,
        recovery_days: Option<i64>,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_secret()
            .secret_id(id)
            .set_force_delete_without_recovery(force.then_some(true))
            .set_recovery_window_in_days(if force { None } else { recovery_days })
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => {
                let err = StoreError::from_sdk("DeleteSecret", e);
                if err.kind == StoreErrorKind::NotFound {
                    Ok(())
                } else {
                    Err(err)
                }
            }
        }
    }
}
