//! The bridge against hostile peers: swapped tx lists from sync, corrupt stored blocks, floods of proposal
//! streams, oversized streams, huge rounds. Each test drives a real [`Bridge`] (with a small kv
//! application and the in-memory store) through Malachite's app messages, as the engine would.

use std::sync::{Arc, Mutex};

use malachitebft_app_channel::app::types::core::CommitCertificate;
use tendermint_proto::v0_38::abci::{
    request, response, Request, Response, ResponseCommit, ResponseFinalizeBlock, ResponseInfo,
    ResponseInitChain, ResponsePrepareProposal, ResponseProcessProposal,
};
use tokio::sync::oneshot;

use super::*;
use crate::error::AbciError;
use crate::proposer::WALKED_ROUNDS;
use crate::store::InMemoryBlockStore;
use crate::streams::{MAX_STREAMS, MAX_STREAMS_PER_PEER, MAX_STRIKES};
use crate::types::PrivateKey;
use malachitebft_app_channel::app::streaming::StreamId;

const CHAIN: &str = "hostile";
const BAD_TX: &[u8] = b"bad";

/// A kv application: txs must contain `=`, and `bad` is refused by ProcessProposal.
#[derive(Default)]
struct Kv {
    height: Mutex<i64>,
    /// Validator updates every FinalizeBlock returns (a buggy application's, in the halting tests).
    updates: Vec<ValidatorUpdate>,
}

impl Abci for Kv {
    fn call(&self, req: Request) -> Result<Response, AbciError> {
        let mut height = self
            .height
            .lock()
            .map_err(|_| AbciError::Transport("poisoned".into()))?;
        let value = match req.value.ok_or(AbciError::UnexpectedResponse("empty"))? {
            request::Value::Info(_) => response::Value::Info(ResponseInfo {
                last_block_height: *height,
                last_block_app_hash: Bytes::from_static(b"genesis-hash"),
                ..Default::default()
            }),
            request::Value::InitChain(_) => response::Value::InitChain(ResponseInitChain {
                app_hash: Bytes::from_static(b"genesis-hash"),
                ..Default::default()
            }),
            request::Value::PrepareProposal(r) => {
                response::Value::PrepareProposal(ResponsePrepareProposal { txs: r.txs })
            }
            request::Value::ProcessProposal(r) => {
                let ok = r
                    .txs
                    .iter()
                    .all(|t| t.as_ref() != BAD_TX && t.contains(&b'='));
                response::Value::ProcessProposal(ResponseProcessProposal {
                    status: if ok { 1 } else { 2 },
                })
            }
            request::Value::FinalizeBlock(r) => {
                *height = r.height;
                response::Value::FinalizeBlock(ResponseFinalizeBlock {
                    validator_updates: self.updates.clone(),
                    ..Default::default()
                })
            }
            request::Value::Commit(_) => response::Value::Commit(ResponseCommit::default()),
            _ => return Err(AbciError::UnexpectedResponse("unsupported")),
        };
        Ok(Response { value: Some(value) })
    }
}

/// A mempool that proposes nothing, holds the txs a test puts in it, and answers a fetch with the txs a
/// test says peers send (or never, when told to hang).
#[derive(Default)]
struct Pool {
    held: Mutex<std::collections::HashMap<[u8; 32], Bytes>>,
    peers_send: Mutex<Vec<Bytes>>,
    hang: std::sync::atomic::AtomicBool,
    fetches: Mutex<Vec<Vec<[u8; 32]>>>,
}

impl Pool {
    fn hold(&self, txs: &[Bytes]) {
        let mut held = self.held.lock().expect("pool");
        for t in txs {
            held.insert(Sha256::digest(t).into(), t.clone());
        }
    }
}

impl Mempool for Pool {
    fn reap(&self, _max_bytes: u64) -> Vec<Bytes> {
        Vec::new()
    }
    fn on_committed(&self, _tx_hashes: &[[u8; 32]]) {}
    fn level(&self) -> crate::abci::MempoolLevel {
        crate::abci::MempoolLevel::default()
    }
    fn lookup(&self, hashes: &[[u8; 32]]) -> Vec<Option<Bytes>> {
        let held = self.held.lock().expect("pool");
        hashes.iter().map(|h| held.get(h).cloned()).collect()
    }
    fn fetch(&self, hashes: Vec<[u8; 32]>, _timeout: Duration) -> crate::abci::TxFetch {
        self.fetches.lock().expect("pool").push(hashes);
        if self.hang.load(std::sync::atomic::Ordering::SeqCst) {
            return Box::pin(std::future::pending());
        }
        let sent = self.peers_send.lock().expect("pool").clone();
        Box::pin(std::future::ready(sent))
    }
}

type TestBridge = Bridge<Kv, InMemoryBlockStore, Pool>;

struct Net {
    keys: Vec<PrivateKey>,
    bridge: TestBridge,
    store: Arc<InMemoryBlockStore>,
    pool: Arc<Pool>,
    _network: mpsc::Receiver<NetworkMsg<LodeContext>>,
    _decided: watch::Receiver<Height>,
}

const MAX_TX_BYTES: u64 = 4 * 1024 * 1024;

/// Four validators of equal power; the bridge runs as validator 0 and has started height 1.
async fn net() -> Net {
    net_with(Kv::default()).await
}

