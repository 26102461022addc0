//! On-demand actions from a pipeline or an event: rotate now ([`rotate`]: a changed fixed
//! field, or a suspected leak, where the old key is disabled at once instead of after the
//! grace period) and revoke ([`revoke`]: disable, delete and confirm every key the secret
//! references, then mark the secret revoked or delete it).

mod revoke;
mod rotate;
mod unfinished;

use serde::Serialize;

use crate::domain::tags::Reason;
use crate::input::invocation::{Action, Trigger};

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

impl ActionReply {
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
        }
    }
}
