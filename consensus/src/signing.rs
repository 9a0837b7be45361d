//! Signing and verification of votes, proposals, proposal streams, vote extensions and validator proofs.
//!
//! Sign bytes are protobuf encodings of `lode.consensus.v1.Canonical*` messages that include the chain id, so
//! a signature never verifies on another chain. Verification follows ZIP-215 (`ed25519-consensus`).

use async_trait::async_trait;
use bytes::Bytes;
use malachitebft_core_types::{
    CommitCertificate, NilOrVal, SignedExtension, SignedMessage, ValidatorProof, ValidatorSet as _,
    VoteExtensionScope, VoteType,
};
use malachitebft_signing::{Error as SigningError, Signer, VerificationResult, Verifier};
use prost::Message;
use sha2::{Digest, Sha256};

use crate::context::LodeContext;
use crate::peers::PeerKeys;
use crate::types::{
    Address, BlockId, PartInit, PrivateKey, Proposal, PublicKey, Signature, ValidatorSet, Vote,
};
use lode_proto::consensus::v1 as pb;
use malachitebft_app_channel::app::types::PeerId;

/// Whether `sig` is a valid ZIP-215 signature of `msg` by `pk`.
pub fn verify(pk: &PublicKey, msg: &[u8], sig: &Signature) -> bool {
    match ed25519_consensus::VerificationKey::try_from(pk.0) {
        Ok(vk) => vk
            .verify(&ed25519_consensus::Signature::from(sig.0), msg)
            .is_ok(),
        Err(_) => false,
    }
}

/// Whether `pk` decodes as an ed25519 point (what [`verify`] needs; ZIP-215 accepts any encoding that
/// decompresses).
pub fn is_valid_public_key(pk: &PublicKey) -> bool {
    ed25519_consensus::VerificationKey::try_from(pk.0).is_ok()
}

pub(crate) fn vote_type_to_u32(t: VoteType) -> u32 {
    match t {
        VoteType::Prevote => 0,
        VoteType::Precommit => 1,
    }
}

fn value_id_bytes(v: &NilOrVal<BlockId>) -> Vec<u8> {
    match v {
        NilOrVal::Nil => Vec::new(),
        NilOrVal::Val(id) => id.0.to_vec(),
    }
}

/// The bytes a validator signs for `vote` on `chain_id`.
pub fn vote_sign_bytes(chain_id: &str, vote: &Vote) -> Vec<u8> {
    pb::CanonicalVote {
        chain_id: chain_id.to_owned(),
        vote_type: vote_type_to_u32(vote.vote_type),
        height: vote.height.0,
        round: vote.round.as_i64(),
        value_id: value_id_bytes(&vote.value_id),
    }
    .encode_to_vec()
}

/// The bytes a proposer signs for `proposal` on `chain_id` (the block enters through its id).
pub fn proposal_sign_bytes(chain_id: &str, proposal: &Proposal) -> Vec<u8> {
    pb::CanonicalProposal {
        chain_id: chain_id.to_owned(),
        height: proposal.height.0,
        round: proposal.round.as_i64(),
        pol_round: proposal.pol_round.as_i64(),
        value_id: proposal.value.id().0.to_vec(),
        proposer: proposal.validator_address.0.to_vec(),
    }
    .encode_to_vec()
}

/// The bytes a proposer signs in the fin part of a proposal stream: the init fields and the hash of the
/// concatenated data chunks.
pub fn parts_fin_sign_bytes(chain_id: &str, init: &PartInit, parts_hash: [u8; 32]) -> Vec<u8> {
    pb::CanonicalPartsFin {
        chain_id: chain_id.to_owned(),
        height: init.height.0,
        round: init.round.as_i64(),
        valid_round: init.valid_round.as_i64(),
        proposer: init.proposer.0.to_vec(),
        parts_hash: parts_hash.to_vec(),
    }
    .encode_to_vec()
}

/// SHA-256 over the data chunks of a proposal stream, in order.
pub fn parts_hash<'a>(chunks: impl IntoIterator<Item = &'a Bytes>) -> [u8; 32] {
    let mut h = Sha256::new();
    for c in chunks {
        h.update((c.len() as u64).to_be_bytes());
        h.update(c);
    }
    h.finalize().into()
}

