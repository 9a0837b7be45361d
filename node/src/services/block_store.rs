//! The consensus block store on the node's RocksDB (the state's `consensus` column family).
//!
//! Keys (all integers big-endian, so key order is height order):
//! - `d ‖ height` → [`DecidedBlock`]
//! - `u ‖ height ‖ round ‖ block id` → [`UndecidedProposal`] (round `u32::MAX` stands for nil)
//! - `v ‖ height` → [`HeightValidators`]

use lode_consensus::{
    BlockId, BlockStore, DecidedBlock, Height, HeightValidators, StoreError, UndecidedProposal,
};
use lode_state::{store::Store, LodeApp};
use malachitebft_core_types::Round;

const DECIDED: u8 = b'd';
const UNDECIDED: u8 = b'u';
const VALIDATORS: u8 = b'v';

/// [`BlockStore`] over the application's database. Cheap to clone.
#[derive(Debug, Clone)]
pub struct RocksBlockStore {
    app: LodeApp,
}

impl RocksBlockStore {
    /// The block store inside `app`'s database.
    pub fn new(app: LodeApp) -> Self {
        Self { app }
    }

    fn store(&self) -> &Store {
        self.app.store()
    }
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn height_key(tag: u8, h: Height) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = tag;
    k[1..].copy_from_slice(&h.0.to_be_bytes());
    k
}

fn round_key(r: Round) -> u32 {
    r.as_u32().unwrap_or(u32::MAX)
}

fn undecided_prefix(h: Height, round: Option<Round>) -> Vec<u8> {
    let mut k = height_key(UNDECIDED, h).to_vec();
    if let Some(r) = round {
        k.extend_from_slice(&round_key(r).to_be_bytes());
    }
    k
}

fn height_of(key: &[u8]) -> Result<Height, StoreError> {
    let b: [u8; 8] = key
        .get(1..9)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| StoreError::Backend(format!("bad block store key {}", hex::encode(key))))?;
    Ok(Height(u64::from_be_bytes(b)))
}

impl BlockStore for RocksBlockStore {
    fn put_decided(&self, decided: &DecidedBlock) -> Result<(), StoreError> {
        let key = height_key(DECIDED, decided.block.header().height);
        self.store()
            .put_consensus(&[(&key, &decided.encode())])
            .map_err(backend)
    }

    fn get_decided(&self, height: Height) -> Result<Option<DecidedBlock>, StoreError> {
        match self
            .store()
            .get_consensus(&height_key(DECIDED, height))
            .map_err(backend)?
        {
            Some(b) => Ok(Some(DecidedBlock::decode(&b)?)),
            None => Ok(None),
        }
    }

    fn min_height(&self) -> Result<Option<Height>, StoreError> {
        self.store()
            .edge_consensus_key(&[DECIDED], false)
            .map_err(backend)?
            .map(|k| height_of(&k))
            .transpose()
    }

    fn max_height(&self) -> Result<Option<Height>, StoreError> {
        self.store()
            .edge_consensus_key(&[DECIDED], true)
            .map_err(backend)?
            .map(|k| height_of(&k))
            .transpose()
    }

    fn put_undecided(&self, p: &UndecidedProposal) -> Result<(), StoreError> {
        let mut key = undecided_prefix(p.height, Some(p.round));
        key.extend_from_slice(&p.block.id().0);
        self.store()
            .put_consensus(&[(&key, &p.encode())])
            .map_err(backend)
    }

    fn undecided(
        &self,
        height: Height,
        round: Round,
    ) -> Result<Vec<UndecidedProposal>, StoreError> {
        self.store()
            .scan_consensus(&undecided_prefix(height, Some(round)))
            .map_err(backend)?
            .iter()
            .map(|(_, v)| UndecidedProposal::decode(v).map_err(StoreError::from))
            .collect()
    }

    fn undecided_by_id(
        &self,
        height: Height,
        id: BlockId,
    ) -> Result<Option<UndecidedProposal>, StoreError> {
        for (k, v) in self
            .store()
            .scan_consensus(&undecided_prefix(height, None))
            .map_err(backend)?
        {
            if k.ends_with(&id.0) {
                return Ok(Some(UndecidedProposal::decode(&v)?));
            }
        }
        Ok(None)
    }

    fn prune_undecided(&self, below: Height) -> Result<(), StoreError> {
        self.store()
            .delete_consensus_range(&[UNDECIDED], &height_key(UNDECIDED, below))
            .map_err(backend)
    }

    fn put_validators(&self, v: &HeightValidators) -> Result<(), StoreError> {
        let key = height_key(VALIDATORS, v.height);
        self.store()
            .put_consensus(&[(&key, &v.encode())])
            .map_err(backend)
    }

    fn get_validators(&self, height: Height) -> Result<Option<HeightValidators>, StoreError> {
        match self
            .store()
            .get_consensus(&height_key(VALIDATORS, height))
            .map_err(backend)?
        {
            Some(b) => Ok(Some(HeightValidators::decode(&b)?)),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use lode_consensus::{
        Address, Block, BlockHeader, BlockTime, PrivateKey, Validator, ValidatorSet,
    };

    fn block(height: u64, tx: &'static [u8]) -> Block {
        let txs = vec![Bytes::from_static(tx)];
        Block::new(
            BlockHeader {
                chain_id: "c".into(),
                height: Height(height),
                time: BlockTime::default(),
                proposer: Address([1; 20]),
                last_block_id: None,
                tx_root: lode_consensus::types::tx_root(&txs),
                app_hash: Bytes::new(),
            },
            txs,
        )
    }

    fn proposal(height: u64, round: u32, tx: &'static [u8]) -> UndecidedProposal {
        UndecidedProposal {
            height: Height(height),
            round: Round::new(round),
            valid_round: Round::Nil,
            block: block(height, tx),
            valid: true,
        }
    }

    #[test]
    fn undecided_proposals_and_validator_sets_round_trip_and_prune_by_height() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = RocksBlockStore::new(LodeApp::open(dir.path()).expect("open"));
        assert_eq!(store.min_height().expect("min"), None);
        assert_eq!(store.max_height().expect("max"), None);

        let (a, b, c) = (
            proposal(5, 0, b"a"),
            proposal(5, 1, b"b"),
            proposal(6, 0, b"c"),
        );
        for p in [&a, &b, &c] {
            store.put_undecided(p).expect("put");
        }
        assert_eq!(
            store.undecided(Height(5), Round::new(0)).expect("get"),
            vec![a.clone()]
        );
        assert_eq!(
            store.undecided(Height(5), Round::new(1)).expect("get"),
            vec![b.clone()]
        );
        assert_eq!(
            store
                .undecided_by_id(Height(5), b.block.id())
                .expect("by id"),
            Some(b)
        );
        assert_eq!(
            store
                .undecided_by_id(Height(6), a.block.id())
                .expect("by id"),
            None
        );
        store.prune_undecided(Height(6)).expect("prune");
        assert!(store
            .undecided(Height(5), Round::new(0))
            .expect("get")
            .is_empty());
        assert_eq!(
            store.undecided(Height(6), Round::new(0)).expect("get"),
            vec![c]
        );

        let set = ValidatorSet::new([Validator::new(
            PrivateKey::from_seed([3; 32]).public_key(),
            10,
        )]);
        let hv = HeightValidators {
            height: Height(7),
            current: set.clone(),
            next: set,
        };
        store.put_validators(&hv).expect("put");
        assert_eq!(store.get_validators(Height(7)).expect("get"), Some(hv));
        assert_eq!(store.get_validators(Height(8)).expect("get"), None);
    }
}
