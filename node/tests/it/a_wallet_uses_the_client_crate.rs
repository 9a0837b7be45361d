//! The `lode-client` crate against a real node on loopback, the way a wallet uses it (the crate README's
//! example): a transfer built, signed at the chain's nonce and minimum fee, broadcast and waited for; both
//! accounts read with proofs checked against the block's app hash; the tx found again by an event
//! subscription replayed from its height; a second transfer sent over the streaming broadcast; ten sent back to
//! back without waiting, each at the nonce after the pending ones; and a module
//! message built from its protobuf struct (an NFT collection), read through the typed query service at the
//! heights before and after it (`x-lode-height`).

use lode_client::{
    pb, proof,
    tx::{self, msgs},
    Client, Next, SigningKey,
};
use lode_node::keys::KeyFile;

use crate::support::SingleNode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wallet_sends_a_transfer_and_proves_the_balances_with_the_client_crate() {
    let node = SingleNode::start(|_| {}).await;
    let client = Client::connect(&node.url).await.expect("connect");
    let key = KeyFile::load(&node.home.join("keys/dev0.json"))
        .expect("dev0")
        .signing_key()
        .expect("key");
    let me = tx::address_of(&key);
    let bob = tx::address_of(&SigningKey::from([9u8; 32]));

    // Before: dev0 funded, bob proven absent.
    let mine = client.account_proved(&me, 0).await.expect("proved");
    assert!(mine.account.balance > 0);
    let theirs = client.account_proved(&bob, 0).await.expect("proved");
    assert_eq!(theirs.account, proof::AccountState::default());

    // Signed at the next nonce with a fee sized for the chain's minimum (with a 20-digit placeholder fee,
    // so at least the real tx's minimum, which Simulate reports).
    let (signed, fee) = client
        .sign(
            &key,
            &[msgs::send(&me, &bob, 1234)],
            "from lode-client",
            None,
        )
        .await
        .expect("sign");
    let sim = client
        .simulate(signed.bytes.clone())
        .await
        .expect("simulate");
    assert_eq!(sim.result.as_ref().map(|r| r.code), Some(0));
    let min: u128 = sim.min_fee.parse().expect("min fee");
    assert!(0 < min && min <= fee, "min {min}, fee {fee}");
    assert_eq!(sim.tx_hash, signed.hash);
    // One unit under the minimum, CheckTx refuses it.
    let (cheap, _) = client
        .sign(
            &key,
            &[msgs::send(&me, &bob, 1234)],
            "from lode-client",
            Some(min - 1),
        )
        .await
        .expect("sign");
    let refused = client.broadcast(cheap.bytes).await.expect("broadcast");
    assert_ne!(
        refused.check.as_ref().map(|r| r.code),
        Some(0),
        "{refused:?}"
    );

    let committed = client.send_and_wait(signed.bytes).await.expect("committed");
    assert_eq!(committed.hash, signed.hash);
    assert!(committed.events.iter().any(|e| e.r#type == "transfer"));

    // After, proven at the commit height against that block's app hash.
    let h = committed.height;
    let block = client.get_block(Some(h)).await.expect("block");
    let theirs = client.account_proved(&bob, h).await.expect("proved");
    assert_eq!((theirs.account.balance, theirs.account.nonce), (1234, 0));
    assert_eq!(
        (theirs.height, &theirs.app_hash),
        (h, &block.result_app_hash)
    );
    let mine_after = client.account_proved(&me, h).await.expect("proved");
    assert_eq!(
        mine_after.account,
        proof::AccountState {
            balance: mine.account.balance - 1234 - fee,
            nonce: mine.account.nonce + 1,
        }
    );
    // A tampered entry fails: the balance changed under a valid proof, or the proof checked under another
    // root.
    let answer = client
        .query_proved("/account", bob.to_string().into_bytes(), h)
        .await
        .expect("proved")
        .response;
    let mut lie = answer.proofs.clone();
    lie[0].value[0] ^= 1;
    assert!(proof::verify_entries(&answer.app_hash, lie.iter().map(proof::Entry::from)).is_err());
    let mut root = answer.app_hash.clone();
    root[0] ^= 1;
    assert!(matches!(
        proof::verify_entries(&root, answer.proofs.iter().map(proof::Entry::from)),
        Err(proof::ProofError::Invalid { .. })
    ));

    // Subscribed from the commit height, filtered on bob as recipient: that block comes first, with the tx.
    let filter = lode_client::parse_filter(&format!("transfer.recipient={bob}")).expect("filter");
    let mut sub = client.subscribe(Some(h), vec![filter]);
    let first = tokio::time::timeout(std::time::Duration::from_secs(30), sub.next())
        .await
        .expect("in time")
        .expect("stream")
        .expect("open");
    let Next::Block(first) = first else {
        panic!("resumed before the first block")
    };
    assert_eq!(first.header.as_ref().map(|h| h.height), Some(h));
    assert_eq!(
        first.txs.iter().map(|t| &t.tx_hash).collect::<Vec<_>>(),
        [&committed.hash]
    );
    assert_eq!(sub.next_height(), Some(h + 1));

    // The streaming broadcast: checked, then committed.
    let (second, _) = client
        .sign(&key, &[msgs::send(&me, &bob, 1)], "", None)
        .await
        .expect("sign");
    let mut events = client
        .broadcast_stream(futures::stream::iter([pb::BroadcastStreamRequest {
            tx: second.bytes,
            id: 7,
            timeout_ms: 30_000,
        }]))
        .await
        .expect("stream");
    let mut seen = Vec::new();
    while let Some(e) = tokio::time::timeout(std::time::Duration::from_secs(60), events.message())
        .await
        .expect("in time")
        .expect("stream")
    {
        assert_eq!((e.id, &e.tx_hash), (7, &second.hash.to_vec()));
        seen.push(e.event.expect("event"));
    }
    assert!(
        matches!(
            seen.as_slice(),
            [
                pb::broadcast_stream_event::Event::Checked(c),
                pb::broadcast_stream_event::Event::Committed(_)
            ] if c.code == 0
        ),
        "{seen:?}"
    );
    let theirs = client.account_proved(&bob, 0).await.expect("proved");
    assert_eq!(theirs.account.balance, 1235);

    // Ten transfers signed and broadcast back to back, none waited for: `sign` takes the nonce after the
    // account's txs pending at the node, so each follows the last and all ten commit.
    let start = client.account(&me.to_string()).await.expect("account");
    assert_eq!(start.pending_nonce, start.nonce);
    let mut burst = Vec::new();
    for i in 0..10 {
        let (t, _) = client
            .sign(&key, &[msgs::send(&me, &bob, 1)], "", None)
            .await
            .expect("sign");
        let r = client.broadcast(t.bytes.clone()).await.expect("broadcast");
        assert_eq!(r.check.as_ref().map(|c| c.code), Some(0), "tx {i}: {r:?}");
        burst.push(t);
    }
    let now = client.account(&me.to_string()).await.expect("account");
    assert_eq!(now.pending_nonce, start.nonce + 10, "{now:?}");
    assert!(now.nonce <= now.pending_nonce, "{now:?}");
    for t in burst {
        client.send_and_wait(t.bytes).await.expect("committed");
    }
    let end = client.account(&me.to_string()).await.expect("account");
    assert_eq!(
        (end.nonce, end.pending_nonce),
        (start.nonce + 10, start.nonce + 10)
    );

    // Any module's message through the builder as its protobuf struct; the typed module query service
    // answers at the height asked (`x-lode-height`), echoes it, and refuses a malformed or future one.
    let collection = lode_proto::nft::v1::MsgCreateCollection {
        creator: me.to_string(),
        id: "wallet-art".into(),
        name: "Wallet Art".into(),
        symbol: "WART".into(),
        ..Default::default()
    };
    let (created, _) = client
        .sign(&key, &[collection], "", None)
        .await
        .expect("sign");
    let created = client.send_and_wait(created.bytes).await.expect("created");
    let mut nft =
        pb::nft_query_service_client::NftQueryServiceClient::new(client.channel().clone());
    let ask = |h| {
        lode_client::at_height(
            lode_proto::nft::v1::CollectionRequest {
                id: "wallet-art".into(),
            },
            h,
        )
    };
    let after = nft
        .collection(ask(created.height))
        .await
        .expect("collection after");
    assert_eq!(
        after
            .metadata()
            .get(lode_client::HEIGHT_METADATA)
            .and_then(|v| v.to_str().ok()),
        Some(created.height.to_string().as_str())
    );
    assert_eq!(
        after.into_inner().collection.map(|c| c.name),
        Some("Wallet Art".to_owned())
    );
    let before = nft.collection(ask(created.height - 1)).await;
    assert_eq!(
        before.expect_err("no collection before").code(),
        tonic::Code::NotFound
    );
    let mut bad = ask(0);
    bad.metadata_mut()
        .insert(lode_client::HEIGHT_METADATA, "-1".parse().expect("ascii"));
    assert_eq!(
        nft.collection(bad).await.expect_err("malformed").code(),
        tonic::Code::InvalidArgument
    );
    assert_eq!(
        nft.collection(ask(created.height + 1_000_000))
            .await
            .expect_err("future")
            .code(),
        tonic::Code::NotFound
    );
}
