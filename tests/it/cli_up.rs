//! `wakufleet up` through the real binary: controller, DNS server, enrolled agents, a signed
//! tree and a node joining from it, checked from outside with `dig`, `wakufleet tree resolve`
//! and the controller's API, and by a js-waku light node that finds the fleet from the tree
//! alone and connects over WebSocket; SIGTERM stops it cleanly; a second run in the same directory
//! reuses everything and publishes a higher seq; a failing step is named in one line.

use std::{collections::BTreeSet, path::Path, time::Duration};

use libp2p::Multiaddr;
use node::{enrtree::NodeRecord, waku_enr::WakuEnr};
use tokio::{process::Command, time::timeout};

use crate::helpers::{fails, js_waku, start_up, tool};

const BIN: &str = env!("CARGO_BIN_EXE_wakufleet");
const DOMAIN: &str = "nodes.wakufleet.local";
/// The cluster `up`'s nodes run on.
const CLUSTER: u16 = 1;

/// What `up` printed that the test checks.
#[derive(Debug, Default)]
struct Printed {
    text: String,
    api: String,
    dns: String,
    url: String,
    seq: u64,
    /// Listen addresses of the agents' nodes (`node-N` lines).
    agents: BTreeSet<Multiaddr>,
    joiner: Option<Multiaddr>,
}

