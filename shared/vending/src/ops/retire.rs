//! Retiring one key, shared by revoke and the sweep: disable it (so it stops working at once
//! even if the delete is slow to apply), delete it, and confirm by reading it back (404).

use orkv_openrouter::{ErrorKind, KeyPatch};

use crate::deps::Deps;
use crate::error::VendError;

/// How a retirement ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retired {
    /// Gone (404 on read-back). `deleted`: this call deleted it (else it was already gone).
    Gone { deleted: bool },
    /// OpenRouter still lists the key after the delete.
    StillListed,
}

impl Deps {
    /// Disables, deletes and reads back the key `hash`. Safe to repeat.
    pub(crate) async fn retire_key(&self, hash: &str) -> Result<Retired, VendError> {
        let client = self.openrouter().await?;
        let disable = KeyPatch {
            disabled: Some(true),
            ..KeyPatch::default()
        };
        match client.update_key(hash, &disable).await {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        let deleted = client.delete_key(hash).await?;
        match client.get_key(hash).await {
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(Retired::Gone { deleted }),
            Ok(_) => Ok(Retired::StillListed),
            Err(e) => Err(e.into()),
        }
    }
}
