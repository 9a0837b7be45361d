//! The ABCI 2.0 application. This is the only module where ABCI types appear: it converts requests into
//! calls on the state machine and results back into responses.
//!
//! Concurrency: CometBFT drives the app over several connections at once (consensus, mempool, query).
//! Block execution and the mempool's check state have separate locks, taken in that order, so CheckTx
//! does not wait for a block to execute; the mempool lock is also held while Commit writes, so CheckTx never
//! sees a half-updated view.

use std::{
    path::Path,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, MutexGuard, RwLock,
    },
    time::Duration,
};

use bytes::Bytes;
use tendermint_proto::v0_38::{
    abci::{
        request, response, response_process_proposal::ProposalStatus, Event as AbciEvent,
        EventAttribute, ExecTxResult, Request, RequestCheckTx, RequestFinalizeBlock, RequestInfo,
        RequestInitChain, RequestPrepareProposal, RequestProcessProposal, RequestQuery, Response,
        ResponseCheckTx, ResponseCommit, ResponseException, ResponseFinalizeBlock, ResponseInfo,
        ResponseInitChain, ResponsePrepareProposal, ResponseProcessProposal, ResponseQuery,
        ValidatorUpdate,
    },
    crypto::{public_key, ProofOp, ProofOps},
};
use tracing::{debug, error, info, instrument, warn};

use crate::{
    address::check_public_key,
    error::{StateError, StoreError, TxError, CODESPACE},
    event::Event,
    exec::execute_tx,
    genesis,
    module::{BlockCtx, BlockTime},
    modules,
    params::{self, Params},
    query,
    store::{encode_block, CommitBatch, CommitRecord, Overlay, Prefetched, Store, Writes},
    tx::{
        checker::{accounts_read, pipeline_chunk, Remember, TxChecker},
        Tx,
    },
};

/// Application name and version reported by Info.
pub const APP_NAME: &str = "lode";
pub const APP_VERSION: u64 = 1;

/// Query error codes (tx error codes are in [`TxError::code`]).
pub use crate::query::code as query_code;

/// How the application runs, beyond what consensus decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AppOptions {
    /// Check every module's invariants at the end of every block, and halt (refuse to finalize) with a
    /// report if one is broken. Costs a scan of the accounts, bonds and deposits per block: meant for
    /// devnets and testnets.
    pub check_invariants: bool,
}

/// What [`LodeApp::simulate`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct Simulation {
    /// The committed height the tx ran against (0 before genesis).
    pub height: u64,
    /// The tx's result, as FinalizeBlock would report it (code, log, gas, events).
    pub result: ExecTxResult,
    /// The tx's gas (0 when it does not decode).
    pub gas: u64,
    /// Its minimum fee at the current gas price (0 when it does not decode).
    pub min_fee: u128,
}

/// The Lode application. Cheap to clone; every clone shares the same state.
#[derive(Clone, Debug)]
pub struct LodeApp {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    options: AppOptions,
    consensus: Mutex<ConsensusState>,
    mempool: Mutex<Writes>,
    committed: RwLock<Committed>,
    checker: TxChecker,
    /// Verification time of the last finalized block's reveals, in nanoseconds
    /// ([`crate::modules::compute::verdict::BlockMeter`]).
    last_verification_nanos: AtomicU64,
    /// Test-only writes applied at the start of the next FinalizeBlock (to break an invariant on purpose).
    #[cfg(any(test, feature = "test-utils"))]
    injected: Mutex<Writes>,
}

#[derive(Debug, Clone, Default)]
struct Committed {
    record: Option<CommitRecord>,
    params: Params,
}

#[derive(Debug, Default)]
struct ConsensusState {
    pending: Option<PendingBlock>,
}

/// A finalized but not yet committed block.
#[derive(Debug)]
struct PendingBlock {
    batch: CommitBatch,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a lock would be a bug; the data under it stays consistent because every
    // mutation is committed only after it fully succeeds, so recovering the guard is safe.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A tx that passed the stateless half of CheckTx on this node (decoded, stateless checks, signature), and
/// the parameter generation it was checked under ([`crate::tx::checker::TxChecker::generation`]).
#[derive(Debug, Clone)]
pub struct Checked {
    tx: Arc<Tx>,
    generation: u64,
}

impl Checked {
    /// The decoded tx.
    pub fn tx(&self) -> &Tx {
        &self.tx
    }
}

impl LodeApp {
    /// Opens the application's database at `path`, creating it if needed, with default options.
    pub fn open(path: &Path) -> Result<LodeApp, StateError> {
        Self::open_with(path, AppOptions::default())
    }

    /// Opens the application's database at `path` with `options`.
    pub fn open_with(path: &Path, options: AppOptions) -> Result<LodeApp, StateError> {
        let store = Store::open(path)?;
        let record = store.commit_record()?;
        let params = match &record {
            Some(_) => params::load(&store)?,
            None => Params::default(),
        };
        if let Some(r) = &record {
            info!(height = r.height, app_hash = %hex::encode(r.app_hash), "opened state");
        }
        Ok(LodeApp {
            inner: Arc::new(Inner {
                store,
                options,
                consensus: Mutex::new(ConsensusState::default()),
                mempool: Mutex::new(Writes::new()),
                committed: RwLock::new(Committed { record, params }),
                checker: TxChecker::default(),
                last_verification_nanos: AtomicU64::new(0),
                #[cfg(any(test, feature = "test-utils"))]
                injected: Mutex::new(Writes::new()),
            }),
        })
    }

    /// The options the application runs with.
    pub fn options(&self) -> AppOptions {
        self.inner.options
    }

    /// Test-only: writes applied to state at the start of the next FinalizeBlock, as if a module had made
    /// them (tests break invariants with it on purpose).
    #[cfg(any(test, feature = "test-utils"))]
    pub fn inject_into_next_block(&self, writes: Writes) {
        lock(&self.inner.injected).extend(writes);
    }

