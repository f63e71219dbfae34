//! Embedded nodes finding each other through an EIP-1459 tree served by the built-in DNS
//! server on 127.0.0.1 (real UDP/TCP DNS, real libp2p connections).

use std::time::Duration;

use controller::publish::{dns_server::DnsServer, zone::TxtZone};
use node::{
    config::NodeConfig,
    crypto::generate_key,
    enrtree::{NodeRecord, Tree},
    message::WakuMessage,
    running::{NodeEvent, start},
};
use tokio::time::timeout;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_bootstraps_from_a_dns_tree_and_relays() {
    let (a, _) = start(NodeConfig::loopback()).await.unwrap();
    let (b, _) = start(NodeConfig::loopback()).await.unwrap();
    // A third listed node whose leaf is served corrupted: reported and counted, the rest used.
    let broken = crate::helpers::records(1).remove(0);
    let records = vec![
        NodeRecord::from_enr(a.enr()).unwrap(),
        NodeRecord::from_enr(b.enr()).unwrap(),
        broken.clone(),
    ];
    let mut tree = Tree::build(1, records, vec![]).unwrap();
    let url = tree.sign(&generate_key(), "fleet.wakufleet.test");
    let mut zone = TxtZone::from_tree(&tree, &url.domain, 60, 86_400);
    let broken_name =
        format!("{}.{}", node::enrtree::label::subdomain(broken.as_str()), url.domain);
    for record in &mut zone.records {
        if record.name.eq_ignore_ascii_case(&broken_name) {
            record.text = "enr:-----".into();
        }
    }
    let server = DnsServer::start("127.0.0.1:0".parse().unwrap(), vec![zone]).await.unwrap();

    let config = NodeConfig {
        dns_discovery_urls: vec![url.to_string()],
        dns_name_server: Some(server.local_addr()),
        ..NodeConfig::loopback()
    };
    let (c, _) = start(config).await.unwrap();
    c.wait_for_relay_peers(2, Duration::from_secs(45)).await.unwrap();
    a.wait_for_relay_peers(1, Duration::from_secs(45)).await.unwrap();

    let stats = c.stats().await.unwrap();
    assert_eq!(stats.dns_discovered, 2);
    assert_eq!(stats.invalid_records, 1, "the corrupted leaf is counted");
    assert_eq!(stats.peers_outbound, 2);
    assert_eq!(stats.fleet_relay_share, Some(1.0), "tree nodes are fleet nodes");
    let peers = c.peers().await.unwrap();
    assert!(peers.iter().all(|p| p.fleet && p.origin == Some(node::peers::Origin::Dns)));

    // And the discovered mesh carries messages.
    let mut events = c.events();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let message =
        WakuMessage::new("/wakufleet/1/dns/proto", b"via dns".to_vec(), now.as_nanos() as i64);
    timeout(Duration::from_secs(20), async {
        loop {
            if a.publish("/waku/2/rs/0/0", message.clone()).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .unwrap();
    let got = timeout(Duration::from_secs(20), async {
        loop {
            if let Ok(NodeEvent::Message { message, .. }) = events.recv().await {
                return message;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(got.payload, b"via dns");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_nodes_are_dialed_and_redialed_after_they_restart() {
    let key = generate_key();
    let (a, task) =
        start(NodeConfig { key: key.clone(), websocket_port: None, ..NodeConfig::loopback() })
            .await
            .unwrap();
    let static_addr = a.listen_addrs()[0].clone();
    let port = static_addr
        .iter()
        .find_map(
            |p| if let libp2p::multiaddr::Protocol::Tcp(port) = p { Some(port) } else { None },
        )
        .unwrap();
    let config = NodeConfig { static_nodes: vec![static_addr.clone()], ..NodeConfig::loopback() };
    let (b, _) = start(config).await.unwrap();
    b.wait_for_relay_peers(1, Duration::from_secs(45)).await.unwrap();
    assert_eq!(b.peers().await.unwrap()[0].origin, Some(node::peers::Origin::Static));

    // The static node goes away and comes back on the same port with the same key.
    a.shutdown().await;
    task.await.unwrap();
    timeout(Duration::from_secs(20), async {
        while b.stats().await.unwrap().relay_peers > 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .unwrap();
    let (_a2, _) =
        start(NodeConfig { key, tcp_port: port, websocket_port: None, ..NodeConfig::loopback() })
            .await
            .unwrap();
    b.wait_for_relay_peers(1, Duration::from_secs(45)).await.unwrap();
}

/// A node that loses every peer goes back to its DNS tree and finds the fleet's new node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_alone_goes_back_to_dns_discovery() {
    let (a, a_task) = start(NodeConfig::loopback()).await.unwrap();
    let key = generate_key();
    let mut tree = Tree::build(1, vec![NodeRecord::from_enr(a.enr()).unwrap()], vec![]).unwrap();
    let url = tree.sign(&key, "recover.wakufleet.test");
    let server = DnsServer::start(
        "127.0.0.1:0".parse().unwrap(),
        vec![TxtZone::from_tree(&tree, &url.domain, 60, 86_400)],
    )
    .await
    .unwrap();
    let config = NodeConfig {
        dns_discovery_urls: vec![url.to_string()],
        dns_name_server: Some(server.local_addr()),
        ..NodeConfig::loopback()
    };
    let (c, _) = start(config).await.unwrap();
    c.wait_for_relay_peers(1, Duration::from_secs(30)).await.unwrap();

    // The fleet replaces its node: the old one stops, the tree now lists a new one.
    a.shutdown().await;
    a_task.await.unwrap();
    timeout(Duration::from_secs(20), async {
        while c.stats().await.unwrap().relay_peers > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap();
    let (a2, _) = start(NodeConfig::loopback()).await.unwrap();
    let mut tree = Tree::build(2, vec![NodeRecord::from_enr(a2.enr()).unwrap()], vec![]).unwrap();
    tree.sign(&key, &url.domain);
    server.replace(&TxtZone::from_tree(&tree, &url.domain, 60, 86_400)).await.unwrap();

    // After ten seconds alone, c resolves the tree again and reaches the new node.
    c.wait_for_relay_peers(1, Duration::from_secs(40)).await.unwrap();
    let peers = c.peers().await.unwrap();
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].peer_id, a2.peer_id());
    assert_eq!(c.stats().await.unwrap().dns_discovered, 2);
}
