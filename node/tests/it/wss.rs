//! Secure WebSocket: a node serving a certificate (as nwaku's `--websocket-secure-*`) issued by a
//! private fleet CA; a peer trusting that CA relays over `/wss`, a peer that does not cannot connect.

use std::time::Duration;

use libp2p::multiaddr::Protocol;
use node::{
    config::{NodeConfig, WssConfig},
    message::WakuMessage,
    running::{NodeEvent, start},
    waku_enr::WakuEnr,
};
use tokio::time::timeout;

use crate::fleet_ca::fleet_ca;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_over_wss_with_a_trusted_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = fleet_ca(dir.path());
    let server = NodeConfig {
        websocket_secure: Some(WssConfig { port: 0, cert_chain_pem: cert, key_pem: key }),
        ..NodeConfig::loopback()
    };
    let (a, _) = start(server).await.unwrap();
    let wss = a.secure_websocket_addr().expect("a WSS listener");
    assert!(wss.iter().any(|p| matches!(p, Protocol::Wss(_) | Protocol::Tls)), "{wss}");
    // The ENR announces the WSS address for clients like js-waku.
    let waku = WakuEnr::decode(&a.enr()).unwrap();
    assert!(
        waku.multiaddrs.iter().any(|m| m.iter().any(|p| matches!(p, Protocol::Wss(_)))),
        "{:?}",
        waku.multiaddrs
    );

    // Not trusted: the TLS handshake fails.
    let (stranger, _) = start(NodeConfig::loopback()).await.unwrap();
    assert!(stranger.dial(wss.clone()).await.is_err());

    // Trusted: relay works over WSS.
    let (b, _) =
        start(NodeConfig { tls_trust_pem: vec![ca], ..NodeConfig::loopback() }).await.unwrap();
    let mut events = a.events();
    b.dial(wss).await.unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
        as i64;
    let message = WakuMessage::new("/wakufleet/1/wss/proto", b"over tls".to_vec(), now);
    let got = timeout(Duration::from_secs(20), async {
        loop {
            let _ = b.publish("/waku/2/rs/0/0", message.clone()).await;
            if let Ok(Ok(NodeEvent::Message { message, .. })) =
                timeout(Duration::from_millis(300), events.recv()).await
            {
                return message;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(got.payload, b"over tls");
    let peers = a.peers().await.unwrap();
    assert_eq!(peers.len(), 1, "only the trusting peer is connected");
    assert_eq!(peers[0].peer_id, b.peer_id());
}

#[tokio::test]
async fn unusable_certificates_are_refused_at_start() {
    let bad = NodeConfig {
        websocket_secure: Some(WssConfig {
            port: 0,
            cert_chain_pem: b"not pem".to_vec(),
            key_pem: b"nope".to_vec(),
        }),
        ..NodeConfig::loopback()
    };
    let error = start(bad).await.unwrap_err().to_string();
    assert!(error.contains("certificate"), "{error}");
}

/// The controller's reachability probe dials every address a record advertises, `/wss` too:
/// a certificate from the fleet's CA passes when the probe trusts that CA, and fails when it
/// trusts only the web PKI (as a browser's js-waku would fail).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reachability_probe_completes_a_handshake_over_wss_only_with_trust() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = fleet_ca(dir.path());
    let server = NodeConfig {
        websocket_secure: Some(WssConfig { port: 0, cert_chain_pem: cert, key_pem: key }),
        ..NodeConfig::loopback()
    };
    let (node, _) = start(server).await.unwrap();
    let waku = WakuEnr::decode(&node.enr()).unwrap();
    let wss = waku
        .dial_addresses()
        .into_iter()
        .find(|a| a.iter().any(|p| matches!(p, Protocol::Wss(_) | Protocol::Tls)))
        .expect("the record advertises /wss");
    let limit = Duration::from_secs(5);
    let trust = [ca];
    node::probe::handshake(&wss, waku.peer_id, limit, &trust).await.unwrap();
    let untrusted = node::probe::handshake(&wss, waku.peer_id, limit, &[]).await;
    assert!(untrusted.is_err(), "a private CA's certificate passed without trust");
    // Every address of the record passes with trust (TCP, /ws, /wss).
    for address in waku.dial_addresses() {
        node::probe::handshake(&address, waku.peer_id, limit, &trust).await.unwrap();
    }
    node.shutdown().await;
}
