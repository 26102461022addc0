//! The provision logic: resolve and check the request, then bring the managed secret and its
//! OpenRouter key to the requested state. Crash-safe and idempotent; see
//! `docs/adr/0001-store-first-provisioning.md` for the design.
//!
//! Happy paths, counted in remote calls (OpenRouter + Secrets Manager):
//! - new key: `CreateSecret` (pending record) + `POST /keys` + `PutSecretValue` (active) = 3;
//! - repeated request: `GetSecretValue` = 1 (on a container that has seen the secret);
//! - changed cap: `GetSecretValue` + `PATCH /keys/{hash}` + `PutSecretValue` = 3.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use orkv_openrouter::{ApiKey, CreateKeyRequest, KeyPatch, Workspace, format_expires_at};
use orkv_store::{NewSecret, SecretStore, SecretVersion, StoreErrorKind};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use time::OffsetDateTime;
use tokio::sync::OnceCell;
use tracing::{info, instrument, warn};
use uuid::Uuid;

use crate::config::{Config, ManagementKeySource};
use crate::error::VendError;
use crate::invocation::{self, Trigger};
use crate::record::{MANAGED_BY, RecordState, SCHEMA, SecretRecord};
use crate::request::{Lifetime, ProvisionRequest};

/// Namespace of the deterministic version tokens this product writes.
pub(crate) const TOKEN_NAMESPACE: Uuid = Uuid::from_u128(0x6f72_6b76_0000_4000_8000_7661_6e64_6e67);
/// Label of a version written by a cap update before it is made current.
const UPDATE_STAGE: &str = "ORKV_UPDATE";
/// Rounds of observe-and-act before giving up with `ProvisionInProgress`.
const MAX_ROUNDS: usize = 6;
/// Ambiguous creates (each cleaned up) tolerated in one invocation before failing.
const MAX_AMBIGUOUS: usize = 2;
/// Time kept back from the Lambda deadline for answering.
const DEADLINE_MARGIN: Duration = Duration::from_millis(1500);

/// Tag keys the product sets on every managed secret.
pub mod tags {
    pub const MANAGED_BY: &str = "orkv:managed-by";
    pub const WORKSPACE: &str = "orkv:workspace";
    pub const WORKSPACE_SLUG: &str = "orkv:workspace-slug";
    pub const KEY_NAME: &str = "orkv:key-name";
    pub const OPENROUTER_KEY: &str = "orkv:openrouter-key-name";
    pub const EXPIRES_AT: &str = "orkv:expires-at";
    pub const ROTATE_AT: &str = "orkv:rotate-at";
    pub const GENERATION: &str = "orkv:generation";
    /// `ttl:<seconds>` or `at:<RFC 3339>`: whether a rotation can extend the key's life.
    pub const LIFETIME: &str = "orkv:lifetime";
    /// One per superseded key awaiting retirement: `orkv:retire:<hash>` = when (RFC 3339).
    pub const RETIRE_PREFIX: &str = "orkv:retire:";
    /// Settings the next rotation applies (fields fixed at creation that a request changed).
    pub const NEXT: &str = "orkv:next";
    /// Digest of the on-demand request the next rotation serves.
    pub const ROTATION_REQUEST: &str = "orkv:rotation-request";
    /// `leak`, `changed` or `manual`: why the next rotation was asked for.
    pub const ROTATION_REASON: &str = "orkv:rotation-reason";
    /// Set when the secret's keys were revoked (the sweep leaves it alone).
    pub const REVOKED: &str = "orkv:revoked";
}

/// What a provision did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Created,
    Unchanged,
    Updated,
    /// A field fixed at creation changed: the key was replaced by rotation (the old key stays
    /// valid for the grace period).
    Rotated,
    /// As `Rotated`, with Secrets Manager still running the rotation.
    RotationStarted,
}

/// The reply to every trigger. Never holds the plaintext.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProvisionReply {
    pub status: Status,
    pub secret_arn: String,
    pub secret_name: String,
    pub key_hash: String,
    pub key_name: String,
    pub workspace_id: String,
    pub workspace: String,
    pub expires_at: String,
    pub rotate_at: String,
    pub generation: u64,
    pub limit: f64,
    pub limit_reset: Option<orkv_openrouter::LimitReset>,
    pub include_byok_in_limit: bool,
    pub request_id: String,
    pub trigger: Trigger,
}

