//! The ABCI socket server (`lode abci`): serves the application to a CometBFT v0.38 node over TCP. The
//! in-process driver that Malachite uses instead is [`super::in_process`].
//!
//! **This socket is the application's unauthenticated admin interface.** Whoever can connect can call
//! InitChain, FinalizeBlock and Commit, that is, write any state the application accepts. It is meant for a
//! CometBFT node on the same host: [`check_listen_address`] refuses anything but a loopback address unless the
//! operator passes `--allow-remote` (and then must restrict access by other means: a firewall, a private
//! network).
//!
//! Wire format (CometBFT's socket protocol): each message is a protobuf `Request` / `Response` prefixed by its
//! length as an unsigned varint. Requests on one connection are answered in order, one at a time; CometBFT
//! opens several connections (consensus, mempool, query, snapshot) and the application orders calls across
//! them.
//!
//! Bounds ([`AbciLimits`]): at most `max_connections` connections are served at once (one past the limit is
//! accepted and closed at once, so it fails fast instead of waiting in the backlog), and a frame longer than
//! `max_frame_bytes` closes its connection. A frame's buffer grows with the bytes that actually arrive, so a
//! length prefix alone reserves nothing.
//!
//! Unlike `tendermint_abci`'s server, bad input never takes the server down: a request without a value is
//! answered with an `Exception`; an oversized, truncated or undecodable frame is logged and closes only its
//! own connection. On shutdown the server stops accepting, lets every in-flight request finish and answer,
//! then closes the connections.

use std::{future::Future, io, net::SocketAddr, sync::Arc, time::Duration};

use bytes::BytesMut;
use prost::Message;
use tendermint_proto::v0_38::abci::{response, Request, Response, ResponseException};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter},
    net::{TcpListener, TcpStream},
    sync::{watch, OwnedSemaphorePermit, Semaphore},
    task::JoinSet,
};
use tracing::{debug, error, info, warn, Instrument};

/// How long shutdown waits for in-flight requests before giving up on them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Longest valid varint (10 bytes encode any u64).
const MAX_VARINT_BYTES: usize = 10;

/// How much of a frame is reserved before its bytes arrive.
const INITIAL_FRAME_CAPACITY: usize = 64 * 1024;

/// The server's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbciLimits {
    /// Largest accepted request frame in bytes; a longer one closes its connection.
    pub max_frame_bytes: usize,
    /// Most connections served at once; one more is accepted and closed at once.
    pub max_connections: usize,
}

/// `lode abci` was asked to listen on an address other hosts can reach without `--allow-remote`.
#[derive(Debug, thiserror::Error)]
#[error(
    "refusing to serve the ABCI socket on {0}: it is the application's unauthenticated admin interface \
     (anyone who connects can run InitChain, FinalizeBlock and Commit). Listen on a loopback address \
     (127.0.0.1 or ::1), or pass --allow-remote and restrict access to it by other means"
)]
pub struct RemoteListenRefused(pub SocketAddr);

/// Accepts a loopback `addr` always, any other only when `allow_remote` is set.
pub fn check_listen_address(
    addr: SocketAddr,
    allow_remote: bool,
) -> Result<(), RemoteListenRefused> {
    if addr.ip().is_loopback() || allow_remote {
        Ok(())
    } else {
        Err(RemoteListenRefused(addr))
    }
}

/// What the server needs from the application: answer one request, never panic. Implemented by
/// [`lode_state::LodeApp`]; tests plug in small fakes.
pub trait Handler: Clone + Send + Sync + 'static {
    /// Answers one ABCI request. May block (storage I/O); the server calls it on a blocking thread.
    fn handle(&self, request: Request) -> Response;
}

impl Handler for lode_state::LodeApp {
    fn handle(&self, request: Request) -> Response {
        lode_state::LodeApp::handle(self, request)
    }
}

/// A bound ABCI server, not yet serving.
#[derive(Debug)]
pub struct AbciServer<H> {
    listener: TcpListener,
    app: H,
    limits: AbciLimits,
}

