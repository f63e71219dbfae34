//! Rust nodes on loopback: transports, metadata handshake, relay both ways, validation.

use std::time::Duration;

use futures::StreamExt;
use libp2p::{Multiaddr, gossipsub, multiaddr::Protocol};
use node::{
    config::NodeConfig,
    message::WakuMessage,
    message::now_ns,
    relay,
    running::{NodeError, NodeEvent, NodeHandle, start},
};
use tokio::{sync::broadcast, time::timeout};

const TOPIC: &str = "/waku/2/rs/0/0";

async fn node(config: NodeConfig) -> NodeHandle {
    start(config).await.expect("node starts").0
}

fn tcp_addr(node: &NodeHandle) -> Multiaddr {
    node.listen_addrs()
        .into_iter()
        .find(|a| !a.iter().any(|p| matches!(p, Protocol::Ws(_))))
        .expect("tcp listener")
}

async fn wait_for<T>(
    events: &mut broadcast::Receiver<NodeEvent>,
    mut pick: impl FnMut(NodeEvent) -> Option<T>,
) -> T {
    timeout(Duration::from_secs(20), async {
        loop {
            match events.recv().await {
                Ok(event) => {
                    if let Some(found) = pick(event) {
                        return found;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("event channel closed: {e}"),
            }
        }
    })
    .await
    .expect("event within 20 s")
}

#[tokio::test]
async fn two_nodes_handshake_and_relay_both_ways_over_tcp_and_websocket() {
    for use_ws in [false, true] {
        let a = node(NodeConfig::loopback()).await;
        let b = node(NodeConfig::loopback()).await;
        let mut a_events = a.events();
        let mut b_events = b.events();
        let target = if use_ws { b.websocket_addr().unwrap() } else { tcp_addr(&b) };
        a.dial(target).await.unwrap();

        // Metadata both ways: each side records the other's cluster and shards.
        let (peer, cluster, shards) = wait_for(&mut a_events, |e| match e {
            NodeEvent::Metadata { peer, cluster, shards } => Some((peer, cluster, shards)),
            _ => None,
        })
        .await;
        assert_eq!((peer, cluster, shards), (b.peer_id(), 0, vec![0]));
        a.wait_for_relay_peers(1, Duration::from_secs(20)).await.unwrap();
        b.wait_for_relay_peers(1, Duration::from_secs(20)).await.unwrap();

        let sent = WakuMessage::new("/test/1/relay/proto", b"hello from a".to_vec(), now_ns());
        let hash = a.publish(TOPIC, sent.clone()).await.unwrap();
        let (topic, got_hash, got) = wait_for(&mut b_events, |e| match e {
            NodeEvent::Message { topic, hash, message, .. } => Some((topic, hash, message)),
            _ => None,
        })
        .await;
        assert_eq!((topic.as_str(), got_hash, got.as_ref()), (TOPIC, hash, &sent));

        let reply = WakuMessage::new("/test/1/relay/proto", b"hello from b".to_vec(), now_ns());
        b.publish(TOPIC, reply.clone()).await.unwrap();
        let got = wait_for(&mut a_events, |e| match e {
            NodeEvent::Message { message, .. } => Some(message),
            _ => None,
        })
        .await;
        assert_eq!(got.as_ref(), &reply);

        // Identify runs beside the handshake; wait for both sides' protocol lists.
        timeout(Duration::from_secs(20), async {
            loop {
                let (pa, pb) = (a.peers().await.unwrap(), b.peers().await.unwrap());
                if pa.iter().chain(&pb).all(|p| p.agent.is_some())
                    && !pa.is_empty()
                    && !pb.is_empty()
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("identify within 20 s");
        let stats = a.stats().await.unwrap();
        assert_eq!(stats.messages_published, 1);
        assert_eq!(stats.messages_received, 1);
        assert_eq!(stats.peers_outbound, 1);
        assert!(stats.peers_by_protocol.contains_key("/vac/waku/relay/2.0.0"), "{stats:?}");
        assert!(stats.peers_by_protocol.contains_key("/vac/waku/metadata/1.0.0"), "{stats:?}");
        let peers = b.peers().await.unwrap();
        assert_eq!(peers.len(), 1);
        assert!(peers[0].inbound && peers[0].relay);
        assert_eq!(
            peers[0].agent.as_deref(),
            Some(concat!("wakufleet/", env!("CARGO_PKG_VERSION")))
        );
        a.shutdown().await;
        b.shutdown().await;
    }
}

#[tokio::test]
async fn peers_of_another_cluster_are_disconnected() {
    let a = node(NodeConfig::loopback()).await;
    let other =
        node(NodeConfig { cluster_id: 16, shards: vec![32], ..NodeConfig::loopback() }).await;
    let mut events = a.events();
    other.dial(tcp_addr(&a)).await.unwrap();
    let (peer, reason) = wait_for(&mut events, |e| match e {
        NodeEvent::PeerRejected { peer, reason } => Some((peer, reason)),
        _ => None,
    })
    .await;
    assert_eq!(peer, other.peer_id());
    assert!(reason.contains("cluster 16"), "{reason}");
    wait_for(&mut events, |e| matches!(e, NodeEvent::PeerDisconnected { .. }).then_some(())).await;
    assert_eq!(a.stats().await.unwrap().metadata_rejections, 1);
}

#[tokio::test]
async fn publishing_rules_are_enforced() {
    let lonely = node(NodeConfig::loopback()).await;
    let message = WakuMessage::new("/test/1/relay/proto", b"x".to_vec(), now_ns());
    assert!(matches!(lonely.publish(TOPIC, message).await, Err(NodeError::NoPeers(_))));
    let empty = WakuMessage::new("/test/1/relay/proto", vec![], now_ns());
    assert!(matches!(lonely.publish(TOPIC, empty).await, Err(NodeError::Message(_))));
    let big = WakuMessage::new("/test/1/relay/proto", vec![1; 200 * 1024], now_ns());
    assert!(matches!(lonely.publish(TOPIC, big).await, Err(NodeError::Message(_))));
    // Autosharding with nwaku's default of one shard puts everything on shard 0.
    assert_eq!(lonely.autoshard_topic("/toychat/2/huilong/proto").unwrap(), "/waku/2/rs/0/0");
}

/// A bare gossipsub peer that speaks relay but publishes garbage: its messages are rejected,
/// counted, and its score falls.
#[tokio::test]
async fn undecodable_messages_are_rejected_counted_and_penalised() {
    let a = node(NodeConfig::loopback()).await;
    let mut rogue = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(Default::default(), libp2p::noise::Config::new, libp2p::yamux::Config::default)
        .unwrap()
        .with_behaviour(|_| {
            gossipsub::Behaviour::<gossipsub::IdentityTransform>::new(
                gossipsub::MessageAuthenticity::Anonymous,
                relay::config(150 * 1024).unwrap(),
            )
            .unwrap()
        })
        .unwrap()
        .build();
    let rogue_id = *rogue.local_peer_id();
    rogue.behaviour_mut().subscribe(&gossipsub::IdentTopic::new(TOPIC)).unwrap();
    rogue.dial(tcp_addr(&a)).unwrap();
    let published = timeout(Duration::from_secs(20), async {
        let mut sent = 0;
        loop {
            tokio::select! {
                _ = rogue.select_next_some() => {}
                () = tokio::time::sleep(Duration::from_millis(200)) => {
                    // 0xff 0xff is not a protobuf.
                    let junk = vec![0xff, 0xff, sent as u8];
                    if rogue.behaviour_mut().publish(gossipsub::IdentTopic::new(TOPIC), junk).is_ok() {
                        sent += 1;
                    }
                    if sent == 5 {
                        return sent;
                    }
                }
            }
        }
    })
    .await
    .expect("rogue publishes");
    assert_eq!(published, 5);
    // Keep the rogue's connection serviced while checking the node.
    let check = async {
        loop {
            let stats = a.stats().await.unwrap();
            let score = a
                .peers()
                .await
                .unwrap()
                .iter()
                .find(|p| p.peer_id == rogue_id)
                .and_then(|p| p.score);
            if stats.invalid_messages >= 3 && score.is_some_and(|s| s < 0.0) {
                return (stats.invalid_messages, score);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let drive = async {
        loop {
            rogue.select_next_some().await;
        }
    };
    let (invalid, score) = timeout(Duration::from_secs(20), async {
        tokio::select! { r = check => r, () = drive => unreachable!() }
    })
    .await
    .expect("rejections counted and score lowered");
    assert!(invalid >= 3 && score.unwrap() < 0.0);
    assert_eq!(a.stats().await.unwrap().messages_received, 0);
}

/// Messages a node must not relay: too old for its drift limit, or over its size limit. Both are
/// rejected and counted, and nothing reaches the application.
#[tokio::test]
async fn stale_and_oversized_messages_are_rejected_and_counted() {
    let strict = NodeConfig {
        max_timestamp_drift: Some(Duration::from_secs(20)),
        max_message_size: 1_000,
        ..NodeConfig::loopback()
    };
    let a = node(strict).await;
    let b = node(NodeConfig::loopback()).await;
    b.dial(tcp_addr(&a)).await.unwrap();
    b.wait_for_relay_peers(1, Duration::from_secs(20)).await.unwrap();
    let mut events = a.events();

    let stale = WakuMessage::new("/test/1/relay/proto", b"old".to_vec(), now_ns() - 60_000_000_000);
    let big = WakuMessage::new("/test/1/relay/proto", vec![7; 5_000], now_ns());
    let fresh = WakuMessage::new("/test/1/relay/proto", b"fresh".to_vec(), now_ns());
    b.publish(TOPIC, stale).await.unwrap();
    b.publish(TOPIC, big).await.unwrap();
    b.publish(TOPIC, fresh.clone()).await.unwrap();
    let got = wait_for(&mut events, |e| match e {
        NodeEvent::Message { message, .. } => Some(message),
        _ => None,
    })
    .await;
    assert_eq!(got.as_ref(), &fresh, "only the valid message is delivered");
    timeout(Duration::from_secs(10), async {
        while a.stats().await.unwrap().invalid_messages < 2 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("both bad messages counted");
    assert_eq!(a.stats().await.unwrap().messages_received, 1);
}

/// A node that does not forward (`forward_messages: false`, the sim's free rider) still gets
/// every message, and passes none on: in a line a – b – c, a's message reaches c through b only
/// when b forwards.
#[tokio::test]
async fn a_node_that_does_not_forward_receives_but_passes_nothing_on() {
    for forward in [false, true] {
        let a = node(NodeConfig::loopback()).await;
        let b = node(NodeConfig { forward_messages: forward, ..NodeConfig::loopback() }).await;
        let c = node(NodeConfig::loopback()).await;
        a.dial(tcp_addr(&b)).await.unwrap();
        c.dial(tcp_addr(&b)).await.unwrap();
        // b's mesh holds both ends (gossipsub grafts at its heartbeat).
        timeout(Duration::from_secs(20), async {
            loop {
                let stats = b.stats().await.unwrap();
                if stats.mesh_per_topic.get(TOPIC).copied().unwrap_or(0) >= 2 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .expect("b's mesh within 20 s");
        let (mut b_events, mut c_events) = (b.events(), c.events());
        let sent = WakuMessage::new("/test/1/relay/proto", b"through b".to_vec(), now_ns());
        let hash = a.publish(TOPIC, sent).await.unwrap();
        let at_b = wait_for(&mut b_events, |e| match e {
            NodeEvent::Message { hash, .. } => Some(hash),
            _ => None,
        })
        .await;
        assert_eq!(at_b, hash, "b receives either way");
        // A few heartbeats: gossip would offer it too, had b kept it.
        let at_c = timeout(Duration::from_secs(3), async {
            loop {
                if let Ok(NodeEvent::Message { hash, .. }) = c_events.recv().await {
                    return hash;
                }
            }
        })
        .await;
        assert_eq!(at_c.ok(), forward.then_some(hash), "forwarding {forward}");
        for n in [&a, &b, &c] {
            n.shutdown().await;
        }
    }
}
