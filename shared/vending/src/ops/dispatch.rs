//! The entry of every request the provision function serves: parse the invocation, identify
//! the caller, check its scope before any side effect, dispatch to the use case, and announce
//! the outcome.

use std::time::Instant;

use serde_json::Value;

use crate::deps::Deps;
use crate::domain::scope::{self, Scope};
use crate::error::VendError;
use crate::input::action::{InventoryRequest, RevokeRequest, RotateRequest};
use crate::input::adopt::AdoptInput;
use crate::input::invocation::{self, Action};
use crate::input::provision::ProvisionRequest;
use crate::ops::announce::ResultDetail;
use crate::ops::inventory::Viewer;
use crate::ops::{actions, announce, inventory, provision};

/// Handles any payload the provision function accepts (provision, rotate now, revoke),
/// as an invocation of the unqualified function, and answers the reply as JSON.
///
/// # Errors
/// As [`handle_invocation`].
pub async fn handle_request(
    deps: &Deps,
    payload: Value,
    deadline: Instant,
) -> Result<Value, VendError> {
    handle_invocation(deps, payload, "", deadline).await
}

/// Handles a payload delivered to `invoked_function_arn` (the Lambda context's, whose
/// qualifier is the tenant's alias): identifies the caller, checks its scope before any
/// side effect, then serves the request, and announces the outcome (or the failure) on
/// the event bus when one is configured (an inventory announces nothing: it changes
/// nothing and its caller has the answer).
///
/// # Errors
/// A [`VendError`] whose `kind()` names the failure; bad input and out-of-scope requests
/// create and change nothing.
pub async fn handle_invocation(
    deps: &Deps,
    payload: Value,
    invoked_function_arn: &str,
    deadline: Instant,
) -> Result<Value, VendError> {
    let mut failure = announce::failure_template(&payload);
    let result = serve(deps, payload, invoked_function_arn, deadline, &mut failure).await;
    match result {
        Ok((reply, announcement)) => {
            if let Some(detail) = announcement {
                announce::announce(deps, detail).await;
            }
            Ok(reply)
        }
        Err(e) => {
            announce::announce(deps, failure.failed(&e)).await;
            Err(e)
        }
    }
}

/// [`handle_invocation`] without the announcement: the reply and the event that
/// tells it; `failure` learns the request's identity as it is established.
async fn serve(
    deps: &Deps,
    payload: Value,
    invoked_function_arn: &str,
    deadline: Instant,
    failure: &mut ResultDetail,
) -> Result<(Value, Option<ResultDetail>), VendError> {
    let (inv, caller, tenant) = identified(deps, payload, invoked_function_arn)?;
    failure.identify(&inv, caller, tenant.as_deref());
    let tenant = tenant.as_deref();
    let prefix = deps.cfg.secret_prefix.as_str();
    let encode = |v: Result<Value, serde_json::Error>| {
        v.map_err(|e| VendError::ReplyEncoding(e.to_string()))
    };
    match inv.action {
        Action::Inventory => {
            let req = InventoryRequest::parse(&inv.request)?;
            let viewer = viewer(deps, caller, tenant)?;
            let reply = inventory::inventory(deps, &req, viewer, deadline).await?;
            Ok((encode(serde_json::to_value(reply))?, None))
        }
        Action::Provision => {
            let scope = gate(deps, &inv, caller, tenant, failure)?;
            let req = ProvisionRequest::parse(&inv.request, &deps.cfg.policy, deps.clock.now())?;
            let reply =
                provision::provision(deps, req, &scope, inv.request_id, inv.trigger, deadline)
                    .await?;
            let event = reply.announcement(scope.tenant_name());
            Ok((encode(serde_json::to_value(reply))?, Some(event)))
        }
        Action::Rotate => {
            let scope = gate(deps, &inv, caller, tenant, failure)?;
            let req = RotateRequest::parse(&inv.request, prefix)?;
            let reply =
                actions::rotate_request(deps, &req, &scope, &inv.request_id, inv.trigger).await?;
            let event = reply.announcement(scope.tenant_name());
            Ok((encode(serde_json::to_value(reply))?, Some(event)))
        }
        Action::Adopt => {
            let scope = gate(deps, &inv, caller, tenant, failure)?;
            match AdoptInput::parse(&inv.request, prefix)? {
                AdoptInput::One(req) => {
                    let reply = Box::pin(actions::adopt_request(
                        deps,
                        &req,
                        &scope,
                        &inv.request_id,
                        inv.trigger,
                    ))
                    .await?;
                    let event = reply.announcement(scope.tenant_name());
                    Ok((encode(serde_json::to_value(reply))?, Some(event)))
                }
                // Each secret announces its own adoption.
                AdoptInput::Bulk(req) => {
                    let reply = Box::pin(actions::adopt_bulk(
                        deps,
                        &req,
                        &scope,
                        &inv.request_id,
                        inv.trigger,
                        deadline,
                    ))
                    .await?;
                    Ok((encode(serde_json::to_value(reply))?, None))
                }
            }
        }
        Action::Revoke => {
            let scope = gate(deps, &inv, caller, tenant, failure)?;
            let req = RevokeRequest::parse(&inv.request, prefix)?;
            let reply =
                actions::revoke_request(deps, &req, &scope, &inv.request_id, inv.trigger).await?;
            let event = reply.announcement(scope.tenant_name());
            Ok((encode(serde_json::to_value(reply))?, Some(event)))
        }
    }
}

