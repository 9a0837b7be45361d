//! staking's messages: domain types, wire conversion and handlers.

use lode_proto::staking::v1 as pb;

use super::StakingError;
use super::{event, power, state_key, Validator};
use crate::{
    address::{check_public_key, parse_address, Address},
    amount::parse_positive,
    codec::encode,
    error::TxError,
    event::Event,
    module::BlockCtx,
    store::StateWrite,
};

/// A staking message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StakingMsg {
    CreateValidator {
        operator: Address,
        consensus_key: [u8; 32],
        moniker: String,
        self_bond: u128,
    },
    Delegate {
        delegator: Address,
        validator: Address,
        amount: u128,
    },
    Undelegate {
        delegator: Address,
        validator: Address,
        amount: u128,
    },
    /// Links `provider` to `operator`'s validator; the provider consents with a signature over
    /// [`super::power::link_sign_bytes`].
    LinkProvider {
        operator: Address,
        provider: Address,
        provider_public_key: [u8; 32],
        nonce: u64,
        provider_signature: [u8; 64],
    },
    UnlinkProvider {
        operator: Address,
        provider: Address,
    },
}

impl StakingMsg {
    pub fn sender(&self) -> &Address {
        match self {
            StakingMsg::CreateValidator { operator, .. }
            | StakingMsg::LinkProvider { operator, .. }
            | StakingMsg::UnlinkProvider { operator, .. } => operator,
            StakingMsg::Delegate { delegator, .. } | StakingMsg::Undelegate { delegator, .. } => {
                delegator
            }
        }
    }

    pub fn gas(&self, p: &crate::params::Params) -> u64 {
        match self {
            StakingMsg::CreateValidator { .. } => p.staking.gas_create_validator,
            StakingMsg::Delegate { .. } => p.staking.gas_delegate,
            StakingMsg::Undelegate { .. } => p.staking.gas_undelegate,
            StakingMsg::LinkProvider { .. } => p.staking.gas_link_provider,
            StakingMsg::UnlinkProvider { .. } => p.staking.gas_unlink_provider,
        }
    }
}

impl TryFrom<pb::MsgCreateValidator> for StakingMsg {
    type Error = TxError;
    fn try_from(m: pb::MsgCreateValidator) -> Result<Self, TxError> {
        let consensus_key: [u8; 32] = m
            .consensus_key
            .as_slice()
            .try_into()
            .map_err(|_| TxError::InvalidPublicKey("consensus key must be 32 bytes"))?;
        check_public_key(&consensus_key)?;
        Ok(StakingMsg::CreateValidator {
            operator: parse_address(&m.operator)?,
            consensus_key,
            moniker: m.moniker,
            self_bond: parse_positive(&m.self_bond)?,
        })
    }
}

impl TryFrom<pb::MsgDelegate> for StakingMsg {
    type Error = TxError;
    fn try_from(m: pb::MsgDelegate) -> Result<Self, TxError> {
        Ok(StakingMsg::Delegate {
            delegator: parse_address(&m.delegator)?,
            validator: parse_address(&m.validator)?,
            amount: parse_positive(&m.amount)?,
        })
    }
}

impl TryFrom<pb::MsgUndelegate> for StakingMsg {
    type Error = TxError;
    fn try_from(m: pb::MsgUndelegate) -> Result<Self, TxError> {
        Ok(StakingMsg::Undelegate {
            delegator: parse_address(&m.delegator)?,
            validator: parse_address(&m.validator)?,
            amount: parse_positive(&m.amount)?,
        })
    }
}

impl TryFrom<pb::MsgLinkProvider> for StakingMsg {
    type Error = TxError;
    fn try_from(m: pb::MsgLinkProvider) -> Result<Self, TxError> {
        let provider_public_key: [u8; 32] = m
            .provider_public_key
            .as_slice()
            .try_into()
            .map_err(|_| TxError::InvalidPublicKey("provider public key must be 32 bytes"))?;
        check_public_key(&provider_public_key)?;
        let provider_signature: [u8; 64] =
            m.provider_signature.as_slice().try_into().map_err(|_| {
                TxError::from(StakingError::BadProviderSignature(
                    "signature must be 64 bytes".into(),
                ))
            })?;
        let operator = parse_address(&m.operator)?;
        let provider = parse_address(&m.provider)?;
        if Address::from_public_key(&provider_public_key) != provider {
            return Err(StakingError::BadProviderSignature(
                "the public key is not the provider's".into(),
            )
            .into());
        }
        if operator == provider {
            return Err(TxError::InvalidField {
                field: "provider",
                reason: "a validator operator cannot link its own account as provider".into(),
            });
        }
        Ok(StakingMsg::LinkProvider {
            operator,
            provider,
            provider_public_key,
            nonce: m.nonce,
            provider_signature,
        })
    }
}

