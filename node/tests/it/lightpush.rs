//! Lightpush between Rust nodes: a light client pushes through a service node, which relays.

use std::time::Duration;

use node::{
    config::NodeConfig,
    lightpush::status,
    message::WakuMessage,
    message::now_ns,
    running::{NodeError, NodeEvent, start},
};
use tokio::time::timeout;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_messages_are_relayed_with_nwaku_status_codes() {
    let (service, _) =
        start(NodeConfig { lightpush: true, ..NodeConfig::loopback() }).await.unwrap();
    let (light, _) = start(NodeConfig { relay: false, ..NodeConfig::loopback() }).await.unwrap();
    light.dial(service.listen_addrs()[0].clone()).await.unwrap();
    let push = |topic: Option<&str>, payload: &[u8]| {
        let message = WakuMessage::new("/wakufleet/1/push/proto", payload.to_vec(), now_ns());
        light.lightpush(service.peer_id(), topic.map(str::to_owned), message)
    };

    // Nobody to relay to yet.
    let alone = push(Some("/waku/2/rs/0/0"), b"first").await.unwrap();
    assert_eq!(alone.status_code, status::NO_PEERS_TO_RELAY);

    let (relay_peer, _) = start(NodeConfig::loopback()).await.unwrap();
    let mut events = relay_peer.events();
    relay_peer.dial(service.listen_addrs()[0].clone()).await.unwrap();
    service.wait_for_relay_peers(1, Duration::from_secs(20)).await.unwrap();

    // Autosharding picks the topic when none is given.
    let ok = push(None, b"pushed").await.unwrap();
    assert_eq!(ok.status_code, status::SUCCESS, "{ok:?}");
    assert_eq!(ok.relay_peer_count, Some(1));
    let got = timeout(Duration::from_secs(20), async {
        loop {
            if let Ok(NodeEvent::Message { message, .. }) = events.recv().await {
                return message;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(got.payload, b"pushed");

    assert_eq!(
        push(Some("/waku/2/rs/0/5"), b"x").await.unwrap().status_code,
        status::UNSUPPORTED_PUBSUB_TOPIC
    );
    assert_eq!(
        push(Some("/waku/2/rs/0/0"), b"").await.unwrap().status_code,
        status::INVALID_MESSAGE
    );
    let big = push(Some("/waku/2/rs/0/0"), &vec![1; 200 * 1024]).await;
    assert!(
        matches!(&big, Ok(r) if r.status_code == status::PAYLOAD_TOO_LARGE)
            || matches!(big, Err(NodeError::Request(_))),
        "oversized pushes are refused: {big:?}"
    );
    let served = service.stats().await.unwrap().lightpush_served;
    assert_eq!(served.get("relayed"), Some(&1), "{served:?}");

    // A node that does not serve lightpush refuses the protocol.
    let refused = light
        .lightpush(relay_peer.peer_id(), None, WakuMessage::new("/a/1/b/c", vec![1], now_ns()))
        .await;
    assert!(matches!(refused, Err(NodeError::Request(_)) | Err(NodeError::Dial(_))), "{refused:?}");
}