fn extension_sign_bytes(
    chain_id: &str,
    scope: &VoteExtensionScope<LodeContext>,
    ext: &Bytes,
) -> Vec<u8> {
    let mut out = pb::CanonicalVote {
        chain_id: chain_id.to_owned(),
        vote_type: 2,
        height: scope.height.0,
        round: scope.round.as_i64(),
        value_id: scope.value_id.0.to_vec(),
    }
    .encode_to_vec();
    out.extend_from_slice(&scope.validator_address.0);
    out.extend_from_slice(ext);
    out
}

/// Signs consensus messages with a validator's key. Holds the chain id that every sign-bytes includes.
#[derive(Clone, Debug)]
pub struct LodeSigner {
    key: PrivateKey,
    chain_id: String,
}

impl LodeSigner {
    /// A signer for `chain_id`.
    pub fn new(key: PrivateKey, chain_id: impl Into<String>) -> Self {
        Self {
            key,
            chain_id: chain_id.into(),
        }
    }

    /// The validator's address.
    pub fn address(&self) -> Address {
        Address::from_public_key(&self.key.public_key())
    }

    /// The validator's public key.
    pub fn public_key(&self) -> PublicKey {
        self.key.public_key()
    }

    /// Signs the fin of a proposal stream.
    pub fn sign_parts_fin(&self, init: &PartInit, parts_hash: [u8; 32]) -> Signature {
        self.key
            .sign(&parts_fin_sign_bytes(&self.chain_id, init, parts_hash))
    }

    /// Signs a vote (synchronous form).
    pub fn sign_vote_sync(&self, vote: Vote) -> SignedMessage<LodeContext, Vote> {
        let sig = self.key.sign(&vote_sign_bytes(&self.chain_id, &vote));
        SignedMessage::new(vote, sig)
    }

    /// Signs a proposal (synchronous form).
    pub fn sign_proposal_sync(&self, proposal: Proposal) -> SignedMessage<LodeContext, Proposal> {
        let sig = self
            .key
            .sign(&proposal_sign_bytes(&self.chain_id, &proposal));
        SignedMessage::new(proposal, sig)
    }
}

#[async_trait]
impl Signer<LodeContext> for LodeSigner {
    async fn sign_vote(
        &self,
        vote: Vote,
    ) -> Result<SignedMessage<LodeContext, Vote>, SigningError> {
        Ok(self.sign_vote_sync(vote))
    }

    async fn sign_proposal(
        &self,
        proposal: Proposal,
    ) -> Result<SignedMessage<LodeContext, Proposal>, SigningError> {
        Ok(self.sign_proposal_sync(proposal))
    }

    async fn sign_vote_extension(
        &self,
        scope: VoteExtensionScope<LodeContext>,
        extension: Bytes,
    ) -> Result<SignedExtension<LodeContext>, SigningError> {
        let sig = self
            .key
            .sign(&extension_sign_bytes(&self.chain_id, &scope, &extension));
        Ok(SignedMessage::new(extension, sig))
    }

    async fn sign_validator_proof(
        &self,
        public_key: Vec<u8>,
        peer_id: Vec<u8>,
    ) -> Result<ValidatorProof<LodeContext>, SigningError> {
        let sig = self.key.sign(&ValidatorProof::<LodeContext>::signing_bytes(
            &public_key,
            &peer_id,
        ));
        Ok(ValidatorProof::new(public_key, peer_id, sig))
    }
}

/// Verifies consensus signatures for one chain id.
#[derive(Clone, Debug)]
pub struct LodeVerifier {
    chain_id: String,
    /// Where a valid validator proof's peer-to-key binding is recorded (see [`crate::peers`]).
    peers: Option<PeerKeys>,
}

impl LodeVerifier {
    /// A verifier for `chain_id`.
    pub fn new(chain_id: impl Into<String>) -> Self {
        Self {
            chain_id: chain_id.into(),
            peers: None,
        }
    }

    /// This verifier, recording the peer each valid validator proof names in `peers`.
    pub fn with_peer_keys(mut self, peers: PeerKeys) -> Self {
        self.peers = Some(peers);
        self
    }