impl TryFrom<pb::MsgUnlinkProvider> for StakingMsg {
    type Error = TxError;
    fn try_from(m: pb::MsgUnlinkProvider) -> Result<Self, TxError> {
        Ok(StakingMsg::UnlinkProvider {
            operator: parse_address(&m.operator)?,
            provider: parse_address(&m.provider)?,
        })
    }
}

impl From<&StakingMsg> for lode_proto::tx::v1::msg::Sum {
    fn from(m: &StakingMsg) -> Self {
        use lode_proto::tx::v1::msg::Sum;
        match m {
            StakingMsg::CreateValidator {
                operator,
                consensus_key,
                moniker,
                self_bond,
            } => Sum::CreateValidator(pb::MsgCreateValidator {
                operator: operator.to_string(),
                consensus_key: consensus_key.to_vec(),
                moniker: moniker.clone(),
                self_bond: self_bond.to_string(),
            }),
            StakingMsg::Delegate {
                delegator,
                validator,
                amount,
            } => Sum::Delegate(pb::MsgDelegate {
                delegator: delegator.to_string(),
                validator: validator.to_string(),
                amount: amount.to_string(),
            }),
            StakingMsg::Undelegate {
                delegator,
                validator,
                amount,
            } => Sum::Undelegate(pb::MsgUndelegate {
                delegator: delegator.to_string(),
                validator: validator.to_string(),
                amount: amount.to_string(),
            }),
            StakingMsg::LinkProvider {
                operator,
                provider,
                provider_public_key,
                nonce,
                provider_signature,
            } => Sum::LinkProvider(pb::MsgLinkProvider {
                operator: operator.to_string(),
                provider: provider.to_string(),
                provider_public_key: provider_public_key.to_vec(),
                nonce: *nonce,
                provider_signature: provider_signature.to_vec(),
            }),
            StakingMsg::UnlinkProvider { operator, provider } => {
                Sum::UnlinkProvider(pb::MsgUnlinkProvider {
                    operator: operator.to_string(),
                    provider: provider.to_string(),
                })
            }
        }
    }
}

/// Executes one staking message.
pub fn execute<S: StateWrite + ?Sized>(
    s: &mut S,
    msg: &StakingMsg,
    ctx: BlockCtx<'_>,
    events: &mut Vec<Event>,
) -> Result<(), TxError> {
    let p = &ctx.params.staking;
    match msg {
        StakingMsg::CreateValidator {
            operator,
            consensus_key,
            moniker,
            self_bond,
        } => {
            if moniker.is_empty() || moniker.len() as u64 > p.max_moniker_bytes {
                return Err(TxError::InvalidField {
                    field: "moniker",
                    reason: format!("must be 1..={} bytes", p.max_moniker_bytes),
                });
            }
            if *self_bond < p.min_self_bond {
                return Err(TxError::InvalidAmount {
                    amount: self_bond.to_string(),
                    reason: "self-bond is below staking.min_self_bond",
                });
            }
            if super::validator(s, operator)?.is_some() {
                return Err(StakingError::ValidatorExists(operator.to_string()).into());
            }
            let ck = state_key::consensus_key(consensus_key);
            if s.get(&ck)?.is_some() {
                return Err(StakingError::ValidatorExists(format!(
                    "with consensus key {}",
                    hex::encode(consensus_key)
                ))
                .into());
            }
            s.put(ck, operator.as_bytes().to_vec());
            super::put_validator(
                s,
                operator,
                &Validator {
                    consensus_key: *consensus_key,
                    moniker: moniker.clone(),
                    tokens: 0,
                },
            );
            super::bond(s, operator, operator, *self_bond)?;
            events.push(event::create_validator(operator, moniker, *self_bond));
        }
        StakingMsg::Delegate {
            delegator,
            validator,
            amount,
        } => {
            super::bond(s, delegator, validator, *amount)?;
            events.push(event::delegate(delegator, validator, *amount));
        }
        StakingMsg::Undelegate {
            delegator,
            validator,
            amount,
        } => {
            let done = super::unbond(
                s,
                delegator,
                validator,
                *amount,
                ctx.height,
                p.unbonding_blocks,
            )?;
            events.push(event::undelegate(delegator, validator, *amount, done));
        }
        StakingMsg::LinkProvider {
            operator,
            provider,
            provider_public_key,
            nonce,
            provider_signature,
        } => link_provider(
            s,
            ctx,
            operator,
            provider,
            provider_public_key,
            *nonce,
            provider_signature,
            events,
        )?,
        StakingMsg::UnlinkProvider { operator, provider } => {
            let link = power::link(s, operator)?;
            let Some(mut link) = link.filter(|l| l.provider == Some(*provider)) else {
                return Err(StakingError::NotLinked {
                    provider: provider.to_string(),
                    validator: operator.to_string(),
                }
                .into());
            };
            let epoch = power::current_epoch(s)?.number;
            link.provider = None;
            link.changed_epoch = epoch;
            s.put(state_key::link(operator), encode(&link));
            s.delete(state_key::provider_link(provider));
            events.push(event::unlink_provider(operator, provider, epoch));
        }
    }
    Ok(())
}

