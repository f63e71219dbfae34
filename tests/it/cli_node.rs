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
        &["--config-file", "node.toml", "--store", "--store-message-db-url", &db, "--rest-admin"],
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
    assert_eq!(peers[0]["connected"], "Connected", "nwaku's Connectedness: {peers}");
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

/// `curl` against the real REST server: status code and body.
async fn curl(url: &str, headers: &[&str]) -> (u16, String) {
    let mut args = vec!["-s", "-o", "-", "-w", "\n%{http_code}"];
    for h in headers {
        args.extend(["-H", h]);
    }
    args.push(url);
    let out = crate::helpers::tool("curl", &args).await;
    let (body, code) = out.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap(), body.to_owned())
}

/// The admin routes exist only with `--rest-admin`, in nwaku's shapes; `peerAddr` needs it too;
/// REST subscriptions are capped; a Host that is not ours is refused (DNS rebinding); and REST
/// off loopback needs a bearer token, checked on every route but `/health`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_rest_is_opt_in_and_the_rest_port_guards_itself() {
    let dir = tempfile::tempdir().unwrap();
    let (peer, _task) = start(NodeConfig { filter: true, ..NodeConfig::loopback() }).await.unwrap();

    // Without --rest-admin: no admin routes, no dialing on a caller's behalf.
    let mut plain = spawn_node(dir.path(), &[]).await;
    assert_eq!(curl(&format!("{}/admin/v1/peers", plain.rest), &[]).await.0, 404);
    let target = format!("{}/p2p/{}", peer.listen_addrs()[0], peer.peer_id());
    let store = format!("{}/store/v3/messages?peerAddr={}", plain.rest, target.replace('/', "%2F"));
    let (status, body) = curl(&store, &[]).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("--rest-admin"), "{body}");
    // A page on another origin that rebinds its name to 127.0.0.1 is refused.
    let (status, _) = curl(&format!("{}/debug/v1/info", plain.rest), &["Host: evil.example"]).await;
    assert_eq!(status, 403);
    assert_eq!(curl(&format!("{}/debug/v1/info", plain.rest), &[]).await.0, 200);
    // More subscriptions than the cap: refused whole, nothing subscribed.
    let topics: Vec<String> = (0..=100).map(|s| format!("/waku/2/rs/0/{s}")).collect();
    let http = reqwest::Client::new();
    let answer = http
        .post(format!("{}/relay/v1/subscriptions", plain.rest))
        .json(&topics)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 429);
    let (status, _) =
        curl(&format!("{}/relay/v1/messages/%2Fwaku%2F2%2Frs%2F0%2F5", plain.rest), &[]).await;
    assert_eq!(status, 404, "not subscribed");
    plain.child.kill().await.unwrap();

    // With --rest-admin and filter: every route, nwaku's shapes.
    let mut admin = spawn_node(dir.path(), &["--rest-admin", "--filter"]).await;
    let tcp = admin.listening.iter().find(|a| !a.contains("/ws")).unwrap().parse().unwrap();
    peer.dial(tcp).await.unwrap();
    let admin_id: libp2p::PeerId = admin.peer_id.parse().unwrap();
    let get = async |path: &str| -> (u16, Value) {
        let (status, body) = curl(&format!("{}{path}", admin.rest), &[]).await;
        (status, serde_json::from_str(&body).unwrap_or(Value::String(body)))
    };
    let id = peer.peer_id().to_string();
    let mesh = timeout(Duration::from_secs(30), async {
        loop {
            let (_, mesh) = get("/admin/v1/peers/mesh/on/0").await;
            if mesh["peers"].as_array().is_some_and(|p| !p.is_empty()) {
                return mesh;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("the peer joins the mesh on shard 0");
    assert_eq!(mesh["shard"], 0);
    assert!(mesh["peers"][0]["multiaddr"].as_str().unwrap().ends_with(&id), "{mesh}");
    assert!(mesh["peers"][0]["score"].is_number(), "relay peers carry their score: {mesh}");

    let (status, all) = get("/admin/v1/peers").await;
    assert_eq!(status, 200);
    let listed =
        all.as_array().unwrap().iter().find(|p| p["multiaddr"].as_str().unwrap().ends_with(&id));
    let listed = listed.unwrap_or_else(|| panic!("{all}"));
    for field in ["multiaddr", "protocols", "shards", "connected", "agent", "origin", "score"] {
        assert!(listed.get(field).is_some(), "{field} missing: {listed}");
    }
    assert_eq!(listed["connected"], "Connected");
    assert!(listed["agent"].as_str().unwrap().starts_with("wakufleet/"), "{listed}");
    assert_eq!(get(&format!("/admin/v1/peer/{id}")).await.1["multiaddr"], listed["multiaddr"]);
    assert_eq!(get("/admin/v1/peer/not-a-peer-id").await.0, 400);
    let stranger = libp2p::PeerId::random();
    assert_eq!(get(&format!("/admin/v1/peer/{stranger}")).await.0, 404);
    let (_, connected) = get("/admin/v1/peers/connected/on/0").await;
    assert_eq!(connected.as_array().unwrap().len(), 1, "{connected}");
    assert_eq!(get("/admin/v1/peers/connected/on/5").await.1, json!([]));
    assert_eq!(get("/admin/v1/peers/connected/on/x").await.0, 400);
    let (_, relay) = get("/admin/v1/peers/relay").await;
    assert_eq!(relay[0]["shard"], 0, "{relay}");
    assert_eq!(relay[0]["peers"].as_array().unwrap().len(), 1, "{relay}");
    assert_eq!(get("/admin/v1/peers/relay/on/3").await.1, json!({ "shard": 3, "peers": [] }));
    let (_, service) = get("/admin/v1/peers/service").await;
    let protocols = &service[0]["protocols"];
    assert!(
        protocols.as_array().unwrap().contains(&json!("/vac/waku/filter-subscribe/2.0.0-beta1")),
        "{service}"
    );
    assert!(
        !protocols.as_array().unwrap().contains(&json!("/ipfs/id/1.0.0")),
        "only service codecs: {service}"
    );
    let (_, stats) = get("/admin/v1/peers/stats").await;
    assert!(stats["Sum"]["Total peers"].as_u64() >= Some(1), "{stats}");
    assert!(stats["By Connectedness"]["Connected"] == 1, "{stats}");
    assert_eq!(stats["Mesh peers"]["0"], 1, "{stats}");
    assert!(stats["By Protocols"]["/vac/waku/relay/2.0.0"] == 1, "{stats}");

    // A light client's filter subscription at our node, listed with its criteria.
    let subscribed = peer
        .filter_subscribe(admin_id, "/waku/2/rs/0/0", vec!["/wakufleet/1/admin/proto".into()])
        .await
        .unwrap();
    assert_eq!(subscribed.status_code, 200, "{subscribed:?}");
    let (status, subs) = get("/admin/v1/filter/subscriptions").await;
    assert_eq!(status, 200);
    assert_eq!(
        subs,
        json!([{ "peerId": id, "filterCriteria": [
            { "pubsubTopic": "/waku/2/rs/0/0", "contentTopic": "/wakufleet/1/admin/proto" }
        ] }])
    );
    admin.child.kill().await.unwrap();

    // On every interface: refused without a token, before anything listens ...
    crate::helpers::fails(
        dir.path(),
        &[
            "node",
            "--listen-address=127.0.0.1",
            "--tcp-port=0",
            "--rest",
            "--rest-port=0",
            "--rest-address=0.0.0.0",
        ],
        "set rest-token-file",
    );
    // ... and with one, every route but /health asks for it.
    std::fs::write(dir.path().join("rest-token"), "s3cret-token\n").unwrap();
    let mut open =
        spawn_node(dir.path(), &["--rest-address=0.0.0.0", "--rest-token-file=rest-token"]).await;
    let port = open.rest.rsplit(':').next().unwrap().to_owned();
    let base = format!("http://127.0.0.1:{port}");
    let (status, body) = curl(&format!("{base}/debug/v1/info"), &[]).await;
    assert_eq!(status, 401, "{body}");
    let (status, _) =
        curl(&format!("{base}/debug/v1/info"), &["Authorization: Bearer wrong"]).await;
    assert_eq!(status, 401);
    let bearer = ["Authorization: Bearer s3cret-token"];
    assert_eq!(curl(&format!("{base}/debug/v1/info"), &bearer).await.0, 200);
    // Reached by any name once authenticated (the token is what a rebinding page lacks).
    let by_name = ["Authorization: Bearer s3cret-token", "Host: node1.example.org"];
    assert_eq!(curl(&format!("{base}/debug/v1/info"), &by_name).await.0, 200);
    assert_eq!(curl(&format!("{base}/health"), &[]).await.0, 200, "health checks need no secret");
    open.child.kill().await.unwrap();
}
