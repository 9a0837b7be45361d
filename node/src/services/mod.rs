//! Long-running services the node exposes.

pub mod abci_socket;
pub mod blob_exchange;
pub mod block_store;
pub mod chain;
pub mod events;
pub mod evidence;
pub mod explorer;
pub mod gossip;
pub mod grpc;
pub mod in_process;
pub mod mempool;
pub mod metrics;
pub mod stream;
pub mod tx_fetch;

/// `first` and whatever else is already queued behind it, until the items' `size`s add up to `max` or
/// more: what a task that checks batches takes together.
pub(crate) fn take_queued<T>(
    first: T,
    queue: &mut tokio::sync::mpsc::Receiver<T>,
    max: usize,
    size: impl Fn(&T) -> usize,
) -> Vec<T> {
    let mut total = size(&first);
    let mut group = vec![first];
    while total < max {
        match queue.try_recv() {
            Ok(item) => {
                total += size(&item);
                group.push(item);
            }
            Err(_) => break,
        }
    }
    group
}

/// What the services' unit tests share.
#[cfg(test)]
pub(crate) mod test_support {
    use bytes::Bytes;
    use ed25519_consensus::SigningKey;
    use lode_state::genesis::{AppState, GenesisBalance};
    use lode_state::LodeApp;
    use tendermint_proto::crypto::{public_key::Sum, PublicKey};
    use tendermint_proto::v0_38::abci::{RequestInitChain, ValidatorUpdate};

    /// An application on `dir` after InitChain of chain `c`: one validator holding all the power, and
    /// 10^12 base units in each of `funded`'s accounts.
    pub(crate) fn initialised_app(dir: &std::path::Path, funded: &[&SigningKey]) -> LodeApp {
        let app = LodeApp::open(dir).expect("open");
        let validator = SigningKey::from([9u8; 32]).verification_key().to_bytes();
        let mut app_state = AppState {
            balances: funded
                .iter()
                .map(|k| GenesisBalance {
                    address: lode_state::tx::address_of(k).to_string(),
                    amount: "1000000000000".into(),
                })
                .collect(),
            ..AppState::default()
        };
        app_state.add_self_bonded_validator("services-test", &validator, 10);
        app.try_init_chain(RequestInitChain {
            chain_id: "c".into(),
            initial_height: 1,
            app_state_bytes: Bytes::from(serde_json::to_vec(&app_state).expect("json")),
            validators: vec![ValidatorUpdate {
                pub_key: Some(PublicKey {
                    sum: Some(Sum::Ed25519(validator.to_vec())),
                }),
                power: i64::try_from(lode_state::modules::staking::power::TOTAL_POWER)
                    .expect("fits"),
            }],
            ..Default::default()
        })
        .expect("init chain");
        app
    }
}
