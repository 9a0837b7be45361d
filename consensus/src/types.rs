//! Lode's implementations of Malachite's consensus types: height, address, keys, block (the value), votes,
//! proposals, proposal parts, validators and the validator set.

use std::{
    fmt,
    sync::{Arc, OnceLock},
};

use bytes::Bytes;
use malachitebft_core_types::{
    self as mc, NilOrVal, Round, SignedExtension, VoteType, VotingPower,
};
use sha2::{Digest, Sha256};

use crate::context::LodeContext;

/// Block height. Heights start at 1.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Height(pub u64);

impl Height {
    /// The height as a number.
    pub const fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Height {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl mc::Height for Height {
    const ZERO: Self = Height(0);
    const INITIAL: Self = Height(1);

    fn increment_by(&self, n: u64) -> Self {
        Height(self.0.saturating_add(n))
    }

    fn decrement_by(&self, n: u64) -> Option<Self> {
        self.0.checked_sub(n).map(Height)
    }

    fn as_u64(&self) -> u64 {
        self.0
    }
}

/// A validator address: the first 20 bytes of SHA-256 of its ed25519 public key (as in CometBFT).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address(pub [u8; 20]);

impl Address {
    /// The address of a public key.
    pub fn from_public_key(pk: &PublicKey) -> Self {
        let digest: [u8; 32] = Sha256::digest(pk.0).into();
        let mut out = [0u8; 20];
        for (o, d) in out.iter_mut().zip(digest) {
            *o = d;
        }
        Address(out)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode_upper(self.0))
    }
}

impl mc::Address for Address {}

/// An ed25519 public key (32 bytes, validated as a curve point encoding when decoded).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PublicKey(pub [u8; 32]);

/// An ed25519 signature (64 bytes).
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Signature(pub [u8; 64]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", hex::encode(&self.0[..8]))
    }
}

/// An ed25519 signing key.
#[derive(Clone)]
pub struct PrivateKey(pub(crate) ed25519_consensus::SigningKey);

impl PrivateKey {
    /// A key from its 32-byte seed.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self(ed25519_consensus::SigningKey::from(seed))
    }

    /// A fresh random key.
    pub fn generate() -> Self {
        Self(ed25519_consensus::SigningKey::new(rand_core::OsRng))
    }

    /// The 32-byte seed.
    pub fn to_seed(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verification_key().to_bytes())
    }

    /// Signs `msg`.
    pub fn sign(&self, msg: &[u8]) -> Signature {
        Signature(self.0.sign(msg).to_bytes())
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(..)")
    }
}

/// The id of a block: SHA-256 of its encoded header.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlockId(pub [u8; 32]);

impl fmt::Display for BlockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode_upper(self.0))
    }
}

/// BFT time: seconds and nanoseconds since the Unix epoch, as chosen by the proposer.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlockTime {
    /// Whole seconds since the epoch.
    pub seconds: i64,
    /// Nanoseconds within the second (< 10^9).
    pub nanos: u32,
}

impl BlockTime {
    /// Nanoseconds since the epoch (saturating).
    #[allow(
        clippy::arithmetic_side_effects,
        reason = "an i64 of seconds times 10^9 plus a u32 is far inside i128"
    )]
    pub fn as_unix_nanos(self) -> i128 {
        i128::from(self.seconds) * 1_000_000_000 + i128::from(self.nanos)
    }

    /// From nanoseconds since the epoch.
    pub fn from_unix_nanos(n: i128) -> Self {
        let seconds = n.div_euclid(1_000_000_000);
        let nanos = n.rem_euclid(1_000_000_000);
        Self {
            seconds: i64::try_from(seconds).unwrap_or(i64::MAX),
            nanos: u32::try_from(nanos).unwrap_or(0),
        }
    }

    /// The current wall-clock time. Read only by the proposer and by validators checking bounds, never by
    /// the application.
    pub fn now() -> Self {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Self {
            seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            nanos: d.subsec_nanos(),
        }
    }
}

