//! Building, encoding and signing transactions (docs/tx-format.md): the sign bytes are the protobuf encoding
//! of `SignDoc { chain_id, body_bytes, auth_info_bytes }`, signed with ed25519; the tx hash is SHA-256 of
//! the encoded `Tx`. The chain verifies with these same functions (`lode_state::tx` re-exports them).
//!
//! [`TxBuilder`] assembles a tx from any of the chain's messages: every message type of every module
//! implements [`TxMsg`], so `TxBuilder::new(chain).msg(bank::MsgSend { .. })` works for each of them, and
//! [`msgs`] has constructors that take typed values (`u128` amounts, [`Address`]es) for the common ones.

use ed25519_consensus::SigningKey;
use lode_proto::tx::v1 as pb;
use prost::Message;
use sha2::{Digest, Sha256};

use crate::address::Address;

/// SHA-256 of raw tx bytes: the tx's id (`GetTx`, `lode query tx`).
pub fn tx_hash(raw: &[u8]) -> [u8; 32] {
    Sha256::digest(raw).into()
}

/// The bytes a signer signs: an encoded `SignDoc` binding chain id, body and auth info.
pub fn sign_doc_bytes(chain_id: &str, body_bytes: &[u8], auth_info_bytes: &[u8]) -> Vec<u8> {
    pb::SignDoc {
        chain_id: chain_id.to_string(),
        body_bytes: body_bytes.to_vec(),
        auth_info_bytes: auth_info_bytes.to_vec(),
    }
    .encode_to_vec()
}

/// Signs a body and auth info given as wire types and returns the encoded tx. The chain id signed is the
/// body's. It does not check what it signs (the chain does: `Tx::check_stateless`).
pub fn sign_raw(body: &pb::TxBody, auth: &pb::AuthInfo, key: &SigningKey) -> Vec<u8> {
    let body_bytes = body.encode_to_vec();
    let auth_info_bytes = auth.encode_to_vec();
    let sig = key.sign(&sign_doc_bytes(
        &body.chain_id,
        &body_bytes,
        &auth_info_bytes,
    ));
    pb::Tx {
        body_bytes,
        auth_info_bytes,
        signatures: vec![sig.to_bytes().to_vec()],
    }
    .encode_to_vec()
}

/// Builds and signs a tx carrying `msgs` from the key's account at `nonce`, paying `fee`.
pub fn sign_msgs(
    chain_id: &str,
    key: &SigningKey,
    nonce: u64,
    fee: u128,
    msgs: &[pb::Msg],
    memo: &str,
) -> Vec<u8> {
    TxBuilder::new(chain_id)
        .msgs(msgs.iter().cloned())
        .memo(memo)
        .nonce(nonce)
        .fee(fee)
        .sign(key)
        .bytes
}

/// The address of a signing key.
pub fn address_of(key: &SigningKey) -> Address {
    Address::from_public_key(&key.verification_key().to_bytes())
}

/// A message the chain accepts in a tx: every `Msg*` type of every module (`lode_proto::<module>::v1`).
pub trait TxMsg {
    /// The message in the tx body's `Msg` envelope.
    fn into_msg(self) -> pb::Msg;
}

impl TxMsg for pb::Msg {
    fn into_msg(self) -> pb::Msg {
        self
    }
}

impl TxMsg for pb::msg::Sum {
    fn into_msg(self) -> pb::Msg {
        pb::Msg { sum: Some(self) }
    }
}

/// `TxMsg` for each oneof case of `lode.tx.v1.Msg` (the list is the proto's, checked by the compiler: a
/// message type named twice or a variant of another type does not build).
macro_rules! tx_msgs {
    ($($ty:path => $variant:ident,)+) => {
        $(impl TxMsg for $ty {
            fn into_msg(self) -> pb::Msg {
                pb::Msg { sum: Some(pb::msg::Sum::$variant(self)) }
            }
        })+
    };
}

use lode_proto::{
    bank::v1 as bank, compute::v1 as compute, gov::v1 as gov, market::v1 as market, nft::v1 as nft,
    staking::v1 as staking,
};

