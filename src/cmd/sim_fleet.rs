//! The simulation's fleet, run as operators run one: the controller (its registry on an SQLite
//! file in the output directory, its DNS server, a tree built from the healthy nodes and signed
//! with a key it holds online) and one agent per fleet node, enrolled with a one-time token,
//! reporting signed health, and told of the other fleet nodes by the controller's fleet hint.
//! The clients get the tree's URL from the controller, as an operator would hand it out.
//!
//! While the simulation runs, [`ControllerWatch`] scrapes `/metrics` as Prometheus would and
//! keeps what the controller's own work costs at this size: its reconcile pass and the scrape
//! itself; at the end the dashboard and the registry are timed too.

use std::{
    collections::BTreeSet,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use agent::{
    Agent, AgentConfig,
    config::{CompatSection, ControllerSection, EmbeddedLinks, ProbeSection, SupervisorSection},
};
use anyhow::Context;
use node::{enrtree::NodeRecord, running::NodeHandle, tcp_transport::LinkModel};
use serde::Serialize;

use super::{
    bench::percentile,
    up::{TREE, api::Api, fleet, wait},
};
use crate::files;

/// The zone the controller's DNS server answers for, and the tree's name in it.
const ZONE: &str = "sim.test";
pub(crate) const DOMAIN: &str = "nodes.sim.test";
/// How often each agent reports. At a thousand simulated nodes every core is busy relaying, so
/// the agents report as a real fleet does rather than as `up`'s local one (500 ms).
const REPORT_INTERVAL: Duration = Duration::from_secs(2);
/// Between two scrapes of `/metrics`.
const SCRAPE_EVERY: Duration = Duration::from_secs(2);
/// Times each page is fetched at the end; the median is kept.
const PAGE_SAMPLES: usize = 5;
/// Scrape times kept: ten hours of scrapes.
const MAX_SCRAPES: usize = 18_000;

/// One fleet node to start.
pub(crate) struct FleetNode {
    pub(crate) ip: Ipv4Addr,
    pub(crate) shards: Vec<u16>,
}

/// What the fleet is started with.
pub(crate) struct FleetPlan<'a> {
    /// The simulation's output directory: the fleet keeps its files in `fleet/` under it.
    pub(crate) dir: &'a Path,
    pub(crate) nodes: Vec<FleetNode>,
    pub(crate) num_shards: u16,
    pub(crate) cluster: u16,
    pub(crate) links: Option<Arc<dyn LinkModel>>,
    /// How long the fleet may take to pass.
    pub(crate) limit: Duration,
}

/// The running fleet: the controller and its agents.
pub(crate) struct SimFleet {
    controller: ControllerThread,
    api: Api,
    agents: Vec<Option<Agent>>,
    /// The signed tree's URL, as the controller publishes it.
    pub(crate) url: String,
    /// The controller's DNS server.
    pub(crate) dns: SocketAddr,
    /// The fleet's node handles, in the plan's order.
    pub(crate) nodes: Vec<NodeHandle>,
    watch: ControllerWatch,
}

impl SimFleet {
    /// Starts the controller and every agent, then waits until every fleet node passes in the
    /// registry and the controller's DNS server serves a tree listing them (as many as a tree
    /// may list).
    pub(crate) async fn start(plan: FleetPlan<'_>) -> anyhow::Result<Self> {
        let dir = plan.dir.join("fleet");
        // A fresh registry: nodes of an earlier run in the same directory are not this fleet.
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
        }
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let (signing_key, _, _) = fleet::dev_key(&dir, "signing-key")?;
        let (token, token_file) = fleet::admin_token(&dir)?;
        let count = plan.nodes.len();
        // A fleet smaller than the relay target can only reach the others.
        let min_relay_peers = node::running::TARGET_RELAY_PEERS.min(count.saturating_sub(1)) as u32;
        let controller =
            ControllerThread::start(dir.clone(), signing_key, token_file, min_relay_peers)
                .await
                .context("starting the controller")?;
        let dns = controller.dns;
        let api = Api::new(controller.http, token)?;
        let max_entries = count.min(controller::policy::MAX_ENTRIES);
        let definition = serde_json::json!({
            "domain": DOMAIN,
            "signer": "key:dev",
            "policy": {
                "roles": ["relay"],
                "services": ["relay"],
                "clusterId": plan.cluster,
                "maxEntries": max_entries,
            },
        });
        api.define_tree(TREE, &definition).await.context("defining the tree")?;