/// [`net`] with the given application.
async fn net_with(app: Kv) -> Net {
    let keys: Vec<PrivateKey> = (1..=4u8).map(|i| PrivateKey::from_seed([i; 32])).collect();
    let params = BridgeParams {
        chain_id: CHAIN.into(),
        genesis_validators: keys.iter().map(|k| (k.public_key(), 10)).collect(),
        genesis_time: BlockTime {
            seconds: 1_700_000_000,
            nanos: 0,
        },
        app_state_bytes: Bytes::new(),
        timeouts: LinearTimeouts::default(),
        max_block_tx_bytes: MAX_TX_BYTES,
        max_clock_drift: Duration::from_secs(10),
        empty_block_interval: Duration::ZERO,
        min_block_interval: Duration::ZERO,
        clock_offset_ms: 0,
        initial_height: 1,
    };
    let store = Arc::new(InMemoryBlockStore::default());
    let (network_tx, network_rx) = mpsc::channel(1024);
    let (decided_tx, decided_rx) = watch::channel(Height(0));
    let signer = LodeSigner::new(keys[0].clone(), CHAIN);
    let pool = Arc::new(Pool::default());
    let mut bridge = Bridge::new(
        Arc::new(app),
        store.clone(),
        pool.clone(),
        signer,
        params,
        decided_tx,
        network_tx,
    );
    let (reply, rx) = oneshot::channel();
    bridge
        .handle(AppMsg::ConsensusReady { reply })
        .await
        .expect("ready");
    assert_eq!(rx.await.expect("reply").0, Height(1));
    Net {
        keys,
        bridge,
        store,
        pool,
        _network: network_rx,
        _decided: decided_rx,
    }
}

impl Net {
    /// The key of the proposer of `round` at height 1.
    fn proposer(&self, round: u32) -> PrivateKey {
        let (address, _) = self
            .bridge
            .proposer_of(Height(1), Round::new(round))
            .expect("proposer");
        self.keys
            .iter()
            .find(|k| Address::from_public_key(&k.public_key()) == address)
            .expect("a validator")
            .clone()
    }

    /// A round of height 1 whose proposer is `key`'s validator, at or after `from` (wrapping below
    /// [`WALKED_ROUNDS`]).
    fn round_of(&self, key: &PrivateKey, from: u32) -> u32 {
        let from = from % WALKED_ROUNDS;
        (from..WALKED_ROUNDS)
            .chain(0..from)
            .find(|r| self.proposer(*r).public_key() == key.public_key())
            .expect("every validator proposes some round")
    }

    fn buffered(&self) -> usize {
        self.bridge.streams.len()
    }

    fn buffered_from(&self, p: &PeerId) -> usize {
        self.bridge.streams.len_of(p)
    }

    fn buffered_bytes(&self) -> u64 {
        self.bridge.streams.bytes()
    }

    fn ignored(&self, p: &PeerId) -> bool {
        self.bridge.streams.is_ignored(p, Height(1))
    }

    /// A block for height 1 proposed by `proposer`: the header commits to `root_of`, the body is `txs`.
    fn block(&self, proposer: &PrivateKey, txs: Vec<Bytes>, root_of: &[Bytes]) -> Block {
        Block::new(
            BlockHeader {
                chain_id: CHAIN.into(),
                height: Height(1),
                time: BlockTime::now(),
                proposer: Address::from_public_key(&proposer.public_key()),
                last_block_id: None,
                tx_root: crate::types::tx_root(root_of),
                app_hash: Bytes::from_static(b"genesis-hash"),
                last_commit_hash: None,
            },
            txs,
        )
    }

    async fn part(
        &mut self,
        peer: PeerId,
        msg: StreamMessage<ProposalPart>,
    ) -> Option<ProposedValue<LodeContext>> {
        let (reply, rx) = oneshot::channel();
        self.bridge
            .handle(AppMsg::ReceivedProposalPart {
                from: peer,
                published_by: Some(peer),
                part: msg,
                reply,
            })
            .await
            .expect("bridge");
        rx.await.expect("reply")
    }

    async fn synced(
        &mut self,
        bytes: Bytes,
        proposer: &PrivateKey,
    ) -> SyncedValueOutcome<LodeContext> {
        let (reply, rx) = oneshot::channel();
        self.bridge
            .handle(AppMsg::ProcessSyncedValue {
                height: Height(1),
                round: Round::new(0),
                proposer: Address::from_public_key(&proposer.public_key()),
                value_bytes: bytes,
                reply,
            })
            .await
            .expect("bridge");
        rx.await.expect("reply")
    }

    async fn serve(&mut self, from: u64, to: u64) -> Vec<RawDecidedValue<LodeContext>> {
        let (reply, rx) = oneshot::channel();
        self.bridge
            .handle(AppMsg::GetDecidedValues {
                range: Height(from)..=Height(to),
                reply,
            })
            .await
            .expect("bridge");
        rx.await.expect("reply")
    }
}

fn peer(key: &PrivateKey) -> PeerId {
    peer_id_of(&key.public_key()).expect("peer id")
}

fn parts(key: &PrivateKey, block: &Block, round: u32) -> Vec<StreamMessage<ProposalPart>> {
    let signer = LodeSigner::new(key.clone(), CHAIN);
    proposal_parts(
        &signer,
        block,
        &[],
        Height(1),
        Round::new(round),
        Round::Nil,
    )
}

/// `key`'s stream of `block` at `round` with every tx named by its hash.
fn named_parts(key: &PrivateKey, block: &Block, round: u32) -> Vec<StreamMessage<ProposalPart>> {
    let signer = LodeSigner::new(key.clone(), CHAIN);
    let named: Vec<Option<[u8; 32]>> = block
        .txs()
        .iter()
        .map(|t| Some(Sha256::digest(t).into()))
        .collect();
    proposal_parts(
        &signer,
        block,
        &named,
        Height(1),
        Round::new(round),
        Round::Nil,
    )
}

/// Streams `msgs` from `from`; the value the last part completed, if any.
async fn stream(
    n: &mut Net,
    from: PeerId,
    msgs: Vec<StreamMessage<ProposalPart>>,
) -> Option<ProposedValue<LodeContext>> {
    let mut value = None;
    for p in msgs {
        value = n.part(from, p).await;
    }
    value
}

