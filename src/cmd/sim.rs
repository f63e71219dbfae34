//! `wakufleet sim`: many embedded nodes on this machine, bootstrapping as Waku's clients do,
//! with the fleet part real, measured into `results.json`.
//!
//! Each node runs in this process on its own loopback address, one per /24
//! (`127.16.0.1`, `127.16.1.1`, …), dialing from it, with the node's default connection
//! limits; every TCP link between two of them has a round trip drawn from `--rtt`
//! ([`super::sim_links`]). The first `--fleet` nodes are the fleet, run as operators run one
//! ([`super::sim_fleet`]): the controller on its own thread, an agent per node reporting to
//! it, the controller's fleet hint making them find each other over discv5, and the tree the
//! controller builds from the healthy ones, signs and serves from its DNS server. Every other
//! node is given only the tree's URL and the DNS server: DNS discovery, then discv5 from what
//! the tree listed, then peer exchange — never a fleet address by hand.
//!
//! Scenarios: `cold-start` (every node started, time to its relay target and where its relay
//! peers come from); `steady` (cold start, then `--publishers` nodes publish `--rate`
//! messages of `--message-size` bytes a second for `--duration`: propagation, delivery and
//! bandwidth, [`super::sim_traffic`]); `fleet-loss` (messages before and after every fleet
//! node crashes, and how the survivors heal); `churn` (clients leaving and joining while
//! messages flow, [`super::sim_churn`]); `shards` (the steady load over `--shards` shards by
//! autosharding); `hostile` (unreachable and non-relaying clients among honest ones,
//! [`super::sim_hostile`]). Besides `results.json` (with the controller's own costs): CDFs as
//! SVG and `report.html` showing them ([`super::sim_plot`]). With `--workers N` the clients
//! run in N child processes ([`super::sim_hosts`]), each with its own open-files limit.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use clap::Args;
use libp2p::PeerId;
use node::{running::TARGET_RELAY_PEERS, tcp_transport::LinkModel, topics::ContentTopic};
use serde::Serialize;

use super::{
    sim_churn::ChurnFigures,
    sim_fleet::{ControllerFigures, FleetNode, FleetPlan, SimFleet},
    sim_hostile::{Hostile, Role},
    sim_hosts::{CLUSTER, Hosts, Setup, ShardPlan, SimNode, SimPeer, SimStats},
    sim_links::{RttModel, SimLinks, address},
    sim_traffic::{Load, Publisher},
};

/// Between progress lines.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);
/// Worker processes at most.
const MAX_WORKERS: usize = 64;
/// What the scenarios are called.
const SCENARIOS: [&str; 6] = ["cold-start", "steady", "fleet-loss", "churn", "shards", "hostile"];

/// `wakufleet sim` arguments.
#[derive(Debug, Args)]
pub(crate) struct SimArgs {
    /// Nodes in all, the fleet's among them.
    #[arg(long, default_value_t = 100)]
    nodes: usize,
    /// Fleet nodes (default: one in twenty, at least 3).
    #[arg(long)]
    fleet: Option<usize>,
    /// What to run: cold-start, steady, fleet-loss, churn, shards or hostile.
    #[arg(long, default_value = "cold-start")]
    scenario: String,
    /// Round trip of every link: `none`, one time (`200ms` compares with nwaku's Shadow runs,
    /// whose "100 ms" is each path's one-way latency) or a range each link draws from
    /// (`40ms-130ms`).
    #[arg(long, default_value = "40ms-130ms")]
    rtt: RttModel,
    /// What each direction of a link carries, in Mbit/s (default: unlimited).
    #[arg(long)]
    link_mbit: Option<f64>,
    /// Run the messages K times slower than real time (steady and shards): from the end of
    /// the bootstrap every link's round trip × K and rate ÷ K, the messages K times further
    /// apart and the settle × K; propagation and bandwidth are reported in the network's time
    /// (divided back by K). Two cores running a thousand nodes queue every message behind
    /// the others' work; slowed down, each node gets the CPU time a host of its own would, as
    /// in simulators that charge none (Shadow). The bootstrap runs at full speed (its times
    /// are wall-clock), and the nodes' own timers (gossipsub's 1 s heartbeat) are not slowed.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    slowdown: u32,
    /// Seed of the links' round trips.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Nodes publishing, in turn (steady).
    #[arg(long, default_value_t = 10)]
    publishers: usize,
    /// Payload bytes per message (steady).
    #[arg(long, default_value_t = 1024)]
    message_size: usize,
    /// Messages per second over all publishers (steady).
    #[arg(long, default_value_t = 1.0)]
    rate: f64,
    /// How long to publish (steady).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Shards of the network by autosharding (shards: the fleet relays all, each other node
    /// one).
    #[arg(long, default_value_t = 8)]
    shards: u16,
    /// Percent of the non-fleet nodes that leave per minute, as many joining (churn).
    #[arg(long, default_value_t = 10.0)]
    churn: f64,
    /// Share of the non-fleet nodes that refuse every connection but are discoverable
    /// (hostile).
    #[arg(long, default_value_t = 0.2)]
    unreachable: f64,
    /// Share of the non-fleet nodes that relay nothing they receive (hostile).
    #[arg(long, default_value_t = 0.2)]
    non_relaying: f64,
    /// Where results.json goes (created).
    #[arg(long)]
    out: PathBuf,
    /// How long every node may take to reach its relay target.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    limit: Duration,
    /// Each client's connection limit (default: the node's, 150). Both ends of a link between
    /// two nodes of one process are its sockets, and it may open as many files as `ulimit -n`
    /// allows (see --workers).
    #[arg(long)]
    max_connections: Option<usize>,
    /// Clients started per second, as a network grows (default: all at once, a cold start of
    /// the whole network).
    #[arg(long)]
    arrival: Option<f64>,
    /// Between every node at its target and the first message (default: a few gossipsub
    /// heartbeats for the meshes to fill). Longer measures a network past its start, when
    /// the lookups, dials and mesh trades of the bootstrap have died down.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    settle: Duration,
    /// Child processes to run the clients in, each with its own open-files limit (default: 0,
    /// every node in this process). Past about a thousand nodes one process runs out of files.
    #[arg(long, default_value_t = 0)]
    workers: usize,
}

impl SimArgs {
    /// Each client's connection limit: `--max-connections` or the node's default.
    fn client_max_connections(&self) -> usize {
        self.max_connections.unwrap_or(node::options::DEFAULT_MAX_CONNECTIONS)
    }
}

