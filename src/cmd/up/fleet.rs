//! The parts of the local fleet and how each is started and stopped: the development keys, the
//! controller, the agents and the bootstrapping node.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use agent::{
    Agent, AgentConfig,
    config::{CompatSection, ControllerSection, EmbeddedLinks, ProbeSection, SupervisorSection},
    supervisor::SupervisorHandle,
};
use anyhow::Context;
use controller::{
    app::Controller,
    config::{ControllerConfig, DashboardConfig, DnsConfig, PublisherConfig},
    health::HealthThresholds,
    keyring::Keyring,
};
use k256::ecdsa::SigningKey;
use node::{
    config::NodeConfig,
    keystore::{KdfStrength, Keystore},
    rest,
    running::NodeHandle,
};
use serde_json::Value;
use tokio::task::JoinHandle;

use super::api::Api;
use crate::files;

/// The local fleet's cluster; the bootstrapping node joins the same one.
pub(super) const CLUSTER: u16 = 1;
/// How often the agents report (a local fleet can afford it).
const REPORT_INTERVAL: Duration = Duration::from_millis(500);
/// Longest wait for any one step.
pub(super) const STEP_LIMIT: Duration = Duration::from_secs(60);

/// Everything started so far, stopped in reverse: agents, nodes, controller.
#[derive(Default)]
pub(super) struct Fleet {
    pub(super) controller: Option<Controller>,
    pub(super) agents: Vec<FleetAgent>,
    pub(super) bootstrap: Option<BootstrapNode>,
}

impl Fleet {
    /// Stops the agents (and their nodes), then the bootstrapping node, then the controller.
    pub(super) async fn shutdown(&mut self) {
        for agent in self.agents.drain(..) {
            agent.watcher.abort();
            agent.agent.shutdown().await;
        }
        if let Some(node) = self.bootstrap.take() {
            node.shutdown().await;
        }
        if let Some(controller) = self.controller.take() {
            controller.shutdown().await;
        }
    }
}

/// A secp256k1 key kept in `<path>.json`, encrypted with a random password in
/// `<path>.password` (mode 0600) beside it: created once, unlocked on later runs. Neither the
/// key nor the password is ever printed.
pub(crate) fn dev_key(dir: &Path, name: &str) -> anyhow::Result<(SigningKey, PathBuf, PathBuf)> {
    let keyfile = dir.join(format!("{name}.json"));
    let password_file = dir.join(format!("{name}.password"));
    let key = if keyfile.exists() {
        let password = node::keystore::read_password_file(&password_file)
            .with_context(|| format!("{}", password_file.display()))?;
        let keystore: Keystore = files::read(&keyfile)?.parse()?;
        keystore.decrypt(password.as_bytes()).with_context(|| format!("{}", keyfile.display()))?
    } else {
        let password = random_secret();
        let key = node::crypto::generate_key();
        let keystore = Keystore::encrypt(&key, password.as_bytes(), KdfStrength::Light)?;
        files::write_secret_new(&password_file, &password)?;
        files::write_secret_new(&keyfile, &keystore.to_string())?;
        key
    };
    Ok((key, keyfile, password_file))
}

/// A random secret in URL-safe text (passwords, the admin token).
pub(super) fn random_secret() -> String {
    let mut secret = [0u8; 24];
    node::crypto::random_bytes(&mut secret);
    data_encoding::BASE64URL_NOPAD.encode(&secret)
}

/// The admin token in `dir/admin-token` (mode 0600), created once.
pub(crate) fn admin_token(dir: &Path) -> anyhow::Result<(String, PathBuf)> {
    let path = dir.join("admin-token");
    if !path.exists() {
        files::write_secret_new(&path, &random_secret())?;
    }
    let token =
        node::keystore::read_password_file(&path).with_context(|| format!("{}", path.display()))?;
    Ok((token.trim().to_owned(), path))
}

/// What the controller is started with.
pub(crate) struct ControllerPlan<'a> {
    pub(crate) dir: &'a Path,
    pub(crate) api: SocketAddr,
    pub(crate) dns: SocketAddr,
    pub(crate) zone: &'a str,
    pub(crate) signing_key: SigningKey,
    pub(crate) token_file: PathBuf,
    pub(crate) min_relay_peers: u32,
}