/// `LinkProvider`: the checks in the order of their codes' likelihood to be the client's real problem.
#[allow(clippy::too_many_arguments)]
fn link_provider<S: StateWrite + ?Sized>(
    s: &mut S,
    ctx: BlockCtx<'_>,
    operator: &Address,
    provider: &Address,
    provider_public_key: &[u8; 32],
    nonce: u64,
    provider_signature: &[u8; 64],
    events: &mut Vec<Event>,
) -> Result<(), TxError> {
    if super::validator(s, operator)?.is_none() {
        return Err(StakingError::UnknownValidator(operator.to_string()).into());
    }
    if crate::modules::market::provider(s, provider)?.is_none() {
        return Err(
            crate::modules::market::MarketError::UnknownProvider(provider.to_string()).into(),
        );
    }
    if let Some(v) = power::linked_validator(s, provider)? {
        return Err(StakingError::ProviderLinkedElsewhere {
            provider: provider.to_string(),
            validator: v.to_string(),
        }
        .into());
    }
    let epoch = power::current_epoch(s)?.number;
    let cooldown = ctx.params.staking.link_cooldown_epochs;
    let old = power::link(s, operator)?;
    if let Some(l) = old {
        let next = l.changed_epoch.saturating_add(cooldown);
        if epoch < next {
            return Err(StakingError::LinkCooldown {
                changed: l.changed_epoch,
                next,
            }
            .into());
        }
    }
    let expected = power::link_nonce(s, provider)?;
    if nonce != expected {
        return Err(StakingError::BadProviderSignature(format!(
            "consent signs nonce {nonce}, the provider's link nonce is {expected}"
        ))
        .into());
    }
    let bytes = power::link_sign_bytes(ctx.chain_id, operator, provider, nonce);
    let verified =
        ed25519_consensus::VerificationKey::try_from(*provider_public_key).and_then(|k| {
            k.verify(
                &ed25519_consensus::Signature::from(*provider_signature),
                &bytes,
            )
        });
    if verified.is_err() {
        return Err(StakingError::BadProviderSignature(
            "the signature does not verify over the link payload".into(),
        )
        .into());
    }
    if let Some(old_provider) = old.and_then(|l| l.provider) {
        s.delete(state_key::provider_link(&old_provider));
    }
    s.put(
        state_key::link(operator),
        encode(&power::Link {
            provider: Some(*provider),
            changed_epoch: epoch,
        }),
    );
    s.put(
        state_key::provider_link(provider),
        operator.as_bytes().to_vec(),
    );
    s.put(
        state_key::link_nonce(provider),
        encode(&expected.saturating_add(1)),
    );
    events.push(event::link_provider(operator, provider, epoch));
    Ok(())
}
