//! One version per settled change (issues: the operator's first day, the operators' console):
//! five agents enrolling within a second built seq 1…5, which with an offline signer asks the
//! key holder to sign five times; a node flapping out and back built a version per flap. With a
//! settle window, a burst is one version, a change undone inside the window is none, and a
//! removal still waits no longer than the window.

use std::time::Duration;

use controller::{app::Controller, config::ControllerConfig, keyring::Keyring};
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{
    agent::SimAgent,
    controller::{boot_tree, test_config, test_dns},
};

const ADMIN: &str = "settle-test-admin";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_changes_makes_one_version_and_an_undone_one_none() {
    let dir = tempfile::tempdir().unwrap();
    let mut keyring = Keyring::default();
    keyring.insert("dev", node::crypto::generate_key());
    let config = ControllerConfig {
        dns: test_dns(),
        trees: vec![boot_tree()],
        settle_ms: 2_000,
        ..test_config(dir.path(), ADMIN, None)
    };
    let clock = node::clock::TestClock::new();
    let controller = Controller::start_with_clock(
        config,
        keyring,
        Vec::new(),
        std::sync::Arc::new(clock.clone()),
    )
    .await
    .unwrap();
    let base = format!("http://{}", controller.http_addr());
    let http = reqwest::Client::new();
    let admin = async |method: Method, path: &str, body: Option<Value>| {
        let mut request = http.request(method, format!("{base}{path}")).bearer_auth(ADMIN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json::<Value>().await.unwrap_or(Value::Null))
    };
    let versions = async || {
        let tree = admin(Method::GET, "/api/v1/trees/boot", None).await.1;
        tree["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| (v["seq"].as_u64().unwrap(), v["enrs"].as_array().unwrap().len()))
            .collect::<Vec<_>>()
    };
    let mut agents: Vec<SimAgent> = (0..6).map(|i| SimAgent::new(32_000 + i)).collect();

    // The first version is built at once.
    agents[0].join(&http, &base, ADMIN, 6).await;
    controller.reconcile_now().await.unwrap();
    assert_eq!(versions().await, [(1, 1)]);

    // Five more enrol within the window: nothing yet, then one version with all six.
    for agent in &mut agents[1..] {
        agent.join(&http, &base, ADMIN, 6).await;
        controller.reconcile_now().await.unwrap();
    }
    assert_eq!(versions().await.len(), 1, "still settling");
    clock.advance(Duration::from_millis(2_100));
    controller.reconcile_now().await.unwrap();
    assert_eq!(versions().await[0], (2, 6), "one version for the burst");

    // A node flaps out (maintenance) and back within the window: no version at all.
    let path = format!("/api/v1/nodes/{}/maintenance", agents[3].node_id());
    assert_eq!(admin(Method::PUT, &path, Some(json!({ "reason": "reboot" }))).await.0, 200);
    controller.reconcile_now().await.unwrap();
    clock.advance(Duration::from_millis(1_000));
    assert_eq!(admin(Method::DELETE, &path, None).await.0, 200);
    controller.reconcile_now().await.unwrap();
    clock.advance(Duration::from_millis(2_100));
    controller.reconcile_now().await.unwrap();
    assert_eq!(versions().await[0].0, 2, "a change undone inside the window builds nothing");

    // A removal waits for the window, and no longer.
    assert_eq!(admin(Method::PUT, &path, Some(json!({ "reason": "gone" }))).await.0, 200);
    controller.reconcile_now().await.unwrap();
    assert_eq!(versions().await[0].0, 2);
    clock.advance(Duration::from_millis(2_100));
    controller.reconcile_now().await.unwrap();
    assert_eq!(versions().await[0], (3, 5));
    controller.shutdown().await;
}
