//! What invoked the function: an EventBridge event (`OpenRouter Key Requested`) or a deploy
//! pipeline's direct invocation (the request itself as the payload).

use aws_lambda_events::eventbridge::EventBridgeEvent;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::VendError;

pub use crate::domain::action::{
    ADOPTION_REQUESTED, Action, KEY_REQUESTED, REVOCATION_REQUESTED, ROTATION_REQUESTED,
};

/// The largest payload accepted (bytes of JSON).
pub const MAX_PAYLOAD: usize = 64 * 1024;

/// Where a request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    EventBridge,
    Direct,
}

/// A request body and the identity of the request.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    pub trigger: Trigger,
    pub action: Action,
    /// The request object (validated later).
    pub request: Value,
    /// `idempotency_id`, else the EventBridge event id, else a digest of the payload.
    pub request_id: String,
    pub source: Option<String>,
}

/// Splits a raw payload into its trigger and request.
///
/// # Errors
/// [`VendError::UnsupportedEvent`] for another `detail-type`; [`VendError::Invalid`] for a
/// malformed envelope.
pub fn parse(payload: Value) -> Result<Invocation, VendError> {
    let size = serde_json::to_vec(&payload)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > MAX_PAYLOAD {
        return Err(VendError::invalid(
            "(payload)",
            format!("must be at most {MAX_PAYLOAD} bytes of JSON"),
        ));
    }
    let is_envelope = payload
        .as_object()
        .is_some_and(|o| o.contains_key("detail-type") || o.contains_key("detail"));
    if is_envelope {
        parse_envelope(payload)
    } else {
        parse_direct(payload)
    }
}

/// A pipeline's direct invocation: the payload is the request, with an optional `action`.
fn parse_direct(payload: Value) -> Result<Invocation, VendError> {
    let request_id = payload
        .get("idempotency_id")
        .and_then(Value::as_str)
        .map_or_else(|| digest(&payload), str::to_owned);
    let mut payload = payload;
    let action = match payload.as_object_mut().and_then(|o| o.remove("action")) {
        None => Action::Provision,
        Some(Value::String(a)) => Action::from_name(&a)
            .ok_or_else(|| VendError::invalid("action", Action::names_rule()))?,
        Some(_) => return Err(VendError::invalid("action", Action::names_rule())),
    };
    Ok(Invocation {
        trigger: Trigger::Direct,
        action,
        request: payload,
        request_id,
        source: None,
    })
}

/// An EventBridge event: the `detail-type` names the action, `detail` holds the request.
fn parse_envelope(payload: Value) -> Result<Invocation, VendError> {
    let action = match payload.get("detail-type") {
        Some(Value::String(t)) => {
            Action::from_detail_type(t).ok_or_else(|| VendError::UnsupportedEvent {
                detail_type: t.chars().take(128).collect(),
            })?
        }
        _ => {
            return Err(VendError::invalid(
                "detail-type",
                "is required and must be a string",
            ));
        }
    };
    let event: EventBridgeEvent<Value> = serde_json::from_value(payload).map_err(|_| {
        VendError::invalid(
            "(envelope)",
            "must be an EventBridge event with id, source, detail-type and detail",
        )
    })?;
    if !event.detail.is_object() {
        return Err(VendError::invalid(
            "detail",
            "must be a JSON object holding the request",
        ));
    }
    let request_id = event
        .detail
        .get("idempotency_id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or(event.id)
        .ok_or_else(|| {
            VendError::invalid(
                "id",
                "the event id is required when detail has no idempotency_id",
            )
        })?;
    Ok(Invocation {
        trigger: Trigger::EventBridge,
        action,
        request: event.detail,
        request_id,
        source: Some(event.source),
    })
}

/// Takes the optional `tenant` field out of a request: only the platform-admin alias may use
/// it to choose a tenant (a tenant's alias may name only itself).
///
/// # Errors
/// [`VendError::Invalid`] on `tenant` when it is not a string, or tenants are not configured.
pub fn take_tenant(request: &mut Value, tenanted: bool) -> Result<Option<String>, VendError> {
    let Some(value) = request.as_object_mut().and_then(|o| o.remove("tenant")) else {
        return Ok(None);
    };
    if !tenanted {
        return Err(VendError::invalid(
            "tenant",
            "is only accepted when tenants are configured",
        ));
    }
    match value {
        Value::String(t) if !t.is_empty() && t.len() <= 64 => Ok(Some(t)),
        _ => Err(VendError::invalid(
            "tenant",
            "must be a tenant's name (1-64 characters)",
        )),
    }
}

/// A short, tag-safe digest of a request id.
#[must_use]
pub fn request_digest(request_id: &str) -> String {
    let hex = hex::encode(Sha256::digest(request_id.as_bytes()));
    hex.get(..32).unwrap_or(&hex).to_owned()
}

fn digest(v: &Value) -> String {
    let text = serde_json::to_string(v).unwrap_or_default();
    let hex = hex::encode(Sha256::digest(text.as_bytes()));
    format!("payload-{}", hex.get(..24).unwrap_or(&hex))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_eventbridge_envelope_yields_its_detail_and_event_id() {
        let inv = parse(
            json!({"version":"0","id":"ev-1","detail-type":KEY_REQUESTED,
            "source":"com.example.platform","account":"123456789012","time":"2026-11-22T10:00:00Z",
            "region":"eu-west-1","resources":[],"detail":{"workspace":"checkout"}}),
        )
        .expect("parses");
        assert_eq!(inv.trigger, Trigger::EventBridge);
        assert_eq!(inv.request_id, "ev-1");
        assert_eq!(inv.request, json!({"workspace":"checkout"}));
    }

    #[test]
    fn an_unknown_detail_type_is_refused_by_name() {
        let err = parse(json!({"id":"e","detail-type":"Something Else","source":"s","detail":{}}))
            .expect_err("refused");
        assert_eq!(err.kind(), "UnsupportedEvent");
        assert!(err.to_string().contains("detail-type"));
    }

    #[test]
    fn a_direct_payload_is_the_request_and_repeats_share_an_id() {
        let a = parse(json!({"workspace":"w","key_name":"k","limit":1})).expect("parses");
        let b = parse(json!({"workspace":"w","key_name":"k","limit":1})).expect("parses");
        assert_eq!(a.trigger, Trigger::Direct);
        assert_eq!(a.request_id, b.request_id);
        let c = parse(json!({"idempotency_id":"deploy-7","workspace":"w"})).expect("parses");
        assert_eq!(c.request_id, "deploy-7");
    }

    #[test]
    fn oversized_payloads_are_refused() {
        let big = "x".repeat(MAX_PAYLOAD);
        let err = parse(json!({"description": big})).expect_err("too big");
        assert!(err.to_string().contains("(payload)"));
    }
}
