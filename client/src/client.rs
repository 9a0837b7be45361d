//! [`Client`]: the node's gRPC API with the steps every tool repeats done once — signing at the account's
//! next nonce with the chain's minimum fee, waiting for a commit, checking proofs against the block's app
//! hash, and resuming an event subscription the node ended.

use ed25519_consensus::SigningKey;
use tonic::transport::Channel;

use crate::{
    address::Address,
    pb::{
        self, account_service_client::AccountServiceClient,
        block_service_client::BlockServiceClient, event_service_client::EventServiceClient,
        params_service_client::ParamsServiceClient, query_service_client::QueryServiceClient,
        tx_service_client::TxServiceClient,
    },
    proof::{self, AccountState, ProofError},
    tx::{address_of, TxBuilder, TxMsg},
};

/// The largest response the client accepts (a block of the maximum size with its results).
pub const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid node URL {url:?}: {reason}")]
    Url { url: String, reason: String },
    #[error("cannot connect to {url}")]
    Connect {
        url: String,
        #[source]
        source: tonic::transport::Error,
    },
    /// The node answered with an error status.
    #[error("{what}: {:?}: {}", .status.code(), .status.message())]
    Status {
        what: &'static str,
        status: tonic::Status,
    },
    /// A tx CheckTx refused, or that failed in its block.
    #[error("tx {hash} {what} failed: code {code} ({codespace}) {log}")]
    TxFailed {
        hash: String,
        what: &'static str,
        code: u32,
        codespace: String,
        log: String,
    },
    #[error("tx {0} was not committed in time")]
    NotCommitted(String),
    #[error("proof: {0}")]
    Proof(#[from] ProofError),
    #[error("proof: app hash {got} is not block {height}'s {want}")]
    AppHash {
        height: u64,
        got: String,
        want: String,
    },
    #[error("the node's {what} is malformed: {reason}")]
    Malformed { what: &'static str, reason: String },
}

fn status(what: &'static str) -> impl FnOnce(tonic::Status) -> Error {
    move |status| Error::Status { what, status }
}

/// A connection to one node. Cheap to clone (the channel is shared).
#[derive(Debug, Clone)]
pub struct Client {
    channel: Channel,
}

/// A committed tx: its hash, height and events.
#[derive(Debug, Clone)]
pub struct Committed {
    pub hash: Vec<u8>,
    pub height: u64,
    pub events: Vec<pb::Event>,
}

/// A proven answer whose entries verified against its app hash.
#[derive(Debug, Clone)]
pub struct ProvedAnswer {
    pub response: pb::StateQueryResponse,
    /// The app hash was compared with the committed block's `result_app_hash` (false only at genesis, the
    /// height before the first block, which has no block).
    pub block_checked: bool,
}

/// An account read with a proof: its state, and the height and app hash it was proven against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvedAccount {
    pub account: AccountState,
    pub height: u64,
    pub app_hash: Vec<u8>,
}

impl<'a> From<&'a pb::ProvenEntry> for proof::Entry<'a> {
    fn from(e: &'a pb::ProvenEntry) -> Self {
        proof::Entry {
            key: &e.key,
            exists: e.exists,
            value: &e.value,
            proof: &e.proof,
        }
    }
}

impl Client {
    /// Connects to a node's gRPC URL (`http://127.0.0.1:9090`).
    pub async fn connect(url: &str) -> Result<Self, Error> {
        let channel = Channel::from_shared(url.to_owned())
            .map_err(|e| Error::Url {
                url: url.to_owned(),
                reason: e.to_string(),
            })?
            .connect()
            .await
            .map_err(|source| Error::Connect {
                url: url.to_owned(),
                source,
            })?;
        Ok(Client { channel })
    }

    /// A client over an existing channel.
    pub fn new(channel: Channel) -> Self {
        Client { channel }
    }

    /// The channel, for the service clients in [`pb`] this type does not wrap.
    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    /// `TxService`, accepting responses up to [`MAX_RESPONSE_BYTES`].
    pub fn txs(&self) -> TxServiceClient<Channel> {
        TxServiceClient::new(self.channel.clone()).max_decoding_message_size(MAX_RESPONSE_BYTES)
    }

    /// `QueryService`.
    pub fn queries(&self) -> QueryServiceClient<Channel> {
        QueryServiceClient::new(self.channel.clone()).max_decoding_message_size(MAX_RESPONSE_BYTES)
    }

    /// `BlockService`.
    pub fn blocks(&self) -> BlockServiceClient<Channel> {
        BlockServiceClient::new(self.channel.clone()).max_decoding_message_size(MAX_RESPONSE_BYTES)
    }