/// Everything a container keeps between invocations: clients, and the caches of the
/// management key, the workspaces and the secrets it has seen.
#[derive(Debug)]
pub struct Deps {
    pub(crate) cfg: Config,
    pub(crate) store: SecretStore,
    openrouter: OnceCell<orkv_openrouter::Client>,
    workspaces: OnceCell<Vec<Workspace>>,
    known_secrets: Mutex<HashSet<String>>,
    pub(crate) clock: crate::clock::Clock,
}

/// The state the request asks for, resolved.
#[derive(Debug, Clone)]
struct Desired {
    secret_name: String,
    key_name: String,
    workspace: Workspace,
    cap: orkv_openrouter::Cap,
    lifetime: Lifetime,
    rotate_before_seconds: u64,
    description: Option<String>,
    tags: Vec<(String, String)>,
    kms_key_id: Option<String>,
    request_id: String,
    trigger: Trigger,
}

/// What `GetSecretValue` showed.
enum Seen {
    Absent,
    Active(SecretVersion, SecretRecord),
    Pending(SecretVersion, SecretRecord),
}

/// A pending record this invocation owns (it wrote it).
struct Owned {
    record: SecretRecord,
    version_id: String,
    arn: String,
}

/// How a mint attempt ended when it did not produce a reply.
enum MintOutcome {
    Done(ProvisionReply),
    /// The create was ambiguous, the attempt was cleaned up and released: go round again.
    Again(orkv_openrouter::Error),
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

pub(crate) fn token(version_id: &str, purpose: &str) -> String {
    Uuid::new_v5(
        &TOKEN_NAMESPACE,
        format!("{version_id}/{purpose}").as_bytes(),
    )
    .to_string()
}

fn nonce() -> String {
    Uuid::new_v4()
        .simple()
        .to_string()
        .chars()
        .take(12)
        .collect()
}

fn rfc3339(t: OffsetDateTime) -> String {
    format_expires_at(t)
}

impl Deps {
    /// Wires the dependencies (no remote call).
    #[must_use]
    pub fn new(cfg: Config, store: SecretStore) -> Self {
        Self {
            cfg,
            store,
            openrouter: OnceCell::new(),
            workspaces: OnceCell::new(),
            known_secrets: Mutex::new(HashSet::new()),
            clock: crate::clock::Clock::default(),
        }
    }

    /// The clock the rotation and sweep logic read (tests move it forward).
    #[must_use]
    pub fn clock(&self) -> &crate::clock::Clock {
        &self.clock
    }

