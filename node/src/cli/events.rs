//! `lode events`: follow the chain over `EventService.Subscribe`, one JSON object per committed height.

use clap::Args;
use eyre::{bail, eyre};

use super::client::{block_tx_json, connect, events_json, header_json, runtime, NodeArg};
use crate::services::grpc::pb::{self, event_service_client::EventServiceClient};

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

/// Parses `TYPE` or `TYPE.ATTRIBUTE=VALUE`.
pub(super) fn parse_filter(s: &str) -> eyre::Result<pb::EventFilter> {
    let (key, value) = match s.split_once('=') {
        None => {
            if s.is_empty() {
                bail!("empty --filter");
            }
            return Ok(pb::EventFilter {
                r#type: s.to_owned(),
                ..Default::default()
            });
        }
        Some(kv) => kv,
    };
    let (ty, attribute) = key
        .rsplit_once('.')
        .filter(|(t, a)| !t.is_empty() && !a.is_empty())
        .ok_or_else(|| eyre!("--filter {s:?}: expected TYPE or TYPE.ATTRIBUTE=VALUE"))?;
    Ok(pb::EventFilter {
        r#type: ty.to_owned(),
        attribute: attribute.to_owned(),
        value: value.to_owned(),
    })
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
        let mut client = EventServiceClient::new(connect(&args.node.node).await?)
            .max_decoding_message_size(64 << 20);
        let mut from = args.from;
        let mut printed = 0u64;
        loop {
            let mut stream = client
                .subscribe(pb::SubscribeRequest {
                    from_height: from,
                    filters: filters.clone(),
                })
                .await
                .map_err(|s| eyre!("{:?}: {}", s.code(), s.message()))?
                .into_inner();
            loop {
                match stream.message().await {
                    Ok(Some(e)) => {
                        println!("{}", event_json(&e));
                        printed += 1;
                        from = e.header.as_ref().map(|h| h.height.saturating_add(1));
                        if args.count.is_some_and(|c| printed >= c) {
                            return Ok(());
                        }
                    }
                    Ok(None) => bail!("the node ended the stream"),
                    Err(s) if s.code() == tonic::Code::ResourceExhausted && from.is_some() => {
                        eprintln!("{}; resuming", s.message());
                        break;
                    }
                    Err(s) => bail!("{:?}: {}", s.code(), s.message()),
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_as_a_type_or_a_type_attribute_and_value() {
        let f = parse_filter("transfer").expect("type");
        assert_eq!((f.r#type.as_str(), f.attribute.as_str()), ("transfer", ""));
        let f = parse_filter("market.job_matched.provider=lode1xyz").expect("attr");
        assert_eq!(
            (f.r#type.as_str(), f.attribute.as_str(), f.value.as_str()),
            ("market.job_matched", "provider", "lode1xyz")
        );
        let f = parse_filter("transfer.memo=a=b").expect("value with =");
        assert_eq!(f.value, "a=b");
        for bad in ["", "transfer=x", ".x=1", "transfer.=1"] {
            assert!(parse_filter(bad).is_err(), "{bad:?} parsed");
        }
    }
}
