//! Guardrails and their key assignments, as `management-openapi.yaml` describes them: CRUD on
//! `/guardrails`, bulk assign and unassign of keys, and the assignment listings. A key holds at
//! most one guardrail (assigning replaces), which must be in the key's workspace; `limit_usd`
//! and `reset_interval` come together or not at all (CONTRACT.md). The spend control enforces
//! the budget ([`budget_refusal`]).
// Handlers return the HTTP reply itself as their error: it is built once per request.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State as Ax};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use crate::ConnKill;
use crate::api::{Need, Shared, after, authenticate, before};
use crate::parse::{is_uuid, parse_object};
use crate::reply::{bad, error, ts};
use crate::state::{Assignment, DEFAULT_WORKSPACE_ID, Guardrail, Spend, State, period_start};

pub fn router(state: Shared) -> Router {
    Router::new()
        .route(
            "/api/v1/guardrails",
            get(list_guardrails).post(create_guardrail),
        )
        .route(
            "/api/v1/guardrails/assignments/keys",
            get(list_all_assignments),
        )
        .route(
            "/api/v1/guardrails/{id}",
            get(get_guardrail)
                .patch(update_guardrail)
                .delete(delete_guardrail),
        )
        .route(
            "/api/v1/guardrails/{id}/assignments/keys",
            get(list_assignments).post(assign_keys),
        )
        .route(
            "/api/v1/guardrails/{id}/assignments/keys/remove",
            post(unassign_keys),
        )
        .with_state(state)
}

fn guardrail_json(g: &Guardrail) -> Value {
    json!({
        "id": g.id, "name": g.name, "description": g.description, "workspace_id": g.workspace_id,
        "limit_usd": g.limit_usd, "reset_interval": g.reset_interval,
        "include_byok_in_budgets": g.include_byok_in_budgets,
        "allowed_models": null, "allowed_providers": null, "ignored_models": null,
        "ignored_providers": null, "content_filter_builtins": null, "content_filters": null,
        "enforce_zdr": null, "enforce_zdr_anthropic": null, "enforce_zdr_google": null,
        "enforce_zdr_openai": null, "enforce_zdr_other": null, "enforce_zdr_xai": null,
        "enable_free_model_publication": null, "enable_free_model_training": null,
        "enable_paid_model_training": null,
        "created_at": ts(g.created_at), "updated_at": g.updated_at.map_or(Value::Null, ts),
    })
}

fn assignment_json(s: &State, hash: &str, a: &Assignment) -> Value {
    let (name, label) = s
        .keys
        .get(hash)
        .map(|k| (k.name.clone(), k.label.clone()))
        .unwrap_or_default();
    json!({"id": a.id, "key_hash": hash, "guardrail_id": a.guardrail_id, "key_name": name,
           "key_label": label, "assigned_by": null, "created_at": ts(a.created_at)})
}

/// `offset` (≥ 0) and `limit` (1-100, default 50), as the listings take them.
fn page(q: &HashMap<String, String>) -> Result<(usize, usize), Response> {
    let offset = match q.get("offset") {
        None => 0,
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| bad("offset must be a non-negative integer"))?,
    };
    let limit = match q.get("limit") {
        None => 50,
        Some(v) => match v.parse::<usize>() {
            Ok(l) if (1..=100).contains(&l) => l,
            _ => return Err(bad("limit must be an integer from 1 to 100")),
        },
    };
    Ok((offset, limit))
}

