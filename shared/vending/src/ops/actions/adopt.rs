//! Adopt: take over a key the product did not mint, already stored in a secret under the
//! tenant's prefix (the Terraform companion module's `{"api_key": "..."}`, or a bare key with
//! `convert_to_json`). Every check runs before any write, so a refusal changes nothing:
//!
//! 1. scope and policy: the action is the tenant's, the name under its prefix, the workspace
//!    one of its own, the successors' lifetime within bounds (no remote call);
//! 2. `DescribeSecret`: not managed already, not deleted;
//! 3. `GetSecretValue(AWSCURRENT)`: the value is a key (`api_key`, or the bare value);
//! 4. `GET /keys/{hash}`: the key exists in that workspace, is enabled, and carries a cap
//!    within the workspace's maximum.
//!
//! Then the writes: `TagResource` (managed, the tenant, the record's tags, and `orkv:adopting`
//! with the request's digest, so a retry after a crash finishes the same adoption), the record
//! as a new version made `AWSCURRENT` by compare-and-set (`api_key` byte for byte the same key,
//! so a consumer sees no change), `UntagResource` of `orkv:adopting`, and the read-back of
//! `AWSCURRENT` and `GET /key`. A key without an expiry, or with one outside the policy, is
//! rotated into a conforming successor at once (or left due for the next sweep).

use orkv_openrouter::{ErrorKind, Key, Workspace};
use orkv_store::{SecretDescription, StoreErrorKind};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use time::OffsetDateTime;
use tracing::info;

use crate::deps::Deps;
use crate::domain::lifetime::Lifetime;
use crate::domain::names::token;
use crate::domain::policy::Permission;
use crate::domain::record::{MANAGED_BY, RecordState, RecordTerms, SecretRecord};
use crate::domain::scope::{Scope, WorkspaceMatch, match_workspace};
use crate::domain::tags::{self, Reason, stage};
use crate::error::VendError;
use crate::input::adopt::{AdoptRequest, NonConforming, adoptable_name};
use crate::input::invocation::{Action, Trigger, request_digest};
use crate::input::provision::{lifetime_within, rotate_before_within};
use crate::ops::confirm::{self, Claim, Confirmation};
use crate::ops::promote::{self, Promoted};

use super::adoptable::{keepable, key_adoptable, starts_clean};
use super::{ActionReply, ActionStatus};
use crate::ops::actions::rotate_now;
use crate::ops::guardrail;
use crate::ops::owned::held_elsewhere;
use crate::ops::read;
use crate::ops::start;

/// What the checks established, before any write.
struct Checked {
    desc: SecretDescription,
    key_name: String,
    version_id: String,
    key: SecretString,
    listed: Key,
    workspace: Workspace,
    lifetime: Lifetime,
    rotate_before_seconds: u64,
    /// The key's expiry is within the policy (else a successor replaces it).
    conforming: bool,
    now: OffsetDateTime,
    /// The guardrail the workspace's policy names (assigned as the first write).
    guardrail: Option<String>,
}

/// What the policy allows this adoption.
pub(crate) struct Terms {
    workspace: Workspace,
    max_limit: f64,
    bounds: crate::domain::policy::Bounds,
    lifetime: Lifetime,
    rotate_before_seconds: u64,
}

/// The key a secret's value holds: `api_key` of a JSON object holding nothing else, or the
/// bare value (`bare: true`).
fn key_in(value: &SecretString) -> Result<(SecretString, bool), VendError> {
    let text = value.expose_secret();
    let not_a_key = || {
        VendError::adoption(
            "secret_name",
            "the secret's value is not an OpenRouter key (a JSON object whose api_key is one, or the bare key)",
        )
    };
    let is_key =
        |s: &str| s.starts_with("sk-or-") && s.len() >= 16 && !s.contains(char::is_whitespace);
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => {
            let key = map
                .get("api_key")
                .and_then(Value::as_str)
                .filter(|k| is_key(k));
            let Some(key) = key else {
                return Err(not_a_key());
            };
            let mut others: Vec<&str> = map
                .keys()
                .map(String::as_str)
                .filter(|k| *k != "api_key")
                .collect();
            if !others.is_empty() {
                others.sort_unstable();
                return Err(VendError::adoption(
                    "secret_name",
                    format!(
                        "the secret's JSON holds fields other than api_key ({}): the record would drop them and break their readers",
                        others.join(", ")
                    ),
                ));
            }
            Ok((SecretString::from(key.to_owned()), false))
        }
        _ if is_key(text) => Ok((SecretString::from(text.to_owned()), true)),
        _ => Err(not_a_key()),
    }
}

