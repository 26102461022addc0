//! Provisioning: resolve and check the request, then bring the managed secret and its
//! OpenRouter key to the requested state. Crash-safe and idempotent; see
//! `docs/adr/0001-store-first-provisioning.md` for the design.
//!
//! Happy paths, counted in remote calls (OpenRouter + Secrets Manager):
//! - new key: `CreateSecret` (pending record) + `POST /keys` + `PutSecretValue` (active) = 3;
//! - repeated request: `GetSecretValue` = 1 (on a container that has seen the secret);
//! - changed cap: `GetSecretValue` + `DescribeSecret` (a running rotation takes the change
//!   instead) + `PATCH /keys/{hash}` + `PutSecretValue` + `UpdateSecretVersionStage` = 5.
//!
//! Files: this one resolves and loops (observe, then act); `claim` writes pending records,
//! takes over dead attempts and mints; `update` converges an active record.

mod claim;
mod update;

use std::time::{Duration, Instant};

use orkv_openrouter::Workspace;
use orkv_store::{NewSecret, SecretVersion, StoreErrorKind};
use serde::Serialize;
use time::OffsetDateTime;
use tracing::instrument;

use crate::deps::Deps;
use crate::domain::lifetime::Lifetime;
use crate::domain::names::{MAX_KEY_NAME, MAX_MANAGED_SECRET_NAME};
use crate::domain::policy::Permission;
use crate::domain::record::{MANAGED_BY, RecordState, SecretRecord};
use crate::domain::scope::{Scope, WorkspaceMatch, match_workspace, owner_matches};
use crate::domain::tags::{self, stage::AWSCURRENT};
use crate::error::VendError;
use crate::input::invocation::{Action, Trigger};
use crate::input::provision::{ProvisionRequest, lifetime_within, rotate_before_within};
use crate::ops::announce::{CapDetail, Origin, ResultDetail};

use crate::ops::guardrail;
use crate::ops::read;
use crate::ops::start;
use claim::{MintOutcome, Owned};

/// Rounds of observe-and-act before giving up with `ProvisionInProgress`.
const MAX_ROUNDS: usize = 6;
/// Ambiguous creates (each cleaned up) tolerated in one invocation before failing.
const MAX_AMBIGUOUS: usize = 2;
/// Time kept back from the Lambda deadline for answering.
const DEADLINE_MARGIN: Duration = Duration::from_millis(1500);

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
    /// The owning tenant (`None`: the single-policy form).
    tenant: Option<String>,
    /// Whether the caller may change an existing key (the `update` action).
    may_update: bool,
    tenant_label: String,
    /// The guardrail the key must carry (the policy's, checked against OpenRouter).
    guardrail: Option<String>,
}

/// What `GetSecretValue` showed.
enum Seen {
    Absent,
    Active(SecretVersion, SecretRecord),
    Pending(SecretVersion, SecretRecord),
}

/// Provisions what a validated request asks for. `deadline` bounds every wait.
///
/// # Errors
/// A [`VendError`] whose `kind()` names the failure; bad input creates nothing.
pub async fn provision(
    deps: &Deps,
    req: ProvisionRequest,
    scope: &Scope<'_>,
    request_id: String,
    trigger: Trigger,
    deadline: Instant,
) -> Result<ProvisionReply, VendError> {
    scope.require(Permission::Provision)?;
    let desired = resolve(deps, req, scope, request_id, trigger).await?;
    Box::pin(ensure(deps, &desired, deadline)).await
}

/// For a tenant, a workspace it may not use and one that does not exist are refused alike;
/// the single-policy form keeps naming an unknown workspace.
fn outside_workspace(scope: &Scope<'_>, workspace: &str) -> VendError {
    if scope.tenant_name().is_some() {
        VendError::scope("workspace", "is not one of this tenant's workspaces")
    } else {
        VendError::UnknownWorkspace {
            workspace: workspace.to_owned(),
        }
    }
}

/// The secret's name: the request's, or `<prefix><workspace slug>/<key_name>`; under the
/// caller's prefix, and short enough for every generation's OpenRouter key name.
fn secret_name_of(
    req: &ProvisionRequest,
    scope: &Scope<'_>,
    slug: &str,
) -> Result<String, VendError> {
    let prefix = &scope.tenant.secret_prefix;
    let secret_name = req
        .secret_name
        .clone()
        .unwrap_or_else(|| format!("{prefix}{slug}/{}", req.key_name));
    scope.check_name(&secret_name)?;
    if secret_name.len() > MAX_MANAGED_SECRET_NAME {
        return Err(VendError::invalid(
            "secret_name",
            format!(
                "must be at most {MAX_MANAGED_SECRET_NAME} characters (given or derived from workspace and key_name), so that every generation's OpenRouter key name fits {MAX_KEY_NAME}"
            ),
        ));
    }
    Ok(secret_name)
}

