//! Is a node really there? A libp2p handshake probe: TCP, multistream-select, Noise (which
//! proves the remote holds the key behind its peer id) and a muxer, then the connection is
//! dropped. The controller uses it to confirm the addresses nodes advertise; a TCP connect alone
//! would also "succeed" against a stale NAT mapping or another process on a reused port.

use std::time::Duration;

use libp2p::{
    Multiaddr, PeerId, Transport,
    core::{
        Endpoint,
        multiaddr::Protocol,
        transport::{DialOpts, PortUse},
        upgrade::{SelectUpgrade, Version},
    },
    identity::Keypair,
    noise, tcp, yamux,
};

/// Why a probe failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The address is not one this probe dials (`/ip4|ip6/…/tcp/…`).
    #[error("cannot probe {0}: only /ip4 or /ip6 TCP addresses")]
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

/// Completes a libp2p handshake with `expected` at `address` (a trailing `/p2p` is ignored).
pub async fn handshake(
    address: &Multiaddr,
    expected: PeerId,
    timeout: Duration,
) -> Result<(), ProbeError> {
    let mut address = address.clone();
    if matches!(address.iter().last(), Some(Protocol::P2p(_))) {
        address.pop();
    }
    let dialable = matches!(
        address.iter().collect::<Vec<_>>().as_slice(),
        [Protocol::Ip4(_) | Protocol::Ip6(_), Protocol::Tcp(_)]
    );
    if !dialable {
        return Err(ProbeError::Unsupported(address));
    }
    let failed = |message: String| ProbeError::Failed { address: address.clone(), message };
    // A throwaway identity: the probe is not a fleet member and must not look like one.
    let key = Keypair::generate_secp256k1();
    let noise = noise::Config::new(&key).map_err(|e| failed(e.to_string()))?;
    let mut transport = tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
        .upgrade(Version::V1)
        .authenticate(noise)
        .multiplex(SelectUpgrade::new(yamux::Config::default(), libp2p_mplex::Config::default()))
        .boxed();
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
