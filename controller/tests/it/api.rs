//! The controller end to end over real sockets, on SQLite and on a real Postgres (a fresh
//! database per test): enrolment, signed reports and what is refused, health, tree builds,
//! online and offline signing, and the built-in DNS server resolved by the tree client.

use crate::common::{
    self,
    controller::{boot_tree, test_config, test_dns},
};

use common::agent::SimAgent as Agent;
use contract::signing;
use controller::{app::Controller, config::ControllerConfig, keyring::Keyring};
use k256::ecdsa::SigningKey;
use node::{
    dnsdisc::{ClientConfig, HickoryTxtResolver, TreeClient},
    enrtree::{
        LinkEntry,
        request::{DetachedSignature, SignRequest},
    },
};
use reqwest::Method;
use serde_json::{Value, json};

const ADMIN: &str = "test-operator-token";

struct Fixture {
    controller: Controller,
    /// The controller's clock: windows and deadlines are reached by moving it, not by sleeping.
    clock: node::clock::TestClock,
    http: reqwest::Client,
    base: String,
    _dir: tempfile::TempDir,
}

async fn start(database_url: Option<String>) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut keyring = Keyring::default();
    keyring.insert("dev", node::crypto::generate_key());
    keyring.insert("next", node::crypto::generate_key());
    let config = ControllerConfig {
        dns: test_dns(),
        root_ttl: 1,
        ttl: 60,
        trees: vec![boot_tree()],
        ..test_config(dir.path(), ADMIN, database_url.as_deref())
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
    Fixture { controller, clock, http: reqwest::Client::new(), base, _dir: dir }
}

