//! The bridge: Malachite's application messages ([`AppMsg`]) answered with ABCI calls on the application and
//! with the block store. See DESIGN.md, "The Malachite ↔ ABCI bridge".

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use malachitebft_app_channel::app::engine::host::{Next, SyncedValueOutcome};
use malachitebft_app_channel::app::streaming::{StreamContent, StreamMessage};
use malachitebft_app_channel::app::types::core::{
    CommitCertificate, Context, HeightParams, LinearTimeouts, Round, ValidatorSet as _, Validity,
};
use malachitebft_app_channel::app::types::sync::RawDecidedValue;
use malachitebft_app_channel::app::types::{
    LocallyProposedValue, MisbehaviorEvidence, PeerId, ProposedValue,
};
use malachitebft_app_channel::{AppMsg, NetworkMsg};
use sha2::{Digest, Sha256};
use tendermint_proto::google::protobuf::Timestamp;
use tendermint_proto::v0_38::abci::{
    CommitInfo, RequestFinalizeBlock, RequestInfo, RequestInitChain, RequestPrepareProposal,
    RequestProcessProposal, ResponseFinalizeBlock, ValidatorUpdate, VoteInfo,
};
use tendermint_proto::v0_38::types::BlockIdFlag;
use tokio::sync::{mpsc, watch};
use tracing::{debug, error, info, warn};

use crate::abci::{Abci, AbciExt, Mempool, MempoolLevel};
use crate::context::LodeContext;
use crate::convert::extend_certificate;
use crate::error::BlockFault;
use crate::error::ConsensusError;
use crate::evidence::{DoubleVote, EvidenceVote};
use crate::failpoint;
use crate::peers::PeerKeys;
use crate::proposer::next_height_set;
use crate::signing::{parts_hash, LodeSigner, LodeVerifier};
use crate::store::{BlockStore, DecidedBlock, HeightValidators, UndecidedProposal};
use crate::streams::{
    parse_stream_id, peer_id_of, stream_id, Complete, Pushed, StreamBuffer, StreamHeader,
    StreamLimits, CHUNK_SIZE,
};
use crate::types::{
    Address, Block, BlockHeader, BlockId, BlockTime, CompactBlock, CompactTx, Height, LastCommit,
    PartInit, ProposalPart, PublicKey, Validator, ValidatorSet, MAX_TOTAL_POWER,
};
use crate::validity::{self, BlockLimits, Door, Expected};

/// At most this many complete streams for the next height wait for it; beyond it the oldest is dropped.
const MAX_EARLY: usize = 16;
/// At most this many complete streams per proposer wait for the next height.
const MAX_EARLY_PER_PROPOSER: usize = 2;
/// At most this many decided values are served per sync request.
const MAX_SYNC_BATCH: u64 = 50;
/// At most this many bytes of encoded blocks are served per sync request (at least one block is, so a
/// block of any size within the limits can be synced). Malachite's response limit is above it (see
/// [`crate::service`]).
pub const SYNC_RESPONSE_BYTES: u64 = 8 * 1024 * 1024;
/// Most txs a receiver fetches from peers for one proposal: a proposal naming more txs than that which the
/// receiver's mempool lacks is not accepted, unfetched (a full block of the smallest txs names far fewer
/// that peers have not gossiped).
pub const MAX_FETCH_TXS: usize = 16_384;
/// Longest a receiver waits for peers to send the txs a proposal named and its mempool lacks. Half the
/// round-0 propose timeout when that is shorter; while it waits, the engine's other requests to the
/// application wait too (Malachite's host answers one at a time).
pub const MAX_TX_FETCH_WAIT: Duration = Duration::from_secs(1);

/// What the bridge needs besides the application, the store and the mempool.
#[derive(Clone, Debug)]
pub struct BridgeParams {
    /// Chain id.
    pub chain_id: String,
    /// Genesis validators (public key, power), used when the application is fresh.
    pub genesis_validators: Vec<(PublicKey, u64)>,
    /// Genesis time.
    pub genesis_time: BlockTime,
    /// Genesis application state (JSON bytes), passed to InitChain.
    pub app_state_bytes: Bytes,
    /// The height of the chain's first block (genesis `initial_height`, at least 1).
    pub initial_height: u64,
    /// Consensus timeouts.
    pub timeouts: LinearTimeouts,
    /// Maximum bytes of txs in a proposed block.
    pub max_block_tx_bytes: u64,
    /// How far in the future a proposal's time may be relative to our clock.
    pub max_clock_drift: Duration,
    /// How long after the previous block a proposer with an empty mempool waits for a transaction.
    pub empty_block_interval: Duration,
    /// How long after the previous block a proposer with txs, but less than a full block of them, waits
    /// for more before it proposes (see [`crate::service::ConsensusConfig::min_block_interval`]).
    pub min_block_interval: Duration,
    /// Test-only: shifts this node's clock, the time it proposes blocks with and checks proposals' times
    /// against, by this many milliseconds (positive: ahead). Always 0 outside tests, which set it to skew
    /// one validator (`lode start`'s hidden `--test-clock-offset-ms`).
    pub clock_offset_ms: i64,
}

/// Until when a round-0 proposer holds off reaping its mempool (`None`: reap now), `last_block_at` being
/// when it committed the previous block and `cap` the latest it may propose. An empty mempool waits for a
/// tx until `empty_block_interval` after the previous block; a mempool with less than a full block waits
/// for more until `min_block_interval` after it; a full block, or a mempool at its own limit (no more txs
/// can come), never waits.
fn hold_until(
    params: &BridgeParams,
    last_block_at: Instant,
    cap: Instant,
    pool: MempoolLevel,
    now: Instant,
) -> Option<Instant> {
    let interval = if pool.txs == 0 {
        params.empty_block_interval
    } else if pool.bytes < params.max_block_tx_bytes && !pool.at_capacity {
        params.min_block_interval
    } else {
        return None;
    };
    // An interval too long to add is "as long as allowed": the cap.
    let until = last_block_at
        .checked_add(interval)
        .map_or(cap, |t| t.min(cap));
    (until > now).then_some(until)
}

/// A fully received and signature-checked stream, waiting for its height.
#[derive(Clone, Debug)]
struct Received {
    init: PartInit,
    block: Block,
}

/// Bridge state. Owned by one task; every method runs on it.
pub struct Bridge<A, S, M> {
    abci: Arc<A>,
    store: Arc<S>,
    mempool: Arc<M>,
    signer: LodeSigner,
    verifier: LodeVerifier,
    address: Address,
    params: BridgeParams,
    height: Height,
    validators: Option<HeightValidators>,
    /// The validator set of the last committed height: the one the next block's last commit is checked
    /// against (`None` before the first block).
    last_set: Option<ValidatorSet>,
    last_block_id: Option<BlockId>,
    last_app_hash: Bytes,
    last_time: BlockTime,
    last_decided_ok: bool,
    /// When the last block was committed here (or the bridge started); paces empty blocks.
    last_block_at: Instant,
    limits: BlockLimits,
    streams: StreamBuffer,
    early: Vec<Received>,
    /// Heights whose round-0 proposal this node already waited on peers for (see [`Self::resolve`]): one
    /// fetch per height, whatever a byzantine proposer streams.
    fetched_at: HashSet<Height>,
    decided_tx: watch::Sender<Height>,
    network: mpsc::Sender<NetworkMsg<LodeContext>>,
    /// Which consensus key each peer proved (see [`crate::peers`]).
    peer_keys: PeerKeys,
    /// Where double-sign evidence goes (see [`crate::evidence`]); `None` drops it.
    evidence: Option<mpsc::Sender<DoubleVote>>,
    /// Receives each committed block's outcome before `decided_tx` its height; `None` keeps none.
    outcomes: Option<watch::Sender<Option<Arc<BlockOutcome>>>>,
}

