//! Typed client for OpenRouter's management API: keys, the current key, workspaces and
//! guardrails (with their key assignments).
//!
//! The plaintext of a minted key only ever lives in [`ApiKey`], whose `Debug` is redacted,
//! which has no `Display`/`Serialize`, and which is wiped on drop.

mod client;
mod error;
mod secret;
mod types;

pub use client::{Client, ClientConfig, DEFAULT_BASE_URL, KeyPage};
pub use error::{Error, ErrorKind};
pub use secret::{ApiKey, ManagementKey, key_hash};
pub use types::{
    Cap, CreateKeyRequest, CreatedKey, CurrentKey, Guardrail, Key, KeyPatch, LimitReset, Workspace,
    format_expires_at,
};