        let mut agents = Vec::with_capacity(count);
        let mut nodes: Vec<NodeHandle> = Vec::with_capacity(count);
        for (index, planned) in plan.nodes.iter().enumerate() {
            let name = format!("fleet-{index}");
            let token = api.relay_token(&name, plan.cluster, &planned.shards).await?;
            // The first node's record starts discv5; the controller's hint does the rest.
            let bootstrap: Vec<String> =
                nodes.first().map(|n| n.enr().to_base64()).into_iter().collect();
            let config = agent_config(&dir, &name, &token, &api, planned, &plan, bootstrap)?;
            let agent = Agent::start(config, node::crypto::generate_key())
                .await
                .with_context(|| format!("starting agent {name}"))?;
            let handle = agent
                .supervisor()
                .current()
                .map(|instance| instance.handle.clone())
                .with_context(|| format!("{name}: its node is not running"))?;
            nodes.push(handle);
            agents.push(Some(agent));
        }
        let ids: Vec<String> = nodes.iter().map(fleet::node_id).collect();
        if let Err(error) = wait::passing(&api, &ids, plan.limit).await {
            // What the nodes short of peers saw, for whoever has to find out why.
            for (index, node) in nodes.iter().enumerate() {
                if let Ok(stats) = node.stats().await
                    && stats.relay_peers < min_relay_peers as usize
                {
                    eprintln!("fleet node {index}: {}", super::bench_node::short_node(&stats));
                }
            }
            return Err(error.context("waiting for the fleet to pass"));
        }
        let records = nodes
            .iter()
            .map(|n| Ok(n.enr().to_base64().parse::<NodeRecord>()?.to_string()))
            .collect::<anyhow::Result<BTreeSet<String>>>()?;
        let (url, _, listed) =
            wait::published(&api, &records, max_entries).await.context("waiting for the tree")?;
        wait::resolved(dns, &url, &listed).await.context("the tree over DNS")?;
        let watch = ControllerWatch::start(controller.http);
        Ok(Self { controller, api, agents, url, dns, nodes, watch })
    }

    /// Stops fleet node `index`'s agent and node (the links should be cut first: a crashed
    /// host says goodbye to nobody). The agent's last report still reaches the controller, as
    /// its HTTP does not cross the modelled links: the registry learns at once.
    pub(crate) async fn stop(&mut self, index: usize) {
        if let Some(agent) = self.agents.get_mut(index).and_then(Option::take) {
            agent.shutdown().await;
        }
    }

    /// The controller's figures so far, with its dashboard and registry timed now.
    pub(crate) async fn figures(&self) -> anyhow::Result<ControllerFigures> {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
        let dashboard = format!("{}/", self.api.base());
        let dashboard_ms = median_ms(async || {
            let response = http.get(&dashboard).send().await?.error_for_status()?;
            response.bytes().await.map(drop)
        })
        .await
        .context("GET /")?;
        let registry_ms = median_ms(async || self.api.nodes().await.map(drop))
            .await
            .context("GET /api/v1/nodes")?;
        let registry = self.api.nodes().await?;
        let passing = registry.iter().filter(|n| n["health"] == "passing").count();
        let tree = self.api.tree(TREE).await?;
        let published = tree["versions"]
            .as_array()
            .and_then(|v| v.iter().find(|v| v["state"] == "published"))
            .cloned()
            .unwrap_or_default();
        let scraped = self.watch.scraped();
        let mut scrapes = scraped.scrapes.clone();
        scrapes.sort_unstable();
        Ok(ControllerFigures {
            agents: self.agents.len(),
            registry_passing: passing,
            tree_seq: published["seq"].as_u64().unwrap_or(0),
            tree_records: published["enrs"].as_array().map_or(0, Vec::len),
            reconcile_seconds: ReconcileFigures {
                last: scraped.reconcile_last,
                max: scraped.reconcile_max,
                passes: scraped.passes,
            },
            metrics_scrape_ms: ScrapeFigures {
                scrapes: scrapes.len(),
                p50: ms(percentile(&scrapes, 0.5)),
                max: ms(percentile(&scrapes, 1.0)),
                failed: scraped.failed,
            },
            dashboard_ms,
            registry_ms,
        })
    }

    /// Stops the agents that still run, then the controller.
    pub(crate) async fn shutdown(self) {
        self.watch.task.abort();
        for agent in self.agents.into_iter().flatten() {
            agent.shutdown().await;
        }
        self.controller.shutdown().await;
    }
}

