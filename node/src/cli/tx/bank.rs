//! `lode tx send`: bank transfers.

use clap::Args;
use lode_proto::bank::v1 as bankpb;

use super::{MsgCommand, TxOpts};
use lode_client::tx::TxMsg;

#[derive(Debug, Args)]
pub(crate) struct SendArgs {
    #[command(flatten)]
    pub(super) opts: TxOpts,
    /// Recipient `lode1…` address.
    #[arg(long)]
    to: String,
    /// Amount in base units.
    #[arg(long)]
    amount: u128,
}

impl MsgCommand for SendArgs {
    fn opts(&self) -> &TxOpts {
        &self.opts
    }

    fn build(&self, signer: &str) -> eyre::Result<lode_proto::tx::v1::Msg> {
        Ok(bankpb::MsgSend {
            from: signer.to_owned(),
            to: self.to.clone(),
            amount: self.amount.to_string(),
        }
        .into_msg())
    }
}
