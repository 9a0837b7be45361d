//! The provider's view of its node: queries (status, its provider record, its jobs) and signed txs sent under
//! one lock (one tx, or one pipelined run of txs at consecutive nonces, at a time), so the account's nonces
//! never race.

use ed25519_consensus::SigningKey;
use eyre::{bail, eyre, WrapErr};
use lode_proto::{market::v1 as mpb, query::v1 as qpb};
use lode_state::{tx::Msg, Params};
use tokio::sync::Mutex;
use tonic::transport::Channel;

use crate::keys::KeyFile;
use crate::services::grpc::pb::{
    self, market_query_service_client::MarketQueryServiceClient,
    params_service_client::ParamsServiceClient, query_service_client::QueryServiceClient,
    tx_service_client::TxServiceClient,
};

/// Jobs asked for per page when listing this provider's jobs.
const JOBS_PAGE: u32 = 500;
/// Pages read at most when listing this provider's jobs (500,000 jobs): a bound on a hostile node.
const MAX_JOB_PAGES: usize = 1_000;
/// The shared tx code "nonce already used" (`ERR_NONCE_REPLAYED`; the golden code list pins it).
const NONCE_REPLAYED: u32 = 7;

/// A tx the chain refused (in CheckTx or in its block).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} refused: code {code} ({codespace}) {log}")]
pub struct Refused {
    pub what: String,
    pub code: u32,
    pub codespace: String,
    pub log: String,
}

/// The node, signing as the provider's key.
#[derive(Debug)]
pub struct Chain {
    channel: Channel,
    pub chain_id: String,
    pub params: Params,
    pub key: KeyFile,
    signing: SigningKey,
    /// Held while a tx (or a pipelined run of txs) is signed, broadcast and committed: the account's txs in
    /// flight are only ever those of one holder.
    send_lock: Mutex<()>,
}

fn status_err(what: &str) -> impl Fn(tonic::Status) -> eyre::Report + '_ {
    move |s| eyre!("{what}: {:?}: {}", s.code(), s.message())
}

impl Chain {
    /// Connects to `node` and reads the chain id and parameters.
    pub async fn connect(node: &str, key: KeyFile) -> eyre::Result<Chain> {
        let channel = Channel::from_shared(node.to_owned())
            .map_err(|e| eyre!("invalid node URL {node:?}: {e}"))?
            .connect()
            .await
            .wrap_err_with(|| format!("cannot connect to {node}"))?;
        let status = QueryServiceClient::new(channel.clone())
            .status(pb::StatusRequest {})
            .await
            .map_err(status_err("status"))?
            .into_inner();
        let params = Self::read_params(&channel).await?;
        let signing = key.signing_key()?;
        Ok(Chain {
            channel,
            chain_id: status.chain_id,
            params,
            key,
            signing,
            send_lock: Mutex::new(()),
        })
    }

    async fn read_params(channel: &Channel) -> eyre::Result<Params> {
        let r = ParamsServiceClient::new(channel.clone())
            .params(qpb::ParamsRequest {
                module: String::new(),
            })
            .await
            .map_err(status_err("params"))?
            .into_inner();
        serde_json::from_str(&r.json).wrap_err("the node's parameters do not parse")
    }

    /// The gRPC channel (for the blob service and the event stream).
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// The provider's address.
    pub fn address(&self) -> &str {
        &self.key.address
    }

    /// The last committed height.
    pub async fn height(&self) -> eyre::Result<u64> {
        Ok(QueryServiceClient::new(self.channel.clone())
            .status(pb::StatusRequest {})
            .await
            .map_err(status_err("status"))?
            .into_inner()
            .latest_height)
    }

    /// This provider's record, or None when it is not registered.
    pub async fn provider(&self) -> eyre::Result<Option<mpb::Provider>> {
        match MarketQueryServiceClient::new(self.channel.clone())
            .provider(mpb::ProviderRequest {
                address: self.address().to_owned(),
            })
            .await
        {
            Ok(r) => Ok(r.into_inner().provider),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
            Err(s) => Err(status_err("provider query")(s)),
        }
    }