/// A block header.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlockHeader {
    /// The chain id.
    pub chain_id: String,
    /// The height.
    pub height: Height,
    /// BFT time.
    pub time: BlockTime,
    /// The proposer.
    pub proposer: Address,
    /// Id of the block at `height - 1` (`None` at the initial height).
    pub last_block_id: Option<BlockId>,
    /// [`tx_root`] of the body.
    pub tx_root: [u8; 32],
    /// The application's hash after committing `height - 1`.
    pub app_hash: Bytes,
    /// [`LastCommit::hash`] of the body's last commit (`None` when it has none).
    pub last_commit_hash: Option<[u8; 32]>,
}

/// The commit signatures of the previous height that a block carries (Tendermint's `LastCommit`): the
/// precommits for `last_block_id` in `round`, more than 2/3 of that height's power. Every node reads the
/// previous block's signers from here, not from its own certificate, so the application's liveness
/// tracking sees the same list everywhere. The proposer copies its own certificate of the previous height.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LastCommit {
    /// The round the previous block was decided in.
    pub round: i64,
    /// (validator address, precommit signature), at most one per validator.
    pub signatures: Vec<(Address, Signature)>,
}

impl BlockHeader {
    /// Size of the encoded header.
    pub fn encoded_len(&self) -> u64 {
        u64::try_from(prost::Message::encoded_len(&self.to_proto())).unwrap_or(u64::MAX)
    }

    /// The id of the block with this header.
    pub fn id(&self) -> BlockId {
        BlockId(Sha256::digest(prost::Message::encode_to_vec(&self.to_proto())).into())
    }
}

/// The root over a block's transactions: SHA-256 over the concatenated SHA-256 hashes of the txs.
pub fn tx_root(txs: &[Bytes]) -> [u8; 32] {
    let mut h = Sha256::new();
    for tx in txs {
        h.update(Sha256::digest(tx));
    }
    h.finalize().into()
}

/// [`tx_root`] from the txs' SHA-256 hashes.
pub fn tx_root_of_hashes(hashes: &[[u8; 32]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for tx in hashes {
        h.update(tx);
    }
    h.finalize().into()
}

/// One tx of a proposal stream's body ([`CompactBlock`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CompactTx {
    /// The tx's bytes.
    Whole(Bytes),
    /// The SHA-256 hash of the tx's bytes: the receiver takes the tx from its mempool or from peers.
    Named([u8; 32]),
}

/// What a proposal stream carries: a block whose txs are whole or named by hash. The proposer names the
/// txs its peers most likely hold already (received by gossip long enough ago), so a block's bytes cross
/// the consensus network once as hashes instead of again in full. The receiver resolves it into the
/// [`Block`] (its mempool, then a fetch from peers for what it lacks), and the block then passes the same
/// checks as any other: its tx root binds the resolved txs to the header the proposer signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompactBlock {
    /// The header.
    pub header: BlockHeader,
    /// The txs, in block order.
    pub txs: Vec<CompactTx>,
    /// The previous height's commit signatures.
    pub last_commit: Option<LastCommit>,
}

impl CompactBlock {
    /// `block` with the txs at the positions where `named` holds a hash named by it (`named` is empty or
    /// one entry per tx; the hash must be the tx's SHA-256).
    pub fn of(block: &Block, named: &[Option<[u8; 32]>]) -> Self {
        let txs = block
            .txs()
            .iter()
            .enumerate()
            .map(|(i, tx)| match named.get(i).copied().flatten() {
                Some(h) => CompactTx::Named(h),
                None => CompactTx::Whole(tx.clone()),
            })
            .collect();
        Self {
            header: block.header().clone(),
            txs,
            last_commit: block.last_commit().cloned(),
        }
    }

    /// The hashes it names, in block order.
    pub fn named(&self) -> Vec<[u8; 32]> {
        self.txs
            .iter()
            .filter_map(|t| match t {
                CompactTx::Named(h) => Some(*h),
                CompactTx::Whole(_) => None,
            })
            .collect()
    }

