//! On-demand actions from a pipeline or an event: rotate now ([`rotate_now`]: a changed fixed
//! field, or a suspected leak, where the old key is disabled at once instead of after the
//! grace period) and revoke ([`revoke`]: disable, delete and confirm every key the secret
//! references, then mark the secret revoked or delete it).

mod adopt;
pub mod adopt_bulk;
mod adoptable;
mod revoke;
mod rotate_now;
mod unfinished;

pub use adopt::adopt_request;
pub use adopt_bulk::adopt_bulk;
pub use revoke::{revoke, revoke_request};
pub use rotate_now::{rotate_now, rotate_request};

use serde::Serialize;

use crate::deps::Deps;
use crate::domain::policy::Permission;
use crate::domain::record::KeyFacts;
use crate::domain::scope::Scope;
use crate::domain::tags::{self, Reason};
use crate::error::VendError;
use crate::input::invocation::{Action, Trigger};
use crate::ops::announce::{Origin, ResultDetail};
use crate::ops::read;

/// The scope check of an on-demand action, before any side effect: the action is the
/// tenant's, the name is under its prefix (from the name alone), and in the tenant form
/// the secret's `orkv:tenant` tag is the caller's (one `DescribeSecret`).
async fn check_action_scope(
    deps: &Deps,
    scope: &Scope<'_>,
    name: &str,
    action: Permission,
) -> Result<(), VendError> {
    scope.require(action)?;
    scope.check_name(name)?;
    if scope.tenant_name().is_some() {
        let desc = read::describe_managed(deps, name).await?;
        scope.check_owner(desc.tag(tags::TENANT))?;
    }
    Ok(())
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
    /// The key was taken over: its secret now holds a managed record with the same key.
    Adopted,
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
    /// An earlier request had already done this (the reply's claim still read back).
    #[serde(skip)]
    pub repeat: bool,
    /// The key's facts for the result event: after a rotation the successor's, else the
    /// record the action read.
    #[serde(skip)]
    pub facts: Option<KeyFacts>,
}

impl ActionReply {
    /// The result event of this reply, for `tenant`.
    pub(crate) fn announcement(&self, tenant: Option<&str>) -> ResultDetail {
        let outcome = serde_json::to_value(self.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let mut d = ResultDetail::new(Origin::Request(self.action), outcome).for_request(
            Some(&self.request_id),
            self.trigger,
            tenant,
        );
        d.repeat = self.repeat || self.status == ActionStatus::Unchanged;
        d.secret_name = Some(self.secret_name.clone());
        d.secret_arn = Some(self.secret_arn.clone());
        d.key_hash.clone_from(&self.key_hash);
        d.generation = self.generation;
        d.reason = self.reason.map(|r| r.as_str().to_owned());
        d.revoked_keys.clone_from(&self.revoked_keys);
        match &self.facts {
            Some(f) => d.with_facts(f),
            None => d,
        }
    }

    fn new(
        action: Action,
        status: ActionStatus,
        arn: &str,
        name: &str,
        request_id: &str,
        trigger: Trigger,
    ) -> Self {
        Self {
            action,
            status,
            secret_arn: arn.to_owned(),
            secret_name: name.to_owned(),
            key_hash: None,
            generation: None,
            reason: None,
            revoked_keys: Vec::new(),
            request_id: request_id.to_owned(),
            trigger,
            repeat: false,
            facts: None,
        }
    }
}
