//! The emulator's state: workspaces, keys, injected faults, clock offset and call counts.

use std::collections::{BTreeMap, HashMap, VecDeque};

use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::EmulatorConfig;

/// The default workspace's id: keys created without `workspace_id` land here.
pub const DEFAULT_WORKSPACE_ID: &str = "00000000-0000-4000-8000-000000000000";

/// A workspace the emulator starts with.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SeedWorkspace {
    pub id: String,
    pub name: String,
    pub slug: String,
    /// The keys whose I/O the workspace logs, by OpenRouter's integer key id.
    #[serde(default)]
    pub io_logging_api_key_ids: Option<Vec<u64>>,
}

impl SeedWorkspace {
    /// Two team workspaces used by the demo and the tests.
    #[must_use]
    pub fn defaults() -> Vec<Self> {
        vec![
            Self {
                id: "5b1e0c52-8f0a-4c8e-9d61-2f3a7c1e9a01".into(),
                name: "Checkout Team".into(),
                slug: "checkout".into(),
                io_logging_api_key_ids: None,
            },
            Self {
                id: "9d4f7a10-3b2c-4e5d-8f60-7a8b9c0d1e02".into(),
                name: "Search Team".into(),
                slug: "search".into(),
                io_logging_api_key_ids: None,
            },
        ]
    }
}

/// What an injected fault does to the call it hits.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum FaultAction {
    /// Answer with this status and an OpenRouter error body; nothing is changed.
    Status {
        status: u16,
        /// The error message (the status's reason phrase when absent).
        #[serde(default)]
        message: Option<String>,
    },
    /// 429 with `Retry-After: seconds`; nothing is changed.
    RateLimit { retry_after: f64 },
    /// Hold the request this long before handling it normally.
    Delay { ms: u64 },
    /// Never answer (the client times out); nothing is changed.
    Hang,
    /// Carry the call out, then close the connection without a reply.
    DropAfterCommit,
    /// Carry the call out, then answer 500 (the outcome looks failed but is not).
    ErrorAfterCommit,
    /// Carry the call out, then hold the reply this long (a window to kill the caller in).
    DelayAfterCommit { ms: u64 },
}

/// A queued fault: hits the next `times` calls of `op` (`"*"` for any API call).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Fault {
    pub op: String,
    #[serde(flatten)]
    pub action: FaultAction,
    #[serde(default = "one")]
    pub times: u32,
}

fn one() -> u32 {
    1
}

/// One key, with the emulator's private knowledge of it.
#[derive(Debug, Clone, Serialize)]
pub struct KeyRecord {
    pub hash: String,
    pub name: String,
    pub label: String,
    pub disabled: bool,
    pub limit: Option<f64>,
    pub limit_reset: Option<String>,
    pub include_byok_in_limit: bool,
    pub usage: f64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub updated_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    pub creator_user_id: Option<String>,
    pub workspace_id: String,
    pub is_management_key: bool,
    /// Creation order, for stable pages.
    pub seq: u64,
    /// Spend made with the key through the spend control (`usage` is spend set outright, which
    /// counts in every period).
    pub spends: Vec<Spend>,
}

/// One spend made with a key, at the emulator's clock.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Spend {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub usd: f64,
    pub byok: bool,
}

/// Spend of one key by period: (lifetime, UTC day, week from Monday, calendar month).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    pub total: f64,
    pub daily: f64,
    pub weekly: f64,
    pub monthly: f64,
}

/// The start of the current period of `reset` (`daily`, `weekly`, `monthly`) at `now`, UTC;
/// `None`: the whole lifetime.
#[must_use]
pub fn period_start(reset: Option<&str>, now: OffsetDateTime) -> Option<OffsetDateTime> {
    let midnight = now.replace_time(time::Time::MIDNIGHT);
    match reset? {
        "daily" => Some(midnight),
        "weekly" => Some(
            midnight - time::Duration::days(i64::from(now.weekday().number_days_from_monday())),
        ),
        "monthly" => midnight.replace_day(1).ok(),
        _ => None,
    }
}

