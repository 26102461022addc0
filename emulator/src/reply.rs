//! Replies the emulator builds: OpenRouter's error body, and the JSON of keys and workspaces.
// Handlers return the HTTP reply itself as their error: it is built once per request.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::state::{KeyRecord, SeedWorkspace};

pub fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"code": status.as_u16(), "message": message}})),
    )
        .into_response()
}

pub fn bad(message: &str) -> Response {
    error(StatusCode::BAD_REQUEST, message)
}

pub fn ts(at: OffsetDateTime) -> Value {
    at.format(&Rfc3339).map_or(Value::Null, Value::String)
}

pub fn key_json(k: &KeyRecord, now: OffsetDateTime) -> Value {
    let remaining = k.limit.map(|l| (l - k.counted(now)).max(0.0));
    let (u, b) = (k.usage(now, false), k.usage(now, true));
    json!({
        "hash": k.hash, "name": k.name, "label": k.label, "disabled": k.disabled,
        "limit": k.limit, "limit_remaining": remaining, "limit_reset": k.limit_reset,
        "include_byok_in_limit": k.include_byok_in_limit,
        "usage": u.total, "usage_daily": u.daily, "usage_weekly": u.weekly, "usage_monthly": u.monthly,
        "byok_usage": b.total, "byok_usage_daily": b.daily, "byok_usage_weekly": b.weekly,
        "byok_usage_monthly": b.monthly,
        "created_at": ts(k.created_at), "updated_at": k.updated_at.map_or(Value::Null, ts),
        "expires_at": k.expires_at.map_or(Value::Null, ts),
        "creator_user_id": k.creator_user_id, "workspace_id": k.workspace_id,
        // The last spend made with the key: OpenRouter's `last_used_at` (key audit cookbook).
        "last_used_at": k.spends.iter().map(|s| s.at).max().map_or(Value::Null, ts),
    })
}

pub fn workspace_json(w: &SeedWorkspace) -> Value {
    let guardrail = crate::state::default_guardrail_id(&w.id);
    json!({
        "id": w.id, "name": w.name, "slug": w.slug, "description": null,
        "default_guardrail_id": guardrail, "default_text_model": null, "default_image_model": null,
        "default_provider_sort": null, "include_byok_in_budgets": false,
        "io_logging_api_key_ids": w.io_logging_api_key_ids, "io_logging_sampling_rate": 1,
        "is_data_discount_logging_enabled": true, "is_observability_broadcast_enabled": false,
        "is_observability_io_logging_enabled": false, "created_by": null,
        "created_at": "2025-08-24T10:30:00Z", "updated_at": "2025-08-24T10:30:00Z",
    })
}
