//! Shared test helpers: a chain with funded accounts on a temp-dir RocksDB.

use bytes::Bytes;
use ed25519_consensus::SigningKey;
use lode_state::{
    genesis::{AppState, GenesisBalance},
    modules::bank,
    store::StateRead,
    Address, LodeApp, Params,
};
use tendermint_proto::v0_38::{
    abci::{
        response_process_proposal::ProposalStatus, ExecTxResult, RequestCheckTx,
        RequestFinalizeBlock, RequestInitChain, RequestProcessProposal, ValidatorUpdate,
    },
    crypto::{public_key::Sum, PublicKey},
};

pub const CHAIN_ID: &str = "lode-test-1";
pub const START_BALANCE: u128 = 1_000_000_000;

/// A deterministic key from a seed.
pub fn key(seed: u64) -> SigningKey {
    let mut b = [0u8; 32];
    b[..8].copy_from_slice(&seed.to_le_bytes());
    b[31] = 0x5a;
    SigningKey::from(b)
}

pub fn addr(k: &SigningKey) -> Address {
    Address::from_public_key(&k.verification_key().to_bytes())
}

pub struct Chain {
    pub app: LodeApp,
    pub keys: Vec<SigningKey>,
    pub height: u64,
    _dir: tempfile::TempDir,
}

pub fn init_request(keys: &[SigningKey], params: &Params) -> RequestInitChain {
    let app_state = AppState {
        balances: keys
            .iter()
            .map(|k| GenesisBalance {
                address: addr(k).to_string(),
                amount: START_BALANCE.to_string(),
            })
            .collect(),
        params: params.clone(),
    };
    RequestInitChain {
        chain_id: CHAIN_ID.into(),
        initial_height: 1,
        app_state_bytes: Bytes::from(serde_json::to_vec(&app_state).expect("json")),
        validators: vec![ValidatorUpdate {
            pub_key: Some(PublicKey {
                sum: Some(Sum::Ed25519(
                    key(999).verification_key().to_bytes().to_vec(),
                )),
            }),
            power: 10,
        }],
        ..Default::default()
    }
}

impl Chain {
    pub fn new(accounts: u64) -> Chain {
        Chain::with_params(accounts, Params::default())
    }

    pub fn with_params(accounts: u64, params: Params) -> Chain {
        let dir = tempfile::tempdir().expect("tempdir");
        let app = LodeApp::open(dir.path()).expect("open");
        let keys: Vec<SigningKey> = (0..accounts).map(key).collect();
        app.try_init_chain(init_request(&keys, &params))
            .expect("init chain");
        Chain {
            app,
            keys,
            height: 0,
            _dir: dir,
        }
    }

    /// FinalizeBlock + Commit of `txs`; returns the tx results and the app hash.
    pub fn block(&mut self, txs: Vec<Vec<u8>>) -> (Vec<ExecTxResult>, Vec<u8>) {
        self.height += 1;
        let resp = self
            .app
            .try_finalize_block(RequestFinalizeBlock {
                txs: txs.into_iter().map(Bytes::from).collect(),
                height: self.height as i64,
                ..Default::default()
            })
            .expect("finalize");
        self.app.try_commit().expect("commit");
        (resp.tx_results, resp.app_hash.to_vec())
    }

    pub fn check(&self, tx: &[u8]) -> (u32, String) {
        let r = self.app.check_tx(RequestCheckTx {
            tx: Bytes::copy_from_slice(tx),
            r#type: 0,
        });
        (r.code, r.log)
    }

    pub fn process(&self, txs: Vec<Vec<u8>>) -> bool {
        let r = self.app.process_proposal(RequestProcessProposal {
            txs: txs.into_iter().map(Bytes::from).collect(),
            height: self.height as i64 + 1,
            ..Default::default()
        });
        r.status == ProposalStatus::Accept as i32
    }

    pub fn account(&self, a: &Address) -> bank::Account {
        bank::account(self.app.store(), a).expect("account")
    }

    pub fn nonce(&self, i: usize) -> u64 {
        self.account(&addr(&self.keys[i])).nonce
    }

    /// Every account's balance, summed, next to the recorded supply.
    pub fn supply_check(&self) -> (u128, u128) {
        let sum = self
            .app
            .store()
            .scan_prefix(bank::state_key::ACCOUNT_PREFIX)
            .expect("scan")
            .iter()
            .map(|(_, v)| bank::Account::decode(v).expect("decode").balance)
            .sum();
        (sum, bank::supply(self.app.store()).expect("supply"))
    }

    /// A snapshot of every committed state key, to prove a failure changed nothing.
    pub fn snapshot(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let s = self.app.store();
        let mut all = s.scan_prefix(b"").expect("scan");
        all.retain(|(k, _)| s.get(k).ok().flatten().is_some());
        all
    }
}

/// The fee that always covers a simple transfer under default parameters.
pub const FEE: u128 = 10_000;
