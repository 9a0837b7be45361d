//! Random workloads over staking, governance, NFT and double-sign evidence messages: two applications agree
//! on every app hash and result code, and every accounting invariant holds after every block.

use lode_state::{
    modules::{
        evidence::{EvidenceMsg, SignedVote},
        gov::{GovMsg, ProposalContent, VoteOption},
        nft::NftMsg,
        staking::msg::StakingMsg,
    },
    tx::{sign_msg, Msg},
};
use proptest::prelude::*;

use crate::common::*;

const ACCOUNTS: usize = 5;

#[derive(Debug, Clone)]
enum Op {
    Delegate {
        from: usize,
        to: usize,
        amount: u128,
    },
    Undelegate {
        from: usize,
        to: usize,
        amount: u128,
    },
    Submit {
        from: usize,
        deposit: u128,
        spend: bool,
    },
    Deposit {
        from: usize,
        id: u64,
        amount: u128,
    },
    Vote {
        from: usize,
        id: u64,
        option: u8,
    },
    Mint {
        from: usize,
        token: u8,
    },
    Transfer {
        from: usize,
        token: u8,
        to: usize,
    },
    List {
        from: usize,
        token: u8,
        price: u128,
    },
    Buy {
        from: usize,
        token: u8,
        price: u128,
    },
    Unjail {
        from: usize,
    },
    /// Evidence that validator `validator` (0 or 1) double signed `back` heights ago; `forged`: the second
    /// vote is signed by another key.
    DoubleSign {
        from: usize,
        validator: usize,
        back: u64,
        forged: bool,
    },
}

/// A precommit for `value` at `height`, round 0, signed by `signer` over the engine's sign bytes.
fn vote(
    signer: &ed25519_consensus::SigningKey,
    address: [u8; 20],
    height: u64,
    value: u8,
) -> SignedVote {
    let mut v = SignedVote {
        vote_type: 1,
        height,
        round: 0,
        value_id: vec![value; 32],
        validator_address: address,
        signature: [0; 64],
    };
    v.signature = signer.sign(&v.sign_bytes(CHAIN_ID)).to_bytes();
    v
}

fn op() -> impl Strategy<Value = Op> {
    let i = 0..ACCOUNTS;
    prop_oneof![
        (i.clone(), 0..2usize, 1u128..50_000).prop_map(|(from, to, amount)| Op::Delegate {
            from,
            to,
            amount
        }),
        (i.clone(), 0..2usize, 1u128..50_000).prop_map(|(from, to, amount)| Op::Undelegate {
            from,
            to,
            amount
        }),
        (i.clone(), 0u128..2_000, any::<bool>()).prop_map(|(from, deposit, spend)| Op::Submit {
            from,
            deposit,
            spend
        }),
        (i.clone(), 1u64..4, 1u128..1_000).prop_map(|(from, id, amount)| Op::Deposit {
            from,
            id,
            amount
        }),
        (i.clone(), 1u64..4, 1u8..5).prop_map(|(from, id, option)| Op::Vote { from, id, option }),
        (i.clone(), 0u8..6).prop_map(|(from, token)| Op::Mint { from, token }),
        (i.clone(), 0u8..6, i.clone()).prop_map(|(from, token, to)| Op::Transfer {
            from,
            token,
            to
        }),
        (i.clone(), 0u8..6, 1u128..10_000).prop_map(|(from, token, price)| Op::List {
            from,
            token,
            price
        }),
        (i.clone(), 0u8..6, 1u128..10_000).prop_map(|(from, token, price)| Op::Buy {
            from,
            token,
            price
        }),
        i.clone().prop_map(|from| Op::Unjail { from }),
        (i, 0..2usize, 0u64..6, any::<bool>()).prop_map(|(from, validator, back, forged)| {
            Op::DoubleSign {
                from,
                validator,
                back,
                forged,
            }
        }),
    ]
}

