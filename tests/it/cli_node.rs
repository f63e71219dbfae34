//! `wakufleet node` as an operator runs it: nwaku's flags and config-file keys, nwaku's REST API
//! and Prometheus metrics (checked with promtool), driven over real HTTP and libp2p.

use std::{process::Stdio, time::Duration};

use node::{
    config::NodeConfig,
    message::WakuMessage,
    running::{NodeEvent, start},
};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::Command,
    time::timeout,
};

use crate::helpers::{ok, password_file};

struct Running {
    child: tokio::process::Child,
    listening: Vec<String>,
    rest: String,
    metrics: String,
    peer_id: String,
}

async fn spawn_node(dir: &std::path::Path, extra: &[&str]) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wakufleet"))
        .arg("node")
        .args([
            "--listen-address=127.0.0.1",
            "--tcp-port=0",
            "--websocket-support=true",
            "--websocket-port=0",
            "--rest=true",
            "--rest-port=0",
            "--metrics-server",
            "--metrics-server-port=0",
        ])
        .args(extra)
        .current_dir(dir)
        .env_remove("WAKUFLEET_PASSWORD")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut running = Running {
        child,
        listening: vec![],
        rest: String::new(),
        metrics: String::new(),
        peer_id: String::new(),
    };
    timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(v) = line.strip_prefix("listening: ") {
                running.listening.push(v.to_owned());
            } else if let Some(v) = line.strip_prefix("rest: ") {
                running.rest = v.to_owned();
            } else if let Some(v) = line.strip_prefix("peer id: ") {
                running.peer_id = v.to_owned();
            } else if let Some(v) = line.strip_prefix("metrics: ") {
                running.metrics = v.to_owned();
                return;
            }
        }
        panic!("node exited before it was ready");
    })
    .await
    .expect("node ready");
    // Keep draining stdout so the node never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    running
}

