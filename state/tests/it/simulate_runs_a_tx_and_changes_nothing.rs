//! `LodeApp::simulate`: a tx of any kind runs against the last commit and leaves state, nonces and the
//! mempool's view exactly as they were.

use lode_state::{
    modules::nft::NftMsg,
    tx::{sign_send, Msg},
};

use crate::common::*;

#[test]
fn a_simulated_transfer_reports_gas_and_events_and_changes_no_key_and_no_nonce() {
    let mut chain = Chain::new(2);
    chain.block(vec![]);
    let to = chain.addr(1);
    let before = chain.snapshot();
    let tx = sign_send(CHAIN_ID, &chain.keys[0], 0, FEE, &to, 500);

    let sim = chain.app.simulate(&tx);
    assert_eq!(sim.result.code, 0, "{}", sim.result.log);
    assert_eq!(sim.height, 1);
    assert!(sim.gas > 0);
    assert_eq!(sim.result.gas_used as u64, sim.gas);
    assert!(sim.min_fee > 0 && sim.min_fee <= FEE);
    let types: Vec<&str> = sim
        .result
        .events
        .iter()
        .map(|e| e.r#type.as_str())
        .collect();
    assert!(types.contains(&"transfer"), "{types:?}");

    assert_eq!(chain.snapshot(), before, "simulate changed committed state");
    assert_eq!(chain.nonce(0), 0);
    // The mempool's view did not see it either: the same tx (nonce 0) is still admitted, twice simulated or not.
    assert_eq!(chain.app.simulate(&tx), sim);
    assert_eq!(chain.check(&tx).0, 0);
    // And the committed result is what the simulation said.
    let (r, _) = chain.block(vec![tx]);
    assert_eq!(r[0].code, 0);
    assert_eq!(r[0].gas_used as u64, sim.gas);
    assert_eq!(r[0].events, sim.result.events);
}

#[test]
fn a_failing_tx_simulates_with_its_error_code_and_changes_nothing() {
    let mut chain = Chain::new(2);
    chain.block(vec![]);
    let to = chain.addr(1);
    let before = chain.snapshot();
    // More than the balance: the message fails after the fee; the committed block would charge the fee.
    let too_much = sign_send(CHAIN_ID, &chain.keys[0], 0, FEE, &to, START_BALANCE * 2);
    let sim = chain.app.simulate(&too_much);
    assert_ne!(sim.result.code, 0);
    assert!(sim.result.events.is_empty());
    // A stale nonce, a bad signature and garbage get the codes CheckTx gives them.
    let future = sign_send(CHAIN_ID, &chain.keys[0], 5, FEE, &to, 1);
    assert_eq!(
        chain.app.simulate(&future).result.code,
        chain.check(&future).0
    );
    let mut forged = sign_send(CHAIN_ID, &chain.keys[0], 0, FEE, &to, 1);
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let sim = chain.app.simulate(&forged);
    assert_ne!(sim.result.code, 0);
    assert_eq!(sim.result.code, chain.check(&forged).0);
    assert_ne!(chain.app.simulate(b"not a tx").result.code, 0);
    assert_eq!(chain.app.simulate(b"not a tx").gas, 0);
    assert_eq!(chain.snapshot(), before);
    assert_eq!(chain.nonce(0), 0);
}

#[test]
fn a_module_message_simulates_like_a_transfer() {
    let mut chain = Chain::with_params(2, module_params());
    chain.block(vec![]);
    let before = chain.snapshot();
    let creator = chain.addr(0);
    let create = chain.sign(
        0,
        Msg::Nft(NftMsg::CreateCollection {
            creator,
            id: "art".into(),
            name: "Art".into(),
            symbol: "ART".into(),
            uri: String::new(),
            royalty_bps: 100,
            max_supply: None,
            open_mint: false,
        }),
    );
    let sim = chain.app.simulate(&create);
    assert_eq!(sim.result.code, 0, "{}", sim.result.log);
    assert!(sim
        .result
        .events
        .iter()
        .any(|e| e.r#type == "nft_collection_created"));
    assert_eq!(chain.snapshot(), before);
    // Committing it for real gives the same result.
    let (r, _) = chain.block(vec![create]);
    assert_eq!(r[0].events, sim.result.events);
}