/// Serves a validated adopt request.
///
/// # Errors
/// `AdoptionRefused` (naming the field and the rule), scope and policy refusals, each
/// with nothing changed; store and OpenRouter errors (the request can be repeated).
pub async fn adopt_request(
    deps: &Deps,
    req: &AdoptRequest,
    scope: &Scope<'_>,
    request_id: &str,
    trigger: Trigger,
) -> Result<ActionReply, VendError> {
    let terms = adoption_terms(deps, req, scope).await?;
    let digest = request_digest(request_id);
    let name = &req.secret_name;
    let desc = deps
        .store
        .describe(name)
        .await?
        .filter(|d| !d.deleted)
        .ok_or_else(|| VendError::SecretNotFound {
            secret_name: name.clone(),
        })?;
    let mut reply = ActionReply::new(
        Action::Adopt,
        ActionStatus::Adopted,
        &desc.arn,
        name,
        request_id,
        trigger,
    );
    let mine = desc.tag(tags::ADOPTING) == Some(digest.as_str());
    if desc.tag(tags::MANAGED_BY) == Some(MANAGED_BY) && !mine {
        return adopted_before(deps, &desc, request_id, reply).await;
    }
    scope.check_owner(desc.tag(tags::TENANT))?;
    starts_clean(&desc, mine)?;
    keepable(
        &desc,
        deps.cfg.rotation_lambda_arn.as_deref(),
        deps.cfg.default_kms_key_id.as_deref(),
    )?;
    let version = deps
        .store
        .get(&desc.arn, stage::AWSCURRENT)
        .await?
        .ok_or_else(|| VendError::adoption("secret_name", "the secret holds no value"))?;
    if mine
        && let Some(Ok(r)) = SecretRecord::from_secret(&version.value)
        && r.request_id == request_id
    {
        // This adoption wrote its record and died before untagging: finish it.
        deps.store
            .untag(&desc.arn, &[tags::ADOPTING.to_owned()])
            .await?;
        let mut done = adopted_before(deps, &desc, request_id, reply).await?;
        done.status = ActionStatus::Adopted;
        return Ok(done);
    }
    let rotation_on = desc.rotation_enabled;
    let checked = checked(deps, req, terms, desc, version).await?;
    let record = write_adopted(deps, &checked, scope, request_id, &digest).await?;
    reply.key_hash.clone_from(&record.key_hash);
    reply.generation = Some(record.generation);
    reply.facts = Some(record.facts());
    info!(secret = %name, key_hash = record.key_hash.as_deref().unwrap_or(""), conforming = checked.conforming, "key adopted");
    if !checked.conforming && req.non_conforming == NonConforming::RotateNow {
        let rotated = Box::pin(rotate_now::rotate_now(
            deps,
            name,
            Reason::Adopted,
            request_id,
            None,
            trigger,
        ))
        .await?;
        reply.key_hash = rotated.key_hash;
        reply.generation = rotated.generation;
        reply.facts = rotated.facts;
        reply.reason = Some(Reason::Adopted);
    } else if !rotation_on {
        // Compliant from adoption on, as a new secret is from creation (a rotation started
        // above configures it itself).
        start::configure_new(deps, name).await;
    }
    Ok(reply)
}

