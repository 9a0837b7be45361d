//! The in-process driver: the application as Malachite consensus drives it inside `lode start`. [`AppAbci`]
//! adapts `LodeApp` to `lode_consensus::Abci` and ties each Commit to the mempool update. (CometBFT drives the
//! same application over a socket instead: [`super::abci_socket`].)

use std::sync::Arc;

use lode_consensus::{Abci, AbciError};
use lode_state::LodeApp;
use tendermint_proto::v0_38::abci::{Request, Response};

use super::mempool::Mempool;

/// The application as consensus drives it. Commit runs under the mempool's lock together with the mempool
/// update for the block just finalized (CometBFT's order), so CheckTx never sees a half-updated view.
#[derive(Debug)]
pub struct AppAbci {
    app: LodeApp,
    mempool: Arc<Mempool>,
    /// Hashes of the txs of the block finalized and not yet committed.
    finalized: std::sync::Mutex<Vec<[u8; 32]>>,
}

impl AppAbci {
    /// The application and the mempool it updates at each Commit.
    pub fn new(app: LodeApp, mempool: Arc<Mempool>) -> Self {
        Self {
            app,
            mempool,
            finalized: std::sync::Mutex::new(Vec::new()),
        }
    }

    fn finalized(&self) -> std::sync::MutexGuard<'_, Vec<[u8; 32]>> {
        self.finalized.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One ABCI call, with the txs' hashes when consensus hands them over (ProcessProposal and
    /// FinalizeBlock): neither the app nor the mempool's commit hashes the block's txs again.
    fn call_hashed(
        &self,
        req: Request,
        tx_hashes: Option<&[[u8; 32]]>,
    ) -> Result<Response, AbciError> {
        use tendermint_proto::v0_38::abci::request::Value;
        let handle = |req: Request| match tx_hashes {
            Some(h) => self.app.handle_with_tx_hashes(req, h),
            None => self.app.handle(req),
        };
        match &req.value {
            Some(Value::FinalizeBlock(f)) => {
                *self.finalized() = lode_state::tx::checker::hashes_of(&f.txs, tx_hashes);
                let (txs, bytes) = (f.txs.len(), f.txs.iter().map(|t| t.len() as u64).sum());
                let time = f
                    .time
                    .as_ref()
                    .map(|t| i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos));
                let started = std::time::Instant::now();
                let resp = handle(req);
                let m = super::metrics::metrics();
                m.finalized(
                    started.elapsed(),
                    self.app.last_block_verification(),
                    txs,
                    bytes,
                    time,
                );
                if let Some(tendermint_proto::v0_38::abci::response::Value::FinalizeBlock(f)) =
                    &resp.value
                {
                    m.block_events(
                        f.events
                            .iter()
                            .chain(f.tx_results.iter().flat_map(|r| r.events.iter()))
                            .map(|e| e.r#type.as_str()),
                    );
                }
                Ok(resp)
            }
            Some(Value::Commit(_)) => {
                let committed = std::mem::take(&mut *self.finalized());
                Ok(self
                    .mempool
                    .commit_and_update(&committed, || self.app.handle(req)))
            }
            _ => Ok(handle(req)),
        }
    }
}

impl Abci for AppAbci {
    fn call(&self, req: Request) -> Result<Response, AbciError> {
        self.call_hashed(req, None)
    }

    fn call_with_tx_hashes(
        &self,
        req: Request,
        tx_hashes: &[[u8; 32]],
    ) -> Result<Response, AbciError> {
        self.call_hashed(req, Some(tx_hashes))
    }
}
