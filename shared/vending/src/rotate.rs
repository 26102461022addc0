//! The rotation function: Secrets Manager's four-step protocol for the managed secrets.
//!
//! - checks first, in the order of AWS's own templates: rotation enabled, the secret is
//!   managed by this product, the token is a version, already `AWSCURRENT` → done, must be
//!   `AWSPENDING`;
//! - `createSecret` mints the successor (same workspace and cap unless an on-demand request
//!   changed them, fresh expiry from the recorded lifetime, generation + 1) under a key name
//!   derived from the token and stores the record as `AWSPENDING` under the token. It never
//!   deletes a key another attempt may still store; a lost write reply is retried with the same
//!   token and read back;
//! - `setSecret` has nothing to do (OpenRouter minted the key);
//! - `testSecret` calls `GET /key` with the pending key itself and checks cap and expiry, then
//!   reads the key back with the management key to check its workspace;
//! - `finishSecret` tags the superseded key for retirement after the grace period, moves
//!   `AWSCURRENT` with a compare-and-set, removes `AWSPENDING`, deletes other attempts' keys
//!   (the token's value is final now) and rewrites the tags the sweep reads. When the record
//!   changed while the rotation ran (a cap update), the change is applied to the new key and
//!   promoted with it.
//!
//! Every step is idempotent per token.

use std::time::Instant;

use orkv_openrouter::{ApiKey, CreateKeyRequest, ErrorKind, KeyPatch, format_expires_at};
use orkv_store::{SecretDescription, SecretVersion, StoreErrorKind};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use tracing::{info, instrument, warn};
use uuid::Uuid;

use crate::error::VendError;
use crate::provision::{Deps, tags};
use crate::record::{MANAGED_BY, RecordState, SecretRecord};
use crate::request::Lifetime;

pub const AWSCURRENT: &str = "AWSCURRENT";
pub const AWSPENDING: &str = "AWSPENDING";
/// Label of a version written to carry a change made while a rotation ran.
const MERGE_STAGE: &str = "ORKV_MERGE";
/// Writes of the successor after the first, on a transient failure.
const PUT_ATTEMPTS: u32 = 3;
/// Superseded keys awaiting retirement per secret (each takes one tag).
pub const MAX_RETIRING: usize = 10;

/// One of the four steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Step {
    CreateSecret,
    SetSecret,
    TestSecret,
    FinishSecret,
}

impl Step {
    /// Accepts `createSecret` and `create_secret` spellings.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "createSecret" | "create_secret" => Some(Self::CreateSecret),
            "setSecret" | "set_secret" => Some(Self::SetSecret),
            "testSecret" | "test_secret" => Some(Self::TestSecret),
            "finishSecret" | "finish_secret" => Some(Self::FinishSecret),
            _ => None,
        }
    }

    /// The protocol's spelling.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CreateSecret => "createSecret",
            Self::SetSecret => "setSecret",
            Self::TestSecret => "testSecret",
            Self::FinishSecret => "finishSecret",
        }
    }
}

/// The rotation event Secrets Manager sends (`RotationToken` included, which
/// `aws_lambda_events`' struct drops).
#[derive(Clone, PartialEq, Eq)]
pub struct RotationEvent {
    pub step: Step,
    pub secret_id: String,
    pub token: String,
    pub rotation_token: Option<String>,
}

impl std::fmt::Debug for RotationEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotationEvent")
            .field("step", &self.step)
            .field("secret_id", &self.secret_id)
            .field("token", &self.token)
            .field(
                "rotation_token",
                &self.rotation_token.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

fn field<'a>(v: &'a Value, name: &'static str) -> Result<Option<&'a str>, VendError> {
    match v.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(VendError::InvalidRotation {
            field: name,
            rule: "must be a string".into(),
        }),
    }
}

impl RotationEvent {
    /// Validates a raw rotation event field by field.
    ///
    /// # Errors
    /// [`VendError::InvalidRotation`] naming the field and the rule.
    pub fn parse(v: &Value) -> Result<Self, VendError> {
        if !v.is_object() {
            return Err(VendError::InvalidRotation {
                field: "(event)",
                rule: "must be a JSON object with Step, SecretId and ClientRequestToken".into(),
            });
        }
        let step_text = field(v, "Step")?.ok_or(VendError::InvalidRotation {
            field: "Step",
            rule: "is required".into(),
        })?;
        let step = Step::parse(step_text).ok_or_else(|| VendError::InvalidRotation {
            field: "Step",
            rule: crate::error::redact_keys(&format!(
                "{:?} is not one of createSecret, setSecret, testSecret, finishSecret",
                step_text.chars().take(64).collect::<String>()
            )),
        })?;
        let secret_id = field(v, "SecretId")?.unwrap_or("");
        if secret_id.is_empty() || secret_id.len() > 2048 {
            return Err(VendError::InvalidRotation {
                field: "SecretId",
                rule: "is required (1-2048 characters)".into(),
            });
        }
        let token = field(v, "ClientRequestToken")?.unwrap_or("");
        if !(32..=64).contains(&token.len())
            || !token.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(VendError::InvalidRotation {
                field: "ClientRequestToken",
                rule: "is required: 32-64 characters of letters, digits and hyphens".into(),
            });
        }
        let rotation_token = field(v, "RotationToken")?.map(str::to_owned);
        if rotation_token.as_ref().is_some_and(|t| t.len() > 4096) {
            return Err(VendError::InvalidRotation {
                field: "RotationToken",
                rule: "must be at most 4096 characters".into(),
            });
        }
        Ok(Self {
            step,
            secret_id: secret_id.to_owned(),
            token: token.to_owned(),
            rotation_token,
        })
    }
}

