//! Shared test helpers: a chain with funded accounts on a temp-dir RocksDB.

use bytes::Bytes;
use ed25519_consensus::SigningKey;
use lode_state::{
    app::AppOptions,
    genesis::{AppState, GenesisBalance, GenesisStakingValidator},
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

pub use lode_state::modules::bank::BankMsg;

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
    // One genesis validator (key 999), self-bonding power 10 from its own account.
    let validator = key(999);
    let self_bond = genesis_bond(params);
    let mut balances: Vec<GenesisBalance> = keys
        .iter()
        .map(|k| GenesisBalance {
            address: addr(k).to_string(),
            amount: START_BALANCE.to_string(),
        })
        .collect();
    balances.push(GenesisBalance {
        address: addr(&validator).to_string(),
        amount: self_bond.to_string(),
    });
    let app_state = AppState {
        balances,
        validators: vec![GenesisStakingValidator {
            operator: addr(&validator).to_string(),
            moniker: "genesis".into(),
            consensus_key: hex::encode(validator.verification_key().to_bytes()),
            self_bond: self_bond.to_string(),
        }],
        params: params.clone(),
        compute_power: None,
    };
    RequestInitChain {
        chain_id: CHAIN_ID.into(),
        initial_height: 1,
        app_state_bytes: Bytes::from(serde_json::to_vec(&app_state).expect("json")),
        validators: vec![ValidatorUpdate {
            pub_key: Some(PublicKey {
                sum: Some(Sum::Ed25519(
                    validator.verification_key().to_bytes().to_vec(),
                )),
            }),
            // The only genesis validator holds all the power.
            power: i64::try_from(lode_state::modules::staking::power::TOTAL_POWER).expect("fits"),
        }],
        ..Default::default()
    }
}

/// The block hash tests give block `height` (the compute module seeds its challenges with it).
pub fn block_hash(height: u64) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(height.to_le_bytes()).into()
}

impl Chain {
    pub fn new(accounts: u64) -> Chain {
        Chain::with_params(accounts, Params::default())
    }

    pub fn with_params(accounts: u64, params: Params) -> Chain {
        Chain::with_options(accounts, params, AppOptions::default())
    }

    pub fn with_options(accounts: u64, params: Params, options: AppOptions) -> Chain {
        let dir = tempfile::tempdir().expect("tempdir");
        let app = LodeApp::open_with(dir.path(), options).expect("open");
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
        let resp = self.finalize(txs, None);
        (resp.tx_results, resp.app_hash.to_vec())
    }

