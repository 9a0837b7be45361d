//! How consensus drives the application: one small trait over ABCI 2.0 (CometBFT v0.38) requests, and typed
//! helpers. The node implements it for `lode_state::LodeApp` (through `LodeApp::handle`); the same application
//! also serves `lode abci`, so it never knows which engine drives it.

use tendermint_proto::v0_38::abci::{
    request, response, Request, RequestCommit, RequestFinalizeBlock, RequestInfo, RequestInitChain,
    RequestPrepareProposal, RequestProcessProposal, Response, ResponseCommit,
    ResponseFinalizeBlock, ResponseInfo, ResponseInitChain, ResponsePrepareProposal,
    ResponseProcessProposal,
};

use crate::error::AbciError;

/// The application, as consensus sees it. Calls are synchronous and made one at a time, in ABCI order
/// (the bridge runs them on a blocking thread). An `Exception` response is an error.
pub trait Abci: Send + Sync + 'static {
    /// Handles one request.
    fn call(&self, req: Request) -> Result<Response, AbciError>;

    /// [`Abci::call`] for a ProcessProposal or FinalizeBlock whose txs consensus has already hashed:
    /// `tx_hashes[i]` is the SHA-256 of the request's `txs[i]`. An application in the same process may take
    /// them instead of hashing every tx again; one behind a socket cannot, and the default ignores them.
    fn call_with_tx_hashes(
        &self,
        req: Request,
        tx_hashes: &[[u8; 32]],
    ) -> Result<Response, AbciError> {
        let _ = tx_hashes;
        self.call(req)
    }
}

impl<T: Abci + ?Sized> Abci for std::sync::Arc<T> {
    fn call(&self, req: Request) -> Result<Response, AbciError> {
        (**self).call(req)
    }

    fn call_with_tx_hashes(
        &self,
        req: Request,
        tx_hashes: &[[u8; 32]],
    ) -> Result<Response, AbciError> {
        (**self).call_with_tx_hashes(req, tx_hashes)
    }
}