/// `key`'s stream of `block` at `round` with its Fin signature replaced by one that does not verify.
fn forged_parts(key: &PrivateKey, block: &Block, round: u32) -> Vec<StreamMessage<ProposalPart>> {
    let mut ps = parts(key, block, round);
    let sig_at = ps.len() - 2;
    ps[sig_at] = StreamMessage::new(
        ps[sig_at].stream_id.clone(),
        ps[sig_at].sequence,
        StreamContent::Data(ProposalPart::Fin(crate::types::Signature([7; 64]))),
    );
    ps
}

fn tx(s: &str) -> Bytes {
    Bytes::from(s.to_owned())
}

fn decided(block: &Block) -> DecidedBlock {
    DecidedBlock {
        block: block.clone(),
        certificate: CommitCertificate {
            height: block.header().height,
            round: Round::new(0),
            value_id: block.id(),
            commit_signatures: Vec::new(),
        },
    }
}

// ---- hole 1: value sync ----

#[tokio::test]
async fn a_synced_block_with_a_genuine_header_and_a_swapped_tx_list_is_refused_and_nothing_is_stored(
) {
    let mut n = net().await;
    let proposer = n.proposer(0);
    let txs = vec![tx("a=1")];
    let genuine = n.block(&proposer, txs.clone(), &txs);
    // The genuine header with another tx list has the genuine block's id: the id hashes only the header.
    let forged = Block::new(genuine.header().clone(), vec![tx("a=2")]);
    assert_eq!(forged.id(), genuine.id());
    let outcome = n.synced(forged.encode(), &proposer).await;
    assert!(
        matches!(outcome, SyncedValueOutcome::PeerFault),
        "got {outcome:?}"
    );
    assert!(n
        .store
        .undecided(Height(1), Round::new(0))
        .expect("store")
        .is_empty());
    assert!(n
        .store
        .undecided_by_id(Height(1), forged.id())
        .expect("store")
        .is_none());
}

#[tokio::test]
async fn a_synced_block_that_fails_the_stateless_checks_is_invalid_and_not_stored() {
    let mut n = net().await;
    let proposer = n.proposer(0);
    let txs = vec![Bytes::from_static(BAD_TX)];
    let block = n.block(&proposer, txs.clone(), &txs);
    let outcome = n.synced(block.encode(), &proposer).await;
    match outcome {
        SyncedValueOutcome::Verdict(v) => assert_eq!(v.validity, Validity::Invalid),
        other => panic!("expected an invalid verdict, got {other:?}"),
    }
    assert!(n
        .store
        .undecided_by_id(Height(1), block.id())
        .expect("store")
        .is_none());
}

#[tokio::test]
async fn an_honest_synced_block_is_valid_and_stored() {
    let mut n = net().await;
    let proposer = n.proposer(0);
    let txs = vec![tx("a=1"), tx("b=2")];
    let block = n.block(&proposer, txs.clone(), &txs);
    match n.synced(block.encode(), &proposer).await {
        SyncedValueOutcome::Verdict(v) => {
            assert_eq!(v.validity, Validity::Valid);
            assert_eq!(v.value, block);
        }
        other => panic!("expected a valid verdict, got {other:?}"),
    }
    assert!(n
        .store
        .undecided_by_id(Height(1), block.id())
        .expect("store")
        .is_some());
}

#[tokio::test]
async fn a_synced_value_over_the_block_limit_is_refused_before_it_is_decoded() {
    let mut n = net().await;
    let proposer = n.proposer(0);
    let big = vec![Bytes::from(vec![
        b'=';
        usize::try_from(MAX_TX_BYTES).unwrap_or(0)
            + 4096
    ])];
    let block = n.block(&proposer, big.clone(), &big);
    let outcome = n.synced(block.encode(), &proposer).await;
    assert!(
        matches!(outcome, SyncedValueOutcome::PeerFault),
        "got {outcome:?}"
    );
    assert!(n
        .store
        .undecided_by_id(Height(1), block.id())
        .expect("store")
        .is_none());
}

#[tokio::test]
async fn a_corrupt_stored_block_is_not_served_to_syncing_peers() {
    let mut n = net().await;
    let proposer = n.proposer(0);
    let one = vec![tx("a=1")];
    let honest = n.block(&proposer, one.clone(), &one);
    let mut header = honest.header().clone();
    header.height = Height(2);
    header.last_block_id = Some(honest.id());
    let swapped = Block::new(header, vec![tx("a=666")]);
    n.store.put_decided(&decided(&honest)).expect("store");
    n.store.put_decided(&decided(&swapped)).expect("store");
    let served = n.serve(1, 2).await;
    assert_eq!(served.len(), 1, "only the intact block is served");
    assert_eq!(served[0].value_bytes, honest.encode());
}

#[tokio::test]
async fn serving_sync_stops_at_the_byte_budget_but_always_sends_one_block() {
    let mut n = net().await;
    let proposer = n.proposer(0);
    let mut last = None;
    for h in 1..=5u64 {
        let txs = vec![Bytes::from(vec![b'='; 3 * 1024 * 1024])];
        let mut b = n.block(&proposer, txs.clone(), &txs);
        let mut header = b.header().clone();
        header.height = Height(h);
        header.last_block_id = last;
        b = Block::new(header, txs);
        last = Some(b.id());
        n.store.put_decided(&decided(&b)).expect("store");
    }
    let served = n.serve(1, 5).await;
    let bytes: usize = served.iter().map(|v| v.value_bytes.len()).sum();
    assert_eq!(
        served.len(),
        2,
        "two 3 MiB blocks fit in the budget, a third does not"
    );
    assert!(u64::try_from(bytes).unwrap_or(u64::MAX) <= SYNC_RESPONSE_BYTES);
    assert_eq!(n.serve(3, 3).await.len(), 1);
}

