//! Desired configuration end to end: an operator sets it on the real controller, the agent
//! applies it to its node and reports the version applied; a configuration the agent refuses
//! is reported failed and the node keeps running what it had.

use std::time::Duration;

use serde_json::json;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operators_configuration_reaches_the_node_and_comes_back_applied() {
    let ctl = ControllerFixture::sqlite().await;
    let dir = tempfile::tempdir().unwrap();
    // Store is off; should it be switched on, its archive here cannot be created.
    let unopenable = "store-message-db-url = \"sqlite:///nonexistent-wakufleet-dir/x/store.db\"";
    let config = agent_config(dir.path(), &ctl.url(), unopenable);
    let (agent, _key) = start_agent(config, &ctl.token().await).await;
    let id = node_id(&agent);
    let first =
        ctl.wait_node(&id, Duration::from_secs(10), |n| n["lastCounter"].as_u64() >= Some(1)).await;
    let first_seq = first["enrSeq"].as_u64().unwrap();

    let http = reqwest::Client::new();
    let put = async |body: serde_json::Value| {
        let response = http
            .put(format!("{}/api/v1/nodes/{id}/config", ctl.url()))
            .bearer_auth(ADMIN)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json::<serde_json::Value>().await.unwrap())
    };
    let (status, answer) = put(json!({ "shards": [0, 3], "maxConnections": 40 })).await;
    assert_eq!(status, 200, "{answer}");
    let node = ctl
        .wait_node(&id, Duration::from_secs(15), |n| {
            n["lastReport"]["figures"]["config"]["version"] == 1
        })
        .await;
    assert_eq!(node["lastReport"]["figures"]["config"]["applied"], true, "{node}");
    assert_eq!(node["shards"], json!([0, 3]), "the registry shows what the node runs");
    assert_eq!(agent.supervisor().current().unwrap().shards, [0, 3]);
    // The restarted node announces the new shards under a higher ENR seq, so peers holding the
    // old record (and the controller's registry) take the new one.
    let applied_seq = node["enrSeq"].as_u64().unwrap();
    assert!(applied_seq > first_seq, "seq {first_seq} → {applied_seq}");
    let record: node::enrtree::NodeRecord = node["enr"].as_str().unwrap().parse().unwrap();
    let waku = node::waku_enr::WakuEnr::decode(record.enr()).unwrap();
    assert_eq!(waku.shards.unwrap().shards, [0, 3], "{node}");

    // Store switched on, but its archive cannot be opened: the agent rolls back and reports
    // version 2 failed; the node stays on version 1.
    let (status, answer) = put(json!({ "roles": ["relay", "store"] })).await;
    assert_eq!(status, 200, "{answer}");
    let node = ctl
        .wait_node(&id, Duration::from_secs(15), |n| {
            n["lastReport"]["figures"]["config"]["version"] == 2
        })
        .await;
    let status = &node["lastReport"]["figures"]["config"];
    assert_eq!(status["applied"], false, "{node}");
    assert!(status["error"].as_str().is_some_and(|e| !e.is_empty()), "{node}");
    assert_eq!(node["shards"], json!([0, 3]), "still version 1");
    assert!(node["enrSeq"].as_u64().unwrap() >= applied_seq, "seq never falls: {node}");
    agent.shutdown().await;
}