    /// The Secrets Manager adapter.
    #[must_use]
    pub fn store(&self) -> &SecretStore {
        &self.store
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The OpenRouter client, built on first use with the management key (read from
    /// Secrets Manager once per container).
    ///
    /// # Errors
    /// When the management key cannot be read or the client cannot be built.
    pub async fn openrouter(&self) -> Result<&orkv_openrouter::Client, VendError> {
        self.openrouter
            .get_or_try_init(|| async {
                let key = match &self.cfg.management_key {
                    ManagementKeySource::Direct(key) => key.clone(),
                    ManagementKeySource::Secret(id) => self.read_management_key(id).await?,
                };
                let cfg = orkv_openrouter::ClientConfig {
                    base_url: self.cfg.openrouter_base_url.clone(),
                    timeout: self.cfg.http_timeout,
                    max_retries: self.cfg.max_retries,
                    ..orkv_openrouter::ClientConfig::default()
                };
                Ok(orkv_openrouter::Client::new(cfg, key)?)
            })
            .await
    }

    async fn read_management_key(
        &self,
        id: &str,
    ) -> Result<orkv_openrouter::ManagementKey, VendError> {
        let version = self.store.get(id, "AWSCURRENT").await?.ok_or_else(|| {
            VendError::Config(format!(
                "OPENROUTER_MANAGEMENT_KEY_SECRET_ID: secret {id} does not exist"
            ))
        })?;
        let text = version.value.expose_secret().trim();
        let from_json = serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .and_then(|v| {
                ["management_key", "api_key"]
                    .iter()
                    .find_map(|f| v.get(*f).and_then(|s| s.as_str()).map(str::to_owned))
            });
        let key = from_json.unwrap_or_else(|| text.to_owned());
        if key.is_empty() {
            return Err(VendError::Config(format!(
                "OPENROUTER_MANAGEMENT_KEY_SECRET_ID: secret {id} is empty"
            )));
        }
        Ok(orkv_openrouter::ManagementKey::new(key))
    }

    pub(crate) async fn workspaces(&self) -> Result<&[Workspace], VendError> {
        let list = self
            .workspaces
            .get_or_try_init(|| async {
                Ok::<_, VendError>(self.openrouter().await?.list_workspaces().await?)
            })
            .await?;
        Ok(list)
    }

    fn knows(&self, name: &str) -> bool {
        self.known_secrets
            .lock()
            .map(|s| s.contains(name))
            .unwrap_or(false)
    }

    fn remember(&self, name: &str, exists: bool) {
        if let Ok(mut set) = self.known_secrets.lock() {
            if exists {
                set.insert(name.to_owned());
            } else {
                set.remove(name);
            }
        }
    }

    /// Handles any payload the function accepts (provision, rotate now, revoke) and answers
    /// the reply as JSON.
    ///
    /// # Errors
    /// A [`VendError`] whose `kind()` names the failure; bad input creates nothing.
    pub async fn handle_any(
        &self,
        payload: serde_json::Value,
        deadline: Instant,
    ) -> Result<serde_json::Value, VendError> {
        let inv = invocation::parse(payload)?;
        let reply = match inv.action {
            invocation::Action::Provision => {
                let req = ProvisionRequest::parse(&inv.request, &self.cfg.policy, now())?;
                let desired = self.resolve(req, inv.request_id, inv.trigger).await?;
                serde_json::to_value(self.ensure(&desired, deadline).await?)
            }
            invocation::Action::Rotate => serde_json::to_value(
                self.rotate_request(&inv.request, &inv.request_id, inv.trigger)
                    .await?,
            ),
            invocation::Action::Revoke => serde_json::to_value(
                self.revoke_request(&inv.request, &inv.request_id, inv.trigger)
                    .await?,
            ),
        };
        reply.map_err(|e| VendError::Config(format!("reply encoding: {e}")))
    }

    /// Handles one raw provision payload (EventBridge event or pipeline request).
    /// `deadline` bounds every wait.
    ///
    /// # Errors
    /// A [`VendError`] whose `kind()` names the failure; bad input creates nothing.
    pub async fn handle(
        &self,
        payload: serde_json::Value,
        deadline: Instant,
    ) -> Result<ProvisionReply, VendError> {
        let inv = invocation::parse(payload)?;
        if inv.action != invocation::Action::Provision {
            return Err(VendError::invalid(
                "action",
                "this entry point only provisions; use handle_any",
            ));
        }
        let req = ProvisionRequest::parse(&inv.request, &self.cfg.policy, now())?;
        let desired = self.resolve(req, inv.request_id, inv.trigger).await?;
        self.ensure(&desired, deadline).await
    }

    /// Resolves the workspace, applies the policy and names the secret.
    async fn resolve(
        &self,
        req: ProvisionRequest,
        request_id: String,
        trigger: Trigger,
    ) -> Result<Desired, VendError> {
        let unknown = || VendError::UnknownWorkspace {
            workspace: req.workspace.clone(),
        };
        let workspace = self
            .workspaces()
            .await?
            .iter()
            .find(|w| w.id == req.workspace || w.slug == req.workspace || w.name == req.workspace)
            .cloned()
            .ok_or_else(unknown)?;
        let entry = self
            .cfg
            .policy
            .entry_for(&workspace.id, &workspace.slug, &workspace.name)
            .ok_or_else(unknown)?;
        if req.limit > entry.max_limit {
            return Err(VendError::policy(
                "limit",
                format!(
                    "{} exceeds the maximum cap of {} USD for workspace {}",
                    req.limit, entry.max_limit, workspace.slug
                ),
            ));
        }
        let prefix = &self.cfg.secret_prefix;
        let secret_name = req
            .secret_name
            .clone()
            .unwrap_or_else(|| format!("{prefix}{}/{}", workspace.slug, req.key_name));
        if !secret_name.starts_with(prefix.as_str()) {
            return Err(VendError::policy(
                "secret_name",
                format!("must start with the managed prefix {prefix:?}"),
            ));
        }
        let mut tags: Vec<(String, String)> = req.tags.into_iter().collect();
        tags.push((tags::MANAGED_BY.into(), MANAGED_BY.into()));
        tags.push((tags::WORKSPACE.into(), workspace.id.clone()));
        tags.push((tags::WORKSPACE_SLUG.into(), workspace.slug.clone()));
        tags.push((tags::KEY_NAME.into(), req.key_name.clone()));
        Ok(Desired {
            secret_name,
            key_name: req.key_name,
            workspace,
            cap: orkv_openrouter::Cap {
                limit: req.limit,
                limit_reset: req.limit_reset,
                include_byok_in_limit: req.include_byok_in_limit,
            },
            lifetime: req.lifetime,
            rotate_before_seconds: req.rotate_before_seconds,
            description: req.description,
            tags,
            kms_key_id: req
                .kms_key_id
                .or_else(|| self.cfg.default_kms_key_id.clone()),
            request_id,
            trigger,
        })
    }

    fn pending_record(&self, d: &Desired, generation: u64) -> SecretRecord {
        let created = now().replace_nanosecond(0).unwrap_or_else(|_| now());
        let claim = nonce();
        SecretRecord {
            schema: SCHEMA,
            managed_by: MANAGED_BY.into(),
            state: RecordState::Pending,
            api_key: None,
            key_hash: None,
            key_name: d.key_name.clone(),
            openrouter_key_name: format!("orkv:{}:{claim}", d.secret_name),
            workspace_id: d.workspace.id.clone(),
            workspace_slug: d.workspace.slug.clone(),
            limit: d.cap.limit,
            limit_reset: d.cap.limit_reset,
            include_byok_in_limit: d.cap.include_byok_in_limit,
            expires_at: d.lifetime.expiry_from(created),
            lifetime: d.lifetime,
            rotate_before_seconds: d.rotate_before_seconds,
            created_at: created,
            generation,
            request_id: d.request_id.clone(),
            rotation_request: None,
            parent_version: None,
            lease_until: Some(
                created
                    + time::Duration::try_from(self.cfg.pending_lease)
                        .unwrap_or(time::Duration::MINUTE),
            ),
            claim: Some(claim),
        }
    }

    pub(crate) fn record_tags(record: &SecretRecord) -> Vec<(String, String)> {
        vec![
            (
                tags::OPENROUTER_KEY.into(),
                record.openrouter_key_name.clone(),
            ),
            (tags::EXPIRES_AT.into(), rfc3339(record.expires_at)),
            (tags::ROTATE_AT.into(), rfc3339(record.rotate_at())),
            (tags::GENERATION.into(), record.generation.to_string()),
            (tags::LIFETIME.into(), record.lifetime.tag_value()),
        ]
    }

    async fn observe(&self, name: &str) -> Result<Seen, VendError> {
        let Some(version) = self.store.get(name, "AWSCURRENT").await? else {
            self.remember(name, false);
            return Ok(Seen::Absent);
        };
        self.remember(name, true);
        let record = match SecretRecord::from_secret(&version.value) {
            None => {
                return Err(VendError::NotManaged {
                    secret_name: name.to_owned(),
                });
            }
            Some(Err(reason)) => {
                return Err(VendError::CorruptRecord {
                    secret_name: name.to_owned(),
                    reason,
                });
            }
            Some(Ok(r)) => r,
        };
        Ok(match record.state {
            RecordState::Active => Seen::Active(version, record),
            RecordState::Pending => Seen::Pending(version, record),
            RecordState::Revoked => {
                return Err(VendError::Revoked {
                    secret_name: name.to_owned(),
                });
            }
        })
    }

    #[instrument(skip_all, fields(secret = %d.secret_name, request_id = %d.request_id))]
    async fn ensure(&self, d: &Desired, deadline: Instant) -> Result<ProvisionReply, VendError> {
        // Read first when this container knows the secret exists (a repeat costs one call);
        // otherwise try to create it first (a new key costs three).
        let mut optimistic = !self.knows(&d.secret_name);
        let mut ambiguous = 0;
        for _ in 0..MAX_ROUNDS {
            let seen = if optimistic {
                optimistic = false;
                Seen::Absent
            } else {
                self.observe(&d.secret_name).await?
            };
            match seen {
                Seen::Absent => {
                    let record = self.pending_record(d, 1);
                    let value = record.to_secret();
                    let mut all_tags = d.tags.clone();
                    all_tags.extend(Self::record_tags(&record));
                    let created = self
                        .store
                        .create(&NewSecret {
                            name: &d.secret_name,
                            value: &value,
                            description: d.description.as_deref(),
                            tags: &all_tags,
                            kms_key_id: d.kms_key_id.as_deref(),
                        })
                        .await;
                    match created {
                        Ok(w) => {
                            self.remember(&d.secret_name, true);
                            let owned = Owned {
                                record,
                                version_id: w.version_id,
                                arn: w.arn,
                            };
                            match self.mint(d, owned).await? {
                                MintOutcome::Done(reply) => return Ok(reply),
                                MintOutcome::Again(e) => {
                                    ambiguous += 1;
                                    if ambiguous >= MAX_AMBIGUOUS {
                                        return Err(e.into());
                                    }
                                }
                            }
                        }
                        Err(e) if e.kind() == StoreErrorKind::AlreadyExists => {
                            self.remember(&d.secret_name, true);
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                Seen::Active(version, record) => {
                    if let Some(reply) = self.converge(d, version, record).await? {
                        return Ok(reply);
                    }
                }
                Seen::Pending(version, record) => {
                    let lease_until = record.lease_until.unwrap_or(record.created_at);
                    if lease_until > now() {
                        self.wait_for_change(
                            &d.secret_name,
                            &version.version_id,
                            lease_until,
                            deadline,
                        )
                        .await?;
                        continue;
                    }
                    match self.take_over(d, version, record).await? {
                        Some(MintOutcome::Done(reply)) => return Ok(reply),
                        Some(MintOutcome::Again(e)) => {
                            ambiguous += 1;
                            if ambiguous >= MAX_AMBIGUOUS {
                                return Err(e.into());
                            }
                        }
                        None => {}
                    }
                }
            }
        }
        Err(VendError::InProgress {
            secret_name: d.secret_name.clone(),
        })
    }

    /// Polls until the current version changes or the lease ends (bounded by the deadline).
    async fn wait_for_change(
        &self,
        name: &str,
        version_id: &str,
        lease_until: OffsetDateTime,
        deadline: Instant,
    ) -> Result<(), VendError> {
        let mut pause = Duration::from_millis(100);
        loop {
            let lease_left = (lease_until - now()).try_into().unwrap_or(Duration::ZERO);
            let time_left = deadline
                .saturating_duration_since(Instant::now())
                .saturating_sub(DEADLINE_MARGIN);
            if lease_left.is_zero() {
                return Ok(());
            }
            if time_left.is_zero() {
                return Err(VendError::InProgress {
                    secret_name: name.to_owned(),
                });
            }
            tokio::time::sleep(pause.min(lease_left).min(time_left)).await;
            pause = (pause * 2).min(Duration::from_secs(1));
            match self.store.get(name, "AWSCURRENT").await? {
                Some(v) if v.version_id == version_id => {}
                _ => return Ok(()),
            }
        }
    }

    /// A pending record whose lease has ended: its minting invocation died. Deletes whatever
    /// key that attempt may have minted, then claims the record with a compare-and-set on the
    /// version token. `None`: another invocation claimed it first; go round again.
    async fn take_over(
        &self,
        d: &Desired,
        version: SecretVersion,
        stale: SecretRecord,
    ) -> Result<Option<MintOutcome>, VendError> {
        warn!(openrouter_key_name = %stale.openrouter_key_name, "pending record's lease ended: cleaning up its attempt");
        self.delete_attempt(&stale).await?;
        let record = self.pending_record(d, stale.generation);
        let put = self
            .store
            .put(
                &d.secret_name,
                &record.to_secret(),
                &token(&version.version_id, "claim"),
                &["AWSCURRENT"],
            )
            .await;
        let written = match put {
            Ok(w) => w,
            Err(e) if e.kind() == StoreErrorKind::VersionConflict => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        self.store
            .tag(&d.secret_name, &Self::record_tags(&record))
            .await?;
        let owned = Owned {
            record,
            version_id: written.version_id,
            arn: version.arn,
        };
        Ok(Some(self.mint(d, owned).await?))
    }

    /// Deletes every key named for a pending attempt (there is at most one unless OpenRouter
    /// misbehaved). Listing includes disabled keys.
    async fn delete_attempt(&self, pending: &SecretRecord) -> Result<(), VendError> {
        let found = self
            .keys_named(&pending.workspace_id, &pending.openrouter_key_name)
            .await?;
        let client = self.openrouter().await?;
        for hash in found {
            client.delete_key(&hash).await?;
            info!(key_hash = %hash, "deleted the key of an unfinished attempt");
        }
        Ok(())
    }

    /// Mints the key a pending record names and stores it at once.
    async fn mint(&self, d: &Desired, owned: Owned) -> Result<MintOutcome, VendError> {
        let client = self.openrouter().await?;
        let pending = owned.record;
        let create = CreateKeyRequest {
            name: pending.openrouter_key_name.clone(),
            limit: Some(pending.limit),
            limit_reset: pending.limit_reset,
            include_byok_in_limit: Some(pending.include_byok_in_limit),
            expires_at: Some(format_expires_at(pending.expires_at)),
            workspace_id: Some(pending.workspace_id.clone()),
        };
        let created = match client.create_key_once(&create).await {
            Ok(created) => created,
            Err(e) if e.kind() == orkv_openrouter::ErrorKind::CreateOutcomeUnknown => {
                warn!(error = %e, "key creation outcome unknown: reconciling");
                self.delete_attempt(&pending).await?;
                // Release the claim so the next round (or a retry) can mint at once.
                let mut released = pending.clone();
                released.lease_until = Some(now() - time::Duration::SECOND);
                self.store
                    .put(
                        &d.secret_name,
                        &released.to_secret(),
                        &token(&owned.version_id, "release"),
                        &["AWSCURRENT"],
                    )
                    .await?;
                return Ok(MintOutcome::Again(e));
            }
            Err(e) => {
                // A definite refusal: no key exists. A first-generation secret only ever held
                // this pending record, so it goes too and the failed request leaves nothing.
                if pending.generation == 1 {
                    self.store.delete(&d.secret_name, true).await?;
                    self.remember(&d.secret_name, false);
                }
                return Err(e.into());
            }
        };
        let hash = created.data.hash.clone();
        let mut active = pending;
        active.state = RecordState::Active;
        active.api_key = Some(into_secret(created.key));
        active.key_hash = Some(hash.clone());
        active.lease_until = None;
        active.claim = None;
        if let Some(at) = created.data.expires_at {
            active.expires_at = at;
        }
        let value = active.to_secret();
        let put_token = token(&owned.version_id, "active");
        let mut attempt = 0;
        let written = loop {
            match self
                .store
                .put(&d.secret_name, &value, &put_token, &["AWSCURRENT"])
                .await
            {
                Ok(w) => break w,
                Err(e) if e.is_transient() && attempt < 3 => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                }
                Err(e) if e.is_transient() => {
                    // An earlier write may have landed with its reply lost: read it back.
                    match self
                        .store
                        .get_version(&d.secret_name, Some(&put_token), None)
                        .await
                    {
                        Ok(Some(v))
                            if SecretRecord::from_secret(&v.value)
                                .and_then(Result::ok)
                                .and_then(|r| r.key_hash)
                                .as_deref()
                                == Some(hash.as_str()) =>
                        {
                            break orkv_store::Written {
                                arn: v.arn,
                                name: d.secret_name.clone(),
                                version_id: v.version_id,
                            };
                        }
                        // Not stored, or unknown. Not deleted here: a timed-out write may
                        // still land. The lease ends after the function's timeout, and the
                        // invocation that takes the record over deletes this attempt's key
                        // (it carries the record's name) unless it was stored.
                        Ok(_) => {
                            warn!(key_hash = %hash, error = %e, "could not store the new key; the take-over deletes it");
                        }
                        Err(read) => {
                            warn!(key_hash = %hash, error = %e, read_error = %read, "could not store the new key, nor tell whether it was stored");
                        }
                    }
                    return Err(e.into());
                }
                Err(e) => {
                    // The plaintext cannot be kept anywhere else: delete the key.
                    warn!(key_hash = %hash, error = %e, "could not store the new key: deleting it");
                    if let Err(del) = client.delete_key(&hash).await {
                        warn!(key_hash = %hash, error = %del, "could not delete the unstored key; the next retry or sweep will");
                    }
                    return Err(e.into());
                }
            }
        };
        info!(key_hash = %hash, generation = active.generation, "key minted and stored");
        let arn = if written.arn.is_empty() {
            owned.arn
        } else {
            written.arn
        };
        Ok(MintOutcome::Done(reply(Status::Created, arn, d, &active)))
    }

    /// The request changed a field fixed at creation (workspace, lifetime): replace the key by
    /// rotation with the new settings. The old key stays valid for the grace period.
    async fn rotate_for_change(&self, d: &Desired) -> Result<ProvisionReply, VendError> {
        let next = crate::rotate::NextSettings {
            workspace_id: &d.workspace.id,
            lifetime: d.lifetime,
            cap: d.cap,
            rotate_before_seconds: d.rotate_before_seconds,
        };
        let action = Box::pin(self.rotate_now(
            &d.secret_name,
            crate::actions::Reason::Changed,
            &d.request_id,
            Some(next),
            d.trigger,
        ))
        .await?;
        let (_, record) = self.current_record(&d.secret_name).await?;
        let status = match action.status {
            crate::actions::ActionStatus::RotationStarted => Status::RotationStarted,
            crate::actions::ActionStatus::Unchanged => Status::Unchanged,
            _ => Status::Rotated,
        };
        Ok(reply(status, action.secret_arn, d, &record))
    }

    /// An active record exists: answer unchanged, update the cap in place, or refuse a change
    /// to a field fixed at creation.
    async fn converge(
        &self,
        d: &Desired,
        version: SecretVersion,
        record: SecretRecord,
    ) -> Result<Option<ProvisionReply>, VendError> {
        let immutable = if record.key_name != d.key_name {
            Some("key_name")
        } else {
            None
        };
        if immutable.is_none()
            && (record.workspace_id != d.workspace.id || record.lifetime != d.lifetime)
        {
            return self.rotate_for_change(d).await.map(Some);
        }
        if let Some(field) = immutable {
            return Err(VendError::ImmutableField {
                field,
                secret_arn: version.arn,
                key_hash: record.key_hash.unwrap_or_default(),
                workspace_id: record.workspace_id,
                expires_at: rfc3339(record.expires_at),
            });
        }
        let same_cap = record.limit == d.cap.limit
            && record.limit_reset == d.cap.limit_reset
            && record.include_byok_in_limit == d.cap.include_byok_in_limit;
        if same_cap && record.rotate_before_seconds == d.rotate_before_seconds {
            return Ok(Some(reply(Status::Unchanged, version.arn, d, &record)));
        }
        let hash = record.key_hash.clone().unwrap_or_default();
        if !same_cap {
            let patch = KeyPatch {
                cap: Some(d.cap),
                ..KeyPatch::default()
            };
            self.openrouter().await?.update_key(&hash, &patch).await?;
        }
        let mut updated = record;
        updated.limit = d.cap.limit;
        updated.limit_reset = d.cap.limit_reset;
        updated.include_byok_in_limit = d.cap.include_byok_in_limit;
        let rotate_changed = updated.rotate_before_seconds != d.rotate_before_seconds;
        updated.rotate_before_seconds = d.rotate_before_seconds;
        // The same change from concurrent duplicates writes the same version (same token).
        let fingerprint = format!(
            "update:{}:{:?}:{}:{}",
            d.cap.limit, d.cap.limit_reset, d.cap.include_byok_in_limit, d.rotate_before_seconds
        );
        // Written under its own label, then made current with a compare-and-set on
        // AWSCURRENT, so a rotation that finished meanwhile is never overwritten.
        let written = self
            .store
            .put(
                &d.secret_name,
                &updated.to_secret(),
                &token(&version.version_id, &fingerprint),
                &[UPDATE_STAGE],
            )
            .await?;
        match self
            .store
            .move_stage(
                &d.secret_name,
                "AWSCURRENT",
                Some(&version.version_id),
                Some(&written.version_id),
            )
            .await
        {
            Ok(()) => {}
            Err(e) if e.kind() == StoreErrorKind::InvalidRequest => {
                // AWSCURRENT moved (a rotation finished, or a concurrent duplicate won).
                let now_current = self.store.get(&d.secret_name, "AWSCURRENT").await?;
                if now_current.is_some_and(|v| v.version_id == written.version_id) {
                    // The duplicate wrote the same version: done.
                } else {
                    info!("the secret changed while updating: going round again");
                    return Ok(None);
                }
            }
            Err(e) => return Err(e.into()),
        }
        if rotate_changed {
            self.store
                .tag(&d.secret_name, &Self::record_tags(&updated))
                .await?;
        }
        info!(key_hash = %hash, "key cap updated in place");
        let arn = if written.arn.is_empty() {
            version.arn
        } else {
            written.arn
        };
        Ok(Some(reply(Status::Updated, arn, d, &updated)))
    }
}

fn into_secret(key: ApiKey) -> SecretString {
    SecretString::from(key.expose_secret().to_owned())
}

fn reply(status: Status, arn: String, d: &Desired, r: &SecretRecord) -> ProvisionReply {
    ProvisionReply {
        status,
        secret_arn: arn,
        secret_name: d.secret_name.clone(),
        key_hash: r.key_hash.clone().unwrap_or_default(),
        key_name: r.key_name.clone(),
        workspace_id: r.workspace_id.clone(),
        workspace: r.workspace_slug.clone(),
        expires_at: rfc3339(r.expires_at),
        rotate_at: rfc3339(r.rotate_at()),
        generation: r.generation,
        limit: r.limit,
        limit_reset: r.limit_reset,
        include_byok_in_limit: r.include_byok_in_limit,
        request_id: d.request_id.clone(),
        trigger: d.trigger,
    }
}

/// The Lambda handler: payload in, JSON reply or a typed `Diagnostic` out.
///
/// # Errors
/// A `Diagnostic` whose `error_type` is the [`VendError`] kind.
pub async fn handle_lambda(
    deps: &Deps,
    event: lambda_runtime::LambdaEvent<serde_json::Value>,
) -> Result<serde_json::Value, lambda_runtime::Diagnostic> {
    let deadline = lambda_deadline(event.context.deadline);
    match Box::pin(deps.handle_any(event.payload, deadline)).await {
        Ok(reply) => {
            info!(
                status = reply.get("status").and_then(|s| s.as_str()).unwrap_or(""),
                secret = reply
                    .get("secret_name")
                    .and_then(|s| s.as_str())
                    .unwrap_or(""),
                key_hash = reply.get("key_hash").and_then(|s| s.as_str()).unwrap_or(""),
                "request handled"
            );
            Ok(reply)
        }
        Err(e) => {
            warn!(error_type = e.kind(), error = %e, "provision failed");
            Err(e.into())
        }
    }
}

/// Converts the runtime's deadline (epoch milliseconds) to an `Instant`.
pub(crate) fn lambda_deadline(deadline_ms: u64) -> Instant {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let left = deadline_ms.saturating_sub(now_ms);
    // Local runtimes may send no deadline: allow a minute.
    let left = if left == 0 || left > 15 * 60 * 1000 {
        60_000
    } else {
        left
    };
    Instant::now() + Duration::from_millis(left)
}
