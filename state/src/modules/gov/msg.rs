//! gov's messages: domain types, wire conversion and handlers.

use lode_proto::gov::v1 as pb;

use super::GovError;
use super::{
    add_deposit, event, maybe_start_voting, proposal, put_proposal, state_key, Proposal,
    ProposalContent, ProposalStatus, VoteOption, WEIGHT_SCALE,
};
use crate::{
    address::{parse_address, Address},
    amount::{parse_amount, parse_positive},
    codec::encode,
    error::TxError,
    event::Event,
    module::BlockCtx,
    params,
    store::StateWrite,
};

/// A governance message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GovMsg {
    SubmitProposal {
        proposer: Address,
        title: String,
        description: String,
        content: ProposalContent,
        initial_deposit: u128,
    },
    Deposit {
        depositor: Address,
        proposal_id: u64,
        amount: u128,
    },
    Vote {
        voter: Address,
        proposal_id: u64,
        options: Vec<(VoteOption, u32)>,
    },
}

impl GovMsg {
    pub fn sender(&self) -> &Address {
        match self {
            GovMsg::SubmitProposal { proposer, .. } => proposer,
            GovMsg::Deposit { depositor, .. } => depositor,
            GovMsg::Vote { voter, .. } => voter,
        }
    }

    pub fn gas(&self, p: &crate::params::Params) -> u64 {
        match self {
            GovMsg::SubmitProposal { .. } => p.gov.gas_submit_proposal,
            GovMsg::Deposit { .. } => p.gov.gas_deposit,
            GovMsg::Vote { .. } => p.gov.gas_vote,
        }
    }

    /// A single-option vote.
    pub fn vote(voter: Address, proposal_id: u64, option: VoteOption) -> GovMsg {
        GovMsg::Vote {
            voter,
            proposal_id,
            options: vec![(option, WEIGHT_SCALE)],
        }
    }
}

/// Checks a (split) vote: 1 to 4 distinct options, each weight > 0, weights summing to one.
pub fn check_options(options: &[(VoteOption, u32)]) -> Result<(), TxError> {
    if options.is_empty() || options.len() > 4 {
        return Err(TxError::from(GovError::InvalidVote(
            "a vote has 1 to 4 options",
        )));
    }
    let mut seen = Vec::with_capacity(4);
    let mut sum: u64 = 0;
    for (o, w) in options {
        if seen.contains(o) {
            return Err(TxError::from(GovError::InvalidVote(
                "an option appears twice",
            )));
        }
        seen.push(*o);
        if *w == 0 {
            return Err(TxError::from(GovError::InvalidVote("a weight is zero")));
        }
        // At most a few u32 weights: saturation cannot happen, and would fail the check below anyway.
        sum = sum.saturating_add(u64::from(*w));
    }
    if sum != WEIGHT_SCALE as u64 {
        return Err(TxError::from(GovError::InvalidVote(
            "weights must sum to 1,000,000 (one)",
        )));
    }
    Ok(())
}

impl TryFrom<pb::ProposalContent> for ProposalContent {
    type Error = TxError;
    fn try_from(c: pb::ProposalContent) -> Result<Self, TxError> {
        use pb::proposal_content::Sum;
        match c.sum {
            Some(Sum::ParamChange(pc)) => {
                if pc.changes.is_empty() {
                    return Err(TxError::from(GovError::InvalidProposal(
                        "no parameter changes".into(),
                    )));
                }
                Ok(ProposalContent::ParamChange(
                    pc.changes.into_iter().map(|c| (c.path, c.value)).collect(),
                ))
            }
            Some(Sum::TreasurySpend(t)) => Ok(ProposalContent::TreasurySpend {
                recipient: parse_address(&t.recipient)?,
                amount: parse_positive(&t.amount)?,
            }),
            Some(Sum::Text(_)) => Ok(ProposalContent::Text),
            None => Err(TxError::from(GovError::InvalidProposal(
                "no content".into(),
            ))),
        }
    }
}