    /// Test-only: an application on `dir` after InitChain of `chain_id` at height 1, with one self-bonded
    /// validator (key seed 9) holding all the power and 10^12 base units in each of `funded`'s accounts.
    #[cfg(any(test, feature = "test-utils"))]
    pub fn initialised_for_tests(
        dir: &std::path::Path,
        chain_id: &str,
        funded: &[&ed25519_consensus::SigningKey],
    ) -> Result<Self, StateError> {
        use crate::genesis::{AppState, GenesisBalance};
        use tendermint_proto::crypto::{public_key::Sum, PublicKey};
        use tendermint_proto::v0_38::abci::ValidatorUpdate;
        let app = Self::open(dir)?;
        let validator = ed25519_consensus::SigningKey::from([9u8; 32])
            .verification_key()
            .to_bytes();
        let mut app_state = AppState {
            balances: funded
                .iter()
                .map(|k| GenesisBalance {
                    address: crate::tx::address_of(k).to_string(),
                    amount: "1000000000000".into(),
                })
                .collect(),
            ..AppState::default()
        };
        app_state.add_self_bonded_validator("test-validator", &validator, 10);
        let app_state_bytes = serde_json::to_vec(&app_state)
            .map_err(|e| StateError::Genesis(format!("genesis json: {e}")))?;
        app.try_init_chain(RequestInitChain {
            chain_id: chain_id.into(),
            initial_height: 1,
            app_state_bytes: Bytes::from(app_state_bytes),
            validators: vec![ValidatorUpdate {
                pub_key: Some(PublicKey {
                    sum: Some(Sum::Ed25519(validator.to_vec())),
                }),
                power: i64::try_from(crate::modules::staking::power::TOTAL_POWER)
                    .unwrap_or(i64::MAX),
            }],
            ..Default::default()
        })?;
        Ok(app)
    }

