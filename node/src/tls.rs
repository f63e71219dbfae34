//! WebSocket (`/ws`) and secure WebSocket (`/wss`): one transport, serving the
//! certificate the operator gives (like nwaku's `--websocket-secure-cert-path`/`-key-path`) and
//! trusting, when dialing, the web PKI roots plus any certificates the operator adds.

use libp2p::{
    PeerId, Transport,
    core::{
        muxing::StreamMuxerBox,
        transport::Boxed,
        upgrade::{SelectUpgrade, Version},
    },
    dns,
    identity::Keypair,
    noise, tcp,
    websocket::{self, tls},
    yamux,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};

use crate::config::NodeConfig;

/// A certificate or key that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// PEM that does not parse.
    #[error("{what}: {message}")]
    Pem {
        /// Which input.
        what: &'static str,
        /// Why.
        message: String,
    },
    /// rustls refused the certificate or key.
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// The TLS configuration of the WebSocket transport: the WSS certificate when serving `/wss`,
/// and the web PKI roots plus the configured trust for dialing.
pub fn websocket_tls(config: &NodeConfig) -> Result<tls::Config, TlsError> {
    let mut builder = tls::Config::builder();
    if let Some(wss) = &config.websocket_secure {
        let certs = CertificateDer::pem_slice_iter(&wss.cert_chain_pem)
            .map(|c| c.map(|c| tls::Certificate::new(c.to_vec())))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError::Pem { what: "certificate", message: e.to_string() })?;
        if certs.is_empty() {
            return Err(TlsError::Pem {
                what: "certificate",
                message: "no certificate in the PEM".into(),
            });
        }
        let key = PrivateKeyDer::from_pem_slice(&wss.key_pem)
            .map_err(|e| TlsError::Pem { what: "private key", message: e.to_string() })?;
        builder
            .server(tls::PrivateKey::new(key.secret_der().to_vec()), certs)
            .map_err(|e| TlsError::Config(e.to_string()))?;
    }
    for pem in &config.tls_trust_pem {
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| TlsError::Pem {
                what: "trusted certificate",
                message: e.to_string(),
            })?;
            builder
                .add_trust(&tls::Certificate::new(cert.to_vec()))
                .map_err(|e| TlsError::Config(e.to_string()))?;
        }
    }
    Ok(builder.finish())
}

/// The WebSocket transport for `/ws` and `/wss` (DNS, TCP, TLS when secure, WebSocket, Noise,
/// Yamux or Mplex). One transport with one TLS configuration, so dialing `/wss` always uses the
/// configured trust.
pub fn websocket_transport(
    key: &Keypair,
    tls: tls::Config,
) -> Result<Boxed<(PeerId, StreamMuxerBox)>, Box<dyn std::error::Error + Send + Sync>> {
    let tcp = tcp::tokio::Transport::new(tcp::Config::default().nodelay(true));
    let mut ws = websocket::Config::new(dns::tokio::Transport::system(tcp)?);
    ws.set_tls_config(tls);
    Ok(ws
        .upgrade(Version::V1)
        .authenticate(noise::Config::new(key)?)
        .multiplex(SelectUpgrade::new(yamux::Config::default(), libp2p_mplex::Config::default()))
        .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)))
        .boxed())
}
