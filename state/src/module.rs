//! The interface every state-machine module implements ([`Module`]), and the block context it runs in
//! ([`BlockCtx`]). The registry in [`crate::modules`] lists the modules once; execution, end of block,
//! queries, genesis, invariants and error codes all reach a module through it.
//!
//! # Contract
//!
//! - **State.** A module reads and writes state only through the [`StateRead`] / [`StateWrite`] handed to it.
//!   It owns the keys in its `state_key.rs` and touches another module's state only through that module's
//!   public functions (as gov moves tokens with `bank::transfer`).
//! - **Determinism.** Every method is a pure function of the state and its arguments: no clocks, no RNG, no
//!   I/O, no `HashMap` iteration, no floats. Height, time and the block hash come in [`BlockCtx`]. Two nodes
//!   fed the same blocks must make the same writes in the same order and emit the same events.
//! - **Durability.** Methods run synchronously against an overlay. Nothing is durable until the
//!   application's Commit writes the whole block in one batch. The messages of a tx run in their own
//!   overlay: if one fails, the writes of every message of that tx are dropped (its fee and nonce stay).
//! - **Errors.** An error from [`Module::execute`] is a refused message: its code is the client's answer.
//!   An error from [`Module::end_block`] or genesis, or a broken invariant, is a bug or corruption: the
//!   block is not committed and the node halts. Neither may be reachable by a client.
//! - **Stateless checks.** [`Module::decode`] and [`Module::check_stateless`] run in the parallel,
//!   signature-checking phase, before any state is read, on every node that sees the tx (CheckTx,
//!   ProcessProposal, FinalizeBlock). They may depend only on the message and the parameters.

use std::fmt::Debug;

use lode_proto::tx::v1::msg::Sum;

use crate::{
    address::Address,
    error::{CodeRange, StateError, StoreError, TxError},
    event::Event,
    genesis::AppState,
    params::Params,
    query::{QueryError, QueryRead},
    store::{StateRead, StateWrite},
};

/// A block's time, as the proposer set it (seconds and nanoseconds since the Unix epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct BlockTime {
    pub seconds: i64,
    pub nanos: u32,
}

/// Block-level inputs to execution.
///
/// `hash` and `time` are the decided block's in FinalizeBlock. CheckTx and PrepareProposal execute against a
/// block that does not exist yet: there they are zero and the proposal's time, so a message handler must
/// not let its verdict depend on them (end-of-block hooks, which run only in FinalizeBlock, may).
#[derive(Debug, Clone, Copy)]
pub struct BlockCtx<'a> {
    pub height: u64,
    pub time: BlockTime,
    /// The block's hash (the compute module seeds its challenges with it).
    pub hash: [u8; 32],
    pub params: &'a Params,
    /// The chain's id (messages that carry a second party's signature bind it, like `LinkProvider`).
    pub chain_id: &'a str,
}

impl<'a> BlockCtx<'a> {
    /// The context of a block that is not decided yet (CheckTx, PrepareProposal): no hash, time zero.
    pub fn pending(height: u64, chain_id: &'a str, params: &'a Params) -> BlockCtx<'a> {
        BlockCtx {
            height,
            time: BlockTime::default(),
            hash: [0; 32],
            params,
            chain_id,
        }
    }
}

/// What [`Module::decode`] made of a protobuf message arm.
#[derive(Debug)]
pub enum Decoded<M> {
    /// The arm is this module's: its message, or why it is malformed.
    Mine(Result<M, TxError>),
    /// The arm belongs to another module; handed back unchanged.
    NotMine(Sum),
}

/// A change of one delegation, as staking reports it to every module ([`Module::on_delegation_changed`])
/// after a bond or an unbond, in the same overlay (so a refused tx drops what the hooks wrote too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DelegationChange {
    pub delegator: Address,
    pub validator: Address,
    /// The delegation before and after.
    pub before: u128,
    pub after: u128,
    /// The validator's total tokens (everything bonded to it) before and after.
    pub tokens_before: u128,
    pub tokens_after: u128,
}

/// One side of an invariant's equation: what it sums, and the total.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Side {
    pub what: &'static str,
    pub value: u128,
}

/// Computes an invariant's two sides from state.
pub type SidesFn = fn(&dyn StateRead) -> Result<(Side, Side), StoreError>;