    /// The underlying store (read-only use: queries, tests, tools).
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Whether InitChain has run (before it, every tx is refused "chain not initialised" and queries answer
    /// `NOT_INITIALIZED`).
    pub fn is_initialised(&self) -> bool {
        self.inner
            .committed
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .record
            .is_some()
    }

    fn committed(&self) -> Committed {
        self.inner
            .committed
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// What verifying the reveals of the last finalized block cost on this node: each verdict its txs
    /// used, at the time it took to compute, whether at FinalizeBlock or earlier (CheckTx, the proposal)
    /// and served from the cache. Zero for a block without reveals.
    pub fn last_block_verification(&self) -> Duration {
        Duration::from_nanos(self.inner.last_verification_nanos.load(Ordering::Relaxed))
    }

    /// The last commit record, if the chain was initialised.
    pub fn last_commit(&self) -> Option<CommitRecord> {
        self.committed().record
    }

    /// Serves one ABCI request. Never panics: a request without a value, or one that breaks the ABCI
    /// contract (a block for the wrong height, Commit with nothing finalized), gets an Exception response.
    pub fn handle(&self, req: Request) -> Response {
        let value = match req.value {
            None => exception("request has no value"),
            Some(v) => match self.dispatch(v) {
                Ok(v) => v,
                Err(e) => {
                    warn!(error = %e, "ABCI request failed");
                    exception(&e.to_string())
                }
            },
        };
        Response { value: Some(value) }
    }

    /// [`LodeApp::handle`] for a request whose txs the caller has already hashed (`tx_hashes[i]` is the
    /// SHA-256 of `txs[i]`): ProcessProposal and FinalizeBlock look their txs up in the decoded-tx cache by
    /// these instead of hashing each tx again. Consensus in the same process hands them over; hashes of
    /// another length than the txs are ignored.
    pub fn handle_with_tx_hashes(&self, req: Request, tx_hashes: &[[u8; 32]]) -> Response {
        use request::Value as Rq;
        use response::Value as Rs;
        let value = match req.value {
            Some(Rq::ProcessProposal(r)) => {
                Rs::ProcessProposal(self.process_proposal_hashed(r, Some(tx_hashes)))
            }
            Some(Rq::FinalizeBlock(r)) => {
                match self.try_finalize_block_hashed(r, Some(tx_hashes)) {
                    Ok(r) => Rs::FinalizeBlock(r),
                    Err(e) => {
                        warn!(error = %e, "ABCI request failed");
                        exception(&e.to_string())
                    }
                }
            }
            other => return self.handle(Request { value: other }),
        };
        Response { value: Some(value) }
    }

    fn dispatch(&self, v: request::Value) -> Result<response::Value, StateError> {
        use request::Value as Rq;
        use response::Value as Rs;
        Ok(match v {
            Rq::Echo(r) => Rs::Echo(tendermint_proto::v0_38::abci::ResponseEcho { message: r.message }),
            Rq::Flush(_) => Rs::Flush(Default::default()),
            Rq::Info(r) => Rs::Info(self.info(r)),
            Rq::InitChain(r) => Rs::InitChain(self.try_init_chain(r)?),
            Rq::Query(r) => Rs::Query(self.query(r)),
            Rq::CheckTx(r) => Rs::CheckTx(self.check_tx(r)),
            Rq::Commit(_) => Rs::Commit(self.try_commit()?),
            Rq::ListSnapshots(_) => Rs::ListSnapshots(Default::default()),
            Rq::OfferSnapshot(_) => Rs::OfferSnapshot(Default::default()),
            Rq::LoadSnapshotChunk(_) => Rs::LoadSnapshotChunk(Default::default()),
            Rq::ApplySnapshotChunk(_) => Rs::ApplySnapshotChunk(Default::default()),
            Rq::PrepareProposal(r) => Rs::PrepareProposal(self.prepare_proposal(r)),
            Rq::ProcessProposal(r) => Rs::ProcessProposal(self.process_proposal(r)),
            Rq::ExtendVote(_) => Rs::ExtendVote(Default::default()),
            Rq::VerifyVoteExtension(_) => Rs::VerifyVoteExtension(
                tendermint_proto::v0_38::abci::ResponseVerifyVoteExtension {
                    status: tendermint_proto::v0_38::abci::response_verify_vote_extension::VerifyStatus::Accept
                        as i32,
                },
            ),
            Rq::FinalizeBlock(r) => Rs::FinalizeBlock(self.try_finalize_block(r)?),
        })
    }

    /// ABCI Info: the last committed height and app hash.
    #[instrument(skip_all)]
    pub fn info(&self, _req: RequestInfo) -> ResponseInfo {
        let c = self.committed();
        let (height, app_hash) = match &c.record {
            // Right after genesis the last block height is initial_height - 1, as CometBFT expects.
            Some(r) => (r.height, Bytes::copy_from_slice(&r.app_hash)),
            None => (0, Bytes::new()),
        };
        ResponseInfo {
            data: APP_NAME.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            app_version: APP_VERSION,
            last_block_height: height as i64,
            last_block_app_hash: app_hash,
        }
    }

    /// ABCI InitChain: writes the genesis state (as the height before the first block) and returns its
    /// app hash. Idempotent: CometBFT calls it again if it restarts before the first block.
    #[instrument(skip_all, fields(chain_id = %req.chain_id))]
    pub fn try_init_chain(&self, req: RequestInitChain) -> Result<ResponseInitChain, StateError> {
        let _consensus = lock(&self.inner.consensus);
        if req.chain_id.is_empty() {
            return Err(StateError::Genesis("chain_id is empty".into()));
        }
        let app_state = genesis::parse(&req.app_state_bytes)?;
        let initial_height = u64::try_from(req.initial_height.max(1))
            .map_err(|_| StateError::Genesis("initial_height".into()))?;
        let validators = parse_validators(&req.validators)?;
        let writes = genesis::build(&app_state, &validators)?;
        let (root, tree) = self.inner.store.compute_root(&writes, 0)?;

        let record = CommitRecord {
            chain_id: req.chain_id.clone(),
            initial_height,
            // initial_height >= 1.
            height: initial_height.saturating_sub(1),
            app_hash: root.0,
        };
        let existing = self.committed().record;
        match existing {
            Some(r) if r.height == record.height && r == record => {
                info!("genesis already stored; InitChain is a no-op");
            }
            Some(r) => {
                return Err(StateError::Protocol(format!(
                    "InitChain on a store that already holds chain {} at height {} (app hash {})",
                    r.chain_id,
                    r.height,
                    hex::encode(r.app_hash)
                )))
            }
            None => {
                self.inner.store.commit(CommitBatch {
                    record: record.clone(),
                    writes,
                    tree,
                    block: None,
                    tx_hashes: Vec::new(),
                    tx_ok: Vec::new(),
                    tx_accounts: Vec::new(),
                })?;
                let mut c = self
                    .inner
                    .committed
                    .write()
                    .unwrap_or_else(|e| e.into_inner());
                *c = Committed {
                    record: Some(record.clone()),
                    params: app_state.params.clone(),
                };
                info!(accounts = app_state.balances.len(), validators = validators.len(), app_hash = %hex::encode(root.0), "genesis committed");
            }
        }
        Ok(ResponseInitChain {
            consensus_params: None,
            validators: Vec::new(),
            app_hash: Bytes::copy_from_slice(&root.0),
        })
    }

    /// Verifies the signatures of txs about to be checked one by one (a batch gossiped by a peer) as one batch,
    /// so each following CheckTx finds its verdict in the signature cache instead of verifying alone. Changes
    /// no state and decides nothing: a tx that fails here is checked, and refused, by its own CheckTx.
    /// `hashes[i]` is `tx_hash(&txs[i])`, computed once by the caller.
    pub fn preverify_hashed(&self, txs: &[Bytes], hashes: Vec<[u8; 32]>) {
        let c = self.committed();
        let Some(record) = c.record else { return };
        let _ = self.inner.checker.check_many_hashed(
            txs,
            hashes,
            &record.chain_id,
            &c.params,
            Remember::Yes,
        );
    }

    /// The stateless half of CheckTx: decodes the tx, runs its stateless checks (size, canonical encoding,
    /// fields) and verifies its signature, remembering both, so the [`LodeApp::check_tx`] that follows finds
    /// them cached. Reads no state and takes no lock of the mempool's view: a mempool runs it before taking
    /// its own lock, so signature checks of concurrent admissions run in parallel and a flood of badly
    /// signed txs never holds the lock. `Err` is the CheckTx answer refusing the tx. `hash` is
    /// `tx_hash(tx)`, computed once by the caller.
    pub fn check_tx_stateless_hashed(
        &self,
        tx: &[u8],
        hash: [u8; 32],
    ) -> Result<Checked, Box<ResponseCheckTx>> {
        // Read before the parameters the check uses (see `TxChecker::generation`).
        let generation = self.inner.checker.generation();
        let c = self.committed();
        let Some(record) = c.record else {
            return Err(Box::new(check_response(
                Err(TxError::Internal("chain not initialised".into())),
                0,
            )));
        };
        self.inner
            .checker
            .check_one_hashed(tx, hash, &record.chain_id, &c.params)
            .map(|tx| Checked { tx, generation })
            .map_err(|e| Box::new(check_response(Err(e), 0)))
    }

    /// ABCI CheckTx (new and recheck): the whole tx runs against the mempool's view of state, which
    /// starts from the last commit and accumulates admitted txs until the next Commit resets it.
    #[instrument(skip_all)]
    pub fn check_tx(&self, req: RequestCheckTx) -> ResponseCheckTx {
        let hash = crate::tx::tx_hash(&req.tx);
        self.check_tx_hashed(req, hash)
    }

    /// [`LodeApp::check_tx`] with the tx's hash already computed (`hash` is `tx_hash(&req.tx)`): a mempool
    /// hashes a tx once on arrival and rechecks it after every block with the same hash.
    pub fn check_tx_hashed(&self, req: RequestCheckTx, hash: [u8; 32]) -> ResponseCheckTx {
        self.check_tx_known(req, hash, None)
    }

    /// [`LodeApp::check_tx_hashed`] of a tx whose stateless half already ran here
    /// ([`LodeApp::check_tx_stateless_hashed`]): while the parameters it ran under are still in force, the tx
    /// is neither looked up in the decoded-tx cache nor its signature in the signature cache again. A
    /// mempool keeps each pending tx's [`Checked`] for its admission and every recheck.
    pub fn check_tx_known(
        &self,
        req: RequestCheckTx,
        hash: [u8; 32],
        known: Option<&Checked>,
    ) -> ResponseCheckTx {
        let generation = self.inner.checker.generation();
        let c = self.committed();
        let Some(record) = c.record else {
            return check_response(Err(TxError::Internal("chain not initialised".into())), 0);
        };
        let tx = match known.filter(|k| k.generation == generation && k.tx.hash == hash) {
            Some(k) => k.tx.clone(),
            None => match self.inner.checker.check_one_hashed(
                &req.tx,
                hash,
                &record.chain_id,
                &c.params,
            ) {
                Ok(tx) => tx,
                Err(e) => return check_response(Err(e), 0),
            },
        };
        let mut mempool = lock(&self.inner.mempool);
        let mut view = Overlay::with_writes(&self.inner.store, std::mem::take(&mut *mempool));
        let mut scratch = Overlay::new(&view);
        let ctx = BlockCtx::pending(record.next_height(), &record.chain_id, &c.params);
        // A panic in a tx's execution is a bug, but it must not cost the view every pending tx's effects
        // (taken out of the lock above): it is refused as internal and the view is put back as it was.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            #[cfg(test)]
            if tests::PANIC_IN_CHECK.with(|p| p.take()) {
                panic!("injected by a test");
            }
            execute_tx(&mut scratch, &tx, ctx)
        }));
        let result = match result {
            Ok(Ok(out)) => {
                let w = scratch.into_writes();
                view.merge(w);
                Ok(out.gas_used)
            }
            Ok(Err(f)) => Err(f.error),
            Err(_) => {
                error!(hash = %hex::encode(hash), "CheckTx panicked executing a tx; refused, view kept");
                Err(TxError::Internal("the tx's execution panicked".into()))
            }
        };
        *mempool = view.into_writes();
        let gas = tx.gas(&c.params).unwrap_or(0);
        check_response(result, gas)
    }

