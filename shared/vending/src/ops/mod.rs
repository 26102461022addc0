//! The operations: the only place with behaviour on [`Deps`]. Each entry point takes a
//! validated input from [`crate::input`] and answers a reply that never holds a plaintext.
//!
//! - [`provision`]: vend a key into a secret, or converge an existing one;
//! - [`rotate`]: the four rotation steps Secrets Manager invokes;
//! - [`actions`]: rotate now and revoke;
//! - [`sweep`]: the scheduled sweep;
//! - `mint` (shared by provisioning and rotation), `retire` (shared by revoke and the sweep),
//!   `read` (shared reads), `promote` (the compare-and-set every write to `AWSCURRENT` uses)
//!   and `start` (starting a rotation).

pub mod actions;
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
use crate::error::VendError;
use crate::input::action::{RevokeRequest, RotateRequest};
use crate::input::invocation::{self, Action};
use crate::input::provision::ProvisionRequest;

impl Deps {
    /// Handles any payload the provision function accepts (provision, rotate now, revoke)
    /// and answers the reply as JSON.
    ///
    /// # Errors
    /// A [`VendError`] whose `kind()` names the failure; bad input creates nothing.
    pub async fn handle_request(
        &self,
        payload: Value,
        deadline: Instant,
    ) -> Result<Value, VendError> {
        let inv = invocation::parse(payload)?;
        let prefix = self.cfg.secret_prefix.as_str();
        let reply = match inv.action {
            Action::Provision => {
                let req =
                    ProvisionRequest::parse(&inv.request, &self.cfg.policy, self.clock.now())?;
                serde_json::to_value(
                    self.provision(req, inv.request_id, inv.trigger, deadline)
                        .await?,
                )
            }
            Action::Rotate => {
                let req = RotateRequest::parse(&inv.request, prefix)?;
                serde_json::to_value(
                    self.rotate_request(&req, &inv.request_id, inv.trigger)
                        .await?,
                )
            }
            Action::Revoke => {
                let req = RevokeRequest::parse(&inv.request, prefix)?;
                serde_json::to_value(
                    self.revoke_request(&req, &inv.request_id, inv.trigger)
                        .await?,
                )
            }
        };
        reply.map_err(|e| VendError::ReplyEncoding(e.to_string()))
    }

    /// Tests: handles one raw provision payload and answers the typed reply.
    ///
    /// # Errors
    /// As [`Deps::handle_request`].
    #[cfg(any(test, feature = "testing"))]
    pub async fn handle(
        &self,
        payload: Value,
        deadline: Instant,
    ) -> Result<provision::ProvisionReply, VendError> {
        let inv = invocation::parse(payload)?;
        if inv.action != Action::Provision {
            return Err(VendError::invalid(
                "action",
                "this entry point only provisions; use handle_request",
            ));
        }
        let req = ProvisionRequest::parse(&inv.request, &self.cfg.policy, self.clock.now())?;
        Box::pin(self.provision(req, inv.request_id, inv.trigger, deadline)).await
    }
}
