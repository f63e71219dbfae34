//! Store v3 between Rust nodes: a store node archives what it relays, once, and answers queries
//! with the protocol's exact paging and status codes.

use crate::common;

use std::time::Duration;

use node::{
    message::WakuMessage,
    store::{proto::StoreQueryRequest, status},
};
use tokio::time::timeout;

const TOPIC: &str = "/waku/2/rs/0/0";
const CONTENT: &str = "/wakufleet/1/store/proto";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_store_node_archives_relayed_messages_and_pages_through_them() {
    let dir = tempfile::tempdir().unwrap();
    archive_and_page(format!("sqlite://{}", dir.path().join("store.db").display())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_store_node_archives_relayed_messages_and_pages_through_them() {
    let database = common::postgres_database().await;
    archive_and_page(database.url().to_owned()).await;
}

async fn archive_and_page(url: String) {
    let (store, relayer, client) = common::store_network(url).await;

    let base = node::message::now_ns();
    let mut hashes = Vec::new();
    for i in 0..30 {
        let message =
            WakuMessage::new(CONTENT, format!("stored {i}").into_bytes(), base + i * 1_000);
        hashes.push(relayer.publish(TOPIC, message).await.unwrap());
    }
    let mut ephemeral = WakuMessage::new(CONTENT, b"gone".to_vec(), base + 99_000);
    ephemeral.ephemeral = Some(true);
    relayer.publish(TOPIC, ephemeral).await.unwrap();

    let query = |cursor: Option<Vec<u8>>| StoreQueryRequest {
        include_data: true,
        pubsub_topic: Some(TOPIC.into()),
        content_topics: vec![CONTENT.into()],
        pagination_forward: true,
        pagination_limit: Some(7),
        pagination_cursor: cursor,
        ..StoreQueryRequest::default()
    };
    // Wait until the archive has everything (archiving is asynchronous).
    timeout(Duration::from_secs(20), async {
        loop {
            let lookup = StoreQueryRequest {
                message_hashes: vec![hashes[29].0.to_vec()],
                ..StoreQueryRequest::default()
            };
            if !client.store_query(store.peer_id(), lookup).await.unwrap().messages.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .unwrap();

    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let response = client.store_query(store.peer_id(), query(cursor)).await.unwrap();
        assert_eq!(response.status_code, Some(status::SUCCESS));
        assert_eq!(response.status_desc.as_deref(), Some("OK"), "nwaku requires status_desc");
        for entry in &response.messages {
            assert_eq!(entry.pubsub_topic.as_deref(), Some(TOPIC));
            assert!(entry.message.as_ref().unwrap().payload.starts_with(b"stored "));
            seen.push(entry.message_hash.clone().unwrap());
        }
        cursor = response.pagination_cursor;
        if cursor.is_none() {
            break;
        }
    }
    let expected: Vec<Vec<u8>> = hashes.iter().map(|h| h.0.to_vec()).collect();
    assert_eq!(seen, expected, "all 30 in order, the ephemeral one not stored");

    // Bad queries: clear 400s, and the node keeps serving.
    let bad_cursor = StoreQueryRequest { pagination_cursor: Some(vec![1; 32]), ..query(None) };
    assert_eq!(
        client.store_query(store.peer_id(), bad_cursor).await.unwrap().status_code,
        Some(status::BAD_REQUEST)
    );
    let short_hash =
        StoreQueryRequest { message_hashes: vec![vec![1, 2, 3]], ..StoreQueryRequest::default() };
    assert_eq!(
        client.store_query(store.peer_id(), short_hash).await.unwrap().status_code,
        Some(status::BAD_REQUEST)
    );
    let inverted = StoreQueryRequest { time_start: Some(10), time_end: Some(1), ..query(None) };
    assert_eq!(
        client.store_query(store.peer_id(), inverted).await.unwrap().status_code,
        Some(status::BAD_REQUEST)
    );
    let many = StoreQueryRequest {
        content_topics: (0..101).map(|i| format!("/a/1/t{i}/p")).collect(),
        ..query(None)
    };
    assert_eq!(
        client.store_query(store.peer_id(), many).await.unwrap().status_code,
        Some(status::BAD_REQUEST)
    );
    let ok = client.store_query(store.peer_id(), query(None)).await.unwrap();
    assert_eq!(ok.messages.len(), 7);
    // The client scored the store node: answered requests, none held against it (400s are ours).
    let scores =
        client.service_peers(node::running::service_peers::ServiceKind::Store).await.unwrap();
    assert_eq!(scores[0].0, store.peer_id());
    assert!(scores[0].1.successes >= 10 && scores[0].1.failures == 0, "{scores:?}");
    assert!(scores[0].1.latency_ms > 0.0);
    let stats = store.stats().await.unwrap();
    assert_eq!(stats.archive_errors, 0);
    assert!(stats.store_queries >= 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_beyond_the_in_flight_bound_are_refused_with_503_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    // No slot at all: every query meets a node already answering as many as it will.
    let (store, _task) = node::running::start(node::config::NodeConfig {
        store_url: Some(url),
        max_store_queries_in_flight: 0,
        ..node::config::NodeConfig::loopback()
    })
    .await
    .unwrap();
    let (client, _task) = node::running::start(node::config::NodeConfig {
        relay: false,
        ..node::config::NodeConfig::loopback()
    })
    .await
    .unwrap();
    client.dial(store.listen_addrs()[0].clone()).await.unwrap();
    let request = node::store::proto::StoreQueryRequest {
        include_data: true,
        pubsub_topic: Some("/waku/2/rs/0/0".into()),
        ..Default::default()
    };
    let answer = client.store_query(store.peer_id(), request).await.unwrap();
    assert_eq!(answer.status_code, Some(503), "{answer:?}");
    assert!(answer.status_desc.unwrap().contains("too many store queries"));
    let stats = store.stats().await.unwrap();
    assert_eq!((stats.store_queries, stats.store_queries_refused), (1, 1));
    let metrics = node::metrics::render(&stats, "test").unwrap();
    assert!(metrics.contains("waku_store_queries_total{outcome=\"refused\"} 1"), "{metrics}");
}