// ---- hole 2: proposal streams ----

#[tokio::test]
async fn a_peer_flooding_proposal_streams_does_not_evict_the_honest_proposers_stream() {
    let mut n = net().await;
    let honest = n.proposer(0);
    let honest_peer = peer(&honest);
    // A peer outside the validator set that sorts after the proposer (the old buffer evicted the smallest
    // key), and a byzantine validator that floods streams for the rounds it does propose.
    let outsider = (100..=255u8)
        .map(|i| PrivateKey::from_seed([i; 32]))
        .find(|k| peer(k) > honest_peer)
        .expect("a larger peer id");
    let byzantine = n
        .keys
        .iter()
        .find(|k| k.public_key() != honest.public_key() && k.public_key() != n.keys[0].public_key())
        .expect("another validator")
        .clone();
    let txs = vec![tx("a=1"), tx("b=2")];
    let block = n.block(&honest, txs.clone(), &txs);
    let honest_parts = parts(&honest, &block, 0);
    let mut value = None;
    let mut round = 0u32;
    for (i, p) in honest_parts.into_iter().enumerate() {
        // Between every two honest parts: 100 fresh streams from each attacker, never finished.
        for k in 0..100usize {
            let fake = StreamMessage::new(
                StreamId::new(Bytes::from(format!("junk-{i}-{k}"))),
                1,
                StreamContent::Data(ProposalPart::Data(Bytes::from(vec![0u8; 1024]))),
            );
            assert!(n.part(peer(&outsider), fake).await.is_none());
            round = n.round_of(&byzantine, round + 1);
            let b = n.block(&byzantine, txs.clone(), &txs);
            let first = parts(&byzantine, &b, round).remove(0);
            assert!(n.part(peer(&byzantine), first).await.is_none());
        }
        value = n.part(honest_peer, p).await;
        assert!(n.buffered() <= MAX_STREAMS);
        assert!(n.buffered_from(&peer(&byzantine)) <= MAX_STREAMS_PER_PEER);
        assert_eq!(n.buffered_from(&peer(&outsider)), 0);
    }
    let value = value.expect("the honest stream completed");
    assert_eq!(value.validity, Validity::Valid);
    assert_eq!(value.value, block);
}

#[tokio::test]
async fn a_stream_over_the_block_limit_is_dropped_before_it_is_buffered_whole() {
    let mut n = net().await;
    let proposer = n.proposer(0);
    // A signed block whose txs are over the limit: the old bridge buffered it whole and accepted it.
    let txs: Vec<Bytes> = (0..80)
        .map(|i| {
            let mut t = vec![b'x'; 64 * 1024];
            t[0] = b'=';
            t[1] = i;
            Bytes::from(t)
        })
        .collect();
    let block = n.block(&proposer, txs.clone(), &txs);
    assert!(block.encode().len() > usize::try_from(MAX_TX_BYTES).unwrap_or(0));
    let mut last = None;
    for p in parts(&proposer, &block, 0) {
        last = n.part(peer(&proposer), p).await;
        assert!(
            n.buffered_bytes()
                <= BlockLimits {
                    max_tx_bytes: MAX_TX_BYTES
                }
                .max_block_bytes()
        );
    }
    assert!(
        last.is_none(),
        "an oversized block is never proposed to consensus"
    );
    assert!(n
        .store
        .undecided_by_id(Height(1), block.id())
        .expect("store")
        .is_none());
}

#[tokio::test]
async fn a_validator_that_sends_badly_signed_streams_is_ignored_for_a_while() {
    let mut n = net().await;
    let proposer = n.proposer(0);
    let forger = n
        .keys
        .iter()
        .find(|k| k.public_key() != proposer.public_key())
        .expect("another validator")
        .clone();
    let txs = vec![tx("a=1")];
    let block = n.block(&proposer, txs.clone(), &txs);
    // The forger publishes under its own peer id, for its own rounds, streams whose signatures fail.
    let mut round = 0;
    for _ in 0..MAX_STRIKES {
        round = n.round_of(&forger, round + 1);
        let b = n.block(&forger, txs.clone(), &txs);
        for p in forged_parts(&forger, &b, round) {
            assert!(n.part(peer(&forger), p).await.is_none());
        }
    }
    assert!(n.ignored(&peer(&forger)));
    // Its well-formed stream for one of its own rounds is now ignored…
    round = n.round_of(&forger, round + 1);
    let b = n.block(&forger, txs.clone(), &txs);
    for p in parts(&forger, &b, round) {
        assert!(n.part(peer(&forger), p).await.is_none());
    }
    // …while the honest proposer's stream still completes.
    let mut value = None;
    for p in parts(&proposer, &block, 0) {
        value = n.part(peer(&proposer), p).await;
    }
    assert_eq!(value.expect("honest stream").validity, Validity::Valid);
}

#[tokio::test]
async fn a_stream_published_by_anyone_but_its_proposer_is_dropped_at_its_first_part() {
    let mut n = net().await;
    let proposer = n.proposer(0);
    let other = n
        .keys
        .iter()
        .find(|k| k.public_key() != proposer.public_key())
        .expect("another validator")
        .clone();
    let txs = vec![tx("a=1")];
    let block = n.block(&proposer, txs.clone(), &txs);
    // The proposer's validator proof arrived (its node runs the swarm under its consensus key).
    assert!(n
        .bridge
        .peer_keys
        .record(peer(&proposer), &proposer.public_key()));
    // A relay that replays the proposer's genuine, signed parts as its own publication.
    for p in parts(&proposer, &block, 0) {
        assert!(n.part(peer(&other), p).await.is_none());
        assert_eq!(n.buffered(), 0);
    }
}

// ---- hole 3: huge rounds ----

