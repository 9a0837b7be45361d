//! The bridge: Malachite's application messages ([`AppMsg`]) answered with ABCI calls on the application and
//! with the block store. See DESIGN.md, "The Malachite ↔ ABCI bridge".

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use malachitebft_app_channel::app::engine::host::{Next, SyncedValueOutcome};
use malachitebft_app_channel::app::streaming::{StreamContent, StreamId, StreamMessage};
use malachitebft_app_channel::app::types::core::{
    CommitCertificate, Context, HeightParams, LinearTimeouts, Round, ValidatorSet as _, Validity,
};
use malachitebft_app_channel::app::types::sync::RawDecidedValue;
use malachitebft_app_channel::app::types::{LocallyProposedValue, PeerId, ProposedValue};
use malachitebft_app_channel::{AppMsg, NetworkMsg};
use sha2::{Digest, Sha256};
use tendermint_proto::google::protobuf::Timestamp;
use tendermint_proto::v0_38::abci::{
    CommitInfo, RequestFinalizeBlock, RequestInfo, RequestInitChain, RequestPrepareProposal,
    RequestProcessProposal, ValidatorUpdate, VoteInfo,
};
use tendermint_proto::v0_38::types::BlockIdFlag;
use tokio::sync::{mpsc, watch};
use tracing::{debug, error, info, warn};

use crate::abci::{Abci, AbciExt, Mempool};
use crate::codec::{extend_certificate, DecidedBlock};
use crate::context::LodeContext;
use crate::error::ConsensusError;
use crate::failpoint;
use crate::proposer::next_height_set;
use crate::signing::{parts_hash, LodeSigner, LodeVerifier};
use crate::store::{BlockStore, HeightValidators, UndecidedProposal};
use crate::types::{
    Address, Block, BlockHeader, BlockId, BlockTime, Height, PartInit, ProposalPart, PublicKey,
    Validator, ValidatorSet,
};

/// Size of the data chunks a block is streamed in.
const CHUNK_SIZE: usize = 64 * 1024;
/// At most this many incomplete or early proposal streams are buffered; the oldest is dropped beyond it.
const MAX_STREAMS: usize = 64;
/// At most this many decided values are served per sync request.
const MAX_SYNC_BATCH: u64 = 50;

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
    /// Consensus timeouts.
    pub timeouts: LinearTimeouts,
    /// Maximum bytes of txs in a proposed block.
    pub max_block_tx_bytes: u64,
    /// How far in the future a proposal's time may be relative to our clock.
    pub max_clock_drift: Duration,
    /// How long after the previous block a proposer with an empty mempool waits for a transaction.
    pub empty_block_interval: Duration,
}

