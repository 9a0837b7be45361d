//! The golden run: a fixed sequence of blocks, holding every message kind of every module (valid and
//! invalid), every ante failure and every end-of-block path, goes through a fresh application; the app hash
//! and a digest of the whole FinalizeBlock response (codes, logs, gas, events) after each block must equal
//! the ones recorded in `tests/golden/app_hashes.txt` before the module restructure.
//!
//! The txs are built from wire types (`lode_proto`) and signed with [`lode_state::tx::sign_raw`], so this
//! test depends on no state-machine type that a restructure may move.
//!
//! To re-record after a deliberate change of behaviour, and only then (`state/README.md`, "How to add a
//! module", says when): `LODE_BLESS=1 cargo nextest run --workspace -E 'package(lode-state) and
//! (test(error_codes) or test(golden))'`, and say why in the commit.

use bytes::Bytes;
use ed25519_consensus::SigningKey;
use lode_proto::tx::v1::{self as pb, msg::Sum};
use lode_proto::{bank::v1 as bankpb, gov::v1 as govpb, nft::v1 as nftpb, staking::v1 as stpb};
use lode_state::{tx::sign_raw, Address};
use prost::Message;
use sha2::{Digest, Sha256};
use tendermint_proto::{google::protobuf::Timestamp, v0_38::abci::RequestFinalizeBlock};

use crate::common::*;

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/app_hashes.txt");

/// Accounts 0..6 are funded at genesis; 6..9 form the 2-of-3 multisig.
const ACCOUNTS: u64 = 9;

struct Run {
    chain: Chain,
    lines: Vec<String>,
}

fn a(chain: &Chain, i: usize) -> String {
    chain.addr(i).to_string()
}

fn msg(sum: Sum) -> pb::Msg {
    pb::Msg { sum: Some(sum) }
}

fn send(from: &str, to: &str, amount: &str) -> pb::Msg {
    msg(Sum::Send(bankpb::MsgSend {
        from: from.into(),
        to: to.into(),
        amount: amount.into(),
    }))
}

fn body(msgs: Vec<pb::Msg>) -> pb::TxBody {
    pb::TxBody {
        msgs,
        memo: String::new(),
        timeout_height: 0,
        chain_id: CHAIN_ID.into(),
    }
}

fn auth(key: &SigningKey, nonce: u64, fee: u128) -> pb::AuthInfo {
    pb::AuthInfo {
        public_key: key.verification_key().to_bytes().to_vec(),
        nonce,
        fee: Some(pb::Fee {
            amount: fee.to_string(),
        }),
        multisig: None,
    }
}

impl Run {
    /// A tx of account `i` at its committed nonce plus `offset`.
    fn tx(&self, i: usize, offset: u64, msgs: Vec<pb::Msg>) -> Vec<u8> {
        let key = &self.chain.keys[i];
        sign_raw(
            &body(msgs),
            &auth(key, self.chain.nonce(i) + offset, MODULE_FEE),
            key,
        )
    }

    fn one(&self, i: usize, m: pb::Msg) -> Vec<u8> {
        self.tx(i, 0, vec![m])
    }

    /// FinalizeBlock (with a fixed time and block hash) and Commit; records the app hash, the codes and
    /// gas of every tx, and a digest of the whole response.
    fn block(&mut self, txs: Vec<Vec<u8>>) {
        let c = &mut self.chain;
        c.height += 1;
        let h = c.height;
        let resp = c
            .app
            .try_finalize_block(RequestFinalizeBlock {
                txs: txs.into_iter().map(Bytes::from).collect(),
                height: h as i64,
                time: Some(Timestamp {
                    seconds: 1_800_000_000 + 5 * h as i64,
                    nanos: 0,
                }),
                hash: Bytes::from(Sha256::digest(h.to_be_bytes()).to_vec()),
                ..Default::default()
            })
            .expect("finalize");
        c.app.try_commit().expect("commit");
        let codes: Vec<String> = resp
            .tx_results
            .iter()
            .map(|r| format!("{}/{}", r.code, r.gas_used))
            .collect();
        let mut without_hash = resp.clone();
        without_hash.app_hash = Bytes::new();
        let digest = hex::encode(Sha256::digest(without_hash.encode_to_vec()));
        self.lines.push(format!(
            "{h} app_hash={} response={} txs=[{}]",
            hex::encode(&resp.app_hash),
            &digest[..16],
            codes.join(" ")
        ));
    }
}

