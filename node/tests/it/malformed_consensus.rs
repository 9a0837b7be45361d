//! A validator whose every consensus and sync message reaches its peers malformed: four in-process
//! validators on the real application, validator 0 encoding what it sends with a codec that garbles the bytes
//! (a flipped byte, so a message may decode with a broken signature; a truncation; or noise of the same
//! length). The three honest validators drop what they cannot decode or verify and keep deciding blocks with
//! their 3/4 of the power, agree on every block, never decide the garbling validator's proposals (the heights
//! it leads complete in a later round), and commit a transfer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ed25519_consensus::SigningKey;
use lode_consensus::{BlockStore, Codec, HasEncodedLen, Height, LodeCodec, PrivateKey};
use lode_node::services::app::AppAbci;
use lode_state::genesis::{AppState, GenesisBalance};
use lode_state::tx::{address_of, sign_send};
use lode_tests::ports::PortBlock;

use crate::byzantine_proposer::{node_parts, validator_config};

const CHAIN: &str = "lode-garbled-1";

/// Decodes like [`LodeCodec`]; encodes like it and then garbles the bytes, a different way each time.
#[derive(Clone, Default)]
struct Garbling {
    sent: Arc<AtomicU64>,
}

impl<T> Codec<T> for Garbling
where
    LodeCodec: Codec<T>,
{
    type Error = <LodeCodec as Codec<T>>::Error;

    fn decode(&self, bytes: Bytes) -> Result<T, Self::Error> {
        LodeCodec.decode(bytes)
    }

    fn encode(&self, msg: &T) -> Result<Bytes, Self::Error> {
        let mut b = LodeCodec.encode(msg)?.to_vec();
        let n = self.sent.fetch_add(1, Ordering::Relaxed);
        match n % 3 {
            0 if !b.is_empty() => {
                let i = (n as usize * 7919) % b.len();
                b[i] ^= 0x5a;
            }
            1 => b.truncate(b.len() / 2),
            _ => {
                // Deterministic noise (xorshift) of the same length.
                let mut x = n | 1;
                for byte in &mut b {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    *byte = x as u8;
                }
            }
        }
        Ok(Bytes::from(b))
    }
}

impl<T> HasEncodedLen<T> for Garbling
where
    LodeCodec: HasEncodedLen<T>,
{
    fn encoded_len(&self, msg: &T) -> Result<usize, Self::Error> {
        LodeCodec.encoded_len(msg)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honest_validators_drop_a_peers_malformed_messages_and_keep_deciding() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sender = SigningKey::from([5u8; 32]);
    let app_state = AppState {
        balances: vec![GenesisBalance {
            address: address_of(&sender).to_string(),
            amount: "1000000000".into(),
        }],
        ..AppState::default()
    };
    let app_state_bytes = Bytes::from(serde_json::to_vec(&app_state).expect("json"));
    let recipient = address_of(&SigningKey::from([6u8; 32]));
    let tx = Bytes::from(sign_send(CHAIN, &sender, 0, 10_000, &recipient, 4242));

    let keys: Vec<PrivateKey> = (0..4u8)
        .map(|i| PrivateKey::from_seed([i + 80; 32]))
        .collect();
    let genesis: Vec<_> = keys.iter().map(|k| (k.public_key(), 10u64)).collect();
    let ports = PortBlock::reserve();
    let addrs: Vec<std::net::SocketAddr> = (0..4)
        .map(|i| std::net::SocketAddr::from(([127, 0, 0, 1], ports.port(i))))
        .collect();
    let garbling = Garbling::default();
    let mut nodes = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let (app, mempool, store) = node_parts(dir.path(), i);
        let config = validator_config(
            dir.path(),
            CHAIN,
            i,
            &addrs,
            key,
            &genesis,
            &app_state_bytes,
        );
        let abci = Arc::new(AppAbci::new(app.clone(), mempool.clone()));
        let handle = if i == 0 {
            lode_consensus::run_with_network_codec(
                config,
                abci,
                store.clone(),
                mempool.clone(),
                garbling.clone(),
            )
            .await
        } else {
            lode_consensus::run(config, abci, store.clone(), mempool.clone()).await
        }
        .expect("start consensus");
        nodes.push((app, mempool, store, handle));
    }
    nodes[1].1.add(tx.clone()).expect("valid tx admitted");

    let target = Height(6);
    for (i, (.., handle)) in nodes.iter().enumerate().skip(1) {
        let mut rx = handle.decided();
        tokio::time::timeout(Duration::from_secs(120), rx.wait_for(|d| *d >= target))
            .await
            .unwrap_or_else(|_| panic!("honest node {i} did not reach height {target}"))
            .expect("decided channel");
    }
    assert!(
        garbling.sent.load(Ordering::Relaxed) > 10,
        "the garbling validator sent almost nothing"
    );
    let (mut committed, mut later_rounds) = (false, 0);
    for height in 1..=target.0 {
        let decided: Vec<_> = nodes[1..]
            .iter()
            .map(|(_, _, s, _)| {
                s.get_decided(Height(height))
                    .expect("store")
                    .expect("decided block")
            })
            .collect();
        for d in &decided[1..] {
            assert_eq!(
                d.block, decided[0].block,
                "honest nodes disagree at height {height}"
            );
        }
        committed |= decided[0].block.txs().contains(&tx);
        // Its proposal parts never arrive intact, so the garbling validator's block is never decided; the
        // heights it leads complete in a later round.
        assert_ne!(
            decided[0].block.header().proposer,
            lode_consensus::Address::from_public_key(&keys[0].public_key()),
            "a block proposed by the garbling validator was decided at height {height}"
        );
        if decided[0].certificate.round.as_i64() > 0 {
            later_rounds += 1;
        }
    }
    assert!(
        committed,
        "the transfer was not committed by height {target}"
    );
    assert!(
        later_rounds > 0,
        "the garbling validator never led round 0 in {} heights",
        target.0
    );
    for (.., handle) in nodes {
        handle.shutdown().await;
    }
}