tx_msgs! {
    bank::MsgSend => Send,
    bank::MsgMultiSend => MultiSend,
    staking::MsgCreateValidator => CreateValidator,
    staking::MsgDelegate => Delegate,
    staking::MsgUndelegate => Undelegate,
    staking::MsgLinkProvider => LinkProvider,
    staking::MsgUnlinkProvider => UnlinkProvider,
    staking::MsgUnjail => Unjail,
    gov::MsgSubmitProposal => SubmitProposal,
    gov::MsgDeposit => GovDeposit,
    gov::MsgVote => Vote,
    nft::MsgCreateCollection => NftCreateCollection,
    nft::MsgMint => NftMint,
    nft::MsgTransfer => NftTransfer,
    nft::MsgApprove => NftApprove,
    nft::MsgSetOperator => NftSetOperator,
    nft::MsgBurn => NftBurn,
    nft::MsgList => NftList,
    nft::MsgCancelListing => NftCancelListing,
    nft::MsgBuy => NftBuy,
    market::MsgRegisterProvider => MarketRegisterProvider,
    market::MsgUpdateProvider => MarketUpdateProvider,
    market::MsgUnregisterProvider => MarketUnregisterProvider,
    market::MsgPostJob => MarketPostJob,
    market::MsgCancelJob => MarketCancelJob,
    market::MsgAcceptJob => MarketAcceptJob,
    market::MsgDeclineJob => MarketDeclineJob,
    compute::MsgCommitResult => ComputeCommitResult,
    compute::MsgRevealSamples => ComputeRevealSamples,
    compute::MsgChallengeOutput => ComputeChallengeOutput,
    compute::MsgFraudProof => ComputeFraudProof,
    staking::MsgSubmitDoubleSign => SubmitDoubleSign,
}

/// A tx being assembled: messages, memo, timeout, nonce and fee, for one chain.
#[derive(Debug, Clone, Default)]
pub struct TxBuilder {
    chain_id: String,
    msgs: Vec<pb::Msg>,
    memo: String,
    timeout_height: u64,
    nonce: u64,
    fee: u128,
}

/// A signed, encoded tx and its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedTx {
    pub bytes: Vec<u8>,
    pub hash: [u8; 32],
}

impl TxBuilder {
    /// An empty tx for the chain `chain_id` (nonce 0, fee 0, no memo, no timeout).
    pub fn new(chain_id: impl Into<String>) -> Self {
        TxBuilder {
            chain_id: chain_id.into(),
            ..Default::default()
        }
    }

    /// Adds a message.
    pub fn msg(mut self, m: impl TxMsg) -> Self {
        self.msgs.push(m.into_msg());
        self
    }

    /// Adds messages.
    pub fn msgs<M: TxMsg>(mut self, ms: impl IntoIterator<Item = M>) -> Self {
        self.msgs.extend(ms.into_iter().map(TxMsg::into_msg));
        self
    }

    pub fn memo(mut self, memo: impl Into<String>) -> Self {
        self.memo = memo.into();
        self
    }

    /// The last height at which the tx may be included (0: none).
    pub fn timeout_height(mut self, h: u64) -> Self {
        self.timeout_height = h;
        self
    }

    /// The signer account's next nonce (`QueryService.Account`).
    pub fn nonce(mut self, nonce: u64) -> Self {
        self.nonce = nonce;
        self
    }

    /// The fee in base units (at least gas × `min_gas_price`; `Client::min_fee` sizes it).
    pub fn fee(mut self, fee: u128) -> Self {
        self.fee = fee;
        self
    }

    /// The tx body.
    pub fn body(&self) -> pb::TxBody {
        pb::TxBody {
            msgs: self.msgs.clone(),
            memo: self.memo.clone(),
            timeout_height: self.timeout_height,
            chain_id: self.chain_id.clone(),
        }
    }

    /// The auth info of a single-key signer.
    pub fn auth_info(&self, public_key: &[u8; 32]) -> pb::AuthInfo {
        pb::AuthInfo {
            public_key: public_key.to_vec(),
            nonce: self.nonce,
            fee: Some(pb::Fee {
                amount: self.fee.to_string(),
            }),
            multisig: None,
        }
    }

