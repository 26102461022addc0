//! The rotation function: Secrets Manager's four-step protocol for the managed secrets.
//!
//! - checks first, in the order of AWS's own templates: rotation enabled, the secret is
//!   managed by this product, the token is a version, already `AWSCURRENT` → done, must be
//!   `AWSPENDING`;
//! - `createSecret` ([`create`]) mints the successor under a key name derived from the token
//!   and stores it as `AWSPENDING` under the token;
//! - `setSecret` has nothing to do (OpenRouter minted the key);
//! - `testSecret` ([`test`]) checks the pending key with the key itself and with the
//!   management key;
//! - `finishSecret` ([`finish`]) schedules the superseded key's retirement, moves
//!   `AWSCURRENT`, removes `AWSPENDING` and cleans up.
//!
//! Every step is idempotent per token.

mod create;
mod finish;
mod test;

use std::time::Instant;

use orkv_store::SecretDescription;
use secrecy::ExposeSecret;
use serde::Serialize;
use tracing::{info, instrument};

use crate::deps::Deps;
use crate::domain::names::KeyName;
use crate::domain::record::{MANAGED_BY, SecretRecord};
use crate::domain::tags::{
    self,
    stage::{AWSCURRENT, AWSPENDING},
};
use crate::error::VendError;
use crate::input::rotation::{RotationEvent, Step};
use crate::ops::announce::{self, Origin, ResultDetail};
use crate::ops::read;

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

/// A step's reply, with what its announcement needs.
struct StepDone {
    reply: StepReply,
    /// `finishSecret`: the record made current.
    finished: Option<SecretRecord>,
    /// The successor was already current when this invocation began.
    repeat: bool,
    reason: Option<String>,
}

#[derive(Debug)]
enum Checked {
    Current,
    Pending,
    /// The rotation's successor is current in a merged version (see [`run_step`]).
    Merged(Box<SecretRecord>),
}

/// Handles one raw rotation event.
///
/// # Errors
/// A [`VendError`] naming the failure; a failed check changes nothing.
pub async fn rotation_step(
    deps: &Deps,
    payload: &serde_json::Value,
    deadline: Instant,
) -> Result<StepReply, VendError> {
    let event = match RotationEvent::parse(payload) {
        Ok(event) => event,
        Err(e) => {
            let mut failure = ResultDetail::failure(Origin::RotationStep, &e);
            failure.trigger = Some("secrets_manager".to_owned());
            failure.request_id = payload
                .get("ClientRequestToken")
                .and_then(serde_json::Value::as_str)
                .filter(|t| t.len() <= 256)
                .map(str::to_owned);
            announce::announce(deps, failure).await;
            return Err(e);
        }
    };
    run_step(deps, &event, deadline).await
}

/// Runs one validated step, and announces its outcome on the event bus when one is
/// configured: a finished rotation as `OpenRouter Key Rotated` (a repeat when this
/// invocation found the successor already current), a failed step as a failure.
///
/// # Errors
/// A [`VendError`] naming the failure.
pub async fn run_step(
    deps: &Deps,
    event: &RotationEvent,
    deadline: Instant,
) -> Result<StepReply, VendError> {
    let (result, known) = match read::describe_existing(deps, &event.secret_id).await {
        Ok(desc) => (
            step(deps, &desc, event, deadline).await,
            Identity::described(&desc),
        ),
        Err(e) => (Err(e), Identity::from_secret_id(&event.secret_id)),
    };
    let mut detail = match &result {
        Ok(done) => match &done.finished {
            Some(record) => {
                ResultDetail::new(Origin::RotationStep, "rotated").with_facts(&record.facts())
            }
            None => return result.map(|d| d.reply),
        },
        Err(e) => ResultDetail::failure(Origin::RotationStep, e),
    };
    detail.request_id = Some(event.token.clone());
    detail.trigger = Some("secrets_manager".to_owned());
    detail.step = Some(event.step.as_str());
    // Success or failure, the event names the secret and its tenant, so a subscriber
    // filtering on its tenant sees its own rotation failures.
    detail.secret_arn = known.arn;
    detail.secret_name = known.name;
    if detail.tenant.is_none() {
        detail.tenant = known.tenant;
    }
    if let Ok(done) = &result {
        detail.repeat = done.repeat;
        detail.reason.clone_from(&done.reason);
    }
    announce::announce(deps, detail).await;
    result.map(|d| d.reply)
}