/// The budget fields of a create or update body, with the together-or-neither rule.
fn budget_fields(
    body: &Map<String, Value>,
    g: &mut Guardrail,
    creating: bool,
) -> Result<(), Response> {
    let limit = body.get("limit_usd");
    let reset = body.get("reset_interval");
    if limit.is_some() != reset.is_some() {
        return Err(bad(
            "limit_usd and reset_interval must be provided together",
        ));
    }
    if let (Some(l), Some(r)) = (limit, reset) {
        g.limit_usd = match l {
            Value::Null => None,
            Value::Number(n) => match n.as_f64() {
                Some(v) if v.is_finite() && v >= 0.0 => Some(v),
                _ => return Err(bad("limit_usd must be a non-negative number")),
            },
            _ => return Err(bad("limit_usd must be a number or null")),
        };
        g.reset_interval = match r {
            Value::Null => None,
            Value::String(s) if ["daily", "weekly", "monthly"].contains(&s.as_str()) => {
                Some(s.clone())
            }
            _ => return Err(bad("reset_interval must be daily, weekly, monthly or null")),
        };
    }
    match body.get("include_byok_in_budgets") {
        None if creating => g.include_byok_in_budgets = false,
        None => {}
        Some(Value::Bool(b)) => g.include_byok_in_budgets = *b,
        Some(_) => return Err(bad("include_byok_in_budgets must be a boolean")),
    }
    if let Some(v) = body.get("description") {
        match v {
            Value::Null => g.description = None,
            Value::String(d) if d.chars().count() <= 1000 => g.description = Some(d.clone()),
            _ => {
                return Err(bad(
                    "description must be a string of at most 1000 characters",
                ));
            }
        }
    }
    if let Some(v) = body.get("name") {
        match v {
            Value::String(n) if (1..=200).contains(&n.chars().count()) => g.name = n.clone(),
            _ => return Err(bad("name must be a string of 1 to 200 characters")),
        }
    } else if creating {
        return Err(bad("name is required"));
    }
    Ok(())
}

async fn with_state<F>(state: &Shared, kill: &ConnKill, op: &str, f: F) -> Response
where
    F: FnOnce(&mut State) -> Response,
{
    let post = match before(state, op).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let resp = {
        let mut s = state.lock().await;
        f(&mut s)
    };
    after(post, kill, resp).await
}

fn managed(s: &State, headers: &HeaderMap) -> Result<(), Response> {
    authenticate(s, headers, Need::Management).map(|_| ())
}

fn found<'a>(s: &'a State, id: &str) -> Result<&'a Guardrail, Response> {
    s.guardrails
        .get(id)
        .ok_or_else(|| error(StatusCode::NOT_FOUND, "Guardrail not found"))
}

async fn list_guardrails(
    Ax(state): Ax<Shared>,
    Extension(kill): Extension<ConnKill>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    with_state(&state, &kill, "list_guardrails", |s| {
        if let Err(r) = managed(s, &headers) {
            return r;
        }
        let (offset, limit) = match page(&q) {
            Ok(p) => p,
            Err(r) => return r,
        };
        let ws = q
            .get("workspace_id")
            .map_or(DEFAULT_WORKSPACE_ID, String::as_str);
        let all: Vec<&Guardrail> = s
            .guardrails
            .values()
            .filter(|g| g.workspace_id == ws)
            .collect();
        let data: Vec<Value> = all
            .iter()
            .skip(offset)
            .take(limit)
            .map(|g| guardrail_json(g))
            .collect();
        Json(json!({"data": data, "total_count": all.len()})).into_response()
    })
    .await
}

async fn create_guardrail(
    Ax(state): Ax<Shared>,
    Extension(kill): Extension<ConnKill>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    with_state(&state, &kill, "create_guardrail", |s| {
        if let Err(r) = managed(s, &headers) {
            return r;
        }
        let body = match parse_object(&body) {
            Ok(b) => b,
            Err(r) => return r,
        };
        let workspace_id = match body.get("workspace_id") {
            None => DEFAULT_WORKSPACE_ID.to_owned(),
            Some(Value::String(w)) if is_uuid(w) => w.clone(),
            Some(_) => return bad("workspace_id must be a UUID"),
        };
        if !s.workspaces.iter().any(|w| w.id == workspace_id) {
            return bad("workspace_id names no workspace");
        }
        let now = s.now();
        let mut g = Guardrail {
            id: uuid::Uuid::new_v4().to_string(),
            name: String::new(),
            description: None,
            workspace_id,
            limit_usd: None,
            reset_interval: None,
            include_byok_in_budgets: false,
            created_at: now,
            updated_at: None,
            spends: Vec::new(),
        };
        if let Err(r) = budget_fields(&body, &mut g, true) {
            return r;
        }
        let data = guardrail_json(&g);
        s.guardrails.insert(g.id.clone(), g);
        (StatusCode::CREATED, Json(json!({"data": data}))).into_response()
    })
    .await
}

async fn get_guardrail(
    Ax(state): Ax<Shared>,
    Extension(kill): Extension<ConnKill>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    with_state(&state, &kill, "get_guardrail", |s| {
        match managed(s, &headers).and_then(|()| found(s, &id)) {
            Ok(g) => Json(json!({"data": guardrail_json(g)})).into_response(),
            Err(r) => r,
        }
    })
    .await
}