fn parse(text: &str) -> Printed {
    let mut p = Printed { text: text.to_owned(), ..Printed::default() };
    for line in text.lines() {
        let field = |name: &str| line.trim().strip_prefix(name).map(|v| v.trim().to_owned());
        if let Some(v) = field("controller API:") {
            p.api = v.split("/api/v1").next().unwrap().to_owned();
        }
        if let Some(v) = field("DNS server:") {
            p.dns = v.split_whitespace().next().unwrap().to_owned();
        }
        if let Some(v) = field("tree url:") {
            p.url = v;
        }
        if let Some(v) = field("tree:") {
            p.seq = v.split("seq ").nth(1).unwrap().split(',').next().unwrap().parse().unwrap();
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.len() > 1 && words[0].starts_with("node-") {
            p.agents.insert(words[1].parse().unwrap());
        }
        if words.len() > 1 && words[0] == "joiner" {
            p.joiner = Some(words[1].parse().unwrap());
        }
    }
    p
}

fn up_args(dir: &Path) -> Vec<String> {
    let dir = dir.display().to_string();
    ["up", "--nodes", "4", "--dir", &dir, "--dns", "127.0.0.1:0"].map(str::to_owned).to_vec()
}

#[tokio::test]
async fn up_runs_a_fleet_a_new_node_joins_from_dns_and_runs_again_with_a_higher_seq() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("fleet");

    // First run, serving: DNS and the API are checked while it runs, then SIGTERM stops it.
    let up = start_up(&up_args(&dir)).await;
    let text = up.text.clone();
    let first = parse(&text);
    assert_eq!(first.agents.len(), 4, "{text}");
    assert!(first.joiner.is_some(), "{text}");
    assert!(first.url.starts_with("enrtree://") && first.url.ends_with(DOMAIN), "{text}");
    assert!(text.contains("joined from the tree: 4 records from DNS"), "{text}");
    assert!(text.contains("bootstrap latency: min "), "{text}");
    assert!(text.contains("smaller than 7: 3 for agents, 4 for the joiner)"), "{text}");

    // The root over real DNS, with dig.
    let (ip, port) = first.dns.rsplit_once(':').unwrap();
    let root = tool("dig", &[&format!("@{ip}"), "-p", port, "+short", "TXT", DOMAIN]).await;
    assert!(root.contains("enrtree-root:v1") && root.contains(&format!("seq={}", first.seq)));

    // The same root in the zone file it writes, which BIND's checker accepts as a whole zone.
    let zone_file = text.lines().find_map(|l| l.trim().strip_prefix("zone file:")).unwrap().trim();
    let root = format!("seq={}", first.seq);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(zone_file).is_ok_and(|zone| zone.contains(&root)) {
        assert!(std::time::Instant::now() < deadline, "no {root} in {zone_file}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tool("named-checkzone", &["wakufleet.local", zone_file]).await;

    // The whole tree over real DNS: exactly the agents' nodes, at the addresses printed.
    let resolved = tool(BIN, &["tree", "resolve", &first.url, "--server", &first.dns]).await;
    let mut listed = BTreeSet::new();
    let mut ids = BTreeSet::new();
    for line in resolved.lines().filter(|l| l.starts_with("enr:")) {
        let record: NodeRecord = line.parse().unwrap();
        ids.insert(record.node_id_hex());
        let waku = WakuEnr::decode(record.enr()).unwrap();
        listed.insert(waku.dial_addresses()[0].clone());
    }
    assert_eq!(listed, first.agents, "the tree lists exactly the printed nodes:\n{text}");

    // A web client given only the tree URL and the DNS server: js-waku walks the tree itself,
    // dials a node over the WebSocket address its record announces, and completes the metadata
    // handshake on the fleet's cluster.
    let events = js_waku("js-waku-light", "discover.mjs", &[&first.url, &first.dns, "1"]).await;
    let discovered = events.iter().find(|e| e["event"] == "discovered").expect("discovered");
    assert!(discovered["records"].as_u64().unwrap() >= 1, "{discovered}");
    let handshake = events.iter().find(|e| e["event"] == "handshake").expect("handshake");
    let dialled: Multiaddr = handshake["dialled"].as_str().unwrap().parse().unwrap();
    assert!(dialled.to_string().contains("/ws/"), "{handshake}");
    let dialled_port = dialled.iter().find_map(|p| match p {
        libp2p::multiaddr::Protocol::Tcp(port) => Some(port),
        _ => None,
    });
    let ws_ports: Vec<u16> = text
        .lines()
        .filter(|l| l.trim_start().starts_with("node-"))
        .filter_map(|l| l.split("  ws ").nth(1)?.split_whitespace().next()?.parse().ok())
        .collect();
    assert!(dialled_port.is_some_and(|p| ws_ports.contains(&p)), "{handshake} vs {ws_ports:?}");
    assert_eq!(handshake["recorded"]["clusterId"], CLUSTER, "{handshake}");
    assert_eq!(handshake["recorded"]["shards"], serde_json::json!([0]), "{handshake}");

    // The controller's API: those four nodes, enrolled and passing.
    let token = std::fs::read_to_string(dir.join("admin-token")).unwrap();
    let http = reqwest::Client::new();
    let registry =
        crate::sim_agent::operator_get(&http, &first.api, "/api/v1/nodes", token.trim()).await;
    let passing: BTreeSet<String> = registry["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["health"] == "passing")
        .map(|n| n["nodeId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(passing, ids, "{registry}");

    // The dashboard it printed (public on loopback): every listed node, passing.
    let dashboard = text.lines().find_map(|l| l.trim().strip_prefix("dashboard:")).unwrap();
    let page = reqwest::get(dashboard.trim()).await.unwrap();
    assert_eq!(page.status().as_u16(), 200, "{dashboard}");
    let page = page.text().await.unwrap();
    for id in &ids {
        assert!(page.contains(&format!("data-node=\"{id}\" data-health=\"passing\"")), "{id}");
    }

    // fleets.json lists the same nodes, in fleets.status.im's shape.
    let fleets: serde_json::Value =
        reqwest::get(format!("{}/fleets.json", first.api)).await.unwrap().json().await.unwrap();
    let tcp: BTreeSet<Multiaddr> = fleets["fleets"]["nodes"]["tcp/p2p/waku"]
        .as_object()
        .unwrap()
        .values()
        .map(|a| a.as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(tcp, first.agents, "{fleets}");

    let rest = up.stop().await;
    assert_eq!(rest.trim(), "stopped");

    // Second run, --once: same keys and enrolments, a new tree version with a higher seq.
    let mut args = up_args(&dir);
    args.push("--once".into());
    let out = timeout(Duration::from_secs(60), Command::new(BIN).args(&args).output())
        .await
        .expect("--once returns within 60 s")
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let second = parse(&text);
    assert_eq!(second.url, first.url, "same key, same URL");
    assert!(second.seq > first.seq, "seq {} after {}", second.seq, first.seq);
    assert_eq!(second.agents.len(), 4);
    let secrets = ["admin-token", "dev-signing-key.json", "dev-signing-key.password"];
    for name in secrets {
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(dir.join(name)).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600, "{name}");
    }
    for secret in ["dev-signing-key.password", "admin-token"] {
        let secret = std::fs::read_to_string(dir.join(secret)).unwrap();
        assert!(!second.text.contains(secret.trim()) && !first.text.contains(secret.trim()));
    }
}

#[test]
fn a_failing_step_is_one_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let api = taken.local_addr().unwrap().to_string();
    let args =
        ["up", "--once", "--nodes", "2", "--dir", "f", "--dns", "127.0.0.1:0", "--api", &api];
    fails(dir.path(), &args, "starting the controller: cannot listen on");
}