/// `results.json`.
#[derive(Debug, Serialize)]
struct Results {
    scenario: String,
    nodes: usize,
    fleet_nodes: usize,
    /// Shards of the network (1 but in the shards scenario).
    shards: u16,
    /// The links' round trips (`--rtt`) and rate.
    rtt: String,
    link_mbit: Option<f64>,
    /// Nodes at [`TARGET_RELAY_PEERS`] at the end, those below at the first look asked again
    /// for up to [`BELOW_TARGET_GRACE`].
    reached_target: usize,
    /// Nodes below [`TARGET_RELAY_PEERS`] at the first look at the end.
    below_target_first_look: usize,
    /// Inbound connections each node refused over the run, on average: its limits, and
    /// relay peers past its inbound relay cap (each one a dialler sent elsewhere).
    refused_inbound_per_node: f64,
    relay_peers: PeerCounts,
    /// Gossipsub mesh peers per node at the end (the smallest of its topics' meshes): below
    /// 4 (D_low) a node gets messages by gossip, a heartbeat late per hop.
    mesh_peers: PeerCounts,
    /// Nodes whose smallest mesh is below D_low at the end.
    mesh_below_d_low: usize,
    /// Clients by relay peers that dialled them (the last group: that many or more), and how
    /// many of each ended below D_low: a node nobody dialled is inbound at every peer, pruned
    /// first by each.
    below_d_low_by_inbound: Vec<InboundGroup>,
    /// From each node's start to its relay target (nodes that reached it).
    bootstrap_seconds: Spread,
    /// Share of each non-fleet node's relay peers that are fleet nodes.
    fleet_share: Share,
    /// Resident memory of this process over the nodes.
    rss_bytes_per_node: u64,
    /// Seconds from the first start to every node at its target (or the limit).
    wall_seconds: f64,
    /// Clients started per second (none: all at once).
    arrival_per_second: Option<f64>,
    /// Child processes the clients ran in (0: this one).
    workers: usize,
    /// How many times slower than real time the network ran (`--slowdown`; 1: real time).
    /// Propagation and bandwidth are in the network's time, bootstrap in wall-clock time.
    slowdown: u32,
    /// Seconds between every node at its target and the first message (`--settle`).
    settle_seconds: f64,
    /// Each client's connection limit.
    max_connections: usize,
    /// Share of the machine's cores the sim kept busy: near 1, the times are its queues.
    cpu_busy: Option<super::sim_cpu::CpuBusy>,
    /// Message figures: only scenarios that send messages fill these.
    messages: Option<Messages>,
    /// From publishing to arrival, over every (message, receiving node).
    propagation_ms: Option<Spread>,
    /// Arrivals over (messages × nodes other than the publisher).
    delivery_ratio: Option<f64>,
    /// While publishing, per node.
    bandwidth_bytes_per_sec_per_node: Option<Bandwidth>,
    /// `fleet-loss`: what the crash of every fleet node did (the other message figures are
    /// those of the messages sent right after it, over the survivors).
    fleet_loss: Option<FleetLoss>,
    /// `hostile`: who misbehaved and what it cost (every other figure is the honest nodes').
    hostile: Option<Hostile>,
    /// `churn`: who left and joined (delivery and propagation are those of the nodes that
    /// stayed).
    churn: Option<ChurnFigures>,
    /// What the fleet's controller did and cost at this size.
    controller: Option<ControllerFigures>,
}

#[derive(Debug, Serialize)]
struct FleetLoss {
    delivery_before: f64,
    delivery_after: f64,
    /// Survivors back at the relay target without the fleet (within the limit).
    healed: usize,
    /// From the crash to each healed survivor holding its relay target outside the fleet.
    heal_seconds: Spread,
    /// From the crash until no survivor held a connection to a crashed node any more.
    dead_connections_gone_seconds: Option<f64>,
}

impl FleetLoss {
    fn new(delivery_before: f64, delivery_after: f64, healing: Healing) -> Self {
        let mut healed: Vec<Duration> = healing.healed.into_iter().flatten().collect();
        healed.sort_unstable();
        Self {
            delivery_before,
            delivery_after,
            healed: healed.len(),
            heal_seconds: spread(&healed),
            dead_connections_gone_seconds: healing.dead_gone.map(|d| d.as_secs_f64()),
        }
    }
}

/// How the survivors of a fleet loss recovered.
struct Healing {
    /// Per survivor: when it had its relay target outside the fleet again.
    healed: Vec<Option<Duration>>,
    /// When no survivor was connected to a crashed node any more.
    dead_gone: Option<Duration>,
}

