//! On-demand actions from a pipeline or an event: rotate now (a changed fixed field, or a
//! suspected leak: the successor is promoted at once and, for a leak, the old key is disabled
//! at once instead of after the grace period), and revoke (disable, delete and confirm every
//! key the secret references, then mark the secret revoked or delete it).

use orkv_openrouter::{ErrorKind, KeyPatch};
use serde::Serialize;
use serde_json::Value;
use tracing::{info, warn};

use crate::driver::RotationStart;
use crate::error::VendError;
use crate::invocation::{Action, Trigger, request_digest};
use crate::provision::{Deps, tags, token};
use crate::record::{MANAGED_BY, RecordState, SecretRecord};
use crate::rotate::{
    AWSCURRENT, AWSPENDING, NextSettings, retiring, rotation_token, successor_key_name,
};

/// Why a rotation was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// A suspected leak: the old key is disabled as soon as the successor is current.
    Leak,
    /// Routine, on request.
    Manual,
    /// A provision request changed a field fixed at creation.
    Changed,
}

impl Reason {
    fn as_str(self) -> &'static str {
        match self {
            Self::Leak => "leak",
            Self::Manual => "manual",
            Self::Changed => "changed",
        }
    }
}

/// What an on-demand action did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionStatus {
    /// The successor is current.
    Rotated,
    /// Secrets Manager accepted the rotation and runs it.
    RotationStarted,
    /// This request was already served.
    Unchanged,
    Revoked,
}

/// The reply to an on-demand action. Never holds a plaintext.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionReply {
    pub action: Action,
    pub status: ActionStatus,
    pub secret_arn: String,
    pub secret_name: String,
    /// The current key after the action (rotations).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_hash: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// Keys disabled and deleted (revocations).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub revoked_keys: Vec<String>,
    pub request_id: String,
    pub trigger: Trigger,
}

fn string_field(v: &Value, name: &str) -> Result<Option<String>, VendError> {
    match v.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(VendError::invalid(name, "must be a string")),
    }
}

fn check_fields(v: &Value, allowed: &[&str]) -> Result<(), VendError> {
    let obj = v
        .as_object()
        .ok_or_else(|| VendError::invalid("(request)", "must be a JSON object"))?;
    if let Some(k) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(VendError::invalid(
            k.chars().take(64).collect::<String>(),
            format!("is not a known field (expected {})", allowed.join(", ")),
        ));
    }
    Ok(())
}

impl Deps {
    fn managed_name(&self, v: &Value) -> Result<String, VendError> {
        let name = string_field(v, "secret_name")?
            .ok_or_else(|| VendError::invalid("secret_name", "is required"))?;
        if !crate::request::valid_secret_name(&name) || name.len() > 256 {
            return Err(VendError::invalid(
                "secret_name",
                "must be 1-256 characters of A-Z a-z 0-9 / _ + = . @ -",
            ));
        }
        if !name.starts_with(self.cfg.secret_prefix.as_str()) {
            return Err(VendError::policy(
                "secret_name",
                format!(
                    "must start with the managed prefix {:?}",
                    self.cfg.secret_prefix
                ),
            ));
        }
        Ok(name)
    }

    /// Handles a "rotate now" request body.
    ///
    /// # Errors
    /// Validation errors name the field; see [`Deps::rotate_now`].
    pub async fn rotate_request(
        &self,
        v: &Value,
        request_id: &str,
        trigger: Trigger,
    ) -> Result<ActionReply, VendError> {
        check_fields(v, &["secret_name", "reason", "idempotency_id"])?;
        let name = self.managed_name(v)?;
        let reason = match string_field(v, "reason")?.as_deref() {
            None | Some("manual") => Reason::Manual,
            Some("leak") => Reason::Leak,
            Some(_) => {
                return Err(VendError::invalid(
                    "reason",
                    "must be \"leak\" or \"manual\"",
                ));
            }
        };
        self.rotate_now(&name, reason, request_id, None, trigger)
            .await
    }

