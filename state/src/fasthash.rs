//! Hash maps and sets for the hot paths keyed by hashes, keys and addresses (the mempool, the decoded-tx
//! and signature caches, the key memo, batch verification): aHash with random keys instead of std's
//! SipHash-1-3, which cost about 2% of a loaded devnet's CPU for 32-byte keys.
//!
//! The keys are random per map (aHash's `RandomState` draws them from the OS), so a peer that grinds tx
//! bytes or keys cannot aim them at one bucket: the same property std's maps have, at a fraction of the
//! cost per lookup. Iteration order is random too; nothing that depends on order (state, encodings) may
//! iterate these maps.

/// [`std::collections::HashMap`] with aHash.
pub type HashMap<K, V> = std::collections::HashMap<K, V, ahash::RandomState>;
/// [`std::collections::HashSet`] with aHash.
pub type HashSet<K> = std::collections::HashSet<K, ahash::RandomState>;

/// An empty map with room for `n` entries.
pub fn map_with_capacity<K, V>(n: usize) -> HashMap<K, V> {
    HashMap::with_capacity_and_hasher(n, ahash::RandomState::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_maps_hash_the_same_key_differently() {
        let (a, b) = (
            map_with_capacity::<[u8; 32], ()>(1),
            map_with_capacity::<[u8; 32], ()>(1),
        );
        let key = [7u8; 32];
        assert_ne!(a.hasher().hash_one(key), b.hasher().hash_one(key));
    }
}
