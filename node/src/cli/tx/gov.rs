//! `lode tx gov …`: proposals, deposits and votes.

use clap::Subcommand;
use eyre::{bail, ensure, eyre, WrapErr};
use lode_proto::{gov::v1 as govpb, tx::v1 as txpb};

use super::{MsgCommand, TxOpts};
use lode_client::tx::TxMsg;

#[derive(Debug, Subcommand)]
pub(crate) enum GovTx {
    /// Submit a proposal: exactly one of `--text`, `--param` (repeatable) or `--spend-to` with
    /// `--spend-amount`.
    Submit {
        #[command(flatten)]
        opts: TxOpts,
        #[arg(long)]
        title: String,
        #[arg(long, default_value = "")]
        description: String,
        /// Initial deposit in base units.
        #[arg(long, default_value_t = 0)]
        deposit: u128,
        /// A text proposal (no on-chain effect).
        #[arg(long)]
        text: bool,
        /// A parameter change `PATH=JSON`, e.g. `gov.quorum_bps=4000` or `min_gas_price="2"`.
        #[arg(long = "param", value_name = "PATH=JSON")]
        params: Vec<String>,
        /// Treasury spend recipient.
        #[arg(long, requires = "spend_amount")]
        spend_to: Option<String>,
        /// Treasury spend amount in base units.
        #[arg(long, requires = "spend_to")]
        spend_amount: Option<u128>,
    },
    /// Add to a proposal's deposit during its deposit period.
    Deposit {
        #[command(flatten)]
        opts: TxOpts,
        #[arg(long)]
        proposal: u64,
        #[arg(long)]
        amount: u128,
    },
    /// Vote (or change a vote) while the voting period runs.
    Vote {
        #[command(flatten)]
        opts: TxOpts,
        #[arg(long)]
        proposal: u64,
        /// `yes`, `no`, `abstain`, `veto`, or a split vote such as `yes=0.7,no=0.3` (weights sum to 1).
        #[arg(long)]
        option: String,
    },
}

impl MsgCommand for GovTx {
    fn opts(&self) -> &TxOpts {
        match self {
            GovTx::Submit { opts, .. } | GovTx::Deposit { opts, .. } | GovTx::Vote { opts, .. } => {
                opts
            }
        }
    }

    fn build(&self, signer: &str) -> eyre::Result<txpb::Msg> {
        self.message(signer.to_owned()).map(|(m, _)| m)
    }
}

impl GovTx {
    /// The message and the shared flags of this command.
    fn message(&self, s: String) -> eyre::Result<(txpb::Msg, &TxOpts)> {
        Ok(match self {
            GovTx::Submit {
                opts,
                title,
                description,
                deposit,
                text,
                params,
                spend_to,
                spend_amount,
            } => {
                let kinds = usize::from(*text)
                    + usize::from(!params.is_empty())
                    + usize::from(spend_to.is_some());
                ensure!(
                    kinds == 1,
                    "give exactly one of --text, --param or --spend-to/--spend-amount"
                );
                let content = if *text {
                    govpb::proposal_content::Sum::Text(govpb::Text {})
                } else if let (Some(to), Some(amount)) = (spend_to, spend_amount) {
                    govpb::proposal_content::Sum::TreasurySpend(govpb::TreasurySpend {
                        recipient: to.clone(),
                        amount: amount.to_string(),
                    })
                } else {
                    govpb::proposal_content::Sum::ParamChange(govpb::ParamChanges {
                        changes: params
                            .iter()
                            .map(|p| parse_param(p))
                            .collect::<eyre::Result<_>>()?,
                    })
                };
                (
                    govpb::MsgSubmitProposal {
                        proposer: s,
                        title: title.clone(),
                        description: description.clone(),
                        content: Some(govpb::ProposalContent { sum: Some(content) }),
                        initial_deposit: deposit.to_string(),
                    }
                    .into_msg(),
                    opts,
                )
            }
            GovTx::Deposit {
                opts,
                proposal,
                amount,
            } => (
                govpb::MsgDeposit {
                    depositor: s,
                    proposal_id: *proposal,
                    amount: amount.to_string(),
                }
                .into_msg(),
                opts,
            ),
            GovTx::Vote {
                opts,
                proposal,
                option,
            } => (
                govpb::MsgVote {
                    voter: s,
                    proposal_id: *proposal,
                    options: parse_vote(option)?,
                }
                .into_msg(),
                opts,
            ),
        })
    }
}

