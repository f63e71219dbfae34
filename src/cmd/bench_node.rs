//! Benchmarks of the embedded node on loopback. They print figures; nothing here asserts a time.

use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use super::bench::percentile;
use anyhow::{Context, bail};
use node::{
    config::NodeConfig,
    discovery_v5::Discv5Config,
    message::WakuMessage,
    message::now_ns,
    running::{NodeEvent, TARGET_RELAY_PEERS, start},
};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    time::timeout,
};

const TOPIC: &str = "/waku/2/rs/0/0";

pub(crate) async fn relay(messages: usize, size: usize, samples: usize) -> anyhow::Result<()> {
    let (a, _) = start(NodeConfig::loopback()).await?;
    let (b, _) = start(NodeConfig::loopback()).await?;
    let mut events = b.events();
    a.dial(b.listen_addrs()[0].clone()).await?;
    a.wait_for_relay_peers(1, Duration::from_secs(20)).await?;
    // Let the mesh form (one heartbeat) so throughput is measured on the mesh path.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // Throughput: publish as fast as the node takes them, count what arrives.
    let receiver = tokio::spawn(async move {
        let mut received = 0usize;
        let started = Instant::now();
        let mut last = started;
        while received < messages {
            match timeout(Duration::from_secs(10), events.recv()).await {
                Ok(Ok(NodeEvent::Message { .. })) => {
                    received += 1;
                    last = Instant::now();
                }
                Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
                _ => break,
            }
        }
        (received, last, events)
    });
    let started = Instant::now();
    for i in 0..messages {
        let mut payload = vec![0u8; size.max(8)];
        payload[..8].copy_from_slice(&(i as u64).to_be_bytes());
        a.publish(TOPIC, WakuMessage::new("/bench/1/relay/proto", payload, now_ns())).await?;
    }
    let publish_time = started.elapsed();
    let (received, last, mut events) = receiver.await?;
    let elapsed = last.duration_since(started).max(publish_time);
    let rate = received as f64 / elapsed.as_secs_f64();
    println!(
        "throughput: {received}/{messages} messages of {size} B in {elapsed:.2?}: {rate:.0} msg/s, {:.1} MiB/s",
        rate * size as f64 / (1 << 20) as f64
    );

    // Latency: one message at a time, publish to delivery.
    let mut latencies = Vec::with_capacity(samples);
    for i in 0..samples {
        let payload = format!("latency {i}").into_bytes();
        let sent = Instant::now();
        a.publish(TOPIC, WakuMessage::new("/bench/1/latency/proto", payload.clone(), now_ns()))
            .await?;
        loop {
            match timeout(Duration::from_secs(5), events.recv()).await {
                Ok(Ok(NodeEvent::Message { message, .. })) if message.payload == payload => {
                    latencies.push(sent.elapsed());
                    break;
                }
                Ok(_) => {}
                Err(_) => bail!("message {i} was not delivered within 5 s"),
            }
        }
    }
    latencies.sort();
    println!(
        "one-hop latency over {samples} messages: p50 {:.2?}, p99 {:.2?}, max {:.2?}",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default()
    );
    a.shutdown().await;
    b.shutdown().await;
    Ok(())
}

/// The resident memory of process `pid`, in KiB.
pub(crate) fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).context("reading /proc")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("VmRSS missing")
}

/// Room for the peers `bench rss` connects: inbound connections may take 60% of this (nwaku's
/// default of 50 admits 30 inbound).
const MEASURED_MAX_CONNECTIONS: usize = 200;

/// What `bench rss` measures: a bare node, or an agent with its node reporting to a
/// controller (which runs in this process, so it is not counted).
struct Measured {
    child: tokio::process::Child,
    pid: u32,
    address: libp2p::Multiaddr,
    _controller: Option<controller::app::Controller>,
    _dir: Option<tempfile::TempDir>,
}

