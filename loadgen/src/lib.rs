//! Load generator for kwok-rs clusters. The scenarios, driver and report arrive with
//! the "loadgen and perf" issue; no binary is built until then.