#[tokio::test]
async fn a_signed_stream_for_round_u32_max_is_answered_without_walking_the_rounds() {
    let mut n = net().await;
    let (address, key) = n
        .bridge
        .proposer_of(Height(1), Round::new(u32::MAX))
        .expect("a proposer");
    let key = n
        .keys
        .iter()
        .find(|k| k.public_key() == key)
        .expect("a validator")
        .clone();
    let txs = vec![tx("a=1")];
    let block = n.block(&key, txs.clone(), &txs);
    assert_eq!(block.header().proposer, address);
    let mut value = None;
    for p in parts(&key, &block, u32::MAX) {
        value = n.part(peer(&key), p).await;
    }
    let value = value.expect("the round's proposer is heard");
    assert_eq!(value.round, Round::new(u32::MAX));
    assert_eq!(value.validity, Validity::Valid);
    assert_eq!(value.value, block);
}

// ---- validator updates the bridge cannot apply ----

fn update(key: Vec<u8>, power: i64) -> ValidatorUpdate {
    use tendermint_proto::v0_38::crypto::{public_key::Sum, PublicKey as PbKey};
    ValidatorUpdate {
        pub_key: Some(PbKey {
            sum: Some(Sum::Ed25519(key)),
        }),
        power,
    }
}

/// Height 1 decided with the application returning `updates`: the bridge's verdict on them.
async fn decide_with_updates(updates: Vec<ValidatorUpdate>) -> Result<(), ConsensusError> {
    let mut n = net_with(Kv {
        updates,
        ..Kv::default()
    })
    .await;
    let proposer = n.proposer(0);
    let block = n.block(&proposer, vec![tx("a=1")], &[tx("a=1")]);
    n.store
        .put_undecided(&UndecidedProposal {
            height: Height(1),
            round: Round::new(0),
            valid_round: Round::Nil,
            block: block.clone(),
            valid: true,
        })
        .expect("store");
    let (reply, _rx) = oneshot::channel();
    let result = n
        .bridge
        .handle(AppMsg::Decided {
            certificate: decided(&block).certificate,
            extensions: Default::default(),
            reply,
        })
        .await;
    if result.is_err() {
        // Nothing of the height is kept: the node restarts at it.
        assert!(n.store.get_decided(Height(1)).expect("store").is_none());
        assert_eq!(n.bridge.height, Height(1));
    }
    result
}

fn halted(r: Result<(), ConsensusError>, what: &str) -> String {
    match r {
        Err(ConsensusError::Halted(report)) => report.error.clone(),
        other => panic!("{what}: expected a halt with a report, got {other:?}"),
    }
}

#[tokio::test]
async fn an_update_the_bridge_cannot_apply_halts_the_node_with_a_report() {
    let good = PrivateKey::from_seed([9; 32]).public_key().0.to_vec();
    // A valid update is applied.
    decide_with_updates(vec![update(good.clone(), 5)])
        .await
        .expect("a valid update is applied");
    let cases: Vec<(&str, Vec<ValidatorUpdate>, &str)> = vec![
        ("short key", vec![update(vec![1; 31], 5)], "key"),
        (
            "no key",
            vec![ValidatorUpdate {
                pub_key: None,
                power: 5,
            }],
            "key",
        ),
        ("negative power", vec![update(good.clone(), -1)], "power"),
        (
            "overflowing power",
            vec![update(good.clone(), i64::MAX)],
            "power",
        ),
        (
            "empty set",
            net_keys().into_iter().map(|k| update(k, 0)).collect(),
            "empty",
        ),
    ];
    for (what, updates, needle) in cases {
        let report = halted(decide_with_updates(updates).await, what);
        assert!(
            report.contains(needle),
            "{what}: the report names the problem: {report}"
        );
    }
}

/// The consensus keys of [`net`]'s four validators.
fn net_keys() -> Vec<Vec<u8>> {
    (1..=4u8)
        .map(|i| PrivateKey::from_seed([i; 32]).public_key().0.to_vec())
        .collect()
}

// ---- the last commit a block carries ----

use crate::types::Signature;

/// A net that has committed height 1 (decided with no signatures: the engine verified them), so the next
/// block must carry a valid commit of height 1 by the four genesis validators.
async fn net_at_height_2() -> (Net, Block) {
    let mut n = net().await;
    let proposer = n.proposer(0);
    let block = n.block(&proposer, vec![tx("a=1")], &[tx("a=1")]);
    n.store
        .put_undecided(&UndecidedProposal {
            height: Height(1),
            round: Round::new(0),
            valid_round: Round::Nil,
            block: block.clone(),
            valid: true,
        })
        .expect("store");
    let (reply, _rx) = oneshot::channel();
    n.bridge
        .handle(AppMsg::Decided {
            certificate: decided(&block).certificate,
            extensions: Default::default(),
            reply,
        })
        .await
        .expect("decided");
    assert_eq!(n.bridge.height, Height(2));
    (n, block)
}

/// Precommits of height 1 for `first` in round 0 by `signers` (indexes into the net's keys).
fn precommits(n: &Net, first: &Block, signers: &[usize]) -> LastCommit {
    LastCommit {
        round: 0,
        signatures: signers
            .iter()
            .map(|&i| {
                let key = &n.keys[i];
                let address = Address::from_public_key(&key.public_key());
                let vote = crate::types::Vote {
                    vote_type: malachitebft_core_types::VoteType::Precommit,
                    height: Height(1),
                    round: Round::new(0),
                    value_id: malachitebft_core_types::NilOrVal::Val(first.id()),
                    validator_address: address,
                    extension: None,
                };
                let signed = LodeSigner::new(key.clone(), CHAIN).sign_vote_sync(vote);
                (address, signed.signature)
            })
            .collect(),
    }
}

