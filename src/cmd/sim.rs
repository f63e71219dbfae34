//! `wakufleet sim`: many embedded nodes on this machine, bootstrapping as Waku's clients do,
//! with the fleet part real, measured into `results.json`.
//!
//! Each node runs in this process on its own loopback address, one per /24
//! (`127.16.0.1`, `127.16.1.1`, …), with the node's default connection limits except the
//! per-IP one (TCP dials leave from 127.0.0.1, see [`node_config`]). The first `--fleet` nodes are the fleet: they find each
//! other through discv5 (as the controller's fleet hint gives them each other's records), and
//! their records are published as a signed EIP-1459 tree by the controller's own DNS server.
//! Every other node is given only the tree's URL and the DNS server: DNS discovery, then
//! discv5 from what the tree listed, then peer exchange — never a fleet address by hand.
//!
//! Scenarios: `cold-start` (every node started, time to its relay target and where its relay
//! peers come from). Besides `results.json`: CDFs of bootstrap time and fleet share as SVG and
//! `report.html` showing them ([`super::sim_plot`]). Not yet: the controller's registry and
//! agents in the loop, latency and bandwidth models, the message scenarios, several processes.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use clap::Args;
use controller::publish::{dns_server::DnsServer, zone::TxtZone};
use libp2p::PeerId;
use node::{
    config::NodeConfig,
    crypto::generate_key,
    discovery_v5::Discv5Config,
    enrtree::{NodeRecord, Tree},
    running::{NodeHandle, TARGET_RELAY_PEERS, start},
};
use serde::Serialize;

/// The tree's domain on the simulation's DNS server.
const DOMAIN: &str = "nodes.sim.test";
/// Between progress lines.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// `wakufleet sim` arguments.
#[derive(Debug, Args)]
pub(crate) struct SimArgs {
    /// Nodes in all, the fleet's among them.
    #[arg(long, default_value_t = 100)]
    nodes: usize,
    /// Fleet nodes (default: one in twenty, at least 3).
    #[arg(long)]
    fleet: Option<usize>,
    /// What to run: cold-start.
    #[arg(long, default_value = "cold-start")]
    scenario: String,
    /// Where results.json goes (created).
    #[arg(long)]
    out: PathBuf,
    /// How long every node may take to reach its relay target.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    limit: Duration,
}

/// `results.json`.
#[derive(Debug, Serialize)]
struct Results {
    scenario: String,
    nodes: usize,
    fleet_nodes: usize,
    /// Nodes that reached [`TARGET_RELAY_PEERS`] within the limit.
    reached_target: usize,
    relay_peers: RelayPeers,
    /// From each node's start to its relay target (nodes that reached it).
    bootstrap_seconds: Spread,
    /// Share of each non-fleet node's relay peers that are fleet nodes.
    fleet_share: Share,
    /// Resident memory of this process over the nodes.
    rss_bytes_per_node: u64,
    /// Seconds from the first start to every node at its target (or the limit).
    wall_seconds: f64,
    /// Message figures: only scenarios that send messages fill these.
    propagation_ms: Option<Spread>,
    delivery_ratio: Option<f64>,
    bandwidth_bytes_per_sec_per_node: Option<Bandwidth>,
}

#[derive(Debug, Serialize)]
struct RelayPeers {
    min: usize,
    p50: usize,
}

#[derive(Debug, Serialize)]
struct Spread {
    p50: f64,
    p95: f64,
    p99: f64,
    max: f64,
}

#[derive(Debug, Serialize)]
struct Share {
    mean: f64,
    max: f64,
}

#[derive(Debug, Serialize)]
struct Bandwidth {
    in_mean: f64,
    out_mean: f64,
}

/// Node `index`'s address: its own /24.
fn address(index: usize) -> anyhow::Result<Ipv4Addr> {
    let b = 16 + index / 250;
    let c = index % 250;
    let b = u8::try_from(b).ok().filter(|b| *b < 255).with_context(|| {
        format!("at most {} nodes: one /24 each, 127.16.0.0 to 127.254.249.0", (255 - 16) * 250)
    })?;
    Ok(Ipv4Addr::new(127, b, c as u8, 1))
}

/// The spread of `sorted` in seconds.
fn spread(sorted: &[Duration]) -> Spread {
    let at = |p: f64| super::bench::percentile(sorted, p).as_secs_f64();
    Spread { p50: at(0.5), p95: at(0.95), p99: at(0.99), max: at(1.0) }
}

