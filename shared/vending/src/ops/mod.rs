//! The operations: the only place with behaviour on [`Deps`]. Each entry point takes a
//! validated input from [`crate::input`] and answers a reply that never holds a plaintext.
//!
//! - [`provision`]: vend a key into a secret, or converge an existing one;
//! - [`rotate`]: the four rotation steps Secrets Manager invokes;
//! - [`actions`]: rotate now and revoke;
//! - [`inventory`]: the caller's managed secrets, from their tags;
//! - [`announce`]: the result event of every outcome, on the configured bus;
//! - [`sweep`]: the scheduled sweep;
//! - `guardrail` (the guardrail every key of a workspace carries), `budget` (one cap across a logical key's generations: ADR 0010), `mint` (shared by provisioning and rotation), `retire` (shared by revoke and the sweep),
//!   `read` (shared reads), `confirm` (the read-back behind every claim), `promote` (the
//!   compare-and-set every write to `AWSCURRENT` uses)
//!   and `start` (starting a rotation).

pub mod actions;
pub mod announce;
mod budget;
mod confirm;
mod guardrail;
pub mod inventory;
mod mint;
mod promote;
pub mod provision;
mod read;
mod retire;
pub mod rotate;
mod start;
pub mod sweep;

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

impl Deps {
    /// Handles any payload the provision function accepts (provision, rotate now, revoke),
    /// as an invocation of the unqualified function, and answers the reply as JSON.
    ///
    /// # Errors
    /// As [`Deps::handle_invocation`].
    pub async fn handle_request(
        &self,
        payload: Value,
        deadline: Instant,
    ) -> Result<Value, VendError> {
        self.handle_invocation(payload, "", deadline).await
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
        &self,
        payload: Value,
        invoked_function_arn: &str,
        deadline: Instant,
    ) -> Result<Value, VendError> {
        let mut failure = announce::failure_template(&payload);
        let result = self
            .serve(payload, invoked_function_arn, deadline, &mut failure)
            .await;
        match result {
            Ok((reply, announcement)) => {
                if let Some(detail) = announcement {
                    self.announce(detail).await;
                }
                Ok(reply)
            }
            Err(e) => {
                if failure.action != "inventory" {
                    self.announce(failure.failed(&e)).await;
                }
                Err(e)
            }
        }
    }