fn multisig_keys(chain: &Chain) -> (u32, Vec<Vec<u8>>, Vec<usize>) {
    // Keys sorted ascending, as the wire form requires; remember which account each slot is.
    let mut slots: Vec<(Vec<u8>, usize)> = (6..9)
        .map(|i| (chain.keys[i].verification_key().to_bytes().to_vec(), i))
        .collect();
    slots.sort();
    let (keys, idx) = slots.into_iter().unzip();
    (2, keys, idx)
}

fn multisig_address(chain: &Chain) -> Address {
    let (t, keys, _) = multisig_keys(chain);
    let keys: Vec<[u8; 32]> = keys
        .iter()
        .map(|k| k.as_slice().try_into().expect("32 bytes"))
        .collect();
    Address::multisig(t, &keys)
}

/// A multisig tx signed by the given slots.
fn multisig_tx(chain: &Chain, nonce: u64, msgs: Vec<pb::Msg>, signing_slots: &[usize]) -> Vec<u8> {
    let (threshold, public_keys, idx) = multisig_keys(chain);
    let body_bytes = body(msgs).encode_to_vec();
    let auth_info_bytes = pb::AuthInfo {
        public_key: Vec::new(),
        nonce,
        fee: Some(pb::Fee {
            amount: MODULE_FEE.to_string(),
        }),
        multisig: Some(pb::MultisigPublicKey {
            threshold,
            public_keys,
        }),
    }
    .encode_to_vec();
    let doc = lode_state::tx::sign_doc_bytes(CHAIN_ID, &body_bytes, &auth_info_bytes);
    let signatures = (0..3)
        .map(|slot| {
            if signing_slots.contains(&slot) {
                chain.keys[idx[slot]].sign(&doc).to_bytes().to_vec()
            } else {
                Vec::new()
            }
        })
        .collect();
    pb::Tx {
        body_bytes,
        auth_info_bytes,
        signatures,
    }
    .encode_to_vec()
}

fn cons_key(seed: u64) -> Vec<u8> {
    key(seed).verification_key().to_bytes().to_vec()
}

fn delegate(d: &str, v: &str, amount: &str) -> pb::Msg {
    msg(Sum::Delegate(stpb::MsgDelegate {
        delegator: d.into(),
        validator: v.into(),
        amount: amount.into(),
    }))
}

fn undelegate(d: &str, v: &str, amount: &str) -> pb::Msg {
    msg(Sum::Undelegate(stpb::MsgUndelegate {
        delegator: d.into(),
        validator: v.into(),
        amount: amount.into(),
    }))
}

fn create_validator(op: &str, ck: Vec<u8>, moniker: &str, bond: &str) -> pb::Msg {
    msg(Sum::CreateValidator(stpb::MsgCreateValidator {
        operator: op.into(),
        consensus_key: ck,
        moniker: moniker.into(),
        self_bond: bond.into(),
    }))
}

fn submit(
    proposer: &str,
    title: &str,
    content: Option<govpb::proposal_content::Sum>,
    dep: &str,
) -> pb::Msg {
    msg(Sum::SubmitProposal(govpb::MsgSubmitProposal {
        proposer: proposer.into(),
        title: title.into(),
        description: "golden".into(),
        content: Some(govpb::ProposalContent { sum: content }),
        initial_deposit: dep.into(),
    }))
}

fn param_change(path: &str, value: &str) -> Option<govpb::proposal_content::Sum> {
    Some(govpb::proposal_content::Sum::ParamChange(
        govpb::ParamChanges {
            changes: vec![govpb::ParamChange {
                path: path.into(),
                value: value.into(),
            }],
        },
    ))
}

