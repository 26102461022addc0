//! The product's vocabulary, with no I/O: the deploy-time policy and the caller's scope, the secret record, the tag
//! schema with a typed codec for each value, and the names the product derives (version
//! tokens, OpenRouter key names).

pub mod action;
pub mod budget;
pub mod lifetime;
pub mod names;
pub mod ownership;
pub mod policy;
pub mod record;
pub mod scope;
pub mod tags;
