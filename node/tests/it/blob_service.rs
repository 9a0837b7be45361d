//! The blob service on real `lode start` processes: puts, gets and stats of A, B and C whose roots are
//! gpu-verify's commitments; every bad input refused with its own gRPC code and nothing stored; a blob put
//! on one node fetched over the peer-to-peer exchange by a `Get` on another.

use std::path::Path;
use std::time::{Duration, Instant};

use lode_gpu_verify::commit::{self, TileGrid};
use lode_gpu_verify::{format, MatrixI32, MatrixI8};
use lode_node::blobs::client::BlobClient;
use lode_node::blobs::layout::{self, BlobHeader};
use lode_node::blobs::put_sign_bytes;
use lode_node::keys::KeyFile;
use lode_node::services::grpc::pb::{
    self, blob_service_client::BlobServiceClient, put_request, GetRequest, PutRequest,
};
use tonic::Code;

use crate::four_validators_commit_a_transfer::{wait_height, Net};
use crate::support::{lode_ok, path_str, run_lode, SingleNode};

const CHAIN: &str = "lode-test-1";

fn a_matrix(m: usize, k: usize, salt: usize) -> MatrixI8 {
    MatrixI8::from_fn(m, k, |i, j| ((i * 31 + j * 7 + salt) % 251) as i8).expect("matrix")
}

