//! The happy path with a real peer: enrolment, figures as the controller sees them (peers,
//! mesh, fleet share, store probe), the nwaku-compatible ports, and an agent restart that
//! neither enrols again nor replays a counter.

use std::{sync::atomic::Ordering, time::Duration};

use node::{config::NodeConfig, running};

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_figures_serves_nwaku_ports_and_survives_an_agent_restart() {
    capture_logs();
    let ctl = ControllerFixture::sqlite().await;
    let (peer, _peer_task) =
        running::start(NodeConfig { cluster_id: 1, shards: vec![0], ..NodeConfig::loopback() })
            .await
            .unwrap();
    let peer_addr = peer.listen_addrs()[0].clone();
    let dir = tempfile::tempdir().unwrap();
    let node_extra = format!(
        "store = true\nrest-admin = true\nstaticnode = [\"{peer_addr}\"]\nfleet-peer = [\"{}\"]",
        peer.peer_id()
    );
    let config = agent_config(dir.path(), &ctl.url(), &node_extra);
    let (agent, key) = start_agent(config.clone(), &ctl.token().await).await;
    let id = node_id(&agent);

    let node = ctl
        .wait_node(&id, Duration::from_secs(20), |n| {
            // Rates need two samples: the first report has none yet.
            let figures = &n["lastReport"]["figures"];
            figures["storeProbe"]["ok"] == true && figures["messagesOutPerSec"].is_number()
        })
        .await;
    let figures = &node["lastReport"]["figures"];
    assert!(figures["relayPeers"].as_u64() >= Some(1), "{figures}");
    assert_eq!(figures["peersOutbound"], 1, "{figures}");
    assert_eq!(figures["fleetShare"], 1.0, "the one relay peer is a fleet node: {figures}");
    assert!(figures["storeProbe"]["latencyMs"].as_f64().unwrap() < 5000.0, "{figures}");
    assert!(figures["meshPerShard"]["/waku/2/rs/1/0"].as_u64().is_some(), "{figures}");
    assert!(figures["discv5Table"].is_number() && figures["restarts"] == 0, "{figures}");
    assert!(figures["messagesOutPerSec"].as_f64().is_some(), "{figures}");
    let services: Vec<&str> =
        node["services"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
    assert_eq!(services, ["relay", "store", "peer-exchange"], "peer exchange is on by default");
    assert_eq!(node["roles"], serde_json::json!(["boot"]), "its token's roles, not the report's");
    assert_eq!(node["clusterId"], 1);

    // nwaku's ports.
    let rest = agent.rest_addr().unwrap();
    let (status, health) = get(rest, "/health").await;
    assert_eq!((status, health.contains("READY")), (200, true), "{health}");
    let (status, version) = get(rest, "/debug/v1/version").await;
    assert_eq!(status, 200);
    assert!(version.starts_with('v'), "{version}");
    let (status, peers) = get(rest, "/admin/v1/peers").await;
    assert_eq!(status, 200, "[node] rest-admin serves the admin routes on the compat port");
    assert!(peers.contains(&peer.peer_id().to_string()), "{peers}");
    // The node's REST rules hold on the compat port too: a rebinding page's Host is refused.
    let rebound = reqwest::Client::new()
        .get(format!("http://{rest}/debug/v1/info"))
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status().as_u16(), 403);
    let (status, metrics) = get(agent.metrics_addr().unwrap(), "/metrics").await;
    assert_eq!(status, 200);
    for needle in [
        "libp2p_peers 1",
        "waku_connected_peers{direction=\"out\"",
        "libp2p_gossipsub_peers_per_topic_mesh{topic=\"/waku/2/rs/1/0\"}",
        "waku_node_messages_total{type=\"published\"}",
        "wakufleet_agent_node_restarts_total 0",
        "wakufleet_agent_reports_queued",
        "wakufleet_agent_enrolled 1",
    ] {
        assert!(metrics.contains(needle), "{needle} missing:\n{metrics}");
    }
    let sent_line = metrics.lines().find(|l| l.starts_with("wakufleet_agent_reports_sent_total"));
    assert!(sent_line.is_some_and(|l| !l.ends_with(" 0")), "{sent_line:?}");

    // Restart the agent: enrolment and counter come from disk (the token is gone).
    let last = node["lastCounter"].as_u64().unwrap();
    agent.shutdown().await;
    std::fs::remove_file(dir.path().join("token")).unwrap();
    let agent = agent::Agent::start(config, key).await.unwrap();
    assert!(agent.metrics().enrolled.load(Ordering::Relaxed));
    ctl.wait_node(&id, Duration::from_secs(10), |n| n["lastCounter"].as_u64() > Some(last + 2))
        .await;
    assert_eq!(agent.metrics().reports_refused.load(Ordering::Relaxed), 0, "no replay");
    assert!(log_lines(&["not enrolled", &ctl.url()]).is_empty());
    let reports = ctl.reports(&id).await;
    assert!(reports.windows(2).all(|w| w[0].0 < w[1].0), "{reports:?}");
    agent.shutdown().await;
    peer.shutdown().await;
}