/// Which secret a step's event is about, as far as it is known: from the secret's description,
/// the tenant only for a managed secret (a foreign secret's tags are not repeated); from the
/// `SecretId` alone (Secrets Manager sends the ARN) when it could not be described.
#[derive(Debug, Default, PartialEq, Eq)]
struct Identity {
    name: Option<String>,
    arn: Option<String>,
    tenant: Option<String>,
}

impl Identity {
    fn described(desc: &SecretDescription) -> Self {
        let managed = desc.tag(tags::MANAGED_BY) == Some(MANAGED_BY);
        Self {
            name: Some(desc.name.clone()),
            arn: Some(desc.arn.clone()),
            tenant: managed
                .then(|| desc.tag(tags::TENANT).map(str::to_owned))
                .flatten(),
        }
    }

    /// A secret's ARN is `arn:<partition>:secretsmanager:<region>:<account>:secret:<name>-`
    /// followed by six random characters (Secrets Manager user guide, "Secrets Manager ARN").
    fn from_secret_id(id: &str) -> Self {
        let Some(rest) = id
            .strip_prefix("arn:")
            .and_then(|r| r.split_once(":secret:").map(|(_, n)| n))
        else {
            return Self {
                name: Some(id.to_owned()),
                ..Self::default()
            };
        };
        let name = rest
            .rsplit_once('-')
            .filter(|(_, suffix)| suffix.len() == 6)
            .map(|(name, _)| name.to_owned());
        Self {
            name,
            arn: Some(id.to_owned()),
            tenant: None,
        }
    }
}

