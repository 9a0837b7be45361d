//! A validator whose every consensus and sync message reaches its peers malformed: four in-process
//! validators on the real application, validator 0 encoding what it sends with a codec that garbles the bytes
//! (a flipped byte, so a message may decode with a broken signature; a truncation; or noise of the same
//! length). The three honest validators drop what they cannot decode or verify and keep deciding blocks with
//! their 3/4 of the power, agree on every block, never decide the garbling validator's proposals (the heights
//! it leads complete in a later round), and commit a transfer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use ed25519_consensus::SigningKey;
use lode_consensus::{Codec, HasEncodedLen, Height, LodeCodec};
use lode_node::services::in_process::AppAbci;
use lode_state::tx::{address_of, sign_send};

use crate::in_process::{agreed_decision, four_validators, wait_decided};

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
    let recipient = address_of(&SigningKey::from([6u8; 32]));
    let tx = Bytes::from(sign_send(CHAIN, &sender, 0, 10_000, &recipient, 4242));

    let (_ports, validators) = four_validators(dir.path(), CHAIN, 80, &sender);
    let garbler = lode_consensus::Address::from_public_key(&validators[0].key.public_key());
    let garbling = Garbling::default();
    let mut nodes = Vec::new();
    for (i, v) in validators.into_iter().enumerate() {
        let (config, app, mempool, store) = (v.config, v.app, v.mempool, v.store);
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
    wait_decided(&nodes[1].3, Height(1), "node 1").await;
    nodes[1].1.add(tx.clone()).expect("valid tx admitted");

    let target = Height(6);
    for (i, (.., handle)) in nodes.iter().enumerate().skip(1) {
        wait_decided(handle, target, &format!("honest node {i}")).await;
    }
    assert!(
        garbling.sent.load(Ordering::Relaxed) > 10,
        "the garbling validator sent almost nothing"
    );
    let (mut committed, mut later_rounds) = (false, 0);
    for height in 1..=target.0 {
        let decided = agreed_decision(nodes[1..].iter().map(|(_, _, s, _)| s), height);
        committed |= decided.block.txs().contains(&tx);
        // Its proposal parts never arrive intact, so the garbling validator's block is never decided; the
        // heights it leads complete in a later round.
        assert_ne!(
            decided.block.header().proposer,
            garbler,
            "a block proposed by the garbling validator was decided at height {height}"
        );
        if decided.certificate.round.as_i64() > 0 {
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
