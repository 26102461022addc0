//! The operations: the only place with behaviour on [`Deps`]. Each entry point takes a
//! validated input from [`crate::input`] and answers a reply that never holds a plaintext.
//!
//! - [`provision`]: vend a key into a secret, or converge an existing one;
//! - [`rotate`]: the four rotation steps Secrets Manager invokes;
//! - [`actions`]: rotate now and revoke;
//! - [`sweep`]: the scheduled sweep;
//! - `mint` (shared by provisioning and rotation), `retire` (shared by revoke and the sweep),
//!   `read` (shared reads), `confirm` (the read-back behind every claim), `promote` (the
//!   compare-and-set every write to `AWSCURRENT` uses)
//!   and `start` (starting a rotation).

pub mod actions;
mod confirm;
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
use crate::input::action::{RevokeRequest, RotateRequest};
use crate::input::invocation::{self, Action};
use crate::input::provision::ProvisionRequest;

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
    /// side effect, then serves the request.
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
        let (inv, scope) = self.scoped(payload, invoked_function_arn)?;
        let prefix = self.cfg.secret_prefix.as_str();
        let reply = match inv.action {
            Action::Provision => {
                let req =
                    ProvisionRequest::parse(&inv.request, &self.cfg.policy, self.clock.now())?;
                serde_json::to_value(
                    self.provision(req, &scope, inv.request_id, inv.trigger, deadline)
                        .await?,
                )
            }
            Action::Rotate => {
                let req = RotateRequest::parse(&inv.request, prefix)?;
                serde_json::to_value(
                    self.rotate_request(&req, &scope, &inv.request_id, inv.trigger)
                        .await?,
                )
            }
            Action::Revoke => {
                let req = RevokeRequest::parse(&inv.request, prefix)?;
                serde_json::to_value(
                    self.revoke_request(&req, &scope, &inv.request_id, inv.trigger)
                        .await?,
                )
            }
        };
        reply.map_err(|e| VendError::ReplyEncoding(e.to_string()))
    }

    /// Parses the invocation and identifies its scope (no remote call).
    fn scoped(
        &self,
        payload: Value,
        invoked_function_arn: &str,
    ) -> Result<(invocation::Invocation, Scope<'_>), VendError> {
        let mut inv = invocation::parse(payload)?;
        let policy = &self.cfg.policy;
        let caller = scope::identify(policy, invoked_function_arn, inv.source.as_deref())?;
        let tenant = invocation::take_tenant(&mut inv.request, policy.tenanted)?;
        let name = inv
            .request
            .get("secret_name")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let scope = Scope::of(policy, caller, tenant.as_deref(), name.as_deref())?;
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