/// Runs this binary with `args` until it prints its `enr: ` line: the child, its pid and the
/// lines printed so far. Later output is drained, so the child never blocks on a full pipe.
async fn spawn_until_enr(
    args: &[std::ffi::OsString],
) -> anyhow::Result<(tokio::process::Child, u32, Vec<String>)> {
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .args(args)
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id().context("no pid")?;
    let mut lines = BufReader::new(child.stdout.take().context("no stdout")?).lines();
    let mut printed = Vec::new();
    while let Some(line) = lines.next_line().await? {
        let done = line.starts_with("enr: ");
        printed.push(line);
        if done {
            break;
        }
    }
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((child, pid, printed))
}

async fn spawn_node() -> anyhow::Result<Measured> {
    let args = ["node", "--listen-address=127.0.0.1", "--tcp-port=0", "--ip-colocation-limit=0"]
        .map(std::ffi::OsString::from)
        .into_iter()
        .chain([format!("--max-connections={MEASURED_MAX_CONNECTIONS}").into()])
        .collect::<Vec<_>>();
    let (child, pid, printed) = spawn_until_enr(&args).await?;
    let address = printed
        .iter()
        .find_map(|line| line.strip_prefix("listening: "))
        .context("node printed no address")?
        .parse::<libp2p::Multiaddr>()?;
    Ok(Measured { child, pid, address, _controller: None, _dir: None })
}

