//! The emulated management API under `/api/v1`.
// Handlers return the HTTP reply itself as their error: it is built once per request.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State as Ax};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::ConnKill;
use crate::parse::{
    is_uuid, parse_bool, parse_bool_param, parse_expiry, parse_limit, parse_object, parse_reset,
};
use crate::reply::{bad, error, key_json, ts, workspace_json};
use crate::state::{FaultAction, KeyRecord, State};

pub type Shared = Arc<Mutex<State>>;

const PAGE: usize = 100;
const MAX_NAME: usize = 256;

pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/api/v1/key", get(current_key))
        .route("/api/v1/keys", get(list_keys).post(create_key))
        .route(
            "/api/v1/keys/{hash}",
            get(get_key).patch(update_key).delete(delete_key),
        )
        .route("/api/v1/workspaces", get(list_workspaces))
        .route("/api/v1/workspaces/{id}", get(get_workspace))
        .fallback(not_found)
        .with_state(state)
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "Not Found")
}

/// Counts the call, waits the injected latency, and applies a fault queued for `op`.
/// `Ok(Some(action))` is a fault to apply after the call has been carried out.
pub(crate) async fn before(state: &Shared, op: &str) -> Result<Option<FaultAction>, Response> {
    let (latency, fault) = {
        let mut s = state.lock().await;
        *s.calls.entry(op.to_owned()).or_default() += 1;
        (s.latency_ms, s.take_fault(op))
    };
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    match fault {
        None => Ok(None),
        Some(FaultAction::Status { status, message }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let reason = status.canonical_reason().unwrap_or("Injected error");
            Err(error(status, message.as_deref().unwrap_or(reason)))
        }
        Some(FaultAction::RateLimit { retry_after }) => {
            let mut resp = error(StatusCode::TOO_MANY_REQUESTS, "Rate limit exceeded");
            if let Ok(value) = format!("{retry_after}").parse() {
                resp.headers_mut().insert(header::RETRY_AFTER, value);
            }
            Err(resp)
        }
        Some(FaultAction::Delay { ms }) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(None)
        }
        Some(FaultAction::Hang) => {
            std::future::pending::<()>().await;
            Err(error(StatusCode::INTERNAL_SERVER_ERROR, "unreachable"))
        }
        Some(action) => Ok(Some(action)),
    }
}

/// Applies a post-commit fault to a finished reply.
pub(crate) async fn after(post: Option<FaultAction>, kill: &ConnKill, resp: Response) -> Response {
    match post {
        Some(FaultAction::DropAfterCommit) => {
            kill.0.notify_one();
            std::future::pending::<()>().await;
            resp
        }
        Some(FaultAction::ErrorAfterCommit) => {
            error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
        }
        Some(FaultAction::DelayAfterCommit { ms }) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            resp
        }
        _ => resp,
    }
}

pub(crate) enum Need {
    AnyKey,
    Management,
}

/// The calling key, or the 401/403 OpenRouter would answer.
pub(crate) fn authenticate<'a>(
    s: &'a State,
    headers: &HeaderMap,
    need: Need,
) -> Result<&'a KeyRecord, Response> {
    let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
    else {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "Missing Authentication header",
        ));
    };
    let Some(key) = s.keys.get(&crate::state::hash(token)) else {
        return Err(error(StatusCode::UNAUTHORIZED, "User not found"));
    };
    if s.is_expired(key) || key.disabled {
        return Err(error(StatusCode::UNAUTHORIZED, "User not found"));
    }
    if matches!(need, Need::Management) && !key.is_management_key {
        return Err(error(
            StatusCode::FORBIDDEN,
            "Only management keys can perform this operation",
        ));
    }
    Ok(key)
}

