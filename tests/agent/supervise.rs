//! The supervisor: a node killed 20 times is back within 5 s each time, the port answers
//! again, and the controller sees the restarts counted.

use std::{sync::Arc, time::Duration};

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_node_is_back_within_5s_twenty_times_and_the_controller_counts_it() {
    capture_logs();
    let ctl = ControllerFixture::sqlite().await;
    let dir = tempfile::tempdir().unwrap();
    let config = agent_config(dir.path(), &ctl.url(), "");
    let port = config.node.tcp_port.unwrap();
    let (agent, _key) = start_agent(config, &ctl.token().await).await;
    let rest = agent.rest_addr().unwrap();
    let id = node_id(&agent);
    ctl.wait_node(&id, Duration::from_secs(10), |n| n["lastCounter"].as_u64() > Some(0)).await;

    let mut slowest = Duration::ZERO;
    for round in 1..=20u64 {
        let before = agent.supervisor().current().expect("node up before the kill");
        agent.supervisor().kill_node().await.unwrap();
        let killed_at = tokio::time::Instant::now();
        let mut watch = agent.supervisor().watch();
        let back = tokio::time::timeout(
            Duration::from_secs(5),
            watch.wait_for(|i| i.as_ref().is_some_and(|i| !Arc::ptr_eq(i, &before))),
        )
        .await
        .unwrap_or_else(|_| panic!("round {round}: not back within 5 s"))
        .unwrap()
        .clone()
        .unwrap();
        slowest = slowest.max(killed_at.elapsed());
        assert_eq!(agent.supervisor().stats().restarts(), round);
        // Same identity, same port: what peers, trees and Consul know stays valid.
        assert_eq!(back.handle.peer_id(), before.handle.peer_id());
        assert!(
            back.handle.listen_addrs()[0].to_string().contains(&format!("/tcp/{port}/")),
            "{:?}",
            back.handle.listen_addrs()
        );
        let (status, body) = get(rest, "/health").await;
        assert_eq!(status, 200, "round {round}: {body}");
    }
    println!("slowest restart: {slowest:?}");
    // The restart count reaches the controller, with the reasons among the errors.
    let node = ctl
        .wait_node(&id, Duration::from_secs(10), |n| {
            n["lastReport"]["figures"]["restarts"].as_u64() == Some(20)
        })
        .await;
    assert_eq!(node["services"][0], "relay", "{node}");
    let (_, metrics) = get(agent.metrics_addr().unwrap(), "/metrics").await;
    assert!(metrics.contains("wakufleet_agent_node_restarts_total 20"), "{metrics}");
    let reports = ctl.reports(&id).await;
    assert!(reports.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1), "{reports:?}");
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compat_port_says_initializing_while_the_node_is_down_and_shutdown_is_clean() {
    capture_logs();
    let dir = tempfile::tempdir().unwrap();
    // No controller at all: the agent still runs its node and ports.
    let mut config = agent_config(dir.path(), &format!("http://127.0.0.1:{}", free_port()), "");
    // A long pause between restarts, to look at the port while the node is down.
    config.supervisor.backoff_min = Duration::from_secs(2);
    config.supervisor.backoff_max = Duration::from_secs(2);
    let port = config.node.tcp_port.unwrap();
    let (agent, _key) = start_agent(config, "wft_unused").await;
    let rest = agent.rest_addr().unwrap();
    let (status, info) = get(rest, "/debug/v1/info").await;
    assert_eq!(status, 200);
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert!(info["enrUri"].as_str().unwrap().starts_with("enr:"));
    agent.supervisor().kill_node().await.unwrap();
    poll_until("the node seen down", Duration::from_secs(2), async || {
        get(rest, "/health").await.0 == 503
    })
    .await;
    let (status, body) = get(rest, "/health").await;
    assert_eq!(status, 503);
    assert!(body.contains("INITIALIZING"), "{body}");
    let (status, metrics) = get(agent.metrics_addr().unwrap(), "/metrics").await;
    assert_eq!(status, 200);
    assert!(metrics.contains("wakufleet_agent_node_up 0"), "{metrics}");
    assert!(agent.supervisor().wait_up(Duration::from_secs(5)).await.is_some());
    agent.shutdown().await;
    // Clean shutdown: the node's port is free again, the compat port closed.
    std::net::TcpListener::bind(("127.0.0.1", port)).expect("node port released");
    assert!(reqwest::get(format!("http://{rest}/health")).await.is_err(), "REST port closed");
}