fn spend(to: &str, amount: &str) -> Option<govpb::proposal_content::Sum> {
    Some(govpb::proposal_content::Sum::TreasurySpend(
        govpb::TreasurySpend {
            recipient: to.into(),
            amount: amount.into(),
        },
    ))
}

fn text() -> Option<govpb::proposal_content::Sum> {
    Some(govpb::proposal_content::Sum::Text(govpb::Text {}))
}

fn gov_deposit(d: &str, id: u64, amount: &str) -> pb::Msg {
    msg(Sum::GovDeposit(govpb::MsgDeposit {
        depositor: d.into(),
        proposal_id: id,
        amount: amount.into(),
    }))
}

fn vote(v: &str, id: u64, options: &[(i32, u32)]) -> pb::Msg {
    msg(Sum::Vote(govpb::MsgVote {
        voter: v.into(),
        proposal_id: id,
        options: options
            .iter()
            .map(|(option, weight_ppm)| govpb::WeightedVoteOption {
                option: *option,
                weight_ppm: *weight_ppm,
            })
            .collect(),
    }))
}

const ONE: u32 = 1_000_000;
const YES: i32 = 1;
const ABSTAIN: i32 = 2;
const NO: i32 = 3;
const VETO: i32 = 4;

fn collection(creator: &str, id: &str, royalty: u32, max_supply: u64, open: bool) -> pb::Msg {
    msg(Sum::NftCreateCollection(nftpb::MsgCreateCollection {
        creator: creator.into(),
        id: id.into(),
        name: format!("{id} name"),
        symbol: "GLD".into(),
        uri: "ipfs://golden".into(),
        royalty_bps: royalty,
        max_supply,
        open_mint: open,
    }))
}

fn mint(minter: &str, c: &str, t: &str, owner: &str) -> pb::Msg {
    msg(Sum::NftMint(nftpb::MsgMint {
        minter: minter.into(),
        collection: c.into(),
        token_id: t.into(),
        owner: owner.into(),
        uri: format!("ipfs://{t}"),
    }))
}

fn nft_transfer(sender: &str, c: &str, t: &str, to: &str) -> pb::Msg {
    msg(Sum::NftTransfer(nftpb::MsgTransfer {
        sender: sender.into(),
        collection: c.into(),
        token_id: t.into(),
        to: to.into(),
    }))
}

fn approve(owner: &str, c: &str, t: &str, spender: &str, expiry: u64) -> pb::Msg {
    msg(Sum::NftApprove(nftpb::MsgApprove {
        owner: owner.into(),
        collection: c.into(),
        token_id: t.into(),
        spender: spender.into(),
        expiry_height: expiry,
    }))
}

fn set_operator(owner: &str, c: &str, op: &str, approved: bool, expiry: u64) -> pb::Msg {
    msg(Sum::NftSetOperator(nftpb::MsgSetOperator {
        owner: owner.into(),
        collection: c.into(),
        operator: op.into(),
        approved,
        expiry_height: expiry,
    }))
}

fn burn(owner: &str, c: &str, t: &str) -> pb::Msg {
    msg(Sum::NftBurn(nftpb::MsgBurn {
        owner: owner.into(),
        collection: c.into(),
        token_id: t.into(),
    }))
}

fn list(seller: &str, c: &str, t: &str, price: &str) -> pb::Msg {
    msg(Sum::NftList(nftpb::MsgList {
        seller: seller.into(),
        collection: c.into(),
        token_id: t.into(),
        price: price.into(),
    }))
}

fn cancel(seller: &str, c: &str, t: &str) -> pb::Msg {
    msg(Sum::NftCancelListing(nftpb::MsgCancelListing {
        seller: seller.into(),
        collection: c.into(),
        token_id: t.into(),
    }))
}

