//! `lode init`: a fresh home for a one-validator chain.

use clap::Args;
use eyre::{bail, WrapErr};
use lode_genesis::Genesis;
use lode_state::genesis::AppState;
use time::{format_description::well_known::Rfc3339, OffsetDateTime};

use super::HomeArg;
use crate::{
    config::Config,
    home::{Home, DEV_KEY, NODE_KEY, VALIDATOR_KEY},
    keys::{self, KeyFile},
};

/// Self-bond of the single genesis validator, in units of `staking.power_reduction` (its consensus power
/// is all of it: 10^9).
const VALIDATOR_BOND_UNITS: u64 = 10;
/// Balance of the dev account, in base units.
const DEV_BALANCE: u128 = 1_000_000_000_000_000;

#[derive(Debug, Args)]
pub(super) struct InitArgs {
    #[command(flatten)]
    home: HomeArg,
    /// Chain id written into genesis.
    #[arg(long, env = "LODE_CHAIN_ID", default_value = "lode-devnet-1")]
    chain_id: String,
    /// Node name, also the validator's name in genesis.
    #[arg(long, env = "LODE_MONIKER", default_value = "lode-node")]
    moniker: String,
    /// Replace an existing home's config, genesis, node/validator/dev keys and data (other keys are kept).
    #[arg(long)]
    force: bool,
}

pub(super) fn run(args: &InitArgs) -> eyre::Result<()> {
    let home = args.home.home();
    prepare(&home, args.force)?;

    let node_key = KeyFile::generate(NODE_KEY)?;
    let validator_key = KeyFile::generate(VALIDATOR_KEY)?;
    let dev_key = KeyFile::generate(DEV_KEY)?;
    let genesis_time = OffsetDateTime::now_utc()
        .replace_nanosecond(0)?
        .format(&Rfc3339)?;
    // The dev account is the validator's operator: it self-bonds VALIDATOR_BOND_UNITS × power_reduction.
    let params = lode_state::Params::default();
    let (validator, staking, mut balance) = crate::testnet::genesis_validator(
        &args.moniker,
        &validator_key.public_key,
        &dev_key.address,
        VALIDATOR_BOND_UNITS,
        DEV_BALANCE,
        &params,
    )?;
    balance.address = dev_key.address.clone();
    let mut genesis = Genesis {
        chain_id: args.chain_id.clone(),
        genesis_time,
        initial_height: 1,
        validators: vec![validator],
        app_state: AppState {
            balances: vec![balance],
            validators: vec![staking],
            params,
            compute_power: None,
        },
    };
    genesis.set_validator_powers()?;
    // Validate before writing anything, so a bad --chain-id leaves no half-made home.
    let issues = genesis.validate();
    if !issues.is_empty() {
        return Err(lode_genesis::GenesisError::Invalid(issues).into());
    }
    let mut config = Config {
        moniker: args.moniker.clone(),
        ..Config::default()
    };
    // The dev account is this home's operator: it signs the evidence txs the node submits.
    config.evidence.key = DEV_KEY.to_owned();

    keys::create_keys_dir(&home.keys_dir())?;
    for key in [&node_key, &validator_key, &dev_key] {
        key.save_new(&home.key_path(&key.name))?;
    }
    genesis.save(home.genesis_path())?;
    // The config is written last: its presence marks a complete home.
    config.save(&home.config_path())?;

    super::emit(
        serde_json::json!({
            "home": home.root(),
            "chain_id": genesis.chain_id,
            "validator_key": validator_key.public_key,
            "dev_account": { "name": DEV_KEY, "address": dev_key.address, "balance": DEV_BALANCE.to_string() },
        }),
        || {
            println!("initialised {}", home.root().display());
            println!("chain id:          {}", genesis.chain_id);
            println!("validator key:     {}", validator_key.public_key);
            println!(
                "dev account:       {} (key {DEV_KEY}, balance {DEV_BALANCE})",
                dev_key.address
            );
            println!(
                "serve over ABCI:   lode abci --home {}",
                home.root().display()
            );
        },
    )?;
    Ok(())
}

/// Creates the home directory, or with `force` clears what `init` writes; refuses an existing home otherwise.
fn prepare(home: &Home, force: bool) -> eyre::Result<()> {
    let ours = [
        home.config_path(),
        home.genesis_path(),
        home.key_path(NODE_KEY),
        home.key_path(VALIDATOR_KEY),
        home.key_path(DEV_KEY),
    ];
    let existing: Vec<_> = ours.iter().filter(|p| p.exists()).collect();
    if !force && (!existing.is_empty() || home.data_dir().exists()) {
        bail!(
            "{} is already initialised (found {}); pass --force to replace its config, genesis, keys and data",
            home.root().display(),
            existing.first().map_or_else(|| home.data_dir().display().to_string(), |p| p.display().to_string())
        );
    }
    for path in existing {
        std::fs::remove_file(path).wrap_err_with(|| format!("cannot remove {}", path.display()))?;
    }
    if home.data_dir().exists() {
        std::fs::remove_dir_all(home.data_dir())
            .wrap_err_with(|| format!("cannot remove {}", home.data_dir().display()))?;
    }
    std::fs::create_dir_all(home.root())
        .wrap_err_with(|| format!("cannot create {}", home.root().display()))
}
