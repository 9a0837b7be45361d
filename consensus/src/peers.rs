//! Which consensus key each peer of the consensus swarm proved it holds.
//!
//! A node's network identity (its libp2p peer id) comes from its node key, not from its validator key (as in
//! CometBFT: `keys/node_key.json` beside `keys/validator_key.json`). When two peers connect, each sends
//! Malachite's validator proof: its consensus key's signature over that key and its peer id, checked by the
//! network layer to name the sender and by [`crate::LodeVerifier`] to verify. The verifier records every
//! valid proof here; once a peer is bound to the proposer's key, the bridge admits that proposer's streams
//! only from it (or, for a node that still runs its swarm under its consensus key, from the peer id that key
//! gives, see [`crate::streams::peer_id_of`]). While no peer is bound to the proposer's key, its stream is
//! admitted from any publisher that is not ignored, within the stream buffer's bounds, and the stream's
//! signed `Fin` decides: Malachite 0.8.2 drops a proof that arrives before its consensus actor has
//! subscribed to the network (and sends it only once per connection), and a proposer that is not a direct
//! peer sends none, so a node that waited for proofs could stall at its first height.
//!
//! Bounded against a peer that proves many throwaway keys: at most [`MAX_PEERS_PER_KEY`] peers per key (the
//! newest replaces the oldest) and [`MAX_BINDINGS`] bindings in all. Keys of the validator sets the bridge
//! is deciding with ([`PeerKeys::protect`]) keep their bindings: when the registry is full a new binding
//! evicts the oldest binding of an unprotected key, and a new binding of an unprotected key is refused when
//! there is none to evict.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};

use malachitebft_app_channel::app::types::PeerId;

use crate::types::PublicKey;

/// Peers recorded per consensus key (a validator may run a sentry or move its node).
pub const MAX_PEERS_PER_KEY: usize = 4;
/// Bindings recorded in all.
pub const MAX_BINDINGS: usize = 1024;

/// Shared between the verifier (which records) and the bridge (which reads and protects); both hold the
/// lock only for a map lookup or insert.
#[derive(Clone, Debug, Default)]
pub struct PeerKeys(Arc<Mutex<Inner>>);

#[derive(Debug, Default)]
struct Inner {
    /// peer -> (key, insertion sequence).
    by_peer: BTreeMap<PeerId, ([u8; 32], u64)>,
    protected: BTreeSet<[u8; 32]>,
    seq: u64,
}

impl PeerKeys {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The critical sections cannot panic halfway through an update; a poisoned lock still holds a
        // consistent map.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records that `peer` proved it holds `key`. Returns whether the binding is held.
    pub fn record(&self, peer: PeerId, key: &PublicKey) -> bool {
        let mut g = self.inner();
        let inner = &mut *g;
        inner.seq = inner.seq.saturating_add(1);
        let seq = inner.seq;
        if let Some(entry) = inner.by_peer.get_mut(&peer) {
            *entry = (key.0, seq);
            return true;
        }
        // The key's oldest peer gives way beyond the per-key bound.
        let of_key: Vec<(PeerId, u64)> = inner
            .by_peer
            .iter()
            .filter(|(_, (k, _))| *k == key.0)
            .map(|(p, (_, s))| (*p, *s))
            .collect();
        if of_key.len() >= MAX_PEERS_PER_KEY {
            if let Some((p, _)) = of_key.iter().min_by_key(|(_, s)| *s) {
                inner.by_peer.remove(p);
            }
        }
        if inner.by_peer.len() >= MAX_BINDINGS {
            let evict = inner
                .by_peer
                .iter()
                .filter(|(_, (k, _))| !inner.protected.contains(k))
                .min_by_key(|(_, (_, s))| *s)
                .map(|(p, _)| *p);
            match evict {
                Some(p) => {
                    inner.by_peer.remove(&p);
                }
                None => return false,
            }
        }
        inner.by_peer.insert(peer, (key.0, seq));
        true
    }

    /// Whether `peer` proved it holds `key`.
    pub fn is_bound(&self, peer: &PeerId, key: &PublicKey) -> bool {
        self.inner()
            .by_peer
            .get(peer)
            .is_some_and(|(k, _)| *k == key.0)
    }

    /// Whether some peer proved it holds `key`: then only that peer's publications speak for the key.
    pub fn has_peer_for(&self, key: &PublicKey) -> bool {
        self.inner().by_peer.values().any(|(k, _)| *k == key.0)
    }

    /// The keys whose bindings survive a full registry: the bridge's current and next validator sets.
    pub fn protect(&self, keys: impl IntoIterator<Item = PublicKey>) {
        self.inner().protected = keys.into_iter().map(|k| k.0).collect();
    }

    /// Bindings held.
    pub fn len(&self) -> usize {
        self.inner().by_peer.len()
    }

    /// Whether no binding is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::streams::peer_id_of;
    use crate::types::PrivateKey;

    fn key(i: u32) -> PublicKey {
        let mut seed = [0u8; 32];
        seed[..4].copy_from_slice(&i.to_be_bytes());
        seed[31] = 1;
        PrivateKey::from_seed(seed).public_key()
    }

    fn peer(i: u32) -> PeerId {
        peer_id_of(&key(i.wrapping_add(1 << 30))).expect("peer id")
    }

    #[test]
    fn a_peer_is_bound_only_to_the_key_it_proved() {
        let r = PeerKeys::new();
        assert!(!r.has_peer_for(&key(1)));
        assert!(r.record(peer(1), &key(1)));
        assert!(r.is_bound(&peer(1), &key(1)));
        assert!(r.has_peer_for(&key(1)));
        assert!(!r.is_bound(&peer(1), &key(2)));
        assert!(!r.is_bound(&peer(2), &key(1)));
        // A new proof from the same peer rebinds it.
        assert!(r.record(peer(1), &key(2)));
        assert!(!r.is_bound(&peer(1), &key(1)));
        assert!(!r.has_peer_for(&key(1)));
        assert!(r.is_bound(&peer(1), &key(2)));
    }

    #[test]
    fn one_key_holds_at_most_its_bound_of_peers_newest_kept() {
        let r = PeerKeys::new();
        let n = u32::try_from(MAX_PEERS_PER_KEY).expect("small") + 2;
        for p in 0..n {
            assert!(r.record(peer(p), &key(7)));
        }
        assert_eq!(r.len(), MAX_PEERS_PER_KEY);
        assert!(!r.is_bound(&peer(0), &key(7)));
        assert!(!r.is_bound(&peer(1), &key(7)));
        assert!(r.is_bound(&peer(n - 1), &key(7)));
    }

    #[test]
    fn a_flood_of_throwaway_keys_never_evicts_a_validators_binding() {
        let r = PeerKeys::new();
        let validator = key(0);
        assert!(r.record(peer(0), &validator));
        r.protect([validator]);
        let flood = u32::try_from(MAX_BINDINGS).expect("small") * 2;
        for i in 1..=flood {
            assert!(r.record(peer(i), &key(i)));
            assert!(r.len() <= MAX_BINDINGS);
        }
        assert!(r.is_bound(&peer(0), &validator));
        // Filled with protected keys only, a new unprotected binding is refused.
        let full = PeerKeys::new();
        let keys: Vec<PublicKey> = (0..u32::try_from(MAX_BINDINGS).expect("small"))
            .map(key)
            .collect();
        full.protect(keys.clone());
        for (i, k) in keys.iter().enumerate() {
            assert!(full.record(peer(u32::try_from(i).expect("small")), k));
        }
        assert!(!full.record(peer(5_000), &key(5_000)));
        assert_eq!(full.len(), MAX_BINDINGS);
    }
}
