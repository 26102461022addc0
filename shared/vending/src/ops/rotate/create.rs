//! `createSecret`: mint the successor (same workspace and cap unless an on-demand request
//! changed them, fresh expiry from the recorded lifetime, generation + 1) under a key name
//! derived from the token, and store its record as `AWSPENDING` under the token. It never
//! deletes a key another attempt may still store; a lost write reply is retried with the same
//! token and read back ([`crate::ops::mint`]).

use orkv_store::{SecretDescription, StoreErrorKind};
use secrecy::{ExposeSecret, SecretString};
use tracing::{info, warn};

use crate::deps::Deps;
use crate::domain::names::KeyName;
use orkv_openrouter::Cap;

use crate::domain::lifetime::Lifetime;
use crate::domain::record::{RecordState, RecordTerms, SecretRecord};
use crate::domain::scope::check_key_terms;
use crate::domain::tags::{
    self, Next,
    stage::{AWSCURRENT, AWSPENDING},
};
use crate::error::VendError;
use crate::input::rotation::RotationEvent;
use crate::ops::mint::{self, Kept, Minted, create_request_within};

use super::StepOutcome;
use crate::ops::budget;
use crate::ops::guardrail;
use crate::ops::rotate;

pub(super) async fn create_step(
    deps: &Deps,
    desc: &SecretDescription,
    event: &RotationEvent,
) -> Result<(StepOutcome, SecretRecord), VendError> {
    if let Some(existing) = rotate::pending_value(deps, desc, &event.token).await? {
        return Ok((StepOutcome::AlreadyDone, existing));
    }
    let (mut record, parent_hash) = successor_record(deps, desc, event).await?;
    // A guardrail the policy names is checked before any side effect.
    let guardrail = guardrail::guardrail_for(deps, &desc.name, &record.workspace_id).await?;
    // The budget first: the outgoing key is held to its share before the successor exists.
    // A suspected leak's key keeps only its spend, so the successor gets all the room.
    let leaked = tags::Reason::is_leak(desc.tag(tags::ROTATION_REASON));
    let allowance =
        budget::hold_for_successor(deps, desc, parent_hash.as_deref(), record.cap(), leaked)
            .await?;
    // Keys an earlier or concurrent attempt with this token minted are not deleted here:
    // one of them may be about to be stored (a Lambda retry overlapping a slow first
    // run). `finishSecret` deletes every key of this name but the promoted one, once no
    // other value can be stored under the token, and the sweep deletes any left over.
    // The successor carries the workspace's guardrail before it is stored.
    let request = create_request_within(&record, allowance);
    let created = match mint::mint_key(deps, &desc.name, &request, guardrail.as_deref()).await? {
        Minted::Ready(c) => c,
        Minted::OutcomeUnknown(e) => {
            // Whatever it minted carries this token's name and is never stored:
            // `finishSecret` (or the sweep) deletes it.
            warn!(error = %e, "successor creation outcome unknown; finishSecret cleans up");
            return Err(e.into());
        }
        Minted::Refused(e) | Minted::Unguarded(e) => return Err(e),
    };
    record.api_key = Some(SecretString::from(created.key.expose_secret().to_owned()));
    record.key_hash = Some(created.data.hash.clone());
    if let Some(at) = created.data.expires_at {
        record.expires_at = at;
    }
    store_successor(deps, desc, event, record).await
}

/// What the successor is minted with.
#[derive(Debug, Clone, PartialEq)]
struct Settings {
    workspace_id: String,
    lifetime: Lifetime,
    cap: Cap,
    rotate_before_seconds: u64,
}

/// The successor's settings: the current record's, or those a provision that changed a
/// fixed field asked for (`orkv:next`), with a cap change that arrived while the rotation
/// was starting (`orkv:deferred-change`) on top.
fn successor_settings(desc: &SecretDescription, parent: &SecretRecord) -> Settings {
    let mut s = match desc.tag(tags::NEXT).and_then(Next::from_tag_value) {
        Some(n) => Settings {
            workspace_id: n.workspace_id,
            lifetime: n.lifetime,
            cap: n.cap,
            rotate_before_seconds: n.rotate_before_seconds,
        },
        None => Settings {
            workspace_id: parent.workspace_id.clone(),
            lifetime: parent.lifetime,
            cap: parent.cap(),
            rotate_before_seconds: parent.rotate_before_seconds,
        },
    };
    if let Some(change) = desc
        .tag(tags::DEFERRED)
        .and_then(tags::Deferred::from_tag_value)
    {
        s.cap = change.cap;
        s.rotate_before_seconds = change.rotate_before_seconds;
    }
    s
}