/// What a step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepOutcome {
    /// The step did its work.
    Done,
    /// The step's work was already done under this token.
    AlreadyDone,
    /// The token's version is already `AWSCURRENT`: the rotation is over.
    AlreadyCurrent,
}

/// The reply of a rotation step. Never holds the plaintext.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepReply {
    pub step: Step,
    pub secret_arn: String,
    pub token: String,
    pub outcome: StepOutcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_hash: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
}

/// Settings a requested rotation applies (the `orkv:next` tag), for fields fixed at creation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NextSettings<'a> {
    pub workspace_id: &'a str,
    pub lifetime: Lifetime,
    pub cap: orkv_openrouter::Cap,
    pub rotate_before_seconds: u64,
}

/// Owned form of [`NextSettings`].
#[derive(Debug, Clone, PartialEq)]
pub struct Next {
    pub workspace_id: String,
    pub lifetime: Lifetime,
    pub cap: orkv_openrouter::Cap,
    pub rotate_before_seconds: u64,
}

impl NextSettings<'_> {
    /// The tag value (tag values allow letters, digits, spaces and `_.:/=+-@`).
    #[must_use]
    pub fn tag_value(&self) -> String {
        format!(
            "workspace={} lifetime={} limit={} reset={} byok={} rotate_before={}",
            self.workspace_id,
            self.lifetime.tag_value(),
            self.cap.limit,
            self.cap.limit_reset.map_or("none", |r| r.as_str()),
            self.cap.include_byok_in_limit,
            self.rotate_before_seconds
        )
    }
}

impl Next {
    /// Parses [`NextSettings::tag_value`]'s form.
    #[must_use]
    pub fn from_tag_value(v: &str) -> Option<Self> {
        let mut workspace_id = None;
        let mut lifetime = None;
        let mut limit = None;
        let mut reset = None;
        let mut byok = None;
        let mut rotate_before = None;
        for part in v.split(' ') {
            let (k, val) = part.split_once('=')?;
            match k {
                "workspace" => workspace_id = Some(val.to_owned()),
                "lifetime" => lifetime = Lifetime::from_tag_value(val),
                "limit" => limit = val.parse::<f64>().ok(),
                "reset" => {
                    reset = Some(match val {
                        "none" => None,
                        other => Some(
                            serde_json::from_value::<orkv_openrouter::LimitReset>(Value::String(
                                other.to_owned(),
                            ))
                            .ok()?,
                        ),
                    });
                }
                "byok" => byok = val.parse::<bool>().ok(),
                "rotate_before" => rotate_before = val.parse::<u64>().ok(),
                _ => {}
            }
        }
        Some(Self {
            workspace_id: workspace_id?,
            lifetime: lifetime?,
            cap: orkv_openrouter::Cap {
                limit: limit?,
                limit_reset: reset?,
                include_byok_in_limit: byok?,
            },
            rotate_before_seconds: rotate_before?,
        })
    }
}

/// The `ClientRequestToken` every starter (sweep, on-demand action, provision) uses for the
/// rotation of `secret_name` away from `generation`: two starters for the same generation
/// share one rotation.
#[must_use]
pub fn rotation_token(secret_name: &str, generation: u64) -> String {
    Uuid::new_v5(
        &crate::provision::TOKEN_NAMESPACE,
        format!("{secret_name}/rotate/{generation}").as_bytes(),
    )
    .to_string()
}

/// The OpenRouter key name a rotation mints under: derived from the token, so a retry finds
/// what an earlier attempt minted.
#[must_use]
pub fn successor_key_name(secret_name: &str, token: &str) -> String {
    let short: String = token.chars().filter(|c| *c != '-').take(12).collect();
    format!("orkv:{secret_name}:r{short}")
}

/// A retire tag's key for `hash`.
#[must_use]
pub fn retire_tag(hash: &str) -> String {
    format!("{}{hash}", tags::RETIRE_PREFIX)
}

