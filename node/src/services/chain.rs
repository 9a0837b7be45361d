//! Reading the chain by id: `TxService.GetTx` (a committed tx by hash, through the tx index written at
//! Commit), `TxService.Simulate` (a tx run against the last commit, nothing written) and
//! `BlockService.GetBlock` (a committed block from the consensus store, with its results from the block
//! store) and `AccountService.History` (the txs that touched an account, newest first, from the account
//! history index written at Commit). The conversions from stored types to the API's types live here too, for `EventService`.
//!
//! Every call takes one of the API's request slots and reads the store on a blocking thread.

use bytes::Bytes;
use lode_consensus::{BlockStore, DecidedBlock, Height};
use prost::Message;
use tendermint_proto::v0_38::abci::{Event as AbciEvent, ExecTxResult, ResponseFinalizeBlock};
use tonic::{Request, Response, Status};
use tracing::instrument;

use super::grpc::{exec_result, pb, NodeApi};
use super::mempool::tx_hash;
use pb::block_service_server::BlockService;

/// `AccountService.History`'s page size when the request names none, and the most it may ask for.
pub const HISTORY_DEFAULT_LIMIT: usize = 20;
pub const HISTORY_MAX_LIMIT: usize = 100;

/// A history page token: the (height, index) of the last entry returned, height (u64 BE) ‖ index (u32 BE).
fn encode_page_token((height, index): (u64, u32)) -> Vec<u8> {
    let mut t = height.to_be_bytes().to_vec();
    t.extend_from_slice(&index.to_be_bytes());
    t
}

fn decode_page_token(t: &[u8]) -> Option<(u64, u32)> {
    let (h, i) = t.split_first_chunk::<8>()?;
    let i: [u8; 4] = i.try_into().ok()?;
    Some((u64::from_be_bytes(*h), u32::from_be_bytes(i)))
}

/// An ABCI event as the API reports it.
pub(crate) fn event(e: &AbciEvent) -> pb::Event {
    pb::Event {
        r#type: e.r#type.clone(),
        attributes: e
            .attributes
            .iter()
            .map(|a| pb::EventAttribute {
                key: a.key.clone(),
                value: a.value.clone(),
            })
            .collect(),
    }
}

/// A block header as the API reports it.
pub(crate) fn header(b: &lode_consensus::Block) -> pb::BlockHeader {
    let h = b.header();
    pb::BlockHeader {
        chain_id: h.chain_id.clone(),
        height: h.height.0,
        time: Some(prost_types::Timestamp {
            seconds: h.time.seconds,
            nanos: i32::try_from(h.time.nanos).unwrap_or(0),
        }),
        proposer: h.proposer.0.to_vec(),
        last_block_id: h.last_block_id.map(|id| id.0.to_vec()).unwrap_or_default(),
        tx_root: h.tx_root.to_vec(),
        app_hash: h.app_hash.to_vec(),
    }
}

/// A committed tx as the API reports it (`raw` empty to leave the tx bytes out).
pub(crate) fn block_tx(hash: [u8; 32], index: usize, r: &ExecTxResult, raw: &[u8]) -> pb::BlockTx {
    pb::BlockTx {
        tx_hash: hash.to_vec(),
        index: u32::try_from(index).unwrap_or(u32::MAX),
        result: Some(exec_result(r)),
        events: r.events.iter().map(event).collect(),
        tx: raw.to_vec(),
    }
}

fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(e.to_string())
}

/// A committed block: the decided block (header, txs, certificate) and its FinalizeBlock results.
pub(crate) struct CommittedBlock {
    pub decided: DecidedBlock,
    pub results: ResponseFinalizeBlock,
}

impl NodeApi {
    /// The block committed at `height`, or `None` if there is none (yet). Blocking (store reads).
    pub(crate) fn committed_block(&self, height: u64) -> Result<Option<CommittedBlock>, Status> {
        let Some(decided) = self.blocks.get_decided(Height(height)).map_err(internal)? else {
            return Ok(None);
        };
        let Some(record) = self.app.store().block(height).map_err(internal)? else {
            return Ok(None);
        };
        let results = ResponseFinalizeBlock::decode(record.results.as_slice())
            .map_err(|e| Status::internal(format!("block {height} results: {e}")))?;
        Ok(Some(CommittedBlock { decided, results }))
    }

    /// The last committed height (0 before the first block).
    pub(crate) fn last_height(&self) -> u64 {
        self.app.last_commit().map_or(0, |r| r.height)
    }

    /// `TxService.GetTx`.
    pub(crate) async fn get_tx(&self, req: pb::GetTxRequest) -> Result<pb::GetTxResponse, Status> {
        let _slot = self.guards.request()?;
        let hash: [u8; 32] = req.hash.as_slice().try_into().map_err(|_| {
            Status::invalid_argument(format!(
                "a tx hash is 32 bytes (SHA-256 of the tx), got {}",
                req.hash.len()
            ))
        })?;
        let api = self.clone();
        tokio::task::spawn_blocking(move || {
            let (height, index) = api
                .app
                .store()
                .tx_location(&hash)
                .map_err(internal)?
                .ok_or_else(|| {
                    Status::not_found(format!("no committed tx {}", hex::encode_upper(hash)))
                })?;
            api.tx_at(hash, height, index, &mut None)
        })
        .await
        .map_err(internal)?
    }