    /// One job, or None when the chain does not know it.
    pub async fn job(&self, id: &[u8; 32]) -> eyre::Result<Option<mpb::Job>> {
        match MarketQueryServiceClient::new(self.channel.clone())
            .job(mpb::JobRequest {
                job_id: id.to_vec(),
            })
            .await
        {
            Ok(r) => Ok(r.into_inner().job),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
            Err(s) => Err(status_err("job query")(s)),
        }
    }

    /// Every job the chain ever assigned to this provider, page by page.
    pub async fn my_jobs(&self) -> eyre::Result<Vec<mpb::Job>> {
        let mut q =
            MarketQueryServiceClient::new(self.channel.clone()).max_decoding_message_size(64 << 20);
        let mut out = Vec::new();
        let mut key = Vec::new();
        for _ in 0..MAX_JOB_PAGES {
            let r = q
                .jobs(mpb::JobsRequest {
                    provider: self.address().to_owned(),
                    pagination: Some(qpb::PageRequest {
                        key,
                        limit: JOBS_PAGE,
                    }),
                    ..Default::default()
                })
                .await
                .map_err(status_err("jobs query"))?
                .into_inner();
            out.extend(r.jobs);
            match r.pagination {
                Some(p) if !p.next_key.is_empty() => key = p.next_key,
                _ => return Ok(out),
            }
        }
        bail!("more than {MAX_JOB_PAGES} pages of jobs for this provider")
    }

    /// Signs `msgs` at the account's next nonce with the minimum fee and waits until a block commits them.
    /// Returns the height; a tx refused in CheckTx or failed in its block is a [`Refused`] error.
    pub async fn send(&self, what: &str, msgs: &[Msg]) -> eyre::Result<u64> {
        self.send_pipelined(what, &[msgs.to_vec()])
            .await?
            .into_iter()
            .next()
            .unwrap_or_else(|| Err(eyre!("{what}: nothing was sent")))
    }

    /// Sends one tx per entry of `txs`, at consecutive nonces, so that they can share a block: each is
    /// broadcast (CheckTx) in order, then each one admitted is waited for. Returns one result per tx sent, in
    /// order. Stops sending at the first tx CheckTx refuses (its error is then the last result): the txs after
    /// it would lack its nonce.
    ///
    /// The run is signed from the committed nonce, so a tx of ours still pending from an earlier run cut short
    /// (a failed wait, a restart) and signed again here has the same bytes, and is only waited for. When a
    /// pending tx of ours with other contents holds a nonce (refused with `ERR_NONCE_REPLAYED`), the rest of
    /// the run is signed again after the account's pending txs, once.
    pub async fn send_pipelined(
        &self,
        what: &str,
        txs: &[Vec<Msg>],
    ) -> eyre::Result<Vec<eyre::Result<u64>>> {
        let _one_at_a_time = self.send_lock.lock().await;
        let (mut nonce, _) = self.nonces().await?;
        let mut admitted = Vec::with_capacity(txs.len());
        let mut refused = None;
        let mut moved = false;
        let mut rest = txs;
        while !rest.is_empty() {
            let (took, err) = self.broadcast_run(what, nonce, rest).await?;
            rest = &rest[took.len()..];
            admitted.extend(took);
            match err {
                Some(e) if !moved && refused_with(&e, NONCE_REPLAYED) => {
                    moved = true;
                    nonce = self.nonces().await?.1;
                }
                e => {
                    refused = e;
                    break;
                }
            }
        }
        let mut out = Vec::with_capacity(admitted.len() + 1);
        for raw in admitted {
            // Already pending: the node only waits for its commit and reports its result.
            out.push(self.broadcast_and_wait(what, raw).await);
        }
        out.extend(refused.map(Err));
        Ok(out)
    }

