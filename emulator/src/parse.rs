//! Request parsing with OpenRouter's own error messages: JSON bodies, caps, resets, booleans,
//! expiries and query flags.
// Handlers return the HTTP reply itself as their error: it is built once per request.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;

use axum::body::Bytes;
use axum::response::Response;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::reply::bad;

pub fn parse_bool_param(q: &HashMap<String, String>, name: &str) -> Result<bool, Response> {
    match q.get(name).map(String::as_str) {
        None => Ok(false),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(_) => Err(bad(&format!("{name} must be \"true\" or \"false\""))),
    }
}

pub fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts
            .iter()
            .all(|p| p.bytes().all(|b| b.is_ascii_hexdigit()))
}

pub fn parse_object(body: &Bytes) -> Result<Map<String, Value>, Response> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(bad("Request body must be a JSON object")),
        Err(_) => Err(bad("Invalid JSON in request body")),
    }
}

pub fn parse_limit(v: &Value) -> Result<Option<f64>, Response> {
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => match n.as_f64() {
            Some(x) if x.is_finite() && x >= 0.0 => Ok(Some(x)),
            _ => Err(bad("limit must be a non-negative number or null")),
        },
        _ => Err(bad("limit must be a number or null")),
    }
}

pub fn parse_reset(v: &Value) -> Result<Option<String>, Response> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if matches!(s.as_str(), "daily" | "weekly" | "monthly") => {
            Ok(Some(s.clone()))
        }
        _ => Err(bad(
            "limit_reset must be one of daily, weekly, monthly or null",
        )),
    }
}

pub fn parse_bool(v: &Value, name: &str) -> Result<bool, Response> {
    v.as_bool()
        .ok_or_else(|| bad(&format!("{name} must be a boolean")))
}

/// `YYYY-MM-DDTHH:MM:SS[.fff]Z` only: UTC with seconds.
pub fn parse_expiry(v: &Value, now: OffsetDateTime) -> Result<Option<OffsetDateTime>, Response> {
    let s = match v {
        Value::Null => return Ok(None),
        Value::String(s) => s,
        _ => {
            return Err(bad(
                "expires_at must be an ISO 8601 UTC timestamp string or null",
            ));
        }
    };
    let b = s.as_bytes();
    let shape_ok = b.len() >= 20
        && b.get(10) == Some(&b'T')
        && b.get(16) == Some(&b':')
        && b.last() == Some(&b'Z')
        && (b.len() == 20 || b.get(19) == Some(&b'.'));
    let parsed = if shape_ok {
        OffsetDateTime::parse(s, &Rfc3339).ok()
    } else {
        None
    };
    match parsed {
        None => Err(bad(
            "expires_at must be a UTC timestamp with seconds, e.g. 2027-12-31T23:59:59Z; other timezones are rejected",
        )),
        Some(at) if at <= now => Err(bad("expires_at must be in the future")),
        Some(at) => Ok(Some(at)),
    }
}