macro_rules! helper {
    ($(#[$doc:meta])* $name:ident, $req:ty, $resp:ty, $rv:ident, $pv:ident) => {
        $(#[$doc])*
        fn $name(&self, req: $req) -> Result<$resp, AbciError> {
            let resp = self.call(Request {
                value: Some(request::Value::$rv(req)),
            })?;
            match resp.value {
                Some(response::Value::$pv(r)) => Ok(r),
                Some(response::Value::Exception(e)) => Err(AbciError::Exception(e.error)),
                _ => Err(AbciError::UnexpectedResponse(stringify!($name))),
            }
        }
    };
    ($(#[$doc:meta])* hashed $name:ident, $req:ty, $resp:ty, $rv:ident, $pv:ident) => {
        $(#[$doc])*
        fn $name(&self, req: $req, tx_hashes: &[[u8; 32]]) -> Result<$resp, AbciError> {
            let resp = self.call_with_tx_hashes(
                Request {
                    value: Some(request::Value::$rv(req)),
                },
                tx_hashes,
            )?;
            match resp.value {
                Some(response::Value::$pv(r)) => Ok(r),
                Some(response::Value::Exception(e)) => Err(AbciError::Exception(e.error)),
                _ => Err(AbciError::UnexpectedResponse(stringify!($name))),
            }
        }
    };
}

/// Typed ABCI calls over [`Abci::call`].
pub trait AbciExt: Abci {
    helper!(
        /// `Info`: the last committed height and app hash.
        info, RequestInfo, ResponseInfo, Info, Info
    );
    helper!(
        /// `InitChain`: genesis.
        init_chain, RequestInitChain, ResponseInitChain, InitChain, InitChain
    );
    helper!(
        /// `PrepareProposal`: the proposer's tx list.
        prepare_proposal, RequestPrepareProposal, ResponsePrepareProposal, PrepareProposal, PrepareProposal
    );
    helper!(
        /// `ProcessProposal`: accept or reject a received block.
        process_proposal, RequestProcessProposal, ResponseProcessProposal, ProcessProposal, ProcessProposal
    );
    helper!(
        /// `FinalizeBlock`: execute a decided block.
        finalize_block, RequestFinalizeBlock, ResponseFinalizeBlock, FinalizeBlock, FinalizeBlock
    );
    helper!(
        /// [`AbciExt::process_proposal`] with the txs' hashes ([`Abci::call_with_tx_hashes`]).
        hashed process_proposal_hashed, RequestProcessProposal, ResponseProcessProposal, ProcessProposal,
        ProcessProposal
    );
    helper!(
        /// [`AbciExt::finalize_block`] with the txs' hashes ([`Abci::call_with_tx_hashes`]).
        hashed finalize_block_hashed, RequestFinalizeBlock, ResponseFinalizeBlock, FinalizeBlock,
        FinalizeBlock
    );

    /// `Commit`: persist the finalized block's state.
    fn commit(&self) -> Result<ResponseCommit, AbciError> {
        let resp = self.call(Request {
            value: Some(request::Value::Commit(RequestCommit {})),
        })?;
        match resp.value {
            Some(response::Value::Commit(r)) => Ok(r),
            Some(response::Value::Exception(e)) => Err(AbciError::Exception(e.error)),
            _ => Err(AbciError::UnexpectedResponse("commit")),
        }
    }
}

impl<T: Abci + ?Sized> AbciExt for T {}

/// The node's mempool, as consensus sees it.
pub trait Mempool: Send + Sync + 'static {
    /// Transactions to propose, in order, at most `max_bytes` in total.
    fn reap(&self, max_bytes: u64) -> Vec<bytes::Bytes>;
    /// Transactions (by SHA-256 hash) that a committed block contained; the mempool drops them and rechecks
    /// the rest.
    fn on_committed(&self, tx_hashes: &[[u8; 32]]);
    /// What is waiting to be proposed, read at once.
    fn level(&self) -> MempoolLevel;

    /// Of these pending txs (by SHA-256 hash), which this node's peers most likely hold already, so that a
    /// proposal may name them by hash instead of carrying them ([`crate::types::CompactBlock`]): txs
    /// received from peers, and the node's own once gossiped long enough ago. One verdict per hash; the
    /// default names none (every proposal carries its txs whole).
    fn shared(&self, hashes: &[[u8; 32]]) -> Vec<bool> {
        vec![false; hashes.len()]
    }

    /// The pending txs with these SHA-256 hashes: one entry per hash, `None` where the mempool holds none.
    /// An entry must be bytes whose SHA-256 is its hash: a resolved proposal keeps the names as its txs'
    /// hashes and checks its tx root against them.
    fn lookup(&self, hashes: &[[u8; 32]]) -> Vec<Option<bytes::Bytes>> {
        vec![None; hashes.len()]
    }

    /// Asks peers for the txs with these hashes (a proposal named them and [`Mempool::lookup`] found
    /// none), giving up after `timeout`. What comes back is unchecked: the caller hashes each tx and keeps
    /// only those it asked for. The default asks nobody.
    fn fetch(&self, hashes: Vec<[u8; 32]>, timeout: std::time::Duration) -> TxFetch {
        let _ = (hashes, timeout);
        Box::pin(std::future::ready(Vec::new()))
    }
}

/// What [`Mempool::fetch`] returns: the txs peers sent.
pub type TxFetch =
    std::pin::Pin<Box<dyn std::future::Future<Output = Vec<bytes::Bytes>> + Send + 'static>>;

/// What a mempool holds, as a proposer deciding whether to wait for more sees it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MempoolLevel {
    /// Transactions waiting to be proposed.
    pub txs: usize,
    /// Their bytes.
    pub bytes: u64,
    /// The mempool is at its own limit (txs or bytes): waiting would gain no tx.
    pub at_capacity: bool,
}

impl<T: Mempool + ?Sized> Mempool for std::sync::Arc<T> {
    fn reap(&self, max_bytes: u64) -> Vec<bytes::Bytes> {
        (**self).reap(max_bytes)
    }

    fn on_committed(&self, tx_hashes: &[[u8; 32]]) {
        (**self).on_committed(tx_hashes)
    }

    fn level(&self) -> MempoolLevel {
        (**self).level()
    }

    fn shared(&self, hashes: &[[u8; 32]]) -> Vec<bool> {
        (**self).shared(hashes)
    }

    fn lookup(&self, hashes: &[[u8; 32]]) -> Vec<Option<bytes::Bytes>> {
        (**self).lookup(hashes)
    }

    fn fetch(&self, hashes: Vec<[u8; 32]>, timeout: std::time::Duration) -> TxFetch {
        (**self).fetch(hashes, timeout)
    }
}
