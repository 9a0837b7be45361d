//! A bounded workload of signed transfers for the whole-system fault tests, and the checks that prove what it
//! wrote survived: every commit acknowledged to a client is in the chain at the acknowledged height on every
//! node, no tx is committed twice, every node holds the same block id and app hash at every height, and every
//! balance and nonce the workload touched equals, to the unit and on every node, what the committed txs imply.
//!
//! Each sender (a funded dev account of [`Net`]) signs one transfer at a time to its own fresh recipient and
//! sends it with `BroadcastAndWait` to a random node. A failed call (the node was killed, paused or timed
//! out) is retried with the *same bytes* on another node until a node acknowledges the commit: the call is
//! idempotent, so a tx that was committed before its node died is reported, not sent twice. Only then does
//! the sender sign its next nonce. Stopping the workload lets every sender get an answer for the tx it holds
//! (bounded), so no tx is left in flight when the checks run.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lode_node::keys::KeyFile;
use lode_node::services::grpc::pb::{
    self, block_service_client::BlockServiceClient, query_service_client::QueryServiceClient,
    tx_service_client::TxServiceClient,
};
use lode_state::Address;
use sha2::{Digest, Sha256};
use tonic::transport::{Channel, Endpoint};

use crate::four_validators_commit_a_transfer::{status, Net};

/// The fee every workload tx pays (above the devnet's minimum for a transfer).
pub const FEE: u128 = 10_000;
/// A dev account's genesis balance (`lode testnet init`).
pub const DEV_BALANCE: u128 = lode_node::testnet::DEV_BALANCE;
/// How long a stopped workload waits for the answer to each sender's last tx.
const DRAIN: Duration = Duration::from_secs(60);
/// Bound on one gRPC call of the workload or the checks.
const CALL: Duration = Duration::from_secs(15);

/// A small deterministic RNG (SplitMix64): the fault schedule and the workload replay from a printed seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// One tx the workload signed.
#[derive(Debug, Clone)]
pub struct Sent {
    pub hash: [u8; 32],
    pub sender: usize,
    pub to: Address,
    pub amount: u128,
    /// The height a node acknowledged the commit at, and the tx's result code there.
    pub acked: Option<(u64, u32)>,
}

/// What a run of the workload produced.
#[derive(Debug)]
pub struct Report {
    pub sent: Vec<Sent>,
    pub elapsed: Duration,
    /// Calls that failed (node down, paused, timed out) and were retried.
    pub retries: usize,
}

impl Report {
    pub fn acked(&self) -> usize {
        self.sent.iter().filter(|s| s.acked.is_some()).count()
    }

    /// Acknowledged txs per second over the run.
    pub fn tx_per_s(&self) -> f64 {
        self.acked() as f64 / self.elapsed.as_secs_f64().max(1e-3)
    }
}

/// A running workload.
pub struct Workload {
    stop: Arc<AtomicBool>,
    sent: Arc<Mutex<Vec<Sent>>>,
    retries: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    started: Instant,
}

/// A gRPC channel that gives up on a node that does not answer (killed or SIGSTOPped) instead of hanging.
pub async fn channel(url: &str) -> Option<Channel> {
    let endpoint = Endpoint::from_shared(url.to_owned())
        .ok()?
        .connect_timeout(Duration::from_secs(2))
        .timeout(CALL);
    tokio::time::timeout(Duration::from_secs(3), endpoint.connect())
        .await
        .ok()?
        .ok()
}

