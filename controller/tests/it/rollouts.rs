//! Rollouts on SQLite and on a real Postgres: a configuration goes to three nodes one at a
//! time, each starting only after the one before reported it applied and passed; a node that
//! refuses it halts the rollout and the node after it is left alone; bad requests change
//! nothing; a running rollout can be cancelled.

use crate::common::{self, controller::test_config};

use common::agent::{SimAgent, operator_get};
use contract::{desired::ConfigStatus, report::Figures};
use controller::{app::Controller, keyring::Keyring};
use serde_json::{Value, json};

const ADMIN: &str = "rollout-test-token";

/// A report from `agent` saying what it did with configuration `version`.
async fn report(
    http: &reqwest::Client,
    base: &str,
    agent: &mut SimAgent,
    config: Option<(u64, Result<(), &str>)>,
    shards: &[u16],
) -> Value {
    let figures = Figures {
        relay_peers: Some(8),
        config: config.map(|(version, outcome)| ConfigStatus {
            version,
            applied: outcome.is_ok(),
            error: outcome.err().map(str::to_owned),
        }),
        ..Figures::default()
    };
    let body = agent.report_with(shards.to_vec(), figures);
    let (status, answer) = agent.post(http, base, "/api/v1/reports", &body).await;
    assert_eq!(status, 202, "{answer}");
    answer
}