    /// `AccountService`.
    pub fn accounts(&self) -> AccountServiceClient<Channel> {
        AccountServiceClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_RESPONSE_BYTES)
    }

    /// `EventService`.
    pub fn events(&self) -> EventServiceClient<Channel> {
        EventServiceClient::new(self.channel.clone()).max_decoding_message_size(MAX_RESPONSE_BYTES)
    }

    /// The node's view of the chain (chain id, height, app hash, sync state).
    pub async fn status(&self) -> Result<pb::StatusResponse, Error> {
        Ok(self
            .queries()
            .status(pb::StatusRequest {})
            .await
            .map_err(status("status"))?
            .into_inner())
    }

    /// An account's balance and next nonce at the last commit (not proven: see [`Client::account_proved`]).
    pub async fn account(&self, address: &str) -> Result<pb::AccountResponse, Error> {
        Ok(self
            .queries()
            .account(pb::AccountRequest {
                address: address.to_owned(),
            })
            .await
            .map_err(status("account"))?
            .into_inner())
    }

    /// The chain's parameters as the JSON genesis uses.
    pub async fn params_json(&self) -> Result<String, Error> {
        Ok(ParamsServiceClient::new(self.channel.clone())
            .params(lode_proto::query::v1::ParamsRequest {
                module: String::new(),
            })
            .await
            .map_err(status("params"))?
            .into_inner()
            .json)
    }

    /// The chain id and `address`'s next nonce: what a tx from it must carry. The nonce follows the
    /// account's txs pending at this node, so txs signed one after the other need not wait for each commit.
    pub async fn chain_and_nonce(&self, address: &str) -> Result<(String, u64), Error> {
        let chain = self.status().await?.chain_id;
        let nonce = self.account(address).await?.pending_nonce;
        Ok((chain, nonce))
    }

    /// The smallest fee the chain accepts for the tx `build` makes (given a fee, it returns the signed
    /// tx): the node's `Simulate` answer for the tx with a 20-digit placeholder fee, so the real, shorter
    /// tx never needs more.
    pub async fn min_fee(&self, build: impl Fn(u128) -> Vec<u8>) -> Result<u128, Error> {
        let r = self.simulate(build(u128::from(u64::MAX))).await?;
        // No gas: the tx failed the checks that come before the fee is sized (encoding, chain id, keys).
        if let Some(res) = r.result.as_ref().filter(|res| r.gas == 0 && res.code != 0) {
            return Err(Error::TxFailed {
                hash: hex::encode_upper(&r.tx_hash),
                what: "check",
                code: res.code,
                codespace: res.codespace.clone(),
                log: res.log.clone(),
            });
        }
        r.min_fee.parse().map_err(|e| Error::Malformed {
            what: "minimum fee",
            reason: format!("{:?}: {e}", r.min_fee),
        })
    }

    /// Signs `msgs` with `key` at its account's next nonce for the chain the node serves, paying `fee` or,
    /// when None, the chain's minimum fee ([`Client::min_fee`]). Returns the tx and the fee it pays.
    pub async fn sign<M: TxMsg + Clone>(
        &self,
        key: &SigningKey,
        msgs: &[M],
        memo: &str,
        fee: Option<u128>,
    ) -> Result<(crate::tx::SignedTx, u128), Error> {
        let (chain, nonce) = self.chain_and_nonce(&address_of(key).to_string()).await?;
        let builder = TxBuilder::new(chain)
            .msgs(msgs.iter().cloned())
            .memo(memo)
            .nonce(nonce);
        let fee = match fee {
            Some(f) => f,
            None => {
                self.min_fee(|f| builder.clone().fee(f).sign(key).bytes)
                    .await?
            }
        };
        Ok((builder.fee(fee).sign(key), fee))
    }

    /// Runs CheckTx on the node and, if it passes, adds the tx to its mempool.
    pub async fn broadcast(&self, tx: Vec<u8>) -> Result<pb::BroadcastResponse, Error> {
        Ok(self
            .txs()
            .broadcast(pb::BroadcastRequest { tx })
            .await
            .map_err(status("broadcast"))?
            .into_inner())
    }

    /// Broadcasts and waits for the commit (`timeout_ms` 0: the node's default).
    pub async fn broadcast_and_wait(
        &self,
        tx: Vec<u8>,
        timeout_ms: u32,
    ) -> Result<pb::BroadcastAndWaitResponse, Error> {
        Ok(self
            .txs()
            .broadcast_and_wait(pb::BroadcastAndWaitRequest { tx, timeout_ms })
            .await
            .map_err(status("broadcast"))?
            .into_inner())
    }

    /// Broadcasts, waits for the commit and reads the committed tx's events; an error (with the chain's
    /// code and log) when CheckTx refuses it or it fails in its block.
    pub async fn send_and_wait(&self, tx: Vec<u8>) -> Result<Committed, Error> {
        let r = self.broadcast_and_wait(tx, 0).await?;
        let hash = hex::encode_upper(&r.tx_hash);
        for (what, res) in [("check", r.check.as_ref()), ("result", r.result.as_ref())] {
            if let Some(res) = res.filter(|res| res.code != 0) {
                return Err(Error::TxFailed {
                    hash,
                    what,
                    code: res.code,
                    codespace: res.codespace.clone(),
                    log: res.log.clone(),
                });
            }
        }
        if r.height == 0 {
            return Err(Error::NotCommitted(hash));
        }
        let tx = self.get_tx(r.tx_hash.clone()).await?;
        Ok(Committed {
            hash: r.tx_hash,
            height: r.height,
            events: tx.events,
        })
    }

    /// Many txs over one stream (`TxService.BroadcastStream`): each request carries a tx and the caller's
    /// id; the node answers `checked` for each, then `committed` or `expired` for each it admitted.
    pub async fn broadcast_stream(
        &self,
        txs: impl tonic::IntoStreamingRequest<Message = pb::BroadcastStreamRequest>,
    ) -> Result<tonic::Streaming<pb::BroadcastStreamEvent>, Error> {
        Ok(self
            .txs()
            .broadcast_stream(txs)
            .await
            .map_err(status("broadcast stream"))?
            .into_inner())
    }

    /// Runs a signed tx against the last commit without writing or broadcasting anything.
    pub async fn simulate(&self, tx: Vec<u8>) -> Result<pb::SimulateResponse, Error> {
        Ok(self
            .txs()
            .simulate(pb::SimulateRequest { tx })
            .await
            .map_err(status("simulate"))?
            .into_inner())
    }

    /// A committed tx by its hash.
    pub async fn get_tx(&self, hash: Vec<u8>) -> Result<pb::GetTxResponse, Error> {
        Ok(self
            .txs()
            .get_tx(pb::GetTxRequest { hash })
            .await
            .map_err(status("get tx"))?
            .into_inner())
    }

    /// A block by height, or the latest (None).
    pub async fn get_block(&self, height: Option<u64>) -> Result<pb::GetBlockResponse, Error> {
        let at = match height {
            Some(h) => pb::get_block_request::At::Height(h),
            None => pb::get_block_request::At::Latest(true),
        };
        Ok(self
            .blocks()
            .get_block(pb::GetBlockRequest { at: Some(at) })
            .await
            .map_err(status("get block"))?
            .into_inner())
    }

    /// A state query (`QueryService.Query`) at `height` (0: the last commit), with proofs when `prove`;
    /// nothing is verified here (see [`Client::query_proved`]).
    pub async fn query_state(
        &self,
        path: &str,
        data: Vec<u8>,
        height: u64,
        prove: bool,
    ) -> Result<pb::StateQueryResponse, Error> {
        Ok(self
            .queries()
            .query(pb::StateQueryRequest {
                path: path.to_owned(),
                data,
                height,
                prove,
            })
            .await
            .map_err(status("query"))?
            .into_inner())
    }

    /// A proven state query: every entry's proof verified against the answer's app hash, and that app hash
    /// compared with the one the chain committed to at that height (the block's `result_app_hash`). Whether
    /// the decoded `value` follows from the entries is not checked here (see the [`proof`] module).
    pub async fn query_proved(
        &self,
        path: &str,
        data: Vec<u8>,
        height: u64,
    ) -> Result<ProvedAnswer, Error> {
        let response = self.query_state(path, data, height, true).await?;
        proof::verify_entries(
            &response.app_hash,
            response.proofs.iter().map(proof::Entry::from),
        )?;
        let block_checked = match self
            .blocks()
            .get_block(pb::GetBlockRequest {
                at: Some(pb::get_block_request::At::Height(response.height)),
            })
            .await
        {
            Ok(b) => {
                let b = b.into_inner();
                if b.result_app_hash != response.app_hash {
                    return Err(Error::AppHash {
                        height: response.height,
                        got: hex::encode_upper(&response.app_hash),
                        want: hex::encode_upper(&b.result_app_hash),
                    });
                }
                true
            }
            // Genesis (the height before the first block) has no block to compare with.
            Err(s) if s.code() == tonic::Code::NotFound => false,
            Err(s) => return Err(status("get block")(s)),
        };
        Ok(ProvedAnswer {
            response,
            block_checked,
        })
    }

    /// An account's balance and nonce at `height` (0: the last commit), read from its proven state entry:
    /// nothing the node says about it is taken on trust beyond the block's app hash.
    pub async fn account_proved(
        &self,
        address: &Address,
        height: u64,
    ) -> Result<ProvedAccount, Error> {
        let a = self
            .query_proved("/account", address.to_string().into_bytes(), height)
            .await?;
        let key = proof::account_key(address);
        let entry = a
            .response
            .proofs
            .iter()
            .find(|e| e.key == key)
            .ok_or_else(|| ProofError::Missing(hex::encode(&key)))?;
        let account = proof::account_entry(&key, entry.exists.then_some(entry.value.as_slice()))?;
        Ok(ProvedAccount {
            account,
            height: a.response.height,
            app_hash: a.response.app_hash,
        })
    }

    /// Follows the chain from `from` (None: the next block to commit), filtered by `filters` (any matches;
    /// none: everything).
    pub fn subscribe(&self, from: Option<u64>, filters: Vec<pb::EventFilter>) -> Subscription {
        Subscription {
            client: self.events(),
            filters,
            next: from,
            stream: None,
        }
    }
}