    /// Test-only: the account's nonce in CheckTx's view, after the txs CheckTx has admitted from it since the
    /// last commit (the committed nonce when none). Clients get the node's `Mempool::pending_nonce`, which
    /// counts the pool: an evicted tx's effects stay in this view until the next commit.
    #[cfg(any(test, feature = "test-utils"))]
    pub fn pending_nonce(&self, address: &crate::address::Address) -> Result<u64, StoreError> {
        let mut mempool = lock(&self.inner.mempool);
        let view = Overlay::with_writes(&self.inner.store, std::mem::take(&mut *mempool));
        let account = modules::bank::account(&view, address);
        *mempool = view.into_writes();
        account.map(|a| a.nonce)
    }

    /// Runs a tx against the last committed state in a throwaway overlay, as CheckTx would run it on a fresh
    /// mempool view: decoding, stateless checks, signatures, then execution. Writes nothing and remembers
    /// nothing (neither the state changes nor the tx in the decode or signature caches), so balances, nonces
    /// and the mempool's view are as they were. Holds the mempool lock while it executes, which Commit also
    /// holds while it writes, so the tx sees one committed height, never a half-written one.
    #[instrument(skip_all)]
    pub fn simulate(&self, raw: &[u8]) -> Simulation {
        let c = self.committed();
        let Some(record) = c.record else {
            return Simulation {
                height: 0,
                result: exec_result(Err((&TxError::Internal("chain not initialised".into()), 0))),
                gas: 0,
                min_fee: 0,
            };
        };
        let fail = |e: &TxError, gas: u64, min_fee: u128| Simulation {
            height: record.height,
            result: exec_result(Err((e, 0))),
            gas,
            min_fee,
        };
        let tx = match Tx::check_stateless_hashed(
            raw,
            crate::tx::tx_hash(raw),
            &record.chain_id,
            &c.params,
        ) {
            Ok(tx) => tx,
            Err(e) => return fail(&e, 0, 0),
        };
        let (gas, min_fee) = match tx.min_fee(&c.params) {
            Ok(g) => g,
            Err(e) => return fail(&e, 0, 0),
        };
        if !crate::tx::signatures_verify(&tx) {
            return fail(&TxError::BadSignature, gas, min_fee);
        }
        let ctx = BlockCtx::pending(record.next_height(), &record.chain_id, &c.params);
        let _mempool = lock(&self.inner.mempool);
        let mut scratch = Overlay::new(&self.inner.store);
        let result = match execute_tx(&mut scratch, &tx, ctx) {
            Ok(out) => exec_result(Ok((out.events, out.gas_used))),
            Err(f) => exec_result(Err((&f.error, f.gas_used))),
        };
        // `scratch` is dropped here: nothing it wrote reaches the store.
        Simulation {
            height: record.height,
            result,
            gas,
            min_fee,
        }
    }

