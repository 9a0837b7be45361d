//! The application served by `lode abci` over the real ABCI socket, driven by `tendermint_abci`'s client as
//! CometBFT would drive it.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    path::Path,
};

use ed25519_consensus::SigningKey;
use lode_genesis::Genesis;
use lode_node::keys::KeyFile;
use lode_proto::query::v1::Account;
use lode_state::address::Address;
use prost::Message;
use tendermint_abci::{Client, ClientBuilder};
use tendermint_proto::{
    google::protobuf::Timestamp,
    v0_38::abci::{
        response, RequestFinalizeBlock, RequestInfo, RequestQuery, Response, ResponseInfo,
    },
};

use crate::support::{init_home, path_str, run_lode, within, AbciNode, STEP};

const FEE: u128 = 100_000;

fn connect(addr: SocketAddr) -> Client {
    ClientBuilder::default()
        .connect(addr)
        .expect("connect to lode abci")
}

fn info(client: &mut Client) -> ResponseInfo {
    client
        .info(RequestInfo {
            version: "0.38.0".into(),
            block_version: 11,
            p2p_version: 8,
            abci_version: "2.0.0".into(),
        })
        .expect("info")
}

fn account(client: &mut Client, address: &Address) -> (Account, i64) {
    let res = client
        .query(RequestQuery {
            data: address.to_string().into_bytes().into(),
            path: "/account".into(),
            height: 0,
            prove: false,
        })
        .expect("query");
    assert_eq!(res.code, 0, "query failed: {}", res.log);
    (
        Account::decode(res.value.as_ref()).expect("Account"),
        res.height,
    )
}

fn balance(client: &mut Client, address: &Address) -> u128 {
    account(client, address)
        .0
        .balance
        .parse()
        .expect("decimal balance")
}

fn dev_key(home: &Path) -> SigningKey {
    KeyFile::load(&home.join("keys/dev0.json"))
        .expect("dev0 key")
        .signing_key()
        .expect("dev0 signing key")
}

fn recipient(seed: u8) -> Address {
    Address::from_public_key(&SigningKey::from([seed; 32]).verification_key().to_bytes())
}

#[test]
fn transfers_committed_over_the_socket_survive_a_kill_and_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().to_owned();
    init_home(&home);
    let genesis = Genesis::load(home.join("genesis.json")).expect("genesis");
    let key = dev_key(&home);
    let dev = Address::from_public_key(&key.verification_key().to_bytes());
    let recipients = [recipient(1), recipient(2), recipient(3)];
    let amounts = [1_000u128, 2_500, 7];

    let node = AbciNode::start(&home);
    let addr = node.addr;
    let (height, app_hash, balances) = within("first run", move || {
        let mut client = connect(addr);
        let init = client
            .init_chain(genesis.init_chain_request().expect("init chain request"))
            .expect("init chain");
        assert!(init.validators.is_empty() || init.validators.len() == 1);
        let dev_before = balance(&mut client, &dev);
        let (dev_account, _) = account(&mut client, &dev);

        let txs = recipients
            .iter()
            .zip(amounts)
            .enumerate()
            .map(|(i, (to, amount))| {
                lode_state::tx::sign_send(
                    &genesis.chain_id,
                    &key,
                    dev_account.nonce + i as u64,
                    FEE,
                    to,
                    amount,
                )
                .into()
            })
            .collect();
        let block = client
            .finalize_block(RequestFinalizeBlock {
                txs,
                height: 1,
                time: Some(Timestamp {
                    seconds: 1_735_689_601,
                    nanos: 0,
                }),
                hash: vec![0xab; 32].into(),
                proposer_address: vec![0; 20].into(),
                ..Default::default()
            })
            .expect("finalize block");
        assert_eq!(block.tx_results.len(), 3);
        for (i, r) in block.tx_results.iter().enumerate() {
            assert_eq!(r.code, 0, "tx {i} failed: {}", r.log);
        }
        assert!(!block.app_hash.is_empty());
        client.commit().expect("commit");

        let info = info(&mut client);
        assert_eq!(info.last_block_height, 1);
        assert_eq!(info.last_block_app_hash, block.app_hash);
        let mut balances = Vec::new();
        for (to, amount) in recipients.iter().zip(amounts) {
            let (acc, at) = account(&mut client, to);
            assert_eq!(at, 1, "query height");
            assert_eq!(acc.balance, amount.to_string());
            balances.push(acc.balance);
        }
        let dev_after = balance(&mut client, &dev);
        let spent: u128 = amounts.iter().sum::<u128>() + 3 * FEE;
        assert!(
            dev_after <= dev_before - amounts.iter().sum::<u128>(),
            "{dev_after} vs {dev_before}"
        );
        assert!(
            dev_after >= dev_before - spent,
            "{dev_after} vs {dev_before}"
        );
        assert_eq!(account(&mut client, &dev).0.nonce, dev_account.nonce + 3);
        balances.push(dev_after.to_string());
        (info.last_block_height, info.last_block_app_hash, balances)
    });

    // SIGKILL: no chance to flush anything that Commit did not already make durable.
    node.kill();

    let node = AbciNode::start(&home);
    let addr = node.addr;
    within("after restart", move || {
        let mut client = connect(addr);
        let info = info(&mut client);
        assert_eq!(info.last_block_height, height);
        assert_eq!(info.last_block_app_hash, app_hash);
        let mut after = Vec::new();
        for to in &recipients {
            after.push(account(&mut client, to).0.balance);
        }
        after.push(balance(&mut client, &dev).to_string());
        assert_eq!(after, balances);
    });
}

