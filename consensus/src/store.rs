//! The block store: decided blocks with their commit certificates, undecided proposals (for crash recovery
//! and re-streaming), and the validator sets the bridge resumes from. The node implements it on RocksDB
//! (values have `encode`/`decode`); [`InMemoryBlockStore`] serves tests.

use std::collections::BTreeMap;
use std::sync::Mutex;

use malachitebft_core_types::Round;

use bytes::Bytes;
use prost::Message;

use crate::context::LodeContext;
use crate::convert::{
    commit_cert_from_proto, commit_cert_to_proto, decode_pb, round_from_i64,
    validator_set_from_proto, validator_set_to_proto,
};
use crate::error::{CodecError, StoreError};
use crate::types::{Block, BlockId, Height, ValidatorSet};
use lode_proto::consensus::v1 as pb;
use malachitebft_core_types::CommitCertificate;

/// A proposal seen (built or received) but not yet decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UndecidedProposal {
    /// The height.
    pub height: Height,
    /// The round.
    pub round: Round,
    /// The valid round (`Round::Nil` if none).
    pub valid_round: Round,
    /// The block.
    pub block: Block,
    /// Whether ProcessProposal (or our own PrepareProposal) accepted it.
    pub valid: bool,
}

/// The validator sets to resume a height with: the set of `height` (with proposer priorities) and the
/// membership of `height + 1` (validator updates take effect two heights after the block that made them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeightValidators {
    /// The height these sets start.
    pub height: Height,
    /// The set of `height`.
    pub current: ValidatorSet,
    /// The membership of `height + 1`.
    pub next: ValidatorSet,
}

/// Storage of consensus data. Writes are durable when they return. Implementations are shared between the
/// bridge and value sync, so they take `&self`.
pub trait BlockStore: Send + Sync + 'static {
    /// Stores a decided block and its certificate at the block's height.
    fn put_decided(&self, decided: &DecidedBlock) -> Result<(), StoreError>;
    /// The decided block at `height`.
    fn get_decided(&self, height: Height) -> Result<Option<DecidedBlock>, StoreError>;
    /// The certificate that decided the block at `height` (what the next proposer's last commit is made
    /// of): a store that keeps a decided block's txs elsewhere need not read them.
    fn decided_certificate(
        &self,
        height: Height,
    ) -> Result<Option<CommitCertificate<LodeContext>>, StoreError> {
        Ok(self.get_decided(height)?.map(|d| d.certificate))
    }
    /// The lowest decided height stored.
    fn min_height(&self) -> Result<Option<Height>, StoreError>;
    /// The highest decided height stored.
    fn max_height(&self) -> Result<Option<Height>, StoreError>;

    /// Stores an undecided proposal (several may exist per height and round), durably: the proposer's own
    /// block must survive a crash, or it could propose a different one in the same round after a restart.
    fn put_undecided(&self, proposal: &UndecidedProposal) -> Result<(), StoreError>;
    /// Stores a proposal received from a peer. It need not be durable at once (it is with the next durable
    /// write): a node that loses it in a crash gets it again from its peers or by value sync, and an fsync
    /// per received proposal would be a second one per height.
    fn put_received(&self, proposal: &UndecidedProposal) -> Result<(), StoreError> {
        self.put_undecided(proposal)
    }
    /// Undecided proposals for `height` and `round`.
    fn undecided(&self, height: Height, round: Round)
        -> Result<Vec<UndecidedProposal>, StoreError>;
    /// The undecided proposal with block id `id` at `height` (any round).
    fn undecided_by_id(
        &self,
        height: Height,
        id: BlockId,
    ) -> Result<Option<UndecidedProposal>, StoreError>;
    /// Drops undecided proposals below `height`.
    fn prune_undecided(&self, below: Height) -> Result<(), StoreError>;

    /// Stages what the height after `decided` needs to start: the decided block with its certificate, the
    /// validator sets `next` of the next height, and the pruning of the undecided proposals up to the
    /// decided height. The bridge calls it after FinalizeBlock and before the application's Commit; a store
    /// that shares the application's database writes it in the same synced batch as that Commit, so a crash
    /// leaves either the whole height or none of it. Other stores write it at once, before the Commit (the
    /// bridge replays a stored decided block the application does not have). Work per call must not grow
    /// with the chain's length.
    fn stage_commit(
        &self,
        decided: &DecidedBlock,
        next: &HeightValidators,
    ) -> Result<(), StoreError>;
    /// Drops what [`BlockStore::stage_commit`] staged and no Commit wrote (the Commit failed).
    fn discard_staged(&self) {}

    /// Stores the validator sets to resume `v.height` with.
    fn put_validators(&self, v: &HeightValidators) -> Result<(), StoreError>;
    /// The validator sets stored for `height`.
    fn get_validators(&self, height: Height) -> Result<Option<HeightValidators>, StoreError>;
}

// ---- records: what a persistent store keeps, as protobuf bytes ----

/// A decided block and the certificate that decided it: what the block store keeps per height.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecidedBlock {
    /// The block.
    pub block: Block,
    /// Its commit certificate.
    pub certificate: CommitCertificate<LodeContext>,
}

impl DecidedBlock {
    /// Encoded bytes (for a persistent store).
    pub fn encode(&self) -> Bytes {
        Bytes::from(
            pb::DecidedBlock {
                block: Some(self.block.to_proto()),
                certificate: Some(commit_cert_to_proto(&self.certificate)),
            }
            .encode_to_vec(),
        )
    }