impl KeyRecord {
    /// Spend by period at `now`: BYOK spend (`byok: true`) or the rest.
    #[must_use]
    pub fn usage(&self, now: OffsetDateTime, byok: bool) -> Usage {
        let base = if byok { 0.0 } else { self.usage };
        let since = |reset: &str| {
            let from = period_start(Some(reset), now);
            base + self
                .spends
                .iter()
                .filter(|s| s.byok == byok && from.is_none_or(|f| s.at >= f))
                .map(|s| s.usd)
                .sum::<f64>()
        };
        Usage {
            total: base
                + self
                    .spends
                    .iter()
                    .filter(|s| s.byok == byok)
                    .map(|s| s.usd)
                    .sum::<f64>(),
            daily: since("daily"),
            weekly: since("weekly"),
            monthly: since("monthly"),
        }
    }

    /// What counts against the cap now: the cap's period, BYOK included when it counts.
    #[must_use]
    pub fn counted(&self, now: OffsetDateTime) -> f64 {
        let pick = |u: Usage| match self.limit_reset.as_deref() {
            Some("daily") => u.daily,
            Some("weekly") => u.weekly,
            Some("monthly") => u.monthly,
            _ => u.total,
        };
        let byok = if self.include_byok_in_limit {
            pick(self.usage(now, true))
        } else {
            0.0
        };
        pick(self.usage(now, false)) + byok
    }
}

/// A guardrail (the fields the product and the budget use; the rest answer as null).
#[derive(Debug, Clone, Serialize)]
pub struct Guardrail {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub workspace_id: String,
    pub limit_usd: Option<f64>,
    pub reset_interval: Option<String>,
    pub include_byok_in_budgets: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub updated_at: Option<OffsetDateTime>,
    /// Spend made by each key (by hash) while assigned to it; the budget binds each key alone.
    pub spends: Vec<(String, Spend)>,
}

/// The id of workspace `workspace_id`'s default guardrail: a UUID derived from the workspace
/// (the document requires a UUID), stable across runs.
#[must_use]
pub fn default_guardrail_id(workspace_id: &str) -> String {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_URL,
        format!("orkv-emulator:guardrail:{workspace_id}").as_bytes(),
    )
    .to_string()
}

/// A key's assignment to a guardrail.
#[derive(Debug, Clone, Serialize)]
pub struct Assignment {
    pub id: String,
    pub guardrail_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Insertion order: rows made in the same second list in the order they were made.
    pub seq: u64,
}

#[derive(Debug)]
pub struct State {
    pub workspaces: Vec<SeedWorkspace>,
    /// By hash.
    pub keys: BTreeMap<String, KeyRecord>,
    pub deleted: Vec<String>,
    pub faults: VecDeque<Fault>,
    pub latency_ms: u64,
    pub clock_offset_s: i64,
    pub calls: HashMap<String, u64>,
    /// Plaintexts to hand out on the next creates, in order (for sentinel tests).
    pub next_plaintexts: VecDeque<String>,
    pub seq: u64,
    /// Guardrails by id, and each key's one assignment by key hash.
    pub guardrails: BTreeMap<String, Guardrail>,
    pub assignments: HashMap<String, Assignment>,
    /// Every key hash ever assigned a guardrail (the soak's check that no key was usable
    /// before it carried one).
    pub ever_assigned: std::collections::HashSet<String>,
}

impl State {
    pub fn new(cfg: &EmulatorConfig) -> Self {
        let mut workspaces = vec![SeedWorkspace {
            id: DEFAULT_WORKSPACE_ID.into(),
            name: "Default Workspace".into(),
            slug: "default".into(),
            io_logging_api_key_ids: None,
        }];
        workspaces.extend(cfg.workspaces.iter().cloned());
        let mut state = Self {
            workspaces,
            keys: BTreeMap::new(),
            deleted: Vec::new(),
            faults: VecDeque::new(),
            latency_ms: cfg.latency_ms,
            clock_offset_s: 0,
            calls: HashMap::new(),
            next_plaintexts: VecDeque::new(),
            seq: 0,
            guardrails: BTreeMap::new(),
            assignments: HashMap::new(),
            ever_assigned: std::collections::HashSet::new(),
        };
        state.insert_management_key(&cfg.management_key);
        for w in state.workspaces.clone() {
            state.add_default_guardrail(&w.id);
        }
        state
    }

