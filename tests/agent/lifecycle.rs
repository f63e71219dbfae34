//! A node's life as the controller sees it (issue: the operator's first day): every start was
//! "critical" for ~30 s (no peers yet), and a node stopped with SIGTERM stayed listed until
//! its reports grew stale. Now a fresh node is *starting* (a warning, not listed) and a clean
//! stop tells the controller, which marks the node critical at once.

use std::time::Duration;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_starting_node_is_not_critical_and_a_clean_stop_is_reported_at_once() {
    let ctl = ControllerFixture::sqlite().await;
    let dir = tempfile::tempdir().unwrap();
    let config = agent_config(dir.path(), &ctl.url(), "");
    let (agent, _key) = start_agent(config, &ctl.token().await).await;
    let id = node_id(&agent);
    ctl.wait_node(&id, Duration::from_secs(10), |n| n["lastCounter"].as_u64() >= Some(1)).await;
    ctl.controller.as_ref().unwrap().reconcile_now().await.unwrap();
    let node = ctl.node(&id).await.unwrap();
    // Alone, it has no relay peers: starting, not critical.
    assert_eq!(node["health"], "warning", "{node}");
    assert!(node["healthReason"].as_str().unwrap().starts_with("starting: up "), "{node}");

    agent.shutdown().await;
    let node = ctl
        .wait_node(&id, Duration::from_secs(5), |n| n["lastReport"]["figures"]["stopping"] == true)
        .await;
    ctl.controller.as_ref().unwrap().reconcile_now().await.unwrap();
    let after = ctl.node(&id).await.unwrap();
    assert_eq!(after["health"], "critical", "{after}");
    assert_eq!(after["healthReason"], "stopped by its agent", "{after}");
    assert!(node["lastReport"]["figures"]["nodeUptimeSecs"].is_u64(), "{node}");
}
