//! The soak's clients: invoke until a definitive answer, retrying as EventBridge would, and
//! keep every reply and error for the plaintext scan; the payloads they send.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::pool::Pool;

#[derive(Default)]
pub(super) struct Counters {
    pub(super) last_errors: Mutex<Vec<String>>,
    pub(super) invocations: AtomicU64,
    pub(super) retried: AtomicU64,
    pub(super) served: AtomicU64,
    pub(super) refusals: AtomicU64,
    pub(super) unfinished: AtomicU64,
}

/// Errors a client retries (as EventBridge's retry policy would); anything else is a
/// definitive answer.
fn retryable(error_type: &str) -> bool {
    !matches!(
        error_type,
        "InvalidRequest"
            | "PolicyViolation"
            | "UnknownWorkspace"
            | "SecretRevoked"
            | "ImmutableFieldChanged"
            | "UnsupportedEvent"
            | "SecretNotFound"
    )
}

/// Invokes until a definitive answer; replies and errors are kept for the plaintext scan.
pub(super) async fn call(
    pool: &Pool,
    payload: Value,
    c: &Counters,
    seen: &Mutex<String>,
    tries: u32,
) -> bool {
    for attempt in 0..tries {
        c.invocations.fetch_add(1, Ordering::Relaxed);
        if attempt > 0 {
            c.retried.fetch_add(1, Ordering::Relaxed);
        }
        let reply = pool.invoke(payload.clone(), Duration::from_secs(20)).await;
        match reply {
            Some(Ok(v)) => {
                seen.lock().await.push_str(&v.to_string());
                c.served.fetch_add(1, Ordering::Relaxed);
                return true;
            }
            Some(Err(ref e)) => {
                seen.lock().await.push_str(&e.to_string());
                let t = e["errorType"].as_str().unwrap_or("");
                if !retryable(t) {
                    c.served.fetch_add(1, Ordering::Relaxed);
                    c.refusals.fetch_add(1, Ordering::Relaxed);
                    return true;
                }
            }
            None => {}
        }
        if attempt + 1 == tries {
            let mut last = c.last_errors.lock().await;
            if last.len() < 20 {
                last.push(format!(
                    "gave up on {payload}: {:?}",
                    reply.map(|r| r.err())
                ));
            }
        }
        tokio::time::sleep(Duration::from_millis(
            (25 * u64::from(attempt)).min(500) + 10,
        ))
        .await;
    }
    false
}

/// Whether a version holds `AWSPENDING` without `AWSCURRENT` (a rotation not finished).
pub(super) async fn dangling_pending(sm: &aws_sdk_secretsmanager::Client, secret: &str) -> bool {
    sm.describe_secret()
        .secret_id(secret)
        .send()
        .await
        .ok()
        .and_then(|d| d.version_ids_to_stages().cloned())
        .is_some_and(|m| {
            m.values().any(|stages| {
                stages.iter().any(|s| s == "AWSPENDING")
                    && !stages.iter().any(|s| s == "AWSCURRENT")
            })
        })
}

pub(super) fn secret_name(prefix: &str, i: usize) -> String {
    format!("openrouter/checkout/{prefix}-{i}")
}

pub(super) fn provision_payload(secret: &str, limit: u32, id: &str) -> Value {
    let mut request = crate::world::named_request(secret, f64::from(limit));
    request["idempotency_id"] = json!(id);
    request
}