/// Resolves the workspace exactly, checks the tenant's scope and policy, and names the
/// secret. Reads nothing of any secret: a refusal here is the same whether the secret
/// it names exists or not.
async fn resolve(
    deps: &Deps,
    req: ProvisionRequest,
    scope: &Scope<'_>,
    request_id: String,
    trigger: Trigger,
) -> Result<Desired, VendError> {
    if let Some(name) = &req.secret_name {
        scope.check_name(name)?;
    }
    let outside = || outside_workspace(scope, &req.workspace);
    let workspace = match match_workspace(deps.workspaces().await?, &req.workspace) {
        WorkspaceMatch::One { workspace, .. } => workspace.clone(),
        WorkspaceMatch::None => return Err(outside()),
        WorkspaceMatch::Ambiguous(count) => {
            return Err(VendError::AmbiguousWorkspace {
                workspace: req.workspace.clone(),
                count,
            });
        }
    };
    let entry = scope
        .entry_for(deps.policy_workspaces().await?, &workspace.id)
        .ok_or_else(outside)?;
    let bounds = entry.bounds(&deps.cfg.policy.bounds);
    let (lifetime, seconds) = if req.lifetime_given {
        (req.lifetime, req.lifetime_seconds)
    } else {
        let ttl = bounds.default_ttl_seconds;
        (Lifetime::TtlSeconds(ttl), ttl)
    };
    lifetime_within(lifetime, seconds, &bounds)?;
    let rotate_before_seconds = rotate_before_within(
        req.rotate_before_given.then_some(req.rotate_before_seconds),
        seconds,
        &bounds,
    )?;
    if req.limit > entry.max_limit {
        return Err(VendError::policy(
            "limit",
            format!(
                "{} exceeds the maximum cap of {} USD for workspace {}",
                req.limit, entry.max_limit, workspace.slug
            ),
        ));
    }
    let secret_name = secret_name_of(&req, scope, &workspace.slug)?;
    // Before any side effect: a guardrail that does not exist or lives elsewhere is a
    // configuration error naming the policy field.
    let guardrail = guardrail::guardrail_for(deps, &secret_name, &workspace.id).await?;
    let mut tag_list: Vec<(String, String)> = req.tags.into_iter().collect();
    tag_list.push((tags::MANAGED_BY.into(), MANAGED_BY.into()));
    tag_list.push((tags::KEY_NAME.into(), req.key_name.clone()));
    let tenant = scope.tenant_name().map(str::to_owned);
    Ok(Desired {
        secret_name,
        key_name: req.key_name,
        workspace,
        cap: orkv_openrouter::Cap {
            limit: req.limit,
            limit_reset: req.limit_reset,
            include_byok_in_limit: req.include_byok_in_limit,
        },
        lifetime,
        rotate_before_seconds,
        description: req.description,
        tags: tag_list,
        kms_key_id: req
            .kms_key_id
            .or_else(|| deps.cfg.default_kms_key_id.clone()),
        request_id,
        trigger,
        tenant,
        may_update: scope.allows(Permission::Update),
        tenant_label: scope.tenant.label().to_owned(),
        guardrail,
    })
}

