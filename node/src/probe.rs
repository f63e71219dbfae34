//! Is a node really there? A libp2p handshake probe: TCP or WebSocket (with TLS for `/wss`),
//! multistream-select, Noise (which proves the remote holds the key behind its peer id) and a
//! muxer, then the connection is dropped. The controller uses it to confirm the addresses nodes advertise; a TCP connect alone
//! would also "succeed" against a stale NAT mapping or another process on a reused port.

use std::time::Duration;

use libp2p::{
    Multiaddr, PeerId, Transport,
    core::{
        Endpoint,
        multiaddr::Protocol,
        transport::{DialOpts, PortUse},
    },
    identity::Keypair,
};

/// Why a probe failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The address is not one this probe dials (TCP, `/ws`, `/wss`).
    #[error("cannot probe {0}: only TCP and WebSocket (/ws, /wss) addresses")]
    Unsupported(Multiaddr),
    /// Connecting or the handshake failed.
    #[error("handshake with {address} failed: {message}")]
    Failed {
        /// The address.
        address: Multiaddr,
        /// Why.
        message: String,
    },
    /// No answer in time.
    #[error("no handshake with {0} within the timeout")]
    Timeout(Multiaddr),
    /// Something answered, under another key.
    #[error("{address} answered as {found}, not {expected}")]
    WrongPeer {
        /// The address.
        address: Multiaddr,
        /// The peer id the record promises.
        expected: PeerId,
        /// The peer id that answered.
        found: PeerId,
    },
}

/// The transport an address needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `/ip4|ip6/…/tcp/…`.
    Tcp,
    /// `/ip4|ip6|dns|dns4|dns6/…/tcp/…/ws`, `…/wss` or `…/tls/ws` (WebSocket, secure or not).
    WebSocket,
}

fn kind(address: &Multiaddr) -> Option<Kind> {
    let protocols: Vec<Protocol<'_>> = address.iter().collect();
    let host = |p: &Protocol<'_>| {
        matches!(
            p,
            Protocol::Ip4(_)
                | Protocol::Ip6(_)
                | Protocol::Dns(_)
                | Protocol::Dns4(_)
                | Protocol::Dns6(_)
        )
    };
    match protocols.as_slice() {
        [Protocol::Ip4(_) | Protocol::Ip6(_), Protocol::Tcp(_)] => Some(Kind::Tcp),
        [h, Protocol::Tcp(_), Protocol::Ws(_) | Protocol::Wss(_)] if host(h) => {
            Some(Kind::WebSocket)
        }
        [h, Protocol::Tcp(_), Protocol::Tls, Protocol::Ws(_)] if host(h) => Some(Kind::WebSocket),
        _ => None,
    }
}

/// Completes a libp2p handshake with `expected` at `address` (a trailing `/p2p` is ignored):
/// TCP, or WebSocket (`/ws`, `/wss`) as browsers' js-waku dials it. A `/wss` certificate must
/// chain to the web PKI roots or to a certificate in `trust_pem`, as a client's would.
pub async fn handshake(
    address: &Multiaddr,
    expected: PeerId,
    timeout: Duration,
    trust_pem: &[Vec<u8>],
) -> Result<(), ProbeError> {
    let mut address = address.clone();
    if matches!(address.iter().last(), Some(Protocol::P2p(_))) {
        address.pop();
    }
    let Some(kind) = kind(&address) else {
        return Err(ProbeError::Unsupported(address));
    };
    let failed = |message: String| ProbeError::Failed { address: address.clone(), message };
    // A throwaway identity: the probe is not a fleet member and must not look like one.
    let key = Keypair::generate_secp256k1();
    let unspecified = std::net::IpAddr::from([0, 0, 0, 0]);
    let mut transport = match kind {
        // The probe dials from wherever the kernel routes it, and its bytes count nowhere.
        Kind::Tcp => {
            let tcp = crate::tcp_transport::SourceBoundTcp::new(unspecified, Default::default());
            crate::tcp_transport::tcp_transport(&key, tcp).map_err(|e| failed(e.to_string()))?
        }
        Kind::WebSocket => {
            let tls =
                crate::tls::client_websocket_tls(trust_pem).map_err(|e| failed(e.to_string()))?;
            let tcp = crate::tcp_transport::SourceBoundTcp::new(unspecified, Default::default());
            crate::tls::websocket_transport(&key, tls, tcp).map_err(|e| failed(e.to_string()))?
        }
    };
    let dial = transport
        .dial(address.clone(), DialOpts { role: Endpoint::Dialer, port_use: PortUse::New })
        .map_err(|e| failed(e.to_string()))?;
    let (found, _muxer) = tokio::time::timeout(timeout, dial)
        .await
        .map_err(|_| ProbeError::Timeout(address.clone()))?
        .map_err(|e| failed(e.to_string()))?;
    if found != expected {
        return Err(ProbeError::WrongPeer { address, expected, found });
    }
    Ok(())
}
