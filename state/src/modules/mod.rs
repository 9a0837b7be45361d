//! The module registry: every state-machine module, listed once (in [`registry!`] at the bottom). Dispatch
//! of execution, end of block, queries, genesis, invariants and error codes goes through what it generates.
//! The order of the list is the order of end-of-block hooks and of genesis: it is consensus-critical, so a
//! new module goes at the end.
//!
//! Each module is a folder: `mod.rs` (its [`Module`] impl and state functions), `msg.rs` (its message type,
//! wire conversion and handlers), `state_key.rs`, `event.rs`, `error.rs` (its errors and code range),
//! `params.rs` where it has parameters, `query.rs` where it serves queries. Nothing under `modules/` imports
//! `exec` or `tx`: modules depend on the leaves (`address`, `amount`, `store::codec`, `event`, `params`,
//! `module`) and on other modules' public functions.

pub mod bank;
pub mod compute;
pub mod evidence;
pub mod gov;
pub mod market;
pub mod nft;
pub mod staking;

use lode_proto::tx::v1 as pb;

use crate::{
    address::Address,
    error::{CodeRange, StateError, StoreError, TxError, CORE_CODES},
    event::Event,
    genesis::AppState,
    module::{BlockCtx, Decoded, DelegationChange, Invariant, InvariantReport, Module},
    params::Params,
    query::{QueryError, QueryRead},
    store::{StateRead, StateWrite},
};

/// What the ante steps of every tx (nonce, fee payment: `crate::exec`) and the tx checker's read-ahead use
/// of the modules: the signer's account and the fee pools.
pub mod ante {
    pub use super::bank::{
        account, fee_collector, put_account, state_key::account as account_key, Account,
    };
    pub use super::gov::treasury;
}