async fn post(http: &reqwest::Client, base: &str, body: Value) -> (u16, Value) {
    let response = http
        .post(format!("{base}/api/v1/rollouts"))
        .bearer_auth(ADMIN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn steps(rollout: &Value) -> Vec<String> {
    rollout["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["state"].as_str().unwrap().to_owned())
        .collect()
}

async fn scenario(database_url: String) {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path(), ADMIN, Some(&database_url));
    let controller = Controller::start(config, Keyring::default(), Vec::new()).await.unwrap();
    let base = format!("http://{}", controller.http_addr());
    let http = reqwest::Client::new();
    let mut agents: Vec<SimAgent> = (0..3).map(|i| SimAgent::new(30600 + i)).collect();
    for agent in &mut agents {
        agent.join(&http, &base, ADMIN, 8).await;
    }
    let ids: Vec<String> = agents.iter().map(SimAgent::node_id).collect();
    controller.reconcile_now().await.unwrap();

    // Bad requests: nothing stored.
    let config = json!({ "maxConnections": 40 });
    for (body, status) in [
        (json!({ "nodes": [], "config": config }), 400),
        (json!({ "nodes": [ids[0], ids[0]], "config": config }), 400),
        (json!({ "nodes": [ids[0]], "config": config, "maxParallel": 2 }), 400),
        (json!({ "nodes": [ids[0]], "config": {} }), 400),
        (json!({ "nodes": [ids[0]], "config": { "shards": [] } }), 422),
        (json!({ "nodes": [ids[0], "00ff"], "config": config }), 404),
        (json!({ "nodes": [ids[0]], "config": config, "speed": "fast" }), 400),
    ] {
        assert_eq!(post(&http, &base, body.clone()).await.0, status, "{body}");
    }
    assert_eq!(operator_get(&http, &base, "/api/v1/rollouts", ADMIN).await["rollouts"], json!([]));

    let (status, created) =
        post(&http, &base, json!({ "nodes": ids, "config": config, "healthySecs": 0 })).await;
    assert_eq!(status, 201, "{created}");
    let id = created["rollout"]["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/rollouts/{id}");
    let rollout = async || operator_get(&http, &base, &path, ADMIN).await["rollout"].clone();

    // First node only.
    controller.reconcile_now().await.unwrap();
    assert_eq!(steps(&rollout().await), ["applying", "waiting", "waiting"]);
    let answer = report(&http, &base, &mut agents[0], None, &[0]).await;
    assert_eq!(answer["desired"]["maxConnections"], 40, "{answer}");
    assert_eq!(answer["desired"]["version"], 1);
    let answer = report(&http, &base, &mut agents[1], None, &[0]).await;
    assert!(answer.get("desired").is_none(), "not its turn: {answer}");
    // Not applied yet: the next pass changes nothing.
    controller.reconcile_now().await.unwrap();
    assert_eq!(steps(&rollout().await), ["applying", "waiting", "waiting"]);

    // Applied and passing: the second node's turn.
    report(&http, &base, &mut agents[0], Some((1, Ok(()))), &[0]).await;
    controller.reconcile_now().await.unwrap();
    assert_eq!(steps(&rollout().await), ["done", "applying", "waiting"]);

    // The second node refuses: halted, the third never gets it.
    report(&http, &base, &mut agents[1], Some((1, Err("port 60000 in use"))), &[0]).await;
    controller.reconcile_now().await.unwrap();
    let halted = rollout().await;
    assert_eq!(halted["state"], "halted", "{halted}");
    assert_eq!(steps(&halted), ["done", "failed", "waiting"]);
    assert!(halted["reason"].as_str().unwrap().contains("refused version 1: port 60000 in use"));
    let answer = report(&http, &base, &mut agents[2], None, &[0]).await;
    assert!(answer.get("desired").is_none(), "{answer}");
    let cancel = http.delete(format!("{base}{path}")).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(cancel.status().as_u16(), 409, "a halted rollout is not running");
    // The dashboard's first concern lists it.
    let page = http
        .get(format!("{base}/dashboard"))
        .basic_auth("admin", Some(ADMIN))
        .send()
        .await
        .unwrap();
    let page = page.text().await.unwrap();
    assert!(page.contains(&format!("rollout {id} halted: node ")), "{page}");

    // A second rollout, cancelled while it runs.
    let (_, second) =
        post(&http, &base, json!({ "nodes": [ids[2]], "config": { "shards": [0, 1] } })).await;
    let second_id = second["rollout"]["id"].as_str().unwrap();
    controller.reconcile_now().await.unwrap();
    let cancel = http
        .delete(format!("{base}/api/v1/rollouts/{second_id}"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(cancel.status().as_u16(), 200);
    let listed = operator_get(&http, &base, "/api/v1/rollouts", ADMIN).await;
    let states: Vec<&str> = listed["rollouts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["state"].as_str().unwrap())
        .collect();
    assert_eq!(states.len(), 2, "{listed}");
    assert!(states.contains(&"cancelled") && states.contains(&"halted"), "{listed}");

    // One that finishes: over what the node already has (maxConnections stays 40).
    let body = json!({ "nodes": [ids[0]], "config": { "shards": [0, 2] }, "healthySecs": 0 });
    let (_, third) = post(&http, &base, body).await;
    let third_path = format!("/api/v1/rollouts/{}", third["rollout"]["id"].as_str().unwrap());
    controller.reconcile_now().await.unwrap();
    let answer = report(&http, &base, &mut agents[0], Some((1, Ok(()))), &[0]).await;
    assert_eq!(
        answer["desired"],
        json!({ "version": 2, "roles": null, "shards": [0, 2], "maxConnections": 40 })
    );
    // An agent that says it applied v2 but still runs shard 0 alone: config drift, a
    // warning, and the rollout waits.
    report(&http, &base, &mut agents[0], Some((2, Ok(()))), &[0]).await;
    controller.reconcile_now().await.unwrap();
    let node = operator_get(&http, &base, &format!("/api/v1/nodes/{}", ids[0]), ADMIN).await;
    let node = &node["node"];
    assert_eq!(node["health"], "warning", "{node}");
    let reason = node["healthReason"].as_str().unwrap();
    assert!(reason.starts_with("config drift: shards [0], but desired configuration v2"), "{node}");
    let waiting = operator_get(&http, &base, &third_path, ADMIN).await["rollout"].clone();
    assert_eq!(waiting["state"], "running", "{waiting}");
    // Running the shards it was given: done.
    report(&http, &base, &mut agents[0], Some((2, Ok(()))), &[0, 2]).await;
    controller.reconcile_now().await.unwrap();
    let done = operator_get(&http, &base, &third_path, ADMIN).await["rollout"].clone();
    assert_eq!(done["state"], "done", "{done}");

    let audit = operator_get(&http, &base, "/api/v1/audit", ADMIN).await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for action in
        ["rollout.create", "rollout.halt", "rollout.cancel", "rollout.done", "node.config"]
    {
        assert!(actions.contains(&action), "{action} missing: {actions:?}");
    }
    controller.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollouts_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    scenario(format!("sqlite://{}", dir.path().join("controller.db").display())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollouts_on_postgres() {
    let database = node::sql::TestDatabase::create().await.unwrap();
    scenario(database.url().to_owned()).await;
}