impl<H: Handler> AbciServer<H> {
    /// Binds `addr` (port 0 picks a free port; see [`Self::local_addr`]). The caller checks the address with
    /// [`check_listen_address`] first.
    pub async fn bind(addr: SocketAddr, app: H, limits: AbciLimits) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        Ok(Self {
            listener,
            app,
            limits,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves connections until `shutdown` completes, then drains in-flight requests and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        let local = self.listener.local_addr()?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut connections = JoinSet::new();
        let slots = Arc::new(Semaphore::new(self.limits.max_connections));
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let Ok(slot) = slots.clone().try_acquire_owned() else {
                            warn!(%peer, limit = self.limits.max_connections, "abci connection limit reached; closing the new connection");
                            drop(stream);
                            continue;
                        };
                        debug!(%peer, "abci connection opened");
                        let conn = Connection {
                            app: self.app.clone(),
                            max_frame_bytes: self.limits.max_frame_bytes,
                            stop: stop_rx.clone(),
                            _slot: slot,
                        };
                        connections.spawn(conn.serve(stream).instrument(tracing::info_span!("abci", %peer)));
                    }
                    // Per-connection accept errors (e.g. the peer reset before accept, or out of file
                    // descriptors) must not stop the server; back off briefly so a persistent error cannot spin.
                    Err(e) => {
                        warn!(error = %e, "abci accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                // Reap finished connections so the set does not grow without bound.
                Some(joined) = connections.join_next(), if !connections.is_empty() => log_join(joined),
            }
        }
        info!(%local, connections = connections.len(), "abci server stopping: no new connections");
        drop(self.listener);
        // Connections finish the request they are handling, answer it and close.
        let _ = stop_tx.send(true);
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while let Some(joined) = connections.join_next().await {
                log_join(joined);
            }
        })
        .await;
        if drained.is_err() {
            warn!("abci shutdown: in-flight requests did not finish in time");
            connections.abort_all();
        }
        info!("abci server stopped");
        Ok(())
    }
}

fn log_join(joined: Result<(), tokio::task::JoinError>) {
    if let Err(e) = joined {
        error!(error = %e, "abci connection task failed");
    }
}

struct Connection<H> {
    app: H,
    max_frame_bytes: usize,
    stop: watch::Receiver<bool>,
    /// Held while the connection is served; dropping it frees the slot.
    _slot: OwnedSemaphorePermit,
}

impl<H: Handler> Connection<H> {
    async fn serve(mut self, stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        let (rd, wr) = stream.into_split();
        let mut rd = BufReader::new(rd);
        let mut wr = BufWriter::new(wr);
        loop {
            let frame = tokio::select! {
                biased;
                _ = self.stop.wait_for(|stop| *stop) => break,
                frame = read_frame(&mut rd, self.max_frame_bytes) => frame,
            };
            let frame = match frame {
                Ok(Some(frame)) => frame,
                Ok(None) => {
                    debug!("abci connection closed by peer");
                    break;
                }
                Err(e) => {
                    warn!(error = %e, "abci: bad frame, closing the connection");
                    break;
                }
            };
            let request = match Request::decode(frame.as_slice()) {
                Ok(r) => r,
                Err(e) => {
                    warn!(error = %e, "abci: undecodable request, closing the connection");
                    break;
                }
            };
            let is_flush = matches!(
                request.value,
                Some(tendermint_proto::v0_38::abci::request::Value::Flush(_))
            );
            let response = self.answer(request).await;
            if let Err(e) = write_frame(&mut wr, &response).await {
                debug!(error = %e, "abci: cannot write response, closing the connection");
                break;
            }
            // Batch pipelined responses; flush once the peer has nothing more queued, and always on Flush.
            if is_flush || rd.buffer().is_empty() {
                if let Err(e) = wr.flush().await {
                    debug!(error = %e, "abci: cannot flush, closing the connection");
                    break;
                }
            }
        }
        let _ = wr.shutdown().await;
    }

    async fn answer(&self, request: Request) -> Response {
        if request.value.is_none() {
            warn!("abci: request without a value");
            return exception("request has no value");
        }
        let app = self.app.clone();
        match tokio::task::spawn_blocking(move || app.handle(request)).await {
            Ok(response) => response,
            Err(e) => {
                error!(error = %e, "abci: the application failed on a request");
                exception("internal error")
            }
        }
    }
}

/// A `Response` carrying an exception, CometBFT's signal that the request could not be processed.
pub fn exception(message: &str) -> Response {
    Response {
        value: Some(response::Value::Exception(ResponseException {
            error: message.to_owned(),
        })),
    }
}

