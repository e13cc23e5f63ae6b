//! Routing watch events to shards: a node and every pod bound to it land on the same
//! shard, chosen by a hash of the node name, so a shard owns them without locks.

/// Hashes `key` (FNV-1a: stable across runs and processes, unlike `RandomState`).
pub fn hash(key: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0100_0000_01b3;
    key.bytes()
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

    #[test]
    fn hash_should_match_fnv1a_reference_values() {
        assert_eq!(hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(hash("a"), 0xaf63_dc4c_8601_ec8c);
    }
}
