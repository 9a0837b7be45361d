//! The evidence reporter: double signs this node's consensus engine saw go to the chain.
//!
//! The bridge hands over each pair of conflicting votes of one validator whose signatures it verified
//! ([`lode_consensus::evidence`]). The reporter turns the pair into a `MsgSubmitDoubleSign`, signs it with
//! the home's evidence key (`[evidence] key`, the validator's operator by default) at the next nonce of that
//! account and the chain's minimum fee, and adds it to the node's own mempool, which gossips it to peers;
//! any proposer includes it, and every node executes the same evidence.
//!
//! One submission per offence (validator, height, round, vote type), however many pairs the engine reports
//! for it, and one pending evidence tx per validator (a further offence of a validator whose evidence is
//! pending waits: the first to land tombstones it for good). While the tx is pending nothing more happens; when it has left the mempool and the validator is
//! still not tombstoned [`RETRY_HEIGHTS`] heights after the submission, it is signed and added again, at
//! most [`MAX_ATTEMPTS`] times in all. An offence is finished when the validator is tombstoned (by this
//! evidence or anyone's), when the chain does not know it, when it is older than the chain accepts, or when
//! the attempts run out. At most [`MAX_OFFENCES`] offences are tracked; beyond it the one at the lowest
//! height is forgotten. The reporter runs on the services runtime and only ever reads from the bridge's
//! bounded channel, so it never holds up consensus.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use ed25519_consensus::SigningKey;
use lode_consensus::evidence::{DoubleVote, EvidenceVote};
use lode_consensus::Height;
use lode_proto::{staking::v1 as stpb, tx::v1 as txpb};
use lode_state::{address::Address, modules, tx::Msg, LodeApp};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use super::mempool::{AddError, Mempool};

/// Heights after a submission (once the tx has left the mempool without the validator being punished)
/// before the evidence is submitted again.
pub const RETRY_HEIGHTS: u64 = 3;
/// Submissions per offence at most.
pub const MAX_ATTEMPTS: u32 = 5;
/// Offences tracked at most.
pub const MAX_OFFENCES: usize = 256;

/// What one offence is known by: validator address, height, round, vote type.
type Offence = ([u8; 20], u64, i64, u32);

#[derive(Debug)]
struct Tracked {
    pair: DoubleVote,
    attempts: u32,
    /// Height the last submission was made at.
    submitted_at: u64,
    /// Hash of the last submitted tx.
    hash: Option<[u8; 32]>,
    done: bool,
}

/// The evidence message of a pair, submitted by `submitter`.
pub fn double_sign_msg(submitter: &Address, pair: &DoubleVote) -> stpb::MsgSubmitDoubleSign {
    stpb::MsgSubmitDoubleSign {
        submitter: submitter.to_string(),
        vote_a: Some(signed_vote(&pair.a)),
        vote_b: Some(signed_vote(&pair.b)),
    }
}

fn signed_vote(v: &EvidenceVote) -> stpb::SignedVote {
    stpb::SignedVote {
        vote_type: v.vote_type,
        height: v.height,
        round: v.round,
        value_id: v.value_id.map(|id| id.to_vec()).unwrap_or_default(),
        validator_address: v.validator_address.to_vec(),
        signature: v.signature.to_vec(),
    }
}

/// Submits the evidence the engine reports (see the module docs).
pub struct Reporter {
    app: LodeApp,
    mempool: Arc<Mempool>,
    key: SigningKey,
    submitter: Address,
    chain_id: String,
    offences: BTreeMap<Offence, Tracked>,
}

impl std::fmt::Debug for Reporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reporter")
            .field("submitter", &self.submitter)
            .field("offences", &self.offences.len())
            .finish_non_exhaustive()
    }
}