    /// The block, with the named txs taken from `found` (hash → bytes; each value must hash to its key, as
    /// a mempool's lookup and a checked fetch give them). The txs it names that `found` lacks are returned
    /// instead. The block keeps its txs' hashes (the names, and the whole txs hashed here once), so its
    /// checks do not hash the named txs again.
    pub fn resolve(
        self,
        found: &std::collections::HashMap<[u8; 32], Bytes>,
    ) -> Result<Block, Vec<[u8; 32]>> {
        let mut missing = Vec::new();
        let mut txs = Vec::with_capacity(self.txs.len());
        let mut hashes = Vec::with_capacity(self.txs.len());
        for t in self.txs {
            match t {
                CompactTx::Whole(b) => {
                    hashes.push(Sha256::digest(&b).into());
                    txs.push(b);
                }
                CompactTx::Named(h) => match found.get(&h) {
                    Some(b) => {
                        hashes.push(h);
                        txs.push(b.clone());
                    }
                    None => missing.push(h),
                },
            }
        }
        if missing.is_empty() {
            Ok(Block::with_last_commit(self.header, txs, self.last_commit).with_tx_hashes(hashes))
        } else {
            Err(missing)
        }
    }
}

/// A block: the value Lode's consensus decides on. Its id is cached at construction.
///
/// A signed proposal message carries its block *header only* ([`Block::header_only`]): the body travels
/// once, in the proposal stream, and consensus pairs the two by block id (the header commits to the tx
/// root and the last commit). So two blocks are equal when both are whole and equal field by field, or when
/// either is header-only and their ids are equal; hashing and ordering follow the id first.
#[derive(Clone, Debug)]
pub struct Block {
    header: BlockHeader,
    txs: Vec<Bytes>,
    last_commit: Option<LastCommit>,
    id: BlockId,
    header_only: bool,
    /// SHA-256 of each tx, in order: computed on first use, or handed over by whoever built the block
    /// from hashes it already held ([`Block::with_tx_hashes`]). Shared by the block's clones, so the
    /// checks at each door, the proposal's ABCI calls and the commit hash each tx once between them.
    tx_hashes: Arc<OnceLock<Vec<[u8; 32]>>>,
}

impl PartialEq for Block {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}

impl Eq for Block {}

impl PartialOrd for Block {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Block {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.id.cmp(&other.id).then_with(|| {
            if self.header_only || other.header_only {
                std::cmp::Ordering::Equal
            } else {
                (&self.header, &self.txs, &self.last_commit).cmp(&(
                    &other.header,
                    &other.txs,
                    &other.last_commit,
                ))
            }
        })
    }
}

impl std::hash::Hash for Block {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // Equal blocks have equal ids (a header-only block equals the whole one).
        self.id.hash(state);
    }
}

impl Block {
    /// A block from its parts, without a last commit.
    pub fn new(header: BlockHeader, txs: Vec<Bytes>) -> Self {
        Self::with_last_commit(header, txs, None)
    }

    /// A block from its parts.
    pub fn with_last_commit(
        header: BlockHeader,
        txs: Vec<Bytes>,
        last_commit: Option<LastCommit>,
    ) -> Self {
        let id = header.id();
        Self {
            header,
            txs,
            last_commit,
            id,
            header_only: false,
            tx_hashes: Arc::default(),
        }
    }

    /// This block with its txs' hashes already known (`hashes[i]` must be the SHA-256 of `txs()[i]`; debug
    /// builds check it). Hashes of another length are ignored: the block hashes its txs itself.
    pub(crate) fn with_tx_hashes(mut self, hashes: Vec<[u8; 32]>) -> Self {
        if hashes.len() == self.txs.len() {
            debug_assert!(
                self.txs
                    .iter()
                    .zip(&hashes)
                    .all(|(t, h)| <[u8; 32]>::from(Sha256::digest(t)) == *h),
                "with_tx_hashes: hashes of other bytes"
            );
            self.tx_hashes = Arc::new(OnceLock::from(hashes));
        }
        self
    }