/// The checks of an adoption without its writes (a bulk adoption's plan): what
/// [`adopt_request`] would find: the key's hash, and whether its expiry conforms. A
/// managed secret is refused as already managed.
pub(crate) async fn inspect_adoption(
    deps: &Deps,
    req: &AdoptRequest,
    scope: &Scope<'_>,
) -> Result<(String, bool), VendError> {
    let terms = adoption_terms(deps, req, scope).await?;
    let desc = deps
        .store
        .describe(&req.secret_name)
        .await?
        .filter(|d| !d.deleted)
        .ok_or_else(|| VendError::SecretNotFound {
            secret_name: req.secret_name.clone(),
        })?;
    if desc.tag(tags::MANAGED_BY) == Some(MANAGED_BY) {
        return Err(VendError::adoption(
            "secret_name",
            "the secret is already managed by this product",
        ));
    }
    scope.check_owner(desc.tag(tags::TENANT))?;
    starts_clean(&desc, false)?;
    let version = deps
        .store
        .get(&desc.arn, stage::AWSCURRENT)
        .await?
        .ok_or_else(|| VendError::adoption("secret_name", "the secret holds no value"))?;
    let checked = checked(deps, req, terms, desc, version).await?;
    Ok((checked.listed.hash, checked.conforming))
}

/// Scope and policy, before any read: the action is the tenant's, the name under its
/// prefix, the workspace one of its own, the successors' lifetime within its bounds.
pub(crate) async fn adoption_terms(
    deps: &Deps,
    req: &AdoptRequest,
    scope: &Scope<'_>,
) -> Result<Terms, VendError> {
    scope.require(Permission::Adopt)?;
    scope.check_name(&req.secret_name)?;
    adoptable_name(&req.secret_name)?;
    let (workspace, max_limit, bounds) = adoptable_workspace(deps, scope, &req.workspace).await?;
    let ttl = req.ttl_seconds.unwrap_or(bounds.default_ttl_seconds);
    let lifetime = Lifetime::TtlSeconds(ttl);
    lifetime_within(lifetime, ttl, &bounds)?;
    let rotate_before_seconds = rotate_before_within(req.rotate_before_seconds, ttl, &bounds)?;
    Ok(Terms {
        workspace,
        max_limit,
        bounds,
        lifetime,
        rotate_before_seconds,
    })
}

/// The value's key, and the key itself in OpenRouter, checked against the terms.
async fn checked(
    deps: &Deps,
    req: &AdoptRequest,
    t: Terms,
    desc: SecretDescription,
    version: orkv_store::SecretVersion,
) -> Result<Checked, VendError> {
    let (key, bare) = key_in(&version.value)?;
    if bare && !req.convert_to_json {
        return Err(VendError::adoption(
            "convert_to_json",
            "the secret holds a bare key: adopting turns it into a JSON record, which breaks readers of the bare value; send \"convert_to_json\": true once they read api_key",
        ));
    }
    let listed = key_in_workspace(deps, &key, &t.workspace, t.max_limit).await?;
    let now = deps.clock.now();
    key_adoptable(&listed, now, deps.cfg.policy.org_max_key_lifetime_seconds)?;
    if held_elsewhere(deps, &desc.name, &listed).await? {
        return Err(VendError::adoption(
            "secret_name",
            "the secret's key is held by another managed secret: a key belongs to one secret",
        ));
    }
    // The guardrail the workspace's policy names is checked before any write.
    let guardrail = guardrail::guardrail_for(deps, &desc.name, &t.workspace.id).await?;
    let conforming = listed.expires_at.is_some_and(|e| {
        let left = (e - now).whole_seconds();
        left > i64::try_from(t.rotate_before_seconds).unwrap_or(i64::MAX)
            && u64::try_from(left)
                .is_ok_and(|l| l >= t.bounds.min_ttl_seconds && l <= t.bounds.max_ttl_seconds)
    });
    Ok(Checked {
        desc,
        key_name: req.key_name.clone(),
        version_id: version.version_id,
        key,
        listed,
        workspace: t.workspace,
        lifetime: t.lifetime,
        rotate_before_seconds: t.rotate_before_seconds,
        conforming,
        now,
        guardrail,
    })
}

