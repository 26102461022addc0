//! Result events: every outcome of provision, update, rotate now (manual or leak), revoke and
//! `finishSecret`, and every refusal or failure of them, put once on the configured bus
//! (`ORKV_EVENT_BUS`). The detail names the request, the secret and the key by its hash, never
//! a plaintext. A put that fails after its retries is logged and never fails the operation it
//! announces. Delivery is at least once: a repeated request (or a retried step) announces
//! again with the same `request_id` and `repeat: true`, so consumers deduplicate on it.

use std::time::Duration;

use serde::Serialize;
use tracing::{debug, warn};

use serde_json::Value;

use crate::deps::Deps;
use crate::domain::names::valid_secret_name;
use crate::domain::record::KeyFacts;
use crate::domain::scope::Caller;
use crate::error::VendError;
use crate::input::invocation::{Action, Invocation, Trigger};

/// The action a payload names, before it is parsed (for the failure event of one that does
/// not parse).
fn action_named(payload: &Value) -> Origin {
    let named = match payload.get("detail-type").and_then(Value::as_str) {
        Some(t) => Action::from_detail_type(t),
        None => match payload.get("action").and_then(Value::as_str) {
            None => Some(Action::Provision),
            Some(a) => Action::from_name(a),
        },
    };
    named.map_or(Origin::Unrecognised, Origin::Request)
}

/// What an event speaks for: a request of the provision function, a rotation step Secrets
/// Manager invoked, or a payload whose action could not be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Request(Action),
    RotationStep,
    Unrecognised,
}

impl Origin {
    /// The event's `action` field.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Request(a) => a.name(),
            Self::RotationStep => "rotation",
            Self::Unrecognised => "unknown",
        }
    }

    /// Whether its outcomes are put on the bus.
    #[must_use]
    pub const fn announced(self) -> bool {
        match self {
            Self::Request(a) => a.announced(),
            Self::RotationStep | Self::Unrecognised => true,
        }
    }
}

impl Serialize for Origin {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// The failure event of a request, from what its raw payload shows: its action, its
/// idempotency id (or event id) and the secret it names, where that is a valid secret name.
#[must_use]
pub fn failure_template(payload: &Value) -> ResultDetail {
    let envelope = payload.get("detail-type").is_some() || payload.get("detail").is_some();
    let request = if envelope {
        payload.get("detail").unwrap_or(&Value::Null)
    } else {
        payload
    };
    let text = |v: &Value, field: &str| v.get(field).and_then(Value::as_str).map(str::to_owned);
    let mut d = ResultDetail::new(action_named(payload), "failed");
    d.request_id =
        text(request, "idempotency_id").or_else(|| envelope.then(|| text(payload, "id")).flatten());
    d.request_id = d.request_id.filter(|id| id.len() <= 256);
    d.trigger = Some(if envelope { "event_bridge" } else { "direct" }.to_owned());
    d.secret_name = text(request, "secret_name").filter(|n| valid_secret_name(n));
    d
}

/// The `detail-type` of each outcome.
pub mod detail_type {
    /// A key was minted into its secret (`created`), or the request was already served.
    pub const PROVISIONED: &str = "OpenRouter Key Provisioned";
    /// A key's cap or rotation window changed in place (`updated`).
    pub const UPDATED: &str = "OpenRouter Key Updated";
    /// A rotation was asked for (rotate now, leak, or a changed fixed field) and began; its
    /// completion is announced by [`ROTATED`].
    pub const ROTATION_ACCEPTED: &str = "OpenRouter Key Rotation Accepted";
    /// `finishSecret` made the successor current (every rotation, whoever started it).
    pub const ROTATED: &str = "OpenRouter Key Rotated";
    /// The secret's keys were revoked.
    pub const REVOKED: &str = "OpenRouter Key Revoked";
    /// A key already in a secret was taken over (or the request was already served).
    pub const ADOPTED: &str = "OpenRouter Key Adopted";
    /// A request was refused, or an operation or rotation step failed.
    pub const FAILED: &str = "OpenRouter Key Request Failed";
}

/// The schema version of [`ResultDetail`].
pub const DETAIL_VERSION: u32 = 1;
/// The longest an announcement may delay its reply (the put's own retries are within it).
pub const PUT_BUDGET: Duration = Duration::from_secs(5);

/// A cap, as the event tells it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CapDetail {
    pub limit: f64,
    pub limit_reset: Option<orkv_openrouter::LimitReset>,
    pub include_byok_in_limit: bool,
}