    /// From encoded bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        let d: pb::DecidedBlock = decode_pb(bytes)?;
        Ok(Self {
            block: Block::from_proto(d.block.ok_or(CodecError::Missing("decided.block"))?)?,
            certificate: commit_cert_from_proto(
                d.certificate
                    .ok_or(CodecError::Missing("decided.certificate"))?,
            )?,
        })
    }
}

impl UndecidedProposal {
    /// Encoded bytes (for a persistent store).
    pub fn encode(&self) -> Bytes {
        Bytes::from(
            pb::ProposedValue {
                height: self.height.0,
                round: self.round.as_i64(),
                valid_round: self.valid_round.as_i64(),
                proposer: self.block.header().proposer.0.to_vec(),
                value: Some(self.block.to_proto()),
                valid: self.valid,
            }
            .encode_to_vec(),
        )
    }

    /// From encoded bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        let v: pb::ProposedValue = decode_pb(bytes)?;
        Ok(Self {
            height: Height(v.height),
            round: round_from_i64("undecided.round", v.round)?,
            valid_round: round_from_i64("undecided.valid_round", v.valid_round)?,
            block: Block::from_proto(v.value.ok_or(CodecError::Missing("undecided.value"))?)?,
            valid: v.valid,
        })
    }
}

impl HeightValidators {
    /// Encoded bytes (for a persistent store).
    pub fn encode(&self) -> Bytes {
        Bytes::from(
            pb::HeightValidators {
                height: self.height.0,
                current: Some(validator_set_to_proto(&self.current)),
                next: Some(validator_set_to_proto(&self.next)),
            }
            .encode_to_vec(),
        )
    }

    /// From encoded bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        let v: pb::HeightValidators = decode_pb(bytes)?;
        Ok(Self {
            height: Height(v.height),
            current: validator_set_from_proto(
                v.current.ok_or(CodecError::Missing("validators.current"))?,
            )?,
            next: validator_set_from_proto(v.next.ok_or(CodecError::Missing("validators.next"))?)?,
        })
    }
}

#[derive(Debug, Default)]
struct Inner {
    decided: BTreeMap<Height, DecidedBlock>,
    undecided: BTreeMap<(Height, u32, BlockId), UndecidedProposal>,
    validators: BTreeMap<Height, HeightValidators>,
}

/// A [`BlockStore`] in memory, for tests.
#[derive(Debug, Default)]
pub struct InMemoryBlockStore {
    inner: Mutex<Inner>,
}

impl InMemoryBlockStore {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Inner>, StoreError> {
        self.inner
            .lock()
            .map_err(|_| StoreError::Backend("poisoned lock".into()))
    }
}

fn round_key(r: Round) -> u32 {
    r.as_u32().unwrap_or(u32::MAX)
}

impl BlockStore for InMemoryBlockStore {
    fn put_decided(&self, decided: &DecidedBlock) -> Result<(), StoreError> {
        self.lock()?
            .decided
            .insert(decided.block.header().height, decided.clone());
        Ok(())
    }

    fn get_decided(&self, height: Height) -> Result<Option<DecidedBlock>, StoreError> {
        Ok(self.lock()?.decided.get(&height).cloned())
    }

    fn min_height(&self) -> Result<Option<Height>, StoreError> {
        Ok(self.lock()?.decided.keys().next().copied())
    }

    fn max_height(&self) -> Result<Option<Height>, StoreError> {
        Ok(self.lock()?.decided.keys().next_back().copied())
    }

    fn put_undecided(&self, p: &UndecidedProposal) -> Result<(), StoreError> {
        self.lock()?
            .undecided
            .insert((p.height, round_key(p.round), p.block.id()), p.clone());
        Ok(())
    }

    fn undecided(
        &self,
        height: Height,
        round: Round,
    ) -> Result<Vec<UndecidedProposal>, StoreError> {
        let r = round_key(round);
        Ok(self
            .lock()?
            .undecided
            .range((height, r, BlockId([0; 32]))..=(height, r, BlockId([0xff; 32])))
            .map(|(_, p)| p.clone())
            .collect())
    }

    fn undecided_by_id(
        &self,
        height: Height,
        id: BlockId,
    ) -> Result<Option<UndecidedProposal>, StoreError> {
        Ok(self
            .lock()?
            .undecided
            .range((height, 0, BlockId([0; 32]))..=(height, u32::MAX, BlockId([0xff; 32])))
            .find(|(k, _)| k.2 == id)
            .map(|(_, p)| p.clone()))
    }

    fn prune_undecided(&self, below: Height) -> Result<(), StoreError> {
        let mut g = self.lock()?;
        g.undecided = g.undecided.split_off(&(below, 0, BlockId([0; 32])));
        Ok(())
    }

    fn stage_commit(
        &self,
        decided: &DecidedBlock,
        next: &HeightValidators,
    ) -> Result<(), StoreError> {
        let height = decided.block.header().height;
        self.put_decided(decided)?;
        self.put_validators(next)?;
        self.prune_undecided(Height(height.0.saturating_add(1)))
    }

    fn put_validators(&self, v: &HeightValidators) -> Result<(), StoreError> {
        self.lock()?.validators.insert(v.height, v.clone());
        Ok(())
    }

    fn get_validators(&self, height: Height) -> Result<Option<HeightValidators>, StoreError> {
        Ok(self.lock()?.validators.get(&height).cloned())
    }
}