/// One step on the described secret, and for a finished rotation the record made current.
#[instrument(skip_all, fields(step = event.step.as_str(), secret = %event.secret_id, token = %event.token))]
async fn step(
    deps: &Deps,
    desc: &SecretDescription,
    event: &RotationEvent,
    _deadline: Instant,
) -> Result<StepDone, VendError> {
    let reason = desc.tag(tags::ROTATION_REASON).map(str::to_owned);
    let checked = match check(desc, &event.token) {
        Err(e @ (VendError::NotPending { .. } | VendError::UnknownToken { .. }))
            if event.step == Step::FinishSecret =>
        {
            // A retried finishSecret whose first run promoted the successor, removed
            // AWSPENDING and wrote the merged record (the token's version has no label
            // left) before it died: the merged record carries the successor's key name.
            let (_, current) = read::current_record(deps, &desc.name).await?;
            if current.openrouter_key_name != KeyName::successor(&desc.name, &event.token) {
                return Err(e);
            }
            Checked::Merged(Box::new(current))
        }
        other => other?,
    };
    let mut reply = StepReply {
        step: event.step,
        secret_arn: desc.arn.clone(),
        token: event.token.clone(),
        outcome: StepOutcome::AlreadyCurrent,
        key_hash: None,
        generation: None,
    };
    let mut finished = None;
    let mut repeat = false;
    match (event.step, checked) {
        (_, Checked::Merged(merged)) => {
            let done = finish::finish_tail(deps, desc, &event.token, &merged, None).await?;
            reply.key_hash.clone_from(&done.key_hash);
            reply.generation = Some(done.generation);
            (finished, repeat) = (Some(done), true);
        }
        (Step::FinishSecret, Checked::Current) => {
            let pending = read_version(deps, desc, &event.token).await?;
            let done = finish::finish_tail(deps, desc, &event.token, &pending, None).await?;
            reply.key_hash.clone_from(&done.key_hash);
            reply.generation = Some(done.generation);
            (finished, repeat) = (Some(done), true);
        }
        (_, Checked::Current) => {}
        (Step::CreateSecret, Checked::Pending) => {
            let (outcome, record) = create::create_step(deps, desc, event).await?;
            reply.outcome = outcome;
            reply.key_hash = record.key_hash;
            reply.generation = Some(record.generation);
        }
        (Step::SetSecret, Checked::Pending) => reply.outcome = StepOutcome::Done,
        (Step::TestSecret, Checked::Pending) => {
            let record = test::test_step(deps, desc, &event.token).await?;
            reply.outcome = StepOutcome::Done;
            reply.key_hash = record.key_hash;
            reply.generation = Some(record.generation);
        }
        (Step::FinishSecret, Checked::Pending) => {
            let record = finish::finish_step(deps, desc, &event.token).await?;
            reply.outcome = StepOutcome::Done;
            reply.key_hash.clone_from(&record.key_hash);
            reply.generation = Some(record.generation);
            finished = Some(record);
        }
    }
    info!(outcome = ?reply.outcome, key_hash = reply.key_hash.as_deref().unwrap_or(""), "rotation step");
    Ok(StepDone {
        reply,
        finished,
        repeat,
        reason,
    })
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

pub(super) async fn read_version(
    deps: &Deps,
    desc: &SecretDescription,
    version_id: &str,
) -> Result<SecretRecord, VendError> {
    let version = deps
        .store
        .get_version(&desc.arn, Some(version_id), None)
        .await?
        .ok_or_else(|| VendError::RotationTestFailed {
            secret_name: desc.name.clone(),
            check: format!("version {version_id} holds no value"),
        })?;
    SecretRecord::read(&desc.name, &version.value)
}

pub(super) async fn pending_value(
    deps: &Deps,
    desc: &SecretDescription,
    token: &str,
) -> Result<Option<SecretRecord>, VendError> {
    match deps
        .store
        .get_version(&desc.arn, Some(token), Some(AWSPENDING))
        .await?
    {
        Some(v) if !v.value.expose_secret().is_empty() => {
            Ok(Some(SecretRecord::read(&desc.name, &v.value)?))
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// A managed secret with rotation on, whose versions carry `labels`.
    fn secret(labels: &[(&str, &[&str])]) -> SecretDescription {
        SecretDescription {
            arn: "arn:aws:secretsmanager:us-east-1:1:secret:s".into(),
            name: "s".into(),
            rotation_enabled: true,
            rotation_lambda_arn: None,
            kms_key_id: None,
            deleted: false,
            tags: vec![(tags::MANAGED_BY.into(), MANAGED_BY.into())],
            versions: labels
                .iter()
                .map(|(v, l)| ((*v).to_owned(), l.iter().map(|s| (*s).to_owned()).collect()))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    #[test]
    fn a_token_labelled_pending_is_a_rotation_to_run() {
        let d = secret(&[("old", &[AWSCURRENT]), ("tok", &[AWSPENDING])]);
        assert!(matches!(check(&d, "tok"), Ok(Checked::Pending)));
    }

    #[test]
    fn a_token_already_current_is_a_rotation_that_happened() {
        let d = secret(&[("tok", &[AWSCURRENT, "AWSPREVIOUS"])]);
        assert!(matches!(check(&d, "tok"), Ok(Checked::Current)));
    }

    #[test]
    fn a_secret_with_rotation_off_refuses_every_step() {
        let mut d = secret(&[("tok", &[AWSPENDING])]);
        d.rotation_enabled = false;
        assert_eq!(
            check(&d, "tok").err().map(|e| e.kind()),
            Some("RotationDisabled")
        );
    }

    #[test]
    fn a_secret_the_product_does_not_manage_is_refused() {
        let mut d = secret(&[("tok", &[AWSPENDING])]);
        d.tags.clear();
        assert_eq!(
            check(&d, "tok").err().map(|e| e.kind()),
            Some("SecretNotManaged")
        );
    }

    #[test]
    fn a_token_naming_no_version_is_refused() {
        let d = secret(&[("old", &[AWSCURRENT])]);
        let e = check(&d, "tok").err();
        assert!(matches!(e, Some(VendError::UnknownToken { .. })), "{e:?}");
    }

    #[test]
    fn a_version_neither_pending_nor_current_is_refused() {
        let d = secret(&[("old", &[AWSCURRENT]), ("tok", &["AWSPREVIOUS"])]);
        let e = check(&d, "tok").err();
        assert!(matches!(e, Some(VendError::NotPending { .. })), "{e:?}");
    }

    #[test]
    fn a_secret_id_names_the_secret_without_the_six_random_characters() {
        let id = Identity::from_secret_id(
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:openrouter/checkout/pay-api-AbC123",
        );
        assert_eq!(id.name.as_deref(), Some("openrouter/checkout/pay-api"));
        assert_eq!(
            id.arn.as_deref(),
            Some(
                "arn:aws:secretsmanager:eu-west-1:123456789012:secret:openrouter/checkout/pay-api-AbC123"
            )
        );
        assert_eq!(id.tenant, None);
        let by_name = Identity::from_secret_id("openrouter/checkout/pay");
        assert_eq!(
            (by_name.name.as_deref(), by_name.arn),
            (Some("openrouter/checkout/pay"), None)
        );
    }
}
