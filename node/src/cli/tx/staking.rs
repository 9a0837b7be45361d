//! `lode tx staking …`: validators, delegation, unbonding and provider links (proof of useful compute).

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
    /// Link a marketplace provider to the signer's validator (its verified compute then counts toward
    /// the validator's voting power). The provider consents: give its key with `--provider-key`, or a
    /// signature made elsewhere with `--provider-public-key`, `--provider-signature` and `--nonce`.
    LinkProvider {
        #[command(flatten)]
        opts: TxOpts,
        /// The provider's address.
        #[arg(long)]
        provider: String,
        /// The provider's key (a key name in `<home>/keys` or a key file path): signs the consent here.
        #[arg(long, conflicts_with_all = ["provider_public_key", "provider_signature"])]
        provider_key: Option<String>,
        /// The provider's ed25519 public key, hex (with `--provider-signature`).
        #[arg(long, requires = "provider_signature")]
        provider_public_key: Option<String>,
        /// The provider's consent signature, hex (see `lode_state::modules::staking::power::link_sign_bytes`).
        #[arg(long, requires = "provider_public_key")]
        provider_signature: Option<String>,
        /// The provider's link nonce. Default: read from the node (`lode query staking link <provider>`).
        #[arg(long)]
        nonce: Option<u64>,
    },
    /// Remove the signer's validator's link to its provider.
    UnlinkProvider {
        #[command(flatten)]
        opts: TxOpts,
        #[arg(long)]
        provider: String,
    },
}

impl MsgCommand for StakingTx {
    fn opts(&self) -> &TxOpts {
        match self {
            StakingTx::CreateValidator { opts, .. }
            | StakingTx::Delegate { opts, .. }
            | StakingTx::Undelegate { opts, .. }
            | StakingTx::LinkProvider { opts, .. }
            | StakingTx::UnlinkProvider { opts, .. } => opts,
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
            StakingTx::LinkProvider {
                opts,
                provider,
                provider_key,
                provider_public_key,
                provider_signature,
                nonce,
            } => {
                let (public_key, signature, nonce) = match (provider_key, provider_public_key) {
                    (Some(k), _) => sign_consent(opts, &s, provider, k, *nonce)?,
                    (None, Some(pk)) => (
                        hex::decode(pk).map_err(|e| eyre!("--provider-public-key: {e}"))?,
                        hex::decode(provider_signature.as_deref().unwrap_or_default())
                            .map_err(|e| eyre!("--provider-signature: {e}"))?,
                        nonce.ok_or_else(|| {
                            eyre!("--nonce is required with --provider-signature")
                        })?,
                    ),
                    (None, None) => {
                        return Err(eyre!(
                            "the provider must consent: give --provider-key, or \
                             --provider-public-key with --provider-signature and --nonce"
                        ))
                    }
                };
                (
                    msg(Sum::LinkProvider(stpb::MsgLinkProvider {
                        operator: s,
                        provider: provider.clone(),
                        provider_public_key: public_key,
                        nonce,
                        provider_signature: signature,
                    })),
                    opts,
                )
            }
            StakingTx::UnlinkProvider { opts, provider } => (
                msg(Sum::UnlinkProvider(stpb::MsgUnlinkProvider {
                    operator: s,
                    provider: provider.clone(),
                })),
                opts,
            ),
        })
    }
}

/// Signs the provider's consent with its key: the chain id and (unless given) the provider's link nonce
/// come from the node. Returns (public key, signature, nonce).
fn sign_consent(
    opts: &TxOpts,
    operator: &str,
    provider: &str,
    key: &str,
    nonce: Option<u64>,
) -> eyre::Result<(Vec<u8>, Vec<u8>, u64)> {
    use crate::cli::client::{connect, find_signer, runtime, Signer};
    use crate::services::grpc::pb::{
        query_service_client::QueryServiceClient,
        staking_query_service_client::StakingQueryServiceClient, StatusRequest,
    };
    let Signer::Key(k) = find_signer(key, &opts.home.home)? else {
        return Err(eyre!(
            "--provider-key must be a single key, not a multisig account"
        ));
    };
    if k.address != provider {
        return Err(eyre!(
            "--provider-key is the key of {}, not of --provider {provider}",
            k.address
        ));
    }
    let (chain_id, nonce) = runtime()?.block_on(async {
        let channel = connect(&opts.node).await?;
        let status = QueryServiceClient::new(channel.clone())
            .status(StatusRequest {})
            .await?
            .into_inner();
        let nonce = match nonce {
            Some(n) => n,
            None => {
                StakingQueryServiceClient::new(channel)
                    .link(stpb::LinkRequest {
                        address: provider.to_owned(),
                    })
                    .await?
                    .into_inner()
                    .provider_nonce
            }
        };
        eyre::Ok((status.chain_id, nonce))
    })?;
    let op = lode_state::address::parse_address(operator).map_err(|e| eyre!("{e}"))?;
    let pr = lode_state::address::parse_address(provider).map_err(|e| eyre!("--provider: {e}"))?;
    let bytes = lode_state::modules::staking::power::link_sign_bytes(&chain_id, &op, &pr, nonce);
    let signing = k.signing_key()?;
    Ok((
        signing.verification_key().to_bytes().to_vec(),
        signing.sign(&bytes).to_bytes().to_vec(),
        nonce,
    ))
}