/// The controller on a thread and runtime of its own. In the nodes' runtime its tasks would
/// queue behind a thousand nodes' and its figures would be that queue; on its own thread the
/// kernel shares the cores between it and the nodes, as between two processes.
struct ControllerThread {
    http: SocketAddr,
    dns: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    stopped: tokio::sync::oneshot::Receiver<()>,
}

impl ControllerThread {
    async fn start(
        dir: PathBuf,
        signing_key: k256::ecdsa::SigningKey,
        token_file: PathBuf,
        min_relay_peers: u32,
    ) -> anyhow::Result<Self> {
        let (ready_tx, ready) = tokio::sync::oneshot::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (stopped_tx, stopped) = tokio::sync::oneshot::channel();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        std::thread::Builder::new().name("sim-controller".into()).spawn(move || {
            runtime.block_on(async move {
                let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
                let started = fleet::start_controller(fleet::ControllerPlan {
                    dir: &dir,
                    api: SocketAddr::new(loopback, 0),
                    dns: SocketAddr::new(loopback, 0),
                    zone: ZONE,
                    signing_key,
                    token_file,
                    min_relay_peers,
                })
                .await;
                match started {
                    Ok(controller) => {
                        let addrs = controller.dns_addr().map(|dns| (controller.http_addr(), dns));
                        let _ = ready_tx.send(addrs.context("the controller has no DNS server"));
                        let _ = stop_rx.await;
                        controller.shutdown().await;
                    }
                    Err(error) => {
                        let _ = ready_tx.send(Err(error));
                    }
                }
                let _ = stopped_tx.send(());
            });
        })?;
        let (http, dns) = ready.await.context("the controller's thread ended")??;
        Ok(Self { http, dns, stop, stopped })
    }

    async fn shutdown(self) {
        let _ = self.stop.send(());
        let _ = self.stopped.await;
    }
}

/// One agent's configuration: the node on its own address with its shards, discv5 and peer
/// exchange, on the simulation's links; no nwaku ports (a thousand would be noise).
fn agent_config(
    dir: &Path,
    name: &str,
    token: &str,
    api: &Api,
    planned: &FleetNode,
    plan: &FleetPlan<'_>,
    bootstrap: Vec<String>,
) -> anyhow::Result<AgentConfig> {
    let data_dir = dir.join(name);
    std::fs::create_dir_all(&data_dir).with_context(|| format!("{}", data_dir.display()))?;
    let token_file: PathBuf = data_dir.join("enrol-token");
    files::write_secret_new(&token_file, token)?;
    Ok(AgentConfig {
        data_dir,
        controller: ControllerSection {
            url: api.base().to_owned(),
            token_file: Some(token_file),
            ca_file: None,
            label: Some(name.to_owned()),
            roles: Vec::new(),
            report_interval: REPORT_INTERVAL,
            request_timeout: Duration::from_secs(10),
            queue_limit: 2880,
        },
        supervisor: SupervisorSection::default(),
        compat: CompatSection::default(),
        probe: ProbeSection::default(),
        links: EmbeddedLinks(plan.links.clone()),
        node: node::options::NodeOptions {
            listen_address: Some(IpAddr::V4(planned.ip)),
            tcp_port: Some(0),
            websocket_support: Some(false),
            cluster_id: Some(plan.cluster),
            shard: planned.shards.clone(),
            num_shards_in_network: Some(plan.num_shards),
            discv5_discovery: Some(true),
            discv5_udp_port: Some(0),
            discv5_bootstrap_node: bootstrap,
            peer_exchange: Some(true),
            ..node::options::NodeOptions::default()
        },
    })
}