async fn current_key(
    Ax(state): Ax<Shared>,
    Extension(kill): Extension<ConnKill>,
    headers: HeaderMap,
) -> Response {
    let post = match before(&state, "get_current_key").await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let resp = {
        let s = state.lock().await;
        match authenticate(&s, &headers, Need::AnyKey) {
            Err(r) => r,
            Ok(k) => {
                let now = s.now();
                let remaining = k.limit.map(|l| (l - k.counted(now)).max(0.0));
                let (u, b) = (k.usage(now, false), k.usage(now, true));
                Json(json!({"data": {
                    "label": k.label, "limit": k.limit, "limit_remaining": remaining,
                    "limit_reset": k.limit_reset, "include_byok_in_limit": k.include_byok_in_limit,
                    "usage": u.total, "usage_daily": u.daily, "usage_weekly": u.weekly,
                    "usage_monthly": u.monthly, "byok_usage": b.total, "byok_usage_daily": b.daily,
                    "byok_usage_weekly": b.weekly, "byok_usage_monthly": b.monthly, "is_free_tier": false,
                    "is_management_key": k.is_management_key,
                    "is_provisioning_key": k.is_management_key,
                    "creator_user_id": k.creator_user_id,
                    "expires_at": k.expires_at.map_or(Value::Null, ts),
                    "rate_limit": {"requests": -1, "interval": "10s",
                        "note": "This field is deprecated and safe to ignore."},
                }}))
                .into_response()
            }
        }
    };
    after(post, &kill, resp).await
}

async fn list_keys(
    Ax(state): Ax<Shared>,
    Extension(kill): Extension<ConnKill>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let post = match before(&state, "list_keys").await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let resp = {
        let s = state.lock().await;
        list_keys_locked(&s, &headers, &q)
    };
    after(post, &kill, resp).await
}

