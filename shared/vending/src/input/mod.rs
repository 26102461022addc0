//! Parsers for everything the functions receive, with no I/O: the invocation envelope
//! (EventBridge or direct), the provision request, the on-demand action requests, the
//! rotation event and the sweep input. Every error names the field and the rule.

pub(crate) mod fields;

pub mod action;
pub mod adopt;
pub mod invocation;
pub mod provision;
pub mod rotation;
pub mod sweep;
