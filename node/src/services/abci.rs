//! The ABCI socket server: serves the application to a CometBFT v0.38 node over TCP.
//!
//! Wire format (CometBFT's socket protocol): each message is a protobuf `Request` / `Response` prefixed by its
//! length as an unsigned varint. Requests on one connection are answered in order, one at a time; CometBFT
//! opens several connections (consensus, mempool, query, snapshot) and the application orders calls across
//! them.
//!
//! Unlike `tendermint_abci`'s server, bad input never takes the server down: a request without a value is
//! answered with an `Exception`; an oversized, truncated or undecodable frame is logged and closes only its
//! own connection. On shutdown the server stops accepting, lets every in-flight request finish and answer,
//! then closes the connections.

use std::{future::Future, io, net::SocketAddr, time::Duration};

use bytes::BytesMut;
use prost::Message;
use tendermint_proto::v0_38::abci::{response, Request, Response, ResponseException};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter},
    net::{TcpListener, TcpStream},
    sync::watch,
    task::JoinSet,
};
use tracing::{debug, error, info, warn, Instrument};

/// How long shutdown waits for in-flight requests before giving up on them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Longest valid varint (10 bytes encode any u64).
const MAX_VARINT_BYTES: usize = 10;

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
    max_frame_bytes: usize,
}

impl<H: Handler> AbciServer<H> {
    /// Binds `addr` (port 0 picks a free port; see [`Self::local_addr`]).
    pub async fn bind(addr: SocketAddr, app: H, max_frame_bytes: usize) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        Ok(Self {
            listener,
            app,
            max_frame_bytes,
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
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        debug!(%peer, "abci connection opened");
                        let conn = Connection {
                            app: self.app.clone(),
                            max_frame_bytes: self.max_frame_bytes,
                            stop: stop_rx.clone(),
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
        len |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            let len = usize::try_from(len).unwrap_or(usize::MAX);
            if len > max_frame_bytes {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("frame of {len} bytes exceeds the limit of {max_frame_bytes}"),
                ));
            }
            let mut frame = vec![0u8; len];
            rd.read_exact(&mut frame).await?;
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
        let server = AbciServer::bind(SocketAddr::from(([127, 0, 0, 1], 0)), Echo, 1024)
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
}