/// The keys awaiting retirement a secret's tags list: (hash, when).
#[must_use]
pub fn retiring(tag_list: &[(String, String)]) -> Vec<(String, OffsetDateTime)> {
    tag_list
        .iter()
        .filter_map(|(k, v)| {
            let hash = k.strip_prefix(tags::RETIRE_PREFIX)?;
            let at = OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH);
            Some((hash.to_owned(), at))
        })
        .collect()
}

pub(crate) fn record_of(name: &str, version: &SecretVersion) -> Result<SecretRecord, VendError> {
    match SecretRecord::from_secret(&version.value) {
        None => Err(VendError::NotManaged {
            secret_name: name.to_owned(),
        }),
        Some(Err(reason)) => Err(VendError::CorruptRecord {
            secret_name: name.to_owned(),
            reason,
        }),
        Some(Ok(r)) => Ok(r),
    }
}

enum Checked {
    Current,
    Pending,
}

impl Deps {
    /// Handles one raw rotation event.
    ///
    /// # Errors
    /// A [`VendError`] naming the failure; a failed check changes nothing.
    pub async fn rotation_step(
        &self,
        payload: &Value,
        deadline: Instant,
    ) -> Result<StepReply, VendError> {
        let event = RotationEvent::parse(payload)?;
        self.run_step(&event, deadline).await
    }

    /// Runs one validated step.
    ///
    /// # Errors
    /// A [`VendError`] naming the failure.
    #[instrument(skip_all, fields(step = event.step.as_str(), secret = %event.secret_id, token = %event.token))]
    pub async fn run_step(
        &self,
        event: &RotationEvent,
        _deadline: Instant,
    ) -> Result<StepReply, VendError> {
        let desc = self
            .store
            .describe(&event.secret_id)
            .await?
            .ok_or_else(|| VendError::SecretNotFound {
                secret_name: event.secret_id.clone(),
            })?;
        let checked = Self::check(&desc, &event.token)?;
        let mut reply = StepReply {
            step: event.step,
            secret_arn: desc.arn.clone(),
            token: event.token.clone(),
            outcome: StepOutcome::AlreadyCurrent,
            key_hash: None,
            generation: None,
        };
        match (event.step, checked) {
            (Step::FinishSecret, Checked::Current) => {
                let pending = self.read_version(&desc, &event.token).await?;
                self.finish_tail(&desc, &event.token, &pending, None)
                    .await?;
                reply.key_hash.clone_from(&pending.key_hash);
                reply.generation = Some(pending.generation);
            }
            (_, Checked::Current) => {}
            (Step::CreateSecret, Checked::Pending) => {
                let (outcome, record) = self.create_step(&desc, event).await?;
                reply.outcome = outcome;
                reply.key_hash = record.key_hash;
                reply.generation = Some(record.generation);
            }
            (Step::SetSecret, Checked::Pending) => reply.outcome = StepOutcome::Done,
            (Step::TestSecret, Checked::Pending) => {
                let record = self.test_step(&desc, &event.token).await?;
                reply.outcome = StepOutcome::Done;
                reply.key_hash = record.key_hash;
                reply.generation = Some(record.generation);
            }
            (Step::FinishSecret, Checked::Pending) => {
                let record = self.finish_step(&desc, &event.token).await?;
                reply.outcome = StepOutcome::Done;
                reply.key_hash = record.key_hash;
                reply.generation = Some(record.generation);
            }
        }
        info!(outcome = ?reply.outcome, key_hash = reply.key_hash.as_deref().unwrap_or(""), "rotation step");
        Ok(reply)
    }

    fn check(desc: &SecretDescription, token: &str) -> Result<Checked, VendError> {
        if !desc.rotation_enabled {
            return Err(VendError::RotationDisabled {
                secret_name: desc.name.clone(),
            });
        }
        if desc.tag(tags::MANAGED_BY) != Some(MANAGED_BY) {
            return Err(VendError::NotManaged {
                secret_name: desc.name.clone(),
            });
        }
        if !desc.versions.contains_key(token) {
            return Err(VendError::UnknownToken {
                secret_name: desc.name.clone(),
                token: token.to_owned(),
            });
        }
        if desc.has(token, AWSCURRENT) {
            return Ok(Checked::Current);
        }
        if !desc.has(token, AWSPENDING) {
            return Err(VendError::NotPending {
                secret_name: desc.name.clone(),
                token: token.to_owned(),
            });
        }
        Ok(Checked::Pending)
    }