fn list_keys_locked(s: &State, headers: &HeaderMap, q: &HashMap<String, String>) -> Response {
    if let Err(r) = authenticate(s, headers, Need::Management) {
        return r;
    }
    let offset = match q.get("offset").map(|o| o.parse::<usize>()) {
        None => 0,
        Some(Ok(o)) => o,
        Some(Err(_)) => return bad("offset must be a non-negative integer"),
    };
    let (include_disabled, include_expired) = match (
        parse_bool_param(q, "include_disabled"),
        parse_bool_param(q, "include_expired"),
    ) {
        (Ok(d), Ok(e)) => (d, e),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let workspace_id = match q.get("workspace_id") {
        None => crate::state::DEFAULT_WORKSPACE_ID.to_owned(),
        Some(ws) if !is_uuid(ws) => return bad("workspace_id must be a UUID"),
        Some(ws) => match s.workspace(ws) {
            Some(w) => w.id.clone(),
            None => return error(StatusCode::NOT_FOUND, "Workspace not found"),
        },
    };
    let mut keys: Vec<&KeyRecord> = s
        .keys
        .values()
        .filter(|k| !k.is_management_key && k.workspace_id == workspace_id)
        .filter(|k| include_disabled || !k.disabled)
        .filter(|k| include_expired || !s.is_expired(k))
        .collect();
    keys.sort_by_key(|k| k.seq);
    let now = s.now();
    let page: Vec<Value> = keys
        .into_iter()
        .skip(offset)
        .take(PAGE)
        .map(|k| key_json(k, now))
        .collect();
    Json(json!({"data": page})).into_response()
}

async fn create_key(
    Ax(state): Ax<Shared>,
    Extension(kill): Extension<ConnKill>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let post = match before(&state, "create_key").await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let resp = {
        let mut s = state.lock().await;
        create_key_locked(&mut s, &headers, &body)
    };
    after(post, &kill, resp).await
}

fn create_key_locked(s: &mut State, headers: &HeaderMap, body: &Bytes) -> Response {
    let creator = match authenticate(s, headers, Need::Management) {
        Ok(k) => k.creator_user_id.clone(),
        Err(r) => return r,
    };
    let body = match parse_object(body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let name = match body.get("name") {
        Some(Value::String(n)) if !n.is_empty() && n.chars().count() <= MAX_NAME => n.clone(),
        Some(Value::String(n)) if n.is_empty() => return bad("name must not be empty"),
        Some(Value::String(_)) => return bad("name is too long"),
        Some(_) => return bad("name must be a string"),
        None => return bad("name is required"),
    };
    if body.contains_key("disabled") {
        return bad("disabled cannot be set when creating a key");
    }
    let limit = match body.get("limit").map(parse_limit).transpose() {
        Ok(l) => l.flatten(),
        Err(r) => return r,
    };
    let limit_reset = match body.get("limit_reset").map(parse_reset).transpose() {
        Ok(r) => r.flatten(),
        Err(r) => return r,
    };
    let byok = match body
        .get("include_byok_in_limit")
        .map(|v| parse_bool(v, "include_byok_in_limit"))
        .transpose()
    {
        Ok(b) => b.unwrap_or(false),
        Err(r) => return r,
    };
    let expires_at = match body
        .get("expires_at")
        .map(|v| parse_expiry(v, s.now()))
        .transpose()
    {
        Ok(e) => e.flatten(),
        Err(r) => return r,
    };
    let workspace_id = match body.get("workspace_id") {
        None | Some(Value::Null) => crate::state::DEFAULT_WORKSPACE_ID.to_owned(),
        Some(Value::String(ws)) if is_uuid(ws) => match s.workspace(ws) {
            Some(w) => w.id.clone(),
            None => return bad("workspace_id does not name a workspace of this account"),
        },
        Some(_) => return bad("workspace_id must be a UUID"),
    };
    let creator_user_id = match body.get("creator_user_id") {
        None | Some(Value::Null) => creator,
        Some(Value::String(c)) if !c.is_empty() => Some(c.clone()),
        Some(_) => return bad("creator_user_id must be a non-empty string or null"),
    };
    let plaintext = s.mint_plaintext();
    let mut record = s.new_record(&plaintext, name, workspace_id);
    record.limit = limit;
    record.limit_reset = limit_reset;
    record.include_byok_in_limit = byok;
    record.expires_at = expires_at;
    record.creator_user_id = creator_user_id;
    let data = key_json(&record, s.now());
    s.keys.insert(record.hash.clone(), record);
    (
        StatusCode::CREATED,
        Json(json!({"data": data, "key": plaintext})),
    )
        .into_response()
}

fn find_key<'a>(s: &'a State, hash: &str) -> Result<&'a KeyRecord, Response> {
    s.keys
        .get(hash)
        .filter(|k| !k.is_management_key)
        .ok_or_else(|| error(StatusCode::NOT_FOUND, "Key not found"))
}

async fn get_key(
    Ax(state): Ax<Shared>,
    Extension(kill): Extension<ConnKill>,
    headers: HeaderMap,
    Path(hash): Path<String>,
) -> Response {
    let post = match before(&state, "get_key").await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let resp = {
        let s = state.lock().await;
        match authenticate(&s, &headers, Need::Management).and_then(|_| find_key(&s, &hash)) {
            Ok(k) => Json(json!({"data": key_json(k, s.now())})).into_response(),
            Err(r) => r,
        }
    };
    after(post, &kill, resp).await
}

async fn update_key(
    Ax(state): Ax<Shared>,
    Extension(kill): Extension<ConnKill>,
    headers: HeaderMap,
    Path(hash): Path<String>,
    body: Bytes,
) -> Response {
    let post = match before(&state, "update_key").await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let resp = {
        let mut s = state.lock().await;
        update_key_locked(&mut s, &headers, &hash, &body)
    };
    after(post, &kill, resp).await
}