impl Fixture {
    async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request =
            self.http.request(method, format!("{}{path}", self.base)).bearer_auth(ADMIN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn signed(&self, path: &str, key: &SigningKey, body: &[u8]) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header(signing::SIGNATURE_HEADER, signing::sign(key, body))
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn token(&self, roles: &[&str]) -> String {
        common::agent::token(&self.http, &self.base, ADMIN, roles).await
    }

    async fn resolve(&self, url: &str) -> Vec<String> {
        let (enrs, errors) = self.try_resolve(url).await;
        assert_eq!(errors, 0, "resolving {url}");
        enrs
    }

    /// The records and the number of bad or missing entries.
    async fn try_resolve(&self, url: &str) -> (Vec<String>, usize) {
        let url: LinkEntry = url.parse().unwrap();
        let resolver =
            HickoryTxtResolver::with_server(self.controller.dns_addr().unwrap()).unwrap();
        let resolution = TreeClient::new(resolver, ClientConfig::default()).resolve(&url).await;
        let mut enrs: Vec<String> = resolution.records().iter().map(ToString::to_string).collect();
        enrs.sort();
        (enrs, resolution.errors().count())
    }

    async fn tree(&self, name: &str) -> Value {
        self.admin(Method::GET, &format!("/api/v1/trees/{name}"), None).await.1
    }

    async fn node(&self, agent: &Agent) -> Value {
        let path = format!("/api/v1/nodes/{}", agent.record.node_id_hex());
        self.admin(Method::GET, &path, None).await.1["node"].clone()
    }
}

async fn fleet_scenario(fixture: Fixture) {
    let f = &fixture;
    // Operators need the token.
    let response = f.http.get(format!("{}/api/v1/nodes", f.base)).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let response =
        f.http.get(format!("{}/api/v1/nodes", f.base)).bearer_auth("wrong").send().await.unwrap();
    assert_eq!(response.status().as_u16(), 401);

    // Enrolment: signed with the ENR's key, one-time tokens.
    let mut agents: Vec<Agent> = (0..3).map(|i| Agent::new(30_300 + i)).collect();
    for agent in &agents {
        let token = f.token(&["boot"]).await;
        let body = agent.enrolment(&token);
        let stranger = node::crypto::generate_key();
        assert_eq!(f.signed("/api/v1/enrol", &stranger, &body).await.0, 401, "wrong key");
        let (status, answer) = f.signed("/api/v1/enrol", &agent.key, &body).await;
        assert_eq!(status, 201, "{answer}");
        assert_eq!(answer["nodeId"], agent.record.node_id_hex());
        let again = agent.enrolment(&token);
        assert_eq!(f.signed("/api/v1/enrol", &agent.key, &again).await.0, 409, "token reused");
    }
    let unknown = agents[0].enrolment("wft_nosuchtoken");
    assert_eq!(f.signed("/api/v1/enrol", &agents[0].key, &unknown).await.0, 401);

    // Reports: signed, fresh, counters rising; everything else refused and nothing changed.
    for agent in &mut agents {
        let body = agent.report(6);
        let (status, answer) = f.signed("/api/v1/reports", &agent.key, &body).await;
        assert_eq!(status, 202, "{answer}");
        assert_eq!(f.signed("/api/v1/reports", &agent.key, &body).await.0, 409, "replay");
    }
    let unsigned = f
        .http
        .post(format!("{}/api/v1/reports", f.base))
        .body(agents[0].report(6))
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status().as_u16(), 401);
    let mut stale: Value = serde_json::from_slice(&agents[0].report(6)).unwrap();
    stale["sentAt"] = json!(node::clock::now_ms() - 3_600_000);
    stale["measuredAt"] = stale["sentAt"].clone();
    let stale = stale.to_string().into_bytes();
    assert_eq!(f.signed("/api/v1/reports", &agents[0].key, &stale).await.0, 401, "stale");
    let stranger = node::crypto::generate_key();
    let (status, _) = f.signed("/api/v1/reports", &stranger, &agents[0].report(6)).await;
    assert_eq!(status, 401, "signed by another key");
    let (status, answer) = f.signed("/api/v1/reports", &agents[0].key, b"{\"version\":1,").await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("invalid JSON"), "{answer}");
    let oversized = vec![b' '; 300 * 1024];
    assert_eq!(f.signed("/api/v1/reports", &agents[0].key, &oversized).await.0, 413);
    let mut lonely = Agent::new(1);
    let body = lonely.report(6);
    // Not enrolled: the same 401 as a wrong key, so nobody learns which ids are enrolled.
    assert_eq!(f.signed("/api/v1/reports", &lonely.key, &body).await.0, 401);
    assert_eq!(f.node(&agents[0]).await["lastCounter"], 1, "refused reports changed nothing");

    // Health and the online-signed tree, served by the built-in DNS server.
    f.controller.reconcile_now().await.unwrap();
    let (_, nodes) = f.admin(Method::GET, "/api/v1/nodes", None).await;
    let states: Vec<&str> =
        nodes["nodes"].as_array().unwrap().iter().map(|n| n["health"].as_str().unwrap()).collect();
    assert_eq!(states, ["passing"; 3]);
    let tree = f.tree("boot").await;
    assert_eq!(tree["versions"][0]["state"], "published", "{tree}");
    let url = tree["url"].as_str().unwrap().to_owned();
    // Reports wake the loop too, so earlier versions may exist; only the order is fixed.
    let first_seq = tree["versions"][0]["seq"].as_u64().unwrap();
    let mut expected: Vec<String> = agents.iter().map(|a| a.record.to_string()).collect();
    expected.sort();
    assert_eq!(f.resolve(&url).await, expected);

    // A node loses its relay peers: critical, and the next version leaves it out.
    let body = agents[2].report(0);
    assert_eq!(f.signed("/api/v1/reports", &agents[2].key, &body).await.0, 202);
    f.controller.reconcile_now().await.unwrap();
    let node = f.node(&agents[2]).await;
    assert_eq!(node["health"], "critical");
    assert_eq!(node["healthReason"], "no relay peers");
    let tree = f.tree("boot").await;
    assert!(tree["versions"][0]["seq"].as_u64().unwrap() > first_seq, "{tree}");
    assert_eq!(tree["versions"][0]["state"], "published");
    assert_eq!(tree["versions"][1]["state"], "superseded");
    let listed = f.resolve(&url).await;
    assert_eq!(listed.len(), 2);
    assert!(!listed.contains(&agents[2].record.to_string()));

    // Offline signing: pending until a key holder signs exactly this version.
    let definition = json!({ "domain": "relay.fleet.test", "signer": "offline", "policy": { "services": ["relay"] } });
    let (status, answer) = f.admin(Method::PUT, "/api/v1/trees/relay", Some(definition)).await;
    assert_eq!(status, 201, "{answer}");
    f.controller.reconcile_now().await.unwrap();
    let (status, request) = f.admin(Method::GET, "/api/v1/trees/relay/sign-request", None).await;
    assert_eq!(status, 200, "{request}");
    let request: SignRequest = serde_json::from_value(request).unwrap();
    let tree = request.verify().unwrap();
    assert_eq!(tree.records().len(), 2);
    let holder = node::crypto::generate_key();
    let upload = |signature: &DetachedSignature| {
        let body = serde_json::to_value(signature).unwrap();
        f.admin(Method::POST, "/api/v1/trees/relay/signature", Some(body))
    };
    let for_boot = DetachedSignature::sign(&tree, "boot.fleet.test", &holder);
    assert_eq!(upload(&for_boot).await.0, 409, "a signature for another tree");
    let mut tampered = DetachedSignature::sign(&tree, "relay.fleet.test", &holder);
    tampered.root_content = tampered.root_content.replace("seq=1", "seq=9");
    assert_eq!(upload(&tampered).await.0, 400, "does not verify");
    let signature = DetachedSignature::sign(&tree, "relay.fleet.test", &holder);
    let (status, answer) = upload(&signature).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(upload(&signature).await.0, 409, "nothing pending any more");
    f.controller.reconcile_now().await.unwrap();
    let relay_url = answer["url"].as_str().unwrap().to_owned();
    assert_eq!(f.resolve(&relay_url).await.len(), 2);

    // Bad tree definitions change nothing.
    let outside = json!({ "domain": "x.elsewhere.org", "signer": "offline" });
    assert_eq!(f.admin(Method::PUT, "/api/v1/trees/x", Some(outside)).await.0, 400);
    let too_big =
        json!({ "domain": "x.fleet.test", "signer": "offline", "policy": { "maxEntries": 500 } });
    assert_eq!(f.admin(Method::PUT, "/api/v1/trees/x", Some(too_big)).await.0, 422);
    let taken = json!({ "domain": "relay.fleet.test", "signer": "offline" });
    assert_eq!(f.admin(Method::PUT, "/api/v1/trees/x", Some(taken)).await.0, 409);
    let unknown_key = json!({ "domain": "x.fleet.test", "signer": "key:nope" });
    assert_eq!(f.admin(Method::PUT, "/api/v1/trees/x", Some(unknown_key)).await.0, 400);
    assert_eq!(f.admin(Method::GET, "/api/v1/trees/x", None).await.0, 404);

    // Desired configuration: numbered by the controller, handed out with report answers.
    let path = format!("/api/v1/nodes/{}/config", agents[0].record.node_id_hex());
    let want = json!({ "shards": [0, 1], "maxConnections": 40 });
    let (status, answer) = f.admin(Method::PUT, &path, Some(want)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["desired"]["version"], 1);
    let (status, answer) = f.admin(Method::PUT, &path, Some(json!({ "shards": [] }))).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(f.admin(Method::PUT, &path, Some(json!({ "shard": [1] }))).await.0, 400);
    let nobody = "/api/v1/nodes/00ff/config";
    assert_eq!(f.admin(Method::PUT, nobody, Some(json!({ "shards": [1] }))).await.0, 404);
    let (status, answer) = f.admin(Method::PUT, &path, Some(json!({ "shards": [2] }))).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["desired"]["version"], 2, "refused requests used no version");
    let body = agents[0].report(6);
    let (status, answer) = f.signed("/api/v1/reports", &agents[0].key, &body).await;
    assert_eq!(status, 202);
    assert_eq!(
        answer["desired"],
        json!({ "version": 2, "roles": null, "shards": [2], "maxConnections": null })
    );
    let body = agents[1].report(6);
    let (_, answer) = f.signed("/api/v1/reports", &agents[1].key, &body).await;
    assert!(answer.get("desired").is_none(), "{answer}");

    // Maintenance: the node leaves the tree while still passing, and comes back after it.
    let maintenance = format!("/api/v1/nodes/{}/maintenance", agents[0].record.node_id_hex());
    for bad in [json!({ "why": "upgrade" }), json!({ "reason": "  " })] {
        assert_eq!(f.admin(Method::PUT, &maintenance, Some(bad)).await.0, 400);
    }
    let upgrade = json!({ "reason": "upgrading to v0.37" });
    let nobody = "/api/v1/nodes/00ff/maintenance";
    assert_eq!(f.admin(Method::PUT, nobody, Some(upgrade.clone())).await.0, 404);
    let (status, answer) = f.admin(Method::PUT, &maintenance, Some(upgrade)).await;
    assert_eq!(status, 200, "{answer}");
    f.controller.reconcile_now().await.unwrap();
    let node = f.node(&agents[0]).await;
    assert_eq!(node["health"], "passing", "{node}");
    assert_eq!(node["maintenance"]["reason"], "upgrading to v0.37", "{node}");
    assert_eq!(node["maintenance"]["by"], "person:admin", "{node}");
    assert_eq!(f.resolve(&url).await, [agents[1].record.to_string()], "out of the tree");
    let metrics = f.http.get(format!("{}/metrics", f.base)).send().await.unwrap();
    let in_maintenance = format!(
        "wakufleet_node_maintenance{{label=\"test\",node_id=\"{}\"}} 1",
        agents[0].record.node_id_hex()
    );
    assert!(metrics.text().await.unwrap().contains(&in_maintenance));
    let (status, answer) = f.admin(Method::DELETE, &maintenance, None).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(f.admin(Method::DELETE, nobody, None).await.0, 404);
    f.controller.reconcile_now().await.unwrap();
    assert!(f.node(&agents[0]).await["maintenance"].is_null());
    let mut back = vec![agents[0].record.to_string(), agents[1].record.to_string()];
    back.sort();
    assert_eq!(f.resolve(&url).await, back, "listed again");
    // The offline-signed relay tree lost and regained the node before its key holder signed:
    // nothing is left for them to sign, and clients keep the version they have.
    let relay = f.tree("relay").await;
    assert_eq!(relay["versions"][0]["state"], "abandoned", "{relay}");
    assert_eq!(relay["versions"][1]["state"], "published", "{relay}");

    // The audit log tells who did what.
    let (_, audit) = f.admin(Method::GET, "/api/v1/audit", None).await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for action in [
        "tree.create",
        "token.create",
        "node.enrol",
        "tree.build",
        "tree.publish",
        "tree.sign",
        "node.config",
        "node.maintenance.start",
        "node.maintenance.end",
        "tree.abandon",
    ] {
        assert!(actions.contains(&action), "{action} missing from {actions:?}");
    }
    let openapi: Value =
        f.http.get(format!("{}/openapi.json", f.base)).send().await.unwrap().json().await.unwrap();
    assert!(openapi["paths"]["/api/v1/reports"]["post"].is_object());

    // Prometheus: the fleet's state and this instance's counters, accepted by promtool.
    let metrics = f.http.get(format!("{}/metrics", f.base)).send().await.unwrap();
    assert_eq!(metrics.status().as_u16(), 200);
    let metrics = metrics.text().await.unwrap();
    let value = |series: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{series} missing from\n{metrics}"))
    };
    assert_eq!(value("wakufleet_nodes{health=\"passing\"}"), 2.0);
    assert_eq!(value("wakufleet_nodes{health=\"critical\"}"), 1.0);
    assert_eq!(value("wakufleet_shard_passing_nodes{cluster=\"1\",shard=\"0\"}"), 2.0);
    let boot = f.tree("boot").await;
    assert_eq!(
        value("wakufleet_tree_published_seq{tree=\"boot\"}"),
        boot["versions"][0]["seq"].as_f64().unwrap()
    );
    assert_eq!(value("wakufleet_tree_published_records{tree=\"boot\"}"), 2.0);
    assert_eq!(value("wakufleet_tree_awaiting_signature{tree=\"relay\"}"), 0.0);
    assert_eq!(value("wakufleet_publisher_lease_held"), 1.0);
    // The DNS server's rate limit: loopback clients are not limited.
    assert_eq!(value("wakufleet_dns_responses_limited_total{action=\"slip\"}"), 0.0);
    assert_eq!(value("wakufleet_dns_responses_limited_total{action=\"drop\"}"), 0.0);
    // Three replays were refused above, and one oversized body.
    assert_eq!(
        value("wakufleet_api_requests_total{route=\"/api/v1/reports\",status=\"409\"}"),
        3.0
    );
    assert_eq!(
        value("wakufleet_api_requests_total{route=\"/api/v1/reports\",status=\"413\"}"),
        1.0
    );
    assert!(value("wakufleet_reconcile_passes_total{result=\"ok\"}") >= 1.0);
    let mut promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool is needed; `bash tests/run.sh` installs it");
    std::io::Write::write_all(&mut promtool.stdin.take().unwrap(), metrics.as_bytes()).unwrap();
    let checked = promtool.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    fixture.controller.shutdown().await;
}

