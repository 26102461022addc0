//! The control API under `/_emulator/`: read state and call counts, inject faults and
//! latency, move the clock, queue plaintexts, and add keys and workspaces directly. Loopback only, no auth.

use axum::Json;
use axum::Router;
use axum::extract::State as Ax;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::api::Shared;
use crate::reply::{error, key_json, workspace_json};
use crate::state::{Fault, SeedWorkspace};

pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/_emulator/state", get(state_view))
        .route("/_emulator/calls", get(calls).delete(reset_calls))
        .route("/_emulator/faults", post(add_faults).delete(clear_faults))
        .route("/_emulator/latency", post(set_latency))
        .route("/_emulator/clock", post(advance_clock))
        .route("/_emulator/plaintexts", post(queue_plaintexts))
        .route("/_emulator/keys", post(add_key))
        .route("/_emulator/usage", post(set_usage))
        .route("/_emulator/spend", post(spend))
        .route("/_emulator/workspaces", post(add_workspace))
        .route("/_emulator/workspace-logging", post(set_workspace_logging))
        .with_state(state)
}

async fn state_view(Ax(state): Ax<Shared>) -> Json<Value> {
    let s = state.lock().await;
    let keys: Vec<Value> = s
        .keys
        .values()
        .filter(|k| !k.is_management_key)
        .map(|k| {
            let mut v = key_json(k, s.now());
            if let Some(obj) = v.as_object_mut() {
                obj.insert("expired".into(), s.is_expired(k).into());
            }
            v
        })
        .collect();
    let workspaces: Vec<Value> = s.workspaces.iter().map(workspace_json).collect();
    // Live keys' assignments; the rows deleted keys left behind are counted apart.
    let assignments: serde_json::Map<String, Value> = s
        .assignments
        .iter()
        .filter(|(h, _)| s.keys.contains_key(*h))
        .map(|(h, a)| (h.clone(), a.guardrail_id.clone().into()))
        .collect();
    let dead_rows = s.assignments.len() - assignments.len();
    Json(
        json!({"keys": keys, "deleted": s.deleted, "workspaces": workspaces,
        "clock_offset_seconds": s.clock_offset_s, "pending_faults": s.faults.len(),
        "assignments": assignments, "dead_assignment_rows": dead_rows,
        "ever_assigned": s.ever_assigned}),
    )
}

async fn calls(Ax(state): Ax<Shared>) -> Json<Value> {
    let s = state.lock().await;
    let total: u64 = s.calls.values().sum();
    Json(json!({"calls": s.calls, "total": total}))
}

async fn reset_calls(Ax(state): Ax<Shared>) -> StatusCode {
    state.lock().await.calls.clear();
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(Fault),
    Many(Vec<Fault>),
}

async fn add_faults(Ax(state): Ax<Shared>, Json(faults): Json<OneOrMany>) -> StatusCode {
    let faults = match faults {
        OneOrMany::One(f) => vec![f],
        OneOrMany::Many(f) => f,
    };
    state.lock().await.faults.extend(faults);
    StatusCode::NO_CONTENT
}