/// Writes `frame` on a fresh connection and returns what the server answers, or `None` if it closes.
fn raw_exchange(addr: SocketAddr, frame: &[u8]) -> Option<Response> {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(STEP)).expect("timeout");
    stream.write_all(frame).expect("write");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
            Err(e) => panic!("no answer and no close within {STEP:?}: {e}"),
        }
        if let Ok(response) = Response::decode_length_delimited(buf.as_slice()) {
            return Some(response);
        }
    }
}

#[test]
fn malformed_requests_do_not_take_the_server_down() {
    let dir = tempfile::tempdir().expect("tempdir");
    init_home(dir.path());
    let node = AbciNode::start(dir.path());
    let addr = node.addr;
    within("malformed requests", move || {
        // A connection that behaves, open throughout.
        let mut bystander = connect(addr);
        assert_eq!(info(&mut bystander).last_block_height, 0);
        // A Request with no value: one zero-length frame.
        let answer = raw_exchange(addr, &[0]);
        assert!(
            matches!(
                answer,
                Some(Response {
                    value: Some(response::Value::Exception(_))
                })
            ),
            "{answer:?}"
        );
        // A frame whose bytes are not a Request, and a length prefix that is not a varint: the server closes
        // that connection.
        assert_eq!(raw_exchange(addr, &[5, 0xff, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(raw_exchange(addr, &[0xff; 16]), None);
        // A frame announced far above the size limit.
        assert_eq!(raw_exchange(addr, &[0x80, 0x80, 0x80, 0x80, 0x08]), None);
        // Only the offending connections were closed: the open one still works, and new ones are served.
        assert_eq!(info(&mut bystander).last_block_height, 0);
        assert_eq!(info(&mut connect(addr)).last_block_height, 0);
    });
}

#[test]
fn sigterm_and_sigint_stop_the_server_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    init_home(dir.path());
    for signal in ["TERM", "INT"] {
        let node = AbciNode::start(dir.path());
        let addr = node.addr;
        // An open, idle connection must not hold shutdown up.
        let mut client = connect(addr);
        let _idle = within("info", move || {
            info(&mut client);
            client
        });
        let status = node.signal_and_wait(signal);
        assert!(status.success(), "SIG{signal}: {status:?}");
    }
}

#[test]
fn the_admin_socket_refuses_a_non_loopback_address_unless_remote_access_is_asked_for() {
    let dir = tempfile::tempdir().expect("tempdir");
    init_home(dir.path());
    let home = path_str(dir.path());
    // Every interface: refused at start, before anything is opened, with the way out in the message.
    for listen in ["0.0.0.0:0", "[::]:0"] {
        let out = run_lode(&["abci", "--home", home, "--listen", listen]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{listen} was served");
        assert!(
            stderr.contains("--allow-remote") && stderr.contains("unauthenticated"),
            "{listen}: {stderr}"
        );
    }
    // The same address from config.toml is refused the same way.
    let config = dir.path().join("config.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    let remote = text.replace("listen = \"127.0.0.1:26658\"", "listen = \"0.0.0.0:0\"");
    assert_ne!(text, remote, "config.toml has no [abci] listen line");
    std::fs::write(&config, remote).expect("write config");
    let out = run_lode(&["abci", "--home", home]);
    assert!(!out.status.success(), "config's 0.0.0.0 was served");
    // With the flag the operator takes responsibility, and the server starts.
    let node = AbciNode::start_with(dir.path(), &["--allow-remote"]);
    assert!(node.addr.ip().is_unspecified(), "{}", node.addr);
    let addr = SocketAddr::from(([127, 0, 0, 1], node.addr.port()));
    within("info over the remote-enabled socket", move || {
        assert_eq!(info(&mut connect(addr)).last_block_height, 0);
    });
}

#[test]
fn connections_past_the_limit_are_closed_and_the_admitted_ones_keep_working() {
    let dir = tempfile::tempdir().expect("tempdir");
    init_home(dir.path());
    let config = dir.path().join("config.toml");
    let mut text = std::fs::read_to_string(&config).expect("config");
    text = if text.contains("max_connections = 16\n") {
        text.replace("max_connections = 16\n", "max_connections = 2\n")
    } else {
        text.replace("[abci]\n", "[abci]\nmax_connections = 2\n")
    };
    std::fs::write(&config, text).expect("write config");
    let node = AbciNode::start(dir.path());
    let addr = node.addr;
    within("connection limit", move || {
        let mut first = connect(addr);
        let mut second = connect(addr);
        assert_eq!(info(&mut first).last_block_height, 0);
        assert_eq!(info(&mut second).last_block_height, 0);
        // A third is closed without an answer, however often it is tried.
        for _ in 0..5 {
            let info_frame = tendermint_proto::v0_38::abci::Request {
                value: Some(tendermint_proto::v0_38::abci::request::Value::Info(
                    RequestInfo::default(),
                )),
            }
            .encode_length_delimited_to_vec();
            assert_eq!(raw_exchange(addr, &info_frame), None);
        }
        assert_eq!(info(&mut first).last_block_height, 0);
        // Closing one frees its slot.
        drop(second);
        let deadline = std::time::Instant::now() + STEP;
        loop {
            let mut s = TcpStream::connect(addr).expect("connect");
            s.set_read_timeout(Some(STEP)).expect("timeout");
            let frame = tendermint_proto::v0_38::abci::Request {
                value: Some(tendermint_proto::v0_38::abci::request::Value::Echo(
                    tendermint_proto::v0_38::abci::RequestEcho {
                        message: "freed".into(),
                    },
                )),
            }
            .encode_length_delimited_to_vec();
            s.write_all(&frame).expect("write");
            let mut buf = [0u8; 64];
            if matches!(s.read(&mut buf), Ok(n) if n > 0) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the freed slot was never reused"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    });
}