/// Watches the survivors after the fleet crashed at `crashed_at`, until each has its relay
/// target among non-fleet peers and none still holds a connection to the dead, or `limit`.
async fn watch_healing(
    survivors: &[SimNode],
    fleet_ids: &std::collections::HashSet<PeerId>,
    crashed_at: Instant,
    limit: Duration,
) -> anyhow::Result<Healing> {
    let mut healed: Vec<Option<Duration>> = vec![None; survivors.len()];
    let mut dead_gone = None;
    let mut next_report = SLOW_HEALING;
    while crashed_at.elapsed() < limit {
        if crashed_at.elapsed() >= next_report {
            next_report += SLOW_HEALING;
            report_slow_healers(survivors, &healed, crashed_at.elapsed()).await;
        }
        let peers = futures::future::join_all(survivors.iter().map(SimNode::peers)).await;
        let mut holding_dead = 0;
        for (index, peers) in peers.into_iter().enumerate() {
            let peers = peers?;
            if peers.iter().any(|(p, _)| fleet_ids.contains(p)) {
                holding_dead += 1;
            }
            let alive_relay =
                peers.iter().filter(|(p, peer)| peer.relay && !fleet_ids.contains(p)).count();
            if healed[index].is_none() && alive_relay >= TARGET_RELAY_PEERS {
                healed[index] = Some(crashed_at.elapsed());
            }
        }
        if holding_dead == 0 && dead_gone.is_none() {
            dead_gone = Some(crashed_at.elapsed());
        }
        if dead_gone.is_some() && healed.iter().all(Option::is_some) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(Healing { healed, dead_gone })
}

/// How long after a fleet loss a survivor may take before the sim describes it on stderr
/// (and again at every multiple): a slow healer's state, for the one who reads the run.
const SLOW_HEALING: Duration = Duration::from_secs(90);
/// Slow healers described per report.
const SLOW_HEALERS_SHOWN: usize = 5;

/// Describes the first few survivors not yet back at their target outside the fleet.
async fn report_slow_healers(survivors: &[SimNode], healed: &[Option<Duration>], after: Duration) {
    let slow: Vec<&SimNode> =
        survivors.iter().zip(healed).filter(|(_, h)| h.is_none()).map(|(n, _)| n).collect();
    if slow.is_empty() {
        return;
    }
    let survivors = if slow.len() == 1 { "survivor" } else { "survivors" };
    eprintln!("sim: fleet-loss, {} {survivors} not healed {after:.0?} after the crash", slow.len());
    for node in slow.into_iter().take(SLOW_HEALERS_SHOWN) {
        let described = node.describe().await.unwrap_or_else(|e| format!("({e:#})"));
        eprintln!("sim:   node {}: {described}", node.index());
    }
}

#[derive(Debug, Serialize)]
struct Messages {
    sent: usize,
    /// (message, node) pairs that should arrive: every node relaying the message's shard
    /// but its publisher.
    arrivals_expected: u64,
    arrivals: u64,
    size_bytes: usize,
    per_second: f64,
    publishers: usize,
    /// Bytes all nodes received while publishing over the payload bytes they had to receive
    /// (messages × size × receivers): gossip's duplicates, control messages and framing.
    received_bytes_per_payload_byte: f64,
    /// Message events a receiver missed by falling behind (counted as not delivered).
    lagged: u64,
    /// Per message, from publishing to its first arrival at any node: the publisher's own
    /// queue and first hop, apart from the spread.
    first_arrival_ms: Option<Spread>,
    /// Arrivals that came only after the drain, when the sim looked again (counted as
    /// delivered): late, not lost.
    arrived_late: u64,
    /// discv5 lookups while the messages flowed, per minute of wall-clock time (each checks
    /// the signature of every record it meets: a few hundred).
    discv5_lookups: super::sim_traffic::Lookups,
    /// Arrivals that never came: how many, and the first few as (node, message index) with
    /// node indices as in the whole network.
    missing: u64,
    missing_listed: Vec<(usize, u64)>,
}

/// Clients with `inbound_relay_peers` relay peers that dialled them (or more, in the last
/// group), and how many of them ended below D_low.
#[derive(Debug, Clone, Serialize, PartialEq)]
struct InboundGroup {
    inbound_relay_peers: usize,
    clients: usize,
    below_d_low: usize,
}

#[derive(Debug, Serialize)]
struct PeerCounts {
    min: usize,
    p50: usize,
}

#[derive(Debug, Serialize)]
pub(crate) struct Spread {
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
    in_max: f64,
    out_max: f64,
}

/// The spread of `sorted` in seconds.
pub(crate) fn spread(sorted: &[Duration]) -> Spread {
    let at = |p: f64| super::bench::percentile(sorted, p).as_secs_f64();
    Spread { p50: at(0.5), p95: at(0.95), p99: at(0.99), max: at(1.0) }
}

/// [`spread`] in milliseconds.
fn spread_ms(sorted: &[Duration]) -> Spread {
    let Spread { p50, p95, p99, max } = spread(sorted);
    Spread { p50: p50 * 1e3, p95: p95 * 1e3, p99: p99 * 1e3, max: max * 1e3 }
}

pub(crate) async fn run(args: SimArgs) -> anyhow::Result<()> {
    if !SCENARIOS.contains(&args.scenario.as_str()) {
        bail!("unknown scenario {:?}: one of {}", args.scenario, SCENARIOS.join(", "));
    }
    if args.scenario != "cold-start" {
        if args.publishers == 0 {
            bail!("{} needs at least one publisher", args.scenario);
        }
        super::sim_traffic::check(args.message_size, args.rate, args.duration)?;
    }
    if args.scenario == "shards" && !(1..=1024).contains(&args.shards) {
        bail!("--shards {}: a network has 1 to 1024 shards", args.shards);
    }
    let fleet = args.fleet.unwrap_or((args.nodes / 20).max(3)).min(args.nodes);
    if args.nodes < 2 || fleet == 0 {
        bail!("a simulation needs at least 2 nodes and 1 fleet node");
    }
    if args.workers > MAX_WORKERS || args.workers > args.nodes - fleet {
        bail!(
            "--workers {}: at most one per client ({}) and {MAX_WORKERS}",
            args.workers,
            args.nodes - fleet
        );
    }
    let needs_clients = ["fleet-loss", "churn", "hostile"].contains(&args.scenario.as_str());
    if needs_clients && fleet >= args.nodes {
        bail!("{} needs nodes besides the fleet's", args.scenario);
    }
    if args.scenario == "hostile" {
        super::sim_hostile::check(args.unreachable, args.non_relaying)?;
    }
    if args.scenario == "churn" {
        super::sim_churn::check(args.churn)?;
    }
    // The last client's start must be a time there is (1e-300 a second is not).
    if let Some(rate) = args.arrival
        && !(rate.is_finite()
            && rate > 0.0
            && Duration::try_from_secs_f64(args.nodes as f64 / rate).is_ok())
    {
        bail!("--arrival {rate}: clients started per second, above 0 and finite");
    }
    let link_rate = match args.link_mbit {
        None => None,
        Some(mbit) if mbit > 0.0 => Some((mbit * 1e6 / 8.0) as u64),
        Some(mbit) => bail!("--link-mbit {mbit}: a link's rate must be above 0"),
    };
    // Churn's joiners come on hosts of their own, after the first nodes'.
    let host_count = if args.scenario == "churn" { args.nodes * 2 } else { args.nodes };
    if args.slowdown > 1 && !["steady", "shards"].contains(&args.scenario.as_str()) {
        bail!(
            "--slowdown {}: only steady and shards run slowed down (the {} scenario's clocks are the nodes' own)",
            args.slowdown,
            args.scenario
        );
    }
    let links = SimLinks::new(args.rtt, link_rate, args.seed, host_count).slowed(args.slowdown);
    // Always a model, even without delays: it is what crashes hosts.
    let link_model: Option<Arc<dyn LinkModel>> = Some(Arc::new(links.clone()));
    // Every address must be usable before anything starts.
    let last = address(host_count - 1)?;
    if std::net::UdpSocket::bind((last, 0)).is_err() {
        bail!("cannot bind {last}: loopback addresses beyond 127.0.0.1 are not routed here");
    }
    let max_connections = args.client_max_connections();
    if max_connections < TARGET_RELAY_PEERS {
        bail!(
            "--max-connections {max_connections}: at least the relay target, {TARGET_RELAY_PEERS}"
        );
    }
    // Churn's extra hosts are addresses for joiners, not nodes running at once.
    let here = if args.workers == 0 { args.nodes } else { fleet };
    super::sim_files::ensure_open_files(here, max_connections)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;

    let shards = if args.scenario == "shards" { args.shards } else { 1 };
    let plan = ShardPlan { fleet, shards };
    let started = Instant::now();
    let bootstrap_cpu = super::sim_cpu::Phase::start(&[std::process::id()])?;
    // The fleet, as operators run one: the controller and an agent per node.
    let fleet_plan = FleetPlan {
        dir: &args.out,
        nodes: (0..fleet)
            .map(|index| Ok(FleetNode { ip: address(index)?, shards: plan.shards_of(index) }))
            .collect::<anyhow::Result<_>>()?,
        num_shards: plan.shards,
        cluster: CLUSTER,
        links: link_model.clone(),
        limit: args.limit,
    };
    eprintln!("sim: starting the controller and {fleet} agents");
    let mut sim_fleet = SimFleet::start(fleet_plan).await.context("the fleet")?;
    eprintln!(
        "sim: the fleet passes and its tree is served, {:.1?}; {}",
        started.elapsed(),
        sim_fleet.url
    );
    let setup = Setup {
        rtt: args.rtt.to_string(),
        bytes_per_sec: link_rate,
        seed: args.seed,
        slowdown: args.slowdown,
        hosts: host_count,
        plan,
        url: sim_fleet.url.clone(),
        dns: sim_fleet.dns,
        max_connections,
    };
    let hosts = Hosts::new(setup, links.clone(), args.workers, args.nodes - fleet)
        .await
        .context("the worker processes")?;
    let mut nodes: Vec<SimNode> = Vec::with_capacity(args.nodes);
    nodes.extend(sim_fleet.nodes.iter().enumerate().map(|(i, h)| hosts.adopt(i, h.clone())));
    let fleet_ids: std::collections::HashSet<PeerId> = nodes.iter().map(SimNode::peer_id).collect();
    let roles = if args.scenario == "hostile" {
        super::sim_hostile::roles(fleet, args.nodes, args.unreachable, args.non_relaying)
    } else {
        vec![Role::Honest; args.nodes]
    };
    let honest = |index: &usize| roles[*index] == Role::Honest;

    // Everyone else, as clients join: the tree's URL and nothing else.
    let clients_started = Instant::now();
    let start_client = |index: usize, role: Role| {
        let hosts = &hosts;
        async move {
            if let Some(rate) = args.arrival {
                let due = Duration::from_secs_f64((index - fleet) as f64 / rate);
                tokio::time::sleep_until((clients_started + due).into()).await;
            }
            if role == Role::Unreachable {
                hosts.refuse_connections(index).await?;
            }
            let node = hosts.start(index, role).await?;
            if index.is_multiple_of(50) {
                eprintln!(
                    "sim: starting, {}/{} nodes up, {:.1?}",
                    index + 1,
                    args.nodes,
                    started.elapsed()
                );
            }
            anyhow::Ok(node)
        }
    };
    // Each on its own time (a start, binding, a key, listening, takes longer than the gap
    // between arrivals at tens a second), or all at once: started one after another, a
    // thousand starts through worker processes on busy cores took two minutes.
    let starting = roles.iter().enumerate().skip(fleet).map(|(i, &r)| start_client(i, r));
    for node in futures::future::join_all(starting).await {
        nodes.push(node?);
    }
    let all_started = started.elapsed();

    // Until every honest node has its relay peers, or the limit.
    let watched: Vec<SimNode> = (0..nodes.len()).filter(honest).map(|i| nodes[i].clone()).collect();
    let deadline = started + args.limit;
    let mut next_progress = Instant::now();
    let wall = loop {
        // All at once: asked one after another, a thousand busy nodes took minutes a round.
        let stats = futures::future::join_all(watched.iter().map(SimNode::stats)).await;
        let mut reached = 0;
        for stats in stats {
            if stats?.relay_peers >= TARGET_RELAY_PEERS {
                reached += 1;
            }
        }
        if Instant::now() >= next_progress {
            eprintln!(
                "sim: cold-start, {} nodes up, {reached} of {} with {TARGET_RELAY_PEERS} relay peers, {:.1?}",
                nodes.len(),
                watched.len(),
                started.elapsed()
            );
            next_progress = Instant::now() + PROGRESS_EVERY;
        }
        if reached == watched.len() || Instant::now() >= deadline {
            break started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let bootstrap_busy = bootstrap_cpu.busy_share(&hosts.pids())?;

    // Publishers are honest clients (the fleet, when there are none).
    let honest_clients: Vec<usize> = (fleet..nodes.len()).filter(honest).collect();
    let pool: Vec<usize> =
        if honest_clients.is_empty() { (0..fleet).collect() } else { honest_clients.clone() };
    let publishers = spread_publishers(&pool, args.publishers);
    let churn_events = if args.scenario == "churn" {
        let candidates: Vec<usize> =
            honest_clients.iter().copied().filter(|i| !publishers.contains(i)).collect();
        let count = super::sim_churn::leaving_count(nodes.len() - fleet, args.churn, args.duration);
        super::sim_churn::schedule(&candidates, count, args.duration, args.seed, args.nodes)
    } else {
        Vec::new()
    };
    let leaving: std::collections::HashSet<usize> =
        churn_events.iter().map(|e| e.leaving).collect();
    // Deliveries are counted at honest nodes that stay.
    let topics: Vec<Vec<String>> = (0..nodes.len())
        .map(|index| {
            if !honest(&index) || leaving.contains(&index) {
                return Vec::new();
            }
            plan.shards_of(index).into_iter().map(|s| plan.topic(s)).collect()
        })
        .collect();
    let content_topics = content_topics(shards)?;
    let load = Load {
        publishers: publishers
            .into_iter()
            .map(|node| {
                let shard = plan.shards_of(node)[0];
                Publisher {
                    node,
                    topic: plan.topic(shard),
                    content_topic: content_topics[usize::from(shard)].clone(),
                }
            })
            .collect(),
        size: args.message_size,
        rate: args.rate,
        duration: args.duration,
        // The slowest path is a few hops of the slowest link, and a busy machine.
        drain: Duration::from_secs(5),
    };
    let mut loss = None;
    let mut churn = None;
    let mut joined = Vec::new();
    let traffic_cpu = super::sim_cpu::Phase::start(&hosts.pids())?;
    let traffic = match args.scenario.as_str() {
        "steady" | "shards" | "hostile" => {
            let slowdown = args.slowdown;
            if slowdown > 1 {
                hosts.stretch_links().await?;
            }
            tokio::time::sleep(args.settle * slowdown).await;
            eprintln!(
                "sim: {}, {} publishers, {} B messages, {}/s for {:?}, {shards} shard(s){}",
                args.scenario,
                load.publishers.len(),
                load.size,
                load.rate,
                load.duration,
                if slowdown > 1 {
                    format!(", {slowdown} times slower than real time")
                } else {
                    String::new()
                }
            );
            let wall_load = load.slowed(slowdown);
            Some(
                super::sim_traffic::run(&nodes, &topics, &wall_load)
                    .await?
                    .in_network_time(slowdown),
            )
        }
        "fleet-loss" => {
            tokio::time::sleep(args.settle).await;
            eprintln!("sim: fleet-loss, messages with the fleet up");
            let before = super::sim_traffic::run(&nodes, &topics, &load).await?;
            eprintln!("sim: fleet-loss, every fleet node crashes");
            for index in 0..fleet {
                hosts.crash(index).await?;
                sim_fleet.stop(index).await;
            }
            let crashed_at = Instant::now();
            let survivors = &nodes[fleet..];
            let after_load = Load {
                publishers: load
                    .publishers
                    .iter()
                    .map(|p| Publisher { node: p.node - fleet, ..p.clone() })
                    .collect(),
                ..load.clone()
            };
            let (after, healing) = tokio::join!(
                super::sim_traffic::run(survivors, &topics[fleet..], &after_load),
                watch_healing(survivors, &fleet_ids, crashed_at, args.limit)
            );
            let after = after?;
            loss = Some(FleetLoss::new(before.delivery_ratio(), after.delivery_ratio(), healing?));
            Some(after)
        }
        "churn" => {
            tokio::time::sleep(args.settle).await;
            eprintln!(
                "sim: churn, {} of {} clients leave and as many join over {:?}, with {} B messages at {}/s",
                churn_events.len(),
                nodes.len() - fleet,
                load.duration,
                load.size,
                load.rate
            );
            let churn_started = Instant::now();
            let join = |host: usize| hosts.start(host, Role::Honest);
            let (traffic, churned) = tokio::join!(
                super::sim_traffic::run(&nodes, &topics, &load),
                super::sim_churn::run(&churn_events, &nodes, &hosts, churn_started, join)
            );
            let churned = churned?;
            let times = super::sim_churn::joiners_bootstrap(&churned, args.limit).await;
            let stayed = nodes.len() - leaving.len();
            churn = Some(super::sim_churn::figures(&churn_events, args.churn, stayed, &times));
            joined = churned.joined;
            Some(traffic?)
        }
        _ => None,
    };
    let cpu_busy = super::sim_cpu::CpuBusy {
        cores: super::sim_cpu::cores(),
        bootstrap: bootstrap_busy,
        traffic: if traffic.is_some() {
            Some(traffic_cpu.busy_share(&hosts.pids())?)
        } else {
            None
        },
    };

    // The figures are the honest nodes' still running: after a fleet loss the survivors, after
    // churn those that stayed and the joiners.
    let first = if loss.is_some() { fleet } else { 0 };
    let live: Vec<SimNode> = (first..nodes.len())
        .filter(|i| honest(i) && !leaving.contains(i))
        .map(|i| nodes[i].clone())
        .chain(joined.iter().cloned())
        .collect();
    let live_clients = &live[fleet - first..];
    // Memory is shared by every node still running, misbehaving ones included.
    let running = nodes.len() - first - leaving.len() + joined.len();
    let (mut results, mut samples) =
        measure(&args, fleet, (&live, live_clients, running), &fleet_ids, wall, &hosts.pids())
            .await?;
    if args.scenario == "hostile" {
        results.hostile = Some(hostile_figures(&nodes, &roles, &live).await?);
    }
    results.churn = churn;
    results.cpu_busy = Some(cpu_busy);
    if let Some(traffic) = &traffic {
        add_traffic(&mut results, &mut samples, traffic, &load, first);
    }
    results.fleet_loss = loss;
    results.controller = Some(sim_fleet.figures().await.context("the controller's figures")?);
    let path = args.out.join("results.json");
    std::fs::write(&path, serde_json::to_string_pretty(&results)?)
        .with_context(|| format!("writing {}", path.display()))?;
    write_report(&args.out, &results, &samples)?;
    println!(
        "sim {}: {} nodes ({} fleet), all started in {all_started:.2?}; {} reached {TARGET_RELAY_PEERS} relay peers in {wall:.2?}",
        results.scenario, results.nodes, results.fleet_nodes, results.reached_target
    );
    println!(
        "bootstrap to {TARGET_RELAY_PEERS} relay peers: p50 {:.2} s, p99 {:.2} s, max {:.2} s; relay peers min {}, p50 {}; mesh min {}, p50 {}, {} below D_low; fleet share mean {:.2}, max {:.2}; {} KiB per node",
        results.bootstrap_seconds.p50,
        results.bootstrap_seconds.p99,
        results.bootstrap_seconds.max,
        results.relay_peers.min,
        results.relay_peers.p50,
        results.mesh_peers.min,
        results.mesh_peers.p50,
        results.mesh_below_d_low,
        results.fleet_share.mean,
        results.fleet_share.max,
        results.rss_bytes_per_node / 1024
    );
    if let (Some(p), Some(delivery), Some(bandwidth)) =
        (&results.propagation_ms, results.delivery_ratio, &results.bandwidth_bytes_per_sec_per_node)
    {
        println!(
            "propagation: p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms, max {:.0} ms; delivery {:.4}; per node in {:.0} B/s, out {:.0} B/s (max {:.0} / {:.0})",
            p.p50,
            p.p95,
            p.p99,
            p.max,
            delivery,
            bandwidth.in_mean,
            bandwidth.out_mean,
            bandwidth.in_max,
            bandwidth.out_max
        );
        if let Some(first) = results.messages.as_ref().and_then(|m| m.first_arrival_ms.as_ref()) {
            println!(
                "first arrival of each message anywhere: p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms",
                first.p50, first.p95, first.max
            );
        }
        if let Some(m) = &results.messages {
            let lookups = &m.discv5_lookups;
            println!(
                "discovery while messages flowed: {:.2} discv5 lookups per node per minute; {} nodes looked, at most {} lookups each",
                lookups.per_node_per_minute, lookups.nodes_looking, lookups.max_per_node
            );
        }
        if let Some(m) = results.messages.as_ref().filter(|m| m.arrived_late + m.missing > 0) {
            println!(
                "stragglers: {} arrivals came after the drain, {} never came (node, message: {:?})",
                m.arrived_late, m.missing, m.missing_listed
            );
        }
    }
    println!(
        "cpu: {:.2} of {} cores busy while bootstrapping{}{}",
        cpu_busy.bootstrap,
        cpu_busy.cores,
        cpu_busy.traffic.map_or(String::new(), |t| format!(", {t:.2} while messages flowed")),
        if cpu_busy.saturated() {
            " — CPU-bound: the times above are this machine's queues, not the protocol's"
        } else {
            ""
        }
    );
    if let Some(loss) = &results.fleet_loss {
        println!(
            "fleet loss: delivery {:.4} before, {:.4} after; {} of {} survivors at {TARGET_RELAY_PEERS} relay peers outside the fleet (p50 {:.1} s, max {:.1} s after the crash); no connection to a crashed node after {}",
            loss.delivery_before,
            loss.delivery_after,
            loss.healed,
            results.nodes - results.fleet_nodes,
            loss.heal_seconds.p50,
            loss.heal_seconds.max,
            loss.dead_connections_gone_seconds
                .map_or("never (within the limit)".to_owned(), |s| format!("{s:.1} s")),
        );
    }
    if let Some(controller) = &results.controller {
        println!("controller: {}", controller.summary());
    }
    println!("results: {} (report.html beside it)", path.display());
    for node in nodes[fleet..].iter().chain(&joined) {
        node.shutdown().await;
    }
    sim_fleet.shutdown().await;
    if let Some(delivery) = results.delivery_ratio
        && delivery < 1.0
    {
        eprintln!("sim: {:.2} % of the messages' arrivals missing", (1.0 - delivery) * 100.0);
    }
    if results.reached_target < live.len() {
        bail!(
            "{} of {} nodes had fewer than {TARGET_RELAY_PEERS} relay peers at the end of the run (looked at again for {BELOW_TARGET_GRACE:?})",
            live.len() - results.reached_target,
            live.len(),
        );
    }
    Ok(())
}

/// A content topic per shard that autosharding over `shards` puts there.
fn content_topics(shards: u16) -> anyhow::Result<Vec<String>> {
    if shards == 1 {
        return Ok(vec![super::sim_traffic::CONTENT_TOPIC.to_owned()]);
    }
    let mut found: Vec<Option<String>> = vec![None; usize::from(shards)];
    for app in 0..100_000u32 {
        let text = format!("/sim-{app}/1/traffic/proto");
        let shard = text.parse::<ContentTopic>()?.shard(shards)?;
        found[usize::from(shard)].get_or_insert(text);
        if found.iter().all(Option::is_some) {
            return Ok(found.into_iter().flatten().collect());
        }
    }
    bail!("no content topic found for every one of {shards} shards")
}

/// Per-node figures behind the pictures, each sorted.
struct Samples {
    bootstrap: Vec<Duration>,
    fleet_share: Vec<f64>,
    /// Milliseconds from publishing to arrival (message scenarios).
    propagation_ms: Vec<f64>,
    /// Bytes per second received and sent, per node (message scenarios).
    bandwidth_in: Vec<f64>,
    bandwidth_out: Vec<f64>,
}

/// `count` publishers spread evenly over `pool` (each at most once), as clients publish.
fn spread_publishers(pool: &[usize], count: usize) -> Vec<usize> {
    let count = count.min(pool.len()).max(1);
    (0..count).filter_map(|i| pool.get(i * pool.len() / count).copied()).collect()
}

/// How clients start: from the tree's URL and the DNS server alone.
/// The `hostile` figures: the misbehaving nodes, the honest nodes' failed dials.
async fn hostile_figures(
    nodes: &[SimNode],
    roles: &[Role],
    honest: &[SimNode],
) -> anyhow::Result<Hostile> {
    let unreachable: Vec<&SimNode> =
        nodes.iter().zip(roles).filter(|(_, r)| **r == Role::Unreachable).map(|(n, _)| n).collect();
    let mut unreachable_times = Vec::new();
    for stats in futures::future::join_all(unreachable.iter().map(|n| n.stats())).await {
        unreachable_times.extend(stats?.time_to_target);
    }
    unreachable_times.sort_unstable();
    let mut dials_failed = 0u64;
    for stats in futures::future::join_all(honest.iter().map(SimNode::stats)).await {
        dials_failed += stats?.dials_failed;
    }
    Ok(Hostile {
        unreachable: unreachable.len(),
        non_relaying: roles.iter().filter(|r| **r == Role::NonRelaying).count(),
        honest: honest.len(),
        dials_failed_per_honest_node: dials_failed as f64 / honest.len().max(1) as f64,
        unreachable_reached_target: unreachable_times.len(),
        unreachable_bootstrap_seconds: spread(&unreachable_times),
    })
}

/// The message figures into `results` and the pictures' samples.
fn add_traffic(
    results: &mut Results,
    samples: &mut Samples,
    traffic: &super::sim_traffic::Traffic,
    load: &Load,
    first_node: usize,
) {
    let mean = |values: &[f64]| values.iter().sum::<f64>() / values.len().max(1) as f64;
    let max = |values: &[f64]| values.iter().copied().fold(0.0, f64::max);
    results.propagation_ms = Some(spread_ms(&traffic.latencies));
    results.delivery_ratio = Some(traffic.delivery_ratio());
    let rates = traffic.rates();
    let bandwidth_in: Vec<f64> = rates.iter().map(|r| r.0).collect();
    let bandwidth_out: Vec<f64> = rates.iter().map(|r| r.1).collect();
    results.bandwidth_bytes_per_sec_per_node = Some(Bandwidth {
        in_mean: mean(&bandwidth_in),
        out_mean: mean(&bandwidth_out),
        in_max: max(&bandwidth_in),
        out_max: max(&bandwidth_out),
    });
    let received = traffic.received() as f64;
    let payload = traffic.expected as f64 * load.size as f64;
    results.messages = Some(Messages {
        sent: traffic.sent,
        arrivals_expected: traffic.expected,
        arrivals: traffic.delivered,
        size_bytes: load.size,
        per_second: load.rate,
        publishers: load.publishers.len(),
        received_bytes_per_payload_byte: if payload > 0.0 { received / payload } else { 0.0 },
        lagged: traffic.lagged,
        first_arrival_ms: (!traffic.first_arrivals.is_empty())
            .then(|| spread_ms(&traffic.first_arrivals)),
        arrived_late: traffic.late,
        discv5_lookups: traffic.lookups,
        missing: traffic.expected.saturating_sub(traffic.delivered),
        missing_listed: traffic.missing.iter().map(|(n, m)| (n + first_node, *m)).collect(),
    });
    // A thousand nodes and a minute of messages make 60,000 arrivals: the picture shows
    // 1,000 evenly spaced quantiles of them.
    let step = (traffic.latencies.len() / 1000).max(1);
    samples.propagation_ms =
        traffic.latencies.iter().step_by(step).map(|d| d.as_secs_f64() * 1e3).collect();
    samples.bandwidth_in = bandwidth_in;
    samples.bandwidth_out = bandwidth_out;
    for values in [&mut samples.bandwidth_in, &mut samples.bandwidth_out] {
        values.sort_by(f64::total_cmp);
    }
}

/// Every CDF the samples allow as SVG, and `report.html` showing them with the results.
fn write_report(dir: &std::path::Path, results: &Results, samples: &Samples) -> anyhow::Result<()> {
    /// One picture: its file, its caption on the page, its title, the x axis's unit, values.
    struct Chart(&'static str, &'static str, &'static str, &'static str, Vec<f64>);
    let kib = |values: &[f64]| values.iter().map(|v| v / 1024.0).collect::<Vec<_>>();
    let mut charts = vec![
        Chart(
            "bootstrap_cdf.svg",
            "Start to 6 relay peers, per node (CDF)",
            "Start to 6 relay peers (CDF over nodes)",
            "s",
            samples.bootstrap.iter().map(Duration::as_secs_f64).collect(),
        ),
        Chart(
            "fleet_share_cdf.svg",
            "Share of each non-fleet node's relay peers that are fleet nodes (CDF)",
            "Fleet share of relay peers (CDF over nodes)",
            "",
            samples.fleet_share.clone(),
        ),
    ];
    if !samples.propagation_ms.is_empty() {
        charts.push(Chart(
            "propagation_cdf.svg",
            "From publishing to arrival, per message and node (CDF)",
            "Propagation (CDF over message arrivals)",
            "ms",
            samples.propagation_ms.clone(),
        ));
    }
    if !samples.bandwidth_in.is_empty() {
        charts.push(Chart(
            "bandwidth_in_cdf.svg",
            "Bytes received per second while publishing, per node (CDF)",
            "Received KiB/s per node (CDF over nodes)",
            "KiB/s",
            kib(&samples.bandwidth_in),
        ));
        charts.push(Chart(
            "bandwidth_out_cdf.svg",
            "Bytes sent per second while publishing, per node (CDF)",
            "Sent KiB/s per node (CDF over nodes)",
            "KiB/s",
            kib(&samples.bandwidth_out),
        ));
    }
    for Chart(file, _, title, unit, values) in &charts {
        let path = dir.join(file);
        let svg = super::sim_plot::cdf_svg(title, unit, values);
        std::fs::write(&path, svg).with_context(|| format!("writing {}", path.display()))?;
    }
    let shown: Vec<(&str, &str)> =
        charts.iter().map(|Chart(file, caption, ..)| (*file, *caption)).collect();
    let html = super::sim_plot::report_html(&serde_json::to_value(results)?, &shown);
    let path = dir.join("report.html");
    std::fs::write(&path, html).with_context(|| format!("writing {}", path.display()))
}

/// Clients with at least this many inbound relay peers are counted together.
const INBOUND_GROUPED: usize = 4;

/// Nodes whose mesh ends below D_low described per report.
const THIN_DESCRIBED: usize = 5;

/// How long the end of a run waits for nodes below the relay target to get back to it.
const BELOW_TARGET_GRACE: Duration = Duration::from_secs(10);

/// The nodes below the relay target in `relay` (every node's relay peers at the end), asked
/// again each second for up to [`BELOW_TARGET_GRACE`], `relay` updated as they recover: a
/// node refused by a peer at its inbound cap, or that lost one, is below for the second it
/// takes to dial another, and one look at a thousand nodes catches some of them there. How
/// many were below at the first look.
async fn look_again_below_target(nodes: &[SimNode], relay: &mut [usize]) -> anyhow::Result<usize> {
    let below = |relay: &[usize]| -> Vec<usize> {
        (0..relay.len()).filter(|&i| relay[i] < TARGET_RELAY_PEERS).collect()
    };
    let first = below(relay).len();
    if first == 0 {
        return Ok(0);
    }
    let started = Instant::now();
    loop {
        let short = below(relay);
        if short.is_empty() || started.elapsed() >= BELOW_TARGET_GRACE {
            eprintln!(
                "sim: {first} node(s) below {TARGET_RELAY_PEERS} relay peers at the end, {} of them back within {:.1?}",
                first - short.len(),
                started.elapsed()
            );
            return Ok(first);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        for i in short {
            relay[i] = nodes[i].stats().await?.relay_peers;
        }
    }
}

/// Clients (`peers` and `stats` in the same order) grouped by relay peers that dialled them.
fn below_d_low_by_inbound(
    peers: &[Vec<(PeerId, SimPeer)>],
    stats: &[SimStats],
) -> Vec<InboundGroup> {
    let mut groups: Vec<InboundGroup> = (0..=INBOUND_GROUPED)
        .map(|inbound_relay_peers| InboundGroup { inbound_relay_peers, clients: 0, below_d_low: 0 })
        .collect();
    for (peers, stats) in peers.iter().zip(stats) {
        let inbound = peers.iter().filter(|(_, p)| p.relay && p.inbound).count();
        let group = &mut groups[inbound.min(INBOUND_GROUPED)];
        group.clients += 1;
        group.below_d_low += usize::from(stats.mesh < node::relay::MESH_N_LOW);
    }
    groups.retain(|g| g.clients > 0);
    groups
}

/// A gossipsub score as the sim prints it.
fn score_text(score: Option<f64>) -> String {
    score.map_or("?".to_owned(), |s| format!("{s:.1}"))
}

/// How the node with `peers` sees `node`: whether it meshes it and the score it keeps of it.
fn seen_by(peers: &[(PeerId, SimPeer)], node: &PeerId) -> String {
    match peers.iter().find(|(id, _)| id == node) {
        None => "gone".to_owned(),
        Some((_, seen)) => {
            let meshes = if seen.in_mesh { "meshes us" } else { "not us" };
            format!("{meshes} {}", score_text(seen.score))
        }
    }
}

/// The first few `nodes` whose mesh ends below D_low, on stderr: each relay peer, which way it
/// was dialled, whether each meshes the other, the scores both ways, and the peer's own relay
/// peers and mesh (where it is one of `nodes`), so a reader can tell full peers from backoffs
/// from bad scores. `stats` and `peers` are every node's, in the order of `nodes`.
async fn describe_thin_meshes(
    nodes: &[SimNode],
    stats: &[SimStats],
    peers: &[Vec<(PeerId, SimPeer)>],
) -> anyhow::Result<()> {
    let thin: Vec<usize> = (0..nodes.len())
        .filter(|&i| stats[i].mesh < node::relay::MESH_N_LOW)
        .take(THIN_DESCRIBED)
        .collect();
    if thin.is_empty() {
        return Ok(());
    }
    let position: HashMap<PeerId, usize> =
        nodes.iter().enumerate().map(|(i, n)| (n.peer_id(), i)).collect();
    for i in thin {
        let node = &nodes[i];
        let mut line =
            format!("sim: thin mesh at node {}: {}\n  ", node.index(), node.describe().await?);
        for (id, peer) in peers[i].iter().filter(|(_, p)| p.relay) {
            let theirs = position.get(id).map_or("?".to_owned(), |&p| {
                format!(
                    "n{} {}/{} {}",
                    nodes[p].index(),
                    stats[p].relay_peers,
                    stats[p].mesh,
                    seen_by(&peers[p], &node.peer_id())
                )
            });
            let side = if peer.inbound { "in" } else { "out" };
            let meshed = if peer.in_mesh { "mesh" } else { "-" };
            line.push_str(&format!("[{theirs} {side} {meshed} {}] ", score_text(peer.score)));
        }
        eprintln!("{line}");
    }
    Ok(())
}

/// The figures of `results.json` from the stats and peers of `nodes` (asked of every node at
/// once; `clients`, the last of them, make the fleet share), memory over the `running` nodes,
/// and what the nodes still below the relay target or D_low saw (the first five, on stderr).
async fn measure(
    args: &SimArgs,
    fleet: usize,
    (nodes, clients, running): (&[SimNode], &[SimNode], usize),
    fleet_ids: &std::collections::HashSet<PeerId>,
    wall: Duration,
    pids: &[u32],
) -> anyhow::Result<(Results, Samples)> {
    let stats = futures::future::join_all(nodes.iter().map(SimNode::stats)).await;
    // Every node's peers, once: the clients' make the fleet share and the groups by inbound
    // peers, and the thin nodes are described from them (how each peer sees them too).
    let peers = futures::future::join_all(nodes.iter().map(SimNode::peers)).await;
    let mut relay = Vec::with_capacity(nodes.len());
    let mut mesh = Vec::with_capacity(nodes.len());
    let mut bootstrap = Vec::new();
    let stats = stats.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    for stats in &stats {
        relay.push(stats.relay_peers);
        mesh.push(stats.mesh);
        bootstrap.extend(stats.time_to_target);
    }
    let below_target_first_look = look_again_below_target(nodes, &mut relay).await?;
    // Those still below after the second look.
    for i in (0..nodes.len()).filter(|&i| relay[i] < TARGET_RELAY_PEERS).take(5) {
        eprintln!("node {}: {}", nodes[i].index(), nodes[i].describe().await?);
    }
    let peers = peers.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    describe_thin_meshes(nodes, &stats, &peers).await?;
    let clients_peers = &peers[nodes.len() - clients.len()..];
    let mut fleet_share = Vec::new();
    for peers in clients_peers {
        let relaying: Vec<&PeerId> =
            peers.iter().filter(|(_, peer)| peer.relay).map(|(p, _)| p).collect();
        if !relaying.is_empty() {
            let from_fleet = relaying.iter().filter(|p| fleet_ids.contains(p)).count();
            fleet_share.push(from_fleet as f64 / relaying.len() as f64);
        }
    }
    let below_d_low_by_inbound =
        below_d_low_by_inbound(clients_peers, &stats[nodes.len() - clients.len()..]);
    let groups: Vec<String> = below_d_low_by_inbound
        .iter()
        .map(|g| {
            let plus = if g.inbound_relay_peers == INBOUND_GROUPED { "+" } else { "" };
            format!("{}{plus}: {} of {}", g.inbound_relay_peers, g.below_d_low, g.clients)
        })
        .collect();
    eprintln!("sim: meshes below D_low by inbound relay peers (clients): {}", groups.join(", "));
    relay.sort_unstable();
    mesh.sort_unstable();
    bootstrap.sort_unstable();
    fleet_share.sort_by(f64::total_cmp);
    let mut rss_bytes = 0;
    for pid in pids {
        rss_bytes += super::bench_node::rss_kib(*pid)? * 1024;
    }
    let results = Results {
        scenario: args.scenario.clone(),
        nodes: args.nodes,
        fleet_nodes: fleet,
        shards: if args.scenario == "shards" { args.shards } else { 1 },
        rtt: args.rtt.to_string(),
        link_mbit: args.link_mbit,
        reached_target: relay.iter().filter(|&&n| n >= TARGET_RELAY_PEERS).count(),
        below_target_first_look,
        refused_inbound_per_node: stats.iter().map(|s| s.refused_inbound).sum::<u64>() as f64
            / stats.len().max(1) as f64,
        relay_peers: PeerCounts {
            min: relay.first().copied().unwrap_or(0),
            p50: relay.get(relay.len() / 2).copied().unwrap_or(0),
        },
        mesh_peers: PeerCounts {
            min: mesh.first().copied().unwrap_or(0),
            p50: mesh.get(mesh.len() / 2).copied().unwrap_or(0),
        },
        mesh_below_d_low: mesh.iter().filter(|&&m| m < node::relay::MESH_N_LOW).count(),
        below_d_low_by_inbound,
        bootstrap_seconds: spread(&bootstrap),
        fleet_share: Share {
            mean: if fleet_share.is_empty() {
                0.0
            } else {
                fleet_share.iter().sum::<f64>() / fleet_share.len() as f64
            },
            max: fleet_share.last().copied().unwrap_or(0.0),
        },
        rss_bytes_per_node: rss_bytes / running.max(1) as u64,
        wall_seconds: wall.as_secs_f64(),
        arrival_per_second: args.arrival,
        workers: args.workers,
        slowdown: args.slowdown,
        settle_seconds: args.settle.as_secs_f64(),
        max_connections: args.client_max_connections(),
        cpu_busy: None,
        messages: None,
        propagation_ms: None,
        delivery_ratio: None,
        bandwidth_bytes_per_sec_per_node: None,
        fleet_loss: None,
        hostile: None,
        churn: None,
        controller: None,
    };
    let samples = Samples {
        bootstrap,
        fleet_share,
        propagation_ms: Vec::new(),
        bandwidth_in: Vec::new(),
        bandwidth_out: Vec::new(),
    };
    Ok((results, samples))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fleet_relays_every_shard_and_each_client_one_in_turn() {
        let plan = ShardPlan { fleet: 3, shards: 8 };
        assert_eq!(plan.shards_of(0), (0..8).collect::<Vec<_>>());
        assert_eq!(plan.shards_of(2), (0..8).collect::<Vec<_>>());
        assert_eq!(plan.shards_of(3), vec![0]);
        assert_eq!(plan.shards_of(10), vec![7]);
        assert_eq!(plan.shards_of(11), vec![0]);
        assert_eq!(plan.topic(5), "/waku/2/rs/0/5");
        let one = ShardPlan { fleet: 3, shards: 1 };
        assert_eq!(one.shards_of(0), vec![0]);
        assert_eq!(one.shards_of(40), vec![0]);
    }

    #[test]
    fn each_shard_gets_a_content_topic_that_autosharding_puts_there() {
        let topics = content_topics(8).unwrap();
        assert_eq!(topics.len(), 8);
        for (shard, topic) in topics.iter().enumerate() {
            assert_eq!(topic.parse::<ContentTopic>().unwrap().shard(8).unwrap(), shard as u16);
        }
        assert_eq!(content_topics(1).unwrap(), vec![super::super::sim_traffic::CONTENT_TOPIC]);
    }

    #[test]
    fn publishers_are_clients_spread_over_them() {
        let clients: Vec<usize> = (3..63).collect();
        assert_eq!(spread_publishers(&clients, 4), vec![3, 18, 33, 48]);
        // Fewer clients than publishers asked: each client once.
        assert_eq!(spread_publishers(&[3, 4], 10), vec![3, 4]);
        assert_eq!(spread_publishers(&[5, 9, 11], 2), vec![5, 9]);
        assert!(spread_publishers(&[], 2).is_empty());
    }
}