impl From<&ProposalContent> for pb::ProposalContent {
    fn from(c: &ProposalContent) -> Self {
        use pb::proposal_content::Sum;
        let sum = match c {
            ProposalContent::ParamChange(changes) => Sum::ParamChange(pb::ParamChanges {
                changes: changes
                    .iter()
                    .map(|(path, value)| pb::ParamChange {
                        path: path.clone(),
                        value: value.clone(),
                    })
                    .collect(),
            }),
            ProposalContent::TreasurySpend { recipient, amount } => {
                Sum::TreasurySpend(pb::TreasurySpend {
                    recipient: recipient.to_string(),
                    amount: amount.to_string(),
                })
            }
            ProposalContent::Text => Sum::Text(pb::Text {}),
        };
        pb::ProposalContent { sum: Some(sum) }
    }
}

impl TryFrom<pb::MsgSubmitProposal> for GovMsg {
    type Error = TxError;
    fn try_from(m: pb::MsgSubmitProposal) -> Result<Self, TxError> {
        Ok(GovMsg::SubmitProposal {
            proposer: parse_address(&m.proposer)?,
            title: m.title,
            description: m.description,
            content: m
                .content
                .ok_or_else(|| TxError::from(GovError::InvalidProposal("no content".into())))?
                .try_into()?,
            initial_deposit: parse_amount(&m.initial_deposit)?,
        })
    }
}

impl TryFrom<pb::MsgDeposit> for GovMsg {
    type Error = TxError;
    fn try_from(m: pb::MsgDeposit) -> Result<Self, TxError> {
        Ok(GovMsg::Deposit {
            depositor: parse_address(&m.depositor)?,
            proposal_id: m.proposal_id,
            amount: parse_positive(&m.amount)?,
        })
    }
}