/// What a committed block did, as FinalizeBlock returned it: handed to the node in memory so that what
/// waits on a commit (a `BroadcastStream`, a `BroadcastAndWait`) need not read the block back from the store
/// and decode its results again (4% of a loaded four-validator devnet's CPU did that once per block).
#[derive(Debug, Clone, PartialEq)]
pub struct BlockOutcome {
    /// The block's height.
    pub height: u64,
    /// SHA-256 of each tx, in block order.
    pub hashes: Vec<[u8; 32]>,
    /// FinalizeBlock's response (one result per tx).
    pub results: ResponseFinalizeBlock,
}

impl<A, S, M> std::fmt::Debug for Bridge<A, S, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge")
            .field("address", &self.address)
            .field("height", &self.height)
            .finish_non_exhaustive()
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ConsensusError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ConsensusError::Engine(format!("blocking task: {e}")))
}

fn timestamp(t: BlockTime) -> Timestamp {
    Timestamp {
        seconds: t.seconds,
        nanos: i32::try_from(t.nanos).unwrap_or(0),
    }
}

/// An ABCI validator update as the engine applies it, or why it cannot be: no key, not ed25519, not a valid
/// 32-byte key, a negative power or one above [`MAX_TOTAL_POWER`]. The application computed it, so a refusal
/// is an application bug: the caller halts with it rather than drop the update.
fn validator_from_update(i: usize, u: &ValidatorUpdate) -> Result<Validator, String> {
    use tendermint_proto::v0_38::crypto::public_key::Sum;
    let key = match u.pub_key.as_ref().and_then(|k| k.sum.as_ref()) {
        Some(Sum::Ed25519(b)) => <[u8; 32]>::try_from(b.as_slice()).map_err(|_| {
            format!(
                "validator update {i}: ed25519 key is {} bytes, not 32",
                b.len()
            )
        })?,
        Some(_) => return Err(format!("validator update {i}: key is not ed25519")),
        None => return Err(format!("validator update {i}: no key")),
    };
    let pk = PublicKey(key);
    if !crate::signing::is_valid_public_key(&pk) {
        return Err(format!(
            "validator update {i}: key {} is not a valid ed25519 point",
            hex::encode(key)
        ));
    }
    let power = u64::try_from(u.power)
        .ok()
        .filter(|p| *p <= MAX_TOTAL_POWER)
        .ok_or_else(|| {
            format!(
                "validator update {i}: power {} is outside 0..={MAX_TOTAL_POWER}",
                u.power
            )
        })?;
    Ok(Validator::new(pk, power))
}

/// The validator set after `updates`, or why the engine cannot run with it: an update it cannot apply, an
/// empty set, or a total power above [`MAX_TOTAL_POWER`].
pub fn apply_validator_updates(
    set: &ValidatorSet,
    updates: &[ValidatorUpdate],
) -> Result<ValidatorSet, String> {
    let updates: Vec<Validator> = updates
        .iter()
        .enumerate()
        .map(|(i, u)| validator_from_update(i, u))
        .collect::<Result<_, _>>()?;
    let next = set.with_updates(&updates);
    if next.count() == 0 {
        return Err("the validator updates leave an empty validator set".into());
    }
    let total = next
        .validators()
        .iter()
        .fold(0u128, |a, v| a.saturating_add(u128::from(v.voting_power)));
    if total > u128::from(MAX_TOTAL_POWER) {
        return Err(format!(
            "the validator updates bring the total voting power to {total}, over {MAX_TOTAL_POWER}"
        ));
    }
    Ok(next)
}

fn validator_update(v: &Validator) -> ValidatorUpdate {
    use tendermint_proto::v0_38::crypto::{public_key::Sum, PublicKey as PbKey};
    ValidatorUpdate {
        pub_key: Some(PbKey {
            sum: Some(Sum::Ed25519(v.public_key.0.to_vec())),
        }),
        power: i64::try_from(v.voting_power).unwrap_or(i64::MAX),
    }
}

/// FinalizeBlock's `decided_last_commit`: each validator of `set` (in set order) with its power, and whether
/// its signature is in `commit` (the one the block carries, so every node reports the same).
fn last_commit_info(set: &ValidatorSet, commit: &LastCommit) -> CommitInfo {
    let signed: std::collections::BTreeSet<Address> =
        commit.signatures.iter().map(|(a, _)| *a).collect();
    CommitInfo {
        round: i32::try_from(commit.round).unwrap_or(0),
        votes: set
            .validators()
            .iter()
            .map(|v| VoteInfo {
                validator: Some(tendermint_proto::v0_38::abci::Validator {
                    address: Bytes::copy_from_slice(&v.address.0),
                    power: i64::try_from(v.voting_power).unwrap_or(i64::MAX),
                }),
                block_id_flag: if signed.contains(&v.address) {
                    BlockIdFlag::Commit as i32
                } else {
                    BlockIdFlag::Absent as i32
                },
            })
            .collect(),
    }
}

/// The last commit a proposer puts in its block: its own certificate of the previous height.
fn last_commit_of(certificate: &CommitCertificate<LodeContext>) -> LastCommit {
    LastCommit {
        round: certificate.round.as_i64(),
        signatures: certificate
            .commit_signatures
            .iter()
            .map(|s| (s.address, s.signature))
            .collect(),
    }
}

/// The messages that stream `block` as `signer`'s proposal for `height` and `round`: init, chunks of the
/// encoded [`CompactBlock`] (the txs at the positions where `named` holds their hash named by it, the rest
/// whole; `named` empty: all whole), the signed fin, the end marker.
pub fn proposal_parts(
    signer: &LodeSigner,
    block: &Block,
    named: &[Option<[u8; 32]>],
    height: Height,
    round: Round,
    valid_round: Round,
) -> Vec<StreamMessage<ProposalPart>> {
    let init = PartInit {
        height,
        round,
        valid_round,
        proposer: signer.address(),
    };
    let bytes = CompactBlock::of(block, named).encode();
    let chunks: Vec<Bytes> = bytes
        .chunks(CHUNK_SIZE)
        .map(Bytes::copy_from_slice)
        .collect();
    let sig = signer.sign_parts_fin(&init, parts_hash(&chunks));
    let id = stream_id(height, round, &signer.address());
    let mut contents = Vec::with_capacity(chunks.len().saturating_add(3));
    contents.push(StreamContent::Data(ProposalPart::Init(init)));
    contents.extend(
        chunks
            .into_iter()
            .map(|c| StreamContent::Data(ProposalPart::Data(c))),
    );
    contents.push(StreamContent::Data(ProposalPart::Fin(sig)));
    contents.push(StreamContent::Fin);
    contents
        .into_iter()
        .zip(0u64..)
        .map(|(c, seq)| StreamMessage::new(id.clone(), seq, c))
        .collect()
}

/// Serves a sync request from the store: decided blocks from `start` up to `end` (at most
/// [`MAX_SYNC_BATCH`]), stopping before [`SYNC_RESPONSE_BYTES`] would be passed (but always one block) and
/// at the first height missing or failing [`validity::check_body`] (a corrupt store must not feed peers).
/// Runs on a blocking thread, off the consensus task.
fn serve_decided<S: BlockStore>(
    store: &S,
    limits: &BlockLimits,
    start: Height,
    end: Height,
) -> Vec<RawDecidedValue<LodeContext>> {
    let mut out = Vec::new();
    let end = end
        .0
        .min(start.0.saturating_add(MAX_SYNC_BATCH.saturating_sub(1)));
    let mut bytes = 0u64;
    for h in start.0..=end {
        let d = match store.get_decided(Height(h)) {
            Ok(Some(d)) => d,
            Ok(None) => break,
            Err(e) => {
                warn!(height = h, error = %e, "reading a decided block to serve");
                break;
            }
        };
        let fault = if d.block.header().height != Height(h)
            || d.certificate.height != Height(h)
            || d.certificate.value_id != d.block.id()
        {
            Some(BlockFault::WrongHeight {
                got: d.block.header().height,
                want: Height(h),
            })
        } else {
            validity::check_body(&d.block, limits).err()
        };
        if let Some(fault) = fault {
            error!(height = h, code = fault.code(), error = %fault, "stored block fails its checks; not serving it");
            break;
        }
        let encoded = d.block.encode();
        let len = u64::try_from(encoded.len()).unwrap_or(u64::MAX);
        bytes = bytes.saturating_add(len);
        if !out.is_empty() && bytes > SYNC_RESPONSE_BYTES {
            break;
        }
        out.push(RawDecidedValue::new(
            encoded,
            extend_certificate(&d.certificate),
        ));
    }
    out
}