const TOPIC_PATH: &str = "%2Fwaku%2F2%2Frs%2F0%2F0";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_metrics_and_relay_like_nwaku() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("node.toml"),
        "cluster-id = 0\nshard = [0]\nrest-relay-cache-capacity = 10\n",
    )
    .unwrap();
    let db = format!("sqlite://{}", dir.path().join("store.db").display());
    let mut node = spawn_node(
        dir.path(),
        &["--config-file", "node.toml", "--store", "--store-message-db-url", &db],
    )
    .await;
    let http = reqwest::Client::new();
    let rest = node.rest.clone();
    let get = |path: &str| http.get(format!("{rest}{path}")).send();

    // Alone, the node runs but is not ready to relay: nwaku's words, and a 200 report (a check
    // reads the body, as it does of nwaku's).
    let answer = get("/health").await.unwrap();
    assert_eq!(answer.status(), 200);
    let health: Value = answer.json().await.unwrap();
    assert_eq!(health["nodeHealth"], "READY");
    assert_eq!(health["connectionStatus"], "Disconnected", "{health}");
    assert_eq!(
        health["protocolsHealth"][0],
        json!({ "Relay": "NOT_READY", "desc": "No connected peers" })
    );
    assert_eq!(health["protocolsHealth"][1]["Store"], "READY", "{health}");
    assert_eq!(health["shardsHealth"][0]["health"], "UNHEALTHY", "{health}");
    let info: Value = get("/debug/v1/info").await.unwrap().json().await.unwrap();
    let addrs: Vec<String> = info["listenAddresses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(addrs, node.listening);
    assert!(info["enrUri"].as_str().unwrap().starts_with("enr:"));
    assert_eq!(
        get("/debug/v1/version").await.unwrap().text().await.unwrap(),
        concat!("v", env!("CARGO_PKG_VERSION"))
    );

    // A Rust node connects; the REST peer list shows it with nwaku's fields.
    let (peer, _) = start(NodeConfig::loopback()).await.unwrap();
    let mut events = peer.events();
    let tcp = node.listening.iter().find(|a| !a.contains("/ws")).unwrap().parse().unwrap();
    peer.dial(tcp).await.unwrap();
    let peers = timeout(Duration::from_secs(20), async {
        loop {
            let peers: Value = get("/admin/v1/peers").await.unwrap().json().await.unwrap();
            let ready = peers[0]["protocols"].as_array().is_some_and(|p| !p.is_empty())
                && peers[0]["shards"] == json!([0]);
            if ready {
                return peers;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .unwrap();
    assert!(peers[0]["multiaddr"].as_str().unwrap().ends_with(&peer.peer_id().to_string()));
    assert!(peers[0]["protocols"].as_array().unwrap().contains(&json!("/vac/waku/relay/2.0.0")));
    assert_eq!(peers[0]["connected"], true);
    let relay_ready = timeout(Duration::from_secs(20), async {
        loop {
            let health: Value = get("/health").await.unwrap().json().await.unwrap();
            if health["protocolsHealth"][0]["Relay"] == "READY" {
                return health;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .unwrap();
    assert_eq!(relay_ready["connectionStatus"], "PartiallyConnected", "one peer: {relay_ready}");

    // Relay over REST: subscribe, read what the peer publishes, publish to the peer.
    let posted = http
        .post(format!("{rest}/relay/v1/subscriptions"))
        .json(&json!(["/waku/2/rs/0/0"]))
        .send()
        .await
        .unwrap();
    assert_eq!(posted.text().await.unwrap(), "OK");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
        as i64;
    let from_peer = WakuMessage::new("/wakufleet/1/rest/proto", b"to rest".to_vec(), now);
    let cached = timeout(Duration::from_secs(20), async {
        loop {
            let _ = peer.publish("/waku/2/rs/0/0", from_peer.clone()).await;
            let got: Value = get(&format!("/relay/v1/messages/{TOPIC_PATH}"))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if !got.as_array().unwrap().is_empty() {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .unwrap();
    assert_eq!(cached[0]["payload"], "dG8gcmVzdA==");
    assert_eq!(cached[0]["contentTopic"], "/wakufleet/1/rest/proto");
    assert_eq!(cached[0]["timestamp"], now);

    let body = json!({ "payload": "ZnJvbSByZXN0", "contentTopic": "/wakufleet/1/rest/proto", "timestamp": now + 1 });
    let posted = http
        .post(format!("{rest}/relay/v1/messages/{TOPIC_PATH}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 200, "{}", posted.text().await.unwrap());
    let auto = json!({ "payload": "YXV0bw==", "contentTopic": "/wakufleet/1/auto/proto" });
    let posted =
        http.post(format!("{rest}/relay/v1/auto/messages")).json(&auto).send().await.unwrap();
    assert_eq!(posted.status(), 200, "{}", posted.text().await.unwrap());
    let mut payloads = Vec::new();
    timeout(Duration::from_secs(20), async {
        while payloads.len() < 2 {
            if let Ok(NodeEvent::Message { message, topic, .. }) = events.recv().await {
                assert_eq!(topic, "/waku/2/rs/0/0");
                payloads.push(message.payload.clone());
            }
        }
    })
    .await
    .unwrap();
    assert!(payloads.contains(&b"from rest".to_vec()) && payloads.contains(&b"auto".to_vec()));

    // Store over REST, nwaku's shape: both messages on the content topic, one per page.
    let stored = timeout(Duration::from_secs(20), async {
        loop {
            let url = "/store/v3/messages?includeData=true&pubsubTopic=%2Fwaku%2F2%2Frs%2F0%2F0&contentTopics=%2Fwakufleet%2F1%2Frest%2Fproto&ascending=true&pageSize=1";
            let page: Value = get(url).await.unwrap().json().await.unwrap();
            if !page["paginationCursor"].is_null() {
                return page;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .unwrap();
    assert_eq!(stored["statusCode"], 200, "{stored}");
    assert_eq!(stored["messages"].as_array().unwrap().len(), 1);
    assert_eq!(
        stored["messages"][0]["message"]["payload"], "dG8gcmVzdA==",
        "oldest first: the peer's message"
    );
    assert!(stored["messages"][0]["messageHash"].as_str().unwrap().starts_with("0x"));
    let cursor = stored["paginationCursor"].as_str().unwrap().to_owned();
    let next: Value = get(&format!(
        "/store/v3/messages?includeData=true&pubsubTopic=%2Fwaku%2F2%2Frs%2F0%2F0&contentTopics=%2Fwakufleet%2F1%2Frest%2Fproto&ascending=true&pageSize=1&cursor={cursor}"
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(next["messages"][0]["message"]["payload"], "ZnJvbSByZXN0");
    let bad = get("/store/v3/messages?cursor=0x0101").await.unwrap();
    assert_eq!(bad.status(), 400, "a malformed cursor is a client error");

    // Bad input: clear 4xx, the node keeps serving.
    let post = |path: String, body: String| {
        http.post(format!("{rest}{path}"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let cases = [
        (
            format!("/relay/v1/messages/{TOPIC_PATH}"),
            json!({"payload": "!!", "contentTopic": "/a/1/b/c"}).to_string(),
        ),
        (format!("/relay/v1/messages/{TOPIC_PATH}"), json!({"payload": "YQ=="}).to_string()),
        (
            "/relay/v1/messages/%2Ffoo".to_owned(),
            json!({"payload": "YQ==", "contentTopic": "/a/1/b/c"}).to_string(),
        ),
        ("/relay/v1/subscriptions".to_owned(), "[\"not a topic\"]".to_owned()),
        ("/relay/v1/subscriptions".to_owned(), "{".to_owned()),
        (
            format!("/relay/v1/messages/{TOPIC_PATH}"),
            format!("{{\"payload\":\"{}\"}}", "A".repeat(1 << 20)),
        ),
    ];
    for (path, body) in cases {
        let oversized = body.len() > 1 << 19;
        match post(path.clone(), body).await {
            Ok(response) => {
                let status = response.status();
                assert!(status.is_client_error(), "{path}: {status}");
                if oversized {
                    assert_eq!(status, 413);
                }
            }
            // The server may answer 413 and close before the client has sent the whole body.
            Err(error) if oversized => assert!(!error.is_timeout(), "{error}"),
            Err(error) => panic!("{path}: {error}"),
        }
    }
    // A new client: the server closes the connection that carried the oversized body.
    let fresh = reqwest::Client::new();
    let health = fresh.get(format!("{rest}/health")).send().await.unwrap();
    assert_eq!(health.status(), 200, "the node keeps serving after bad input");

    // Metrics in Prometheus text format, accepted by promtool.
    let metrics = fresh.get(&node.metrics).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("libp2p_peers 1"), "{metrics}");
    assert!(
        metrics.contains("libp2p_gossipsub_peers_per_topic_mesh{topic=\"/waku/2/rs/0/0\"}"),
        "{metrics}"
    );
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is needed; `bash tests/run.sh` installs it");
    use tokio::io::AsyncWriteExt;
    promtool.stdin.take().unwrap().write_all(metrics.as_bytes()).await.unwrap();
    let checked = promtool.wait_with_output().await.unwrap();
    assert!(
        checked.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );

    // Ctrl-C stops it cleanly.
    let pid = node.child.id().unwrap();
    Command::new("kill").args(["-INT", &pid.to_string()]).status().await.unwrap();
    let status = timeout(Duration::from_secs(20), node.child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_key_comes_from_a_keystore_never_from_argv() {
    let dir = tempfile::tempdir().unwrap();
    let pw = password_file(dir.path());
    std::fs::write(
        dir.path().join("nodekey.hex"),
        "e419c3cf4f09ac3babdf61856e6faa0e0c6a7d97674d5401a0114616549c7632",
    )
    .unwrap();
    ok(
        dir.path(),
        &["key", "import", "nodekey.hex", "node.json", "--light-kdf", "--password-file", pw],
    );
    let node = spawn_node(dir.path(), &["--nodekey", "node.json", "--password-file", pw]).await;
    assert_eq!(node.peer_id, "16Uiu2HAmF6oAsd23RMAnZb3NJgxXrExxBTPMdEoih232iAZkviU2");
    drop(node);

    let out = crate::helpers::wakufleet(
        dir.path(),
        &["node", "--nodekey", "e419c3cf4f09ac3babdf61856e6faa0e0c6a7d97674d5401a0114616549c7632"],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("never go on the command line"));
    let bad = crate::helpers::wakufleet(dir.path(), &["node", "--config-file", "missing.toml"]);
    assert!(!bad.status.success());
    std::fs::write(dir.path().join("bad.toml"), "no-such-option = 1\n").unwrap();
    let bad = crate::helpers::wakufleet(dir.path(), &["node", "--config-file", "bad.toml"]);
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("no-such-option"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

#[test]
fn a_port_another_process_holds_is_one_error_line_naming_the_address_and_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    crate::helpers::fails(
        dir.path(),
        &["node", "--listen-address", "127.0.0.1", "--tcp-port", &port],
        &format!("cannot listen on /ip4/127.0.0.1/tcp/{port}: "),
    );
    let out = crate::helpers::wakufleet(
        dir.path(),
        &["node", "--listen-address", "127.0.0.1", "--tcp-port", &port],
    );
    // The operating system's reason, not just ours.
    assert!(String::from_utf8_lossy(&out.stderr).contains("in use"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nat_extip_is_the_address_the_enr_announces() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = spawn_node(dir.path(), &["--nat=extip:127.0.0.2"]).await;
    let info: Value =
        reqwest::get(format!("{}/debug/v1/info", node.rest)).await.unwrap().json().await.unwrap();
    let record: node::enrtree::NodeRecord = info["enrUri"].as_str().unwrap().parse().unwrap();
    assert_eq!(record.enr().ip4(), Some(std::net::Ipv4Addr::new(127, 0, 0, 2)), "{info}");
    node.child.kill().await.unwrap();
}

/// `--preset logos.dev` is cluster 3 with its 8 shards, announced in the ENR; `--preset twn`
/// is refused, naming what is missing, before anything listens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presets_set_the_network_and_twn_is_refused_without_rln() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = spawn_node(dir.path(), &["--preset=logos.dev"]).await;
    let info: Value =
        reqwest::get(format!("{}/debug/v1/info", node.rest)).await.unwrap().json().await.unwrap();
    let record: node::enrtree::NodeRecord = info["enrUri"].as_str().unwrap().parse().unwrap();
    let waku = node::waku_enr::WakuEnr::decode(record.enr()).unwrap();
    let shards = waku.shards.expect("rs in the ENR");
    assert_eq!(shards.cluster, 3, "{info}");
    assert_eq!(shards.shards, (0..8).collect::<Vec<u16>>(), "{info}");
    node.child.kill().await.unwrap();

    crate::helpers::fails(
        dir.path(),
        &["node", "--listen-address", "127.0.0.1", "--tcp-port", "0", "--preset", "twn"],
        "requires RLN relay",
    );
    crate::helpers::fails(dir.path(), &["node", "--preset", "mainnet"], "unknown preset");
}
