//! Drives a cluster with many fake nodes and pods and measures, from watch events, how
//! fast the control plane and kwok make them Ready, Running and gone.
//!
//! [`run::run`] carries out a [`scenario::Scenario`] and returns a [`report::Report`];
//! the `loadgen` binary is a thin CLI over it, and `perf/` calls it in-process.

pub mod driver;
pub mod measure;
pub mod objects;
pub mod report;
pub mod run;
pub mod scenario;
mod watch;

pub use report::Report;
pub use run::{RunOptions, run};
pub use scenario::Scenario;
