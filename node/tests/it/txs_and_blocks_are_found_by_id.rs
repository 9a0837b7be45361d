//! `TxService.GetTx`, `BlockService.GetBlock` and `TxService.Simulate` on a running node after a mix of txs
//! (transfers, a module message, txs CheckTx refused), and the CLI commands over them.

use lode_node::keys::KeyFile;
use lode_node::services::grpc::pb::{
    self, block_service_client::BlockServiceClient, query_service_client::QueryServiceClient,
    tx_service_client::TxServiceClient,
};
use lode_state::tx::{sign_msgs, sign_send, tx_hash, Msg};
use tonic::Code;

use crate::support::{dry_run_send, run_lode, SingleNode};

const CHAIN: &str = "lode-test-1";
const FEE: u128 = 50_000;

async fn account(q: &mut QueryServiceClient<tonic::transport::Channel>, a: &str) -> (String, u64) {
    let r = q
        .account(pb::AccountRequest {
            address: a.to_owned(),
        })
        .await
        .expect("account")
        .into_inner();
    (r.balance, r.nonce)
}

fn attr<'a>(events: &'a [pb::Event], ty: &str, key: &str) -> Option<&'a str> {
    events
        .iter()
        .filter(|e| e.r#type == ty)
        .flat_map(|e| &e.attributes)
        .find(|a| a.key == key)
        .map(|a| a.value.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_txs_and_blocks_are_found_by_hash_and_height_and_simulate_changes_nothing() {
    let node = SingleNode::start(|_| {}).await;
    let ch = node.channel().await;
    let (mut txs, mut blocks, mut q) = (
        TxServiceClient::new(ch.clone()),
        BlockServiceClient::new(ch.clone()),
        QueryServiceClient::new(ch),
    );
    let dev0 = KeyFile::load(&node.home.join("keys/dev0.json")).expect("dev0");
    let key = dev0.signing_key().expect("key");
    let bob = KeyFile::generate("bob").expect("key").address;
    let to: lode_state::Address = bob.parse().expect("address");

    // A transfer and an NFT collection, committed; a stale nonce and a forged signature, refused.
    let send = sign_send(CHAIN, &key, 0, FEE, &to, 500);
    let create = sign_msgs(
        CHAIN,
        &key,
        1,
        FEE,
        &[Msg::Nft(
            lode_state::modules::nft::NftMsg::CreateCollection {
                creator: dev0.address.parse().expect("address"),
                id: "art".into(),
                name: "Art".into(),
                symbol: "ART".into(),
                uri: String::new(),
                royalty_bps: 0,
                max_supply: None,
                open_mint: false,
            },
        )],
        "",
    );
    let mut committed = Vec::new();
    for tx in [&send, &create] {
        let r = txs
            .broadcast_and_wait(pb::BroadcastAndWaitRequest {
                tx: tx.clone(),
                timeout_ms: 30_000,
            })
            .await
            .expect("broadcast")
            .into_inner();
        assert_eq!(r.result.as_ref().map(|r| r.code), Some(0), "{r:?}");
        committed.push((tx_hash(tx), r.height));
    }
    let stale = sign_send(CHAIN, &key, 0, FEE, &to, 7);
    let mut forged = sign_send(CHAIN, &key, 2, FEE, &to, 7);
    let last = forged.len() - 1;
    forged[last] ^= 1;
    for tx in [&stale, &forged] {
        let r = txs
            .broadcast(pb::BroadcastRequest { tx: tx.clone() })
            .await
            .expect("broadcast")
            .into_inner();
        assert_ne!(
            r.check.as_ref().map(|c| c.code),
            Some(0),
            "admitted a bad tx"
        );
    }

    // GetTx: where each committed tx is, its result, events and bytes.
    let (send_hash, send_height) = committed[0];
    let got = txs
        .get_tx(pb::GetTxRequest {
            hash: send_hash.to_vec(),
        })
        .await
        .expect("get tx")
        .into_inner();
    assert_eq!(got.height, send_height);
    assert_eq!(got.tx, send);
    assert_eq!(got.tx_hash, send_hash.to_vec());
    assert_eq!(got.result.as_ref().map(|r| r.code), Some(0));
    assert!(got.result.as_ref().is_some_and(|r| r.gas_used > 0));
    assert_eq!(
        attr(&got.events, "transfer", "amount"),
        Some("500"),
        "{:?}",
        got.events
    );
    assert_eq!(
        attr(&got.events, "transfer", "recipient"),
        Some(bob.as_str())
    );
    let (create_hash, create_height) = committed[1];
    let got_create = txs
        .get_tx(pb::GetTxRequest {
            hash: create_hash.to_vec(),
        })
        .await
        .expect("get tx")
        .into_inner();
    assert_eq!(got_create.height, create_height);
    assert!(got_create
        .events
        .iter()
        .any(|e| e.r#type == "nft_collection_created"));
    // Refused txs were never committed; an unknown hash is NOT_FOUND, a malformed one INVALID_ARGUMENT.
    for hash in [tx_hash(&stale), tx_hash(&forged), [7u8; 32]] {
        let e = txs
            .get_tx(pb::GetTxRequest {
                hash: hash.to_vec(),
            })
            .await
            .expect_err("found a tx never committed");
        assert_eq!(e.code(), Code::NotFound, "{e:?}");
    }
    for hash in [vec![], vec![1u8; 31], vec![1u8; 33]] {
        let e = txs
            .get_tx(pb::GetTxRequest { hash })
            .await
            .expect_err("malformed hash");
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    }

    // GetBlock: the block holding the transfer, linked to the next one, certified by the one validator.
    let block = blocks
        .get_block(pb::GetBlockRequest {
            at: Some(pb::get_block_request::At::Height(send_height)),
        })
        .await
        .expect("get block")
        .into_inner();
    let header = block.header.clone().expect("header");
    assert_eq!(header.height, send_height);
    assert_eq!(header.chain_id, CHAIN);
    assert!(header.time.is_some_and(|t| t.seconds > 1_600_000_000));
    let i = got.index as usize;
    assert_eq!(block.txs[i].tx_hash, send_hash.to_vec());
    assert_eq!(block.txs[i].tx, send);
    assert_eq!(block.txs[i].result, got.result);
    assert_eq!(block.txs[i].events, got.events);
    assert_eq!(block.signers.len(), 1, "{:?}", block.signers);
    assert_eq!(block.signers[0].signature.len(), 64);
    assert_eq!(block.result_app_hash.len(), 32);
    node.wait_height(send_height + 1).await;
    let next = blocks
        .get_block(pb::GetBlockRequest {
            at: Some(pb::get_block_request::At::Height(send_height + 1)),
        })
        .await
        .expect("next block")
        .into_inner();
    let next_header = next.header.expect("header");
    assert_eq!(next_header.last_block_id, block.block_id);
    // The app hash a header carries is the one the block before it produced.
    assert_eq!(next_header.app_hash, block.result_app_hash);
    let latest = blocks
        .get_block(pb::GetBlockRequest {
            at: Some(pb::get_block_request::At::Latest(true)),
        })
        .await
        .expect("latest")
        .into_inner();
    assert!(latest.header.expect("header").height > send_height);
    let e = blocks
        .get_block(pb::GetBlockRequest {
            at: Some(pb::get_block_request::At::Height(1_000_000_000)),
        })
        .await
        .expect_err("a block from the future");
    assert_eq!(e.code(), Code::NotFound, "{e:?}");

    // Simulate: a transfer at the next nonce reports gas, fee and events, and moves no balance and no nonce.
    let before = account(&mut q, &dev0.address).await;
    let bob_before = account(&mut q, &bob).await;
    assert_eq!(before.1, 2);
    let next_send = sign_send(CHAIN, &key, 2, FEE, &to, 1_234);
    let sim = txs
        .simulate(pb::SimulateRequest {
            tx: next_send.clone(),
        })
        .await
        .expect("simulate")
        .into_inner();
    assert_eq!(sim.result.as_ref().map(|r| r.code), Some(0), "{sim:?}");
    assert!(sim.gas > 0);
    assert_eq!(
        sim.result.as_ref().map(|r| r.gas_used),
        Some(sim.gas as i64)
    );
    let min_fee: u128 = sim.min_fee.parse().expect("decimal");
    assert!(min_fee > 0 && min_fee <= FEE);
    assert_eq!(attr(&sim.events, "transfer", "amount"), Some("1234"));
    // A failing tx reports its code; a module message simulates too.
    let sim_stale = txs
        .simulate(pb::SimulateRequest { tx: stale.clone() })
        .await
        .expect("simulate")
        .into_inner();
    assert_ne!(sim_stale.result.as_ref().map(|r| r.code), Some(0));
    let e = txs
        .simulate(pb::SimulateRequest { tx: vec![] })
        .await
        .expect_err("empty tx");
    assert_eq!(e.code(), Code::InvalidArgument);
    node.wait_height(latest_height(&node).await + 2).await;
    assert_eq!(
        account(&mut q, &dev0.address).await,
        before,
        "simulate moved dev0"
    );
    assert_eq!(
        account(&mut q, &bob).await,
        bob_before,
        "simulate moved bob"
    );
    // The simulated tx was not sent and its nonce not used: it commits now, with the simulated result.
    let r = txs
        .broadcast_and_wait(pb::BroadcastAndWaitRequest {
            tx: next_send.clone(),
            timeout_ms: 30_000,
        })
        .await
        .expect("broadcast")
        .into_inner();
    let result = r.result.expect("committed");
    assert_eq!(result.code, 0);
    assert_eq!(result.gas_used, sim.gas as i64);

    // The CLI: `lode query tx`, `lode query block`, `lode tx send --dry-run`.
    let out = run_lode(&[
        "query",
        "tx",
        &hex::encode_upper(send_hash),
        "--node",
        &node.url,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["height"], send_height);
    assert_eq!(v["result"]["code"], 0);
    assert_eq!(v["tx"], hex::encode(&send));
    let out = run_lode(&["query", "tx", "00ff", "--node", &node.url]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("InvalidArgument"));
    let out = run_lode(&["query", "tx", &hex::encode([9u8; 32]), "--node", &node.url]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("NotFound"));
    let out = run_lode(&[
        "query",
        "block",
        &send_height.to_string(),
        "--node",
        &node.url,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["header"]["height"], send_height);
    assert_eq!(v["txs"][i]["tx_hash"], hex::encode_upper(send_hash));
    assert_eq!(v["commit"]["signers"].as_array().map(Vec::len), Some(1));
    let out = run_lode(&["query", "block", "--node", &node.url]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let before = account(&mut q, &dev0.address).await;
    let stdout = dry_run_send(&node, &bob, "99");
    assert!(stdout.contains("nothing sent"), "{stdout}");
    assert!(stdout.contains("gas:"), "{stdout}");
    assert!(stdout.contains("result: ok"), "{stdout}");
    let hash = stdout
        .lines()
        .find_map(|l| l.strip_prefix("tx hash: "))
        .expect("hash line")
        .trim()
        .to_owned();
    node.wait_height(latest_height(&node).await + 2).await;
    assert_eq!(
        account(&mut q, &dev0.address).await,
        before,
        "--dry-run sent the tx"
    );
    let e = txs
        .get_tx(pb::GetTxRequest {
            hash: hex::decode(&hash).expect("hex"),
        })
        .await
        .expect_err("a dry run was committed");
    assert_eq!(e.code(), Code::NotFound);
}

async fn latest_height(node: &SingleNode) -> u64 {
    node.height().await.expect("status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accounts_history_lists_the_txs_that_touched_it_newest_first_in_pages() {
    use pb::account_service_client::AccountServiceClient;
    let node = SingleNode::start(|_| {}).await;
    let ch = node.channel().await;
    let (mut txs, mut history) = (
        TxServiceClient::new(ch.clone()),
        AccountServiceClient::new(ch),
    );
    let dev0 = KeyFile::load(&node.home.join("keys/dev0.json")).expect("dev0");
    let key = dev0.signing_key().expect("key");
    let bob = KeyFile::generate("bob").expect("key").address;
    let carol = KeyFile::generate("carol").expect("key").address;
    // dev0 pays bob three times and carol once: bob's history is three txs, dev0's four.
    let mut sent = Vec::new();
    for (nonce, to) in [&bob, &bob, &carol, &bob].into_iter().enumerate() {
        let tx = sign_send(
            CHAIN,
            &key,
            nonce as u64,
            FEE,
            &to.parse().expect("address"),
            5,
        );
        let r = txs
            .broadcast_and_wait(pb::BroadcastAndWaitRequest {
                tx: tx.clone(),
                timeout_ms: 30_000,
            })
            .await
            .expect("broadcast")
            .into_inner();
        assert_eq!(r.result.as_ref().map(|r| r.code), Some(0), "{r:?}");
        sent.push(tx_hash(&tx).to_vec());
    }
    let page = |address: &str, limit: u32, page_token: Vec<u8>| pb::HistoryRequest {
        address: address.to_owned(),
        limit,
        page_token,
    };
    let hashes =
        |r: &pb::HistoryResponse| r.txs.iter().map(|t| t.tx_hash.clone()).collect::<Vec<_>>();
    let newest_first = |idx: &[usize]| idx.iter().map(|&i| sent[i].clone()).collect::<Vec<_>>();

    let all = history
        .history(page(&dev0.address, 0, vec![]))
        .await
        .expect("history")
        .into_inner();
    assert_eq!(hashes(&all), newest_first(&[3, 2, 1, 0]));
    assert!(all.next_page_token.is_empty());
    assert!(all
        .txs
        .iter()
        .all(|t| t.result.as_ref().map(|r| r.code) == Some(0)));
    let bobs = history
        .history(page(&bob, 0, vec![]))
        .await
        .expect("history")
        .into_inner();
    assert_eq!(hashes(&bobs), newest_first(&[3, 1, 0]));
    assert_eq!(
        attr(&bobs.txs[0].events, "transfer", "recipient"),
        Some(bob.as_str())
    );
    // Pages of two: [3, 1], then [0] and no token.
    let first = history
        .history(page(&bob, 2, vec![]))
        .await
        .expect("page")
        .into_inner();
    assert_eq!(hashes(&first), newest_first(&[3, 1]));
    assert!(!first.next_page_token.is_empty());
    let second = history
        .history(page(&bob, 2, first.next_page_token.clone()))
        .await
        .expect("page")
        .into_inner();
    assert_eq!(hashes(&second), newest_first(&[0]));
    assert!(second.next_page_token.is_empty());
    // Nobody's history is empty; bad addresses and tokens are INVALID_ARGUMENT.
    let nobody = KeyFile::generate("nobody").expect("key").address;
    let empty = history
        .history(page(&nobody, 0, vec![]))
        .await
        .expect("history")
        .into_inner();
    assert!(empty.txs.is_empty() && empty.next_page_token.is_empty());
    for bad in [
        page("lode1notanaddress", 0, vec![]),
        page("", 0, vec![]),
        page(&bob, 0, vec![1, 2, 3]),
    ] {
        let e = history.history(bad).await.expect_err("accepted");
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    }

    // The CLI prints the same list as JSON, and pages with --page.
    let out = run_lode(&[
        "query", "history", &bob, "--limit", "2", "--node", &node.url,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let listed: Vec<String> = json["txs"]
        .as_array()
        .expect("txs")
        .iter()
        .map(|t| t["tx_hash"].as_str().expect("hash").to_owned())
        .collect();
    assert_eq!(listed, [3, 1].map(|i| hex::encode_upper(&sent[i])).to_vec());
    let next = json["next_page"].as_str().expect("next_page").to_owned();
    let out = run_lode(&[
        "query", "history", &bob, "--page", &next, "--node", &node.url,
    ]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["txs"][0]["tx_hash"], hex::encode_upper(&sent[0]));
    assert_eq!(json["next_page"], "");
}
