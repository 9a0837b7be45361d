//! Block validity: the checks every block passes whichever door it came through (a live proposal, value
//! sync, the block store), in one place.
//!
//! A block id hashes only the header, so a genuine header (and certificate) can travel with another tx
//! list. [`check_block`] binds the body to the header (the tx root) and holds it to the block limits; for a
//! block of the height being decided it also checks the header against the chain. The bridge then asks the
//! application (ABCI ProcessProposal) for its stateless tx checks; that call needs the application, so it
//! lives in the bridge, but every door goes through the same bridge function.

use std::time::Duration;

use bytes::Bytes;

use crate::error::BlockFault;
use crate::types::{Block, BlockId, BlockTime, CompactBlock, Height, ValidatorSet};

/// Largest encoded header accepted (a chain id, a 20-byte proposer, two 32-byte hashes, an app hash and a
/// time fit in a fraction of it).
pub const MAX_HEADER_BYTES: u64 = 1024;

/// Most commit signatures a block's last commit may hold (one per validator of the previous height).
pub const MAX_COMMIT_SIGNATURES: usize = 1_000;

/// Largest encoded last commit: [`MAX_COMMIT_SIGNATURES`] address-signature pairs with their framing.
pub const MAX_LAST_COMMIT_BYTES: u64 = 100 * 1_000 + 64;

/// The limits a block is held to on every door.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockLimits {
    /// Largest size of the block's tx list as it is encoded (each tx with its protobuf framing): the
    /// node's `max_block_tx_bytes`. A chain-wide rule: every validator must use the same value.
    pub max_tx_bytes: u64,
}

impl BlockLimits {
    /// Largest encoded block (header, tx list and framing): the most a proposal stream or a synced value
    /// may carry.
    pub fn max_block_bytes(&self) -> u64 {
        self.max_tx_bytes
            .saturating_add(MAX_HEADER_BYTES)
            .saturating_add(MAX_LAST_COMMIT_BYTES)
            .saturating_add(16)
    }
}

/// Encoded size of one tx inside a block: field tag, length varint, bytes.
pub fn tx_wire_len(tx: &[u8]) -> u64 {
    let len = u64::try_from(tx.len()).unwrap_or(u64::MAX);
    len.saturating_add(1).saturating_add(varint_len(len))
}

/// Encoded size of a tx list inside a block, framing included (what [`BlockLimits::max_tx_bytes`] bounds).
pub fn txs_wire_len(txs: &[Bytes]) -> u64 {
    txs.iter()
        .fold(0u64, |acc, t| acc.saturating_add(tx_wire_len(t)))
}

fn varint_len(v: u64) -> u64 {
    // 7 bits per byte; at least one byte.
    let bits = 64u32.saturating_sub(v.leading_zeros()).max(1);
    u64::from(bits.div_ceil(7))
}

/// What the chain expects of a block for the height being decided.
#[derive(Clone, Copy, Debug)]
pub struct Expected<'a> {
    /// The chain id.
    pub chain_id: &'a str,
    /// The height being decided.
    pub height: Height,
    /// Id of the last committed block (`None` before the first).
    pub last_block_id: Option<BlockId>,
    /// The application's hash after the last committed block.
    pub last_app_hash: &'a [u8],
    /// Time of the last committed block (genesis time before the first).
    pub last_time: BlockTime,
    /// The height's validator set (the proposer must be in it).
    pub validators: &'a ValidatorSet,
}

/// The door a block came through, which decides the one check that differs: the clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Door {
    /// A live proposal. A fresh one must not be ahead of `now` by more than `max_drift`; a re-proposed
    /// (locked) block keeps its original time and is not held to it.
    Proposal {
        /// Whether the block is re-proposed from an earlier round.
        reproposal: bool,
        /// Our clock.
        now: BlockTime,
        /// How far ahead of `now` a fresh proposal's time may be.
        max_drift: Duration,
    },
    /// Value sync: the block was decided by others, possibly long ago.
    Sync,
    /// Read back from our own block store.
    Store,
}

