//! State-machine modules. Each owns its storage keys (`state_key.rs`), events and message handlers.

pub mod bank;
pub mod gov;
pub mod nft;
pub mod staking;