/// Generates, from the list of modules, the [`Msg`] enum and every dispatch function below.
macro_rules! registry {
    ($($variant:ident => $module:ty),+ $(,)?) => {
        /// A state transition request: one message of one module.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Msg {
            $($variant(<$module as Module>::Msg),)+
        }

        /// The names of the modules, in registry order.
        pub const NAMES: &[&str] = &[$(<$module as Module>::NAME),+];

        /// Every module's code range, in registry order.
        pub const CODE_RANGES: &[CodeRange] = &[$(<$module as Module>::CODES),+];

        impl Msg {
            /// The name of the module that handles this message.
            pub fn module(&self) -> &'static str {
                match self {
                    $(Msg::$variant(_) => <$module as Module>::NAME,)+
                }
            }

            /// The account that must sign for this message.
            pub fn sender(&self) -> &Address {
                match self {
                    $(Msg::$variant(m) => <$module as Module>::sender(m),)+
                }
            }

            /// Gas charged for this message (None on overflow).
            pub fn gas(&self, p: &Params) -> Option<u64> {
                match self {
                    $(Msg::$variant(m) => <$module as Module>::gas(m, p),)+
                }
            }

            /// The module's stateless checks that need the parameters.
            pub fn check_stateless(&self, p: &Params) -> Result<(), TxError> {
                match self {
                    $(Msg::$variant(m) => <$module as Module>::check_stateless(m, p),)+
                }
            }

            /// State keys worth reading ahead before this message executes.
            pub fn prefetch(&self, keys: &mut Vec<Vec<u8>>) {
                match self {
                    $(Msg::$variant(m) => <$module as Module>::prefetch(m, keys),)+
                }
            }

            /// Executes the message in its module.
            pub fn execute<S: StateWrite + ?Sized>(
                &self,
                s: &mut S,
                ctx: BlockCtx<'_>,
                events: &mut Vec<Event>,
            ) -> Result<(), TxError> {
                match self {
                    $(Msg::$variant(m) => <$module as Module>::execute(s, m, ctx, events),)+
                }
            }
        }

        impl TryFrom<pb::Msg> for Msg {
            type Error = TxError;

            fn try_from(m: pb::Msg) -> Result<Self, TxError> {
                let Some(sum) = m.sum else {
                    return Err(TxError::Decode("message with no content".into()));
                };
                $(
                    let sum = match <$module as Module>::decode(sum) {
                        Decoded::Mine(r) => return r.map(Msg::$variant),
                        Decoded::NotMine(sum) => sum,
                    };
                )+
                Err(TxError::Decode(format!("no module handles message {sum:?}")))
            }
        }

        impl From<&Msg> for pb::Msg {
            fn from(m: &Msg) -> Self {
                let sum = match m {
                    $(Msg::$variant(m) => <$module as Module>::encode(m),)+
                };
                pb::Msg { sum: Some(sum) }
            }
        }

        /// Every module's end-of-block hook, in registry order, after the block's txs.
        pub fn end_block<S: StateWrite + ?Sized>(
            s: &mut S,
            ctx: BlockCtx<'_>,
        ) -> Result<Vec<Event>, TxError> {
            let mut events = Vec::new();
            $(<$module as Module>::end_block(s, ctx, &mut events)?;)+
            Ok(events)
        }

        /// Tells every module, in registry order, that a delegation changed (staking calls it).
        pub fn delegation_changed<S: StateWrite + ?Sized>(
            s: &mut S,
            change: &DelegationChange,
        ) -> Result<(), TxError> {
            $(<$module as Module>::on_delegation_changed(s, change)?;)+
            Ok(())
        }

        /// Every module's part of genesis, in registry order.
        pub fn init_genesis<S: StateWrite + ?Sized>(
            s: &mut S,
            genesis: &AppState,
        ) -> Result<(), StateError> {
            $(<$module as Module>::init_genesis(s, genesis)?;)+
            Ok(())
        }

        /// Every module's state, as genesis.
        pub fn export_genesis<S: StateRead + ?Sized>(
            s: &S,
            genesis: &mut AppState,
        ) -> Result<(), StoreError> {
            $(<$module as Module>::export_genesis(s, genesis)?;)+
            Ok(())
        }

        /// Serves a module query path over the state of one height; `None` if no module has the path.
        pub fn query(
            store: &dyn QueryRead,
            path: &str,
            data: &[u8],
        ) -> Option<Result<Vec<u8>, QueryError>> {
            $(
                if let Some(r) = <$module as Module>::query(store, path, data) {
                    return Some(r);
                }
            )+
            None
        }

        /// Every module's invariants, in registry order.
        pub fn invariants() -> Vec<Invariant> {
            let mut all = Vec::new();
            $(all.extend(<$module as Module>::invariants());)+
            all
        }

        /// One error of every kind any module returns, with the shared (core) ones first.
        pub fn error_examples() -> Vec<TxError> {
            let mut all = TxError::examples();
            $(all.extend(<$module as Module>::error_examples());)+
            all
        }
    };
}

registry! {
    Bank => bank::Bank,
    Staking => staking::Staking,
    Gov => gov::Gov,
    Nft => nft::Nft,
    Market => market::Market,
    Compute => compute::Compute,
    Evidence => evidence::Evidence,
}

/// Every code in use with its stable name, sorted by code.
pub fn error_codes() -> Vec<(u32, &'static str)> {
    let mut all: Vec<(u32, &'static str)> = error_examples()
        .iter()
        .map(|e| (e.code(), e.name()))
        .collect();
    all.sort();
    all.dedup();
    all
}

/// The range a code falls in: the core's or a module's.
pub fn range_of(code: u32) -> Option<CodeRange> {
    std::iter::once(CORE_CODES)
        .chain(CODE_RANGES.iter().copied())
        .find(|r| r.contains(code))
}

/// Checks every invariant against `state` (the block's writes over the last commit).
pub fn check_invariants(state: &dyn StateRead, height: u64) -> Result<(), StateError> {
    for inv in invariants() {
        let (left, right) = (inv.sides)(state)?;
        if left.value != right.value {
            return Err(StateError::Invariant(Box::new(InvariantReport {
                invariant: inv.name,
                height,
                left,
                right,
            })));
        }
    }
    Ok(())
}