/// An accounting invariant: two sums that must be equal after every block.
#[derive(Debug, Clone, Copy)]
pub struct Invariant {
    /// `module/name`, e.g. `bank/supply`.
    pub name: &'static str,
    /// Computes both sides from state.
    pub sides: SidesFn,
}

/// A broken invariant: which one, at which height, and the two sides that differ.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invariant {invariant} broken at height {height}: {} = {} but {} = {}",
    .left.what, .left.value, .right.what, .right.value
)]
pub struct InvariantReport {
    pub invariant: &'static str,
    pub height: u64,
    pub left: Side,
    pub right: Side,
}

/// A state-machine module. Every method is an associated function: a module holds no data of its own
/// (its state is in the store, its parameters in [`Params`]). See the module docs for the contract.
pub trait Module {
    /// The module's name: its query path prefix, its module-account names and its error codespace.
    const NAME: &'static str;
    /// The codes its errors may use (see [`CodeRange`]).
    const CODES: CodeRange;
    /// Its message type, checked and in domain types.
    type Msg: Debug + Clone + PartialEq + Eq;

    /// Converts this module's protobuf message arms (statelessly checking them), and hands back any other.
    fn decode(sum: Sum) -> Decoded<Self::Msg>;

    /// The protobuf arm of a message (the inverse of [`Module::decode`]).
    fn encode(msg: &Self::Msg) -> Sum;

    /// The account that must sign the message.
    fn sender(msg: &Self::Msg) -> &Address;

    /// Gas charged for the message (None on overflow).
    fn gas(msg: &Self::Msg, params: &Params) -> Option<u64>;

    /// Stateless checks that need the parameters (run after [`Module::decode`], in the parallel phase).
    fn check_stateless(_msg: &Self::Msg, _params: &Params) -> Result<(), TxError> {
        Ok(())
    }

    /// State keys worth fetching before the message executes (read-ahead during signature checks). Only a
    /// hint: it changes no result.
    fn prefetch(_msg: &Self::Msg, _keys: &mut Vec<Vec<u8>>) {}

    /// Executes one message. On error the caller drops every write of the tx's messages.
    fn execute<S: StateWrite + ?Sized>(
        s: &mut S,
        msg: &Self::Msg,
        ctx: BlockCtx<'_>,
        events: &mut Vec<Event>,
    ) -> Result<(), TxError>;

    /// Runs after the block's txs, in registry order. An error halts the block.
    fn end_block<S: StateWrite + ?Sized>(
        _s: &mut S,
        _ctx: BlockCtx<'_>,
        _events: &mut Vec<Event>,
    ) -> Result<(), TxError> {
        Ok(())
    }

    /// Called after staking changes a delegation (gov keeps its running tallies with it). An error refuses
    /// the message that bonded or unbonded.
    fn on_delegation_changed<S: StateWrite + ?Sized>(
        _s: &mut S,
        _change: &DelegationChange,
    ) -> Result<(), TxError> {
        Ok(())
    }

    /// Writes the module's part of genesis.
    fn init_genesis<S: StateWrite + ?Sized>(
        _s: &mut S,
        _genesis: &AppState,
    ) -> Result<(), StateError> {
        Ok(())
    }

    /// Adds the module's state to an exported genesis.
    fn export_genesis<S: StateRead + ?Sized>(
        _s: &S,
        _genesis: &mut AppState,
    ) -> Result<(), StoreError> {
        Ok(())
    }

    /// Serves a query path of this module (protobuf request in, protobuf response out) over the state of
    /// one height; `None` if the path is not the module's. A handler reads state only through `state`:
    /// what it reads is what a proven answer proves (`crate::query::answer`), and a client replays the
    /// handler over those entries, so it must be a pure function of `data` and the entries read.
    fn query(
        _state: &dyn QueryRead,
        _path: &str,
        _data: &[u8],
    ) -> Option<Result<Vec<u8>, QueryError>> {
        None
    }

    /// Its accounting invariants, checked after every block when `check_invariants` is on.
    fn invariants() -> Vec<Invariant> {
        Vec::new()
    }

    /// One error of every kind it returns, for the code catalogue and its tests.
    fn error_examples() -> Vec<TxError>;
}