fn update_key_locked(s: &mut State, headers: &HeaderMap, hash: &str, body: &Bytes) -> Response {
    if let Err(r) = authenticate(s, headers, Need::Management).and_then(|_| find_key(s, hash)) {
        return r;
    }
    let body = match parse_object(body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    for fixed in ["expires_at", "workspace_id", "creator_user_id"] {
        if body.contains_key(fixed) {
            return bad(&format!(
                "{fixed} cannot be changed after the key is created"
            ));
        }
    }
    let now = s.now();
    let mut key = match s.keys.get(hash) {
        Some(k) => k.clone(),
        None => return error(StatusCode::NOT_FOUND, "Key not found"),
    };
    if let Some(v) = body.get("name") {
        match v {
            Value::String(n) if !n.is_empty() && n.chars().count() <= MAX_NAME => {
                key.name = n.clone()
            }
            _ => return bad("name must be a non-empty string"),
        }
    }
    if let Some(v) = body.get("disabled") {
        match parse_bool(v, "disabled") {
            Ok(d) => key.disabled = d,
            Err(r) => return r,
        }
    }
    if let Some(v) = body.get("limit") {
        match parse_limit(v) {
            Ok(l) => key.limit = l,
            Err(r) => return r,
        }
    }
    if let Some(v) = body.get("limit_reset") {
        match parse_reset(v) {
            Ok(r) => key.limit_reset = r,
            Err(r) => return r,
        }
    }
    if let Some(v) = body.get("include_byok_in_limit") {
        match parse_bool(v, "include_byok_in_limit") {
            Ok(b) => key.include_byok_in_limit = b,
            Err(r) => return r,
        }
    }
    key.updated_at = Some(now);
    let data = key_json(&key, now);
    s.keys.insert(hash.to_owned(), key);
    Json(json!({"data": data})).into_response()
}

async fn delete_key(
    Ax(state): Ax<Shared>,
    Extension(kill): Extension<ConnKill>,
    headers: HeaderMap,
    Path(hash): Path<String>,
) -> Response {
    let post = match before(&state, "delete_key").await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let resp = {
        let mut s = state.lock().await;
        match authenticate(&s, &headers, Need::Management).and_then(|_| find_key(&s, &hash)) {
            Err(r) => r,
            Ok(_) => {
                s.keys.remove(&hash);
                // The assignment row stays, dead (see `guardrails::assignments_page`).
                s.deleted.push(hash);
                Json(json!({"deleted": true})).into_response()
            }
        }
    };
    after(post, &kill, resp).await
}

async fn list_workspaces(
    Ax(state): Ax<Shared>,
    Extension(kill): Extension<ConnKill>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let post = match before(&state, "list_workspaces").await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let resp = {
        let s = state.lock().await;
        let offset = q.get("offset").map(|o| o.parse::<usize>());
        let limit = q.get("limit").map(|l| l.parse::<usize>());
        match (authenticate(&s, &headers, Need::Management), offset, limit) {
            (Err(r), _, _) => r,
            (_, Some(Err(_)), _) => bad("offset must be a non-negative integer"),
            (_, _, Some(Err(_))) => bad("limit must be an integer from 1 to 100"),
            (_, _, Some(Ok(l))) if !(1..=100).contains(&l) => {
                bad("limit must be an integer from 1 to 100")
            }
            (Ok(_), offset, limit) => {
                let offset = offset.and_then(Result::ok).unwrap_or(0);
                let limit = limit.and_then(Result::ok).unwrap_or(50);
                let data: Vec<Value> = s
                    .workspaces
                    .iter()
                    .skip(offset)
                    .take(limit)
                    .map(workspace_json)
                    .collect();
                Json(json!({"data": data, "total_count": s.workspaces.len()})).into_response()
            }
        }
    };
    after(post, &kill, resp).await
}

async fn get_workspace(
    Ax(state): Ax<Shared>,
    Extension(kill): Extension<ConnKill>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let post = match before(&state, "get_workspace").await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let resp = {
        let s = state.lock().await;
        match authenticate(&s, &headers, Need::Management) {
            Err(r) => r,
            Ok(_) => match s.workspace(&id) {
                Some(w) => Json(json!({"data": workspace_json(w)})).into_response(),
                None => error(StatusCode::NOT_FOUND, "Workspace not found"),
            },
        }
    };
    after(post, &kill, resp).await
}
