//! Starting a rotation, through the starter `Deps` was built with: Secrets Manager's
//! `RotateSecret` in production (see [`crate::deps::SecretsManagerStarter`]).

use orkv_store::SecretDescription;

use crate::deps::{Deps, RotationStart};
use crate::domain::names::{live_rotation_token, rotation_token};
use crate::error::VendError;

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