fn c_matrix(m: usize, n: usize) -> MatrixI32 {
    MatrixI32::from_fn(m, n, |i, j| (i as i32 * 100_003) ^ (j as i32 * -7919)).expect("matrix")
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// A signed put: the header message, then `data` in chunks of `chunk` bytes.
fn put_stream(
    key: &KeyFile,
    header: &BlobHeader,
    data: &[u8],
    chunk: usize,
    edit: impl FnOnce(&mut pb::PutHeader),
) -> Vec<PutRequest> {
    let sk = key.signing_key().expect("key");
    let expires_unix = unix_now() + 60;
    let mut h = pb::PutHeader {
        blob: Some(pb::BlobHeader::from(header)),
        uploader: key.address.clone(),
        public_key: sk.verification_key().to_bytes().to_vec(),
        expires_unix,
        signature: sk
            .sign(&put_sign_bytes(CHAIN, header, expires_unix))
            .to_bytes()
            .to_vec(),
    };
    edit(&mut h);
    let mut out = vec![PutRequest {
        part: Some(put_request::Part::Header(h)),
    }];
    out.extend(data.chunks(chunk).map(|c| PutRequest {
        part: Some(put_request::Part::Chunk(bytes::Bytes::copy_from_slice(c))),
    }));
    out
}

async fn put_raw(
    raw: &mut BlobServiceClient<tonic::transport::Channel>,
    msgs: Vec<PutRequest>,
) -> Result<pb::PutResponse, tonic::Status> {
    raw.put(futures::stream::iter(msgs))
        .await
        .map(tonic::Response::into_inner)
}

fn blob_files(home: &Path) -> (Vec<String>, usize) {
    let dir = home.join("data/blobs");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("blobs dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let temps = std::fs::read_dir(dir.join("tmp")).expect("tmp").count();
    (files, temps)
}

/// Posts a job of `m`×`k`×`n` over the roots `a` and `b` from dev0 of the node at `home`/`url` (the CLI,
/// waiting for its commit): a node fetches from peers only the blobs of live jobs.
async fn post_job(home: &Path, url: &str, a: [u8; 32], b: [u8; 32], (m, k, n): (u64, u64, u64)) {
    let (home, url) = (home.to_owned(), url.to_owned());
    let out = tokio::task::spawn_blocking(move || {
        lode_ok(&[
            "tx",
            "market",
            "post-job",
            "--a-root",
            &hex::encode(a),
            "--b-root",
            &hex::encode(b),
            "--m",
            &m.to_string(),
            "--k",
            &k.to_string(),
            "--n",
            &n.to_string(),
            "--max-price",
            "7",
            "--from",
            "dev0",
            "--home",
            path_str(&home),
            "--node",
            &url,
            "--wait",
        ])
    })
    .await
    .expect("post-job");
    assert!(out.contains("result: ok"), "{out}");
}

/// Sends 12345 base units from dev0 to `to` (so it is an account on chain).
async fn fund(home: &Path, url: &str, to: &str) {
    let (home, url, to) = (home.to_owned(), url.to_owned(), to.to_owned());
    let out = tokio::task::spawn_blocking(move || {
        lode_ok(&[
            "tx",
            "send",
            "--home",
            path_str(&home),
            "--from",
            "dev0",
            "--to",
            &to,
            "--amount",
            "12345",
            "--node",
            &url,
            "--wait",
        ])
    })
    .await
    .expect("tx send");
    assert!(out.contains("committed at height"), "{out}");
}

fn code_of(err: &eyre::Report) -> Option<Code> {
    err.chain()
        .find_map(|e| e.downcast_ref::<tonic::Status>())
        .map(tonic::Status::code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_c_served_under_its_root_with_another_shape_is_refused_by_a_client_that_knows_the_job() {
    let node = SingleNode::start(|_| {}).await;
    let dev0 = KeyFile::load(&node.home.join("keys/dev0.json")).expect("dev0");
    let mut c = BlobClient::new(node.channel().await);

    // An 8x8 C with 4x4 tiles, and a 16x4 matrix holding the same four tiles in the same order: the tile
    // root covers the tiles' bytes only, so both have one root.
    let job_c = c_matrix(8, 8);
    let grid = TileGrid::new(8, 8, 4).expect("grid");
    let tiles: Vec<Vec<i32>> = (0..4)
        .map(|i| commit::extract_tile(&job_c, &grid, i).expect("tile"))
        .collect();
    let other = MatrixI32::from_fn(16, 4, |i, j| tiles[i / 4][(i % 4) * 4 + j]).expect("matrix");
    let root = commit::commit_c(&job_c, 4).expect("commit").root();
    assert_eq!(commit::commit_c(&other, 4).expect("commit").root(), root);

    // Whoever uploads first decides the header the node keeps: here the wrong shape.
    assert_eq!(c.put_c(&dev0, CHAIN, &other, 4).await.expect("put"), root);
    let err = c
        .get_c_shaped(&root, 8, 8, 4)
        .await
        .expect_err("a 16x4 C passed for an 8x8 job");
    let status = err
        .chain()
        .find_map(|e| e.downcast_ref::<tonic::Status>())
        .expect("a gRPC status");
    assert_eq!(status.code(), Code::NotFound, "{err:#}");
    assert_eq!(
        c.get_c_shaped(&root, 16, 4, 4).await.expect("same shape"),
        other
    );
}

/// The provider uploads C under the tile root its prover already committed to, without hashing C again: the
/// node still checks every byte, so a root that is not this C's stores nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c_put_under_the_provers_root_is_stored_and_under_another_root_is_refused() {
    let node = SingleNode::start(|_| {}).await;
    let dev0 = KeyFile::load(&node.home.join("keys/dev0.json")).expect("dev0");
    let mut c = BlobClient::new(node.channel().await);
    let (a, b) = (a_matrix(20, 12, 5), a_matrix(12, 9, 6));
    let prod = c_matrix(20, 9);
    let prover = lode_gpu_verify::verify::Prover::new(a, &b, prod.clone(), 4).expect("prover");
    let root = prover.c_tree().root();

    let mut wrong = root;
    wrong[0] ^= 1;
    let err = c
        .put_c_with_root(&dev0, CHAIN, &prod, 4, wrong)
        .await
        .expect_err("a C under a root that is not its own");
    assert_eq!(code_of(&err), Some(Code::InvalidArgument), "{err:#}");
    assert!(c.stat(&wrong).await.expect("stat").is_none());
    assert!(c.stat(&root).await.expect("stat").is_none());

    let stored = c
        .put_c_with_root(&dev0, CHAIN, &prod, 4, root)
        .await
        .expect("put c under the prover's root");
    assert_eq!(stored, root);
    assert_eq!(stored, commit::commit_c(&prod, 4).expect("commit").root());
    assert_eq!(c.get_c(&root).await.expect("get c"), prod);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_b_and_c_round_trip_under_gpu_verifys_roots() {
    let node = SingleNode::start(|_| {}).await;
    let dev0 = KeyFile::load(&node.home.join("keys/dev0.json")).expect("dev0");
    let mut c = BlobClient::new(node.channel().await);

    // Shapes whose leaves are not a power of two, and C tiles clipped at the edges.
    let a = a_matrix(37, 50, 1);
    let b = a_matrix(50, 23, 2);
    let prod = c_matrix(37, 23);
    let ra = c.put_a(&dev0, CHAIN, &a).await.expect("put a");
    let rb = c.put_b(&dev0, CHAIN, &b).await.expect("put b");
    let rc = c.put_c(&dev0, CHAIN, &prod, 8).await.expect("put c");
    assert_eq!(ra, commit::commit_a(&a).expect("commit").root());
    assert_eq!(rb, commit::commit_b(&b).expect("commit").root());
    assert_eq!(rc, commit::commit_c(&prod, 8).expect("commit").root());

    assert_eq!(c.get_a(&ra).await.expect("get a"), a);
    assert_eq!(c.get_b(&rb).await.expect("get b"), b);
    assert_eq!(c.get_c(&rc).await.expect("get c"), prod);
    // The wrong kind for a root is refused by the client.
    assert!(c.get_b(&ra).await.is_err());
    let grid = TileGrid::new(37, 23, 8).expect("grid");
    let tiles = c.get_c_tiles(&rc, 4, 3).await.expect("tiles");
    let want: Vec<Vec<i32>> = (4..7)
        .map(|i| commit::extract_tile(&prod, &grid, i).expect("tile"))
        .collect();
    assert_eq!(tiles, want);

    let s = c.stat(&rb).await.expect("stat").expect("stored");
    assert_eq!(
        (s.size_bytes, s.uploader.as_str()),
        (50 * 23, dev0.address.as_str())
    );
    assert!(s.fetched_from.is_empty());
    let h = BlobHeader::try_from(&s.blob.expect("header")).expect("valid");
    assert_eq!((h.rows, h.cols, h.root), (50, 23, rb));

    // Putting a stored blob again succeeds and says so.
    let mut raw = BlobServiceClient::new(node.channel().await);
    let again = put_raw(
        &mut raw,
        put_stream(
            &dev0,
            &layout::a_header(&a).expect("h"),
            &layout::a_bytes(&a),
            1000,
            |_| {},
        ),
    )
    .await
    .expect("put again");
    assert!(again.already_stored);

    // The CLI: `.npy` in, gpu-verify's format out (and `.npy` out), roots as the library computes them.
    let dir = tempfile::tempdir().expect("tempdir");
    let npy = dir.path().join("c.npy");
    format::write_npy(&npy, &prod).expect("write");
    let home = path_str(&node.home);
    let root = lode_ok(&[
        "blob",
        "put",
        path_str(&npy),
        "--kind",
        "c",
        "--tile",
        "8",
        "--from",
        "dev0",
        "--home",
        home,
        "--node",
        &node.url,
    ]);
    assert_eq!(root.trim(), hex::encode(rc));
    let lmat = dir.path().join("b.lmat");
    lode_ok(&[
        "blob",
        "get",
        &hex::encode(rb),
        "--out",
        path_str(&lmat),
        "--node",
        &node.url,
    ]);
    assert_eq!(format::read_file::<i8>(&lmat).expect("read"), b);
    let back = dir.path().join("c2.npy");
    lode_ok(&[
        "blob",
        "get",
        &hex::encode(rc),
        "--out",
        path_str(&back),
        "--node",
        &node.url,
    ]);
    assert_eq!(format::read_npy::<i32>(&back).expect("read"), prod);
    let stat = lode_ok(&["blob", "stat", &hex::encode(ra), "--node", &node.url]);
    let j: serde_json::Value = serde_json::from_str(&stat).expect("json");
    assert_eq!(
        (j["kind"].as_str(), j["rows"].as_u64(), j["leaves"].as_u64()),
        (Some("a"), Some(37), Some(37))
    );
    let missing = run_lode(&["blob", "stat", &hex::encode([7u8; 32]), "--node", &node.url]);
    assert!(!missing.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_puts_and_gets_each_get_their_own_code_and_store_nothing() {
    let node = SingleNode::start(|c| {
        c.blobs.max_blob_bytes = 64 << 10;
        c.blobs.quota_bytes_per_account = 100 << 10;
    })
    .await;
    let dev0 = KeyFile::load(&node.home.join("keys/dev0.json")).expect("dev0");
    let mut raw = BlobServiceClient::new(node.channel().await);
    let a = a_matrix(250, 240, 3); // 60,000 bytes: under the size limit, two are over the quota
    let (ha, bytes) = (layout::a_header(&a).expect("h"), layout::a_bytes(&a));
    let code = |r: Result<pb::PutResponse, tonic::Status>| r.map(|_| ()).map_err(|s| s.code());

    // Wrong root: the data hashes to another root than the header claims.
    let wrong = BlobHeader {
        root: [9; 32],
        ..ha
    };
    let r = put_raw(&mut raw, put_stream(&dev0, &wrong, &bytes, 4096, |_| {})).await;
    assert_eq!(code(r), Err(Code::InvalidArgument));
    // Overlong: one byte more than the header announces.
    let mut long = bytes.clone();
    long.push(1);
    let r = put_raw(&mut raw, put_stream(&dev0, &ha, &long, 7000, |_| {})).await;
    assert_eq!(code(r), Err(Code::InvalidArgument));
    // Truncated: the stream ends early.
    let r = put_raw(
        &mut raw,
        put_stream(&dev0, &ha, &bytes[..30_000], 7000, |_| {}),
    )
    .await;
    assert_eq!(code(r), Err(Code::Aborted));
    // Oversized: over max_blob_bytes (refused on the header, before any data).
    let big = layout::a_header(&a_matrix(300, 300, 4)).expect("h");
    let r = put_raw(&mut raw, put_stream(&dev0, &big, &[], 1, |_| {})).await;
    assert_eq!(code(r), Err(Code::FailedPrecondition));
    // Bad signature, another account's key, an expired or too-far-ahead expiry.
    let r = put_raw(
        &mut raw,
        put_stream(&dev0, &ha, &bytes, 4096, |h| h.signature[5] ^= 1),
    )
    .await;
    assert_eq!(code(r), Err(Code::Unauthenticated));
    let other = KeyFile::generate("other").expect("key");
    let r = put_raw(
        &mut raw,
        put_stream(&other, &ha, &bytes, 4096, |h| {
            h.uploader = dev0.address.clone()
        }),
    )
    .await;
    assert_eq!(code(r), Err(Code::Unauthenticated));
    let r = put_raw(
        &mut raw,
        put_stream(&dev0, &ha, &bytes, 4096, |h| h.expires_unix = 1),
    )
    .await;
    assert_eq!(code(r), Err(Code::Unauthenticated));
    let r = put_raw(
        &mut raw,
        put_stream(&dev0, &ha, &bytes, 4096, |h| {
            h.expires_unix = unix_now() + 100_000
        }),
    )
    .await;
    assert_eq!(code(r), Err(Code::Unauthenticated));
    // A fresh key, never seen on chain, brings no quota of its own: refused before any data.
    let fresh = KeyFile::generate("fresh").expect("key");
    let r = put_raw(&mut raw, put_stream(&fresh, &ha, &bytes, 4096, |_| {})).await;
    assert_eq!(code(r), Err(Code::PermissionDenied));
    // A malformed header (tile on an A blob).
    let r = put_raw(
        &mut raw,
        put_stream(&dev0, &ha, &bytes, 4096, |h| {
            h.blob.as_mut().expect("blob").tile = 4
        }),
    )
    .await;
    assert_eq!(code(r), Err(Code::InvalidArgument));

    // Nothing of any of those is stored or charged.
    assert_eq!(blob_files(&node.home), (vec![], 0));
    let mut c = BlobClient::new(node.channel().await);
    assert!(c.stat(&ha.root).await.expect("stat").is_none());

    // Within the quota, stored; a second blob over it, refused.
    put_raw(&mut raw, put_stream(&dev0, &ha, &bytes, 4096, |_| {}))
        .await
        .expect("first put");
    let a2 = a_matrix(250, 240, 5);
    let h2 = layout::a_header(&a2).expect("h");
    let r = put_raw(
        &mut raw,
        put_stream(&dev0, &h2, &layout::a_bytes(&a2), 4096, |_| {}),
    )
    .await;
    assert_eq!(code(r), Err(Code::ResourceExhausted));
    assert!(c.stat(&h2.root).await.expect("stat").is_none());
    assert_eq!(blob_files(&node.home), (vec![hex::encode(ha.root)], 0));

    // Gets: an unknown root (no peer has it either), ranges past the end.
    let get = |root: [u8; 32], first: u64, count: u64| GetRequest {
        root: root.to_vec(),
        first_leaf: first,
        leaf_count: count,
    };
    let mut raw2 = raw.clone();
    let status = |r: Result<tonic::Response<tonic::Streaming<pb::GetResponse>>, tonic::Status>| {
        r.map(|_| ()).map_err(|s| s.code())
    };
    assert_eq!(
        status(raw2.get(get([7; 32], 0, 0)).await),
        Err(Code::NotFound)
    );
    assert_eq!(
        status(raw2.get(get(ha.root, 250, 0)).await),
        Err(Code::OutOfRange)
    );
    assert_eq!(
        status(raw2.get(get(ha.root, 249, 2)).await),
        Err(Code::OutOfRange)
    );
    assert_eq!(status(raw2.get(get(ha.root, 249, 1)).await), Ok(()));
    assert_eq!(
        raw2.stat(pb::StatRequest { root: vec![1; 31] })
            .await
            .map(|_| ())
            .map_err(|s| s.code()),
        Err(Code::InvalidArgument)
    );
    // The stored blob is intact.
    assert_eq!(c.get_a(&ha.root).await.expect("get"), a);
    // A client takes no more than its limit, nor another shape than it expects, whatever the node announces.
    let mut small = BlobClient::new(node.channel().await).with_max_bytes(59_999);
    let err = small
        .get_a(&ha.root)
        .await
        .expect_err("over the client's limit");
    assert!(
        format!("{err:#}").contains("over this client's limit"),
        "{err:#}"
    );
    let err = c
        .get_a_for(&ha.root, 240, 250)
        .await
        .expect_err("another shape than expected");
    assert_eq!(code_of(&err), Some(Code::NotFound), "{err:#}");
    assert_eq!(c.get_a_for(&ha.root, 250, 240).await.expect("get"), a);
}

/// Retries `f` while it fails (bounded): the gossip swarm connects a moment after the nodes start.
async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = eyre::Result<T>>,
{
    let t = Instant::now();
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) => assert!(t.elapsed() < Duration::from_secs(60), "{what}: {e:?}"),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn chain_id(url: &str) -> String {
    pb::query_service_client::QueryServiceClient::connect(url.to_owned())
        .await
        .expect("connect")
        .status(pb::StatusRequest {})
        .await
        .expect("status")
        .into_inner()
        .chain_id
}

async fn client(url: &str) -> BlobClient {
    BlobClient::new(
        tonic::transport::Channel::from_shared(url.to_owned())
            .expect("url")
            .connect()
            .await
            .expect("connect"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_jobs_blob_put_on_node_0_is_fetched_by_node_1_and_no_other_root_is() {
    let dir = tempfile::tempdir().expect("tempdir");
    let net = Net::start(dir.path(), 2);
    wait_height(&net, 2).await;
    let chain = chain_id(&net.grpc[0]).await;
    let dev0 = KeyFile::load(&net.homes[0].join("keys/dev0.json")).expect("dev0");
    let (mut c0, mut c1) = (client(&net.grpc[0]).await, client(&net.grpc[1]).await);

    let a = a_matrix(300, 1000, 6); // 300 KB: several blocks
    let b = a_matrix(1000, 4, 7);
    let loose = a_matrix(20, 30, 8); // stored on node 0, referenced by no job
    let ra = c0.put_a(&dev0, &chain, &a).await.expect("put a");
    let rb = c0.put_b(&dev0, &chain, &b).await.expect("put b");
    let rl = c0.put_a(&dev0, &chain, &loose).await.expect("put loose");
    assert!(c1.stat(&ra).await.expect("stat").is_none());
    post_job(&net.homes[0], &net.grpc[0], ra, rb, (300, 1000, 4)).await;

    let got = eventually("get a on node 1", || {
        let mut c = c1.clone();
        async move { c.get_a(&ra).await }
    })
    .await;
    assert_eq!(got, a);
    assert_eq!(c1.get_b(&rb).await.expect("get b"), b);
    let s = c1
        .stat(&ra)
        .await
        .expect("stat")
        .expect("now stored on node 1");
    assert!(s.uploader.is_empty(), "a fetched copy is charged to nobody");
    assert!(!s.fetched_from.is_empty());
    // Node 0 is connected and stores `loose`, but no live job references it: node 1 does not fetch it.
    let err = c1.get_a(&rl).await.expect_err("not a live job's blob");
    assert_eq!(code_of(&err), Some(Code::NotFound), "{err:#}");
    assert!(c1.stat(&rl).await.expect("stat").is_none());
    // A root no node has: NOT_FOUND.
    let err = c1.get_a(&[3; 32]).await.expect_err("unknown");
    assert_eq!(code_of(&err), Some(Code::NotFound), "{err:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lying_peer_costs_at_most_a_window_of_blocks_and_an_honest_copy_is_stored() {
    use lode_node::blobs::store::BlobStore;
    use lode_node::config::{BlobsConfig, Config};
    use lode_node::services::blob_exchange::WINDOW;
    use lode_node::services::gossip::{self, GossipConfig};
    use lode_node::services::mempool::{Mempool, MempoolLimits};
    use std::io::Write;
    use std::os::unix::fs::FileExt;
    use std::sync::atomic::Ordering;

    let node = SingleNode::start(|_| {}).await;
    let node_gossip = Config::load(&node.home.join("config.toml"))
        .expect("config")
        .p2p
        .gossip_listen;
    // The job on chain: A of 16384x4096 (64 MiB, 32 blocks of 2 MiB), B of 4096x4.
    let a = a_matrix(16_384, 4096, 8);
    let h = layout::a_header(&a).expect("h");
    let b = a_matrix(4096, 4, 9);
    let hb = layout::b_header(&b).expect("h");
    post_job(&node.home, &node.url, h.root, hb.root, (16_384, 4096, 4)).await;

    let dir = tempfile::tempdir().expect("tempdir");
    // The lying peer: a real swarm and blob store. It holds A with the true block roots but one byte of
    // block 0 altered on disk, and claims B's root under another shape (4096x4096, 16 MiB of garbage).
    let peer_app = lode_state::LodeApp::open(&dir.path().join("peer-db")).expect("peer app");
    let store =
        BlobStore::open(dir.path(), peer_app.clone(), BlobsConfig::default()).expect("store");
    let data = layout::a_bytes(&a);
    let mut v = layout::LeafVerifier::new(&h).expect("verifier");
    v.push(&data).expect("push");
    let (_, blocks) = v.finish_with_blocks().expect("blocks");
    let mut t = store.temp().expect("temp");
    t.file.write_all(&data).expect("write");
    assert!(store.commit(t, &h, &blocks, "", "").expect("commit"));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(store.path(&h.root))
        .expect("open");
    let mut byte = [0u8; 1];
    file.read_exact_at(&mut byte, 3333).expect("read");
    file.write_all_at(&[byte[0] ^ 0x40], 3333).expect("alter");
    let fake_b = BlobHeader {
        rows: 4096,
        cols: 4096,
        ..hb
    };
    let mut t = store.temp().expect("temp");
    t.file
        .write_all(&vec![0u8; fake_b.size_bytes() as usize])
        .expect("write");
    let fake_blocks = vec![[0u8; 32]; fake_b.block_count() as usize];
    assert!(store
        .commit(t, &fake_b, &fake_blocks, "", "")
        .expect("commit"));
    let pool = std::sync::Arc::new(Mempool::new(
        peer_app,
        MempoolLimits {
            max_txs: 10,
            max_bytes: 1 << 20,
            max_tx_bytes: 1 << 16,
            max_txs_per_sender: 10,
        },
    ));
    let ports = lode_test_ports::PortBlock::reserve();
    let peer = gossip::spawn_with_blobs(
        GossipConfig {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], ports.port(0))),
            peers: vec![node_gossip],
            max_message_bytes: 1 << 17,
            max_peers: 8,
        },
        [9; 32],
        pool,
        Some(store),
    )
    .expect("peer swarm");

    // Once the peer is connected, the node's Get fetches A from it and stops at the altered block: the
    // liar served at most a window of blocks (plus those already asked for), not the whole blob.
    let mut c = client(&node.url).await;
    let t0 = Instant::now();
    let code = loop {
        let err = c
            .get_a(&h.root)
            .await
            .expect_err("altered bytes must not verify");
        let code = code_of(&err);
        if code != Some(Code::NotFound) {
            break code;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "peer never connected: {err:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(code, Some(Code::Unavailable));
    // Ranges the node asked for before it saw the bad block are still answered after its Get has failed:
    // read the count once the peer has stopped serving (no change for two seconds), not at once.
    let mut served = peer.blob_bytes_served.load(Ordering::Relaxed);
    let settle = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = peer.blob_bytes_served.load(Ordering::Relaxed);
        if now == served {
            break;
        }
        served = now;
        assert!(
            settle.elapsed() < Duration::from_secs(30),
            "the peer kept serving"
        );
    }
    assert!(
        served <= 2 * WINDOW as u64 * (2 << 20) && served < h.size_bytes() / 2,
        "the lying peer served {served} of {} bytes",
        h.size_bytes()
    );
    assert!(c.stat(&h.root).await.expect("stat").is_none());
    assert_eq!(blob_files(&node.home), (vec![], 0));

    // B under another shape than the job's: the peer is no holder; nothing is downloaded.
    let err = c.get_b(&hb.root).await.expect_err("B under a lying header");
    assert_eq!(code_of(&err), Some(Code::NotFound), "{err:#}");
    assert_eq!(peer.blob_bytes_served.load(Ordering::Relaxed), served);
    assert_eq!(blob_files(&node.home), (vec![], 0));

    // The peer's copy repaired: the same Get now fetches, verifies and stores it.
    file.write_all_at(&byte, 3333).expect("repair");
    assert_eq!(c.get_a(&h.root).await.expect("get"), a);
    let s = c.stat(&h.root).await.expect("stat").expect("stored");
    assert!(!s.fetched_from.is_empty() && s.uploader.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_streams_and_full_transfer_slots_hold_nothing_and_the_node_answers_meanwhile() {
    let node = SingleNode::start(|c| {
        c.blobs.max_concurrent_transfers = 2;
        c.blobs.max_blob_bytes = 64 << 20;
        c.blobs.max_total_bytes = 40 << 20;
        c.grpc.stream_stall_timeout_ms = 5_000;
    })
    .await;
    let dev0 = KeyFile::load(&node.home.join("keys/dev0.json")).expect("dev0");
    let other = KeyFile::generate("other").expect("key");
    fund(&node.home, &node.url, &other.address).await;
    let mut c = BlobClient::new(node.channel().await);
    let big = a_matrix(8192, 4096, 10); // 32 MiB
    let rbig = c.put_a(&dev0, CHAIN, &big).await.expect("put big");

    // A stalled Get: the client reads nothing. It holds a transfer slot until the stall timeout.
    let stalled_get = BlobServiceClient::new(node.channel().await)
        .get(GetRequest {
            root: rbig.to_vec(),
            first_leaf: 0,
            leaf_count: 0,
        })
        .await
        .expect("get opened");
    // A stalled Put: the header and one chunk of a 4 MiB blob, then nothing. It holds the other slot and
    // 4 MiB of the node-wide cap.
    let small = a_matrix(1024, 4096, 11);
    let hs = layout::a_header(&small).expect("h");
    let stalled_put = |key: KeyFile, channel: tonic::transport::Channel| {
        let msgs = put_stream(
            &key,
            &hs,
            &layout::a_bytes(&small)[..65_536],
            65_536,
            |_| {},
        );
        let (tx, rx) = futures::channel::mpsc::channel::<PutRequest>(4);
        let mut raw = BlobServiceClient::new(channel);
        tokio::spawn(async move {
            let mut tx = tx;
            for m in msgs {
                futures::SinkExt::send(&mut tx, m).await.expect("send");
            }
            let r = raw.put(rx).await.map(|_| ());
            drop(tx);
            r
        })
    };
    let put1 = stalled_put(dev0.clone(), node.channel().await);
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Meanwhile the node answers: a Stat, and a third transfer refused at once for want of a slot.
    assert!(c.stat(&rbig).await.expect("stat").is_some());
    let mut third = client(&node.url).await;
    let err = third.get_raw(&rbig, 0, 1).await.expect_err("no free slot");
    assert_eq!(code_of(&err), Some(Code::ResourceExhausted), "{err:#}");

    // The stalled Put is cut off and stores nothing; the stalled Get loses its slot.
    let r = tokio::time::timeout(Duration::from_secs(30), put1)
        .await
        .expect("the stalled put ends")
        .expect("task");
    assert_eq!(r.map_err(|s| s.code()), Err(Code::DeadlineExceeded));
    assert_eq!(blob_files(&node.home), (vec![hex::encode(rbig)], 0));
    let t0 = Instant::now();
    loop {
        match third.get_a(&rbig).await {
            Ok(m) => {
                assert_eq!(m, big);
                break;
            }
            Err(e) => {
                assert_eq!(code_of(&e), Some(Code::ResourceExhausted), "{e:#}");
                assert!(
                    t0.elapsed() < Duration::from_secs(30),
                    "the stalled get kept its slot"
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
    drop(stalled_get);

    // The node-wide cap counts every account and the uploads in progress: with 32 MiB stored and 4 MiB
    // reserved by dev0's stalled put, `other` (whose own quota is untouched) cannot add 6 MiB over 40 MiB.
    let put2 = stalled_put(dev0.clone(), node.channel().await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let six = a_matrix(1536, 4096, 12);
    let mut co = client(&node.url).await;
    let err = co.put_a(&other, CHAIN, &six).await.expect_err("node full");
    assert_eq!(code_of(&err), Some(Code::ResourceExhausted), "{err:#}");
    assert!(format!("{err:#}").contains("node full"), "{err:#}");
    let r = tokio::time::timeout(Duration::from_secs(30), put2)
        .await
        .expect("the stalled put ends")
        .expect("task");
    assert_eq!(r.map_err(|s| s.code()), Err(Code::DeadlineExceeded));
    // Its reservation released, the same put fits.
    let rsix = co.put_a(&other, CHAIN, &six).await.expect("fits now");
    let (files, temps) = blob_files(&node.home);
    assert_eq!((files.len(), temps), (2, 0));
    assert!(files.contains(&hex::encode(rsix)));
    assert!(c.stat(&hs.root).await.expect("stat").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_reader_that_stops_and_a_put_that_sends_only_its_header_are_cut_off_and_free_the_slot(
) {
    let node = SingleNode::start(|c| {
        c.blobs.max_concurrent_transfers = 1;
        // Long enough that the slot is seen taken below on a loaded machine, short enough for a test.
        c.grpc.stream_stall_timeout_ms = 3_000;
    })
    .await;
    let dev0 = KeyFile::load(&node.home.join("keys/dev0.json")).expect("dev0");
    let mut c = BlobClient::new(node.channel().await);
    let big = a_matrix(8192, 4096, 13); // 32 MiB: more than the queues between disk and client hold
    let rbig = c.put_a(&dev0, CHAIN, &big).await.expect("put big");
    let size = big.data().len();

    // Waits (bounded) until the node's only transfer slot is free again: a one-leaf get succeeds.
    let slot_freed = |what: &'static str| {
        let url = node.url.clone();
        async move {
            let mut other = client(&url).await;
            let t0 = Instant::now();
            loop {
                match other.get_raw(&rbig, 0, 1).await {
                    Ok((_, b)) => {
                        assert_eq!(b.len(), 4096);
                        return;
                    }
                    Err(e) => {
                        assert_eq!(code_of(&e), Some(Code::ResourceExhausted), "{e:#}");
                        assert!(
                            t0.elapsed() < Duration::from_secs(30),
                            "{what} kept the slot"
                        );
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }
    };

    // A Get whose client takes the header and then stops reading: cut off after the stall timeout, its
    // slot freed. Read again later, the stream gives the chunks that were queued and then
    // DEADLINE_EXCEEDED, never a clean end short of the blob.
    let mut stalled = BlobServiceClient::new(node.channel().await)
        .get(GetRequest {
            root: rbig.to_vec(),
            first_leaf: 0,
            leaf_count: 0,
        })
        .await
        .expect("get opened")
        .into_inner();
    let first = stalled.message().await.expect("header").expect("header");
    assert!(matches!(
        first.part,
        Some(pb::get_response::Part::Header(_))
    ));
    let mut third = client(&node.url).await;
    let err = third
        .get_raw(&rbig, 0, 1)
        .await
        .expect_err("the slot is taken");
    assert_eq!(code_of(&err), Some(Code::ResourceExhausted), "{err:#}");
    slot_freed("a get whose client stopped reading").await;
    let mut got = 0usize;
    let end = loop {
        match tokio::time::timeout(Duration::from_secs(30), stalled.message())
            .await
            .expect("the stream goes on or ends")
        {
            Ok(Some(m)) => match m.part {
                Some(pb::get_response::Part::Chunk(c)) => got += c.len(),
                other => panic!("unexpected part {other:?}"),
            },
            Ok(None) => break Ok(()),
            Err(s) => break Err(s),
        }
    };
    assert!(got < size, "the stalled reader got the whole blob");
    assert_eq!(
        end.map_err(|s| s.code()),
        Err(Code::DeadlineExceeded),
        "a get cut off after {got} of {size} bytes must not end cleanly"
    );

    // A Put that sends its signed header and then nothing: cut off after the stall timeout with
    // DEADLINE_EXCEEDED, its slot and reservation freed, nothing stored.
    let small = a_matrix(1024, 4096, 14);
    let hs = layout::a_header(&small).expect("h");
    let (tx, rx) = futures::channel::mpsc::channel::<PutRequest>(4);
    let mut raw = BlobServiceClient::new(node.channel().await);
    let put = tokio::spawn(async move {
        let mut tx = tx;
        for m in put_stream(&dev0, &hs, &[], 1, |_| {}) {
            futures::SinkExt::send(&mut tx, m).await.expect("send");
        }
        let r = raw.put(rx).await.map(|_| ());
        drop(tx);
        r
    });
    let r = tokio::time::timeout(Duration::from_secs(30), put)
        .await
        .expect("the header-only put ends")
        .expect("task");
    assert_eq!(r.map_err(|s| s.code()), Err(Code::DeadlineExceeded));
    slot_freed("a header-only put").await;
    assert!(c.stat(&hs.root).await.expect("stat").is_none());
    assert_eq!(blob_files(&node.home), (vec![hex::encode(rbig)], 0));
}

/// The blob transfer benchmark: a 256 MiB A put on node 0 of a two-node testnet, then fetched over the
/// peer-to-peer exchange by a `Get` on node 1. Prints MB/s. Run with
/// `cargo nextest run --workspace -E 'test(blob_transfer_bench)' --run-ignored only --no-capture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: prints MB/s"]
async fn blob_transfer_bench_256_mib_between_two_nodes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let net = Net::start(dir.path(), 2);
    wait_height(&net, 2).await;
    let chain = chain_id(&net.grpc[0]).await;
    let dev0 = KeyFile::load(&net.homes[0].join("keys/dev0.json")).expect("dev0");
    let (mut c0, c1) = (client(&net.grpc[0]).await, client(&net.grpc[1]).await);
    let a = a_matrix(65_536, 4096, 7);
    let size = 65_536.0 * 4096.0;
    let t = Instant::now();
    let root = c0.put_a(&dev0, &chain, &a).await.expect("put");
    let put_s = t.elapsed().as_secs_f64();
    // Wait until node 1 sees node 0 on the gossip swarm (a stat of the blob through its exchange).
    let t = Instant::now();
    let got = eventually("get on node 1", || {
        let mut c = c1.clone();
        async move { c.get_raw(&root, 0, 1).await }
    })
    .await;
    assert_eq!(got.1.len(), 4096);
    let fetch_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut c = c1.clone();
    let back = c.get_a(&root).await.expect("get");
    let get_s = t.elapsed().as_secs_f64();
    assert_eq!(back.data().len(), a.data().len());
    println!(
        "blob transfer, 256 MiB A: put to node 0 {:.0} MB/s; node 1 fetched it from node 0 (p2p, verified, stored) {:.0} MB/s; local get from node 1 (client verifies) {:.0} MB/s",
        size / 1e6 / put_s,
        size / 1e6 / fetch_s,
        size / 1e6 / get_s
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_that_gives_a_live_jobs_root_another_shape_is_refused_before_any_data() {
    let node = SingleNode::start(|_| {}).await;
    let dev0 = KeyFile::load(&node.home.join("keys/dev0.json")).expect("dev0");
    let a = a_matrix(64, 32, 5);
    let h = layout::a_header(&a).expect("h");
    let b = a_matrix(32, 16, 6);
    let hb = layout::b_header(&b).expect("h");
    post_job(&node.home, &node.url, h.root, hb.root, (64, 32, 16)).await;

    // The job's root under a transposed shape and under B's kind: refused on the header, nothing stored.
    let mut raw = BlobServiceClient::new(node.channel().await);
    for lie in [
        BlobHeader {
            rows: 32,
            cols: 64,
            ..h
        },
        BlobHeader { kind: hb.kind, ..h },
    ] {
        let err = put_raw(&mut raw, put_stream(&dev0, &lie, &[], 1, |_| {}))
            .await
            .expect_err("a header the live job contradicts");
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        assert!(err.message().contains("live job on chain"), "{err:?}");
    }
    assert_eq!(blob_files(&node.home), (vec![], 0));
    // The job's own header is accepted.
    let mut c = client(&node.url).await;
    assert_eq!(c.put_a(&dev0, CHAIN, &a).await.expect("put"), h.root);
}
