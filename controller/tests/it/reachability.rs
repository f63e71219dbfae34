//! The controller dials every node at the address its record advertises and completes a libp2p
//! handshake: a real embedded node is reachable; a record pointing at a closed port, or at a
//! live node under another key, is unreachable after two failed rounds — critical, and left out
//! of the tree — and a node that comes back is listed again.

use crate::common::{
    self,
    controller::{boot_tree, test_config, test_dns},
};

use common::poll::poll_until;

use std::time::Duration;

use common::agent::{SimAgent, operator_get};
use controller::{
    app::Controller, config::ControllerConfig, keyring::Keyring, reachability::ReachabilityConfig,
};
use k256::ecdsa::SigningKey;
use node::{
    config::NodeConfig,
    enrtree::NodeRecord,
    running::{self, NodeHandle},
};
use serde_json::{Value, json};

const ADMIN: &str = "reachability-test-token";

async fn live_node(key: SigningKey, tcp_port: u16) -> (NodeHandle, NodeRecord) {
    let config = NodeConfig { key, tcp_port, websocket_port: None, ..NodeConfig::loopback() };
    let (handle, _task) = running::start(config).await.unwrap();
    let record = NodeRecord::from_enr(handle.enr()).unwrap();
    (handle, record)
}

fn closed_port() -> u16 {
    // Free and outside the ephemeral range: nothing listens there, and no outgoing connection
    // takes it as its local port meanwhile.
    node::free_port::free_port()
}

/// A controller that probes every `interval_ms` (reconcile passes every 200 ms), with the
/// boot tree and its DNS server.
async fn probing_controller(interval_ms: u64) -> (Controller, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut keyring = Keyring::default();
    keyring.insert("dev", node::crypto::generate_key());
    let config = ControllerConfig {
        reconcile_interval_ms: 200,
        dns: test_dns(),
        reachability: ReachabilityConfig {
            interval_ms,
            timeout_ms: 2_000,
            ..ReachabilityConfig::default()
        },
        trees: vec![boot_tree()],
        ..test_config(dir.path(), ADMIN, None)
    };
    (Controller::start(config, keyring, Vec::new()).await.unwrap(), dir)
}