impl Workload {
    /// Starts `senders` senders (dev accounts 0..senders of `net`, which must have at least that many), each
    /// sending transfers back to back, `max_txs` in all, with `seed` choosing amounts and nodes.
    pub async fn start(net: &Net, senders: usize, max_txs: usize, seed: u64) -> Workload {
        let deadline = Instant::now() + Duration::from_secs(60);
        let chain_id = loop {
            if let Some(s) = status(&net.grpc[0]).await {
                break s.chain_id;
            }
            assert!(
                Instant::now() < deadline,
                "node 0 did not answer\n{}",
                net.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(Mutex::new(Vec::new()));
        let retries = Arc::new(AtomicUsize::new(0));
        let budget = Arc::new(AtomicUsize::new(max_txs));
        let mut tasks = Vec::new();
        for k in 0..senders {
            let key = KeyFile::load(&net.homes[0].join(format!("keys/dev{k}.json")))
                .expect("dev key")
                .signing_key()
                .expect("signing key");
            let to: Address = KeyFile::generate("recipient")
                .expect("key")
                .address
                .parse()
                .expect("address");
            let urls = net.grpc.clone();
            let (chain_id, stop, sent, retries, budget) = (
                chain_id.clone(),
                stop.clone(),
                sent.clone(),
                retries.clone(),
                budget.clone(),
            );
            let mut rng = Rng::new(seed ^ (k as u64).wrapping_mul(0xA24B_AED4_963E_E407));
            tasks.push(tokio::spawn(async move {
                for nonce in 0.. {
                    if stop.load(Ordering::SeqCst)
                        || budget
                            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| b.checked_sub(1))
                            .is_err()
                    {
                        return;
                    }
                    let amount = u128::from(rng.below(1_000)) + 1;
                    let tx = lode_state::tx::sign_send(&chain_id, &key, nonce, FEE, &to, amount);
                    let hash: [u8; 32] = Sha256::digest(&tx).into();
                    let index = {
                        let mut s = sent.lock().expect("lock");
                        s.push(Sent {
                            hash,
                            sender: k,
                            to,
                            amount,
                            acked: None,
                        });
                        s.len() - 1
                    };
                    let mut drain_deadline = None;
                    let acked = loop {
                        if stop.load(Ordering::SeqCst) {
                            let d = *drain_deadline.get_or_insert_with(|| Instant::now() + DRAIN);
                            if Instant::now() > d {
                                break None;
                            }
                        }
                        let url = &urls[rng.below(urls.len() as u64) as usize];
                        match broadcast_and_wait(url, &tx).await {
                            Some(a) => break Some(a),
                            None => {
                                retries.fetch_add(1, Ordering::SeqCst);
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                        }
                    };
                    sent.lock().expect("lock")[index].acked = acked;
                    if acked.is_none() {
                        return;
                    }
                }
            }));
        }
        Workload {
            stop,
            sent,
            retries,
            tasks,
            started: Instant::now(),
        }
    }

    /// Txs acknowledged so far.
    pub fn acked(&self) -> usize {
        self.sent
            .lock()
            .expect("lock")
            .iter()
            .filter(|s| s.acked.is_some())
            .count()
    }

    /// Waits (bounded) until at least `n` txs are acknowledged.
    pub async fn wait_acked(&self, n: usize, within: Duration) {
        let deadline = Instant::now() + within;
        while self.acked() < n {
            assert!(
                Instant::now() < deadline,
                "only {} of {n} txs acknowledged within {within:?}",
                self.acked()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops signing new txs, waits for every sender's last answer (bounded) and returns what was sent.
    pub async fn stop(self) -> Report {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            tokio::time::timeout(DRAIN + CALL * 2, t)
                .await
                .expect("a sender did not finish")
                .expect("sender task");
        }
        let elapsed = self.started.elapsed();
        let sent = self.sent.lock().expect("lock").clone();
        Report {
            sent,
            elapsed,
            retries: self.retries.load(Ordering::SeqCst),
        }
    }
}

/// One `BroadcastAndWait` on `url`: the commit height and result code, or None when the node did not answer
/// with a commit (down, paused, timed out, or refused the tx for now).
async fn broadcast_and_wait(url: &str, tx: &[u8]) -> Option<(u64, u32)> {
    let mut client = TxServiceClient::new(channel(url).await?);
    let r = tokio::time::timeout(
        CALL,
        client.broadcast_and_wait(pb::BroadcastAndWaitRequest {
            tx: tx.to_vec(),
            timeout_ms: 10_000,
        }),
    )
    .await
    .ok()?
    .ok()?
    .into_inner();
    (r.height > 0).then(|| (r.height, r.result.map_or(u32::MAX, |r| r.code)))
}

/// What the checks found. A run passes when `lost`, `forks`, `twice`, `wrong_balances` and `failed` are all 0.
#[derive(Debug, Default)]
pub struct Verdict {
    /// The heights compared on every node (1..=height).
    pub height: u64,
    /// Acknowledged txs missing from a node, or found there at another height than acknowledged.
    pub lost: usize,
    /// Heights at which two nodes hold a different block id or app hash.
    pub forks: usize,
    /// Txs found in more than one place in the chain.
    pub twice: usize,
    /// Acknowledged txs whose result was not success.
    pub failed: usize,
    /// (node, account) pairs whose balance or nonce differs from what the committed txs imply.
    pub wrong_balances: usize,
    /// Workload txs committed without an acknowledgement (a sender gave up on them).
    pub unacked_committed: usize,
    /// What went wrong, for the failure message.
    pub problems: Vec<String>,
}

impl Verdict {
    pub fn ok(&self) -> bool {
        self.lost == 0
            && self.forks == 0
            && self.twice == 0
            && self.failed == 0
            && self.wrong_balances == 0
    }

    fn problem(&mut self, p: String) {
        if self.problems.len() < 20 {
            self.problems.push(p);
        }
    }
}

pub async fn get_block(ch: &Channel, height: u64) -> Option<pb::GetBlockResponse> {
    let mut client = BlockServiceClient::new(ch.clone());
    Some(
        client
            .get_block(pb::GetBlockRequest {
                at: Some(pb::get_block_request::At::Height(height)),
            })
            .await
            .ok()?
            .into_inner(),
    )
}

async fn get_tx_on(ch: &Channel, hash: &[u8; 32]) -> Option<pb::GetTxResponse> {
    let mut client = TxServiceClient::new(ch.clone());
    Some(
        client
            .get_tx(pb::GetTxRequest {
                hash: hash.to_vec(),
            })
            .await
            .ok()?
            .into_inner(),
    )
}

async fn account_on(ch: &Channel, address: &Address) -> Option<pb::AccountResponse> {
    let mut client = QueryServiceClient::new(ch.clone());
    Some(
        client
            .account(pb::AccountRequest {
                address: address.to_string(),
            })
            .await
            .ok()?
            .into_inner(),
    )
}

/// A committed tx by hash from the node at `url` (None: not found, or the node did not answer).
pub async fn get_tx(url: &str, hash: &[u8; 32]) -> Option<pb::GetTxResponse> {
    get_tx_on(&channel(url).await?, hash).await
}

/// An account from the node at `url` (None: the node did not answer).
pub async fn account(url: &str, address: &Address) -> Option<pb::AccountResponse> {
    account_on(&channel(url).await?, address).await
}

/// One channel per node of `net`, for the checks (every node must be up).
async fn channels(net: &Net) -> Vec<Channel> {
    let mut out = Vec::new();
    for url in &net.grpc {
        out.push(channel(url).await.expect("connect for the checks"));
    }
    out
}

/// Waits (bounded by `within`) until every node has committed at least `height`.
pub async fn wait_all(urls: &[String], height: u64, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    for url in urls {
        while status(url).await.is_none_or(|s| s.latest_height < height) {
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    true
}

/// Runs every check on the running nodes of `net` (all of them must be up; the workload stopped): waits
/// until every node is past the last height any node had (so nothing is still pending), then compares every
/// height 1..=that on every node, finds every workload tx, and checks every sender's and recipient's balance
/// and nonce.
pub async fn verify(net: &Net, report: &Report) -> Verdict {
    let mut v = Verdict::default();
    let mut top = 0;
    for url in &net.grpc {
        top = top.max(status(url).await.map_or(0, |s| s.latest_height));
    }
    let height = top + 1;
    assert!(
        wait_all(&net.grpc, height, Duration::from_secs(60)).await,
        "not every node reached height {height} for the checks\n{}",
        net.logs()
    );
    v.height = height;
    let chans = channels(net).await;

    // Same block and app hash at every height on every node; where each tx is in the chain.
    let mut found: HashMap<[u8; 32], Vec<u64>> = HashMap::new();
    for h in 1..=height {
        let mut first: Option<(Vec<u8>, Vec<u8>)> = None;
        for (i, ch) in chans.iter().enumerate() {
            let Some(b) = get_block(ch, h).await else {
                v.forks += 1;
                v.problem(format!("node {i} has no block at height {h}"));
                continue;
            };
            if i == 0 {
                for t in &b.txs {
                    let hash: [u8; 32] = t.tx_hash.as_slice().try_into().expect("32-byte hash");
                    found.entry(hash).or_default().push(h);
                }
            }
            let id = (b.block_id.clone(), b.result_app_hash.clone());
            match &first {
                None => first = Some(id),
                Some(f) if *f != id => {
                    v.forks += 1;
                    v.problem(format!(
                        "node {i} differs from node 0 at height {h}: block {} app hash {} vs {} {}",
                        hex::encode(&id.0),
                        hex::encode(&id.1),
                        hex::encode(&f.0),
                        hex::encode(&f.1)
                    ));
                }
                Some(_) => {}
            }
        }
    }
    for (hash, heights) in &found {
        if heights.len() > 1 {
            v.twice += 1;
            v.problem(format!("tx {} at heights {heights:?}", hex::encode(hash)));
        }
    }

    // Every acknowledged tx where it was acknowledged, by the tx index of every node.
    for s in report.sent.iter() {
        let in_chain = found.get(&s.hash).and_then(|h| h.first().copied());
        match (s.acked, in_chain) {
            (Some((h, code)), Some(at)) => {
                if code != 0 {
                    v.failed += 1;
                    v.problem(format!(
                        "tx {} failed with code {code}",
                        hex::encode(s.hash)
                    ));
                }
                if at != h {
                    v.lost += 1;
                    v.problem(format!(
                        "tx {} acknowledged at {h}, in the chain at {at}",
                        hex::encode(s.hash)
                    ));
                }
                for (i, ch) in chans.iter().enumerate() {
                    if get_tx_on(ch, &s.hash).await.map(|t| t.height) != Some(h) {
                        v.lost += 1;
                        v.problem(format!(
                            "node {i} does not index tx {} at {h}",
                            hex::encode(s.hash)
                        ));
                    }
                }
            }
            (Some((h, _)), None) => {
                v.lost += 1;
                v.problem(format!(
                    "tx {} acknowledged at {h} is not in the chain",
                    hex::encode(s.hash)
                ));
            }
            (None, Some(_)) => v.unacked_committed += 1,
            (None, None) => {}
        }
    }

    // Balances and nonces to the unit on every node, from the txs the chain holds.
    let mut senders: Vec<usize> = report.sent.iter().map(|s| s.sender).collect();
    senders.sort_unstable();
    senders.dedup();
    let sender_addr: BTreeMap<usize, Address> = senders
        .into_iter()
        .map(|k| (k, dev_address(net, k)))
        .collect();
    // address -> (balance, nonce) expected.
    let mut expected: BTreeMap<String, (u128, u64)> = BTreeMap::new();
    for a in sender_addr.values() {
        expected.insert(a.to_string(), (DEV_BALANCE, 0));
    }
    for s in &report.sent {
        expected.entry(s.to.to_string()).or_insert((0, 0));
    }
    for s in report.sent.iter().filter(|s| found.contains_key(&s.hash)) {
        let from = expected
            .get_mut(&sender_addr[&s.sender].to_string())
            .expect("sender");
        from.0 -= s.amount + FEE;
        from.1 += 1;
        expected.get_mut(&s.to.to_string()).expect("recipient").0 += s.amount;
    }
    for (i, ch) in chans.iter().enumerate() {
        for (addr, (balance, nonce)) in &expected {
            let parsed: Address = addr.parse().expect("address");
            let got = account_on(ch, &parsed).await;
            let got = got.map(|a| (a.balance, a.nonce));
            if got != Some((balance.to_string(), *nonce)) {
                v.wrong_balances += 1;
                v.problem(format!(
                    "node {i}: {addr} holds {got:?}, expected balance {balance} nonce {nonce}"
                ));
            }
        }
    }
    v
}

/// The address of dev account `k` of `net`.
pub fn dev_address(net: &Net, k: usize) -> Address {
    KeyFile::load(&net.homes[0].join(format!("keys/dev{k}.json")))
        .expect("dev key")
        .address
        .parse()
        .expect("address")
}

/// Asserts that `v` found nothing wrong.
pub fn assert_verdict(v: &Verdict, net: &Net) {
    assert!(
        v.ok(),
        "lost {} forks {} twice {} failed {} wrong balances {}:\n{}\n{}",
        v.lost,
        v.forks,
        v.twice,
        v.failed,
        v.wrong_balances,
        v.problems.join("\n"),
        net.logs()
    );
}

/// Asserts that every node of `net` (all running, no tx in flight) holds the same block id and app hash at
/// every height, and the same balance and nonce for each of `addresses`; returns them, in order.
pub async fn assert_nodes_agree(net: &Net, addresses: &[Address]) -> Vec<(u128, u64)> {
    let nothing = Report {
        sent: Vec::new(),
        elapsed: Duration::ZERO,
        retries: 0,
    };
    assert_verdict(&verify(net, &nothing).await, net);
    let mut out = Vec::new();
    for a in addresses {
        let mut seen = Vec::new();
        for url in &net.grpc {
            let r = account(url, a).await.expect("account");
            seen.push((r.balance.parse::<u128>().expect("balance"), r.nonce));
        }
        assert!(
            seen.iter().all(|s| *s == seen[0]),
            "nodes disagree on {a}: {seen:?}"
        );
        out.push(seen[0]);
    }
    out
}