fn buy(buyer: &str, c: &str, t: &str, price: &str) -> pb::Msg {
    msg(Sum::NftBuy(nftpb::MsgBuy {
        buyer: buyer.into(),
        collection: c.into(),
        token_id: t.into(),
        price: price.into(),
    }))
}

/// The whole golden run; returns one line per block.
fn golden_run() -> Vec<String> {
    let mut params = module_params();
    params.staking.unbonding_blocks = 8;
    params.gov.deposit_period_blocks = 4;
    params.gov.voting_period_blocks = 3;
    let mut r = Run {
        chain: Chain::with_params(ACCOUNTS, params),
        lines: Vec::new(),
    };
    let c = |r: &Run, i: usize| a(&r.chain, i);
    let ms = multisig_address(&r.chain).to_string();

    // 1. bank: valid send, multi-send, funding the multisig; invalid amount, funds, outputs, address.
    r.block(vec![
        r.one(0, send(&c(&r, 0), &c(&r, 1), "1000")),
        r.one(
            1,
            msg(Sum::MultiSend(bankpb::MsgMultiSend {
                from: c(&r, 1),
                outputs: vec![
                    bankpb::Output {
                        to: c(&r, 2),
                        amount: "10".into(),
                    },
                    bankpb::Output {
                        to: ms.clone(),
                        amount: "5000000".into(),
                    },
                ],
            })),
        ),
        r.one(2, send(&c(&r, 2), &c(&r, 3), "0")),
        r.one(3, send(&c(&r, 3), &c(&r, 4), &u128::MAX.to_string())),
        r.one(
            4,
            msg(Sum::MultiSend(bankpb::MsgMultiSend {
                from: c(&r, 4),
                outputs: vec![],
            })),
        ),
        r.one(5, send(&c(&r, 5), "lode1notanaddress", "1")),
        r.one(5, send(&c(&r, 5), &c(&r, 1), "01")),
        // Two messages in one tx: the second fails, so neither moves funds (but the fee is paid).
        r.tx(
            4,
            0,
            vec![
                send(&c(&r, 4), &c(&r, 1), "5"),
                send(&c(&r, 4), &c(&r, 1), &(START_BALANCE * 2).to_string()),
            ],
        ),
    ]);

    // 2. ante and stateless failures.
    {
        let k0 = &r.chain.keys[0];
        let n0 = r.chain.nonce(0);
        let good = |m: pb::Msg| body(vec![m]);
        let to1 = c(&r, 1);
        let from0 = c(&r, 0);
        let mut wrong_chain = good(send(&from0, &to1, "1"));
        wrong_chain.chain_id = "other-chain".into();
        let mut timed_out = good(send(&from0, &to1, "1"));
        timed_out.timeout_height = 1;
        let mut long_memo = good(send(&from0, &to1, "1"));
        long_memo.memo = "m".repeat(300);
        let mut too_large = good(send(&from0, &to1, "1"));
        too_large.memo = "m".repeat(70 * 1024);
        let too_many = body((0..300).map(|_| send(&from0, &to1, "1")).collect());
        let empty = body(vec![]);
        let mut bad_sig = pb::Tx::decode(
            sign_raw(
                &good(send(&from0, &to1, "1")),
                &auth(k0, n0, MODULE_FEE),
                k0,
            )
            .as_slice(),
        )
        .expect("decode");
        bad_sig.signatures[0][0] ^= 1;
        let mut two_sigs = bad_sig.clone();
        two_sigs.signatures.push(vec![0; 64]);
        let mut short_key = auth(k0, n0, MODULE_FEE);
        short_key.public_key.pop();
        let short_key_tx = pb::Tx {
            body_bytes: good(send(&from0, &to1, "1")).encode_to_vec(),
            auth_info_bytes: short_key.encode_to_vec(),
            signatures: vec![vec![0; 64]],
        };
        let txs = vec![
            vec![0xff, 0x01, 0x02],
            sign_raw(&wrong_chain, &auth(k0, n0, MODULE_FEE), k0),
            bad_sig.encode_to_vec(),
            two_sigs.encode_to_vec(),
            short_key_tx.encode_to_vec(),
            sign_raw(
                &good(send(&from0, &to1, "1")),
                &auth(k0, n0 + 5, MODULE_FEE),
                k0,
            ),
            sign_raw(&good(send(&from0, &to1, "1")), &auth(k0, n0, 1), k0),
            sign_raw(&timed_out, &auth(k0, n0, MODULE_FEE), k0),
            sign_raw(&long_memo, &auth(k0, n0, MODULE_FEE), k0),
            sign_raw(&too_large, &auth(k0, n0, MODULE_FEE), k0),
            sign_raw(&too_many, &auth(k0, n0, MODULE_FEE), k0),
            sign_raw(&empty, &auth(k0, n0, MODULE_FEE), k0),
            // Signer mismatch: account 0 signs a send from account 1.
            sign_raw(
                &good(send(&to1, &from0, "1")),
                &auth(k0, n0, MODULE_FEE),
                k0,
            ),
            pb::Tx {
                body_bytes: good(pb::Msg { sum: None }).encode_to_vec(),
                auth_info_bytes: auth(k0, n0, MODULE_FEE).encode_to_vec(),
                signatures: vec![vec![0; 64]],
            }
            .encode_to_vec(),
            // A valid one, then the same nonce again (replayed within the block).
            sign_raw(
                &good(send(&from0, &to1, "7")),
                &auth(k0, n0, MODULE_FEE),
                k0,
            ),
            sign_raw(
                &good(send(&from0, &to1, "8")),
                &auth(k0, n0, MODULE_FEE),
                k0,
            ),
            // Fee above the balance of an account that never had funds: a fresh key.
            sign_raw(
                &good(send(
                    &Address::from_public_key(&key(77).verification_key().to_bytes()).to_string(),
                    &to1,
                    "1",
                )),
                &auth(&key(77), 0, MODULE_FEE),
                &key(77),
            ),
        ];
        r.block(txs);
    }

    // 3. multisig: 2 of 3 signs a send; 1 of 3 is below the threshold; a bad key set.
    {
        let to0 = c(&r, 0);
        let n = r.chain.account(&multisig_address(&r.chain)).nonce;
        let ok = multisig_tx(&r.chain, n, vec![send(&ms, &to0, "500")], &[0, 2]);
        let below = multisig_tx(&r.chain, n + 1, vec![send(&ms, &to0, "1")], &[1]);
        let mut unsorted = pb::Tx::decode(ok.as_slice()).expect("decode");
        let mut auth_pb = pb::AuthInfo::decode(unsorted.auth_info_bytes.as_slice()).expect("auth");
        if let Some(m) = auth_pb.multisig.as_mut() {
            m.public_keys.swap(0, 1);
        }
        unsorted.auth_info_bytes = auth_pb.encode_to_vec();
        r.block(vec![ok, below, unsorted.encode_to_vec()]);
    }

    // 4. staking: validators 0 and 1, delegations; duplicates, unknown validator, bad key, moniker, bond.
    r.block(vec![
        r.one(
            0,
            create_validator(&c(&r, 0), cons_key(100), "v0", "200000"),
        ),
        r.one(
            1,
            create_validator(&c(&r, 1), cons_key(101), "v1", "100000"),
        ),
        r.one(
            2,
            create_validator(&c(&r, 2), cons_key(100), "dup-key", "1000"),
        ),
        r.one(3, create_validator(&c(&r, 3), vec![1; 31], "short", "1000")),
        r.one(4, create_validator(&c(&r, 4), cons_key(104), "", "1000")),
        r.one(5, delegate(&c(&r, 5), &c(&r, 3), "10")),
    ]);
    r.block(vec![
        r.one(
            0,
            create_validator(&c(&r, 0), cons_key(110), "again", "1000"),
        ),
        r.one(2, delegate(&c(&r, 2), &c(&r, 0), "50000")),
        r.one(3, delegate(&c(&r, 3), &c(&r, 1), "30000")),
        r.one(4, create_validator(&c(&r, 4), cons_key(104), "v4", "0")),
        r.one(5, create_validator(&c(&r, 5), vec![0; 32], "v5", "1000")),
    ]);
    // 6. undelegations (completing at height 6 + 8 = 14); one too large; one from an unknown validator.
    r.block(vec![
        r.one(2, undelegate(&c(&r, 2), &c(&r, 0), "20000")),
        r.one(3, undelegate(&c(&r, 3), &c(&r, 1), "30001")),
        r.one(4, undelegate(&c(&r, 4), &c(&r, 5), "1")),
    ]);

    // 7. gov: proposals of every kind and outcome-to-be; invalid ones.
    r.block(vec![
        // id 1: param change with the full deposit, straight to voting; will pass.
        r.one(
            0,
            submit(
                &c(&r, 0),
                "dearer sends",
                param_change("gas_per_send", "1200"),
                "1000",
            ),
        ),
        // id 2: treasury spend with a partial deposit; topped up below, will pass.
        r.one(
            1,
            submit(&c(&r, 1), "spend", spend(&c(&r, 5), "100"), "400"),
        ),
        // id 3: text with no deposit; will expire.
        r.one(2, submit(&c(&r, 2), "text", text(), "0")),
        // id 4: text with the full deposit; will be vetoed.
        r.one(3, submit(&c(&r, 3), "veto me", text(), "1000")),
        // id 5: treasury spend larger than the treasury; will pass and fail to execute.
        r.one(
            4,
            submit(
                &c(&r, 4),
                "too much",
                spend(&c(&r, 4), "999999999999"),
                "1000",
            ),
        ),
        r.one(
            5,
            submit(&c(&r, 5), "bad", param_change("gov.nope", "1"), "1000"),
        ),
    ]);
    r.block(vec![
        r.one(5, submit(&c(&r, 5), "   ", text(), "0")),
        r.one(1, gov_deposit(&c(&r, 1), 2, "600")),
        r.one(2, gov_deposit(&c(&r, 2), 99, "1")),
        r.one(3, gov_deposit(&c(&r, 3), 1, "5")),
        r.one(4, submit(&c(&r, 4), "no content", None, "0")),
    ]);
    // 9. votes.
    r.block(vec![
        r.one(0, vote(&c(&r, 0), 1, &[(YES, ONE)])),
        r.one(1, vote(&c(&r, 1), 2, &[(YES, 600_000), (ABSTAIN, 400_000)])),
        r.one(2, vote(&c(&r, 2), 3, &[(YES, ONE)])),
        r.one(3, vote(&c(&r, 3), 4, &[(VETO, ONE)])),
        r.one(4, vote(&c(&r, 4), 1, &[(YES, 500_000)])),
        r.one(5, vote(&c(&r, 5), 1, &[(9, ONE)])),
    ]);
    r.block(vec![
        r.tx(0, 0, vec![vote(&c(&r, 0), 2, &[(YES, ONE)])]),
        r.tx(0, 1, vec![vote(&c(&r, 0), 4, &[(NO, ONE)])]),
        r.tx(0, 2, vec![vote(&c(&r, 0), 5, &[(YES, ONE)])]),
        r.one(1, vote(&c(&r, 1), 4, &[(VETO, ONE)])),
        r.one(2, vote(&c(&r, 2), 77, &[(YES, ONE)])),
    ]);

    // 11. nft: collections and mints.
    r.block(vec![
        r.one(0, collection(&c(&r, 0), "art", 500, 0, false)),
        r.one(1, collection(&c(&r, 1), "capped", 0, 1, true)),
        r.one(2, collection(&c(&r, 2), "greedy", 9_999, 0, false)),
        r.one(3, collection(&c(&r, 3), "Bad Id", 0, 0, false)),
    ]);
    r.block(vec![
        r.tx(
            0,
            0,
            vec![
                mint(&c(&r, 0), "art", "t1", &c(&r, 1)),
                mint(&c(&r, 0), "art", "t2", &c(&r, 2)),
                mint(&c(&r, 0), "art", "t3", &c(&r, 3)),
            ],
        ),
        r.one(1, mint(&c(&r, 1), "art", "t4", &c(&r, 1))),
        r.one(2, mint(&c(&r, 2), "capped", "c1", &c(&r, 2))),
        r.one(3, mint(&c(&r, 3), "nope", "x", &c(&r, 3))),
        r.one(4, collection(&c(&r, 4), "art", 0, 0, false)),
    ]);
    r.block(vec![
        r.one(0, mint(&c(&r, 0), "art", "t1", &c(&r, 0))),
        r.one(3, mint(&c(&r, 3), "capped", "c2", &c(&r, 3))),
        r.one(1, nft_transfer(&c(&r, 1), "art", "t1", &c(&r, 4))),
        r.one(2, approve(&c(&r, 2), "art", "t2", &c(&r, 5), 0)),
        r.one(3, set_operator(&c(&r, 3), "art", &c(&r, 5), true, 0)),
        r.one(5, nft_transfer(&c(&r, 5), "art", "t4", &c(&r, 5))),
        r.one(4, approve(&c(&r, 4), "art", "zz", &c(&r, 5), 0)),
    ]);
    // 14. approvals used; expiring approval; list, buy, cancel, burn; and every refusal.
    r.block(vec![
        r.one(5, nft_transfer(&c(&r, 5), "art", "t2", &c(&r, 5))),
        r.one(4, list(&c(&r, 4), "art", "t1", "10000")),
        r.one(3, approve(&c(&r, 3), "art", "t3", &c(&r, 2), 3)),
        r.one(0, list(&c(&r, 0), "art", "t3", "5")),
        r.one(1, burn(&c(&r, 1), "art", "t4")),
    ]);
    r.block(vec![
        r.one(2, nft_transfer(&c(&r, 2), "art", "t3", &c(&r, 2))),
        r.one(1, buy(&c(&r, 1), "art", "t1", "9999")),
        r.one(4, buy(&c(&r, 4), "art", "t1", "10000")),
        r.one(3, buy(&c(&r, 3), "art", "t1", "10000")),
        r.one(0, buy(&c(&r, 0), "art", "t3", "5")),
        r.one(5, list(&c(&r, 5), "art", "t2", "300")),
    ]);
    r.block(vec![
        r.one(5, cancel(&c(&r, 5), "art", "t2")),
        r.one(2, cancel(&c(&r, 2), "art", "t2")),
        r.one(3, set_operator(&c(&r, 3), "art", &c(&r, 5), false, 0)),
        r.one(1, list(&c(&r, 1), "art", "t1", "0")),
        r.one(4, burn(&c(&r, 4), "art", "t2")),
        r.one(0, burn(&c(&r, 0), "art", "t2")),
    ]);
    // Empty blocks through the last unbonding completion and tally, with a few transfers between.
    while r.chain.height < 20 {
        let h = r.chain.height;
        let txs = if h.is_multiple_of(2) {
            vec![r.one(0, send(&c(&r, 0), &c(&r, 2), &(h + 1).to_string()))]
        } else {
            vec![]
        };
        r.block(txs);
    }
    r.chain.check_invariants();
    r.lines
}

#[test]
fn a_fixed_block_sequence_through_every_module_gives_the_golden_app_hashes() {
    let lines = golden_run();
    let got = lines.join("\n") + "\n";
    if std::env::var_os("LODE_BLESS").is_some() {
        std::fs::write(GOLDEN, &got).expect("write golden file");
        return;
    }
    let want = std::fs::read_to_string(GOLDEN).expect("golden file");
    for (i, (g, w)) in got.lines().zip(want.lines()).enumerate() {
        assert_eq!(g, w, "block {} differs from the golden run", i + 1);
    }
    assert_eq!(got.lines().count(), want.lines().count(), "block count");
}
