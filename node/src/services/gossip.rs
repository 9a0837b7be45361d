//! Mempool gossip: a libp2p gossipsub swarm (the libp2p version Malachite uses) on its own port and topic.
//! Txs admitted locally are published in batches (`lode.node.v1.TxBatch`: everything queued when the swarm
//! gets to publish, up to the message size limit); txs received from peers go through CheckTx like any
//! other, and malformed batches or invalid txs are dropped and logged.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use libp2p::{
    gossipsub, identity::Keypair, noise, swarm::SwarmEvent, tcp, yamux, Multiaddr, PeerId,
};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use prost::Message;

use super::grpc::pb::TxBatch;
use super::mempool::{AddError, Mempool};

/// The gossipsub topic of mempool txs.
pub const TX_TOPIC: &str = "/lode/mempool/tx/1";
/// Outgoing queue length (txs admitted locally, waiting to be published).
pub const OUTBOX_LEN: usize = 4096;

/// Where the swarm listens and whom it keeps connected.
#[derive(Debug, Clone)]
pub struct GossipConfig {
    /// TCP listen address.
    pub listen: SocketAddr,
    /// Peers' gossip addresses, dialled at start and redialled while disconnected.
    pub peers: Vec<SocketAddr>,
    /// Largest message accepted (a tx's maximum size plus framing).
    pub max_message_bytes: usize,
}

/// Bytes a `TxBatch` adds around its txs, at most (field tags and length prefixes are under 16 bytes per
/// tx; this bound leaves room for the gossipsub envelope too).
const BATCH_OVERHEAD: usize = 1024;
/// Most txs in one batch.
const MAX_BATCH_TXS: usize = 1024;

/// `first` plus whatever is already queued, up to `max_bytes` of txs (at least `first`) and
/// [`MAX_BATCH_TXS`], encoded as a `TxBatch`; and the queued tx that did not fit, which opens the next batch.
fn next_batch(
    first: Bytes,
    queue: &mut mpsc::Receiver<Bytes>,
    max_bytes: usize,
) -> (Vec<u8>, Option<Bytes>) {
    let mut size = first.len() + 16;
    let mut txs = vec![first.to_vec()];
    let mut rest = None;
    while txs.len() < MAX_BATCH_TXS {
        match queue.try_recv() {
            Ok(tx) if size + tx.len() + 16 <= max_bytes => {
                size += tx.len() + 16;
                txs.push(tx.to_vec());
            }
            Ok(tx) => {
                rest = Some(tx);
                break;
            }
            Err(_) => break,
        }
    }
    (TxBatch { txs }.encode_to_vec(), rest)
}

/// Connected peers, shared with the gRPC status.
pub type PeerList = Arc<RwLock<Vec<String>>>;

fn multiaddr(a: SocketAddr) -> Multiaddr {
    let mut m = Multiaddr::from(a.ip());
    m.push(libp2p::multiaddr::Protocol::Tcp(a.port()));
    m
}

/// A running gossip swarm.
#[derive(Debug, Clone)]
pub struct Gossip {
    /// Connected peers, kept up to date.
    pub peers: PeerList,
    /// Publishes raw bytes on the tx topic. The mempool sends the txs it admits locally here; tests use it to
    /// play a misbehaving peer.
    pub outbox: mpsc::Sender<Bytes>,
}

