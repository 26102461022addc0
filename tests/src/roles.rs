//! Which deployed role a call in the suites is made under, so the oracle (`crate::iam`) can
//! evaluate it against that role's rendered policy. The entries below are the use cases'
//! entries, each run as the function that serves it in a deployment:
//! - the provision function: requests (`handle`, `handle_request`, `handle_invocation`,
//!   `rotate_now`, `revoke`);
//! - the rotate function: the four steps (`run_step`, `rotation_step`), also when the local
//!   driver runs them in this process (`orkv_local_rotation::Party::RotateFunction`);
//! - the sweep function: `sweep` and the rotations it starts (`start_rotation`).
//!
//! The suites' Secrets Manager client names the role in the `x-orkv-caller` header
//! ([`CallerHeader`]); Secrets Manager's own work in the local driver
//! (`Party::SecretsManager`) and the test's own calls carry none.

use std::future::Future;

use aws_sdk_secretsmanager::config::interceptors::BeforeTransmitInterceptorContextMut;
use aws_sdk_secretsmanager::config::{ConfigBag, Intercept, RuntimeComponents};
use orkv_local_rotation::Party;

/// A function's role, as the module names its policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Provision,
    Rotate,
    Sweep,
}

impl Role {
    /// The key of this role's policy in `policy_documents`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Provision => "provision",
            Self::Rotate => "rotate",
            Self::Sweep => "sweep",
        }
    }
}

tokio::task_local! {
    static ROLE: Role;
}

/// The role the current task's call is made under: the local driver's party first (Secrets
/// Manager's own work is no role's), then the entry's.
#[must_use]
pub fn current() -> Option<Role> {
    match orkv_local_rotation::party() {
        Some(Party::SecretsManager) => None,
        Some(Party::RotateFunction) => Some(Role::Rotate),
        None => ROLE.try_with(|r| *r).ok(),
    }
}

/// Runs `f` as `role`.
pub async fn as_role<T>(role: Role, f: impl Future<Output = T>) -> T {
    ROLE.scope(role, f).await
}

/// Adds `x-orkv-caller` to every request made under a role.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallerHeader;

impl Intercept for CallerHeader {
    fn name(&self) -> &'static str {
        "CallerHeader"
    }

    fn modify_before_transmit(
        &self,
        ctx: &mut BeforeTransmitInterceptorContextMut<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_secretsmanager::error::BoxError> {
        if let Some(role) = current() {
            ctx.request_mut()
                .headers_mut()
                .insert(crate::iam::CALLER_HEADER, role.name());
        }
        Ok(())
    }
}

/// The use cases' entries, each under the role of the function that serves it: the same
/// names and arguments as `orkv_vending::ops`.
pub mod ops {
    use super::{Role, as_role};
    use orkv_vending::Deps;
    use orkv_vending::deps::RotationStart;
    use orkv_vending::domain::tags::{NextSettings, Reason};
    use orkv_vending::error::VendError;
    use orkv_vending::input::invocation::Trigger;
    use orkv_vending::input::rotation::RotationEvent;
    use orkv_vending::input::sweep::SweepInput;
    use orkv_vending::ops as product;
    use orkv_vending::ops::actions::ActionReply;
    use orkv_vending::ops::provision::ProvisionReply;
    use orkv_vending::ops::rotate::StepReply;
    use orkv_vending::ops::sweep::report::SweepReport;
    use serde_json::Value;
    use std::time::Instant;

    /// # Errors
    /// As the product's.
    pub async fn handle(
        d: &Deps,
        payload: Value,
        deadline: Instant,
    ) -> Result<ProvisionReply, VendError> {
        as_role(Role::Provision, product::handle(d, payload, deadline)).await
    }

    /// # Errors
    /// As the product's.
    pub async fn handle_request(
        d: &Deps,
        payload: Value,
        deadline: Instant,
    ) -> Result<Value, VendError> {
        as_role(
            Role::Provision,
            product::handle_request(d, payload, deadline),
        )
        .await
    }

    /// # Errors
    /// As the product's.
    pub async fn handle_invocation(
        d: &Deps,
        payload: Value,
        invoked_function_arn: &str,
        deadline: Instant,
    ) -> Result<Value, VendError> {
        as_role(
            Role::Provision,
            product::handle_invocation(d, payload, invoked_function_arn, deadline),
        )
        .await
    }

    /// # Errors
    /// As the product's.
    pub async fn rotate_now(
        d: &Deps,
        name: &str,
        reason: Reason,
        request_id: &str,
        next: Option<NextSettings<'_>>,
        trigger: Trigger,
    ) -> Result<ActionReply, VendError> {
        as_role(
            Role::Provision,
            product::rotate_now(d, name, reason, request_id, next, trigger),
        )
        .await
    }

    /// # Errors
    /// As the product's.
    pub async fn revoke(
        d: &Deps,
        name: &str,
        delete_secret: bool,
        request_id: &str,
        trigger: Trigger,
    ) -> Result<ActionReply, VendError> {
        as_role(
            Role::Provision,
            product::revoke(d, name, delete_secret, request_id, trigger),
        )
        .await
    }

    /// # Errors
    /// As the product's.
    pub async fn run_step(
        d: &Deps,
        event: &RotationEvent,
        deadline: Instant,
    ) -> Result<StepReply, VendError> {
        as_role(Role::Rotate, product::run_step(d, event, deadline)).await
    }

    /// # Errors
    /// As the product's.
    pub async fn rotation_step(
        d: &Deps,
        payload: &Value,
        deadline: Instant,
    ) -> Result<StepReply, VendError> {
        as_role(Role::Rotate, product::rotation_step(d, payload, deadline)).await
    }

    /// The sweep's start of a rotation (the provision function's rotate-now starts its own
    /// inside [`rotate_now`]).
    ///
    /// # Errors
    /// As the product's.
    pub async fn start_rotation(
        d: &Deps,
        secret: &str,
        token: &str,
    ) -> Result<RotationStart, VendError> {
        as_role(Role::Sweep, product::start_rotation(d, secret, token)).await
    }

    /// # Errors
    /// As the product's.
    pub async fn sweep(
        d: &Deps,
        input: &SweepInput,
        deadline: Instant,
    ) -> Result<SweepReport, VendError> {
        as_role(Role::Sweep, product::sweep(d, input, deadline)).await
    }
}
