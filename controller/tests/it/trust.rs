//! The trust boundary, attacked as an enrolled agent's key holder would (issue: "a hostile or
//! broken agent cannot hurt a tree"): roles it grants itself, shards and clusters beyond its
//! token, reports from the future, labels it picks. Each was accepted before; each is refused
//! or ignored now, and the operator's way (the token, the membership API) works.

use controller::{app::Controller, config::ControllerConfig, keyring::Keyring};
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{
    agent::SimAgent,
    controller::{boot_tree, test_config, test_dns},
};

const ADMIN: &str = "trust-test-admin";

struct Fixture {
    controller: Controller,
    http: reqwest::Client,
    base: String,
    _dir: tempfile::TempDir,
}

async fn start() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut keyring = Keyring::default();
    keyring.insert("dev", node::crypto::generate_key());
    let config = ControllerConfig {
        dns: test_dns(),
        trees: vec![boot_tree()],
        ..test_config(dir.path(), ADMIN, None)
    };
    let controller = Controller::start(config, keyring, Vec::new()).await.unwrap();
    let base = format!("http://{}", controller.http_addr());
    Fixture { controller, http: reqwest::Client::new(), base, _dir: dir }
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

    /// Enrols `agent` with a token made from `body` (label, roles, ceiling).
    async fn enrol(&self, agent: &SimAgent, body: Value) {
        let (status, answer) = self.admin(Method::POST, "/api/v1/tokens", Some(body)).await;
        assert_eq!(status, 201, "{answer}");
        let token = answer["token"].as_str().unwrap();
        let mut enrolment: Value = serde_json::from_slice(&agent.enrolment(token)).unwrap();
        enrolment["label"] = json!("boot-01.ams3 (really)"); // the agent's pick
        let body = enrolment.to_string().into_bytes();
        let (status, answer) = agent.post(&self.http, &self.base, "/api/v1/enrol", &body).await;
        assert_eq!(status, 201, "{answer}");
    }

    /// POSTs a report built by `edit` from the agent's next one.
    async fn report(&self, agent: &mut SimAgent, edit: impl FnOnce(&mut Value)) -> (u16, Value) {
        let mut report: Value = serde_json::from_slice(&agent.report(6)).unwrap();
        edit(&mut report);
        let body = report.to_string().into_bytes();
        agent.post(&self.http, &self.base, "/api/v1/reports", &body).await
    }

    async fn node(&self, agent: &SimAgent) -> Value {
        let path = format!("/api/v1/nodes/{}", agent.node_id());
        self.admin(Method::GET, &path, None).await.1["node"].clone()
    }

    /// Node ids the boot tree's newest version lists.
    async fn boot_tree_ids(&self) -> Vec<String> {
        let tree = self.admin(Method::GET, "/api/v1/trees/boot", None).await.1;
        tree["versions"][0]["enrs"]
            .as_array()
            .map(|enrs| {
                enrs.iter()
                    .map(|e| {
                        e.as_str()
                            .unwrap()
                            .parse::<node::enrtree::NodeRecord>()
                            .unwrap()
                            .node_id_hex()
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_cannot_grant_roles_and_the_tokens_roles_survive_reports() {
    let f = start().await;
    // An agent whose token gave it no role claims boot (and relay) in its reports.
    let mut sneaky = SimAgent::new(31_000);
    f.enrol(&sneaky, json!({ "label": "sneaky" })).await;
    // (As the agents before this change wrote it: a `roles` list.)
    let claim = |r: &mut Value| {
        r.as_object_mut().unwrap().remove("services");
        r["roles"] = json!(["relay", "boot"]);
    };
    let (status, answer) = f.report(&mut sneaky, claim).await;
    assert_eq!(status, 202, "{answer}");
    // An honest one with a boot token: its role stays boot after reporting its services.
    let mut honest = SimAgent::new(31_001);
    f.enrol(&honest, json!({ "label": "boot-1", "roles": ["boot"] })).await;
    assert_eq!(f.report(&mut honest, |_| {}).await.0, 202);
    f.controller.reconcile_now().await.unwrap();

    let node = f.node(&sneaky).await;
    assert_eq!(node["roles"], json!([]), "{node}");
    assert_eq!(node["services"], json!(["relay"]), "boot is no service: {node}");
    let node = f.node(&honest).await;
    assert_eq!(node["roles"], json!(["boot"]), "{node}");
    assert_eq!(node["label"], "boot-1", "the token's label, not the agent's pick: {node}");
    assert_eq!(f.boot_tree_ids().await, [honest.node_id()], "only the operator's boot node");

    // The operator gives the other node the role: it joins the tree; audited under the admin.
    let path = format!("/api/v1/nodes/{}/membership", sneaky.node_id());
    let (status, answer) =
        f.admin(Method::PUT, &path, Some(json!({ "roles": ["boot"], "label": "boot-2" }))).await;
    assert_eq!(status, 200, "{answer}");
    f.controller.reconcile_now().await.unwrap();
    let mut listed = f.boot_tree_ids().await;
    listed.sort();
    let mut both = vec![honest.node_id(), sneaky.node_id()];
    both.sort();
    assert_eq!(listed, both);
    assert_eq!(f.node(&sneaky).await["label"], "boot-2");
    let audit = f.admin(Method::GET, "/api/v1/audit", None).await.1;
    assert!(
        audit["entries"].as_array().unwrap().iter().any(|e| e["action"] == "node.membership"),
        "{audit}"
    );

    // Unknown role names are refused where operators write them.
    let (status, answer) = f
        .admin(Method::POST, "/api/v1/tokens", Some(json!({ "label": "x", "roles": ["admin"] })))
        .await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("unknown role \"admin\""), "{answer}");
    let (status, _) = f.admin(Method::PUT, &path, Some(json!({ "roles": ["root"] }))).await;
    assert_eq!(status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_and_cluster_beyond_the_token_are_refused_and_audited() {
    let f = start().await;
    let mut agent = SimAgent::new(31_010);
    let body = json!({ "label": "b", "roles": ["boot"], "shards": [0, 1], "clusterId": 1 });
    f.enrol(&agent, body).await;
    // Less than the ceiling is fine: what runs.
    assert_eq!(f.report(&mut agent, |r| r["shards"] = json!([0])).await.0, 202);
    let (status, answer) = f.report(&mut agent, |r| r["shards"] = json!([0, 5])).await;
    assert_eq!(status, 403, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("[5]"), "{answer}");
    let (status, answer) = f.report(&mut agent, |r| r["clusterId"] = json!(2)).await;
    assert_eq!(status, 403, "{answer}");
    // Nothing of the refused reports was kept; the refusals are in the audit log.
    let node = f.node(&agent).await;
    assert_eq!((node["shards"].clone(), node["clusterId"].clone()), (json!([0]), json!(1)));
    assert_eq!(node["lastCounter"], 1, "{node}");
    let audit = f.admin(Method::GET, "/api/v1/audit", None).await.1;
    let refused =
        audit["entries"].as_array().unwrap().iter().filter(|e| e["action"] == "report.refused");
    assert_eq!(refused.count(), 2, "{audit}");
    // A ceiling that allows nothing is refused when the token is made.
    let (status, _) =
        f.admin(Method::POST, "/api/v1/tokens", Some(json!({ "label": "x", "shards": [] }))).await;
    assert_eq!(status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_from_the_future_are_refused() {
    let f = start().await;
    let mut agent = SimAgent::new(31_020);
    f.enrol(&agent, json!({ "label": "b", "roles": ["boot"] })).await;
    let ahead = node::clock::now_ms() + 291_000;
    let (status, answer) = f
        .report(&mut agent, |r| {
            r["sentAt"] = json!(ahead);
            r["measuredAt"] = json!(ahead);
        })
        .await;
    assert_eq!(status, 401, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("ahead"), "{answer}");
    // A few seconds ahead (ordinary clock drift) is accepted.
    let near = node::clock::now_ms() + 3_000;
    let (status, answer) = f
        .report(&mut agent, |r| {
            r["sentAt"] = json!(near);
            r["measuredAt"] = json!(near);
        })
        .await;
    assert_eq!(status, 202, "{answer}");
}

/// A record for `agent`'s key at `seq`, padded with a WebSocket address until its text is at
/// least `min_chars` long.
fn padded_record(
    agent: &SimAgent,
    seq: u64,
    port: u16,
    min_chars: usize,
) -> node::enrtree::NodeRecord {
    use node::waku_enr::{WakuEnrConfig, build_enr};
    for n in 1..300 {
        let address: libp2p::Multiaddr =
            format!("/dns4/{}.example/tcp/443/wss", "a".repeat(n)).parse().unwrap();
        let config = WakuEnrConfig {
            seq,
            ip: Some(std::net::Ipv4Addr::LOCALHOST),
            tcp: Some(port),
            udp: Some(port),
            multiaddrs: vec![address],
            ..WakuEnrConfig::default()
        };
        let Ok(enr) = build_enr(&agent.key, &config) else { break };
        let text = enr.to_base64();
        if text.len() >= min_chars {
            return text.parse().unwrap();
        }
    }
    panic!("no record of {min_chars} characters within EIP-778's 300 bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_oversized_record_never_freezes_a_tree() {
    let f = start().await;
    let mut big = SimAgent::new(31_030);
    let mut other = SimAgent::new(31_031);
    for agent in [&big, &other] {
        f.enrol(agent, json!({ "label": "b", "roles": ["boot"] })).await;
    }
    for agent in [&mut big, &mut other] {
        assert_eq!(f.report(agent, |_| {}).await.0, 202);
    }
    f.controller.reconcile_now().await.unwrap();
    assert_eq!(f.boot_tree_ids().await.len(), 2);

    // A valid, signed record near EIP-778's 300 bytes (397 characters): too large for one UDP
    // answer even under this short domain.
    let huge = padded_record(&big, 2, 31_030, 397);
    let (status, answer) = f.report(&mut big, |r| r["enr"] = json!(huge.to_string())).await;
    assert_eq!(status, 400, "{answer}");
    let reason = answer["error"].as_str().unwrap();
    assert!(reason.contains("not listed in tree boot") && reason.contains("512-byte"), "{reason}");
    assert_eq!(f.node(&big).await["enrSeq"], 1, "the stored record stays");

    // The tree still follows membership: a node put into maintenance leaves it.
    let path = format!("/api/v1/nodes/{}/maintenance", other.node_id());
    let (status, answer) = f.admin(Method::PUT, &path, Some(json!({ "reason": "kernel" }))).await;
    assert!(status == 200 || status == 204, "{status} {answer}");
    f.controller.reconcile_now().await.unwrap();
    assert_eq!(f.boot_tree_ids().await, [big.node_id()]);
    f.admin(Method::DELETE, &path, None).await;

    // At build time: a record that fits the boot tree but not a tree under a long domain is
    // left out of that tree only, its node a warning saying why; the tree is still built.
    let middling = padded_record(&big, 3, 31_030, 300);
    big.record = middling;
    assert_eq!(f.report(&mut big, |_| {}).await.0, 202);
    let long_domain = format!("{}.fleet.test", "l".repeat(60));
    let definition =
        json!({ "domain": long_domain, "signer": "key:dev", "policy": { "roles": ["boot"] } });
    let (status, answer) = f.admin(Method::PUT, "/api/v1/trees/long", Some(definition)).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(f.report(&mut other, |_| {}).await.0, 202);
    f.controller.reconcile_now().await.unwrap();
    let tree = f.admin(Method::GET, "/api/v1/trees/long", None).await.1;
    let listed: Vec<String> = tree["versions"][0]["enrs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap().parse::<node::enrtree::NodeRecord>().unwrap().node_id_hex())
        .collect();
    assert_eq!(listed, [other.node_id()], "{tree}");
    assert_eq!(tree["lastError"], Value::Null, "{tree}");
    let node = f.node(&big).await;
    assert_eq!(node["health"], "warning", "{node}");
    let reason = node["healthReason"].as_str().unwrap();
    assert!(reason.starts_with("not listed in tree long:"), "{reason}");
    let mut boot = f.boot_tree_ids().await;
    boot.sort();
    let mut both = vec![big.node_id(), other.node_id()];
    both.sort();
    assert_eq!(boot, both, "the boot tree still lists it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_changes_only_with_a_higher_seq() {
    let f = start().await;
    let mut agent = SimAgent::new(31_040);
    f.enrol(&agent, json!({ "label": "b", "roles": ["boot"] })).await;
    assert_eq!(f.report(&mut agent, |_| {}).await.0, 202);
    // Other content (another TCP port) at the same seq 1.
    let same_seq = node::enrtree::NodeRecord::sign(
        &agent.key,
        1,
        std::net::Ipv4Addr::LOCALHOST,
        31_041,
        31_041,
    )
    .unwrap();
    let (status, answer) = f.report(&mut agent, |r| r["enr"] = json!(same_seq.to_string())).await;
    assert_eq!(status, 409, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("same seq 1"), "{answer}");
    // A higher seq is a new record.
    let newer = node::enrtree::NodeRecord::sign(
        &agent.key,
        5,
        std::net::Ipv4Addr::LOCALHOST,
        31_041,
        31_041,
    )
    .unwrap();
    assert_eq!(f.report(&mut agent, |r| r["enr"] = json!(newer.to_string())).await.0, 202);
    // Going back to the old record is refused too.
    let (status, answer) = f.report(&mut agent, |_| {}).await;
    assert_eq!(status, 409, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("below"), "{answer}");
    let node = f.node(&agent).await;
    assert_eq!((node["enrSeq"].clone(), node["enr"].clone()), (json!(5), json!(newer.to_string())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_are_bounded_and_stored_as_parsed() {
    let f = start().await;
    let mut agent = SimAgent::new(31_050);
    f.enrol(&agent, json!({ "label": "b", "roles": ["boot"] })).await;
    // Unknown fields, at the top and among the figures, are refused and name the field.
    let (status, answer) =
        f.report(&mut agent, |r| r["padding"] = json!("x".repeat(200_000))).await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("padding"), "{answer}");
    let (status, _) = f.report(&mut agent, |r| r["figures"]["futureFigure"] = json!(1)).await;
    assert_eq!(status, 400);
    // Unbounded maps and strings are refused.
    let many: serde_json::Map<String, Value> =
        (0..2000).map(|i| (format!("/waku/2/rs/1/{i}"), json!(1))).collect();
    let (status, answer) =
        f.report(&mut agent, |r| r["figures"]["meshPerShard"] = Value::Object(many)).await;
    assert_eq!(status, 400, "{answer}");
    let (status, _) =
        f.report(&mut agent, |r| r["figures"]["errors"] = json!(["e".repeat(5000)])).await;
    assert_eq!(status, 400);
    // An accepted report is stored re-serialised: whitespace padding does not survive.
    let mut report: Value = serde_json::from_slice(&agent.report(6)).unwrap();
    report["figures"]["errors"] = json!(["disk slow"]);
    let padded = serde_json::to_string_pretty(&report)
        .unwrap()
        .replace('\n', &format!("\n{}", " ".repeat(500)));
    let (status, answer) = agent.post(&f.http, &f.base, "/api/v1/reports", padded.as_bytes()).await;
    assert_eq!(status, 202, "{answer}");
    let node = f.node(&agent).await;
    let stored = serde_json::to_string(&node["lastReport"]).unwrap();
    assert!(stored.len() < 1000, "stored {} bytes: {stored}", stored.len());
    assert_eq!(node["lastReport"]["figures"]["errors"], json!(["disk slow"]), "{node}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_unenrolled_nodes_get_the_same_answer() {
    let f = start().await;
    let mut enrolled = SimAgent::new(31_060);
    f.enrol(&enrolled, json!({ "label": "b", "roles": ["boot"] })).await;
    // A stranger reports as itself (never enrolled), and as the enrolled node's id.
    let mut stranger = SimAgent::new(31_061);
    let (unknown_status, unknown) = f.report(&mut stranger, |_| {}).await;
    let victim = enrolled.node_id();
    let (claimed_status, claimed) = f.report(&mut stranger, |r| r["nodeId"] = json!(victim)).await;
    assert_eq!((unknown_status, claimed_status), (401, 401), "{unknown} {claimed}");
    assert_eq!(unknown, claimed, "the answers tell nothing about enrolment");
    assert_eq!(f.report(&mut enrolled, |_| {}).await.0, 202);
}

/// A decommissioned node (issue: the operator's first day) was critical for ever, listed on the
/// dashboard and in `WakufleetNodeCritical`. `DELETE /api/v1/nodes/{id}` removes it: out of the
/// tree at the next pass, out of `/metrics`, its agent's next report refused; audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decommissioned_node_leaves_the_tree_the_metrics_and_cannot_report() {
    let f = start().await;
    let mut old = SimAgent::new(31_030);
    f.enrol(&old, json!({ "label": "old-box", "roles": ["boot"] })).await;
    assert_eq!(f.report(&mut old, |_| {}).await.0, 202);
    let mut kept = SimAgent::new(31_031);
    f.enrol(&kept, json!({ "label": "new-box", "roles": ["boot"] })).await;
    assert_eq!(f.report(&mut kept, |_| {}).await.0, 202);
    f.controller.reconcile_now().await.unwrap();
    assert_eq!(f.boot_tree_ids().await.len(), 2);

    let path = format!("/api/v1/nodes/{}", old.node_id());
    let (status, answer) = f.admin(Method::DELETE, &path, None).await;
    assert_eq!(status, 204, "{answer}");
    f.controller.reconcile_now().await.unwrap();
    assert_eq!(f.boot_tree_ids().await, [kept.node_id()]);
    assert_eq!(f.admin(Method::GET, &path, None).await.0, 404);
    let metrics = f.http.get(format!("{}/metrics", f.base)).send().await.unwrap().text().await;
    let metrics = metrics.unwrap();
    assert!(!metrics.contains(&old.node_id()), "{metrics}");
    assert!(metrics.contains(&kept.node_id()), "{metrics}");

    // Its agent is refused as an unknown node; deleting again finds nothing.
    let (status, answer) = f.report(&mut old, |_| {}).await;
    assert_eq!(status, 401, "{answer}");
    assert_eq!(f.admin(Method::DELETE, &path, None).await.0, 404);
    let audit = f.admin(Method::GET, "/api/v1/audit", None).await.1;
    let entry = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "node.decommission")
        .unwrap()
        .clone();
    assert_eq!(
        (entry["subject"].as_str(), entry["detail"]["label"].as_str()),
        (Some(old.node_id().as_str()), Some("old-box"))
    );
    f.controller.shutdown().await;
}