/// Why a submission could not be made now.
#[derive(Debug, thiserror::Error)]
enum SubmitError {
    #[error("state: {0}")]
    Store(#[from] lode_state::StoreError),
    #[error("{0}")]
    Invalid(String),
    #[error("mempool: {0}")]
    Mempool(#[from] AddError),
}

impl Reporter {
    /// A reporter signing with `key` (whose account is `submitter`) on `chain_id`.
    pub fn new(
        app: LodeApp,
        mempool: Arc<Mempool>,
        key: SigningKey,
        submitter: Address,
        chain_id: String,
    ) -> Self {
        Self {
            app,
            mempool,
            key,
            submitter,
            chain_id,
            offences: BTreeMap::new(),
        }
    }

    /// Runs until the evidence channel closes: takes each reported pair, and at every committed height
    /// checks what was submitted.
    pub async fn run(
        mut self,
        mut evidence: mpsc::Receiver<DoubleVote>,
        mut decided: watch::Receiver<Height>,
    ) {
        loop {
            tokio::select! {
                pair = evidence.recv() => match pair {
                    Some(pair) => tokio::task::block_in_place(|| self.offer(pair)),
                    None => return,
                },
                changed = decided.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let height = decided.borrow_and_update().0;
                    tokio::task::block_in_place(|| self.tick(height));
                }
            }
        }
    }

    /// Offences tracked (finished ones included).
    pub fn tracked(&self) -> usize {
        self.offences.len()
    }

    fn last_height(&self) -> u64 {
        self.app.last_commit().map_or(0, |c| c.height)
    }

    /// A pair from the engine: a new offence is submitted at once, a known one is ignored.
    pub fn offer(&mut self, pair: DoubleVote) {
        if !pair.conflicts() {
            return;
        }
        let offence = pair.offence();
        if self.offences.contains_key(&offence) {
            return;
        }
        if self.offences.len() >= MAX_OFFENCES {
            // Forget a finished offence first, else the lowest.
            let forget = self
                .offences
                .iter()
                .filter(|(_, t)| t.done)
                .map(|(k, _)| *k)
                .min_by_key(|k| k.1)
                .or_else(|| self.offences.keys().min_by_key(|k| k.1).copied());
            if let Some(k) = forget {
                self.offences.remove(&k);
            }
        }
        self.offences.insert(
            offence,
            Tracked {
                pair,
                attempts: 0,
                submitted_at: 0,
                hash: None,
                done: false,
            },
        );
        let height = self.last_height();
        self.submit(offence, height);
    }

    /// At a committed height: finishes the offences whose validator is punished, resubmits those whose tx
    /// left the mempool without effect.
    pub fn tick(&mut self, height: u64) {
        let due: Vec<Offence> = self
            .offences
            .iter()
            .filter(|(_, t)| !t.done)
            .filter(|(_, t)| !t.hash.is_some_and(|h| self.mempool.contains(&h)))
            .map(|(k, _)| *k)
            .collect();
        for offence in due {
            match self.punished(&offence) {
                Ok(true) => {
                    info!(validator = %hex::encode(offence.0), height = offence.1, "double-sign evidence landed: the validator is tombstoned");
                    self.finish(&offence);
                    continue;
                }
                Ok(false) => {}
                Err(e) => {
                    warn!(error = %e, "cannot read the validator's state; evidence check deferred");
                    continue;
                }
            }
            let Some(t) = self.offences.get(&offence) else {
                continue;
            };
            if height < t.submitted_at.saturating_add(RETRY_HEIGHTS) {
                continue;
            }
            if t.attempts >= MAX_ATTEMPTS {
                warn!(validator = %hex::encode(offence.0), height = offence.1, attempts = t.attempts,
                    "double-sign evidence did not land; giving up");
                self.finish(&offence);
                continue;
            }
            self.submit(offence, height);
        }
    }

    fn finish(&mut self, offence: &Offence) {
        if let Some(t) = self.offences.get_mut(offence) {
            t.done = true;
        }
    }

    /// Whether the offender is tombstoned already.
    fn punished(&self, offence: &Offence) -> Result<bool, lode_state::StoreError> {
        let store = self.app.store();
        match modules::staking::set::operator_of_cons_addr(store, &offence.0)? {
            Some(op) => modules::staking::is_tombstoned(store, &op),
            None => Ok(false),
        }
    }

    fn submit(&mut self, offence: Offence, height: u64) {
        let Some(t) = self.offences.get(&offence) else {
            return;
        };
        let pair = t.pair.clone();
        // One pending evidence tx per validator is enough (the first to land tombstones it for good; a
        // second would only fail as a duplicate): a further offence waits while another is pending.
        let other_pending = self.offences.iter().any(|(k, t)| {
            *k != offence
                && k.0 == offence.0
                && !t.done
                && t.hash.is_some_and(|h| self.mempool.contains(&h))
        });
        if other_pending {
            if let Some(t) = self.offences.get_mut(&offence) {
                t.submitted_at = height;
            }
            return;
        }
        let pending_ours = self
            .offences
            .values()
            .filter(|t| !t.done && t.hash.is_some_and(|h| self.mempool.contains(&h)))
            .count();
        let outcome = self.build_and_add(&pair, height, pending_ours);
        let Some(t) = self.offences.get_mut(&offence) else {
            return;
        };
        match outcome {
            Ok(Some(hash)) => {
                t.attempts = t.attempts.saturating_add(1);
                t.submitted_at = height;
                t.hash = Some(hash);
                info!(validator = %hex::encode(offence.0), height = offence.1, round = offence.2,
                    vote_type = offence.3, tx = %hex::encode_upper(hash), attempt = t.attempts,
                    "submitted double-sign evidence");
            }
            Ok(None) => t.done = true,
            Err(e) => {
                t.attempts = t.attempts.saturating_add(1);
                t.submitted_at = height;
                warn!(validator = %hex::encode(offence.0), height = offence.1, attempt = t.attempts,
                    error = %e, "cannot submit double-sign evidence now; will retry");
            }
        }
    }

    /// Signs and adds the evidence tx; `Ok(None)` when there is nothing to submit (the chain does not know
    /// the validator, already punished it, or would refuse the votes as too old).
    fn build_and_add(
        &self,
        pair: &DoubleVote,
        height: u64,
        pending_ours: usize,
    ) -> Result<Option<[u8; 32]>, SubmitError> {
        let store = self.app.store();
        let addr = pair.a.validator_address;
        let Some(op) = modules::staking::set::operator_of_cons_addr(store, &addr)? else {
            warn!(validator = %hex::encode(addr), "double sign by a validator the chain does not know; not submitted");
            return Ok(None);
        };
        if modules::staking::is_tombstoned(store, &op)? {
            return Ok(None);
        }
        let params = lode_state::params::load(store)?;
        let max_age = params
            .staking
            .evidence_max_age_blocks
            .min(params.staking.unbonding_blocks);
        if height.saturating_sub(pair.a.height) > max_age {
            warn!(validator = %op, height = pair.a.height, "double sign older than the chain accepts; not submitted");
            return Ok(None);
        }
        let msg = Msg::try_from(txpb::Msg {
            sum: Some(txpb::msg::Sum::SubmitDoubleSign(double_sign_msg(
                &self.submitter,
                pair,
            ))),
        })
        .map_err(|e| SubmitError::Invalid(e.to_string()))?;
        let account = modules::bank::account(store, &self.submitter)?;
        let nonce = account
            .nonce
            .saturating_add(u64::try_from(pending_ours).unwrap_or(u64::MAX));
        let msgs = [msg];
        let sign =
            |fee| lode_state::tx::sign_msgs(&self.chain_id, &self.key, nonce, fee, &msgs, "");
        // The minimum fee, sized with a placeholder fee at least as long as the real one.
        let sized = lode_state::tx::Tx::check_stateless(
            &sign(u128::from(u64::MAX)),
            &self.chain_id,
            &params,
        )
        .map_err(|e| SubmitError::Invalid(e.to_string()))?;
        let (_, fee) = sized
            .min_fee(&params)
            .map_err(|e| SubmitError::Invalid(e.to_string()))?;
        let tx = sign(fee);
        let hash = super::mempool::tx_hash(&tx);
        match self.mempool.add_local(Bytes::from(tx)) {
            Ok(_) | Err(AddError::Duplicate) => Ok(Some(hash)),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::mempool::MempoolLimits;
    use lode_consensus::{types::PrivateKey, LodeSigner};
    use lode_state::genesis::{AppState, GenesisBalance};
    use lode_state::tx::address_of;
    use malachitebft_core_types::{NilOrVal, Round, VoteType};
    use tendermint_proto::crypto::{public_key::Sum, PublicKey};
    use tendermint_proto::v0_38::abci::{RequestInitChain, ValidatorUpdate};

    const CHAIN: &str = "lode-evidence-reporter";

    /// A chain whose one validator has consensus key seed 9 and a funded submitter (seed 7).
    fn setup() -> (tempfile::TempDir, Reporter, Arc<Mempool>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let app = LodeApp::open(dir.path()).expect("open");
        let submitter = SigningKey::from([7u8; 32]);
        let mut app_state = AppState {
            balances: vec![GenesisBalance {
                address: address_of(&submitter).to_string(),
                amount: "1000000000000".into(),
            }],
            ..AppState::default()
        };
        for seed in [9u8, 10] {
            let cons = PrivateKey::from_seed([seed; 32]).public_key().0;
            app_state.add_self_bonded_validator(&format!("v{seed}"), &cons, 10);
        }
        let validators = lode_state::genesis::validator_set(&app_state)
            .expect("genesis set")
            .into_iter()
            .map(|(key, power)| ValidatorUpdate {
                pub_key: Some(PublicKey {
                    sum: Some(Sum::Ed25519(key.to_vec())),
                }),
                power: i64::try_from(power).expect("fits"),
            })
            .collect();
        app.try_init_chain(RequestInitChain {
            chain_id: CHAIN.into(),
            initial_height: 1,
            app_state_bytes: Bytes::from(serde_json::to_vec(&app_state).expect("json")),
            validators,
            ..Default::default()
        })
        .expect("init chain");
        let pool = Arc::new(Mempool::new(
            app.clone(),
            MempoolLimits {
                max_txs: 100,
                max_bytes: 1 << 20,
                max_tx_bytes: 1 << 16,
                max_txs_per_sender: 100,
            },
        ));
        let reporter = Reporter::new(
            app,
            pool.clone(),
            submitter.clone(),
            address_of(&submitter),
            CHAIN.into(),
        );
        (dir, reporter, pool)
    }

    fn vote(seed: u8, round: u32, value: Option<u8>) -> EvidenceVote {
        let signer = LodeSigner::new(PrivateKey::from_seed([seed; 32]), CHAIN);
        let v = lode_consensus::types::Vote {
            vote_type: VoteType::Prevote,
            height: lode_consensus::Height(1),
            round: Round::new(round),
            value_id: value.map_or(NilOrVal::Nil, |b| {
                NilOrVal::Val(lode_consensus::types::BlockId([b; 32]))
            }),
            validator_address: signer.address(),
            extension: None,
        };
        EvidenceVote::from_signed(&signer.sign_vote_sync(v))
    }

    fn pair(seed: u8, round: u32, a: Option<u8>, b: Option<u8>) -> DoubleVote {
        DoubleVote {
            a: vote(seed, round, a),
            b: vote(seed, round, b),
        }
    }

    #[test]
    fn one_offence_is_submitted_once_and_not_again_while_pending() {
        let (_dir, mut r, pool) = setup();
        r.offer(pair(9, 0, Some(1), Some(2)));
        assert_eq!(pool.size().0, 1, "the evidence tx is in the mempool");
        // The same offence again (another pair of the same height, round and type): not resubmitted.
        r.offer(pair(9, 0, Some(1), None));
        r.offer(pair(9, 0, Some(2), Some(1)));
        assert_eq!(pool.size().0, 1);
        assert_eq!(r.tracked(), 1);
        // Heights pass while it is pending: nothing more is sent.
        r.tick(RETRY_HEIGHTS + 5);
        assert_eq!(pool.size().0, 1);
        // A second offence of the same validator waits while the first is pending.
        r.offer(pair(9, 1, Some(1), Some(2)));
        assert_eq!(pool.size().0, 1);
        assert_eq!(r.tracked(), 2);
        // Another validator's offence is its own submission, at the submitter's next nonce.
        r.offer(pair(10, 0, Some(1), Some(2)));
        assert_eq!(pool.size().0, 2, "both evidence txs admitted by CheckTx");
        // Two votes for one value, and a validator the chain does not know: nothing is submitted.
        r.offer(pair(9, 2, Some(1), Some(1)));
        r.offer(pair(11, 0, Some(1), Some(2)));
        assert_eq!(pool.size().0, 2);
    }

    #[test]
    fn the_offences_tracked_are_bounded() {
        let (_dir, mut r, _pool) = setup();
        for round in 0..u32::try_from(MAX_OFFENCES).expect("small") + 10 {
            r.offer(pair(11, round, Some(1), Some(2)));
            assert!(r.tracked() <= MAX_OFFENCES);
        }
    }
}
