//! Malachite's [`Context`](malachitebft_core_types::Context) for Lode: which types consensus runs on, how a
//! proposer is picked, how votes and proposals are built.

use bytes::Bytes;
use malachitebft_core_types::{Context, LinearTimeouts, NilOrVal, Round, SigningScheme, VoteType};

use crate::types::{
    Address, Block, BlockId, Height, PrivateKey, Proposal, ProposalPart, PublicKey, Signature,
    Validator, ValidatorSet, Vote,
};

/// Lode's consensus context. Stateless: everything height-specific lives in the validator set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LodeContext;

/// ed25519 with ZIP-215 verification (`ed25519-consensus`), the same rule as for transactions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ed25519;

/// A malformed key or signature encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid ed25519 encoding")]
pub struct InvalidEncoding;

impl SigningScheme for Ed25519 {
    type DecodingError = InvalidEncoding;
    type Signature = Signature;
    type PublicKey = PublicKey;
    type PrivateKey = PrivateKey;

    fn decode_signature(bytes: &[u8]) -> Result<Signature, InvalidEncoding> {
        <[u8; 64]>::try_from(bytes)
            .map(Signature)
            .map_err(|_| InvalidEncoding)
    }

    fn encode_signature(signature: &Signature) -> Vec<u8> {
        signature.0.to_vec()
    }

    fn decode_public_key(bytes: &[u8]) -> Result<PublicKey, InvalidEncoding> {
        let arr = <[u8; 32]>::try_from(bytes).map_err(|_| InvalidEncoding)?;
        ed25519_consensus::VerificationKey::try_from(arr).map_err(|_| InvalidEncoding)?;
        Ok(PublicKey(arr))
    }

    fn encode_public_key(public_key: &PublicKey) -> Vec<u8> {
        public_key.0.to_vec()
    }
}

impl Context for LodeContext {
    type Address = Address;
    type Height = Height;
    type ProposalPart = ProposalPart;
    type Proposal = Proposal;
    type Validator = Validator;
    type ValidatorSet = ValidatorSet;
    type Timeouts = LinearTimeouts;
    type Value = Block;
    type Vote = Vote;
    type Extension = Bytes;
    type SigningScheme = Ed25519;

    fn select_proposer<'a>(
        &self,
        validator_set: &'a ValidatorSet,
        _height: Height,
        round: Round,
    ) -> &'a Validator {
        crate::proposer::select(validator_set, round)
    }

    fn new_proposal(
        &self,
        height: Height,
        round: Round,
        value: Block,
        pol_round: Round,
        address: Address,
    ) -> Proposal {
        Proposal {
            height,
            round,
            value,
            pol_round,
            validator_address: address,
        }
    }

    fn new_prevote(
        &self,
        height: Height,
        round: Round,
        value_id: NilOrVal<BlockId>,
        address: Address,
    ) -> Vote {
        Vote {
            vote_type: VoteType::Prevote,
            height,
            round,
            value_id,
            validator_address: address,
            extension: None,
        }
    }

    fn new_precommit(
        &self,
        height: Height,
        round: Round,
        value_id: NilOrVal<BlockId>,
        address: Address,
    ) -> Vote {
        Vote {
            vote_type: VoteType::Precommit,
            height,
            round,
            value_id,
            validator_address: address,
            extension: None,
        }
    }
}
