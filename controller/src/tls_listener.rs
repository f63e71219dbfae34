//! HTTPS for the API without a proxy in front: a listener that accepts TCP connections and
//! completes their TLS handshakes concurrently (a slow or silent client never holds up the
//! others, and gives up after [`HANDSHAKE_TIMEOUT`]), handing axum only finished TLS streams.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use tokio::{net::TcpListener, net::TcpStream, task::JoinSet};
use tokio_rustls::{TlsAcceptor, server::TlsStream};

/// Longest a client may take to finish its handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once; more connections wait in the kernel's backlog.
pub const MAX_HANDSHAKES: usize = 256;

/// A TCP listener serving TLS.
pub struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    handshakes: JoinSet<Option<(TlsStream<TcpStream>, SocketAddr)>>,
}

impl TlsListener {
    /// Serves `config` on `tcp`.
    pub fn new(tcp: TcpListener, config: rustls::ServerConfig) -> Self {
        Self { tcp, acceptor: TlsAcceptor::from(Arc::new(config)), handshakes: JoinSet::new() }
    }

    fn start_handshake(&mut self, stream: TcpStream, peer: SocketAddr) {
        let acceptor = self.acceptor.clone();
        self.handshakes.spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => Some((tls, peer)),
                Ok(Err(error)) => {
                    tracing::debug!(target: "ctl::api", %peer, %error, "TLS handshake failed");
                    None
                }
                Err(_) => {
                    tracing::debug!(target: "ctl::api", %peer, "TLS handshake timed out");
                    None
                }
            }
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let room = self.handshakes.len() < MAX_HANDSHAKES;
            tokio::select! {
                accepted = self.tcp.accept(), if room => match accepted {
                    Ok((stream, peer)) => self.start_handshake(stream, peer),
                    Err(error) => {
                        // Out of descriptors and the like: back off rather than spin.
                        tracing::warn!(target: "ctl::api", %error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(done) = self.handshakes.join_next(), if !self.handshakes.is_empty() => {
                    if let Ok(Some(ready)) = done {
                        return ready;
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}