async fn update_guardrail(
    Ax(state): Ax<Shared>,
    Extension(kill): Extension<ConnKill>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    with_state(&state, &kill, "update_guardrail", |s| {
        let mut g = match managed(s, &headers).and_then(|()| found(s, &id)) {
            Ok(g) => g.clone(),
            Err(r) => return r,
        };
        let body = match parse_object(&body) {
            Ok(b) => b,
            Err(r) => return r,
        };
        if let Err(r) = budget_fields(&body, &mut g, false) {
            return r;
        }
        g.updated_at = Some(s.now());
        let data = guardrail_json(&g);
        s.guardrails.insert(id.clone(), g);
        Json(json!({"data": data})).into_response()
    })
    .await
}

async fn delete_guardrail(
    Ax(state): Ax<Shared>,
    Extension(kill): Extension<ConnKill>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    with_state(&state, &kill, "delete_guardrail", |s| {
        if let Err(r) = managed(s, &headers).and_then(|()| found(s, &id).map(|_| ())) {
            return r;
        }
        s.guardrails.remove(&id);
        s.assignments.retain(|_, a| a.guardrail_id != id);
        Json(json!({"deleted": true})).into_response()
    })
    .await
}

/// The `key_hashes` of an assign or unassign body.
fn key_hashes(body: &Bytes) -> Result<Vec<String>, Response> {
    let body = parse_object(body)?;
    let Some(Value::Array(items)) = body.get("key_hashes") else {
        return Err(bad("key_hashes must be an array of key hashes"));
    };
    if items.is_empty() {
        return Err(bad("key_hashes must hold at least one key hash"));
    }
    items
        .iter()
        .map(|v| match v {
            Value::String(h) if !h.is_empty() => Ok(h.clone()),
            _ => Err(bad("key_hashes must hold non-empty strings")),
        })
        .collect()
}

async fn assign_keys(
    Ax(state): Ax<Shared>,
    Extension(kill): Extension<ConnKill>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    with_state(&state, &kill, "assign_guardrail_keys", |s| {
        let workspace = match managed(s, &headers).and_then(|()| found(s, &id)) {
            Ok(g) => g.workspace_id.clone(),
            Err(r) => return r,
        };
        let hashes = match key_hashes(&body) {
            Ok(h) => h,
            Err(r) => return r,
        };
        // A workspace's default guardrail applies to every key without an assignment and
        // cannot be assigned (CONTRACT.md, "Assigning"; the provider's resource description).
        if s.is_default_guardrail(&id) {
            return bad("A workspace's default guardrail cannot be assigned to keys");
        }
        // A key of another workspace refuses the whole request; a hash that names no key
        // (unknown, deleted, or a management key) is skipped and not counted; assigning a
        // key again is an upsert that counts (CONTRACT.md, "Assigning": OpenRouter's
        // provider, `guardrailkeyassignment_resource.go`: "The API skips hashes that match no
        // key and still returns 200").
        let live: Vec<String> = hashes
            .into_iter()
            .filter(|h| s.keys.get(h).is_some_and(|k| !k.is_management_key))
            .collect();
        if live
            .iter()
            .any(|h| s.keys.get(h).is_some_and(|k| k.workspace_id != workspace))
        {
            return bad("Some keys do not belong to the same workspace as the guardrail");
        }
        let now = s.now();
        let mut assigned = 0;
        for h in live {
            s.ever_assigned.insert(h.clone());
            let same = s.assignments.get(&h).is_some_and(|a| a.guardrail_id == id);
            if !same {
                s.seq += 1;
                let seq = s.seq;
                s.assignments.insert(
                    h,
                    Assignment {
                        id: uuid::Uuid::new_v4().to_string(),
                        guardrail_id: id.clone(),
                        created_at: now,
                        seq,
                    },
                );
            }
            assigned += 1;
        }
        Json(json!({"assigned_count": assigned})).into_response()
    })
    .await
}