#[derive(Debug, Default)]
struct Stream {
    parts: BTreeMap<u64, StreamContent<ProposalPart>>,
    fin_seq: Option<u64>,
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
    last_block_id: Option<BlockId>,
    last_app_hash: Bytes,
    last_time: BlockTime,
    last_decided_ok: bool,
    /// When the last block was committed here (or the bridge started); paces empty blocks.
    last_block_at: Instant,
    streams: BTreeMap<(PeerId, Bytes), Stream>,
    early: Vec<Received>,
    decided_tx: watch::Sender<Height>,
    network: mpsc::Sender<NetworkMsg<LodeContext>>,
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

fn validator_update_to_validator(u: &ValidatorUpdate) -> Option<Validator> {
    use tendermint_proto::v0_38::crypto::public_key::Sum;
    let pk = match u.pub_key.as_ref()?.sum.as_ref()? {
        Sum::Ed25519(b) => <[u8; 32]>::try_from(b.as_slice()).ok()?,
        _ => return None,
    };
    Some(Validator::new(PublicKey(pk), u64::try_from(u.power).ok()?))
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
/// it signed `certificate`.
fn last_commit_info(
    set: &ValidatorSet,
    certificate: &CommitCertificate<LodeContext>,
) -> CommitInfo {
    let signed: std::collections::BTreeSet<Address> = certificate
        .commit_signatures
        .iter()
        .map(|s| s.address)
        .collect();
    CommitInfo {
        round: i32::try_from(certificate.round.as_i64()).unwrap_or(0),
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

fn stream_id(height: Height, round: Round, proposer: &Address) -> StreamId {
    let mut b = Vec::with_capacity(8 + 8 + 20);
    b.extend_from_slice(&height.0.to_be_bytes());
    b.extend_from_slice(&round.as_i64().to_be_bytes());
    b.extend_from_slice(&proposer.0);
    StreamId::new(Bytes::from(b))
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
            last_block_id: None,
            last_app_hash: Bytes::new(),
            last_time: BlockTime::default(),
            last_decided_ok: true,
            last_block_at: Instant::now(),
            streams: BTreeMap::new(),
            early: Vec::new(),
            decided_tx,
            network,
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
                let block = self.get_value(height, round, timeout).await?;
                let _ = reply.send(LocallyProposedValue::new(height, round, block.clone()));
                self.stream_block(&block, height, round, Round::Nil).await;
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
                    self.stream_block(&p.block, height, round, valid_round)
                        .await;
                }
            }
            AppMsg::GetHistoryMinHeight { reply } => {
                let min = self.store.min_height()?.unwrap_or(Height(1));
                let _ = reply.send(min);
            }
            AppMsg::ReceivedProposalPart {
                from,
                published_by,
                part,
                reply,
            } => {
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
                certificate, reply, ..
            } => {
                let params = self.height_params()?;
                let next = if self.last_decided_ok {
                    Next::Start(self.height, params)
                } else {
                    Next::Restart(certificate.height, params)
                };
                let _ = reply.send(next);
            }
            AppMsg::GetDecidedValues { range, reply } => {
                let mut out = Vec::new();
                let (start, end) = (range.start().0, range.end().0);
                let end = end.min(start.saturating_add(MAX_SYNC_BATCH - 1));
                for h in start..=end {
                    match self.store.get_decided(Height(h))? {
                        Some(d) => out.push(RawDecidedValue::new(
                            d.block.encode(),
                            extend_certificate(&d.certificate),
                        )),
                        None => break,
                    }
                }
                let _ = reply.send(out);
            }
            AppMsg::ProcessSyncedValue {
                height,
                round,
                proposer,
                value_bytes,
                reply,
            } => {
                let outcome = match Block::decode(&value_bytes) {
                    Ok(block) if block.header().height == height => {
                        let p = UndecidedProposal {
                            height,
                            round,
                            valid_round: Round::Nil,
                            block: block.clone(),
                            valid: true,
                        };
                        match self.store.put_undecided(&p) {
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
                        }
                    }
                    _ => SyncedValueOutcome::PeerFault,
                };
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
        if last == 0 {
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
                initial_height: 1,
            };
            let abci = self.abci.clone();
            let resp = blocking(move || abci.init_chain(req)).await??;
            let set = if resp.validators.is_empty() {
                genesis
            } else {
                ValidatorSet::new(
                    resp.validators
                        .iter()
                        .filter_map(validator_update_to_validator),
                )
            };
            if set.count() == 0 {
                return Err(ConsensusError::Config("empty genesis validator set".into()));
            }
            let hv = HeightValidators {
                height: Height(1),
                current: set.clone(),
                next: set,
            };
            self.store.put_validators(&hv)?;
            self.validators = Some(hv);
            self.height = Height(1);
            self.last_app_hash = resp.app_hash;
            self.last_time = self.params.genesis_time;
            self.last_block_id = None;
        } else {
            self.height = Height(last + 1);
            self.last_app_hash = info.last_block_app_hash;
            let prev = self.store.get_decided(Height(last))?.ok_or_else(|| {
                ConsensusError::Config(format!("block {last} missing from the store"))
            })?;
            self.last_block_id = Some(prev.block.id());
            self.last_time = prev.block.header().time;
            self.validators = Some(self.store.get_validators(self.height)?.ok_or_else(|| {
                ConsensusError::Config(format!("validators of height {} missing", self.height))
            })?);
            // The block store may be one block ahead of the application (crash between storing and Commit).
            if let Some(next) = self.store.get_decided(self.height)? {
                info!(height = %self.height, "replaying stored block into the application");
                self.finalize_and_commit(next.block, next.certificate)
                    .await?;
            }
        }
        let _ = self.decided_tx.send(Height(self.height.0 - 1));
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

    fn expected_proposer(&self, round: Round) -> Option<Address> {
        let v = self.validators.as_ref()?;
        Some(
            LodeContext
                .select_proposer(&v.current, self.height, round)
                .address,
        )
    }

    /// With an empty mempool in round 0, waits (bounded) for a transaction so an idle chain does not spin
    /// out empty blocks as fast as it can vote. Later rounds propose at once: the chain is already late.
    async fn wait_for_txs(&self, round: Round, propose_timeout: Duration) {
        let interval = self.params.empty_block_interval;
        if interval.is_zero() || round.as_i64() != 0 {
            return;
        }
        let deadline = (self.last_block_at + interval).min(Instant::now() + propose_timeout / 2);
        while self.mempool.pending() == 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn get_value(
        &mut self,
        height: Height,
        round: Round,
        propose_timeout: Duration,
    ) -> Result<Block, ConsensusError> {
        // Asked again for the same round (e.g. after a restart): the same block.
        if let Some(p) = self
            .store
            .undecided(height, round)?
            .into_iter()
            .find(|p| p.block.header().proposer == self.address)
        {
            return Ok(p.block);
        }
        self.wait_for_txs(round, propose_timeout).await;
        let max = self.params.max_block_tx_bytes;
        let mempool = self.mempool.clone();
        let txs = blocking(move || mempool.reap(max)).await?;
        let now = BlockTime::now();
        let min_time = BlockTime::from_unix_nanos(self.last_time.as_unix_nanos() + 1_000_000);
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
        let txs = resp.txs;
        let header = BlockHeader {
            chain_id: self.params.chain_id.clone(),
            height,
            time,
            proposer: self.address,
            last_block_id: self.last_block_id,
            tx_root: crate::types::tx_root(&txs),
            app_hash: self.last_app_hash.clone(),
        };
        let block = Block::new(header, txs);
        info!(%height, %round, id = %block.id(), txs = block.txs().len(), "proposing block");
        self.store.put_undecided(&UndecidedProposal {
            height,
            round,
            valid_round: Round::Nil,
            block: block.clone(),
            valid: true,
        })?;
        Ok(block)
    }

    async fn stream_block(&self, block: &Block, height: Height, round: Round, valid_round: Round) {
        let init = PartInit {
            height,
            round,
            valid_round,
            proposer: self.address,
        };
        let bytes = block.encode();
        let chunks: Vec<Bytes> = bytes
            .chunks(CHUNK_SIZE)
            .map(Bytes::copy_from_slice)
            .collect();
        let sig = self.signer.sign_parts_fin(&init, parts_hash(&chunks));
        let id = stream_id(height, round, &self.address);
        let mut parts = Vec::with_capacity(chunks.len() + 2);
        parts.push(ProposalPart::Init(init));
        parts.extend(chunks.into_iter().map(ProposalPart::Data));
        parts.push(ProposalPart::Fin(sig));
        let mut seq = 0u64;
        for p in parts {
            let msg = StreamMessage::new(id.clone(), seq, StreamContent::Data(p));
            seq += 1;
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
        let _ = self
            .network
            .send(NetworkMsg::PublishProposalPart(StreamMessage::new(
                id,
                seq,
                StreamContent::Fin,
            )))
            .await;
    }

    async fn received_part(
        &mut self,
        peer: PeerId,
        msg: StreamMessage<ProposalPart>,
    ) -> Result<Option<ProposedValue<LodeContext>>, ConsensusError> {
        let key = (peer, msg.stream_id.to_bytes());
        if !self.streams.contains_key(&key) && self.streams.len() >= MAX_STREAMS {
            if let Some(oldest) = self.streams.keys().next().cloned() {
                self.streams.remove(&oldest);
            }
        }
        let stream = self.streams.entry(key.clone()).or_default();
        if matches!(msg.content, StreamContent::Fin) {
            stream.fin_seq = Some(msg.sequence);
        }
        stream.parts.insert(msg.sequence, msg.content);
        let complete = matches!(stream.fin_seq, Some(f) if stream.parts.len() as u64 == f + 1);
        if !complete {
            return Ok(None);
        }
        let Some(stream) = self.streams.remove(&key) else {
            return Ok(None);
        };
        let Some(received) = self.assemble(stream) else {
            warn!(%peer, "dropping malformed or badly signed proposal stream");
            return Ok(None);
        };
        if received.init.height < self.height {
            return Ok(None);
        }
        if received.init.height > self.height {
            if self.early.len() >= MAX_STREAMS {
                self.early.remove(0);
            }
            self.early.push(received);
            return Ok(None);
        }
        self.accept_stream(received).await
    }

    /// Checks a complete stream's shape and the proposer's signature over it, and decodes the block.
    fn assemble(&self, stream: Stream) -> Option<Received> {
        let mut parts = stream.parts.into_values();
        let init = match parts.next()? {
            StreamContent::Data(ProposalPart::Init(i)) => i,
            _ => return None,
        };
        let mut chunks = Vec::new();
        let mut sig = None;
        for p in parts {
            match p {
                StreamContent::Data(ProposalPart::Data(d)) if sig.is_none() => chunks.push(d),
                StreamContent::Data(ProposalPart::Fin(s)) if sig.is_none() => sig = Some(s),
                StreamContent::Fin => {}
                _ => return None,
            }
        }
        let sig = sig?;
        // Only the current and next heights' sets are known; the signature of a later stream is checked
        // when its height starts (the stream is kept until then).
        let v = self.validators.as_ref()?;
        let pk = v
            .current
            .get_by_address(&init.proposer)
            .or_else(|| v.next.get_by_address(&init.proposer))?
            .public_key;
        if !self
            .verifier
            .verify_parts_fin(&init, parts_hash(&chunks), &sig, &pk)
        {
            return None;
        }
        let bytes: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        let block = Block::decode(&bytes).ok()?;
        Some(Received { init, block })
    }

    /// A signed stream for the current height: validate the block (header checks, then ProcessProposal) and
    /// store it with its verdict.
    async fn accept_stream(
        &mut self,
        r: Received,
    ) -> Result<Option<ProposedValue<LodeContext>>, ConsensusError> {
        if self.expected_proposer(r.init.round) != Some(r.init.proposer) {
            warn!(proposer = %r.init.proposer, round = %r.init.round, "stream from a non-proposer");
            return Ok(None);
        }
        let valid = self
            .validate(&r.block, r.init.valid_round.is_defined())
            .await?;
        if !valid {
            warn!(height = %r.init.height, round = %r.init.round, id = %r.block.id(), "rejecting invalid proposal");
        }
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

    async fn validate(&self, block: &Block, reproposal: bool) -> Result<bool, ConsensusError> {
        let h = block.header();
        let v = match self.validators.as_ref() {
            Some(v) => v,
            None => return Ok(false),
        };
        let now = BlockTime::now().as_unix_nanos();
        let drift = i128::try_from(self.params.max_clock_drift.as_nanos()).unwrap_or(i128::MAX);
        let header_ok = h.chain_id == self.params.chain_id
            && h.height == self.height
            && h.last_block_id == self.last_block_id
            && h.app_hash == self.last_app_hash
            && block.tx_root_matches()
            && h.time > self.last_time
            // A re-proposed (locked) block keeps its original time, which may be older than our clock allows
            // for a fresh one; only fresh proposals are held to the drift bound.
            && (reproposal || h.time.as_unix_nanos() <= now.saturating_add(drift))
            && v.current.get_by_address(&h.proposer).is_some();
        if !header_ok {
            return Ok(false);
        }
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
        let resp = blocking(move || abci.process_proposal(req)).await??;
        // ProposalStatus::Accept = 1.
        Ok(resp.status == 1)
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
        // there, flagged Commit if its signature is in that height's certificate and Absent otherwise.
        let decided_last_commit = match height.0.checked_sub(1).filter(|h| *h > 0) {
            Some(prev) => match self.store.get_decided(Height(prev))? {
                Some(d) => {
                    let set = match self.store.get_validators(Height(prev))? {
                        Some(v) => v.current,
                        None => hv.current.clone(),
                    };
                    last_commit_info(&set, &d.certificate)
                }
                None => CommitInfo::default(),
            },
            None => CommitInfo::default(),
        };
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
                .finalize_block(req)
                .map_err(|e| format!("FinalizeBlock failed: {e}"))?;
            failpoint::hit("after_finalize_block");
            let updates: Vec<Validator> = fin
                .validator_updates
                .iter()
                .filter_map(validator_update_to_validator)
                .collect();
            let next = HeightValidators {
                height: height.increment_by_one(),
                current: next_height_set(&hv.current, hv.next.validators()),
                next: hv.next.with_updates(&updates),
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

        let hashes: Vec<[u8; 32]> = block
            .txs()
            .iter()
            .map(|t| Sha256::digest(t).into())
            .collect();
        let mempool = self.mempool.clone();
        blocking(move || mempool.on_committed(&hashes)).await?;

        info!(%height, id = %block.id(), txs = block.txs().len(), app_hash = %hex::encode(&fin.app_hash), "committed block");
        self.validators = Some(next);
        self.last_block_id = Some(block.id());
        self.last_time = block.header().time;
        self.last_app_hash = fin.app_hash;
        self.height = height.increment_by_one();
        self.streams.clear();
        self.last_block_at = Instant::now();
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
        let info = last_commit_info(&set, &certificate);
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
}