/// Starts the swarm on the current tokio runtime.
pub fn spawn(
    config: GossipConfig,
    node_key_seed: [u8; 32],
    mempool: Arc<Mempool>,
) -> eyre::Result<Gossip> {
    let keypair = Keypair::ed25519_from_bytes(node_key_seed)?;
    let max = config.max_message_bytes;
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )?
        .with_behaviour(|key| {
            let cfg = gossipsub::ConfigBuilder::default()
                .heartbeat_interval(Duration::from_millis(500))
                .validation_mode(gossipsub::ValidationMode::Strict)
                .max_transmit_size(max)
                .build()?;
            let b = gossipsub::Behaviour::new(
                gossipsub::MessageAuthenticity::Signed(key.clone()),
                cfg,
            )?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(b)
        })
        .map_err(|e| eyre::eyre!("gossip behaviour: {e}"))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build();
    let topic = gossipsub::IdentTopic::new(TX_TOPIC);
    swarm.behaviour_mut().subscribe(&topic)?;
    swarm.listen_on(multiaddr(config.listen))?;

    let (out_tx, mut out_rx) = mpsc::channel::<Bytes>(OUTBOX_LEN);
    mempool.set_gossip(out_tx.clone());
    let peers: PeerList = Arc::new(RwLock::new(Vec::new()));
    let peers_out = peers.clone();
    let wanted: Vec<Multiaddr> = config.peers.iter().map(|a| multiaddr(*a)).collect();

    tokio::spawn(async move {
        let mut connected_addrs: HashMap<PeerId, Multiaddr> = HashMap::new();
        let mut redial = tokio::time::interval(Duration::from_secs(2));
        loop {
            tokio::select! {
                _ = redial.tick() => {
                    let have: HashSet<&Multiaddr> = connected_addrs.values().collect();
                    for a in &wanted {
                        if !have.contains(a) {
                            if let Err(e) = swarm.dial(a.clone()) {
                                debug!(addr = %a, error = %e, "gossip dial failed");
                            }
                        }
                    }
                }
                Some(tx) = out_rx.recv() => {
                    let mut next = Some(tx);
                    while let Some(first) = next.take() {
                        let (batch, rest) =
                            next_batch(first, &mut out_rx, max.saturating_sub(BATCH_OVERHEAD));
                        if let Err(e) = swarm.behaviour_mut().publish(topic.clone(), batch) {
                            debug!(error = %e, "gossip publish failed");
                        }
                        next = rest;
                    }
                }
                event = swarm.select_next_some() => match event {
                    SwarmEvent::Behaviour(gossipsub::Event::Message { propagation_source, message, .. }) => {
                        let Ok(batch) = TxBatch::decode(message.data.as_slice()) else {
                            warn!(peer = %propagation_source, bytes = message.data.len(), "dropped malformed gossip message");
                            continue;
                        };
                        let mempool = mempool.clone();
                        let res = tokio::task::spawn_blocking(move || {
                            mempool
                                .add_batch(batch.txs.into_iter().map(Bytes::from).collect())
                                .into_iter()
                                .filter_map(Result::err)
                                .filter(|e| !matches!(e, AddError::Duplicate))
                                .collect::<Vec<_>>()
                        })
                        .await;
                        match res {
                            Ok(errors) => {
                                for e in errors {
                                    debug!(peer = %propagation_source, error = %e, "dropped gossiped tx");
                                }
                            }
                            // A panic in CheckTx would be a bug; the swarm keeps running either way.
                            Err(e) => warn!(error = %e, "gossip CheckTx task failed"),
                        }
                    }
                    SwarmEvent::ConnectionEstablished { peer_id, endpoint, .. } => {
                        if endpoint.is_dialer() {
                            connected_addrs.insert(peer_id, endpoint.get_remote_address().clone());
                        }
                        update_peers(&peers, &swarm);
                    }
                    SwarmEvent::ConnectionClosed { peer_id, num_established, .. } => {
                        if num_established == 0 {
                            connected_addrs.remove(&peer_id);
                        }
                        update_peers(&peers, &swarm);
                    }
                    SwarmEvent::NewListenAddr { address, .. } => info!(%address, "gossip listening"),
                    _ => {}
                },
            }
        }
    });
    Ok(Gossip {
        peers: peers_out,
        outbox: out_tx,
    })
}

fn update_peers(peers: &PeerList, swarm: &libp2p::Swarm<gossipsub::Behaviour>) {
    let list: Vec<String> = swarm.connected_peers().map(|p| p.to_string()).collect();
    *peers.write().unwrap_or_else(|e| e.into_inner()) = list;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(txs: &[usize]) -> mpsc::Receiver<Bytes> {
        let (tx, rx) = mpsc::channel(64);
        for (i, len) in txs.iter().enumerate() {
            tx.try_send(Bytes::from(vec![i as u8; *len]))
                .expect("queue");
        }
        rx
    }

    #[test]
    fn a_batch_takes_what_is_queued_in_order_up_to_the_size_limit() {
        let mut rx = queue(&[100, 100, 500, 10]);
        let (batch, rest) = next_batch(Bytes::from(vec![9u8; 50]), &mut rx, 400);
        let batch = TxBatch::decode(batch.as_slice()).expect("decodes");
        assert_eq!(
            batch
                .txs
                .iter()
                .map(|t| (t[0], t.len()))
                .collect::<Vec<_>>(),
            [(9, 50), (0, 100), (1, 100)]
        );
        // The 500-byte tx did not fit: it opens the next batch, alone (it is over the limit by itself).
        let rest = rest.expect("leftover");
        assert_eq!(rest.len(), 500);
        let (batch, rest) = next_batch(rest, &mut rx, 400);
        let batch = TxBatch::decode(batch.as_slice()).expect("decodes");
        assert_eq!(batch.txs.iter().map(Vec::len).collect::<Vec<_>>(), [500]);
        let (batch, none) = next_batch(rest.expect("the 10-byte tx"), &mut rx, 400);
        assert!(none.is_none());
        let batch = TxBatch::decode(batch.as_slice()).expect("decodes");
        assert_eq!(batch.txs.iter().map(Vec::len).collect::<Vec<_>>(), [10]);
    }

    #[test]
    fn an_empty_queue_gives_a_batch_of_one() {
        let mut rx = queue(&[]);
        let (batch, rest) = next_batch(Bytes::from_static(b"tx"), &mut rx, 10);
        assert!(rest.is_none());
        assert_eq!(
            TxBatch::decode(batch.as_slice()).expect("decodes").txs,
            [b"tx".to_vec()]
        );
    }
}