    /// The SHA-256 of each tx, in order (computed once per block and its clones).
    pub fn tx_hashes(&self) -> &[[u8; 32]] {
        self.tx_hashes
            .get_or_init(|| self.txs.iter().map(|t| Sha256::digest(t).into()).collect())
    }

    /// The block of `header` without its body: what a signed proposal message carries (see [`Block`]).
    pub fn header_only(header: BlockHeader) -> Self {
        Self {
            header_only: true,
            ..Self::new(header, Vec::new())
        }
    }

    /// Whether this is a header-only block (from a proposal message): its txs are not here.
    pub fn is_header_only(&self) -> bool {
        self.header_only
    }

    /// This block's header-only form.
    pub fn to_header_only(&self) -> Self {
        Self::header_only(self.header.clone())
    }

    /// The previous height's commit signatures the block carries.
    pub fn last_commit(&self) -> Option<&LastCommit> {
        self.last_commit.as_ref()
    }

    /// Whether the header's last-commit hash matches the body's last commit.
    pub fn last_commit_matches(&self) -> bool {
        self.last_commit.as_ref().map(LastCommit::hash) == self.header.last_commit_hash
    }

    /// The header.
    pub fn header(&self) -> &BlockHeader {
        &self.header
    }

    /// The transactions.
    pub fn txs(&self) -> &[Bytes] {
        &self.txs
    }

    /// The block id.
    pub fn id(&self) -> BlockId {
        self.id
    }

    /// Whether the header's tx root matches the body.
    pub fn tx_root_matches(&self) -> bool {
        tx_root_of_hashes(self.tx_hashes()) == self.header.tx_root
    }
}

impl mc::Value for Block {
    type Id = BlockId;

    fn id(&self) -> BlockId {
        self.id
    }
}

/// A prevote or precommit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vote {
    /// Prevote or precommit.
    pub vote_type: VoteType,
    /// The height.
    pub height: Height,
    /// The round.
    pub round: Round,
    /// The block voted for, or nil.
    pub value_id: NilOrVal<BlockId>,
    /// The voter.
    pub validator_address: Address,
    /// Vote extension (unused until a feature needs it).
    pub extension: Option<SignedExtension<LodeContext>>,
}

impl mc::Vote<LodeContext> for Vote {
    fn height(&self) -> Height {
        self.height
    }

    fn round(&self) -> Round {
        self.round
    }

    fn value(&self) -> &NilOrVal<BlockId> {
        &self.value_id
    }

    fn take_value(self) -> NilOrVal<BlockId> {
        self.value_id
    }

    fn vote_type(&self) -> VoteType {
        self.vote_type
    }

    fn validator_address(&self) -> &Address {
        &self.validator_address
    }

    fn extension(&self) -> Option<&SignedExtension<LodeContext>> {
        self.extension.as_ref()
    }

    fn take_extension(&mut self) -> Option<SignedExtension<LodeContext>> {
        self.extension.take()
    }

    fn extend(self, extension: SignedExtension<LodeContext>) -> Self {
        Self {
            extension: Some(extension),
            ..self
        }
    }
}

/// A proposal: the proposer's block for a height and round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    /// The height.
    pub height: Height,
    /// The round.
    pub round: Round,
    /// The proposed block.
    pub value: Block,
    /// The proof-of-lock round (`Round::Nil` if none).
    pub pol_round: Round,
    /// The proposer.
    pub validator_address: Address,
}

impl mc::Proposal<LodeContext> for Proposal {
    fn height(&self) -> Height {
        self.height
    }

    fn round(&self) -> Round {
        self.round
    }

    fn value(&self) -> &Block {
        &self.value
    }

    fn take_value(self) -> Block {
        self.value
    }

    fn pol_round(&self) -> Round {
        self.pol_round
    }

    fn validator_address(&self) -> &Address {
        &self.validator_address
    }
}