/// Reads one length-prefixed frame. `Ok(None)` on a clean end of stream before a frame starts.
pub async fn read_frame<R: AsyncRead + Unpin>(
    rd: &mut R,
    max_frame_bytes: usize,
) -> io::Result<Option<Vec<u8>>> {
    let mut len: u64 = 0;
    for i in 0..MAX_VARINT_BYTES {
        let byte = match rd.read_u8().await {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && i == 0 => return Ok(None),
            Err(e) => return Err(e),
        };
        // The tenth byte holds bit 63 alone: anything more would be shifted out, a smaller length read.
        if i == MAX_VARINT_BYTES - 1 && byte > 1 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "frame length prefix overflows 64 bits",
            ));
        }
        len |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            let len = usize::try_from(len).unwrap_or(usize::MAX);
            if len > max_frame_bytes {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("frame of {len} bytes exceeds the limit of {max_frame_bytes}"),
                ));
            }
            // Grow with the bytes received rather than trusting the prefix with an allocation.
            let mut frame = Vec::with_capacity(len.min(INITIAL_FRAME_CAPACITY));
            let got = (&mut *rd).take(len as u64).read_to_end(&mut frame).await?;
            if got != len {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("frame ended after {got} of {len} bytes"),
                ));
            }
            return Ok(Some(frame));
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "frame length prefix is not a valid varint",
    ))
}

