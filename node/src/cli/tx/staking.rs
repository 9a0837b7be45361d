//! `lode tx staking …`: validators, delegation, unbonding and provider links (proof of useful compute).

use clap::Subcommand;
use eyre::eyre;
use lode_proto::{staking::v1 as stpb, tx::v1 as txpb};

use super::{MsgCommand, TxOpts};
use lode_client::tx::TxMsg;

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
    /// Submit evidence that a validator signed two conflicting votes (one height, round and vote type, two
    /// values). Each vote file holds one signed vote: JSON with the fields of `lode.staking.v1.SignedVote`
    /// (`vote_type` 0 = prevote or 1 = precommit, `height`, `round`, `value_id` as hex, empty for nil,
    /// `validator_address` and `signature` as hex), or the vote's protobuf bytes. The signer pays the fee;
    /// the validator is slashed, tombstoned and removed from the set.
    SubmitDoubleSign {
        #[command(flatten)]
        opts: TxOpts,
        /// The first vote's file.
        #[arg(long)]
        vote_a: std::path::PathBuf,
        /// The conflicting vote's file.
        #[arg(long)]
        vote_b: std::path::PathBuf,
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
            | StakingTx::LinkProvider { opts, .. }
            | StakingTx::UnlinkProvider { opts, .. }
            | StakingTx::SubmitDoubleSign { opts, .. }
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
                    stpb::MsgCreateValidator {
                        operator: s,
                        consensus_key: key,
                        moniker: moniker.clone(),
                        self_bond: self_bond.to_string(),
                    }
                    .into_msg(),
                    opts,
                )
            }
            StakingTx::Delegate {
                opts,
                validator,
                amount,
            } => (
                stpb::MsgDelegate {
                    delegator: s,
                    validator: validator.clone(),
                    amount: amount.to_string(),
                }
                .into_msg(),
                opts,
            ),
            StakingTx::Undelegate {
                opts,
                validator,
                amount,
            } => (
                stpb::MsgUndelegate {
                    delegator: s,
                    validator: validator.clone(),
                    amount: amount.to_string(),
                }
                .into_msg(),
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
                    stpb::MsgLinkProvider {
                        operator: s,
                        provider: provider.clone(),
                        provider_public_key: public_key,
                        nonce,
                        provider_signature: signature,
                    }
                    .into_msg(),
                    opts,
                )
            }
            StakingTx::UnlinkProvider { opts, provider } => (
                stpb::MsgUnlinkProvider {
                    operator: s,
                    provider: provider.clone(),
                }
                .into_msg(),
                opts,
            ),
            StakingTx::Unjail { opts } => (stpb::MsgUnjail { operator: s }.into_msg(), opts),
            StakingTx::SubmitDoubleSign {
                opts,
                vote_a,
                vote_b,
            } => (
                stpb::MsgSubmitDoubleSign {
                    submitter: s,
                    vote_a: Some(read_vote(vote_a)?),
                    vote_b: Some(read_vote(vote_b)?),
                }
                .into_msg(),
                opts,
            ),
        })
    }
}

/// Largest vote file read (a vote is about 150 bytes in either form).
const MAX_VOTE_FILE: u64 = 64 * 1024;

/// A signed vote in JSON (see [`StakingTx::SubmitDoubleSign`]).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct VoteJson {
    vote_type: u32,
    height: u64,
    round: i64,
    #[serde(default)]
    value_id: String,
    validator_address: String,
    signature: String,
}

/// Reads one signed vote from `path`: JSON, or else the protobuf bytes of `lode.staking.v1.SignedVote`.
/// Its shape (sizes, vote type) is checked when the message is built, as the chain checks it.
fn read_vote(path: &std::path::Path) -> eyre::Result<stpb::SignedVote> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .map_err(|e| eyre!("cannot open {}: {e}", path.display()))?
        .take(MAX_VOTE_FILE + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_VOTE_FILE {
        return Err(eyre!(
            "{} is larger than a vote file can be ({MAX_VOTE_FILE} bytes)",
            path.display()
        ));
    }
    parse_vote(&bytes).map_err(|e| eyre!("{}: {e}", path.display()))
}

fn parse_vote(bytes: &[u8]) -> eyre::Result<stpb::SignedVote> {
    let hex_field = |name: &str, s: &str| {
        hex::decode(s.strip_prefix("0x").unwrap_or(s)).map_err(|e| eyre!("{name} is not hex: {e}"))
    };
    let text = std::str::from_utf8(bytes).ok().map(str::trim_start);
    if let Some(text) = text.filter(|t| t.starts_with('{')) {
        let v: VoteJson =
            serde_json::from_str(text).map_err(|e| eyre!("not a vote in JSON: {e}"))?;
        return Ok(stpb::SignedVote {
            vote_type: v.vote_type,
            height: v.height,
            round: v.round,
            value_id: hex_field("value_id", &v.value_id)?,
            validator_address: hex_field("validator_address", &v.validator_address)?,
            signature: hex_field("signature", &v.signature)?,
        });
    }
    use prost::Message;
    stpb::SignedVote::decode(bytes)
        .map_err(|e| eyre!("neither JSON nor a protobuf SignedVote: {e}"))
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

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn a_vote_file_is_json_or_protobuf_and_both_give_the_same_vote() {
        let vote = stpb::SignedVote {
            vote_type: 1,
            height: 12,
            round: 0,
            value_id: vec![0xab; 32],
            validator_address: vec![7; 20],
            signature: vec![9; 64],
        };
        let json = format!(
            r#"{{"vote_type":1,"height":12,"round":0,"value_id":"{}","validator_address":"{}","signature":"0x{}"}}"#,
            hex::encode([0xab; 32]),
            hex::encode([7; 20]),
            hex::encode([9; 64])
        );
        assert_eq!(parse_vote(json.as_bytes()).expect("json"), vote);
        assert_eq!(parse_vote(&vote.encode_to_vec()).expect("proto"), vote);
        // Nil: value_id empty or left out.
        let nil =
            r#"{"vote_type":0,"height":1,"round":2,"validator_address":"00","signature":"00"}"#;
        assert!(parse_vote(nil.as_bytes()).expect("nil").value_id.is_empty());
        // Not hex, unknown fields, garbage: clear errors, no panic.
        assert!(parse_vote(
            br#"{"vote_type":0,"height":1,"round":0,"validator_address":"zz","signature":""}"#
        )
        .is_err());
        assert!(parse_vote(
            br#"{"vote_type":0,"height":1,"round":0,"validator_address":"","signature":"","x":1}"#
        )
        .is_err());
        assert!(parse_vote(&[0xff, 0xff, 0xff]).is_err());
    }
}