    async fn read_version(
        &self,
        desc: &SecretDescription,
        version_id: &str,
    ) -> Result<SecretRecord, VendError> {
        let version = self
            .store
            .get_version(&desc.arn, Some(version_id), None)
            .await?
            .ok_or_else(|| VendError::RotationTestFailed {
                secret_name: desc.name.clone(),
                check: format!("version {version_id} holds no value"),
            })?;
        record_of(&desc.name, &version)
    }

    async fn pending_value(
        &self,
        desc: &SecretDescription,
        token: &str,
    ) -> Result<Option<SecretRecord>, VendError> {
        match self
            .store
            .get_version(&desc.arn, Some(token), Some(AWSPENDING))
            .await?
        {
            Some(v) if !v.value.expose_secret().is_empty() => Ok(Some(record_of(&desc.name, &v)?)),
            _ => Ok(None),
        }
    }

    /// The hashes of every key named `name` in `workspace_id` (disabled ones included).
    pub(crate) async fn keys_named(
        &self,
        workspace_id: &str,
        name: &str,
    ) -> Result<Vec<String>, VendError> {
        let mut found = Vec::new();
        self.openrouter()
            .await?
            .for_each_key_page(Some(workspace_id), true, |page| {
                found.extend(page.into_iter().filter(|k| k.name == name).map(|k| k.hash));
                true
            })
            .await?;
        Ok(found)
    }