    /// ABCI PrepareProposal: keeps the mempool's txs that are valid in order on top of the last commit,
    /// up to `max_tx_bytes` and the block size parameter.
    #[instrument(skip_all, fields(height = req.height, txs = req.txs.len()))]
    pub fn prepare_proposal(&self, req: RequestPrepareProposal) -> ResponsePrepareProposal {
        let c = self.committed();
        let Some(record) = c.record else {
            return ResponsePrepareProposal { txs: Vec::new() };
        };
        let limit = (req.max_tx_bytes.max(0) as u64).min(c.params.max_block_bytes);
        let checked =
            self.inner
                .checker
                .check_many(&req.txs, &record.chain_id, &c.params, Remember::Yes);
        let mut view = Overlay::new(&self.inner.store);
        let ctx = BlockCtx {
            time: req.time.as_ref().map(block_time).unwrap_or_default(),
            ..BlockCtx::pending(
                u64::try_from(req.height).unwrap_or(record.next_height()),
                &record.chain_id,
                &c.params,
            )
        };
        let mut out = Vec::new();
        let mut total: u64 = 0;
        for (raw, checked) in req.txs.into_iter().zip(checked) {
            let Ok(tx) = checked else { continue };
            let Some(with_tx) = total.checked_add(raw.len() as u64).filter(|&t| t <= limit) else {
                continue;
            };
            let mut scratch = Overlay::new(&view);
            if execute_tx(&mut scratch, &tx, ctx).is_ok() {
                let w = scratch.into_writes();
                view.merge(w);
                total = with_tx;
                out.push(raw);
            }
        }
        debug!(kept = out.len(), bytes = total, "prepared proposal");
        ResponsePrepareProposal { txs: out }
    }

    /// ABCI ProcessProposal: rejects a block that is over the size limit or holds a tx that does not
    /// decode, fails a stateless check, or is badly signed.
    pub fn process_proposal(&self, req: RequestProcessProposal) -> ResponseProcessProposal {
        self.process_proposal_hashed(req, None)
    }

    /// [`LodeApp::process_proposal`] with the txs' hashes when the caller has them (see
    /// [`LodeApp::handle_with_tx_hashes`]).
    #[instrument(skip_all, fields(height = req.height, txs = req.txs.len()))]
    fn process_proposal_hashed(
        &self,
        req: RequestProcessProposal,
        tx_hashes: Option<&[[u8; 32]]>,
    ) -> ResponseProcessProposal {
        let reject = |why: String| {
            warn!(reason = %why, "rejecting proposal");
            ResponseProcessProposal {
                status: ProposalStatus::Reject as i32,
            }
        };
        let c = self.committed();
        let Some(record) = c.record else {
            return reject("chain not initialised".into());
        };
        let total: u64 = req.txs.iter().map(|t| t.len() as u64).sum();
        if total > c.params.max_block_bytes {
            return reject(format!(
                "block txs are {total} bytes, over {}",
                c.params.max_block_bytes
            ));
        }
        for (i, r) in self
            .inner
            .checker
            .check_many_hashed(
                &req.txs,
                crate::tx::checker::hashes_of(&req.txs, tx_hashes),
                &record.chain_id,
                &c.params,
                Remember::Yes,
            )
            .iter()
            .enumerate()
        {
            if let Err(e) = r {
                return reject(format!("tx {i}: {}", e.log()));
            }
        }
        ResponseProcessProposal {
            status: ProposalStatus::Accept as i32,
        }
    }

    /// ABCI FinalizeBlock: executes the block's txs in order and computes the new app hash. Writes nothing
    /// durable: the effect waits in memory for Commit.
    pub fn try_finalize_block(
        &self,
        req: RequestFinalizeBlock,
    ) -> Result<ResponseFinalizeBlock, StateError> {
        self.try_finalize_block_hashed(req, None)
    }

    /// [`LodeApp::try_finalize_block`] with the txs' hashes when the caller has them (see
    /// [`LodeApp::handle_with_tx_hashes`]).
    #[instrument(skip_all, fields(height = req.height, txs = req.txs.len()))]
    fn try_finalize_block_hashed(
        &self,
        req: RequestFinalizeBlock,
        given_hashes: Option<&[[u8; 32]]>,
    ) -> Result<ResponseFinalizeBlock, StateError> {
        let mut consensus = lock(&self.inner.consensus);
        let c = self.committed();
        let record = c
            .record
            .ok_or_else(|| StateError::Protocol("FinalizeBlock before InitChain".into()))?;
        let height = u64::try_from(req.height)
            .map_err(|_| StateError::Protocol("negative height".into()))?;
        if record.height.checked_add(1) != Some(height) {
            return Err(StateError::Protocol(format!(
                "FinalizeBlock for height {height}, expected {}",
                record.next_height()
            )));
        }
        // A second FinalizeBlock for the same height (the engine retrying) replaces the first.
        consensus.pending = None;
        let meter = modules::compute::verdict::BlockMeter::start();

        let mut hash = [0u8; 32];
        if req.hash.len() == 32 {
            hash.copy_from_slice(&req.hash);
        }
        let ctx = BlockCtx {
            height,
            time: req.time.as_ref().map(block_time).unwrap_or_default(),
            hash,
            params: &c.params,
            chain_id: &record.chain_id,
        };
        let base = Prefetched::new(&self.inner.store);
        let mut block = Overlay::new(&base);
        #[cfg(any(test, feature = "test-utils"))]
        block.merge(std::mem::take(&mut *lock(&self.inner.injected)));
        let mut tx_results = Vec::with_capacity(req.txs.len());
        let mut tx_hashes: Vec<[u8; 32]> = Vec::with_capacity(req.txs.len());
        let mut tx_accounts: Vec<Vec<[u8; 20]>> = Vec::with_capacity(req.txs.len());
        let chunk = pipeline_chunk(req.txs.len());
        let ahead = |checked: &[Result<Arc<Tx>, TxError>]| base.fetch(accounts_read(checked));
        self.inner.checker.check_pipelined(
            &req.txs,
            given_hashes,
            &record.chain_id,
            &c.params,
            chunk,
            &ahead,
            |raw, checked| {
                tx_hashes.push(match &checked {
                    Ok(tx) => tx.hash,
                    Err(_) => crate::tx::tx_hash(raw),
                });
                let mut accounts = Vec::new();
                let result = match checked {
                    Err(e) => exec_result(Err((&e, 0))),
                    Ok(tx) => match execute_tx(&mut block, &tx, ctx) {
                        Ok(out) => {
                            accounts = touched_accounts(&tx, &out.events);
                            exec_result(Ok((out.events, out.gas_used)))
                        }
                        Err(f) => {
                            accounts.push(tx.auth.signer.0);
                            if let TxError::Internal(msg) = f.error {
                                return Err(StateError::Store(StoreError::Jmt(msg)));
                            }
                            exec_result(Err((&f.error, f.gas_used)))
                        }
                    },
                };
                tx_results.push(result);
                tx_accounts.push(accounts);
                Ok(())
            },
        )?;
        // Liveness first (the previous block's signers, as the block carries them), then every module's
        // end of block, then the consensus set that the resulting stake gives.
        let mut end_events = Vec::new();
        modules::staking::liveness::record_commit(
            &mut block,
            height,
            &commit_votes(req.decided_last_commit.as_ref()),
            &c.params.staking,
            &mut end_events,
        )
        .map_err(|e| StateError::EndBlock(e.log()))?;
        end_events.extend(
            modules::end_block(&mut block, ctx).map_err(|e| StateError::EndBlock(e.log()))?,
        );
        let validator_updates = modules::staking::set::end_block_updates(&mut block, &c.params)?
            .into_iter()
            .map(|(key, power)| abci_validator_update(&key, power))
            .collect();
        if self.inner.options.check_invariants {
            if let Err(e) = modules::check_invariants(&block, height) {
                error!(error = %e, "invariant check failed: not finalizing this block");
                return Err(e);
            }
        }
        let writes = block.into_writes();
        let version = record
            .version_of(height)
            .ok_or_else(|| StateError::Protocol("height below initial height".into()))?;
        let mut response = ResponseFinalizeBlock {
            events: end_events.into_iter().map(abci_event).collect(),
            tx_results,
            validator_updates,
            consensus_param_updates: None,
            app_hash: Bytes::new(),
        };
        // The tree update runs on one core; encode the block record on the other.
        let (root, block_record) = rayon::join(
            || self.inner.store.compute_root(&writes, version),
            || encode_block(&req.txs, &response),
        );
        let (root, tree) = root?;
        response.app_hash = Bytes::copy_from_slice(&root.0);
        let block_record = block_record?.finish(&response.app_hash)?;
        let verification = u64::try_from(meter.finish().as_nanos()).unwrap_or(u64::MAX);
        self.inner
            .last_verification_nanos
            .store(verification, Ordering::Relaxed);
        consensus.pending = Some(PendingBlock {
            batch: CommitBatch {
                record: CommitRecord {
                    height,
                    app_hash: root.0,
                    ..record
                },
                writes,
                tree,
                block: Some(block_record),
                tx_hashes,
                tx_ok: response.tx_results.iter().map(|r| r.code == 0).collect(),
                tx_accounts,
            },
        });
        Ok(response)
    }