/// A height-2 block on top of `first` carrying `commit` (its header hashes `header_commit`).
fn second(
    n: &Net,
    first: &Block,
    commit: Option<LastCommit>,
    header_commit: Option<&LastCommit>,
) -> Block {
    let (address, _) = n
        .bridge
        .proposer_of(Height(2), Round::new(0))
        .expect("proposer");
    let txs = vec![tx("b=2")];
    Block::with_last_commit(
        BlockHeader {
            chain_id: CHAIN.into(),
            height: Height(2),
            time: BlockTime::now(),
            proposer: address,
            last_block_id: Some(first.id()),
            tx_root: crate::types::tx_root(&txs),
            app_hash: n.bridge.last_app_hash.clone(),
            last_commit_hash: header_commit.map(LastCommit::hash),
        },
        txs,
        commit,
    )
}

#[tokio::test]
async fn a_block_is_valid_only_with_a_signed_commit_of_more_than_two_thirds_of_the_previous_set() {
    let (n, first) = net_at_height_2().await;
    let verdict = |b: Block| {
        let bridge = &n.bridge;
        async move { bridge.validate(&b, Door::Sync).await.expect("validate") }
    };
    let three = precommits(&n, &first, &[0, 1, 2]);
    assert_eq!(
        verdict(second(&n, &first, Some(three.clone()), Some(&three))).await,
        Ok(())
    );
    // No last commit at all.
    assert!(matches!(
        verdict(second(&n, &first, None, None)).await,
        Err(BlockFault::BadLastCommit(_))
    ));
    // Two of four validators: not more than 2/3 of the power.
    let two = precommits(&n, &first, &[0, 1]);
    assert!(matches!(
        verdict(second(&n, &first, Some(two.clone()), Some(&two))).await,
        Err(BlockFault::BadLastCommit(_))
    ));
    // A forged signature among three.
    let mut forged = three.clone();
    forged.signatures[2].1 = Signature([7; 64]);
    assert!(matches!(
        verdict(second(&n, &first, Some(forged.clone()), Some(&forged))).await,
        Err(BlockFault::BadLastCommit(_))
    ));
    // A signer twice.
    let mut twice = three.clone();
    twice.signatures[2] = twice.signatures[0];
    assert!(matches!(
        verdict(second(&n, &first, Some(twice.clone()), Some(&twice))).await,
        Err(BlockFault::BadLastCommit(_))
    ));
    // A body whose commit is not the one the header hashes (a peer swapping signers in a synced block).
    assert!(matches!(
        verdict(second(&n, &first, Some(three.clone()), Some(&two))).await,
        Err(BlockFault::LastCommitMismatch)
    ));
}

// ---- node keys: a proposer heard through the peer it proved ----

/// A net whose bridge reads validator proofs from the returned registry, its round-0 proposer and a block
/// that proposer signs.
async fn net_with_peer_keys() -> (Net, PeerKeys, PrivateKey, Block) {
    let mut n = net().await;
    let peers = PeerKeys::new();
    n.bridge.peer_keys = peers.clone();
    let proposer = n.proposer(0);
    let txs = vec![tx("a=1")];
    let block = n.block(&proposer, txs.clone(), &txs);
    (n, peers, proposer, block)
}

/// `block`'s round-0 stream by `proposer`, published by `from`, completes as a valid proposal of `block`.
async fn assert_completes(n: &mut Net, from: PeerId, proposer: &PrivateKey, block: &Block) {
    let mut value = None;
    for p in parts(proposer, block, 0) {
        value = n.part(from, p).await;
    }
    let value = value.expect("the stream completed");
    assert_eq!(value.validity, Validity::Valid);
    assert_eq!(&value.value, block);
}

#[tokio::test]
async fn a_stream_is_admitted_from_the_peer_its_proposer_proved_and_from_no_other() {
    let (mut n, peers, proposer, block) = net_with_peer_keys().await;
    // The proposer's node runs its swarm under a node key of its own, and its validator proof arrived.
    let node = peer(&PrivateKey::from_seed([200; 32]));
    assert!(peers.record(node, &proposer.public_key()));
    // A peer that proved another key (a validator's own node) is no proposer's relay…
    let other = n
        .keys
        .iter()
        .find(|k| k.public_key() != proposer.public_key())
        .expect("another validator")
        .clone();
    let relay = peer(&PrivateKey::from_seed([201; 32]));
    assert!(peers.record(relay, &other.public_key()));
    // …and neither is a peer that proved nothing: both are dropped at the first part, unbuffered.
    let stranger = peer(&PrivateKey::from_seed([202; 32]));
    for from in [relay, stranger] {
        for p in parts(&proposer, &block, 0) {
            assert!(n.part(from, p).await.is_none());
            assert_eq!(n.buffered(), 0);
        }
    }
    // The bound node's stream completes.
    assert_completes(&mut n, node, &proposer, &block).await;
}

/// Malachite 0.8.2 drops a validator proof that arrives before its consensus actor subscribed to the
/// network (its start-up race; the proof is sent once per connection and never again), and a proposer that
/// is not a direct peer never sends one. A node that admitted streams only from proven peers then
/// prevoted nil in every round. While no peer is bound to the proposer's key, its stream is admitted from
/// whoever publishes it, within the buffer's bounds, and the Fin signature decides; bad signatures strike.
#[tokio::test]
async fn while_no_proof_binds_the_proposer_its_signed_stream_is_admitted_and_forgeries_are_struck()
{
    let (mut n, _, proposer, block) = net_with_peer_keys().await;
    // A publisher that forges the Fin of the proposer's stream is struck and, after MAX_STRIKES, ignored.
    let forger = peer(&PrivateKey::from_seed([203; 32]));
    for _ in 0..MAX_STRIKES {
        for p in forged_parts(&proposer, &block, 0) {
            assert!(n.part(forger, p).await.is_none());
        }
    }
    assert!(n.ignored(&forger));
    // The forgeries left nothing behind: nothing buffered, no proposal stored.
    assert_eq!(n.buffered(), 0);
    assert!(n
        .store
        .undecided_by_id(Height(1), block.id())
        .expect("store")
        .is_none());
    // The proposer's node, whose proof never arrived, is heard: its genuine stream completes.
    let node = peer(&PrivateKey::from_seed([200; 32]));
    assert_completes(&mut n, node, &proposer, &block).await;
}

