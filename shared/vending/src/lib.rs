//! Key vending core: every function's logic, with thin binaries around it.
//!
//! # Layout
//! Dependencies point down this list; nothing imports `lambda`.
//! - [`lambda`]: the three handlers, the bootstrap every binary runs, errors to `Diagnostic`.
//! - [`ops`]: the operations, the only behaviour on `Deps`: [`ops::provision`],
//!   [`ops::rotate`] (the four steps), [`ops::actions`] (rotate now, revoke), [`ops::sweep`];
//!   `mint` and `retire` are shared by them.
//! - [`deps`]: `Deps`, the one holder of clients, clock and caches, and the
//!   [`deps::RotationStarter`] seam (Secrets Manager in production).
//! - [`input`]: parsers for every payload (envelope, requests, rotation event, sweep input).
//! - [`domain`]: no I/O: policy, the secret record, the tag schema, derived names.
//! - [`config`]: every environment variable, read once. [`clock`]: the one clock.
//! - [`error`]: `VendError`, each variant with a stable `kind()`.
//!
//! Where things happen: a request enters at [`lambda::provision`] (or `lambda::rotation`, `lambda::sweep`); provisioning mints in
//! `ops::provision::claim` and rotation in `ops::rotate::create`, both storing through
//! `ops::mint`.

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