    /// Workspace `workspace_id`'s default guardrail, as OpenRouter keeps one per workspace
    /// (`Workspace.default_guardrail_id`): no budget, applied to every key without an
    /// assignment, never assignable.
    pub fn add_default_guardrail(&mut self, workspace_id: &str) {
        let id = default_guardrail_id(workspace_id);
        let created_at = self.now();
        self.guardrails.insert(
            id.clone(),
            Guardrail {
                id,
                name: "Default guardrail".into(),
                description: None,
                workspace_id: workspace_id.to_owned(),
                limit_usd: None,
                reset_interval: None,
                include_byok_in_budgets: false,
                created_at,
                updated_at: None,
                spends: Vec::new(),
            },
        );
    }

    /// Whether `id` is some workspace's default guardrail.
    #[must_use]
    pub fn is_default_guardrail(&self, id: &str) -> bool {
        self.workspaces
            .iter()
            .any(|w| default_guardrail_id(&w.id) == id)
    }

    pub fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .unwrap_or_else(|_| OffsetDateTime::now_utc())
            + time::Duration::seconds(self.clock_offset_s)
    }

    pub fn insert_management_key(&mut self, plaintext: &str) {
        let record = self.new_record(
            plaintext,
            "management key".into(),
            DEFAULT_WORKSPACE_ID.into(),
        );
        let record = KeyRecord {
            is_management_key: true,
            ..record
        };
        self.keys.insert(record.hash.clone(), record);
    }

    pub fn new_record(&mut self, plaintext: &str, name: String, workspace_id: String) -> KeyRecord {
        self.seq += 1;
        KeyRecord {
            hash: hash(plaintext),
            label: label(plaintext),
            name,
            disabled: false,
            limit: None,
            limit_reset: None,
            include_byok_in_limit: false,
            usage: 0.0,
            created_at: self.now(),
            updated_at: None,
            expires_at: None,
            creator_user_id: None,
            workspace_id,
            is_management_key: false,
            seq: self.seq,
            spends: Vec::new(),
        }
    }

    /// A fresh plaintext: a queued one if any, else `sk-or-v1-` and 64 random hex digits.
    pub fn mint_plaintext(&mut self) -> String {
        if let Some(queued) = self.next_plaintexts.pop_front() {
            return queued;
        }
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        format!("sk-or-v1-{}", hex::encode(bytes))
    }

    /// Takes the next fault queued for `op`, if any.
    pub fn take_fault(&mut self, op: &str) -> Option<FaultAction> {
        let idx = self.faults.iter().position(|f| f.op == op || f.op == "*")?;
        let fault = self.faults.get_mut(idx)?;
        let action = fault.action.clone();
        fault.times = fault.times.saturating_sub(1);
        if fault.times == 0 {
            self.faults.remove(idx);
        }
        Some(action)
    }

    pub fn workspace(&self, id_or_slug: &str) -> Option<&SeedWorkspace> {
        self.workspaces
            .iter()
            .find(|w| w.id == id_or_slug || w.slug == id_or_slug)
    }

    pub fn is_expired(&self, key: &KeyRecord) -> bool {
        key.expires_at.is_some_and(|at| at <= self.now())
    }
}

pub fn hash(plaintext: &str) -> String {
    hex::encode(Sha256::digest(plaintext.as_bytes()))
}

/// The masked form OpenRouter shows: `sk-or-v1-abc...f00`.
fn label(plaintext: &str) -> String {
    let head: String = plaintext.chars().take(11).collect();
    let tail: String = plaintext
        .chars()
        .rev()
        .take(3)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("{head}...{tail}")
}