/// The checks of a block on its own: within the limits, and its txs hash to the header's tx root. Needs no
/// chain state; every door runs it, and it is all a stored block gets before it is served to a peer.
pub fn check_body(block: &Block, limits: &BlockLimits) -> Result<(), BlockFault> {
    let tx_bytes = txs_wire_len(block.txs());
    if tx_bytes > limits.max_tx_bytes {
        return Err(BlockFault::TooLarge {
            bytes: tx_bytes,
            max: limits.max_tx_bytes,
        });
    }
    let header_bytes = block.header().encoded_len();
    if header_bytes > MAX_HEADER_BYTES {
        return Err(BlockFault::HeaderTooLarge {
            bytes: header_bytes,
        });
    }
    if !block.tx_root_matches() {
        return Err(BlockFault::TxRootMismatch);
    }
    if block
        .last_commit()
        .is_some_and(|c| c.signatures.len() > MAX_COMMIT_SIGNATURES)
        || !block.last_commit_matches()
    {
        return Err(BlockFault::LastCommitMismatch);
    }
    Ok(())
}

/// [`check_body`], then the header against what the chain expects at `expected.height`.
pub fn check_block(
    block: &Block,
    limits: &BlockLimits,
    expected: &Expected<'_>,
    door: Door,
) -> Result<(), BlockFault> {
    check_body(block, limits)?;
    let h = block.header();
    if h.chain_id != expected.chain_id {
        return Err(BlockFault::WrongChain);
    }
    if h.height != expected.height {
        return Err(BlockFault::WrongHeight {
            got: h.height,
            want: expected.height,
        });
    }
    if h.last_block_id != expected.last_block_id {
        return Err(BlockFault::WrongLastBlock);
    }
    // A live proposal with another app hash is refused. A block from sync or the store carries a commit
    // certificate: the chain decided it, so a different app hash means this node diverged, which the decide
    // step reports and halts on; refusing the block here would hide the divergence behind an endless sync.
    if matches!(door, Door::Proposal { .. }) && h.app_hash.as_ref() != expected.last_app_hash {
        return Err(BlockFault::WrongAppHash);
    }
    if h.time <= expected.last_time {
        return Err(BlockFault::TimeNotAfterLast);
    }
    if let Door::Proposal {
        reproposal: false,
        now,
        max_drift,
    } = door
    {
        let drift = i128::try_from(max_drift.as_nanos()).unwrap_or(i128::MAX);
        if h.time.as_unix_nanos() > now.as_unix_nanos().saturating_add(drift) {
            return Err(BlockFault::TimeAhead);
        }
    }
    if !expected
        .validators
        .validators()
        .iter()
        .any(|v| v.address == h.proposer)
    {
        return Err(BlockFault::UnknownProposer);
    }
    Ok(())
}

/// The block a sync peer sent, decoded only if its size is within the limits.
pub fn decode_bounded(bytes: &[u8], limits: &BlockLimits) -> Result<Block, BlockFault> {
    within_block_bytes(bytes, limits)?;
    Block::decode(bytes).map_err(BlockFault::Malformed)
}

/// Refuses `bytes` longer than [`BlockLimits::max_block_bytes`], before anything decodes them.
fn within_block_bytes(bytes: &[u8], limits: &BlockLimits) -> Result<(), BlockFault> {
    let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if len > limits.max_block_bytes() {
        return Err(BlockFault::TooLarge {
            bytes: len,
            max: limits.max_block_bytes(),
        });
    }
    Ok(())
}

