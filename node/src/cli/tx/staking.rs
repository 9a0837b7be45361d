//! `lode tx staking …`: validators, delegation and unbonding.

use clap::Subcommand;
use eyre::eyre;
use lode_proto::{staking::v1 as stpb, tx::v1 as txpb};

use super::{msg, MsgCommand, TxOpts};

#[derive(Debug, Subcommand)]
pub(crate) enum StakingTx {
    /// Register the signer as a validator operator with a self-bond.
    CreateValidator {
        #[command(flatten)]
        opts: TxOpts,
        /// The validator's ed25519 consensus public key, hex (default: `<home>/keys/validator_key.json`).
        #[arg(long)]
        consensus_key: Option<String>,
        #[arg(long)]
        moniker: String,
        /// Tokens the operator bonds to itself.
        #[arg(long)]
        self_bond: u128,
    },
    /// Bond tokens to a validator.
    Delegate {
        #[command(flatten)]
        opts: TxOpts,
        /// The validator's operator address.
        #[arg(long)]
        validator: String,
        #[arg(long)]
        amount: u128,
    },
    /// Start unbonding tokens from a validator (paid out after the unbonding period).
    Undelegate {
        #[command(flatten)]
        opts: TxOpts,
        #[arg(long)]
        validator: String,
        #[arg(long)]
        amount: u128,
    },
    /// Let the signer's validator, jailed for downtime, back into the set (from its `jailed_until` height
    /// on; `lode query staking signing-info` shows it).
    Unjail {
        #[command(flatten)]
        opts: TxOpts,
    },
}

impl MsgCommand for StakingTx {
    fn opts(&self) -> &TxOpts {
        match self {
            StakingTx::CreateValidator { opts, .. }
            | StakingTx::Delegate { opts, .. }
            | StakingTx::Undelegate { opts, .. }
            | StakingTx::Unjail { opts } => opts,
        }
    }

    fn build(&self, signer: &str) -> eyre::Result<txpb::Msg> {
        self.message(signer.to_owned()).map(|(m, _)| m)
    }
}

impl StakingTx {
    /// The message and the shared flags of this command.
    fn message(&self, s: String) -> eyre::Result<(txpb::Msg, &TxOpts)> {
        use txpb::msg::Sum;
        Ok(match self {
            StakingTx::CreateValidator {
                opts,
                consensus_key,
                moniker,
                self_bond,
            } => {
                let key = match consensus_key {
                    Some(hexkey) => {
                        hex::decode(hexkey).map_err(|e| eyre!("--consensus-key is not hex: {e}"))?
                    }
                    None => {
                        let path = opts.home.home().key_path("validator_key");
                        crate::keys::KeyFile::load(&path)?
                            .public_key_bytes()?
                            .to_vec()
                    }
                };
                (
                    msg(Sum::CreateValidator(stpb::MsgCreateValidator {
                        operator: s,
                        consensus_key: key,
                        moniker: moniker.clone(),
                        self_bond: self_bond.to_string(),
                    })),
                    opts,
                )
            }
            StakingTx::Delegate {
                opts,
                validator,
                amount,
            } => (
                msg(Sum::Delegate(stpb::MsgDelegate {
                    delegator: s,
                    validator: validator.clone(),
                    amount: amount.to_string(),
                })),
                opts,
            ),
            StakingTx::Undelegate {
                opts,
                validator,
                amount,
            } => (
                msg(Sum::Undelegate(stpb::MsgUndelegate {
                    delegator: s,
                    validator: validator.clone(),
                    amount: amount.to_string(),
                })),
                opts,
            ),
            StakingTx::Unjail { opts } => (msg(Sum::Unjail(stpb::MsgUnjail { operator: s })), opts),
        })
    }
}