/// The workspace `ident` names, if it is one of the caller's: (it, its maximum cap, the
/// lifetime bounds there).
async fn adoptable_workspace(
    deps: &Deps,
    scope: &Scope<'_>,
    ident: &str,
) -> Result<(Workspace, f64, crate::domain::policy::Bounds), VendError> {
    let outside = || {
        if scope.tenant_name().is_some() {
            VendError::scope("workspace", "is not one of this tenant's workspaces")
        } else {
            VendError::UnknownWorkspace {
                workspace: ident.to_owned(),
            }
        }
    };
    let workspace = match match_workspace(deps.workspaces().await?, ident) {
        WorkspaceMatch::One { workspace, .. } => workspace.clone(),
        WorkspaceMatch::None => return Err(outside()),
        WorkspaceMatch::Ambiguous(count) => {
            return Err(VendError::AmbiguousWorkspace {
                workspace: ident.to_owned(),
                count,
            });
        }
    };
    let entry = scope
        .entry_for(deps.policy_workspaces().await?, &workspace.id)
        .ok_or_else(outside)?;
    let bounds = entry.bounds(&deps.cfg.policy.bounds);
    Ok((workspace, entry.max_limit, bounds))
}

/// `GET /keys/{hash}`: the key exists in `workspace`, is enabled and capped within `max`.
async fn key_in_workspace(
    deps: &Deps,
    key: &SecretString,
    workspace: &Workspace,
    max: f64,
) -> Result<Key, VendError> {
    let hash = orkv_openrouter::key_hash(key.expose_secret());
    let missing = || {
        VendError::adoption(
            "workspace",
            format!(
                "holds no key with the secret's hash (workspace {})",
                workspace.slug
            ),
        )
    };
    let listed = match deps.openrouter().await?.get_key(&hash).await {
        Ok(k) => k,
        Err(e) if e.kind() == ErrorKind::NotFound => return Err(missing()),
        Err(e) => return Err(e.into()),
    };
    if listed.workspace_id != workspace.id {
        return Err(missing());
    }
    if listed.disabled {
        return Err(VendError::adoption(
            "secret_name",
            "the secret's key is disabled in OpenRouter",
        ));
    }
    match listed.limit {
        None => Err(VendError::policy(
            "limit",
            format!(
                "the key has no spend cap; every managed key has one (at most {max} USD in workspace {})",
                workspace.slug
            ),
        )),
        Some(l) if l > max => Err(VendError::policy(
            "limit",
            format!(
                "the key's cap of {l} USD exceeds the maximum cap of {max} USD for workspace {}",
                workspace.slug
            ),
        )),
        Some(_) => Ok(listed),
    }
}