/// Writes one length-prefixed message (not flushed).
pub async fn write_frame<W: AsyncWrite + Unpin, M: Message>(
    wr: &mut W,
    message: &M,
) -> io::Result<()> {
    let mut buf = BytesMut::with_capacity(message.encoded_len() + MAX_VARINT_BYTES);
    message
        .encode_length_delimited(&mut buf)
        .map_err(io::Error::other)?;
    wr.write_all(&buf).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tendermint_proto::v0_38::abci::{request, RequestEcho, ResponseEcho};

    /// A length prefix whose tenth byte carries bits past 64 is refused, not read as the smaller length
    /// left after the shift (nine zero groups and a 2 would read as an empty frame).
    #[tokio::test]
    async fn a_length_prefix_over_64_bits_is_refused() {
        let mut over: &[u8] = &[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02];
        let e = read_frame(&mut over, 1 << 20).await.expect_err("refused");
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
        // Bit 63 alone is a length, refused only for its size.
        let mut top: &[u8] = &[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01];
        let e = read_frame(&mut top, 1 << 20).await.expect_err("too large");
        assert!(e.to_string().contains("exceeds the limit"), "{e}");
        let mut one: &[u8] = &[0x01, 0xAB];
        assert_eq!(
            read_frame(&mut one, 1 << 20).await.expect("frame"),
            Some(vec![0xAB])
        );
    }

    #[derive(Clone)]
    struct Echo;

    impl Handler for Echo {
        fn handle(&self, request: Request) -> Response {
            match request.value {
                Some(request::Value::Echo(RequestEcho { message })) => Response {
                    value: Some(response::Value::Echo(ResponseEcho { message })),
                },
                _ => exception("unsupported"),
            }
        }
    }

    async fn roundtrip(stream: &mut TcpStream, frame: &[u8]) -> io::Result<Option<Response>> {
        stream.write_all(frame).await?;
        let Some(bytes) = read_frame(stream, 1 << 20).await? else {
            return Ok(None);
        };
        Ok(Some(
            Response::decode(bytes.as_slice()).map_err(io::Error::other)?,
        ))
    }

    fn echo_frame(message: &str) -> Vec<u8> {
        Request {
            value: Some(request::Value::Echo(RequestEcho {
                message: message.to_owned(),
            })),
        }
        .encode_length_delimited_to_vec()
    }

    #[tokio::test]
    async fn bad_frames_close_only_their_connection_and_shutdown_is_clean() {
        let server = AbciServer::bind(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            Echo,
            AbciLimits {
                max_frame_bytes: 1024,
                max_connections: 16,
            },
        )
        .await
        .expect("bind");
        let addr = server.local_addr().expect("addr");
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async {
            let _ = stop_rx.await;
        }));
        let t = Duration::from_secs(10);

        let mut good = TcpStream::connect(addr).await.expect("connect");
        let r = tokio::time::timeout(t, roundtrip(&mut good, &echo_frame("hi")))
            .await
            .expect("in time");
        assert_eq!(
            r.expect("io"),
            Some(Response {
                value: Some(response::Value::Echo(ResponseEcho {
                    message: "hi".into()
                }))
            })
        );

        // An empty request: answered with an exception, connection stays up.
        let r = tokio::time::timeout(t, roundtrip(&mut good, &[0]))
            .await
            .expect("in time")
            .expect("io");
        assert!(
            matches!(
                r,
                Some(Response {
                    value: Some(response::Value::Exception(_))
                })
            ),
            "{r:?}"
        );

        // Oversized, non-varint and undecodable frames: each closes its own connection.
        for bad in [
            vec![0x80, 0x80, 0x04],
            vec![0xff; 11],
            vec![3, 0xff, 0xff, 0xff],
        ] {
            let mut s = TcpStream::connect(addr).await.expect("connect");
            let r = tokio::time::timeout(t, roundtrip(&mut s, &bad))
                .await
                .expect("in time");
            assert!(matches!(r, Ok(None) | Err(_)), "{bad:?} got {r:?}");
        }

        // The first connection still works.
        let r = tokio::time::timeout(t, roundtrip(&mut good, &echo_frame("again")))
            .await
            .expect("in time");
        assert!(matches!(r, Ok(Some(_))));

        let _ = stop_tx.send(());
        tokio::time::timeout(t, task)
            .await
            .expect("stops in time")
            .expect("join")
            .expect("run");
        // The open connection is closed by shutdown.
        let mut buf = [0u8; 1];
        let n = tokio::time::timeout(t, good.read(&mut buf))
            .await
            .expect("in time");
        assert!(matches!(n, Ok(0) | Err(_)));
    }

    #[test]
    fn only_loopback_addresses_are_served_without_allow_remote() {
        for ok in ["127.0.0.1:26658", "127.9.9.9:1", "[::1]:26658"] {
            let a: SocketAddr = ok.parse().expect("addr");
            assert!(check_listen_address(a, false).is_ok(), "{ok}");
        }
        for remote in [
            "0.0.0.0:26658",
            "[::]:1",
            "10.0.0.7:26658",
            "[2001:db8::1]:9",
        ] {
            let a: SocketAddr = remote.parse().expect("addr");
            let e = check_listen_address(a, false).expect_err(remote);
            assert!(e.to_string().contains("--allow-remote"), "{e}");
            assert!(check_listen_address(a, true).is_ok(), "{remote}");
        }
    }

    #[tokio::test]
    async fn a_connection_past_the_limit_is_closed_and_its_slot_returns_when_one_closes() {
        let server = AbciServer::bind(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            Echo,
            AbciLimits {
                max_frame_bytes: 1024,
                max_connections: 2,
            },
        )
        .await
        .expect("bind");
        let addr = server.local_addr().expect("addr");
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async {
            let _ = stop_rx.await;
        }));
        let t = Duration::from_secs(10);
        let ask = |mut s: TcpStream, m: &'static str| async move {
            let r = tokio::time::timeout(t, roundtrip(&mut s, &echo_frame(m)))
                .await
                .expect("in time");
            (s, r)
        };
        let (a, r) = ask(TcpStream::connect(addr).await.expect("connect"), "a").await;
        assert!(matches!(r, Ok(Some(_))), "{r:?}");
        let (b, r) = ask(TcpStream::connect(addr).await.expect("connect"), "b").await;
        assert!(matches!(r, Ok(Some(_))), "{r:?}");
        for _ in 0..3 {
            let (_, r) = ask(TcpStream::connect(addr).await.expect("connect"), "c").await;
            assert!(
                matches!(r, Ok(None) | Err(_)),
                "served past the limit: {r:?}"
            );
        }
        let (a, r) = ask(a, "a again").await;
        assert!(matches!(r, Ok(Some(_))), "{r:?}");
        drop(b);
        let mut served = false;
        for _ in 0..100 {
            let (_, r) = ask(TcpStream::connect(addr).await.expect("connect"), "d").await;
            if matches!(r, Ok(Some(_))) {
                served = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(served, "the closed connection's slot was not reused");
        drop(a);
        let _ = stop_tx.send(());
        tokio::time::timeout(t, task)
            .await
            .expect("stops in time")
            .expect("join")
            .expect("run");
    }
}
