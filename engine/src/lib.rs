//! The pure simulation model of kwok-rs.
//!
//! Given an object and the current time, the engine decides which Stage applies and
//! what happens next. It does no I/O and reads no clock: time and randomness come in
//! as arguments, so it is deterministic in tests and benchmarks.
#![warn(missing_docs)]

pub mod catalog;
pub mod delay;
pub mod effect;
pub mod error;
pub mod host;
pub mod kubelet;
pub mod lifecycle;
pub mod listing;
pub mod patch;
pub mod quantity;
pub mod selector;
pub mod simulate;
pub mod stage;
pub mod template;
pub(crate) mod value_from;
pub mod verbosity;
pub mod weight;
