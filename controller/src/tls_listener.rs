//! HTTPS for the API without a proxy in front: a listener that accepts TCP connections and
//! completes their TLS handshakes concurrently (a slow or silent client never holds up the
//! others, and gives up after [`HANDSHAKE_TIMEOUT`]), handing axum only finished TLS streams.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use tokio::{net::TcpListener, net::TcpStream, task::JoinSet};
use tokio_rustls::{TlsAcceptor, server::TlsStream};

/// Longest a client may take to finish its handshake (a real one needs a round trip or two).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Handshakes in progress at once; more connections wait in the kernel's backlog.
pub const MAX_HANDSHAKES: usize = 256;
/// Handshakes in progress at once from one address: one client cannot take every slot.
pub const MAX_HANDSHAKES_PER_IP: usize = 8;

/// A TCP listener serving TLS.
pub struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    handshakes: JoinSet<(SocketAddr, Option<TlsStream<TcpStream>>)>,
    per_ip: std::collections::HashMap<std::net::IpAddr, usize>,
    http: crate::http_server::HttpConfig,
}

impl TlsListener {
    /// Serves `config` on `tcp`; the per-address cap applies where `http`'s limits do (see
    /// [`crate::http_server`]).
    pub fn new(
        tcp: TcpListener,
        config: rustls::ServerConfig,
        http: crate::http_server::HttpConfig,
    ) -> Self {
        Self {
            tcp,
            acceptor: TlsAcceptor::from(Arc::new(config)),
            handshakes: JoinSet::new(),
            per_ip: std::collections::HashMap::new(),
            http,
        }
    }

    fn start_handshake(&mut self, stream: TcpStream, peer: SocketAddr) {
        let count = self.per_ip.entry(peer.ip()).or_default();
        if self.http.limits(peer.ip()) && *count >= MAX_HANDSHAKES_PER_IP {
            tracing::debug!(target: "ctl::api", %peer, "TLS handshake refused: too many from this address");
            return;
        }
        *count += 1;
        let acceptor = self.acceptor.clone();
        self.handshakes.spawn(async move {
            let outcome =
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => Some(tls),
                    Ok(Err(error)) => {
                        tracing::debug!(target: "ctl::api", %peer, %error, "TLS handshake failed");
                        None
                    }
                    Err(_) => {
                        tracing::debug!(target: "ctl::api", %peer, "TLS handshake timed out");
                        None
                    }
                };
            (peer, outcome)
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
                    let Ok((peer, outcome)) = done else { continue };
                    if let Some(count) = self.per_ip.get_mut(&peer.ip()) {
                        *count = count.saturating_sub(1);
                        if *count == 0 {
                            self.per_ip.remove(&peer.ip());
                        }
                    }
                    if let Some(tls) = outcome {
                        return (tls, peer);
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}