/// The successor's record (without its key yet), derived from the current record and the
/// settings an on-demand request asked for; and the current key's hash.
async fn successor_record(
    deps: &Deps,
    desc: &SecretDescription,
    event: &RotationEvent,
) -> Result<(SecretRecord, Option<String>), VendError> {
    let current = deps
        .store
        .get(&desc.arn, AWSCURRENT)
        .await?
        .ok_or_else(|| VendError::SecretNotFound {
            secret_name: desc.name.clone(),
        })?;
    let parent = SecretRecord::read(&desc.name, &current.value)?;
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
    let Settings {
        workspace_id,
        lifetime,
        cap,
        rotate_before_seconds,
    } = successor_settings(desc, &parent);
    // The settings may come from tags, which others can write: the key is minted only
    // within the policy of the tenant whose prefix the secret is under.
    check_key_terms(
        &deps.cfg.policy,
        deps.policy_workspaces().await?,
        &desc.name,
        parent.tenant.as_deref(),
        &workspace_id,
        cap.limit,
    )?;
    let workspace_slug = if workspace_id == parent.workspace_id {
        parent.workspace_slug.clone()
    } else {
        deps.workspaces()
            .await?
            .iter()
            .find(|w| w.id == workspace_id)
            .map(|w| w.slug.clone())
            .ok_or_else(|| VendError::UnknownWorkspace {
                workspace: workspace_id.clone(),
            })?
    };
    let created_at = deps.clock.now();
    let terms = RecordTerms {
        key_name: parent.key_name.clone(),
        openrouter_key_name: KeyName::successor(&desc.name, &event.token),
        workspace_id,
        workspace_slug,
        cap,
        lifetime,
        expires_at: lifetime.expiry_from(created_at),
        rotate_before_seconds,
        created_at,
        generation: parent.generation + 1,
        // A secret made before tenants gets its prefix owner's name at its first rotation.
        tenant: parent.tenant.clone().or_else(|| {
            deps.cfg
                .policy
                .owner_of_name(&desc.name)
                .and_then(|t| t.name.clone())
        }),
        request_id: format!("rotation:{}", event.token),
    };
    let record = SecretRecord {
        rotation_request: desc.tag(tags::ROTATION_REQUEST).map(str::to_owned),
        parent_version: Some(current.version_id.clone()),
        adopted_key_hash: parent.adopted_key_hash.clone(),
        ..SecretRecord::new(RecordState::Active, terms)
    };
    Ok((record, parent.key_hash.clone()))
}

