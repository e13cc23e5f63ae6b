//! Which shard owns a name: a stable hash of it, modulo the shard count. The dispatcher
//! routes watch events by it and [`super::query::Lookup`] routes questions the same way.

/// Hashes `key` (FNV-1a: stable across runs and processes, unlike `RandomState`).
pub fn hash(key: &str) -> u64 {
    hash_parts(&[key])
}

/// The hash of the concatenation of `parts`, without building it.
pub(crate) fn hash_parts(parts: &[&str]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0100_0000_01b3;
    parts
        .iter()
        .flat_map(|p| p.bytes())
        .fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

/// The shard of routing key `key` among `shards`.
pub fn shard_of(key: &str, shards: usize) -> usize {
    debug_assert!(shards > 0, "at least one shard");
    (hash(key) % shards as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_of_should_be_stable_and_spread_evenly() {
        assert_eq!(shard_of("node-1", 4), shard_of("node-1", 4));
        let mut counts = [0usize; 4];
        for i in 0..10_000 {
            counts[shard_of(&format!("node-{i:06}"), 4)] += 1;
        }
        for c in counts {
            assert!((2_200..2_800).contains(&c), "{counts:?}");
        }
    }
}
