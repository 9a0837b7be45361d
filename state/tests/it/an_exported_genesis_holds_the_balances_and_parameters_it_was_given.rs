//! Genesis through the module registry: what InitChain wrote, exported again, is the same `app_state`
//! (balances in address order), and a transfer shows up in the next export.

use lode_state::genesis::{export, GenesisBalance};

use crate::common::*;

#[test]
fn an_exported_genesis_holds_the_balances_and_parameters_it_was_given() {
    let mut chain = Chain::with_params(3, module_params());
    let exported = export(chain.app.store()).expect("export");
    assert_eq!(exported.params, module_params());
    // The genesis validator's self-bond is exported as its operator's balance and its validator entry.
    let bond = module_params().staking.power_reduction * 10;
    let mut want: Vec<GenesisBalance> = (0..3)
        .map(|i| GenesisBalance {
            address: chain.addr(i).to_string(),
            amount: START_BALANCE.to_string(),
        })
        .chain(std::iter::once(GenesisBalance {
            address: addr(&key(999)).to_string(),
            amount: bond.to_string(),
        }))
        .collect();
    want.sort_by_key(|b| b.address.parse::<lode_state::Address>().expect("address"));
    assert_eq!(exported.balances, want);
    assert_eq!(exported.validators.len(), 1);
    assert_eq!(exported.validators[0].self_bond, bond.to_string());
    assert!(exported.validate().is_empty());

    let to = chain.addr(1);
    let tx = lode_state::tx::sign_send(CHAIN_ID, &chain.keys[0], 0, FEE, &to, 5);
    assert_eq!(chain.block(vec![tx]).0[0].code, 0);
    let after = export(chain.app.store()).expect("export");
    let balance_of = |i: usize| {
        after
            .balances
            .iter()
            .find(|b| b.address == chain.addr(i).to_string())
            .map(|b| b.amount.clone())
    };
    assert_eq!(balance_of(1), Some((START_BALANCE + 5).to_string()));
    assert_eq!(balance_of(0), Some((START_BALANCE - 5 - FEE).to_string()));
}