    /// Signs `txs` from `nonce` on (all before any is sent: a tx that cannot be signed must not strand the
    /// ones before it) and broadcasts them in order until CheckTx refuses one: the txs admitted, and the
    /// refusal.
    async fn broadcast_run(
        &self,
        what: &str,
        nonce: u64,
        txs: &[Vec<Msg>],
    ) -> eyre::Result<(Vec<Vec<u8>>, Option<eyre::Report>)> {
        let signed = txs
            .iter()
            .enumerate()
            .map(|(i, msgs)| self.sign_at(nonce + i as u64, msgs))
            .collect::<eyre::Result<Vec<_>>>()?;
        let mut admitted = Vec::with_capacity(signed.len());
        for raw in signed {
            let r = TxServiceClient::new(self.channel.clone())
                .broadcast(pb::BroadcastRequest { tx: raw.clone() })
                .await;
            // Already pending (the same bytes: signing is deterministic): admitted, and waited for.
            let r = match r {
                Err(s) if s.code() == tonic::Code::AlreadyExists => Ok(None),
                r => r.map(|r| r.into_inner().check).map_err(status_err(what)),
            };
            match r {
                Ok(Some(check)) if check.code != 0 => {
                    let refused = Refused {
                        what: what.to_owned(),
                        code: check.code,
                        codespace: check.codespace,
                        log: check.log,
                    };
                    return Ok((admitted, Some(refused.into())));
                }
                Ok(_) => admitted.push(raw),
                Err(err) => return Ok((admitted, Some(err))),
            }
        }
        Ok((admitted, None))
    }

    /// Broadcasts `raw` (or, when it is already pending or committed, only waits for it) and waits until a
    /// block commits it: its height, or [`Refused`] with the code of CheckTx or of its execution.
    async fn broadcast_and_wait(&self, what: &str, raw: Vec<u8>) -> eyre::Result<u64> {
        let r = TxServiceClient::new(self.channel.clone())
            .broadcast_and_wait(pb::BroadcastAndWaitRequest {
                tx: raw,
                timeout_ms: 0,
            })
            .await
            .map_err(status_err(what))?
            .into_inner();
        for res in [r.check.as_ref(), r.result.as_ref()].into_iter().flatten() {
            if res.code != 0 {
                return Err(Refused {
                    what: what.to_owned(),
                    code: res.code,
                    codespace: res.codespace.clone(),
                    log: res.log.clone(),
                }
                .into());
            }
        }
        if r.height == 0 {
            bail!("{what}: not committed within the node's wait");
        }
        Ok(r.height)
    }

    /// The account's next nonce at the node's last commit, and after its txs pending at the node.
    async fn nonces(&self) -> eyre::Result<(u64, u64)> {
        let a = QueryServiceClient::new(self.channel.clone())
            .account(pb::AccountRequest {
                address: self.address().to_owned(),
            })
            .await
            .map_err(status_err("account"))?
            .into_inner();
        Ok((a.nonce, a.pending_nonce.max(a.nonce)))
    }

    /// The encoded, signed tx for `msgs` at `nonce` and the minimum fee, over `max_tx_bytes` an error: sized first with a 20-digit fee so the real tx never needs more.
    pub fn sign_at(&self, nonce: u64, msgs: &[Msg]) -> eyre::Result<Vec<u8>> {
        let sign =
            |fee| lode_state::tx::sign_msgs(&self.chain_id, &self.signing, nonce, fee, msgs, "");
        let sized = sign(u128::from(u64::MAX));
        let tx = lode_state::tx::Tx::check_stateless(&sized, &self.chain_id, &self.params)
            .map_err(|e| eyre!("invalid tx: {e}"))?;
        let (_, fee) = tx
            .min_fee(&self.params)
            .map_err(|e| eyre!("cannot size the fee: {e}"))?;
        Ok(sign(fee))
    }
}

/// Whether `e` is the chain refusing a tx with `code`.
pub fn refused_with(e: &eyre::Report, code: u32) -> bool {
    e.downcast_ref::<Refused>().is_some_and(|r| r.code == code)
}