    /// The bytes `key` signs for this tx.
    pub fn sign_bytes(&self, public_key: &[u8; 32]) -> Vec<u8> {
        sign_doc_bytes(
            &self.chain_id,
            &self.body().encode_to_vec(),
            &self.auth_info(public_key).encode_to_vec(),
        )
    }

    /// Signs with `key` and encodes the tx.
    pub fn sign(&self, key: &SigningKey) -> SignedTx {
        let public = key.verification_key().to_bytes();
        let bytes = sign_raw(&self.body(), &self.auth_info(&public), key);
        SignedTx {
            hash: tx_hash(&bytes),
            bytes,
        }
    }
}

/// Constructors that take typed values for the messages wallets send most; every other message is built
/// as its `lode_proto` struct and passed to [`TxBuilder::msg`] as is.
pub mod msgs {
    use super::{bank, gov, nft, staking, Address};

    /// A transfer of `amount` base units.
    pub fn send(from: &Address, to: &Address, amount: u128) -> bank::MsgSend {
        bank::MsgSend {
            from: from.to_string(),
            to: to.to_string(),
            amount: amount.to_string(),
        }
    }

    /// One transfer to several recipients.
    pub fn multi_send(from: &Address, outputs: &[(Address, u128)]) -> bank::MsgMultiSend {
        bank::MsgMultiSend {
            from: from.to_string(),
            outputs: outputs
                .iter()
                .map(|(to, amount)| bank::Output {
                    to: to.to_string(),
                    amount: amount.to_string(),
                })
                .collect(),
        }
    }

    /// Delegates `amount` to the validator whose operator account is `validator`.
    pub fn delegate(
        delegator: &Address,
        validator: &Address,
        amount: u128,
    ) -> staking::MsgDelegate {
        staking::MsgDelegate {
            delegator: delegator.to_string(),
            validator: validator.to_string(),
            amount: amount.to_string(),
        }
    }

    /// Starts unbonding `amount` from `validator`.
    pub fn undelegate(
        delegator: &Address,
        validator: &Address,
        amount: u128,
    ) -> staking::MsgUndelegate {
        staking::MsgUndelegate {
            delegator: delegator.to_string(),
            validator: validator.to_string(),
            amount: amount.to_string(),
        }
    }

    /// Adds `amount` to a proposal's deposit.
    pub fn deposit(depositor: &Address, proposal_id: u64, amount: u128) -> gov::MsgDeposit {
        gov::MsgDeposit {
            depositor: depositor.to_string(),
            proposal_id,
            amount: amount.to_string(),
        }
    }

    /// Transfers an NFT.
    pub fn nft_transfer(
        sender: &Address,
        collection: &str,
        token: &str,
        to: &Address,
    ) -> nft::MsgTransfer {
        nft::MsgTransfer {
            sender: sender.to_string(),
            collection: collection.to_owned(),
            token_id: token.to_owned(),
            to: to.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_tx_verifies_under_its_sign_bytes_and_hashes_to_its_id() {
        let key = SigningKey::from([3u8; 32]);
        let me = address_of(&key);
        let b = TxBuilder::new("c-1")
            .msg(msgs::send(&me, &me, 5))
            .memo("m")
            .nonce(7)
            .fee(11);
        let signed = b.sign(&key);
        assert_eq!(signed.hash, tx_hash(&signed.bytes));
        let tx = pb::Tx::decode(signed.bytes.as_slice()).expect("decodes");
        let public = key.verification_key().to_bytes();
        assert_eq!(
            sign_doc_bytes("c-1", &tx.body_bytes, &tx.auth_info_bytes),
            b.sign_bytes(&public)
        );
        let sig: [u8; 64] = tx.signatures[0].as_slice().try_into().expect("64 bytes");
        key.verification_key()
            .verify(&sig.into(), &b.sign_bytes(&public))
            .expect("verifies");
        // Another chain id gives other sign bytes.
        assert_ne!(
            TxBuilder::new("c-2")
                .msg(msgs::send(&me, &me, 5))
                .memo("m")
                .nonce(7)
                .fee(11)
                .sign_bytes(&public),
            b.sign_bytes(&public)
        );
        let body = pb::TxBody::decode(tx.body_bytes.as_slice()).expect("body");
        assert!(matches!(body.msgs[0].sum, Some(pb::msg::Sum::Send(_))));
    }
}