async fn clear_faults(Ax(state): Ax<Shared>) -> StatusCode {
    state.lock().await.faults.clear();
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct Latency {
    ms: u64,
}

async fn set_latency(Ax(state): Ax<Shared>, Json(l): Json<Latency>) -> StatusCode {
    state.lock().await.latency_ms = l.ms;
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct Clock {
    advance_seconds: i64,
}

async fn advance_clock(Ax(state): Ax<Shared>, Json(c): Json<Clock>) -> Json<Value> {
    let mut s = state.lock().await;
    s.clock_offset_s += c.advance_seconds;
    Json(json!({"clock_offset_seconds": s.clock_offset_s}))
}

#[derive(Deserialize)]
struct Plaintexts {
    keys: Vec<String>,
}

async fn queue_plaintexts(Ax(state): Ax<Shared>, Json(p): Json<Plaintexts>) -> StatusCode {
    state.lock().await.next_plaintexts.extend(p.keys);
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct AddKey {
    name: String,
    #[serde(default)]
    workspace_id: Option<String>,
    #[serde(default)]
    management: bool,
    #[serde(default)]
    limit: Option<f64>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    expires_at: Option<OffsetDateTime>,
    /// Any spelling, unchecked: a key as OpenRouter may describe it in a later version (its
    /// SDKs decode enums as open values: CONTRACT.md).
    #[serde(default)]
    limit_reset: Option<String>,
}

/// Adds a key without an API call (an inference key for 403 tests, a second management key,
/// a key that expires soon). Answers with its plaintext: test material only.
async fn add_key(Ax(state): Ax<Shared>, Json(a): Json<AddKey>) -> Response {
    let mut s = state.lock().await;
    let workspace_id = a
        .workspace_id
        .unwrap_or_else(|| crate::state::DEFAULT_WORKSPACE_ID.to_owned());
    if s.workspace(&workspace_id).is_none() {
        return error(StatusCode::BAD_REQUEST, "unknown workspace_id");
    }
    let plaintext = s.mint_plaintext();
    let mut record = s.new_record(&plaintext, a.name, workspace_id);
    record.is_management_key = a.management;
    record.limit = a.limit;
    record.expires_at = a.expires_at;
    record.limit_reset = a.limit_reset;
    let hash = record.hash.clone();
    s.keys.insert(hash.clone(), record);
    Json(json!({"key": plaintext, "hash": hash})).into_response()
}

/// Adds a workspace (tests of workspace resolution: a name shared by two workspaces, a
/// name equal to another's slug). Its id must be new.
async fn add_workspace(Ax(state): Ax<Shared>, Json(w): Json<SeedWorkspace>) -> Response {
    let mut s = state.lock().await;
    if s.workspaces.iter().any(|o| o.id == w.id) {
        return error(StatusCode::CONFLICT, "a workspace with this id exists");
    }
    let body = workspace_json(&w);
    s.add_default_guardrail(&w.id);
    s.workspaces.push(w);
    (StatusCode::CREATED, Json(body)).into_response()
}

#[derive(Deserialize)]
struct WorkspaceLogging {
    id: String,
    io_logging_api_key_ids: Option<Vec<u64>>,
}

/// Sets which keys (by integer id) a workspace logs the I/O of, as the dashboard's workspace
/// settings do.
async fn set_workspace_logging(Ax(state): Ax<Shared>, Json(w): Json<WorkspaceLogging>) -> Response {
    let mut s = state.lock().await;
    match s.workspaces.iter_mut().find(|x| x.id == w.id) {
        Some(x) => {
            x.io_logging_api_key_ids = w.io_logging_api_key_ids;
            StatusCode::NO_CONTENT.into_response()
        }
        None => error(StatusCode::NOT_FOUND, "unknown workspace"),
    }
}

#[derive(Deserialize)]
struct Usage {
    hash: String,
    usage: f64,
}

#[derive(Deserialize)]
struct SpendWith {
    /// The plaintext key, as a consumer holds it.
    key: String,
    usd: f64,
    #[serde(default)]
    byok: bool,
}

/// Spends `usd` with a key, as an inference request would: refused as OpenRouter refuses one
/// (401 for a disabled, expired or unknown key; 403 "Key limit exceeded" when the spend would
/// take the key past its cap in the cap's current period, on the emulator's clock; 403 "Budget
/// limit exceeded" when it would take the key's guardrail past its budget).
async fn spend(Ax(state): Ax<Shared>, Json(req): Json<SpendWith>) -> Response {
    let mut s = state.lock().await;
    let now = s.now();
    let hash = crate::state::hash(&req.key);
    let expired = s.keys.get(&hash).is_some_and(|k| s.is_expired(k));
    if !s.keys.get(&hash).is_some_and(|k| !k.disabled && !expired) {
        return error(StatusCode::UNAUTHORIZED, "User not found");
    }
    if !req.usd.is_finite() || req.usd < 0.0 {
        return error(StatusCode::BAD_REQUEST, "usd must be a non-negative number");
    }
    if let Some(refused) = crate::guardrails::budget_refusal(&s, &hash, req.usd, req.byok, now) {
        return refused;
    }
    let Some(k) = s.keys.get_mut(&hash) else {
        return error(StatusCode::UNAUTHORIZED, "User not found");
    };
    let counts = !req.byok || k.include_byok_in_limit;
    if let Some(limit) = k.limit
        && counts
        && k.counted(now) + req.usd > limit + 1e-9
    {
        return error(StatusCode::FORBIDDEN, "Key limit exceeded");
    }
    let spend = crate::state::Spend {
        at: now,
        usd: req.usd,
        byok: req.byok,
    };
    k.spends.push(spend);
    let (counted, limit) = (k.counted(now), k.limit);
    crate::guardrails::book(&mut s, &hash, spend);
    Json(json!({"spent": req.usd, "counted": counted, "limit": limit})).into_response()
}

async fn set_usage(Ax(state): Ax<Shared>, Json(u): Json<Usage>) -> Response {
    let mut s = state.lock().await;
    match s.keys.get_mut(&u.hash) {
        Some(k) => {
            k.usage = u.usage;
            StatusCode::NO_CONTENT.into_response()
        }
        None => error(StatusCode::NOT_FOUND, "Key not found"),
    }
}
