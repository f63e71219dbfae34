//! Peer exchange between Rust nodes: a node that knows only one peer learns a third from it.

use std::time::Duration;

use node::{config::NodeConfig, discovery_v5::Discv5Config, peers::Origin, running::start};
use tokio::time::timeout;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_learns_peers_through_peer_exchange() {
    // A serves peer exchange and runs discv5; D is found by A's discv5.
    let a_config = NodeConfig {
        peer_exchange: true,
        discv5: Some(Discv5Config { udp_port: 0, bootstrap: vec![] }),
        ..NodeConfig::loopback()
    };
    let (a, _) = start(a_config).await.unwrap();
    let d_config = NodeConfig {
        discv5: Some(Discv5Config { udp_port: 0, bootstrap: vec![a.enr().to_base64()] }),
        ..NodeConfig::loopback()
    };
    let (d, _) = start(d_config).await.unwrap();

    // B knows only A, has no discv5 and no DNS: whatever else it meets came by peer exchange.
    let b_config =
        NodeConfig { static_nodes: vec![a.listen_addrs()[0].clone()], ..NodeConfig::loopback() };
    let (b, _) = start(b_config).await.unwrap();
    let via_px = timeout(Duration::from_secs(45), async {
        loop {
            let peers = b.peers().await.unwrap();
            if let Some(peer) = peers.iter().find(|p| p.peer_id == d.peer_id()) {
                return peer.clone();
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("B meets D through peer exchange");
    assert_eq!(via_px.origin, Some(Origin::PeerExchange));
    assert!(b.stats().await.unwrap().px_peers_received >= 1);
    assert!(a.stats().await.unwrap().px_peers_sent >= 1);
}
