//! Side-by-side macro benchmarks against upstream KWOK; they arrive with the
//! "loadgen and perf" issue.
