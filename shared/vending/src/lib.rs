//! Key vending core: the provision request and its validation, the deploy-time policy, the
//! secret record, and the crash-safe, idempotent provision logic the Lambda binary wires up.

pub mod actions;
pub mod clock;
pub mod config;
pub mod driver;
pub mod error;
pub mod invocation;
pub mod policy;
pub mod provision;
pub mod record;
pub mod request;
pub mod rotate;
pub mod sweep;

pub use config::Config;
pub use error::VendError;
pub use provision::{Deps, ProvisionReply, Status};