async fn node_json(http: &reqwest::Client, base: &str, member: &SimAgent) -> Value {
    let url = format!("{base}/api/v1/nodes/{}", member.record.node_id_hex());
    let body: Value = http.get(url).bearer_auth(ADMIN).send().await.unwrap().json().await.unwrap();
    body["node"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_are_dialled_at_their_advertised_addresses() {
    let (controller, _dir) = probing_controller(300).await;
    let base = format!("http://{}", controller.http_addr());
    let http = reqwest::Client::new();

    // A real node, a record at a closed port, and a record whose key is not the one that
    // answers at its (live) address.
    let live_key = node::crypto::generate_key();
    let (live_handle, live_record) = live_node(live_key.clone(), 0).await;
    let mut live = SimAgent::with(live_key, live_record);
    let gone_key = node::crypto::generate_key();
    let gone_port = closed_port();
    let gone_record =
        NodeRecord::sign(&gone_key, 1, std::net::Ipv4Addr::LOCALHOST, gone_port, gone_port)
            .unwrap();
    let mut gone = SimAgent::with(gone_key, gone_record);
    let impostor_key = node::crypto::generate_key();
    let live_port = live.record.enr().tcp4().unwrap();
    let impostor_record =
        NodeRecord::sign(&impostor_key, 1, std::net::Ipv4Addr::LOCALHOST, live_port, live_port)
            .unwrap();
    let mut impostor = SimAgent::with(impostor_key, impostor_record);
    for member in [&mut live, &mut gone, &mut impostor] {
        member.join(&http, &base, ADMIN, 6).await;
    }

    poll_until(
        "the live node confirmed and the others refused",
        Duration::from_secs(30),
        async || {
            // Reachability is probed, then the next reconcile pass turns it into health.
            let unreachable = async |member: &SimAgent| {
                let node = node_json(&http, &base, member).await;
                node["reachable"] == false && node["health"] == "critical"
            };
            node_json(&http, &base, &live).await["reachable"] == true
                && unreachable(&gone).await
                && unreachable(&impostor).await
        },
    )
    .await;
    for member in [&gone, &impostor] {
        let node = node_json(&http, &base, member).await;
        assert_eq!(node["health"], "critical", "{node}");
        assert_eq!(node["healthReason"], "advertised address unreachable", "{node}");
    }
    let live_json = node_json(&http, &base, &live).await;
    assert_eq!(live_json["health"], "passing", "{live_json}");

    // Only the reachable node is listed.
    poll_until("a tree of the live node only", Duration::from_secs(30), async || {
        let tree = operator_get(&http, &base, "/api/v1/trees/boot", ADMIN).await;
        let newest = &tree["versions"][0];
        newest["state"] == "published" && newest["enrs"] == json!([live.record.to_string()])
    })
    .await;
    let metrics = http.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    let gauge = format!(
        "wakufleet_node_reachable{{label=\"test\",node_id=\"{}\"}} 0",
        gone.record.node_id_hex()
    );
    assert!(metrics.contains(&gauge), "{gauge} missing from\n{metrics}");

    // The node at the closed port comes up: one good handshake makes it reachable again.
    let (_back, back_record) = live_node(gone.key.clone(), gone_port).await;
    assert_eq!(back_record.enr().tcp4(), Some(gone_port));
    gone.send_report(&http, &base, 6).await;
    poll_until("the returning node confirmed", Duration::from_secs(30), async || {
        node_json(&http, &base, &gone).await["reachable"] == true
    })
    .await;
    live_handle.shutdown().await;
    controller.shutdown().await;
}

/// A record with `node`'s key and TCP port at `seq`, plus `extra` multiaddrs.
fn record_with(key: &SigningKey, seq: u64, tcp: u16, extra: &[&str]) -> NodeRecord {
    let config = node::waku_enr::WakuEnrConfig {
        seq,
        ip: Some(std::net::Ipv4Addr::LOCALHOST),
        tcp: Some(tcp),
        udp: None,
        capabilities: node::waku_enr::Capabilities::default(),
        multiaddrs: extra.iter().map(|a| a.parse().unwrap()).collect(),
        shards: None,
    };
    NodeRecord::from_enr(node::waku_enr::build_enr(key, &config).unwrap()).unwrap()
}

/// The trust-boundary attacks on addresses: a real record plus a WebSocket address nothing
/// answers at was published, and a node's new record was trusted on its old record's probe.
/// Now every advertised address is dialled (`/ws` included), and a record is listed only once
/// it passed — within a reconcile interval, not a probe interval (60 s here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_advertised_address_is_dialled_and_new_records_wait_for_their_probe() {
    let (controller, _dir) = probing_controller(60_000).await;
    let base = format!("http://{}", controller.http_addr());
    let http = reqwest::Client::new();

    // A real node listening on TCP and WebSocket: its record carries the /ws address.
    let web_key = node::crypto::generate_key();
    let web_config = NodeConfig { key: web_key.clone(), ..NodeConfig::loopback() };
    let (web_handle, _task) = running::start(web_config).await.unwrap();
    let web_record = NodeRecord::from_enr(web_handle.enr()).unwrap();
    let ws = node::waku_enr::WakuEnr::decode(web_record.enr()).unwrap();
    assert!(ws.multiaddrs.iter().any(|a| a.to_string().contains("/ws")), "{:?}", ws.multiaddrs);
    let mut web = SimAgent::with(web_key, web_record);

    // A real node whose record adds a /wss address where nothing listens.
    let liar_key = node::crypto::generate_key();
    let (liar_handle, liar_real) = live_node(liar_key.clone(), 0).await;
    let liar_port = liar_real.enr().tcp4().unwrap();
    let bogus = format!("/ip4/127.0.0.1/tcp/{}/wss", closed_port());
    let liar_record = record_with(&liar_key, liar_real.enr().seq() + 1, liar_port, &[&bogus]);
    let mut liar = SimAgent::with(liar_key, liar_record);

    for member in [&mut web, &mut liar] {
        member.join(&http, &base, ADMIN, 6).await;
    }
    poll_until("the web node listed, the liar refused", Duration::from_secs(20), async || {
        let tree = operator_get(&http, &base, "/api/v1/trees/boot", ADMIN).await;
        let newest = &tree["versions"][0];
        let liar = node_json(&http, &base, &liar).await;
        // Health is the next pass's verdict on the probe's result.
        liar["reachable"] == false
            && liar["health"] == "critical"
            && newest["state"] == "published"
            && newest["enrs"] == json!([web.record.to_string()])
    })
    .await;
    let liar_json = node_json(&http, &base, &liar).await;
    assert_eq!(liar_json["health"], "critical", "{liar_json}");

    // The web node moves to a record at a closed port: its old probe no longer counts, so the
    // new record is never listed. It was the tree's only node: rather than publish an empty
    // tree, the controller keeps the version with its proven old record and says why.
    let proven = web.record.to_string();
    let moved = record_with(&web.key, web.record.enr().seq() + 1, closed_port(), &[]);
    web.record = moved;
    web.send_report(&http, &base, 6).await;
    let after = node_json(&http, &base, &web).await;
    assert_ne!(after["reachable"], true, "a new record is unproven: {after}");
    poll_until("the moved node out of any new version", Duration::from_secs(20), async || {
        let tree = operator_get(&http, &base, "/api/v1/trees/boot", ADMIN).await;
        let newest = &tree["versions"][0];
        newest["state"] == "published"
            && newest["enrs"] == json!([proven])
            && tree["tree"]["lastError"].as_str().is_some_and(|e| e.contains("stays"))
    })
    .await;
    poll_until("the moved node found unreachable", Duration::from_secs(20), async || {
        node_json(&http, &base, &web).await["reachable"] == false
    })
    .await;
    web_handle.shutdown().await;
    liar_handle.shutdown().await;
    controller.shutdown().await;
}
