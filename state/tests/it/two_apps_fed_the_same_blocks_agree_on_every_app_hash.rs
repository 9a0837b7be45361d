//! Two fresh applications fed the same random blocks agree on every app hash, and supply is conserved.

use ed25519_consensus::SigningKey;
use lode_state::tx::sign_send;
use proptest::prelude::*;

use crate::common::*;

const ACCOUNTS: u64 = 6;

/// One tx of a random workload.
#[derive(Debug, Clone)]
enum Op {
    Transfer {
        from: usize,
        to: usize,
        amount: u128,
    },
    Overspend {
        from: usize,
        to: usize,
    },
    WrongNonce {
        from: usize,
        skew: u64,
    },
    BadSignature {
        from: usize,
        to: usize,
    },
    Garbage(Vec<u8>),
    LowFee {
        from: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let idx = 0..ACCOUNTS as usize;
    prop_oneof![
        6 => (idx.clone(), idx.clone(), 1u128..5_000).prop_map(|(from, to, amount)| Op::Transfer { from, to, amount }),
        1 => (idx.clone(), idx.clone()).prop_map(|(from, to)| Op::Overspend { from, to }),
        1 => (idx.clone(), 1u64..3).prop_map(|(from, skew)| Op::WrongNonce { from, skew }),
        1 => (idx.clone(), idx.clone()).prop_map(|(from, to)| Op::BadSignature { from, to }),
        1 => prop::collection::vec(any::<u8>(), 0..40).prop_map(Op::Garbage),
        1 => idx.prop_map(|from| Op::LowFee { from }),
    ]
}

/// Turns ops into tx bytes, tracking the nonces the generator believes in (failed txs may make later
/// ones fail too; that is part of the workload).
fn encode(ops: &[Op], keys: &[SigningKey], nonces: &mut [u64]) -> Vec<Vec<u8>> {
    ops.iter()
        .map(|op| match op {
            Op::Transfer { from, to, amount } => {
                let tx = sign_send(
                    CHAIN_ID,
                    &keys[*from],
                    nonces[*from],
                    FEE,
                    &addr(&keys[*to]),
                    *amount,
                );
                nonces[*from] += 1;
                tx
            }
            Op::Overspend { from, to } => {
                let tx = sign_send(
                    CHAIN_ID,
                    &keys[*from],
                    nonces[*from],
                    FEE,
                    &addr(&keys[*to]),
                    START_BALANCE * 2,
                );
                nonces[*from] += 1;
                tx
            }
            Op::WrongNonce { from, skew } => sign_send(
                CHAIN_ID,
                &keys[*from],
                nonces[*from] + skew,
                FEE,
                &addr(&keys[0]),
                1,
            ),
            Op::BadSignature { from, to } => {
                let mut tx = sign_send(
                    CHAIN_ID,
                    &keys[*from],
                    nonces[*from],
                    FEE,
                    &addr(&keys[*to]),
                    1,
                );
                let n = tx.len();
                tx[n - 3] ^= 0x10;
                tx
            }
            Op::Garbage(b) => b.clone(),
            Op::LowFee { from } => {
                sign_send(CHAIN_ID, &keys[*from], nonces[*from], 1, &addr(&keys[0]), 1)
            }
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn two_apps_fed_the_same_blocks_agree_on_every_app_hash(
        blocks in prop::collection::vec(prop::collection::vec(op(), 0..12), 1..6)
    ) {
        let mut a = Chain::new(ACCOUNTS);
        let mut b = Chain::new(ACCOUNTS);
        let mut nonces = vec![0u64; ACCOUNTS as usize];
        for ops in &blocks {
            let txs = encode(ops, &a.keys, &mut nonces);
            let (ra, ha) = a.block(txs.clone());
            let (rb, hb) = b.block(txs);
            prop_assert_eq!(&ha, &hb);
            let codes_a: Vec<u32> = ra.iter().map(|r| r.code).collect();
            let codes_b: Vec<u32> = rb.iter().map(|r| r.code).collect();
            prop_assert_eq!(codes_a, codes_b);
        }
    }

    #[test]
    fn supply_equals_the_sum_of_balances_after_every_block(
        blocks in prop::collection::vec(prop::collection::vec(op(), 0..16), 1..8)
    ) {
        let mut chain = Chain::new(ACCOUNTS);
        let mut nonces = vec![0u64; ACCOUNTS as usize];
        for ops in &blocks {
            let txs = encode(ops, &chain.keys.clone(), &mut nonces);
            chain.block(txs);
            let (sum, supply) = chain.supply_check();
            prop_assert_eq!(sum, supply);
            prop_assert_eq!(
                supply,
                ACCOUNTS as u128 * START_BALANCE + genesis_bond(&lode_state::Params::default())
            );
        }
    }
}
