//! Connection management against a peer that is full.

use std::time::Duration;

use node::{config::NodeConfig, peers::PeerManagerConfig, running::start};

/// A full node closes what a client dials at once; the client backs off from it as from a
/// failed dial. Before, the close sent the client straight back to dialing the same peer: the
/// two spun in handshakes, many times a second, for as long as the node stayed full.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_backs_off_from_a_full_node_instead_of_redialing_it_at_once() {
    let full_config = NodeConfig {
        peer_manager: PeerManagerConfig {
            max_connections: 1,
            max_peers_per_ip: 0,
            ..PeerManagerConfig::default()
        },
        ..NodeConfig::loopback()
    };
    let (full, _) = start(full_config).await.unwrap();
    let (first, _) = start(NodeConfig::loopback()).await.unwrap();
    first.dial(full.listen_addrs()[0].clone()).await.unwrap();
    first.wait_for_relay_peers(1, Duration::from_secs(20)).await.unwrap();

    // The client knows only the full node and wants six relay peers.
    let client_config =
        NodeConfig { static_nodes: vec![full.listen_addrs()[0].clone()], ..NodeConfig::loopback() };
    let (client, _) = start(client_config).await.unwrap();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let refused = full.stats().await.unwrap().refused_inbound;
    // Backing off from 2 s and doubling: tries at 0, 2 and 6 s. Without it: hundreds.
    assert!((1..=4).contains(&refused), "{refused} connections refused in 6 s");
    assert_eq!(client.stats().await.unwrap().relay_peers, 0);
    // The node that came first keeps its place.
    assert_eq!(full.stats().await.unwrap().relay_peers, 1);
}