/// Parses a vote option: a single choice or a split `option=weight,…` with decimal weights summing to 1.
pub fn parse_vote(s: &str) -> eyre::Result<Vec<govpb::WeightedVoteOption>> {
    fn option(name: &str) -> eyre::Result<govpb::VoteOption> {
        Ok(match name.trim() {
            "yes" => govpb::VoteOption::Yes,
            "no" => govpb::VoteOption::No,
            "abstain" => govpb::VoteOption::Abstain,
            "veto" | "no_with_veto" => govpb::VoteOption::NoWithVeto,
            other => bail!("unknown vote option {other:?} (yes, no, abstain, veto)"),
        })
    }
    if !s.contains('=') {
        return Ok(vec![govpb::WeightedVoteOption {
            option: option(s)? as i32,
            weight_ppm: 1_000_000,
        }]);
    }
    s.split(',')
        .map(|part| {
            let (name, weight) = part
                .split_once('=')
                .ok_or_else(|| eyre!("split vote part {part:?} is not option=weight"))?;
            Ok(govpb::WeightedVoteOption {
                option: option(name)? as i32,
                weight_ppm: parse_ppm(weight.trim())?,
            })
        })
        .collect()
}

/// A decimal fraction in [0, 1] with at most 6 decimals, as parts per million.
fn parse_ppm(s: &str) -> eyre::Result<u32> {
    let bad = || eyre!("weight {s:?} is not a decimal between 0 and 1 with at most 6 decimals");
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() && frac.is_empty() {
        return Err(bad());
    }
    if frac.len() > 6 || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let int: u32 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| bad())?
    };
    let frac: u32 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<6}").parse().map_err(|_| bad())?
    };
    let ppm = int
        .checked_mul(1_000_000)
        .and_then(|i| i.checked_add(frac))
        .ok_or_else(bad)?;
    ensure!(ppm <= 1_000_000, bad());
    Ok(ppm)
}

/// Parses `PATH=JSON` parameter changes.
fn parse_param(s: &str) -> eyre::Result<govpb::ParamChange> {
    let (path, value) = s
        .split_once('=')
        .ok_or_else(|| eyre!("--param {s:?} is not PATH=JSON"))?;
    serde_json::from_str::<serde_json::Value>(value)
        .wrap_err_with(|| format!("--param {path}: value {value:?} is not JSON"))?;
    Ok(govpb::ParamChange {
        path: path.to_owned(),
        value: value.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vote_options_parse_single_and_split() {
        let one = parse_vote("veto").expect("veto");
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].option, govpb::VoteOption::NoWithVeto as i32);
        assert_eq!(one[0].weight_ppm, 1_000_000);
        let split = parse_vote("yes=0.7, no=.3").expect("split");
        assert_eq!(
            split.iter().map(|o| o.weight_ppm).collect::<Vec<_>>(),
            [700_000, 300_000]
        );
        for bad in [
            "maybe",
            "yes=1.5",
            "yes=0.1234567",
            "yes=",
            "yes=-1",
            "yes=0.5,no",
        ] {
            assert!(parse_vote(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn param_changes_must_carry_json_values() {
        let p = parse_param("gov.quorum_bps=4000").expect("param");
        assert_eq!(
            (p.path.as_str(), p.value.as_str()),
            ("gov.quorum_bps", "4000")
        );
        assert!(parse_param("gov.quorum_bps").is_err());
        assert!(parse_param("min_gas_price=not json").is_err());
    }
}
