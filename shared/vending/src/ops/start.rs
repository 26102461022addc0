//! Starting a rotation, through the starter `Deps` was built with: Secrets Manager's
//! `RotateSecret` in production (see [`crate::deps::SecretsManagerStarter`]).

use orkv_store::SecretDescription;
use tracing::{info, warn};

use crate::deps::{Deps, RotationStart};
use crate::domain::names::{live_rotation_token, rotation_token};
use crate::domain::tags;
use crate::error::VendError;
use crate::ops::read;

/// The token a start of the rotation away from `generation` uses
/// ([`live_rotation_token`]: a fresh attempt's when Secrets Manager abandoned the last).
/// `DescribeSecret` leaves out versions with no label (AWS: "Versions that don't have
/// staging labels are considered deprecated"), so an abandoned attempt is invisible there:
/// when the generation's first token is not among its versions, `ListSecretVersionIds`
/// with `IncludeDeprecated` tells an abandoned attempt from one never made (one call, only
/// then).
///
/// # Errors
/// Store errors.
pub(crate) async fn live_token(
    deps: &Deps,
    desc: &SecretDescription,
    generation: u64,
) -> Result<String, VendError> {
    if desc
        .versions
        .contains_key(&rotation_token(&desc.name, generation))
    {
        return Ok(live_rotation_token(&desc.name, generation, &desc.versions));
    }
    let all = deps.store.version_stages(&desc.arn, true).await?;
    Ok(live_rotation_token(&desc.name, generation, &all))
}

/// Starts the rotation of `secret` under `token` (see
/// [`crate::domain::names::rotation_token`]): every starter for one generation shares it.
///
/// # Errors
/// Store errors, or the starter's own.
pub async fn start_rotation(
    deps: &Deps,
    secret: &str,
    token: &str,
) -> Result<RotationStart, VendError> {
    deps.starter.start(deps, secret, token).await
}

/// Configures rotation on the new secret `secret` (its function and schedule, no rotation),
/// so it is compliant from its creation. Best effort: the key exists and is stored whatever
/// happens here, and the sweep configures any active secret found without rotation
/// ([`configure_if_needed`]). One `RotateSecret` in production.
pub async fn configure_new(deps: &Deps, secret: &str) {
    match deps.starter.configure(deps, secret).await {
        Ok(true) => info!(secret, "rotation configured"),
        Ok(false) => {
            warn!(
                secret,
                "no rotation function is configured (ORKV_ROTATION_LAMBDA_ARN): rotation stays off until one is"
            );
        }
        Err(e) => {
            warn!(secret, error_type = e.kind(), error = %e, "rotation could not be configured; the sweep will");
        }
    }
}

/// The sweep's repair: configures rotation on `secret` when `DescribeSecret` still shows it
/// off and the secret active (the listing may lag). `Ok(false)`: nothing was done.
///
/// # Errors
/// Store errors, or the starter's own.
pub async fn configure_if_needed(deps: &Deps, secret: &str) -> Result<bool, VendError> {
    let Some(desc) = read::describe_ours(deps, secret).await? else {
        return Ok(false);
    };
    if desc.deleted || desc.rotation_enabled || desc.tag(tags::REVOKED).is_some() {
        return Ok(false);
    }
    deps.starter.configure(deps, secret).await
}
