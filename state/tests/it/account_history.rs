//! The account history index: every tx an account signed or an event of which names it, newest first, paged
//! by (height, index), never mixing neighbouring accounts, and in step with the tx index (a replayed tx's
//! failure is not listed where its success is).

use lode_state::tx::{sign_send, tx_hash};

use crate::common::*;

fn history(
    chain: &Chain,
    who: &[u8; 20],
    before: Option<(u64, u32)>,
    limit: usize,
) -> Vec<(u64, u32, [u8; 32])> {
    let (page, _) = chain
        .app
        .store()
        .account_history(who, before, limit)
        .expect("history");
    page.iter()
        .map(|e| (e.height, e.index, e.tx_hash))
        .collect()
}

#[test]
fn an_accounts_txs_are_listed_newest_first_and_paged_without_gaps_or_repeats() {
    let mut chain = Chain::new(3);
    let (a, b, c) = (
        addr(&chain.keys[0]),
        addr(&chain.keys[1]),
        addr(&chain.keys[2]),
    );
    // Block 1: a→b, c→c (c only). Block 2: b→a, a→c. Block 3: a fails (a nonce from the future).
    let t1 = sign_send(CHAIN_ID, &chain.keys[0], 0, FEE, &b, 5);
    let t2 = sign_send(CHAIN_ID, &chain.keys[2], 0, FEE, &c, 5);
    let (r, _) = chain.block(vec![t1.clone(), t2.clone()]);
    assert!(r.iter().all(|r| r.code == 0), "{r:?}");
    let t3 = sign_send(CHAIN_ID, &chain.keys[1], 0, FEE, &a, 5);
    let t4 = sign_send(CHAIN_ID, &chain.keys[0], 1, FEE, &c, 5);
    let (r, _) = chain.block(vec![t3.clone(), t4.clone()]);
    assert!(r.iter().all(|r| r.code == 0), "{r:?}");
    let t5 = sign_send(CHAIN_ID, &chain.keys[0], 9, FEE, &b, 5);
    let (r, _) = chain.block(vec![t5.clone()]);
    assert_ne!(r[0].code, 0);

    let h = |t: &[u8]| tx_hash(t);
    // a signed t1, t4, t5 (failed, but signed) and received t3.
    assert_eq!(
        history(&chain, &a.0, None, 10),
        vec![
            (3, 0, h(&t5)),
            (2, 1, h(&t4)),
            (2, 0, h(&t3)),
            (1, 0, h(&t1))
        ]
    );
    // b received t1 and signed t3; the failed t5 to b moved nothing, so b is not named.
    assert_eq!(
        history(&chain, &b.0, None, 10),
        vec![(2, 0, h(&t3)), (1, 0, h(&t1))]
    );
    assert_eq!(
        history(&chain, &c.0, None, 10),
        vec![(2, 1, h(&t4)), (1, 1, h(&t2))]
    );
    // Pages of one: the same list, each page strictly before the last entry of the previous one.
    let mut paged = Vec::new();
    let mut before = None;
    for _ in 0..10 {
        let (page, next) = chain
            .app
            .store()
            .account_history(&a.0, before, 1)
            .expect("page");
        paged.extend(page.iter().map(|e| (e.height, e.index, e.tx_hash)));
        match next {
            Some(n) => before = Some(n),
            None => break,
        }
    }
    assert_eq!(paged, history(&chain, &a.0, None, 10));
    // A page that ends exactly at the last entry says there is no more.
    let (_, next) = chain
        .app
        .store()
        .account_history(&a.0, None, 4)
        .expect("page");
    assert_eq!(next, None);
    // An account that never appeared, and the accounts next to a in key order, list nothing of a's.
    let mut below = a.0;
    below[19] = below[19].wrapping_sub(1);
    let mut above = a.0;
    above[19] = above[19].wrapping_add(1);
    for other in [below, above, [0; 20], [0xff; 20]] {
        if [a.0, b.0, c.0].contains(&other) {
            continue;
        }
        assert!(history(&chain, &other, None, 10).is_empty());
    }
}

#[test]
fn a_replayed_tx_is_listed_once_at_its_successful_inclusion() {
    let mut chain = Chain::new(2);
    let (a, b) = (addr(&chain.keys[0]), addr(&chain.keys[1]));
    let tx = sign_send(CHAIN_ID, &chain.keys[0], 0, FEE, &b, 5);
    let (r, _) = chain.block(vec![tx.clone()]);
    assert_eq!(r[0].code, 0);
    // A byzantine proposer replays it; the replay fails and the index keeps the first inclusion.
    let (r, _) = chain.block(vec![tx.clone()]);
    assert_ne!(r[0].code, 0);
    for who in [a, b] {
        assert_eq!(
            history(&chain, &who.0, None, 10),
            vec![(1, 0, tx_hash(&tx))]
        );
    }
}