/// Starts the controller on `dir/controller.db` with its DNS server and the development key
/// held online as `key:dev`.
pub(crate) async fn start_controller(plan: ControllerPlan<'_>) -> anyhow::Result<Controller> {
    let config = ControllerConfig {
        listen: plan.api,
        database_url: format!("sqlite://{}", plan.dir.join("controller.db").display()),
        admin_token_file: Some(plan.token_file),
        // Reports every 500 ms: a node silent for 10 s is a warning, for 20 s critical, so
        // nodes of an earlier, larger run leave the tree quickly.
        health: HealthThresholds {
            warning_after_secs: 10,
            critical_after_secs: 20,
            min_relay_peers: plan.min_relay_peers,
            // Loopback peers arrive within seconds; a node still short of them after 10 s is
            // not merely starting.
            starting_grace_secs: 10,
        },
        reconcile_interval_ms: 500,
        dns: Some(DnsConfig {
            listen: plan.dns,
            zone: plan.zone.to_owned(),
            name_servers: Vec::new(),
            hostmaster: None,
            rate_limit: 20,
            rate_limit_slip: 1,
            rate_limit_loopback: false,
        }),
        // On loopback only this machine's users reach it; elsewhere the browser logs in.
        dashboard: DashboardConfig {
            public: plan.api.ip().is_loopback(),
            refresh_secs: 5,
            ..DashboardConfig::default()
        },
        ..ControllerConfig::default()
    };
    // The tree also goes to a whole zone file (SOA and NS), to load into BIND or Knot.
    let zone_file = PublisherConfig::ZoneFile {
        dir: plan.dir.join("zone"),
        zone: Some(plan.zone.to_owned()),
        // Served on this machine: the name server is localhost (an in-zone one needs glue).
        name_servers: vec!["localhost".to_owned()],
        hostmaster: Some(format!("hostmaster.{}", plan.zone)),
    }
    .build()?;
    let mut keyring = Keyring::default();
    keyring.insert("dev", plan.signing_key);
    Ok(Controller::start(config, keyring, vec![zone_file]).await?)
}

/// A node's ports; 0 picks a free one.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Ports {
    pub(super) tcp: u16,
    /// WebSocket, which web clients (js-waku) dial from the tree's records.
    pub(super) ws: u16,
    pub(super) rest: u16,
    pub(super) metrics: u16,
    pub(super) udp: u16,
}

/// One agent of the fleet and what `up` measured of it.
pub(super) struct FleetAgent {
    pub(super) name: String,
    pub(super) agent: Agent,
    /// Resolves to the time from start to the relay-peer target (`None`: not within the limit).
    pub(super) watcher: JoinHandle<Option<Duration>>,
}

impl FleetAgent {
    /// The running node's handle.
    pub(super) fn node(&self) -> anyhow::Result<NodeHandle> {
        self.agent
            .supervisor()
            .current()
            .map(|instance| instance.handle.clone())
            .with_context(|| format!("{}: the node is not running", self.name))
    }
}

/// Node ids (hex) as the registry spells them.
pub(crate) fn node_id(node: &NodeHandle) -> String {
    data_encoding::HEXLOWER.encode(&node.enr().node_id().raw())
}

/// What one agent is started with.
pub(super) struct AgentPlan<'a> {
    pub(super) dir: &'a Path,
    pub(super) name: String,
    pub(super) controller: &'a Api,
    /// Node TCP, REST, metrics and discv5 UDP ports (0: any free port).
    pub(super) ports: Ports,
    pub(super) discv5_bootstrap: Vec<String>,
    pub(super) relay_target: usize,
}

/// Starts one agent in `dir/<name>/`: its node key (created once), an enrolment token from
/// the controller when the registry does not know the node yet, a loopback node that finds the
/// others through discv5.
pub(super) async fn start_agent(
    plan: AgentPlan<'_>,
    registry: &[Value],
) -> anyhow::Result<FleetAgent> {
    let data_dir = plan.dir.join(&plan.name);
    std::fs::create_dir_all(&data_dir).with_context(|| format!("{}", data_dir.display()))?;
    let (key, keyfile, password_file) = dev_key(&data_dir, "node-key")?;
    let id = data_encoding::HEXLOWER.encode(&enr::NodeId::from(*key.verifying_key()).raw());
    let token_file = data_dir.join("enrol-token");
    let enrolled = agent::state::StateFile::open(&data_dir)?.state().enrolled_node_id.is_some();
    let known = registry.iter().any(|n| n["nodeId"].as_str() == Some(id.as_str()));
    // A spent token is of no use; a new one only when the controller does not know the node.
    let _ = std::fs::remove_file(&token_file);
    if !(enrolled && known) {
        let token = plan.controller.token(&format!("up {}", plan.name)).await?;
        files::write_secret_new(&token_file, &token)?;
    }
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let Ports { tcp, ws, rest, metrics, udp } = plan.ports;
    let config = AgentConfig {
        data_dir,
        controller: ControllerSection {
            url: plan.controller.base().to_owned(),
            token_file: Some(token_file),
            ca_file: None,
            label: Some(format!("up {}", plan.name)),
            roles: Vec::new(),
            report_interval: REPORT_INTERVAL,
            request_timeout: Duration::from_secs(5),
            queue_limit: 2880,
        },
        supervisor: SupervisorSection::default(),
        compat: CompatSection {
            rest_address: Some(SocketAddr::new(loopback, rest)),
            metrics_address: Some(SocketAddr::new(loopback, metrics)),
        },
        probe: ProbeSection::default(),
        links: EmbeddedLinks::default(),
        node: node::options::NodeOptions {
            nodekey: Some(keyfile),
            password_file: Some(password_file),
            listen_address: Some(loopback),
            tcp_port: Some(tcp),
            websocket_support: Some(true),
            websocket_port: Some(ws),
            cluster_id: Some(CLUSTER),
            shard: vec![0],
            discv5_discovery: Some(true),
            discv5_udp_port: Some(udp),
            discv5_bootstrap_node: plan.discv5_bootstrap,
            ip_colocation_limit: Some(0),
            ..node::options::NodeOptions::default()
        },
    };
    let started = Instant::now();
    let agent = Agent::start(config, key).await?;
    let watcher =
        tokio::spawn(watch_relay_peers(agent.supervisor().clone(), started, plan.relay_target));
    Ok(FleetAgent { name: plan.name, agent, watcher })
}

