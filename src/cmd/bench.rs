//! `wakufleet bench …`: benchmarks that print figures (never timed assertions).

use std::{
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use clap::Subcommand;
use node::{
    crypto::{generate_key, keccak256},
    enrtree::{NodeRecord, Tree},
};

#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// Build and sign a tree of N generated ENRs; compare with hashing every record once.
    Tree {
        /// Number of records.
        #[arg(long, default_value_t = 100_000)]
        nodes: usize,
    },
    /// Relay throughput and one-hop latency between two embedded nodes on loopback.
    Relay {
        /// Messages for the throughput run.
        #[arg(long, default_value_t = 5_000)]
        messages: usize,
        /// Payload size in bytes.
        #[arg(long, default_value_t = 1_024)]
        size: usize,
        /// One-at-a-time round trips for the latency run.
        #[arg(long, default_value_t = 300)]
        samples: usize,
    },
    /// Resident memory of a `wakufleet node` (or `--agent`: `wakufleet agent`) process, idle,
    /// with 0 and then N peers.
    Rss {
        /// Peers to connect.
        #[arg(long, default_value_t = 10)]
        peers: usize,
        /// Measure an agent with its supervised node, reporting to a controller.
        #[arg(long)]
        agent: bool,
    },
    /// Archive insert rate and store query latency (p50/p99) on SQLite or Postgres.
    Store {
        /// `sqlite` (a temporary file) or `postgres` (a fresh database on 127.0.0.1:5432).
        #[arg(long, default_value = "sqlite")]
        backend: String,
        /// Messages to insert.
        #[arg(long, default_value_t = 1_000_000)]
        messages: usize,
        /// Queries per shape.
        #[arg(long, default_value_t = 200)]
        queries: usize,
        /// Fill the archive with one SQL statement per million messages instead of the node's
        /// writer (no insert rate; for 10 million messages in minutes, not hours).
        #[arg(long)]
        seed_sql: bool,
    },
    /// Wall time until every node of a loopback network has 6 relay peers (discv5 from one
    /// bootstrap node).
    Bootstrap {
        /// Nodes in the network.
        #[arg(long, default_value_t = 20)]
        nodes: usize,
    },
    /// Signed health reports into a real controller over HTTP: reports/s, p50/p99 latency.
    Ingest {
        /// Simulated agents, each with its own key, signed ENR and one-time token.
        #[arg(long, default_value_t = 1_000)]
        agents: usize,
        /// Reports each agent sends, with rising counters, one after the other.
        #[arg(long, default_value_t = 10)]
        reports_per_agent: usize,
        /// `postgres` (a fresh database on 127.0.0.1:5432, dropped at the end) or `sqlite`
        /// (a temporary file).
        #[arg(long, default_value = "postgres")]
        backend: String,
        /// Agents delivering at the same time.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
    },
    /// The built-in DNS server against Knot under dnsperf (UDP, TXT queries for every name).
    Dns {
        /// Records in the tree.
        #[arg(long, default_value_t = 1_000)]
        records: usize,
        /// dnsperf run length per server.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Only check that both servers answer the same records (needs no dnsperf).
        #[arg(long)]
        check_only: bool,
        /// Every server listens on 0.0.0.0 (as default configurations do) instead of
        /// 127.0.0.1; queries still go to 127.0.0.1.
        #[arg(long)]
        any_address: bool,
    },
}

/// The `p` quantile (0..=1) of `sorted`, nearest rank; zero when empty.
pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted
        .get(((sorted.len().saturating_sub(1)) as f64 * p).round() as usize)
        .copied()
        .unwrap_or_default()
}

pub(crate) async fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Tree { nodes } => bench_tree(nodes),
        BenchCommand::Relay { messages, size, samples } => {
            super::bench_node::relay(messages, size, samples).await
        }
        BenchCommand::Rss { peers, agent } => super::bench_node::rss(peers, agent).await,
        BenchCommand::Bootstrap { nodes } => super::bench_node::bootstrap(nodes).await,
        BenchCommand::Store { backend, messages, queries, seed_sql } => {
            super::bench_store::store(&backend, messages, queries, seed_sql).await
        }
        BenchCommand::Ingest { agents, reports_per_agent, backend, concurrency } => {
            super::bench_ingest::ingest(agents, reports_per_agent, &backend, concurrency).await
        }
        BenchCommand::Dns { records, seconds, check_only, any_address } => {
            super::bench_dns::dns(records, seconds, check_only, any_address).await
        }
    }
}

fn bench_tree(nodes: usize) -> anyhow::Result<()> {
    let started = Instant::now();
    let records = (0..nodes)
        .map(|i| {
            let ip = Ipv4Addr::from(0x0a00_0000_u32.wrapping_add(u32::try_from(i).unwrap_or(0)));
            NodeRecord::sign(&generate_key(), 1, ip, 60_000, 9_000)
        })
        .collect::<Result<Vec<_>, _>>()?;
    println!("generated {nodes} signed ENRs in {:.2?}", started.elapsed());

    let key = generate_key();
    let started = Instant::now();
    let mut tree = Tree::build(1, records, vec![])?;
    let url = tree.sign(&key, "bench.example.org");
    let build_time = started.elapsed();
    let started = Instant::now();
    let txt = tree.to_txt(&url.domain);
    let txt_time = started.elapsed();

    // Lower bound: keccak256 over the text of every record the tree publishes, once each.
    let started = Instant::now();
    let mut sink = 0u8;
    let mut bytes = 0usize;
    for text in txt.values() {
        sink ^= keccak256(text.as_bytes())[0];
        bytes += text.len();
    }
    let hash_time = started.elapsed();
    std::hint::black_box(sink);

    println!(
        "build + sign: {build_time:.2?} for {nodes} records; to_txt: {txt_time:.2?} ({} TXT records, {:.1} MiB)",
        txt.len(),
        bytes as f64 / (1 << 20) as f64
    );
    println!("keccak of all record bytes once (lower bound): {hash_time:.2?}");
    println!(
        "build + sign / lower bound: {:.1}x",
        build_time.as_secs_f64() / hash_time.as_secs_f64().max(1e-9)
    );
    Ok(())
}