async fn spawn_agent() -> anyhow::Result<Measured> {
    use controller::{app::Controller, config::ControllerConfig, keyring::Keyring};
    let dir = tempfile::tempdir()?;
    let root = dir.path();
    let admin = "bench-rss-operator-token";
    std::fs::write(root.join("admin-token"), admin)?;
    let config = ControllerConfig {
        listen: "127.0.0.1:0".parse()?,
        database_url: format!("sqlite://{}", root.join("controller.db").display()),
        admin_token_file: Some(root.join("admin-token")),
        ..ControllerConfig::default()
    };
    let controller = Controller::start(config, Keyring::default(), Vec::new()).await?;
    let url = format!("http://{}", controller.http_addr());
    let token: serde_json::Value = reqwest::Client::new()
        .post(format!("{url}/api/v1/tokens"))
        .bearer_auth(admin)
        .json(&serde_json::json!({ "label": "bench", "roles": ["relay"] }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let token = token["token"].as_str().context("no token in the answer")?;
    std::fs::write(root.join("token"), token)?;
    let password = "bench-rss-keystore-password";
    let keystore = node::keystore::Keystore::encrypt(
        &node::crypto::generate_key(),
        password.as_bytes(),
        node::keystore::KdfStrength::Light,
    )?;
    std::fs::write(root.join("node-key.json"), keystore.to_string())?;
    std::fs::write(root.join("node-key.password"), password)?;
    let agent_toml = format!(
        r#"data-dir = "{root}"

[controller]
url = "{url}"
token-file = "{root}/token"
report-interval = "10s"

[compat]
rest-address = "127.0.0.1:0"
metrics-address = "127.0.0.1:0"

[node]
nodekey = "{root}/node-key.json"
password-file = "{root}/node-key.password"
listen-address = "127.0.0.1"
tcp-port = 0
ip-colocation-limit = 0
max-connections = {MEASURED_MAX_CONNECTIONS}
"#,
        root = root.display()
    );
    std::fs::write(root.join("agent.toml"), agent_toml)?;
    let args = ["agent".into(), "--config".into(), root.join("agent.toml").into_os_string()];
    let (child, pid, printed) = spawn_until_enr(&args).await?;
    let enr = printed
        .iter()
        .find_map(|line| line.strip_prefix("enr: "))
        .map(|text| text.parse::<node::enrtree::NodeRecord>().map_err(|e| anyhow::anyhow!("{e}")))
        .transpose()?;
    let record = enr.context("the agent printed no ENR")?;
    let waku = node::waku_enr::WakuEnr::decode(record.enr())?;
    let address = waku.dial_addresses().into_iter().next().context("no address in the ENR")?;
    Ok(Measured { child, pid, address, _controller: Some(controller), _dir: Some(dir) })
}

pub(crate) async fn rss(peers: usize, agent: bool) -> anyhow::Result<()> {
    let Measured { mut child, pid, address, _controller, _dir } =
        if agent { spawn_agent().await? } else { spawn_node().await? };
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle = rss_kib(pid)?;

    let mut nodes = Vec::new();
    for _ in 0..peers {
        let (node, _) =
            start(NodeConfig { websocket_port: None, ..NodeConfig::loopback() }).await?;
        node.dial(address.clone()).await?;
        nodes.push(node);
    }
    for node in &nodes {
        node.wait_for_relay_peers(1, Duration::from_secs(30)).await?;
    }
    // Idle with peers: heartbeats and pings only.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let with_peers = rss_kib(pid)?;
    println!(
        "wakufleet {} RSS: {:.1} MiB idle with 0 peers, {:.1} MiB idle with {peers} peers",
        if agent { "agent + node" } else { "node" },
        idle as f64 / 1024.0,
        with_peers as f64 / 1024.0
    );
    let _ = child.start_kill();
    Ok(())
}

/// What a node below its relay target saw, to tell a node nobody accepts from one that
/// stopped looking.
pub(crate) fn short_node(stats: &node::running::NodeStats) -> String {
    format!(
        "{} relay peers, {} connected ({} in, {} out), {} known, {} in its discv5 table, {} inbound refused, {} dials failed, {} DNS-discovered, {} from peer exchange, mesh {:?}",
        stats.relay_peers,
        stats.peers_inbound + stats.peers_outbound,
        stats.peers_inbound,
        stats.peers_outbound,
        stats.known_peers,
        stats.discv5_table_size,
        stats.refused_inbound,
        stats.dials_failed,
        stats.dns_discovered,
        stats.px_peers_received,
        stats.mesh_per_topic.values().collect::<Vec<_>>(),
    )
}

/// How long `bench bootstrap` waits for every node's relay peers.
const BOOTSTRAP_LIMIT: Duration = Duration::from_secs(120);

pub(crate) async fn bootstrap(count: usize) -> anyhow::Result<()> {
    let discv5 = |bootstrap: Vec<String>| NodeConfig {
        websocket_port: None,
        discv5: Some(Discv5Config { udp_port: 0, bootstrap }),
        ..NodeConfig::loopback()
    };
    let started = Instant::now();
    let (first, _) = start(discv5(vec![])).await?;
    let boot = vec![first.enr().to_base64()];
    let mut nodes = vec![first];
    for _ in 1..count {
        nodes.push(start(discv5(boot.clone())).await?.0);
    }
    let all_started = started.elapsed();
    let wanted = TARGET_RELAY_PEERS.min(count - 1);
    let deadline = started + BOOTSTRAP_LIMIT;
    loop {
        let mut short = Vec::new();
        for (index, node) in nodes.iter().enumerate() {
            let stats = node.stats().await?;
            if stats.relay_peers < wanted {
                short.push((index, stats));
            }
        }
        if short.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            // What each short node saw, to tell a node nobody accepts from one that stopped
            // looking.
            for (index, stats) in short.iter().take(5) {
                eprintln!("node {index}: {}", short_node(stats));
            }
            anyhow::bail!(
                "{} of {count} nodes had fewer than {wanted} relay peers {:.0?} after the start (fewest: {})",
                short.len(),
                BOOTSTRAP_LIMIT,
                short.iter().map(|(_, s)| s.relay_peers).min().unwrap_or(0)
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let wall = started.elapsed();
    let mut times = Vec::new();
    for node in &nodes {
        if let Some(t) = node.stats().await?.time_to_target_relay_peers {
            times.push(t);
        }
    }
    times.sort();
    println!(
        "{count} nodes (discv5, one bootstrap ENR): all started in {all_started:.2?}; every node had {} relay peers after {wall:.2?}",
        TARGET_RELAY_PEERS.min(count - 1)
    );
    println!(
        "per node, start to {TARGET_RELAY_PEERS} relay peers ({} nodes reached it): min {:.2?}, p50 {:.2?}, max {:.2?}",
        times.len(),
        times.first().copied().unwrap_or_default(),
        percentile(&times, 0.5),
        times.last().copied().unwrap_or_default()
    );
    for node in &nodes {
        node.shutdown().await;
    }
    Ok(())
}