/// The first part of a streamed proposal: who proposes what height and round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartInit {
    /// The height.
    pub height: Height,
    /// The round.
    pub round: Round,
    /// The valid round (`Round::Nil` if none).
    pub valid_round: Round,
    /// The proposer.
    pub proposer: Address,
}

/// A part of a proposal streamed to peers: init, chunks of the encoded block, and a signed fin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProposalPart {
    /// Metadata.
    Init(PartInit),
    /// A chunk of the encoded block.
    Data(Bytes),
    /// The proposer's signature over the init fields and the hash of all chunks.
    Fin(Signature),
}

impl mc::ProposalPart<LodeContext> for ProposalPart {
    fn is_first(&self) -> bool {
        matches!(self, Self::Init(_))
    }

    fn is_last(&self) -> bool {
        matches!(self, Self::Fin(_))
    }
}

/// A validator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validator {
    /// Address (derived from the key).
    pub address: Address,
    /// Consensus public key.
    pub public_key: PublicKey,
    /// Voting power.
    pub voting_power: VotingPower,
}

impl Validator {
    /// A validator with the given key and power.
    pub fn new(public_key: PublicKey, voting_power: VotingPower) -> Self {
        Self {
            address: Address::from_public_key(&public_key),
            public_key,
            voting_power,
        }
    }
}

impl mc::Validator<LodeContext> for Validator {
    fn address(&self) -> &Address {
        &self.address
    }

    fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    fn voting_power(&self) -> VotingPower {
        self.voting_power
    }
}

/// Largest total voting power of a validator set (CometBFT's `MaxTotalVotingPower`, `i64::MAX / 8`), so
/// proposer-priority arithmetic cannot overflow.
#[allow(
    clippy::arithmetic_side_effects,
    reason = "a constant division by a nonzero constant"
)]
pub const MAX_TOTAL_POWER: u64 = (i64::MAX / 8) as u64;

/// A validator set, sorted by address, with Tendermint proposer priorities (see [`crate::proposer`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatorSet {
    pub(crate) validators: Vec<Validator>,
    pub(crate) priorities: Vec<i64>,
}

impl ValidatorSet {
    /// A fresh set (as at genesis): validators with zero power are dropped, duplicates by address keep the
    /// last, and proposer priorities are initialised as CometBFT does.
    pub fn new(validators: impl IntoIterator<Item = Validator>) -> Self {
        let mut vs: Vec<Validator> = Vec::new();
        for v in validators {
            vs.retain(|x| x.address != v.address);
            if v.voting_power > 0 {
                vs.push(v);
            }
        }
        vs.sort_by_key(|a| a.address);
        let n = vs.len();
        // Priorities start at zero: the first height's increment happens when its proposer is selected.
        Self {
            validators: vs,
            priorities: vec![0; n],
        }
    }

    /// A set with explicit priorities (as decoded from the store). Lengths must match.
    pub(crate) fn from_parts(validators: Vec<Validator>, priorities: Vec<i64>) -> Option<Self> {
        (validators.len() == priorities.len()).then_some(Self {
            validators,
            priorities,
        })
    }

    /// The validators, sorted by address.
    pub fn validators(&self) -> &[Validator] {
        &self.validators
    }

    /// Proposer priorities, in the order of [`Self::validators`].
    pub fn priorities(&self) -> &[i64] {
        &self.priorities
    }

    /// Sum of the voting powers.
    pub fn total_power(&self) -> u64 {
        self.validators
            .iter()
            .fold(0u64, |acc, v| acc.saturating_add(v.voting_power))
    }
}

impl mc::ValidatorSet<LodeContext> for ValidatorSet {
    fn count(&self) -> usize {
        self.validators.len()
    }

    fn total_voting_power(&self) -> VotingPower {
        self.total_power()
    }

    fn get_by_address(&self, address: &Address) -> Option<&Validator> {
        self.validators
            .binary_search_by(|v| v.address.cmp(address))
            .ok()
            .and_then(|i| self.validators.get(i))
    }

    fn get_by_index(&self, index: usize) -> Option<&Validator> {
        self.validators.get(index)
    }
}
