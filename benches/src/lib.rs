//! Micro-benchmarks of engine and shard internals live in this crate's `benches/`
//! folder; they arrive with the engine and shards issues.