impl<A: Abci, S: BlockStore, M: Mempool> Bridge<A, S, M> {
    /// A bridge. `decided_tx` receives each committed height.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        abci: Arc<A>,
        store: Arc<S>,
        mempool: Arc<M>,
        signer: LodeSigner,
        params: BridgeParams,
        decided_tx: watch::Sender<Height>,
        network: mpsc::Sender<NetworkMsg<LodeContext>>,
    ) -> Self {
        let limits = BlockLimits {
            max_tx_bytes: params.max_block_tx_bytes,
        };
        Self {
            address: signer.address(),
            verifier: LodeVerifier::new(params.chain_id.clone()),
            abci,
            store,
            mempool,
            signer,
            params,
            height: Height(1),
            validators: None,
            last_set: None,
            last_block_id: None,
            last_app_hash: Bytes::new(),
            last_time: BlockTime::default(),
            last_decided_ok: true,
            last_block_at: Instant::now(),
            limits,
            streams: StreamBuffer::new(StreamLimits {
                max_bytes: limits.max_block_bytes(),
            }),
            early: Vec::new(),
            fetched_at: HashSet::new(),
            decided_tx,
            network,
            peer_keys: PeerKeys::new(),
            evidence: None,
            outcomes: None,
        }
    }

    /// This bridge, sending each committed block's [`BlockOutcome`] to `outcomes` (before its height goes
    /// to `decided_tx`, so whoever wakes on the height finds the outcome there).
    pub fn with_outcomes(mut self, outcomes: watch::Sender<Option<Arc<BlockOutcome>>>) -> Self {
        self.outcomes = Some(outcomes);
        self
    }

    /// This bridge, admitting proposal streams from the peers `peer_keys` binds to their proposer's key.
    pub fn with_peer_keys(mut self, peer_keys: PeerKeys) -> Self {
        self.peer_keys = peer_keys;
        self
    }

    /// This bridge, offering the double-sign evidence the engine hands it on `evidence` (never waiting).
    pub fn with_evidence(mut self, evidence: mpsc::Sender<DoubleVote>) -> Self {
        self.evidence = Some(evidence);
        self
    }

    /// Keeps the bindings of the validators this node decides with (see [`PeerKeys::protect`]).
    fn protect_peer_keys(&self) {
        if let Some(v) = &self.validators {
            self.peer_keys.protect(
                v.current
                    .validators()
                    .iter()
                    .chain(v.next.validators())
                    .map(|v| v.public_key),
            );
        }
    }

    /// Offers the engine's vote evidence to the node: each pair whose two signatures verify with the
    /// validator's key in the last committed or the current set, and that is an offence.
    fn forward_evidence(&self, evidence: &MisbehaviorEvidence<LodeContext>) {
        let Some(tx) = &self.evidence else {
            return;
        };
        for (address, pairs) in &evidence.votes {
            let key = [
                self.last_set.as_ref(),
                self.validators.as_ref().map(|v| &v.current),
            ]
            .into_iter()
            .flatten()
            .find_map(|set| set.get_by_address(address).map(|v| v.public_key));
            let Some(key) = key else {
                warn!(validator = %address, "equivocation by a validator of no known set; not evidence");
                continue;
            };
            for (a, b) in pairs {
                let verified = [a, b].iter().all(|v| {
                    v.message.validator_address == *address
                        && self.verifier.verify_vote(&v.message, &v.signature, &key)
                });
                let pair = DoubleVote {
                    a: EvidenceVote::from_signed(a),
                    b: EvidenceVote::from_signed(b),
                };
                if !verified || !pair.conflicts() {
                    warn!(validator = %address, "equivocation record that does not verify; not evidence");
                    continue;
                }
                warn!(validator = %address, height = pair.a.height, round = pair.a.round,
                    vote_type = pair.a.vote_type, "validator signed two conflicting votes");
                if tx.try_send(pair).is_err() {
                    warn!(validator = %address, "evidence channel full or closed; evidence dropped");
                }
            }
        }
    }

    fn height_params(&self) -> Result<HeightParams<LodeContext>, ConsensusError> {
        let v = self
            .validators
            .as_ref()
            .ok_or_else(|| ConsensusError::Engine("validator set unknown".into()))?;
        Ok(HeightParams::new(
            v.current.clone(),
            self.params.timeouts,
            None,
        ))
    }

    /// Handles one message from Malachite. An error is fatal for this node (the caller stops consensus).
    pub async fn handle(&mut self, msg: AppMsg<LodeContext>) -> Result<(), ConsensusError> {
        match msg {
            AppMsg::ConsensusReady { reply } => {
                self.startup().await?;
                self.protect_peer_keys();
                info!(height = %self.height, address = %self.address, "consensus ready");
                let _ = reply.send((self.height, self.height_params()?));
            }
            AppMsg::StartedRound {
                height,
                round,
                proposer,
                role,
                reply_value,
            } => {
                debug!(%height, %round, %proposer, ?role, "started round");
                let values = self.values_for_round(height, round).await?;
                let _ = reply_value.send(values);
            }
            AppMsg::GetValue {
                height,
                round,
                timeout,
                reply,
            } => {
                let (block, named) = self.get_value(height, round, timeout).await?;
                let _ = reply.send(LocallyProposedValue::new(height, round, block.clone()));
                self.stream_block(&block, &named, height, round, Round::Nil)
                    .await;
            }
            AppMsg::ExtendVote { reply, .. } => {
                let _ = reply.send(None);
            }
            AppMsg::VerifyVoteExtensions {
                extensions, reply, ..
            } => {
                let _ = reply.send(extensions.into_iter().map(|(a, _)| (a, Ok(()))).collect());
            }
            AppMsg::RestreamProposal {
                height,
                round,
                valid_round,
                value_id,
                ..
            } => {
                if let Some(p) = self.store.undecided_by_id(height, value_id)? {
                    self.stream_block(&p.block, &[], height, round, valid_round)
                        .await;
                }
            }
            AppMsg::GetHistoryMinHeight { reply } => {
                let min = self
                    .store
                    .min_height()?
                    .unwrap_or(Height(self.params.initial_height.max(1)));
                let _ = reply.send(min);
            }
            AppMsg::ReceivedProposalPart {
                from,
                published_by,
                part,
                reply,
            } => {
                // Gossipsub signs each message with its publisher's key, so `published_by` is the
                // proposer's own peer; `from` is only the neighbour that relayed it.
                let value = self
                    .received_part(published_by.unwrap_or(from), part)
                    .await?;
                let _ = reply.send(value);
            }
            AppMsg::Decided {
                certificate, reply, ..
            } => {
                let result = self.decide(certificate).await;
                let _ = reply.send(());
                self.last_decided_ok = match result {
                    Ok(()) => true,
                    // Divergence, or a decided block the application cannot execute or commit: the same
                    // block would fail the same way again, so stop instead of restarting the height forever.
                    Err(e @ ConsensusError::Halted(_)) => {
                        error!(error = %e, "halting: this node cannot follow the chain");
                        return Err(e);
                    }
                    Err(e) => {
                        error!(error = %e, "failed to commit decided block");
                        false
                    }
                };
            }
            AppMsg::Finalized {
                certificate,
                evidence,
                reply,
                ..
            } => {
                self.forward_evidence(&evidence);
                let params = self.height_params()?;
                let next = if self.last_decided_ok {
                    Next::Start(self.height, params)
                } else {
                    Next::Restart(certificate.height, params)
                };
                let _ = reply.send(next);
            }
            AppMsg::GetDecidedValues { range, reply } => {
                // Reading, checking and encoding up to a batch of blocks is store work: it runs on a
                // blocking thread and replies from there, so a syncing peer never holds up a height.
                let store = self.store.clone();
                let limits = self.limits;
                let (start, end) = (*range.start(), *range.end());
                tokio::task::spawn_blocking(move || {
                    let _ = reply.send(serve_decided(&*store, &limits, start, end));
                });
            }
            AppMsg::ProcessSyncedValue {
                height,
                round,
                proposer,
                value_bytes,
                reply,
            } => {
                let outcome = self
                    .synced_value(height, round, proposer, &value_bytes)
                    .await?;
                let _ = reply.send(outcome);
            }
        }
        Ok(())
    }

    /// ConsensusReady: InitChain on a fresh application, or resume from Info and the store.
    async fn startup(&mut self) -> Result<(), ConsensusError> {
        let abci = self.abci.clone();
        let info = blocking(move || abci.info(RequestInfo::default())).await??;
        let last = u64::try_from(info.last_block_height).unwrap_or(0);
        let initial = self.params.initial_height.max(1);
        let initial_i64 = i64::try_from(initial).map_err(|_| {
            ConsensusError::Config(format!("initial height {initial} out of range"))
        })?;
        // No block committed yet: a fresh application reports height 0, one that ran InitChain reports
        // `initial - 1`. InitChain is idempotent, so a restart before the first block runs it again.
        if last < initial {
            let genesis = ValidatorSet::new(
                self.params
                    .genesis_validators
                    .iter()
                    .map(|(pk, p)| Validator::new(*pk, *p)),
            );
            let req = RequestInitChain {
                time: Some(timestamp(self.params.genesis_time)),
                chain_id: self.params.chain_id.clone(),
                consensus_params: None,
                validators: genesis.validators().iter().map(validator_update).collect(),
                app_state_bytes: self.params.app_state_bytes.clone(),
                initial_height: initial_i64,
            };
            let abci = self.abci.clone();
            let resp = blocking(move || abci.init_chain(req)).await??;
            let set = if resp.validators.is_empty() {
                genesis
            } else {
                apply_validator_updates(&ValidatorSet::new([]), &resp.validators).map_err(|e| {
                    ConsensusError::Config(format!(
                        "InitChain returned validators the engine cannot use: {e}"
                    ))
                })?
            };
            if set.count() == 0 {
                return Err(ConsensusError::Config("empty genesis validator set".into()));
            }
            let hv = HeightValidators {
                height: Height(initial),
                current: set.clone(),
                next: set,
            };
            self.store.put_validators(&hv)?;
            self.validators = Some(hv);
            self.height = Height(initial);
            self.last_app_hash = resp.app_hash;
            self.last_time = self.params.genesis_time;
            self.last_block_id = None;
            self.last_set = None;
        } else {
            self.height = Height(last.saturating_add(1));
            self.last_app_hash = info.last_block_app_hash;
            let prev = self.store.get_decided(Height(last))?.ok_or_else(|| {
                ConsensusError::Config(format!("block {last} missing from the store"))
            })?;
            self.last_block_id = Some(prev.block.id());
            self.last_time = prev.block.header().time;
            self.validators = Some(self.store.get_validators(self.height)?.ok_or_else(|| {
                ConsensusError::Config(format!("validators of height {} missing", self.height))
            })?);
            self.last_set = Some(
                self.store
                    .get_validators(Height(last))?
                    .ok_or_else(|| {
                        ConsensusError::Config(format!("validators of height {last} missing"))
                    })?
                    .current,
            );
            // The block store may be one block ahead of the application (crash between storing and Commit).
            if let Some(next) = self.store.get_decided(self.height)? {
                info!(height = %self.height, "replaying stored block into the application");
                let certified = self.validators.as_ref().is_some_and(|v| {
                    next.certificate.height == self.height
                        && next.certificate.value_id == next.block.id()
                        && self
                            .verifier
                            .verify_commit_certificate(&next.certificate, &v.current)
                });
                if !certified {
                    return Err(ConsensusError::Config(format!(
                        "stored block at {} lacks a valid commit certificate",
                        self.height
                    )));
                }
                if let Err(fault) = self.validate(&next.block, Door::Store).await? {
                    return Err(ConsensusError::Config(format!(
                        "stored block at {} fails its checks: {fault}",
                        self.height
                    )));
                }
                self.finalize_and_commit(next.block, next.certificate)
                    .await?;
            }
        }
        let _ = self
            .decided_tx
            .send(Height(self.height.0.saturating_sub(1)));
        Ok(())
    }

    async fn values_for_round(
        &mut self,
        height: Height,
        round: Round,
    ) -> Result<Vec<ProposedValue<LodeContext>>, ConsensusError> {
        // Streams that arrived before we reached this height.
        let early: Vec<Received> = std::mem::take(&mut self.early);
        for r in early {
            if r.init.height == height {
                self.accept_stream(r).await?;
            } else if r.init.height > height {
                self.early.push(r);
            }
        }
        Ok(self
            .store
            .undecided(height, round)?
            .into_iter()
            .map(|p| ProposedValue {
                height: p.height,
                round: p.round,
                valid_round: p.valid_round,
                proposer: p.block.header().proposer,
                value: p.block,
                validity: Validity::from_bool(p.valid),
            })
            .filter(|p| p.proposer == self.expected_proposer(round).unwrap_or(p.proposer))
            .collect())
    }

    /// This node's clock: the wall clock shifted by the test-only `clock_offset_ms`.
    fn now(&self) -> BlockTime {
        let offset = i128::from(self.params.clock_offset_ms).saturating_mul(1_000_000);
        BlockTime::from_unix_nanos(BlockTime::now().as_unix_nanos().saturating_add(offset))
    }

    fn expected_proposer(&self, round: Round) -> Option<Address> {
        let v = self.validators.as_ref()?;
        Some(
            LodeContext
                .select_proposer(&v.current, self.height, round)
                .address,
        )
    }

    /// In round 0, waits (bounded) before reaping the mempool: while it is empty, for a transaction, until
    /// `empty_block_interval` after the previous block, so an idle chain does not spin out empty blocks as
    /// fast as it can vote; then, while it holds less than a full block, until `min_block_interval` after
    /// the previous block, so a loaded chain makes fewer, fuller blocks (each height's fixed cost, from the
    /// votes to the synced commit and the recheck of every pending tx, is paid for more txs). Neither wait
    /// passes half the propose timeout, so the block still reaches the others in time. Later rounds propose
    /// at once: the chain is already late.
    async fn wait_for_txs(&self, round: Round, propose_timeout: Duration) {
        if round.as_i64() != 0 {
            return;
        }
        let start = Instant::now();
        let cap = start
            .checked_add(propose_timeout.checked_div(2).unwrap_or_default())
            .unwrap_or(start);
        loop {
            let pool = self.mempool.level();
            let now = Instant::now();
            let Some(until) = hold_until(&self.params, self.last_block_at, cap, pool, now) else {
                return;
            };
            let poll = Duration::from_millis(5);
            tokio::time::sleep(until.saturating_duration_since(now).min(poll)).await;
        }
    }

    async fn get_value(
        &mut self,
        height: Height,
        round: Round,
        propose_timeout: Duration,
    ) -> Result<(Block, Vec<Option<[u8; 32]>>), ConsensusError> {
        // Asked again for the same round (e.g. after a restart): the same block, its txs whole.
        if let Some(p) = self
            .store
            .undecided(height, round)?
            .into_iter()
            .find(|p| p.block.header().proposer == self.address)
        {
            return Ok((p.block, Vec::new()));
        }
        self.wait_for_txs(round, propose_timeout).await;
        let max = self.params.max_block_tx_bytes;
        let mempool = self.mempool.clone();
        let txs = blocking(move || mempool.reap(max)).await?;
        let now = self.now();
        let min_time =
            BlockTime::from_unix_nanos(self.last_time.as_unix_nanos().saturating_add(1_000_000));
        let time = now.max(min_time);
        let req = RequestPrepareProposal {
            max_tx_bytes: i64::try_from(max).unwrap_or(i64::MAX),
            txs: txs.clone(),
            local_last_commit: None,
            misbehavior: vec![],
            height: i64::try_from(height.0).unwrap_or(i64::MAX),
            time: Some(timestamp(time)),
            next_validators_hash: Bytes::new(),
            proposer_address: Bytes::copy_from_slice(&self.address.0),
        };
        let abci = self.abci.clone();
        let resp = blocking(move || abci.prepare_proposal(req)).await??;
        let mut txs = resp.txs;
        // The limit counts each tx's framing in the block, which the application's byte count does not:
        // drop txs from the end until the block is within the limits every validator holds it to.
        while validity::txs_wire_len(&txs) > self.limits.max_tx_bytes {
            txs.pop();
        }
        // Each tx hashed once, for the tx root and for the names of those peers already hold.
        let mempool = self.mempool.clone();
        let (txs, hashes, shared) = blocking(move || {
            let hashes: Vec<[u8; 32]> = txs.iter().map(|t| Sha256::digest(t).into()).collect();
            let shared = mempool.shared(&hashes);
            (txs, hashes, shared)
        })
        .await?;
        // Only round 0 names txs: a later round's proposal goes whole, so it is accepted even by a node that
        // could not get a named tx.
        let named: Vec<Option<[u8; 32]>> = if round == Round::new(0) {
            hashes
                .iter()
                .zip(shared.iter().copied().chain(std::iter::repeat(false)))
                .map(|(h, s)| s.then_some(*h))
                .collect()
        } else {
            Vec::new()
        };
        let last_commit = match height
            .0
            .checked_sub(1)
            .filter(|_| self.last_block_id.is_some())
        {
            Some(prev) => Some(
                self.store
                    .decided_certificate(Height(prev))?
                    .map(|c| last_commit_of(&c))
                    .ok_or_else(|| {
                        ConsensusError::Engine(format!(
                            "decided block {prev} missing from the store"
                        ))
                    })?,
            ),
            None => None,
        };
        let header = BlockHeader {
            chain_id: self.params.chain_id.clone(),
            height,
            time,
            proposer: self.address,
            last_block_id: self.last_block_id,
            tx_root: crate::types::tx_root_of_hashes(&hashes),
            app_hash: self.last_app_hash.clone(),
            last_commit_hash: last_commit.as_ref().map(LastCommit::hash),
        };
        let block = Block::with_last_commit(header, txs, last_commit).with_tx_hashes(hashes);
        info!(%height, %round, id = %block.id(), txs = block.txs().len(),
            named = named.iter().filter(|n| n.is_some()).count(), "proposing block");
        self.store.put_undecided(&UndecidedProposal {
            height,
            round,
            valid_round: Round::Nil,
            block: block.clone(),
            valid: true,
        })?;
        Ok((block, named))
    }

    async fn stream_block(
        &self,
        block: &Block,
        named: &[Option<[u8; 32]>],
        height: Height,
        round: Round,
        valid_round: Round,
    ) {
        for msg in proposal_parts(&self.signer, block, named, height, round, valid_round) {
            if self
                .network
                .send(NetworkMsg::PublishProposalPart(msg))
                .await
                .is_err()
            {
                warn!("network channel closed while streaming a proposal");
                return;
            }
        }
    }

    /// The proposer of `height` and `round` with its key, for the current height and the next (whose set
    /// follows from the current one). `None` for other heights.
    fn proposer_of(&self, height: Height, round: Round) -> Option<(Address, PublicKey)> {
        let v = self.validators.as_ref()?;
        let set = if height == self.height {
            v.current.clone()
        } else if height == self.height.increment_by_one() {
            next_height_set(&v.current, v.next.validators())
        } else {
            return None;
        };
        let p = LodeContext.select_proposer(&set, height, round);
        Some((p.address, p.public_key))
    }

    /// A part of a proposal stream from `peer` (its publisher). The stream is admitted on its first part,
    /// whichever that is: its id must name the proposer of its height and round, and `peer` must be that
    /// proposer. Then the buffer holds it to the block limits (see [`crate::streams`]). A complete stream
    /// for the current height is validated; one for the next height waits for it.
    async fn received_part(
        &mut self,
        peer: PeerId,
        msg: StreamMessage<ProposalPart>,
    ) -> Result<Option<ProposedValue<LodeContext>>, ConsensusError> {
        if self.streams.is_ignored(&peer, self.height) {
            return Ok(None);
        }
        let Some(header) = parse_stream_id(&msg.stream_id) else {
            warn!(%peer, "proposal part with a malformed stream id");
            self.streams.strike(peer, self.height);
            return Ok(None);
        };
        let next = self.height.increment_by_one();
        if header.height < self.height || header.height > next {
            // Late or far ahead (we may be the one lagging): not the peer's fault, not worth buffering.
            return Ok(None);
        }
        match self.proposer_of(header.height, header.round) {
            Some((address, key)) if address == header.proposer => {
                // Once a peer proved the proposer's key, a stream from any other publisher (a relay or an
                // impostor) is dropped unbuffered, without a strike. While none has (its proof was lost or
                // it is not a direct peer, see `crate::peers`), the stream is buffered and its Fin decides.
                if peer_id_of(&key) != Some(peer)
                    && !self.peer_keys.is_bound(&peer, &key)
                    && self.peer_keys.has_peer_for(&key)
                {
                    debug!(%peer, height = %header.height, round = %header.round, proposer = %header.proposer,
                        "proposal stream from a peer not bound to its proposer; dropped");
                    return Ok(None);
                }
            }
            _ => {
                warn!(%peer, height = %header.height, round = %header.round, proposer = %header.proposer,
                    "proposal stream that does not name the proposer of its height and round");
                self.streams.strike(peer, self.height);
                return Ok(None);
            }
        }
        let complete = match self.streams.push(peer, header, msg, self.height) {
            Pushed::Pending | Pushed::Ignored => return Ok(None),
            Pushed::Invalid(why) => {
                warn!(%peer, height = %header.height, round = %header.round, reason = why, "dropping invalid proposal stream");
                return Ok(None);
            }
            Pushed::Complete(c) => c,
        };
        let Some((init, compact)) = self.assemble(header, *complete) else {
            return Ok(None);
        };
        let Some(block) = self.resolve(peer, &init, compact).await? else {
            return Ok(None);
        };
        let received = Received { init, block };
        if received.init.height == self.height {
            return self.accept_stream(received).await;
        }
        // A next height's block waits in memory until its height: held to the block limits first (its
        // named txs may have resolved to more bytes than the stream carried).
        if let Err(fault) = validity::check_body(&received.block, &self.limits) {
            warn!(%peer, height = %received.init.height, round = %received.init.round, code = fault.code(),
                error = %fault, "signed proposal for the next height over the block limits");
            self.streams.strike(peer, self.height);
            return Ok(None);
        }
        let proposer = received.init.proposer;
        if self
            .early
            .iter()
            .filter(|r| r.init.proposer == proposer)
            .count()
            >= MAX_EARLY_PER_PROPOSER
        {
            if let Some(i) = self.early.iter().position(|r| r.init.proposer == proposer) {
                self.early.remove(i);
            }
        }
        if self.early.len() >= MAX_EARLY {
            self.early.remove(0);
        }
        self.early.push(received);
        Ok(None)
    }

    /// Checks a complete stream's signature (by the proposer its id names) and decodes its body within the
    /// limits. A failure strikes the publisher.
    fn assemble(&mut self, header: StreamHeader, c: Complete) -> Option<(PartInit, CompactBlock)> {
        let key = self
            .proposer_of(header.height, header.round)
            .map(|(_, k)| k);
        let signed = key.is_some_and(|pk| {
            self.verifier
                .verify_parts_fin(&c.init, parts_hash(&c.chunks), &c.signature, &pk)
        });
        if !signed {
            warn!(peer = %c.peer, height = %header.height, round = %header.round, "proposal stream with a bad signature");
            self.streams.strike(c.peer, self.height);
            return None;
        }
        let total = c
            .chunks
            .iter()
            .fold(0usize, |a, ch| a.saturating_add(ch.len()));
        let mut bytes = Vec::with_capacity(total);
        for ch in &c.chunks {
            bytes.extend_from_slice(ch);
        }
        match validity::decode_compact_bounded(&bytes, &self.limits) {
            Ok(body) => Some((c.init, body)),
            Err(e) => {
                warn!(peer = %c.peer, code = e.code(), error = %e, "signed proposal stream does not hold a block");
                self.streams.strike(c.peer, self.height);
                None
            }
        }
    }

    /// The block a signed stream's body stands for: the txs it names taken from the mempool, those it lacks
    /// fetched from peers (at most [`MAX_FETCH_TXS`], waiting at most [`Self::fetch_wait`], once per height)
    /// and kept only if they hash to a name. `None` (logged) when a named tx is still missing: the proposal
    /// is then not accepted, as if it never arrived. That is not the publisher's fault for sure (this node's
    /// own mempool may have refused or evicted the tx), so nobody is struck for it; a body that names txs
    /// outside round 0 is struck before anything is looked up, and one whose hashes do not make its
    /// header's tx root before anything is fetched. The block's checks (tx root and all) follow in
    /// [`Self::accept_stream`] as for any block.
    async fn resolve(
        &mut self,
        peer: PeerId,
        init: &PartInit,
        body: CompactBlock,
    ) -> Result<Option<Block>, ConsensusError> {
        let named = body.named();
        if named.is_empty() {
            // Resolving hashes the whole txs: off the async threads.
            return blocking(move || body.resolve(&HashMap::new()).ok()).await;
        }
        // Only a round-0 proposal names txs (a later round's goes whole, so that an honest proposer's block
        // is accepted in the end even by a node that cannot get a named tx); a signed stream that breaks
        // this is the proposer's doing.
        if init.round != Round::new(0) || init.valid_round.is_defined() {
            warn!(%peer, height = %init.height, round = %init.round, "signed proposal names txs outside round 0");
            self.streams.strike(peer, self.height);
            return Ok(None);
        }
        // A replay of a proposal this node already resolved: the stored block, nothing looked up or fetched.
        if let Some(p) = self.store.undecided_by_id(init.height, body.header.id())? {
            return Ok(Some(p.block));
        }
        let mempool = self.mempool.clone();
        let looked_up = blocking(move || {
            let held = mempool.lookup(&named);
            let mut found = HashMap::with_capacity(named.len());
            let mut missing = Vec::new();
            for (h, tx) in named
                .into_iter()
                .zip(held.into_iter().chain(std::iter::repeat(None)))
            {
                match tx {
                    Some(tx) => {
                        found.insert(h, tx);
                    }
                    None => missing.push(h),
                }
            }
            // Before anything is fetched for it, the whole txs' hashes and the named ones must make the tx
            // root the proposer signed. (With nothing to fetch, the block's own check of its tx root
            // follows in `accept_stream`: hashing the whole txs here as well would do it twice.)
            if !missing.is_empty() {
                let hashes: Vec<[u8; 32]> = body
                    .txs
                    .iter()
                    .map(|t| match t {
                        CompactTx::Whole(b) => Sha256::digest(b).into(),
                        CompactTx::Named(h) => *h,
                    })
                    .collect();
                if crate::types::tx_root_of_hashes(&hashes) != body.header.tx_root {
                    return None;
                }
            }
            Some((body, found, missing))
        })
        .await?;
        let Some((body, mut found, missing)) = looked_up else {
            warn!(%peer, height = %init.height, round = %init.round, "signed proposal whose txs do not make its tx root");
            self.streams.strike(peer, self.height);
            return Ok(None);
        };
        if missing.len() > MAX_FETCH_TXS {
            warn!(height = %init.height, round = %init.round, proposer = %init.proposer, missing = missing.len(),
                "proposal names more txs this node lacks than it fetches; not accepted");
            return Ok(None);
        }
        if !missing.is_empty() && !self.fetched_at.insert(init.height) {
            warn!(height = %init.height, proposer = %init.proposer, missing = missing.len(),
                "a second round-0 proposal needing a fetch at this height; not fetched, not accepted");
            return Ok(None);
        }
        if !missing.is_empty() {
            let asked = missing.len();
            let started = Instant::now();
            // The wait is the fetcher's to keep, and kept here too: a fetcher that never answers costs
            // this proposal, not the node.
            let wanted: HashSet<[u8; 32]> = missing.iter().copied().collect();
            let wait = self.fetch_wait();
            let sent = tokio::time::timeout(wait, self.mempool.fetch(missing, wait))
                .await
                .unwrap_or_default();
            let fetched = blocking(move || {
                sent.into_iter()
                    .map(|tx| (<[u8; 32]>::from(Sha256::digest(&tx)), tx))
                    .filter(|(h, _)| wanted.contains(h))
                    .collect::<Vec<_>>()
            })
            .await?;
            debug!(height = %init.height, round = %init.round, asked, fetched = fetched.len(),
                ms = started.elapsed().as_millis() as u64, "fetched named txs from peers");
            found.extend(fetched);
        }
        match blocking(move || body.resolve(&found)).await? {
            Ok(block) => Ok(Some(block)),
            Err(missing) => {
                warn!(height = %init.height, round = %init.round, proposer = %init.proposer, missing = missing.len(),
                    "proposal names txs neither this node nor its peers sent; not accepted");
                Ok(None)
            }
        }
    }

    /// How long [`Self::resolve`] waits for peers: half the round-0 propose timeout, at most
    /// [`MAX_TX_FETCH_WAIT`].
    fn fetch_wait(&self) -> Duration {
        self.params
            .timeouts
            .propose
            .checked_div(2)
            .unwrap_or_default()
            .min(MAX_TX_FETCH_WAIT)
    }

    /// A signed stream for the current height: validate the block (the one check of every door) and store
    /// it with its verdict.
    async fn accept_stream(
        &mut self,
        r: Received,
    ) -> Result<Option<ProposedValue<LodeContext>>, ConsensusError> {
        if self.expected_proposer(r.init.round) != Some(r.init.proposer) {
            warn!(proposer = %r.init.proposer, round = %r.init.round, "stream from a non-proposer");
            return Ok(None);
        }
        let door = Door::Proposal {
            reproposal: r.init.valid_round.is_defined(),
            now: self.now(),
            max_drift: self.params.max_clock_drift,
        };
        let valid = match self.validate(&r.block, door).await? {
            Ok(()) => true,
            Err(fault) => {
                warn!(height = %r.init.height, round = %r.init.round, id = %r.block.id(), code = fault.code(), error = %fault, "rejecting invalid proposal");
                false
            }
        };
        let p = UndecidedProposal {
            height: r.init.height,
            round: r.init.round,
            valid_round: r.init.valid_round,
            block: r.block.clone(),
            valid,
        };
        self.store.put_received(&p)?;
        Ok(Some(ProposedValue {
            height: p.height,
            round: p.round,
            valid_round: p.valid_round,
            proposer: r.init.proposer,
            value: r.block,
            validity: Validity::from_bool(valid),
        }))
    }

    /// A value from sync, whose certificate Malachite has verified against this height's validators. It is
    /// decoded within the limits and validated like a live proposal (minus the clock) before anything is
    /// stored. A body that does not match its header, an oversized or undecodable value is the serving
    /// peer's fault: Malachite then penalises it and asks another peer. A block that matches its header but
    /// that this node finds invalid gets an `Invalid` verdict (Malachite reports the disagreement).
    async fn synced_value(
        &mut self,
        height: Height,
        round: Round,
        proposer: Address,
        value_bytes: &[u8],
    ) -> Result<SyncedValueOutcome<LodeContext>, ConsensusError> {
        let block = match validity::decode_bounded(value_bytes, &self.limits) {
            Ok(b) => b,
            Err(fault) => {
                warn!(%height, code = fault.code(), error = %fault, "synced value refused");
                return Ok(SyncedValueOutcome::PeerFault);
            }
        };
        let verdict = if block.header().height == height {
            self.validate(&block, Door::Sync).await?
        } else {
            Err(BlockFault::WrongHeight {
                got: block.header().height,
                want: height,
            })
        };
        if let Err(fault) = verdict {
            if fault.is_peer_fault() {
                warn!(%height, code = fault.code(), error = %fault, "synced value refused");
                return Ok(SyncedValueOutcome::PeerFault);
            }
            error!(%height, id = %block.id(), code = fault.code(), error = %fault, "a block decided by the network is invalid here");
            return Ok(SyncedValueOutcome::Verdict(ProposedValue {
                height,
                round,
                valid_round: Round::Nil,
                proposer,
                value: block,
                validity: Validity::Invalid,
            }));
        }
        let p = UndecidedProposal {
            height,
            round,
            valid_round: Round::Nil,
            block: block.clone(),
            valid: true,
        };
        Ok(match self.store.put_undecided(&p) {
            Ok(()) => SyncedValueOutcome::Verdict(ProposedValue {
                height,
                round,
                valid_round: Round::Nil,
                proposer,
                value: block,
                validity: Validity::Valid,
            }),
            Err(e) => {
                warn!(error = %e, "storing synced value");
                SyncedValueOutcome::LocalTransientError
            }
        })
    }

    /// The one validity check of a block for the current height, whichever door it came through:
    /// [`validity::check_block`], then the application's stateless tx checks (ABCI ProcessProposal).
    /// `Ok(Err(fault))` is an invalid block; `Err` a local failure.
    async fn validate(
        &self,
        block: &Block,
        door: Door,
    ) -> Result<Result<(), BlockFault>, ConsensusError> {
        let Some(v) = self.validators.as_ref() else {
            return Err(ConsensusError::Engine("validator set unknown".into()));
        };
        let expected = Expected {
            chain_id: &self.params.chain_id,
            height: self.height,
            last_block_id: self.last_block_id,
            last_app_hash: &self.last_app_hash,
            last_time: self.last_time,
            validators: &v.current,
        };
        if let Err(fault) = validity::check_block(block, &self.limits, &expected, door) {
            return Ok(Err(fault));
        }
        if let Err(fault) = self.check_last_commit(block) {
            return Ok(Err(fault));
        }
        let h = block.header();
        let req = RequestProcessProposal {
            txs: block.txs().to_vec(),
            proposed_last_commit: None,
            misbehavior: vec![],
            hash: Bytes::copy_from_slice(&block.id().0),
            height: i64::try_from(h.height.0).unwrap_or(i64::MAX),
            time: Some(timestamp(h.time)),
            next_validators_hash: Bytes::new(),
            proposer_address: Bytes::copy_from_slice(&h.proposer.0),
        };
        let abci = self.abci.clone();
        let hashes = block.tx_hashes().to_vec();
        let resp = blocking(move || abci.process_proposal_hashed(req, &hashes)).await??;
        // ProposalStatus::Accept = 1.
        Ok(if resp.status == 1 {
            Ok(())
        } else {
            Err(BlockFault::Rejected)
        })
    }

    /// The block's last commit is a valid commit of the previous height: absent at the first block, else
    /// precommits for `last_block_id` by validators of the previous height's set, each correctly signed,
    /// more than 2/3 of that set's power. (Which of the signers beyond 2/3 a proposer includes is its
    /// choice, as in Tendermint; the application's liveness window tolerates it.)
    fn check_last_commit(&self, block: &Block) -> Result<(), BlockFault> {
        let h = block.header();
        let (commit, prev_id, set) = match (block.last_commit(), h.last_block_id, &self.last_set) {
            (None, None, _) => return Ok(()),
            (Some(_), None, _) => return Err(BlockFault::BadLastCommit("a first block has none")),
            (None, Some(_), _) => return Err(BlockFault::BadLastCommit("missing")),
            (Some(_), Some(_), None) => {
                return Err(BlockFault::BadLastCommit(
                    "the previous height's validator set is unknown here",
                ))
            }
            (Some(c), Some(id), Some(set)) => (c, id, set),
        };
        let round = Round::new(
            u32::try_from(commit.round).map_err(|_| BlockFault::BadLastCommit("negative round"))?,
        );
        let certificate = CommitCertificate {
            height: Height(h.height.0.saturating_sub(1)),
            round,
            value_id: prev_id,
            commit_signatures: commit
                .signatures
                .iter()
                .map(|(a, s)| {
                    malachitebft_app_channel::app::types::core::CommitSignature::new(*a, *s)
                })
                .collect(),
        };
        if self.verifier.verify_commit_certificate(&certificate, set) {
            Ok(())
        } else {
            Err(BlockFault::BadLastCommit(
                "an unknown or repeated signer, a bad signature, or 2/3 of the power or less",
            ))
        }
    }

    async fn decide(
        &mut self,
        certificate: CommitCertificate<LodeContext>,
    ) -> Result<(), ConsensusError> {
        let height = certificate.height;
        if height != self.height {
            return Err(ConsensusError::Engine(format!(
                "decided height {height} but at {}",
                self.height
            )));
        }
        let p = self
            .store
            .undecided_by_id(height, certificate.value_id)?
            .ok_or_else(|| {
                ConsensusError::Engine(format!("decided block {} unknown", certificate.value_id))
            })?;
        // Read back from the store: held to the same body checks as every other door before it is kept
        // as decided (a corrupt record must not be executed or served).
        validity::check_body(&p.block, &self.limits).map_err(|fault| {
            ConsensusError::Engine(format!(
                "stored block {} at {height}: {fault}",
                p.block.id()
            ))
        })?;
        // The decided header carries the app hash the chain agreed on after the previous height; a node whose
        // own differs has diverged and must not build on it.
        if p.block.header().app_hash != self.last_app_hash {
            return Err(self.halt(
                Height(height.0.saturating_sub(1)),
                Some(p.block.header().app_hash.to_vec()),
                "the local app hash differs from the one in the decided block's header".into(),
            ));
        }
        self.finalize_and_commit(p.block, certificate).await
    }

    fn halt(&self, height: Height, expected: Option<Vec<u8>>, error: String) -> ConsensusError {
        ConsensusError::Halted(Box::new(crate::error::HaltReport {
            height: height.0,
            expected_app_hash: expected,
            local_app_hash: self.last_app_hash.to_vec(),
            error,
        }))
    }

    /// FinalizeBlock then Commit; then the next height's validator sets, the mempool and observers.
    async fn finalize_and_commit(
        &mut self,
        block: Block,
        certificate: CommitCertificate<LodeContext>,
    ) -> Result<(), ConsensusError> {
        let height = block.header().height;
        let hv = self
            .validators
            .clone()
            .ok_or_else(|| ConsensusError::Engine("validator set unknown".into()))?;
        // The last commit, as CometBFT reports it: every validator of the previous height with its power
        // there, flagged Commit if its signature is in the commit the block carries and Absent otherwise.
        let decided_last_commit = match (block.last_commit(), &self.last_set) {
            (Some(c), Some(set)) => last_commit_info(set, c),
            _ => CommitInfo::default(),
        };
        let this_set = hv.current.clone();
        let hashes = block.tx_hashes().to_vec();
        let req = RequestFinalizeBlock {
            txs: block.txs().to_vec(),
            decided_last_commit: Some(decided_last_commit),
            misbehavior: vec![],
            hash: Bytes::copy_from_slice(&block.id().0),
            height: i64::try_from(height.0).unwrap_or(i64::MAX),
            time: Some(timestamp(block.header().time)),
            next_validators_hash: Bytes::new(),
            proposer_address: Bytes::copy_from_slice(&block.header().proposer.0),
        };
        // FinalizeBlock, then the next height's validator sets, then Commit, which writes the block's state
        // together with what the block store staged (the decided block, those sets, the pruned proposals) in
        // one synced batch: after a crash at any point the node restarts at a height it has everything for.
        let abci = self.abci.clone();
        let store = self.store.clone();
        let decided = DecidedBlock {
            block: block.clone(),
            certificate,
        };
        let outcome = blocking(move || {
            failpoint::hit("before_finalize_block");
            let fin = abci
                .finalize_block_hashed(req, &hashes)
                .map_err(|e| format!("FinalizeBlock failed: {e}"))?;
            failpoint::hit("after_finalize_block");
            // An update the engine cannot apply is an application bug: halt before anything of the height
            // is stored or committed, never drop it (the nodes' sets would silently diverge).
            let next_set =
                apply_validator_updates(&hv.next, &fin.validator_updates).map_err(|e| {
                    format!("FinalizeBlock returned validator updates the engine cannot apply: {e}")
                })?;
            let next = HeightValidators {
                height: height.increment_by_one(),
                current: next_height_set(&hv.current, hv.next.validators()),
                next: next_set,
            };
            store
                .stage_commit(&decided, &next)
                .map_err(|e| format!("staging the decided block: {e}"))?;
            failpoint::hit("after_stage_commit");
            if let Err(e) = abci.commit() {
                store.discard_staged();
                return Err(format!("Commit failed: {e}"));
            }
            failpoint::hit("after_app_commit");
            Ok::<_, String>((fin, next))
        })
        .await?;
        let (fin, next) = outcome.map_err(|e| self.halt(height, None, e))?;

        let hashes = block.tx_hashes().to_vec();
        let app_hash = fin.app_hash.clone();
        let outcome = Arc::new(BlockOutcome {
            height: height.0,
            hashes,
            results: fin,
        });
        let mempool = self.mempool.clone();
        let committed = outcome.clone();
        blocking(move || mempool.on_committed(&committed.hashes)).await?;

        info!(%height, id = %block.id(), txs = block.txs().len(), app_hash = %hex::encode(&app_hash), "committed block");
        self.last_set = Some(this_set);
        self.validators = Some(next);
        self.last_block_id = Some(block.id());
        self.last_time = block.header().time;
        self.last_app_hash = app_hash;
        self.height = height.increment_by_one();
        self.streams.start_height(self.height);
        self.protect_peer_keys();
        self.early.retain(|r| r.init.height >= self.height);
        self.fetched_at.retain(|h| *h >= self.height);
        self.last_block_at = Instant::now();
        if let Some(outcomes) = &self.outcomes {
            outcomes.send_replace(Some(outcome));
        }
        let _ = self.decided_tx.send(height);
        Ok(())
    }
}

