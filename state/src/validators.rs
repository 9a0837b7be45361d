//! The consensus validator set as the application knows it: (ed25519 key, voting power), sorted by key,
//! committed in state so the app hash covers it. Genesis stores the first one; staking updates it at the end
//! of every block (`modules::staking::set`) and returns the difference as ABCI validator updates.

use borsh::{BorshDeserialize, BorshSerialize};

use crate::{
    error::StoreError,
    store::{StateRead, StateWrite},
};

pub const STATE_KEY: &[u8] = b"consensus/validators";

/// Largest total voting power (CometBFT's `MaxTotalVotingPower`, `i64::MAX / 8`), so priority arithmetic in
/// any engine cannot overflow.
#[allow(
    clippy::arithmetic_side_effects,
    reason = "a constant division by a nonzero constant"
)]
pub const MAX_TOTAL_POWER: u64 = (i64::MAX / 8) as u64;

#[derive(BorshSerialize, BorshDeserialize)]
struct Set(Vec<([u8; 32], u64)>);

pub fn store<S: StateWrite + ?Sized>(s: &mut S, set: &[([u8; 32], u64)]) {
    // Borsh-encoding a vector of arrays and integers cannot fail.
    let bytes = borsh::to_vec(&Set(set.to_vec())).unwrap_or_default();
    s.put(STATE_KEY.to_vec(), bytes);
}

pub fn load<S: StateRead + ?Sized>(s: &S) -> Result<Vec<([u8; 32], u64)>, StoreError> {
    match s.get(STATE_KEY)? {
        None => Ok(Vec::new()),
        Some(b) => Set::try_from_slice(&b)
            .map(|s| s.0)
            .map_err(|e| StoreError::Corrupt {
                key: "consensus/validators".into(),
                reason: e.to_string(),
            }),
    }
}