/// A failure, as the event tells it: the error's stable kind and its message (which never
/// holds a plaintext, and for a refusal reveals nothing the caller does not own).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorDetail {
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
}

/// The detail of every result event. Every field is always present (`null` when unknown), so
/// a consumer's schema never changes with the outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResultDetail {
    pub version: u32,
    /// `provision`, `rotate`, `revoke`, `adopt`, `rotation` (a Secrets Manager step) or
    /// `unknown` (a payload whose action could not be told).
    pub action: Origin,
    /// `created`, `unchanged`, `updated`, `rotated`, `rotation_started`, `revoked` or `failed`.
    pub outcome: String,
    /// The request (or step) was already served: this event repeats an earlier one.
    pub repeat: bool,
    pub request_id: Option<String>,
    /// `event_bridge`, `direct` or `secrets_manager`.
    pub trigger: Option<String>,
    pub tenant: Option<String>,
    pub secret_name: Option<String>,
    pub secret_arn: Option<String>,
    pub key_hash: Option<String>,
    pub key_name: Option<String>,
    pub workspace: Option<String>,
    pub workspace_id: Option<String>,
    pub generation: Option<u64>,
    pub expires_at: Option<String>,
    pub cap: Option<CapDetail>,
    /// Rotations: `manual`, `leak`, `expiry`...
    pub reason: Option<String>,
    /// Revocations: the keys disabled and deleted.
    pub revoked_keys: Vec<String>,
    /// Rotation steps: `createSecret`...
    pub step: Option<&'static str>,
    pub error: Option<ErrorDetail>,
}

impl ResultDetail {
    /// An outcome of `action`, everything else unknown until filled.
    #[must_use]
    pub fn new(action: Origin, outcome: impl Into<String>) -> Self {
        Self {
            version: DETAIL_VERSION,
            action,
            outcome: outcome.into(),
            repeat: false,
            request_id: None,
            trigger: None,
            tenant: None,
            secret_name: None,
            secret_arn: None,
            key_hash: None,
            key_name: None,
            workspace: None,
            workspace_id: None,
            generation: None,
            expires_at: None,
            cap: None,
            reason: None,
            revoked_keys: Vec::new(),
            step: None,
            error: None,
        }
    }

    /// A failure of `action`.
    #[must_use]
    pub fn failure(action: Origin, error: &VendError) -> Self {
        let mut d = Self::new(action, "failed");
        d.error = Some(ErrorDetail {
            kind: error.kind().to_owned(),
            message: error.to_string(),
        });
        d
    }

    /// Learns a parsed request's identity: its action, id, trigger and the caller's tenant.
    pub fn identify(&mut self, inv: &Invocation, caller: Caller<'_>, tenant: Option<&str>) {
        self.action = Origin::Request(inv.action);
        self.request_id = Some(inv.request_id.clone());
        self.trigger = Some(
            match inv.trigger {
                Trigger::EventBridge => "event_bridge",
                Trigger::Direct => "direct",
            }
            .to_owned(),
        );
        self.tenant = match caller {
            Caller::Tenant(t) => t.name.clone(),
            Caller::Admin => tenant.map(str::to_owned),
        };
    }

    /// This template as the failure event of `error`.
    #[must_use]
    pub fn failed(mut self, error: &VendError) -> Self {
        self.outcome = "failed".to_owned();
        self.error = Some(ErrorDetail {
            kind: error.kind().to_owned(),
            message: error.to_string(),
        });
        self
    }

