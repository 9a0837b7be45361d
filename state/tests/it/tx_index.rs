//! The tx index points at a tx's first successful inclusion, whatever a proposer replays later.

use lode_state::tx::{sign_send, tx_hash};

use crate::common::*;

#[test]
fn a_replayed_committed_tx_does_not_move_its_index_entry_to_the_failed_replay() {
    let mut chain = Chain::new(2);
    let to = addr(&chain.keys[1]);
    let tx = sign_send(CHAIN_ID, &chain.keys[0], 0, FEE, &to, 500);
    let hash = tx_hash(&tx);
    let (r, _) = chain.block(vec![tx.clone()]);
    assert_eq!(r[0].code, 0, "{}", r[0].log);
    assert_eq!(
        chain.app.store().tx_location(&hash).expect("index"),
        Some((1, 0))
    );

    // A byzantine proposer includes it again (ProcessProposal does not execute, so honest validators accept
    // the block); the replay fails on its spent nonce and must not take over the index.
    let (r, _) = chain.block(vec![tx.clone()]);
    assert_ne!(r[0].code, 0, "a replay succeeded");
    assert_eq!(
        chain.app.store().tx_location(&hash).expect("index"),
        Some((1, 0))
    );
}

#[test]
fn a_tx_twice_in_one_block_is_indexed_at_its_successful_copy() {
    let mut chain = Chain::new(2);
    let to = addr(&chain.keys[1]);
    let tx = sign_send(CHAIN_ID, &chain.keys[0], 0, FEE, &to, 500);
    let (r, _) = chain.block(vec![tx.clone(), tx.clone()]);
    assert_eq!(r[0].code, 0, "{}", r[0].log);
    assert_ne!(r[1].code, 0, "the copy succeeded");
    assert_eq!(
        chain.app.store().tx_location(&tx_hash(&tx)).expect("index"),
        Some((1, 0))
    );
}

#[test]
fn a_tx_that_never_succeeded_keeps_its_first_inclusion() {
    let mut chain = Chain::new(2);
    let to = addr(&chain.keys[1]);
    // A nonce from the future fails every time.
    let tx = sign_send(CHAIN_ID, &chain.keys[0], 7, FEE, &to, 500);
    let other = sign_send(CHAIN_ID, &chain.keys[1], 0, FEE, &to, 1);
    let (r, _) = chain.block(vec![tx.clone()]);
    assert_ne!(r[0].code, 0);
    let (r, _) = chain.block(vec![other, tx.clone()]);
    assert_ne!(r[1].code, 0);
    assert_eq!(
        chain.app.store().tx_location(&tx_hash(&tx)).expect("index"),
        Some((1, 0))
    );
}