/// A proposal stream's body ([`CompactBlock`]) from its bytes, refused unread above
/// [`BlockLimits::max_block_bytes`] (a named tx takes fewer bytes here than whole, so the resolved block
/// is held to the limits again by [`check_body`]).
pub fn decode_compact_bounded(
    bytes: &[u8],
    limits: &BlockLimits,
) -> Result<CompactBlock, BlockFault> {
    within_block_bytes(bytes, limits)?;
    CompactBlock::decode(bytes).map_err(BlockFault::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{tx_root, Address, BlockHeader, PrivateKey, Validator};

    fn block(txs: Vec<Bytes>, root_of: &[Bytes]) -> Block {
        Block::new(
            BlockHeader {
                chain_id: "c".into(),
                height: Height(2),
                time: BlockTime {
                    seconds: 10,
                    nanos: 0,
                },
                proposer: Address::from_public_key(&PrivateKey::from_seed([1; 32]).public_key()),
                last_block_id: Some(BlockId([3; 32])),
                tx_root: tx_root(root_of),
                app_hash: Bytes::from_static(b"app"),
                last_commit_hash: None,
            },
            txs,
        )
    }

    #[test]
    fn the_wire_length_of_txs_counts_their_framing() {
        assert_eq!(tx_wire_len(b""), 2);
        assert_eq!(tx_wire_len(&[0; 127]), 129);
        assert_eq!(tx_wire_len(&[0; 128]), 131);
        let b = block(
            vec![Bytes::from_static(b"a=1"), Bytes::from(vec![7u8; 300])],
            &[],
        );
        let framed = txs_wire_len(b.txs());
        let header = b.header().encoded_len();
        // The block is the header (tag + length + bytes) followed by the framed txs.
        assert_eq!(
            u64::try_from(b.encode().len()).unwrap_or(0),
            framed + header + 2
        );
    }

    /// A block keeps its txs' hashes: a resolved compact block holds the names and the whole txs'
    /// digests, its tx root checks against them, and hashes of another length are ignored.
    #[test]
    fn a_block_checks_its_tx_root_against_the_hashes_it_keeps() {
        use crate::types::CompactTx;
        use sha2::{Digest, Sha256};
        let txs = vec![Bytes::from_static(b"a=1"), Bytes::from_static(b"b=2")];
        let digests: Vec<[u8; 32]> = txs.iter().map(|t| Sha256::digest(t).into()).collect();
        let b = block(txs.clone(), &txs);
        assert_eq!(b.tx_hashes(), digests.as_slice());
        let compact = CompactBlock {
            header: b.header().clone(),
            txs: vec![
                CompactTx::Named(digests[0]),
                CompactTx::Whole(txs[1].clone()),
            ],
            last_commit: None,
        };
        let found = std::collections::HashMap::from([(digests[0], txs[0].clone())]);
        let resolved = compact.resolve(&found).expect("resolved");
        assert_eq!(resolved.tx_hashes(), digests.as_slice());
        assert_eq!(resolved, b);
        let limits = BlockLimits { max_tx_bytes: 1024 };
        assert_eq!(check_body(&resolved, &limits), Ok(()));
        // Hashes of another length are not taken: the block hashes its txs itself.
        let short = block(txs.clone(), &txs).with_tx_hashes(vec![[0; 32]]);
        assert_eq!(short.tx_hashes(), digests.as_slice());
        // A clone made before the first use shares the hashes computed by either.
        let fresh = block(txs.clone(), &txs);
        let clone = fresh.clone();
        assert!(fresh.tx_root_matches());
        assert!(std::ptr::eq(fresh.tx_hashes(), clone.tx_hashes()));
    }

    #[test]
    fn a_block_whose_txs_do_not_hash_to_its_tx_root_is_refused_on_every_door() {
        let genuine = vec![Bytes::from_static(b"a=1")];
        let swapped = block(vec![Bytes::from_static(b"a=2")], &genuine);
        let limits = BlockLimits { max_tx_bytes: 1024 };
        assert_eq!(
            check_body(&swapped, &limits),
            Err(BlockFault::TxRootMismatch)
        );
        let set = ValidatorSet::new([Validator::new(
            PrivateKey::from_seed([1; 32]).public_key(),
            1,
        )]);
        let expected = Expected {
            chain_id: "c",
            height: Height(2),
            last_block_id: Some(BlockId([3; 32])),
            last_app_hash: b"app",
            last_time: BlockTime::default(),
            validators: &set,
        };
        for door in [Door::Sync, Door::Store] {
            assert_eq!(
                check_block(&swapped, &limits, &expected, door),
                Err(BlockFault::TxRootMismatch)
            );
        }
        let honest = block(genuine.clone(), &genuine);
        assert_eq!(check_block(&honest, &limits, &expected, Door::Sync), Ok(()));
    }

    #[test]
    fn a_block_over_the_tx_limit_is_refused_before_it_is_decoded() {
        // Bigger than the room a block keeps for its header and last commit, so the tiny limit bites.
        let txs = vec![Bytes::from(vec![1u8; 20_000]); 10];
        let b = block(txs.clone(), &txs);
        let limits = BlockLimits { max_tx_bytes: 1000 };
        assert!(matches!(
            check_body(&b, &limits),
            Err(BlockFault::TooLarge { .. })
        ));
        let tiny = BlockLimits { max_tx_bytes: 10 };
        assert!(matches!(
            decode_bounded(&b.encode(), &tiny),
            Err(BlockFault::TooLarge { .. })
        ));
    }
}