    /// Fills the key's facts (identity, workspace, generation, expiry, cap).
    #[must_use]
    pub fn with_facts(mut self, f: &KeyFacts) -> Self {
        self.tenant = self.tenant.or_else(|| f.tenant.clone());
        self.key_hash = self.key_hash.or_else(|| f.key_hash.clone());
        self.key_name = Some(f.key_name.clone());
        self.workspace = Some(f.workspace_slug.clone());
        self.workspace_id = Some(f.workspace_id.clone());
        self.generation = Some(f.generation);
        self.expires_at = Some(crate::domain::tags::time_value(f.expires_at));
        self.cap = Some(CapDetail {
            limit: f.limit,
            limit_reset: f.limit_reset,
            include_byok_in_limit: f.include_byok_in_limit,
        });
        self
    }

    /// Names the request: its id, trigger and tenant.
    #[must_use]
    pub fn for_request<T: Serialize>(
        mut self,
        request_id: Option<&str>,
        trigger: T,
        tenant: Option<&str>,
    ) -> Self {
        self.request_id = request_id.map(str::to_owned);
        self.trigger = serde_json::to_value(trigger)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned));
        self.tenant = tenant.map(str::to_owned);
        self
    }

    /// The event's `detail-type`; `None`: this outcome is not announced.
    #[must_use]
    pub fn detail_type(&self) -> Option<&'static str> {
        if !self.action.announced() {
            return None;
        }
        if self.error.is_some() {
            return Some(detail_type::FAILED);
        }
        Some(match self.action {
            Origin::RotationStep => detail_type::ROTATED,
            Origin::Unrecognised => detail_type::FAILED,
            Origin::Request(action) => match action {
                Action::Revoke => detail_type::REVOKED,
                Action::Adopt => detail_type::ADOPTED,
                Action::Rotate => detail_type::ROTATION_ACCEPTED,
                Action::Provision => match self.outcome.as_str() {
                    "rotated" | "rotation_started" => detail_type::ROTATION_ACCEPTED,
                    "updated" => detail_type::UPDATED,
                    _ => detail_type::PROVISIONED,
                },
                // Never announced (above); named for the exhaustive match.
                Action::Inventory => detail_type::FAILED,
            },
        })
    }
}