fn to_msg(chain: &Chain, op: &Op) -> (usize, Msg) {
    let a = |i: usize| chain.addr(i);
    let tok = |t: u8| format!("t{t}");
    match op.clone() {
        Op::Unjail { from } => (from, Msg::Staking(StakingMsg::Unjail { operator: a(from) })),
        Op::DoubleSign {
            from,
            validator,
            back,
            forged,
        } => {
            let k = key(500 + validator as u64);
            let address =
                lode_state::modules::staking::set::cons_addr(&k.verification_key().to_bytes());
            let height = (chain.height + 1).saturating_sub(back);
            let second = if forged { key(777) } else { k.clone() };
            (
                from,
                Msg::Evidence(EvidenceMsg::SubmitDoubleSign {
                    submitter: a(from),
                    vote_a: vote(&k, address, height, 1),
                    vote_b: vote(&second, address, height, 2),
                }),
            )
        }
        Op::Delegate { from, to, amount } => (
            from,
            Msg::Staking(StakingMsg::Delegate {
                delegator: a(from),
                validator: a(to),
                amount,
            }),
        ),
        Op::Undelegate { from, to, amount } => (
            from,
            Msg::Staking(StakingMsg::Undelegate {
                delegator: a(from),
                validator: a(to),
                amount,
            }),
        ),
        Op::Submit {
            from,
            deposit,
            spend,
        } => (
            from,
            Msg::Gov(GovMsg::SubmitProposal {
                proposer: a(from),
                title: "p".into(),
                description: String::new(),
                content: if spend {
                    ProposalContent::TreasurySpend {
                        recipient: a(from),
                        amount: 1_000,
                    }
                } else {
                    ProposalContent::ParamChange(vec![("gov.quorum_bps".into(), "3000".into())])
                },
                initial_deposit: deposit,
            }),
        ),
        Op::Deposit { from, id, amount } => (
            from,
            Msg::Gov(GovMsg::Deposit {
                depositor: a(from),
                proposal_id: id,
                amount,
            }),
        ),
        Op::Vote { from, id, option } => {
            let o = match option {
                1 => VoteOption::Yes,
                2 => VoteOption::Abstain,
                3 => VoteOption::No,
                _ => VoteOption::NoWithVeto,
            };
            (from, Msg::Gov(GovMsg::vote(a(from), id, o)))
        }
        Op::Mint { from, token } => (
            from,
            Msg::Nft(NftMsg::Mint {
                minter: a(from),
                collection: "art".into(),
                token_id: tok(token),
                owner: a(from),
                uri: String::new(),
            }),
        ),
        Op::Transfer { from, token, to } => (
            from,
            Msg::Nft(NftMsg::Transfer {
                sender: a(from),
                collection: "art".into(),
                token_id: tok(token),
                to: a(to),
            }),
        ),
        Op::List { from, token, price } => (
            from,
            Msg::Nft(NftMsg::List {
                seller: a(from),
                collection: "art".into(),
                token_id: tok(token),
                price,
            }),
        ),
        Op::Buy { from, token, price } => (
            from,
            Msg::Nft(NftMsg::Buy {
                buyer: a(from),
                collection: "art".into(),
                token_id: tok(token),
                price,
            }),
        ),
    }
}

/// Two validators (accounts 0 and 1) and an open-mint collection with a 5% royalty.
fn setup() -> Chain {
    // A short signing window, so random absences jail validators (and unjails are accepted) within a run.
    let mut params = module_params();
    params.staking.signed_blocks_window = 4;
    params.staking.max_missed_bps = 5_000;
    params.staking.jail_blocks = 3;
    params.staking.slash_downtime_bps = 1_000;
    let mut chain = Chain::with_params(ACCOUNTS as u64, params);
    for i in 0..2 {
        let operator = chain.addr(i);
        chain.ok(
            i,
            Msg::Staking(StakingMsg::CreateValidator {
                operator,
                consensus_key: key(500 + i as u64).verification_key().to_bytes(),
                moniker: "v".into(),
                self_bond: 100_000,
            }),
        );
    }
    let creator = chain.addr(2);
    chain.ok(
        2,
        Msg::Nft(NftMsg::CreateCollection {
            creator,
            id: "art".into(),
            name: "Art".into(),
            symbol: "ART".into(),
            uri: String::new(),
            royalty_bps: 500,
            max_supply: Some(5),
            open_mint: true,
        }),
    );
    chain
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn module_workloads_are_deterministic_and_keep_every_invariant(
        blocks in prop::collection::vec((prop::collection::vec(op(), 0..8), 0u8..8), 1..10)
    ) {
        let mut a = setup();
        let mut b = setup();
        for (ops, absent) in &blocks {
            let mut nonces: Vec<u64> = (0..ACCOUNTS).map(|i| a.nonce(i)).collect();
            let txs: Vec<Vec<u8>> = ops
                .iter()
                .map(|op| {
                    let (from, msg) = to_msg(&a, op);
                    let tx = sign_msg(CHAIN_ID, &a.keys[from], nonces[from], MODULE_FEE, msg);
                    nonces[from] += 1;
                    tx
                })
                .collect();
            // The previous block's commit: validators 0, 1 and the genesis one, each absent by its bit.
            let commit = last_commit(*absent);
            let fa = a.finalize(txs.clone(), Some(commit.clone()));
            let fb = b.finalize(txs, Some(commit));
            prop_assert_eq!(&fa.app_hash, &fb.app_hash);
            prop_assert_eq!(&fa.validator_updates, &fb.validator_updates);
            let (ra, rb) = (fa.tx_results, fb.tx_results);
            let ca: Vec<u32> = ra.iter().map(|r| r.code).collect();
            let cb: Vec<u32> = rb.iter().map(|r| r.code).collect();
            prop_assert_eq!(ca, cb);
            a.check_invariants();
        }
    }
}

/// A last commit of validators 0 and 1 (consensus keys 500, 501) and the genesis validator (key 999), each
/// absent when its bit of `absent` is set.
fn last_commit(absent: u8) -> tendermint_proto::v0_38::abci::CommitInfo {
    use tendermint_proto::v0_38::{abci, types::BlockIdFlag};
    let keys = [key(500), key(501), key(999)];
    abci::CommitInfo {
        round: 0,
        votes: keys
            .iter()
            .enumerate()
            .map(|(i, k)| abci::VoteInfo {
                validator: Some(abci::Validator {
                    address: bytes::Bytes::copy_from_slice(
                        &lode_state::modules::staking::set::cons_addr(
                            &k.verification_key().to_bytes(),
                        ),
                    ),
                    power: 1,
                }),
                block_id_flag: if absent & (1 << i) != 0 {
                    BlockIdFlag::Absent as i32
                } else {
                    BlockIdFlag::Commit as i32
                },
            })
            .collect(),
    }
}