/// Stores the minted successor as `AWSPENDING` under the token.
async fn store_successor(
    deps: &Deps,
    desc: &SecretDescription,
    event: &RotationEvent,
    record: SecretRecord,
) -> Result<(StepOutcome, SecretRecord), VendError> {
    let hash = record.key_hash.clone().unwrap_or_default();
    let value = record.to_secret();
    let kept = mint::keep_minted(
        deps,
        &record,
        || {
            deps.store.put_rotation(
                &desc.arn,
                &value,
                &event.token,
                &[AWSPENDING],
                event.rotation_token.as_deref(),
            )
        },
        || {
            deps.store
                .get_version(&desc.arn, Some(&event.token), Some(AWSPENDING))
        },
    )
    .await;
    match kept {
        Kept::Stored(_) => {
            info!(key_hash = %hash, generation = record.generation, "successor minted and stored as AWSPENDING");
            Ok((StepOutcome::Done, record))
        }
        Kept::Unknown { error, found } => {
            let stored = match found {
                Ok(Some(v)) if !v.value.expose_secret().is_empty() => {
                    SecretRecord::read(&desc.name, &v.value).ok()
                }
                _ => None,
            };
            match stored {
                Some(s) if s.key_hash.as_deref() == Some(hash.as_str()) => {
                    info!(key_hash = %hash, generation = record.generation, "successor stored as AWSPENDING (reply was lost)");
                    Ok((StepOutcome::Done, record))
                }
                // Another attempt's key is stored under the token. This key is not
                // deleted here: one of this attempt's writes may still be on its way.
                // finishSecret deletes it once the token's value is final, or the sweep.
                Some(s) => Ok((StepOutcome::AlreadyDone, s)),
                // Unknown whether it landed: keep the key (deleting a stored key would
                // strand the rotation); the next attempt reads what is stored.
                None => Err(error.into()),
            }
        }
        Kept::Refused(e) if e.kind() == StoreErrorKind::VersionConflict => {
            // A concurrent attempt stored its own successor first.
            let existing = rotate::pending_value(deps, desc, &event.token)
                .await?
                .ok_or(VendError::Store(e))?;
            Ok((StepOutcome::AlreadyDone, existing))
        }
        Kept::Refused(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use orkv_openrouter::LimitReset;
    use time::macros::datetime;

    use super::*;
    use crate::domain::tags::{Deferred, NextSettings};

    const CAP: Cap = crate::domain::budget::TEST_CAP;

    fn parent() -> SecretRecord {
        let created = datetime!(2026-12-01 00:00 UTC);
        SecretRecord::new(
            RecordState::Active,
            RecordTerms {
                key_name: "payments".into(),
                openrouter_key_name: "orkv:s:1".into(),
                workspace_id: "ws-1".into(),
                workspace_slug: "checkout".into(),
                cap: CAP,
                lifetime: Lifetime::TtlSeconds(86_400 * 30),
                expires_at: created + time::Duration::days(30),
                rotate_before_seconds: 86_400,
                created_at: created,
                generation: 4,
                tenant: None,
                request_id: "r".into(),
            },
        )
    }

    fn secret(tag_list: &[(&str, String)]) -> SecretDescription {
        SecretDescription {
            arn: "arn".into(),
            name: "s".into(),
            rotation_enabled: true,
            rotation_lambda_arn: None,
            kms_key_id: None,
            deleted: false,
            tags: tag_list
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
            versions: std::collections::BTreeMap::new(),
        }
    }

    #[test]
    fn a_routine_successor_keeps_the_current_records_settings() {
        let p = parent();
        let s = successor_settings(&secret(&[]), &p);
        assert_eq!(
            s,
            Settings {
                workspace_id: "ws-1".into(),
                lifetime: p.lifetime,
                cap: CAP,
                rotate_before_seconds: 86_400,
            }
        );
    }

    #[test]
    fn a_changed_fixed_field_mints_the_successor_with_the_next_settings() {
        let next = NextSettings {
            workspace_id: "ws-2",
            lifetime: Lifetime::TtlSeconds(3_600 * 48),
            cap: Cap { limit: 3.0, ..CAP },
            rotate_before_seconds: 3_600,
        };
        let s = successor_settings(&secret(&[(tags::NEXT, next.tag_value())]), &parent());
        assert_eq!(s.workspace_id, "ws-2");
        assert_eq!(s.lifetime, Lifetime::TtlSeconds(3_600 * 48));
        assert!((s.cap.limit - 3.0).abs() < 1e-9);
        assert_eq!(s.rotate_before_seconds, 3_600);
    }

    #[test]
    fn a_cap_change_deferred_into_the_rotation_wins_over_both() {
        let deferred = Deferred {
            cap: Cap {
                limit: 25.0,
                limit_reset: Some(LimitReset::Weekly),
                include_byok_in_limit: true,
            },
            rotate_before_seconds: 7_200,
        };
        let next = NextSettings {
            workspace_id: "ws-2",
            lifetime: Lifetime::TtlSeconds(3_600 * 48),
            cap: Cap { limit: 3.0, ..CAP },
            rotate_before_seconds: 3_600,
        };
        let s = successor_settings(
            &secret(&[
                (tags::NEXT, next.tag_value()),
                (tags::DEFERRED, deferred.tag_value()),
            ]),
            &parent(),
        );
        assert_eq!(
            s.workspace_id, "ws-2",
            "the workspace still comes from next"
        );
        assert_eq!(s.cap, deferred.cap);
        assert_eq!(s.rotate_before_seconds, 7_200);
    }

    #[test]
    fn an_unreadable_next_tag_is_ignored_not_half_applied() {
        let s = successor_settings(&secret(&[(tags::NEXT, "workspace=ws-9".into())]), &parent());
        assert_eq!(s.workspace_id, "ws-1");
        assert_eq!(s.cap, CAP);
    }
}
