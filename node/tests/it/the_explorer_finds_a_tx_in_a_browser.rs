//! The explorer the node serves (`/explorer/`), in a real headless Chromium: after a transfer, a user opens the
//! page, sees the chain move, types the tx's hash into the search box and sees its height and result; then the
//! sender's account with that tx in its history and its balance, the block, the validators, proposals, NFT
//! collections and the market pages; an unknown hash shows NOT_FOUND. Every figure the page shows is compared
//! with what the node answers over gRPC.

use std::time::Duration;

use lode_node::keys::KeyFile;
use lode_node::services::grpc::pb::{
    self, query_service_client::QueryServiceClient, tx_service_client::TxServiceClient,
};
use lode_state::tx::{sign_send, tx_hash};

use crate::support::{header, http, SingleNode};
use crate::webdriver::Browser;

const CHAIN: &str = "lode-test-1";
const WAIT: Duration = Duration::from_secs(30);

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_explorer_finds_a_transfer_by_its_hash_in_a_browser() {
    let node = SingleNode::start(|_| {}).await;
    let ch = node.channel().await;
    let (mut txs, mut q) = (
        TxServiceClient::new(ch.clone()),
        QueryServiceClient::new(ch),
    );
    let dev0 = KeyFile::load(&node.home.join("keys/dev0.json")).expect("dev0");
    let key = dev0.signing_key().expect("key");
    let bob = KeyFile::generate("bob").expect("key").address;
    let send = sign_send(CHAIN, &key, 0, 50_000, &bob.parse().expect("address"), 1234);
    let r = txs
        .broadcast_and_wait(pb::BroadcastAndWaitRequest {
            tx: send.clone(),
            timeout_ms: 30_000,
        })
        .await
        .expect("broadcast")
        .into_inner();
    assert_eq!(r.result.as_ref().map(|r| r.code), Some(0), "{r:?}");
    let hash = hex(&tx_hash(&send));
    let height = r.height;

    // The page and the schema it decodes with are served by the node itself, at the gRPC address.
    let (head, body) = http(
        &node.url,
        b"GET /explorer/schema.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert_eq!(header(&head, "content-type"), Some("application/json"));
    let schema: serde_json::Value = serde_json::from_slice(&body).expect("schema json");
    assert!(schema["messages"]["lode.tx.v1.Tx"].is_array());
    let (head, _) = http(
        &node.url,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("http/1.1 302"), "{head}");
    assert_eq!(header(&head, "location"), Some("/explorer/"));

    let browser = Browser::start().await;
    browser.goto(&format!("{}/explorer/", node.url)).await;
    // The live view follows the chain over a gRPC-web server stream: its height moves.
    let first: u64 = browser
        .wait_text("#live-height", WAIT, |t| t.parse::<u64>().is_ok())
        .await
        .parse()
        .expect("height");
    browser
        .wait_text("#live-height", WAIT, |t| {
            t.parse::<u64>().is_ok_and(|h| h > first)
        })
        .await;
    browser
        .wait_text("#live-blocks", WAIT, |t| !t.is_empty())
        .await;

    // Search by the tx's hash, as a user would.
    browser.type_into("#q", &hash).await;
    browser.click("#go").await;
    assert_eq!(
        browser.wait_text("#tx-hash", WAIT, |t| t == hash).await,
        hash
    );
    assert_eq!(
        browser.text("#tx-result").await.as_deref(),
        Some("code 0 · success")
    );
    assert_eq!(browser.text("#tx-height").await, Some(height.to_string()));
    assert_eq!(browser.text("#tx-messages").await.as_deref(), Some("send"));
    let decoded = browser.text("#tx-decoded").await.unwrap_or_default();
    assert!(
        decoded.contains(&bob) && decoded.contains("1234"),
        "{decoded}"
    );

    // The sender's account: the balance the node reports, the tx in its history.
    let sender = q
        .account(pb::AccountRequest {
            address: dev0.address.clone(),
        })
        .await
        .expect("account")
        .into_inner();
    browser.type_into("#q", &dev0.address).await;
    browser.click("#go").await;
    browser
        .wait_text("#account-address", WAIT, |t| t == dev0.address)
        .await;
    assert_eq!(
        browser.text("#account-balance").await,
        Some(sender.balance.clone())
    );
    let history = browser.text("#account-history").await.unwrap_or_default();
    assert!(history.contains(&hash[..12]), "{history}");

    // The block, by height.
    browser.type_into("#q", &height.to_string()).await;
    browser.click("#go").await;
    browser.wait_text("#block-txs", WAIT, |t| t == "1").await;

    // The other pages load and show the chain's state.
    browser
        .goto(&format!("{}/explorer/#/validators", node.url))
        .await;
    let validators = browser
        .wait_text("#validators", WAIT, |t| t.contains("bonded"))
        .await;
    assert!(validators.contains("100.00%"), "{validators}");
    for (page, css) in [
        ("proposals", "#proposals"),
        ("nfts", "#collections"),
        ("market", "#market-demand"),
    ] {
        browser
            .goto(&format!("{}/explorer/#/{page}", node.url))
            .await;
        browser.wait_text(css, WAIT, |_| true).await;
    }

    // An unknown hash is reported, not shown as an empty page.
    browser.type_into("#q", &"ab".repeat(32)).await;
    browser.click("#go").await;
    let error = browser.wait_text("#error", WAIT, |t| !t.is_empty()).await;
    assert!(error.starts_with("NOT_FOUND"), "{error}");
}