/// Runs `call` [`PAGE_SAMPLES`] times: the median time in ms.
async fn median_ms<E>(mut call: impl AsyncFnMut() -> Result<(), E>) -> Result<f64, E> {
    let mut times = Vec::with_capacity(PAGE_SAMPLES);
    for _ in 0..PAGE_SAMPLES {
        let started = Instant::now();
        call().await?;
        times.push(started.elapsed());
    }
    times.sort_unstable();
    Ok(ms(percentile(&times, 0.5)))
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

/// `results.json`'s `controller`.
#[derive(Debug, Serialize)]
pub(crate) struct ControllerFigures {
    /// Agents the fleet started with.
    agents: usize,
    /// Registry entries passing at the end.
    registry_passing: usize,
    /// The published tree at the end.
    tree_seq: u64,
    tree_records: usize,
    reconcile_seconds: ReconcileFigures,
    /// Every scrape of `/metrics` during the run.
    metrics_scrape_ms: ScrapeFigures,
    /// The dashboard page (`GET /`), median of a few, at the end.
    dashboard_ms: f64,
    /// The registry (`GET /api/v1/nodes`), median of a few, at the end.
    registry_ms: f64,
}

impl ControllerFigures {
    /// One line for the terminal.
    pub(crate) fn summary(&self) -> String {
        format!(
            "{} agents, {} passing; tree seq {} with {} records; reconcile pass last {:.0} ms, max {:.0} ms over {} passes; /metrics p50 {:.1} ms, max {:.1} ms ({} scrapes, {} failed); dashboard {:.1} ms; registry {:.1} ms",
            self.agents,
            self.registry_passing,
            self.tree_seq,
            self.tree_records,
            self.reconcile_seconds.last * 1e3,
            self.reconcile_seconds.max * 1e3,
            self.reconcile_seconds.passes,
            self.metrics_scrape_ms.p50,
            self.metrics_scrape_ms.max,
            self.metrics_scrape_ms.scrapes,
            self.metrics_scrape_ms.failed,
            self.dashboard_ms,
            self.registry_ms
        )
    }
}

#[derive(Debug, Serialize)]
struct ReconcileFigures {
    /// As the last scrape saw `wakufleet_reconcile_last_duration_seconds`.
    last: f64,
    /// The longest pass any scrape saw.
    max: f64,
    /// `wakufleet_reconcile_passes_total` at the last scrape.
    passes: u64,
}

#[derive(Debug, Serialize)]
struct ScrapeFigures {
    scrapes: usize,
    p50: f64,
    max: f64,
    failed: usize,
}

/// What the scrapes saw.
#[derive(Debug, Clone, Default)]
struct Scraped {
    reconcile_last: f64,
    reconcile_max: f64,
    passes: u64,
    /// How long each scrape took, the first [`MAX_SCRAPES`].
    scrapes: Vec<Duration>,
    failed: usize,
}

/// Scrapes the controller's `/metrics` every [`SCRAPE_EVERY`] in the background.
struct ControllerWatch {
    seen: Arc<Mutex<Scraped>>,
    task: tokio::task::JoinHandle<()>,
}

impl ControllerWatch {
    fn start(addr: SocketAddr) -> Self {
        let seen = Arc::new(Mutex::new(Scraped::default()));
        let task = tokio::spawn(scrape_loop(format!("http://{addr}/metrics"), seen.clone()));
        Self { seen, task }
    }

    fn scraped(&self) -> Scraped {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

async fn scrape_loop(url: String, seen: Arc<Mutex<Scraped>>) {
    let Ok(http) = reqwest::Client::builder().timeout(Duration::from_secs(10)).build() else {
        return;
    };
    loop {
        let started = Instant::now();
        let text = match http.get(&url).send().await {
            Ok(response) if response.status().is_success() => response.text().await.ok(),
            _ => None,
        };
        let took = started.elapsed();
        if let Ok(mut seen) = seen.lock() {
            match text {
                Some(text) => {
                    if seen.scrapes.len() < MAX_SCRAPES {
                        seen.scrapes.push(took);
                    }
                    if let Some(last) = metric(&text, "wakufleet_reconcile_last_duration_seconds") {
                        seen.reconcile_last = last;
                        seen.reconcile_max = seen.reconcile_max.max(last);
                    }
                    let passes = metric(&text, "wakufleet_reconcile_passes_total{result=\"ok\"}")
                        .unwrap_or(0.0)
                        + metric(&text, "wakufleet_reconcile_passes_total{result=\"error\"}")
                            .unwrap_or(0.0);
                    seen.passes = passes as u64;
                }
                None => seen.failed += 1,
            }
        }
        tokio::time::sleep(SCRAPE_EVERY).await;
    }
}

/// The value of the sample named exactly `name` (with its labels) in Prometheus's text format.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        rest.strip_prefix(' ')?.split_whitespace().next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_finds_the_sample_named_exactly() {
        let text = "# HELP x y\nwakufleet_reconcile_last_duration_seconds 0.25\n\
                    wakufleet_reconcile_passes_total{result=\"ok\"} 12\n\
                    wakufleet_reconcile_passes_total{result=\"error\"} 1\n";
        assert_eq!(metric(text, "wakufleet_reconcile_last_duration_seconds"), Some(0.25));
        assert_eq!(metric(text, "wakufleet_reconcile_passes_total{result=\"ok\"}"), Some(12.0));
        assert_eq!(metric(text, "wakufleet_reconcile_last"), None);
        assert_eq!(metric(text, "missing"), None);
    }
}