// ---- evidence: only verified conflicting votes reach the node ----

fn signed_vote(
    key: &PrivateKey,
    value: Option<u8>,
) -> malachitebft_core_types::SignedVote<LodeContext> {
    let vote = crate::types::Vote {
        vote_type: malachitebft_core_types::VoteType::Prevote,
        height: Height(1),
        round: Round::new(0),
        value_id: value.map_or(malachitebft_core_types::NilOrVal::Nil, |b| {
            malachitebft_core_types::NilOrVal::Val(BlockId([b; 32]))
        }),
        validator_address: Address::from_public_key(&key.public_key()),
        extension: None,
    };
    LodeSigner::new(key.clone(), CHAIN).sign_vote_sync(vote)
}

#[tokio::test]
async fn only_conflicting_votes_whose_signatures_verify_become_evidence() {
    let mut n = net().await;
    let (tx, mut rx) = mpsc::channel(crate::evidence::EVIDENCE_CHANNEL);
    n.bridge.evidence = Some(tx);
    let offender = n.keys[2].clone();
    let forged_victim = n.keys[3].clone();
    let mut votes = malachitebft_core_votekeeper::EvidenceMap::<LodeContext>::new();
    // A real double sign.
    votes.add(
        signed_vote(&offender, Some(1)),
        signed_vote(&offender, None),
    );
    // A vote "by" another validator whose signature is someone else's: never evidence.
    let mut forged = signed_vote(&forged_victim, Some(2));
    forged.signature = signed_vote(&offender, Some(2)).signature;
    votes.add(signed_vote(&forged_victim, Some(3)), forged);
    // A validator outside every set: nothing to check it against.
    let stranger = PrivateKey::from_seed([99; 32]);
    votes.add(
        signed_vote(&stranger, Some(1)),
        signed_vote(&stranger, Some(2)),
    );
    n.bridge.forward_evidence(&MisbehaviorEvidence {
        proposals: Default::default(),
        votes,
    });
    let pair = rx.try_recv().expect("the real double sign");
    assert!(pair.conflicts());
    assert_eq!(
        pair.a.validator_address,
        Address::from_public_key(&offender.public_key()).0
    );
    assert!(rx.try_recv().is_err(), "nothing else is evidence");
}

#[tokio::test]
async fn a_full_evidence_channel_drops_pairs_and_never_waits() {
    let mut n = net().await;
    let (tx, mut rx) = mpsc::channel(1);
    n.bridge.evidence = Some(tx);
    let mut votes = malachitebft_core_votekeeper::EvidenceMap::<LodeContext>::new();
    for k in &n.keys[1..] {
        votes.add(signed_vote(k, Some(1)), signed_vote(k, Some(2)));
    }
    // Three pairs into a channel of one: returns at once, one pair delivered.
    n.bridge.forward_evidence(&MisbehaviorEvidence {
        proposals: Default::default(),
        votes,
    });
    assert!(rx.try_recv().is_ok());
    assert!(rx.try_recv().is_err());
}

#[tokio::test]
async fn a_proposal_naming_its_txs_is_rebuilt_from_the_mempool_without_a_fetch() {
    let mut n = net().await;
    let proposer = n.proposer(0);
    let txs = vec![tx("a=1"), tx("b=2"), tx("c=3")];
    let block = n.block(&proposer, txs.clone(), &txs);
    n.pool.hold(&txs);
    let value = stream(&mut n, peer(&proposer), named_parts(&proposer, &block, 0))
        .await
        .expect("the stream completed");
    assert_eq!(value.validity, Validity::Valid);
    assert_eq!(value.value.txs(), block.txs());
    assert!(n.pool.fetches.lock().expect("pool").is_empty());
    // The whole block is what is stored, for voting and restreaming.
    let stored = n
        .store
        .undecided_by_id(Height(1), block.id())
        .expect("store");
    assert_eq!(stored.map(|p| p.block.txs().to_vec()), Some(txs));
}

#[tokio::test]
async fn named_txs_the_mempool_lacks_are_fetched_and_what_peers_send_beyond_them_is_dropped() {
    let mut n = net().await;
    let proposer = n.proposer(0);
    let txs = vec![tx("a=1"), tx("b=2"), tx("c=3")];
    let block = n.block(&proposer, txs.clone(), &txs);
    n.pool.hold(&txs[..1]);
    // Peers send the two missing txs, one twice, and junk nobody asked for.
    *n.pool.peers_send.lock().expect("pool") =
        vec![tx("x=9"), txs[2].clone(), txs[1].clone(), txs[2].clone()];
    let value = stream(&mut n, peer(&proposer), named_parts(&proposer, &block, 0))
        .await
        .expect("the stream completed");
    assert_eq!(value.validity, Validity::Valid);
    assert_eq!(value.value.txs(), block.txs());
    let fetches = n.pool.fetches.lock().expect("pool").clone();
    let asked: Vec<[u8; 32]> = txs[1..].iter().map(|t| Sha256::digest(t).into()).collect();
    assert_eq!(fetches, vec![asked]);
}

