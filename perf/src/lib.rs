//! Side-by-side macro benchmarks: one loadgen scenario on the same pinned control plane,
//! once with this project's `kwok` and once with upstream KWOK v0.8's. See `perf/README.md`.

pub mod apiserver;
pub mod audit;
pub mod capacity;
pub mod cluster;
pub mod fake_apiserver;
pub mod metrics;
pub mod process;
pub mod scenarios;
pub mod side;
pub mod speed;
pub mod table;