    /// Deletes every key named `name` in `workspace_id` (disabled ones included).
    pub(crate) async fn delete_named(
        &self,
        workspace_id: &str,
        name: &str,
    ) -> Result<usize, VendError> {
        let found = self.keys_named(workspace_id, name).await?;
        let client = self.openrouter().await?;
        for hash in &found {
            match client.delete_key(hash).await {
                Ok(_) => warn!(key_hash = %hash, "deleted a key of an unfinished attempt"),
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(found.len())
    }

    /// After `finishSecret` took `AWSPENDING` off the token's version, no other value can be
    /// stored under the token: keys other attempts minted under its successor name go.
    async fn delete_other_attempts(
        &self,
        desc: &SecretDescription,
        token: &str,
        promoted: &SecretRecord,
    ) -> Result<(), VendError> {
        let name = &promoted.openrouter_key_name;
        if *name != successor_key_name(&desc.name, token) {
            return Ok(());
        }
        let mut others = self.keys_named(&promoted.workspace_id, name).await?;
        others.retain(|h| Some(h.as_str()) != promoted.key_hash.as_deref());
        if others.is_empty() {
            return Ok(());
        }
        // What the token's version holds now, not what was read before the labels moved (a
        // store that lets a pending version be overwritten may hold another attempt's key).
        let Some(stored) = self
            .store
            .get_version(&desc.arn, Some(token), None)
            .await?
            .and_then(|v| SecretRecord::from_secret(&v.value).and_then(Result::ok))
            .and_then(|r| r.key_hash)
        else {
            return Ok(());
        };
        let client = self.openrouter().await?;
        for hash in others.iter().filter(|h| **h != stored) {
            match client.delete_key(hash).await {
                Ok(_) => {
                    warn!(key_hash = %hash, "deleted a key another attempt of this rotation minted");
                }
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    async fn create_step(
        &self,
        desc: &SecretDescription,
        event: &RotationEvent,
    ) -> Result<(StepOutcome, SecretRecord), VendError> {
        if let Some(existing) = self.pending_value(desc, &event.token).await? {
            return Ok((StepOutcome::AlreadyDone, existing));
        }
        let current = self
            .store
            .get(&desc.arn, AWSCURRENT)
            .await?
            .ok_or_else(|| VendError::SecretNotFound {
                secret_name: desc.name.clone(),
            })?;
        let parent = record_of(&desc.name, &current)?;
        match parent.state {
            RecordState::Active => {}
            RecordState::Pending => {
                return Err(VendError::InProgress {
                    secret_name: desc.name.clone(),
                });
            }
            RecordState::Revoked => {
                return Err(VendError::Revoked {
                    secret_name: desc.name.clone(),
                });
            }
        }
        let next = desc.tag(tags::NEXT).and_then(Next::from_tag_value);
        let (workspace_id, lifetime, cap, rotate_before) = match &next {
            Some(n) => (
                n.workspace_id.clone(),
                n.lifetime,
                n.cap,
                n.rotate_before_seconds,
            ),
            None => (
                parent.workspace_id.clone(),
                parent.lifetime,
                parent.cap(),
                parent.rotate_before_seconds,
            ),
        };
        let workspace_slug = if workspace_id == parent.workspace_id {
            parent.workspace_slug.clone()
        } else {
            self.workspaces()
                .await?
                .iter()
                .find(|w| w.id == workspace_id)
                .map(|w| w.slug.clone())
                .ok_or_else(|| VendError::UnknownWorkspace {
                    workspace: workspace_id.clone(),
                })?
        };
        let name = successor_key_name(&desc.name, &event.token);
        // Keys an earlier or concurrent attempt with this token minted are not deleted here:
        // one of them may be about to be stored (a Lambda retry overlapping a slow first
        // run). `finishSecret` deletes every key of this name but the promoted one, once no
        // other value can be stored under the token, and the sweep deletes any left over.
        let created_at = self.clock.now();
        let expires_at = lifetime.expiry_from(created_at);
        let client = self.openrouter().await?;
        let request = CreateKeyRequest {
            name: name.clone(),
            limit: Some(cap.limit),
            limit_reset: cap.limit_reset,
            include_byok_in_limit: Some(cap.include_byok_in_limit),
            expires_at: Some(format_expires_at(expires_at)),
            workspace_id: Some(workspace_id.clone()),
        };
        let created = match client.create_key_once(&request).await {
            Ok(c) => c,
            Err(e) if e.kind() == ErrorKind::CreateOutcomeUnknown => {
                // Whatever it minted carries this token's name and is never stored:
                // `finishSecret` (or the sweep) deletes it.
                warn!(error = %e, "successor creation outcome unknown; finishSecret cleans up");
                return Err(e.into());
            }
            Err(e) => return Err(e.into()),
        };
        let hash = created.data.hash.clone();
        let record = SecretRecord {
            schema: crate::record::SCHEMA,
            managed_by: MANAGED_BY.into(),
            state: RecordState::Active,
            api_key: Some(SecretString::from(created.key.expose_secret().to_owned())),
            key_hash: Some(hash.clone()),
            key_name: parent.key_name.clone(),
            openrouter_key_name: name,
            workspace_id,
            workspace_slug,
            limit: cap.limit,
            limit_reset: cap.limit_reset,
            include_byok_in_limit: cap.include_byok_in_limit,
            expires_at: created.data.expires_at.unwrap_or(expires_at),
            lifetime,
            rotate_before_seconds: rotate_before,
            created_at,
            generation: parent.generation + 1,
            request_id: format!("rotation:{}", event.token),
            rotation_request: desc.tag(tags::ROTATION_REQUEST).map(str::to_owned),
            parent_version: Some(current.version_id.clone()),
            lease_until: None,
            claim: None,
        };
        let value = record.to_secret();
        let mut attempt = 0;
        let put = loop {
            match self
                .store
                .put_rotation(
                    &desc.arn,
                    &value,
                    &event.token,
                    &[AWSPENDING],
                    event.rotation_token.as_deref(),
                )
                .await
            {
                // Repeating a write with the same token and value is a no-op if it landed.
                Err(e) if e.is_transient() && attempt < PUT_ATTEMPTS => {
                    attempt += 1;
                    warn!(error = %e, attempt, "storing the successor failed: trying again");
                    tokio::time::sleep(std::time::Duration::from_millis(100 << attempt)).await;
                }
                other => break other,
            }
        };
        match put {
            Ok(_) => {
                info!(key_hash = %hash, generation = record.generation, "successor minted and stored as AWSPENDING");
                Ok((StepOutcome::Done, record))
            }
            Err(e) if e.is_transient() => {
                // The write may have landed with its reply lost: read back before deciding.
                match self.pending_value(desc, &event.token).await {
                    Ok(Some(stored)) if stored.key_hash.as_deref() == Some(hash.as_str()) => {
                        info!(key_hash = %hash, generation = record.generation, "successor stored as AWSPENDING (reply was lost)");
                        Ok((StepOutcome::Done, record))
                    }
                    Ok(Some(stored)) => {
                        // Another attempt's key is stored under the token. This key is not
                        // deleted here: one of this attempt's writes may still be on its way
                        // (a timed-out request the service carries out late). finishSecret
                        // deletes it once the token's value is final, or the sweep does.
                        Ok((StepOutcome::AlreadyDone, stored))
                    }
                    // Unknown whether it landed: keep the key (deleting a stored key would
                    // strand the rotation). If it is not stored, finishSecret or the sweep
                    // deletes it; the next attempt reads what is stored.
                    _ => {
                        warn!(key_hash = %hash, error = %e, "could not store the successor, nor tell whether it was stored");
                        Err(e.into())
                    }
                }
            }
            Err(e) => {
                // A definite refusal: this key's plaintext is kept nowhere, so it goes.
                self.delete_unstored(&hash).await;
                if e.kind() == StoreErrorKind::VersionConflict {
                    // A concurrent attempt stored its own successor first.
                    let existing = self
                        .pending_value(desc, &event.token)
                        .await?
                        .ok_or(VendError::Store(e))?;
                    return Ok((StepOutcome::AlreadyDone, existing));
                }
                Err(e.into())
            }
        }
    }

    /// Deletes a successor this attempt minted and could not store (best effort: what is
    /// left is deleted by `finishSecret` or the sweep).
    async fn delete_unstored(&self, hash: &str) {
        let result = match self.openrouter().await {
            Ok(client) => client.delete_key(hash).await.map_err(VendError::from),
            Err(e) => Err(e),
        };
        match result {
            Ok(_) => info!(key_hash = %hash, "deleted the successor this attempt could not store"),
            Err(e) => {
                warn!(key_hash = %hash, error = %e, "could not delete the unstored successor; finishSecret or the sweep will")
            }
        }
    }

    async fn test_step(
        &self,
        desc: &SecretDescription,
        token: &str,
    ) -> Result<SecretRecord, VendError> {
        match self.test_pending(desc, token).await {
            Err(VendError::RotationTestFailed { secret_name, check }) => {
                // A finishSecret that carried a change over already promoted this key (in a
                // merged version, whose cap may have changed since): nothing left to test.
                let (Some(pending), Some(current)) = (
                    self.pending_value(desc, token).await?,
                    self.store.get(&desc.arn, AWSCURRENT).await?,
                ) else {
                    return Err(VendError::RotationTestFailed { secret_name, check });
                };
                let Ok(current) = record_of(&desc.name, &current) else {
                    return Err(VendError::RotationTestFailed { secret_name, check });
                };
                if current.key_hash.is_some() && current.key_hash == pending.key_hash {
                    info!("the pending key is already current: nothing to test");
                    return Ok(pending);
                }
                // A finishSecret that died after giving the pending key the cap of a change
                // made meanwhile (it does so before promoting): the key carries the current
                // record's cap, which the retried finishSecret applies again.
                if current.cap() != pending.cap() {
                    let mut carried = pending.clone();
                    carried.limit = current.limit;
                    carried.limit_reset = current.limit_reset;
                    carried.include_byok_in_limit = current.include_byok_in_limit;
                    if self.check_key(desc, &carried).await.is_ok() {
                        info!(
                            "the pending key already carries the cap of a change made during the rotation"
                        );
                        return Ok(pending);
                    }
                }
                Err(VendError::RotationTestFailed { secret_name, check })
            }
            other => other,
        }
    }

    async fn test_pending(
        &self,
        desc: &SecretDescription,
        token: &str,
    ) -> Result<SecretRecord, VendError> {
        let record = self.pending_value(desc, token).await?.ok_or_else(|| {
            VendError::RotationTestFailed {
                secret_name: desc.name.clone(),
                check: "no value is stored under the token (createSecret has not run)".into(),
            }
        })?;
        self.check_key(desc, &record).await?;
        Ok(record)
    }

    /// `GET /key` with the record's key, then `GET /keys/{hash}`: cap, expiry, workspace and
    /// enabled as the record says.
    async fn check_key(
        &self,
        desc: &SecretDescription,
        record: &SecretRecord,
    ) -> Result<(), VendError> {
        let fail = |check: String| VendError::RotationTestFailed {
            secret_name: desc.name.clone(),
            check,
        };
        let plaintext = record
            .api_key
            .as_ref()
            .ok_or_else(|| fail("the pending record holds no key".into()))?;
        let key = ApiKey::new(plaintext.expose_secret().to_owned());
        let client = self.openrouter().await?;
        let seen = client.current_key_with(&key).await.map_err(|e| {
            fail(format!(
                "GET /key with the pending key failed ({})",
                e.kind().as_str()
            ))
        })?;
        if seen.limit != Some(record.limit) {
            return Err(fail(format!(
                "limit is {:?}, expected {}",
                seen.limit, record.limit
            )));
        }
        if seen.limit_reset != record.limit_reset {
            return Err(fail(format!(
                "limit_reset is {:?}, expected {:?}",
                seen.limit_reset, record.limit_reset
            )));
        }
        if seen.include_byok_in_limit != record.include_byok_in_limit {
            return Err(fail("include_byok_in_limit differs".into()));
        }
        if seen.expires_at != Some(record.expires_at) {
            return Err(fail(format!(
                "expires_at is {:?}, expected {}",
                seen.expires_at.map(format_expires_at),
                format_expires_at(record.expires_at)
            )));
        }
        let hash = record.key_hash.clone().unwrap_or_default();
        let described = client
            .get_key(&hash)
            .await
            .map_err(|e| fail(format!("GET /keys/{hash} failed ({})", e.kind().as_str())))?;
        if described.workspace_id != record.workspace_id {
            return Err(fail(format!(
                "workspace is {}, expected {}",
                described.workspace_id, record.workspace_id
            )));
        }
        if described.disabled {
            return Err(fail("the key is disabled".into()));
        }
        Ok(())
    }

    async fn finish_step(
        &self,
        desc: &SecretDescription,
        token: &str,
    ) -> Result<SecretRecord, VendError> {
        let pending = self.read_version(desc, token).await?;
        let current_id = desc
            .version_with(AWSCURRENT)
            .ok_or_else(|| VendError::SecretNotFound {
                secret_name: desc.name.clone(),
            })?
            .to_owned();
        let old = self.read_version(desc, &current_id).await?;
        if old.key_hash == pending.key_hash {
            // A merged version carrying the successor is already current.
            self.finish_tail(desc, token, &old, None).await?;
            return Ok(old);
        }
        let mut promoted = pending.clone();
        let mut target = token.to_owned();
        if pending.parent_version.as_deref() != Some(current_id.as_str())
            && (old.cap() != pending.cap()
                || old.rotate_before_seconds != pending.rotate_before_seconds)
            && desc.tag(tags::NEXT).is_none()
        {
            // The record changed while the rotation ran (a cap update): carry it over.
            let cap = old.cap();
            let hash = pending.key_hash.clone().unwrap_or_default();
            self.openrouter()
                .await?
                .update_key(
                    &hash,
                    &KeyPatch {
                        cap: Some(cap),
                        ..KeyPatch::default()
                    },
                )
                .await?;
            promoted.limit = cap.limit;
            promoted.limit_reset = cap.limit_reset;
            promoted.include_byok_in_limit = cap.include_byok_in_limit;
            promoted.rotate_before_seconds = old.rotate_before_seconds;
            let merge_token = crate::provision::token(token, "merge");
            self.store
                .put(
                    &desc.arn,
                    &promoted.to_secret(),
                    &merge_token,
                    &[MERGE_STAGE],
                )
                .await?;
            target = merge_token;
            info!("carried a change made during the rotation over to the successor");
        }
        let leak = desc.tag(tags::ROTATION_REASON) == Some("leak");
        if let Some(old_hash) = old.key_hash.as_deref() {
            let now = self.clock.now();
            let at = if leak {
                now
            } else {
                now + time::Duration::try_from(self.cfg.retire_grace)
                    .unwrap_or(time::Duration::HOUR)
            };
            let mut retire = vec![(retire_tag(old_hash), format_expires_at(at))];
            let mut waiting = retiring(&desc.tags);
            waiting.retain(|(h, _)| h != old_hash);
            if waiting.len() >= MAX_RETIRING {
                // Too many keys in grace at once: the oldest is retired at the next sweep.
                waiting.sort_by_key(|(_, at)| *at);
                if let Some((h, _)) = waiting.first() {
                    retire.push((retire_tag(h), format_expires_at(now)));
                }
            }
            self.store.tag(&desc.arn, &retire).await?;
        }
        self.store
            .move_stage(&desc.arn, AWSCURRENT, Some(&current_id), Some(&target))
            .await?;
        info!(from = %current_id, to = %target, key_hash = promoted.key_hash.as_deref().unwrap_or(""), "AWSCURRENT moved to the successor");
        self.finish_tail(desc, token, &promoted, old.key_hash.as_deref())
            .await?;
        Ok(promoted)
    }

    /// The end of `finishSecret`, repeated safely: drop `AWSPENDING`, point the sweep's tags
    /// at the new key, clear the request's tags, and for a leak disable the old key now.
    async fn finish_tail(
        &self,
        desc: &SecretDescription,
        token: &str,
        promoted: &SecretRecord,
        old_hash: Option<&str>,
    ) -> Result<(), VendError> {
        if desc.has(token, AWSPENDING) {
            match self
                .store
                .move_stage(&desc.arn, AWSPENDING, Some(token), None)
                .await
            {
                Ok(()) => {}
                // Already removed by an earlier attempt.
                Err(e) if e.kind() == StoreErrorKind::InvalidRequest => {}
                Err(e) => return Err(e.into()),
            }
        }
        if let Err(e) = self.delete_other_attempts(desc, token, promoted).await {
            warn!(error = %e, "could not delete keys of other attempts; the sweep will");
        }
        self.store
            .tag(&desc.arn, &Self::record_tags(promoted))
            .await?;
        let leak = desc.tag(tags::ROTATION_REASON) == Some("leak");
        let request_tags: Vec<String> = [tags::NEXT, tags::ROTATION_REQUEST, tags::ROTATION_REASON]
            .iter()
            .filter(|k| desc.tag(k).is_some())
            .map(|k| (*k).to_owned())
            .collect();
        if leak {
            let mut suspects: Vec<String> = old_hash.map(str::to_owned).into_iter().collect();
            let now = self.clock.now();
            suspects.extend(
                retiring(&desc.tags)
                    .into_iter()
                    .filter(|(_, at)| *at <= now)
                    .map(|(h, _)| h),
            );
            let client = self.openrouter().await?;
            for hash in suspects {
                if Some(hash.as_str()) == promoted.key_hash.as_deref() {
                    continue;
                }
                let patch = KeyPatch {
                    disabled: Some(true),
                    ..KeyPatch::default()
                };
                match client.update_key(&hash, &patch).await {
                    Ok(_) => warn!(key_hash = %hash, "suspected leaked key disabled"),
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        self.store.untag(&desc.arn, &request_tags).await?;
        Ok(())
    }
}

/// The rotation Lambda handler.
///
/// # Errors
/// A `Diagnostic` whose `error_type` is the [`VendError`] kind.
pub async fn handle_lambda(
    deps: &Deps,
    event: lambda_runtime::LambdaEvent<Value>,
) -> Result<Value, lambda_runtime::Diagnostic> {
    let deadline = crate::provision::lambda_deadline(event.context.deadline);
    match Box::pin(deps.rotation_step(&event.payload, deadline)).await {
        Ok(reply) => serde_json::to_value(&reply).map_err(|e| lambda_runtime::Diagnostic {
            error_type: "ReplyEncoding".into(),
            error_message: e.to_string(),
        }),
        Err(e) => {
            warn!(error_type = e.kind(), error = %e, "rotation step failed");
            Err(e.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TOKEN: &str = "0b5e4f4e-7d3c-4c1a-9b7e-2f0a8c6d5e41";

    #[test]
    fn both_step_spellings_parse() {
        for (s, step) in [
            ("createSecret", Step::CreateSecret),
            ("create_secret", Step::CreateSecret),
            ("testSecret", Step::TestSecret),
            ("finish_secret", Step::FinishSecret),
        ] {
            let e = RotationEvent::parse(
                &json!({"Step": s, "SecretId": "arn:x", "ClientRequestToken": TOKEN}),
            )
            .expect("parses");
            assert_eq!(e.step, step);
        }
    }

    #[test]
    fn bad_events_name_the_field() {
        let cases = [
            (
                json!({"SecretId": "s", "ClientRequestToken": TOKEN}),
                "Step",
            ),
            (
                json!({"Step": "rotateSecret", "SecretId": "s", "ClientRequestToken": TOKEN}),
                "Step",
            ),
            (
                json!({"Step": "setSecret", "ClientRequestToken": TOKEN}),
                "SecretId",
            ),
            (
                json!({"Step": "setSecret", "SecretId": "s", "ClientRequestToken": "short"}),
                "ClientRequestToken",
            ),
            (
                json!({"Step": "setSecret", "SecretId": "s", "ClientRequestToken": TOKEN, "RotationToken": 5}),
                "RotationToken",
            ),
            (json!([1, 2]), "(event)"),
        ];
        for (v, f) in cases {
            let err = RotationEvent::parse(&v).expect_err("refused");
            assert_eq!(err.kind(), "InvalidRotationEvent");
            assert!(err.to_string().contains(&format!("`{f}`")), "{err}");
        }
    }

    #[test]
    fn the_rotation_token_never_shows_in_debug() {
        let e = RotationEvent::parse(&json!({"Step": "setSecret", "SecretId": "s",
            "ClientRequestToken": TOKEN, "RotationToken": "rt-sentinel"}))
        .expect("parses");
        assert!(!format!("{e:?}").contains("sentinel"));
    }

    #[test]
    fn next_settings_round_trip_through_a_tag_value() {
        let n = NextSettings {
            workspace_id: "5b1e0c52-8f0a-4c8e-9d61-2f3a7c1e9a01",
            lifetime: Lifetime::TtlSeconds(86_400),
            cap: orkv_openrouter::Cap {
                limit: 12.5,
                limit_reset: Some(orkv_openrouter::LimitReset::Monthly),
                include_byok_in_limit: true,
            },
            rotate_before_seconds: 3600,
        };
        let v = n.tag_value();
        assert!(v.len() <= 255);
        assert!(
            v.chars()
                .all(|c| c.is_ascii_alphanumeric() || " _.:/=+-@".contains(c))
        );
        let back = Next::from_tag_value(&v).expect("parses");
        assert_eq!(back.workspace_id, n.workspace_id);
        assert_eq!(back.lifetime, n.lifetime);
        assert_eq!(back.cap, n.cap);
        assert_eq!(back.rotate_before_seconds, 3600);
    }

    #[test]
    fn tokens_are_shared_per_generation() {
        assert_eq!(rotation_token("a", 1), rotation_token("a", 1));
        assert_ne!(rotation_token("a", 1), rotation_token("a", 2));
        assert_ne!(rotation_token("a", 1), rotation_token("b", 1));
        let name = successor_key_name("openrouter/x", &rotation_token("a", 1));
        assert!(name.starts_with("orkv:openrouter/x:r"));
    }
}