    /// ABCI Commit: persists the finalized block in one synced write and resets the mempool view.
    #[instrument(skip_all)]
    pub fn try_commit(&self) -> Result<ResponseCommit, StateError> {
        let mut consensus = lock(&self.inner.consensus);
        let pending = consensus
            .pending
            .take()
            .ok_or_else(|| StateError::Protocol("Commit without a finalized block".into()))?;
        let record = pending.batch.record.clone();
        let mut mempool = lock(&self.inner.mempool);
        self.inner.store.commit(pending.batch)?;
        let params = params::load(&self.inner.store)?;
        let mut committed = self
            .inner
            .committed
            .write()
            .unwrap_or_else(|e| e.into_inner());
        if committed.params != params {
            // Decoding depends on the parameters (size and multisig limits).
            self.inner.checker.parameters_changed();
        }
        *committed = Committed {
            record: Some(record.clone()),
            params,
        };
        drop(committed);
        mempool.clear();
        debug!(height = record.height, app_hash = %hex::encode(record.app_hash), "committed");
        Ok(ResponseCommit { retain_height: 0 })
    }

    /// ABCI Query: any path of [`crate::query`] (protobuf request in `data`, protobuf response in `value`) at
    /// `height` (0: the last commit). With `prove`, `proof_ops` holds one op per state entry the answer was
    /// built from, in key order: `ProofOp { type: "ics23:jmt-sha256", key: the state key, data: an encoded
    /// ics23 CommitmentProof }` against that height's app hash (docs/proofs.md).
    #[instrument(skip_all, fields(path = %req.path))]
    pub fn query(&self, req: RequestQuery) -> ResponseQuery {
        match self.query_answer(&query::QueryRequest {
            path: &req.path,
            data: &req.data,
            height: req.height,
            prove: req.prove,
        }) {
            Err((code, log)) => ResponseQuery {
                code,
                log,
                codespace: CODESPACE.into(),
                ..Default::default()
            },
            Ok(answer) => ResponseQuery {
                code: query_code::OK,
                proof_ops: req.prove.then(|| ProofOps {
                    ops: answer
                        .proofs
                        .into_iter()
                        .map(|p| ProofOp {
                            r#type: query::PROOF_OP_TYPE.into(),
                            key: p.key,
                            data: p.proof,
                        })
                        .collect(),
                }),
                value: Bytes::from(answer.value),
                height: i64::try_from(answer.height).unwrap_or(i64::MAX),
                codespace: CODESPACE.into(),
                ..Default::default()
            },
        }
    }

    /// A query with its app hash and proven entries ([`query::answer`], default limits): what the node's
    /// `QueryService.Query` serves.
    pub fn query_answer(
        &self,
        req: &query::QueryRequest<'_>,
    ) -> Result<query::QueryAnswer, query::QueryError> {
        query::answer(&self.inner.store, req, query::QueryLimits::default())
    }
}

/// Validators as given to InitChain: (ed25519 key, power).
fn parse_validators(v: &[ValidatorUpdate]) -> Result<Vec<([u8; 32], u64)>, StateError> {
    let mut out = Vec::with_capacity(v.len());
    for (i, u) in v.iter().enumerate() {
        let key = match u.pub_key.as_ref().and_then(|k| k.sum.as_ref()) {
            Some(public_key::Sum::Ed25519(b)) => {
                <[u8; 32]>::try_from(b.as_slice()).map_err(|_| {
                    StateError::Genesis(format!("validators[{i}]: key is not 32 bytes"))
                })?
            }
            _ => {
                return Err(StateError::Genesis(format!(
                    "validators[{i}]: not an ed25519 key"
                )))
            }
        };
        check_public_key(&key).map_err(|e| StateError::Genesis(format!("validators[{i}]: {e}")))?;
        let power = u64::try_from(u.power)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| {
                StateError::Genesis(format!("validators[{i}]: power must be positive"))
            })?;
        out.push((key, power));
    }
    Ok(out)
}

