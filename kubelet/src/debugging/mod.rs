//! Logs, exec, attach and port-forward: upstream's rule kinds, how a request finds its
//! rule, and what each rule does.

pub mod exec;
pub mod forward;
pub mod kinds;
pub mod logs;
pub mod rules;

pub use kinds::{DebuggingRules, LoadError};
