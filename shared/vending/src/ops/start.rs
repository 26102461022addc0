//! Starting a rotation, through the starter `Deps` was built with: Secrets Manager's
//! `RotateSecret` in production (see [`crate::deps::SecretsManagerStarter`]).

use crate::deps::{Deps, RotationStart};
use crate::error::VendError;

impl Deps {
    /// Starts the rotation of `secret` under `token` (see
    /// [`crate::domain::names::rotation_token`]): every starter for one generation shares it.
    ///
    /// # Errors
    /// Store errors, or the starter's own.
    pub async fn start_rotation(
        &self,
        secret: &str,
        token: &str,
    ) -> Result<RotationStart, VendError> {
        self.starter.start(self, secret, token).await
    }
}
