//! Filter v2 between Rust nodes: a light client subscribes at a service node and receives the
//! matching messages, relayed or lightpushed, and only those; nwaku's 400/404 rules hold.

use std::time::Duration;

use node::{
    config::NodeConfig,
    filter::status,
    message::WakuMessage,
    message::now_ns,
    running::{NodeEvent, start},
};
use tokio::{sync::broadcast, time::timeout};

const TOPIC: &str = "/waku/2/rs/0/0";
const WANTED: &str = "/wakufleet/1/filter/proto";

async fn next_push(
    events: &mut broadcast::Receiver<NodeEvent>,
    within: Duration,
) -> Option<Vec<u8>> {
    timeout(within, async {
        loop {
            if let Ok(NodeEvent::Pushed { message, topic, .. }) = events.recv().await {
                assert_eq!(topic, TOPIC);
                return message.payload.clone();
            }
        }
    })
    .await
    .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_get_matching_messages_only() {
    let (service, _) =
        start(NodeConfig { filter: true, lightpush: true, ..NodeConfig::loopback() })
            .await
            .unwrap();
    let (relayer, _) = start(NodeConfig::loopback()).await.unwrap();
    relayer.dial(service.listen_addrs()[0].clone()).await.unwrap();
    service.wait_for_relay_peers(1, Duration::from_secs(20)).await.unwrap();
    let (client, _) = start(NodeConfig { relay: false, ..NodeConfig::loopback() }).await.unwrap();
    client.dial(service.listen_addrs()[0].clone()).await.unwrap();
    let mut events = client.events();
    let s = service.peer_id();

    let subscribed = client.filter_subscribe(s, TOPIC, vec![WANTED.into()]).await.unwrap();
    assert_eq!(subscribed.status_code, status::SUCCESS);
    assert_eq!(service.stats().await.unwrap().filter_subscribers, 1);

    // A relayed message on another content topic, then a matching one: only the latter arrives.
    relayer
        .publish(TOPIC, WakuMessage::new("/other/1/x/proto", b"not for you".to_vec(), now_ns()))
        .await
        .unwrap();
    relayer.publish(TOPIC, WakuMessage::new(WANTED, b"relayed".to_vec(), now_ns())).await.unwrap();
    assert_eq!(next_push(&mut events, Duration::from_secs(20)).await.unwrap(), b"relayed");

    // A message lightpushed to the service node itself reaches local subscribers too.
    let pushed = client
        .lightpush(
            s,
            Some(TOPIC.into()),
            WakuMessage::new(WANTED, b"lightpushed".to_vec(), now_ns()),
        )
        .await
        .unwrap();
    assert_eq!(pushed.status_code, 200, "{pushed:?}");
    assert_eq!(next_push(&mut events, Duration::from_secs(20)).await.unwrap(), b"lightpushed");

    assert_eq!(client.filter_ping(s).await.unwrap().status_code, status::SUCCESS);
    assert_eq!(
        client.filter_unsubscribe(s, TOPIC, vec![WANTED.into()]).await.unwrap().status_code,
        status::SUCCESS
    );
    relayer.publish(TOPIC, WakuMessage::new(WANTED, b"after".to_vec(), now_ns())).await.unwrap();
    assert_eq!(
        next_push(&mut events, Duration::from_secs(2)).await,
        None,
        "no pushes after unsubscribing"
    );
    assert_eq!(client.filter_ping(s).await.unwrap().status_code, status::NOT_FOUND);
    assert_eq!(client.filter_unsubscribe_all(s).await.unwrap().status_code, status::NOT_FOUND);

    // Bad requests.
    assert_eq!(
        client.filter_subscribe(s, TOPIC, vec![]).await.unwrap().status_code,
        status::BAD_REQUEST
    );
    let many: Vec<String> = (0..101).map(|i| format!("/app/1/t{i}/proto")).collect();
    assert_eq!(
        client.filter_subscribe(s, TOPIC, many).await.unwrap().status_code,
        status::BAD_REQUEST
    );
    assert_eq!(
        client.filter_subscribe(s, "/not/a/topic", vec![WANTED.into()]).await.unwrap().status_code,
        status::BAD_REQUEST
    );
    assert_eq!(service.stats().await.unwrap().filter_subscribers, 0);
    let stats = client.stats().await.unwrap();
    assert_eq!(stats.filter_pushes_received, 2);
}

/// A filter node that omits messages loses to one that delivers them: the client charges a miss
/// to every subscribed peer that did not push a message another peer delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_peer_that_omits_messages_ranks_last() {
    use node::running::service_peers::ServiceKind;
    let (faithful, _) = start(NodeConfig { filter: true, ..NodeConfig::loopback() }).await.unwrap();
    // Subscribed on the same topic but cut off from the traffic: it never sees the messages.
    let (cut_off, _) = start(NodeConfig { filter: true, ..NodeConfig::loopback() }).await.unwrap();
    let (relayer, _) = start(NodeConfig::loopback()).await.unwrap();
    relayer.dial(faithful.listen_addrs()[0].clone()).await.unwrap();
    faithful.wait_for_relay_peers(1, Duration::from_secs(20)).await.unwrap();
    let (client, _) = start(NodeConfig { relay: false, ..NodeConfig::loopback() }).await.unwrap();
    for server in [&faithful, &cut_off] {
        client.dial(server.listen_addrs()[0].clone()).await.unwrap();
        let ok =
            client.filter_subscribe(server.peer_id(), TOPIC, vec![WANTED.into()]).await.unwrap();
        assert_eq!(ok.status_code, status::SUCCESS);
    }
    let mut events = client.events();
    for i in 0..3 {
        relayer
            .publish(TOPIC, WakuMessage::new(WANTED, format!("m{i}").into_bytes(), now_ns()))
            .await
            .unwrap();
        assert!(next_push(&mut events, Duration::from_secs(20)).await.is_some());
    }
    // After the push window, the cut-off node is charged the misses.
    let ranked = timeout(Duration::from_secs(30), async {
        loop {
            let ranked = client.service_peers(ServiceKind::Filter).await.unwrap();
            if ranked.iter().any(|(_, s)| s.missed >= 3) {
                return ranked;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("misses charged within the window");
    assert_eq!(ranked[0].0, faithful.peer_id(), "{ranked:?}");
    assert_eq!(ranked[0].1.delivered, 3);
    assert_eq!(ranked[1].0, cut_off.peer_id());
    assert_eq!(ranked[1].1.missed, 3);
    assert_eq!(
        client.best_service_peer(ServiceKind::Filter).await.unwrap(),
        Some(faithful.peer_id())
    );
}

/// A push stream anyone can open: unsolicited pushes and oversized ones are dropped, and the
/// client goes on receiving what it subscribed to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsolicited_and_oversized_pushes_are_dropped() {
    use futures::StreamExt;
    use libp2p::{
        request_response::{self, ProtocolSupport},
        swarm::SwarmEvent,
    };
    use node::filter::{MessagePush, PUSH_PROTOCOL, PushCodec};

    let (service, _) = start(NodeConfig { filter: true, ..NodeConfig::loopback() }).await.unwrap();
    let (relayer, _) = start(NodeConfig::loopback()).await.unwrap();
    relayer.dial(service.listen_addrs()[0].clone()).await.unwrap();
    service.wait_for_relay_peers(1, Duration::from_secs(20)).await.unwrap();
    let (client, _) = start(NodeConfig { relay: false, ..NodeConfig::loopback() }).await.unwrap();
    client.dial(service.listen_addrs()[0].clone()).await.unwrap();
    let ok = client.filter_subscribe(service.peer_id(), TOPIC, vec![WANTED.into()]).await.unwrap();
    assert_eq!(ok.status_code, status::SUCCESS);
    let mut events = client.events();

    // A stranger opens push streams to the client: one matching push, one far over the limit.
    let mut stranger = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default(),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|_| {
            request_response::Behaviour::with_codec(
                PushCodec::new(4 * 1024 * 1024),
                [(PUSH_PROTOCOL, ProtocolSupport::Outbound)],
                request_response::Config::default(),
            )
        })
        .unwrap()
        .build();
    stranger.add_peer_address(client.peer_id(), client.listen_addrs()[0].clone());
    let push = |payload: Vec<u8>| MessagePush {
        waku_message: Some(WakuMessage::new(WANTED, payload, now_ns())),
        pubsub_topic: Some(TOPIC.into()),
    };
    stranger.behaviour_mut().send_request(&client.peer_id(), push(b"unsolicited".to_vec()));
    stranger.behaviour_mut().send_request(&client.peer_id(), push(vec![b'x'; 2 * 1024 * 1024]));
    let outcomes = timeout(Duration::from_secs(20), async {
        let mut outcomes = Vec::new();
        while outcomes.len() < 2 {
            if let SwarmEvent::Behaviour(event) = stranger.select_next_some().await {
                match event {
                    request_response::Event::Message { .. } => outcomes.push(true),
                    request_response::Event::OutboundFailure { .. } => outcomes.push(false),
                    _ => {}
                }
            }
        }
        outcomes
    })
    .await
    .expect("both pushes delivered or refused");
    assert!(outcomes.contains(&false), "the oversized push is refused: {outcomes:?}");
    tokio::spawn(async move { while stranger.next().await.is_some() {} });

    // The subscribed message from the service node still arrives, and only it.
    relayer.publish(TOPIC, WakuMessage::new(WANTED, b"wanted".to_vec(), now_ns())).await.unwrap();
    assert_eq!(next_push(&mut events, Duration::from_secs(20)).await.unwrap(), b"wanted");
    assert_eq!(next_push(&mut events, Duration::from_secs(1)).await, None);
    let stats = client.stats().await.unwrap();
    assert_eq!(stats.filter_pushes_unsolicited, 1, "{stats:?}");
    assert_eq!(stats.filter_pushes_received, 1);
}