/// Most discv5 bootstrap records an agent is given.
const DISCV5_BOOTSTRAP: usize = 16;

/// The discv5 bootstrap records for the agent started after `agents`: the records of the last
/// [`DISCV5_BOOTSTRAP`] of them, so it can dial them at once (later ones dial it). Found
/// through discv5, peers are not fleet nodes to each other, so the node's diversity rule never
/// sheds them, and a node's bootstrap latency includes real discovery.
pub(super) fn discv5_bootstrap(agents: &[FleetAgent]) -> anyhow::Result<Vec<String>> {
    let skip = agents.len().saturating_sub(DISCV5_BOOTSTRAP);
    agents[skip..].iter().map(|agent| Ok(agent.node()?.enr().to_base64())).collect()
}

/// Time from `started` until the supervised node has `target` relay peers.
async fn watch_relay_peers(
    supervisor: SupervisorHandle,
    started: Instant,
    target: usize,
) -> Option<Duration> {
    while started.elapsed() < STEP_LIMIT * 2 {
        if let Some(instance) = supervisor.current()
            && instance.handle.stats().await.is_ok_and(|s| s.relay_peers >= target)
        {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// The node that joins from the tree alone, with nwaku's REST and metrics ports.
pub(super) struct BootstrapNode {
    pub(super) handle: NodeHandle,
    pub(super) task: JoinHandle<()>,
    pub(super) rest: SocketAddr,
    pub(super) metrics: SocketAddr,
    servers: Vec<JoinHandle<()>>,
    pub(super) started: Instant,
}

impl BootstrapNode {
    async fn shutdown(self) {
        self.handle.shutdown().await;
        let _ = self.task.await;
        for server in self.servers {
            server.abort();
        }
    }
}

/// Starts a node whose only source of peers is the tree at `url`, resolved through `dns`.
pub(super) async fn start_bootstrap_node(
    url: &str,
    dns: SocketAddr,
    ports: Ports,
) -> anyhow::Result<BootstrapNode> {
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let defaults = NodeConfig::default();
    let mut peer_manager = defaults.peer_manager.clone();
    peer_manager.max_peers_per_ip = 0; // every peer is on 127.0.0.1
    let config = NodeConfig {
        listen_ip: loopback,
        tcp_port: ports.tcp,
        websocket_port: Some(ports.ws),
        cluster_id: CLUSTER,
        shards: vec![0],
        dns_discovery_urls: vec![url.to_owned()],
        dns_name_server: Some(dns),
        peer_manager,
        ..defaults
    };
    let max_message_size = config.max_message_size;
    let started = Instant::now();
    let (handle, task) = node::running::start(config).await?;
    let mut servers = Vec::new();
    let rest_listener = bind(SocketAddr::new(loopback, ports.rest), "REST").await?;
    let rest = rest_listener.local_addr()?;
    let router = rest::router(handle.clone(), rest::RestSettings::new(max_message_size));
    servers.push(tokio::spawn(async move {
        let _ = axum::serve(rest_listener, router).await;
    }));
    let metrics_listener = bind(SocketAddr::new(loopback, ports.metrics), "metrics").await?;
    let metrics = metrics_listener.local_addr()?;
    let router = rest::metrics_router(handle.clone());
    servers.push(tokio::spawn(async move {
        let _ = axum::serve(metrics_listener, router).await;
    }));
    Ok(BootstrapNode { handle, task, rest, metrics, servers, started })
}

async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await.with_context(|| format!("{what} on {addr}"))
}