    /// Rotates `name` now. Repeating the same request after it completed answers `unchanged`.
    ///
    /// # Errors
    /// `SecretNotFound`, `SecretNotManaged`, `SecretRevoked`, `RotationInProgress`, and the
    /// errors of the rotation itself.
    pub async fn rotate_now(
        &self,
        name: &str,
        reason: Reason,
        request_id: &str,
        next: Option<NextSettings<'_>>,
        trigger: Trigger,
    ) -> Result<ActionReply, VendError> {
        let desc = self
            .store
            .describe(name)
            .await?
            .ok_or_else(|| VendError::SecretNotFound {
                secret_name: name.to_owned(),
            })?;
        if desc.tag(tags::MANAGED_BY) != Some(MANAGED_BY) {
            return Err(VendError::NotManaged {
                secret_name: name.to_owned(),
            });
        }
        if desc.deleted || desc.tag(tags::REVOKED).is_some() {
            return Err(VendError::Revoked {
                secret_name: name.to_owned(),
            });
        }
        let (mut version, mut record) = self.current_record(name).await?;
        // A rotation an earlier generation left unfinished is finished first, before this
        // request's tags are written: its finishSecret clears the request tags it served.
        let earlier = rotation_token(name, record.generation);
        if desc
            .version_with(AWSPENDING)
            .is_some_and(|p| p != earlier && !desc.has(p, AWSCURRENT))
        {
            if !self.settle_unfinished(name, &earlier).await? {
                return Err(VendError::RotationInProgress {
                    secret_name: name.to_owned(),
                });
            }
            (version, record) = self.current_record(name).await?;
        }
        let digest = request_digest(request_id);
        let mut reply = ActionReply {
            action: Action::Rotate,
            status: ActionStatus::Unchanged,
            secret_arn: desc.arn.clone(),
            secret_name: name.to_owned(),
            key_hash: record.key_hash.clone(),
            generation: Some(record.generation),
            reason: Some(reason),
            revoked_keys: Vec::new(),
            request_id: request_id.to_owned(),
            trigger,
        };
        if record.rotation_request.as_deref() == Some(digest.as_str()) {
            return Ok(reply);
        }
        let mut intent = vec![
            (tags::ROTATION_REQUEST.to_owned(), digest),
            (tags::ROTATION_REASON.to_owned(), reason.as_str().to_owned()),
        ];
        if let Some(n) = next {
            intent.push((tags::NEXT.to_owned(), n.tag_value()));
        }
        self.store.tag(&desc.arn, &intent).await?;
        let start = self
            .start_rotation(name, &rotation_token(name, record.generation))
            .await?;
        info!(secret = %name, reason = reason.as_str(), start = ?start, from_version = %version, "rotation requested");
        match start {
            RotationStart::Started => reply.status = ActionStatus::RotationStarted,
            RotationStart::Completed | RotationStart::AlreadyCurrent => {
                let (_, now) = self.current_record(name).await?;
                reply.status = ActionStatus::Rotated;
                reply.key_hash = now.key_hash;
                reply.generation = Some(now.generation);
            }
            RotationStart::InProgress => {
                return Err(VendError::RotationInProgress {
                    secret_name: name.to_owned(),
                });
            }
        }
        Ok(reply)
    }

    /// The current version's id and record (must be an active record).
    pub(crate) async fn current_record(
        &self,
        name: &str,
    ) -> Result<(String, SecretRecord), VendError> {
        let v =
            self.store
                .get(name, AWSCURRENT)
                .await?
                .ok_or_else(|| VendError::SecretNotFound {
                    secret_name: name.to_owned(),
                })?;
        let record = crate::rotate::record_of(name, &v)?;
        match record.state {
            RecordState::Active => Ok((v.version_id, record)),
            RecordState::Pending => Err(VendError::InProgress {
                secret_name: name.to_owned(),
            }),
            RecordState::Revoked => Err(VendError::Revoked {
                secret_name: name.to_owned(),
            }),
        }
    }

    /// Handles a revoke request body.
    ///
    /// # Errors
    /// Validation errors name the field; see [`Deps::revoke`].
    pub async fn revoke_request(
        &self,
        v: &Value,
        request_id: &str,
        trigger: Trigger,
    ) -> Result<ActionReply, VendError> {
        check_fields(v, &["secret_name", "delete_secret", "idempotency_id"])?;
        let name = self.managed_name(v)?;
        let delete = match v.get("delete_secret") {
            None | Some(Value::Null) => self.cfg.revoke_deletes_secret,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(VendError::invalid("delete_secret", "must be true or false")),
        };
        self.revoke(&name, delete, request_id, trigger).await
    }