    /// [`Self::handle_invocation`] without the announcement: the reply and the event that
    /// tells it; `failure` learns the request's identity as it is established.
    async fn serve(
        &self,
        payload: Value,
        invoked_function_arn: &str,
        deadline: Instant,
        failure: &mut ResultDetail,
    ) -> Result<(Value, Option<ResultDetail>), VendError> {
        let (inv, caller, tenant) = self.identified(payload, invoked_function_arn)?;
        failure.identify(&inv, caller, tenant.as_deref());
        let tenant = tenant.as_deref();
        let prefix = self.cfg.secret_prefix.as_str();
        let encode = |v: Result<Value, serde_json::Error>| {
            v.map_err(|e| VendError::ReplyEncoding(e.to_string()))
        };
        match inv.action {
            Action::Inventory => {
                let req = InventoryRequest::parse(&inv.request)?;
                let viewer = self.viewer(caller, tenant)?;
                let reply = self.inventory(&req, viewer, deadline).await?;
                Ok((encode(serde_json::to_value(reply))?, None))
            }
            Action::Provision => {
                let scope = self.scope_of(&inv, caller, tenant)?;
                failure.tenant = scope.tenant_name().map(str::to_owned);
                let req =
                    ProvisionRequest::parse(&inv.request, &self.cfg.policy, self.clock.now())?;
                let reply = self
                    .provision(req, &scope, inv.request_id, inv.trigger, deadline)
                    .await?;
                let event = reply.announcement(scope.tenant_name());
                Ok((encode(serde_json::to_value(reply))?, Some(event)))
            }
            Action::Rotate => {
                let scope = self.scope_of(&inv, caller, tenant)?;
                failure.tenant = scope.tenant_name().map(str::to_owned);
                let req = RotateRequest::parse(&inv.request, prefix)?;
                let reply = self
                    .rotate_request(&req, &scope, &inv.request_id, inv.trigger)
                    .await?;
                let event = reply.announcement(scope.tenant_name());
                Ok((encode(serde_json::to_value(reply))?, Some(event)))
            }
            Action::Adopt => {
                let scope = self.scope_of(&inv, caller, tenant)?;
                failure.tenant = scope.tenant_name().map(str::to_owned);
                match AdoptInput::parse(&inv.request, prefix)? {
                    AdoptInput::One(req) => {
                        let reply = Box::pin(self.adopt_request(
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
                        let reply = Box::pin(self.adopt_bulk(
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
                let scope = self.scope_of(&inv, caller, tenant)?;
                failure.tenant = scope.tenant_name().map(str::to_owned);
                let req = RevokeRequest::parse(&inv.request, prefix)?;
                let reply = self
                    .revoke_request(&req, &scope, &inv.request_id, inv.trigger)
                    .await?;
                let event = reply.announcement(scope.tenant_name());
                Ok((encode(serde_json::to_value(reply))?, Some(event)))
            }
        }
    }

    /// Parses the invocation and identifies its caller and the tenant it names (no remote
    /// call).
    fn identified(
        &self,
        payload: Value,
        invoked_function_arn: &str,
    ) -> Result<(invocation::Invocation, scope::Caller<'_>, Option<String>), VendError> {
        let mut inv = invocation::parse(payload)?;
        let policy = &self.cfg.policy;
        let caller = scope::identify(policy, invoked_function_arn, inv.source.as_deref())?;
        let tenant = invocation::take_tenant(&mut inv.request, policy.tenanted)?;
        Ok((inv, caller, tenant))
    }

    /// Whose secrets an inventory shows: a tenant its own; the admin alias every tenant's,
    /// or the one it names.
    fn viewer<'p>(
        &'p self,
        caller: scope::Caller<'p>,
        tenant: Option<&str>,
    ) -> Result<Viewer<'p>, VendError> {
        if matches!(caller, scope::Caller::Admin) && tenant.is_none() {
            return Ok(Viewer::All);
        }
        let scope = Scope::of(&self.cfg.policy, caller, tenant, None)?;
        Ok(Viewer::Tenant {
            name: scope.tenant_name(),
            prefix: scope.tenant.secret_prefix.as_str(),
        })
    }

    /// The scope of a request that names a secret (or a tenant): checked before any read.
    fn scope_of<'p>(
        &'p self,
        inv: &invocation::Invocation,
        caller: scope::Caller<'p>,
        tenant: Option<&str>,
    ) -> Result<Scope<'p>, VendError> {
        let name = inv.request.get("secret_name").and_then(Value::as_str);
        Scope::of(&self.cfg.policy, caller, tenant, name)
    }

    /// Parses the invocation and identifies its scope (no remote call).
    #[cfg(any(test, feature = "testing"))]
    fn scoped(
        &self,
        payload: Value,
        invoked_function_arn: &str,
    ) -> Result<(invocation::Invocation, Scope<'_>), VendError> {
        let (inv, caller, tenant) = self.identified(payload, invoked_function_arn)?;
        let scope = self.scope_of(&inv, caller, tenant.as_deref())?;
        Ok((inv, scope))
    }

    /// Tests: handles one raw provision payload (unqualified) and answers the typed reply.
    ///
    /// # Errors
    /// As [`Deps::handle_request`].
    #[cfg(any(test, feature = "testing"))]
    pub async fn handle(
        &self,
        payload: Value,
        deadline: Instant,
    ) -> Result<provision::ProvisionReply, VendError> {
        let (inv, scope) = self.scoped(payload, "")?;
        if inv.action != Action::Provision {
            return Err(VendError::invalid(
                "action",
                "this entry point only provisions; use handle_request",
            ));
        }
        let req = ProvisionRequest::parse(&inv.request, &self.cfg.policy, self.clock.now())?;
        Box::pin(self.provision(req, &scope, inv.request_id, inv.trigger, deadline)).await
    }
}