pub(crate) async fn run(args: SimArgs) -> anyhow::Result<()> {
    if args.scenario != "cold-start" {
        bail!("unknown scenario {:?}: cold-start (the others are not built yet)", args.scenario);
    }
    let fleet = args.fleet.unwrap_or((args.nodes / 20).max(3)).min(args.nodes);
    if args.nodes < 2 || fleet == 0 {
        bail!("a simulation needs at least 2 nodes and 1 fleet node");
    }
    // Every address must be usable before anything starts.
    let last = address(args.nodes - 1)?;
    if std::net::UdpSocket::bind((last, 0)).is_err() {
        bail!("cannot bind {last}: loopback addresses beyond 127.0.0.1 are not routed here");
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;

    let started = Instant::now();
    let mut nodes: Vec<NodeHandle> = Vec::with_capacity(args.nodes);
    // The fleet: discv5 among themselves from the first one's record.
    let mut fleet_boot = Vec::new();
    for index in 0..fleet {
        let config = node_config(address(index)?, fleet_boot.clone(), Vec::new(), None);
        let (handle, _) = start(config).await.with_context(|| format!("fleet node {index}"))?;
        if fleet_boot.is_empty() {
            fleet_boot.push(handle.enr().to_base64());
        }
        nodes.push(handle);
    }
    let fleet_ids: std::collections::HashSet<PeerId> =
        nodes.iter().map(NodeHandle::peer_id).collect();

    // Their tree, signed and served by the controller's DNS server.
    let records = nodes
        .iter()
        .map(|n| n.enr().to_base64().parse::<NodeRecord>())
        .collect::<Result<Vec<_>, _>>()?;
    let mut tree = Tree::build(1, records, vec![])?;
    let url = tree.sign(&generate_key(), DOMAIN).to_string();
    let dns = DnsServer::start(
        (Ipv4Addr::LOCALHOST, 0).into(),
        vec![TxtZone::from_tree(&tree, DOMAIN, 60, 3600)],
    )
    .await
    .context("starting the DNS server")?;
    let dns_addr: SocketAddr = dns.local_addr();

    // Everyone else, as clients join: the tree's URL and nothing else.
    for index in fleet..args.nodes {
        let config = node_config(address(index)?, Vec::new(), vec![url.clone()], Some(dns_addr));
        let (handle, _) = start(config).await.with_context(|| format!("node {index}"))?;
        nodes.push(handle);
        if index % 50 == 0 {
            eprintln!(
                "sim: starting, {}/{} nodes up, {:.1?}",
                index + 1,
                args.nodes,
                started.elapsed()
            );
        }
    }
    let all_started = started.elapsed();

    // Until every node has its relay peers, or the limit.
    let deadline = started + args.limit;
    let mut next_progress = Instant::now();
    let wall = loop {
        // All at once: asked one after another, a thousand busy nodes took minutes a round.
        let stats = futures::future::join_all(nodes.iter().map(NodeHandle::stats)).await;
        let mut reached = 0;
        for stats in stats {
            if stats?.relay_peers >= TARGET_RELAY_PEERS {
                reached += 1;
            }
        }
        if Instant::now() >= next_progress {
            eprintln!(
                "sim: cold-start, {} nodes up, {reached} with {TARGET_RELAY_PEERS} relay peers, {:.1?}",
                nodes.len(),
                started.elapsed()
            );
            next_progress = Instant::now() + PROGRESS_EVERY;
        }
        if reached == nodes.len() || Instant::now() >= deadline {
            break started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };

    let (results, samples) = measure(&args, fleet, &nodes, &fleet_ids, wall).await?;
    let path = args.out.join("results.json");
    std::fs::write(&path, serde_json::to_string_pretty(&results)?)
        .with_context(|| format!("writing {}", path.display()))?;
    write_report(&args.out, &results, &samples)?;
    println!(
        "sim {}: {} nodes ({} fleet), all started in {all_started:.2?}; {} reached {TARGET_RELAY_PEERS} relay peers in {wall:.2?}",
        results.scenario, results.nodes, results.fleet_nodes, results.reached_target
    );
    println!(
        "bootstrap to {TARGET_RELAY_PEERS} relay peers: p50 {:.2} s, p99 {:.2} s, max {:.2} s; relay peers min {}, p50 {}; fleet share mean {:.2}, max {:.2}; {} KiB per node",
        results.bootstrap_seconds.p50,
        results.bootstrap_seconds.p99,
        results.bootstrap_seconds.max,
        results.relay_peers.min,
        results.relay_peers.p50,
        results.fleet_share.mean,
        results.fleet_share.max,
        results.rss_bytes_per_node / 1024
    );
    println!("results: {} (report.html beside it)", path.display());
    for node in &nodes {
        node.shutdown().await;
    }
    dns.shutdown().await;
    if results.reached_target < results.nodes {
        bail!(
            "{} of {} nodes had fewer than {TARGET_RELAY_PEERS} relay peers after {:.0?}",
            results.nodes - results.reached_target,
            results.nodes,
            args.limit
        );
    }
    Ok(())
}

/// A node on `ip` with the default limits; relay, peer exchange (both ways) and discv5.
fn node_config(
    ip: Ipv4Addr,
    discv5_bootstrap: Vec<String>,
    dns_discovery_urls: Vec<String>,
    dns_name_server: Option<SocketAddr>,
) -> NodeConfig {
    NodeConfig {
        listen_ip: IpAddr::V4(ip),
        tcp_port: 0,
        websocket_port: None,
        discv5: Some(Discv5Config { udp_port: 0, bootstrap: discv5_bootstrap }),
        dns_discovery_urls,
        dns_name_server,
        peer_exchange: true,
        peer_exchange_client: true,
        // No per-IP limit yet: libp2p-tcp binds its dial sockets to the unspecified address,
        // so every TCP connection between loopback addresses comes from 127.0.0.1 and the
        // default limit (5 per address) refused nearly all of them. discv5 (UDP) does see
        // each node's own address.
        peer_manager: node::peers::PeerManagerConfig {
            max_peers_per_ip: 0,
            ..node::peers::PeerManagerConfig::default()
        },
        ..NodeConfig::default()
    }
}

/// Per-node figures behind the pictures, each sorted.
struct Samples {
    bootstrap: Vec<Duration>,
    fleet_share: Vec<f64>,
}

/// The CDFs of bootstrap time and fleet share as SVG, and `report.html` showing them with the
/// results.
fn write_report(dir: &std::path::Path, results: &Results, samples: &Samples) -> anyhow::Result<()> {
    let pictures = [
        (
            "bootstrap_cdf.svg",
            "Start to 6 relay peers, per node (CDF)",
            super::sim_plot::cdf_svg(
                "Start to 6 relay peers (CDF over nodes)",
                "s",
                &samples.bootstrap.iter().map(Duration::as_secs_f64).collect::<Vec<_>>(),
            ),
        ),
        (
            "fleet_share_cdf.svg",
            "Share of each non-fleet node's relay peers that are fleet nodes (CDF)",
            super::sim_plot::cdf_svg(
                "Fleet share of relay peers (CDF over nodes)",
                "",
                &samples.fleet_share,
            ),
        ),
    ];
    for (file, _, svg) in &pictures {
        let path = dir.join(file);
        std::fs::write(&path, svg).with_context(|| format!("writing {}", path.display()))?;
    }
    let shown: Vec<(&str, &str)> =
        pictures.iter().map(|(file, caption, _)| (*file, *caption)).collect();
    let html = super::sim_plot::report_html(&serde_json::to_value(results)?, &shown);
    let path = dir.join("report.html");
    std::fs::write(&path, html).with_context(|| format!("writing {}", path.display()))
}

/// The figures of `results.json` from each node's stats and peers (asked of every node at
/// once), and what the nodes below the relay target saw (the first five, on stderr).
async fn measure(
    args: &SimArgs,
    fleet: usize,
    nodes: &[NodeHandle],
    fleet_ids: &std::collections::HashSet<PeerId>,
    wall: Duration,
) -> anyhow::Result<(Results, Samples)> {
    let stats = futures::future::join_all(nodes.iter().map(NodeHandle::stats)).await;
    let peers = futures::future::join_all(nodes[fleet..].iter().map(NodeHandle::peers)).await;
    let mut relay = Vec::with_capacity(nodes.len());
    let mut bootstrap = Vec::new();
    let mut described = 0;
    for (index, stats) in stats.into_iter().enumerate() {
        let stats = stats?;
        relay.push(stats.relay_peers);
        bootstrap.extend(stats.time_to_target_relay_peers);
        if stats.relay_peers < TARGET_RELAY_PEERS && described < 5 {
            described += 1;
            eprintln!("node {index}: {}", super::bench_node::short_node(&stats));
        }
    }
    let mut fleet_share = Vec::new();
    for peers in peers {
        let relaying: Vec<_> = peers?.into_iter().filter(|p| p.relay).collect();
        if !relaying.is_empty() {
            let from_fleet = relaying.iter().filter(|p| fleet_ids.contains(&p.peer_id)).count();
            fleet_share.push(from_fleet as f64 / relaying.len() as f64);
        }
    }
    relay.sort_unstable();
    bootstrap.sort_unstable();
    fleet_share.sort_by(f64::total_cmp);
    let rss_bytes = super::bench_node::rss_kib(std::process::id())? * 1024;
    let results = Results {
        scenario: args.scenario.clone(),
        nodes: nodes.len(),
        fleet_nodes: fleet,
        reached_target: relay.iter().filter(|&&n| n >= TARGET_RELAY_PEERS).count(),
        relay_peers: RelayPeers {
            min: relay.first().copied().unwrap_or(0),
            p50: relay.get(relay.len() / 2).copied().unwrap_or(0),
        },
        bootstrap_seconds: spread(&bootstrap),
        fleet_share: Share {
            mean: if fleet_share.is_empty() {
                0.0
            } else {
                fleet_share.iter().sum::<f64>() / fleet_share.len() as f64
            },
            max: fleet_share.last().copied().unwrap_or(0.0),
        },
        rss_bytes_per_node: rss_bytes / nodes.len().max(1) as u64,
        wall_seconds: wall.as_secs_f64(),
        propagation_ms: None,
        delivery_ratio: None,
        bandwidth_bytes_per_sec_per_node: None,
    };
    Ok((results, Samples { bootstrap, fleet_share }))
}
