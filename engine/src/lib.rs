//! The pure simulation model of kwok-rs.
//!
//! Given an object and the current time, the engine decides which Stage applies and
//! what happens next. It does no I/O and reads no clock. The Stage model arrives with
//! the "engine" issue; until then the crate only holds its place in the workspace.
#![warn(missing_docs)]