/// The scope of a request that names a secret (or a tenant), its tenant learned by the
/// failure event, and the permission its action needs at the least: all before the request
/// is read.
fn gate<'p>(
    deps: &'p Deps,
    inv: &invocation::Invocation,
    caller: scope::Caller<'p>,
    tenant: Option<&str>,
    failure: &mut ResultDetail,
) -> Result<Scope<'p>, VendError> {
    let scope = scope_of(deps, inv, caller, tenant)?;
    failure.tenant = scope.tenant_name().map(str::to_owned);
    scope.require_any(inv.action.permissions())?;
    Ok(scope)
}

/// Parses the invocation and identifies its caller and the tenant it names (no remote
/// call).
fn identified<'d>(
    deps: &'d Deps,
    payload: Value,
    invoked_function_arn: &str,
) -> Result<(invocation::Invocation, scope::Caller<'d>, Option<String>), VendError> {
    let mut inv = invocation::parse(payload)?;
    let policy = &deps.cfg.policy;
    let caller = scope::identify(policy, invoked_function_arn, inv.source.as_deref())?;
    let tenant = invocation::take_tenant(&mut inv.request, policy.tenanted)?;
    Ok((inv, caller, tenant))
}

/// Whose secrets an inventory shows: a tenant its own; the admin alias every tenant's,
/// or the one it names.
fn viewer<'p>(
    deps: &'p Deps,
    caller: scope::Caller<'p>,
    tenant: Option<&str>,
) -> Result<Viewer<'p>, VendError> {
    if matches!(caller, scope::Caller::Admin) && tenant.is_none() {
        return Ok(Viewer::All);
    }
    let scope = Scope::of(&deps.cfg.policy, caller, tenant, None)?;
    Ok(Viewer::Tenant {
        name: scope.tenant_name(),
        prefix: scope.tenant.secret_prefix.as_str(),
    })
}

/// The scope of a request that names a secret (or a tenant): checked before any read.
fn scope_of<'p>(
    deps: &'p Deps,
    inv: &invocation::Invocation,
    caller: scope::Caller<'p>,
    tenant: Option<&str>,
) -> Result<Scope<'p>, VendError> {
    let name = inv.request.get("secret_name").and_then(Value::as_str);
    Scope::of(&deps.cfg.policy, caller, tenant, name)
}

/// Parses the invocation and identifies its scope (no remote call).
#[cfg(any(test, feature = "testing"))]
fn scoped<'d>(
    deps: &'d Deps,
    payload: Value,
    invoked_function_arn: &str,
) -> Result<(invocation::Invocation, Scope<'d>), VendError> {
    let (inv, caller, tenant) = identified(deps, payload, invoked_function_arn)?;
    let scope = scope_of(deps, &inv, caller, tenant.as_deref())?;
    Ok((inv, scope))
}

/// Tests: handles one raw provision payload (unqualified) and answers the typed reply.
///
/// # Errors
/// As [`handle_request`].
#[cfg(any(test, feature = "testing"))]
pub async fn handle(
    deps: &Deps,
    payload: Value,
    deadline: Instant,
) -> Result<provision::ProvisionReply, VendError> {
    let (inv, scope) = scoped(deps, payload, "")?;
    if inv.action != Action::Provision {
        return Err(VendError::invalid(
            "action",
            "this entry point only provisions; use handle_request",
        ));
    }
    let req = ProvisionRequest::parse(&inv.request, &deps.cfg.policy, deps.clock.now())?;
    Box::pin(provision::provision(
        deps,
        req,
        &scope,
        inv.request_id,
        inv.trigger,
        deadline,
    ))
    .await
}
