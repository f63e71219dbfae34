//! A node listening as a server does by default: on every interface (0.0.0.0). Each listener
//! reports one address per interface; every one of them is recorded, the WebSocket listener's
//! too, and the ENR announces the WebSocket address web clients need.

use std::{net::IpAddr, time::Duration};

use libp2p::multiaddr::{Multiaddr, Protocol};
use node::{config::NodeConfig, running::start, waku_enr::WakuEnr};

fn ip(addr: &Multiaddr) -> Option<IpAddr> {
    node::peers::ip_of(addr)
}

fn is_ws(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| matches!(p, Protocol::Ws(_)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_every_interface_all_listen_addresses_are_recorded_and_websocket_announced() {
    let config = NodeConfig {
        listen_ip: IpAddr::from([0, 0, 0, 0]),
        tcp_port: 0,
        websocket_port: Some(0),
        ..NodeConfig::loopback()
    };
    let (node, _task) = start(config).await.unwrap();
    let addrs = node.listen_addrs();
    let (ws, tcp): (Vec<&Multiaddr>, Vec<&Multiaddr>) = addrs.iter().partition(|a| is_ws(a));
    // One address per interface for each listener: as many WebSocket as TCP addresses (before,
    // the TCP listener's interfaces used up the count and WebSocket went missing).
    assert!(!ws.is_empty(), "no WebSocket address among {addrs:?}");
    assert_eq!(ws.len(), tcp.len(), "{addrs:?}");
    // The loopback address first, for callers on this host.
    assert!(ip(tcp[0]).is_some_and(|i| i.is_loopback()), "{addrs:?}");
    assert!(node.websocket_addr().and_then(|a| ip(&a)).is_some_and(|i| i.is_loopback()));

    // The ENR carries the WebSocket address (js-waku finds nodes through it).
    let waku = WakuEnr::decode(&node.enr()).unwrap();
    let ws_port =
        ws[0].iter().find_map(|p| if let Protocol::Tcp(port) = p { Some(port) } else { None });
    assert!(
        waku.multiaddrs.iter().any(|m| is_ws(m)
            && m.iter().any(|p| matches!(p, Protocol::Tcp(port) if Some(port) == ws_port))),
        "{:?}",
        waku.multiaddrs
    );

    // And another node connects over that WebSocket listener.
    let (peer, _task) = start(NodeConfig::loopback()).await.unwrap();
    peer.dial(node.websocket_addr().unwrap()).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !node.peers().await.unwrap().iter().any(|p| p.peer_id == peer.peer_id()) {
        assert!(tokio::time::Instant::now() < deadline, "the WebSocket dial never connected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn tcp_port(addr: &Multiaddr) -> u16 {
    addr.iter().find_map(|p| if let Protocol::Tcp(port) = p { Some(port) } else { None }).unwrap()
}

/// One port, one node: libp2p's listeners set SO_REUSEPORT, so a second node on a port the
/// first one holds used to start without an error and take half its inbound connections.
/// Each of its ports — TCP, WebSocket, discv5's UDP — is now refused with the OS's reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_node_on_a_port_the_first_holds_is_refused() {
    let first_config = NodeConfig {
        discv5: Some(node::discovery_v5::Discv5Config { udp_port: 0, bootstrap: Vec::new() }),
        ..NodeConfig::loopback()
    };
    let (first, _task) = start(first_config).await.unwrap();
    let addrs = first.listen_addrs();
    let tcp = addrs.iter().find(|a| !is_ws(a)).map(tcp_port).unwrap();
    let ws = addrs.iter().find(|a| is_ws(a)).map(tcp_port).unwrap();
    let udp = node::waku_enr::WakuEnr::decode(&first.enr()).unwrap().udp.unwrap().1;

    for (what, config) in [
        ("tcp", NodeConfig { tcp_port: tcp, ..NodeConfig::loopback() }),
        ("websocket", NodeConfig { websocket_port: Some(ws), ..NodeConfig::loopback() }),
        // The first node's TCP port as the second's WebSocket port: one port either way.
        ("websocket on tcp", NodeConfig { websocket_port: Some(tcp), ..NodeConfig::loopback() }),
        (
            "discv5",
            NodeConfig {
                discv5: Some(node::discovery_v5::Discv5Config {
                    udp_port: udp,
                    bootstrap: Vec::new(),
                }),
                ..NodeConfig::loopback()
            },
        ),
    ] {
        let Err(error) = start(config).await else { panic!("{what}: a second node started") };
        let chain = format!(
            "{error}: {}",
            std::error::Error::source(&error).map_or_else(String::new, ToString::to_string)
        );
        assert!(chain.contains("in use"), "{what}: {chain}");
    }
    // The first node is unharmed.
    assert_eq!(first.listen_addrs(), addrs);
    first.shutdown().await;
}

/// A node that listens on one address dials from it: peers see the address it advertises (their
/// per-IP limits and firewalls apply to it), over TCP and over WebSocket, and its bytes are
/// counted both ways. A node on every interface dials from wherever the kernel routes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_on_one_address_dials_from_it_and_counts_its_bytes() {
    let server_config = NodeConfig {
        listen_ip: IpAddr::from([127, 0, 0, 1]),
        websocket_port: Some(0),
        ..NodeConfig::loopback()
    };
    let (server, _task) = start(server_config).await.unwrap();
    let tcp = server.listen_addrs().into_iter().find(|a| !is_ws(a)).unwrap();
    let ws = server.websocket_addr().unwrap();

    let arrived_from = |peer: libp2p::PeerId| {
        let server = server.clone();
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            loop {
                let peers = server.peers().await.unwrap();
                if let Some(info) = peers.iter().find(|p| p.peer_id == peer) {
                    assert!(info.inbound);
                    return ip(&info.address).unwrap();
                }
                assert!(tokio::time::Instant::now() < deadline, "{peer} never connected");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };

    for (source, dial) in [("127.0.0.7", &tcp), ("127.0.0.8", &ws)] {
        let config = NodeConfig { listen_ip: source.parse().unwrap(), ..NodeConfig::loopback() };
        let (client, _task) = start(config).await.unwrap();
        client.dial(dial.clone()).await.unwrap();
        assert_eq!(arrived_from(client.peer_id()).await.to_string(), source, "dialled {dial}");
        // Noise, multistream and identify went both ways over the counted link.
        let stats = client.stats().await.unwrap();
        assert!(stats.bytes_sent > 100 && stats.bytes_received > 100, "{stats:?}");
    }

    // On every interface: the kernel's choice for loopback, 127.0.0.1.
    let config = NodeConfig { listen_ip: IpAddr::from([0, 0, 0, 0]), ..NodeConfig::loopback() };
    let (client, _task) = start(config).await.unwrap();
    client.dial(tcp.clone()).await.unwrap();
    assert_eq!(arrived_from(client.peer_id()).await, IpAddr::from([127, 0, 0, 1]));
    let server_stats = server.stats().await.unwrap();
    assert!(server_stats.bytes_received > 300, "{server_stats:?}");
}
