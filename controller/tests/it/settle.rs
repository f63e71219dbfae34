//! One version per settled change (issues: the operator's first day, the operators' console):
//! five agents enrolling within a second built seq 1…5, which with an offline signer asks the
//! key holder to sign five times; a node flapping out and back built a version per flap. With a
//! settle window, a burst is one version, a change undone inside the window is none, and a
//! removal still waits no longer than the window. And no version ever empties a tree: with every
//! node gone the last one stays, and the tree's error says so.

use std::time::Duration;

use controller::{app::Controller, config::ControllerConfig, keyring::Keyring};
use node::clock::TestClock;
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{
    agent::SimAgent,
    controller::{boot_tree, test_config, test_dns},
};

const ADMIN: &str = "settle-test-admin";

/// The operator's API calls.
struct Operator {
    http: reqwest::Client,
    base: String,
}

impl Operator {
    fn of(controller: &Controller) -> Self {
        Self { http: reqwest::Client::new(), base: format!("http://{}", controller.http_addr()) }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request =
            self.http.request(method, format!("{}{path}", self.base)).bearer_auth(ADMIN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json::<Value>().await.unwrap_or(Value::Null))
    }

    async fn tree(&self) -> Value {
        self.call(Method::GET, "/api/v1/trees/boot", None).await.1
    }
}

/// A controller with the boot tree signed online, changes settling for `settle_ms` on `clock`.
async fn start(dir: &std::path::Path, settle_ms: u64, clock: &TestClock) -> Controller {
    let mut keyring = Keyring::default();
    keyring.insert("dev", node::crypto::generate_key());
    let config = ControllerConfig {
        dns: test_dns(),
        trees: vec![boot_tree()],
        settle_ms,
        ..test_config(dir, ADMIN, None)
    };
    Controller::start_with_clock(config, keyring, Vec::new(), std::sync::Arc::new(clock.clone()))
        .await
        .unwrap()
}

/// (seq, records) of every version, newest first.
fn versions(tree: &Value) -> Vec<(u64, usize)> {
    tree["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["seq"].as_u64().unwrap(), v["enrs"].as_array().unwrap().len()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_changes_makes_one_version_and_an_undone_one_none() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::new();
    let controller = start(dir.path(), 2_000, &clock).await;
    let operator = Operator::of(&controller);
    let (http, base) = (&operator.http, &operator.base);
    let versions = async || versions(&operator.tree().await);
    let mut agents: Vec<SimAgent> = (0..6).map(|i| SimAgent::new(32_000 + i)).collect();

    // The first version is built at once.
    agents[0].join(http, base, ADMIN, 6).await;
    controller.reconcile_now().await.unwrap();
    assert_eq!(versions().await, [(1, 1)]);

    // Five more enrol within the window: nothing yet, then one version with all six.
    for agent in &mut agents[1..] {
        agent.join(http, base, ADMIN, 6).await;
        controller.reconcile_now().await.unwrap();
    }
    assert_eq!(versions().await.len(), 1, "still settling");
    clock.advance(Duration::from_millis(2_100));
    controller.reconcile_now().await.unwrap();
    assert_eq!(versions().await[0], (2, 6), "one version for the burst");

    // A node flaps out (maintenance) and back within the window: no version at all.
    let path = format!("/api/v1/nodes/{}/maintenance", agents[3].node_id());
    assert_eq!(operator.call(Method::PUT, &path, Some(json!({ "reason": "reboot" }))).await.0, 200);
    controller.reconcile_now().await.unwrap();
    clock.advance(Duration::from_millis(1_000));
    assert_eq!(operator.call(Method::DELETE, &path, None).await.0, 200);
    controller.reconcile_now().await.unwrap();
    clock.advance(Duration::from_millis(2_100));
    controller.reconcile_now().await.unwrap();
    assert_eq!(versions().await[0].0, 2, "a change undone inside the window builds nothing");

    // A removal waits for the window, and no longer.
    assert_eq!(operator.call(Method::PUT, &path, Some(json!({ "reason": "gone" }))).await.0, 200);
    controller.reconcile_now().await.unwrap();
    assert_eq!(versions().await[0].0, 2);
    clock.advance(Duration::from_millis(2_100));
    controller.reconcile_now().await.unwrap();
    assert_eq!(versions().await[0], (3, 5));
    controller.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_gone_keeps_the_last_version_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let controller = start(dir.path(), 0, &TestClock::new()).await;
    let operator = Operator::of(&controller);
    let (http, base) = (&operator.http, &operator.base);
    let mut agents: Vec<SimAgent> = (0..2).map(|i| SimAgent::new(32_100 + i)).collect();
    for agent in &mut agents {
        agent.join(http, base, ADMIN, 6).await;
    }
    controller.reconcile_now().await.unwrap();
    assert_eq!(versions(&operator.tree().await), [(1, 2)]);

    // One leaves: a version without it, as always.
    let maintenance = |agent: &SimAgent| format!("/api/v1/nodes/{}/maintenance", agent.node_id());
    let down = json!({ "reason": "gone" });
    assert_eq!(
        operator.call(Method::PUT, &maintenance(&agents[0]), Some(down.clone())).await.0,
        200
    );
    controller.reconcile_now().await.unwrap();
    assert_eq!(versions(&operator.tree().await)[0], (2, 1));

    // The last one leaves: no empty version; the one listing it stays, and the error says so.
    assert_eq!(operator.call(Method::PUT, &maintenance(&agents[1]), Some(down)).await.0, 200);
    controller.reconcile_now().await.unwrap();
    controller.reconcile_now().await.unwrap();
    let now = operator.tree().await;
    assert_eq!(versions(&now)[0], (2, 1), "{now}");
    let error = now["tree"]["lastError"].as_str().unwrap_or_default();
    assert!(error.contains("version 2 stays"), "{now}");

    // Back: the error clears, and a version lists it again.
    assert_eq!(operator.call(Method::DELETE, &maintenance(&agents[0]), None).await.0, 200);
    controller.reconcile_now().await.unwrap();
    let now = operator.tree().await;
    assert_eq!(versions(&now)[0], (3, 1), "{now}");
    assert!(now["tree"]["lastError"].is_null(), "{now}");
    controller.shutdown().await;
}
