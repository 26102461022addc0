//! What a consumer sees during the chaos: a reader that keeps reading every secret as an
//! application does (`GetSecretValue` without a stage, through the strict layer, so it gets
//! `AWSCURRENT` as in AWS) and calls `GET /key` with what it read, and that notes how long each
//! secret holds `AWSPENDING` on a version that is not current.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use super::Soak;
use super::client::secret_name;

/// What the reader saw.
#[derive(Default)]
pub(super) struct Observations {
    /// Reads of an active current record whose key did not work while it stayed current.
    pub(super) broken_current: AtomicU64,
    /// Consumer reads made.
    pub(super) reads: AtomicU64,
    /// The longest time one rotation token held `AWSPENDING` on a non-current version.
    pub(super) longest_pending_ms: AtomicU64,
    pub(super) details: Mutex<Vec<String>>,
    /// Every key hash read as an active current record (each must have carried the
    /// guardrail before it was stored).
    pub(super) current_hashes: Mutex<std::collections::HashSet<String>>,
}

impl Soak {
    /// Reads every secret in turn until `stop`.
    pub(super) fn spawn_observer(&self, stop: Arc<AtomicBool>) -> JoinHandle<()> {
        let sm = self.consumer.clone();
        let obs = self.observations.clone();
        let key_url = format!("{}/api/v1/key", self.emulator.url());
        let (prefix, secrets) = (self.prefix.clone(), self.cfg.secrets);
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut pending_since: HashMap<usize, (String, Instant)> = HashMap::new();
            while !stop.load(Ordering::SeqCst) {
                for i in 0..secrets {
                    let secret = secret_name(&prefix, i);
                    note_pending(&sm, &secret, i, &mut pending_since, &obs).await;
                    consume(&sm, &http, &key_url, &secret, &obs).await;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    }
}

/// Tracks the token holding a dangling `AWSPENDING` on `secret` and how long it has.
async fn note_pending(
    sm: &aws_sdk_secretsmanager::Client,
    secret: &str,
    i: usize,
    since: &mut HashMap<usize, (String, Instant)>,
    obs: &Observations,
) {
    let Ok(desc) = sm.describe_secret().secret_id(secret).send().await else {
        return;
    };
    let dangling = desc.version_ids_to_stages().and_then(|m| {
        m.iter()
            .find(|(_, s)| {
                s.iter().any(|x| x == "AWSPENDING") && !s.iter().any(|x| x == "AWSCURRENT")
            })
            .map(|(v, _)| v.clone())
    });
    let Some(token) = dangling else {
        since.remove(&i);
        return;
    };
    let entry = since
        .entry(i)
        .or_insert_with(|| (token.clone(), Instant::now()));
    if entry.0 != token {
        *entry = (token, Instant::now());
    }
    let held = u64::try_from(entry.1.elapsed().as_millis()).unwrap_or(u64::MAX);
    obs.longest_pending_ms.fetch_max(held, Ordering::Relaxed);
}

/// Reads `secret` as a consumer and uses its key; a key that fails while its record stays
/// current is a broken observation (one that was superseded meanwhile is not).
async fn consume(
    sm: &aws_sdk_secretsmanager::Client,
    http: &reqwest::Client,
    key_url: &str,
    secret: &str,
    obs: &Observations,
) {
    let read = |sm: aws_sdk_secretsmanager::Client| async move {
        let out = sm.get_secret_value().secret_id(secret).send().await.ok()?;
        let record: Value = serde_json::from_str(out.secret_string()?).ok()?;
        Some((out.version_id()?.to_owned(), record))
    };
    let Some((version, record)) = read(sm.clone()).await else {
        return;
    };
    obs.reads.fetch_add(1, Ordering::Relaxed);
    if record["state"] != "active" {
        return;
    }
    if let Some(h) = record["key_hash"].as_str() {
        obs.current_hashes.lock().await.insert(h.to_owned());
    }
    let key = record["api_key"].as_str().unwrap_or_default();
    let Ok(reply) = http.get(key_url).bearer_auth(key).send().await else {
        return;
    };
    // Only a refusal of the key itself counts (401 unknown or disabled, 402/403 over its
    // limit); a 429 or 5xx is one of the injected faults, not the key.
    if !matches!(reply.status().as_u16(), 401..=403) {
        return;
    }
    let still = read(sm.clone()).await.is_some_and(|(v, _)| v == version);
    if still {
        obs.broken_current.fetch_add(1, Ordering::Relaxed);
        let mut d = obs.details.lock().await;
        if d.len() < 20 {
            d.push(format!(
                "{secret}: current record (version {version}, generation {}, hash {}) holds no working key",
                record["generation"], record["key_hash"]
            ));
        }
    }
}
