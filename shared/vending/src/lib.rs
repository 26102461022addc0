//! Key vending core: every function's logic, with thin binaries around it.
//!
//! # Layout
//! Dependencies point down this list; nothing imports `lambda`.
//! - [`lambda`]: the three handlers, the bootstrap every binary runs, errors to `Diagnostic`.
//! - [`ops`]: the use cases, one function each over [`Deps`], and the shared steps they
//!   import (`ops/mod.rs` lists both).
//! - [`deps`]: `Deps`, what a container holds (clients, clock, caches, the
//!   [`deps::RotationStarter`] seam: Secrets Manager in production). No behaviour.
//! - [`input`]: parsers for every payload (envelope, requests, rotation event, sweep input).
//! - [`domain`]: no I/O: the action vocabulary, policy and scope, the secret record, the tag
//!   schema, derived names, budgets.
//! - [`config`]: every environment variable, read once. [`clock`]: the one clock.
//! - [`error`]: `VendError`, each variant with a stable `kind()`.
//!
//! # Where things happen
//! - A request enters at [`lambda::provision`] (and `lambda::rotation`, `lambda::sweep`), then
//!   [`ops::dispatch::handle_invocation`].
//! - The tenant check: `ops::dispatch` (the caller from the invoked alias, then
//!   [`domain::scope::Scope::of`] and the action's permissions), before any side effect.
//! - The actions: [`domain::action::Action`], one vocabulary, matched exhaustively.
//! - A key is minted in `ops::mint::mint_key` (the only `POST /keys`) and stored by
//!   `ops::mint::keep_minted` (retries, read-back, clean-up), called from
//!   `ops::provision::claim` and `ops::rotate::create`.

pub mod clock;
pub mod config;
pub mod deps;
pub mod domain;
pub mod error;
pub mod input;
pub mod lambda;
pub mod ops;

pub use config::Config;
pub use deps::Deps;
pub use error::VendError;