    /// Disables, deletes and confirms (404) every key the secret references (current,
    /// pending, awaiting retirement, and any unfinished attempt), then marks the secret
    /// revoked or deletes it. Safe to repeat.
    ///
    /// # Errors
    /// `SecretNotFound`, `SecretNotManaged`, and OpenRouter or store errors (the action can be
    /// repeated).
    pub async fn revoke(
        &self,
        name: &str,
        delete_secret: bool,
        request_id: &str,
        trigger: Trigger,
    ) -> Result<ActionReply, VendError> {
        let desc = self
            .store
            .describe(name)
            .await?
            .ok_or_else(|| VendError::SecretNotFound {
                secret_name: name.to_owned(),
            })?;
        if desc.tag(tags::MANAGED_BY) != Some(MANAGED_BY) {
            return Err(VendError::NotManaged {
                secret_name: name.to_owned(),
            });
        }
        let mut reply = ActionReply {
            action: Action::Revoke,
            status: ActionStatus::Revoked,
            secret_arn: desc.arn.clone(),
            secret_name: name.to_owned(),
            key_hash: None,
            generation: None,
            reason: None,
            revoked_keys: Vec::new(),
            request_id: request_id.to_owned(),
            trigger,
        };
        if desc.deleted {
            return Ok(reply);
        }
        let client = self.openrouter().await?;
        let mut hashes: Vec<String> = retiring(&desc.tags).into_iter().map(|(h, _)| h).collect();
        let current = self.store.get(&desc.arn, AWSCURRENT).await?;
        let pending = self.store.get(&desc.arn, AWSPENDING).await?;
        let mut current_record = None;
        for (stage, v) in [(AWSCURRENT, &current), (AWSPENDING, &pending)] {
            let Some(v) = v else { continue };
            let Some(Ok(r)) = SecretRecord::from_secret(&v.value) else {
                continue;
            };
            if let Some(h) = &r.key_hash {
                hashes.push(h.clone());
            }
            if r.state == RecordState::Pending {
                // An unfinished provision: its key (if any) carries the attempt's name.
                self.delete_named(&r.workspace_id, &r.openrouter_key_name)
                    .await?;
            }
            if stage == AWSCURRENT {
                current_record = Some(r);
            }
        }
        if let (Some(r), Some(p)) = (&current_record, desc.version_with(AWSPENDING)) {
            // An unfinished rotation: its successor carries the token's name.
            self.delete_named(&r.workspace_id, &successor_key_name(name, p))
                .await?;
        }
        hashes.sort();
        hashes.dedup();
        for hash in &hashes {
            let disable = KeyPatch {
                disabled: Some(true),
                ..KeyPatch::default()
            };
            match client.update_key(hash, &disable).await {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
            client.delete_key(hash).await?;
            match client.get_key(hash).await {
                Err(e) if e.kind() == ErrorKind::NotFound => reply.revoked_keys.push(hash.clone()),
                Ok(_) => {
                    warn!(key_hash = %hash, "key still listed after delete");
                    return Err(VendError::InProgress {
                        secret_name: name.to_owned(),
                    });
                }
                Err(e) => return Err(e.into()),
            }
        }
        if let Some(p) = desc.version_with(AWSPENDING)
            && !desc.has(p, AWSCURRENT)
        {
            self.store
                .move_stage(&desc.arn, AWSPENDING, Some(p), None)
                .await?;
        }
        if delete_secret {
            self.store
                .delete_after(&desc.arn, false, self.cfg.recovery_window_days)
                .await?;
        } else {
            if let (Some(v), Some(mut r)) = (&current, current_record) {
                if r.state != RecordState::Revoked {
                    r.state = RecordState::Revoked;
                    r.api_key = None;
                    r.lease_until = None;
                    r.claim = None;
                    // Its own label first, then AWSCURRENT with a compare-and-set.
                    let written = self
                        .store
                        .put(
                            &desc.arn,
                            &r.to_secret(),
                            &token(&v.version_id, "revoke"),
                            &["ORKV_REVOKE"],
                        )
                        .await?;
                    self.store
                        .move_stage(
                            &desc.arn,
                            AWSCURRENT,
                            Some(&v.version_id),
                            Some(&written.version_id),
                        )
                        .await?;
                }
                reply.generation = Some(r.generation);
            }
            self.store
                .tag(
                    &desc.arn,
                    &[(
                        tags::REVOKED.to_owned(),
                        orkv_openrouter::format_expires_at(self.clock.now()),
                    )],
                )
                .await?;
            let stale: Vec<String> = desc
                .tags
                .iter()
                .map(|(k, _)| k.clone())
                .filter(|k| {
                    k.starts_with(tags::RETIRE_PREFIX)
                        || [tags::NEXT, tags::ROTATION_REQUEST, tags::ROTATION_REASON]
                            .contains(&k.as_str())
                })
                .collect();
            self.store.untag(&desc.arn, &stale).await?;
        }
        info!(secret = %name, keys = reply.revoked_keys.len(), deleted_secret = delete_secret, "revoked");
        Ok(reply)
    }
}