/// Key rotation: clients hold the URL of a links-only entry tree; the tree it links to moves
/// to a new key (a new tree), the link is switched, the old tree stays served for its overlap
/// window and is then removed.
async fn key_rotation_scenario(fixture: Fixture) {
    let f = &fixture;
    let mut agents: Vec<Agent> = (0..3).map(|i| Agent::new(32_000 + i)).collect();
    for agent in &mut agents {
        let token = f.token(&["boot"]).await;
        assert_eq!(f.signed("/api/v1/enrol", &agent.key, &agent.enrolment(&token)).await.0, 201);
        let body = agent.report(6);
        assert_eq!(f.signed("/api/v1/reports", &agent.key, &body).await.0, 202);
    }
    let all = {
        let mut enrs: Vec<String> = agents.iter().map(|a| a.record.to_string()).collect();
        enrs.sort();
        enrs
    };
    let entry = |target: &str| {
        json!({ "domain": "fleet.test", "signer": "key:dev",
                "policy": { "listNodes": false, "links": [format!("tree:{target}")] } })
    };
    let bad_entry =
        json!({ "domain": "e.fleet.test", "signer": "key:dev", "policy": { "listNodes": false } });
    assert_eq!(f.admin(Method::PUT, "/api/v1/trees/e", Some(bad_entry)).await.0, 422);
    f.controller.reconcile_now().await.unwrap();
    assert_eq!(f.admin(Method::PUT, "/api/v1/trees/entry", Some(entry("boot"))).await.0, 201);
    f.controller.reconcile_now().await.unwrap();
    let entry_url = f.tree("entry").await["url"].as_str().unwrap().to_owned();
    let old_url = f.tree("boot").await["url"].as_str().unwrap().to_owned();
    assert_eq!(f.resolve(&entry_url).await, all, "the entry tree leads to the nodes");

    // The key of a published tree cannot change in place: its URL would.
    let rekey = json!({ "domain": "boot.fleet.test", "signer": "key:next", "policy": { "roles": ["boot"] } });
    let (status, answer) = f.admin(Method::PUT, "/api/v1/trees/boot", Some(rekey)).await;
    assert_eq!(status, 409, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("new tree"), "{answer}");

    // The new tree under the new key, published beside the old one.
    let next = json!({ "domain": "boot2.fleet.test", "signer": "key:next", "policy": { "roles": ["boot"] } });
    assert_eq!(f.admin(Method::PUT, "/api/v1/trees/boot2", Some(next)).await.0, 201);
    // Its URL is known as soon as it is defined (the online key is), before any build.
    let defined_url = f.tree("boot2").await["url"].as_str().unwrap().to_owned();
    f.controller.reconcile_now().await.unwrap();
    let new_url = f.tree("boot2").await["url"].as_str().unwrap().to_owned();
    assert_eq!(defined_url, new_url);
    assert_ne!(new_url.split('@').next(), old_url.split('@').next(), "another key");
    assert_eq!(f.resolve(&new_url).await, all);

    // The old tree cannot go while the entry tree links to it.
    let retire = json!({ "overlapSecs": 2 });
    let (status, answer) =
        f.admin(Method::POST, "/api/v1/trees/boot/retire", Some(retire.clone())).await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(f.admin(Method::PUT, "/api/v1/trees/entry", Some(entry("boot2"))).await.0, 200);
    f.controller.reconcile_now().await.unwrap();
    assert_eq!(f.resolve(&entry_url).await, all, "the entry tree now leads through boot2");
    let bad = json!({ "overlapSecs": "soon" });
    assert_eq!(f.admin(Method::POST, "/api/v1/trees/boot/retire", Some(bad)).await.0, 400);
    let (status, answer) = f.admin(Method::POST, "/api/v1/trees/boot/retire", Some(retire)).await;
    assert_eq!(status, 200, "{answer}");
    let retire_at = answer["retireAt"].as_i64().unwrap();

    // During the overlap window clients holding the old URL still get the whole tree.
    f.controller.reconcile_now().await.unwrap();
    assert_eq!(f.resolve(&old_url).await, all, "old URL still served in the window");
    let change = json!({ "domain": "boot.fleet.test", "signer": "key:dev", "policy": { "roles": ["boot"], "maxEntries": 2 } });
    assert_eq!(f.admin(Method::PUT, "/api/v1/trees/boot", Some(change)).await.0, 409);

    // After it, the old tree is gone (root first) and nothing else changed.
    let wait = retire_at - node::clock::now_ms() + 100;
    f.clock.advance(std::time::Duration::from_millis(wait.max(0) as u64));
    f.controller.reconcile_now().await.unwrap();
    let (enrs, errors) = f.try_resolve(&old_url).await;
    assert!(enrs.is_empty() && errors > 0, "the old tree must be gone: {enrs:?}");
    assert_eq!(f.resolve(&entry_url).await, all);
    assert_eq!(f.resolve(&new_url).await, all);
    let boot = f.tree("boot").await;
    // Abandoned: signed, then overtaken by a newer version before it was published.
    let states = boot["versions"].as_array().unwrap().iter().map(|v| v["state"].as_str());
    assert!(states.into_iter().all(|s| matches!(s, Some("retired" | "abandoned"))), "{boot}");
    let (status, _) = f.admin(Method::DELETE, "/api/v1/trees/boot/retire", None).await;
    assert_eq!(status, 409, "too late to cancel");
    let (_, audit) = f.admin(Method::GET, "/api/v1/audit", None).await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"tree.retire") && actions.contains(&"tree.remove"), "{actions:?}");

    // Defined again, it is published anew under its old key, with a higher seq.
    let last_seq = boot["versions"][0]["seq"].as_u64().unwrap();
    let again = json!({ "domain": "boot.fleet.test", "signer": "key:dev", "policy": { "roles": ["boot"] } });
    assert_eq!(f.admin(Method::PUT, "/api/v1/trees/boot", Some(again)).await.0, 200);
    f.controller.reconcile_now().await.unwrap();
    assert_eq!(f.resolve(&old_url).await, all);
    assert!(f.tree("boot").await["versions"][0]["seq"].as_u64().unwrap() > last_seq);
    fixture.controller.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_on_sqlite() {
    key_rotation_scenario(start(None).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_on_postgres() {
    let database = node::sql::TestDatabase::create().await.unwrap();
    key_rotation_scenario(start(Some(database.url().to_owned())).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_on_sqlite() {
    fleet_scenario(start(None).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_on_postgres() {
    let database = node::sql::TestDatabase::create().await.unwrap();
    fleet_scenario(start(Some(database.url().to_owned())).await).await;
}

/// Each report's answer names other fleet nodes and the fleet's peer ids; an agent that echoes
/// the hint's version gets no hint until the fleet changes (at a thousand nodes the peer ids
/// alone are tens of kilobytes per answer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_hint_is_sent_again_only_when_it_changed() {
    let f = start(None).await;
    let mut alpha = Agent::new(30401);
    let mut beta = Agent::new(30402);
    alpha.join(&f.http, &f.base, ADMIN, 8).await;
    beta.join(&f.http, &f.base, ADMIN, 8).await;
    let report = async |agent: &mut Agent| {
        let body = agent.report(8);
        let (status, answer) = agent.post(&f.http, &f.base, "/api/v1/reports", &body).await;
        assert_eq!(status, 202, "{answer}");
        answer
    };
    // The enrolments woke a reconcile pass; its snapshot names beta to alpha.
    let mut hint = Value::Null;
    for _ in 0..100 {
        hint = report(&mut alpha).await["fleet"].clone();
        if hint["records"].as_array().is_some_and(|r| !r.is_empty()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(hint["records"], json!([beta.record.to_string()]), "{hint}");
    assert_eq!(hint["peerIds"].as_array().unwrap().len(), 1);
    let version = hint["version"].as_str().unwrap().to_owned();
    assert_eq!(version.len(), 32);
    // Echoed: no hint in the answer.
    alpha.fleet_version = Some(version.clone());
    let answer = report(&mut alpha).await;
    assert!(answer.get("fleet").is_none(), "{answer}");
    // An old version (a restarted node's agent sends none): the hint again.
    alpha.fleet_version = Some("0".repeat(32));
    assert_eq!(report(&mut alpha).await["fleet"]["version"], json!(version));
    // The fleet changes (beta leaves for maintenance): a new hint, without beta's record.
    alpha.fleet_version = Some(version.clone());
    let (status, body) = f
        .admin(
            Method::PUT,
            &format!("/api/v1/nodes/{}/maintenance", beta.node_id()),
            Some(json!({ "reason": "test" })),
        )
        .await;
    assert!(status < 300, "{status} {body}");
    let mut changed = Value::Null;
    for _ in 0..100 {
        changed = report(&mut alpha).await["fleet"].clone();
        if !changed.is_null() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_ne!(changed["version"], json!(version), "{changed}");
    assert_eq!(changed["records"], json!([]), "{changed}");
}

/// Shard coverage over time: at most one sample a minute, a week kept, on both backends.
#[tokio::test]
async fn shard_samples_are_taken_once_a_minute_and_pruned_on_both_backends() {
    use controller::db::nodes::ShardSample;
    let dir = tempfile::tempdir().unwrap();
    let database = node::sql::TestDatabase::create().await.unwrap();
    let sample = |shard, passing| ShardSample { cluster_id: Some(1), shard, passing };
    for url in
        [format!("sqlite://{}", dir.path().join("s.db").display()), database.url().to_owned()]
    {
        let db = controller::db::Db::connect(&url).await.unwrap();
        let (minute, week) = (60_000, 7 * 86_400_000);
        let t0 = 1_800_000_000_000;
        assert!(db.sample_shards(t0, &[sample(0, 2), sample(1, 0)], minute, week).await.unwrap());
        assert!(!db.sample_shards(t0 + 59_999, &[sample(0, 9)], minute, week).await.unwrap());
        assert!(db.sample_shards(t0 + minute, &[sample(0, 3)], minute, week).await.unwrap());
        let kept = db.shard_samples(0).await.unwrap();
        assert_eq!(
            kept,
            vec![(t0, sample(0, 2)), (t0, sample(1, 0)), (t0 + minute, sample(0, 3))],
            "{url}"
        );
        // A week on, the first two samples are gone.
        assert!(db.sample_shards(t0 + week + 1, &[sample(0, 1)], minute, week).await.unwrap());
        let kept: Vec<i64> = db.shard_samples(0).await.unwrap().iter().map(|s| s.0).collect();
        assert_eq!(kept, vec![t0 + minute, t0 + week + 1], "{url}");
        assert_eq!(db.shard_samples(t0 + week).await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn the_audit_log_is_append_only_on_both_backends() {
    let dir = tempfile::tempdir().unwrap();
    let database = node::sql::TestDatabase::create().await.unwrap();
    for url in
        [format!("sqlite://{}", dir.path().join("a.db").display()), database.url().to_owned()]
    {
        let db = controller::db::Db::connect(&url).await.unwrap();
        db.audit("person:admin", "token.create", "x", json!({})).await.unwrap();
        let (pool, _) = node::sql::connect(&url, 1).await.unwrap();
        let update = sqlx::query("UPDATE audit_log SET actor = 'someone else'");
        assert!(update.execute(&pool).await.is_err(), "{url}");
        assert!(sqlx::query("DELETE FROM audit_log").execute(&pool).await.is_err(), "{url}");
        assert_eq!(db.audit_entries(0, 10).await.unwrap().len(), 1);
    }
}

/// A node on another cluster than the tree its roles put it in (a preset left on the old
/// cluster) is a warning with the reason, and the metric the alert rule reads says so; once
/// the tree and the node agree again it passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_on_another_cluster_than_its_tree_is_config_drift() {
    let f = start(None).await;
    let mut agent = Agent::new(30_400);
    agent.join(&f.http, &f.base, ADMIN, 6).await; // role boot (its token), reports cluster 1
    let define = |cluster: u16| {
        json!({
            "domain": "relay.fleet.test",
            "signer": "key:dev",
            "policy": { "roles": ["boot"], "clusterId": cluster },
        })
    };
    let (status, answer) = f.admin(Method::PUT, "/api/v1/trees/relay", Some(define(3))).await;
    assert!(status == 200 || status == 201, "{status}: {answer}");
    f.controller.reconcile_now().await.unwrap();
    let node = f.node(&agent).await;
    assert_eq!(node["health"], "warning", "{node}");
    assert_eq!(
        node["healthReason"],
        "config drift: cluster 1, but tree relay lists its roles on cluster 3",
        "{node}"
    );
    let drift_line = |metrics: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with("wakufleet_node_config_drift{") && l.contains(&agent.node_id()))
            .map(|l| l.rsplit(' ').next().unwrap().to_owned())
    };
    let metrics = f.http.get(format!("{}/metrics", f.base)).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    assert_eq!(drift_line(&metrics).as_deref(), Some("1"), "{metrics}");

    // The tree corrected (or the node moved): passing, metric 0.
    let (status, answer) = f.admin(Method::PUT, "/api/v1/trees/relay", Some(define(1))).await;
    assert!(status == 200 || status == 201, "{status}: {answer}");
    f.controller.reconcile_now().await.unwrap();
    assert_eq!(f.node(&agent).await["health"], "passing");
    let metrics = f.http.get(format!("{}/metrics", f.base)).send().await.unwrap();
    assert_eq!(drift_line(&metrics.text().await.unwrap()).as_deref(), Some("0"));
}

/// `GET /fleets.json` (public, as fleets.status.im): the published tree's nodes by host, with
/// their ENR, TCP and WSS multiaddrs, under the `/boot` forms for boot nodes; a node that left
/// the tree leaves the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleets_json_lists_the_published_nodes_as_fleets_status_im_does() {
    use node::waku_enr::{Capabilities, WakuEnrConfig, build_enr};
    let f = start(None).await;
    let key = node::crypto::generate_key();
    let wss: libp2p::Multiaddr = "/ip4/127.0.0.1/tcp/443/wss".parse().unwrap();
    let config = WakuEnrConfig {
        seq: 1,
        ip: Some(std::net::Ipv4Addr::LOCALHOST),
        tcp: Some(30_500),
        udp: Some(30_500),
        capabilities: Capabilities::RELAY,
        multiaddrs: vec![wss],
        shards: None,
    };
    let record: node::enrtree::NodeRecord =
        build_enr(&key, &config).unwrap().to_base64().parse().unwrap();
    let mut with_wss = Agent::with(key, record.clone());
    with_wss.join(&f.http, &f.base, ADMIN, 6).await;
    let mut plain = Agent::new(30_501);
    plain.join(&f.http, &f.base, ADMIN, 6).await;
    f.controller.reconcile_now().await.unwrap();

    let get = async || {
        let response = f.http.get(format!("{}/fleets.json", f.base)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200, "public, no token");
        response.json::<Value>().await.unwrap()
    };
    let file = get().await;
    let boot = &file["fleets"]["boot"];
    let enrs = boot["enr/p2p/waku"].as_object().unwrap();
    assert_eq!(enrs.len(), 2, "{file}");
    let (host, _) = enrs.iter().find(|(_, e)| **e == record.to_string()).expect("its ENR");
    let peer = node::waku_enr::WakuEnr::decode(record.enr()).unwrap().peer_id;
    assert_eq!(boot["tcp/p2p/waku"][host], format!("/ip4/127.0.0.1/tcp/30500/p2p/{peer}"));
    assert_eq!(boot["wss/p2p/waku"][host], format!("/ip4/127.0.0.1/tcp/443/wss/p2p/{peer}"));
    assert_eq!(boot["wss/p2p/waku"].as_object().unwrap().len(), 1, "only one announces WSS");
    // Both report the boot role: the /boot forms list them; none is a store node.
    assert_eq!(boot["enr/p2p/waku/boot"], boot["enr/p2p/waku"]);
    assert_eq!(boot["tcp/p2p/waku/boot"], boot["tcp/p2p/waku"]);
    assert!(boot.get("tcp/p2p/waku/store").is_none(), "{file}");
    assert!(file["meta"]["timestamp"].as_str().unwrap().ends_with('Z'), "{file}");
    assert!(file["meta"]["hostname"].is_string());

    // A node gone critical leaves the next version, and the file.
    plain.send_report(&f.http, &f.base, 0).await;
    f.controller.reconcile_now().await.unwrap();
    let file = get().await;
    let enrs = file["fleets"]["boot"]["enr/p2p/waku"].as_object().unwrap();
    assert_eq!(enrs.values().collect::<Vec<_>>(), [&json!(record.to_string())], "{file}");
}
