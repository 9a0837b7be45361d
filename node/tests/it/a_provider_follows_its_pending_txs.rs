//! The provider's signer (`provider::chain::Chain`) against a node whose blocks come 8 s apart, so txs stay
//! pending while it sends: a tx of its own left pending with the same contents (a run cut short by a failed
//! wait or a restart) is only waited for, not sent twice; one with other contents holding the next nonce is
//! followed, not collided with. Meanwhile `lode query account` shows both nonces and `lode tx --dry-run` simulates
//! at the committed one.

use lode_node::keys::KeyFile;
use lode_node::provider::chain::Chain;
use lode_state::modules::bank::BankMsg;
use lode_state::tx::Msg;

use crate::support::{dry_run_send, run_lode, SingleNode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_waits_for_its_own_pending_tx_and_follows_its_other_ones() {
    let node = SingleNode::start(|c| {
        // Every block, empty or not, comes about 8 s after the one before: the test's txs stay pending.
        c.consensus.timeout_propose_ms = 20_000;
        c.consensus.empty_block_interval_ms = 8_000;
        c.consensus.min_block_interval_ms = 8_000;
    })
    .await;
    let key = KeyFile::load(&node.home.join("keys/dev0.json")).expect("dev0");
    let me: lode_state::Address = key.address.parse().expect("address");
    let bob = lode_state::Address([9; 20]);
    let send = |amount| {
        vec![Msg::Bank(BankMsg::Send {
            from: me,
            to: bob,
            amount,
        })]
    };
    let client = lode_client::Client::connect(&node.url)
        .await
        .expect("client");
    let chain = Chain::connect(&node.url, key.clone())
        .await
        .expect("connect");
    let start = client.account(&key.address).await.expect("account");
    assert_eq!(start.pending_nonce, start.nonce);
    let c = start.nonce;

    // At c, the bytes the provider will sign again; at c + 1, another tx of the same account.
    let own = chain.sign_at(c, &send(1)).expect("sign");
    let other = chain.sign_at(c + 1, &send(2)).expect("sign");
    for raw in [own, other] {
        let r = client.broadcast(raw).await.expect("broadcast");
        assert_eq!(r.check.as_ref().map(|c| c.code), Some(0), "{r:?}");
    }
    let pending = client.account(&key.address).await.expect("account");
    assert_eq!(
        (pending.nonce, pending.pending_nonce),
        (c, c + 2),
        "both still pending"
    );
    // The CLI meanwhile: `query account` shows both nonces, and `--dry-run` simulates at the committed one
    // (Simulate runs on the last commit), so it passes while txs are pending.
    let out = run_lode(&[
        "-o",
        "json",
        "query",
        "account",
        &key.address,
        "--node",
        &node.url,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        (v["nonce"].as_u64(), v["pending_nonce"].as_u64()),
        (Some(c), Some(c + 2)),
        "{v}"
    );
    let stdout = dry_run_send(&node, &bob.to_string(), "5");
    assert!(stdout.contains("result: ok"), "{stdout}");

    // The run [send 1, send 3]: send 1 is the pending tx at c (waited for), send 3 meets the other tx's nonce
    // and goes after it, at c + 2.
    let results = chain
        .send_pipelined("transfer", &[send(1), send(3)])
        .await
        .expect("run");
    assert_eq!(results.len(), 2, "{results:?}");
    for r in &results {
        assert!(r.is_ok(), "{r:?}");
    }
    let end = client.account(&key.address).await.expect("account");
    assert_eq!((end.nonce, end.pending_nonce), (c + 3, c + 3));
    let bob_now = client.account(&bob.to_string()).await.expect("account");
    assert_eq!(bob_now.balance, "6", "1 + 2 + 3, nothing sent twice");
}
