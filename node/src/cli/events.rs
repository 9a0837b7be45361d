//! `lode events`: follow the chain over `EventService.Subscribe`, one JSON object per committed height.

use clap::Args;
use eyre::{bail, eyre};

use lode_client::Next;

use super::client::{block_tx_json, connect, events_json, header_json, runtime, NodeArg};
use crate::services::grpc::pb;

#[derive(Debug, Args)]
pub(super) struct EventsArgs {
    /// First height to print (replayed from the node's store); default: the next block to commit.
    #[arg(long = "from")]
    from: Option<u64>,
    /// Only tx results and block events with this event: `TYPE` or `TYPE.ATTRIBUTE=VALUE` (the type may
    /// contain dots: the attribute is after the last dot before `=`). Repeatable: any filter matches.
    #[arg(long = "filter")]
    filters: Vec<String>,
    /// Stop after this many heights (default: follow until interrupted).
    #[arg(long)]
    count: Option<u64>,
    #[command(flatten)]
    node: NodeArg,
}

/// Parses `TYPE` or `TYPE.ATTRIBUTE=VALUE` (`lode_client::parse_filter`).
pub(super) fn parse_filter(s: &str) -> eyre::Result<pb::EventFilter> {
    if s.is_empty() {
        bail!("empty --filter");
    }
    lode_client::parse_filter(s).map_err(|e| eyre!("--filter {e}"))
}

/// A block event as one line of JSON.
fn event_json(e: &pb::BlockEvent) -> serde_json::Value {
    serde_json::json!({
        "height": e.header.as_ref().map_or(0, |h| h.height),
        "block_id": hex::encode_upper(&e.block_id),
        "header": header_json(e.header.as_ref()),
        "num_txs": e.num_txs,
        "txs": e.txs.iter().map(block_tx_json).collect::<Vec<_>>(),
        "events": events_json(&e.events),
    })
}

/// Runs `lode events`. A stream the node ends because this client fell behind is resumed from the next
/// height, so no height is skipped or printed twice.
pub(super) fn run(args: &EventsArgs) -> eyre::Result<()> {
    let filters = args
        .filters
        .iter()
        .map(|f| parse_filter(f))
        .collect::<eyre::Result<Vec<_>>>()?;
    runtime()?.block_on(async {
        let client = lode_client::Client::new(connect(&args.node.node).await?);
        let mut sub = client.subscribe(args.from, filters);
        let mut printed = 0u64;
        loop {
            match sub.next().await {
                Ok(Some(Next::Block(e))) => {
                    println!("{}", event_json(&e));
                    printed += 1;
                    if args.count.is_some_and(|c| printed >= c) {
                        return Ok(());
                    }
                }
                Ok(Some(Next::Resumed(why))) => eprintln!("{why}; resuming"),
                Ok(None) => bail!("the node ended the stream"),
                Err(s) => bail!("{:?}: {}", s.code(), s.message()),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_filter_names_the_flag() {
        assert!(parse_filter("transfer.memo=x").is_ok());
        let e = parse_filter("transfer=x").expect_err("malformed");
        assert!(e.to_string().starts_with("--filter \"transfer=x\""), "{e}");
    }
}