async fn unassign_keys(
    Ax(state): Ax<Shared>,
    Extension(kill): Extension<ConnKill>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    with_state(&state, &kill, "unassign_guardrail_keys", |s| {
        if let Err(r) = managed(s, &headers).and_then(|()| found(s, &id).map(|_| ())) {
            return r;
        }
        let hashes = match key_hashes(&body) {
            Ok(h) => h,
            Err(r) => return r,
        };
        // A key that is gone answers 0 and its row stays (the provider's `Delete`: "A key
        // that is gone or no longer assigned here returns 200 with a count of zero").
        let mut unassigned = 0;
        for h in hashes {
            if s.keys.contains_key(&h)
                && s.assignments.get(&h).is_some_and(|a| a.guardrail_id == id)
            {
                s.assignments.remove(&h);
                unassigned += 1;
            }
        }
        Json(json!({"unassigned_count": unassigned})).into_response()
    })
    .await
}

fn assignments_page(s: &State, q: &HashMap<String, String>, id: Option<&str>) -> Response {
    let (offset, limit) = match page(q) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let mut all: Vec<(&String, &Assignment)> = s
        .assignments
        .iter()
        .filter(|(_, a)| id.is_none_or(|id| a.guardrail_id == id))
        .collect();
    all.sort_by_key(|(_, a)| (a.created_at, a.seq));
    // OpenRouter keeps the rows of deleted keys, cuts the page over every row, and only then
    // drops the dead ones: a page can be short or empty before the end, and `total_count`
    // counts every row (CONTRACT.md, "Guardrail assignment listings page past deleted keys":
    // the provider's `keyAssigned` and `TestStubGuardrailKeyAssignmentPagesPastDeletedKeys`).
    let data: Vec<Value> = all
        .iter()
        .skip(offset)
        .take(limit)
        .filter(|(h, _)| s.keys.contains_key(*h))
        .map(|(h, a)| assignment_json(s, h, a))
        .collect();
    Json(json!({"data": data, "total_count": all.len()})).into_response()
}

async fn list_assignments(
    Ax(state): Ax<Shared>,
    Extension(kill): Extension<ConnKill>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    with_state(&state, &kill, "list_guardrail_keys", |s| {
        if let Err(r) = managed(s, &headers).and_then(|()| found(s, &id).map(|_| ())) {
            return r;
        }
        assignments_page(s, &q, Some(&id))
    })
    .await
}

async fn list_all_assignments(
    Ax(state): Ax<Shared>,
    Extension(kill): Extension<ConnKill>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    with_state(&state, &kill, "list_key_assignments", |s| {
        if let Err(r) = managed(s, &headers) {
            return r;
        }
        assignments_page(s, &q, None)
    })
    .await
}

/// Books a spend of key `hash` to its guardrail's budget, as that key's own.
pub fn book(s: &mut State, hash: &str, spend: Spend) {
    let Some(id) = s.assignments.get(hash).map(|a| a.guardrail_id.clone()) else {
        return;
    };
    if let Some(g) = s.guardrails.get_mut(&id) {
        g.spends.push((hash.to_owned(), spend));
    }
}

/// The refusal of a spend of `usd` with key `hash` that would take the key past its
/// guardrail's budget in the budget's current period, as OpenRouter answers it: 403 "Budget
/// limit exceeded" with `metadata.limit_source`. The budget binds each key alone: "Budget
/// Enforcement: ... enforced per-user and per-key, not shared across all users with that
/// guardrail" (OpenRouter's documentation, `guides/features/guardrails.mdx`; CONTRACT.md), so
/// only this key's spend while it carried the guardrail counts.
pub fn budget_refusal(
    s: &State,
    hash: &str,
    usd: f64,
    byok: bool,
    now: OffsetDateTime,
) -> Option<Response> {
    let g = s.guardrails.get(&s.assignments.get(hash)?.guardrail_id)?;
    let limit = g.limit_usd?;
    if byok && !g.include_byok_in_budgets {
        return None;
    }
    let from = period_start(g.reset_interval.as_deref(), now);
    let spent: f64 = g
        .spends
        .iter()
        .filter(|(h, sp)| {
            h == hash && (g.include_byok_in_budgets || !sp.byok) && from.is_none_or(|f| sp.at >= f)
        })
        .map(|(_, sp)| sp.usd)
        .sum();
    if spent + usd <= limit + 1e-9 {
        return None;
    }
    Some(
        (
            StatusCode::FORBIDDEN,
            Json(
                json!({"error": {"code": 403, "message": "Budget limit exceeded",
                "metadata": {"limit_source": "openrouter_guardrail_budget", "scope": "guardrail",
                             "guardrail_id": g.id, "limit_usd": limit, "spend_usd": spent}}}),
            ),
        )
            .into_response(),
    )
}
