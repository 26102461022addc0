//! The operations, one function per use case, each taking [`Deps`] (what a container holds)
//! and a validated input from [`crate::input`], and answering a reply that never holds a
//! plaintext.
//!
//! Use cases (the entries the binaries and tests call):
//! - [`handle_invocation`] / [`handle_request`] ([`dispatch`]): every request of the provision
//!   function: identify the caller, check its scope, serve it, announce it;
//! - [`provision()`]: vend a key into a secret, or converge an existing one;
//! - [`rotate_now`], [`revoke_request`], [`adopt_request`], [`adopt_bulk`] ([`actions`]);
//! - [`inventory()`]: the caller's managed secrets, from their tags;
//! - [`run_step`] / [`rotation_step`] ([`rotate`]): the four steps Secrets Manager invokes;
//! - [`start_rotation`]: start a rotation through the configured starter;
//! - [`sweep()`]: the scheduled sweep.
//!
//! Shared steps (named collaborators, imported where used):
//! `mint` (after `POST /keys`: assign, store, read back, clean up), `promote` (the
//! compare-and-set of every write to `AWSCURRENT`), `confirm` (the read-back behind every
//! claim), `retire` (disable and delete a key), `owned` (which of the keys a tag names are the
//! secret's own), `read` (reads as the product's), `budget`
//! (one cap across a logical key's generations: ADR 0010), `guardrail` (ADR 0011),
//! [`announce`] (result events) and `start`.

pub mod actions;
pub mod announce;
mod budget;
mod confirm;
pub mod dispatch;
mod guardrail;
pub mod inventory;
mod mint;
mod owned;
mod promote;
pub mod provision;
mod read;
mod retire;
pub mod rotate;
mod start;
pub mod sweep;

pub use actions::{adopt_bulk, adopt_request, revoke, revoke_request, rotate_now, rotate_request};
#[cfg(any(test, feature = "testing"))]
pub use dispatch::handle;
pub use dispatch::{handle_invocation, handle_request};
pub use inventory::inventory;
pub use provision::provision;
pub use rotate::{rotation_step, run_step};
pub use start::start_rotation;
pub use sweep::sweep;