/// An event subscription that resumes by itself: when the node ends it because this client fell behind
/// (RESOURCE_EXHAUSTED), it subscribes again from the next height, so no height is skipped or seen twice.
#[derive(Debug)]
pub struct Subscription {
    client: EventServiceClient<Channel>,
    filters: Vec<pb::EventFilter>,
    next: Option<u64>,
    stream: Option<tonic::Streaming<pb::BlockEvent>>,
}

/// What a subscription yields.
#[derive(Debug)]
pub enum Next {
    /// A committed height: its header, txs with their results and events (filtered), and block events.
    Block(Box<pb::BlockEvent>),
    /// The node ended the stream because this client fell behind (its message); the subscription resumed
    /// from the next height.
    Resumed(String),
}

impl Subscription {
    /// The next height, or a note that the stream was resumed. Ok(None) when the node ended the stream
    /// (it does not while it runs); an error for any other status.
    pub async fn next(&mut self) -> Result<Option<Next>, tonic::Status> {
        let stream = match &mut self.stream {
            Some(s) => s,
            None => self.stream.insert(
                self.client
                    .subscribe(pb::SubscribeRequest {
                        from_height: self.next,
                        filters: self.filters.clone(),
                    })
                    .await?
                    .into_inner(),
            ),
        };
        match stream.message().await {
            Ok(Some(e)) => {
                self.next = e.header.as_ref().map(|h| h.height.saturating_add(1));
                Ok(Some(Next::Block(Box::new(e))))
            }
            Ok(None) => Ok(None),
            Err(s) if s.code() == tonic::Code::ResourceExhausted && self.next.is_some() => {
                self.stream = None;
                Ok(Some(Next::Resumed(s.message().to_owned())))
            }
            Err(s) => Err(s),
        }
    }

