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
    noise,
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
    add_trust(&mut builder, &config.tls_trust_pem)?;
    Ok(builder.finish())
}

/// The WebSocket transport's TLS for dialing only: the web PKI roots plus the certificates in
/// `trust_pem` (a fleet's private CA).
pub fn client_websocket_tls(trust_pem: &[Vec<u8>]) -> Result<tls::Config, TlsError> {
    let mut builder = tls::Config::builder();
    add_trust(&mut builder, trust_pem)?;
    Ok(builder.finish())
}

/// Trusts every certificate in `pems` when dialing.
fn add_trust(builder: &mut tls::Builder, pems: &[Vec<u8>]) -> Result<(), TlsError> {
    for pem in pems {
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
    Ok(())
}

/// The WebSocket transport for `/ws` and `/wss` (DNS, TCP, TLS when secure, WebSocket, Noise,
/// Yamux or Mplex). One transport with one TLS configuration, so dialing `/wss` always uses the
/// configured trust.
pub fn websocket_transport(
    key: &Keypair,
    tls: tls::Config,
    tcp: crate::tcp_transport::SourceBoundTcp,
) -> Result<Boxed<(PeerId, StreamMuxerBox)>, Box<dyn std::error::Error + Send + Sync>> {
    let mut ws = websocket::Config::new(dns::tokio::Transport::system(tcp)?);
    ws.set_tls_config(tls);
    Ok(ws
        .upgrade(Version::V1)
        .authenticate(noise::Config::new(key)?)
        .multiplex(SelectUpgrade::new(yamux::Config::default(), libp2p_mplex::Config::default()))
        .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)))
        .boxed())
}

/// The crypto of every TLS configuration here: ring, which libp2p already builds.
fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}

fn certificates(pem: &[u8], what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem { what, message: e.to_string() })
}

/// HTTPS client trust: the web PKI roots plus the certificates in `extra_pem` (a private CA,
/// or the server's own certificate).
pub fn client_config(extra_pem: &[u8]) -> Result<rustls::ClientConfig, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for cert in certificates(extra_pem, "trusted certificate")? {
        roots.add(cert).map_err(|e| TlsError::Config(e.to_string()))?;
    }
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// An HTTPS server's configuration: its certificate chain and key (PEM), HTTP/1.1.
pub fn server_config(
    cert_chain_pem: &[u8],
    key_pem: &[u8],
) -> Result<rustls::ServerConfig, TlsError> {
    let chain = certificates(cert_chain_pem, "certificate")?;
    if chain.is_empty() {
        return Err(TlsError::Pem {
            what: "certificate",
            message: "no certificate in the PEM".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| TlsError::Pem { what: "private key", message: e.to_string() })?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}