/// The previous block's commit as staking reads it: each listed validator's consensus address and whether
/// it signed (`BlockIdFlag::Commit`). Entries without a 20-byte address are skipped.
fn commit_votes(
    info: Option<&tendermint_proto::v0_38::abci::CommitInfo>,
) -> Vec<modules::staking::liveness::CommitVote> {
    use tendermint_proto::v0_38::types::BlockIdFlag;
    info.map(|i| i.votes.as_slice())
        .unwrap_or_default()
        .iter()
        .filter_map(|v| {
            let address = <[u8; 20]>::try_from(v.validator.as_ref()?.address.as_ref()).ok()?;
            Some(modules::staking::liveness::CommitVote {
                address,
                signed: v.block_id_flag == BlockIdFlag::Commit as i32,
            })
        })
        .collect()
}

/// An ABCI validator update: ed25519 key and power (powers are within `MAX_TOTAL_POWER`, so they fit i64).
fn abci_validator_update(key: &[u8; 32], power: u64) -> ValidatorUpdate {
    ValidatorUpdate {
        pub_key: Some(tendermint_proto::v0_38::crypto::PublicKey {
            sum: Some(public_key::Sum::Ed25519(key.to_vec())),
        }),
        power: i64::try_from(power).unwrap_or(i64::MAX),
    }
}