    /// Whether `sig` is `pk`'s signature of `vote`.
    pub fn verify_vote(&self, vote: &Vote, sig: &Signature, pk: &PublicKey) -> bool {
        verify(pk, &vote_sign_bytes(&self.chain_id, vote), sig)
    }

    /// Whether `sig` is `pk`'s signature of `proposal`.
    pub fn verify_proposal(&self, proposal: &Proposal, sig: &Signature, pk: &PublicKey) -> bool {
        verify(pk, &proposal_sign_bytes(&self.chain_id, proposal), sig)
    }

    /// Whether `certificate` holds precommits for its value, height and round from distinct validators of
    /// `set` with more than two thirds of its voting power, every one a valid signature. Malachite checks
    /// certificates it receives; the bridge uses this for certificates read back from its own store.
    pub fn verify_commit_certificate(
        &self,
        certificate: &CommitCertificate<LodeContext>,
        set: &ValidatorSet,
    ) -> bool {
        let mut seen = std::collections::BTreeSet::new();
        let mut power: u64 = 0;
        for s in &certificate.commit_signatures {
            if !seen.insert(s.address) {
                return false;
            }
            let Some(v) = set.get_by_address(&s.address) else {
                return false;
            };
            let vote = Vote {
                vote_type: VoteType::Precommit,
                height: certificate.height,
                round: certificate.round,
                value_id: NilOrVal::Val(certificate.value_id),
                validator_address: s.address,
                extension: None,
            };
            if !self.verify_vote(&vote, &s.signature, &v.public_key) {
                return false;
            }
            power = power.saturating_add(v.voting_power);
        }
        // More than 2/3 of the total, in u128 so no power overflows.
        u128::from(power).saturating_mul(3) > u128::from(set.total_power()).saturating_mul(2)
    }

    /// Whether `sig` is `pk`'s signature of a proposal stream's fin.
    pub fn verify_parts_fin(
        &self,
        init: &PartInit,
        parts_hash: [u8; 32],
        sig: &Signature,
        pk: &PublicKey,
    ) -> bool {
        verify(
            pk,
            &parts_fin_sign_bytes(&self.chain_id, init, parts_hash),
            sig,
        )
    }
}

#[async_trait]
impl Verifier<LodeContext> for LodeVerifier {
    async fn verify_signed_vote(
        &self,
        vote: &Vote,
        signature: &Signature,
        public_key: &PublicKey,
    ) -> Result<VerificationResult, SigningError> {
        Ok(VerificationResult::from_bool(
            self.verify_vote(vote, signature, public_key),
        ))
    }

    async fn verify_signed_proposal(
        &self,
        proposal: &Proposal,
        signature: &Signature,
        public_key: &PublicKey,
    ) -> Result<VerificationResult, SigningError> {
        Ok(VerificationResult::from_bool(
            self.verify_proposal(proposal, signature, public_key),
        ))
    }

    async fn verify_signed_vote_extension(
        &self,
        scope: &VoteExtensionScope<LodeContext>,
        extension: &Bytes,
        signature: &Signature,
        public_key: &PublicKey,
    ) -> Result<VerificationResult, SigningError> {
        Ok(VerificationResult::from_bool(verify(
            public_key,
            &extension_sign_bytes(&self.chain_id, scope, extension),
            signature,
        )))
    }

    async fn verify_validator_proof(
        &self,
        proof: &ValidatorProof<LodeContext>,
    ) -> Result<VerificationResult, SigningError> {
        let Ok(pk) = <[u8; 32]>::try_from(proof.public_key.as_slice()) else {
            return Ok(VerificationResult::Invalid);
        };
        let pk = PublicKey(pk);
        let valid = verify(&pk, &proof.preimage(), &proof.signature);
        // Malachite's network layer has checked that the proof names the peer that sent it.
        if let (true, Some(peers)) = (valid, &self.peers) {
            if let Ok(peer) = PeerId::from_bytes(&proof.peer_id) {
                peers.record(peer, &pk);
            }
        }
        Ok(VerificationResult::from_bool(valid))
    }
}