async fn observe(deps: &Deps, name: &str) -> Result<Seen, VendError> {
    let Some(version) = read::get_ours(deps, name, AWSCURRENT).await? else {
        deps.remember(name, false);
        return Ok(Seen::Absent);
    };
    deps.remember(name, true);
    let record = SecretRecord::read(name, &version.value)?;
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

/// Observe, then act, until the secret holds the desired state.
#[instrument(skip_all, fields(secret = %d.secret_name, request_id = %d.request_id))]
async fn ensure(deps: &Deps, d: &Desired, deadline: Instant) -> Result<ProvisionReply, VendError> {
    // Read first when this container knows the secret exists (a repeat costs one call);
    // otherwise try to create it first (a new key costs three).
    let mut optimistic = !deps.knows(&d.secret_name);
    let mut ambiguous = 0;
    let mut unreadable = 0;
    for _ in 0..MAX_ROUNDS {
        let read = !optimistic;
        let seen = if optimistic {
            optimistic = false;
            Seen::Absent
        } else {
            observe(deps, &d.secret_name).await?
        };
        if let Seen::Active(_, r) | Seen::Pending(_, r) = &seen {
            owner_matches(d.tenant.as_deref(), r.tenant.as_deref())?;
        }
        let outcome = match seen {
            Seen::Absent => {
                let outcome = create_and_mint(deps, d, deadline).await?;
                // Read as absent, yet it exists: a secret of that name the product may not
                // read (under its tag-scoped role, one that is not the product's). Twice
                // rules out a concurrent creation.
                unreadable += usize::from(read && outcome.is_none());
                if unreadable >= 2 {
                    return Err(VendError::NotManaged {
                        secret_name: d.secret_name.clone(),
                    });
                }
                outcome
            }
            Seen::Active(version, record) => update::converge(deps, d, version, record)
                .await?
                .map(MintOutcome::Done),
            Seen::Pending(version, record) => {
                let lease_until = record.lease_until.unwrap_or(record.created_at);
                if lease_until > deps.clock.now() {
                    wait_for_change(
                        deps,
                        &d.secret_name,
                        &version.version_id,
                        lease_until,
                        deadline,
                    )
                    .await?;
                    continue;
                }
                claim::take_over(deps, d, version, record).await?
            }
        };
        match outcome {
            Some(MintOutcome::Done(reply)) => {
                if reply.status == Status::Created {
                    start::configure_new(deps, &d.secret_name).await;
                }
                return Ok(reply);
            }
            Some(MintOutcome::Again(e)) => {
                ambiguous += 1;
                if ambiguous >= MAX_AMBIGUOUS {
                    return Err(e.into());
                }
            }
            None => {}
        }
    }
    Err(VendError::InProgress {
        secret_name: d.secret_name.clone(),
    })
}

/// Creates the secret holding a pending record, then mints. `None`: it exists already.
async fn create_and_mint(
    deps: &Deps,
    d: &Desired,
    deadline: Instant,
) -> Result<Option<MintOutcome>, VendError> {
    let record = claim::pending_record(deps, d, 1);
    let value = record.to_secret();
    let mut all_tags = d.tags.clone();
    all_tags.extend(tags::record_tags(&record));
    let new = NewSecret {
        name: &d.secret_name,
        value: &value,
        description: d.description.as_deref(),
        tags: &all_tags,
        kms_key_id: d.kms_key_id.as_deref(),
    };
    let mut pause = Duration::from_millis(200);
    let created = loop {
        match deps.store.create(&new).await {
            // A forced delete (a refused first mint) finishes asynchronously: until it
            // has, AWS refuses to create the name again and asks for back off and retry
            // (API reference, DeleteSecret). Nothing of that name is visible meanwhile.
            Err(e)
                if e.kind() == StoreErrorKind::InvalidRequest
                    && Instant::now() + pause + DEADLINE_MARGIN < deadline
                    && read::describe_ours(deps, &d.secret_name).await?.is_none() =>
            {
                tracing::warn!(error = %e, "the name is still being deleted: retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            other => break other,
        }
    };
    match created {
        Ok(w) => {
            deps.remember(&d.secret_name, true);
            let owned = Owned {
                record,
                version_id: w.version_id,
                arn: w.arn,
            };
            Ok(Some(claim::mint(deps, d, owned).await?))
        }
        Err(e) if e.kind() == StoreErrorKind::AlreadyExists => {
            deps.remember(&d.secret_name, true);
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// Polls until the current version changes or the lease ends (bounded by the deadline).
async fn wait_for_change(
    deps: &Deps,
    name: &str,
    version_id: &str,
    lease_until: OffsetDateTime,
    deadline: Instant,
) -> Result<(), VendError> {
    let mut pause = Duration::from_millis(100);
    loop {
        let lease_left = (lease_until - deps.clock.now())
            .try_into()
            .unwrap_or(Duration::ZERO);
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
        match deps.store.get(name, AWSCURRENT).await? {
            Some(v) if v.version_id == version_id => {}
            _ => return Ok(()),
        }
    }
}

impl ProvisionReply {
    /// The result event of this reply, for `tenant`.
    pub(crate) fn announcement(&self, tenant: Option<&str>) -> ResultDetail {
        let outcome = serde_json::to_value(self.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let mut d = ResultDetail::new(Origin::Request(Action::Provision), outcome).for_request(
            Some(&self.request_id),
            self.trigger,
            tenant,
        );
        d.repeat = self.status == Status::Unchanged;
        d.secret_name = Some(self.secret_name.clone());
        d.secret_arn = Some(self.secret_arn.clone());
        d.key_hash = Some(self.key_hash.clone()).filter(|h| !h.is_empty());
        d.key_name = Some(self.key_name.clone());
        d.workspace = Some(self.workspace.clone());
        d.workspace_id = Some(self.workspace_id.clone());
        d.generation = Some(self.generation);
        d.expires_at = Some(self.expires_at.clone());
        d.cap = Some(CapDetail {
            limit: self.limit,
            limit_reset: self.limit_reset,
            include_byok_in_limit: self.include_byok_in_limit,
        });
        if matches!(self.status, Status::Rotated | Status::RotationStarted) {
            d.reason = Some(tags::Reason::Changed.as_str().to_owned());
        }
        d
    }
}

/// The reply for record `r` of the desired secret.
fn reply(status: Status, arn: String, d: &Desired, r: &SecretRecord) -> ProvisionReply {
    ProvisionReply {
        status,
        secret_arn: arn,
        secret_name: d.secret_name.clone(),
        key_hash: r.key_hash.clone().unwrap_or_default(),
        key_name: r.key_name.clone(),
        workspace_id: r.workspace_id.clone(),
        workspace: r.workspace_slug.clone(),
        expires_at: tags::time_value(r.expires_at),
        rotate_at: tags::time_value(r.rotate_at()),
        generation: r.generation,
        limit: r.limit,
        limit_reset: r.limit_reset,
        include_byok_in_limit: r.include_byok_in_limit,
        request_id: d.request_id.clone(),
        trigger: d.trigger,
    }
}