    /// The height the subscription will ask for when it resumes (None before the first block).
    pub fn next_height(&self) -> Option<u64> {
        self.next
    }
}

/// Parses an event filter written `TYPE` or `TYPE.ATTRIBUTE=VALUE` (the type may contain dots: the
/// attribute is after the last dot before `=`).
pub fn parse_filter(s: &str) -> Result<pb::EventFilter, String> {
    let (key, value) = match s.split_once('=') {
        None => {
            if s.is_empty() {
                return Err("empty filter".into());
            }
            return Ok(pb::EventFilter {
                r#type: s.to_owned(),
                ..Default::default()
            });
        }
        Some(kv) => kv,
    };
    let (ty, attribute) = key
        .rsplit_once('.')
        .filter(|(t, a)| !t.is_empty() && !a.is_empty())
        .ok_or_else(|| format!("{s:?}: expected TYPE or TYPE.ATTRIBUTE=VALUE"))?;
    Ok(pb::EventFilter {
        r#type: ty.to_owned(),
        attribute: attribute.to_owned(),
        value: value.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_as_a_type_or_a_type_attribute_and_value() {
        let f = parse_filter("transfer").expect("type");
        assert_eq!((f.r#type.as_str(), f.attribute.as_str()), ("transfer", ""));
        let f = parse_filter("market.job_matched.provider=lode1xyz").expect("attr");
        assert_eq!(
            (f.r#type.as_str(), f.attribute.as_str(), f.value.as_str()),
            ("market.job_matched", "provider", "lode1xyz")
        );
        let f = parse_filter("transfer.memo=a=b").expect("value with =");
        assert_eq!(f.value, "a=b");
        for bad in ["", "transfer=x", ".x=1", "transfer.=1"] {
            assert!(parse_filter(bad).is_err(), "{bad:?} parsed");
        }
    }
}