impl TryFrom<pb::MsgVote> for GovMsg {
    type Error = TxError;
    fn try_from(m: pb::MsgVote) -> Result<Self, TxError> {
        let options = m
            .options
            .iter()
            .map(|o| {
                VoteOption::from_i32(o.option)
                    .map(|v| (v, o.weight_ppm))
                    .ok_or(TxError::from(GovError::InvalidVote("unknown vote option")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        check_options(&options)?;
        Ok(GovMsg::Vote {
            voter: parse_address(&m.voter)?,
            proposal_id: m.proposal_id,
            options,
        })
    }
}

pub fn options_pb(options: &[(VoteOption, u32)]) -> Vec<pb::WeightedVoteOption> {
    options
        .iter()
        .map(|(o, w)| pb::WeightedVoteOption {
            option: *o as i32,
            weight_ppm: *w,
        })
        .collect()
}

impl From<&GovMsg> for lode_proto::tx::v1::msg::Sum {
    fn from(m: &GovMsg) -> Self {
        use lode_proto::tx::v1::msg::Sum;
        match m {
            GovMsg::SubmitProposal {
                proposer,
                title,
                description,
                content,
                initial_deposit,
            } => Sum::SubmitProposal(pb::MsgSubmitProposal {
                proposer: proposer.to_string(),
                title: title.clone(),
                description: description.clone(),
                content: Some(content.into()),
                initial_deposit: initial_deposit.to_string(),
            }),
            GovMsg::Deposit {
                depositor,
                proposal_id,
                amount,
            } => Sum::GovDeposit(pb::MsgDeposit {
                depositor: depositor.to_string(),
                proposal_id: *proposal_id,
                amount: amount.to_string(),
            }),
            GovMsg::Vote {
                voter,
                proposal_id,
                options,
            } => Sum::Vote(pb::MsgVote {
                voter: voter.to_string(),
                proposal_id: *proposal_id,
                options: options_pb(options),
            }),
        }
    }
}

fn next_id<S: StateWrite + ?Sized>(s: &mut S) -> Result<u64, TxError> {
    let id = match s.get(state_key::NEXT_PROPOSAL_ID)? {
        None => 1,
        Some(b) => b
            .as_slice()
            .try_into()
            .map(u64::from_be_bytes)
            .map_err(|_| TxError::Internal("corrupt next proposal id".into()))?,
    };
    let next = id.checked_add(1).ok_or(TxError::Overflow("proposal id"))?;
    s.put(
        state_key::NEXT_PROPOSAL_ID.to_vec(),
        next.to_be_bytes().to_vec(),
    );
    Ok(id)
}

/// Executes one governance message.
pub fn execute<S: StateWrite + ?Sized>(
    s: &mut S,
    msg: &GovMsg,
    ctx: BlockCtx<'_>,
    events: &mut Vec<Event>,
) -> Result<(), TxError> {
    let gp = &ctx.params.gov;
    match msg {
        GovMsg::SubmitProposal {
            proposer,
            title,
            description,
            content,
            initial_deposit,
        } => {
            if title.trim().is_empty() || title.len() as u64 > gp.max_title_bytes {
                return Err(TxError::from(GovError::InvalidProposal(format!(
                    "title must be 1..={} bytes",
                    gp.max_title_bytes
                ))));
            }
            if description.len() as u64 > gp.max_description_bytes {
                return Err(TxError::from(GovError::InvalidProposal(format!(
                    "description is over {} bytes",
                    gp.max_description_bytes
                ))));
            }
            if let ProposalContent::ParamChange(changes) = content {
                if changes.len() as u64 > gp.max_param_changes {
                    return Err(TxError::from(GovError::InvalidProposal(format!(
                        "more than {} parameter changes",
                        gp.max_param_changes
                    ))));
                }
                // Refuse a change that could never apply, before anyone deposits on it.
                params::apply_changes(ctx.params, changes)?;
            }
            let id = next_id(s)?;
            let deposit_end = ctx
                .height
                .checked_add(gp.deposit_period_blocks)
                .ok_or(TxError::Overflow("deposit end height"))?;
            let mut p = Proposal {
                id,
                proposer: *proposer,
                title: title.clone(),
                description: description.clone(),
                content: content.clone(),
                status: ProposalStatus::DepositPeriod,
                submit_height: ctx.height,
                deposit_end_height: deposit_end,
                voting_start_height: 0,
                voting_end_height: 0,
                total_deposit: 0,
                final_tally: None,
                failure_reason: String::new(),
            };
            events.push(event::submit(id, proposer, content.kind(), deposit_end));
            s.put(state_key::deposit_queue(deposit_end, id), Vec::new());
            if *initial_deposit > 0 {
                add_deposit(s, &mut p, proposer, *initial_deposit, events)?;
            }
            maybe_start_voting(s, &mut p, ctx, events)?;
            put_proposal(s, &p, None);
        }
        GovMsg::Deposit {
            depositor,
            proposal_id,
            amount,
        } => {
            let mut p = proposal(s, *proposal_id)?
                .ok_or(TxError::from(GovError::UnknownProposal(*proposal_id)))?;
            if p.status != ProposalStatus::DepositPeriod {
                return Err(TxError::from(GovError::NotInDepositPeriod(*proposal_id)));
            }
            add_deposit(s, &mut p, depositor, *amount, events)?;
            maybe_start_voting(s, &mut p, ctx, events)?;
            put_proposal(s, &p, Some(ProposalStatus::DepositPeriod));
        }
        GovMsg::Vote {
            voter,
            proposal_id,
            options,
        } => {
            let p = proposal(s, *proposal_id)?
                .ok_or(TxError::from(GovError::UnknownProposal(*proposal_id)))?;
            if p.status != ProposalStatus::VotingPeriod || ctx.height > p.voting_end_height {
                return Err(TxError::from(GovError::NotInVotingPeriod(*proposal_id)));
            }
            check_options(options)?;
            let old = super::vote_of(s, *proposal_id, voter)?;
            super::running::on_vote(s, *proposal_id, voter, old.as_ref(), options)?;
            s.put(state_key::vote(*proposal_id, voter), encode(options));
            let desc = options
                .iter()
                .map(|(o, w)| format!("{}:{}", o.as_str(), w))
                .collect::<Vec<_>>()
                .join(",");
            events.push(event::vote(*proposal_id, voter, &desc));
        }
    }
    Ok(())
}
