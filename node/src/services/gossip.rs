//! Mempool gossip: a libp2p gossipsub swarm (the libp2p version Malachite uses) on its own port and topic.
//! Txs admitted locally are published; txs received from peers go through CheckTx like any other, and
//! malformed or invalid ones are dropped and logged.

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
                    if let Err(e) = swarm.behaviour_mut().publish(topic.clone(), tx) {
                        debug!(error = %e, "gossip publish failed");
                    }
                }
                event = swarm.select_next_some() => match event {
                    SwarmEvent::Behaviour(gossipsub::Event::Message { propagation_source, message, .. }) => {
                        let mempool = mempool.clone();
                        let tx = Bytes::from(message.data);
                        let res = tokio::task::spawn_blocking(move || mempool.add(tx)).await;
                        match res {
                            Ok(Ok(_)) | Ok(Err(AddError::Duplicate)) => {}
                            Ok(Err(e)) => debug!(peer = %propagation_source, error = %e, "dropped gossiped tx"),
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
