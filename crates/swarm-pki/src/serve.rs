//! Serving tonic over the cluster's mutual TLS.
//!
//! ```no_run
//! # async fn demo(server_tls: swarm_pki::ServerTls, router: tonic::transport::server::Router)
//! # -> Result<(), Box<dyn std::error::Error>> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! router.serve_with_incoming(server_tls.incoming(listener)).await?;
//! # Ok(()) }
//! ```

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::auth::PeerInfo;
use crate::tls::ServerTls;

/// How long a client has to finish the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshaken connections waiting for the server to take them.
const BACKLOG: usize = 128;

/// One accepted mTLS connection, with its [`PeerInfo`].
pub struct MtlsStream {
    inner: TlsStream<TcpStream>,
    pub(crate) peer: PeerInfo,
}

impl std::fmt::Debug for MtlsStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MtlsStream")
            .field("peer", &self.peer)
            .finish()
    }
}

impl MtlsStream {
    /// The peer of this connection.
    pub fn peer(&self) -> &PeerInfo {
        &self.peer
    }
}

impl AsyncRead for MtlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for MtlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The stream of handshaken connections of a listener, for tonic's
/// `serve_with_incoming`. Handshakes run concurrently (a slow client does
/// not hold up others) and are bounded by [`HANDSHAKE_TIMEOUT`]; failed
/// ones are logged and dropped. Dropping the stream stops accepting.
pub struct MtlsIncoming {
    rx: mpsc::Receiver<MtlsStream>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for MtlsIncoming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MtlsIncoming").finish_non_exhaustive()
    }
}

impl Drop for MtlsIncoming {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Stream for MtlsIncoming {
    type Item = Result<MtlsStream, io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx).map(|o| o.map(Ok))
    }
}

impl ServerTls {
    /// Accepts connections on `listener`, runs the TLS handshake and
    /// yields the connections for tonic. Must be called within a tokio
    /// runtime.
    pub fn incoming(&self, listener: TcpListener) -> MtlsIncoming {
        let (tx, rx) = mpsc::channel(BACKLOG);
        let acceptor = TlsAcceptor::from(self.config.clone());
        let policy = self.policy.clone();
        let task = tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = tx.closed() => return,
                    accepted = listener.accept() => accepted,
                };
                let (tcp, addr) = match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        // EMFILE and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                let policy = policy.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let tls =
                        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                            Ok(Ok(tls)) => tls,
                            Ok(Err(e)) => {
                                tracing::debug!(%addr, error = %e, "TLS handshake refused");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%addr, "TLS handshake timed out");
                                return;
                            }
                        };
                    let chain = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
                        .unwrap_or_default();
                    let peer = PeerInfo::new(Some(addr), chain, policy);
                    let _ = tx.send(MtlsStream { inner: tls, peer }).await;
                });
            }
        });
        MtlsIncoming { rx, task }
    }
}
