//! Revoke: disable, delete and confirm (404) every key the secret references (current,
//! pending, awaiting retirement, and any unfinished attempt), then mark the secret revoked or
//! delete it. Safe to repeat.

use orkv_store::{SecretDescription, SecretVersion};
use tracing::{info, warn};

use crate::deps::Deps;
use crate::domain::names::{KeyName, token};
use crate::domain::record::{RecordState, SecretRecord};
use crate::domain::tags::{
    self, retiring,
    stage::{self, AWSCURRENT, AWSPENDING},
};
use crate::error::VendError;
use crate::input::action::RevokeRequest;
use crate::input::invocation::{Action, Trigger};
use crate::ops::retire::Retired;

use super::{ActionReply, ActionStatus};

impl Deps {
    /// Serves a validated revoke request.
    ///
    /// # Errors
    /// As [`Deps::revoke`].
    pub async fn revoke_request(
        &self,
        req: &RevokeRequest,
        request_id: &str,
        trigger: Trigger,
    ) -> Result<ActionReply, VendError> {
        let delete = req.delete_secret.unwrap_or(self.cfg.revoke_deletes_secret);
        self.revoke(&req.secret_name, delete, request_id, trigger)
            .await
    }

    /// Revokes every key of `name`, then deletes the secret or marks it revoked.
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
        let desc = self.describe_managed(name).await?;
        let mut reply = ActionReply::new(
            Action::Revoke,
            ActionStatus::Revoked,
            &desc.arn,
            name,
            request_id,
            trigger,
        );
        if desc.deleted {
            return Ok(reply);
        }
        self.openrouter().await?;
        let current = self.store.get(&desc.arn, AWSCURRENT).await?;
        let pending = self.store.get(&desc.arn, AWSPENDING).await?;
        let (hashes, current_record) = self
            .referenced_keys(&desc, current.as_ref(), pending.as_ref())
            .await?;
        for hash in &hashes {
            match self.retire_key(hash).await? {
                Retired::Gone { .. } => reply.revoked_keys.push(hash.clone()),
                Retired::StillListed => {
                    warn!(key_hash = %hash, "key still listed after delete");
                    return Err(VendError::InProgress {
                        secret_name: name.to_owned(),
                    });
                }
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
            reply.generation = self
                .mark_revoked(&desc, current.as_ref(), current_record)
                .await?;
        }
        info!(secret = %name, keys = reply.revoked_keys.len(), deleted_secret = delete_secret, "revoked");
        Ok(reply)
    }

    /// Every key hash the secret references (sorted, once each), and the current record.
    /// Keys of unfinished attempts, which no record names by hash, are deleted by name here.
    async fn referenced_keys(
        &self,
        desc: &SecretDescription,
        current: Option<&SecretVersion>,
        pending: Option<&SecretVersion>,
    ) -> Result<(Vec<String>, Option<SecretRecord>), VendError> {
        let mut hashes: Vec<String> = retiring(&desc.tags).into_iter().map(|(h, _)| h).collect();
        let mut current_record = None;
        for (stage, v) in [(AWSCURRENT, current), (AWSPENDING, pending)] {
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
            self.delete_named(&r.workspace_id, &KeyName::successor(&desc.name, p))
                .await?;
        }
        hashes.sort();
        hashes.dedup();
        Ok((hashes, current_record))
    }

    /// Writes the revoked record (no plaintext) and the revoked tag, and clears the tags the
    /// sweep would act on. Answers the record's generation.
    async fn mark_revoked(
        &self,
        desc: &SecretDescription,
        current: Option<&SecretVersion>,
        record: Option<SecretRecord>,
    ) -> Result<Option<u64>, VendError> {
        let mut generation = None;
        if let (Some(v), Some(mut r)) = (current, record) {
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
                        &[stage::REVOKE],
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
            generation = Some(r.generation);
        }
        self.store
            .tag(
                &desc.arn,
                &[(tags::REVOKED.to_owned(), tags::time_value(self.clock.now()))],
            )
            .await?;
        let stale: Vec<String> = desc
            .tags
            .iter()
            .map(|(k, _)| k.clone())
            .filter(|k| {
                k.starts_with(tags::RETIRE_PREFIX) || tags::REQUEST_TAGS.contains(&k.as_str())
            })
            .collect();
        self.store.untag(&desc.arn, &stale).await?;
        Ok(generation)
    }
}