    /// The committed tx `hash` at (`height`, `index`), as `GetTx` reports it; `block` caches the last block
    /// read (a history page often has several txs of one block).
    fn tx_at(
        &self,
        hash: [u8; 32],
        height: u64,
        index: u32,
        block: &mut Option<(u64, lode_state::store::BlockRecord, ResponseFinalizeBlock)>,
    ) -> Result<pb::GetTxResponse, Status> {
        if block.as_ref().is_none_or(|(h, _, _)| *h != height) {
            let record = self
                .app
                .store()
                .block(height)
                .map_err(internal)?
                .ok_or_else(|| {
                    Status::internal(format!("an index points at missing block {height}"))
                })?;
            let results = ResponseFinalizeBlock::decode(record.results.as_slice())
                .map_err(|e| Status::internal(format!("block {height} results: {e}")))?;
            *block = Some((height, record, results));
        }
        let Some((_, record, results)) = block.as_ref() else {
            return Err(Status::internal("block cache"));
        };
        let i = index as usize;
        let (Some(raw), Some(r)) = (record.txs.get(i), results.tx_results.get(i)) else {
            return Err(Status::internal(format!(
                "an index points at tx {index} of block {height}, which has {}",
                record.txs.len()
            )));
        };
        Ok(pb::GetTxResponse {
            tx_hash: hash.to_vec(),
            height,
            index,
            result: Some(exec_result(r)),
            events: r.events.iter().map(event).collect(),
            tx: raw.clone(),
        })
    }

    /// `AccountService.History`.
    pub(crate) async fn history(
        &self,
        req: pb::HistoryRequest,
    ) -> Result<pb::HistoryResponse, Status> {
        let _slot = self.guards.request()?;
        let address: lode_state::address::Address = req
            .address
            .parse()
            .map_err(|e| Status::invalid_argument(format!("address {:?}: {e}", req.address)))?;
        let limit = match req.limit {
            0 => HISTORY_DEFAULT_LIMIT,
            n => (n as usize).min(HISTORY_MAX_LIMIT),
        };
        let before = match req.page_token.as_slice() {
            [] => None,
            t => Some(decode_page_token(t).ok_or_else(|| {
                Status::invalid_argument(format!(
                    "a page token is the 12 bytes of a previous response's next_page_token, got {}",
                    t.len()
                ))
            })?),
        };
        let api = self.clone();
        tokio::task::spawn_blocking(move || {
            let (entries, next) = api
                .app
                .store()
                .account_history(&address.0, before, limit)
                .map_err(internal)?;
            let mut block = None;
            let txs = entries
                .iter()
                .map(|e| api.tx_at(e.tx_hash, e.height, e.index, &mut block))
                .collect::<Result<_, _>>()?;
            Ok(pb::HistoryResponse {
                txs,
                next_page_token: next.map(encode_page_token).unwrap_or_default(),
            })
        })
        .await
        .map_err(internal)?
    }

    /// `TxService.Simulate`.
    pub(crate) async fn simulate(
        &self,
        req: pb::SimulateRequest,
    ) -> Result<pb::SimulateResponse, Status> {
        let _slot = self.guards.request()?;
        let max = self.mempool.max_tx_bytes();
        if req.tx.is_empty() || req.tx.len() > max {
            return Err(Status::invalid_argument(format!(
                "a tx is 1 to {max} bytes, got {}",
                req.tx.len()
            )));
        }
        let app = self.app.clone();
        let tx = Bytes::from(req.tx);
        let hash = tx_hash(&tx);
        let sim = tokio::task::spawn_blocking(move || app.simulate(&tx))
            .await
            .map_err(internal)?;
        Ok(pb::SimulateResponse {
            tx_hash: hash.to_vec(),
            height: sim.height,
            events: sim.result.events.iter().map(event).collect(),
            result: Some(exec_result(&sim.result)),
            gas: sim.gas,
            min_fee: sim.min_fee.to_string(),
        })
    }
}

#[tonic::async_trait]
impl pb::account_service_server::AccountService for NodeApi {
    #[instrument(skip_all)]
    async fn history(
        &self,
        request: Request<pb::HistoryRequest>,
    ) -> Result<Response<pb::HistoryResponse>, Status> {
        NodeApi::history(self, request.into_inner())
            .await
            .map(Response::new)
    }
}

#[tonic::async_trait]
impl BlockService for NodeApi {
    #[instrument(skip_all)]
    async fn get_block(
        &self,
        request: Request<pb::GetBlockRequest>,
    ) -> Result<Response<pb::GetBlockResponse>, Status> {
        let _slot = self.guards.request()?;
        let api = self.clone();
        let at = request.into_inner().at;
        let block = tokio::task::spawn_blocking(move || {
            let height = match at {
                Some(pb::get_block_request::At::Height(h)) => h,
                Some(pb::get_block_request::At::Latest(_)) | None => api.last_height(),
            };
            let block = api.committed_block(height)?.ok_or_else(|| {
                Status::not_found(format!("no committed block at height {height}"))
            })?;
            Ok::<_, Status>(block)
        })
        .await
        .map_err(internal)??;
        let CommittedBlock { decided, results } = block;
        let txs = decided.block.txs();
        if results.tx_results.len() != txs.len() {
            return Err(Status::internal(format!(
                "block {} has {} txs and {} results",
                decided.block.header().height.0,
                txs.len(),
                results.tx_results.len()
            )));
        }
        Ok(Response::new(pb::GetBlockResponse {
            block_id: decided.block.id().0.to_vec(),
            header: Some(header(&decided.block)),
            txs: txs
                .iter()
                .zip(&results.tx_results)
                .enumerate()
                .map(|(i, (raw, r))| block_tx(tx_hash(raw), i, r, raw))
                .collect(),
            events: results.events.iter().map(event).collect(),
            result_app_hash: results.app_hash.to_vec(),
            commit_round: decided.certificate.round.as_u32().unwrap_or(0),
            signers: decided
                .certificate
                .commit_signatures
                .iter()
                .map(|s| pb::CommitSigner {
                    address: s.address.0.to_vec(),
                    signature: s.signature.0.to_vec(),
                })
                .collect(),
        }))
    }
}