/// A block time as ABCI carries it (negative nanoseconds, which no valid timestamp has, count as zero).
/// The accounts a successful tx touched, for the account history: its signer and every account one of its
/// events names (recipients, buyers, sellers, providers, …), sorted and without duplicates. An event
/// attribute names an account when its whole value is a valid `lode1…` address.
fn touched_accounts(tx: &Tx, events: &[Event]) -> Vec<[u8; 20]> {
    let mut out = vec![tx.auth.signer.0];
    for e in events {
        for (_, v) in &e.attributes {
            if let Some(a) = v.address() {
                out.push(a.0);
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

fn block_time(t: &tendermint_proto::google::protobuf::Timestamp) -> BlockTime {
    BlockTime {
        seconds: t.seconds,
        nanos: u32::try_from(t.nanos).unwrap_or(0),
    }
}

fn exception(msg: &str) -> response::Value {
    response::Value::Exception(ResponseException {
        error: msg.to_string(),
    })
}

/// An event as ABCI carries it, moving the attribute values.
fn abci_event(e: Event) -> AbciEvent {
    AbciEvent {
        r#type: e.kind.to_string(),
        attributes: e
            .attributes
            .into_iter()
            .map(|(k, value)| EventAttribute {
                key: k.to_string(),
                value: value.render(),
                index: true,
            })
            .collect(),
    }
}

fn exec_result(r: Result<(Vec<Event>, u64), (&TxError, u64)>) -> ExecTxResult {
    match r {
        Ok((events, gas)) => ExecTxResult {
            code: 0,
            gas_used: gas as i64,
            gas_wanted: gas as i64,
            events: events.into_iter().map(abci_event).collect(),
            ..Default::default()
        },
        Err((e, gas)) => ExecTxResult {
            code: e.code(),
            log: e.log(),
            gas_used: gas as i64,
            codespace: CODESPACE.into(),
            ..Default::default()
        },
    }
}

fn check_response(r: Result<u64, TxError>, gas_wanted: u64) -> ResponseCheckTx {
    match r {
        Ok(gas) => ResponseCheckTx {
            code: 0,
            gas_wanted: gas as i64,
            gas_used: gas as i64,
            ..Default::default()
        },
        Err(e) => ResponseCheckTx {
            code: e.code(),
            log: e.log(),
            gas_wanted: gas_wanted as i64,
            codespace: CODESPACE.into(),
            ..Default::default()
        },
    }
}

impl tendermint_abci::Application for LodeApp {
    fn info(&self, r: RequestInfo) -> ResponseInfo {
        LodeApp::info(self, r)
    }
    fn init_chain(&self, r: RequestInitChain) -> ResponseInitChain {
        // The trait cannot return an error; `handle` (used by Lode's own server) reports it as an
        // Exception instead. Here an invalid genesis yields an empty app hash, which CometBFT rejects.
        self.try_init_chain(r).unwrap_or_else(|e| {
            warn!(error = %e, "InitChain failed");
            ResponseInitChain::default()
        })
    }
    fn query(&self, r: RequestQuery) -> ResponseQuery {
        LodeApp::query(self, r)
    }
    fn check_tx(&self, r: RequestCheckTx) -> ResponseCheckTx {
        LodeApp::check_tx(self, r)
    }
    fn commit(&self) -> ResponseCommit {
        self.try_commit().unwrap_or_else(|e| {
            warn!(error = %e, "Commit failed");
            ResponseCommit::default()
        })
    }
    fn prepare_proposal(&self, r: RequestPrepareProposal) -> ResponsePrepareProposal {
        LodeApp::prepare_proposal(self, r)
    }
    fn process_proposal(&self, r: RequestProcessProposal) -> ResponseProcessProposal {
        LodeApp::process_proposal(self, r)
    }
    fn finalize_block(&self, r: RequestFinalizeBlock) -> ResponseFinalizeBlock {
        self.try_finalize_block(r).unwrap_or_else(|e| {
            warn!(error = %e, "FinalizeBlock failed");
            ResponseFinalizeBlock::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_consensus::SigningKey;
    use tendermint_proto::v0_38::abci::CheckTxType;

    thread_local! {
        /// Set by a test: the next CheckTx on this thread panics inside the tx's execution.
        pub(super) static PANIC_IN_CHECK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    /// A CheckTx whose execution panics refuses the tx as internal and keeps the view of the txs admitted
    /// before it: the account's next nonce after them is still the one admitted.
    #[test]
    fn a_panic_in_check_tx_is_refused_and_keeps_the_pending_view() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = SigningKey::from([5u8; 32]);
        let app = LodeApp::initialised_for_tests(dir.path(), "c", &[&key]).expect("initialised");
        let me = crate::tx::address_of(&key);
        let to = crate::Address([3; 20]);
        let check = |nonce| {
            app.check_tx(RequestCheckTx {
                tx: Bytes::from(crate::tx::sign_send("c", &key, nonce, 10_000, &to, 1)),
                r#type: CheckTxType::New as i32,
            })
        };
        assert_eq!(check(0).code, 0);
        PANIC_IN_CHECK.with(|p| p.set(true));
        let panicked = check(1);
        assert_eq!(
            panicked.code,
            TxError::Internal(String::new()).code(),
            "{}",
            panicked.log
        );
        assert_eq!(app.pending_nonce(&me).expect("nonce"), 1);
        assert_eq!(check(1).code, 0, "nonce 0 is still pending in the view");
        assert_eq!(app.pending_nonce(&me).expect("nonce"), 2);
    }

    /// ProcessProposal and FinalizeBlock with the txs' hashes handed over ([`LodeApp::handle_with_tx_hashes`])
    /// answer as without them: the same verdicts, results and app hash, over more txs than one pipelined
    /// chunk (the hashes are sliced per chunk) with a badly signed tx and garbage among them. Hashes of
    /// another length are ignored.
    #[test]
    fn handing_over_the_txs_hashes_changes_no_answer() {
        use tendermint_proto::v0_38::abci::{request::Value as Rq, response::Value as Rs};
        let keys: Vec<SigningKey> = (1..=4u8).map(|i| SigningKey::from([i; 32])).collect();
        let funded: Vec<&SigningKey> = keys.iter().collect();
        let to = crate::address::Address([7; 20]);
        let mut txs: Vec<Bytes> = (0..300u64)
            .map(|i| {
                let key = &keys[(i % 4) as usize];
                Bytes::from(crate::tx::sign_send("c", key, i / 4, 10_000, &to, 1))
            })
            .collect();
        let mut forged = txs[10].to_vec();
        if let Some(last) = forged.last_mut() {
            *last ^= 1;
        }
        txs.push(Bytes::from(forged));
        txs.push(Bytes::from_static(b"garbage"));
        let hashes: Vec<[u8; 32]> = txs.iter().map(|t| crate::tx::tx_hash(t)).collect();
        let run = |given: Option<&[[u8; 32]]>| {
            let dir = tempfile::tempdir().expect("tempdir");
            let app =
                LodeApp::initialised_for_tests(dir.path(), "c", &funded).expect("initialised");
            let call = |v: Rq| {
                let req = Request { value: Some(v) };
                match given {
                    Some(h) => app.handle_with_tx_hashes(req, h),
                    None => app.handle(req),
                }
            };
            let processed = call(Rq::ProcessProposal(RequestProcessProposal {
                txs: txs.clone(),
                height: 1,
                ..Default::default()
            }));
            let finalized = call(Rq::FinalizeBlock(RequestFinalizeBlock {
                txs: txs.clone(),
                height: 1,
                ..Default::default()
            }));
            (processed, finalized)
        };
        let plain = run(None);
        let Some(Rs::FinalizeBlock(f)) = &plain.1.value else {
            panic!("FinalizeBlock answered {:?}", plain.1);
        };
        assert!(f.tx_results.iter().filter(|r| r.code == 0).count() >= 290);
        assert!(f.tx_results.iter().any(|r| r.code != 0));
        assert_eq!(run(Some(&hashes)), plain);
        assert_eq!(run(Some(&hashes[1..])), plain);
    }

    /// A `Checked` spares CheckTx the caches only while the parameters it was checked under are in force:
    /// one from before a parameter change is checked again. Shown with a badly signed tx wrapped as if
    /// checked (which the stateless half never hands out): taken at its word under the same generation,
    /// refused once the generation moved.
    #[test]
    fn a_checked_tx_is_checked_again_once_the_parameters_change() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = SigningKey::from([5u8; 32]);
        let app = LodeApp::initialised_for_tests(dir.path(), "c", &[&key]).expect("initialised");
        let to = crate::Address([3; 20]);
        let mut bad = crate::tx::sign_send("c", &key, 0, 10_000, &to, 1).to_vec();
        let good = Bytes::from(crate::tx::sign_send("c", &key, 1, 10_000, &to, 1));
        let last = bad.len() - 1;
        bad[last] ^= 1;
        let bad = Bytes::from(bad);
        let hash = crate::tx::tx_hash(&bad);
        let decoded = Tx::check_stateless_hashed(&bad, hash, "c", &Params::default())
            .expect("decodes; only its signature is wrong");
        let req = || RequestCheckTx {
            tx: bad.clone(),
            r#type: CheckTxType::New as i32,
        };
        let as_if_checked = Checked {
            tx: Arc::new(decoded),
            generation: app.inner.checker.generation(),
        };
        assert_eq!(
            app.check_tx_known(req(), hash, Some(&as_if_checked)).code,
            0
        );
        app.inner.checker.parameters_changed();
        assert_ne!(
            app.check_tx_known(req(), hash, Some(&as_if_checked)).code,
            0
        );
        // And the honest path: the stateless half's own `Checked` for a good tx.
        let good_hash = crate::tx::tx_hash(&good);
        let checked = app
            .check_tx_stateless_hashed(&good, good_hash)
            .expect("a good tx");
        let resp = app.check_tx_known(
            RequestCheckTx {
                tx: good.clone(),
                r#type: CheckTxType::New as i32,
            },
            good_hash,
            Some(&checked),
        );
        assert_eq!(resp.code, 0, "{}", resp.log);
    }
}
