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
    assert_eq!(node["healthReason"], "starting: no relay peers yet", "{node}");

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

/// Fleet nodes find each other (issue: the operator's first day): two agents configured with
/// no bootstrap list, static node or fleet-peer ids connect through the records the
/// controller's answers carry, and count each other as fleet peers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_nodes_find_each_other_from_the_controllers_answers() {
    let ctl = ControllerFixture::sqlite().await;
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, _) = start_agent(agent_config(dir_a.path(), &ctl.url(), ""), &ctl.token().await).await;
    let (b, _) = start_agent(agent_config(dir_b.path(), &ctl.url(), ""), &ctl.token().await).await;
    let controller = ctl.controller.as_ref().unwrap();
    let ids = [node_id(&a), node_id(&b)];
    poll_until("both nodes see each other", Duration::from_secs(20), async || {
        controller.reconcile_now().await.unwrap();
        let mut both = true;
        for id in &ids {
            let node = ctl.node(id).await;
            let figures = node.as_ref().map(|n| n["lastReport"]["figures"].clone());
            both &= figures
                .is_some_and(|f| f["relayPeers"].as_u64() >= Some(1) && f["fleetShare"] == 1.0);
        }
        both
    })
    .await;
    a.shutdown().await;
    b.shutdown().await;
}