    /// FinalizeBlock (with `last_commit` as its `decided_last_commit`) + Commit of `txs`; the whole
    /// response (validator updates, events).
    pub fn finalize(
        &mut self,
        txs: Vec<Vec<u8>>,
        last_commit: Option<tendermint_proto::v0_38::abci::CommitInfo>,
    ) -> tendermint_proto::v0_38::abci::ResponseFinalizeBlock {
        self.height += 1;
        let resp = self
            .app
            .try_finalize_block(RequestFinalizeBlock {
                txs: txs.into_iter().map(Bytes::from).collect(),
                height: self.height as i64,
                hash: Bytes::copy_from_slice(&block_hash(self.height)),
                decided_last_commit: last_commit,
                ..Default::default()
            })
            .expect("finalize");
        self.app.try_commit().expect("commit");
        resp
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

/// A fee that covers any single module message under default parameters.
pub const MODULE_FEE: u128 = 50_000;

/// Parameters for module tests: short periods, a small min deposit.
pub fn module_params() -> Params {
    let mut p = Params::default();
    p.gov.deposit_period_blocks = 5;
    p.gov.voting_period_blocks = 4;
    p.gov.min_deposit = 1_000;
    p.staking.unbonding_blocks = 10;
    // One token per unit of power: the genesis validator's bond (10) stays small next to the tests' stakes.
    p.staking.power_reduction = 1;
    p
}

/// The genesis validator's self-bond under `p` (power 10): part of the supply and of the total bonded.
pub fn genesis_bond(p: &Params) -> u128 {
    p.staking.power_reduction * 10
}

impl Chain {
    /// Signs `msg` with account `i`'s key at its committed nonce.
    pub fn sign(&self, i: usize, msg: lode_state::tx::Msg) -> Vec<u8> {
        lode_state::tx::sign_msg(CHAIN_ID, &self.keys[i], self.nonce(i), MODULE_FEE, msg)
    }

    /// One block with one tx of account `i`; returns its result.
    pub fn run(&mut self, i: usize, msg: lode_state::tx::Msg) -> ExecTxResult {
        let tx = self.sign(i, msg);
        let (mut r, _) = self.block(vec![tx]);
        r.remove(0)
    }

    /// Like `run`, but panics unless the tx succeeded.
    pub fn ok(&mut self, i: usize, msg: lode_state::tx::Msg) -> ExecTxResult {
        let r = self.run(i, msg);
        assert_eq!(r.code, 0, "{}", r.log);
        r
    }

    /// Empty blocks up to and including `height`.
    pub fn advance_to(&mut self, height: u64) {
        while self.height < height {
            self.block(vec![]);
        }
    }

    pub fn addr(&self, i: usize) -> Address {
        addr(&self.keys[i])
    }

    pub fn balance(&self, a: &Address) -> u128 {
        self.account(a).balance
    }

    /// An ABCI query of a module path; panics unless it succeeds.
    pub fn query<Req: prost::Message, Resp: prost::Message + Default>(
        &self,
        path: &str,
        req: &Req,
    ) -> Resp {
        let r = self.app.query(tendermint_proto::v0_38::abci::RequestQuery {
            data: Bytes::from(req.encode_to_vec()),
            path: path.into(),
            height: 0,
            prove: false,
        });
        assert_eq!(r.code, 0, "{path}: {}", r.log);
        Resp::decode(r.value.as_ref()).expect("decode response")
    }

    /// Every accounting invariant: supply == sum of balances; bonded pool == delegations + unbonding;
    /// total_bonded == delegations; deposit account == open deposits.
    pub fn check_invariants(&self) {
        use lode_state::modules::{gov, staking};
        let s = self.app.store();
        let (sum, supply) = self.supply_check();
        assert_eq!(sum, supply, "supply != sum of balances");
        let u = |v: &[u8]| u128::from_le_bytes(v.try_into().expect("16 bytes"));
        let delegated: u128 = s
            .scan_prefix(staking::state_key::DELEGATION_PREFIX)
            .expect("scan")
            .iter()
            .map(|(_, v)| u(v))
            .sum();
        let unbonding: u128 = s
            .scan_prefix(staking::state_key::UNBONDING_PREFIX)
            .expect("scan")
            .iter()
            .map(|(_, v)| u(v))
            .sum();
        assert_eq!(
            self.balance(&staking::bonded_pool()),
            delegated + unbonding,
            "bonded pool != bonds + unbonding"
        );
        assert_eq!(staking::total_bonded(s).expect("total"), delegated);
        let deposits: u128 = s
            .scan_prefix(gov::state_key::DEPOSIT_PREFIX)
            .expect("scan")
            .iter()
            .map(|(_, v)| u(v))
            .sum();
        assert_eq!(
            self.balance(&gov::deposits_account()),
            deposits,
            "deposit account != open deposits"
        );
    }

    /// Asserts that `msg` from account `i` is refused with `code` by CheckTx and in a block, and that the
    /// block changed nothing but the signer's fee and nonce (and the fee pools).
    pub fn assert_msg_rejected(&mut self, i: usize, msg: lode_state::tx::Msg, code: u32) {
        use lode_state::modules::gov;
        let tx = self.sign(i, msg);
        let (c, log) = self.check(&tx);
        assert_eq!(c, code, "CheckTx: {log}");
        let skip = [
            bank::state_key::account(&self.addr(i)),
            bank::state_key::account(&bank::fee_collector()),
            bank::state_key::account(&gov::treasury()),
        ];
        let strip = |snap: Vec<(Vec<u8>, Vec<u8>)>| -> Vec<(Vec<u8>, Vec<u8>)> {
            snap.into_iter()
                .filter(|(k, _)| !skip.contains(k))
                .collect()
        };
        let before = strip(self.snapshot());
        let nonce = self.nonce(i);
        let (r, _) = self.block(vec![tx]);
        assert_eq!(r[0].code, code, "FinalizeBlock: {}", r[0].log);
        assert_eq!(before, strip(self.snapshot()), "state changed");
        // A message refused statelessly never executes; one refused by a handler still pays fee and nonce.
        assert!(self.nonce(i) == nonce || self.nonce(i) == nonce + 1);
    }
}