#[tokio::test]
async fn a_proposal_naming_txs_nobody_sends_is_not_accepted_and_its_publisher_is_not_struck() {
    let mut n = net().await;
    let proposer = n.proposer(0);
    let txs = vec![tx("a=1"), tx("b=2")];
    let block = n.block(&proposer, txs.clone(), &txs);
    // Peers send a tx of another block in its place.
    *n.pool.peers_send.lock().expect("pool") = vec![tx("a=1"), tx("z=0")];
    n.pool.hold(&txs[..1]);
    assert!(
        stream(&mut n, peer(&proposer), named_parts(&proposer, &block, 0))
            .await
            .is_none()
    );
    assert!(n
        .store
        .undecided_by_id(Height(1), block.id())
        .expect("store")
        .is_none());
    assert!(!n.ignored(&peer(&proposer)));
    // The node's own mempool may have refused the tx: the same proposer's next stream is heard.
    let round = n.round_of(&proposer, 1);
    let whole = parts(&proposer, &block, round);
    let value = stream(&mut n, peer(&proposer), whole)
        .await
        .expect("the whole stream");
    assert_eq!(value.validity, Validity::Valid);
}

#[tokio::test]
async fn a_fetch_that_never_answers_is_given_up_after_the_wait() {
    let mut n = net().await;
    let proposer = n.proposer(0);
    let txs = vec![tx("a=1")];
    let block = n.block(&proposer, txs.clone(), &txs);
    n.pool.hang.store(true, std::sync::atomic::Ordering::SeqCst);
    let wait = n.bridge.fetch_wait();
    let started = std::time::Instant::now();
    let value = tokio::time::timeout(
        wait * 4,
        stream(&mut n, peer(&proposer), named_parts(&proposer, &block, 0)),
    )
    .await
    .expect("the bridge gave up on the fetch");
    assert!(value.is_none());
    assert!(started.elapsed() >= wait);
}

#[tokio::test]
async fn a_proposal_naming_more_missing_txs_than_a_node_fetches_is_refused_unfetched() {
    let mut n = net().await;
    let proposer = n.proposer(0);
    let txs: Vec<Bytes> = (0..=MAX_FETCH_TXS)
        .map(|i| tx(&format!("k{i}=v")))
        .collect();
    let block = n.block(&proposer, txs.clone(), &txs);
    assert!(
        stream(&mut n, peer(&proposer), named_parts(&proposer, &block, 0))
            .await
            .is_none()
    );
    assert!(n.pool.fetches.lock().expect("pool").is_empty());
}

#[tokio::test]
async fn a_compact_proposal_whose_names_do_not_make_its_tx_root_is_struck_before_any_fetch() {
    let mut n = net().await;
    let proposer = n.proposer(0);
    let signed_root_of = vec![tx("a=1"), tx("b=2")];
    for i in 0..MAX_STRIKES {
        // The header commits to other txs than the body names.
        let body = vec![tx(&format!("x{i}=1"))];
        let block = n.block(&proposer, body, &signed_root_of);
        assert!(
            stream(&mut n, peer(&proposer), named_parts(&proposer, &block, 0))
                .await
                .is_none()
        );
    }
    assert!(n.pool.fetches.lock().expect("pool").is_empty());
    assert!(n.ignored(&peer(&proposer)));
}

#[tokio::test]
async fn a_proposal_naming_txs_outside_round_0_is_struck() {
    let mut n = net().await;
    let proposer = n.proposer(0);
    let txs = vec![tx("a=1")];
    let block = n.block(&proposer, txs.clone(), &txs);
    n.pool.hold(&txs);
    let mut round = 0;
    for _ in 0..MAX_STRIKES {
        round = n.round_of(&proposer, round + 1);
        assert!(stream(
            &mut n,
            peer(&proposer),
            named_parts(&proposer, &block, round)
        )
        .await
        .is_none());
    }
    assert!(n.ignored(&peer(&proposer)));
    assert!(n.pool.fetches.lock().expect("pool").is_empty());
}

#[tokio::test]
async fn a_node_waits_on_peers_once_per_height_whatever_the_proposer_streams() {
    let mut n = net().await;
    let proposer = n.proposer(0);
    for i in 0..3 {
        let txs = vec![tx(&format!("k{i}=v"))];
        let block = n.block(&proposer, txs.clone(), &txs);
        assert!(
            stream(&mut n, peer(&proposer), named_parts(&proposer, &block, 0))
                .await
                .is_none()
        );
    }
    assert_eq!(n.pool.fetches.lock().expect("pool").len(), 1);
    // Nobody was struck for txs this node could not get.
    assert!(!n.ignored(&peer(&proposer)));
}

#[tokio::test]
async fn a_compact_proposal_for_the_next_height_is_resolved_from_the_mempool_and_waits_for_its_height(
) {
    let mut n = net().await;
    let (address, _) = n
        .bridge
        .proposer_of(Height(2), Round::new(0))
        .expect("next height's proposer");
    let proposer = n
        .keys
        .iter()
        .find(|k| Address::from_public_key(&k.public_key()) == address)
        .expect("a validator")
        .clone();
    let txs = vec![tx("a=1"), tx("b=2")];
    n.pool.hold(&txs);
    let mut block = n.block(&proposer, txs.clone(), &txs);
    let mut header = block.header().clone();
    header.height = Height(2);
    block = Block::new(header, txs.clone());
    let signer = LodeSigner::new(proposer.clone(), CHAIN);
    let named: Vec<Option<[u8; 32]>> = txs.iter().map(|t| Some(Sha256::digest(t).into())).collect();
    let parts = proposal_parts(
        &signer,
        &block,
        &named,
        Height(2),
        Round::new(0),
        Round::Nil,
    );
    assert!(stream(&mut n, peer(&proposer), parts).await.is_none());
    assert_eq!(n.bridge.early.len(), 1);
    assert_eq!(n.bridge.early[0].block.txs(), &txs[..]);
    assert!(n.pool.fetches.lock().expect("pool").is_empty());
}