impl Height {
    fn increment_by_one(self) -> Height {
        Height(self.0.saturating_add(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{PrivateKey, Signature};
    use malachitebft_app_channel::app::types::core::CommitSignature;

    #[test]
    fn last_commit_lists_every_validator_with_its_power_and_flags_the_absent() {
        let vals: Vec<Validator> = (1..=3u8)
            .map(|i| {
                Validator::new(
                    PrivateKey::from_seed([i; 32]).public_key(),
                    u64::from(i) * 10,
                )
            })
            .collect();
        let set = ValidatorSet::new(vals.clone());
        let certificate = CommitCertificate {
            height: Height(4),
            round: Round::new(1),
            value_id: BlockId([7; 32]),
            commit_signatures: vals[..2]
                .iter()
                .map(|v| CommitSignature::new(v.address, Signature([0; 64])))
                .collect(),
        };
        let info = last_commit_info(&set, &last_commit_of(&certificate));
        assert_eq!(info.round, 1);
        assert_eq!(info.votes.len(), 3);
        for v in &vals {
            let vote = info
                .votes
                .iter()
                .find(|x| {
                    x.validator
                        .as_ref()
                        .is_some_and(|y| y.address == v.address.0[..])
                })
                .expect("every validator listed");
            let validator = vote.validator.as_ref().expect("validator");
            assert_eq!(
                validator.power,
                i64::try_from(v.voting_power).expect("power")
            );
            let want = if v.address == vals[2].address {
                BlockIdFlag::Absent
            } else {
                BlockIdFlag::Commit
            };
            assert_eq!(vote.block_id_flag, want as i32);
        }
    }

    #[test]
    fn a_proposer_waits_to_fill_a_part_filled_block_but_never_past_its_cap_or_with_a_full_one() {
        let params = BridgeParams {
            chain_id: "c".into(),
            genesis_validators: vec![],
            genesis_time: BlockTime {
                seconds: 0,
                nanos: 0,
            },
            app_state_bytes: Bytes::new(),
            initial_height: 1,
            timeouts: LinearTimeouts::default(),
            max_block_tx_bytes: 1_000,
            max_clock_drift: Duration::from_secs(10),
            empty_block_interval: Duration::from_millis(500),
            min_block_interval: Duration::from_millis(100),
            clock_offset_ms: 0,
        };
        let ms = Duration::from_millis;
        let last = Instant::now();
        let cap = last + ms(150);
        let empty = MempoolLevel::default();
        let some = MempoolLevel {
            txs: 3,
            bytes: 600,
            at_capacity: false,
        };
        let full = MempoolLevel {
            txs: 5,
            bytes: 1_000,
            at_capacity: false,
        };
        let pool_full = MempoolLevel {
            at_capacity: true,
            ..some
        };
        // An empty pool waits for a tx, up to the cap (the empty-block interval is past it).
        assert_eq!(hold_until(&params, last, cap, empty, last), Some(cap));
        // A part-filled block waits until the minimum interval after the last block, then goes.
        assert_eq!(
            hold_until(&params, last, cap, some, last),
            Some(last + ms(100))
        );
        assert_eq!(
            hold_until(&params, last, cap, some, last + ms(60)),
            Some(last + ms(100))
        );
        assert_eq!(hold_until(&params, last, cap, some, last + ms(100)), None);
        // A full block goes at once, and so does a mempool at its own limit (no more txs can come).
        assert_eq!(hold_until(&params, last, cap, full, last), None);
        assert_eq!(hold_until(&params, last, cap, pool_full, last), None);
        // An interval too long to add waits as long as allowed.
        let endless = BridgeParams {
            min_block_interval: Duration::MAX,
            ..params.clone()
        };
        assert_eq!(hold_until(&endless, last, cap, some, last), Some(cap));
        // The cap binds the fill wait too.
        let early_cap = last + ms(40);
        assert_eq!(
            hold_until(&params, last, early_cap, some, last),
            Some(early_cap)
        );
        assert_eq!(hold_until(&params, last, early_cap, some, early_cap), None);
        // Zero intervals never wait.
        let eager = BridgeParams {
            empty_block_interval: Duration::ZERO,
            min_block_interval: Duration::ZERO,
            ..params
        };
        assert_eq!(hold_until(&eager, last, cap, empty, last), None);
        assert_eq!(hold_until(&eager, last, cap, some, last), None);
    }
}

#[cfg(test)]
mod hostile_peers;
