//! Three nodes on loopback find each other through discv5 alone, from one bootstrap ENR.

use std::time::Duration;

use node::{
    config::NodeConfig, discovery_v5::Discv5Config, peers::Origin, running::start,
    waku_enr::WakuEnr,
};

fn with_discv5(bootstrap: Vec<String>) -> NodeConfig {
    NodeConfig { discv5: Some(Discv5Config { udp_port: 0, bootstrap }), ..NodeConfig::loopback() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_find_each_other_from_one_bootstrap_enr() {
    let (a, _) = start(with_discv5(vec![])).await.unwrap();
    let boot = a.enr();
    let waku = WakuEnr::decode(&boot).unwrap();
    assert!(waku.udp.is_some(), "the ENR carries the discv5 UDP port");
    let (b, _) = start(with_discv5(vec![boot.to_base64()])).await.unwrap();
    let (c, _) = start(with_discv5(vec![boot.to_base64()])).await.unwrap();
    for (name, node) in [("a", &a), ("b", &b), ("c", &c)] {
        if let Err(error) = node.wait_for_relay_peers(2, Duration::from_secs(45)).await {
            // Say what the node saw, so a failure on a loaded CI machine can be told apart.
            let stats = node.stats().await.unwrap();
            let peers = node.peers().await.unwrap();
            panic!(
                "{name}: {error}; discv5 table {}, peers {:?}",
                stats.discv5_table_size,
                peers.iter().map(|p| (p.peer_id, p.origin)).collect::<Vec<_>>()
            );
        }
    }
    // b and c only knew a: they met through discv5.
    let peers = b.peers().await.unwrap();
    let via_c = peers.iter().find(|p| p.peer_id == c.peer_id()).expect("b is connected to c");
    assert!(matches!(via_c.origin, Some(Origin::Discv5) | Some(Origin::Inbound)), "{via_c:?}");
    assert!(b.stats().await.unwrap().discv5_table_size >= 1);
}

/// A stock discv5 (protocol id `discv5`) gets no answer from our node, while one speaking
/// `d5waku` does: the Waku protocol id is really on the wire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_d5waku_peers_get_answers() {
    let (ours, _) = start(with_discv5(vec![])).await.unwrap();
    let ours_enr: discv5::Enr = ours.enr().to_base64().parse().unwrap();
    for (identity, expect_answer) in [
        (discv5::ProtocolIdentity::default(), false),
        (node::discovery_v5::WAKU_PROTOCOL_IDENTITY, true),
    ] {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = socket.local_addr().unwrap().port();
        drop(socket);
        let key = enr::CombinedKey::generate_secp256k1();
        let local =
            enr::Enr::builder().ip4(std::net::Ipv4Addr::LOCALHOST).udp4(port).build(&key).unwrap();
        let config = discv5::ConfigBuilder::new(discv5::ListenConfig::Ipv4 {
            ip: std::net::Ipv4Addr::LOCALHOST,
            port,
        })
        .protocol_identity(identity)
        .request_timeout(Duration::from_millis(500))
        .query_timeout(Duration::from_secs(3))
        .build();
        let mut probe = discv5::Discv5::new(local, key, config).unwrap();
        probe.start().await.unwrap();
        probe.add_enr(ours_enr.clone()).unwrap();
        let _ = probe.find_node(enr::NodeId::random()).await;
        let answered = probe
            .table_entries()
            .iter()
            .any(|(id, _, status)| *id == ours_enr.node_id() && status.is_connected());
        assert_eq!(answered, expect_answer, "protocol id {:?}", identity.protocol_id);
        probe.shutdown();
    }
}