/// Puts `detail` on the bus, if one is configured, within [`PUT_BUDGET`]. Never fails:
/// an event that could not be put is logged (with its request id, to replay by hand).
pub(crate) async fn announce(deps: &Deps, detail: ResultDetail) {
    let Some(bus) = &deps.events else {
        return;
    };
    let Some(detail_type) = detail.detail_type() else {
        return;
    };
    let event = orkv_events::Event {
        detail_type: detail_type.to_owned(),
        resources: detail.secret_arn.iter().cloned().collect(),
        detail: match serde_json::to_value(&detail) {
            Ok(v) => v,
            Err(e) => {
                warn!(error = %e, detail_type, "result event could not be encoded");
                return;
            }
        },
    };
    let request_id = detail.request_id.as_deref().unwrap_or("");
    match tokio::time::timeout(PUT_BUDGET, bus.put(&event)).await {
        Ok(Ok(())) => debug!(detail_type, request_id, "result event put"),
        Ok(Err(e)) => {
            warn!(error = %e, detail_type, request_id, "result event not delivered");
        }
        Err(_) => {
            warn!(
                detail_type,
                request_id, "result event not delivered: PutEvents took too long"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn detail_type(origin: Origin, outcome: &str) -> Option<&'static str> {
        ResultDetail::new(origin, outcome).detail_type()
    }

    #[test]
    fn each_request_outcome_has_its_detail_type() {
        let p = Origin::Request(Action::Provision);
        assert_eq!(detail_type(p, "created"), Some(detail_type::PROVISIONED));
        assert_eq!(detail_type(p, "unchanged"), Some(detail_type::PROVISIONED));
        assert_eq!(detail_type(p, "updated"), Some(detail_type::UPDATED));
        assert_eq!(
            detail_type(p, "rotation_started"),
            Some(detail_type::ROTATION_ACCEPTED)
        );
        assert_eq!(
            detail_type(Origin::Request(Action::Rotate), "rotation_started"),
            Some(detail_type::ROTATION_ACCEPTED)
        );
        assert_eq!(
            detail_type(Origin::Request(Action::Revoke), "revoked"),
            Some(detail_type::REVOKED)
        );
        assert_eq!(
            detail_type(Origin::Request(Action::Adopt), "adopted"),
            Some(detail_type::ADOPTED)
        );
        assert_eq!(
            detail_type(Origin::RotationStep, "rotated"),
            Some(detail_type::ROTATED)
        );
    }

    #[test]
    fn an_inventory_is_never_announced_even_when_it_fails() {
        let i = Origin::Request(Action::Inventory);
        assert_eq!(detail_type(i, "listed"), None);
        let failed = ResultDetail::failure(i, &VendError::invalid("max_results", "too big"));
        assert_eq!(failed.detail_type(), None);
    }

    #[test]
    fn every_failure_is_request_failed_with_its_kind_and_message() {
        let e = VendError::invalid("limit", "must be positive");
        for origin in [
            Origin::Request(Action::Provision),
            Origin::Request(Action::Revoke),
            Origin::RotationStep,
            Origin::Unrecognised,
        ] {
            let d = ResultDetail::failure(origin, &e);
            assert_eq!(d.detail_type(), Some(detail_type::FAILED));
            let error = d
                .error
                .as_ref()
                .map(|x| (x.kind.as_str(), x.message.as_str()));
            assert_eq!(
                error,
                Some(("InvalidRequest", e.to_string().as_str())),
                "{origin:?}"
            );
        }
    }

    #[test]
    fn the_failure_template_reads_the_action_and_identity_of_an_envelope() {
        let t = failure_template(&json!({
            "id": "evt-1",
            "source": "team.checkout",
            "detail-type": "OpenRouter Key Revocation Requested",
            "detail": {"secret_name": "orkv/checkout/a"}
        }));
        assert_eq!(t.action, Origin::Request(Action::Revoke));
        assert_eq!(t.request_id.as_deref(), Some("evt-1"));
        assert_eq!(t.trigger.as_deref(), Some("event_bridge"));
        assert_eq!(t.secret_name.as_deref(), Some("orkv/checkout/a"));
    }

    #[test]
    fn the_failure_template_of_a_direct_call_defaults_to_provision_and_prefers_the_idempotency_id()
    {
        let t = failure_template(&json!({"idempotency_id": "req-9", "key_name": "k"}));
        assert_eq!(t.action, Origin::Request(Action::Provision));
        assert_eq!(t.request_id.as_deref(), Some("req-9"));
        assert_eq!(t.trigger.as_deref(), Some("direct"));
        let inv = failure_template(&json!({"action": "inventory"}));
        assert_eq!(inv.action, Origin::Request(Action::Inventory));
    }

    #[test]
    fn an_unknown_action_or_detail_type_is_unrecognised_never_another_action() {
        let direct = failure_template(&json!({"action": "suspend"}));
        assert_eq!(direct.action, Origin::Unrecognised);
        let envelope = failure_template(&json!({
            "id": "e", "source": "s", "detail-type": "OpenRouter Key Suspension Requested", "detail": {}
        }));
        assert_eq!(envelope.action, Origin::Unrecognised);
        assert_eq!(
            serde_json::to_value(&envelope)
                .ok()
                .and_then(|v| v.get("action").cloned()),
            Some(json!("unknown"))
        );
    }

    #[test]
    fn the_template_drops_an_invalid_secret_name_and_an_oversized_id() {
        let t = failure_template(&json!({
            "idempotency_id": "x".repeat(300),
            "secret_name": "no spaces allowed here"
        }));
        assert_eq!(t.request_id, None);
        assert_eq!(t.secret_name, None);
    }
}