/// The writes: tags (managed, owner, the record's, the adoption's digest), the record made
/// current by compare-and-set, the digest untagged, and the read-back.
async fn write_adopted(
    deps: &Deps,
    c: &Checked,
    scope: &Scope<'_>,
    request_id: &str,
    digest: &str,
) -> Result<SecretRecord, VendError> {
    let now = c.now;
    let name = c.desc.name.clone();
    let k = &c.listed;
    let terms = RecordTerms {
        key_name: c.key_name.clone(),
        openrouter_key_name: k.name.clone(),
        workspace_id: c.workspace.id.clone(),
        workspace_slug: c.workspace.slug.clone(),
        cap: orkv_openrouter::Cap {
            limit: k.limit.unwrap_or_default(),
            limit_reset: k.limit_reset,
            include_byok_in_limit: k.include_byok_in_limit,
        },
        lifetime: c.lifetime,
        // A key without an expiry (or outside the policy) is due at once.
        expires_at: k.expires_at.filter(|_| c.conforming).unwrap_or(now),
        rotate_before_seconds: c.rotate_before_seconds,
        created_at: now,
        generation: 1,
        tenant: scope.tenant_name().map(str::to_owned),
        request_id: request_id.to_owned(),
    };
    let record = SecretRecord {
        api_key: Some(c.key.clone()),
        key_hash: Some(k.hash.clone()),
        adopted_key_hash: Some(k.hash.clone()),
        ..SecretRecord::new(RecordState::Active, terms)
    };
    let mut tag_list = vec![
        (tags::MANAGED_BY.to_owned(), MANAGED_BY.to_owned()),
        (tags::KEY_NAME.to_owned(), record.key_name.clone()),
        (tags::ADOPTING.to_owned(), digest.to_owned()),
        (tags::ADOPTED.to_owned(), digest.to_owned()),
    ];
    tag_list.extend(tags::record_tags(&record));
    // The key carries the workspace's guardrail before the product calls it its own (the
    // key is in use: refused, it is left as it is, and so is the secret).
    if let Some(g) = &c.guardrail {
        guardrail::assign(deps, &name, &k.hash, g).await?;
    }
    deps.store.tag(&c.desc.arn, &tag_list).await?;
    let (record, written) = put_adopted(
        deps,
        &c.desc.arn,
        record,
        &token(&c.version_id, &format!("adopt:{digest}")),
    )
    .await?;
    let written = promote::promote(deps, &c.desc.arn, written, &c.version_id).await?;
    if let Promoted::Fenced = written {
        // The value changed since it was read (another adoption won, or someone wrote
        // it): this one's marker goes, and a retry looks at what the secret holds now.
        deps.store
            .untag(&c.desc.arn, &[tags::ADOPTING.to_owned()])
            .await?;
        return Err(VendError::InProgress { secret_name: name });
    }
    deps.store
        .untag(&c.desc.arn, &[tags::ADOPTING.to_owned()])
        .await?;
    deps.remember(&name, true);
    let claim = Claim {
        key_hash: record.key_hash.as_deref(),
        limit: Some(record.limit),
    };
    match confirm::confirm_current(deps, &name, &c.desc.arn, claim).await? {
        Confirmation::Held { .. } => Ok(record),
        Confirmation::Moved => Err(VendError::NotConfirmed {
            secret_name: name,
            check: "AWSCURRENT no longer holds the adopted key".into(),
        }),
    }
}

/// Writes the adopted record under `token` (labelled `ORKV_ADOPT`). An earlier attempt of
/// the same adoption may have written it already, with its own clock reading: that record
/// is the one kept (`PutSecretValue` never changes a version's value).
async fn put_adopted(
    deps: &Deps,
    arn: &str,
    record: SecretRecord,
    token: &str,
) -> Result<(SecretRecord, orkv_store::Written), VendError> {
    match deps
        .store
        .put(arn, &record.to_secret(), token, &[stage::ADOPT])
        .await
    {
        Ok(written) => Ok((record, written)),
        Err(e) if e.kind() == StoreErrorKind::VersionConflict => {
            let earlier = deps
                .store
                .get_version(arn, Some(token), None)
                .await?
                .and_then(|v| SecretRecord::from_secret(&v.value).and_then(Result::ok))
                .filter(|r| r.request_id == record.request_id && r.key_hash == record.key_hash)
                .ok_or_else(|| VendError::from(e))?;
            let written = orkv_store::Written {
                arn: arn.to_owned(),
                name: String::new(),
                version_id: token.to_owned(),
            };
            Ok((earlier, written))
        }
        Err(e) => Err(e.into()),
    }
}

/// A managed secret: the repeat of this adoption (its record carries the request id),
/// answered with a repeat; anything else is refused, unchanged.
async fn adopted_before(
    deps: &Deps,
    desc: &SecretDescription,
    request_id: &str,
    mut reply: ActionReply,
) -> Result<ActionReply, VendError> {
    let (_, record) = read::current_record(deps, &desc.name).await?;
    let ours = record.request_id == request_id
        || record.rotation_request.as_deref() == Some(request_digest(request_id).as_str());
    if !ours {
        return Err(VendError::adoption(
            "secret_name",
            "the secret is already managed by this product: send provision, rotate or revoke requests for it",
        ));
    }
    reply.status = ActionStatus::Unchanged;
    reply.repeat = true;
    reply.key_hash.clone_from(&record.key_hash);
    reply.generation = Some(record.generation);
    reply.facts = Some(record.facts());
    Ok(reply)
}
