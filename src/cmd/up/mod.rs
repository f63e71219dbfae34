//! `wakufleet up`: the quick start, a whole local fleet in one process — the controller on an
//! SQLite file with its DNS server, agents running loopback nodes and enrolled with one-time
//! tokens, a tree of the healthy relay nodes signed with a development key and served over
//! DNS, then one more node that joins from that tree alone. Ctrl-C or SIGTERM stops everything
//! (agents, nodes, controller); `--once` stops once the last node has its relay peers.
//!
//! - [`fleet`] — the parts and how each is started and stopped.
//! - [`api`] — the controller's operator API, over HTTP.
//! - [`wait`] — the waits between steps: nodes passing, the tree published, served over DNS.
//! - [`report`] — what is printed: addresses, health, bootstrap latencies.

pub(crate) mod api;
pub(crate) mod fleet;
mod report;
pub(crate) mod wait;

use std::{collections::BTreeSet, net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::Context;
use clap::Args;
use node::{enrtree::NodeRecord, running::TARGET_RELAY_PEERS};

use self::{
    api::Api,
    fleet::{Fleet, Ports, STEP_LIMIT},
    report::{NodeLine, Summary},
};
use crate::cmd::controller::wait_for_stop;

/// The tree's name in the controller.
pub(crate) const TREE: &str = "nodes";
/// Records per tree: js-waku resolves at most 8 leaves.
const MAX_ENTRIES: usize = controller::policy::JS_WAKU_ENTRIES;

#[derive(Debug, Args)]
pub(crate) struct UpArgs {
    /// Working directory: keys, the controller's database, the agents' state.
    #[arg(long, default_value = "wakufleet-local")]
    dir: PathBuf,
    /// Number of agents, each running a node (one more node then joins from the tree).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(2..=50))]
    nodes: u16,
    /// Domain of the tree.
    #[arg(long, default_value = "nodes.wakufleet.local")]
    domain: String,
    /// Address of the controller's DNS server (UDP and TCP); port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:8053")]
    dns: SocketAddr,
    /// Address of the controller's HTTP API; port 0 (the default) picks a free one.
    #[arg(long, default_value = "127.0.0.1:0")]
    api: SocketAddr,
    /// First port of the nodes: node i listens on BASE+i (TCP), its REST API on BASE+100+i,
    /// its metrics on BASE+200+i, discv5 on BASE+300+i (UDP) and WebSocket on BASE+400+i.
    /// Without it every port is picked free.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=65_000))]
    base_port: Option<u16>,
    /// Stop once the node joining from the tree has its relay peers (for tests and CI).
    #[arg(long)]
    once: bool,
}

impl UpArgs {
    /// Ports of node `i` (the joining node is `i = nodes`).
    fn ports(&self, i: u16) -> Ports {
        self.base_port.map_or(Ports::default(), |base| Ports {
            tcp: base + i,
            rest: base + 100 + i,
            metrics: base + 200 + i,
            udp: base + 300 + i,
            ws: base + 400 + i,
        })
    }

    /// The zone the DNS server is authoritative for: the domain's parent.
    fn zone(&self) -> &str {
        self.domain.split_once('.').map_or(self.domain.as_str(), |(_, parent)| parent)
    }
}

pub(crate) async fn run(args: UpArgs) -> anyhow::Result<()> {
    let mut fleet = Fleet::default();
    let outcome = tokio::select! {
        summary = bring_up(&args, &mut fleet) => Some(summary),
        stop = wait_for_stop() => { stop?; None }
    };
    let result = match outcome {
        Some(Ok(summary)) => {
            summary.print();
            if args.once {
                Ok(())
            } else {
                println!("running; Ctrl-C or SIGTERM stops it");
                wait_for_stop().await
            }
        }
        Some(Err(error)) => Err(error),
        None => {
            eprintln!("stopping before the fleet was up");
            Ok(())
        }
    };
    fleet.shutdown().await;
    if result.is_ok() && !args.once {
        println!("stopped");
    }
    result
}

/// Every step in order; an error names its step.
async fn bring_up(args: &UpArgs, fleet: &mut Fleet) -> anyhow::Result<Summary> {
    let dir = &args.dir;
    std::fs::create_dir_all(dir).with_context(|| format!("working directory {}", dir.display()))?;
    if args.base_port.is_some_and(|base| u32::from(base) + 400 + u32::from(args.nodes) > 65_535) {
        anyhow::bail!("--base-port: the nodes' ports would pass 65535");
    }
    let n = usize::from(args.nodes);
    // A node can reach at most the others: 6 relay peers, or every other node when fewer.
    let agent_target = TARGET_RELAY_PEERS.min(n - 1);
    let joiner_target = TARGET_RELAY_PEERS.min(n);

    let (signing_key, keyfile, _) =
        fleet::dev_key(dir, "dev-signing-key").context("development signing key")?;
    let (token, token_file) = fleet::admin_token(dir).context("admin token")?;
    let controller = fleet::start_controller(fleet::ControllerPlan {
        dir,
        api: args.api,
        dns: args.dns,
        zone: args.zone(),
        signing_key,
        token_file: token_file.clone(),
        min_relay_peers: agent_target as u32,
    })
    .await
    .context("starting the controller")?;
    let http = controller.http_addr();
    let dns = controller.dns_addr().context("starting the controller: no DNS server")?;
    fleet.controller = Some(controller);
    let api = Api::new(http, token).context("controller API client")?;

    let definition = serde_json::json!({
        "domain": args.domain,
        "signer": "key:dev",
        "policy": { "roles": ["relay"], "services": ["relay"], "clusterId": fleet::CLUSTER, "maxEntries": MAX_ENTRIES },
    });
    api.define_tree(TREE, &definition).await.context("defining the tree")?;

    let registry = api.nodes().await.context("reading the registry")?;
    for i in 0..args.nodes {
        let name = format!("node-{}", i + 1);
        let plan = fleet::AgentPlan {
            dir,
            name: name.clone(),
            controller: &api,
            ports: args.ports(i),
            discv5_bootstrap: fleet::discv5_bootstrap(&fleet.agents)?,
            relay_target: agent_target,
        };
        let agent = fleet::start_agent(plan, &registry)
            .await
            .with_context(|| format!("starting agent {name}"))?;
        fleet.agents.push(agent);
    }

    let mut ids = Vec::new();
    let mut records = BTreeSet::new();
    for agent in &fleet.agents {
        let node = agent.node()?;
        ids.push(fleet::node_id(&node));
        records.insert(node.enr().to_base64().parse::<NodeRecord>()?.to_string());
    }
    wait::passing(&api, &ids, fleet::STEP_LIMIT).await.context("waiting for the nodes to pass")?;
    let (url, seq, listed) =
        wait::published(&api, &records, MAX_ENTRIES).await.context("waiting for the tree")?;

    wait::resolved(dns, &url, &listed).await.context("DNS check")?;

    let joiner = fleet::start_bootstrap_node(&url, dns, args.ports(args.nodes))
        .await
        .context("starting the node that bootstraps from the tree")?;
    let limit = STEP_LIMIT;
    let joined = joiner.handle.wait_for_relay_peers(joiner_target, limit).await;
    let joiner_seconds = joiner.started.elapsed();
    let joiner_stats = joiner.handle.stats().await.ok();
    let joiner_line = NodeLine {
        name: "joiner".into(),
        listen: joiner.handle.listen_addrs().into_iter().next(),
        websocket: joiner.handle.websocket_addr(),
        rest: Some(joiner.rest),
        metrics: Some(joiner.metrics),
        health: format!(
            "joined from the tree: {} records from DNS",
            joiner_stats.as_ref().map_or(0, |s| s.dns_discovered)
        ),
        seconds: joined.is_ok().then_some(joiner_seconds),
        reported: None,
    };
    fleet.bootstrap = Some(joiner);
    joined.with_context(|| format!("bootstrapping from {url}"))?;

    // Health and reported figures as they stand now, with the joiner connected.
    let registry = api.nodes().await.context("reading the registry")?;
    let mut nodes = Vec::new();
    for (agent, id) in fleet.agents.iter_mut().zip(&ids) {
        let entry = registry.iter().find(|n| n["nodeId"].as_str() == Some(id.as_str()));
        let seconds = tokio::time::timeout(Duration::from_secs(1), &mut agent.watcher)
            .await
            .ok()
            .and_then(Result::ok)
            .flatten();
        nodes.push(NodeLine {
            name: agent.name.clone(),
            listen: agent.node()?.listen_addrs().into_iter().next(),
            websocket: agent.node()?.websocket_addr(),
            rest: agent.agent.rest_addr(),
            metrics: agent.agent.metrics_addr(),
            health: entry.and_then(|e| e["health"].as_str()).unwrap_or("unknown").to_owned(),
            seconds,
            reported: entry.and_then(|e| e["lastReport"]["figures"]["bootstrapSeconds"].as_f64()),
        });
    }
    nodes.push(joiner_line);
    Ok(Summary {
        dir: dir.clone(),
        api: http,
        dns,
        zone: args.zone().to_owned(),
        domain: args.domain.clone(),
        url,
        seq,
        listed: listed.len(),
        keyfile,
        token_file,
        agent_target,
        joiner_target,
        nodes,
    })
}
